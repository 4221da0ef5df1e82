//! Canonical DAG-CBOR: one byte string per value.
//!
//! Job ids are hashes of encodings and signatures cover encodings, so a value
//! must have exactly one encoding, and a decoder must refuse every other byte
//! string that would decode to the same value. Otherwise two byte strings
//! (two "different" messages, two job ids) could carry one job, and a relay
//! could re-encode a signed payload without breaking its signature.
//!
//! `serde_ipld_dagcbor` writes the canonical form (map keys sorted by length
//! then bytes, shortest integer heads, definite lengths) and refuses some
//! other forms on decode (unsorted keys, indefinite lengths), but not all of
//! them: for example an integer written with a longer head than needed, or a
//! value our types normalise while decoding (a domain in upper case, a CPU
//! quantity spelt `0.5` instead of `500m`). [`from_canonical`] therefore
//! re-encodes what it decoded and insists on getting the input back byte for
//! byte.
//!
//! A message from a node of a newer protocol version may carry fields and
//! values this build does not know. [`from_canonical_ignoring_unknown`] reads
//! those: it checks that the input is the canonical encoding of the generic
//! DAG-CBOR value it holds (so every field survives the check, and the
//! encoding is still unique), then decodes what the type knows and ignores
//! the rest. It cannot see what the type would normalise, so it is only for
//! input whose writer may know more than we do.
//!
//! Floats would need more rules (DAG-CBOR writes every float as 64 bits, and
//! NaN payloads and `-0.0` are traps); none of our wire types has a float, and
//! new ones should not add any.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value cannot be written as DAG-CBOR (a map with non-string keys,
    /// or a failing `Serialize` implementation).
    #[error("cannot encode the value as canonical CBOR: {reason}")]
    Cbor {
        /// What the encoder reported.
        reason: String,
    },
    /// The encoding is larger than the message that carries it may be.
    #[error(
        "the {what} encodes to {len} bytes, more than the {max} bytes allowed; \
         move large data out of it (for inline inputs: add them with `skrei add` \
         and refer to them by CID)"
    )]
    TooLarge {
        /// What was being encoded, in the user's words (`announcement`, ...).
        what: &'static str,
        /// Size of the encoding.
        len: usize,
        /// The limit it broke.
        max: usize,
    },
}

/// Why bytes could not be decoded into a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the caller allows; it was not decoded at all.
    #[error("{len} bytes received, more than the {max} allowed")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit it broke.
        max: usize,
    },
    /// The input is not DAG-CBOR of the expected shape.
    #[error("malformed CBOR: {reason}")]
    Malformed {
        /// What the decoder reported.
        reason: String,
    },
    /// The input is canonical DAG-CBOR, but not a value of the expected type
    /// (a missing field, an unknown variant or value): only from
    /// [`from_canonical_ignoring_unknown`], whose writer may know a newer
    /// version of the type.
    #[error("not a value this node can read: {reason}")]
    Unreadable {
        /// What the decoder reported.
        reason: String,
    },
    /// A complete value was followed by more bytes.
    #[error("unexpected bytes after the end of the value")]
    TrailingBytes,
    /// The input decodes, but is not the canonical encoding of what it
    /// decodes to (unsorted keys, long integer forms, unnormalised values).
    #[error(
        "not in canonical form: the value re-encodes to {canonical_len} bytes that differ \
         from the {len} received"
    )]
    NotCanonical {
        /// Length of the input.
        len: usize,
        /// Length of the value's canonical encoding.
        canonical_len: usize,
    },
}

/// Encodes a value as canonical DAG-CBOR: the same value always gives the
/// same bytes.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| EncodeError::Cbor {
        reason: e.to_string(),
    })
}

/// Decodes canonical DAG-CBOR, accepting only the one byte string
/// [`to_canonical`] writes for the value.
///
/// Input longer than `max_len` is refused before any decoding, so a peer
/// cannot make us parse (or allocate for) more than the message kind allows.
pub fn from_canonical<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    check_len(bytes, max_len)?;
    let value: T = decode(bytes)?;
    same_as_encoding_of(&value, bytes)?;
    Ok(value)
}

/// Decodes canonical DAG-CBOR into `T`, ignoring the fields `T` does not
/// have: for messages written by a newer version of the protocol.
///
/// The input must be the one canonical encoding of the generic DAG-CBOR
/// value it holds (sorted keys, shortest heads, definite lengths: what every
/// version writes), unknown fields included; a value that is canonical but
/// not readable as `T` (an unknown variant, a missing field) is
/// [`DecodeError::Unreadable`]. Unlike [`from_canonical`] it does not insist
/// that `T` writes the input back, which it cannot with fields it does not
/// know, so values `T` normalises while decoding go unnoticed. Input longer
/// than `max_len` is refused before any decoding.
pub fn from_canonical_ignoring_unknown<T: DeserializeOwned>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    check_len(bytes, max_len)?;
    let value: ipld_core::ipld::Ipld = decode(bytes)?;
    same_as_encoding_of(&value, bytes)?;
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| DecodeError::Unreadable {
        reason: e.to_string(),
    })
}

/// Decodes DAG-CBOR without checking it is canonical: for a first look at
/// input that is then decoded with one of the functions above.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| match e {
        serde_ipld_dagcbor::DecodeError::TrailingData => DecodeError::TrailingBytes,
        other => DecodeError::Malformed {
            reason: other.to_string(),
        },
    })
}

fn check_len(bytes: &[u8], max_len: usize) -> Result<(), DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    Ok(())
}

/// Whether `bytes` is what [`to_canonical`] writes for `value`.
fn same_as_encoding_of<T: Serialize>(value: &T, bytes: &[u8]) -> Result<(), DecodeError> {
    let canonical = to_canonical(value).map_err(|e| DecodeError::Malformed {
        reason: e.to_string(),
    })?;
    if canonical != bytes {
        return Err(DecodeError::NotCanonical {
            len: bytes.len(),
            canonical_len: canonical.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pair {
        a: u64,
        bb: String,
    }

    const LIMIT: usize = 1024;

    #[test]
    fn same_value_same_bytes_keys_sorted() {
        let v = Pair {
            a: 1,
            bb: "x".into(),
        };
        let bytes = to_canonical(&v).unwrap();
        // {"a": 1, "bb": "x"}: shorter key first.
        assert_eq!(
            bytes,
            [0xa2, 0x61, b'a', 0x01, 0x62, b'b', b'b', 0x61, b'x']
        );
        assert_eq!(to_canonical(&v).unwrap(), bytes);
        assert_eq!(from_canonical::<Pair>(&bytes, LIMIT).unwrap(), v);

        // A map built in another order encodes the same.
        let mut m = BTreeMap::new();
        m.insert("bb".to_string(), 2u8);
        m.insert("a".to_string(), 1u8);
        assert_eq!(to_canonical(&m).unwrap()[..3], [0xa2, 0x61, b'a']);
    }

    #[test]
    fn unsorted_keys_rejected() {
        // {"bb": "x", "a": 1}
        let bytes = [0xa2, 0x62, b'b', b'b', 0x61, b'x', 0x61, b'a', 0x01];
        let err = from_canonical::<Pair>(&bytes, LIMIT).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Malformed { .. } | DecodeError::NotCanonical { .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn indefinite_lengths_rejected() {
        // Indefinite-length map {_ "a": 1, "bb": "x"}.
        let map = [0xbf, 0x61, b'a', 0x01, 0x62, b'b', b'b', 0x61, b'x', 0xff];
        assert!(from_canonical::<Pair>(&map, LIMIT).is_err());
        // Indefinite-length string (_ "x") in place of "x".
        let text = [
            0xa2, 0x61, b'a', 0x01, 0x62, b'b', b'b', 0x7f, 0x61, b'x', 0xff,
        ];
        assert!(from_canonical::<Pair>(&text, LIMIT).is_err());
        // Indefinite-length array.
        assert!(from_canonical::<Vec<u8>>(&[0x9f, 0x01, 0xff], LIMIT).is_err());
    }

    #[test]
    fn long_integer_heads_rejected() {
        // {"a": 1, "bb": "x"} with 1 written as a one-byte-argument integer.
        let bytes = [0xa2, 0x61, b'a', 0x18, 0x01, 0x62, b'b', b'b', 0x61, b'x'];
        assert!(matches!(
            from_canonical::<Pair>(&bytes, LIMIT),
            Err(DecodeError::NotCanonical { .. } | DecodeError::Malformed { .. })
        ));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct WithDefault {
        a: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        c: Vec<u64>,
    }

    #[test]
    fn values_that_decode_but_are_not_canonical_rejected() {
        // {"a": 1, "c": []}: decodes, but the canonical form omits empty `c`.
        // The DAG-CBOR decoder alone accepts it; the re-encoding check does not.
        let bytes = [0xa2, 0x61, b'a', 0x01, 0x61, b'c', 0x80];
        assert!(serde_ipld_dagcbor::from_slice::<WithDefault>(&bytes).is_ok());
        assert_eq!(
            from_canonical::<WithDefault>(&bytes, LIMIT),
            Err(DecodeError::NotCanonical {
                len: 7,
                canonical_len: 4
            })
        );
        // A domain in upper case decodes (normalised) but is not canonical.
        let upper = to_canonical("EXAMPLE.COM").unwrap();
        assert!(serde_ipld_dagcbor::from_slice::<crate::domain::Domain>(&upper).is_ok());
        assert!(matches!(
            from_canonical::<crate::domain::Domain>(&upper, LIMIT),
            Err(DecodeError::NotCanonical { .. })
        ));
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut bytes = to_canonical(&Pair {
            a: 1,
            bb: "x".into(),
        })
        .unwrap();
        bytes.extend([0x01, 0x02]);
        assert_eq!(
            from_canonical::<Pair>(&bytes, LIMIT),
            Err(DecodeError::TrailingBytes)
        );
    }

    #[test]
    fn oversized_rejected_before_decoding() {
        // Not CBOR at all: the size check must fire first.
        let junk = vec![0xff; LIMIT + 1];
        assert_eq!(
            from_canonical::<Pair>(&junk, LIMIT),
            Err(DecodeError::TooLarge {
                len: LIMIT + 1,
                max: LIMIT
            })
        );
    }

    /// `Pair` as a newer version might write it, with a field more.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct NewerPair {
        a: u64,
        bb: String,
        ccc: Vec<u64>,
    }

    // Issue 14: input from a newer version keeps every field through the
    // canonical check; what the type knows is read, the rest ignored.
    #[test]
    fn ignoring_unknown_reads_newer_values() {
        let newer = to_canonical(&NewerPair {
            a: 1,
            bb: "x".into(),
            ccc: vec![2, 3],
        })
        .unwrap();
        assert!(matches!(
            from_canonical::<Pair>(&newer, LIMIT),
            Err(DecodeError::NotCanonical { .. })
        ));
        assert_eq!(
            from_canonical_ignoring_unknown::<Pair>(&newer, LIMIT),
            Ok(Pair {
                a: 1,
                bb: "x".into()
            })
        );
        // What the exact reader accepts, this one does too.
        let same = to_canonical(&Pair {
            a: 1,
            bb: "x".into(),
        })
        .unwrap();
        assert!(from_canonical_ignoring_unknown::<Pair>(&same, LIMIT).is_ok());
    }

    #[test]
    fn ignoring_unknown_still_requires_canonical_bytes() {
        // {"a": 1, "bb": "x", "ccc": [18]} with 18 in a longer form than
        // needed: the unknown field is checked like the others.
        let mut long_head = to_canonical(&NewerPair {
            a: 1,
            bb: "x".into(),
            ccc: vec![18],
        })
        .unwrap();
        assert_eq!(long_head.pop(), Some(0x12));
        long_head.extend([0x18, 0x12]);
        assert!(matches!(
            from_canonical_ignoring_unknown::<Pair>(&long_head, LIMIT),
            Err(DecodeError::NotCanonical { .. } | DecodeError::Malformed { .. })
        ));
        // Unsorted keys, indefinite lengths, trailing bytes, oversize.
        let unsorted = [0xa2, 0x62, b'b', b'b', 0x61, b'x', 0x61, b'a', 0x01];
        assert!(from_canonical_ignoring_unknown::<Pair>(&unsorted, LIMIT).is_err());
        let indefinite = [0xbf, 0x61, b'a', 0x01, 0x62, b'b', b'b', 0x61, b'x', 0xff];
        assert!(from_canonical_ignoring_unknown::<Pair>(&indefinite, LIMIT).is_err());
        let mut trailing = to_canonical(&Pair {
            a: 1,
            bb: "x".into(),
        })
        .unwrap();
        trailing.push(0x00);
        assert_eq!(
            from_canonical_ignoring_unknown::<Pair>(&trailing, LIMIT),
            Err(DecodeError::TrailingBytes)
        );
        assert!(matches!(
            from_canonical_ignoring_unknown::<Pair>(&[0xff; LIMIT + 1], LIMIT),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn ignoring_unknown_tells_unreadable_from_malformed() {
        // Canonical CBOR, but no `bb`: a value of another shape.
        let other_shape = to_canonical(&BTreeMap::from([("a", 1u8)])).unwrap();
        assert!(matches!(
            from_canonical_ignoring_unknown::<Pair>(&other_shape, LIMIT),
            Err(DecodeError::Unreadable { .. })
        ));
        // Not CBOR at all.
        assert!(matches!(
            from_canonical_ignoring_unknown::<Pair>(&[0xa2, 0x61], LIMIT),
            Err(DecodeError::Malformed { .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(a in any::<u64>(), bb in ".{0,40}") {
            let v = Pair { a, bb };
            let bytes = to_canonical(&v).unwrap();
            prop_assert_eq!(from_canonical::<Pair>(&bytes, LIMIT).unwrap(), v);
        }

        #[test]
        fn junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = from_canonical::<Pair>(&bytes, LIMIT);
            let _ = from_canonical::<BTreeMap<String, Vec<u64>>>(&bytes, LIMIT);
            let _ = from_canonical_ignoring_unknown::<Pair>(&bytes, LIMIT);
        }

        /// Whatever the lenient reader accepts is canonical as a value: it
        /// re-encodes, as a generic value, to the input.
        #[test]
        fn ignoring_unknown_accepts_only_canonical_values(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            if from_canonical_ignoring_unknown::<ipld_core::ipld::Ipld>(&bytes, LIMIT).is_ok() {
                let value: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(&bytes).unwrap();
                prop_assert_eq!(to_canonical(&value).unwrap(), bytes);
            }
        }
    }
}
