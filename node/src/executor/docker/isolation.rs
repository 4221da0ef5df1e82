//! Whether this engine can give an `http` job a network with no way out
//! (R-NET-3), checked on the engine itself at start-up.
//!
//! Measured here: a container on a plain `Internal: true` network still
//! reaches every host service listening on all interfaces, through the
//! bridge's gateway address (and on Docker 20.10 through the host's LAN
//! address). The bridge must carry no host address at all:
//! `com.docker.network.bridge.inhibit_ipv4=true` on older engines, gateway
//! mode `isolated` on Docker 28+. An engine may accept an option and ignore
//! it, so each candidate is tried on a scratch network and the host side is
//! inspected: with no IPv4 address on the bridge, the kernel has no route
//! through it.
//!
//! IPv6 too: the network is created without IPv6, yet once a container is
//! attached the host gives the bridge a link-local IPv6 address (measured on
//! Docker 20.10), which a job with IPv6 would reach host services on `[::]`
//! through. So every container on the network gets IPv6 switched off in its
//! namespace ([`confine`]), and the check starts one there and reads its
//! namespace from the host: no IPv6 address, no IPv6 route anywhere.
//!
//! DNS: engines before 26.0, 25.0.4 and 23.0.11 forward lookups from
//! internal networks through their embedded DNS, from the host's namespace
//! when the host's resolver is on loopback (CVE-2024-29018): a job could
//! leak data in the names it looks up. A job needs no DNS (the proxy
//! resolves names), so [`confine`] names a resolver for the container,
//! 127.0.0.1, which these engines query from the container's own namespace:
//! a lookup the embedded DNS forwards ends on the job's own loopback. On
//! such an engine the check also requires that the engine kept that
//! setting, or `http` is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use protocol::domain::DomainSet;

const INHIBIT_IPV4: &str = "com.docker.network.bridge.inhibit_ipv4";
const GATEWAY_MODE_IPV4: &str = "com.docker.network.bridge.gateway_mode_ipv4";
/// The resolver an `http` job's container is given: its own loopback.
const JOB_RESOLVER: &str = "127.0.0.1";

/// What a container on an `http` job's internal network gets on top of the
/// locked-down settings: a resolver in its own namespace and no IPv6 (see
/// the module's documentation).
pub(super) fn confine(host_config: &mut HostConfig) {
    host_config.dns = Some(vec![JOB_RESOLVER.to_string()]);
    // A kernel without IPv6 has no such settings (and the engine would
    // refuse to set them); its containers have no IPv6 anyway.
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        host_config.sysctls = Some(HashMap::from([
            (
                "net.ipv6.conf.all.disable_ipv6".to_string(),
                "1".to_string(),
            ),
            (
                "net.ipv6.conf.default.disable_ipv6".to_string(),
                "1".to_string(),
            ),
        ]));
    }
}

/// Whether Docker `version` forwards lookups from internal networks
/// (CVE-2024-29018: fixed in 26.0.0, 25.0.4 and 23.0.11); `None` when the
/// version cannot be read.
pub(super) fn forwards_internal_dns(version: &str) -> Option<bool> {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
    Some(match (major, minor) {
        (26.., _) => false,
        (25, 0) => patch < 4,
        (25, _) => false,
        (24, _) => true,
        (23, 0) => patch < 11,
        (23, _) => false,
        _ => true,
    })
}

/// Whether this engine forwards lookups from internal networks, said in
/// the log when it does; an unreadable version counts as forwarding.
pub(super) async fn engine_forwards_internal_dns(docker: &Docker) -> Result<bool, String> {
    let version = docker
        .version()
        .await
        .map_err(|e| format!("cannot read the engine's version: {e}"))?
        .version
        .unwrap_or_default();
    let forwards = forwards_internal_dns(&version).unwrap_or(true);
    if forwards {
        tracing::warn!(
            %version,
            "this Docker engine forwards DNS lookups from internal networks \
             (CVE-2024-29018); http jobs get a resolver on their own loopback, so nothing \
             they look up leaves their namespace; upgrade to Docker 26.0 or later"
        );
    }
    Ok(forwards)
}

/// The bridge options that isolate an internal network on this engine, or
/// why none does. `image` is the sidecar's: a container of it is started
/// on the network to check the job's namespace; `dns_forwarding` says the
/// engine has CVE-2024-29018.
pub(super) async fn find_isolating_options(
    docker: &Docker,
    labels: &HashMap<String, String>,
    image: &str,
    dns_forwarding: bool,
) -> Result<HashMap<String, String>, String> {
    let candidates = [
        HashMap::from([(INHIBIT_IPV4.to_string(), "true".to_string())]),
        HashMap::from([(GATEWAY_MODE_IPV4.to_string(), "isolated".to_string())]),
    ];
    let mut reasons = Vec::new();
    for options in candidates {
        match check(docker, labels, &options, image, dns_forwarding).await {
            Ok(()) => return Ok(options),
            Err(why) => reasons.push(why),
        }
    }
    Err(reasons.join("; "))
}

async fn check(
    docker: &Docker,
    labels: &HashMap<String, String>,
    options: &HashMap<String, String>,
    image: &str,
    dns_forwarding: bool,
) -> Result<(), String> {
    let described = options
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "skrei-isolation-check-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let created = docker
        .create_network(NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            internal: Some(true),
            enable_ipv6: Some(false),
            options: Some(options.clone()),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("the engine refuses an internal network with {described}: {e}"))?;
    let mut verdict = host_has_no_route(&created.id);
    if verdict.is_ok() {
        verdict =
            jobs_are_confined(docker, &name, &created.id, labels, image, dns_forwarding).await;
    }
    if let Err(e) = docker.remove_network(&created.id).await {
        tracing::warn!(network = %name, error = %e, "cannot remove the isolation check network");
    }
    verdict.map_err(|why| format!("with {described}: {why}"))
}

/// The name of the host side of network `id`'s bridge.
pub(super) fn bridge_name(id: &str) -> String {
    format!("br-{}", id.get(..12).unwrap_or(id))
}

/// The bridge Docker created for network `id` exists on this host and the
/// host routes nothing through it (so it holds no IPv4 address).
fn host_has_no_route(id: &str) -> Result<(), String> {
    let bridge = bridge_name(id);
    if !std::path::Path::new("/sys/class/net")
        .join(&bridge)
        .exists()
    {
        return Err(format!(
            "its bridge {bridge} is not visible from this node (is the engine remote or \
             rootless?), so the isolation cannot be checked"
        ));
    }
    let routes = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| format!("cannot read /proc/net/route: {e}"))?;
    if routes
        .lines()
        .any(|l| l.split_whitespace().next() == Some(bridge.as_str()))
    {
        return Err(format!(
            "the host still has an address on {bridge}, so a job could reach host services"
        ));
    }
    Ok(())
}

/// A container set up as a job's is attached to network `name` (`id`) and
/// its namespace, read from the host, has no IPv6; where the engine
/// forwards lookups, it kept the job's resolver.
async fn jobs_are_confined(
    docker: &Docker,
    name: &str,
    id: &str,
    labels: &HashMap<String, String>,
    image: &str,
    dns_forwarding: bool,
) -> Result<(), String> {
    let mut host_config = HostConfig {
        network_mode: Some(name.to_string()),
        ..super::locked_down()
    };
    confine(&mut host_config);
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        // The sidecar's own command: it stays up until removed. It needs a
        // domain: `skrei proxy` with none exits at once, and then the
        // container's namespace may be gone before it is read.
        cmd: Some(super::sidecar::proxy_args(
            &super::DockerConfig::default(),
            "isolation-check",
            &DomainSet::parse(["isolation-check.invalid"]).map_err(|e| format!("{e:?}"))?,
            &[],
            &[],
        )),
        labels: Some(labels.clone()),
        host_config: Some(host_config),
        ..Default::default()
    };
    let container = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(format!("{name}-probe")),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(|e| format!("cannot create a container on the network: {e}"))?
        .id;
    let verdict = async {
        docker
            .start_container(&container, None)
            .await
            .map_err(|e| format!("cannot start a container on the network: {e}"))?;
        let inspected = docker
            .inspect_container(&container, None)
            .await
            .map_err(|e| format!("cannot inspect the check container: {e}"))?;
        if dns_forwarding {
            let dns = inspected
                .host_config
                .and_then(|h| h.dns)
                .unwrap_or_default();
            if dns != [JOB_RESOLVER] {
                return Err(format!(
                    "this engine forwards DNS lookups from internal networks \
                     (CVE-2024-29018) and did not keep the job's resolver \
                     ({JOB_RESOLVER}, got {dns:?}); upgrade Docker to 26.0 or later"
                ));
            }
        }
        let pid = inspected
            .state
            .and_then(|s| s.pid)
            .filter(|p| *p > 0)
            .ok_or("the check container has no process")?;
        let ns = std::path::PathBuf::from(format!("/proc/{pid}/net"));
        let addresses = namespace_ipv6(&ns, &bridge_name(id))?;
        if addresses > 0 {
            return Err(format!(
                "a container on it still has {addresses} IPv6 address(es) while the host has a \
                 link-local one on the bridge, so a job could reach host services over IPv6"
            ));
        }
        Ok(())
    }
    .await;
    let removed = docker
        .remove_container(
            &container,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            }),
        )
        .await;
    if let Err(e) = removed {
        tracing::warn!(container = %container, error = %e, "cannot remove the isolation check container");
    }
    verdict
}

/// How many IPv6 addresses the network namespace whose `/proc/PID/net` is
/// `ns` has. Refuses to answer when `ns` is not a container's (the node
/// sees the host's bridge there: it runs in another PID namespace).
fn namespace_ipv6(ns: &std::path::Path, bridge: &str) -> Result<usize, String> {
    let dev = std::fs::read_to_string(ns.join("dev"))
        .map_err(|e| format!("cannot read the check container's namespace: {e}"))?;
    let names: Vec<&str> = dev
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim()))
        .collect();
    if names.contains(&bridge) || !names.contains(&"eth0") {
        return Err(format!(
            "{} is not the check container's namespace (interfaces {names:?}); is the node \
             in another PID namespace than the engine?",
            ns.display()
        ));
    }
    match std::fs::read_to_string(ns.join("if_inet6")) {
        Ok(text) => Ok(text.lines().filter(|l| !l.trim().is_empty()).count()),
        // A kernel without IPv6.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(format!(
            "cannot read the check container's IPv6 addresses: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_with_cve_2024_29018() {
        for affected in ["20.10.24+dfsg1", "23.0.10", "24.0.9", "25.0.3", "19.03.15"] {
            assert_eq!(forwards_internal_dns(affected), Some(true), "{affected}");
        }
        for fixed in [
            "23.0.11",
            "23.1.0",
            "25.0.4",
            "25.1.0",
            "26.0.0",
            "28.2.2",
            "29.1.0-rc.1",
        ] {
            assert_eq!(forwards_internal_dns(fixed), Some(false), "{fixed}");
        }
        for unreadable in ["", "dev", "28", "v28.2"] {
            assert_eq!(forwards_internal_dns(unreadable), None, "{unreadable}");
        }
    }

    #[test]
    fn a_namespace_is_read_only_when_it_is_the_containers() {
        let dir = tempfile::tempdir().unwrap();
        let ns = dir.path();
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  eth0: 1 2\n";
        std::fs::write(ns.join("dev"), dev).unwrap();
        assert_eq!(namespace_ipv6(ns, "br-0123456789ab"), Ok(0));
        std::fs::write(
            ns.join("if_inet6"),
            "fe800000000000000042acfffe120002 0d 40 20 80     eth0\n",
        )
        .unwrap();
        assert_eq!(namespace_ipv6(ns, "br-0123456789ab"), Ok(1));
        let host = format!("{dev}br-0123456789ab: 3 4\n");
        std::fs::write(ns.join("dev"), host).unwrap();
        assert!(namespace_ipv6(ns, "br-0123456789ab").is_err());
    }
}
