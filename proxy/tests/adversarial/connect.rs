//! `CONNECT` tunnels (R-NET-3, R-NET-8): target forms, ports, policy.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

async fn env(ports: Option<Vec<u16>>) -> Env {
    Env::start(Opts {
        ranges: vec!["127.0.0.0/8"],
        resolve: vec![
            ("tunnel.allowed.test", "127.0.0.1"),
            ("other.test", "127.0.0.1"),
        ],
        connect_ports: ports,
        ..Opts::default()
    })
    .await
}

#[tokio::test]
async fn r_net_3_connect_to_an_allowed_host_tunnels_bytes_both_ways() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(Some(vec![443, up.port()])).await;
    let target = format!("tunnel.allowed.test:{}", up.port());
    let extra = format!("Host: {target}\r\n");
    let (mut s, head) = connect(&env, &target, &extra).await;
    assert_eq!(status(&head), 200, "{head}");
    s.write_all(b"ping through the tunnel").await.unwrap();
    let mut buf = [0u8; 23];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping through the tunnel");
    drop(s);
    let recs = env.records(1).await;
    assert_eq!(recs[0].method, "CONNECT");
    assert_eq!(recs[0].decision, proxy::Verdict::Allow);
    assert_eq!(recs[0].host, "tunnel.allowed.test");
    // R-SEC-4: the heads count too, both ways.
    let request = format!("CONNECT {target} HTTP/1.1\r\n{extra}\r\n");
    assert_eq!(recs[0].bytes_up, (request.len() + 23) as u64);
    assert_eq!(recs[0].bytes_down, (head.len() + 23) as u64);
}

#[tokio::test]
async fn r_net_3_connect_port_not_allowed_by_default() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(None).await;
    let (_, r) = connect(&env, &format!("tunnel.allowed.test:{}", up.port()), "").await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("allowed: 443"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_8_connect_without_port_is_refused() {
    let env = env(None).await;
    for target in ["tunnel.allowed.test", "tunnel.allowed.test:", "[::1]"] {
        let (_, r) = connect(&env, target, "").await;
        assert_eq!(status(&r), 400, "{target}: {r}");
    }
    assert!(env.connector.attempts().is_empty());
}

#[tokio::test]
async fn r_net_8_connect_with_bad_port_is_refused() {
    let env = env(None).await;
    for target in [
        "tunnel.allowed.test:0",
        "tunnel.allowed.test:65536",
        "tunnel.allowed.test:+443",
        "tunnel.allowed.test:443:443",
        "tunnel.allowed.test:https",
    ] {
        let (_, r) = connect(&env, target, "").await;
        assert!(matches!(status(&r), 400), "{target}: {r}");
    }
    assert!(env.connector.attempts().is_empty());
}

#[tokio::test]
async fn r_net_8_connect_userinfo_target_is_refused() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(Some(vec![up.port()])).await;
    let p = up.port();
    let (_, r) = connect(&env, &format!("tunnel.allowed.test:{p}@other.test:{p}"), "").await;
    assert_eq!(status(&r), 400, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_8_connect_absolute_form_is_refused() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(Some(vec![up.port()])).await;
    let (_, r) = connect(
        &env,
        &format!("http://tunnel.allowed.test:{}/", up.port()),
        "",
    )
    .await;
    assert_eq!(status(&r), 400, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_4_connect_to_a_host_outside_the_domains_is_refused() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(Some(vec![up.port()])).await;
    let (_, r) = connect(&env, &format!("other.test:{}", up.port()), "").await;
    assert_eq!(status(&r), 403, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_8_connect_to_loopback_without_range_is_refused() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = Env::start(Opts {
        resolve: vec![("tunnel.allowed.test", "127.0.0.1")],
        connect_ports: Some(vec![up.port()]),
        ..Opts::default()
    })
    .await;
    let (_, r) = connect(&env, &format!("tunnel.allowed.test:{}", up.port()), "").await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("loopback"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_8_connect_host_header_mismatch_is_refused() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(Some(vec![up.port()])).await;
    let (_, r) = connect(
        &env,
        &format!("tunnel.allowed.test:{}", up.port()),
        "Host: other.test:443\r\n",
    )
    .await;
    assert_eq!(status(&r), 400, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_8_connect_ip_literal_numeric_forms_are_refused() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = Env::start(Opts {
        domains: vec!["127.0.0.1"],
        ranges: vec!["127.0.0.0/8"],
        connect_ports: Some(vec![up.port()]),
        ..Opts::default()
    })
    .await;
    for host in ["2130706433", "0x7f.1", "0177.0.0.1", "127.1"] {
        let (_, r) = connect(&env, &format!("{host}:{}", up.port()), "").await;
        assert_eq!(status(&r), 400, "{host}: {r}");
    }
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_3_other_tunnelling_methods_are_refused() {
    // Upgrade-based tunnels (WebSocket, h2c) are not proxied.
    let up = Upstream::http("127.0.0.1").await;
    let env = env(None).await;
    let p = up.port();
    let r = env
        .send(&format!(
            "GET http://tunnel.allowed.test:{p}/ HTTP/1.1\r\nHost: tunnel.allowed.test:{p}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        ))
        .await;
    assert_eq!(status(&r), 400, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_3_bytes_sent_right_after_connect_reach_the_tunnel() {
    // Clients often send the TLS ClientHello in the same packet as CONNECT.
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(Some(vec![up.port()])).await;
    let mut s = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    s.write_all(
        format!(
            "CONNECT tunnel.allowed.test:{} HTTP/1.1\r\n\r\nearly-data",
            up.port()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 64];
    while !got.ends_with(b"early-data") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn r_net_8_connect_to_ipv6_loopback_and_mapped_forms_is_refused() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = Env::start(Opts {
        domains: vec!["127.0.0.1", "::1"],
        connect_ports: Some(vec![up.port()]),
        ..Opts::default()
    })
    .await;
    for host in [
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "127.0.0.1",
    ] {
        let (_, r) = connect(&env, &format!("{host}:{}", up.port()), "").await;
        assert_eq!(status(&r), 403, "{host}: {r}");
        assert!(r.contains("loopback"), "{host}: {r}");
    }
    settle().await;
    assert_eq!(up.hits(), 0);
    assert!(env.connector.attempts().is_empty());
}

#[tokio::test]
async fn r_net_9_a_large_tunnel_transfer_arrives_intact_and_counted() {
    // Enough to fill the tunnel's pipes and buffers many times over, in
    // both directions at once (the echo sends everything back).
    const N: usize = 8 << 20;
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(Some(vec![up.port()])).await;
    let target = format!("tunnel.allowed.test:{}", up.port());
    let (s, head) = connect(&env, &target, "").await;
    assert_eq!(status(&head), 200, "{head}");
    let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::with_capacity(N);
    r.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert!(got == data, "the tunnel changed or lost bytes");
    let recs = env.records(1).await;
    let request = format!("CONNECT {target} HTTP/1.1\r\n\r\n");
    assert_eq!(recs[0].bytes_up, (request.len() + N) as u64);
    assert_eq!(recs[0].bytes_down, (head.len() + N) as u64);
}
