//! The audit log (R-NET-9): one JSON line per request or tunnel.
//!
//! The node copies a job's lines into its results as `network.log`, so a
//! user sees what the job reached and why a request failed.

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::meter::Meter;

/// Whether the proxy let the request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Forwarded or tunnelled.
    Allow,
    /// Refused; `reason` says why.
    Deny,
}

/// One request or tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the request arrived, Unix time in milliseconds.
    pub time_ms: u64,
    /// The job.
    pub job: String,
    /// The request method (`CONNECT` for tunnels); empty when none was read.
    pub method: String,
    /// The normalised host, or the raw target (escaped, cut) when it did not parse.
    pub host: String,
    /// The port, when known.
    pub port: Option<u16>,
    /// The address connected to (or refused), when there is one.
    pub ip: Option<IpAddr>,
    /// Allowed or denied.
    pub decision: Verdict,
    /// Why it was denied, or what went wrong after it was allowed.
    pub reason: Option<String>,
    /// The status sent to the client (200 for an established tunnel).
    pub status: Option<u16>,
    /// Bytes from the job: everything it sent for this request (request
    /// head and body, or `CONNECT` head and tunnel payload). Counted where
    /// the rate limit applies (R-SEC-4).
    pub bytes_up: u64,
    /// Bytes to the job: everything it was sent (response head and body,
    /// or the tunnel's answer and payload).
    pub bytes_down: u64,
    /// From the request's arrival to the end of the exchange or tunnel.
    pub duration_ms: u64,
}

/// Where audit records go.
pub trait AuditSink: Send + Sync + 'static {
    /// Record one request or tunnel. Must not block for long.
    fn record(&self, record: &AuditRecord);
}

/// JSON lines to a writer (a file, stderr).
#[derive(Debug)]
pub struct WriterSink<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> WriterSink<W> {
    /// Write to `out`, one line per record, flushed each time.
    pub fn new(out: W) -> WriterSink<W> {
        WriterSink {
            out: Mutex::new(out),
        }
    }
}

impl<W: Write + Send + 'static> AuditSink for WriterSink<W> {
    fn record(&self, record: &AuditRecord) {
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = out.write_all(&line).and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "cannot write audit record");
        }
    }
}

/// Records kept in memory (tests, and a node that writes them out later).
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<AuditRecord>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> MemorySink {
        MemorySink::default()
    }

    /// A copy of the records so far.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl AuditSink for MemorySink {
    fn record(&self, record: &AuditRecord) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record.clone());
    }
}

/// A record being filled in while a request or tunnel runs; written once,
/// when the last holder drops it, so every exit path produces exactly one
/// line with the final byte counts. The WASM executor fills one per
/// wasi-http request (R-NET-10), so its `network.log` has the proxy's format.
pub struct Entry {
    sink: Arc<dyn AuditSink>,
    record: Mutex<AuditRecord>,
    start: Instant,
    meter: Arc<Meter>,
}

impl Entry {
    /// A record for `job`, timed from now, denied until updated.
    pub fn new(sink: Arc<dyn AuditSink>, job: &str) -> Arc<Entry> {
        Entry::metered(sink, job, Meter::new())
    }

    /// A record whose byte counts are `meter`'s (the metered streams of
    /// its request or tunnel count into it).
    pub fn metered(sink: Arc<dyn AuditSink>, job: &str, meter: Arc<Meter>) -> Arc<Entry> {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Arc::new(Entry {
            sink,
            record: Mutex::new(AuditRecord {
                time_ms,
                job: job.to_owned(),
                method: String::new(),
                host: String::new(),
                port: None,
                ip: None,
                decision: Verdict::Deny,
                reason: None,
                status: None,
                bytes_up: 0,
                bytes_down: 0,
                duration_ms: 0,
            }),
            start: Instant::now(),
            meter,
        })
    }

    /// Changes the record before it is written.
    pub fn update(&self, f: impl FnOnce(&mut AuditRecord)) {
        f(&mut self.record.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl Entry {
    /// The counts this record will carry.
    pub fn meter(&self) -> Arc<Meter> {
        self.meter.clone()
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut r = self
            .record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        r.bytes_up = self.meter.up();
        r.bytes_down = self.meter.down();
        r.duration_ms = self.start.elapsed().as_millis() as u64;
        match r.decision {
            Verdict::Allow => tracing::info!(
                job = %r.job, method = %r.method, host = %r.host, port = ?r.port, ip = ?r.ip,
                status = ?r.status, reason = ?r.reason, up = r.bytes_up, down = r.bytes_down,
                "proxy allowed"
            ),
            Verdict::Deny => tracing::warn!(
                job = %r.job, method = %r.method, host = %r.host, port = ?r.port, ip = ?r.ip,
                status = ?r.status, reason = ?r.reason, "proxy denied"
            ),
        }
        self.sink.record(&r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_net_9_one_json_line_per_record() {
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Shared::default();
        let sink: Arc<dyn AuditSink> = Arc::new(WriterSink::new(buf.clone()));
        let e = Entry::new(sink, "job-1");
        e.update(|r| {
            r.method = "GET".into();
            r.host = "a.test".into();
            r.port = Some(80);
            r.decision = Verdict::Allow;
        });
        e.meter().add_up(5);
        drop(e);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1);
        let r: AuditRecord = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(r.job, "job-1");
        assert_eq!(r.decision, Verdict::Allow);
        assert_eq!(r.bytes_up, 5);
        assert!(text.contains("\"decision\":\"allow\""));
    }
}
