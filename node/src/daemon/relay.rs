//! Data through NAT (issue 14): the iroh relay a `--relay-server` node runs
//! beside its libp2p relay, and which relays a node's blob store uses.
//!
//! A node's store uses the relays its operator named (`--iroh-relay`), its
//! own (a relay server), and those its bootstrap peers run (their node
//! info's `relay_urls`): never a relay a stranger names, whether in node
//! info or in a provider's address (the store drops relays it does not
//! know from those). A relay learnt from a peer must be `https` and its
//! host must resolve to global addresses only; one the operator named is
//! taken as it is.
//!
//! Relays' TLS certificates are verified, against the Web PKI roots and the
//! operator's extra roots (`--iroh-relay-ca`); nothing turns that off.
//!
//! The relay serves HTTPS on `--iroh-relay-listen` (TCP) and QUIC address
//! discovery on the same port over UDP, which is where every node expects
//! a relay's QUIC address discovery (see `storage::store::StoreConfig`).
//! iroh-relay's captive-portal probe (plain HTTP) listens on a port the
//! system chooses: skrei's nodes do not use it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iroh::RelayUrl;
use iroh_relay::server::{
    CertConfig, ClientRateLimit, QuicConfig, RelayConfig, Server, ServerConfig, TlsConfig,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The iroh relay a relay server runs (`--iroh-relay-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrohRelayServer {
    /// HTTPS (TCP) and QUIC address discovery (UDP) on this address.
    pub listen: SocketAddr,
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The certificate's private key, PEM.
    pub key: PathBuf,
    /// The URL peers use: `https://NAME:PORT`, NAME one the certificate is
    /// valid for.
    pub url: RelayUrl,
    /// Bytes a second the relay reads from one client (R-SEC-5): anyone
    /// can connect to a public relay, so no client may take all of its
    /// bandwidth.
    pub client_rate: std::num::NonZeroU32,
}

/// [`IrohRelayServer::client_rate`] unless the operator sets it: 100 Mbit/s,
/// a 64 MiB input in about 5 s.
pub const DEFAULT_CLIENT_RATE: std::num::NonZeroU32 =
    std::num::NonZeroU32::new(12_500_000).expect("not zero");

/// Starts the relay.
pub async fn spawn(config: &IrohRelayServer) -> Result<Server, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("--iroh-relay-cert {}: {e}", config.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--iroh-relay-cert {}: no certificate in the file",
            config.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| format!("--iroh-relay-key {}: {e}", config.key.display()))?;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("--iroh-relay-cert/--iroh-relay-key: {e}"))?;
    let mut relay = RelayConfig::new(SocketAddr::new(config.listen.ip(), 0));
    let mut rate = ClientRateLimit::new(config.client_rate);
    // A second's worth at once, at most 4 MiB.
    rate.max_burst_bytes = std::num::NonZeroU32::new(config.client_rate.get().min(4 << 20));
    relay.limits.client_rx = Some(rate);
    relay.tls = Some(TlsConfig::new(
        config.listen,
        CertConfig::Manual { server_config: tls },
    ));
    let mut server = ServerConfig::default();
    server.relay = Some(relay);
    server.quic = Some(QuicConfig::new(config.listen));
    Server::spawn(server)
        .await
        .map_err(|e| format!("the iroh relay on {}: {e}", config.listen))
}

/// The extra roots in PEM files (`--iroh-relay-ca`).
pub fn load_roots(files: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut roots = Vec::new();
    for file in files {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("--iroh-relay-ca {}: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--iroh-relay-ca {}: no certificate in the file",
                file.display()
            ));
        }
        roots.extend(certs);
    }
    Ok(roots)
}

/// How relays' certificates are verified: the Web PKI roots and `extra`.
pub fn ca_config(extra: Vec<CertificateDer<'static>>) -> iroh::tls::CaTlsConfig {
    iroh::tls::CaTlsConfig::embedded().with_extra_roots(extra)
}

/// Whether a relay URL a bootstrap peer gossiped may be used: `https`, a
/// host, and every address the host resolves to global.
pub async fn acceptable(url: &str) -> Result<RelayUrl, String> {
    let relay: RelayUrl = url.parse().map_err(|e| format!("not a relay URL: {e}"))?;
    if relay.scheme() != "https" {
        return Err("not https".into());
    }
    let host = match relay.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("no host".into()),
    };
    let port = relay.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if let Some((ip, why)) = addrs
        .iter()
        .find_map(|a| protocol::address::classify(a.ip()).map(|why| (a.ip(), why)))
    {
        return Err(format!("{host} resolves to {ip} ({why})"));
    }
    Ok(relay)
}

/// `https://NAME:PORT` for `--iroh-relay-url` and `--iroh-relay`.
pub fn parse_url(flag: &str, text: &str) -> Result<RelayUrl, String> {
    let url: RelayUrl = text
        .parse()
        .map_err(|e| format!("{flag} {text}: not a URL: {e}"))?;
    if url.scheme() != "https" || url.host().is_none() {
        return Err(format!(
            "{flag} {text}: give https://NAME:PORT (relays speak TLS)"
        ));
    }
    Ok(url)
}

/// Whether `path` names a readable file, for early errors.
pub fn readable(flag: &str, path: &Path) -> Result<(), String> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| format!("{flag} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gossiped_relay_must_be_https_on_a_global_address() {
        assert!(acceptable("https://93.184.215.14:8443").await.is_ok());
        for (url, why) in [
            ("https://10.0.0.1", "private"),
            ("https://127.0.0.1:443", "loopback"),
            ("https://[::1]:443", "loopback"),
            ("http://93.184.215.14", "not https"),
            ("not a url", "not a relay URL"),
        ] {
            let err = acceptable(url).await.unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn flags_take_https_urls_only() {
        assert!(parse_url("--iroh-relay", "https://relay.example.org:8443").is_ok());
        assert!(
            parse_url("--iroh-relay", "https://10.0.0.1").is_ok(),
            "the operator's choice"
        );
        let err = parse_url("--iroh-relay", "http://relay.example.org").unwrap_err();
        assert!(err.contains("https://NAME:PORT"), "{err}");
    }

    #[test]
    fn roots_files_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = load_roots(&[empty]).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        let missing = dir.path().join("missing.pem");
        assert!(load_roots(&[missing]).is_err());
    }
}
