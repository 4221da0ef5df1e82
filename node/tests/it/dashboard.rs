//! The dashboard's login and session rules on a real `skrei node` process
//! (issue 19, R-SEC-1): the printed link logs a browser in once; without
//! the session no data is shown; the cookie alone changes nothing; pages
//! of other sites and of other local ports are refused.

use crate::harness::*;

/// One HTTP/1.1 exchange on the node's API: the status, the head and the
/// body.
fn exchange(node: &NodeProc, request: &str) -> (u16, String, String) {
    raw_exchange(&node.api, request)
}

fn authority(node: &NodeProc) -> String {
    node.api.trim_start_matches("http://").to_string()
}

/// A request as a page in a browser sends it: no token, the given extra
/// headers (cookie, origin...).
fn page_request(node: &NodeProc, line: &str, headers: &str, body: &str) -> (u16, String, String) {
    exchange(
        node,
        &format!(
            "{line}\r\nHost: {}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            authority(node),
            body.len()
        ),
    )
}

/// Logs in with a fresh printed link; the `Cookie` header line it earned.
fn log_in(node: &NodeProc) -> String {
    let out = node.cli(&["dashboard", "--print-url"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = text(&out.stdout).trim().to_string();
    let path = url
        .strip_prefix(&node.api)
        .unwrap_or_else(|| panic!("{url} is not on {}", node.api));
    assert!(path.starts_with("/ui/login?code="), "{url}");
    let (status, head, _) = page_request(node, &format!("GET {path} HTTP/1.1"), "", "");
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie in {head}"));
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let port = node.api.rsplit(':').next().unwrap();
    assert!(
        cookie.starts_with(&format!("skrei_session_{port}=")),
        "{cookie}"
    );
    // A link works once.
    let (again, _, body) = page_request(node, &format!("GET {path} HTTP/1.1"), "", "");
    assert_eq!(again, 403, "{body}");
    format!("Cookie: {}\r\n", cookie.split(';').next().unwrap())
}

/// The session's secret, as the dashboard page gives it to its scripts.
fn secret_of(node: &NodeProc, cookie: &str) -> String {
    let (status, _, page) = page_request(node, "GET /ui/ HTTP/1.1", cookie, "");
    assert_eq!(status, 200, "{page}");
    let marker = "name=\"skrei-session\" content=\"";
    let start = page.find(marker).unwrap() + marker.len();
    page[start..start + 64].to_string()
}

#[test]
fn r_sec_1_the_dashboard_needs_its_session_and_its_secret_to_change_anything() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("a"), &[]);
    let module = node.add(&files.module());
    let input = cid_input(&node.add(&files.name()));
    let job = hello_job("from the dashboard", &module, &input, "");
    let first = node.submit(&hello_job("before", &module, &input, ""));
    let own_origin = format!("Origin: {}\r\n", node.api);

    // Without a session: the login page, and no data.
    let (status, _, page) = page_request(&node, "GET /ui/ HTTP/1.1", "", "");
    assert_eq!(status, 401);
    assert!(page.contains("skrei dashboard"), "{page}");
    assert!(!page.contains(&first));
    let forged = "Cookie: skrei_session_1=00\r\n";
    let (status, _, body) = page_request(&node, "GET /api/v1/jobs HTTP/1.1", forged, "");
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(&first));

    let cookie = log_in(&node);
    let secret = secret_of(&node, &cookie);
    // The session reads...
    let (status, _, body) = page_request(&node, "GET /api/v1/jobs HTTP/1.1", &cookie, "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&first), "{body}");

    // ...but the cookie alone changes nothing: not without the secret, not
    // from another origin (another port of 127.0.0.1 is the same site to a
    // browser, so it gets the cookie), not as a cross-site form.
    let post = "POST /api/v1/jobs HTTP/1.1";
    let yaml = "Content-Type: application/yaml\r\n";
    let with_secret = format!("x-skrei-session: {secret}\r\n");
    let other_port = "Origin: http://127.0.0.1:1\r\n";
    for (why, headers) in [
        ("no secret", format!("{cookie}{own_origin}{yaml}")),
        (
            "wrong secret",
            format!(
                "{cookie}{own_origin}{yaml}x-skrei-session: {}\r\n",
                "0".repeat(64)
            ),
        ),
        ("no origin", format!("{cookie}{yaml}{with_secret}")),
        (
            "another local port",
            format!("{cookie}{other_port}{yaml}{with_secret}"),
        ),
        (
            "same-site fetch",
            format!("{cookie}{yaml}{with_secret}{own_origin}Sec-Fetch-Site: same-site\r\n"),
        ),
        (
            "cross-site form",
            format!("{cookie}Origin: https://evil.example\r\nContent-Type: text/plain\r\n"),
        ),
    ] {
        let (status, _, body) = page_request(&node, post, &headers, &job);
        assert!(
            status == 403 || status == 415,
            "{why}: {status} {body} {headers:?}"
        );
    }
    // A page of another local port cannot read either: browsers say
    // `Sec-Fetch-Site: same-site` for it.
    let (status, _, body) = page_request(
        &node,
        "GET /api/v1/jobs HTTP/1.1",
        &format!("{cookie}Sec-Fetch-Site: same-site\r\n"),
        "",
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        json(&node.cli(&["job", "list", "--output", "json"]))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing was submitted"
    );

    // The dashboard's own page, with everything, submits.
    let (status, _, body) = page_request(
        &node,
        post,
        &format!("{cookie}{own_origin}{yaml}{with_secret}"),
        &job,
    );
    assert_eq!(status, 200, "{body}");
    // A session cannot mint more sessions.
    let (status, _, body) = page_request(
        &node,
        "POST /api/v1/dashboard/login HTTP/1.1",
        &format!("{cookie}{own_origin}Content-Type: application/json\r\n{with_secret}"),
        "{}",
    );
    assert_eq!(status, 403, "{body}");
}

#[test]
fn the_domain_check_uses_the_nodes_allowlist() {
    let dirs = tempfile::tempdir().unwrap();
    let list = dirs.path().join("allowlist");
    std::fs::write(&list, ".example.com\n").unwrap();
    let node = NodeProc::start(
        &dirs.path().join("a"),
        &[
            "--accept-network",
            "http",
            "--allowlist",
            list.to_str().unwrap(),
        ],
    );
    let ask = |host: &str| {
        let (status, body) = node.raw(&format!(
            "GET /api/v1/node/allows?host={host} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(ask("files.example.com")["allowed"], true);
    assert_eq!(ask("example.com.evil.test")["allowed"], false);
    let (status, body) = node
        .raw("GET /api/v1/node/allows?host=a%20b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400, "{body}");
}
