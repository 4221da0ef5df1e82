//! The target `api_request`: one request to the node's API as the gate and
//! the body decoders see it (`api::gate::Gate::decide`, `api::requests`).
//!
//! Input: byte 0 picks the method, byte 1 the source address; the rest is
//! text, `PATH\nName: value\n...\n\nBODY` (header lines that are not valid
//! HTTP are left out, as hyper would refuse them). The gate is fixed: a
//! known token, listening on 127.0.0.1:1234, `--api-allow 172.18.0.0/16`.
//!
//! Invariants (R-SEC-1, R-NET-7): the verdict is the same twice; nothing
//! passes with `X-Skrei-Job`, from a source not allowed, with a `Host` that
//! is a name other than `localhost`, with another `Origin`, or as a `POST`
//! a page could send without a preflight; nothing but `GET /metrics`
//! passes without the exact token. The bodies decode without panicking,
//! and what decodes encodes back to the same value.

use std::net::SocketAddr;

use api::gate::{Gate, JOB_HEADER};
use api::requests::{Fetch, Provide};
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const METHODS: &[&str] = &["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"];
const SOURCES: &[&str] = &[
    "127.0.0.1:40000",
    "[::1]:40000",
    "[::ffff:127.0.0.1]:40000",
    "172.18.0.1:40000",
    "10.1.2.3:40000",
    "192.0.2.9:40000",
];

fn gate() -> Gate {
    Gate {
        token: TOKEN.to_owned(),
        listen: "127.0.0.1:1234".parse().unwrap(),
        allow: vec![protocol::address::Cidr::parse("172.18.0.0/16").unwrap()],
    }
}

/// Runs one input.
pub fn api_request(data: &[u8]) {
    let (Some(m), Some(s)) = (data.first(), data.get(1)) else {
        return;
    };
    let method = Method::from_bytes(METHODS[*m as usize % METHODS.len()].as_bytes()).unwrap();
    let peer: SocketAddr = SOURCES[*s as usize % SOURCES.len()].parse().unwrap();
    let text = &data[2..];
    let (head, body) = match text.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let path = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let gate = gate();
    let verdict = gate.decide(peer, &method, &path, &headers);
    assert_eq!(
        verdict,
        gate.decide(peer, &method, &path, &headers),
        "the same request, another verdict"
    );
    if verdict.is_ok() {
        check_passed(peer, &method, &path, &headers);
    }
    decode_bodies(body);
}

/// What a request the gate let through must be.
fn check_passed(peer: SocketAddr, method: &Method, path: &str, headers: &HeaderMap) {
    assert!(!headers.contains_key(JOB_HEADER), "a job's request passed");
    let ip = peer.ip().to_canonical();
    assert!(
        ip.is_loopback() || ip.to_string().starts_with("172.18."),
        "a request from {ip} passed"
    );
    let host = headers
        .get(header::HOST)
        .map(|h| h.to_str().expect("a Host that passed is text"))
        .unwrap_or("");
    // With or without what may be a port, bracketed or not: an address,
    // or `localhost`, never another name.
    let without_port = host.rsplit_once(':').map_or(host, |(n, _)| n);
    let own = [host, without_port].into_iter().any(|name| {
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        literal.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost")
    });
    assert!(own, "Host {host:?} passed: DNS rebinding");
    if let Some(origin) = headers.get(header::ORIGIN) {
        assert!(
            origin
                .to_str()
                .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}"))),
            "Origin {origin:?} passed for Host {host:?}"
        );
    }
    if *method == Method::POST {
        let media = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        assert!(
            !media.is_empty()
                && !matches!(
                    media.as_str(),
                    "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
                ),
            "a POST a page can send without a preflight passed ({media:?})"
        );
    }
    if !(*method == Method::GET && path == "/metrics") {
        let tokens: Vec<&HeaderValue> = headers.get_all(header::AUTHORIZATION).iter().collect();
        assert!(
            tokens
                .first()
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.strip_prefix("Bearer ").map(str::trim) == Some(TOKEN)),
            "{method} {path} passed without the token"
        );
    }
}

/// The JSON bodies: decoding never panics, and round-trips.
fn decode_bodies(body: &[u8]) {
    if let Ok(fetch) = serde_json::from_slice::<Fetch>(body) {
        let again = serde_json::to_vec(&fetch).expect("a Fetch encodes");
        assert_eq!(serde_json::from_slice::<Fetch>(&again).ok(), Some(fetch));
    }
    if let Ok(provide) = serde_json::from_slice::<Provide>(body) {
        let again = serde_json::to_vec(&provide).expect("a Provide encodes");
        assert_eq!(
            serde_json::from_slice::<Provide>(&again).ok(),
            Some(provide)
        );
    }
}

/// Hand-written requests: accepted ones of each kind, and the refusals the
/// gate exists for.
pub const SEEDS: &[(&str, &str)] = &[
    (
        "submit",
        "\u{1}\u{0}/api/v1/jobs\nHost: 127.0.0.1:1234\nAuthorization: Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nContent-Type: application/yaml\n\nType: batch\n",
    ),
    (
        "fetch",
        "\u{1}\u{0}/api/v1/fetch\nHost: localhost:1234\nAuthorization: Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nContent-Type: application/json\n\n{\"cid\":\"bafkr4i\",\"providers\":[],\"progress\":true,\"max_bytes\":10}",
    ),
    (
        "provide",
        "\u{1}\u{3}/api/v1/provide\nHost: 172.18.0.3:1234\nAuthorization: Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nContent-Type: application/json\nOrigin: http://172.18.0.3:1234\n\n{\"cid\":\"bafyr4i\"}",
    ),
    ("metrics", "\u{0}\u{1}/metrics\nHost: [::1]:1234\n\n"),
    (
        "rebind",
        "\u{0}\u{0}/api/v1/node\nHost: rebind.evil.example:1234\nAuthorization: Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\n",
    ),
    (
        "cross-site",
        "\u{1}\u{0}/api/v1/jobs\nHost: 127.0.0.1:1234\nOrigin: https://evil.example\nContent-Type: text/plain\n\nType: batch\n",
    ),
    (
        "old-get",
        "\u{1}\u{0}/api/v1/fetch\nHost: 127.0.0.1:1234\nContent-Type: application/json\n\n{\"cid\":\"c\",\"dir\":\"/root/.ssh/authorized_keys\"}",
    ),
];
