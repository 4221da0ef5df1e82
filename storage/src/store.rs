//! The node's content store: an iroh-blobs file store under the data dir,
//! served to other nodes over an iroh endpoint (R-P2P-4, R-VOL-3).
//!
//! The endpoint needs no relay and no internet: it binds one socket (by
//! default `127.0.0.1:0`), and by default runs no relay, no address lookup
//! and no port mapping (relays and n0's DNS address lookup are options). It
//! is reached by its [`EndpointAddr`] (node id + socket address), which
//! serialises and can travel in gossip. Note that `Endpoint::online()`
//! never resolves without relays: nothing here waits on it. Every transfer is
//! verified against the BLAKE3 hash while it streams (iroh-blobs' bao
//! encoding), and a fetch asks only for the chunks not already present, so a
//! cut transfer resumes where it stopped.
//!
//! A file is one blob; a directory is a manifest blob ([`crate::manifest`])
//! plus the blobs of its entries, fetched by walking the manifest.
//!
//! Notes on iroh-blobs 0.104, learnt here:
//! - `Remote::fetch` asks only for the ranges missing locally; its
//!   `Progress(n)` counts payload bytes of that request only, so bytes
//!   already present are reported separately ([`FetchReport::bytes_present`]).
//! - Providers check too: a provider whose stored bytes no longer match the
//!   hash resets the stream (error code 3) rather than send them; a
//!   receiver sees a *lying* provider as "parent hash mismatch".
//! - `get::request::get_verified_size` proves a blob's size cheaply (last
//!   chunk only): used to refuse oversized manifests before downloading.
//! - The file store inlines blobs and outboards up to 16 KiB in its
//!   database; larger ones live in `blobs/data/<hex>.data` / `.obao4`.
//! - `Router::shutdown` calls `BlobsProtocol::shutdown`, which shuts the
//!   store: shutting the router down is the whole, correctly ordered,
//!   shutdown.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cid::Cid;
use iroh::endpoint::{NetReportConfig, PortmapperConfig, presets};
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr, RelayUrl, SecretKey, TransportAddr};
use iroh_blobs::BlobsProtocol;
use iroh_blobs::api::proto::BlobStatus;
use iroh_blobs::store::fs::FsStore;

use crate::cid::{self as cids, CidError, Content, Kind};
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest, ManifestError};

/// Deepest directory nesting accepted when walking a manifest from the network.
pub const MAX_DEPTH: usize = 64;
/// Most entries one tree may have, counting each path (a subtree that a
/// hostile manifest lists many times counts each time it would be written).
pub const MAX_ENTRIES: u64 = 1_000_000;

/// Files at least this large have their import progress read only every
/// [`PROGRESS_PERIOD`] (see `Store::import_file`).
const PACED_PROGRESS_BYTES: u64 = 16 << 20;
/// How often a large file's import progress is read.
const PROGRESS_PERIOD: Duration = Duration::from_millis(1);

/// How a [`Store`] is opened.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Holds the blob store (`blobs/`) and the node's iroh key (`iroh.key`).
    pub data_dir: PathBuf,
    /// The one socket the endpoint binds.
    pub bind: SocketAddr,
    /// A provider that sends nothing for this long is given up for the next one.
    pub stall_timeout: Duration,
    /// Longest wait for a connection to a provider.
    pub connect_timeout: Duration,
    /// Relay servers for peers behind NAT. Empty (the default): no relay,
    /// peers are reached only at the socket addresses they give. More can be
    /// added to the running store ([`Store::add_relay`]). A relay's QUIC
    /// address discovery is expected on the UDP port of the same number as
    /// its URL's (HTTPS) port, as `skrei node --relay-server` runs it.
    pub relays: Vec<iroh::RelayUrl>,
    /// The roots relays' TLS certificates are verified against. `None`:
    /// the Web PKI roots compiled in (Mozilla's). Verification is never off.
    pub relay_tls: Option<iroh::tls::CaTlsConfig>,
    /// Whether [`Store::addr`] gives special-purpose (private, loopback,
    /// ...) socket addresses. True by default (a store on loopback); a node
    /// on the wide network sets it false, so that only global addresses and
    /// its relay are given out.
    pub private_addrs: bool,
    /// Private ranges whose addresses [`Store::addr`] gives out anyway: a
    /// private network the operator declared its own (`--private-network`).
    pub private_networks: Vec<protocol::address::Cidr>,
    /// Publish and resolve node addresses through n0's DNS (pkarr) address
    /// lookup. Off by default: it needs the internet.
    pub address_lookup: bool,
}

impl StoreConfig {
    /// Loopback only, port chosen by the system.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            stall_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            relays: Vec::new(),
            relay_tls: None,
            private_addrs: true,
            private_networks: Vec::new(),
            address_lookup: false,
        }
    }
}

/// Progress of a [`Store::fetch`], for progress bars: `present + fetched`
/// of `total` bytes are in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Payload bytes received from providers so far in this fetch.
    pub fetched: u64,
    /// Bytes found already in the store so far (earlier fetches, resumed
    /// transfers, content shared with other trees).
    pub present: u64,
    /// The content's size once known: a file's verified size, or the sum of
    /// a tree's file sizes as its root manifest lists them.
    pub total: Option<u64>,
}

/// What a finished [`Store::fetch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchReport {
    /// Blobs (files and manifests) the content consists of.
    pub blobs: u64,
    /// Bytes of those blobs that were already in the store before the fetch.
    pub bytes_present: u64,
    /// Payload bytes received from providers.
    pub bytes_fetched: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir { path: PathBuf, source: io::Error },
    #[error("cannot open the blob store in {path}: {reason}")]
    BlobStore { path: PathBuf, reason: String },
    #[error("cannot bind the iroh endpoint to {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is a symbolic link; add its target instead")]
    Symlink { path: PathBuf },
    #[error("{path} is not a regular file or directory")]
    Special { path: PathBuf },
    #[error("{path}: file name is not UTF-8 or not a plain name ({reason})")]
    Name { path: PathBuf, reason: String },
    #[error("the blob store failed while adding {path}: {reason}")]
    Store { path: PathBuf, reason: String },
    #[error("{path} ({cid}) is not in the store: add a folder's entries before the folder")]
    Incomplete { path: PathBuf, cid: Cid },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(transparent)]
    Cid(#[from] CidError),
    #[error("{cid}: {source}")]
    Manifest { cid: Cid, source: ManifestError },
    #[error("{cid}: the blob store failed: {reason}")]
    Store { cid: Cid, reason: String },
    #[error("{cid} is not in the store; fetch it first")]
    Missing { cid: Cid },
    #[error("{cid}: directories nest deeper than {MAX_DEPTH} levels")]
    TooDeep { cid: Cid },
    #[error("{cid}: the tree has more than {MAX_ENTRIES} entries")]
    TooManyEntries { cid: Cid },
    #[error("{cid} is {size} bytes, more than the {max} accepted here")]
    TooLarge { cid: Cid, size: u64, max: u64 },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("cannot fetch {cid}: no providers given")]
    NoProviders { cid: Cid },
    #[error("cannot fetch {cid}: every provider failed: {}", failures.join("; "))]
    AllProvidersFailed { cid: Cid, failures: Vec<String> },
    #[error("cannot fetch {cid}: it is larger than the budget of {max} bytes")]
    TooLarge { cid: Cid, max: u64 },
    #[error("cannot fetch: {0}")]
    Content(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("cannot export {cid}: {target} already exists")]
    Exists { cid: Cid, target: PathBuf },
    #[error("cannot export {cid} to {target}: {source}")]
    Io {
        cid: Cid,
        target: PathBuf,
        source: io::Error,
    },
    #[error(
        "cannot export {cid}: it is {bytes} bytes written out, more than the budget of {max} bytes"
    )]
    TooLarge { cid: Cid, bytes: u64, max: u64 },
    #[error("cannot export: {0}")]
    Content(#[from] StoreError),
}

/// An iroh-blobs file store served over an offline iroh endpoint.
///
/// Clones share the store and the endpoint (cheap handles), so tasks can
/// each hold one; [`Store::shutdown`] on any clone closes them all.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) blobs: FsStore,
    pub(crate) router: Router,
    pub(crate) config: StoreConfig,
    /// The relays in the endpoint's map (iroh does not list them).
    relays: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<RelayUrl>>>,
}

impl Store {
    /// Opens (or creates) the store under `config.data_dir` and starts serving it.
    pub async fn open(config: StoreConfig) -> Result<Store, OpenError> {
        let dir = &config.data_dir;
        let data_err = |source| OpenError::DataDir {
            path: dir.clone(),
            source,
        };
        tokio::fs::create_dir_all(dir).await.map_err(data_err)?;
        let key = load_or_create_key(&dir.join("iroh.key"))
            .await
            .map_err(data_err)?;
        let blob_dir = dir.join("blobs");
        let blobs = FsStore::load(&blob_dir)
            .await
            .map_err(|e| OpenError::BlobStore {
                path: blob_dir.clone(),
                reason: format!("{e:#}"),
            })?;
        let bind_err = |reason: String| OpenError::Bind {
            addr: config.bind,
            reason,
        };
        let endpoint = match bind_endpoint(&config, key).await {
            Ok(endpoint) => endpoint,
            Err(reason) => {
                // The store is open: close it rather than leave its actor behind.
                let _ = blobs.shutdown().await;
                return Err(bind_err(reason));
            }
        };
        let router = Router::builder(endpoint)
            .accept(iroh_blobs::ALPN, BlobsProtocol::new(&blobs, None))
            .spawn();
        let relays = config.relays.iter().cloned().collect();
        Ok(Store {
            blobs,
            router,
            config,
            relays: std::sync::Arc::new(std::sync::Mutex::new(relays)),
        })
    }

    /// How other nodes reach this store: node id, socket addresses (only
    /// global ones unless [`StoreConfig::private_addrs`]) and its relay
    /// (the home relay once chosen, until then every relay it knows).
    pub fn addr(&self) -> EndpointAddr {
        let endpoint = self.router.endpoint();
        let mut addr = endpoint.addr();
        if addr.ip_addrs().next().is_none() {
            for socket in endpoint.bound_sockets() {
                addr = addr.with_ip_addr(socket);
            }
        }
        let private = self.config.private_addrs;
        let mut addrs: Vec<TransportAddr> = addr
            .addrs
            .iter()
            .filter(|a| match a {
                TransportAddr::Ip(ip) => {
                    private
                        || (!ip.ip().is_unspecified()
                            && (protocol::address::classify(ip.ip()).is_none()
                                || self
                                    .config
                                    .private_networks
                                    .iter()
                                    .any(|n| n.contains(ip.ip()))))
                }
                _ => true,
            })
            .cloned()
            .collect();
        if addr.relay_urls().next().is_none() {
            addrs.extend(self.relays().into_iter().map(TransportAddr::Relay));
        }
        EndpointAddr::from_parts(addr.id, addrs)
    }

    /// Every socket address the endpoint has, special-purpose ones
    /// included (what a node keeps jobs from reaching).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let endpoint = self.router.endpoint();
        let mut addrs: Vec<SocketAddr> = endpoint.addr().ip_addrs().copied().collect();
        if addrs.is_empty() {
            addrs = endpoint.bound_sockets();
        }
        addrs
    }

    /// Adds a relay to the running endpoint (see [`StoreConfig::relays`]);
    /// false if it was known already.
    pub async fn add_relay(&self, url: RelayUrl) -> bool {
        if !self.known_relays().insert(url.clone()) {
            return false;
        }
        let endpoint = self.router.endpoint();
        endpoint.insert_relay(url.clone(), relay_config(url)).await;
        true
    }

    /// The relays the endpoint uses.
    pub fn relays(&self) -> Vec<RelayUrl> {
        self.known_relays().iter().cloned().collect()
    }

    fn known_relays(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<RelayUrl>> {
        self.relays.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `addr` without the relays this store does not know: a provider's
    /// address names relays, and only those the operator chose (or learnt
    /// from peers the operator named) are ever contacted.
    pub fn known_relays_only(&self, addr: &EndpointAddr) -> EndpointAddr {
        let known = self.known_relays();
        let addrs = addr.addrs.iter().filter(|a| match a {
            TransportAddr::Relay(url) => known.contains(url),
            _ => true,
        });
        EndpointAddr::from_parts(addr.id, addrs.cloned())
    }

    /// Stops serving, then closes the blob store.
    ///
    /// The router's shutdown closes the endpoint and then the blob protocol,
    /// which shuts the store it serves: the store goes last, after no peer
    /// can reach it any more.
    pub async fn shutdown(self) {
        if let Err(e) = self.router.shutdown().await {
            tracing::warn!(error = %e, "iroh router did not shut down cleanly");
        }
    }

    /// Adds one file's bytes as they arrive (from a client of the node's
    /// API) and returns its `raw` CID. `what` names the source in errors.
    pub async fn add_stream(
        &self,
        bytes: impl futures::Stream<Item = io::Result<bytes::Bytes>> + Send + Sync + 'static,
        what: &Path,
    ) -> Result<Cid, AddError> {
        let items = self.blobs.add_stream(bytes).await.stream().await;
        let hash = self.tag_added(items, false, what).await?;
        self.sync(what).await?;
        Ok(cids::file_cid(*hash.as_bytes()))
    }

    /// Adds a folder's manifest (from a client of the node's API) once
    /// every entry it lists is complete in the store, and returns its
    /// `dag-cbor` CID: the store never holds a folder it cannot serve.
    pub async fn add_manifest(&self, manifest: &Manifest, what: &Path) -> Result<Cid, AddError> {
        for (name, entry) in &manifest.entries {
            let content = entry.content().map_err(|e| AddError::Store {
                path: what.join(name),
                reason: e.to_string(),
            })?;
            let complete = self
                .blob_complete(content)
                .await
                .map_err(|e| AddError::Store {
                    path: what.join(name),
                    reason: e.to_string(),
                })?;
            if !complete {
                return Err(AddError::Incomplete {
                    path: what.join(name),
                    cid: entry.cid,
                });
            }
        }
        let cid = self.store_manifest(manifest, what).await?;
        self.sync(what).await?;
        Ok(cid)
    }

    pub(crate) async fn store_manifest(
        &self,
        manifest: &Manifest,
        path: &Path,
    ) -> Result<Cid, AddError> {
        let tag = self
            .blobs
            .add_bytes(manifest.encode())
            .with_tag()
            .await
            .map_err(|e| AddError::Store {
                path: path.to_owned(),
                reason: format!("{e:#}"),
            })?;
        Ok(cids::dir_cid(*tag.hash.as_bytes()))
    }

    /// Commits the store's database: what was added survives the process
    /// being killed the moment after (iroh-blobs batches its writes).
    pub(crate) async fn sync(&self, path: &Path) -> Result<(), AddError> {
        self.blobs.sync_db().await.map_err(|e| AddError::Store {
            path: path.to_owned(),
            reason: format!("committing the store: {e:#}"),
        })
    }

    /// Copies one file into the store and tags it, returning its hash.
    ///
    /// iroh-blobs reports progress for every 16 KiB block it hashes, and
    /// each report read wakes this task on another runtime's thread: for a
    /// 1 GiB file that is 65,536 cross-thread wake-ups, which measured here
    /// more than doubled the time of the hashing pass. Large files' reports
    /// are therefore read at most once per [`PROGRESS_PERIOD`]; in between,
    /// the store drops the reports its channel has no room for (it only ever
    /// `try_send`s them) without waking anyone. The final result is always
    /// delivered. Small files keep the prompt loop: a pause would cost them
    /// more than the wake-ups it saves.
    pub(crate) async fn import_file(
        &self,
        path: &Path,
        size: u64,
    ) -> Result<iroh_blobs::Hash, AddError> {
        let paced = size >= PACED_PROGRESS_BYTES;
        let items = self.blobs.add_path(path).stream().await;
        self.tag_added(items, paced, path).await
    }

    /// Follows an import to its end and tags the blob, returning its hash.
    /// `paced`: read progress reports only every [`PROGRESS_PERIOD`].
    async fn tag_added(
        &self,
        items: impl futures::Stream<Item = iroh_blobs::api::blobs::AddProgressItem>,
        paced: bool,
        path: &Path,
    ) -> Result<iroh_blobs::Hash, AddError> {
        use futures::StreamExt;
        use iroh_blobs::api::blobs::AddProgressItem;
        let store_err = |reason: String| AddError::Store {
            path: path.to_owned(),
            reason,
        };
        let mut items = std::pin::pin!(items);
        let temp_tag = loop {
            match items.next().await {
                Some(AddProgressItem::Done(tt)) => break tt,
                Some(AddProgressItem::Error(e)) => return Err(store_err(format!("{e:#}"))),
                None => return Err(store_err("the import ended without a result".into())),
                Some(_) if paced => tokio::time::sleep(PROGRESS_PERIOD).await,
                Some(_) => {}
            }
        };
        // The temporary tag protects the blob until the persistent one exists.
        self.blobs
            .tags()
            .create(temp_tag.hash_and_format())
            .await
            .map_err(|e| store_err(format!("{e:#}")))?;
        Ok(temp_tag.hash())
    }

    /// Whether the content and, for a directory, everything under it is
    /// complete in the store.
    pub async fn has(&self, cid: &Cid) -> Result<bool, StoreError> {
        let content = cids::content(cid)?;
        let mut seen = HashSet::new();
        self.has_content(content, 0, &mut seen).await
    }

    async fn has_content(
        &self,
        content: Content,
        depth: usize,
        seen: &mut HashSet<Content>,
    ) -> Result<bool, StoreError> {
        // Each distinct blob is checked once, however often a tree lists it.
        if !seen.insert(content) {
            return Ok(true);
        }
        if seen.len() as u64 > MAX_ENTRIES {
            return Err(StoreError::TooManyEntries { cid: content.cid() });
        }
        if !self.blob_complete(content).await? {
            return Ok(false);
        }
        if content.kind == Kind::File {
            return Ok(true);
        }
        let manifest = self.manifest(content, depth).await?;
        for entry in manifest.entries.values() {
            let child = cids::content(&entry.cid)?;
            if !Box::pin(self.has_content(child, depth + 1, seen)).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn blob_complete(&self, content: Content) -> Result<bool, StoreError> {
        self.blobs
            .blobs()
            .has(content.blob_hash())
            .await
            .map_err(|e| store_err(content, e))
    }

    /// Reads and validates a directory's manifest, which must be in the store.
    pub async fn manifest_of(&self, cid: &Cid) -> Result<Manifest, StoreError> {
        let content = cids::content(cid)?;
        self.manifest(content, 0).await
    }

    pub(crate) async fn manifest(
        &self,
        content: Content,
        depth: usize,
    ) -> Result<Manifest, StoreError> {
        let cid = content.cid();
        if depth > MAX_DEPTH {
            return Err(StoreError::TooDeep { cid });
        }
        let hash = content.blob_hash();
        let status = self
            .blobs
            .blobs()
            .status(hash)
            .await
            .map_err(|e| store_err(content, e))?;
        match status {
            BlobStatus::Complete { size } if size > MAX_MANIFEST_BYTES as u64 => {
                return Err(StoreError::Manifest {
                    cid,
                    source: ManifestError::TooLarge(size as usize),
                });
            }
            BlobStatus::Complete { .. } => {}
            _ => return Err(StoreError::Missing { cid }),
        }
        let bytes = self
            .blobs
            .blobs()
            .get_bytes(hash)
            .await
            .map_err(|e| store_err(content, e))?;
        Manifest::decode(&bytes).map_err(|source| StoreError::Manifest { cid, source })
    }

    /// A complete blob's size, or `Missing`.
    pub async fn blob_size(&self, cid: &Cid) -> Result<u64, StoreError> {
        self.complete_size(cids::content(cid)?).await
    }

    pub(crate) async fn complete_size(&self, content: Content) -> Result<u64, StoreError> {
        let status = self
            .blobs
            .blobs()
            .status(content.blob_hash())
            .await
            .map_err(|e| store_err(content, e))?;
        match status {
            BlobStatus::Complete { size } => Ok(size),
            _ => Err(StoreError::Missing { cid: content.cid() }),
        }
    }

    /// A complete blob's size and a reader of its bytes (a file's content,
    /// or a directory's manifest), for streaming it out.
    pub async fn open_blob(
        &self,
        cid: &Cid,
    ) -> Result<(u64, impl tokio::io::AsyncRead + Send + Unpin + use<>), StoreError> {
        let content = cids::content(cid)?;
        let size = self.complete_size(content).await?;
        Ok((size, self.blobs.blobs().reader(content.blob_hash())))
    }

    /// A complete blob's bytes, refusing blobs over `max` bytes.
    pub async fn read_blob(&self, cid: &Cid, max: u64) -> Result<Vec<u8>, StoreError> {
        let content = cids::content(cid)?;
        let size = self.complete_size(content).await?;
        if size > max {
            return Err(StoreError::TooLarge {
                cid: *cid,
                size,
                max,
            });
        }
        let bytes = self
            .blobs
            .blobs()
            .get_bytes(content.blob_hash())
            .await
            .map_err(|e| store_err(content, e))?;
        Ok(bytes.to_vec())
    }
}

/// The offline endpoint: one socket, no port mapping, minimal net report;
/// relays and address lookup only when configured.
async fn bind_endpoint(config: &StoreConfig, key: SecretKey) -> Result<Endpoint, String> {
    let mut builder = Endpoint::builder(presets::Minimal)
        .secret_key(key)
        .clear_ip_transports()
        .bind_addr(config.bind)
        .map_err(|e| e.to_string())?
        .portmapper_config(PortmapperConfig::Disabled)
        .net_report_config(NetReportConfig::minimal());
    // Always a relay transport, empty or not: relays learnt later are added
    // to the running endpoint (`Store::add_relay`).
    let map = iroh::RelayMap::empty();
    for url in &config.relays {
        map.insert(url.clone(), relay_config(url.clone()));
    }
    builder = builder.relay_mode(iroh::RelayMode::Custom(map));
    if let Some(tls) = &config.relay_tls {
        builder = builder.ca_tls_config(tls.clone());
    }
    if config.address_lookup {
        use iroh::address_lookup::{DnsAddressLookup, PkarrPublisher};
        builder = builder
            .address_lookup(PkarrPublisher::n0_dns())
            .address_lookup(DnsAddressLookup::n0_dns());
    }
    builder.bind().await.map_err(|e| e.to_string())
}

/// A relay at `url`, its QUIC address discovery on the UDP port of the
/// URL's number.
fn relay_config(url: RelayUrl) -> std::sync::Arc<iroh::RelayConfig> {
    let port = url.port_or_known_default().unwrap_or(443);
    std::sync::Arc::new(iroh::RelayConfig::new(
        url,
        Some(iroh_relay::RelayQuicConfig::new(port)),
    ))
}

pub(crate) fn store_err(content: Content, e: impl std::fmt::Display) -> StoreError {
    StoreError::Store {
        cid: content.cid(),
        reason: e.to_string(),
    }
}

async fn load_or_create_key(path: &Path) -> io::Result<SecretKey> {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
                io::Error::other(format!("{} is not a 32-byte iroh key", path.display()))
            })?;
            Ok(SecretKey::from_bytes(&bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::fs::OpenOptionsExt;
            let key = SecretKey::generate();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true).mode(0o600);
            let file = opts.open(path)?;
            std::io::Write::write_all(&mut &file, &key.to_bytes())?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}
