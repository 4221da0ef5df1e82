//! Keeps jobs off the host they run on (R-NET-2, R-SEC-3, R-NET-7).
//!
//! A `full` job's bridge gives the host an address (its gateway), and the
//! kernel delivers to a local address whatever arrives on any interface: a
//! job reaches every host service listening on all interfaces, through its
//! gateway, the host's LAN address or any other address of the host, and
//! the ports other containers publish there (Docker's DNAT takes the host's
//! addresses). This node's libp2p and data ports are such services, and its
//! API too when the operator lets it listen beyond loopback (measured: all
//! three reachable from a `full` job before this guard).
//!
//! Where the node may (`CAP_NET_ADMIN` and the `nft` tool), it keeps an
//! nftables table of its own holding the bridges of its jobs' networks in a
//! set, and one rule: what comes in on such a bridge for an address of this
//! host (local, broadcast or multicast; IPv4 and IPv6) is refused, at
//! prerouting, before Docker's DNAT rewrites a published port. TCP gets a
//! reset, the rest an ICMP "administratively prohibited", so a job fails at
//! once instead of waiting. Traffic to other hosts passes untouched, and
//! nothing else on the host is filtered: other containers, other bridges and
//! the host's own traffic never match.
//!
//! A job's bridge joins the set before the job starts and leaves it once
//! its network is gone. Each executor makes its own table and deletes it
//! when dropped; start-up deletes the tables an earlier run of the same
//! owner left (a crashed node), as it removes its containers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::models::NetworkCreateRequest;

use super::{DockerExecutor, ExecError, Resources, isolation, resource_name};

/// The nftables family: `inet` covers IPv4 and IPv6 in one table.
const FAMILY: &str = "inet";
/// The set of guarded bridges, by interface name.
const SET: &str = "job_bridges";

/// This executor's table: the bridges of its jobs are refused the host.
#[derive(Debug)]
pub(super) struct HostGuard {
    nft: PathBuf,
    table: String,
}

impl HostGuard {
    /// Deletes the tables earlier runs of `owner` left and installs this
    /// one's, empty; or says why this node cannot.
    pub(super) async fn install(owner: &str, nft: &Path) -> Result<HostGuard, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let prefix = table_prefix(owner);
        let table = format!(
            "{prefix}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let listed = run(nft, &["list", "tables", FAMILY], None).await?;
        let stale = stale_tables(&listed, &prefix);
        let script = install_script(&table, &stale);
        run(nft, &["-f", "-"], Some(&script)).await?;
        if !stale.is_empty() {
            tracing::info!(?stale, "removed firewall tables left by an earlier run");
        }
        Ok(HostGuard {
            nft: nft.to_path_buf(),
            table,
        })
    }

    /// Refuses `bridge` every address of this host from now on.
    pub(super) async fn add(&self, bridge: &str) -> Result<(), String> {
        let element = format!("{{ \"{}\" }}", interface_name(bridge)?);
        run(
            &self.nft,
            &["add", "element", FAMILY, &self.table, SET, &element],
            None,
        )
        .await
        .map(drop)
    }

    /// Forgets `bridge` (its network is gone: the name may come back for
    /// something else).
    pub(super) async fn remove(&self, bridge: &str) {
        let Ok(name) = interface_name(bridge) else {
            return;
        };
        let element = format!("{{ \"{name}\" }}");
        if let Err(e) = run(
            &self.nft,
            &["delete", "element", FAMILY, &self.table, SET, &element],
            None,
        )
        .await
        {
            tracing::warn!(bridge, error = %e, "cannot remove a job bridge from the firewall set");
        }
    }

    /// The table's name, for tests and logs.
    pub(super) fn table(&self) -> &str {
        &self.table
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        // Blocking, but brief; a node drops its executor once, at shutdown.
        let deleted = std::process::Command::new(&self.nft)
            .args(["delete", "table", FAMILY, &self.table])
            .output();
        match deleted {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::warn!(
                table = %self.table,
                error = %String::from_utf8_lossy(&out.stderr).trim(),
                "cannot delete the firewall table"
            ),
            Err(e) => tracing::warn!(table = %self.table, error = %e, "cannot run nft"),
        }
    }
}

/// `skrei_<hash of owner>_`: tables of one owner share it, whatever the
/// owner's spelling (nft names allow fewer characters than owners use).
fn table_prefix(owner: &str) -> String {
    // FNV-1a: stable across builds, unlike std's hasher, so a new build
    // still finds what an old one left.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in owner.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("skrei_{h:016x}_")
}

/// The tables named in `nft list tables inet` output that start with `prefix`.
fn stale_tables(listed: &str, prefix: &str) -> Vec<String> {
    listed
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("table"), Some(FAMILY), Some(name)) if name.starts_with(prefix) => {
                    Some(name.to_string())
                }
                _ => None,
            }
        })
        .collect()
}

/// One transaction: the stale tables go, this one comes, or nothing changes.
fn install_script(table: &str, stale: &[String]) -> String {
    let mut script = String::new();
    for t in stale {
        script += &format!("delete table {FAMILY} {t}\n");
    }
    // Priority -150 (mangle) runs before Docker's DNAT at -100, so a port
    // another container publishes on this host counts as the host.
    let host = "fib daddr type { local, broadcast, multicast }";
    script += &format!(
        "table {FAMILY} {table} {{\n\
         \tset {SET} {{ type ifname; }}\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority -150; policy accept;\n\
         \t\tiifname @{SET} {host} meta l4proto tcp reject with tcp reset\n\
         \t\tiifname @{SET} {host} reject with icmpx admin-prohibited\n\
         \t}}\n\
         }}\n"
    );
    script
}

/// A name the kernel could give an interface, so it is safe to quote into
/// an nft command.
fn interface_name(name: &str) -> Result<&str, String> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(name)
    } else {
        Err(format!("{name:?} is not an interface name"))
    }
}

async fn run(nft: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(nft)
        .args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", nft.display()))?;
    if let (Some(script), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(script.as_bytes())
            .await
            .map_err(|e| format!("cannot write to {}: {e}", nft.display()))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("{} failed: {e}", nft.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {}: {}",
            nft.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl DockerExecutor {
    /// Installs this executor's firewall table, once a scratch network
    /// shows that the engine's bridges are on this host (a remote or
    /// rootless engine's are not, and filtering here would guard nothing).
    pub(super) async fn prepare_guard(&self) -> Result<Arc<HostGuard>, String> {
        let guard = HostGuard::install(&self.config.owner, &self.config.nft).await?;
        let name = format!("{}-guard-check", resource_name("guard"));
        let created = self
            .docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                labels: Some(self.labels("guard-check")),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot create a scratch network: {e}"))?;
        let bridge = isolation::bridge_name(&created.id);
        let visible = std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists();
        if let Err(e) = self.docker.remove_network(&created.id).await {
            tracing::warn!(network = %name, error = %e, "cannot remove the scratch network");
        }
        if !visible {
            return Err(format!(
                "the engine's bridge {bridge} is not on this host (is the engine remote or \
                 rootless?)"
            ));
        }
        Ok(Arc::new(guard))
    }

    /// The firewall table that keeps this node's jobs off the host, or why
    /// there is none.
    pub fn host_guard(&self) -> Result<&str, &str> {
        self.guard
            .as_ref()
            .map(|g| g.table())
            .map_err(String::as_str)
    }

    /// What `full` jobs can reach on this host, when nothing keeps them
    /// off it: the operator is told at start-up.
    pub fn full_exposure(&self) -> Option<String> {
        let why = self.guard.as_ref().err()?;
        Some(exposure(why, &self.config.services))
    }

    /// Refuses the bridge of network `id` every address of this host,
    /// when this node can; the bridge leaves the set after the network.
    pub(super) async fn keep_off_host(
        &self,
        id: &str,
        resources: &mut Resources,
    ) -> Result<(), ExecError> {
        let Ok(guard) = &self.guard else {
            return Ok(());
        };
        let bridge = isolation::bridge_name(id);
        guard.add(&bridge).await.map_err(|e| {
            ExecError::Unavailable(format!("cannot keep the job's network off this host: {e}"))
        })?;
        resources.guarded.push(bridge);
        Ok(())
    }
}

/// The start-up warning of a node that cannot keep `full` jobs off the
/// host: what they reach, by name, and what to do about it.
fn exposure(why: &str, services: &[(String, SocketAddr)]) -> String {
    let named: Vec<String> = services
        .iter()
        .map(|(name, addr)| {
            if addr.ip().is_loopback() {
                format!("{name} on {addr} (loopback only: not reachable)")
            } else {
                format!("{name} on {addr}")
            }
        })
        .collect();
    let own = if named.is_empty() {
        String::new()
    } else {
        format!(", including this node's {}", named.join(", "))
    };
    format!(
        "Docker jobs with network full can reach every service listening on all interfaces of \
         this host and every port a container publishes on it{own}, because this node cannot \
         filter its jobs' networks ({why}); run the node with CAP_NET_ADMIN and nftables (nft) \
         installed, or do not accept full"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_of_an_owner_share_a_stable_prefix() {
        let a = table_prefix("12D3KooWabc");
        assert_eq!(a, table_prefix("12D3KooWabc"));
        assert_ne!(a, table_prefix("12D3KooWabd"));
        // Pinned: a new build must find what an old one left.
        assert_eq!(table_prefix("node"), "skrei_3c2f1bbad18642ad_");
        let listed = format!(
            "table inet {a}1_0\ntable inet other\ntable inet {a}77_3\ntable inet skrei_x_1_0\n"
        );
        assert_eq!(
            stale_tables(&listed, &a),
            vec![format!("{a}1_0"), format!("{a}77_3")]
        );
    }

    #[test]
    fn the_script_replaces_stale_tables_in_one_transaction() {
        let script = install_script("skrei_t_1_0", &["skrei_t_0_0".into()]);
        assert!(script.starts_with("delete table inet skrei_t_0_0\ntable inet skrei_t_1_0 {"));
        assert!(script.contains("hook prerouting priority -150"), "{script}");
        assert!(
            script.contains("iifname @job_bridges fib daddr type { local, broadcast, multicast }"),
            "{script}"
        );
    }

    #[test]
    fn only_interface_names_reach_nft() {
        assert_eq!(interface_name("br-0123456789ab"), Ok("br-0123456789ab"));
        for bad in ["", "br\" }; flush ruleset", "a b", "sixteen-chars-xx"] {
            assert!(interface_name(bad).is_err(), "{bad}");
        }
    }
}
