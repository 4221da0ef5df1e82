//! Test data: deterministic pseudo-random files and tree comparison.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `len` pseudo-random bytes (xorshift, seeded) to `path`.
pub fn random_file(path: &Path, len: usize, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

/// A nested tree with the awkward cases: empty files and directories,
/// Unicode names, an executable, deep nesting, and optionally a big file.
pub fn awkward_tree(root: &Path, big: Option<usize>) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    std::fs::create_dir_all(root.join("ünïcødé ✓/日本")).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("a/b/c/deep.txt"), b"deep\n").unwrap();
    std::fs::write(root.join("ünïcødé ✓/日本/ファイル.txt"), "こんにちは").unwrap();
    random_file(&root.join("a/medium.bin"), 3 * 1024 * 1024 + 17, 7);
    let exe = root.join("a/run.sh");
    std::fs::write(&exe, b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Many small files in one directory: fetched concurrently.
    std::fs::create_dir(root.join("many")).unwrap();
    for i in 0..100 {
        std::fs::write(root.join(format!("many/{i:03}.txt")), format!("{i}\n")).unwrap();
    }
    if let Some(len) = big {
        random_file(&root.join("big.bin"), len, 42);
    }
}

/// Asserts two trees have the same names, kinds, bytes and executable bits.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let ma = std::fs::symlink_metadata(a).unwrap();
    let mb = std::fs::symlink_metadata(b).unwrap();
    assert_eq!(
        ma.is_dir(),
        mb.is_dir(),
        "{} vs {}",
        a.display(),
        b.display()
    );
    if ma.is_dir() {
        let names = |p: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        assert_eq!(na, nb, "entries of {} vs {}", a.display(), b.display());
        for n in na {
            assert_same_tree(&a.join(&n), &b.join(&n));
        }
    } else {
        assert_eq!(ma.len(), mb.len(), "size of {}", b.display());
        assert_eq!(
            file_hash(a),
            file_hash(b),
            "bytes of {} vs {}",
            a.display(),
            b.display()
        );
        let exec = |m: &std::fs::Metadata| m.permissions().mode() & 0o100 != 0;
        assert_eq!(exec(&ma), exec(&mb), "executable bit of {}", b.display());
    }
}

pub fn file_hash(p: &Path) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p).unwrap()).unwrap();
    h.finalize()
}

/// Bytes of all files under `p`.
pub fn tree_size(p: &Path) -> u64 {
    let m = std::fs::symlink_metadata(p).unwrap();
    if m.is_dir() {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| tree_size(&e.unwrap().path()))
            .sum()
    } else {
        m.len()
    }
}
