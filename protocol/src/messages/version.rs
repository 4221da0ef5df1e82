//! The protocol version every [`Gossip`](super::Gossip) and
//! [`Direct`](super::Direct) message carries, and how it decides how
//! strictly the rest of the message is read (issue 14, R-P2P-3).
//!
//! On the wire a message is the map `{"m": <message>, "v": <version>}`:
//! `m` the externally tagged kind (`{"Bid": <signed envelope>}`), `v` the
//! sender's [`PROTOCOL_VERSION`]. The version is read first:
//! - at this build's version or older, the message must be exactly what
//!   this build writes for it ([`from_canonical`]): a field, kind or value
//!   it does not know is malformed, and counts against the sender;
//! - from a newer version, the bytes must still be canonical DAG-CBOR, but
//!   fields this build does not know are ignored
//!   ([`from_canonical_ignoring_unknown`]; signatures still cover every
//!   byte), and a message it cannot read at all is
//!   [`MessageError::Newer`]: dropped without counting against the sender.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{MessageError, PROTOCOL_VERSION};
use crate::id::{DecodeError, EncodeError, from_canonical, from_canonical_ignoring_unknown};

/// The wire form: the message and its sender's version.
#[derive(Serialize, Deserialize)]
struct Versioned<M> {
    #[serde(rename = "v")]
    version: u32,
    #[serde(rename = "m")]
    message: M,
}

/// Encodes `message` as sent at `version`, within `max` bytes.
pub(super) fn encode<M: Serialize>(
    version: u32,
    message: &M,
    what: &'static str,
    max: usize,
) -> Result<Vec<u8>, EncodeError> {
    let bytes = crate::id::to_canonical(&Versioned { version, message })?;
    if bytes.len() > max {
        return Err(EncodeError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

/// Decodes a message and the version it was sent at; input over `max`
/// bytes is refused unread.
pub(super) fn decode<M: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<(u32, M), MessageError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        }
        .into());
    }
    // A first look for the version alone; whichever way the message is then
    // read checks its encoding.
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let Version { v: version } = crate::id::decode(bytes)?;
    let versioned: Versioned<M> = if version <= PROTOCOL_VERSION {
        from_canonical(bytes, max)?
    } else {
        from_canonical_ignoring_unknown(bytes, max)
            .map_err(|e| MessageError::from(e).at_version(version))?
    };
    Ok((version, versioned.message))
}
