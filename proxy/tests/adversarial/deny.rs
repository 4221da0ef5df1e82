//! The control-plane deny set (R-NET-7), by name and by IP, over plain HTTP
//! and CONNECT, even for allowed domains in allowed ranges.

use crate::harness::*;

async fn env(port: u16) -> Env {
    Env::start(Opts {
        domains: vec![".allowed.test", "127.0.0.1"],
        ranges: vec!["127.0.0.0/8"],
        resolve: vec![
            ("node.allowed.test", "127.0.0.1"),
            ("alias.allowed.test", "127.0.0.1"),
        ],
        connect_ports: Some(vec![443, port]),
        ..Opts::default()
    })
    .await
}

#[tokio::test]
async fn r_net_7_deny_by_ip_and_port_over_http() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env(up.port()).await;
    env.deny.insert_socket(up.addr);
    for host in ["node.allowed.test", "alias.allowed.test", "127.0.0.1"] {
        let r = env.get(&format!("http://{host}:{}/", up.port())).await;
        assert_eq!(status(&r), 403, "{host}: {r}");
        assert!(r.contains("control-plane"), "{r}");
    }
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_7_deny_by_ip_over_http() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env(up.port()).await;
    env.deny.insert_ip("127.0.0.1".parse().unwrap());
    let r = env
        .get(&format!("http://alias.allowed.test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_7_deny_by_name_over_http() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env(up.port()).await;
    env.deny
        .insert_host(&protocol::domain::Host::parse("node.allowed.test").unwrap());
    let r = env
        .get(&format!("http://NODE.allowed.test.:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("control-plane host"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_7_deny_by_ip_and_port_over_connect() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(up.port()).await;
    env.deny.insert_socket(up.addr);
    for host in ["node.allowed.test", "127.0.0.1"] {
        let (_, r) = connect(&env, &format!("{host}:{}", up.port()), "").await;
        assert_eq!(status(&r), 403, "{host}: {r}");
    }
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_7_deny_by_name_over_connect() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = env(up.port()).await;
    env.deny
        .insert_host(&protocol::domain::Host::parse("node.allowed.test").unwrap());
    let (_, r) = connect(&env, &format!("node.allowed.test:{}", up.port()), "").await;
    assert_eq!(status(&r), 403, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_7_deny_set_updates_apply_to_the_next_request() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env(up.port()).await;
    let url = format!("http://alias.allowed.test:{}/", up.port());
    assert_eq!(status(&env.get(&url).await), 200);
    env.deny.insert_socket(up.addr);
    assert_eq!(status(&env.get(&url).await), 403);
    env.deny.remove_socket(up.addr);
    assert_eq!(status(&env.get(&url).await), 200);
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn r_net_7_the_proxy_cannot_be_looped_through_itself() {
    let env = Env::start(Opts {
        domains: vec!["127.0.0.1"],
        ranges: vec!["127.0.0.0/8"],
        ..Opts::default()
    })
    .await;
    let r = env
        .get(&format!("http://127.0.0.1:{}/", env.addr.port()))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("control-plane"), "{r}");
    assert!(env.connector.attempts().is_empty());
}

#[tokio::test]
async fn r_net_7_deny_by_ip_catches_the_mapped_ipv6_spelling() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env(up.port()).await;
    env.deny.insert_ip("127.0.0.1".parse().unwrap());
    let p = up.port();
    let r = env
        .send(&format!(
            "GET http://[::ffff:127.0.0.1]:{p}/ HTTP/1.1\r\nHost: [::ffff:127.0.0.1]:{p}\r\n\r\n"
        ))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("control-plane"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}
