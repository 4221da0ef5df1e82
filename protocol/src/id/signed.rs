//! Signed envelopes: a value's canonical bytes, who signed them, and the
//! signature.
//!
//! The signature covers `skrei/v1/<kind>` + `0x00` + the payload bytes, where
//! `<kind>` is [`SignedKind::KIND`] of the payload's type. Binding the kind
//! means a signature made for one message (a bid) can never be presented as
//! another (an award) whose encoding happens to match; the `0x00` ends the
//! kind so no kind is a prefix of another's signed bytes. The payload stays as
//! the signed bytes: nobody re-encodes before verifying, and the value is
//! decoded only after its signature checks out. So a payload from a newer
//! node is checked over every byte it signed, fields this build ignores
//! included ([`Signed::verify_ignoring_unknown`]).

use std::fmt;
use std::marker::PhantomData;

use ed25519_dalek::Signature;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::canonical::{
    DecodeError, EncodeError, from_canonical, from_canonical_ignoring_unknown, to_canonical,
};
use super::node::{NodeId, NodeKey};

/// What a signature covers before the kind and payload: names the protocol
/// and its version, so signatures of other protocols (or a future version)
/// using the same key never verify here. The version is that of the
/// signature scheme, not `messages::PROTOCOL_VERSION`: messages gain fields
/// and kinds under the same scheme.
const CONTEXT: &[u8] = b"skrei/v1/";

/// A type that may be signed, with the name its signatures are bound to.
pub trait SignedKind: Serialize + DeserializeOwned {
    /// Short lower-case name of the message kind (`bid`, `announce`, ...):
    /// ASCII letters, digits and `-` only, unique among all signed types.
    const KIND: &'static str;
}

/// A value of type `T`, as the canonical bytes its signer signed.
///
/// Building or decoding one checks nothing: call [`Signed::verify`] before
/// trusting anything in it, the signer included.
pub struct Signed<T> {
    signer: NodeId,
    payload: Vec<u8>,
    signature: [u8; 64],
    kind: PhantomData<fn() -> T>,
}

/// Why a signed envelope was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The payload is longer than its message kind allows (not checked further).
    #[error("the signed {kind} is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// [`SignedKind::KIND`] of the expected payload.
        kind: &'static str,
        /// Length of the payload.
        len: usize,
        /// The limit it broke.
        max: usize,
    },
    /// The signature does not match signer, kind and payload: the message was
    /// altered, is of another kind, or was not signed by `signer`.
    #[error("bad signature on a {kind} claimed to be from {signer}")]
    BadSignature {
        /// [`SignedKind::KIND`] of the expected payload.
        kind: &'static str,
        /// The node the envelope names as signer.
        signer: NodeId,
    },
    /// The signature is good but the payload does not decode.
    #[error("the signed {kind} from {signer} does not decode: {error}")]
    Payload {
        /// [`SignedKind::KIND`] of the expected payload.
        kind: &'static str,
        /// The node that signed it.
        signer: NodeId,
        /// What is wrong with the payload.
        error: DecodeError,
    },
}

impl<T: SignedKind> Signed<T> {
    /// Encodes `value` canonically and signs it with `key` for kind `T::KIND`.
    pub fn sign(key: &NodeKey, value: &T) -> Result<Signed<T>, EncodeError> {
        let payload = to_canonical(value)?;
        let signature = key.sign_bytes(&signed_bytes(T::KIND, &payload));
        Ok(Signed::from_parts(key.node_id(), payload, signature))
    }

    /// Checks the signature (strictly: no malleable or small-order forms),
    /// then decodes the payload canonically ([`from_canonical`]: exactly the
    /// bytes `T` writes). A payload longer than `max_payload` is refused
    /// before either.
    pub fn verify(&self, max_payload: usize) -> Result<T, VerifyError> {
        self.verify_with(max_payload, from_canonical)
    }

    /// As [`Signed::verify`], for a payload written by a newer version of
    /// `T`: the signature covers every byte received, but the payload is
    /// decoded with [`from_canonical_ignoring_unknown`], so fields `T` does
    /// not know are ignored (a payload `T` cannot read at all fails with
    /// [`DecodeError::Unreadable`]).
    pub fn verify_ignoring_unknown(&self, max_payload: usize) -> Result<T, VerifyError> {
        self.verify_with(max_payload, from_canonical_ignoring_unknown)
    }

    fn verify_with(
        &self,
        max_payload: usize,
        decode: fn(&[u8], usize) -> Result<T, DecodeError>,
    ) -> Result<T, VerifyError> {
        if self.payload.len() > max_payload {
            return Err(VerifyError::TooLarge {
                kind: T::KIND,
                len: self.payload.len(),
                max: max_payload,
            });
        }
        let signature = Signature::from_bytes(&self.signature);
        self.signer
            .verifying_key()
            .verify_strict(&signed_bytes(T::KIND, &self.payload), &signature)
            .map_err(|_| VerifyError::BadSignature {
                kind: T::KIND,
                signer: self.signer,
            })?;
        decode(&self.payload, max_payload).map_err(|error| VerifyError::Payload {
            kind: T::KIND,
            signer: self.signer,
            error,
        })
    }
}

impl<T: SignedKind> Signed<T> {
    /// Signs arbitrary bytes as a payload of kind `T`, canonical or not: what
    /// a hostile peer can send with its own key. For tests and the fuzz
    /// targets (`fuzz/` at the repository root), which check what receivers
    /// do with well-signed garbage; nodes sign values with [`Signed::sign`].
    pub fn sign_payload(key: &NodeKey, payload: Vec<u8>) -> Signed<T> {
        let signature = key.sign_bytes(&signed_bytes(T::KIND, &payload));
        Signed::from_parts(key.node_id(), payload, signature)
    }
}

impl<T> Signed<T> {
    /// An envelope from its parts, unchecked (as if decoded from the wire).
    pub fn from_parts(signer: NodeId, payload: Vec<u8>, signature: [u8; 64]) -> Signed<T> {
        Signed {
            signer,
            payload,
            signature,
            kind: PhantomData,
        }
    }

    /// The node the envelope names as signer. Trust it only after
    /// [`Signed::verify`] succeeded.
    pub fn signer(&self) -> &NodeId {
        &self.signer
    }

    /// The signed canonical bytes of the payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The parts: signer, payload, signature.
    pub fn into_parts(self) -> (NodeId, Vec<u8>, [u8; 64]) {
        (self.signer, self.payload, self.signature)
    }
}

/// The bytes a signature covers: context, kind, a NUL, the payload.
fn signed_bytes(kind: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONTEXT.len() + kind.len() + 1 + payload.len());
    out.extend_from_slice(CONTEXT);
    out.extend_from_slice(kind.as_bytes());
    out.push(0);
    out.extend_from_slice(payload);
    out
}

// Hand-written so that they need nothing of `T` (derives would ask `T:
// Clone`, `T: Debug`, ... although no `T` is stored).
impl<T> Clone for Signed<T> {
    fn clone(&self) -> Self {
        Signed::from_parts(self.signer, self.payload.clone(), self.signature)
    }
}

impl<T> PartialEq for Signed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.signer == other.signer
            && self.payload == other.payload
            && self.signature == other.signature
    }
}

impl<T> Eq for Signed<T> {}

impl<T> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("signer", &self.signer)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// The envelope's wire form: a map of `signer` (node id string), `payload`
/// and `signature` (CBOR byte strings). Other fields are not refused here:
/// [`from_canonical`] refuses them, [`from_canonical_ignoring_unknown`]
/// (for envelopes from newer nodes) skips them.
#[derive(Serialize, Deserialize)]
struct Wire {
    signer: NodeId,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signature: [u8; 64],
}

impl<T> Serialize for Signed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct WireRef<'a> {
            signer: &'a NodeId,
            #[serde(with = "serde_bytes")]
            payload: &'a [u8],
            #[serde(with = "serde_bytes")]
            signature: &'a [u8; 64],
        }
        WireRef {
            signer: &self.signer,
            payload: &self.payload,
            signature: &self.signature,
        }
        .serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Signed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        Ok(Signed::from_parts(w.signer, w.payload, w.signature))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Ping {
        n: u64,
    }
    impl SignedKind for Ping {
        const KIND: &'static str = "ping";
    }

    /// Same shape as `Ping`, another kind.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Pong {
        n: u64,
    }
    impl SignedKind for Pong {
        const KIND: &'static str = "pong";
    }

    fn key() -> NodeKey {
        NodeKey::from_secret_bytes([9; 32])
    }

    #[test]
    fn sign_and_verify() {
        let s = Signed::sign(&key(), &Ping { n: 5 }).unwrap();
        assert_eq!(s.signer(), &key().node_id());
        assert_eq!(s.payload(), to_canonical(&Ping { n: 5 }).unwrap());
        assert_eq!(s.verify(100), Ok(Ping { n: 5 }));
        // ed25519 is deterministic.
        assert_eq!(Signed::sign(&key(), &Ping { n: 5 }).unwrap(), s);
    }

    #[test]
    fn signature_is_bound_to_the_kind() {
        let ping = Signed::sign(&key(), &Ping { n: 5 }).unwrap();
        let (signer, payload, signature) = ping.into_parts();
        // The same bytes decode as a Pong, but the signature was for a ping.
        let as_pong: Signed<Pong> = Signed::from_parts(signer, payload, signature);
        assert_eq!(
            as_pong.verify(100),
            Err(VerifyError::BadSignature {
                kind: "pong",
                signer
            })
        );
    }

    #[test]
    fn tampering_is_detected() {
        let s = Signed::sign(&key(), &Ping { n: 5 }).unwrap();
        let (signer, payload, signature) = s.into_parts();

        let mut p = payload.clone();
        *p.last_mut().unwrap() = 6;
        let tampered: Signed<Ping> = Signed::from_parts(signer, p, signature);
        assert!(matches!(
            tampered.verify(100),
            Err(VerifyError::BadSignature { .. })
        ));

        let mut sig = signature;
        sig[10] ^= 1;
        let tampered: Signed<Ping> = Signed::from_parts(signer, payload.clone(), sig);
        assert!(matches!(
            tampered.verify(100),
            Err(VerifyError::BadSignature { .. })
        ));

        let other = NodeKey::from_secret_bytes([10; 32]).node_id();
        let tampered: Signed<Ping> = Signed::from_parts(other, payload, signature);
        assert_eq!(
            tampered.verify(100),
            Err(VerifyError::BadSignature {
                kind: "ping",
                signer: other
            })
        );
    }

    #[test]
    fn oversized_payload_refused_first() {
        let s = Signed::sign(&key(), &Ping { n: u64::MAX }).unwrap();
        let len = s.payload().len();
        assert_eq!(
            s.verify(len - 1),
            Err(VerifyError::TooLarge {
                kind: "ping",
                len,
                max: len - 1
            })
        );
    }

    #[test]
    fn well_signed_garbage_is_a_payload_error() {
        // {"n": 5}, with 5 in a long integer form.
        let s: Signed<Ping> = Signed::sign_payload(&key(), vec![0xa1, 0x61, b'n', 0x18, 0x05]);
        assert!(matches!(
            s.verify(100),
            Err(VerifyError::Payload {
                error: DecodeError::Malformed { .. },
                ..
            })
        ));
    }

    /// Issue 14: a payload with a field this build does not know is read
    /// by the lenient verifier only, and its signature covers that field.
    #[test]
    fn unknown_fields_are_signed_and_ignored_leniently() {
        #[derive(Serialize)]
        struct NewerPing {
            n: u64,
            zone: &'static str,
        }
        let payload = to_canonical(&NewerPing { n: 5, zone: "eu" }).unwrap();
        let s: Signed<Ping> = Signed::sign_payload(&key(), payload.clone());
        assert!(matches!(
            s.verify(100),
            Err(VerifyError::Payload {
                error: DecodeError::NotCanonical { .. },
                ..
            })
        ));
        assert_eq!(s.verify_ignoring_unknown(100), Ok(Ping { n: 5 }));

        // The ignored field is signed like the rest.
        let (signer, mut payload, signature) = s.into_parts();
        *payload.last_mut().unwrap() ^= 0x01;
        let tampered: Signed<Ping> = Signed::from_parts(signer, payload, signature);
        assert!(matches!(
            tampered.verify_ignoring_unknown(100),
            Err(VerifyError::BadSignature { .. })
        ));
    }

    #[test]
    fn envelope_wire_form() {
        let s = Signed::sign(&key(), &Ping { n: 5 }).unwrap();
        let bytes = to_canonical(&s).unwrap();
        // A map of three entries; payload and signature are byte strings.
        assert_eq!(bytes[0], 0xa3);
        let back: Signed<Ping> = from_canonical(&bytes, 1000).unwrap();
        assert_eq!(back, s);
        let pos = bytes.windows(9).position(|w| w == b"signature").unwrap();
        assert_eq!(&bytes[pos + 9..pos + 11], [0x58, 64]);
    }

    proptest! {
        #[test]
        fn round_trip(n in any::<u64>(), secret in any::<[u8; 32]>()) {
            let key = NodeKey::from_secret_bytes(secret);
            let s = Signed::sign(&key, &Ping { n }).unwrap();
            let bytes = to_canonical(&s).unwrap();
            let back: Signed<Ping> = from_canonical(&bytes, 1000).unwrap();
            prop_assert_eq!(back.verify(100).unwrap(), Ping { n });
        }

        #[test]
        fn junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(s) = from_canonical::<Signed<Ping>>(&bytes, 1000) {
                let _ = s.verify(100);
            }
        }

        #[test]
        fn any_bit_flip_is_rejected(n in any::<u64>(), bit in 0usize..1000) {
            let s = Signed::sign(&key(), &Ping { n }).unwrap();
            let mut bytes = to_canonical(&s).unwrap();
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            if let Ok(s) = from_canonical::<Signed<Ping>>(&bytes, 1000) {
                prop_assert!(s.verify(100).is_err());
            }
        }
    }
}
