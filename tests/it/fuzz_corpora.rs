//! Replays the fuzzers' findings on stable (issue 12 §8): every committed
//! input of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, and
//! every seed, goes through the same entry function as the cargo-fuzz target
//! (`fuzz_entries::TARGETS`), so a change that brings back a crash or breaks
//! an invariant on an input that once widened coverage fails `cargo test`.
//! CI runs no fuzzer; see fuzz/README.md.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use fuzz_entries::{TARGETS, Target};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files directly in `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `input` through `target`; the panic message if it fails.
fn replay(target: &Target, input: &[u8]) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(input)))
        .err()
        .map(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned())
        })
}

fn replay_folder(sub: &str) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut failures = Vec::new();
    for target in TARGETS {
        let dir = fuzz_dir().join(sub).join(target.name);
        for path in inputs(&dir) {
            let bytes = std::fs::read(&path).unwrap();
            count += 1;
            if let Some(message) = replay(target, &bytes) {
                failures.push(format!("{}: {message}", path.display()));
            }
        }
    }
    (count, failures)
}

#[test]
fn fuzz_corpora_replay_cleanly() {
    let (count, failures) = replay_folder("corpus");
    assert!(count > 0, "no corpus under {}", fuzz_dir().display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fuzz_crash_regressions_stay_fixed() {
    let (_, failures) = replay_folder("regressions");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fuzz_seeds_keep_their_invariants() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let seeds = fuzz_entries::seeds::seeds(target.name);
        assert!(!seeds.is_empty(), "target {} has no seeds", target.name);
        for (name, bytes) in seeds {
            if let Some(message) = replay(target, &bytes) {
                failures.push(format!("{} seed {name}: {message}", target.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every entry has its cargo-fuzz target and a committed corpus, and every
/// cargo-fuzz target is an entry: adding one without the other fails here.
#[test]
fn every_fuzz_target_has_an_entry_and_a_corpus() {
    let declared = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut files: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    names.sort();
    assert_eq!(
        files, names,
        "fuzz/fuzz_targets/*.rs and fuzz_entries::TARGETS differ"
    );
    for name in &names {
        assert!(
            declared.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml declares no [[bin]] {name}"
        );
        let source =
            std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs"))).unwrap();
        assert!(
            source.contains(&format!("run(\"{name}\"")),
            "fuzz/fuzz_targets/{name}.rs does not run the entry {name}"
        );
        assert!(
            !inputs(&fuzz_dir().join("corpus").join(name)).is_empty(),
            "no committed corpus for {name}: run fuzz/run.sh {name}"
        );
    }
}
