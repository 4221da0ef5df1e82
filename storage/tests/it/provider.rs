//! A store in its own process, serving over iroh on loopback.
//!
//! The test binary runs itself again with `SKREI_TEST_PROVIDER_DIR` set and
//! only the ignored test [`serve`] selected; that test opens a store in the
//! directory, adds the paths in `SKREI_TEST_PROVIDER_ADD`, prints their CIDs
//! and its address, and serves until its stdin closes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use cid::Cid;
use iroh::EndpointAddr;
use storage::store::{Store, StoreConfig};

const DIR: &str = "SKREI_TEST_PROVIDER_DIR";
const ADD: &str = "SKREI_TEST_PROVIDER_ADD";

/// A running provider process; killed when dropped.
pub struct Provider {
    pub child: Child,
    pub addr: EndpointAddr,
    pub cids: Vec<Cid>,
    stdin: Option<ChildStdin>,
}

impl Provider {
    /// Starts a provider serving `dir` after adding `add` to it.
    pub fn start(dir: &Path, add: &[PathBuf]) -> Provider {
        let joined = add
            .iter()
            .map(|p| p.to_str().expect("test paths are UTF-8"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "provider::serve",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR, dir)
            .env(ADD, joined)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn provider");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut cids = Vec::new();
        let mut addr = None;
        for line in stdout.by_ref() {
            let line = line.expect("provider stdout");
            // libtest prints `test provider::serve ... ` before our output,
            // without a newline: look for the markers anywhere in a line.
            let line = match line.find("SKREI-") {
                Some(i) => &line[i..],
                None => continue,
            };
            if let Some(cid) = line.strip_prefix("SKREI-CID ") {
                cids.push(storage::cid::parse(cid).unwrap().cid());
            } else if let Some(json) = line.strip_prefix("SKREI-ADDR ") {
                addr = Some(serde_json::from_str(json).expect("address JSON"));
                break;
            }
        }
        // Keep reading, so that libtest's last lines in the child find a pipe.
        std::thread::spawn(move || stdout.for_each(drop));
        let stdin = child.stdin.take();
        Provider {
            child,
            addr: addr.expect("provider printed its address"),
            cids,
            stdin,
        }
    }

    /// Closes stdin and waits for a clean shutdown.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "provider exited with {status}");
    }

    /// Kills the process at once, mid-transfer or not.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs only as the provider child process of the transfer tests"]
async fn serve() {
    // Run with `--include-ignored` by hand, there is nothing to serve.
    let Ok(dir) = std::env::var(DIR) else {
        return;
    };
    let store = Store::open(StoreConfig::new(dir)).await.unwrap();
    for path in std::env::var(ADD).unwrap_or_default().lines() {
        if path.is_empty() {
            continue;
        }
        let cid = store.add_path(Path::new(path)).await.unwrap();
        println!("SKREI-CID {cid}");
    }
    println!(
        "SKREI-ADDR {}",
        serde_json::to_string(&store.addr()).unwrap()
    );
    // Serve until the parent closes our stdin (or kills us).
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {}
    })
    .await
    .unwrap();
    store.shutdown().await;
}
