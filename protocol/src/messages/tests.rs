//! Message tests: golden encodings, the receiver's checks, and (in
//! [`props`]) round-trip and junk-decoding properties for every message, and
//! (in [`versions`]) how messages from newer nodes are read.

mod props;
mod versions;

use super::*;
use crate::domain::Domain;
use crate::failure::{Failure, FailureCause};
use crate::id::{ExecutionId, RAW, blake3_cid};
use crate::job::{JobSpec, NetworkMode};
use crate::policy::RefuseReason;

// ---------------------------------------------------------------- fixtures

fn requester_key() -> NodeKey {
    NodeKey::from_secret_bytes([1; 32])
}

fn compute_key() -> NodeKey {
    NodeKey::from_secret_bytes([2; 32])
}

fn spec() -> JobSpec {
    crate::job::test_support::echo_job("ubuntu:24.04")
}

fn announce() -> Announce {
    Announce::new(
        spec(),
        requester_key().node_id(),
        1_700_000_000_000,
        vec!["provider-1".into()],
    )
    .unwrap()
}

fn job_id() -> JobId {
    announce().job_id
}

fn bid() -> Bid {
    Bid {
        job_id: job_id(),
        bidder: compute_key().node_id(),
        running_jobs: 3,
        held_bytes: 0,
        fetch_ms: None,
    }
}

fn refuse() -> Refuse {
    Refuse {
        job_id: job_id(),
        node: compute_key().node_id(),
        reason: RefuseReason::NetworkNotAccepted {
            requested: NetworkMode::Full,
            accepted: NetworkMode::None,
        },
    }
}

fn refuse_domains() -> Refuse {
    Refuse {
        reason: RefuseReason::DomainsNotAllowed {
            domains: vec![Domain::parse("example.com").unwrap()],
        },
        ..refuse()
    }
}

fn award() -> Award {
    Award {
        job_id: job_id(),
        execution_id: ExecutionId(7),
        node: compute_key().node_id(),
        partition: 2,
    }
}

fn decline() -> Decline {
    Decline {
        job_id: job_id(),
        execution_id: ExecutionId(7),
        node: compute_key().node_id(),
        reason: "no capacity left".into(),
    }
}

fn progress(step: Step) -> Progress {
    Progress {
        job_id: job_id(),
        execution_id: ExecutionId(7),
        node: compute_key().node_id(),
        step,
    }
}

fn result_completed() -> ResultMsg {
    ResultMsg {
        job_id: job_id(),
        execution_id: ExecutionId(7),
        node: compute_key().node_id(),
        outcome: Outcome::Completed {
            result_cid: blake3_cid(RAW, b"results"),
            exit_code: 0,
        },
        providers: vec![],
    }
}

fn result_failed() -> ResultMsg {
    ResultMsg {
        outcome: Outcome::Failed {
            failure: Failure::new(FailureCause::EngineUnavailable, "image not found"),
        },
        ..result_completed()
    }
}

fn cancel() -> Cancel {
    Cancel {
        job_id: job_id(),
        reason: "cancelled by the user".into(),
    }
}

fn node_info() -> NodeInfo {
    NodeInfo {
        node: compute_key().node_id(),
        engines: vec!["docker".into(), "wasm".into()],
        capacity: 4,
        running: 1,
        accept_network: NetworkMode::Http,
        allowlist_digest: Some([0xab; 32]),
        api_addrs: vec!["127.0.0.1:1234".into()],
        p2p_addrs: vec!["/ip4/192.0.2.1/tcp/4001".into()],
        data_addrs: vec![],
        relay_urls: vec!["https://relay.example.org/".into()],
        resources: Default::default(),
        seq: 42,
    }
}

// ------------------------------------------------------------------ golden

/// Compares `actual` with the pinned `src/messages/golden/<name>.hex`. With
/// `SKREI_BLESS=1` in the environment it rewrites the file instead (after a
/// deliberate change of the encoding; review the diff).
fn golden(name: &str, payload: &[u8], envelope: &[u8]) {
    let path = format!(
        "{}/src/messages/golden/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let actual = format!("payload {}\nenvelope {}\n", hex(payload), hex(envelope));
    if std::env::var_os("SKREI_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "the encoding of `{name}` changed: every node must agree on it.\n\
         pinned ({path}):\n{expected}\nactual:\n{actual}\n\
         If the change is deliberate, rerun with SKREI_BLESS=1 and commit the file."
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn golden_gossip<T: Message>(name: &str, message: &T, key: &NodeKey)
where
    Gossip: From<Signed<T>>,
{
    let signed = message.sign(key).unwrap();
    let payload = signed.payload().to_vec();
    assert_eq!(payload, crate::id::to_canonical(message).unwrap());
    let bytes = Gossip::from(signed).encode().unwrap();
    assert!(bytes.len() - payload.len() <= ENVELOPE_OVERHEAD);
    golden(name, &payload, &bytes);
}

fn golden_direct<T: Message>(name: &str, message: &T, key: &NodeKey)
where
    Direct: From<Signed<T>>,
{
    let signed = message.sign(key).unwrap();
    let payload = signed.payload().to_vec();
    assert_eq!(payload, crate::id::to_canonical(message).unwrap());
    let bytes = Direct::from(signed).encode().unwrap();
    assert!(bytes.len() - payload.len() <= ENVELOPE_OVERHEAD);
    golden(name, &payload, &bytes);
}

#[test]
fn golden_announce() {
    golden_gossip("announce", &announce(), &requester_key());
    // A draw adds one field; without one the encoding is as before draws.
    let drawn = Announce {
        draw_ppm: Some(2_500),
        ..announce()
    };
    golden_gossip("announce_drawn", &drawn, &requester_key());
}

#[test]
fn golden_node_info() {
    golden_gossip("node_info", &node_info(), &compute_key());
    let none = NodeInfo {
        allowlist_digest: None,
        accept_network: NetworkMode::None,
        ..node_info()
    };
    golden_gossip("node_info_no_digest", &none, &compute_key());
}

#[test]
fn golden_bid() {
    golden_direct("bid", &bid(), &compute_key());
}

#[test]
fn golden_refuse() {
    golden_direct("refuse_network", &refuse(), &compute_key());
    golden_direct("refuse_domains", &refuse_domains(), &compute_key());
}

#[test]
fn golden_award() {
    golden_direct("award", &award(), &requester_key());
}

#[test]
fn golden_decline() {
    golden_direct("decline", &decline(), &compute_key());
}

#[test]
fn golden_result() {
    golden_direct("result_completed", &result_completed(), &compute_key());
    golden_direct("result_failed", &result_failed(), &compute_key());
}

#[test]
fn golden_progress() {
    let pulling = Step::PullingImage {
        image: "busybox:1.37.0".into(),
    };
    golden_direct("progress_pulling", &progress(pulling), &compute_key());
    let running = Step::Running {
        image: Some(format!(
            "docker.io/library/busybox@sha256:{}",
            "ab".repeat(32)
        )),
    };
    golden_direct("progress_running", &progress(running), &compute_key());
}

#[test]
fn golden_cancel() {
    golden_direct("cancel", &cancel(), &requester_key());
}

#[test]
fn golden_job_id() {
    let id = job_id().to_string();
    assert!(id.starts_with("bafyr4i"), "{id}");
    assert_eq!(
        id,
        "bafyr4ibqircjzxxtlmpihl2tvww3el3gfnrox45fcjj33ss6ztir7aonpi"
    );
}

// ------------------------------------------------------- receiver's checks

#[test]
fn announce_round_trip_through_gossip() {
    let bytes = Gossip::from(announce().sign(&requester_key()).unwrap())
        .encode()
        .unwrap();
    let gossip = Gossip::decode(&bytes).unwrap();
    assert_eq!(gossip.signer(), &requester_key().node_id());
    assert_eq!(
        gossip.verify().unwrap(),
        GossipMessage::Announce(announce())
    );
}

/// Signs without the sender-side checks, as a misbehaving peer would.
fn sign_unchecked<T: Message>(message: &T, key: &NodeKey) -> Signed<T> {
    Signed::sign(key, message).unwrap()
}

#[test]
fn announce_with_wrong_job_id_rejected() {
    let mut a = announce();
    a.job_id = JobId::compute(&spec(), &a.requester, a.submitted_at_ms + 1).unwrap();
    assert!(matches!(
        a.sign(&requester_key()),
        Err(MessageError::JobIdMismatch { .. })
    ));
    let signed = sign_unchecked(&a, &requester_key());
    assert_eq!(
        Announce::verify(&signed),
        Err(MessageError::JobIdMismatch {
            claimed: a.job_id,
            computed: job_id()
        })
    );

    // Changing the spec but keeping the id is caught the same way.
    let mut a = announce();
    a.spec.count = 2;
    let signed = sign_unchecked(&a, &requester_key());
    assert!(matches!(
        Announce::verify(&signed),
        Err(MessageError::JobIdMismatch { .. })
    ));
}

#[test]
fn announce_with_a_draw_beyond_the_network_rejected() {
    let a = Announce {
        draw_ppm: Some(DRAW_ALL_PPM + 1),
        ..announce()
    };
    assert!(matches!(
        a.sign(&requester_key()),
        Err(MessageError::Invalid { ref field, .. }) if field == "draw_ppm"
    ));
    let signed = sign_unchecked(&a, &requester_key());
    assert!(matches!(
        Announce::verify(&signed),
        Err(MessageError::Invalid { .. })
    ));
    let all = Announce {
        draw_ppm: Some(DRAW_ALL_PPM),
        ..announce()
    };
    assert_eq!(
        Announce::verify(&all.sign(&requester_key()).unwrap()),
        Ok(all)
    );
}

// R-PLC-1: an announcement may state its inputs' size and its
// requester's serving rate (not part of the job id); a rate of 0 is no
// rate and is refused.
#[test]
fn announce_with_input_size_and_source_rate() {
    let a = Announce {
        input_bytes: Some(1 << 30),
        source_bps: Some(50_000_000),
        ..announce()
    };
    assert_eq!(a.job_id, announce().job_id);
    assert_eq!(Announce::verify(&a.sign(&requester_key()).unwrap()), Ok(a));
    let zero = Announce {
        source_bps: Some(0),
        ..announce()
    };
    assert!(matches!(
        zero.sign(&requester_key()),
        Err(MessageError::Invalid { ref field, .. }) if field == "source_bps"
    ));
    assert!(matches!(
        Announce::verify(&sign_unchecked(&zero, &requester_key())),
        Err(MessageError::Invalid { .. })
    ));
}

/// Draw tickets are spread evenly: a draw of p ppm draws about p ppm of
/// the nodes.
#[test]
fn draw_tickets_are_uniform() {
    let job_id = job_id();
    let drawn = (0..20_000u32)
        .filter(|n| {
            let mut secret = [0u8; 32];
            secret[..4].copy_from_slice(&n.to_le_bytes());
            draw_ticket(&job_id, &NodeKey::from_secret_bytes(secret).node_id()) < 100_000
        })
        .count();
    // 10% of 20,000: 2,000, sd 42.
    assert!((1_800..=2_200).contains(&drawn), "{drawn}");
}

#[test]
fn announce_signed_by_another_node_rejected() {
    // A valid announcement of the requester's job, re-signed by someone else.
    let signed = sign_unchecked(&announce(), &compute_key());
    assert_eq!(
        Announce::verify(&signed),
        Err(MessageError::SignerMismatch {
            kind: "announce",
            author: requester_key().node_id(),
            signer: compute_key().node_id(),
        })
    );
    // And an honest signer cannot sign in another's name.
    assert!(matches!(
        announce().sign(&compute_key()),
        Err(MessageError::SignerMismatch { .. })
    ));
}

#[test]
fn announce_with_invalid_spec_rejected() {
    let mut s = spec();
    s.count = 0;
    let a = Announce::new(s, requester_key().node_id(), 1, vec![]).unwrap();
    let signed = sign_unchecked(&a, &requester_key());
    let err = Announce::verify(&signed).unwrap_err();
    assert!(matches!(err, MessageError::InvalidSpec(_)), "{err:?}");
    assert!(err.to_string().contains("Count"), "{err}");
}

#[test]
fn announce_providers_bounded() {
    let mut a = announce();
    a.providers = vec!["p".into(); MAX_ADDRS + 1];
    assert!(matches!(
        Announce::verify(&sign_unchecked(&a, &requester_key())),
        Err(MessageError::TooMany { .. })
    ));
    a.providers = vec!["p".repeat(MAX_ADDR_BYTES + 1)];
    let err = Announce::verify(&sign_unchecked(&a, &requester_key())).unwrap_err();
    assert_eq!(
        err,
        MessageError::TooLong {
            field: "providers[0]".into(),
            len: MAX_ADDR_BYTES + 1,
            max: MAX_ADDR_BYTES
        }
    );
    a.providers = vec!["a\u{1b}[2J".into()];
    assert!(matches!(
        Announce::verify(&sign_unchecked(&a, &requester_key())),
        Err(MessageError::BadCharacter {
            found: '\u{1b}',
            ..
        })
    ));
}

#[test]
fn result_providers_round_trip_and_are_bounded() {
    let mut r = result_completed();
    r.providers = vec![r#"{"id":"ab","addrs":[]}"#.into()];
    let signed = sign_unchecked(&r, &compute_key());
    assert_eq!(ResultMsg::verify(&signed).unwrap(), r);
    r.providers = vec!["p".into(); MAX_ADDRS + 1];
    assert!(matches!(
        ResultMsg::verify(&sign_unchecked(&r, &compute_key())),
        Err(MessageError::TooMany { .. })
    ));
    r.providers = vec!["a\u{1b}[2J".into()];
    assert!(matches!(
        ResultMsg::verify(&sign_unchecked(&r, &compute_key())),
        Err(MessageError::BadCharacter { .. })
    ));
}

#[test]
fn oversized_announcement_refused_when_signing() {
    let mut s = spec();
    for i in 0..1200 {
        s.meta.insert(format!("k{i}"), "v".repeat(1000));
    }
    assert!(s.validate().is_ok());
    let a = Announce::new(s, requester_key().node_id(), 1, vec![]).unwrap();
    let err = a.sign(&requester_key()).unwrap_err();
    assert!(
        matches!(
            err,
            MessageError::Encode(EncodeError::TooLarge {
                what: "job announcement",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("CID"), "{err}");
}

#[test]
fn oversized_input_refused_before_decoding() {
    let junk = vec![0u8; MAX_GOSSIP_BYTES + 1];
    assert_eq!(
        Gossip::decode(&junk),
        Err(MessageError::Decode(DecodeError::TooLarge {
            len: MAX_GOSSIP_BYTES + 1,
            max: MAX_GOSSIP_BYTES
        }))
    );
    let junk = vec![0u8; MAX_DIRECT_BYTES + 1];
    assert!(matches!(
        Direct::decode(&junk),
        Err(MessageError::Decode(DecodeError::TooLarge { .. }))
    ));
}

#[test]
fn oversized_payload_refused_before_its_signature() {
    // A node info as large as a gossip message allows, but over its own limit.
    let mut info = node_info();
    info.p2p_addrs = vec!["x".repeat(MAX_NODE_INFO_BYTES)];
    let signed = sign_unchecked(&info, &compute_key());
    let bytes = Gossip::from(signed).encode().unwrap();
    let gossip = Gossip::decode(&bytes).unwrap();
    assert!(matches!(
        gossip.verify(),
        Err(MessageError::Verify(VerifyError::TooLarge {
            kind: "node-info",
            ..
        }))
    ));
}

#[test]
fn tampered_messages_rejected() {
    let signed = bid().sign(&compute_key()).unwrap();
    let (signer, payload, signature) = signed.into_parts();

    let mut other = bid();
    other.running_jobs = 0;
    let tampered: Signed<Bid> =
        Signed::from_parts(signer, crate::id::to_canonical(&other).unwrap(), signature);
    assert!(matches!(
        Bid::verify(&tampered),
        Err(MessageError::Verify(VerifyError::BadSignature { .. }))
    ));

    let mut bad_signature = signature;
    bad_signature[63] ^= 0x40;
    let tampered: Signed<Bid> = Signed::from_parts(signer, payload.clone(), bad_signature);
    assert!(matches!(
        Bid::verify(&tampered),
        Err(MessageError::Verify(VerifyError::BadSignature { .. }))
    ));

    let tampered: Signed<Bid> = Signed::from_parts(requester_key().node_id(), payload, signature);
    assert!(matches!(
        Bid::verify(&tampered),
        Err(MessageError::Verify(VerifyError::BadSignature { .. }))
    ));
}

#[test]
fn a_signature_for_one_kind_does_not_verify_as_another() {
    // A requester's signed cancellation, presented as a decline, a bid, ...
    let (signer, payload, signature) = cancel().sign(&requester_key()).unwrap().into_parts();
    let as_direct = [
        SignedDirect::Bid(Signed::from_parts(signer, payload.clone(), signature)),
        SignedDirect::Refuse(Signed::from_parts(signer, payload.clone(), signature)),
        SignedDirect::Award(Signed::from_parts(signer, payload.clone(), signature)),
        SignedDirect::Decline(Signed::from_parts(signer, payload.clone(), signature)),
        SignedDirect::Result(Signed::from_parts(signer, payload.clone(), signature)),
    ]
    .map(Direct::from);
    for d in as_direct {
        assert!(
            matches!(
                d.verify(),
                Err(MessageError::Verify(VerifyError::BadSignature { .. }))
            ),
            "{d:?}"
        );
    }
    // The same bytes verify as what they are.
    let d = Direct::from(Signed::<Cancel>::from_parts(signer, payload, signature));
    assert_eq!(d.verify(), Ok(DirectMessage::Cancel(cancel())));
}

#[test]
fn every_kind_is_distinct_and_well_formed() {
    let kinds = [
        Announce::KIND,
        NodeInfo::KIND,
        Bid::KIND,
        Refuse::KIND,
        Award::KIND,
        Decline::KIND,
        ResultMsg::KIND,
        Cancel::KIND,
    ];
    let unique: std::collections::BTreeSet<_> = kinds.iter().collect();
    assert_eq!(unique.len(), kinds.len());
    for k in kinds {
        assert!(
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{k}"
        );
    }
}

#[test]
fn reasons_bounded_and_printable() {
    let mut d = decline();
    d.reason = "x".repeat(MAX_REASON_BYTES + 1);
    assert!(matches!(
        d.sign(&compute_key()),
        Err(MessageError::TooLong { .. })
    ));
    assert!(matches!(
        Decline::verify(&sign_unchecked(&d, &compute_key())),
        Err(MessageError::TooLong { .. })
    ));
    d.reason = "line one\nline two\tand a tab".into();
    assert!(Decline::verify(&d.sign(&compute_key()).unwrap()).is_ok());
    d.reason = "bell\u{7}".into();
    let err = Decline::verify(&sign_unchecked(&d, &compute_key())).unwrap_err();
    assert_eq!(
        err,
        MessageError::BadCharacter {
            field: "reason".into(),
            found: '\u{7}'
        }
    );

    let mut c = cancel();
    c.reason = "\u{9b}31m".into(); // C1 control (CSI)
    assert!(matches!(
        Cancel::verify(&sign_unchecked(&c, &requester_key())),
        Err(MessageError::BadCharacter { .. })
    ));

    let mut r = result_failed();
    // Built by hand: Failure::new would cut the detail to size.
    r.outcome = Outcome::Failed {
        failure: Failure {
            cause: FailureCause::Other,
            detail: "y".repeat(MAX_REASON_BYTES + 1),
        },
    };
    let err = ResultMsg::verify(&sign_unchecked(&r, &compute_key())).unwrap_err();
    assert!(
        err.to_string().starts_with("outcome.failure.detail"),
        "{err}"
    );
}

#[test]
fn result_cid_must_be_fetchable() {
    let sha256 = cid::multihash::Multihash::wrap(0x12, &[1; 32]).unwrap();
    let mut r = result_completed();
    r.outcome = Outcome::Completed {
        result_cid: cid::Cid::new_v1(RAW, sha256),
        exit_code: 1,
    };
    let err = ResultMsg::verify(&sign_unchecked(&r, &compute_key())).unwrap_err();
    assert!(
        matches!(&err, MessageError::Invalid { field, .. } if field == "outcome.result_cid"),
        "{err:?}"
    );
    r.outcome = Outcome::Completed {
        result_cid: blake3_cid(crate::id::DAG_CBOR, b"dir"),
        exit_code: -1,
    };
    assert!(ResultMsg::verify(&r.sign(&compute_key()).unwrap()).is_ok());
}

#[test]
fn node_info_bounds() {
    let key = compute_key();
    let mut n = node_info();
    n.engines = vec!["docker".into(); MAX_ENGINES + 1];
    assert!(matches!(
        NodeInfo::verify(&sign_unchecked(&n, &key)),
        Err(MessageError::TooMany { .. })
    ));
    n.engines = vec!["Docker".into()];
    assert_eq!(
        NodeInfo::verify(&sign_unchecked(&n, &key)),
        Err(MessageError::BadCharacter {
            field: "engines[0]".into(),
            found: 'D'
        })
    );
    n.engines = vec![String::new()];
    assert!(matches!(
        NodeInfo::verify(&sign_unchecked(&n, &key)),
        Err(MessageError::Empty { .. })
    ));
    n.engines = vec!["wasm".into()];
    n.api_addrs = vec!["127.0.0.1:1 extra".into()];
    assert!(matches!(
        NodeInfo::verify(&sign_unchecked(&n, &key)),
        Err(MessageError::BadCharacter { found: ' ', .. })
    ));
    n.api_addrs = vec![];
    n.p2p_addrs = vec!["/ip4/1.2.3.4/tcp/1".into(); MAX_ADDRS + 1];
    assert!(matches!(
        NodeInfo::verify(&sign_unchecked(&n, &key)),
        Err(MessageError::TooMany { .. })
    ));
}

#[test]
fn limits_fit_together() {
    // NodeInfo at its bounds fits its limit.
    let n = NodeInfo {
        engines: vec!["e".repeat(MAX_ENGINE_NAME_BYTES); MAX_ENGINES],
        api_addrs: vec!["a".repeat(MAX_ADDR_BYTES / 2); MAX_ADDRS / 2],
        p2p_addrs: vec!["p".repeat(MAX_ADDR_BYTES / 2); MAX_ADDRS / 2],
        ..node_info()
    };
    assert!(NodeInfo::verify(&n.sign(&compute_key()).unwrap()).is_ok());
}

#[test]
fn canonical_envelope_required() {
    let signed = bid().sign(&compute_key()).unwrap();
    let (signer, payload, signature) = signed.clone().into_parts();
    let good = Direct::from(signed).encode().unwrap();

    let mut trailing = good.clone();
    trailing.push(0x00);
    assert_eq!(
        Direct::decode(&trailing),
        Err(MessageError::Decode(DecodeError::TrailingBytes))
    );

    // The same envelope by hand, keys in canonical order, then not.
    let text = |s: &str| crate::id::to_canonical(s).unwrap();
    let bytes = |b: &[u8]| crate::id::to_canonical(serde_bytes::Bytes::new(b)).unwrap();
    let entries = [
        (text("signer"), crate::id::to_canonical(&signer).unwrap()),
        (text("payload"), bytes(&payload)),
        (text("signature"), bytes(&signature)),
    ];
    // {"m": {"Bid": <envelope>}, "v": PROTOCOL_VERSION} (a CBOR integer
    // below 24 is its own head byte)
    const { assert!(PROTOCOL_VERSION < 24) };
    let envelope = |order: [usize; 3]| {
        let mut out = vec![0xa2];
        out.extend(text("m"));
        out.push(0xa1);
        out.extend(text("Bid"));
        out.push(0xa3);
        for i in order {
            out.extend(&entries[i].0);
            out.extend(&entries[i].1);
        }
        out.extend(text("v"));
        out.push(PROTOCOL_VERSION as u8);
        out
    };
    assert_eq!(envelope([0, 1, 2]), good);
    assert!(Direct::decode(&envelope([0, 1, 2])).is_ok());
    for order in [[1, 0, 2], [2, 1, 0], [0, 2, 1]] {
        assert!(
            Direct::decode(&envelope(order)).is_err(),
            "keys in order {order:?} accepted"
        );
    }
}

// R-PLC-1, R-PUB-2: a node's offer travels in its node info; a kind a
// newer node adds to it does not make the node info unreadable.
#[test]
fn node_info_carries_the_offer_and_ignores_new_kinds() {
    use crate::job::{ByteSize, MilliCpu};
    let mut info = node_info();
    info.resources = crate::resources::Offer {
        cpu: Some(MilliCpu(2000)),
        memory: Some(ByteSize(8 << 30)),
        disk: None,
    };
    let bytes = Gossip::from(info.clone().sign(&compute_key()).unwrap())
        .encode()
        .unwrap();
    assert_eq!(
        Gossip::decode(&bytes).unwrap().verify().unwrap(),
        GossipMessage::NodeInfo(info.clone())
    );
    #[derive(serde::Serialize)]
    struct NewerOffer {
        #[serde(rename = "CPU")]
        cpu: MilliCpu,
        #[serde(rename = "GPU")]
        gpu: u32,
    }
    let newer = crate::id::to_canonical(&NewerOffer {
        cpu: MilliCpu(500),
        gpu: 2,
    })
    .unwrap();
    let offer: crate::resources::Offer =
        crate::id::from_canonical_ignoring_unknown(&newer, 1024).unwrap();
    assert_eq!(offer.cpu, Some(MilliCpu(500)));
}
