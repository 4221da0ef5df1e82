//! The driver: one task owning the requester and compute state machines,
//! feeding them what the network, the API, executions and the clock say, and
//! carrying out what they ask.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cid::Cid;
use iroh::EndpointAddr;
use protocol::compute::{Compute, ComputeConfig, ComputeInput, ComputeOutput, ToRequester};
use protocol::id::{ExecutionId, JobId, NodeId, NodeKey};
use protocol::job::JobSpec;
use protocol::messages::{
    Decline, Direct, DirectMessage, Gossip, GossipMessage, Message, NodeInfo, Outcome,
};
use protocol::policy::AcceptancePolicy;
use protocol::requester::{
    ExecutionState, Requester, RequesterConfig, RequesterEvent, RequesterInput, RequesterOutput,
    ToCompute,
};
use serde::Serialize;
use storage::download::{DownloadConfig, Downloader};
use storage::store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use super::config::{NodeConfig, load_policy};
use super::db::Db;
use super::exec::{self, ExecContext};
use crate::executor::{Cancel, Engines};
use crate::p2p::{P2pEvent, P2pHandle};

/// How often the list of local Docker images is refreshed.
const IMAGES_EVERY: Duration = Duration::from_secs(5);
/// How often the allowlist file is checked for changes.
const POLICY_CHECK_EVERY: Duration = Duration::from_secs(1);
/// After a peer connects, node info goes out this soon (not at once: a
/// burst of connections at start-up gives one message).
const INFO_AFTER_CONNECT: Duration = Duration::from_millis(300);

/// What the API asks of the driver.
#[derive(Debug)]
pub enum Command {
    /// Announce a job; replies with its id or why it was refused.
    Submit {
        spec: Box<JobSpec>,
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

/// The node as the API shows it (`skrei node info`).
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub node_id: String,
    pub p2p_addrs: Vec<String>,
    pub api_addr: String,
    pub data_addr: String,
    pub engines: Vec<String>,
    pub capacity: u32,
    pub running: u32,
    pub accept_network: String,
    pub allowlist: Option<String>,
    pub peers: Vec<PeerView>,
}

/// A peer as this node knows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub node_id: String,
    pub connected: bool,
    pub info: Option<NodeInfo>,
}

/// An awarded node that disconnected and stays away this long has failed
/// its execution: the job is re-awarded instead of waiting for its timeout.
const DISCONNECT_GRACE: Duration = Duration::from_secs(3);
/// How long a result is offered to an unreachable requester (it may be
/// restarting) before it is given up.
const RESULT_RETRY_FOR: Duration = Duration::from_secs(120);

/// Peers' blob store addresses, shared with executions looking for providers.
type DataAddrs = Arc<std::sync::Mutex<HashMap<NodeId, Vec<String>>>>;

/// Longest wait for the DHT to name providers of one input.
const PROVIDER_LOOKUP: Duration = Duration::from_secs(3);

enum Internal {
    Finished {
        job_id: JobId,
        execution_id: ExecutionId,
        outcome: Outcome,
    },
    /// An award could not be delivered: treated as the node declining it.
    AwardUndelivered {
        to: NodeId,
        job_id: JobId,
        execution_id: ExecutionId,
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
}

pub(super) struct Driver {
    config: NodeConfig,
    key: NodeKey,
    me: NodeId,
    requester: Requester,
    compute: Compute,
    p2p: P2pHandle,
    store: Arc<Store>,
    db: Arc<Db>,
    api_addr: SocketAddr,
    data_addr: String,
    changes: watch::Sender<u64>,
    exec: Arc<ExecContext>,
    running: HashMap<(JobId, ExecutionId), Cancel>,
    /// Result providers named by compute nodes, until the result is taken.
    result_providers: HashMap<(JobId, ExecutionId), Vec<String>>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    peers: BTreeMap<NodeId, (bool, Option<NodeInfo>)>,
    /// Peers' blob store addresses, from their node info.
    data_addrs: DataAddrs,
    info_seq: u64,
    next_info: tokio::time::Instant,
    /// Peers gone, and when their awarded executions count as failed.
    gone: HashMap<NodeId, tokio::time::Instant>,
    allowlist_stamp: Option<(SystemTime, u64)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Driver {
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
    ) -> Result<Driver, String> {
        let me = key.node_id();
        let seed =
            u64::from_le_bytes(key.to_secret_bytes()[..8].try_into().unwrap_or([0; 8])) ^ now_ms();
        let mut rc = RequesterConfig::new(me, seed);
        rc.bid_window_ms = config.bid_window.as_millis() as u64;
        // Every spare bid holds a slot on its node for the bid's TTL; on a
        // busy network that idles more slots than a quick re-announcement
        // (awarded as soon as the known nodes answer) costs on a failure.
        rc.max_spares = 0;
        let mut requester = Requester::new(rc);
        let now = now_ms();
        let unfinished = db.unfinished_jobs().map_err(|e| e.to_string())?;
        for record in unfinished {
            tracing::info!(job_id = %record.job_id(), "resuming job");
            requester.restore(now, record);
        }
        let data_addr = serde_json::to_string(&store.addr()).map_err(|e| e.to_string())?;
        let mut cc = ComputeConfig::new(me, policy, config.engines.iter().cloned(), seed);
        cc.capacity = config.capacity;
        cc.result_providers = vec![data_addr.clone()];
        cc.local_inputs = config
            .local_inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let compute = Compute::new(cc);
        let downloader = Downloader::new(DownloadConfig {
            allow_private: config.allow_private_downloads,
            ..DownloadConfig::default()
        })
        .map_err(|e| format!("URL downloads: {e}"))?;
        let exec = Arc::new(ExecContext {
            data_dir: config.data_dir.clone(),
            store: store.clone(),
            downloader,
            engines,
            local_inputs: config.local_inputs.clone(),
            max_input_size: config.max_input_size,
        });
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let allowlist_stamp = config.allowlist.as_deref().and_then(stamp);
        Ok(Driver {
            next_info: tokio::time::Instant::now() + INFO_AFTER_CONNECT,
            config,
            key,
            me,
            requester,
            compute,
            p2p,
            store,
            db,
            api_addr,
            data_addr,
            changes,
            exec,
            running: HashMap::new(),
            result_providers: HashMap::new(),
            internal_tx,
            internal_rx,
            peers: BTreeMap::new(),
            data_addrs: DataAddrs::default(),
            info_seq: 0,
            gone: HashMap::new(),
            allowlist_stamp,
        })
    }

    pub(super) async fn run(
        mut self,
        mut events: mpsc::Receiver<P2pEvent>,
        mut commands: mpsc::Receiver<Command>,
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
            self.requester.handle_timeout(now);
            self.compute.handle_timeout(now);
            if tokio::time::Instant::now() >= self.next_info {
                self.publish_node_info();
            }
            self.fail_gone_nodes(now);
            self.drain();
        }
        for cancel in self.running.values() {
            cancel.cancel();
        }
        self.p2p.shutdown().await;
        tracing::info!("node stopped");
    }

    /// The next time a state machine or node info wants the driver.
    fn next_deadline(&self) -> tokio::time::Instant {
        let now = now_ms();
        let machine = [self.requester.poll_timeout(), self.compute.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let mut at = self.next_info;
        if let Some(gone) = self.gone.values().min() {
            at = at.min(*gone);
        }
        if let Some(ms) = machine {
            let wait = Duration::from_millis(ms.saturating_sub(now));
            at = at.min(tokio::time::Instant::now() + wait);
        }
        at
    }

    fn on_p2p(&mut self, event: P2pEvent) {
        let now = now_ms();
        match event {
            P2pEvent::Gossip { from, message } => match message {
                GossipMessage::Announce(announce) => {
                    self.compute.handle(now, ComputeInput::Announce(announce));
                }
                GossipMessage::NodeInfo(info) => {
                    self.data_addrs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(from, info.data_addrs.clone());
                    self.peers.entry(from).or_insert((true, None)).1 = Some(info.clone());
                    self.requester
                        .handle(now, RequesterInput::NodeInfo { from, info });
                }
                _ => {}
            },
            P2pEvent::Direct { from, message } => self.on_direct(now, from, message),
            P2pEvent::PeerConnected(peer) => {
                self.gone.remove(&peer);
                self.peers.entry(peer).or_insert((true, None)).0 = true;
                let soon = tokio::time::Instant::now() + INFO_AFTER_CONNECT;
                self.next_info = self.next_info.min(soon);
            }
            P2pEvent::PeerDisconnected(peer) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.0 = false;
                }
                self.gone
                    .insert(peer, tokio::time::Instant::now() + DISCONNECT_GRACE);
            }
            P2pEvent::Rejected { from, reason } => {
                tracing::debug!(%from, ?reason, "message refused");
            }
        }
    }

    fn on_direct(&mut self, now: u64, from: NodeId, message: DirectMessage) {
        let input = match message {
            DirectMessage::Bid(bid) => RequesterInput::Bid { from, bid },
            DirectMessage::Refuse(refuse) => RequesterInput::Refuse { from, refuse },
            DirectMessage::Decline(decline) => RequesterInput::Decline { from, decline },
            DirectMessage::Result(result) => {
                if matches!(result.outcome, Outcome::Completed { .. }) {
                    self.result_providers.insert(
                        (result.job_id, result.execution_id),
                        result.providers.clone(),
                    );
                }
                RequesterInput::Result { from, result }
            }
            DirectMessage::Award(award) => {
                self.compute
                    .handle(now, ComputeInput::Award { from, award });
                return;
            }
            DirectMessage::Cancel(cancel) => {
                self.compute
                    .handle(now, ComputeInput::Cancel { from, cancel });
                return;
            }
            _ => return,
        };
        self.requester.handle(now, input);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Submit { spec, reply } => {
                let providers = vec![self.data_addr.clone()];
                let result = self
                    .requester
                    .submit(now_ms(), *spec, now_ms(), providers)
                    .map_err(|e| e.to_string());
                // The job is saved (its first step) before the client hears
                // its id, so the id is never unknown to the API.
                self.drain();
                let _ = reply.send(result);
            }
            Command::Cancel { job_id, reply } => {
                let result = self
                    .requester
                    .cancel(job_id, "cancelled by the user")
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
            Command::Info { reply } => {
                let _ = reply.send(self.view());
            }
            Command::FindProviders { cid, reply } => {
                let p2p = self.p2p.clone();
                let data_addrs = self.data_addrs.clone();
                tokio::spawn(async move {
                    let mut found = Vec::new();
                    find_providers(&p2p, &data_addrs, cid, &mut found).await;
                    let _ = reply.send(found);
                });
            }
            Command::Provide { cid } => {
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
                self.compute.handle(
                    now,
                    ComputeInput::ExecutionFinished {
                        job_id,
                        execution_id,
                        outcome,
                    },
                );
            }
            Internal::AwardUndelivered {
                to,
                job_id,
                execution_id,
                error,
            } => {
                let decline = Decline {
                    job_id,
                    execution_id,
                    node: to,
                    reason: format!("the award could not be delivered: {error}"),
                };
                self.requester
                    .handle(now, RequesterInput::Decline { from: to, decline });
            }
            Internal::Images(images) => {
                self.compute.set_local_images(Some(images));
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

    /// Carries out everything both machines asked for, until neither asks
    /// more (messages between this node's two halves go around again).
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(out) = self.requester.poll_output() {
                progressed = true;
                self.on_requester_output(out);
            }
            while let Some(out) = self.compute.poll_output() {
                progressed = true;
                self.on_compute_output(out);
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_requester_output(&mut self, out: RequesterOutput) {
        let now = now_ms();
        match out {
            RequesterOutput::Publish(announce) => {
                match announce.sign(&self.key) {
                    Ok(signed) => {
                        let p2p = self.p2p.clone();
                        let job_id = announce.job_id;
                        tokio::spawn(async move {
                            if let Err(e) = p2p.publish(&Gossip::Announce(signed)).await {
                                // With no peers yet, the re-announcement reaches them.
                                tracing::debug!(%job_id, "announcement not published: {e}");
                            }
                        });
                    }
                    Err(e) => tracing::error!("signing an announcement: {e}"),
                }
                self.compute.handle(now, ComputeInput::Announce(announce));
            }
            RequesterOutput::Send { to, msg } if to == self.me => {
                let input = match msg {
                    ToCompute::Award(award) => ComputeInput::Award {
                        from: self.me,
                        award,
                    },
                    ToCompute::Cancel(cancel) => ComputeInput::Cancel {
                        from: self.me,
                        cancel,
                    },
                };
                self.compute.handle(now, input);
            }
            RequesterOutput::Send { to, msg } => {
                let (direct, award) = match msg {
                    ToCompute::Award(award) => (
                        award.sign(&self.key).map(Direct::from),
                        Some((award.job_id, award.execution_id)),
                    ),
                    ToCompute::Cancel(cancel) => (cancel.sign(&self.key).map(Direct::from), None),
                };
                self.send(to, direct, award);
            }
            RequesterOutput::Event { job_id, event } => self.on_job_event(job_id, event),
        }
    }

    fn on_compute_output(&mut self, out: ComputeOutput) {
        let now = now_ms();
        match out {
            ComputeOutput::Send { to, msg } if to == self.me => {
                let from = self.me;
                let input = match msg {
                    ToRequester::Bid(bid) => RequesterInput::Bid { from, bid },
                    ToRequester::Refuse(refuse) => RequesterInput::Refuse { from, refuse },
                    ToRequester::Decline(decline) => RequesterInput::Decline { from, decline },
                    ToRequester::Result(result) => {
                        self.result_providers.insert(
                            (result.job_id, result.execution_id),
                            result.providers.clone(),
                        );
                        RequesterInput::Result { from, result }
                    }
                };
                self.requester.handle(now, input);
            }
            ComputeOutput::Send { to, msg } => {
                let direct = match msg {
                    ToRequester::Bid(m) => m.sign(&self.key).map(Direct::from),
                    ToRequester::Refuse(m) => m.sign(&self.key).map(Direct::from),
                    ToRequester::Decline(m) => m.sign(&self.key).map(Direct::from),
                    ToRequester::Result(m) => m.sign(&self.key).map(Direct::from),
                };
                self.send(to, direct, None);
            }
            ComputeOutput::Start {
                job_id,
                execution_id,
                spec,
                providers,
            } => {
                tracing::info!(%job_id, %execution_id, "starting execution");
                let cancel = Cancel::default();
                self.running.insert((job_id, execution_id), cancel.clone());
                let ctx = self.exec.clone();
                let tx = self.internal_tx.clone();
                let p2p = self.p2p.clone();
                let data_addrs = self.data_addrs.clone();
                let deny = self.control_plane();
                tokio::spawn(async move {
                    let mut providers = providers;
                    for cid in exec::content_inputs(&spec) {
                        find_providers(&p2p, &data_addrs, cid, &mut providers).await;
                    }
                    let outcome =
                        exec::run(ctx, job_id, execution_id, spec, providers, deny, cancel).await;
                    if let Outcome::Failed { reason } = &outcome {
                        tracing::warn!(%job_id, %execution_id, "execution failed: {reason}");
                    }
                    let _ = tx.send(Internal::Finished {
                        job_id,
                        execution_id,
                        outcome,
                    });
                });
            }
            ComputeOutput::Stop {
                job_id,
                execution_id,
            } => {
                if let Some(cancel) = self.running.get(&(job_id, execution_id)) {
                    cancel.cancel();
                }
            }
            ComputeOutput::Event { job_id, event } => {
                tracing::debug!(%job_id, ?event, "compute");
            }
        }
    }

    /// Executions awarded to nodes that left and did not come back fail,
    /// so their jobs are re-awarded (R-OPS-2: a job whose node dies).
    fn fail_gone_nodes(&mut self, now: u64) {
        let clock = tokio::time::Instant::now();
        let expired: Vec<NodeId> = self
            .gone
            .iter()
            .filter(|(_, at)| **at <= clock)
            .map(|(n, _)| *n)
            .collect();
        for node in expired {
            self.gone.remove(&node);
            let lost: Vec<(JobId, ExecutionId)> = self
                .requester
                .jobs()
                .filter(|j| !j.state.is_terminal())
                .flat_map(|j| {
                    j.executions
                        .iter()
                        .filter(|e| e.node == node && e.state == ExecutionState::Awarded)
                        .map(move |e| (j.job_id(), e.execution_id))
                })
                .collect();
            for (job_id, execution_id) in lost {
                tracing::warn!(%job_id, %node, "the node running the job is gone; re-awarding");
                let result = protocol::messages::ResultMsg {
                    job_id,
                    execution_id,
                    node,
                    outcome: Outcome::Failed {
                        reason: format!(
                            "the node disconnected and did not come back within {}s",
                            DISCONNECT_GRACE.as_secs()
                        ),
                    },
                    providers: Vec::new(),
                };
                self.requester
                    .handle(now, RequesterInput::Result { from: node, result });
            }
        }
    }

    fn send(
        &self,
        to: NodeId,
        direct: Result<Direct, protocol::messages::MessageError>,
        award: Option<(JobId, ExecutionId)>,
    ) {
        let direct = match direct {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(%to, "signing a message: {e}");
                return;
            }
        };
        let p2p = self.p2p.clone();
        let tx = self.internal_tx.clone();
        // Results are what a job is for: keep offering one while its
        // requester is away (restarting, say). Other messages go once.
        let retry_until = matches!(direct, Direct::Result(_))
            .then(|| tokio::time::Instant::now() + RESULT_RETRY_FOR);
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(250);
            let mut sent = p2p.send(to, &direct).await;
            let mut tries = 1;
            while let (Err(e), Some(until)) = (&sent, retry_until) {
                if tokio::time::Instant::now() + wait > until {
                    break;
                }
                tracing::debug!(%to, "result not delivered yet: {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                sent = p2p.send(to, &direct).await;
                tries += 1;
            }
            if sent.is_ok() && tries > 1 {
                tracing::info!(%to, tries, "result delivered once the requester was back");
            }
            if let Err(e) = sent {
                tracing::debug!(%to, "message not delivered: {e}");
                if let Some((job_id, execution_id)) = award {
                    let _ = tx.send(Internal::AwardUndelivered {
                        to,
                        job_id,
                        execution_id,
                        error: e.to_string(),
                    });
                }
            }
        });
    }

    fn on_job_event(&mut self, job_id: JobId, event: RequesterEvent) {
        let now = now_ms();
        tracing::info!(%job_id, ?event, "job");
        if let RequesterEvent::Completed {
            node,
            execution_id,
            result_cid,
            exit_code,
        } = &event
        {
            let providers = self
                .result_providers
                .remove(&(job_id, *execution_id))
                .unwrap_or_default();
            let stored = self.db.add_result(
                &job_id,
                execution_id.0,
                node,
                &result_cid.to_string(),
                *exit_code,
                &providers,
            );
            if let Err(e) = stored {
                tracing::error!(%job_id, "recording a result: {e}");
            }
            self.fetch_result(job_id, *execution_id, *result_cid, providers);
        }
        if let Some(record) = self.requester.job(&job_id)
            && let Err(e) = self.db.save_job(record, Some((now, &event)))
        {
            tracing::error!(%job_id, "saving the job: {e}");
        }
        if matches!(
            event,
            RequesterEvent::JobCompleted
                | RequesterEvent::JobFailed { .. }
                | RequesterEvent::JobCancelled
        ) {
            self.result_providers.retain(|(j, _), _| *j != job_id);
        }
        self.changed();
    }

    /// Brings a result into this node's store, so it outlives the node
    /// that made it.
    fn fetch_result(
        &self,
        job_id: JobId,
        execution_id: ExecutionId,
        cid: Cid,
        providers: Vec<String>,
    ) {
        let store = self.store.clone();
        let tx = self.internal_tx.clone();
        let max = self.config.max_result_size;
        tokio::spawn(async move {
            let addrs: Vec<EndpointAddr> = providers
                .iter()
                .filter_map(|p| serde_json::from_str(p).ok())
                .collect();
            let mut wait = Duration::from_millis(200);
            for _ in 0..8 {
                match store.fetch(&cid, &addrs, None, max).await {
                    Ok(_) => {
                        let _ = tx.send(Internal::Fetched {
                            job_id,
                            execution_id,
                        });
                        return;
                    }
                    // Asking again would cost as much again (R-SEC-5).
                    Err(e @ storage::store::FetchError::TooLarge { .. }) => {
                        tracing::warn!(%job_id, %cid, "not fetching the result: {e}");
                        let reason = format!(
                            "the results are larger than this node fetches (--max-result-size \
                             {max} bytes): {e}"
                        );
                        let _ = tx.send(Internal::FetchRefused {
                            job_id,
                            execution_id,
                            reason,
                        });
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%job_id, %cid, "fetching the result: {e}");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }

    /// Keeps the compute machine's list of local Docker images current
    /// (R-POL-3: bid only with the image at hand). The first list is taken
    /// before any announcement is answered.
    async fn watch_images(&mut self) {
        let exec = self.exec.clone();
        let Some(docker) = exec.engines.docker.as_ref() else {
            return;
        };
        match docker.image_refs().await {
            Ok(images) => self.compute.set_local_images(Some(images)),
            Err(e) => tracing::warn!("{e}"),
        }
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let Some(docker) = exec.engines.docker.as_ref() else {
                return;
            };
            loop {
                tokio::select! {
                    // The driver stopped: let go of the engines and the store.
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(IMAGES_EVERY) => {}
                }
                match docker.image_refs().await {
                    Ok(images) => {
                        if tx.send(Internal::Images(images)).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        });
    }

    /// Results reported before a restart but not fetched yet.
    fn resume_fetches(&self) {
        let rows = match self.db.unfetched_results() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("reading results: {e}");
                return;
            }
        };
        for row in rows {
            let (Ok(job_id), Ok(cid)) = (row.job_id.parse::<JobId>(), row.result_cid.parse())
            else {
                continue;
            };
            self.fetch_result(job_id, ExecutionId(row.execution_id), cid, row.providers);
        }
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Re-reads the allowlist when its file changed (or on SIGHUP), keeping
    /// the old policy when the new file is wrong (R-POL-2).
    fn check_allowlist(&mut self, forced: bool) {
        let Some(path) = self.config.allowlist.clone() else {
            return;
        };
        let now = stamp(&path);
        if !forced && now == self.allowlist_stamp {
            return;
        }
        self.allowlist_stamp = now;
        match load_policy(self.config.accept_network, Some(&path)) {
            Ok(policy) => {
                if &policy != self.compute.policy() {
                    tracing::info!(allowlist = %path.display(), "allowlist reloaded");
                    self.compute.set_policy(policy);
                    self.next_info = tokio::time::Instant::now();
                }
            }
            Err(e) => tracing::error!("keeping the previous allowlist: {e}"),
        }
    }

    fn node_info(&mut self) -> NodeInfo {
        self.info_seq += 1;
        let policy = self.compute.policy();
        NodeInfo {
            node: self.me,
            engines: self.config.engines.clone(),
            capacity: self.compute.config().capacity,
            running: self.compute.running(),
            accept_network: policy.accept(),
            allowlist_digest: policy.allowlist().map(|a| a.digest()),
            api_addrs: vec![self.api_addr.to_string()],
            p2p_addrs: self
                .p2p
                .listen_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            data_addrs: vec![self.data_addr.clone()],
            seq: now_ms().max(self.info_seq),
        }
    }

    fn publish_node_info(&mut self) {
        self.next_info = tokio::time::Instant::now() + self.config.node_info_interval;
        let info = self.node_info();
        match info.sign(&self.key) {
            Ok(signed) => {
                let p2p = self.p2p.clone();
                tokio::spawn(async move {
                    if let Err(e) = p2p.publish(&Gossip::NodeInfo(signed)).await {
                        tracing::debug!("node info not published: {e}");
                    }
                });
            }
            Err(e) => tracing::error!("signing node info: {e}"),
        }
    }

    /// R-NET-7: every API and libp2p address of this node and of the
    /// peers it heard from, which no job may reach.
    fn control_plane(&self) -> Vec<SocketAddr> {
        let mut addrs = vec![self.api_addr];
        addrs.extend(self.p2p.listen_addrs().iter().filter_map(socket_addr));
        for info in self.peers.values().filter_map(|(_, info)| info.as_ref()) {
            addrs.extend(
                info.api_addrs
                    .iter()
                    .filter_map(|a| a.parse::<SocketAddr>().ok()),
            );
            addrs.extend(
                info.p2p_addrs
                    .iter()
                    .filter_map(|a| a.parse::<libp2p::Multiaddr>().ok())
                    .filter_map(|a| socket_addr(&a)),
            );
        }
        addrs.sort();
        addrs.dedup();
        addrs
    }

    fn view(&self) -> NodeView {
        let policy = self.compute.policy();
        NodeView {
            node_id: self.me.to_string(),
            p2p_addrs: self
                .p2p
                .listen_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            api_addr: self.api_addr.to_string(),
            data_addr: self.data_addr.clone(),
            engines: self.config.engines.clone(),
            capacity: self.compute.config().capacity,
            running: self.compute.running(),
            accept_network: policy.accept().to_string(),
            allowlist: self
                .config
                .allowlist
                .as_ref()
                .map(|p| p.display().to_string()),
            peers: self
                .peers
                .iter()
                .map(|(id, (connected, info))| PeerView {
                    node_id: id.to_string(),
                    connected: *connected,
                    info: info.clone(),
                })
                .collect(),
        }
    }
}

/// Adds the blob store addresses of the nodes the DHT names as providers
/// of `cid` (R-P2P-4: content comes from any node that has it).
async fn find_providers(p2p: &P2pHandle, data_addrs: &DataAddrs, cid: Cid, out: &mut Vec<String>) {
    let found = match tokio::time::timeout(PROVIDER_LOOKUP, p2p.get_providers(cid.to_bytes())).await
    {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::debug!(%cid, "no providers from the DHT: {e}");
            return;
        }
        Err(_) => return,
    };
    let known = data_addrs.lock().unwrap_or_else(|e| e.into_inner());
    for node in found {
        for addr in known.get(&node).into_iter().flatten() {
            if !out.contains(addr) && out.len() < protocol::messages::MAX_ADDRS {
                out.push(addr.clone());
            }
        }
    }
}

/// The IP and TCP/UDP port of a multiaddr such as `/ip4/1.2.3.4/tcp/4001/p2p/...`.
pub(super) fn socket_addr(addr: &libp2p::Multiaddr) -> Option<SocketAddr> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(port) | Protocol::Udp(port) => {
                return ip.map(|ip| SocketAddr::new(ip, port));
            }
            _ => {}
        }
    }
    None
}
