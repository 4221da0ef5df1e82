//! A lab of network namespaces for joining a network from behind NAT
//! (issue 14): `natlab/natlab.sh` builds it (read its header), this module
//! runs `skrei node` processes in it and reads what they and the lab's
//! routers saw. The tests are in `natlab/join.rs`.
//!
//! Each [`Lab`] has namespaces of its own (a prefix with this process's id
//! and a counter), so tests run in parallel; dropping it, even while
//! panicking, kills what runs in it and deletes it (and a panicking test
//! prints its nodes' logs and the lab's counters first). Labs left by a
//! test process that was killed are deleted by the next one.
//!
//! Building a lab needs root, iproute2 and iptables: without them the tests
//! skip, unless `SKREI_REQUIRE_NET_ADMIN=1` (then they fail; CI sets it).
//! The nodes' API is on their namespace's loopback, which this process
//! cannot reach: every CLI call goes through `ip netns exec` too
//! ([`crate::harness::Spawn`]).
//!
//! `SKREI_NATLAB_LOG` sets the nodes' `RUST_LOG` (default `warn`); the
//! logs are in the lab's folder, printed when a test fails.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{NodeProc, Spawn, text};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/natlab/natlab.sh");

/// The lab's "internet": a global range, since skrei refuses to announce or
/// dial special-purpose addresses (the lab is sealed: no packet reaches the
/// real one).
pub(crate) const PUB_NET: &str = "11.14.0";
/// The public node's address (NAT A's is .1, NAT B's .2).
pub(crate) const BOOT_IP: &str = "11.14.0.10";
/// What `boot.natlab.test` resolves to inside the lab.
pub(crate) const BOOT_NAME: &str = "boot.natlab.test";
/// The port every node listens on, TCP and QUIC.
pub(crate) const PORT: u16 = 4001;
/// Both LANs' range (the same on both sides of the lab).
pub(crate) const LAN: &str = "192.168.1.";

/// Namespaces of labs start with this, then the process id.
const PREFIX: &str = "skl";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nat {
    /// Endpoint-independent mapping: hole punching works.
    Cone,
    /// A new port per destination: only a relay connects A and B.
    Symmetric,
}

impl Nat {
    fn name(self) -> &'static str {
        match self {
            Nat::Cone => "cone",
            Nat::Symmetric => "symmetric",
        }
    }
}

/// The lab's hosts that run nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Host {
    /// The public node, on the "internet" at [`BOOT_IP`].
    Boot,
    /// 192.168.1.10 behind NAT A.
    A,
    /// 192.168.1.20 behind NAT B.
    B,
}

impl Host {
    fn name(self) -> &'static str {
        match self {
            Host::Boot => "boot",
            Host::A => "a",
            Host::B => "b",
        }
    }
}

/// One lab (see the module's docs).
pub(crate) struct Lab {
    prefix: String,
    pub(crate) nat: Nat,
    dir: tempfile::TempDir,
    /// Each node's name and log, printed when a test fails.
    logs: Mutex<Vec<(String, PathBuf)>>,
}

static LABS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn required() -> bool {
    std::env::var("SKREI_REQUIRE_NET_ADMIN").is_ok_and(|v| v == "1")
}

/// Why no lab can be built here, if so.
pub(crate) fn missing() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("not root".into());
    }
    for (tool, version) in [("ip", "-V"), ("iptables", "--version")] {
        let found = Command::new(tool).arg(version).output();
        if !found.is_ok_and(|o| o.status.success()) {
            return Some(format!("no `{tool}` (install iproute2 and iptables)"));
        }
    }
    None
}

fn script(prefix: &str, nat: Nat, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .env("LAB", prefix)
        .env("NAT", nat.name())
        .env("PUB_NET", PUB_NET)
        .output()
        .unwrap_or_else(|e| panic!("running {SCRIPT}: {e}"))
}

/// Deletes the labs of test processes that are gone (killed before their
/// labs' drop ran).
fn delete_stale_labs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let mut stale = std::collections::BTreeSet::new();
    for line in text(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        // skl<pid>x<n>-<host>
        let Some(prefix) = name.rsplit_once('-').map(|(p, _)| p) else {
            continue;
        };
        let Some(pid) = prefix
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('x'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            stale.insert(prefix.to_string());
        }
    }
    for prefix in stale {
        script(&prefix, Nat::Cone, &["down"]);
    }
}

impl Lab {
    /// Builds a lab; `None` (skip) without root, `ip` or `iptables`,
    /// unless `SKREI_REQUIRE_NET_ADMIN=1`.
    pub(crate) fn up(nat: Nat) -> Option<Lab> {
        if let Some(why) = missing() {
            assert!(
                !required(),
                "SKREI_REQUIRE_NET_ADMIN=1 but no NAT lab can be built: {why}"
            );
            eprintln!(
                "skipping: no NAT lab ({why}); run as root, or set \
                 SKREI_REQUIRE_NET_ADMIN=1 to fail instead"
            );
            return None;
        }
        assert!(
            protocol::address::classify(BOOT_IP.parse().unwrap()).is_none(),
            "the lab's internet must be a global range"
        );
        delete_stale_labs();
        let prefix = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::SeqCst)
        );
        let out = script(&prefix, nat, &["up"]);
        if !out.status.success() {
            script(&prefix, nat, &["down"]);
            let why = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert!(
                !required(),
                "SKREI_REQUIRE_NET_ADMIN=1 but the NAT lab failed: {why}"
            );
            eprintln!("skipping: the NAT lab failed: {why}");
            return None;
        }
        Some(Lab {
            prefix,
            nat,
            dir: tempfile::tempdir().unwrap(),
            logs: Mutex::new(Vec::new()),
        })
    }

    /// The lab's own folder, for nodes' data and test files.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn netns(&self, host: Host) -> String {
        format!("{}-{}", self.prefix, host.name())
    }

    /// `natlab.sh check`: the NAT properties the tests rely on.
    pub(crate) fn check(&self) -> Output {
        script(&self.prefix, self.nat, &["check"])
    }

    /// A `skrei node` on `host`, named `name` (its data folder and log),
    /// listening on TCP and QUIC port 4001 on every interface, with its API
    /// on the namespace's loopback and the `extra` flags. It stops when this
    /// test process does, even if killed (`--parent-pid`).
    pub(crate) fn node(&self, host: Host, name: &str, extra: &[&str]) -> NodeProc {
        let mut args: Vec<String> = [
            "node",
            "--data-dir",
            self.dir().join(name).to_str().unwrap(),
            "--api",
            "127.0.0.1:0",
            "--node-info-interval",
            "1",
            "--parent-pid",
            &std::process::id().to_string(),
            "--listen",
            &format!("/ip4/0.0.0.0/tcp/{PORT}"),
            "--listen",
            &format!("/ip4/0.0.0.0/udp/{PORT}/quic-v1"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = self.dir().join(format!("{name}.log"));
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_string(), log.clone()));
        NodeProc::spawn_with(
            args,
            Spawn {
                netns: Some(self.netns(host)),
                log: Some(log),
                rust_log: Some(std::env::var("SKREI_NATLAB_LOG").unwrap_or_else(|_| "warn".into())),
                ..Spawn::default()
            },
        )
    }

    /// The lab's counters (see natlab.sh): (host, name) -> (packets, bytes).
    pub(crate) fn counters(&self) -> BTreeMap<(String, String), (u64, u64)> {
        let out = script(&self.prefix, self.nat, &["counters"]);
        assert!(out.status.success(), "counters: {}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let [host, name, packets, bytes] = w[..] else {
                    return None;
                };
                Some((
                    (host.to_string(), name.to_string()),
                    (packets.parse().ok()?, bytes.parse().ok()?),
                ))
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The nodes' side of the story, for the failure's output.
            let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for (name, log) in logs {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!(
                    "--- log of {name} ({} lines, last {}):\n{}",
                    lines.len(),
                    tail.len(),
                    tail.join("\n")
                );
            }
            let counters = script(&self.prefix, self.nat, &["counters"]);
            eprintln!("--- lab counters:\n{}", text(&counters.stdout));
        }
        script(&self.prefix, self.nat, &["down"]);
    }
}

// ------------------------------------------------------------ nodes' views

/// Polls `probe` every 200 ms until it gives a value, at most `timeout`;
/// panics with the last thing it said otherwise.
pub(crate) fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `--bootstrap` addresses of the public node: TCP and QUIC, at `host`
/// (its address or [`BOOT_NAME`]).
pub(crate) fn bootstrap_args(boot_id: &str, by_name: bool) -> Vec<String> {
    let at = if by_name {
        format!("/dns4/{BOOT_NAME}")
    } else {
        format!("/ip4/{BOOT_IP}")
    };
    [
        format!("{at}/tcp/{PORT}/p2p/{boot_id}"),
        format!("{at}/udp/{PORT}/quic-v1/p2p/{boot_id}"),
    ]
    .into_iter()
    .flat_map(|a| ["--bootstrap".to_string(), a])
    .collect()
}

/// The peer `id` in a node's info (`peers[]`).
pub(crate) fn peer<'a>(info: &'a Value, id: &str) -> Option<&'a Value> {
    info["peers"]
        .as_array()?
        .iter()
        .find(|p| p["node_id"].as_str() == Some(id))
}

pub(crate) fn connected(info: &Value, id: &str) -> bool {
    peer(info, id).is_some_and(|p| p["connected"] == true)
}

/// The remote addresses of a node's open libp2p connections to peer `id`:
/// `peers[].connections` (planned with issue 14: a list of multiaddrs, or
/// of objects holding one), `Err` when node info has no such field.
pub(crate) fn connections(info: &Value, id: &str) -> Result<Vec<String>, String> {
    let Some(p) = peer(info, id) else {
        return Ok(Vec::new());
    };
    let Some(list) = p.get("connections") else {
        return Err(format!(
            "node info has no `peers[].connections` (the remote addresses of the \
             open connections to a peer): {p}"
        ));
    };
    let mut addrs = Vec::new();
    strings(list, &mut addrs);
    Ok(addrs)
}

/// Every string in `value`, depth first.
pub(crate) fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Every IPv4 address written in `value`'s strings (multiaddrs, socket
/// addresses, URLs).
pub(crate) fn ipv4s(value: &Value) -> Vec<Ipv4Addr> {
    let mut all = Vec::new();
    strings(value, &mut all);
    all.iter()
        .flat_map(|s| {
            s.split(|c: char| !c.is_ascii_digit() && c != '.')
                .filter_map(|w| w.parse::<Ipv4Addr>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The addresses in `value` skrei's address table calls special-purpose
/// (private, loopback, ...): none may be announced to the wide network.
pub(crate) fn special(value: &Value) -> Vec<String> {
    ipv4s(value)
        .into_iter()
        .filter_map(|ip| {
            protocol::address::classify(IpAddr::V4(ip)).map(|why| format!("{ip} ({why})"))
        })
        .collect()
}

// ------------------------------------------------------------ the three nodes

pub(crate) fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The public node (a relay server, with `boot_flags`), A (`--capacity 0`)
/// and B, A and B joined through the public node.
pub(crate) struct Nodes {
    pub(crate) boot: NodeProc,
    pub(crate) a: NodeProc,
    pub(crate) b: NodeProc,
    pub(crate) boot_id: String,
    pub(crate) a_id: String,
    pub(crate) b_id: String,
}

/// The lab's CA (`ca.pem`) and a certificate it signed for [`BOOT_NAME`]
/// (`relay.pem`, `relay.key`), in the lab's folder: the public node's iroh
/// relay serves it, every node trusts the CA for relays (`--iroh-relay-ca`).
pub(crate) fn lab_ca(lab: &Lab) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "skrei NAT lab CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![BOOT_NAME.to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let path = |name: &str, pem: String| {
        let path = lab.dir().join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_string()
    };
    (
        path("ca.pem", ca.pem()),
        path("relay.pem", cert.pem()),
        path("relay.key", key.serialize_pem()),
    )
}

/// Starts the three nodes; B bootstraps by name (`/dns4`) if `b_by_name`.
/// The public node runs an iroh relay at `https://boot.natlab.test`.
pub(crate) fn start(lab: &Lab, boot_flags: &[&str], b_by_name: bool) -> Nodes {
    let (ca, cert, key) = lab_ca(lab);
    let url = format!("https://{BOOT_NAME}");
    let mut flags = vec![
        "--relay-server",
        "--iroh-relay-listen",
        "0.0.0.0:443",
        "--iroh-relay-cert",
        &cert,
        "--iroh-relay-key",
        &key,
        "--iroh-relay-url",
        &url,
        // Its own store reaches its peers through the relay too.
        "--iroh-relay-ca",
        &ca,
    ];
    flags.extend(boot_flags);
    let boot = lab.node(Host::Boot, "boot", &flags);
    let boot_id = boot.id();
    let trust = ["--iroh-relay-ca".to_string(), ca.clone()];
    let mut a_flags = vec!["--capacity".to_string(), "0".to_string()];
    a_flags.extend(bootstrap_args(&boot_id, false));
    a_flags.extend(trust.clone());
    let a = lab.node(Host::A, "a", &refs(&a_flags));
    let mut b_flags = bootstrap_args(&boot_id, b_by_name);
    b_flags.extend(trust);
    let b = lab.node(Host::B, "b", &refs(&b_flags));
    let (a_id, b_id) = (a.id(), b.id());
    joined(&boot, &[&a_id, &b_id], Duration::from_secs(20));
    Nodes {
        boot,
        a,
        b,
        boot_id,
        a_id,
        b_id,
    }
}

/// Waits until `node` has a connection to each of `peers`.
pub(crate) fn joined(node: &NodeProc, peers: &[&str], timeout: Duration) {
    eventually(timeout, "the nodes to connect", || {
        let info = node.info();
        let missing: Vec<&&str> = peers.iter().filter(|p| !connected(&info, p)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} has no connection to {missing:?}: {:#}",
                info["node_id"], info["peers"]
            ))
        }
    });
}

/// Writes the reader module into the lab's folder and adds it on `node`.
pub(crate) fn add_reader(lab: &Lab, node: &NodeProc) -> String {
    let path = lab.dir().join("reader.wasm");
    std::fs::write(&path, reader_module()).unwrap();
    node.add(&path)
}

pub(crate) fn ended(job: &Value) -> bool {
    let results = job["results"].as_array().cloned().unwrap_or_default();
    match job["state"].as_str() {
        Some("failed" | "cancelled") => true,
        Some("completed") => results.iter().all(|r| r["fetched"] == true),
        _ => false,
    }
}

pub(crate) fn reachability(info: &Value) -> String {
    info["reachability"]
        .as_str()
        .unwrap_or("(no `reachability` in node info)")
        .to_string()
}

// ------------------------------------------------------------ the job

/// A WASI module: sleeps argv[1] seconds if given, then reads
/// /inputs/data.bin whole and prints `bytes <length> fnv1a <hash>\n` (both
/// 8 hex digits; FNV-1a 32) on stdout.
pub(crate) fn reader_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
 (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
 ;; 0..1024 scratch, 1024.. argv pointers, 4096.. argv strings, 65536.. read buffer
 (memory (export "memory") 2)
 (func $check (param i32) (if (local.get 0) (then (call $exit (i32.add (i32.const 10) (local.get 0))))))
 (data (i32.const 100) "data.bin")
 (data (i32.const 512) "bytes 00000000 fnv1a 00000000\n")
 ;; 8 hex digits of $v at $at
 (func $hex (param $at i32) (param $v i32) (local $i i32) (local $d i32)
   (loop $digit
     (local.set $d (i32.and (i32.shr_u (local.get $v)
         (i32.sub (i32.const 28) (i32.mul (local.get $i) (i32.const 4)))) (i32.const 15)))
     (i32.store8 (i32.add (local.get $at) (local.get $i))
       (i32.add (local.get $d)
         (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $d) (i32.const 10)))))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br_if $digit (i32.lt_u (local.get $i) (i32.const 8)))))
 (func (export "_start")
   (local $p i32) (local $c i32) (local $secs i64)
   (local $in i32) (local $n i32) (local $len i32) (local $h i32) (local $i i32)
   (call $check (call $args_sizes_get (i32.const 0) (i32.const 4)))
   (if (i32.ge_u (i32.load (i32.const 0)) (i32.const 2)) (then
     (call $check (call $args_get (i32.const 1024) (i32.const 4096)))
     (local.set $p (i32.load (i32.const 1028)))
     (block $end (loop $digits
       (local.set $c (i32.load8_u (local.get $p)))
       (br_if $end (i32.lt_u (local.get $c) (i32.const 48)))
       (br_if $end (i32.gt_u (local.get $c) (i32.const 57)))
       (local.set $secs (i64.add (i64.mul (local.get $secs) (i64.const 10))
         (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48)))))
       (local.set $p (i32.add (local.get $p) (i32.const 1)))
       (br $digits)))
     ;; one relative clock subscription (monotonic clock) at 256, its event at 320
     (i64.store (i32.const 256) (i64.const 0))
     (i32.store8 (i32.const 264) (i32.const 0))
     (i32.store (i32.const 272) (i32.const 1))
     (i64.store (i32.const 280) (i64.mul (local.get $secs) (i64.const 1000000000)))
     (i64.store (i32.const 288) (i64.const 0))
     (i32.store16 (i32.const 296) (i32.const 0))
     (call $check (call $poll_oneoff (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 8)))))
   ;; fd 3 is the /inputs preopen
   (call $check (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 8)
       (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12)))
   (local.set $in (i32.load (i32.const 12)))
   (local.set $h (i32.const 0x811c9dc5))
   (block $eof (loop $chunk
     (i32.store (i32.const 16) (i32.const 65536))
     (i32.store (i32.const 20) (i32.const 65536))
     (call $check (call $fd_read (local.get $in) (i32.const 16) (i32.const 1) (i32.const 8)))
     (local.set $n (i32.load (i32.const 8)))
     (br_if $eof (i32.eqz (local.get $n)))
     (local.set $len (i32.add (local.get $len) (local.get $n)))
     (local.set $i (i32.const 0))
     (loop $byte
       (local.set $h (i32.mul
         (i32.xor (local.get $h) (i32.load8_u (i32.add (i32.const 65536) (local.get $i))))
         (i32.const 0x01000193)))
       (local.set $i (i32.add (local.get $i) (i32.const 1)))
       (br_if $byte (i32.lt_u (local.get $i) (local.get $n))))
     (br $chunk)))
   (call $hex (i32.const 518) (local.get $len))
   (call $hex (i32.const 533) (local.get $h))
   (i32.store (i32.const 32) (i32.const 512))
   (i32.store (i32.const 36) (i32.const 30))
   (call $check (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 8))))
)"#,
    )
    .expect("the reader module compiles")
}

/// What [`reader_module`] prints for `data`.
pub(crate) fn reader_output(data: &[u8]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    format!("bytes {:08x} fnv1a {h:08x}\n", data.len() as u32)
}

/// `len` bytes that do not compress (xorshift), the same on every call.
pub(crate) fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A job running the reader module `module` with `args`, on `input` (YAML
/// lines of one input source, targeted at /inputs/data.bin or /inputs).
pub(crate) fn reader_job(name: &str, module: &str, args: &[&str], input: &str) -> String {
    format!(
        "Name: {name}\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
         Type: ipfs\n            Params:\n              CID: {module}\n        \
         Parameters: [{}]\n    InputSources:\n{input}    ResultPaths:\n      - Name: outputs\n        \
         Path: /outputs\n    Timeouts:\n      QueueTimeout: 20\n      ExecutionTimeout: 120\n",
        args.join(", ")
    )
}

/// An input source: content by CID at /inputs/data.bin.
pub(crate) fn cid_data(cid: &str) -> String {
    format!(
        "      - Source:\n          Type: ipfs\n          Params:\n            CID: {cid}\n        \
         Target: /inputs/data.bin\n"
    )
}

/// An input source: `data` carried in the job, at /inputs/data.bin.
pub(crate) fn inline_data(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    format!(
        "      - Source:\n          Type: inline\n          Params:\n            \
         URL: \"data:application/octet-stream;base64,{b64}\"\n        Target: /inputs/data.bin\n"
    )
}

/// An input source: a folder on the compute node (allowed there by
/// `--local-inputs`), at /inputs.
pub(crate) fn local_dir(path: &Path) -> String {
    format!(
        "      - Source:\n          Type: localDirectory\n          Params:\n            \
         SourcePath: {}\n        Target: /inputs\n",
        path.display()
    )
}

/// The job's stdout, fetched back to the requester with `skrei job get`.
pub(crate) fn stdout_of(requester: &NodeProc, job: &str, into: &Path) -> String {
    let out = requester.cli(&["job", "get", job, "-o", into.to_str().unwrap()]);
    assert!(out.status.success(), "job get: {}", text(&out.stderr));
    std::fs::read_to_string(into.join("stdout")).unwrap()
}
