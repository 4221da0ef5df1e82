//! Reading and checking a request head before hyper sees it.
//!
//! hyper resolves ambiguous framing itself (it drops `Content-Length` when
//! `Transfer-Encoding` is present and merges equal duplicates), so by the
//! time a handler runs the evidence of a smuggling attempt is gone. The head
//! is therefore read here first, under the header timeout and size limit,
//! and refused when it is ambiguous: `Content-Length` together with
//! `Transfer-Encoding`, repeated framing headers, a transfer coding other
//! than `chunked`, two `Host` headers, non-ASCII in the target or `Host`, or
//! a protocol upgrade. Only a head that passes is handed to hyper, with the
//! bytes read so far replayed.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a head was refused; `status` goes to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) method: String,
    pub(crate) target: String,
}

/// A head that passed the checks: where it ends and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// Its length in bytes, up to and including the blank line.
    pub(crate) len: usize,
    /// The request body's length when it is known from the head: `None`
    /// for a chunked body (whose end only the body itself tells).
    pub(crate) body: Option<u64>,
    /// Whether this must be the connection's last request: `CONNECT`, a
    /// chunked body, HTTP/1.0 or `Connection: close`.
    pub(crate) last: bool,
}

/// How reading a head ended without a usable request.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The client closed (or failed) before sending a whole head.
    Closed,
    /// The head is refused; answer with its status.
    Rejected(Rejected),
}

fn reject(status: u16, reason: impl Into<String>, method: &str, target: &str) -> HeadError {
    HeadError::Rejected(Rejected {
        status,
        reason: reason.into(),
        method: method.to_owned(),
        target: shown(target),
    })
}

/// Printable, bounded text for logs and audit records.
pub(crate) fn shown(text: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// Read one request head into `buf` and check it. `buf` may already hold
/// bytes (a pipelined request read with the one before): they are checked
/// first. On success `buf` holds the head and whatever followed it.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max_bytes: usize,
    max_headers: usize,
    timeout: Duration,
) -> Result<Head, HeadError> {
    let read = async {
        // Parse the first bytes (junk is refused at once), then again only
        // once a blank line has arrived: re-parsing the whole buffer on
        // every byte of a trickling client would cost quadratic CPU.
        let mut scanned: usize = 0;
        loop {
            let ready = scanned == 0 || has_blank_line(&buf[scanned.saturating_sub(3)..]);
            scanned = buf.len();
            if !buf.is_empty()
                && ready
                && let Some(head) = check(buf, max_headers)?
            {
                return Ok(head);
            }
            if buf.len() >= max_bytes {
                return Err(reject(431, "request head too large", "", ""));
            }
            buf.reserve(4096.min(max_bytes - buf.len()).max(1));
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return Err(HeadError::Closed),
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(reject(408, "request head not received in time", "", "")),
    }
}

/// Whether `bytes` holds the end of a head (`\n\n` or `\n\r\n`: httparse
/// accepts bare line feeds).
fn has_blank_line(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// The most header lines parsed without allocating (the head's limit is
/// usually below it).
const INLINE_HEADERS: usize = 64;

/// `Ok(Some(_))`: a complete, acceptable head; `Ok(None)`: read more.
fn check(buf: &[u8], max_headers: usize) -> Result<Option<Head>, HeadError> {
    let mut inline = [httparse::EMPTY_HEADER; INLINE_HEADERS];
    let mut spilled;
    let headers: &mut [httparse::Header<'_>] = if max_headers <= INLINE_HEADERS {
        &mut inline[..max_headers]
    } else {
        spilled = vec![httparse::EMPTY_HEADER; max_headers];
        &mut spilled
    };
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(431, "too many header lines", "", ""));
        }
        Err(e) => return Err(reject(400, format!("malformed request head: {e}"), "", "")),
    };
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    let bad = |reason: &str| reject(400, reason, method, target);
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("non-ASCII characters in the request target"));
    }
    let (mut hosts, mut lengths, mut codings) = (0, 0, 0);
    let mut body = false;
    let mut length: Option<u64> = None;
    // HTTP/1.0 closes after each request unless it asks otherwise; the
    // proxy does not keep those alive.
    let mut close = req.version != Some(1);
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !h.value.iter().all(|b| b.is_ascii_graphic()) {
                return Err(bad("non-ASCII or spaces in the Host header"));
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            if h.value.is_empty() || !h.value.iter().all(u8::is_ascii_digit) {
                return Err(bad("Content-Length is not a plain number"));
            }
            body |= h.value.iter().any(|&b| b != b'0');
            // All digits, so only an overflow fails: refused, not guessed.
            length = Some(
                std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("Content-Length too large"))?,
            );
        } else if name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            codings += 1;
            if !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(bad(
                    "Transfer-Encoding other than a single `chunked` (request smuggling framing)",
                ));
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            return Err(bad(
                "protocol upgrades are not proxied: use CONNECT for HTTPS",
            ));
        }
    }
    let connect = method == "CONNECT";
    if hosts > 1 {
        return Err(bad("more than one Host header"));
    }
    if lengths > 0 && codings > 0 {
        return Err(bad(
            "Content-Length together with Transfer-Encoding (request smuggling framing)",
        ));
    }
    // `Content-Length: 0` is harmless and some clients send it.
    if connect && (body || codings > 0) {
        return Err(bad("CONNECT with a request body"));
    }
    if lengths > 1 || codings > 1 {
        return Err(bad(
            "repeated Content-Length or Transfer-Encoding (request smuggling framing)",
        ));
    }
    let chunked = codings > 0;
    Ok(Some(Head {
        len,
        body: if chunked {
            None
        } else {
            Some(length.unwrap_or(0))
        },
        last: connect || chunked || close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<bool, HeadError> {
        check(text.as_bytes(), 32).map(|h| h.is_some())
    }

    fn head(text: &str) -> Head {
        check(text.as_bytes(), 32).unwrap().unwrap()
    }

    #[test]
    fn heads_say_where_the_request_ends() {
        let get = "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n";
        assert_eq!(
            head(&format!("{get}GET http://b.test/")),
            Head {
                len: get.len(),
                body: Some(0),
                last: false
            }
        );
        let post = "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(head(post).body, Some(12));
        assert!(!head(post).last);
        let chunked =
            "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!((head(chunked).body, head(chunked).last), (None, true));
        assert!(head("GET http://a.test/ HTTP/1.0\r\n\r\n").last);
        assert!(head("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, Close\r\n\r\n").last);
        assert!(head("CONNECT a.test:443 HTTP/1.1\r\n\r\n").last);
        let huge = "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(status(huge), 400);
    }

    fn status(text: &str) -> u16 {
        match run(text) {
            Err(HeadError::Rejected(r)) => r.status,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn r_net_8_framing_checks() {
        assert!(run("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap());
        assert!(!run("GET http://a.test/ HTTP/1.1\r\nHost: a.te").unwrap());
        let cl_te = "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(cl_te), 400);
        let two_cl = "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(status(two_cl), 400);
        let te_gzip = "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(status(te_gzip), 400);
        let two_hosts = "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nhost: b.test\r\n\r\n";
        assert_eq!(status(two_hosts), 400);
        let cl_sign = "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: +4\r\n\r\n";
        assert_eq!(status(cl_sign), 400);
        let upgrade = "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(status(upgrade), 400);
        assert_eq!(
            status("GET http://a.test/ HTTP/1.1\r\nHost : a.test\r\n\r\n"),
            400
        );
        assert!(run("CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap());
        assert_eq!(
            status("CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            400
        );
        assert_eq!(
            status("CONNECT a.test:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
    }

    proptest::proptest! {
        #[test]
        fn junk_heads_never_panic(bytes: Vec<u8>) {
            let _ = check(&bytes, 16);
        }
    }
}
