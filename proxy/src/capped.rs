//! A job's audit log under a byte cap that keeps the most recent records
//! and says how many it dropped (R-SEC-4, R-NET-9).
//!
//! A job can make requests faster than anyone reads them: refused requests
//! alone filled a 16 MiB log in about 11 s. Keeping the first records and
//! losing the rest in silence would hide exactly what a job did last, so
//! past the cap the oldest records go, and the finished log opens with one
//! [`Dropped`] line that counts them.
//!
//! Records go to two files of at most half the cap each: the newer one
//! fills; when it is full it becomes the older one and the previous older
//! one is dropped (its records counted). So disk use stays under the cap,
//! memory holds no records, and the finished log keeps at least the most
//! recent half of the cap's worth of records. [`CappedLog::finish`] writes
//! the log: the note (when anything was dropped), then the older and the
//! newer records, in order.
//!
//! Both engines use it: WASM egress records into it directly (it is an
//! [`AuditSink`]), and the Docker engine feeds it the sidecar's stdout, JSON
//! lines as they arrive in chunks ([`CappedLog::push_bytes`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditRecord, AuditSink};

/// Room kept for the [`Dropped`] line, so the log stays within its cap.
const NOTE_ROOM: u64 = 256;

/// The first line of a log that dropped records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// How many of the earliest records are not in the log.
    pub dropped_records: u64,
    /// The log's cap, in bytes.
    pub cap_bytes: u64,
    /// The same in words.
    pub note: String,
}

/// What [`CappedLog::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Records in the log.
    pub kept: u64,
    /// Records dropped, oldest first.
    pub dropped: u64,
}

/// An audit log with a byte cap, written by [`CappedLog::finish`].
#[derive(Debug)]
pub struct CappedLog {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    cap: u64,
    /// The most either segment holds.
    half: u64,
    older: Segment,
    newer: Segment,
    newer_file: Option<File>,
    dropped: u64,
    /// The start of a line not ended yet (bytes fed by `push_bytes`).
    partial: Vec<u8>,
    /// The line being fed is too long to keep: skip to its end.
    skipping: bool,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    bytes: u64,
    lines: u64,
}

impl CappedLog {
    /// A log of at most `cap` bytes, its work files in the existing folder
    /// `dir` (not one that is published).
    pub fn create(dir: &Path, cap: u64) -> io::Result<CappedLog> {
        let older = dir.join("audit.older");
        let newer = dir.join("audit.newer");
        let _ = std::fs::remove_file(&older);
        let file = File::create(&newer)?;
        Ok(CappedLog {
            state: Mutex::new(State {
                cap,
                half: (cap.saturating_sub(NOTE_ROOM) / 2).max(1),
                older: Segment {
                    path: older,
                    bytes: 0,
                    lines: 0,
                },
                newer: Segment {
                    path: newer,
                    bytes: 0,
                    lines: 0,
                },
                newer_file: Some(file),
                dropped: 0,
                partial: Vec::new(),
                skipping: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Counters and file handles only: usable after a panic elsewhere.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one record (a line without its newline).
    pub fn push_line(&self, line: &[u8]) {
        self.lock().push(line);
    }

    /// Adds bytes of a stream of newline-ended records, as they come.
    pub fn push_bytes(&self, bytes: &[u8]) {
        let mut s = self.lock();
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let ended = piece.ends_with(b"\n");
            let text = piece.strip_suffix(b"\n").unwrap_or(piece);
            if s.skipping {
                s.skipping = !ended;
                continue;
            }
            if s.partial.len() as u64 + text.len() as u64 > s.half {
                // Longer than any record kept: count it once, skip the rest.
                s.partial.clear();
                s.dropped += 1;
                s.skipping = !ended;
                continue;
            }
            s.partial.extend_from_slice(text);
            if ended {
                let line = std::mem::take(&mut s.partial);
                s.push(&line);
            }
        }
    }

    /// Writes the log to `dest` (the note, then the records, oldest first)
    /// and removes the work files.
    pub fn finish(&self, dest: &Path) -> io::Result<Summary> {
        let mut s = self.lock();
        if !s.partial.is_empty() {
            let line = std::mem::take(&mut s.partial);
            s.push(&line);
        }
        if let Some(mut f) = s.newer_file.take() {
            f.flush()?;
        }
        let mut out = io::BufWriter::new(File::create(dest)?);
        if s.dropped > 0 {
            let note = Dropped {
                dropped_records: s.dropped,
                cap_bytes: s.cap,
                note: format!(
                    "this log keeps the most recent records within {} bytes; the {} earliest \
                     records were dropped",
                    s.cap, s.dropped
                ),
            };
            serde_json::to_writer(&mut out, &note).map_err(io::Error::other)?;
            out.write_all(b"\n")?;
        }
        for seg in [&s.older, &s.newer] {
            if seg.lines > 0 {
                io::copy(&mut File::open(&seg.path)?, &mut out)?;
            }
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let _ = std::fs::remove_file(&s.older.path);
        let _ = std::fs::remove_file(&s.newer.path);
        Ok(Summary {
            kept: s.older.lines + s.newer.lines,
            dropped: s.dropped,
        })
    }
}

impl State {
    fn push(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        let size = line.len() as u64 + 1;
        if size > self.half {
            self.dropped += 1;
            return;
        }
        if self.newer.bytes + size > self.half
            && let Err(e) = self.rotate()
        {
            tracing::warn!(error = %e, "cannot rotate the audit log; a record is lost");
            self.dropped += 1;
            return;
        }
        let Some(file) = self.newer_file.as_mut() else {
            // Finished: later records are not in the log.
            self.dropped += 1;
            return;
        };
        let written = file.write_all(line).and_then(|()| file.write_all(b"\n"));
        match written {
            Ok(()) => {
                self.newer.bytes += size;
                self.newer.lines += 1;
            }
            Err(e) => {
                // A full disk: the count still tells the truth.
                tracing::warn!(error = %e, "cannot write an audit record");
                self.dropped += 1;
            }
        }
    }

    /// The newer segment becomes the older; the older one's records are
    /// dropped.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut f) = self.newer_file.take() {
            f.flush()?;
        }
        std::fs::rename(&self.newer.path, &self.older.path)?;
        self.dropped += self.older.lines;
        self.older.bytes = self.newer.bytes;
        self.older.lines = self.newer.lines;
        self.newer.bytes = 0;
        self.newer.lines = 0;
        self.newer_file = Some(File::create(&self.newer.path)?);
        Ok(())
    }
}

impl AuditSink for CappedLog {
    fn record(&self, record: &AuditRecord) {
        match serde_json::to_vec(record) {
            Ok(line) => self.push_line(&line),
            Err(e) => tracing::warn!(error = %e, "cannot encode an audit record"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn record(i: usize) -> String {
        format!("{{\"n\":{i:04}}}")
    }

    #[test]
    fn r_sec_4_under_the_cap_everything_is_kept_without_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let log = CappedLog::create(dir.path(), 4096).unwrap();
        for i in 0..10 {
            log.push_line(record(i).as_bytes());
        }
        let dest = dir.path().join("network.log");
        let summary = log.finish(&dest).unwrap();
        assert_eq!(
            summary,
            Summary {
                kept: 10,
                dropped: 0
            }
        );
        let got = lines(&dest);
        assert_eq!(got, (0..10).map(record).collect::<Vec<_>>());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn r_sec_4_past_the_cap_the_most_recent_are_kept_and_the_rest_counted() {
        let dir = tempfile::tempdir().unwrap();
        // Each record is 11 bytes: 24 fit in each 272-byte half.
        let cap = 2 * 272 + NOTE_ROOM;
        let log = CappedLog::create(dir.path(), cap).unwrap();
        for i in 0..1000 {
            log.push_line(record(i).as_bytes());
        }
        let dest = dir.path().join("network.log");
        let summary = log.finish(&dest).unwrap();
        assert_eq!(summary.kept + summary.dropped, 1000);
        assert!(summary.kept >= 20, "{summary:?}");
        let got = lines(&dest);
        let note: Dropped = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(note.dropped_records, summary.dropped);
        assert_eq!(note.cap_bytes, cap);
        // The kept records are the last ones, in order.
        let first = summary.dropped as usize;
        assert_eq!(&got[1..], (first..1000).map(record).collect::<Vec<_>>());
        assert!(std::fs::metadata(&dest).unwrap().len() <= cap);
    }

    #[test]
    fn r_sec_4_a_stream_of_lines_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let log = CappedLog::create(dir.path(), 2 * 100 + NOTE_ROOM).unwrap();
        let long = "x".repeat(150);
        let stream = format!(
            "{}\n{}\n{long}\n{}\n{}",
            record(1),
            record(2),
            record(3),
            record(4)
        );
        for piece in stream.as_bytes().chunks(7) {
            log.push_bytes(piece);
        }
        let dest = dir.path().join("network.log");
        let summary = log.finish(&dest).unwrap();
        // The 150-byte line cannot fit half the cap: it is dropped and
        // counted; the unterminated last line is kept.
        assert_eq!(
            summary,
            Summary {
                kept: 4,
                dropped: 1
            }
        );
        let got = lines(&dest);
        assert!(got[0].contains("\"dropped_records\":1"), "{got:?}");
        assert_eq!(&got[1..], [record(1), record(2), record(3), record(4)]);
    }
}
