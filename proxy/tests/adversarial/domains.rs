//! Which hosts the job's domains cover (R-NET-4, R-NET-5), and IP literals.

use crate::harness::*;

/// Names the tests use, all resolving to the upstream's 127.0.0.1, with
/// loopback allowed by the operator: only the domain decision differs.
async fn env() -> Env {
    Env::start(Opts {
        domains: vec![".allowed.test", "exact.test", "bücher.test"],
        ranges: vec!["127.0.0.0/8"],
        resolve: vec![
            ("allowed.test", "127.0.0.1"),
            ("a.b.allowed.test", "127.0.0.1"),
            ("badallowed.test", "127.0.0.1"),
            ("exact.test", "127.0.0.1"),
            ("sub.exact.test", "127.0.0.1"),
            ("xn--bcher-kva.test", "127.0.0.1"),
            ("allowed.test.evil.test", "127.0.0.1"),
        ],
        ..Opts::default()
    })
    .await
}

#[tokio::test]
async fn r_net_4_leading_dot_covers_subdomains_at_any_depth() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .get(&format!("http://a.b.allowed.test:{}/x", up.port()))
        .await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(r.ends_with("hello from upstream"));
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn r_net_4_leading_dot_covers_the_domain_itself() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .get(&format!("http://allowed.test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 200, "{r}");
}

#[tokio::test]
async fn r_net_4_label_boundary_badallowed_is_not_covered() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .get(&format!("http://badallowed.test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("not in the job's allowed domains"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_4_suffix_appended_to_an_allowed_name_is_not_covered() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .get(&format!("http://allowed.test.evil.test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_4_exact_entry_does_not_cover_subdomains() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let ok = env.get(&format!("http://exact.test:{}/", up.port())).await;
    assert_eq!(status(&ok), 200, "{ok}");
    let r = env
        .get(&format!("http://sub.exact.test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    settle().await;
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn r_net_5_case_is_normalised() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .get(&format!("http://ALLOWED.Test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 200, "{r}");
    // The upstream sees the normalised host.
    assert!(
        up.received()[0].contains(&format!("host: allowed.test:{}", up.port())),
        "{:?}",
        up.received()
    );
}

#[tokio::test]
async fn r_net_5_one_trailing_dot_is_normalised() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .get(&format!("http://allowed.test.:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 200, "{r}");
}

#[tokio::test]
async fn r_net_5_two_trailing_dots_are_refused() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .get(&format!("http://allowed.test..:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 400, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_5_idn_entry_matches_its_punycode_host() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .get(&format!("http://xn--bcher-kva.test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 200, "{r}");
}

#[tokio::test]
async fn r_net_5_raw_unicode_host_is_refused() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env.get(&format!("http://bücher.test:{}/", up.port())).await;
    assert_eq!(status(&r), 400, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

/// Numeric host forms that resolvers read as 127.0.0.1: refused as
/// malformed, before any allowlist or resolution, whatever the allowlist.
async fn numeric(host: &str) {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(Opts {
        domains: vec!["127.0.0.1"],
        ranges: vec!["127.0.0.0/8"],
        ..Opts::default()
    })
    .await;
    let r = env.get(&format!("http://{host}:{}/", up.port())).await;
    assert_eq!(status(&r), 400, "{host}: {r}");
    assert!(r.contains("numeric"), "{host}: {r}");
    settle().await;
    assert_eq!(up.hits(), 0, "{host}");
    assert!(env.connector.attempts().is_empty());
}

#[tokio::test]
async fn r_net_8_decimal_ip_literal_is_refused() {
    numeric("2130706433").await;
}

#[tokio::test]
async fn r_net_8_hex_ip_literal_is_refused() {
    numeric("0x7f.1").await;
    numeric("0x7f000001").await;
}

#[tokio::test]
async fn r_net_8_octal_ip_literal_is_refused() {
    numeric("0177.0.0.1").await;
    numeric("017700000001").await;
}

#[tokio::test]
async fn r_net_8_leading_zero_and_mixed_base_literals_are_refused() {
    numeric("127.000.000.001").await;
    numeric("0x7f.0x0.0x0.0x1").await;
    numeric("127.0.1").await;
}

#[tokio::test]
async fn r_net_8_short_ip_literal_is_refused() {
    numeric("127.1").await;
}

#[tokio::test]
async fn r_net_5_ip_literal_not_in_domains_is_refused() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env.get(&format!("http://127.0.0.1:{}/", up.port())).await;
    assert_eq!(status(&r), 403, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_8_allowed_loopback_literal_still_refused_without_range() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(Opts {
        domains: vec!["127.0.0.1", "::1"],
        ..Opts::default()
    })
    .await;
    let r = env.get(&format!("http://127.0.0.1:{}/", up.port())).await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("loopback"), "{r}");
    let r = env.get(&format!("http://[::1]:{}/", up.port())).await;
    assert_eq!(status(&r), 403, "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
    assert!(env.connector.attempts().is_empty());
}

#[tokio::test]
async fn r_net_8_mapped_ipv6_literal_is_judged_as_ipv4() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(Opts {
        domains: vec!["127.0.0.1"],
        ..Opts::default()
    })
    .await;
    let r = env
        .send(&format!(
            "GET http://[::ffff:127.0.0.1]:{p}/ HTTP/1.1\r\nHost: [::ffff:127.0.0.1]:{p}\r\n\r\n",
            p = up.port()
        ))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("loopback"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_8_allowed_range_lets_an_ip_literal_through() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(Opts {
        domains: vec!["127.0.0.1"],
        ranges: vec!["127.0.0.0/8"],
        ..Opts::default()
    })
    .await;
    let r = env.get(&format!("http://127.0.0.1:{}/", up.port())).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn r_net_8_zero_host_is_refused() {
    // glibc resolves `0` to 0.0.0.0, which Linux connects to loopback.
    numeric("0").await;
}

#[tokio::test]
async fn r_net_8_unspecified_address_literal_is_refused() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(Opts {
        domains: vec!["0.0.0.0"],
        ..Opts::default()
    })
    .await;
    let r = env.get(&format!("http://0.0.0.0:{}/", up.port())).await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("this network"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
    assert!(env.connector.attempts().is_empty());
}

#[tokio::test]
async fn r_net_5_percent_encoded_host_is_refused() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let p = up.port();
    let r = env
        .send(&format!(
            "GET http://allowed%2etest:{p}/ HTTP/1.1\r\nHost: allowed%2etest:{p}\r\n\r\n"
        ))
        .await;
    assert!(matches!(status(&r), 400), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_8_localhost_through_the_system_resolver_is_refused() {
    // The real resolver (the hosts file): `localhost` is loopback.
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(Opts {
        domains: vec!["localhost"],
        resolver: Some(std::sync::Arc::new(proxy::SystemResolver)),
        ..Opts::default()
    })
    .await;
    let r = env.get(&format!("http://localhost:{}/", up.port())).await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("loopback"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0);
    assert!(env.connector.attempts().is_empty());
}
