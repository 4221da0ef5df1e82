//! Special-purpose addresses (R-NET-8) and operator-allowed ranges: the one
//! table of addresses a job may not make the node reach. The egress proxy
//! checks every resolved address against it, and the node's URL downloads
//! use it too (a job must not turn an input into a read of the node's own
//! services).
//!
//! Decisions are made on the resolved address. [`classify`] says whether an
//! address is special-purpose (and why) from an explicit table, because
//! `IpAddr::is_global` is unstable and the stable helpers miss whole classes
//! (`Ipv6Addr::is_loopback` is false for `::ffff:127.0.0.1`).
//!
//! Addresses that embed an IPv4 address are judged by it: IPv4-mapped
//! (`::ffff:a.b.c.d`) is canonicalised to the IPv4 address, NAT64
//! (`64:ff9b::/96`) and 6to4 (`2002::/16`) are refused when the embedded
//! address is special. Fail closed: any IPv6 address outside global unicast
//! `2000::/3` is refused, whatever the table says about it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// IPv4 special-purpose ranges, most specific first (the first match names
/// the reason). RFC 6890 and the IANA special-purpose registry.
const V4: &[(u32, u8, &str)] = &[
    (0xA9FE_A9FE, 32, "cloud metadata address (link-local)"),
    (0xFFFF_FFFF, 32, "limited broadcast"),
    (0x0000_0000, 8, "\"this network\" (0.0.0.0/8)"),
    (0x0A00_0000, 8, "private (RFC 1918)"),
    (0x6440_0000, 10, "shared address space (CGNAT, RFC 6598)"),
    (0x7F00_0000, 8, "loopback"),
    (0xA9FE_0000, 16, "link-local"),
    (0xAC10_0000, 12, "private (RFC 1918)"),
    (0xC000_0000, 24, "IETF protocol assignments (192.0.0.0/24)"),
    (0xC000_0200, 24, "documentation (TEST-NET-1)"),
    (0xC01F_C400, 24, "AS112 (192.31.196.0/24)"),
    (0xC034_C100, 24, "AMT (192.52.193.0/24)"),
    (0xC058_6300, 24, "deprecated 6to4 relay anycast"),
    (0xC0A8_0000, 16, "private (RFC 1918)"),
    (0xC0AF_3000, 24, "AS112 (192.175.48.0/24)"),
    (0xC612_0000, 15, "benchmarking (198.18.0.0/15)"),
    (0xC633_6400, 24, "documentation (TEST-NET-2)"),
    (0xCB00_7100, 24, "documentation (TEST-NET-3)"),
    (0xE000_0000, 4, "multicast"),
    (0xF000_0000, 4, "reserved (240.0.0.0/4)"),
];

/// IPv6 special-purpose ranges, most specific first. Ranges that embed an
/// IPv4 address are handled before this table.
const V6: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified"),
    (1, 128, "loopback"),
    (0, 96, "deprecated IPv4-compatible address"),
    (
        0x0064_ff9b_0001 << 80,
        48,
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    (0x0100 << 112, 64, "discard-only (100::/64)"),
    (0x2001_0000 << 96, 32, "Teredo (2001::/32)"),
    (0x2001_0db8 << 96, 32, "documentation (2001:db8::/32)"),
    (0x2001_0002 << 96, 48, "benchmarking (2001:2::/48)"),
    (
        0x2001_0000 << 96,
        23,
        "IETF protocol assignments (2001::/23)",
    ),
    (0x3fff_0000 << 96, 20, "documentation (3fff::/20)"),
    (0x5f00 << 112, 16, "SRv6 SIDs (5f00::/16)"),
    (0xfc00 << 112, 7, "unique local (fc00::/7)"),
    (0xfe80 << 112, 10, "link-local"),
    (0xfec0 << 112, 10, "deprecated site-local"),
    (0xff00 << 112, 8, "multicast"),
];

const NAT64_WKP: u128 = 0x0064_ff9b << 96;
const SIX_TO_FOUR: u128 = 0x2002 << 112;

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4.iter()
        .find(|(base, prefix, _)| bits & mask32(*prefix) == *base)
        .map(|(_, _, why)| *why)
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    if bits & mask128(96) == NAT64_WKP {
        // The well-known NAT64 prefix reaches the embedded IPv4 address.
        return classify_v4(Ipv4Addr::from(bits as u32)).map(|_| "NAT64 of a special IPv4 address");
    }
    if bits & mask128(16) == SIX_TO_FOUR {
        let embedded = Ipv4Addr::from((bits >> 80) as u32);
        return classify_v4(embedded).map(|_| "6to4 of a special IPv4 address");
    }
    if let Some((_, _, why)) = V6
        .iter()
        .find(|(base, prefix, _)| bits & mask128(*prefix) == *base)
    {
        return Some(why);
    }
    if bits >> 125 != 0b001 {
        return Some("not global unicast (outside 2000::/3)");
    }
    None
}

/// Why `ip` is a special-purpose address that jobs may not reach, or `None` for an
/// ordinary public address.
///
/// ```
/// use protocol::address::classify;
/// assert_eq!(classify("169.254.169.254".parse().unwrap()), Some("cloud metadata address (link-local)"));
/// assert_eq!(classify("::ffff:127.0.0.1".parse().unwrap()), Some("loopback"));
/// assert_eq!(classify("93.184.215.14".parse().unwrap()), None);
/// ```
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// A CIDR range such as `127.0.0.0/8` or `fd00::/8`, for ranges the operator
/// allows despite the special-purpose table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR range that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// Not `ADDRESS/PREFIX` or a lone address.
    #[error("`{0}` is not a CIDR range: write e.g. `10.0.0.0/8` or `fd00::/8`")]
    Syntax(String),
    /// The prefix is longer than the address.
    #[error("`{0}`: the prefix length is longer than the address (32 for IPv4, 128 for IPv6)")]
    Prefix(String),
    /// Bits set after the prefix.
    #[error("`{input}` has host bits set: write `{suggestion}`")]
    HostBits {
        /// The input as written.
        input: String,
        /// The range with the host bits cleared.
        suggestion: String,
    },
}

impl Cidr {
    /// Parse `ADDRESS/PREFIX`; a lone address is a single-address range.
    /// An IPv4-mapped IPv6 range is stored as the IPv4 range it maps.
    pub fn parse(input: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match input.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (input, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Syntax(input.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| CidrError::Prefix(input.to_owned()))?,
            Some(_) => return Err(CidrError::Syntax(input.to_owned())),
        };
        if prefix > max {
            return Err(CidrError::Prefix(input.to_owned()));
        }
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => (
                IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
                prefix - 96,
            ),
            a => (a, prefix),
        };
        let masked = Cidr::masked(addr, prefix);
        if masked != addr {
            return Err(CidrError::HostBits {
                input: input.to_owned(),
                suggestion: format!("{masked}/{prefix}"),
            });
        }
        Ok(Cidr { addr, prefix })
    }

    fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
        match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix))),
        }
    }

    /// Whether `ip` (canonicalised: IPv4-mapped counts as IPv4) is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Cidr::masked(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(s)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(s: &str) -> Option<&'static str> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn r_net_8_ipv4_special_ranges_are_refused() {
        for (addr, reason) in [
            ("0.0.0.0", "\"this network\""),
            ("0.1.2.3", "\"this network\""),
            ("10.1.2.3", "private"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.255", "CGNAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
        ] {
            let got = why(addr).unwrap_or_else(|| panic!("{addr} not refused"));
            assert!(got.contains(reason), "{addr}: {got}");
        }
    }

    #[test]
    fn r_net_8_ipv4_public_neighbours_pass() {
        for addr in [
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(why(addr), None, "{addr}");
        }
    }

    #[test]
    fn r_net_8_ipv6_special_ranges_are_refused() {
        for (addr, reason) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "metadata"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("::8.8.8.8", "IPv4-compatible"),
            ("64:ff9b::7f00:1", "NAT64"),
            ("64:ff9b::a9fe:a9fe", "NAT64"),
            ("64:ff9b::c0a8:101", "NAT64"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("100::1", "discard"),
            ("2001::1", "Teredo"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("2001:db8::1", "documentation"),
            ("2001:2::1", "benchmarking"),
            ("2001:10::1", "IETF"),
            ("2002:7f00:1::1", "6to4"),
            ("2002:a9fe:a9fe::1", "6to4"),
            ("3fff::1", "documentation"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("4000::1", "not global unicast"),
            ("::2", "IPv4-compatible"),
        ] {
            let got = why(addr).unwrap_or_else(|| panic!("{addr} not refused"));
            assert!(got.contains(reason), "{addr}: {got}");
        }
    }

    #[test]
    fn r_net_8_ipv6_public_passes_with_public_embedded_ipv4() {
        for addr in [
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::1",
        ] {
            assert_eq!(why(addr), None, "{addr}");
        }
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(c.contains("127.9.9.9".parse().unwrap()));
        assert!(c.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.contains("128.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one = Cidr::parse("127.0.0.2").unwrap();
        assert!(one.contains("127.0.0.2".parse().unwrap()));
        assert!(!one.contains("127.0.0.3".parse().unwrap()));
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd00::5".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(matches!(
            Cidr::parse("10.0.0.1/8"),
            Err(CidrError::HostBits { suggestion, .. }) if suggestion == "10.0.0.0/8"
        ));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0/+8").is_err());
        assert!(Cidr::parse("10.0.0.0/").is_err());
        assert!(Cidr::parse("example.com/8").is_err());
    }

    proptest::proptest! {
        #[test]
        fn r_net_8_mapped_and_nat64_forms_are_judged_by_their_ipv4(bits: u32) {
            let v4 = Ipv4Addr::from(bits);
            let plain = classify(IpAddr::V4(v4));
            proptest::prop_assert_eq!(classify(IpAddr::V6(v4.to_ipv6_mapped())), plain);
            let nat64 = Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(bits));
            proptest::prop_assert_eq!(classify(IpAddr::V6(nat64)).is_some(), plain.is_some());
            let six_to_four = Ipv6Addr::from((0x2002_u128 << 112) | (u128::from(bits) << 80) | 1);
            proptest::prop_assert_eq!(classify(IpAddr::V6(six_to_four)).is_some(), plain.is_some());
        }

        #[test]
        fn cidr_text_round_trips(bits: u128, prefix in 0u8..=128) {
            let addr = Cidr::masked(IpAddr::V6(Ipv6Addr::from(bits)), prefix);
            let text = format!("{addr}/{prefix}");
            if let Ok(c) = Cidr::parse(&text) {
                proptest::prop_assert_eq!(Cidr::parse(&c.to_string()), Ok(c));
                proptest::prop_assert!(c.contains(addr));
            }
        }
    }
}
