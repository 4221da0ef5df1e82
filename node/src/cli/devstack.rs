//! `skrei devstack`: a local network of full nodes in one process, and the
//! README's example job run across it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use protocol::job::NetworkMode;
use protocol::policy::parse_accept_network;
use skrei_node::daemon::{Node, NodeConfig};

use super::client::{ApiArgs, Client};
use super::node::{init_logs, runtime, wait_for_signal};
use super::{EXIT_INVALID, Output, print_line};

/// `skrei devstack`: a local network of full nodes in this process.
#[derive(Args, Debug)]
pub struct DevstackArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// A node's policy, `INDEX=MODE[:ALLOWLIST_FILE]` (repeatable), e.g. `1=http:allow.txt`.
    #[arg(long = "policy", value_name = "I=MODE[:FILE]")]
    policies: Vec<String>,
    /// Folder for the nodes' data (default: a new temporary folder, removed at exit).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Engines every node offers, comma-separated (wasm, docker). Default wasm.
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// Run the example job end to end (a WASM module and its input added on the
    /// last node, the job submitted on the first), print its output and stop.
    #[arg(long)]
    example: bool,
}

pub fn devstack(args: DevstackArgs) -> anyhow::Result<ExitCode> {
    if let Some(bad) = args
        .engines
        .iter()
        .find(|e| !matches!(e.as_str(), "wasm" | "docker"))
    {
        eprintln!("error: --engines {bad}: the engines are wasm and docker");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    if args.nodes == 0 || args.nodes > 64 {
        eprintln!("error: --nodes {}: give 1 to 64", args.nodes);
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let mut policies = vec![(NetworkMode::None, None); args.nodes];
    for p in &args.policies {
        match parse_policy(p, args.nodes) {
            Ok((i, mode, file)) => policies[i] = (mode, file),
            Err(e) => {
                eprintln!("error: --policy {p}: {e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    if !args.example {
        init_logs();
    }
    let tmp;
    let root = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("skrei-devstack-")
                .tempdir()
                .context("making a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    runtime()?.block_on(async {
        let mut nodes: Vec<Node> = Vec::new();
        for (i, (mode, allowlist)) in policies.into_iter().enumerate() {
            let mut config = NodeConfig::new(root.join(format!("node-{i}")));
            config.api = SocketAddr::from(([127, 0, 0, 1], 0));
            config.accept_network = mode;
            config.allowlist = allowlist;
            config.node_info_interval = Duration::from_secs(5);
            if !args.engines.is_empty() {
                config.engines = args.engines.clone();
            }
            if let Some(first) = nodes.first() {
                config.bootstrap = first.p2p_addrs().to_vec();
            }
            nodes.push(Node::start(config).await?);
        }
        wait_until_connected(&nodes).await;
        for node in &nodes {
            print_line(&format!("SKREI_API=http://{}", node.api_addr()));
            print_line(&format!("SKREI_API_TOKEN={}", node.api_token().as_str()));
        }
        let code = if args.example {
            let first = format!("http://{}", nodes[0].api_addr());
            let last = format!("http://{}", nodes[nodes.len() - 1].api_addr());
            let example = tokio::task::spawn_blocking(move || run_example(&first, &last)).await;
            match example {
                Ok(Ok(code)) => code,
                Ok(Err(e)) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(super::EXIT_ERROR)
                }
                Err(e) => {
                    eprintln!("error: the example stopped: {e}");
                    ExitCode::from(super::EXIT_ERROR)
                }
            }
        } else {
            eprintln!("{} nodes running; Ctrl-C stops them", nodes.len());
            wait_for_signal().await;
            ExitCode::SUCCESS
        };
        for node in nodes {
            node.shutdown().await;
        }
        anyhow::Ok(code)
    })
}

fn parse_policy(text: &str, nodes: usize) -> Result<(usize, NetworkMode, Option<PathBuf>), String> {
    let (index, rest) = text
        .split_once('=')
        .ok_or("write INDEX=MODE[:ALLOWLIST_FILE], e.g. 1=http:allow.txt")?;
    let index: usize = index
        .parse()
        .map_err(|_| format!("`{index}` is not a node index"))?;
    if index >= nodes {
        return Err(format!("node {index} does not exist (0 to {})", nodes - 1));
    }
    let (mode, file) = match rest.split_once(':') {
        Some((m, f)) => (m, Some(PathBuf::from(f))),
        None => (rest, None),
    };
    let mode = parse_accept_network(mode).map_err(|e| e.to_string())?;
    Ok((index, mode, file))
}

/// Until every node has a connection (to the first, at least) and has heard
/// from the others, or a few seconds passed.
async fn wait_until_connected(nodes: &[Node]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let want = nodes.len().saturating_sub(1);
    loop {
        let mut ready = true;
        for node in nodes {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = node
                .commands()
                .send(skrei_node::daemon::CoreCommand::Info { reply: tx })
                .await;
            let heard = rx
                .await
                .map_or(0, |v| v.peers.iter().filter(|p| p.info.is_some()).count());
            if heard < want {
                ready = false;
            }
        }
        if ready || tokio::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The example WASM module: reads /inputs/name.txt, greets it on stdout and
/// in /outputs/greeting.txt. Built from `examples/wasm/hello.wat`.
const HELLO_WASM: &[u8] = include_bytes!("../../../examples/wasm/hello.wasm");

fn run_example(first: &str, last: &str) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("making a temporary folder")?;
    let module = dir.path().join("hello.wasm");
    std::fs::write(&module, HELLO_WASM)?;
    let name = dir.path().join("name.txt");
    std::fs::write(&name, "skrei\n")?;
    let on_last = ApiArgs { url: last.into() };
    let add = |path: &Path| -> anyhow::Result<String> {
        Ok(Client::new(&on_last)?.add(path)?.to_string())
    };
    let module_cid = add(&module)?;
    let input_cid = add(&name)?;
    eprintln!("added the module ({module_cid}) and its input ({input_cid}) on the last node");
    let job = format!(
        "Name: hello\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
         Type: ipfs\n            Params:\n              CID: {module_cid}\n    InputSources:\n      \
         - Source:\n          Type: ipfs\n          Params:\n            CID: {input_cid}\n        \
         Target: /inputs/name.txt\n    ResultPaths:\n      - Name: outputs\n        Path: /outputs\n"
    );
    eprintln!("submitting the job on the first node");
    let wait = super::client::WaitArgs::default();
    super::client::submit_and_follow(&ApiArgs { url: first.into() }, job, &wait, Output::Text)
}
