//! A node's periodic description of itself (gossip).

use serde::{Deserialize, Serialize};

use super::{
    MAX_ADDR_BYTES, MAX_ADDRS, MAX_ENGINE_NAME_BYTES, MAX_ENGINES, MAX_NODE_INFO_BYTES, Message,
    MessageError, bounds,
};
use crate::id::{NodeId, SignedKind};
use crate::job::NetworkMode;
use crate::resources::Offer;

/// What a node runs and accepts, and where to reach it, gossiped every few
/// seconds: requesters use it to explain why nobody bids, and every node
/// adds the addresses to the set jobs may never reach (R-NET-7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node described (the signer).
    pub node: NodeId,
    /// Engines it runs (`docker`, `wasm`): at most [`MAX_ENGINES`], each
    /// lower-case ASCII letters, digits, `-` or `_`.
    pub engines: Vec<String>,
    /// How many jobs it runs at once at most.
    pub capacity: u32,
    /// How many it runs now.
    pub running: u32,
    /// The highest network mode it accepts (R-POL-1).
    pub accept_network: NetworkMode,
    /// A digest of its domain allowlist, when it accepts `http` jobs: equal
    /// digests mean equal allowlists.
    #[serde(with = "serde_bytes")]
    pub allowlist_digest: Option<[u8; 32]>,
    /// Its HTTP API addresses, as text (at most [`MAX_ADDRS`] of
    /// [`MAX_ADDR_BYTES`]).
    pub api_addrs: Vec<String>,
    /// Its libp2p listen addresses, as multiaddr text (same bounds).
    pub p2p_addrs: Vec<String>,
    /// Where its blob store serves content (iroh addresses, JSON text; same
    /// bounds): how a node that found it as a provider fetches from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_addrs: Vec<String>,
    /// The iroh relays it runs (`https://NAME:PORT` URLs; same bounds),
    /// for data between nodes behind NAT. A receiver uses them only if it
    /// was told to trust the sender (its bootstrap peers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relay_urls: Vec<String>,
    /// What it offers executions (`--resources`; R-PLC-1): what a task may
    /// ask for at most. Empty from older nodes and nodes with no limits.
    #[serde(default, skip_serializing_if = "Offer::is_empty")]
    pub resources: Offer,
    /// Increases with every new `NodeInfo` of this node: a receiver keeps
    /// the one with the highest `seq` and ignores older ones replayed.
    pub seq: u64,
}

impl SignedKind for NodeInfo {
    const KIND: &'static str = "node-info";
}

impl Message for NodeInfo {
    const MAX_BYTES: usize = MAX_NODE_INFO_BYTES;
    const NAME: &'static str = "node info";

    fn author(&self) -> Option<&NodeId> {
        Some(&self.node)
    }

    fn check(&self) -> Result<(), MessageError> {
        bounds::count("engines", self.engines.len(), MAX_ENGINES)?;
        for (i, engine) in self.engines.iter().enumerate() {
            let field = format!("engines[{i}]");
            bounds::token(&field, engine, MAX_ENGINE_NAME_BYTES)?;
            if let Some(found) = engine
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
            {
                return Err(MessageError::BadCharacter { field, found });
            }
        }
        bounds::tokens("api_addrs", &self.api_addrs, MAX_ADDRS, MAX_ADDR_BYTES)?;
        bounds::tokens("p2p_addrs", &self.p2p_addrs, MAX_ADDRS, MAX_ADDR_BYTES)?;
        bounds::tokens("data_addrs", &self.data_addrs, MAX_ADDRS, MAX_ADDR_BYTES)?;
        bounds::tokens("relay_urls", &self.relay_urls, MAX_ADDRS, MAX_ADDR_BYTES)
    }
}
