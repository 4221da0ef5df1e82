//! What several crates' tests share (dev-dependency only).
//!
//! [`Trap`]: trap addresses (R-SEC-3). A public-looking address is put on
//! this host's loopback interface for one test, with the test's listener on
//! it, so that a request the code should refuse but does not connects here
//! and is caught, never leaving the machine. Adding an address needs
//! CAP_NET_ADMIN: without it the tests skip, unless
//! `SKREI_REQUIRE_NET_ADMIN=1` (then they fail; CI sets it). Each test uses
//! an address of its own (11.0.0.0/8 is public to the special-purpose
//! table), removed when the test ends.
//!
//! [`moto::Moto`]: moto's S3 server on a loopback port (`SKREI_REQUIRE_S3=1`
//! makes its absence a failure).

pub mod moto;

use std::net::IpAddr;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// The traps present now, for harnesses that accept only them (and
/// loopback) as destinations.
static LIVE: Mutex<Vec<IpAddr>> = Mutex::new(Vec::new());

/// Whether `ip` is a trap on this host right now.
pub fn is_trap(ip: IpAddr) -> bool {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&ip.to_canonical())
}

/// A trap address on `lo`, removed when dropped.
pub struct Trap {
    pub ip: IpAddr,
}

impl Trap {
    /// Puts `ip/32` on `lo` and waits `settle` (long enough for every view
    /// of this host's addresses to see it); `None` (skip) without the
    /// rights, unless `SKREI_REQUIRE_NET_ADMIN=1`.
    pub async fn add(ip: &str, settle: Duration) -> Option<Trap> {
        let ip: IpAddr = ip.parse().expect("a trap address is an IP address");
        assert!(
            protocol::address::classify(ip).is_none(),
            "a trap address must look public"
        );
        let out = Command::new("ip")
            .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
            .output();
        let why = match out {
            Ok(o) if o.status.success() => None,
            // Left by a test that was killed: it is ours all the same.
            Ok(o) if String::from_utf8_lossy(&o.stderr).contains("File exists") => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            if std::env::var("SKREI_REQUIRE_NET_ADMIN").is_ok_and(|v| v == "1") {
                panic!("SKREI_REQUIRE_NET_ADMIN=1 but `ip addr add {ip}/32 dev lo` failed: {why}");
            }
            eprintln!(
                "skipping: cannot add a trap address ({why}); run as root, or set \
                 SKREI_REQUIRE_NET_ADMIN=1 to fail instead"
            );
            return None;
        }
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(ip);
        let trap = Trap { ip };
        tokio::time::sleep(settle).await;
        Some(trap)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|ip| *ip != self.ip);
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.ip), "dev", "lo"])
            .output();
    }
}
