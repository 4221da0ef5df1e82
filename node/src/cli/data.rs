//! `skrei add` and `skrei get`: content by CID (R-VOL-3).
//!
//! Both go through the local node's API (`--api`, `SKREI_API`), and read
//! or write the user's files here, as the user who runs `skrei`: the node
//! only sees bytes. `get` of content the node lacks has the node fetch it
//! from the nodes the DHT names (or from `--from` providers). With
//! `--data-dir` they work on a data directory directly instead, with no node
//! running (one that no running node holds open); `get` fetches from the
//! providers given with `--from` when the content is not there yet.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use api::address::DataAddr;
use api::content::ContentAnswer;
use clap::Args;
use skrei_node::daemon::api::endpoint_addr;
use storage::store::{Store, StoreConfig};

use super::client::{self, ApiArgs};
use super::{EXIT_INVALID, Output, print_line};

#[derive(Args, Debug)]
pub struct AddArgs {
    /// A file or directory to add.
    path: PathBuf,
    /// Work on this data directory directly instead of through a node.
    #[arg(long, env = "SKREI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
    /// `json` prints `{"cid": ...}`.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// The CID to write out (`bafkr4i...` for a file, `bafyr4i...` for a folder).
    cid: String,
    /// Where to write it; must not exist yet. Default: the CID, in the current folder.
    #[arg(short = 'o', long = "output-dir", value_name = "PATH")]
    output: Option<PathBuf>,
    /// Work on this data directory directly instead of through a node.
    #[arg(long, env = "SKREI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
    /// A provider's blob store address to fetch from when the content is not
    /// here yet: the JSON object `skrei node info --output json` shows as
    /// `data_addr`. Repeatable.
    #[arg(long = "from", value_name = "ADDR")]
    from: Vec<String>,
    /// Most bytes to fetch or write (refused before anything is written).
    #[arg(long, value_name = "SIZE", default_value = "10Gi")]
    max_size: String,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    if !args.path.exists() {
        eprintln!(
            "error: {} does not exist: give a file or folder to add",
            args.path.display()
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let Some(data_dir) = args.data_dir else {
        return client::add(&args.api, &args.path, args.output);
    };
    runtime()?.block_on(async {
        let store = Store::open(StoreConfig::new(&data_dir))
            .await
            .with_context(|| format!("opening the store in {}", data_dir.display()))?;
        let added = store.add_path(&args.path).await;
        store.shutdown().await;
        let cid = added.with_context(|| format!("adding {}", args.path.display()))?;
        match args.output {
            Output::Text => print_line(&cid.to_string()),
            Output::Json => print_line(&serde_json::to_string(&ContentAnswer { cid })?),
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let cid = match storage::cid::parse(&args.cid) {
        Ok(content) => content.cid(),
        Err(e) => {
            eprintln!("error: CID: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let mut providers = Vec::new();
    for text in &args.from {
        match text.parse::<DataAddr>() {
            Ok(addr) => providers.push(addr),
            Err(e) => {
                eprintln!("error: --from `{text}`: {e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    let max = match super::parse_size("--max-size", &args.max_size) {
        Ok(max) => max,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let target = args.output.unwrap_or_else(|| PathBuf::from(&args.cid));
    let Some(data_dir) = args.data_dir else {
        return client::get_content(&args.api, &args.cid, &target, &providers, max);
    };
    runtime()?.block_on(async {
        let store = Store::open(StoreConfig::new(&data_dir))
            .await
            .with_context(|| format!("opening the store in {}", data_dir.display()))?;
        let result = async {
            if !providers.is_empty() {
                let providers = providers
                    .iter()
                    .map(endpoint_addr)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
                store.fetch(&cid, &providers, None, max).await?;
            }
            store.export(&cid, &target, max).await?;
            anyhow::Ok(())
        }
        .await;
        store.shutdown().await;
        result.with_context(|| format!("getting {cid}"))?;
        eprintln!("wrote {}", target.display());
        Ok(ExitCode::SUCCESS)
    })
}
