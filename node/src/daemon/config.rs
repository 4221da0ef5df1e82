//! How a node is set up: `skrei node` flags, or the TOML file given with
//! `--config`, whose keys are the flags' names (R-OPS-1).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::Multiaddr;
use protocol::job::NetworkMode;
use protocol::policy::{AcceptancePolicy, Allowlist};

/// A node's settings. [`NodeConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Holds the key, the database, the blob store and executions.
    pub data_dir: PathBuf,
    /// libp2p listen addresses.
    pub listen: Vec<Multiaddr>,
    /// When a listen address's port is taken, listen on another free port
    /// instead of failing (and say so): for the default addresses.
    pub listen_fallback: bool,
    /// Peers to join through.
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses announced as this node's besides the confirmed ones.
    pub announce: Vec<Multiaddr>,
    /// Private networks the operator declares its own (a Docker network,
    /// a company LAN): addresses there are dialled and announced like
    /// global ones.
    pub private_networks: Vec<protocol::address::Cidr>,
    /// Run a circuit relay v2 server with these limits.
    pub relay_server: Option<crate::p2p::RelayLimits>,
    /// With `relay_server`: an iroh relay too, for data between nodes
    /// behind NAT (`--iroh-relay-*`; see `daemon::relay`).
    pub iroh_relay_server: Option<super::relay::IrohRelayServer>,
    /// Relays the blob store uses from the start (`--iroh-relay`), besides
    /// its own and those its bootstrap peers run.
    pub iroh_relays: Vec<iroh::RelayUrl>,
    /// PEM files of extra roots relays' TLS certificates are verified
    /// against (`--iroh-relay-ca`), besides the Web PKI's.
    pub iroh_relay_ca: Vec<PathBuf>,
    /// Ask the router for a port mapping (UPnP).
    pub upnp: bool,
    /// The API's address (loopback by default, R-NET-7).
    pub api: SocketAddr,
    /// Sources besides loopback the API answers, e.g. the host of a node
    /// in a container. Never a job network: what is here can start jobs.
    pub api_allow: Vec<protocol::address::Cidr>,
    /// Where the blob store listens (QUIC). `None`: loopback when every
    /// libp2p listen address is loopback, all interfaces otherwise, so that
    /// nodes that can reach each other can also fetch from each other.
    pub data_listen: Option<SocketAddr>,
    /// The highest network mode this node runs (R-POL-1).
    pub accept_network: NetworkMode,
    /// Domains `http` jobs may use here (R-POL-2); re-read when it changes.
    pub allowlist: Option<PathBuf>,
    /// Engines offered: `wasm`, `docker`.
    pub engines: Vec<String>,
    /// Executions at once.
    pub capacity: u32,
    /// What one task may ask for at most, and what all the tasks bidding
    /// and running here hold at most together (R-PLC-1). CPU and memory
    /// left unset are the machine's, less a reserve for the node; disk
    /// unset is not checked.
    pub resources: protocol::job::Resources,
    /// The share of the slots, in percent, one requester's jobs may hold
    /// while others' wait here (R-PLC-2). Default 25.
    pub requester_share_percent: u32,
    /// What the operator says the link does (`--link`), bits per second:
    /// the start of the node's rate estimates (R-PLC-1). Default unknown.
    pub link: protocol::link::LinkRates,
    /// Bytes per second each way for an `http` job (R-NET-6).
    pub http_rate: u64,
    /// Find peers on the LAN with mDNS.
    pub mdns: bool,
    /// Folders local-path inputs may come from.
    pub local_inputs: Vec<PathBuf>,
    /// Those of `local_inputs` jobs may write to (`--local-inputs DIR:rw`).
    pub local_inputs_rw: Vec<PathBuf>,
    /// Folders `dir` publishers may write under; none: `dir` is refused
    /// (R-SEC-2).
    pub publish_dirs: Vec<PathBuf>,
    /// The node's labels (`--label`), for jobs' Constraints.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Variables of the node's environment jobs may read (`--allow-env`).
    pub allow_env: Vec<String>,
    /// How often node info is gossiped.
    pub node_info_interval: Duration,
    /// How long the requester collects bids before awarding.
    pub bid_window: Duration,
    /// URL inputs may reach private addresses (tests on loopback only).
    pub allow_private_downloads: bool,
    /// Special-purpose ranges `http` jobs' proxies may reach (R-NET-8).
    pub proxy_allow_ranges: Vec<protocol::address::Cidr>,
    /// Fixed answers the proxies give for names (private deployments, tests).
    pub proxy_resolve: Vec<(String, std::net::IpAddr)>,
    /// Ports `CONNECT` may reach through the proxies. Default 443.
    pub proxy_connect_ports: Vec<u16>,
    /// Ports plain HTTP may reach through the proxies. Default 80.
    pub proxy_http_ports: Vec<u16>,
    /// Most bytes of one job's results this node fetches as its requester
    /// (R-SEC-5). Default 10 GiB.
    pub max_result_size: u64,
    /// Most bytes one CID input may take when this node runs a job
    /// (R-SEC-5). Default 10 GiB.
    pub max_input_size: u64,
    /// The registries missing Docker images are pulled from (`--pull-from`);
    /// none by default.
    pub pull_from: protocol::image::PullPolicy,
    /// Most bytes one pulled image may take (R-SEC-5). Default 10 GiB.
    pub max_image_size: u64,
    /// Disk the images this node pulled may take together before the least
    /// recently used are removed. Default 20 GiB.
    pub image_cache: u64,
    /// The node's S3 endpoint, region and credentials (`--s3-endpoint`),
    /// for S3 inputs and the `s3` publisher; none by default.
    pub s3: Option<storage::s3::S3Config>,
}

impl NodeConfig {
    /// Defaults: loopback everywhere, `none` jobs only, WASM.
    pub fn new(data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.into(),
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr")],
            listen_fallback: false,
            bootstrap: Vec::new(),
            announce: Vec::new(),
            private_networks: Vec::new(),
            relay_server: None,
            iroh_relay_server: None,
            iroh_relays: Vec::new(),
            iroh_relay_ca: Vec::new(),
            upnp: false,
            api: SocketAddr::from(([127, 0, 0, 1], 1234)),
            api_allow: Vec::new(),
            data_listen: None,
            accept_network: NetworkMode::None,
            allowlist: None,
            engines: vec!["wasm".into()],
            capacity: 4,
            resources: protocol::job::Resources::default(),
            requester_share_percent: 25,
            link: protocol::link::LinkRates::default(),
            http_rate: 1_250_000,
            mdns: false,
            local_inputs: Vec::new(),
            local_inputs_rw: Vec::new(),
            publish_dirs: Vec::new(),
            labels: std::collections::BTreeMap::new(),
            allow_env: Vec::new(),
            node_info_interval: Duration::from_secs(30),
            bid_window: Duration::from_millis(300),
            allow_private_downloads: false,
            proxy_allow_ranges: Vec::new(),
            proxy_resolve: Vec::new(),
            proxy_connect_ports: vec![443],
            proxy_http_ports: vec![80],
            max_result_size: 10 << 30,
            max_input_size: 10 << 30,
            pull_from: protocol::image::PullPolicy::default(),
            max_image_size: 10 << 30,
            image_cache: 20 << 30,
            s3: None,
        }
    }
}

impl NodeConfig {
    /// The blob store's bind address (see [`NodeConfig::data_listen`]); port
    /// 0 means "the port it had before, or any".
    pub fn data_bind(&self) -> SocketAddr {
        if let Some(addr) = self.data_listen {
            return addr;
        }
        // No listen address at all: nothing says the node is public.
        if self.listen.is_empty() || self.loopback_only() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    }
}

impl NodeConfig {
    /// Whether every libp2p listen address is loopback: a local testnet,
    /// whose loopback addresses are the ones to share.
    pub fn loopback_only(&self) -> bool {
        crate::p2p::transport::loopback_only(&self.listen)
    }
}

/// The acceptance policy from `--accept-network` and `--allowlist`; the
/// error says which file and line is wrong.
pub fn load_policy(
    accept: NetworkMode,
    allowlist: Option<&Path>,
) -> Result<AcceptancePolicy, String> {
    let allowlist = match allowlist {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read the allowlist {}: {e}; give a file with one domain per line",
                    path.display()
                )
            })?;
            Some(Allowlist::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?)
        }
    };
    Ok(AcceptancePolicy::new(accept, allowlist))
}
