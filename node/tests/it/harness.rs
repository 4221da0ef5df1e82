//! The harness of the node's integration tests: `skrei node` processes,
//! the CLI, job files and raw API requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) fn skrei() -> Command {
    Command::new(env!("CARGO_BIN_EXE_skrei"))
}

/// `skrei`, run inside a network namespace (`ip netns exec`) if given.
pub(crate) fn skrei_in(netns: Option<&str>) -> Command {
    match netns {
        None => skrei(),
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_skrei")]);
            command
        }
    }
}

/// Where and how a node process runs (see [`NodeProc::spawn_with`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Spawn {
    /// A network namespace: the node runs there (`ip netns exec`), and so
    /// does every CLI call to it, since its API is on that namespace's
    /// loopback.
    pub(crate) netns: Option<String>,
    /// A file its stderr (its log) is appended to; the test's stderr without.
    pub(crate) log: Option<PathBuf>,
    /// Its `RUST_LOG`; `warn` without.
    pub(crate) rust_log: Option<String>,
    /// More environment variables for it.
    pub(crate) env: Vec<(String, String)>,
}

pub(crate) const HELLO: &[u8] = include_bytes!("../../../examples/wasm/hello.wasm");

/// A `skrei node` process, killed when dropped.
pub(crate) struct NodeProc {
    pub(crate) child: Child,
    pub(crate) api: String,
    args: Vec<String>,
    /// The API token, read from the data folder (R-SEC-1).
    pub(crate) token: String,
    spawn: Spawn,
}

impl NodeProc {
    pub(crate) fn start(dir: &Path, extra: &[&str]) -> NodeProc {
        Self::start_with(dir, extra, Spawn::default())
    }

    /// [`NodeProc::start`], spawned as `spawn` says.
    pub(crate) fn start_with(dir: &Path, extra: &[&str], spawn: Spawn) -> NodeProc {
        let mut args: Vec<String> = vec![
            "node".into(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--api".into(),
            "127.0.0.1:0".into(),
            "--node-info-interval".into(),
            "1".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--listen") {
            args.extend(["--listen".into(), "/ip4/127.0.0.1/tcp/0".into()]);
        }
        Self::spawn_with(args, spawn)
    }

    pub(crate) fn spawn(args: Vec<String>) -> NodeProc {
        Self::spawn_with(args, Spawn::default())
    }

    pub(crate) fn spawn_with(args: Vec<String>, spawn: Spawn) -> NodeProc {
        let stderr = match &spawn.log {
            None => Stdio::inherit(),
            Some(log) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
                .into(),
        };
        let mut child = skrei_in(spawn.netns.as_deref())
            .args(&args)
            .env("RUST_LOG", spawn.rust_log.as_deref().unwrap_or("warn"))
            .envs(spawn.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(api) = line.strip_prefix("SKREI_API=") {
                    let _ = tx.send(api.to_string());
                }
            }
        });
        let api = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| {
                let log = spawn.log.as_ref().map(|log| {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    format!("; its log, {}:\n{text}", log.display())
                });
                panic!(
                    "the node did not print SKREI_API= ({e}){}",
                    log.unwrap_or_default()
                )
            });
        let data_dir = args
            .iter()
            .position(|a| a == "--data-dir")
            .map(|i| PathBuf::from(&args[i + 1]))
            .expect("a --data-dir");
        let token = std::fs::read_to_string(data_dir.join("api.token"))
            .expect("the node keeps its API token in its data folder");
        NodeProc {
            child,
            api,
            args,
            token,
            spawn,
        }
    }

    /// `skrei ARGS --api <this node>`, where the node runs.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        skrei_in(self.spawn.netns.as_deref())
            .args(args)
            .args(["--api", &self.api])
            .output()
            .unwrap()
    }

    /// One raw HTTP/1.1 request (written with `Host: x`), sent with this
    /// node's own address as `Host` and its token (from this namespace:
    /// not for a node in another one).
    pub(crate) fn raw(&self, request: &str) -> (u16, String) {
        let request = request.replace(
            "Host: x\r\n",
            &format!(
                "Host: 127.0.0.1\r\nAuthorization: Bearer {}\r\n",
                self.token
            ),
        );
        raw_http(&self.api, &request)
    }

    /// Kills the process (SIGKILL: nothing is flushed on the way out).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again with the same flags (same data folder), in the
    /// same place.
    pub(crate) fn restart(&mut self) {
        self.kill();
        *self = Self::spawn_with(self.args.clone(), self.spawn.clone());
    }

    pub(crate) fn info(&self) -> Value {
        json(&self.cli(&["node", "info", "--output", "json"]))
    }

    pub(crate) fn id(&self) -> String {
        self.info()["node_id"].as_str().unwrap().to_string()
    }

    pub(crate) fn bootstrap(&self) -> String {
        self.info()["p2p_addrs"][0].as_str().unwrap().to_string()
    }

    pub(crate) fn add(&self, path: &Path) -> String {
        let out = self.cli(&["add", path.to_str().unwrap()]);
        assert!(out.status.success(), "add: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }

    pub(crate) fn submit(&self, job: &str) -> String {
        let mut child = skrei_in(self.spawn.netns.as_deref())
            .args(["job", "run", "-", "--no-wait", "--api", &self.api])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(job.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "job run: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }

    pub(crate) fn describe(&self, job_id: &str) -> Value {
        json(&self.cli(&["job", "describe", job_id, "--output", "json"]))
    }

    /// Waits for the job to end (and, if it completed, for its results to
    /// be here).
    /// Waits until this node has the node info of every node in `ids`, so
    /// that it waits for their answers to a job.
    pub(crate) fn hears(&self, ids: &[&str]) {
        crate::natlab::eventually(Duration::from_secs(20), "the peers' node info", || {
            let info = self.info();
            let heard = |id: &str| {
                info["peers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["node_id"] == id && p["info"].is_object())
            };
            ids.iter()
                .all(|id| heard(id))
                .then_some(())
                .ok_or(format!("{:#}", info["peers"]))
        });
    }

    pub(crate) fn wait(&self, job_id: &str, timeout: Duration) -> Value {
        self.wait_for(job_id, timeout, "the job to end", |job| {
            let results = job["results"].as_array().cloned().unwrap_or_default();
            match job["state"].as_str() {
                Some("failed" | "cancelled") => true,
                Some("completed") => results.iter().all(|r| r["fetched"] == true),
                _ => false,
            }
        })
    }

    pub(crate) fn wait_for(
        &self,
        job_id: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.describe(job_id);
            if done(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {job:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn cli(api: &str, args: &[&str]) -> std::process::Output {
    skrei().args(args).args(["--api", api]).output().unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

/// The example job: the hello module on `input` (a job input source, YAML),
/// with `network` lines under the task.
pub(crate) fn hello_job(name: &str, module_cid: &str, input: &str, network: &str) -> String {
    format!(
        "Name: {name}\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
         Type: ipfs\n            Params:\n              CID: {module_cid}\n    InputSources:\n\
         {input}    ResultPaths:\n      - Name: outputs\n        Path: /outputs\n{network}    \
         Timeouts:\n      QueueTimeout: 3\n"
    )
}

pub(crate) fn cid_input(cid: &str) -> String {
    format!(
        "      - Source:\n          Type: ipfs\n          Params:\n            CID: {cid}\n        \
         Target: /inputs/name.txt\n"
    )
}

pub(crate) fn url_input(url: &str) -> String {
    format!(
        "      - Source:\n          Type: urlDownload\n          Params:\n            URL: {url}\n        \
         Target: /inputs\n"
    )
}

pub(crate) fn http_network(domains: &[&str]) -> String {
    let mut s = "    Network:\n      Type: http\n      Domains:\n".to_string();
    for d in domains {
        s.push_str(&format!("        - {d}\n"));
    }
    s
}

/// Files the tests add: the module and a name to greet.
pub(crate) struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    pub(crate) fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.wasm"), HELLO).unwrap();
        std::fs::write(dir.path().join("name.txt"), "skrei\n").unwrap();
        Files { dir }
    }
    pub(crate) fn module(&self) -> PathBuf {
        self.dir.path().join("hello.wasm")
    }
    pub(crate) fn name(&self) -> PathBuf {
        self.dir.path().join("name.txt")
    }
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub(crate) fn executions_on(job: &Value) -> Vec<String> {
    job["job"]["executions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn refusers(job: &Value) -> Vec<String> {
    job["job"]["refusals"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(n, _)| n.clone())
        .collect()
}

/// One raw HTTP/1.1 request to the API; returns the status code and body.
pub(crate) fn raw_http(api: &str, request: &str) -> (u16, String) {
    let (status, _, rest) = raw_exchange(api, request);
    // As before: up to the next blank line.
    let body = rest.split("\r\n\r\n").next().unwrap_or("").to_string();
    (status, body)
}

/// One raw HTTP/1.1 exchange: the status, the response head and its body.
pub(crate) fn raw_exchange(api: &str, request: &str) -> (u16, String, String) {
    let addr = api.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_string(), body.to_string())
}
