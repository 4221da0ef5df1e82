//! R-SEC-2, R-POL-3: a peer's job chooses no folder on the compute node; a
//! `dir` publisher writes only under the operator's `--publish-dir`.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Files, NodeProc, cid_input, executions_on, hello_job};

fn dir_publisher(path: &Path) -> String {
    format!(
        "    Publisher:\n      Type: dir\n      Params:\n        Path: {}\n",
        path.display()
    )
}

#[test]
fn r_sec_2_a_peers_dir_publisher_writes_only_under_the_listed_folders() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let listed = dirs.path().join("published");
    let elsewhere = dirs.path().join("elsewhere");
    std::fs::create_dir_all(&listed).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, listed.join("link")).unwrap();
    // The job comes from another node, which runs nothing itself.
    let requester = NodeProc::start(&dirs.path().join("r"), &["--capacity", "0"]);
    // The folder through the config file (`publish-dir`, as the flag).
    let config = dirs.path().join("c.toml");
    std::fs::write(&config, format!("publish-dir = [{:?}]\n", listed)).unwrap();
    let compute = NodeProc::start(
        &dirs.path().join("c"),
        &[
            "--bootstrap",
            &requester.bootstrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let module = requester.add(&files.module());
    let input = cid_input(&requester.add(&files.name()));
    std::thread::sleep(Duration::from_millis(1_500));

    // Outside the listed folders: refused at bid time, with the reason.
    let job = requester.submit(&hello_job(
        "outside",
        &module,
        &input,
        &dir_publisher(&elsewhere),
    ));
    let ended = requester.wait(&job, Duration::from_secs(30));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let reason = ended["failure"]["detail"].as_str().unwrap();
    assert!(
        reason.contains("not allowed on the node") && reason.contains("--publish-dir"),
        "{reason}"
    );
    assert!(executions_on(&ended).is_empty(), "{ended:#}");

    // Inside: published there.
    let job = requester.submit(&hello_job(
        "inside",
        &module,
        &input,
        &dir_publisher(&listed),
    ));
    let ended = requester.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    assert_eq!(executions_on(&ended), vec![compute.id()]);
    assert_eq!(
        std::fs::read_to_string(listed.join(&job).join("stdout")).unwrap(),
        "hello skrei\n"
    );

    // Under a listed folder by name, but a symlink out of it: the bid-time
    // check sees only the text, the publish-time check resolves it.
    let job = requester.submit(&hello_job(
        "escape",
        &module,
        &input,
        &dir_publisher(&listed.join("link")),
    ));
    let ended = requester.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert!(
        ended.to_string().contains("--publish-dir"),
        "the execution's failure names the rule: {ended:#}"
    );

    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written outside the listed folders"
    );
}
