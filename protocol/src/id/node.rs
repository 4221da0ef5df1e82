//! Node identities: an ed25519 key pair per node.
//!
//! The same key is the node's libp2p identity, so a [`NodeId`] prints exactly
//! as libp2p prints the node's `PeerId` (`12D3KooW...`): an operator sees one
//! name for a node in skrei's output and in libp2p's logs, and the `node`
//! crate converts with `PeerId::from_bytes(&id.to_peer_id_bytes())` and
//! [`NodeId::from_peer_id_bytes`]`(&peer_id.to_bytes())`.

use std::fmt;
use std::str::FromStr;

use cid::multibase::Base;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The bytes of a libp2p `PeerId` of an ed25519 key, before the key itself:
/// an identity multihash (`00`, length `24` = 36) of the protobuf
/// `PublicKey { Type: Ed25519 (08 01), Data: 32 bytes (12 20) }`.
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// Length of [`NodeId::to_peer_id_bytes`].
pub const PEER_ID_LEN: usize = PEER_ID_PREFIX.len() + 32;

/// A node's public identity: its ed25519 public key.
///
/// Always a canonical encoding of a curve point that is not of small order,
/// so two different `NodeId`s are two different keys and no `NodeId` is a
/// key anyone could sign for. Prints and parses as the libp2p `PeerId`
/// string; serialises as that string too.
///
/// ```
/// use protocol::id::{NodeId, NodeKey};
/// let id = NodeKey::from_secret_bytes([1; 32]).node_id();
/// let text = id.to_string();
/// assert!(text.starts_with("12D3KooW"));
/// assert_eq!(text.parse::<NodeId>()?, id);
/// # Ok::<(), protocol::id::NodeIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; 32]);

/// Why bytes or text are not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeIdError {
    /// The 32 bytes are not an ed25519 public key.
    #[error("not an ed25519 public key: the bytes are no point on the curve")]
    NotAKey,
    /// The key is written in a non-standard form.
    #[error("not an ed25519 public key in its standard 32-byte form")]
    NonCanonical,
    /// The key is of small order: anyone could sign for it.
    #[error("a weak ed25519 key (of small order), which no real node has")]
    WeakKey,
    /// The text or bytes are not a libp2p peer id of an ed25519 key.
    #[error(
        "`{input}` is not a node id: expected the libp2p peer id of an ed25519 key, \
         e.g. `12D3KooW...`"
    )]
    NotAPeerId {
        /// The rejected input (bytes are shown in hex).
        input: String,
    },
}

impl NodeId {
    /// The node id of a raw 32-byte ed25519 public key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<NodeId, NodeIdError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| NodeIdError::NotAKey)?;
        // `from_bytes` accepts some non-reduced encodings of a point: insist
        // on the one the point compresses to, so one key has one `NodeId`.
        if key.to_edwards().compress().as_bytes() != bytes {
            return Err(NodeIdError::NonCanonical);
        }
        if key.is_weak() {
            return Err(NodeIdError::WeakKey);
        }
        Ok(NodeId(*bytes))
    }

    /// The raw 32-byte ed25519 public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The bytes of this node's libp2p `PeerId` (`PeerId::from_bytes` takes them).
    pub fn to_peer_id_bytes(&self) -> [u8; PEER_ID_LEN] {
        let mut out = [0; PEER_ID_LEN];
        out[..PEER_ID_PREFIX.len()].copy_from_slice(&PEER_ID_PREFIX);
        out[PEER_ID_PREFIX.len()..].copy_from_slice(&self.0);
        out
    }

    /// The node id of a libp2p `PeerId`, from its bytes (`PeerId::to_bytes`).
    /// Only peer ids of ed25519 keys are node ids.
    pub fn from_peer_id_bytes(bytes: &[u8]) -> Result<NodeId, NodeIdError> {
        let key = bytes
            .strip_prefix(&PEER_ID_PREFIX)
            .and_then(|k| <&[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| NodeIdError::NotAPeerId { input: hex(bytes) })?;
        NodeId::from_bytes(key)
    }

    pub(crate) fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_bytes(&self.0).expect("a NodeId holds a key checked on construction")
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // libp2p writes peer ids in bare base58btc, without a multibase prefix.
        f.write_str(&Base::Base58Btc.encode(self.to_peer_id_bytes()))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(s: &str) -> Result<NodeId, NodeIdError> {
        let not_a_peer_id = || NodeIdError::NotAPeerId {
            input: s.chars().take(80).collect(),
        };
        // A peer id string is 52 characters; refuse long input before decoding.
        if s.len() > 64 {
            return Err(not_a_peer_id());
        }
        let bytes = Base::Base58Btc.decode(s).map_err(|_| not_a_peer_id())?;
        match NodeId::from_peer_id_bytes(&bytes) {
            Err(NodeIdError::NotAPeerId { .. }) => Err(not_a_peer_id()),
            other => other,
        }
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A node's private key. Made from 32 secret bytes the caller supplies (read
/// from the node's key file, or drawn from the OS by the `node` crate): this
/// crate never draws randomness itself.
///
/// Its `Debug` output shows the node id, never the secret.
#[derive(Clone)]
pub struct NodeKey(SigningKey);

impl NodeKey {
    /// The key whose ed25519 secret is `secret`.
    pub fn from_secret_bytes(secret: [u8; 32]) -> NodeKey {
        NodeKey(SigningKey::from_bytes(&secret))
    }

    /// The 32 secret bytes, for storing the key. Handle with care.
    pub fn to_secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// This key's public identity.
    pub fn node_id(&self) -> NodeId {
        // A key derived from a secret is canonical and never of small order.
        NodeId(self.0.verifying_key().to_bytes())
    }

    /// Signs `value` for the message kind `T`: see [`super::Signed::sign`].
    pub fn sign<T: super::SignedKind>(
        &self,
        value: &T,
    ) -> Result<super::Signed<T>, super::EncodeError> {
        super::Signed::sign(self, value)
    }

    /// A plain ed25519 signature of `message`. Crate-private: everything
    /// signed goes through [`super::Signed`], which binds the message kind.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("node_id", &self.node_id())
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(64).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::id::{from_canonical, to_canonical};

    /// The cross-implementation vector of rust-libp2p's
    /// `keypair_protobuf_roundtrip_ed25519` test: a secret, its public key and
    /// the peer id libp2p prints for it.
    const SECRET: &str = "7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d";
    const PUBLIC: &str = "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
    const PEER_ID: &str = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let v: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }

    #[test]
    fn prints_as_the_libp2p_peer_id() {
        let key = NodeKey::from_secret_bytes(unhex(SECRET));
        let id = key.node_id();
        assert_eq!(id.as_bytes(), &unhex::<32>(PUBLIC));
        assert_eq!(id.to_string(), PEER_ID);
        assert_eq!(PEER_ID.parse::<NodeId>().unwrap(), id);
        assert_eq!(NodeId::from_peer_id_bytes(&id.to_peer_id_bytes()), Ok(id));
        assert_eq!(format!("{id:?}"), format!("NodeId({PEER_ID})"));
    }

    #[test]
    fn secret_round_trips_and_stays_out_of_debug() {
        let key = NodeKey::from_secret_bytes(unhex(SECRET));
        assert_eq!(key.to_secret_bytes(), unhex::<32>(SECRET));
        let debug = format!("{key:?}");
        assert!(debug.contains(PEER_ID), "{debug}");
        assert!(!debug.contains("7e08"), "{debug}");
    }

    #[test]
    fn rejects_bad_keys() {
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(NodeId::from_bytes(&identity), Err(NodeIdError::WeakKey));
        // y = p + 1 (a non-reduced encoding of the identity point's y).
        let mut non_reduced = [0xffu8; 32];
        non_reduced[0] = 0xee;
        non_reduced[31] = 0x7f;
        assert!(NodeId::from_bytes(&non_reduced).is_err());
        // y = 2 is no point on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(NodeId::from_bytes(&off_curve), Err(NodeIdError::NotAKey));
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "",
            "12D3KooW",
            "not a peer id",
            // A CIDv0-style sha256 peer id (an RSA key): not ed25519.
            "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
            &format!("{PEER_ID}1"),
            &"1".repeat(1000),
        ] {
            let err = bad.parse::<NodeId>().unwrap_err();
            assert!(
                matches!(err, NodeIdError::NotAPeerId { .. }),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn serialises_as_the_string() {
        let id = NodeKey::from_secret_bytes([3; 32]).node_id();
        let bytes = to_canonical(&id).unwrap();
        assert_eq!(bytes[0], 0x78); // a text string with a one-byte length
        assert_eq!(&bytes[2..], id.to_string().as_bytes());
        assert_eq!(from_canonical::<NodeId>(&bytes, 100).unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
    }

    proptest! {
        #[test]
        fn text_round_trip(secret in any::<[u8; 32]>()) {
            let id = NodeKey::from_secret_bytes(secret).node_id();
            prop_assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
            prop_assert_eq!(NodeId::from_bytes(id.as_bytes()).unwrap(), id);
        }

        #[test]
        fn junk_never_panics(bytes in any::<[u8; 32]>(), text in "\\PC{0,60}") {
            let _ = NodeId::from_bytes(&bytes);
            let _ = NodeId::from_peer_id_bytes(&bytes);
            let _ = text.parse::<NodeId>();
        }
    }
}
