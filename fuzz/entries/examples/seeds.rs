//! Writes each target's seeds into `DIR/<target>/seed-<name>` (default
//! `fuzz/corpus`): `cargo run -p fuzz-entries --example seeds -- [DIR] [TARGET...]`.

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "fuzz/corpus".into()));
    let names: Vec<String> = args.collect();
    for target in fuzz_entries::TARGETS {
        if !names.is_empty() && !names.iter().any(|n| n == target.name) {
            continue;
        }
        let out = dir.join(target.name);
        std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        let seeds = fuzz_entries::seeds::seeds(target.name);
        for (name, bytes) in &seeds {
            let path = out.join(format!("seed-{name}"));
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        println!("{}: {} seeds", target.name, seeds.len());
    }
}
