//! Decisions on the resolved address (R-NET-8): special-purpose answers,
//! mixed answers, rebinding.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::harness::*;

/// `name` resolves to `ips`; loopback is allowed only where `ranges` say.
/// The request must be refused with `why` in the body, and nothing may have
/// been connected to.
async fn refused(ips: &[&'static str], ranges: Vec<&'static str>, why: &str) {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(Opts {
        ranges,
        resolve: ips.iter().map(|ip| ("evil.allowed.test", *ip)).collect(),
        ..Opts::default()
    })
    .await;
    let r = env
        .get(&format!("http://evil.allowed.test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 403, "{ips:?}: {r}");
    assert!(r.contains(why), "{ips:?}: {r}");
    settle().await;
    assert_eq!(up.hits(), 0);
    assert!(
        env.connector.attempts().is_empty(),
        "{:?}",
        env.connector.attempts()
    );
    let recs = env.records(1).await;
    assert_eq!(recs[0].decision, proxy::Verdict::Deny);
    assert!(recs[0].ip.is_some());
}

#[tokio::test]
async fn r_net_8_name_resolving_to_loopback_is_refused() {
    refused(&["127.0.0.1"], vec![], "loopback").await;
}

#[tokio::test]
async fn r_net_8_name_resolving_to_ipv6_loopback_is_refused() {
    refused(&["::1"], vec![], "loopback").await;
}

#[tokio::test]
async fn r_net_8_name_resolving_to_cloud_metadata_is_refused() {
    refused(&["169.254.169.254"], vec![], "metadata").await;
}

#[tokio::test]
async fn r_net_8_name_resolving_to_mapped_metadata_is_refused() {
    refused(&["::ffff:169.254.169.254"], vec![], "metadata").await;
}

#[tokio::test]
async fn r_net_8_name_resolving_to_nat64_metadata_is_refused() {
    refused(&["64:ff9b::a9fe:a9fe"], vec![], "NAT64").await;
}

#[tokio::test]
async fn r_net_8_name_resolving_to_private_is_refused() {
    refused(&["10.0.0.1"], vec![], "private").await;
    refused(&["192.168.1.1"], vec![], "private").await;
    refused(&["fd00::1"], vec![], "unique local").await;
}

#[tokio::test]
async fn r_net_8_name_resolving_to_cgnat_is_refused() {
    refused(&["100.64.0.1"], vec![], "CGNAT").await;
}

#[tokio::test]
async fn r_net_8_mixed_answer_with_one_private_address_is_refused() {
    // 127.0.0.1 is allowed by the operator; 10.0.0.1 is not: the whole
    // request is refused and the allowed address is not tried either.
    refused(&["127.0.0.1", "10.0.0.1"], vec!["127.0.0.1/32"], "private").await;
    refused(&["10.0.0.1", "127.0.0.1"], vec!["127.0.0.1/32"], "private").await;
}

#[tokio::test]
async fn r_net_8_allowed_range_covers_only_its_addresses() {
    refused(&["127.0.0.2"], vec!["127.0.0.1/32"], "loopback").await;
}

#[tokio::test]
async fn r_net_8_rebinding_between_lookups_cannot_matter() {
    // First answer: 127.0.0.2 (operator-allowed, the real upstream). Any
    // later answer: 127.0.0.3, not allowed, where a second listener waits.
    let good = Upstream::http("127.0.0.2").await;
    let evil = Upstream::http("127.0.0.3").await;
    let resolver = Arc::new(Rebinding {
        answers: vec![
            vec!["127.0.0.2".parse().unwrap()],
            vec!["127.0.0.3".parse().unwrap()],
        ],
        calls: AtomicUsize::new(0),
    });
    let env = Env::start(Opts {
        ranges: vec!["127.0.0.2/32"],
        resolver: Some(resolver.clone()),
        ..Opts::default()
    })
    .await;
    let r = env
        .get(&format!("http://rebind.allowed.test:{}/", good.port()))
        .await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(
        resolver.calls.load(Ordering::SeqCst),
        1,
        "resolved exactly once"
    );
    assert_eq!(
        env.connector.attempts(),
        [good.addr],
        "connected to the checked address"
    );
    settle().await;
    assert_eq!(evil.hits(), 0);
    // A second request resolves afresh, gets 127.0.0.3 and is refused.
    let r = env
        .get(&format!("http://rebind.allowed.test:{}/", evil.port()))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    settle().await;
    assert_eq!(evil.hits(), 0);
}

#[tokio::test]
async fn r_net_8_unresolvable_name_is_refused() {
    let env = Env::start(Opts::default()).await;
    let r = env.get("http://nowhere.allowed.test/").await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("did not resolve"), "{r}");
}

#[tokio::test]
async fn r_net_4_names_outside_the_domains_are_never_resolved() {
    let resolver = Arc::new(Rebinding {
        answers: vec![vec!["127.0.0.1".parse().unwrap()]],
        calls: AtomicUsize::new(0),
    });
    let env = Env::start(Opts {
        ranges: vec!["127.0.0.0/8"],
        resolver: Some(resolver.clone()),
        ..Opts::default()
    })
    .await;
    let r = env.get("http://exfiltrate-a-secret.evil.test/").await;
    assert_eq!(status(&r), 403, "{r}");
    let (_, r) = connect(&env, "exfiltrate-a-secret.evil.test:443", "").await;
    assert_eq!(status(&r), 403, "{r}");
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 0);
}
