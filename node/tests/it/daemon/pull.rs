//! Compute nodes pull the images jobs name, from the registries their
//! operator allows (issue 16; R-POL-3, R-SEC-3, R-SEC-5), against Debian's
//! `docker-registry` started by each test on a loopback port of its own,
//! with images each test builds and pushes (no outside registry).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions, RemoveImageOptions};
use futures::StreamExt;
use serde_json::Value;

use crate::docker::{engine, probe_image, require_docker};
use crate::harness::{NodeProc, executions_on};

/// A `docker-registry` on 127.0.0.1, stopped when dropped; its access log
/// is kept to count what was asked of it.
struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts one, or `None` (skip) where the package is missing and Docker
    /// is not required.
    fn start() -> Option<Registry> {
        Registry::start_with(None)
    }

    /// [`Registry::start`], asking for `user`'s password when given.
    fn start_with(login: Option<(&str, &str)>) -> Option<Registry> {
        let binary = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            assert!(
                !require_docker(),
                "SKREI_REQUIRE_DOCKER=1 but docker-registry is missing (Debian package docker-registry)"
            );
            eprintln!("skipping: docker-registry is not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let htpasswd = dir.path().join("htpasswd");
            let hash = bcrypt::hash_with_salt(password, 4, [7u8; 16]).unwrap();
            std::fs::write(
                &htpasswd,
                format!(
                    "{user}:{}\n",
                    hash.format_for_version(bcrypt::Version::TwoY)
                ),
            )
            .unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skrei-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, yaml).unwrap();
        let log = dir.path().join("access.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(registry)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Requests that read `repo`'s manifest `reference` (a tag, a digest,
    /// or "" for any): a pull asks for a tag's manifest once (HEAD, then GET
    /// by digest); a push only writes.
    fn manifest_reads(&self, repo: &str, reference: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let path = format!(" /v2/{repo}/manifests/{reference}");
        log.lines()
            .filter(|l| {
                ["\"HEAD", "\"GET"]
                    .iter()
                    .any(|m| l.contains(&format!("{m}{path}")))
            })
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds an image of its own (the probe image and `bytes` random bytes
/// in /blob), pushes it as `reference`, and removes it from the engine, so
/// a node must pull it. Returns its digest (`sha256:...`).
async fn push_image(docker: &Docker, reference: &str, bytes: usize) -> String {
    push_image_as(docker, reference, bytes, None).await
}

/// [`push_image`] with credentials.
async fn push_image_as(
    docker: &Docker,
    reference: &str,
    bytes: usize,
    credentials: Option<bollard::auth::DockerCredentials>,
) -> String {
    let base = probe_image(docker).await;
    let mut blob = vec![0u8; bytes];
    getrandom::fill(&mut blob).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, data).unwrap();
    };
    add(
        "Dockerfile",
        format!("FROM {base}\nCOPY blob /blob\n").as_bytes(),
    );
    add("blob", &blob);
    let context = tar.into_inner().unwrap();
    let options = BuildImageOptions {
        t: Some(reference.to_owned()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        let step = step.expect("the test image builds");
        assert!(
            step.error_detail.is_none(),
            "building {reference}: {step:?}"
        );
    }
    let (name, tag) = reference.rsplit_once(':').unwrap();
    let mut push = docker.push_image(
        name,
        Some(PushImageOptions {
            tag: Some(tag.to_owned()),
            ..Default::default()
        }),
        credentials,
    );
    while let Some(step) = push.next().await {
        let step = step.expect("the test image is pushed");
        assert!(step.error_detail.is_none(), "pushing {reference}: {step:?}");
    }
    let info = docker.inspect_image(reference).await.unwrap();
    let digest = info
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find_map(|d| d.split_once('@').map(|(_, d)| d.to_owned()))
        .expect("a pushed image has a digest");
    docker
        .remove_image(reference, None::<RemoveImageOptions>, None)
        .await
        .unwrap();
    assert!(!present(docker, reference).await);
    digest
}

async fn present(docker: &Docker, reference: &str) -> bool {
    docker.inspect_image(reference).await.is_ok()
}

/// A job running `image` that prints `hi`.
fn echo_job(name: &str, image: &str, timeout: Option<u64>) -> String {
    let timeouts = timeout.map_or(String::new(), |t| {
        format!("    Timeouts:\n      ExecutionTimeout: {t}\n")
    });
    format!(
        "Name: {name}\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
         Params:\n        Image: \"{image}\"\n        Entrypoint: [/bin/echo, hi]\n{timeouts}"
    )
}

/// The engine, a registry and a runtime for the test, or `None` (skip).
fn setup() -> Option<(tokio::runtime::Runtime, Docker, Registry)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let docker = runtime.block_on(engine())?;
    let registry = Registry::start()?;
    Some((runtime, docker, registry))
}

/// A Docker node with `extra` flags; `None` (skip) when its engine is missing.
fn docker_node(dir: &std::path::Path, extra: &[&str]) -> Option<NodeProc> {
    let mut args = vec!["--engines", "docker"];
    args.extend_from_slice(extra);
    let node = NodeProc::start(dir, &args);
    if !node.info()["engines"].to_string().contains("docker") {
        assert!(!require_docker(), "no Docker engine on the node");
        return None;
    }
    Some(node)
}

fn detail(job: &Value) -> String {
    job["failure"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Every execution's failure detail.
fn execution_failures(job: &Value) -> String {
    job["job"]["executions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["state"]["failure"]["detail"].as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

// Issue 16: a node allowed to pull from a registry pulls a missing image by
// tag and runs it; by digest too; a wrong digest fails saying so.
#[test]
fn r_pol_3_a_missing_image_is_pulled_by_tag_and_by_digest() {
    let Some((rt, docker, registry)) = setup() else {
        return;
    };
    let host = registry.host();
    let tagged = format!("{host}/skrei-pull-tag:1");
    let pinned_name = format!("{host}/skrei-pull-digest:1");
    let digest = rt.block_on(push_image(&docker, &tagged, 4096));
    let pinned_digest = rt.block_on(push_image(&docker, &pinned_name, 4096));
    let dirs = tempfile::tempdir().unwrap();
    let Some(node) = docker_node(&dirs.path().join("a"), &["--pull-from", &host]) else {
        return;
    };

    let job = node.submit(&echo_job("by tag", &tagged, None));
    let ended = node.wait(&job, Duration::from_secs(120));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    assert_eq!(
        crate::harness::text(&node.cli(&["job", "logs", &job]).stdout),
        "hi\n"
    );
    assert!(
        rt.block_on(present(&docker, &tagged)),
        "the image was pulled"
    );
    assert_eq!(
        registry.manifest_reads("skrei-pull-tag", "1"),
        1,
        "one tag lookup"
    );
    // The job's steps show the pull, and its execution what ran: the tag
    // resolved to the digest the registry served.
    let steps: Vec<&Value> = ended["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["event"] == "progress")
        .map(|e| &e["event"]["step"])
        .collect();
    assert_eq!(steps.len(), 2, "{ended:#}");
    assert_eq!(steps[0]["step"], "pulling_image", "{ended:#}");
    assert_eq!(steps[0]["image"], tagged.as_str(), "{ended:#}");
    let ran = format!("{host}/skrei-pull-tag@{digest}");
    assert_eq!(steps[1]["step"], "running", "{ended:#}");
    assert_eq!(steps[1]["image"], ran.as_str(), "{ended:#}");
    let execution = &ended["job"]["executions"][0];
    assert_eq!(execution["step"]["image"], ran.as_str(), "{ended:#}");
    let described = crate::harness::text(&node.cli(&["job", "describe", &job]).stdout);
    assert!(
        described.contains(&format!("(running {ran})")),
        "{described}"
    );
    let info = rt.block_on(docker.inspect_image(&tagged)).unwrap();
    assert!(
        info.repo_digests
            .unwrap_or_default()
            .iter()
            .any(|d| d.ends_with(&digest)),
        "pulled at the digest pushed"
    );

    let by_digest = format!("{host}/skrei-pull-digest@{pinned_digest}");
    let job = node.submit(&echo_job("by digest", &by_digest, None));
    let ended = node.wait(&job, Duration::from_secs(120));
    assert_eq!(ended["state"], "completed", "{ended:#}");

    // A digest the registry does not have: the same length, another value.
    let wrong = format!("{host}/skrei-pull-digest@sha256:{}", "0".repeat(64));
    let job = node.submit(&echo_job("wrong digest", &wrong, None));
    let ended = node.wait(&job, Duration::from_secs(120));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let failures = execution_failures(&ended);
    assert!(
        failures.contains("has no image with digest sha256:0000"),
        "{failures}\n{ended:#}"
    );
}

// Issue 16, R-POL-3: a node pulls only from the registries its operator
// names; without --pull-from it refuses, saying it does not pull; under `*`
// a registry at a special-purpose address (here the test's own registry on
// loopback, which would serve the image) is refused unless named.
#[test]
fn r_sec_3_pulls_go_only_to_registries_the_operator_allows() {
    let Some((rt, docker, registry)) = setup() else {
        return;
    };
    let host = registry.host();
    let image = format!("{host}/skrei-pull-refused:1");
    rt.block_on(push_image(&docker, &image, 1024));
    let dirs = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "no pull",
            &[],
            "it pulls no images (its operator allows registries with --pull-from)",
        ),
        (
            "other registry",
            &["--pull-from", "docker.io"],
            &format!("it does not pull from {host}"),
        ),
        (
            "any public",
            &["--pull-from", "*"],
            &format!("registry {host} is a special-purpose address: loopback"),
        ),
    ];
    for (name, flags, expected) in cases {
        let Some(node) = docker_node(&dirs.path().join(name.replace(' ', "-")), flags) else {
            return;
        };
        let mut job = echo_job(name, &image, None);
        job.push_str("    Timeouts:\n      QueueTimeout: 2\n");
        let id = node.submit(&job);
        let ended = node.wait(&id, Duration::from_secs(60));
        assert_eq!(ended["state"], "failed", "{name}: {ended:#}");
        assert_eq!(ended["failure"]["cause"], "no_node_accepts", "{ended:#}");
        assert!(executions_on(&ended).is_empty(), "{name}: it never ran");
        assert!(
            detail(&ended).contains(expected),
            "{name}: {}",
            detail(&ended)
        );
    }
    assert_eq!(
        registry.manifest_reads("skrei-pull-refused", ""),
        0,
        "no node asked the registry"
    );
}

// Issue 16: two jobs needing the same image at once share one pull. The
// registry is slowed (about 4 s for the image) so that both wait for the
// pull: each job's steps show it.
#[test]
fn two_jobs_needing_one_image_share_one_pull() {
    let Some((rt, docker, registry)) = setup() else {
        return;
    };
    let relay = slow_relay(registry.port, 1 << 20);
    let host = format!("127.0.0.1:{relay}");
    rt.block_on(push_image(
        &docker,
        &format!("{}/skrei-pull-shared:1", registry.host()),
        4 << 20,
    ));
    let image = format!("{host}/skrei-pull-shared:1");
    let dirs = tempfile::tempdir().unwrap();
    let Some(node) = docker_node(&dirs.path().join("a"), &["--pull-from", &host]) else {
        return;
    };
    let jobs: Vec<String> = (0..2)
        .map(|i| node.submit(&echo_job(&format!("shared {i}"), &image, Some(120))))
        .collect();
    for job in &jobs {
        let ended = node.wait(job, Duration::from_secs(120));
        assert_eq!(ended["state"], "completed", "{ended:#}");
        let pulled = ended["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["step"]["step"] == "pulling_image");
        assert!(pulled, "each job waited for the pull: {ended:#}");
    }
    // One pull: the tag looked up once (two pulls look it up twice, even
    // where the engine then shares the layers).
    assert_eq!(registry.manifest_reads("skrei-pull-shared", "1"), 1);
}

// Issue 16: above --image-cache the least recently used pulled image goes;
// the one in use stays, and an image the node did not pull is never removed.
#[test]
fn pulled_images_above_the_cache_budget_are_pruned_least_recently_used_first() {
    let Some((rt, docker, registry)) = setup() else {
        return;
    };
    let host = registry.host();
    let first = format!("{host}/skrei-pull-first:1");
    let second = format!("{host}/skrei-pull-second:1");
    rt.block_on(push_image(&docker, &first, 1 << 20));
    rt.block_on(push_image(&docker, &second, 1 << 20));
    let own = rt.block_on(probe_image(&docker));
    let dirs = tempfile::tempdir().unwrap();
    // Room for one of the two (each is the probe image and 1 MiB).
    let info = rt.block_on(docker.inspect_image(&own)).unwrap();
    let budget = (info.size.unwrap() as u64 + (1 << 20)) * 3 / 2;
    let Some(node) = docker_node(
        &dirs.path().join("a"),
        &["--pull-from", &host, "--image-cache", &budget.to_string()],
    ) else {
        return;
    };
    for (name, image) in [("first", &first), ("own", &own), ("second", &second)] {
        let job = node.submit(&echo_job(name, image, None));
        let ended = node.wait(&job, Duration::from_secs(120));
        assert_eq!(ended["state"], "completed", "{name}: {ended:#}");
    }
    assert!(
        !rt.block_on(present(&docker, &first)),
        "the least recently used pulled image was removed"
    );
    assert!(rt.block_on(present(&docker, &second)), "the newest stays");
    assert!(
        rt.block_on(present(&docker, &own)),
        "an image the node did not pull is never removed"
    );
    // Node info says where it pulls from and what the kept images take.
    let info = node.info();
    assert_eq!(info["pull_from"][0], host.as_str(), "{info:#}");
    assert_eq!(info["image_cache_bytes"], budget, "{info:#}");
    let kept = info["images_pulled_bytes"].as_u64().unwrap();
    assert!(kept > 0 && kept <= budget, "{info:#}");
}

/// A TCP relay to `to` that sends what comes back at about `rate` bytes
/// per second: a slow registry (the kernel here has no netem).
fn slow_relay(to: u16, rate: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            let (mut c_read, mut u_write) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut u_write);
                let _ = u_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut u_read, mut c_write) = (upstream, client);
            std::thread::spawn(move || {
                let chunk = (rate / 10).max(1);
                let mut buf = vec![0u8; chunk];
                loop {
                    match u_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c_write.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

// Issue 16: pulling counts in the job's ExecutionTimeout; a pull that
// outlasts it fails the job with that reason. Also --max-image-size.
#[test]
fn a_pull_outlasting_the_timeout_or_the_size_limit_fails_saying_so() {
    let Some((rt, docker, registry)) = setup() else {
        return;
    };
    let relay = slow_relay(registry.port, 64 << 10);
    let slow_host = format!("127.0.0.1:{relay}");
    // Pushed straight to the registry, pulled through the relay.
    rt.block_on(push_image(
        &docker,
        &format!("{}/skrei-pull-slow:1", registry.host()),
        4 << 20,
    ));
    let dirs = tempfile::tempdir().unwrap();
    let Some(node) = docker_node(
        &dirs.path().join("a"),
        &["--pull-from", &slow_host, "--max-image-size", "1Gi"],
    ) else {
        return;
    };
    let slow = format!("{slow_host}/skrei-pull-slow:1");
    let started = Instant::now();
    let job = node.submit(&echo_job("slow", &slow, Some(3)));
    let ended = node.wait(&job, Duration::from_secs(120));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let failures = execution_failures(&ended);
    assert!(
        failures.contains(&format!(
            "pulling image {slow} did not finish within the job's ExecutionTimeout (3 s)"
        )),
        "{failures}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it failed at the timeout, not after the pull"
    );

    // The same image over a node's --max-image-size, from the registry
    // itself.
    let Some(small) = docker_node(
        &dirs.path().join("b"),
        &["--pull-from", &registry.host(), "--max-image-size", "1Mi"],
    ) else {
        return;
    };
    let image = format!("{}/skrei-pull-slow:1", registry.host());
    let job = small.submit(&echo_job("too large", &image, None));
    let ended = small.wait(&job, Duration::from_secs(120));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let failures = execution_failures(&ended);
    assert!(
        failures.contains("over this node's --max-image-size"),
        "{failures}"
    );
    assert!(
        !rt.block_on(present(&docker, &image)),
        "nothing of it is kept"
    );
}

// Issue 16: registry credentials come from the operator's Docker
// configuration (`DOCKER_CONFIG`), never from a job: a node with them pulls
// from a registry that asks for a password, a node without fails saying the
// registry refused.
#[test]
fn registry_credentials_come_from_the_operators_docker_configuration() {
    let Some((rt, docker, _open)) = setup() else {
        return;
    };
    let password = "pw-of-the-operator";
    let Some(registry) = Registry::start_with(Some(("operator", password))) else {
        return;
    };
    let host = registry.host();
    let image = format!("{host}/skrei-pull-private:1");
    let login = bollard::auth::DockerCredentials {
        username: Some("operator".into()),
        password: Some(password.into()),
        serveraddress: Some(host.clone()),
        ..Default::default()
    };
    rt.block_on(push_image_as(&docker, &image, 1024, Some(login)));
    let dirs = tempfile::tempdir().unwrap();
    let with = dirs.path().join("docker-config");
    std::fs::create_dir_all(&with).unwrap();
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("operator:{password}"),
    );
    std::fs::write(
        with.join("config.json"),
        format!("{{\"auths\": {{\"{host}\": {{\"auth\": \"{auth}\"}}}}}}"),
    )
    .unwrap();
    let without = dirs.path().join("no-docker-config");
    std::fs::create_dir_all(&without).unwrap();
    for (name, config, completes) in [("without", &without, false), ("with", &with, true)] {
        let spawn = crate::harness::Spawn {
            env: vec![("DOCKER_CONFIG".into(), config.display().to_string())],
            ..Default::default()
        };
        let node = NodeProc::start_with(
            &dirs.path().join(name),
            &["--engines", "docker", "--pull-from", &host],
            spawn,
        );
        if !node.info()["engines"].to_string().contains("docker") {
            assert!(!require_docker(), "no Docker engine on the node");
            return;
        }
        let job = node.submit(&echo_job(name, &image, None));
        let ended = node.wait(&job, Duration::from_secs(120));
        if completes {
            assert_eq!(ended["state"], "completed", "{ended:#}");
        } else {
            assert_eq!(ended["state"], "failed", "{ended:#}");
            let failures = execution_failures(&ended);
            assert!(
                failures.contains(&format!("pulling image {image}")),
                "{failures}"
            );
            assert!(
                failures.contains("asks for credentials this node does not have"),
                "the registry refused: {failures}"
            );
        }
    }
}
