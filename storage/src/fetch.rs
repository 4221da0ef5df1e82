//! One [`Store::fetch`](crate::store::Store::fetch): walking a tree and
//! pulling its missing blobs from providers (R-P2P-4).
//!
//! The blobs of one directory are fetched concurrently (up to
//! [`CONCURRENT_BLOBS`] at a time over the providers' QUIC connections), so a
//! tree of many small files costs a few round trips per directory rather
//! than one per file; subdirectories are walked one after another, which
//! keeps the number of pending futures proportional to the depth.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cid::Cid;
use futures::{StreamExt, TryStreamExt};
use iroh::EndpointAddr;
use iroh::endpoint::Connection;
use iroh_blobs::api::remote::GetProgressItem;
use tokio::sync::mpsc;

use crate::cid::{self as cids, Content, Kind};
use crate::manifest::{MAX_MANIFEST_BYTES, ManifestError};
use crate::store::{FetchError, FetchReport, MAX_ENTRIES, Progress, Store, StoreError, store_err};

/// Blob transfers in flight at once within one directory.
pub const CONCURRENT_BLOBS: usize = 8;

impl Store {
    /// Fetches `cid`, and for a directory everything under it, from the
    /// first provider that serves it, moving to the next provider when one
    /// fails, stalls or sends data that does not match the hash. Chunks
    /// already present are not asked for again.
    ///
    /// Content already complete in the store needs no provider. Progress
    /// events go to `progress` when given; they are dropped rather than
    /// slowing the transfer when the receiver falls behind, except the last
    /// one of a successful fetch. A directory's files are fetched
    /// concurrently.
    ///
    /// The content's distinct bytes (what it takes in the store) may not
    /// pass `max_bytes`: a fetch that would is stopped with
    /// [`FetchError::TooLarge`] as soon as the count passes it.
    pub async fn fetch(
        &self,
        cid: &Cid,
        providers: &[EndpointAddr],
        progress: Option<mpsc::Sender<Progress>>,
        max_bytes: u64,
    ) -> Result<FetchReport, FetchError> {
        let content = cids::content(cid).map_err(StoreError::from)?;
        let run = FetchRun::new(self, providers, progress, *cid, max_bytes);
        run.content(content, 0).await?;
        run.finish().await;
        // Fetched content is kept across a crash like added content.
        if let Err(e) = self.blobs.sync_db().await {
            tracing::warn!("committing the store after a fetch: {e:#}");
        }
        Ok(run.report())
    }
}

/// The content passed the fetch's byte budget.
struct OverBudget {
    cid: cid::Cid,
    max: u64,
}

impl From<OverBudget> for FetchError {
    fn from(e: OverBudget) -> FetchError {
        FetchError::TooLarge {
            cid: e.cid,
            max: e.max,
        }
    }
}

/// This fetch's link to one provider.
#[derive(Debug, Clone)]
enum Link {
    /// Not connected (yet, or again after a failed transfer).
    Untried,
    Open(Connection),
    /// Could not connect: not tried again in this fetch, so that a dead
    /// provider costs one connect timeout, not one per blob.
    Unreachable(String),
}

/// The state of one fetch, shared by its concurrent blob transfers.
pub(crate) struct FetchRun<'a> {
    store: &'a Store,
    providers: Vec<EndpointAddr>,
    /// Connections opened lazily and kept for every blob of the tree.
    conns: tokio::sync::Mutex<Vec<Link>>,
    progress: Option<mpsc::Sender<Progress>>,
    fetched: AtomicU64,
    present: AtomicU64,
    blobs: AtomicU64,
    /// `u64::MAX` until known.
    total: AtomicU64,
    /// Blobs handled in this fetch: a tree that lists one subtree many
    /// times costs one walk of it.
    seen: Mutex<HashSet<Content>>,
    /// Most bytes the content may have in the store (R-SEC-5).
    max_bytes: u64,
    root: cid::Cid,
}

impl<'a> FetchRun<'a> {
    pub(crate) fn new(
        store: &'a Store,
        providers: &[EndpointAddr],
        progress: Option<mpsc::Sender<Progress>>,
        root: cid::Cid,
        max_bytes: u64,
    ) -> Self {
        FetchRun {
            store,
            providers: providers.to_vec(),
            conns: tokio::sync::Mutex::new(vec![Link::Untried; providers.len()]),
            progress,
            fetched: AtomicU64::new(0),
            present: AtomicU64::new(0),
            blobs: AtomicU64::new(0),
            total: AtomicU64::new(u64::MAX),
            seen: Mutex::new(HashSet::new()),
            max_bytes,
            root,
        }
    }

    /// An error once the content's distinct bytes pass the budget.
    fn check_budget(&self, more: u64) -> Result<(), OverBudget> {
        let bytes = self
            .present
            .load(Ordering::Relaxed)
            .saturating_add(self.fetched.load(Ordering::Relaxed))
            .saturating_add(more);
        if bytes > self.max_bytes {
            return Err(OverBudget {
                cid: self.root,
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    pub(crate) fn report(&self) -> FetchReport {
        FetchReport {
            blobs: self.blobs.load(Ordering::Relaxed),
            bytes_present: self.present.load(Ordering::Relaxed),
            bytes_fetched: self.fetched.load(Ordering::Relaxed),
        }
    }

    /// Whether `content` is new to this fetch; an error once the tree has
    /// more distinct blobs than any tree may have.
    fn first_visit(&self, content: Content) -> Result<bool, Box<FetchError>> {
        let (new, count) = {
            let mut seen = self.seen.lock().expect("seen-set lock is never poisoned");
            (seen.insert(content), seen.len() as u64)
        };
        if new && count > MAX_ENTRIES {
            return Err(Box::new(
                StoreError::TooManyEntries { cid: content.cid() }.into(),
            ));
        }
        Ok(new)
    }

    pub(crate) async fn content(&self, content: Content, depth: usize) -> Result<(), FetchError> {
        if !self.first_visit(content).map_err(|e| *e)? {
            return Ok(());
        }
        self.blob(content, depth).await?;
        if content.kind == Kind::File {
            return Ok(());
        }
        let manifest = self.store.manifest(content, depth).await?;
        if depth == 0 {
            self.total.store(manifest.size(), Ordering::Relaxed);
        }
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for entry in manifest.entries.values() {
            let child = cids::content(&entry.cid).map_err(StoreError::from)?;
            match child.kind {
                Kind::File => files.push(child),
                Kind::Dir => dirs.push(child),
            }
        }
        futures::stream::iter(files)
            .map(|child| async move {
                if self.first_visit(child).map_err(|e| *e)? {
                    self.blob(child, depth + 1).await?;
                }
                Ok::<(), FetchError>(())
            })
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect::<()>()
            .await?;
        for child in dirs {
            Box::pin(self.content(child, depth + 1)).await?;
        }
        Ok(())
    }

    /// Sends the final progress, waiting for room: unlike the events during
    /// the transfer, the last one is never dropped.
    pub(crate) async fn finish(&self) {
        if let Some(tx) = &self.progress {
            let total = self.total.load(Ordering::Relaxed);
            let _ = tx
                .send(Progress {
                    fetched: self.fetched.load(Ordering::Relaxed),
                    present: self.present.load(Ordering::Relaxed),
                    total: (total != u64::MAX).then_some(total),
                })
                .await;
        }
    }

    fn emit(&self) {
        if let Some(tx) = &self.progress {
            let total = self.total.load(Ordering::Relaxed);
            let _ = tx.try_send(Progress {
                fetched: self.fetched.load(Ordering::Relaxed),
                present: self.present.load(Ordering::Relaxed),
                total: (total != u64::MAX).then_some(total),
            });
        }
    }

    async fn blob(&self, content: Content, depth: usize) -> Result<(), FetchError> {
        let cid = content.cid();
        let hash = content.blob_hash();
        let remote = self.store.blobs.remote();
        let local = remote
            .local(hash)
            .await
            .map_err(|e| store_err(content, e))?;
        self.blobs.fetch_add(1, Ordering::Relaxed);
        self.present
            .fetch_add(local.local_bytes(), Ordering::Relaxed);
        self.check_budget(0)?;
        if local.is_complete() {
            self.emit();
            return Ok(());
        }
        if self.providers.is_empty() {
            return Err(FetchError::NoProviders { cid });
        }
        let stall = self.store.config.stall_timeout;
        let mut failures = Vec::new();
        for i in 0..self.providers.len() {
            let conn = match self.connection(i).await {
                Ok(conn) => conn,
                Err(reason) => {
                    failures.push(format!("{}: {reason}", self.providers[i].id.fmt_short()));
                    continue;
                }
            };
            // Ask for the (verified) size first where it matters: a
            // manifest must not be downloaded whole before its size is
            // checked, and a single file's size is the progress total.
            if content.kind == Kind::Dir || depth == 0 {
                let size = tokio::time::timeout(
                    stall,
                    iroh_blobs::get::request::get_verified_size(&conn, &hash),
                )
                .await;
                match size {
                    Ok(Ok((size, _))) => {
                        if content.kind == Kind::Dir && size > MAX_MANIFEST_BYTES as u64 {
                            return Err(StoreError::Manifest {
                                cid,
                                source: ManifestError::TooLarge(size as usize),
                            }
                            .into());
                        }
                        if depth == 0 && content.kind == Kind::File {
                            self.total.store(size, Ordering::Relaxed);
                            self.check_budget(size.saturating_sub(local.local_bytes()))?;
                        }
                    }
                    Ok(Err(e)) => {
                        self.fail(i, &mut failures, format!("{e:#}")).await;
                        continue;
                    }
                    Err(_) => {
                        let reason = "stalled: no size within the stall timeout";
                        self.fail(i, &mut failures, reason.into()).await;
                        continue;
                    }
                }
            }
            // Progress(n) counts this request's payload bytes so far.
            let mut counted = 0;
            let mut stream = Box::pin(remote.fetch(conn, hash).stream());
            let outcome = loop {
                match tokio::time::timeout(stall, stream.next()).await {
                    Err(_) => break Err("stalled: no data within the stall timeout".to_string()),
                    Ok(None) => break Err("the transfer ended without a result".to_string()),
                    Ok(Some(GetProgressItem::Progress(n))) => {
                        self.fetched
                            .fetch_add(n.saturating_sub(counted), Ordering::Relaxed);
                        counted = counted.max(n);
                        self.emit();
                        // Dropping the stream ends the transfer.
                        self.check_budget(0)?;
                    }
                    Ok(Some(GetProgressItem::Done(stats))) => {
                        let n = stats.payload_bytes_read;
                        self.fetched
                            .fetch_add(n.saturating_sub(counted), Ordering::Relaxed);
                        self.check_budget(0)?;
                        break Ok(());
                    }
                    Ok(Some(GetProgressItem::Error(e))) => break Err(format!("{e:#}")),
                }
            };
            match outcome {
                Ok(()) => {
                    self.emit();
                    return Ok(());
                }
                Err(reason) => self.fail(i, &mut failures, reason).await,
            }
        }
        Err(FetchError::AllProvidersFailed { cid, failures })
    }

    /// Records provider `i`'s failure and forgets its connection, so the
    /// next blob asks it on a fresh one; transfers still running on the old
    /// connection finish (or fail) on their own.
    async fn fail(&self, i: usize, failures: &mut Vec<String>, reason: String) {
        let addr = &self.providers[i];
        tracing::debug!(provider = %addr.id, %reason, "provider failed");
        failures.push(format!("{}: {reason}", addr.id.fmt_short()));
        let mut conns = self.conns.lock().await;
        if matches!(conns[i], Link::Open(_)) {
            conns[i] = Link::Untried;
        }
    }

    async fn connection(&self, i: usize) -> Result<Connection, String> {
        // Held while connecting: concurrent blobs wait for one handshake
        // instead of each opening a connection.
        let mut conns = self.conns.lock().await;
        match &conns[i] {
            Link::Open(conn) if conn.close_reason().is_none() => return Ok(conn.clone()),
            Link::Unreachable(reason) => return Err(reason.clone()),
            _ => {}
        }
        let endpoint = self.store.router.endpoint();
        // Only relays this store knows are contacted, whatever a provider names.
        let addr = self.store.known_relays_only(&self.providers[i]);
        let connect = endpoint.connect(addr, iroh_blobs::ALPN);
        let connected = match tokio::time::timeout(self.store.config.connect_timeout, connect).await
        {
            Err(_) => Err("connection timed out".to_string()),
            Ok(Err(e)) => Err(format!("cannot connect: {e:#}")),
            Ok(Ok(c)) => Ok(c),
        };
        conns[i] = match &connected {
            Ok(c) => Link::Open(c.clone()),
            Err(reason) => Link::Unreachable(reason.clone()),
        };
        connected
    }
}
