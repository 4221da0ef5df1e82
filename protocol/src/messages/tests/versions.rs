//! Protocol evolution (issue 14, R-P2P-3): a message from a newer node is
//! read for what this build knows, its signature still checked over every
//! byte; what this build cannot read at all is [`MessageError::Newer`],
//! which nodes drop without penalising the sender; the same message
//! claiming this build's version is malformed.

use std::collections::BTreeMap;

use ipld_core::ipld::Ipld;
use serde::Serialize;

use super::*;

const NEWER: u32 = PROTOCOL_VERSION + 1;

/// The bytes of `message` (a [`SignedGossip`], [`SignedDirect`] or
/// anything else in their place) sent at `version`.
fn at_version<M: Serialize>(version: u32, message: &M) -> Vec<u8> {
    super::super::version::encode(version, message, "test message", usize::MAX).unwrap()
}

/// `message`'s canonical encoding as a generic value, for editing.
fn as_value<T: Serialize>(message: &T) -> BTreeMap<String, Ipld> {
    let bytes = crate::id::to_canonical(message).unwrap();
    match serde_ipld_dagcbor::from_slice(&bytes).unwrap() {
        Ipld::Map(map) => map,
        other => panic!("not a map: {other:?}"),
    }
}

/// The canonical encoding of `message` with one field more, as a newer
/// version might write it.
fn with_field<T: Serialize>(message: &T, name: &str, value: Ipld) -> Vec<u8> {
    let mut map = as_value(message);
    assert!(map.insert(name.into(), value).is_none());
    crate::id::to_canonical(&Ipld::Map(map)).unwrap()
}

/// The canonical encoding of `message` with `field` set to `value`.
fn with_value<T: Serialize>(message: &T, field: &str, value: Ipld) -> Vec<u8> {
    let mut map = as_value(message);
    assert!(
        map.insert(field.into(), value).is_some(),
        "no field {field}"
    );
    crate::id::to_canonical(&Ipld::Map(map)).unwrap()
}

fn is_newer(result: &Result<impl std::fmt::Debug, MessageError>) -> bool {
    matches!(result, Err(MessageError::Newer { version: NEWER, .. }))
}

fn gossip_at<T: Message>(version: u32, key: &NodeKey, payload: Vec<u8>) -> Gossip
where
    SignedGossip: From<Signed<T>>,
{
    let signed = SignedGossip::from(Signed::<T>::sign_payload(key, payload));
    Gossip::decode(&at_version(version, &signed)).unwrap()
}

fn direct_at<T: Message>(version: u32, key: &NodeKey, payload: Vec<u8>) -> Direct
where
    SignedDirect: From<Signed<T>>,
{
    let signed = SignedDirect::from(Signed::<T>::sign_payload(key, payload));
    Direct::decode(&at_version(version, &signed)).unwrap()
}

#[test]
fn messages_carry_this_builds_version() {
    let gossip = Gossip::from(node_info().sign(&compute_key()).unwrap());
    assert_eq!(gossip.version(), PROTOCOL_VERSION);
    let bytes = gossip.encode().unwrap();
    assert_eq!(Gossip::decode(&bytes).unwrap().version(), PROTOCOL_VERSION);
    // {"m": ..., "v": PROTOCOL_VERSION}: the version closes the message
    // (a CBOR integer below 24 is its own head byte).
    const { assert!(PROTOCOL_VERSION < 24) };
    assert_eq!(&bytes[..3], [0xa2, 0x61, b'm']);
    assert_eq!(
        &bytes[bytes.len() - 3..],
        [0x61, b'v', PROTOCOL_VERSION as u8]
    );

    // The version is the sender's claim, outside the signature (the
    // transport authenticates the sender): another version carries the
    // same signed message, and only changes how strictly it is read.
    let mut claimed = bytes.clone();
    *claimed.last_mut().unwrap() = 0x02;
    let claimed = Gossip::decode(&claimed).unwrap();
    assert_eq!(claimed.version(), 2);
    assert_eq!(claimed.signed(), gossip.signed());
    assert_eq!(claimed.verify(), gossip.verify());
}

// R-P2P-3 / issue 14: a newer node's node info with a field this build does
// not know verifies, the field ignored and its signature still checked.
#[test]
fn newer_node_info_with_an_unknown_field_verifies() {
    let payload = with_field(&node_info(), "gpus", Ipld::Integer(2));
    let gossip = gossip_at::<NodeInfo>(NEWER, &compute_key(), payload.clone());
    assert_eq!(gossip.version(), NEWER);
    assert_eq!(gossip.verify(), Ok(GossipMessage::NodeInfo(node_info())));

    // The ignored field is signed like the others.
    let SignedGossip::NodeInfo(signed) = gossip.into_signed() else {
        unreachable!()
    };
    let (signer, mut tampered, signature) = signed.into_parts();
    let at = tampered.windows(4).position(|w| w == b"gpus").unwrap() + 4;
    tampered[at] ^= 0x01; // 2 -> 3
    let forged = Gossip::from(Signed::<NodeInfo>::from_parts(signer, tampered, signature));
    let forged = Gossip::decode(&at_version(NEWER, forged.signed())).unwrap();
    assert!(matches!(
        forged.verify(),
        Err(MessageError::Verify(VerifyError::BadSignature { .. }))
    ));

    // The same from a node claiming this build's version: malformed.
    let gossip = gossip_at::<NodeInfo>(PROTOCOL_VERSION, &compute_key(), payload);
    assert!(matches!(
        gossip.verify(),
        Err(MessageError::Verify(VerifyError::Payload {
            error: DecodeError::NotCanonical { .. },
            ..
        }))
    ));
}

// R-P2P-3 / issue 14: the same for a direct message.
#[test]
fn newer_bid_with_an_unknown_field_verifies() {
    let payload = with_field(&bid(), "price", Ipld::String("free".into()));
    let direct = direct_at::<Bid>(NEWER, &compute_key(), payload.clone());
    assert_eq!(direct.verify(), Ok(DirectMessage::Bid(bid())));

    let SignedDirect::Bid(signed) = direct.into_signed() else {
        unreachable!()
    };
    let (signer, mut tampered, signature) = signed.into_parts();
    let at = tampered.windows(4).position(|w| w == b"free").unwrap();
    tampered[at] = b'F';
    let forged = SignedDirect::Bid(Signed::from_parts(signer, tampered, signature));
    let forged = Direct::decode(&at_version(NEWER, &forged)).unwrap();
    assert!(matches!(
        forged.verify(),
        Err(MessageError::Verify(VerifyError::BadSignature { .. }))
    ));

    let direct = direct_at::<Bid>(PROTOCOL_VERSION, &compute_key(), payload);
    assert!(matches!(
        direct.verify(),
        Err(MessageError::Verify(VerifyError::Payload { .. }))
    ));
}

// Issue 14: fields may be added around the payload too (the message, the
// envelope), by a newer version only.
#[test]
fn newer_envelopes_with_unknown_fields_decode() {
    let signed = bid().sign(&compute_key()).unwrap();
    #[derive(Serialize)]
    struct NewerEnvelope<'a> {
        signer: &'a NodeId,
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
        #[serde(with = "serde_bytes")]
        signature: [u8; 64],
        alg: &'static str,
    }
    #[derive(Serialize)]
    struct NewerMessage<M> {
        v: u32,
        m: M,
        trace: u64,
    }
    let (signer, payload, signature) = signed.clone().into_parts();
    let envelope = NewerEnvelope {
        signer: &signer,
        payload: &payload,
        signature,
        alg: "ed25519",
    };
    let message = NewerMessage {
        v: NEWER,
        m: BTreeMap::from([("Bid", envelope)]),
        trace: 7,
    };
    let bytes = crate::id::to_canonical(&message).unwrap();
    let direct = Direct::decode(&bytes).unwrap();
    assert_eq!(direct.signed(), &SignedDirect::Bid(signed));
    assert_eq!(direct.verify(), Ok(DirectMessage::Bid(bid())));

    let message = NewerMessage {
        v: PROTOCOL_VERSION,
        ..message
    };
    let bytes = crate::id::to_canonical(&message).unwrap();
    assert!(matches!(
        Direct::decode(&bytes),
        Err(MessageError::Decode(DecodeError::NotCanonical { .. }))
    ));
}

// R-P2P-3 / issue 14: a kind this build does not know is `Newer` from a
// newer node, malformed from one of its own version.
#[test]
fn unknown_kinds_are_newer_only_from_newer_nodes() {
    let envelope = Signed::<Bid>::sign_payload(&compute_key(), vec![0xa0]);
    let offer = BTreeMap::from([("Offer", envelope)]);

    let newer = Direct::decode(&at_version(NEWER, &offer));
    assert!(is_newer(&newer), "{newer:?}");
    let newer = Gossip::decode(&at_version(NEWER, &offer));
    assert!(is_newer(&newer), "{newer:?}");
    let err = newer.unwrap_err();
    let said = format!("protocol version {NEWER}");
    assert!(err.to_string().contains(&said), "{err}");

    for version in [0, PROTOCOL_VERSION] {
        let same = Direct::decode(&at_version(version, &offer));
        assert!(
            matches!(
                same,
                Err(MessageError::Decode(DecodeError::Malformed { .. }))
            ),
            "{same:?}"
        );
        let same = Gossip::decode(&at_version(version, &offer));
        assert!(
            matches!(
                same,
                Err(MessageError::Decode(DecodeError::Malformed { .. }))
            ),
            "{same:?}"
        );
    }
}

// Issue 14: values this build does not know make the payload unreadable:
// `Newer` from a newer node, malformed from one of its own version.
#[test]
fn unknown_values_are_newer_only_from_newer_nodes() {
    // A network mode this build does not know.
    let payload = with_value(&node_info(), "accept_network", Ipld::String("Mesh".into()));
    let newer = gossip_at::<NodeInfo>(NEWER, &compute_key(), payload.clone()).verify();
    assert!(is_newer(&newer), "{newer:?}");
    let same = gossip_at::<NodeInfo>(PROTOCOL_VERSION, &compute_key(), payload).verify();
    assert!(
        matches!(same, Err(MessageError::Verify(VerifyError::Payload { .. }))),
        "{same:?}"
    );

    // A job field this build does not know (job specs refuse unknown
    // fields, so that job files get precise errors).
    let mut spec = as_value(&announce().spec);
    spec.insert("Priority".into(), Ipld::Integer(3));
    let payload = with_value(&announce(), "spec", Ipld::Map(spec));
    let newer = gossip_at::<Announce>(NEWER, &requester_key(), payload.clone()).verify();
    assert!(is_newer(&newer), "{newer:?}");
    let same = gossip_at::<Announce>(PROTOCOL_VERSION, &requester_key(), payload).verify();
    assert!(
        matches!(same, Err(MessageError::Verify(VerifyError::Payload { .. }))),
        "{same:?}"
    );

    // An outcome this build does not know.
    let payload = with_value(
        &result_completed(),
        "outcome",
        Ipld::Map(BTreeMap::from([(
            "Partial".to_owned(),
            Ipld::Map(BTreeMap::new()),
        )])),
    );
    let newer = direct_at::<ResultMsg>(NEWER, &compute_key(), payload).verify();
    assert!(is_newer(&newer), "{newer:?}");
}

// Issue 14: a newer node's announcement with a field this build does not
// know keeps its job id (which covers the spec, not the announcement).
#[test]
fn newer_announcements_with_unknown_fields_verify() {
    let payload = with_field(&announce(), "region", Ipld::String("eu".into()));
    let newer = gossip_at::<Announce>(NEWER, &requester_key(), payload).verify();
    assert_eq!(newer, Ok(GossipMessage::Announce(announce())));
}

// R-P2P-3 / issue 14: failure causes and refusal reasons this build does not
// know do not lose the message: they read as `other` / `unknown`.
#[test]
fn unknown_causes_and_reasons_keep_their_message() {
    let failed = result_failed();
    let Outcome::Failed { failure } = &failed.outcome else {
        unreachable!()
    };
    let mut outcome = as_value(&failed.outcome);
    let Some(Ipld::Map(inner)) = outcome.get_mut("Failed") else {
        panic!("{outcome:?}")
    };
    inner.insert(
        "failure".into(),
        Ipld::Map(BTreeMap::from([
            ("cause".to_owned(), Ipld::String("quota_exceeded".into())),
            ("detail".to_owned(), Ipld::String(failure.detail.clone())),
        ])),
    );
    let payload = with_value(&failed, "outcome", Ipld::Map(outcome));
    let newer = direct_at::<ResultMsg>(NEWER, &compute_key(), payload.clone()).verify();
    let expected = ResultMsg {
        outcome: Outcome::Failed {
            failure: Failure::new(FailureCause::Other, failure.detail.clone()),
        },
        ..failed.clone()
    };
    assert_eq!(newer, Ok(DirectMessage::Result(expected)));
    // From a node of this version, a cause it should know: refused.
    let same = direct_at::<ResultMsg>(PROTOCOL_VERSION, &compute_key(), payload).verify();
    assert!(
        matches!(same, Err(MessageError::Verify(VerifyError::Payload { .. }))),
        "{same:?}"
    );

    let reason = Ipld::Map(BTreeMap::from([
        ("kind".to_owned(), Ipld::String("no_gpu".into())),
        ("needed".to_owned(), Ipld::Integer(2)),
    ]));
    let payload = with_value(&refuse(), "reason", reason);
    let newer = direct_at::<Refuse>(NEWER, &compute_key(), payload.clone()).verify();
    let expected = Refuse {
        reason: RefuseReason::Unknown,
        ..refuse()
    };
    assert_eq!(newer, Ok(DirectMessage::Refuse(expected)));
    let same = direct_at::<Refuse>(PROTOCOL_VERSION, &compute_key(), payload).verify();
    assert!(same.is_err(), "{same:?}");
}

// Issue 14: a newer version may relax a rule; its messages breaking ours are
// dropped, not held against the sender.
#[test]
fn rules_broken_by_newer_nodes_are_newer() {
    let mut info = node_info();
    info.engines = vec!["e".into(); MAX_ENGINES + 1];
    let payload = crate::id::to_canonical(&info).unwrap();
    let newer = gossip_at::<NodeInfo>(NEWER, &compute_key(), payload.clone()).verify();
    let Err(MessageError::Newer { error, .. }) = &newer else {
        panic!("{newer:?}")
    };
    assert!(matches!(**error, MessageError::TooMany { .. }), "{error:?}");
    let same = gossip_at::<NodeInfo>(PROTOCOL_VERSION, &compute_key(), payload).verify();
    assert!(
        matches!(same, Err(MessageError::TooMany { .. })),
        "{same:?}"
    );
}

// R-P2P-3 / issue 14: what means the same in every version counts against
// the sender whatever version it claims: bad signatures, non-canonical
// bytes, a message signed in another's name, oversized payloads.
#[test]
fn integrity_failures_are_never_newer() {
    // A payload that is not canonical CBOR: `running_jobs` 3 in a longer
    // form than needed.
    let mut long_head = crate::id::to_canonical(&bid()).unwrap();
    assert_eq!(long_head.pop(), Some(0x03));
    long_head.extend([0x18, 0x03]);
    let newer = direct_at::<Bid>(NEWER, &compute_key(), long_head).verify();
    assert!(
        matches!(
            newer,
            Err(MessageError::Verify(VerifyError::Payload { .. }))
        ),
        "{newer:?}"
    );

    // Keys out of order.
    let mut map = as_value(&bid());
    let running = map.remove("running_jobs").unwrap();
    let mut unsorted = vec![0xa3];
    unsorted.extend(crate::id::to_canonical("running_jobs").unwrap());
    unsorted.extend(crate::id::to_canonical(&running).unwrap());
    for (k, v) in &map {
        unsorted.extend(crate::id::to_canonical(k).unwrap());
        unsorted.extend(crate::id::to_canonical(v).unwrap());
    }
    let newer = direct_at::<Bid>(NEWER, &compute_key(), unsorted).verify();
    assert!(
        matches!(
            newer,
            Err(MessageError::Verify(VerifyError::Payload { .. }))
        ),
        "{newer:?}"
    );

    // Trailing bytes after the message.
    let mut trailing = at_version(
        NEWER,
        &SignedDirect::from(bid().sign(&compute_key()).unwrap()),
    );
    trailing.push(0x00);
    assert_eq!(
        Direct::decode(&trailing),
        Err(MessageError::Decode(DecodeError::TrailingBytes))
    );

    // A bad signature.
    let (signer, payload, mut signature) = bid().sign(&compute_key()).unwrap().into_parts();
    signature[0] ^= 1;
    let forged = SignedDirect::Bid(Signed::from_parts(signer, payload, signature));
    let newer = Direct::decode(&at_version(NEWER, &forged))
        .unwrap()
        .verify();
    assert!(
        matches!(
            newer,
            Err(MessageError::Verify(VerifyError::BadSignature { .. }))
        ),
        "{newer:?}"
    );

    // A bid in another node's name.
    let payload = crate::id::to_canonical(&bid()).unwrap();
    let newer = direct_at::<Bid>(NEWER, &requester_key(), payload).verify();
    assert!(
        matches!(newer, Err(MessageError::SignerMismatch { .. })),
        "{newer:?}"
    );

    // Not a message at all, or no version.
    assert!(matches!(
        Direct::decode(b"\x00\xffnot cbor"),
        Err(MessageError::Decode(_))
    ));
    let unversioned =
        crate::id::to_canonical(&SignedDirect::from(bid().sign(&compute_key()).unwrap())).unwrap();
    assert!(matches!(
        Direct::decode(&unversioned),
        Err(MessageError::Decode(DecodeError::Malformed { .. }))
    ));
}
