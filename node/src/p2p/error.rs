//! What can go wrong in the network layer, in the caller's terms.

use libp2p::Multiaddr;
use libp2p::gossipsub::PublishError;
use protocol::id::NodeId;

use super::validate::{JOBS_TOPIC, NODES_TOPIC};

/// An error of the network layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P2pError {
    /// The node key's secret is not an ed25519 secret key.
    #[error("the node key is not usable as a libp2p identity: {0}")]
    Identity(String),
    /// The libp2p identity does not print as the node's id (a bug: the
    /// protocol crate and libp2p disagree on the key encoding).
    #[error("the libp2p peer id {peer_id} is not the node id {node_id}")]
    IdentityMismatch {
        /// The node id from the key.
        node_id: NodeId,
        /// The peer id libp2p computed.
        peer_id: String,
    },
    /// The swarm could not be built (transport or behaviour set-up).
    #[error("could not set up the libp2p swarm: {0}")]
    Setup(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        cause: String,
    },
    /// A bootstrap address does not name its peer.
    #[error("bootstrap address {addr} does not end in /p2p/<peer id>")]
    BootstrapAddr {
        /// The address.
        addr: Multiaddr,
    },
    /// A dial could not be started.
    #[error("cannot dial {addr}: {cause}")]
    Dial {
        /// The address.
        addr: Multiaddr,
        /// Why.
        cause: String,
    },
    /// The message could not be encoded within its transport's size limit.
    #[error("cannot encode the message: {0}")]
    Encode(#[from] protocol::id::EncodeError),
    /// Nobody has subscribed to the topic yet: retry once peers have joined.
    #[error("no peer is subscribed to {topic} yet; retry once peers have joined")]
    NoSubscribers {
        /// The topic.
        topic: &'static str,
    },
    /// gossipsub refused to publish.
    #[error("cannot publish on {topic}: {cause}")]
    Publish {
        /// The topic.
        topic: &'static str,
        /// gossipsub's reason.
        cause: String,
    },
    /// A direct message did not reach the peer, or got no answer.
    #[error("sending to {peer} failed: {cause}")]
    SendFailed {
        /// The intended receiver.
        peer: NodeId,
        /// What happened (dial failure, timeout, connection closed, ...).
        cause: String,
    },
    /// The peer received the direct message but its event queue was full:
    /// retry later.
    #[error("{peer} is busy and did not take the message; retry later")]
    Busy {
        /// The receiver.
        peer: NodeId,
    },
    /// The peer received the direct message and refused it as invalid.
    #[error("{peer} rejected the message: {reason}")]
    Rejected {
        /// The receiver.
        peer: NodeId,
        /// Its reason.
        reason: String,
    },
    /// A DHT operation failed.
    #[error("DHT {operation} failed: {cause}")]
    Dht {
        /// What was attempted (`start_providing`, `get_providers`).
        operation: &'static str,
        /// Why.
        cause: String,
    },
    /// The swarm task has stopped (after `shutdown`, or it failed).
    #[error("the network layer has shut down")]
    Shutdown,
}

impl P2pError {
    /// A failed gossip publication on `topic`; its name is kept only when
    /// it is one of ours (a topic is a peer-chosen string elsewhere).
    pub(super) fn publishing(topic: &str, error: PublishError) -> P2pError {
        let topic = match topic {
            JOBS_TOPIC => JOBS_TOPIC,
            NODES_TOPIC => NODES_TOPIC,
            _ => "an unknown topic",
        };
        match error {
            PublishError::NoPeersSubscribedToTopic => P2pError::NoSubscribers { topic },
            other => P2pError::Publish {
                topic,
                cause: other.to_string(),
            },
        }
    }

    /// A failed DHT operation.
    pub(super) fn dht(operation: &'static str, cause: impl std::fmt::Display) -> P2pError {
        P2pError::Dht {
            operation,
            cause: cause.to_string(),
        }
    }

    /// Whether trying the same thing again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            P2pError::NoSubscribers { .. } | P2pError::Busy { .. } | P2pError::SendFailed { .. }
        )
    }
}
