//! Properties of every wire message: signing, encoding, decoding and
//! verifying gives back the message; junk and mutated encodings never panic
//! and never verify.

use crate::failure::{Failure, FailureCause};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

use super::super::*;
use crate::domain::{Domain, DomainSet};
use crate::id::{DAG_CBOR, ExecutionId, RAW, blake3_cid, from_canonical};
use crate::job::{JobSpec, Network, NetworkMode};
use crate::policy::RefuseReason;
use ipld_core::ipld::Ipld;

// -------------------------------------------------------------- strategies

fn key() -> impl Strategy<Value = NodeKey> {
    any::<[u8; 32]>().prop_map(NodeKey::from_secret_bytes)
}

fn node_id() -> impl Strategy<Value = NodeId> {
    key().prop_map(|k| k.node_id())
}

/// Printable text with the newlines and tabs reasons may hold.
fn reason() -> impl Strategy<Value = String> {
    "[\\PC\n\t]{0,60}"
}

/// Address-like tokens.
fn addrs() -> impl Strategy<Value = Vec<String>> {
    vec("[a-z0-9./:_-]{1,40}", 0..4)
}

fn domain() -> impl Strategy<Value = Domain> {
    "\\.?[a-z][a-z0-9]{0,10}\\.(com|org|example)".prop_map(|d| Domain::parse(&d).unwrap())
}

fn network() -> impl Strategy<Value = Network> {
    prop_oneof![
        Just(Network::default()),
        Just(Network {
            r#type: NetworkMode::Full,
            domains: DomainSet::default(),
        }),
        vec(domain(), 1..4).prop_map(|d| Network {
            r#type: NetworkMode::Http,
            domains: DomainSet::from_domains(d),
        }),
    ]
}

/// Valid docker jobs, varied in the fields that reach the encoding.
fn spec() -> impl Strategy<Value = JobSpec> {
    (
        option::of("[a-zA-Z0-9 _-]{1,20}"),
        1u32..=crate::job::MAX_COUNT,
        btree_map("[a-z]{1,8}", "[a-z0-9 ]{0,10}", 0..3),
        "[a-z][a-z0-9]{0,12}(:[a-z0-9][a-z0-9.]{0,7})?",
        vec("[ -~]{0,12}", 0..4),
        vec("[A-Z_][A-Z0-9_]{0,8}=[a-z0-9]{0,8}", 0..3),
        network(),
    )
        .prop_map(
            |(name, count, labels, image, parameters, environment_variables, network)| {
                let mut spec = crate::job::test_support::docker_job(
                    &image,
                    parameters,
                    environment_variables,
                    network,
                );
                spec.name = name;
                spec.count = count;
                spec.labels = labels;
                spec
            },
        )
}

fn job_id() -> impl Strategy<Value = JobId> {
    any::<[u8; 32]>().prop_map(|b| JobId::from_cid(blake3_cid(DAG_CBOR, &b)).unwrap())
}

fn execution_id() -> impl Strategy<Value = ExecutionId> {
    any::<u64>().prop_map(ExecutionId)
}

fn network_mode() -> impl Strategy<Value = NetworkMode> {
    prop_oneof![
        Just(NetworkMode::None),
        Just(NetworkMode::Http),
        Just(NetworkMode::Full)
    ]
}

fn refuse_reason() -> impl Strategy<Value = RefuseReason> {
    prop_oneof![
        (network_mode(), network_mode()).prop_map(|(requested, accepted)| {
            RefuseReason::NetworkNotAccepted {
                requested,
                accepted,
            }
        }),
        vec(domain(), 0..5).prop_map(|domains| RefuseReason::DomainsNotAllowed { domains }),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        (any::<bool>(), vec(any::<u8>(), 0..16), any::<i32>()).prop_map(|(raw, b, exit_code)| {
            Outcome::Completed {
                result_cid: blake3_cid(if raw { RAW } else { DAG_CBOR }, &b),
                exit_code,
            }
        }),
        (0..FailureCause::ALL.len(), reason()).prop_map(|(i, detail)| Outcome::Failed {
            failure: Failure {
                cause: FailureCause::ALL[i],
                detail,
            }
        }),
    ]
}

/// A signed announcement and the message it signs.
fn announce() -> impl Strategy<Value = (Announce, Gossip)> {
    let draw = prop_oneof![Just(None), (0..=DRAW_ALL_PPM).prop_map(Some)];
    (key(), spec(), any::<u64>(), addrs(), draw).prop_map(|(key, spec, at, providers, draw)| {
        let mut a = Announce::new(spec, key.node_id(), at, providers).unwrap();
        a.draw_ppm = draw;
        let g = Gossip::from(a.sign(&key).unwrap());
        (a, g)
    })
}

fn node_info() -> impl Strategy<Value = (NodeInfo, Gossip)> {
    (
        key(),
        vec("[a-z0-9_-]{1,12}", 0..4),
        any::<(u32, u32, u64)>(),
        network_mode(),
        option::of(any::<[u8; 32]>()),
        (addrs(), addrs(), addrs()),
    )
        .prop_map(
            |(key, engines, (capacity, running, seq), accept_network, digest, (api, p2p, data))| {
                let n = NodeInfo {
                    node: key.node_id(),
                    engines,
                    capacity,
                    running,
                    accept_network,
                    allowlist_digest: digest,
                    api_addrs: api,
                    p2p_addrs: p2p,
                    data_addrs: data,
                    relay_urls: vec![],
                    resources: Default::default(),
                    seq,
                };
                let g = Gossip::from(n.sign(&key).unwrap());
                (n, g)
            },
        )
}

fn gossip() -> impl Strategy<Value = (GossipMessage, Gossip)> {
    prop_oneof![
        announce().prop_map(|(a, g)| (GossipMessage::Announce(a), g)),
        node_info().prop_map(|(n, g)| (GossipMessage::NodeInfo(n), g)),
    ]
}

/// Any direct message, signed by its author (or, for awards and
/// cancellations, by an arbitrary requester).
fn direct() -> impl Strategy<Value = (DirectMessage, Direct)> {
    direct_and_key().prop_map(|(m, d, _)| (m, d))
}

/// [`direct`], and the key that signed it.
fn direct_and_key() -> impl Strategy<Value = (DirectMessage, Direct, NodeKey)> {
    fn signed<T: Message>(m: T, key: &NodeKey) -> (T, Signed<T>) {
        let s = m.sign(key).unwrap();
        (m, s)
    }
    let bid = (key(), job_id(), any::<u32>()).prop_map(|(k, job_id, running_jobs)| {
        let b = Bid {
            job_id,
            bidder: k.node_id(),
            running_jobs,
            held_bytes: 0,
            fetch_ms: None,
        };
        let (b, s) = signed(b, &k);
        (DirectMessage::Bid(b), Direct::from(s), k)
    });
    let refuse = (key(), job_id(), refuse_reason()).prop_map(|(k, job_id, reason)| {
        let r = Refuse {
            job_id,
            node: k.node_id(),
            reason,
        };
        let (r, s) = signed(r, &k);
        (DirectMessage::Refuse(r), Direct::from(s), k)
    });
    let award = (key(), job_id(), execution_id(), node_id(), 0u32..4).prop_map(
        |(k, job_id, e, node, partition)| {
            let a = Award {
                job_id,
                execution_id: e,
                node,
                partition,
            };
            let (a, s) = signed(a, &k);
            (DirectMessage::Award(a), Direct::from(s), k)
        },
    );
    let decline = (key(), job_id(), execution_id(), reason()).prop_map(|(k, job_id, e, reason)| {
        let d = Decline {
            job_id,
            execution_id: e,
            node: k.node_id(),
            reason,
        };
        let (d, s) = signed(d, &k);
        (DirectMessage::Decline(d), Direct::from(s), k)
    });
    let result = (key(), job_id(), execution_id(), outcome(), addrs()).prop_map(
        |(k, job_id, e, outcome, providers)| {
            let r = ResultMsg {
                job_id,
                execution_id: e,
                node: k.node_id(),
                outcome,
                providers,
            };
            let (r, s) = signed(r, &k);
            (DirectMessage::Result(r), Direct::from(s), k)
        },
    );
    let cancel = (key(), job_id(), reason()).prop_map(|(k, job_id, reason)| {
        let c = Cancel { job_id, reason };
        let (c, s) = signed(c, &k);
        (DirectMessage::Cancel(c), Direct::from(s), k)
    });
    let progress = (key(), job_id(), execution_id(), option::of(reason())).prop_map(
        |(k, job_id, e, image)| {
            let step = match image {
                Some(image) if image.len() % 2 == 0 => Step::PullingImage { image },
                image => Step::Running { image },
            };
            let p = Progress {
                job_id,
                execution_id: e,
                node: k.node_id(),
                step,
            };
            let (p, s) = signed(p, &k);
            (DirectMessage::Progress(p), Direct::from(s), k)
        },
    );
    prop_oneof![bid, refuse, award, decline, result, cancel, progress]
}

/// Ways to damage an encoding.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize),
    SetByte(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::FlipBit),
        any::<(usize, u8)>().prop_map(|(i, b)| Mutation::SetByte(i, b)),
        any::<(usize, u8)>().prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let n = out.len().max(1);
    match *m {
        Mutation::FlipBit(i) => {
            let i = i % (n * 8);
            out[i / 8] ^= 1 << (i % 8);
        }
        Mutation::SetByte(i, b) => out[i % n] = b,
        Mutation::Insert(i, b) => out.insert(i % (n + 1), b),
        Mutation::Remove(i) => {
            out.remove(i % n);
        }
        Mutation::Truncate(i) => out.truncate(i % n),
    }
    out
}

/// Every payload decoder, fed `bytes` as a payload of each kind.
fn decode_every_payload(bytes: &[u8]) {
    let _ = from_canonical::<Announce>(bytes, Announce::MAX_BYTES);
    let _ = from_canonical::<NodeInfo>(bytes, NodeInfo::MAX_BYTES);
    let _ = from_canonical::<Bid>(bytes, Bid::MAX_BYTES);
    let _ = from_canonical::<Refuse>(bytes, Refuse::MAX_BYTES);
    let _ = from_canonical::<Award>(bytes, Award::MAX_BYTES);
    let _ = from_canonical::<Decline>(bytes, Decline::MAX_BYTES);
    let _ = from_canonical::<ResultMsg>(bytes, ResultMsg::MAX_BYTES);
    let _ = from_canonical::<Cancel>(bytes, Cancel::MAX_BYTES);
    let _ = from_canonical::<Progress>(bytes, Progress::MAX_BYTES);
}

/// Every message verifier, fed `payload` well signed as each kind. Returns
/// how many accepted it.
fn verify_every_kind(key: &NodeKey, payload: &[u8]) -> usize {
    fn one<T: Message>(key: &NodeKey, payload: &[u8]) -> usize {
        usize::from(T::verify(&Signed::<T>::sign_payload(key, payload.to_vec())).is_ok())
    }
    one::<Announce>(key, payload)
        + one::<NodeInfo>(key, payload)
        + one::<Bid>(key, payload)
        + one::<Refuse>(key, payload)
        + one::<Award>(key, payload)
        + one::<Decline>(key, payload)
        + one::<ResultMsg>(key, payload)
        + one::<Cancel>(key, payload)
        + one::<Progress>(key, payload)
}

// -------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn gossip_round_trip((message, gossip) in gossip()) {
        let bytes = gossip.encode().unwrap();
        let decoded = Gossip::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &gossip);
        prop_assert_eq!(decoded.verify().unwrap(), message);
        // One value, one encoding.
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
    }

    #[test]
    fn direct_round_trip((message, direct) in direct()) {
        let bytes = direct.encode().unwrap();
        let decoded = Direct::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &direct);
        prop_assert_eq!(decoded.verify().unwrap(), message);
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
    }

    #[test]
    fn job_id_depends_on_exactly_its_inputs(
        spec in spec(), requester in node_id(), at in any::<u64>(), other in node_id(),
    ) {
        let id = JobId::compute(&spec, &requester, at).unwrap();
        prop_assert_eq!(JobId::compute(&spec.clone(), &requester, at).unwrap(), id);
        prop_assert!(id.to_string().starts_with("bafyr4i"));
        prop_assert_ne!(JobId::compute(&spec, &requester, at.wrapping_add(1)).unwrap(), id);
        if other != requester {
            prop_assert_ne!(JobId::compute(&spec, &other, at).unwrap(), id);
        }
        let mut changed = spec.clone();
        changed.count = if spec.count == 1 { 2 } else { 1 };
        prop_assert_ne!(JobId::compute(&changed, &requester, at).unwrap(), id);
    }

    #[test]
    fn junk_never_panics(bytes in vec(any::<u8>(), 0..512)) {
        if let Ok(g) = Gossip::decode(&bytes) {
            let _ = g.verify();
        }
        if let Ok(d) = Direct::decode(&bytes) {
            let _ = d.verify();
        }
        decode_every_payload(&bytes);
    }

    #[test]
    fn well_signed_junk_never_panics(key in key(), bytes in vec(any::<u8>(), 0..256)) {
        verify_every_kind(&key, &bytes);
    }

    /// A damaged message never verifies, but for one whose protocol
    /// version alone changed (the version is the sender's claim, outside
    /// the signature): that one verifies to the same message.
    #[test]
    fn mutated_gossip_never_verifies((m, gossip) in gossip(), mutation in mutation()) {
        let bytes = gossip.encode().unwrap();
        let damaged = mutate(&bytes, &mutation);
        prop_assume!(damaged != bytes);
        if let Ok(g) = Gossip::decode(&damaged)
            && let Ok(verified) = g.verify()
        {
            prop_assert_ne!(g.version(), gossip.version());
            prop_assert_eq!(g.signed(), gossip.signed());
            prop_assert_eq!(verified, m);
        }
    }

    #[test]
    fn mutated_direct_never_verifies((m, direct) in direct(), mutation in mutation()) {
        let bytes = direct.encode().unwrap();
        let damaged = mutate(&bytes, &mutation);
        prop_assume!(damaged != bytes);
        if let Ok(d) = Direct::decode(&damaged)
            && let Ok(verified) = d.verify()
        {
            prop_assert_ne!(d.version(), direct.version());
            prop_assert_eq!(d.signed(), direct.signed());
            prop_assert_eq!(verified, m);
        }
    }

    /// Issue 14: a message whose payload gained a field verifies, from a
    /// newer node, to the message without it; from a node of this build's
    /// version, it does not verify.
    #[test]
    fn newer_payloads_with_unknown_fields_verify_to_the_known_message(
        (m, direct, key) in direct_and_key(), value in any::<u64>(),
    ) {
        type Resign = fn(&NodeKey, Vec<u8>) -> SignedDirect;
        let (payload, resign): (&[u8], Resign) = match direct.signed() {
            SignedDirect::Bid(s) => (s.payload(), |k, p| Signed::<Bid>::sign_payload(k, p).into()),
            SignedDirect::Refuse(s) => (s.payload(), |k, p| Signed::<Refuse>::sign_payload(k, p).into()),
            SignedDirect::Award(s) => (s.payload(), |k, p| Signed::<Award>::sign_payload(k, p).into()),
            SignedDirect::Decline(s) => (s.payload(), |k, p| Signed::<Decline>::sign_payload(k, p).into()),
            SignedDirect::Result(s) => (s.payload(), |k, p| Signed::<ResultMsg>::sign_payload(k, p).into()),
            SignedDirect::Cancel(s) => (s.payload(), |k, p| Signed::<Cancel>::sign_payload(k, p).into()),
            SignedDirect::Progress(s) => (s.payload(), |k, p| Signed::<Progress>::sign_payload(k, p).into()),
        };
        let Ipld::Map(mut map) = from_canonical::<Ipld>(payload, usize::MAX).unwrap() else {
            unreachable!("payloads are maps")
        };
        map.insert("zz_newer".into(), Ipld::Integer(value.into()));
        let newer_payload = crate::id::to_canonical(&Ipld::Map(map)).unwrap();
        let signed = resign(&key, newer_payload);

        let newer = super::super::version::encode(PROTOCOL_VERSION + 1, &signed, "test", MAX_DIRECT_BYTES).unwrap();
        prop_assert_eq!(Direct::decode(&newer).unwrap().verify(), Ok(m));
        let same = Direct::from(signed).encode().unwrap();
        prop_assert!(Direct::decode(&same).unwrap().verify().is_err());
    }

    #[test]
    fn mutated_payloads_resigned_never_panic(
        (_m, direct) in direct(), mutation in mutation(), key in key(),
    ) {
        let payload = match direct.signed() {
            SignedDirect::Bid(s) => s.payload(),
            SignedDirect::Refuse(s) => s.payload(),
            SignedDirect::Award(s) => s.payload(),
            SignedDirect::Decline(s) => s.payload(),
            SignedDirect::Result(s) => s.payload(),
            SignedDirect::Cancel(s) => s.payload(),
            SignedDirect::Progress(s) => s.payload(),
        };
        let damaged = mutate(payload, &mutation);
        decode_every_payload(&damaged);
        verify_every_kind(&key, &damaged);
    }

    #[test]
    fn mutated_announce_payloads_resigned_never_panic(
        (a, _g) in announce(), mutation in mutation(), key in key(),
    ) {
        let payload = crate::id::to_canonical(&a).unwrap();
        let damaged = mutate(&payload, &mutation);
        decode_every_payload(&damaged);
        verify_every_kind(&key, &damaged);
    }
}
