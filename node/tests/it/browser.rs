//! The dashboard in a real browser (issue 19): Debian's `chromium`, driven
//! through `chromedriver` over WebDriver. The tests fail rather than skip
//! when `SKREI_REQUIRE_BROWSER=1` (CI) and the browser is missing.
//!
//! `SKREI_SCREENSHOTS=DIR` also writes the main pages' screenshots there
//! (the ones in docs/dashboard/ were made so).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::harness::*;

/// A running chromedriver, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver and chromium, or `None` (after saying why) when they are
/// missing and the browser is not required.
fn driver() -> Option<Driver> {
    let present = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !present("chromedriver") || !present("chromium") {
        assert!(
            std::env::var("SKREI_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "chromium and chromedriver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "skipping: no chromium or chromedriver (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            // No sandbox: the tests run as root in CI.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// The text of the page's `<main>`.
async fn main_text(c: &Client) -> String {
    c.find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until `check` holds for the page's main text.
async fn until(c: &Client, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = main_text(c).await;
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "waited for {what}: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("SKREI_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

fn job_count(node: &NodeProc) -> usize {
    json_of(&node.cli(&["job", "list", "--output", "json"]))["jobs"]
        .as_array()
        .map_or(0, Vec::len)
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    json(out)
}

/// A page on another local port that tries to use the dashboard's session:
/// a cross-site form post, a fetch that reads, a fetch that submits. It
/// puts what it could do in its title.
fn other_port_page(api: &str, job: &str) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let job = serde_json::to_string(job).unwrap();
    let page = format!(
        r#"<!DOCTYPE html><html><head><title>working</title></head><body>
<form id="f" method="POST" action="{api}/api/v1/jobs" enctype="text/plain" target="sink">
<input name="x" value="y"></form><iframe name="sink"></iframe>
<script>
(async () => {{
  const out = [];
  try {{ const r = await fetch("{api}/api/v1/jobs", {{credentials: "include"}});
        out.push("read:" + r.status + ":" + (await r.text()).length); }}
  catch (e) {{ out.push("read:blocked"); }}
  try {{ const r = await fetch("{api}/api/v1/jobs", {{method: "POST", credentials: "include",
        headers: {{"content-type": "application/yaml"}}, body: {job}}});
        out.push("submit:" + r.status); }}
  catch (e) {{ out.push("submit:blocked"); }}
  document.getElementById("f").submit();
  setTimeout(() => {{ document.title = "done " + out.join(" "); }}, 1500);
}})();
</script></body></html>"#
    );
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        // Serve the page to the browser's requests for a while.
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming().take(4) {
            let Ok(mut s) = stream else { break };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                )
                .as_bytes(),
            );
        }
    });
    (url, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser() {
    let Some(driver) = driver() else {
        return;
    };
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    // An upstream for the `http` job, on loopback, and a node whose
    // allowlist has its name (resolved to loopback, which it allows).
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = upstream.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || serve_hello(upstream));
    let allowlist = dirs.path().join("allowlist");
    std::fs::write(&allowlist, "allowed.test\n").unwrap();
    let node = NodeProc::start(
        &dirs.path().join("a"),
        &[
            "--accept-network",
            "http",
            "--allowlist",
            allowlist.to_str().unwrap(),
            "--proxy-resolve",
            "allowed.test=127.0.0.1",
            "--proxy-allow-range",
            "127.0.0.1/32",
            "--proxy-http-ports",
            &port,
        ],
    );
    let module = node.add(&files.module());
    let input = cid_input(&node.add(&files.name()));
    let c = browser(&driver).await;

    // Without the session: no data, how to log in.
    c.goto(&format!("{}/ui/", node.api)).await.unwrap();
    let text = main_text(&c).await;
    assert!(text.contains("skrei dashboard"), "{text}");

    // Log in with the printed link.
    let out = node.cli(&["dashboard", "--print-url"]);
    let url = text_of(&out.stdout);
    c.goto(url.trim()).await.unwrap();
    until(&c, "the jobs page", |t| t.contains("Jobs")).await;
    assert!(c.current_url().await.unwrap().path() == "/ui/");
    // The session cookie is out of the page scripts' reach.
    let cookies = c.execute("return document.cookie", vec![]).await.unwrap();
    assert_eq!(cookies, json!(""), "HttpOnly");

    // A job submitted elsewhere appears and completes without a reload.
    let job = node.submit(&hello_job("seen live", &module, &input, ""));
    let prefix = &job[..16];
    until(&c, "the new job", |t| t.contains(prefix)).await;
    until(&c, "the job to complete", |t| {
        t.lines()
            .any(|l| l.contains(prefix) && l.contains("completed"))
    })
    .await;
    screenshot(&c, "jobs").await;
    c.goto(&format!("{}/ui/#/jobs/{job}", node.api))
        .await
        .unwrap();
    until(&c, "the job page", |t| t.contains("Result files")).await;
    // The result's files download with the session (the link's own fetch).
    let link = c
        .find(Locator::XPath("//a[text()='stdout']"))
        .await
        .unwrap();
    let href = link.attr("href").await.unwrap().unwrap();
    let got = c
        .execute(
            "return fetch(arguments[0]).then((r) => r.text());",
            vec![json!(href)],
        )
        .await
        .unwrap();
    assert_eq!(got, json!("hello skrei\n"), "{href}");

    // An `http` job with one allowed and one refused request: its
    // network.log as a table.
    let probe = files.path("probe.wasm");
    std::fs::write(&probe, crate::wasm_http::probe()).unwrap();
    let probe = node.add(&probe);
    let net = node.submit(&format!(
        "Name: net\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: wasm\n      \
         Params:\n        EntryModule:\n          Source:\n            Type: ipfs\n            \
         Params:\n              CID: {probe}\n        Parameters: [http, \"allowed.test:{port}\", \
         /hello, \"denied.test:{port}\"]\n    Network:\n      Type: http\n      Domains: [allowed.test]\n    \
         Timeouts:\n      QueueTimeout: 10\n"
    ));
    let ended = node.wait(&net, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    // Its bytes are counted for the charts (and /metrics).
    let (status, metrics) = raw_http(
        &node.api,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            node.api.trim_start_matches("http://")
        ),
    );
    assert_eq!(status, 200, "{metrics}");
    let egress: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("skrei_egress_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no skrei_egress_bytes in {metrics}"));
    assert!(egress > 0, "{metrics}");
    c.goto(&format!("{}/ui/#/jobs/{net}", node.api))
        .await
        .unwrap();
    // The page of this job (the hash changed on the same page).
    let text = until(&c, "the network log", |t| {
        t.contains(&net) && t.contains("Network (network.log)")
    })
    .await;
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("allowed.test") || l.contains("denied.test"))
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.contains("allowed.test") && r.contains("allow")),
        "{text}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("denied.test") && r.contains("deny")),
        "{text}"
    );
    screenshot(&c, "job").await;
    c.execute(
        "const h = [...document.querySelectorAll('h3')].find((x) => x.textContent.startsWith('Network')); \
         h.scrollIntoView(); return null;",
        vec![],
    )
    .await
    .unwrap();
    screenshot(&c, "network-log").await;

    // This node, and its domain check.
    c.goto(&format!("{}/ui/#/node", node.api)).await.unwrap();
    until(&c, "the node page", |t| t.contains("Accepts network")).await;
    let host = c.find(Locator::Id("allows-host")).await.unwrap();
    host.send_keys("files.example.com").await.unwrap();
    click(&c, "form button").await;
    until(&c, "the domain verdict", |t| t.contains("refused: not in")).await;
    screenshot(&c, "node").await;

    // Charts from the node's own history (its first sample is taken at
    // start).
    c.goto(&format!("{}/ui/#/charts", node.api)).await.unwrap();
    until(&c, "the charts", |t| t.contains("Jobs completed:")).await;
    assert!(
        !c.find_all(Locator::Css("figure svg"))
            .await
            .unwrap()
            .is_empty(),
        "no chart drawn"
    );
    screenshot(&c, "charts").await;

    // Peers: a lone node knows none, and says so.
    c.goto(&format!("{}/ui/#/peers", node.api)).await.unwrap();
    until(&c, "the peers page", |t| t.contains("No peers known yet")).await;

    // A job file with a mistake: shown at its line, nothing submitted.
    let before = job_count(&node);
    c.goto(&format!("{}/ui/#/submit", node.api)).await.unwrap();
    let area = c.find(Locator::Id("job-yaml")).await.unwrap();
    area.clear().await.unwrap();
    area.send_keys("Name: broken\nType: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: wasm\n    Resources:\n      CPU: lots\n")
        .await
        .unwrap();
    click(&c, "form button").await;
    let error = c
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(".errors li[data-line]"))
        .await
        .unwrap();
    // The first mistake: `Engine` has no `Params` (line 6, its `Type`).
    let line = error.attr("data-line").await.unwrap().unwrap_or_default();
    assert_eq!(line, "6", "{}", error.text().await.unwrap());
    screenshot(&c, "submit").await;
    assert_eq!(job_count(&node), before);

    // A page on another local port, with the session cookie in the
    // browser: it can neither read nor submit nor post a form.
    let yaml = hello_job("from another port", &module, &input, "");
    let (page, server) = other_port_page(&node.api, &yaml);
    c.goto(&page).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let title = loop {
        let title = c.title().await.unwrap();
        if title.starts_with("done") {
            break title;
        }
        assert!(
            Instant::now() < deadline,
            "the page did not finish: {title}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(title.contains("read:blocked"), "{title}");
    assert!(title.contains("submit:blocked"), "{title}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(job_count(&node), before, "{title}");
    drop(server);
    c.close().await.unwrap();
}

/// Answers every request on `listener` with `hello`.
fn serve_hello(listener: TcpListener) {
    use std::io::{Read, Write};
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { return };
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ =
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    }
}

fn text_of(bytes: &[u8]) -> String {
    text(bytes)
}
