//! `skrei node` (run a node) and `skrei node info`.

use std::process::ExitCode;

use anyhow::Context;
use api::node::NodeInfo;
use clap::{Args, Subcommand};
use skrei_node::daemon::Node;

use super::client::{ApiArgs, Client};
use super::{EXIT_INVALID, Output, print_line};

/// `skrei node`: flags run a node; `info` asks a running one.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    #[command(subcommand)]
    command: Option<NodeCommand>,
    #[command(flatten)]
    flags: NodeFlags,
    /// Stop (as on SIGTERM) when the process PID, which started this node,
    /// exits: testnet tools use it so that no node outlives them.
    #[arg(long, value_name = "PID", hide = true)]
    parent_pid: Option<i32>,
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Print the node's peer id, addresses, policy and peers.
    Info {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

mod flags;

pub use flags::NodeFlags;

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Asks the kernel for SIGTERM when the parent exits; if `parent` is
/// already gone (this process was reparented before asking), stops now.
fn stop_with_parent(parent: i32) -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .context("--parent-pid: asking for a signal when the parent exits")?;
    if nix::unistd::getppid().as_raw() != parent {
        anyhow::bail!("--parent-pid {parent}: that process has already exited");
    }
    Ok(())
}

pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn,iroh=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    if let Some(NodeCommand::Info { api, output }) = args.command {
        return info(&api, output);
    }
    let config = match args.flags.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if let Some(pid) = args.parent_pid {
        stop_with_parent(pid)?;
    }
    init_logs();
    runtime()?.block_on(async {
        let node = Node::start(config).await?;
        eprintln!("node {} ready", node.node_id());
        for addr in node.p2p_addrs() {
            eprintln!("  p2p: {addr}");
        }
        eprintln!("  api token: {}", node.api_token_file().display());
        print_line(&format!("SKREI_API=http://{}", node.api_addr()));
        wait_for_signal().await;
        eprintln!("stopping");
        node.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `skrei node info --output json`: the node's info with its listen
/// addresses as other nodes' `--bootstrap` takes them, and its id again as
/// `peer_id`.
#[derive(serde::Serialize)]
struct InfoOutput {
    peer_id: protocol::id::NodeId,
    #[serde(flatten)]
    info: NodeInfo,
}

fn info(api: &ApiArgs, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let mut info: NodeInfo = client.get("/api/v1/node")?;
    info.p2p_addrs = info.bootstrap_addrs();
    match output {
        Output::Json => {
            let output = InfoOutput {
                peer_id: info.node_id,
                info,
            };
            print_line(&serde_json::to_string_pretty(&output)?);
        }
        Output::Text => {
            print_line(&format!("peer id:        {}", info.node_id));
            for a in &info.p2p_addrs {
                print_line(&format!("listen:         {a}"));
            }
            print_line(&format!("reachability:   {}", info.reachability));
            for a in &info.external_addrs {
                print_line(&format!("external:       {a}"));
            }
            for a in &info.relayed_addrs {
                print_line(&format!("relayed:        {a}"));
            }
            print_line(&format!("api:            {}", info.api_addr));
            print_line(&format!("data:           {}", info.data_addr));
            print_line(&format!(
                "accept network: {}",
                info.accept_network.as_flag()
            ));
            print_line(&format!("engines:        {}", info.engines.join(", ")));
            print_line(&format!(
                "running:        {} of {} at once",
                info.running, info.capacity
            ));
            print_line(&format!(
                "resources:      {} (free now: {})",
                offer_text(&info.resources),
                offer_text(&info.resources_free)
            ));
            let rate =
                |bps: Option<u64>| bps.map_or("unknown".to_owned(), protocol::link::explain_rate);
            if !info.labels.is_empty() {
                let labels: Vec<String> = info
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                print_line(&format!("labels:         {}", labels.join(", ")));
            }
            print_line(&format!(
                "link:           down {}, up {}",
                rate(info.link_down_bps),
                rate(info.link_up_bps)
            ));
            if !info.pull_from.is_empty() {
                print_line(&format!(
                    "pulls from:     {} (pulled images: {} of {})",
                    info.pull_from.join(", "),
                    protocol::link::explain_bytes(info.images_pulled_bytes),
                    protocol::link::explain_bytes(info.image_cache_bytes)
                ));
            }
            if let Some(s3) = &info.s3 {
                print_line(&format!("s3:             {} ({})", s3.endpoint, s3.region));
            }
            if !info.local_inputs.is_empty() {
                let dirs: Vec<String> = info
                    .local_inputs
                    .iter()
                    .map(|d| {
                        if info.local_inputs_rw.contains(d) {
                            format!("{d} (writable)")
                        } else {
                            d.clone()
                        }
                    })
                    .collect();
                print_line(&format!("local inputs:   {}", dirs.join(", ")));
            }
            print_line(&format!(
                "peers:          {} connected",
                info.connected_peers()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cpu 1800m, memory 21.6Gi`; kinds not offered are left out.
fn offer_text(offer: &protocol::resources::Offer) -> String {
    use protocol::resources::ResourceKind;
    let offer: protocol::job::Resources = (*offer).into();
    let parts: Vec<String> = ResourceKind::ALL
        .iter()
        .filter_map(|kind| Some(format!("{kind} {}", kind.show(kind.of(&offer)?))))
        .collect();
    if parts.is_empty() {
        "not limited".to_owned()
    } else {
        parts.join(", ")
    }
}
