//! The direct-message protocol: one encoded `Direct` per stream, answered
//! by one [`Ack`].
//!
//! A tiny length-prefixed codec rather than libp2p's CBOR codec: the request
//! is exactly the bytes of `Direct::encode` (canonical DAG-CBOR, which only
//! the protocol crate's decoder should read), and the length prefix lets a
//! receiver refuse an oversized request before reading it instead of
//! silently truncating it.
//!
//! - request: `u32` big-endian length (at most [`MAX_DIRECT_BYTES`]), then
//!   the bytes;
//! - response: one tag byte — `0` accepted, `1` busy, `2` rejected followed
//!   by a `u16` big-endian length and that many bytes of UTF-8 reason (at
//!   most [`MAX_ACK_REASON_BYTES`]).

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use protocol::messages::MAX_DIRECT_BYTES;

/// The protocol name of direct messages.
pub const DIRECT_PROTOCOL: StreamProtocol = StreamProtocol::new("/skrei/direct/1");

/// Longest reason carried by [`Ack::Rejected`]; longer ones are cut.
pub const MAX_ACK_REASON_BYTES: usize = 1024;

/// The receiver's answer to a direct message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Verified and handed to the application.
    Accepted,
    /// Not taken now (the application's queue is full, or the sender is
    /// over its rate): retry later.
    Busy,
    /// Refused (malformed, bad signature, not signed by the sending peer).
    Rejected(String),
}

impl Ack {
    /// A rejection, its reason cut to [`MAX_ACK_REASON_BYTES`] on a
    /// character boundary.
    pub fn rejected(reason: &str) -> Ack {
        Ack::Rejected(cut(reason).to_owned())
    }
}

/// `reason` cut to [`MAX_ACK_REASON_BYTES`] on a character boundary.
fn cut(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_ACK_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Codec of [`DIRECT_PROTOCOL`]: requests are encoded `Direct` messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectCodec;

impl libp2p::request_response::Codec for DirectCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Ack;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut len = [0; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_DIRECT_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("direct message of {len} bytes, more than the {MAX_DIRECT_BYTES} allowed"),
            ));
        }
        let mut bytes = vec![0; len];
        io.read_exact(&mut bytes).await?;
        Ok(bytes)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Ack>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut tag = [0; 1];
        io.read_exact(&mut tag).await?;
        match tag[0] {
            0 => Ok(Ack::Accepted),
            1 => Ok(Ack::Busy),
            2 => {
                let mut len = [0; 2];
                io.read_exact(&mut len).await?;
                let len = u16::from_be_bytes(len) as usize;
                if len > MAX_ACK_REASON_BYTES {
                    return Err(invalid("rejection reason too long"));
                }
                let mut reason = vec![0; len];
                io.read_exact(&mut reason).await?;
                let reason =
                    String::from_utf8(reason).map_err(|_| invalid("rejection reason not UTF-8"))?;
                Ok(Ack::Rejected(reason))
            }
            other => Err(invalid(&format!("unknown acknowledgement tag {other}"))),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|&len| len as usize <= MAX_DIRECT_BYTES)
            .ok_or_else(|| invalid("direct message too large"))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        ack: Ack,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match ack {
            Ack::Accepted => io.write_all(&[0]).await?,
            Ack::Busy => io.write_all(&[1]).await?,
            Ack::Rejected(reason) => {
                let reason = cut(&reason);
                // At most MAX_ACK_REASON_BYTES, which fits a u16.
                let len = reason.len() as u16;
                io.write_all(&[2]).await?;
                io.write_all(&len.to_be_bytes()).await?;
                io.write_all(reason.as_bytes()).await?;
            }
        }
        io.close().await
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use futures::io::Cursor;
    use libp2p::request_response::Codec;

    use super::*;

    fn request_round_trip(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut wire = Cursor::new(Vec::new());
        block_on(DirectCodec.write_request(&DIRECT_PROTOCOL, &mut wire, bytes))?;
        let mut wire = Cursor::new(wire.into_inner());
        block_on(DirectCodec.read_request(&DIRECT_PROTOCOL, &mut wire))
    }

    fn response_round_trip(ack: Ack) -> Ack {
        let mut wire = Cursor::new(Vec::new());
        block_on(DirectCodec.write_response(&DIRECT_PROTOCOL, &mut wire, ack)).unwrap();
        let mut wire = Cursor::new(wire.into_inner());
        block_on(DirectCodec.read_response(&DIRECT_PROTOCOL, &mut wire)).unwrap()
    }

    #[test]
    fn requests_round_trip_up_to_the_limit() {
        assert_eq!(request_round_trip(vec![]).unwrap(), Vec::<u8>::new());
        let max = vec![7; MAX_DIRECT_BYTES];
        assert_eq!(request_round_trip(max.clone()).unwrap(), max);
        assert!(request_round_trip(vec![7; MAX_DIRECT_BYTES + 1]).is_err());
    }

    #[test]
    fn an_oversized_length_is_refused_unread() {
        let len = (MAX_DIRECT_BYTES as u32 + 1).to_be_bytes();
        let mut wire = Cursor::new(len.to_vec());
        let err = block_on(DirectCodec.read_request(&DIRECT_PROTOCOL, &mut wire)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn acks_round_trip() {
        for ack in [
            Ack::Accepted,
            Ack::Busy,
            Ack::Rejected("bad signature".into()),
        ] {
            assert_eq!(response_round_trip(ack.clone()), ack);
        }
        let long = "é".repeat(MAX_ACK_REASON_BYTES);
        let Ack::Rejected(cut) = response_round_trip(Ack::Rejected(long)) else {
            panic!("not a rejection")
        };
        assert!(cut.len() <= MAX_ACK_REASON_BYTES && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn junk_responses_are_errors() {
        for junk in [
            vec![],
            vec![9],
            vec![2, 0xff, 0xff],
            vec![2, 0, 2, 0xff, 0xfe],
        ] {
            let mut wire = Cursor::new(junk);
            assert!(block_on(DirectCodec.read_response(&DIRECT_PROTOCOL, &mut wire)).is_err());
        }
    }
}
