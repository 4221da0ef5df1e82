//! `skrei node` without `--listen` (issue 14): all interfaces, TCP and QUIC
//! port 4001, and another free port when that one is taken, said on
//! stderr. Run in a network namespace of the test's own, so port 4001 of
//! the machine is never touched.

use std::process::Command;

use crate::harness::{NodeProc, Spawn};

/// A network namespace with only `lo` up, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Option<Netns> {
        if let Some(why) = super::missing() {
            assert!(
                !super::required(),
                "SKREI_REQUIRE_NET_ADMIN=1 but no namespace can be made: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        }
        let name = format!("skd{}x{}", std::process::id(), rand_suffix());
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(ok(&["netns", "add", &name]), "ip netns add {name}");
        let ns = Netns(name);
        assert!(ok(&[
            "netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"
        ]));
        Some(ns)
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn node_without_listen(ns: &Netns, dir: &std::path::Path, log: &std::path::Path) -> NodeProc {
    let args = [
        "node",
        "--data-dir",
        &dir.display().to_string(),
        "--api",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    NodeProc::spawn_with(
        args,
        Spawn {
            netns: Some(ns.0.clone()),
            log: Some(log.to_path_buf()),
            rust_log: None,
            ..Spawn::default()
        },
    )
}

fn listen_addrs(node: &NodeProc) -> Vec<String> {
    let mut addrs = Vec::new();
    super::strings(&node.info()["p2p_addrs"], &mut addrs);
    addrs
}

#[test]
fn a_node_listens_on_tcp_and_quic_4001_or_says_which_port_it_took() {
    let Some(ns) = Netns::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (first_log, second_log) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let first = node_without_listen(&ns, &dir.path().join("first"), &first_log);
    let addrs = listen_addrs(&first);
    for want in ["/tcp/4001/", "/udp/4001/quic-v1/"] {
        assert!(
            addrs.iter().any(|a| a.contains(want)),
            "no {want} listen address: {addrs:?}"
        );
    }
    let second = node_without_listen(&ns, &dir.path().join("second"), &second_log);
    let addrs = listen_addrs(&second);
    assert!(
        !addrs.is_empty() && addrs.iter().all(|a| !a.contains("/4001/")),
        "port 4001 is the first node's; the second listens elsewhere: {addrs:?}"
    );
    assert!(
        addrs.iter().any(|a| a.contains("/tcp/")) && addrs.iter().any(|a| a.contains("/quic-v1/")),
        "{addrs:?}"
    );
    let said = std::fs::read_to_string(&second_log).unwrap();
    assert!(
        said.contains("cannot listen on /ip4/0.0.0.0/tcp/4001")
            && said.contains("listening on another free port"),
        "the second node says it took another port: {said}"
    );
    drop((first, second));
}
