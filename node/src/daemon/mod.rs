//! A running node (R-CLI-1 `skrei node`): the requester and compute state
//! machines from `protocol`, driven by the real world.
//!
//! ```text
//!   API (axum, loopback) ──commands──┐
//!   p2p (libp2p) ──events──────────► driver ──► Requester / Compute (pure)
//!   executions (WASM) ──finished────┘   │
//!                                       ├─► p2p publish / send (signed)
//!                                       ├─► executions: inputs → engine → publish
//!                                       └─► SQLite: every job step (R-OPS-2)
//! ```
//!
//! The driver is one task that owns both state machines; everything else
//! talks to it over channels. A node is requester and compute node at once:
//! its own announcements and the messages between its two halves are looped
//! back in memory, since gossipsub does not deliver a node's own messages.

pub mod api;
mod config;
mod core_driver;
pub mod db;
mod exec;
mod held_inputs;
mod images;
mod machine;
pub mod relay;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use libp2p::Multiaddr;
use protocol::id::{NodeId, NodeKey};
use storage::store::{Store, StoreConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::{NodeConfig, load_policy};
pub use core_driver::{CoreCommand, NodeView};

use crate::api_token::{ApiToken, TOKEN_FILE, record};
use crate::p2p::{P2p, P2pConfig};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("node key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("opening the store: {0}")]
    Store(#[from] storage::store::OpenError),
    #[error("starting the network: {0}")]
    P2p(#[from] crate::p2p::P2pError),
    #[error("the API cannot listen on {addr}: {source}; choose another with --api")]
    Api {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the API token in {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// A node that is running; dropping it does not stop it: call [`Node::shutdown`].
pub struct Node {
    node_id: NodeId,
    api_addr: SocketAddr,
    p2p_addrs: Vec<Multiaddr>,
    commands: mpsc::Sender<CoreCommand>,
    stop: watch::Sender<bool>,
    driver: JoinHandle<()>,
    api: JoinHandle<()>,
    store: Arc<Store>,
    token: ApiToken,
    token_file: std::path::PathBuf,
    /// The iroh relay this node runs (a relay server), stopped with it.
    iroh_relay: Option<iroh_relay::server::Server>,
}

impl Node {
    /// Opens the data directory, joins the network and serves the API.
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        let data_dir = &config.data_dir.clone();
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let key = load_or_create_key(&data_dir.join("node.key"))?;
        let token = ApiToken::load_or_create(data_dir).map_err(|source| StartError::Token {
            path: data_dir.join(TOKEN_FILE).display().to_string(),
            source,
        })?;
        let node_id = key.node_id();
        let policy = load_policy(config.accept_network, config.allowlist.as_deref())
            .map_err(StartError::Config)?;
        let db = Arc::new(db::Db::open(&data_dir.join("node.db"))?);
        // The iroh relay first: this node's store uses it too.
        let iroh_relay = match &config.iroh_relay_server {
            Some(relay) => Some(relay::spawn(relay).await.map_err(StartError::Config)?),
            None => None,
        };
        let store = Arc::new(open_store(data_dir, &config).await?);

        let mut p2p_config = P2pConfig::new(key.to_secret_bytes()).mdns(config.mdns);
        for addr in &config.listen {
            p2p_config = p2p_config.listen(addr.clone());
        }
        for addr in &config.bootstrap {
            p2p_config = p2p_config.bootstrap(addr.clone());
        }
        p2p_config.announce = config.announce.clone();
        p2p_config.private_networks = config.private_networks.clone();
        p2p_config.relay_server = config.relay_server;
        p2p_config.upnp = config.upnp;
        p2p_config.listen_fallback = config.listen_fallback;
        let (p2p, events) = P2p::start(p2p_config).await?;
        let p2p_for_api = p2p.clone();
        let p2p_addrs = p2p.listen_addrs();

        let listener = tokio::net::TcpListener::bind(config.api)
            .await
            .map_err(|source| StartError::Api {
                addr: config.api,
                source,
            })?;
        let api_addr = listener.local_addr().map_err(|source| StartError::Api {
            addr: config.api,
            source,
        })?;

        let mut config = config;
        let gate = api::Gate {
            token: token.as_str().to_owned(),
            listen: api_addr,
            allow: config.api_allow.clone(),
        };
        let token_file = std::path::absolute(data_dir.join(TOKEN_FILE)).map_err(|source| {
            StartError::DataDir {
                path: data_dir.display().to_string(),
                source,
            }
        })?;
        let data_addrs: Vec<SocketAddr> = store.local_addrs();
        let engines = start_engines(&mut config, &node_id, api_addr, &p2p_addrs, &data_addrs).await;
        let (commands, command_rx) = mpsc::channel(256);
        let (stop, stop_rx) = watch::channel(false);
        let (changes, changes_rx) = watch::channel(0u64);
        let api_policy = Arc::new(policy.clone());
        let driver = core_driver::CoreDriver::new(
            config,
            key,
            policy,
            p2p,
            store.clone(),
            db.clone(),
            api_addr,
            changes,
            engines,
        )
        .map_err(StartError::Config)?;
        let driver = tokio::spawn(driver.run(events, command_rx, stop_rx.clone()));
        let state = api::ApiState {
            commands: commands.clone(),
            db,
            store: store.clone(),
            changes: changes_rx,
            node_id,
            p2p: p2p_for_api,
            sessions: Arc::default(),
            policy: api_policy,
            api_port: api_addr.port(),
            history: Arc::default(),
        };
        let api = tokio::spawn(api::serve(listener, state, gate, stop_rx));
        // The `skrei` client finds the token through this record when the
        // same user calls this node; without it, SKREI_API_TOKEN works.
        if let Err(e) = record::remember(api_addr, &token_file) {
            tracing::warn!(
                "could not record this node's API for the skrei client ({e}); clients need \
                 SKREI_API_TOKEN"
            );
        }
        tracing::info!(%node_id, %api_addr, ?p2p_addrs, token = %token_file.display(), "node started");
        Ok(Node {
            node_id,
            api_addr,
            p2p_addrs,
            commands,
            stop,
            driver,
            api,
            store,
            token,
            token_file,
            iroh_relay,
        })
    }

    /// The API's token (`Authorization: Bearer TOKEN`).
    pub fn api_token(&self) -> &ApiToken {
        &self.token
    }

    /// The file holding the API's token.
    pub fn api_token_file(&self) -> &Path {
        &self.token_file
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Where the API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The libp2p addresses, each ending in `/p2p/<peer id>`.
    pub fn p2p_addrs(&self) -> &[Multiaddr] {
        &self.p2p_addrs
    }

    /// A channel to the driver (what the API uses).
    pub fn commands(&self) -> mpsc::Sender<CoreCommand> {
        self.commands.clone()
    }

    /// Stops the API, the driver (cancelling running executions) and the
    /// network, and waits for them.
    pub async fn shutdown(self) {
        record::forget(self.api_addr, &self.token_file);
        let _ = self.stop.send(true);
        let _ = self.api.await;
        let _ = self.driver.await;
        // Executions still finishing hold the store; it closes with them.
        if let Ok(store) = Arc::try_unwrap(self.store) {
            store.shutdown().await;
        }
        if let Some(relay) = self.iroh_relay
            && let Err(e) = relay.shutdown().await
        {
            tracing::warn!("the iroh relay did not stop cleanly: {e}");
        }
    }
}

/// The engines the node offers: WASM always, Docker when asked for and
/// reachable (otherwise it is dropped from the node's engines, so the node
/// refuses Docker jobs instead of bidding and failing them).
async fn start_engines(
    config: &mut NodeConfig,
    node_id: &NodeId,
    api_addr: SocketAddr,
    p2p_addrs: &[Multiaddr],
    data_addrs: &[SocketAddr],
) -> crate::executor::Engines {
    use crate::executor::docker::{DockerConfig, DockerExecutor};
    let mut deny = vec![api_addr];
    deny.extend(p2p_addrs.iter().filter_map(core_driver::socket_addr));
    // Named in the warning when `full` jobs cannot be kept off the host.
    let mut services = vec![("API".to_string(), api_addr)];
    services.extend(deny[1..].iter().map(|a| ("libp2p".to_string(), *a)));
    services.extend(data_addrs.iter().map(|a| ("data".to_string(), *a)));
    // The same egress rules for WASM `http` jobs as for Docker sidecars.
    let network = crate::executor::WasmNetwork {
        http_rate: config.http_rate,
        deny: deny.clone(),
        allow_ranges: config.proxy_allow_ranges.clone(),
        resolve: config.proxy_resolve.clone(),
        connect_ports: config.proxy_connect_ports.clone(),
        http_ports: config.proxy_http_ports.clone(),
        ..Default::default()
    };
    let wasm = match crate::executor::wasm::WasmExecutor::new(false) {
        Ok(w) => Some(w.with_network(network)),
        Err(e) => {
            tracing::error!("the WASM engine is unavailable: {e}");
            config.engines.retain(|e| e != "wasm");
            None
        }
    };
    let mut docker = None;
    if config.engines.iter().any(|e| e == "docker") {
        let docker_config = DockerConfig {
            owner: node_id.to_string(),
            services,
            accepts_full: config.accept_network == protocol::job::NetworkMode::Full,
            http_rate: config.http_rate,
            deny,
            allow_ranges: config.proxy_allow_ranges.clone(),
            resolve: config.proxy_resolve.clone(),
            connect_ports: config.proxy_connect_ports.clone(),
            http_ports: config.proxy_http_ports.clone(),
            pull: crate::executor::docker::PullConfig {
                policy: config.pull_from.clone(),
                max_image_size: config.max_image_size,
            },
            ..DockerConfig::default()
        };
        match DockerExecutor::new(docker_config).await {
            Ok(d) => docker = Some(d),
            Err(e) => {
                tracing::warn!("Docker jobs are refused here: {e}");
                config.engines.retain(|e| e != "docker");
            }
        }
    }
    crate::executor::Engines { wasm, docker }
}

/// Opens the blob store on the port it had before, when it is free: the
/// addresses a node gave out (in announcements, results, node info) stay
/// good across a restart.
///
/// Its relays: the operator's (`--iroh-relay`) and this node's own; relays
/// learnt from bootstrap peers are added later. Its address names private
/// socket addresses only on a loopback-only node.
async fn open_store(data_dir: &Path, node: &NodeConfig) -> Result<Store, StartError> {
    let bind = node.data_bind();
    let port_file = data_dir.join("data.port");
    let previous = std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .filter(|_| bind.port() == 0);
    let mut config = StoreConfig::new(data_dir);
    config.bind = bind;
    config.private_addrs = node.loopback_only();
    config.private_networks = node.private_networks.clone();
    config.relays = node.iroh_relays.clone();
    if let Some(own) = &node.iroh_relay_server
        && !config.relays.contains(&own.url)
    {
        config.relays.push(own.url.clone());
    }
    let roots = relay::load_roots(&node.iroh_relay_ca).map_err(StartError::Config)?;
    config.relay_tls = Some(relay::ca_config(roots));
    let store = match previous {
        Some(port) => {
            config.bind = SocketAddr::new(bind.ip(), port);
            match Store::open(config.clone()).await {
                Ok(store) => store,
                Err(e) => {
                    tracing::warn!(
                        port,
                        "the previous data port is taken ({e}); using a new one"
                    );
                    config.bind = bind;
                    Store::open(config).await?
                }
            }
        }
        None => Store::open(config).await?,
    };
    if let Some(addr) = store.addr().ip_addrs().next() {
        let _ = std::fs::write(&port_file, addr.port().to_string());
    }
    Ok(store)
}

/// Reads the node's key, or makes one (readable by its owner only).
fn load_or_create_key(path: &Path) -> Result<NodeKey, StartError> {
    let err = |reason: String| StartError::Key {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                err(format!(
                    "holds {} bytes, not 32: restore the file or move it away to make a new \
                     identity",
                    bytes.len()
                ))
            })?;
            Ok(NodeKey::from_secret_bytes(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| err(format!("no OS randomness: {e}")))?;
            write_private(path, &secret).map_err(|e| err(e.to_string()))?;
            Ok(NodeKey::from_secret_bytes(secret))
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// Writes a secret file atomically (a temp file renamed over), mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
