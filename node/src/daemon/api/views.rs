//! The node's own records as the API shows them: the driver's view of the
//! node and the database's rows, turned into the `api` crate's types, and
//! blob store addresses between iroh's type and the API's.

use std::collections::BTreeSet;

use api::address::{DataAddr, EndpointId, TransportAddr};
use api::jobs::{JobEvent, JobResult};
use api::node::{NodeInfo, Peer, PeerInfo};
use protocol::requester::RequesterEvent;

use crate::daemon::NodeView;
use crate::daemon::db::{EventRow, ResultRow};

/// A value of the node's own that does not read as its type: a bug, or a
/// database written by something else.
#[derive(Debug, thiserror::Error)]
#[error("the node's {what} `{text}` does not read: {reason}")]
pub struct ViewError {
    what: &'static str,
    text: String,
    reason: String,
}

fn parse<T>(what: &'static str, text: &str) -> Result<T, ViewError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| ViewError {
        what,
        text: text.chars().take(200).collect(),
        reason: e.to_string(),
    })
}

/// `GET /api/v1/node`.
pub fn node_info(view: &NodeView) -> Result<NodeInfo, ViewError> {
    let data_addr: iroh::EndpointAddr =
        serde_json::from_str(&view.data_addr).map_err(|e| ViewError {
            what: "blob store address",
            text: view.data_addr.clone(),
            reason: e.to_string(),
        })?;
    Ok(NodeInfo {
        node_id: parse("node id", &view.node_id)?,
        p2p_addrs: view
            .p2p_addrs
            .iter()
            .map(|a| parse("listen address", a))
            .collect::<Result<_, _>>()?,
        reachability: parse("reachability", &view.reachability)?,
        external_addrs: view
            .external_addrs
            .iter()
            .map(|a| parse("external address", a))
            .collect::<Result<_, _>>()?,
        relayed_addrs: view
            .relayed_addrs
            .iter()
            .map(|a| parse("relayed address", a))
            .collect::<Result<_, _>>()?,
        api_addr: parse("API address", &view.api_addr)?,
        data_addr: data_addr_of(&data_addr),
        engines: view.engines.clone(),
        capacity: view.capacity,
        resources: view.resources,
        resources_free: view.resources_free,
        labels: view.labels.clone(),
        link_down_bps: view.link_down_bps,
        link_up_bps: view.link_up_bps,
        pull_from: view.pull_from.clone(),
        images_pulled_bytes: view.images_pulled_bytes,
        image_cache_bytes: view.image_cache_bytes,
        s3: view
            .s3
            .as_ref()
            .map(|(endpoint, region)| api::node::S3Endpoint {
                endpoint: endpoint.clone(),
                region: region.clone(),
            }),
        local_inputs: view.local_inputs.clone(),
        local_inputs_rw: view.local_inputs_rw.clone(),
        running: view.running,
        accept_network: protocol::policy::parse_accept_network(&view.accept_network).map_err(
            |e| ViewError {
                what: "network mode",
                text: view.accept_network.clone(),
                reason: e.to_string(),
            },
        )?,
        allowlist: view.allowlist.clone(),
        peers: view
            .peers
            .iter()
            .map(|p| {
                Ok(Peer {
                    node_id: parse("peer id", &p.node_id)?,
                    connected: p.connected,
                    connections: p
                        .connections
                        .iter()
                        .map(|a| parse("connection address", a))
                        .collect::<Result<_, _>>()?,
                    info: p.info.as_ref().map(PeerInfo::from),
                })
            })
            .collect::<Result<_, ViewError>>()?,
        job_deny: view
            .job_deny
            .iter()
            .map(|a| parse("denied address", a))
            .collect::<Result<_, _>>()?,
    })
}

/// A result row. Providers a compute node named that are not addresses
/// are left out.
pub fn job_result(row: &ResultRow) -> Result<JobResult, ViewError> {
    Ok(JobResult {
        job_id: parse("job id", &row.job_id)?,
        execution_id: protocol::id::ExecutionId(row.execution_id),
        node: parse("compute node id", &row.node)?,
        result_cid: parse("result CID", &row.result_cid)?,
        exit_code: row.exit_code,
        providers: DataAddr::parse_all(&row.providers),
        fetched: row.fetched,
        refused: row.refused.clone(),
    })
}

/// An event row, if it reads as a requester's event.
pub fn job_event(row: &EventRow) -> Result<JobEvent, ViewError> {
    let event: RequesterEvent =
        serde_json::from_value(row.event.clone()).map_err(|e| ViewError {
            what: "event",
            text: row.event.to_string(),
            reason: e.to_string(),
        })?;
    Ok(JobEvent {
        at_ms: row.at_ms,
        event: (&event).into(),
    })
}

/// iroh's address as the API's.
pub fn data_addr_of(addr: &iroh::EndpointAddr) -> DataAddr {
    DataAddr {
        id: EndpointId::from_bytes(*addr.id.as_bytes()),
        addrs: addr
            .addrs
            .iter()
            .filter_map(|a| match a {
                iroh::TransportAddr::Ip(socket) => Some(TransportAddr::Ip(*socket)),
                iroh::TransportAddr::Relay(url) => Some(TransportAddr::Relay(url.to_string())),
                // Custom transports: skrei's stores use none.
                _ => None,
            })
            .collect(),
    }
}

/// The API's address as iroh's, checking what iroh checks: the id is an
/// ed25519 key, a relay is a URL.
pub fn endpoint_addr(addr: &DataAddr) -> Result<iroh::EndpointAddr, String> {
    let id = iroh::EndpointId::from_bytes(addr.id.as_bytes())
        .map_err(|e| format!("{} is not an endpoint id: {e}", addr.id))?;
    let addrs = addr
        .addrs
        .iter()
        .map(|a| match a {
            TransportAddr::Ip(socket) => Ok(iroh::TransportAddr::Ip(*socket)),
            TransportAddr::Relay(url) => url
                .parse()
                .map(iroh::TransportAddr::Relay)
                .map_err(|e| format!("relay `{url}`: {e}")),
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(iroh::EndpointAddr { id, addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iroh_addr() -> iroh::EndpointAddr {
        let id = iroh::SecretKey::from_bytes(&[5; 32]).public();
        iroh::EndpointAddr {
            id,
            addrs: BTreeSet::from([
                iroh::TransportAddr::Ip("127.0.0.1:4001".parse().unwrap()),
                iroh::TransportAddr::Ip("[::1]:4002".parse().unwrap()),
                iroh::TransportAddr::Relay("https://relay.invalid./".parse().unwrap()),
            ]),
        }
    }

    /// The network carries iroh's JSON; the API reads it as its own type.
    #[test]
    fn irohs_json_is_the_apis_data_address() {
        let iroh = iroh_addr();
        let ours = data_addr_of(&iroh);
        let text = serde_json::to_string(&iroh).unwrap();
        assert_eq!(text.parse::<DataAddr>().unwrap(), ours);
        assert_eq!(ours.to_string(), text);
        assert_eq!(
            serde_json::from_str::<iroh::EndpointAddr>(&ours.to_string()).unwrap(),
            iroh
        );
        assert_eq!(endpoint_addr(&ours).unwrap(), iroh);
    }

    #[test]
    fn an_address_iroh_cannot_dial_is_refused() {
        let mut addr = data_addr_of(&iroh_addr());
        addr.addrs = vec![TransportAddr::Relay("not a url".into())];
        assert!(endpoint_addr(&addr).unwrap_err().contains("relay"));
        // Not every 32 bytes are an ed25519 key.
        let bytes = (0..=u8::MAX)
            .map(|b| [b; 32])
            .find(|b| iroh::EndpointId::from_bytes(b).is_err())
            .unwrap();
        addr.id = EndpointId::from_bytes(bytes);
        addr.addrs.clear();
        assert!(endpoint_addr(&addr).is_err());
    }
}
