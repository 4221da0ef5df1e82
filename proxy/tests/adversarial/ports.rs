//! Plain HTTP goes to port 80 only, plus ports the operator lists
//! (R-NET-3), as `CONNECT` goes to 443: otherwise a job allowed
//! `api.example.com` could POST to a database or cache port of that host.

use crate::harness::*;

fn opts(http_ports: Vec<u16>) -> Opts {
    Opts {
        ranges: vec!["127.0.0.1/32"],
        resolve: vec![("allowed.test", "127.0.0.1")],
        http_ports: Some(http_ports),
        ..Opts::default()
    }
}

fn post(port: u16) -> String {
    let body = "SET key \"owned\"\r\n";
    format!(
        "POST http://allowed.test:{port}/ HTTP/1.1\r\nHost: allowed.test:{port}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn r_net_3_plain_http_to_another_port_is_refused() {
    // Stands in for a Redis-style service of an allowed host.
    let up = Upstream::http("127.0.0.1").await;
    let p = up.port();
    let env = Env::start(opts(vec![80])).await;
    let r = env.send(&post(p)).await;
    assert_eq!(status(&r), 403, "{r}");
    let why = format!("plain HTTP to port {p} is not allowed (allowed: 80)");
    assert!(r.contains(&why), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0, "the listener saw the request");
    assert!(env.connector.attempts().is_empty());
    let recs = env.records(1).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].decision, proxy::Verdict::Deny);
    assert_eq!(recs[0].port, Some(p));
    assert_eq!(recs[0].reason.as_deref(), Some(why.as_str()));
}

#[tokio::test]
async fn r_net_3_a_listed_port_is_reached() {
    let up = Upstream::http("127.0.0.1").await;
    let p = up.port();
    let env = Env::start(opts(vec![80, p])).await;
    let r = env.send(&post(p)).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(up.hits(), 1);
    // The list is for plain HTTP only: CONNECT keeps its own.
    let (_, r) = connect(&env, &format!("allowed.test:{p}"), "").await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("is not allowed (allowed: 443)"), "{r}");
}
