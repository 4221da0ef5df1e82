//! `skrei node`'s flags and `--config` file, resolved into a [`NodeConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use protocol::job::NetworkMode;
use protocol::policy::parse_accept_network;
use serde::Deserialize;
use skrei_node::daemon::NodeConfig;

use super::super::parse_size;

/// Every `skrei node` flag; a `--config` TOML file uses the same names as keys.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeFlags {
    /// A TOML file of settings, keys named like these flags; flags win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Where the node keeps its key, database and data.
    #[arg(long, env = "SKREI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// libp2p listen address (repeatable). Default: all interfaces, TCP
    /// and QUIC port 4001 (another free port if taken).
    #[arg(long, value_name = "MULTIADDR")]
    #[serde(default)]
    listen: Vec<String>,
    /// A peer to join through (repeatable), e.g.
    /// /dns4/boot.example.org/tcp/4001/p2p/12D3Koo...
    #[arg(long, value_name = "MULTIADDR")]
    #[serde(default)]
    bootstrap: Vec<String>,
    /// An address to announce as this node's (repeatable): a port
    /// forwarded by hand, a DNS name. Confirmed addresses are announced
    /// without it; listen addresses never are.
    #[arg(long, value_name = "MULTIADDR")]
    #[serde(default)]
    announce: Vec<String>,
    /// A private network (CIDR) this node is part of and trusts, e.g. a
    /// Docker network or a company LAN (repeatable): its addresses there
    /// are announced and peers' there are dialled, like global ones.
    #[arg(long, value_name = "CIDR")]
    #[serde(default)]
    private_network: Vec<String>,
    /// Relay circuits for nodes behind NAT (circuit relay v2): for a node
    /// with a public address.
    #[arg(long)]
    #[serde(default)]
    relay_server: bool,
    /// With --relay-server: circuits carried at once. Default 1024.
    #[arg(long, value_name = "N")]
    relay_max_circuits: Option<usize>,
    /// With --relay-server: NATed nodes holding a reservation at once. Default 512.
    #[arg(long, value_name = "N")]
    relay_max_reservations: Option<usize>,
    /// With --relay-server: bytes one circuit carries before it is
    /// renewed. Default 256Mi.
    #[arg(long, value_name = "SIZE")]
    relay_max_circuit_bytes: Option<String>,
    /// With --relay-server: seconds one circuit lasts before it is
    /// renewed. Default 3600.
    #[arg(long, value_name = "SECONDS")]
    relay_max_circuit_duration: Option<u64>,
    /// With --relay-server: also run an iroh relay (data between nodes
    /// behind NAT), serving HTTPS on this address (TCP) and QUIC address
    /// discovery on the same port (UDP). Default 0.0.0.0:443. Needs
    /// --iroh-relay-cert, --iroh-relay-key and --iroh-relay-url.
    #[arg(long, value_name = "HOST:PORT")]
    iroh_relay_listen: Option<String>,
    /// The iroh relay's TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    iroh_relay_cert: Option<PathBuf>,
    /// The iroh relay's TLS private key (PEM).
    #[arg(long, value_name = "FILE")]
    iroh_relay_key: Option<PathBuf>,
    /// The URL nodes reach this node's iroh relay at, gossiped to them:
    /// https://NAME:PORT, NAME one the certificate is valid for.
    #[arg(long, value_name = "URL")]
    iroh_relay_url: Option<String>,
    /// Bytes a second this node's iroh relay reads from one client.
    /// Default 12500000 (100 Mbit/s).
    #[arg(long, value_name = "SIZE")]
    iroh_relay_client_rate: Option<String>,
    /// An iroh relay this node's data goes through when no direct path
    /// works (repeatable): https://NAME:PORT. Relays bootstrap peers run
    /// are used too; no other peer's ever.
    #[arg(long, value_name = "URL")]
    #[serde(default)]
    iroh_relay: Vec<String>,
    /// A PEM file of CA certificates iroh relays' certificates may chain
    /// to, besides the Web PKI roots (repeatable): for relays with a
    /// private CA. Used for relays only.
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    iroh_relay_ca: Vec<PathBuf>,
    /// Ask the home router for a port mapping (UPnP IGD).
    #[arg(long)]
    #[serde(default)]
    upnp: bool,
    /// The API's address. Default 127.0.0.1:1234; keep it on loopback.
    #[arg(long, value_name = "HOST:PORT")]
    api: Option<String>,
    /// A source address or CIDR range the API answers besides loopback
    /// (repeatable), e.g. the Docker gateway when the node runs in a
    /// container. Whoever is in it can run jobs: never a job network.
    #[arg(long, value_name = "CIDR")]
    #[serde(default)]
    api_allow: Vec<String>,
    /// Network access this node gives jobs: none (default), http or full.
    #[arg(long, value_name = "MODE")]
    accept_network: Option<String>,
    /// Domains `http` jobs may reach here, one per line; re-read when it changes.
    #[arg(long, value_name = "FILE")]
    allowlist: Option<PathBuf>,
    /// Engines offered, comma-separated (wasm, docker). Default wasm.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    engines: Vec<String>,
    /// Executions at once. Default 4.
    #[arg(long)]
    capacity: Option<u32>,
    /// What this node offers jobs, e.g. `cpu=4,memory=8Gi,disk=100Gi`: it
    /// bids only on tasks whose Resources fit what is free of it. CPU and
    /// memory left out: the machine's, less a reserve for the node. Disk
    /// (what a task's inputs and results may take) left out: not checked.
    #[arg(long, value_name = "cpu=N,memory=SIZE,disk=SIZE")]
    resources: Option<String>,
    /// The share of the slots, in percent, one requester's jobs may hold
    /// while other requesters' jobs wait here. Default 25; 100: no limit.
    #[arg(long, value_name = "PERCENT")]
    requester_share: Option<u32>,
    /// What this node's link does, e.g. `down=100Mbit,up=20Mbit`: where its
    /// estimates of fetch times start (it learns from its fetches too).
    /// Jobs whose inputs it could not fetch within their ExecutionTimeout
    /// are refused; the upload rate tells others how fast this node's
    /// inputs leave it. Default: unknown until measured.
    #[arg(long, value_name = "down=RATE,up=RATE")]
    link: Option<String>,
    /// Bytes per second each way for each `http` job. Default 1250000 (10 Mbit/s).
    #[arg(long)]
    http_rate: Option<u64>,
    /// Find peers on the local network with mDNS.
    #[arg(long)]
    #[serde(default)]
    mdns: bool,
    /// A folder local-path inputs may come from (repeatable); `DIR:rw`
    /// also lets jobs write to it (`ReadWrite: true`), mounted as it is.
    #[arg(long, value_name = "DIR[:rw]")]
    #[serde(default)]
    local_inputs: Vec<PathBuf>,
    /// A label of this node, `KEY=VALUE` (repeatable): jobs' Constraints
    /// are checked against these.
    #[arg(long, value_name = "KEY=VALUE")]
    #[serde(default)]
    label: Vec<String>,
    /// A variable of this node's environment jobs may read with
    /// `env:NAME` in their Env (repeatable; `PREFIX*` allows a family).
    /// Without it, such jobs are refused.
    #[arg(long, value_name = "NAME")]
    #[serde(default)]
    allow_env: Vec<String>,
    /// A folder `dir` publishers may write results under (repeatable);
    /// without one, jobs with a `dir` publisher are refused.
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    publish_dir: Vec<PathBuf>,
    /// Seconds between node info messages. Default 30.
    #[arg(long, value_name = "SECONDS")]
    node_info_interval: Option<u64>,
    /// Let URL inputs reach private and loopback addresses (testing only).
    #[arg(long, hide = true)]
    #[serde(default)]
    allow_private_downloads: bool,
    /// A special-purpose range (CIDR) `http` jobs may reach, e.g. a private
    /// service of yours (repeatable).
    #[arg(long, value_name = "CIDR")]
    #[serde(default)]
    proxy_allow_range: Vec<String>,
    /// NAME=IP: the answer `http` jobs' proxies give for NAME (repeatable).
    #[arg(long, value_name = "NAME=IP")]
    #[serde(default)]
    proxy_resolve: Vec<String>,
    /// Ports CONNECT may reach through the proxies, comma-separated. Default 443.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    #[serde(default)]
    proxy_connect_ports: Vec<u16>,
    /// Ports plain HTTP may reach through the proxies, comma-separated.
    /// Default 80.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    #[serde(default)]
    proxy_http_ports: Vec<u16>,
    /// Most bytes of one job's results this node fetches as requester
    /// (`10Gi` by default); bigger results fail the job with that reason.
    #[arg(long, value_name = "SIZE")]
    max_result_size: Option<String>,
    /// Most bytes one CID input may take on this node (`10Gi` by default).
    #[arg(long, value_name = "SIZE")]
    max_input_size: Option<String>,
    /// A registry this node pulls the Docker images jobs name from, when
    /// its engine lacks them (repeatable): `docker.io` for Docker Hub, a
    /// host with an optional port (`ghcr.io`, `127.0.0.1:5000`), or `*` for
    /// any registry at a public address. Without it the node pulls nothing
    /// and refuses jobs whose image it lacks.
    #[arg(long, value_name = "REGISTRY")]
    #[serde(default)]
    pull_from: Vec<String>,
    /// Most bytes one pulled image may take (`10Gi` by default); larger
    /// images fail the job with that reason and are removed.
    #[arg(long, value_name = "SIZE")]
    max_image_size: Option<String>,
    /// Disk the images this node pulled may take together (`20Gi` by
    /// default): above it the least recently used are removed. Images that
    /// were in the engine before the node pulled them are never removed.
    #[arg(long, value_name = "SIZE")]
    image_cache: Option<String>,
    /// The S3-compatible endpoint S3 inputs are read from and the `s3`
    /// publisher writes to, with the operator's AWS credentials
    /// (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the profile
    /// AWS_PROFILE of ~/.aws/credentials; never a job's). Without it, jobs
    /// using S3 are refused.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// The region S3 requests are signed for (default: AWS_REGION, else
    /// us-east-1).
    #[arg(long, value_name = "REGION", requires = "s3_endpoint")]
    s3_region: Option<String>,
}

impl NodeFlags {
    /// Flags over the config file over the defaults.
    pub(super) fn resolve(mut self) -> anyhow::Result<NodeConfig> {
        if let Some(path) = self.config.take() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading config {}", path.display()))?;
            let file: NodeFlags = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
            self = self.over(file);
        }
        let data_dir = self.data_dir.unwrap_or_else(default_data_dir);
        let mut config = NodeConfig::new(data_dir);
        if self.listen.is_empty() {
            config.listen = vec![
                "/ip4/0.0.0.0/tcp/4001".parse().expect("a valid multiaddr"),
                "/ip4/0.0.0.0/udp/4001/quic-v1"
                    .parse()
                    .expect("a valid multiaddr"),
            ];
            config.listen_fallback = true;
        } else {
            config.listen = self
                .listen
                .iter()
                .map(|a| {
                    a.parse()
                        .with_context(|| format!("--listen {a}: not a multiaddr"))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        config.bootstrap = self
            .bootstrap
            .iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("--bootstrap {a}: not a multiaddr"))
            })
            .collect::<anyhow::Result<_>>()?;
        config.announce = self
            .announce
            .iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("--announce {a}: not a multiaddr"))
            })
            .collect::<anyhow::Result<_>>()?;
        for range in &self.private_network {
            let cidr = protocol::address::Cidr::parse(range)
                .map_err(|e| anyhow::anyhow!("--private-network {range}: {e}"))?;
            config.private_networks.push(cidr);
        }
        let relay_tuning = self.relay_max_circuits.is_some()
            || self.relay_max_reservations.is_some()
            || self.relay_max_circuit_bytes.is_some()
            || self.relay_max_circuit_duration.is_some();
        if relay_tuning && !self.relay_server {
            bail!("the --relay-max-* flags tune a relay server: add --relay-server");
        }
        if self.relay_server {
            let mut limits = skrei_node::p2p::RelayLimits::default();
            if let Some(n) = self.relay_max_circuits {
                limits.max_circuits = n;
            }
            if let Some(n) = self.relay_max_reservations {
                limits.max_reservations = n;
            }
            if let Some(size) = &self.relay_max_circuit_bytes {
                limits.max_circuit_bytes = parse_size("--relay-max-circuit-bytes", size)?;
            }
            if let Some(secs) = self.relay_max_circuit_duration {
                if secs == 0 || secs > u64::from(u32::MAX) {
                    bail!(
                        "--relay-max-circuit-duration {secs}: give 1 to {} seconds",
                        u32::MAX
                    );
                }
                limits.max_circuit_duration = Duration::from_secs(secs);
            }
            config.relay_server = Some(limits);
        }
        let iroh_relay_flags = [
            self.iroh_relay_listen.is_some(),
            self.iroh_relay_cert.is_some(),
            self.iroh_relay_key.is_some(),
            self.iroh_relay_url.is_some(),
            self.iroh_relay_client_rate.is_some(),
        ];
        if iroh_relay_flags.iter().any(|f| *f) {
            if !self.relay_server {
                bail!(
                    "the --iroh-relay-listen/-cert/-key/-url flags set up a relay server: add --relay-server"
                );
            }
            let (Some(cert), Some(key), Some(url)) = (
                &self.iroh_relay_cert,
                &self.iroh_relay_key,
                &self.iroh_relay_url,
            ) else {
                bail!(
                    "an iroh relay needs --iroh-relay-cert, --iroh-relay-key and --iroh-relay-url"
                );
            };
            let listen = match &self.iroh_relay_listen {
                Some(a) => a.parse::<SocketAddr>().with_context(|| {
                    format!("--iroh-relay-listen {a}: give HOST:PORT, e.g. 0.0.0.0:443")
                })?,
                None => SocketAddr::from(([0, 0, 0, 0], 443)),
            };
            let url = skrei_node::daemon::relay::parse_url("--iroh-relay-url", url)
                .map_err(|e| anyhow::anyhow!(e))?;
            skrei_node::daemon::relay::readable("--iroh-relay-cert", cert)
                .map_err(|e| anyhow::anyhow!(e))?;
            skrei_node::daemon::relay::readable("--iroh-relay-key", key)
                .map_err(|e| anyhow::anyhow!(e))?;
            config.iroh_relay_server = Some(skrei_node::daemon::relay::IrohRelayServer {
                listen,
                cert: cert.clone(),
                key: key.clone(),
                url,
                client_rate: self
                    .iroh_relay_client_rate
                    .as_deref()
                    .map(|size| {
                        let bytes = parse_size("--iroh-relay-client-rate", size)?;
                        u32::try_from(bytes)
                            .ok()
                            .and_then(std::num::NonZeroU32::new)
                            .with_context(|| {
                                format!(
                                    "--iroh-relay-client-rate {size}: give 1 byte to 4Gi a second"
                                )
                            })
                    })
                    .transpose()?
                    .unwrap_or(skrei_node::daemon::relay::DEFAULT_CLIENT_RATE),
            });
        }
        for url in &self.iroh_relay {
            let url = skrei_node::daemon::relay::parse_url("--iroh-relay", url)
                .map_err(|e| anyhow::anyhow!(e))?;
            config.iroh_relays.push(url);
        }
        for file in &self.iroh_relay_ca {
            skrei_node::daemon::relay::readable("--iroh-relay-ca", file)
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        config.iroh_relay_ca = self.iroh_relay_ca.clone();
        config.upnp = self.upnp;
        if let Some(api) = &self.api {
            config.api = api
                .parse::<SocketAddr>()
                .with_context(|| format!("--api {api}: give HOST:PORT, e.g. 127.0.0.1:1234"))?;
        }
        for range in &self.api_allow {
            let cidr = protocol::address::Cidr::parse(range)
                .map_err(|e| anyhow::anyhow!("--api-allow {range}: {e}"))?;
            config.api_allow.push(cidr);
        }
        if let Some(mode) = &self.accept_network {
            config.accept_network =
                parse_accept_network(mode).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        config.allowlist = self.allowlist;
        if config.allowlist.is_some() && config.accept_network == NetworkMode::None {
            bail!(
                "--allowlist limits http jobs, which this node refuses: add --accept-network=http"
            );
        }
        if !self.engines.is_empty() {
            for engine in &self.engines {
                if !matches!(engine.as_str(), "wasm" | "docker") {
                    bail!("--engines {engine}: the engines are wasm and docker");
                }
            }
            config.engines = self.engines;
        }
        if let Some(c) = self.capacity {
            config.capacity = c;
        }
        if let Some(text) = &self.resources {
            let offer = protocol::resources::parse_offer(text)
                .map_err(|e| anyhow::anyhow!("--resources {text}: {e}"))?;
            config.resources = offer;
        }
        if let Some(percent) = self.requester_share {
            if !(1..=100).contains(&percent) {
                bail!(
                    "--requester-share {percent}: give a percentage from 1 to 100 (100: no limit)"
                );
            }
            config.requester_share_percent = percent;
        }
        if let Some(text) = &self.link {
            let (down, up) = protocol::link::parse_link(text)
                .map_err(|e| anyhow::anyhow!("--link {text}: {e}"))?;
            config.link = protocol::link::LinkRates::declared(down, up);
        }
        if let Some(rate) = self.http_rate {
            config.http_rate = rate;
        }
        config.mdns = self.mdns;
        for dir in self.local_inputs {
            let (dir, writable) = local_input_dir(dir)?;
            if writable {
                config.local_inputs_rw.push(dir.clone());
            }
            config.local_inputs.push(dir);
        }
        for text in &self.label {
            let (key, value) = protocol::job::constraint::parse_node_label(text)
                .map_err(|e| anyhow::anyhow!("--label {text}: {e}"))?;
            if config.labels.insert(key.clone(), value).is_some() {
                bail!("--label {text}: {key} is given twice; give each label once");
            }
        }
        if config.labels.len() > protocol::job::constraint::MAX_NODE_LABELS {
            bail!(
                "--label: {} labels, at most {} are allowed",
                config.labels.len(),
                protocol::job::constraint::MAX_NODE_LABELS
            );
        }
        for name in &self.allow_env {
            let bare = name.strip_suffix('*').unwrap_or(name);
            if !bare.is_empty() && protocol::job::rules::check_env_name(bare).is_err() {
                bail!("--allow-env {name}: give a variable's name, or a prefix ending in `*`");
            }
        }
        config.allow_env = self.allow_env;
        config.publish_dirs = absolute("--publish-dir", self.publish_dir)?;
        if let Some(secs) = self.node_info_interval {
            config.node_info_interval = Duration::from_secs(secs.max(1));
        }
        config.allow_private_downloads = self.allow_private_downloads;
        for range in &self.proxy_allow_range {
            config.proxy_allow_ranges.push(
                range
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--proxy-allow-range {range}: {e}"))?,
            );
        }
        for entry in &self.proxy_resolve {
            let (name, ip) = entry
                .split_once('=')
                .and_then(|(n, ip)| Some((n.to_string(), ip.parse().ok()?)))
                .with_context(|| format!("--proxy-resolve {entry}: write NAME=IP"))?;
            config.proxy_resolve.push((name, ip));
        }
        if !self.proxy_connect_ports.is_empty() {
            config.proxy_connect_ports = self.proxy_connect_ports;
        }
        if self.proxy_http_ports.contains(&0) {
            anyhow::bail!("--proxy-http-ports: 0 is not a port; list ports from 1 to 65535");
        }
        if !self.proxy_http_ports.is_empty() {
            config.proxy_http_ports = self.proxy_http_ports;
        }
        if let Some(size) = &self.max_result_size {
            config.max_result_size = parse_size("--max-result-size", size)?;
        }
        if let Some(size) = &self.max_input_size {
            config.max_input_size = parse_size("--max-input-size", size)?;
        }
        config.pull_from = protocol::image::PullPolicy::parse(&self.pull_from)
            .map_err(|e| anyhow::anyhow!("--pull-from: {e}"))?;
        if let Some(size) = &self.max_image_size {
            config.max_image_size = parse_size("--max-image-size", size)?;
        }
        if let Some(size) = &self.image_cache {
            config.image_cache = parse_size("--image-cache", size)?;
        }
        if let Some(endpoint) = &self.s3_endpoint {
            let region = self
                .s3_region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "us-east-1".into());
            let s3 = storage::s3::S3Config::from_aws_environment(endpoint, &region)
                .map_err(|e| anyhow::anyhow!("--s3-endpoint {endpoint}: {e}"))?;
            // The endpoint is checked now, not at the first job.
            storage::s3::S3Client::new(s3.clone())
                .map_err(|e| anyhow::anyhow!("--s3-endpoint: {e}"))?;
            config.s3 = Some(s3);
        }
        Ok(config)
    }

    /// `self` (flags) where set, `file` otherwise.
    fn over(self, file: NodeFlags) -> NodeFlags {
        fn pick<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
            flag.or(file)
        }
        fn list<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
            if flag.is_empty() { file } else { flag }
        }
        NodeFlags {
            config: None,
            data_dir: pick(self.data_dir, file.data_dir),
            listen: list(self.listen, file.listen),
            bootstrap: list(self.bootstrap, file.bootstrap),
            announce: list(self.announce, file.announce),
            private_network: list(self.private_network, file.private_network),
            relay_server: self.relay_server || file.relay_server,
            relay_max_circuits: pick(self.relay_max_circuits, file.relay_max_circuits),
            relay_max_reservations: pick(self.relay_max_reservations, file.relay_max_reservations),
            relay_max_circuit_bytes: pick(
                self.relay_max_circuit_bytes,
                file.relay_max_circuit_bytes,
            ),
            relay_max_circuit_duration: pick(
                self.relay_max_circuit_duration,
                file.relay_max_circuit_duration,
            ),
            iroh_relay_listen: pick(self.iroh_relay_listen, file.iroh_relay_listen),
            iroh_relay_cert: pick(self.iroh_relay_cert, file.iroh_relay_cert),
            iroh_relay_key: pick(self.iroh_relay_key, file.iroh_relay_key),
            iroh_relay_url: pick(self.iroh_relay_url, file.iroh_relay_url),
            iroh_relay_client_rate: pick(self.iroh_relay_client_rate, file.iroh_relay_client_rate),
            iroh_relay: list(self.iroh_relay, file.iroh_relay),
            iroh_relay_ca: list(self.iroh_relay_ca, file.iroh_relay_ca),
            upnp: self.upnp || file.upnp,
            api: pick(self.api, file.api),
            api_allow: list(self.api_allow, file.api_allow),
            accept_network: pick(self.accept_network, file.accept_network),
            allowlist: pick(self.allowlist, file.allowlist),
            engines: list(self.engines, file.engines),
            capacity: pick(self.capacity, file.capacity),
            resources: pick(self.resources, file.resources),
            requester_share: pick(self.requester_share, file.requester_share),
            link: pick(self.link, file.link),
            http_rate: pick(self.http_rate, file.http_rate),
            mdns: self.mdns || file.mdns,
            local_inputs: list(self.local_inputs, file.local_inputs),
            label: list(self.label, file.label),
            allow_env: list(self.allow_env, file.allow_env),
            publish_dir: list(self.publish_dir, file.publish_dir),
            node_info_interval: pick(self.node_info_interval, file.node_info_interval),
            allow_private_downloads: self.allow_private_downloads || file.allow_private_downloads,
            proxy_allow_range: list(self.proxy_allow_range, file.proxy_allow_range),
            proxy_resolve: list(self.proxy_resolve, file.proxy_resolve),
            proxy_connect_ports: list(self.proxy_connect_ports, file.proxy_connect_ports),
            proxy_http_ports: list(self.proxy_http_ports, file.proxy_http_ports),
            max_result_size: pick(self.max_result_size, file.max_result_size),
            max_input_size: pick(self.max_input_size, file.max_input_size),
            pull_from: list(self.pull_from, file.pull_from),
            max_image_size: pick(self.max_image_size, file.max_image_size),
            image_cache: pick(self.image_cache, file.image_cache),
            s3_endpoint: pick(self.s3_endpoint, file.s3_endpoint),
            s3_region: pick(self.s3_region, file.s3_region),
        }
    }
}

/// Folders as absolute paths (jobs name absolute paths, so a relative
/// folder would never match).
fn absolute(flag: &str, dirs: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    dirs.into_iter()
        .map(|d| {
            std::path::absolute(&d)
                .with_context(|| format!("{flag} {}: give an absolute path", d.display()))
        })
        .collect()
}

/// One `--local-inputs` folder, absolute, and whether jobs may write to
/// it (`DIR:rw`; `DIR:ro` is the default said aloud).
fn local_input_dir(dir: PathBuf) -> anyhow::Result<(PathBuf, bool)> {
    let text = dir.to_string_lossy();
    let (path, writable) = match text.rsplit_once(':') {
        Some((path, "rw")) => (PathBuf::from(path), true),
        Some((path, "ro")) => (PathBuf::from(path), false),
        _ => (dir.clone(), false),
    };
    if path.as_os_str().is_empty() {
        bail!("--local-inputs {text}: give a folder before :rw, e.g. /srv/work:rw");
    }
    let path = absolute("--local-inputs", vec![path])?.remove(0);
    Ok((path, writable))
}

/// Where a node keeps its data unless told otherwise.
fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/skrei"),
        None => PathBuf::from(".skrei"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_http_ports_from_the_flag_or_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "proxy-http-ports = [80, 8080]\n").unwrap();
        let from_file = NodeFlags {
            config: Some(file.clone()),
            ..NodeFlags::default()
        };
        assert_eq!(from_file.resolve().unwrap().proxy_http_ports, [80, 8080]);
        let flag_wins = NodeFlags {
            config: Some(file),
            proxy_http_ports: vec![8081],
            ..NodeFlags::default()
        };
        assert_eq!(flag_wins.resolve().unwrap().proxy_http_ports, [8081]);
        assert_eq!(
            NodeFlags::default().resolve().unwrap().proxy_http_ports,
            [80]
        );
        let zero = NodeFlags {
            proxy_http_ports: vec![0],
            ..NodeFlags::default()
        };
        assert!(
            zero.resolve()
                .unwrap_err()
                .to_string()
                .contains("not a port")
        );
    }

    // R-VOL-4: `DIR:rw` lists a folder jobs may read and write; `DIR` and
    // `DIR:ro` only read; a relative folder is made absolute.
    #[test]
    fn local_inputs_read_rw_suffixes() {
        let flags = NodeFlags {
            local_inputs: ["/srv/work:rw", "/srv/ref", "/srv/ro:ro", "rel:rw"]
                .map(PathBuf::from)
                .into(),
            ..NodeFlags::default()
        };
        let config = flags.resolve().unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            config.local_inputs,
            [
                PathBuf::from("/srv/work"),
                "/srv/ref".into(),
                "/srv/ro".into(),
                here.join("rel")
            ]
        );
        assert_eq!(
            config.local_inputs_rw,
            [PathBuf::from("/srv/work"), here.join("rel")]
        );
        let bare = NodeFlags {
            local_inputs: vec![PathBuf::from(":rw")],
            ..NodeFlags::default()
        };
        assert!(
            bare.resolve()
                .unwrap_err()
                .to_string()
                .contains("give a folder")
        );
    }
}
