//! The core driver: one task owning the node's sans-IO core
//! ([`protocol::node::Node`]), feeding it what the network, the API,
//! executions and the clock say, and carrying out what it asks. The rules
//! live in the core; this file moves bytes, timers, records and executions.

mod changes;
mod delivery;
mod execution;
mod node_info;
mod peers;
mod relays;
mod results;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cid::Cid;
use protocol::compute::ToRequester;
use protocol::id::{ExecutionId, JobId, NodeId, NodeKey};
use protocol::job::JobSpec;
use protocol::messages::{Direct, Gossip, GossipMessage, Message, Outcome};
use protocol::node::{Node as Core, NodeConfig as CoreConfig, NodeInput, NodeOutput, Outgoing};
use protocol::policy::AcceptancePolicy;
use protocol::requester::{CancelError, RequesterEvent, ToCompute};
use storage::download::{DownloadConfig, Downloader};
use storage::store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use super::config::NodeConfig;
use super::db::Db;
use super::exec::ExecContext;
use crate::executor::{Cancel, Engines};
use crate::p2p::{P2pEvent, P2pHandle};
use changes::stamp;
pub use node_info::NodeView;
pub(super) use node_info::socket_addr;
use peers::{MAX_PEERS, Peers};
use results::find_providers;

/// How often the allowlist file is checked for changes.
const POLICY_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the API asks of the driver.
#[derive(Debug)]
pub enum CoreCommand {
    /// Announce a job; replies with its id or why it was refused.
    Submit {
        spec: Box<JobSpec>,
        /// Its CID inputs' size, summed, when this node's store holds
        /// them all.
        input_bytes: Option<u64>,
        reply: oneshot::Sender<Result<JobId, String>>,
    },
    /// Cancel a job this node submitted.
    Cancel {
        job_id: JobId,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// This node's description.
    Info { reply: oneshot::Sender<NodeView> },
    /// Tell the network this node has `cid` (after `skrei add`).
    Provide { cid: Cid },
    /// The blob-store addresses of nodes the DHT names as having `cid`.
    FindProviders {
        cid: Cid,
        reply: oneshot::Sender<Vec<String>>,
    },
}

/// How long another message is offered to a peer that answers "busy".
const BUSY_RETRY_FOR: Duration = Duration::from_secs(3);

/// Peers' blob store addresses, shared with executions looking for providers.
type DataAddrs = Arc<std::sync::Mutex<HashMap<NodeId, Vec<String>>>>;

enum Internal {
    Finished {
        job_id: JobId,
        execution_id: ExecutionId,
        outcome: Outcome,
    },
    /// An execution reached a step its requester is told of.
    Step {
        job_id: JobId,
        execution_id: ExecutionId,
        step: protocol::messages::Step,
    },
    /// A message could not be delivered: the core decides what that means.
    Undelivered {
        to: NodeId,
        msg: Outgoing,
        error: String,
    },
    Fetched {
        job_id: JobId,
        execution_id: ExecutionId,
    },
    /// A result this node will not fetch (over its byte budget).
    FetchRefused {
        job_id: JobId,
        execution_id: ExecutionId,
        reason: String,
    },
    /// The Docker engine's images, listed again.
    Images(std::collections::BTreeSet<String>),
    /// An execution fetched an input: a sample of the link's download rate.
    Transferred { bytes: u64, ms: u64 },
    /// A peer's announcement, with what of its inputs the store holds.
    Announce {
        announce: Box<protocol::messages::Announce>,
        held_bytes: u64,
    },
}

/// Announcements whose inputs are looked up in the store at once, at
/// most: beyond that an announcement is decided as if nothing were held,
/// so a flood of announcements cannot pile up lookups (R-SEC-5).
const MAX_HELD_LOOKUPS: usize = 64;

pub(super) struct CoreDriver {
    config: NodeConfig,
    key: NodeKey,
    me: NodeId,
    /// The rules: requester, compute side, and what makes them one node.
    core: Core,
    p2p: P2pHandle,
    store: Arc<Store>,
    db: Arc<Db>,
    api_addr: SocketAddr,
    data_addr: String,
    changes: watch::Sender<u64>,
    exec: Arc<ExecContext>,
    running: HashMap<(JobId, ExecutionId), Cancel>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    /// Store lookups of announced inputs under way ([`MAX_HELD_LOOKUPS`]).
    held_lookups: Arc<tokio::sync::Semaphore>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    peers: Peers,
    /// Peers' blob store addresses, from their node info: the same peers
    /// as `peers`.
    data_addrs: DataAddrs,
    info_seq: u64,
    allowlist_stamp: Option<(SystemTime, u64)>,
    /// The peers the operator named (`--bootstrap`): the only ones whose
    /// relays this node's store uses.
    trusted: HashSet<NodeId>,
    /// Relay URLs trusted peers gossiped, each looked at once.
    relay_urls_seen: HashSet<String>,
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl CoreDriver {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        config: NodeConfig,
        key: NodeKey,
        policy: AcceptancePolicy,
        p2p: P2pHandle,
        store: Arc<Store>,
        db: Arc<Db>,
        api_addr: SocketAddr,
        changes: watch::Sender<u64>,
        engines: Engines,
    ) -> Result<CoreDriver, String> {
        let me = key.node_id();
        let seed =
            u64::from_le_bytes(key.to_secret_bytes()[..8].try_into().unwrap_or([0; 8])) ^ now_ms();
        let data_addr = serde_json::to_string(&store.addr()).map_err(|e| e.to_string())?;
        let mut cc = CoreConfig::new(me, policy, config.engines.iter().cloned(), seed);
        cc.requester.bid_window_ms = config.bid_window.as_millis() as u64;
        // The requester keeps node infos of the peers the driver keeps,
        // and forgets those the driver evicts.
        cc.requester.max_known_nodes = MAX_PEERS;
        cc.compute.capacity = config.capacity;
        cc.compute.resources = super::machine::offer(config.resources);
        cc.compute.requester_share_percent = config.requester_share_percent;
        cc.compute.link = config.link.clone();
        cc.compute.labels = config.labels.clone();
        cc.compute.pull = config.pull_from.clone();
        cc.compute.allowed_env = config.allow_env.clone();
        // The executors' default timeout is the one compute weighs input
        // fetches against (R-PLC-1).
        cc.compute.execution_timeout_ms =
            u64::try_from(crate::executor::Limits::default().timeout.as_millis())
                .unwrap_or(u64::MAX);
        cc.compute.result_providers = vec![data_addr.clone()];
        cc.compute.local_inputs = config
            .local_inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        cc.compute.s3 = config.s3.as_ref().map(|s3| protocol::compute::S3Offer {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
        });
        cc.compute.local_inputs_rw = config
            .local_inputs_rw
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        cc.compute.publish_dirs = config
            .publish_dirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        cc.node_info_interval_ms = config.node_info_interval.as_millis() as u64;
        let mut core = Core::new(cc);
        let now = now_ms();
        let unfinished = db.unfinished_jobs().map_err(|e| e.to_string())?;
        for record in unfinished {
            tracing::info!(job_id = %record.job_id(), "resuming job");
            core.restore(now, record);
        }
        let downloader = Downloader::new(DownloadConfig {
            allow_private: config.allow_private_downloads,
            ..DownloadConfig::default()
        })
        .map_err(|e| format!("URL downloads: {e}"))?;
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let fetched_tx = internal_tx.clone();
        let exec = Arc::new(ExecContext {
            data_dir: config.data_dir.clone(),
            store: store.clone(),
            downloader,
            engines,
            local_inputs: config.local_inputs.clone(),
            local_inputs_rw: config.local_inputs_rw.clone(),
            s3: match &config.s3 {
                Some(s3) => {
                    Some(storage::s3::S3Client::new(s3.clone()).map_err(|e| format!("S3: {e}"))?)
                }
                None => None,
            },
            max_input_size: config.max_input_size,
            publish_dirs: config.publish_dirs.clone(),
            images: super::images::ImageCache::new(db.clone(), config.image_cache),
            allowed_env: config.allow_env.clone(),
            on_fetched: Box::new(move |bytes, took| {
                let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
                let _ = fetched_tx.send(Internal::Transferred { bytes, ms });
            }),
            egress_bytes: Default::default(),
        });
        let allowlist_stamp = config.allowlist.as_deref().and_then(stamp);
        let trusted = config
            .bootstrap
            .iter()
            .filter_map(|a| {
                a.iter().find_map(|p| match p {
                    libp2p::multiaddr::Protocol::P2p(peer) => {
                        crate::p2p::validate::node_id(&peer).ok()
                    }
                    _ => None,
                })
            })
            .collect();
        Ok(CoreDriver {
            config,
            key,
            me,
            core,
            p2p,
            store,
            db,
            api_addr,
            data_addr,
            changes,
            exec,
            running: HashMap::new(),
            internal_tx,
            held_lookups: Arc::new(tokio::sync::Semaphore::new(MAX_HELD_LOOKUPS)),
            internal_rx,
            peers: Peers::new(MAX_PEERS),
            data_addrs: DataAddrs::default(),
            info_seq: 0,
            allowlist_stamp,
            trusted,
            relay_urls_seen: HashSet::new(),
        })
    }

    pub(super) async fn run(
        mut self,
        mut events: mpsc::Receiver<P2pEvent>,
        mut commands: mpsc::Receiver<CoreCommand>,
        mut stop: watch::Receiver<bool>,
    ) {
        self.resume_fetches();
        self.watch_images().await;
        // Restored jobs may have outputs (re-announcements) due already.
        self.drain();
        let mut policy_check = tokio::time::interval(POLICY_CHECK_EVERY);
        policy_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let deadline = self.next_deadline();
            #[cfg(unix)]
            let sighup = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let sighup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = stop.changed() => break,
                event = events.recv() => match event {
                    Some(event) => self.on_p2p(event),
                    None => {
                        tracing::error!("the network layer stopped");
                        break;
                    }
                },
                Some(command) = commands.recv() => self.on_command(command),
                Some(internal) = self.internal_rx.recv() => self.on_internal(internal),
                _ = tokio::time::sleep_until(deadline) => {}
                _ = policy_check.tick() => self.check_allowlist(false),
                Some(()) = sighup => self.check_allowlist(true),
            }
            let now = now_ms();
            self.core.handle_timeout(now);
            self.drain();
        }
        for cancel in self.running.values() {
            cancel.cancel();
        }
        self.p2p.shutdown().await;
        tracing::info!("node stopped");
    }

    /// The next time the core wants the driver (its outbox included).
    fn next_deadline(&self) -> tokio::time::Instant {
        let now = now_ms();
        // Nothing due: look again in a while anyway (cheap).
        let wait = self
            .core
            .poll_timeout()
            .map_or(Duration::from_secs(60), |ms| {
                Duration::from_millis(ms.saturating_sub(now))
            });
        tokio::time::Instant::now() + wait
    }

    fn on_p2p(&mut self, event: P2pEvent) {
        let now = now_ms();
        match event {
            P2pEvent::Gossip { from, message } => match message {
                GossipMessage::Announce(announce) => self.on_announce(now, announce),
                GossipMessage::NodeInfo(info) => {
                    // Replayed (seq not above the last), or no room: the
                    // maps below and the requester's stay as they are.
                    let Some(evicted) = self.peers.node_info(from, &info) else {
                        tracing::debug!(%from, seq = info.seq, "node info not taken");
                        return;
                    };
                    self.forget(evicted);
                    // Its announced addresses (relayed ones included):
                    // how a direct message reaches it without a DHT walk.
                    let addrs = info
                        .p2p_addrs
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .collect();
                    self.p2p.add_peer_addrs(from, addrs);
                    self.data_addrs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(from, info.data_addrs.clone());
                    if self.trusted.contains(&from) {
                        self.learn_relays(from, &info.relay_urls);
                    }
                    self.core.handle(now, NodeInput::NodeInfo { from, info });
                }
                _ => {}
            },
            P2pEvent::Direct { from, message } => {
                self.core.handle(now, NodeInput::Direct { from, message });
            }
            P2pEvent::Connection { peer, remote } => {
                let ip = socket_addr(&remote).map(|a| a.ip());
                let evicted = self.peers.connected(peer, ip);
                self.forget(evicted);
            }
            P2pEvent::PeerConnected(peer) => {
                let evicted = self.peers.connected(peer, None);
                self.forget(evicted);
                self.core.handle(now, NodeInput::Connected(peer));
            }
            P2pEvent::PeerDisconnected(peer) => {
                self.peers.disconnected(&peer);
                self.core.handle(now, NodeInput::Disconnected(peer));
            }
            P2pEvent::Rejected { from, reason } => {
                tracing::debug!(%from, ?reason, "message refused");
            }
        }
    }

    /// Peers the table let go: the maps kept beside it follow.
    fn forget(&mut self, evicted: Vec<NodeId>) {
        if evicted.is_empty() {
            return;
        }
        let now = now_ms();
        let mut data_addrs = self.data_addrs.lock().unwrap_or_else(|e| e.into_inner());
        for node in evicted {
            data_addrs.remove(&node);
            self.core.handle(now, NodeInput::ForgetNode(node));
        }
    }

    /// A job reading CID inputs is decided once the store has said which
    /// it holds (R-PLC-1); the rest at once.
    fn on_announce(&mut self, now: u64, announce: protocol::messages::Announce) {
        let permit = super::held_inputs::reads_cids(&announce.spec)
            .then(|| self.held_lookups.clone().try_acquire_owned().ok())
            .flatten();
        let Some(permit) = permit else {
            self.core.handle(now, NodeInput::announce(announce));
            return;
        };
        let store = self.store.clone();
        let internal = self.internal_tx.clone();
        tokio::spawn(async move {
            let (held_bytes, _) =
                super::held_inputs::held_input_bytes(&store, &announce.spec).await;
            drop(permit);
            let _ = internal.send(Internal::Announce {
                announce: Box::new(announce),
                held_bytes,
            });
        });
    }

    fn on_command(&mut self, command: CoreCommand) {
        match command {
            CoreCommand::Submit {
                spec,
                input_bytes,
                reply,
            } => {
                self.refresh_data_addr();
                let providers = vec![self.data_addr.clone()];
                let now = now_ms();
                let result = self
                    .core
                    .submit_holding(now, *spec, now, providers, input_bytes)
                    .map_err(|e| e.to_string());
                // The job is saved (its first step) before the client hears
                // its id, so the id is never unknown to the API.
                self.drain();
                let _ = reply.send(result);
            }
            CoreCommand::Cancel { job_id, reply } => {
                let result = match self.core.cancel(now_ms(), job_id, "cancelled by the user") {
                    // The core forgets ended jobs after a while; the
                    // database still knows how they ended.
                    Err(CancelError::UnknownJob(_)) => match self.db.job(&job_id) {
                        Ok(Some(record)) if record.state.is_terminal() => {
                            Err(CancelError::AlreadyEnded(job_id, record.state.name()).to_string())
                        }
                        _ => Err(CancelError::UnknownJob(job_id).to_string()),
                    },
                    other => other.map_err(|e| e.to_string()),
                };
                self.drain();
                let _ = reply.send(result);
            }
            CoreCommand::Info { reply } => {
                let _ = reply.send(self.view());
            }
            CoreCommand::FindProviders { cid, reply } => {
                let p2p = self.p2p.clone();
                let data_addrs = self.data_addrs.clone();
                tokio::spawn(async move {
                    let mut found = Vec::new();
                    find_providers(&p2p, &data_addrs, cid, &mut found).await;
                    let _ = reply.send(found);
                });
            }
            CoreCommand::Provide { cid } => {
                let p2p = self.p2p.clone();
                tokio::spawn(async move {
                    if let Err(e) = p2p.start_providing(cid.to_bytes()).await {
                        tracing::warn!(%cid, "cannot announce content in the DHT: {e}");
                    }
                });
            }
        }
    }

    fn on_internal(&mut self, internal: Internal) {
        let now = now_ms();
        match internal {
            Internal::Finished {
                job_id,
                execution_id,
                outcome,
            } => {
                self.running.remove(&(job_id, execution_id));
                self.core.handle(
                    now,
                    NodeInput::ExecutionFinished {
                        job_id,
                        execution_id,
                        outcome,
                    },
                );
            }
            Internal::Undelivered { to, msg, error } => {
                self.core
                    .handle(now, NodeInput::Undelivered { to, msg, error });
            }
            Internal::Step {
                job_id,
                execution_id,
                step,
            } => {
                let input = NodeInput::ExecutionStep {
                    job_id,
                    execution_id,
                    step,
                };
                self.core.handle(now, input);
            }
            Internal::Transferred { bytes, ms } => {
                let input = NodeInput::Transferred(protocol::link::Transfer {
                    direction: protocol::link::Direction::Down,
                    bytes,
                    ms,
                });
                self.core.handle(now_ms(), input);
            }
            Internal::Announce {
                announce,
                held_bytes,
            } => {
                let input = NodeInput::Announce {
                    announce: *announce,
                    held_bytes,
                };
                self.core.handle(now_ms(), input);
            }
            Internal::Images(images) => {
                self.core.set_local_images(Some(images));
            }
            Internal::Fetched {
                job_id,
                execution_id,
            } => {
                if let Err(e) = self.db.set_fetched(&job_id, execution_id.0) {
                    tracing::error!(%job_id, "recording a fetched result: {e}");
                }
                self.changed();
            }
            Internal::FetchRefused {
                job_id,
                execution_id,
                reason,
            } => {
                if let Err(e) = self.db.set_refused(&job_id, execution_id.0, &reason) {
                    tracing::error!(%job_id, "recording a refused result: {e}");
                }
                self.changed();
            }
        }
    }

    /// Carries out everything the core asked for.
    fn drain(&mut self) {
        let now = now_ms();
        while let Some(out) = self.core.poll_output() {
            match out {
                // The core paces its announcements to what peers take.
                NodeOutput::Publish(announce) => match announce.sign(&self.key) {
                    Ok(signed) => {
                        let gossip = Gossip::from(signed);
                        let p2p = self.p2p.clone();
                        tokio::spawn(async move {
                            if let Err(e) = p2p.publish(&gossip).await {
                                // With no peers yet, the re-announcement
                                // reaches them.
                                tracing::debug!("announcement not published: {e}");
                            }
                        });
                    }
                    Err(e) => tracing::error!("signing an announcement: {e}"),
                },
                NodeOutput::ToCompute { to, msg } => {
                    let direct = match &msg {
                        ToCompute::Award(m) => m.sign(&self.key).map(Direct::from),
                        ToCompute::Cancel(m) => m.sign(&self.key).map(Direct::from),
                    };
                    self.send(to, direct, Outgoing::ToCompute(msg), 0);
                }
                NodeOutput::ToRequester { to, msg, attempt } => {
                    let direct = match &msg {
                        ToRequester::Bid(m) => m.sign(&self.key).map(Direct::from),
                        ToRequester::Refuse(m) => m.sign(&self.key).map(Direct::from),
                        ToRequester::Decline(m) => m.sign(&self.key).map(Direct::from),
                        ToRequester::Result(m) => m.sign(&self.key).map(Direct::from),
                        ToRequester::Progress(m) => m.sign(&self.key).map(Direct::from),
                    };
                    self.send(to, direct, Outgoing::ToRequester(msg), attempt);
                }
                NodeOutput::Start {
                    job_id,
                    execution_id,
                    spec,
                    providers,
                    partition,
                } => self.start(job_id, execution_id, spec, providers, partition),
                NodeOutput::Stop {
                    job_id,
                    execution_id,
                } => {
                    if let Some(cancel) = self.running.get(&(job_id, execution_id)) {
                        cancel.cancel();
                    }
                }
                NodeOutput::JobEvent { job_id, event } => self.on_job_event(now, job_id, event),
                NodeOutput::ResultAccepted {
                    job_id,
                    execution_id,
                    node,
                    result_cid,
                    exit_code,
                    providers,
                } => {
                    let stored = self.db.add_result(
                        &job_id,
                        execution_id.0,
                        &node,
                        &result_cid.to_string(),
                        exit_code,
                        &providers,
                    );
                    if let Err(e) = stored {
                        tracing::error!(%job_id, "recording a result: {e}");
                    }
                    self.fetch_result(job_id, execution_id, result_cid, providers);
                }
                NodeOutput::ComputeEvent { job_id, event } => {
                    tracing::debug!(%job_id, ?event, "compute");
                }
                NodeOutput::NodeInfoDue => self.publish_node_info(),
            }
        }
    }

    /// Stores the job's record with the step that changed it. The core
    /// forgets ended jobs after a while; the database keeps them.
    fn on_job_event(&mut self, now: u64, job_id: JobId, event: RequesterEvent) {
        tracing::info!(%job_id, ?event, "job");
        if let Some(record) = self.core.job(&job_id)
            && let Err(e) = self.db.save_job(record, Some((now, &event)))
        {
            tracing::error!(%job_id, "saving the job: {e}");
        }
        self.changed();
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}
