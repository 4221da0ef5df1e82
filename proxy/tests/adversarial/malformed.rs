//! Malformed and hostile requests (R-NET-8): each gets a 4xx and reaches no
//! upstream. Plus the forwarding rules of R-NET-3 and R-NET-7: headers,
//! redirects, job header, pipelining.

use crate::harness::*;

async fn env() -> Env {
    Env::start(Opts {
        ranges: vec!["127.0.0.1/32"],
        resolve: vec![("allowed.test", "127.0.0.1"), ("evil.test", "127.0.0.1")],
        ..Opts::default()
    })
    .await
}

/// `raw` (with `{p}` for the upstream port) must get `code` and reach nothing.
async fn refused(raw: &str, code: u16) {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env.send(&raw.replace("{p}", &up.port().to_string())).await;
    assert_eq!(status(&r), code, "{raw:?}: {r}");
    settle().await;
    assert_eq!(up.hits(), 0, "{raw:?}");
    assert!(env.connector.attempts().is_empty(), "{raw:?}");
}

#[tokio::test]
async fn r_net_3_origin_form_request_is_refused() {
    refused("GET / HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n", 400).await;
}

#[tokio::test]
async fn r_net_3_https_absolute_uri_is_refused() {
    refused(
        "GET https://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_two_host_headers_are_refused() {
    refused(
        "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nHost: evil.test:{p}\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_host_header_naming_another_host_is_refused() {
    refused(
        "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: evil.test:{p}\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_host_header_naming_another_port_is_refused() {
    refused(
        "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_missing_host_header_is_refused() {
    refused("GET http://allowed.test:{p}/ HTTP/1.1\r\n\r\n", 400).await;
}

#[tokio::test]
async fn r_net_8_userinfo_trick_is_refused() {
    // http::Uri reads the host as evil.test; some parsers read allowed.test.
    refused(
        "GET http://allowed.test@evil.test:{p}/ HTTP/1.1\r\nHost: evil.test:{p}\r\n\r\n",
        400,
    )
    .await;
    refused(
        "GET http://user:pw@allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_content_length_with_transfer_encoding_is_refused() {
    refused(
        "POST http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://evil.test:{p}/ HTTP/1.1\r\n\r\n",
        400,
    )
    .await;
    refused(
        "POST http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_obfuscated_transfer_encoding_is_refused() {
    refused(
        "POST http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nTransfer-Encoding: xchunked\r\n\r\n",
        400,
    )
    .await;
    refused(
        "POST http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_duplicate_content_length_is_refused() {
    refused(
        "POST http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_space_before_colon_is_refused() {
    refused(
        "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost : allowed.test:{p}\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_non_ascii_host_header_is_refused() {
    refused(
        "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.tést:{p}\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_3_trace_is_refused() {
    refused(
        "TRACE http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n",
        405,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_pipelined_second_request_to_another_host_is_never_forwarded() {
    let good = Upstream::http("127.0.0.1").await;
    let evil = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let (g, e) = (good.port(), evil.port());
    let r = env
        .send(&format!(
            "GET http://allowed.test:{g}/ HTTP/1.1\r\nHost: allowed.test:{g}\r\n\r\nGET http://evil.test:{e}/ HTTP/1.1\r\nHost: evil.test:{e}\r\n\r\n"
        ))
        .await;
    // Served strictly one at a time: the second request was decided on its
    // own and refused, not carried by the first one's decision.
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(r.matches("HTTP/1.1 ").count(), 2, "{r}");
    assert!(r.contains("HTTP/1.1 403"), "{r}");
    assert!(r.contains("evil.test"), "{r}");
    settle().await;
    assert_eq!(good.hits(), 1);
    assert_eq!(good.received().len(), 1);
    assert!(
        !good.received()[0].contains("evil"),
        "{:?}",
        good.received()
    );
    assert_eq!(evil.hits(), 0);
}

#[tokio::test]
async fn r_net_3_redirect_to_a_denied_host_is_passed_back_not_followed() {
    let up = Upstream::http("127.0.0.1").await;
    let target = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .get(&format!(
            "http://allowed.test:{}/redirect?to=http://169.254.169.254:{}/latest/meta-data/",
            up.port(),
            target.port()
        ))
        .await;
    assert_eq!(status(&r), 302, "{r}");
    assert!(r.contains("169.254.169.254"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 1);
    assert_eq!(target.hits(), 0);
    assert_eq!(env.connector.attempts(), [up.addr]);
}

#[tokio::test]
async fn r_net_7_forged_job_header_is_replaced_with_the_real_one() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let p = up.port();
    let r = env
        .send(&format!(
            "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nX-Skrei-Job: someone-else\r\nx-skrei-job: another\r\n\r\n"
        ))
        .await;
    assert_eq!(status(&r), 200, "{r}");
    let got = up.received()[0].to_ascii_lowercase();
    assert_eq!(got.matches("x-skrei-job:").count(), 1, "{got}");
    assert!(got.contains(&format!("x-skrei-job: {JOB}")), "{got}");
    assert!(
        !got.contains("someone-else") && !got.contains("another"),
        "{got}"
    );
}

#[tokio::test]
async fn r_net_3_hop_by_hop_and_proxy_headers_are_removed_both_ways() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let p = up.port();
    let r = env
        .send(&format!(
            "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nProxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nConnection: X-Secret\r\nX-Secret: 1\r\nTE: trailers\r\nKeep-Alive: 5\r\nX-Kept: yes\r\n\r\n"
        ))
        .await;
    assert_eq!(status(&r), 200, "{r}");
    let got = up.received()[0].to_ascii_lowercase();
    for gone in [
        "proxy-authorization",
        "proxy-connection",
        "x-secret",
        "te:",
        "keep-alive",
    ] {
        assert!(!got.contains(gone), "{gone} forwarded: {got}");
    }
    assert!(got.contains("x-kept: yes"), "{got}");
    let resp = r.to_ascii_lowercase();
    assert!(
        !resp.contains("proxy-agent") && !resp.contains("keep-alive"),
        "{r}"
    );
}

#[tokio::test]
async fn r_net_3_request_body_is_forwarded_and_counted() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let p = up.port();
    let request = format!(
        "POST http://allowed.test:{p}/post HTTP/1.1\r\nHost: allowed.test:{p}\r\nContent-Length: 11\r\n\r\nhello world"
    );
    let r = env.send(&request).await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(
        up.received()[0].ends_with("\r\n\r\nhello world"),
        "{:?}",
        up.received()
    );
    let recs = env.records(1).await;
    // Everything the job sent and received, heads included (R-SEC-4).
    assert_eq!(recs[0].bytes_up, request.len() as u64);
    assert_eq!(recs[0].bytes_down, r.len() as u64);
    assert_eq!(recs[0].method, "POST");
    assert_eq!(recs[0].port, Some(p));
    assert_eq!(recs[0].ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(recs[0].status, Some(200));
    assert_eq!(recs[0].job, JOB);
}

#[tokio::test]
async fn r_net_3_query_without_path_is_forwarded_as_origin_form() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let p = up.port();
    let r = env
        .send(&format!(
            "GET http://allowed.test:{p}?q=1 HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n"
        ))
        .await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(
        up.received()[0].starts_with("GET /?q=1 HTTP/1.1\r\n"),
        "{:?}",
        up.received()
    );
}

#[tokio::test]
async fn r_net_8_requests_refused_by_the_http_parser_are_audited() {
    let env = env().await;
    // httparse accepts this target; http::Uri (hyper) does not.
    let r = env
        .send("GET http://[allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        .await;
    assert_eq!(status(&r), 400, "{r}");
    let recs = env.records(1).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].decision, proxy::Verdict::Deny);
    assert!(
        recs[0].reason.as_deref().unwrap().contains("malformed"),
        "{recs:?}"
    );
    assert!(env.connector.attempts().is_empty());
}

#[tokio::test]
async fn r_net_8_connect_with_a_body_is_refused() {
    refused(
        "CONNECT allowed.test:{p} HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_9_upstream_failure_is_an_allowed_request_with_a_reason() {
    // A port with nothing listening on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = env().await;
    let r = env.get(&format!("http://allowed.test:{port}/")).await;
    assert_eq!(status(&r), 502, "{r}");
    let recs = env.records(1).await;
    assert_eq!(recs[0].decision, proxy::Verdict::Allow);
    assert_eq!(recs[0].status, Some(502));
    assert!(
        recs[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("connecting to 127.0.0.1"),
        "{recs:?}"
    );
}

#[tokio::test]
async fn r_net_8_obsolete_line_folding_is_refused() {
    refused(
        "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nX-A: b\r\n c\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_8_control_characters_in_headers_are_refused() {
    refused(
        "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nX-A: b\0c\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_5_overlong_host_is_refused() {
    let long = format!("{}.allowed.test", "a.".repeat(130));
    refused(
        &format!("GET http://{long}:{{p}}/ HTTP/1.1\r\nHost: {long}:{{p}}\r\n\r\n"),
        400,
    )
    .await;
}

#[tokio::test]
async fn r_net_3_http_1_0_without_host_is_forwarded() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let r = env
        .send(&format!(
            "GET http://allowed.test:{}/ HTTP/1.0\r\n\r\n",
            up.port()
        ))
        .await;
    assert!(
        r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"),
        "{r}"
    );
    assert!(up.received()[0].contains(&format!("host: allowed.test:{}", up.port())));
}

#[tokio::test]
async fn r_net_3_chunked_request_body_is_forwarded() {
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let p = up.port();
    let request = format!(
        "POST http://allowed.test:{p}/post HTTP/1.1\r\nHost: allowed.test:{p}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
    let r = env.send(&request).await;
    assert_eq!(status(&r), 200, "{r}");
    let got = up.received()[0].to_ascii_lowercase();
    assert!(got.contains("transfer-encoding: chunked"), "{got}");
    assert!(got.contains("hello") && got.contains(" world"), "{got}");
    let recs = env.records(1).await;
    assert_eq!(recs[0].bytes_up, request.len() as u64);
}

#[tokio::test]
async fn many_concurrent_requests_all_complete() {
    let up = Upstream::http("127.0.0.1").await;
    let env = std::sync::Arc::new(env().await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let env = env.clone();
        let url = format!("http://allowed.test:{}/n{i}", up.port());
        tasks.push(tokio::spawn(async move { status(&env.get(&url).await) }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(up.hits(), 40);
    assert_eq!(env.records(40).await.len(), 40);
}

#[tokio::test]
async fn r_net_3_client_that_half_closes_still_gets_its_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::http("127.0.0.1").await;
    let env = env().await;
    let p = up.port();
    let mut s = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    s.write_all(
        format!("GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let r = String::from_utf8_lossy(&out);
    assert_eq!(status(&r), 200, "{r}");
}
