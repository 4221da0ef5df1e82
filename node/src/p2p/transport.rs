//! The transports a node dials and listens with: TCP (noise, yamux) and
//! QUIC, behind a [`DialGuard`] that decides every dial on its resolved
//! address. The swarm builder adds DNS around it (so `/dns4`, `/dns6` and
//! `/dnsaddr` names reach the guard resolved) and the relay client beside it.
//!
//! Why a guard: peers tell a node where to dial (Kademlia records, identify,
//! AutoNAT dial-back requests). Without it a stranger could make the node
//! open connections into its own LAN, to its loopback services or to a
//! cloud metadata address. Special-purpose addresses (the one table in
//! [`protocol::address`]) are dialled only where the operator said so.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Transport, noise, quic, tcp, yamux};

/// Which addresses a node may dial.
#[derive(Debug, Clone, Default)]
pub struct DialPolicy {
    /// Every special-purpose address may be dialled: the node runs on
    /// loopback only (devstack, simnet, tests), where every peer is one.
    pub local: bool,
    /// LAN addresses (private, link-local and unique-local ranges, never
    /// the metadata address) may be dialled: mDNS is on.
    pub lan: bool,
    /// Special-purpose addresses the operator named (bootstrap and
    /// announced addresses): always dialable.
    pub named: BTreeSet<IpAddr>,
    /// Private networks the operator declared its own (`--private-network`).
    pub networks: Vec<protocol::address::Cidr>,
}

impl DialPolicy {
    /// Why `ip` may not be dialled, or `None` if it may.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let why = protocol::address::classify(ip)?;
        if self.local
            || self.named.contains(&ip.to_canonical())
            || self.networks.iter().any(|n| n.contains(ip))
        {
            return None;
        }
        if self.lan && is_lan(ip) {
            return None;
        }
        Some(why)
    }

    /// Why `addr` may not be dialled, or `None` if it may. Addresses with
    /// no IP (a relay circuit, an unresolved name) are decided when they
    /// resolve, or by the connection they ride on.
    pub fn refuses_addr(&self, addr: &Multiaddr) -> Option<&'static str> {
        ip_of(addr).and_then(|ip| self.refuses(ip))
    }
}

/// Whether a node listening on `listen` is a local testnet: there is at
/// least one address and every one is loopback.
pub fn loopback_only(listen: &[Multiaddr]) -> bool {
    !listen.is_empty()
        && listen
            .iter()
            .all(|a| ip_of(a).is_some_and(|ip| ip.to_canonical().is_loopback()))
}

/// The IP address a multiaddr starts with, if it starts with one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// Addresses of the local network: RFC 1918, link-local (but not the cloud
/// metadata address), IPv6 unique-local and link-local.
fn is_lan(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            (v4.is_private() || v4.is_link_local())
                && v4 != std::net::Ipv4Addr::new(169, 254, 169, 254)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
        }
    }
}

/// A transport that refuses to dial what its [`DialPolicy`] refuses, and
/// passes everything else (listening included) to the one inside.
pub struct DialGuard<T> {
    inner: T,
    policy: Arc<DialPolicy>,
}

impl<T> DialGuard<T> {
    pub fn new(inner: T, policy: Arc<DialPolicy>) -> DialGuard<T> {
        DialGuard { inner, policy }
    }
}

impl<T: Transport + Unpin> Transport for DialGuard<T> {
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        if let Some(why) = self.policy.refuses_addr(&addr) {
            tracing::debug!(%addr, why, "not dialling a special-purpose address");
            // "Not supported" lets the swarm try the peer's other
            // addresses, and says nothing was sent.
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        self.inner.dial(addr, opts)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// TCP (noise, yamux) or QUIC, behind the dial guard.
pub fn build(
    key: &Keypair,
    policy: Arc<DialPolicy>,
) -> Result<
    impl Transport<
        Output = (PeerId, StreamMuxerBox),
        Error = impl std::error::Error + Send + Sync + 'static,
        Dial = impl Send,
        ListenerUpgrade = impl Send,
    > + Send
    + Unpin
    + 'static,
    noise::Error,
> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let quic = quic::tokio::Transport::new(quic::Config::new(key))
        .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection)));
    let both = quic.or_transport(tcp).map(|either, _| either.into_inner());
    Ok(DialGuard::new(both, policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_dialled_only_where_the_operator_said() {
        let mut policy = DialPolicy::default();
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let lan: IpAddr = "192.168.1.10".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(policy.refuses(public), None);
        for ip in [lan, metadata, loopback] {
            assert!(policy.refuses(ip).is_some(), "{ip}");
        }
        policy.lan = true;
        assert_eq!(policy.refuses(lan), None);
        assert!(
            policy.refuses(metadata).is_some(),
            "never the metadata address"
        );
        assert!(policy.refuses(loopback).is_some());
        policy.named.insert(loopback);
        assert_eq!(policy.refuses(loopback), None);
        assert_eq!(
            policy.refuses("::ffff:127.0.0.1".parse().unwrap()),
            None,
            "the mapped form of a named address"
        );
        let declared = DialPolicy {
            networks: vec![protocol::address::Cidr::parse("172.18.0.0/16").unwrap()],
            ..DialPolicy::default()
        };
        assert_eq!(declared.refuses("172.18.0.5".parse().unwrap()), None);
        assert!(declared.refuses("172.19.0.5".parse().unwrap()).is_some());
        let local = DialPolicy {
            local: true,
            ..DialPolicy::default()
        };
        assert_eq!(local.refuses(metadata), None);
        let circuit: Multiaddr =
            "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
                .parse()
                .unwrap();
        assert_eq!(DialPolicy::default().refuses_addr(&circuit), None);
    }
}
