//! The local host's own addresses (R-NET-7), for the deny set.
//!
//! A job must not reach any service of the machine it runs on. Loopback and
//! private addresses are refused by the special-purpose table already, but a
//! host with a public address would otherwise be reachable on it. Read from
//! Linux's `/proc` (no `unsafe`, no extra crate): IPv4 from the local routes
//! of `/proc/net/fib_trie`, IPv6 from `/proc/net/if_inet6`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every address configured on this host's interfaces (Linux; elsewhere an
/// `Unsupported` error).
pub fn local_addresses() -> io::Result<Vec<IpAddr>> {
    if !cfg!(target_os = "linux") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "listing local addresses needs Linux's /proc",
        ));
    }
    let mut out = Vec::new();
    match std::fs::read_to_string("/proc/net/fib_trie") {
        Ok(text) => out.extend(parse_fib_trie(&text).into_iter().map(IpAddr::V4)),
        Err(e) => return Err(e),
    }
    // A host without IPv6 has no such file.
    if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
        out.extend(parse_if_inet6(&text).into_iter().map(IpAddr::V6));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `|-- ADDR` followed by `/32 host LOCAL` names a local address.
fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(a) = last
        {
            out.push(a);
        }
    }
    out
}

/// The first field of each line is the address as 32 hex digits.
fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|h| h.len() == 32)
        .filter_map(|h| u128::from_str_radix(h, 16).ok())
        .map(Ipv6Addr::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.0\n           /8 host LOCAL\n        |-- 127.0.0.1\n           /32 host LOCAL\n     |-- 203.0.113.5\n        /32 host LOCAL\n     |-- 203.0.113.255\n        /32 link BROADCAST\n";
        assert_eq!(
            parse_fib_trie(fib),
            [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(203, 0, 113, 5)]
        );
        let v6 = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\n";
        assert_eq!(
            parse_if_inet6(v6),
            [Ipv6Addr::LOCALHOST, "fe80::1".parse::<Ipv6Addr>().unwrap()]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn r_net_7_this_host_has_loopback() {
        let all = local_addresses().unwrap();
        assert!(all.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{all:?}");
    }
}
