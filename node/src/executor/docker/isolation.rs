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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use bollard::models::NetworkCreateRequest;

const INHIBIT_IPV4: &str = "com.docker.network.bridge.inhibit_ipv4";
const GATEWAY_MODE_IPV4: &str = "com.docker.network.bridge.gateway_mode_ipv4";

/// The bridge options that isolate an internal network on this engine, or
/// why none does.
pub(super) async fn find_isolating_options(
    docker: &Docker,
    labels: &HashMap<String, String>,
) -> Result<HashMap<String, String>, String> {
    let candidates = [
        HashMap::from([(INHIBIT_IPV4.to_string(), "true".to_string())]),
        HashMap::from([(GATEWAY_MODE_IPV4.to_string(), "isolated".to_string())]),
    ];
    let mut reasons = Vec::new();
    for options in candidates {
        match check(docker, labels, &options).await {
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
    let verdict = host_has_no_route(&created.id).map_err(|why| format!("with {described}: {why}"));
    if let Err(e) = docker.remove_network(&created.id).await {
        tracing::warn!(network = %name, error = %e, "cannot remove the isolation check network");
    }
    verdict
}

/// The bridge Docker created for network `id` exists on this host and the
/// host routes nothing through it (so it holds no IPv4 address).
fn host_has_no_route(id: &str) -> Result<(), String> {
    let bridge = format!("br-{}", id.get(..12).unwrap_or(id));
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
