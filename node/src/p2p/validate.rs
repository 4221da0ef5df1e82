//! Application-level validation of what peers send (R-P2P-3): nothing is
//! handed to the node or forwarded before it passes here.
//!
//! A gossip message must decode within `MAX_GOSSIP_BYTES`, verify (signature,
//! canonical payload, field bounds, author = signer), travel on its kind's
//! topic, and have been published by the node that signed it: gossipsub
//! authenticates the publishing peer (`source`), and a node relaying someone
//! else's signed message under its own name is refused, so a message's
//! gossipsub author and its skrei author are always the same node. A direct
//! message must decode within `MAX_DIRECT_BYTES`, verify, and come from the
//! peer that signed it.
//!
//! A message from a node of a newer protocol version that this node cannot
//! read ([`MessageError::Newer`]) is [`Rejection::Newer`]: dropped (gossip:
//! not forwarded) but never counted against the peer, whose version may
//! well allow it (issue 14). [`Rejection::penalises`] tells them apart.

use libp2p::PeerId;
use protocol::id::{NodeId, NodeIdError};
use protocol::messages::{
    Direct, DirectMessage, Gossip, GossipMessage, MAX_DIRECT_BYTES, MAX_GOSSIP_BYTES, MessageError,
    SignedGossip,
};

/// Topic of job announcements.
pub const JOBS_TOPIC: &str = "skrei/jobs/1";
/// Topic of node descriptions.
pub const NODES_TOPIC: &str = "skrei/nodes/1";

/// Why a message from a peer was refused. Every variant counts against the
/// peer that sent it, except [`Rejection::RateLimited`] short of a flood
/// and [`Rejection::Newer`] (see [`Rejection::penalises`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Larger than its transport allows.
    #[error("a message of {len} bytes, more than the {max} allowed")]
    Oversized {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a message.
    #[error("malformed: {0}")]
    Malformed(MessageError),
    /// A message that fails verification (bad signature, bounds, job id...).
    #[error("invalid: {0}")]
    Invalid(MessageError),
    /// The peer that published or sent it is not the node that signed it.
    #[error("sent by {sender} but signed by {signer}")]
    NotFromSigner {
        /// The authenticated peer.
        sender: String,
        /// The message's signer.
        signer: NodeId,
    },
    /// A gossip message without an authenticated author (never accepted in
    /// strict validation mode; kept so the check does not rely on it).
    #[error("a gossip message with no authenticated author")]
    Anonymous,
    /// More messages of one kind from `signer` than its rate allows
    /// ([`protocol::rate`]); checked before the message is even decoded.
    /// A burst just past the rate is dropped quietly (a relaying neighbour
    /// is never penalised for it); a peer that floods, sending far past its
    /// rate itself, has it counted against its score.
    #[error(
        "more {kind} from {signer} than its rate allows ({per_second} a second, {burst} at once)"
    )]
    RateLimited {
        /// The node whose rate it is: the gossip author, or the sender.
        signer: NodeId,
        /// What: `job announcements`, `node infos`, `direct messages`.
        kind: &'static str,
        /// The rate's burst.
        burst: u32,
        /// The rate, a second.
        per_second: u32,
    },
    /// A message of one kind on another kind's topic.
    #[error("a {kind} on topic {topic}")]
    WrongTopic {
        /// The topic it came on.
        topic: String,
        /// What it is.
        kind: &'static str,
    },
    /// A message of a newer protocol version that this node cannot read
    /// or accept ([`MessageError::Newer`]): dropped, not forwarded, and not
    /// counted against the peer.
    #[error("{0}")]
    Newer(MessageError),
}

impl Rejection {
    /// Whether the rejection counts against the peer that sent the message
    /// (gossipsub `Reject` and a strike, rather than `Ignore`). Rate limits
    /// are judged before validation, by the driver.
    pub fn penalises(&self) -> bool {
        !matches!(self, Rejection::Newer(_))
    }

    fn malformed(error: MessageError) -> Rejection {
        match error {
            MessageError::Newer { .. } => Rejection::Newer(error),
            error => Rejection::Malformed(error),
        }
    }

    fn invalid(error: MessageError) -> Rejection {
        match error {
            MessageError::Newer { .. } => Rejection::Newer(error),
            error => Rejection::Invalid(error),
        }
    }
}

/// The topic a gossip message belongs on.
pub fn topic_of(gossip: &Gossip) -> &'static str {
    match gossip.signed() {
        SignedGossip::Announce(_) => JOBS_TOPIC,
        SignedGossip::NodeInfo(_) => NODES_TOPIC,
    }
}

/// Validates a gossip message that arrived on `topic`, published by
/// `source` (gossipsub's authenticated author, not the relaying neighbour).
/// Returns the signer and the verified message.
pub fn gossip(
    topic: &str,
    source: Option<&PeerId>,
    data: &[u8],
) -> Result<(NodeId, GossipMessage), Rejection> {
    if data.len() > MAX_GOSSIP_BYTES {
        return Err(Rejection::Oversized {
            len: data.len(),
            max: MAX_GOSSIP_BYTES,
        });
    }
    let source = source.ok_or(Rejection::Anonymous)?;
    let gossip = Gossip::decode(data).map_err(Rejection::malformed)?;
    let kind_topic = topic_of(&gossip);
    if topic != kind_topic {
        return Err(Rejection::WrongTopic {
            topic: topic.to_owned(),
            kind: match gossip.signed() {
                SignedGossip::Announce(_) => "job announcement",
                SignedGossip::NodeInfo(_) => "node info",
            },
        });
    }
    let message = gossip.verify().map_err(Rejection::invalid)?;
    let signer = *gossip.signer();
    if peer_id(&signer) != *source {
        return Err(Rejection::NotFromSigner {
            sender: source.to_string(),
            signer,
        });
    }
    Ok((signer, message))
}

/// Validates a direct message sent by `peer`. Returns the signer (= `peer`)
/// and the verified message.
pub fn direct(peer: &PeerId, data: &[u8]) -> Result<(NodeId, DirectMessage), Rejection> {
    if data.len() > MAX_DIRECT_BYTES {
        return Err(Rejection::Oversized {
            len: data.len(),
            max: MAX_DIRECT_BYTES,
        });
    }
    let direct = Direct::decode(data).map_err(Rejection::malformed)?;
    let message = direct.verify().map_err(Rejection::invalid)?;
    let signer = *direct.signer();
    if peer_id(&signer) != *peer {
        return Err(Rejection::NotFromSigner {
            sender: peer.to_string(),
            signer,
        });
    }
    Ok((signer, message))
}

/// The libp2p peer id of a node.
pub fn peer_id(node: &NodeId) -> PeerId {
    PeerId::from_bytes(&node.to_peer_id_bytes())
        .expect("a node id's peer id bytes are a valid identity multihash")
}

/// The node id of a libp2p peer; only ed25519 peers are nodes.
pub fn node_id(peer: &PeerId) -> Result<NodeId, NodeIdError> {
    NodeId::from_peer_id_bytes(&peer.to_bytes())
}

#[cfg(test)]
mod tests {
    use protocol::id::NodeKey;
    use protocol::job::JobSpec;
    use protocol::messages::{Announce, Bid, Message, PROTOCOL_VERSION};

    use super::*;

    const JOB: &str = "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
                       Type: docker\n      Params:\n        Image: busybox:1.36\n";

    fn key(n: u8) -> NodeKey {
        NodeKey::from_secret_bytes([n; 32])
    }

    fn announce(key: &NodeKey) -> Announce {
        let spec = JobSpec::parse(JOB).unwrap();
        Announce::new(spec, key.node_id(), 1_700_000_000_000, vec![]).unwrap()
    }

    fn announce_bytes(key: &NodeKey) -> Vec<u8> {
        Gossip::from(announce(key).sign(key).unwrap())
            .encode()
            .unwrap()
    }

    #[test]
    fn peer_and_node_ids_agree() {
        let id = key(1).node_id();
        let peer = peer_id(&id);
        assert_eq!(peer.to_string(), id.to_string());
        assert_eq!(node_id(&peer), Ok(id));
    }

    #[test]
    fn a_signed_announce_from_its_signer_passes() {
        let a = key(1);
        let (signer, message) = gossip(
            JOBS_TOPIC,
            Some(&peer_id(&a.node_id())),
            &announce_bytes(&a),
        )
        .unwrap();
        assert_eq!(signer, a.node_id());
        assert_eq!(message, GossipMessage::Announce(announce(&a)));
    }

    #[test]
    fn gossip_rejections() {
        let a = key(1);
        let from_a = peer_id(&a.node_id());
        let bytes = announce_bytes(&a);

        let from_b = peer_id(&key(2).node_id());
        assert!(matches!(
            gossip(JOBS_TOPIC, Some(&from_b), &bytes),
            Err(Rejection::NotFromSigner { .. })
        ));
        assert_eq!(gossip(JOBS_TOPIC, None, &bytes), Err(Rejection::Anonymous));
        assert!(matches!(
            gossip(NODES_TOPIC, Some(&from_a), &bytes),
            Err(Rejection::WrongTopic { .. })
        ));
        assert!(matches!(
            gossip(JOBS_TOPIC, Some(&from_a), b"garbage"),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            gossip(JOBS_TOPIC, Some(&from_a), &vec![0; MAX_GOSSIP_BYTES + 1]),
            Err(Rejection::Oversized { .. })
        ));

        // A signature over other bytes.
        let SignedGossip::Announce(signed) = Gossip::decode(&bytes).unwrap().into_signed() else {
            panic!("not an announce")
        };
        let (signer, payload, mut signature) = signed.into_parts();
        signature[0] ^= 1;
        let forged = Gossip::from(protocol::id::Signed::<Announce>::from_parts(
            signer, payload, signature,
        ));
        let rejection = gossip(JOBS_TOPIC, Some(&from_a), &forged.encode().unwrap()).unwrap_err();
        assert!(matches!(rejection, Rejection::Invalid(_)));
        assert!(rejection.penalises());
    }

    /// `{"m": {<kind>: <envelope>}, "v": version}`, as a node of another
    /// version sends it.
    fn at_version(version: u32, kind: &str, signed: &protocol::id::Signed<Announce>) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Versioned<'a> {
            v: u32,
            m: std::collections::BTreeMap<&'a str, &'a protocol::id::Signed<Announce>>,
        }
        let m = std::collections::BTreeMap::from([(kind, signed)]);
        protocol::id::to_canonical(&Versioned { v: version, m }).unwrap()
    }

    // R-P2P-3 / issue 14: what a newer node sends that this one cannot read
    // is dropped without penalty; the same claiming this node's version is
    // malformed, and penalised.
    #[test]
    fn unreadable_messages_from_newer_nodes_do_not_penalise() {
        let a = key(1);
        let from_a = peer_id(&a.node_id());
        let signed = announce(&a).sign(&a).unwrap();
        let newer = PROTOCOL_VERSION + 1;

        let unknown_kind = at_version(newer, "Offer", &signed);
        let rejection = gossip(JOBS_TOPIC, Some(&from_a), &unknown_kind).unwrap_err();
        assert!(matches!(rejection, Rejection::Newer(_)), "{rejection:?}");
        assert!(!rejection.penalises());
        let rejection = direct(&from_a, &unknown_kind).unwrap_err();
        assert!(matches!(rejection, Rejection::Newer(_)), "{rejection:?}");
        assert!(!rejection.penalises());

        let same = at_version(PROTOCOL_VERSION, "Offer", &signed);
        let rejection = gossip(JOBS_TOPIC, Some(&from_a), &same).unwrap_err();
        assert!(
            matches!(rejection, Rejection::Malformed(_)),
            "{rejection:?}"
        );
        assert!(rejection.penalises());

        // A newer node's known kind is read, on its topic, from its signer.
        let known = at_version(newer, "Announce", &signed);
        let (signer, message) = gossip(JOBS_TOPIC, Some(&from_a), &known).unwrap();
        assert_eq!(signer, a.node_id());
        assert_eq!(message, GossipMessage::Announce(announce(&a)));
        let rejection = gossip(NODES_TOPIC, Some(&from_a), &known).unwrap_err();
        assert!(rejection.penalises(), "{rejection:?}");
    }

    #[test]
    fn direct_must_come_from_its_signer() {
        let b = key(2);
        let bid = Bid {
            job_id: announce(&key(1)).job_id,
            bidder: b.node_id(),
            running_jobs: 0,
            held_bytes: 0,
            fetch_ms: None,
        };
        let bytes = Direct::from(bid.sign(&b).unwrap()).encode().unwrap();
        let (signer, message) = direct(&peer_id(&b.node_id()), &bytes).unwrap();
        assert_eq!(signer, b.node_id());
        assert_eq!(message, DirectMessage::Bid(bid));
        assert!(matches!(
            direct(&peer_id(&key(3).node_id()), &bytes),
            Err(Rejection::NotFromSigner { .. })
        ));
        assert!(matches!(
            direct(&peer_id(&b.node_id()), &[0xff; 10]),
            Err(Rejection::Malformed(_))
        ));
    }
}
