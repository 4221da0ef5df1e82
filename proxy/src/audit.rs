//! The audit log (R-NET-9): one JSON line per request or tunnel.
//!
//! The node copies a job's lines into its results as `network.log`, so a
//! user sees what the job reached and why a request failed.

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::meter::Meter;
use crate::target::Target;

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

/// A job's audit records: opens each one, and counts those not written
/// yet, so that a run can wait until its log is complete.
pub(crate) struct Recorder {
    sink: Arc<dyn AuditSink>,
    job: String,
    unwritten: Arc<Unwritten>,
}

/// The records of a job that are open: a record may outlive the request
/// that opened it (a connection is dropped asynchronously), and the log is
/// only complete once this reaches zero.
#[derive(Default)]
struct Unwritten {
    count: AtomicUsize,
    written: Notify,
}

impl Recorder {
    pub(crate) fn new(sink: Arc<dyn AuditSink>, job: String) -> Recorder {
        Recorder {
            sink,
            job,
            unwritten: Arc::default(),
        }
    }

    pub(crate) fn job(&self) -> &str {
        &self.job
    }

    /// A record of this job, timed from now, denied until updated, whose
    /// byte counts are `meter`'s (the metered streams of its request or
    /// tunnel count into it).
    pub(crate) fn open(&self, meter: Arc<Meter>) -> Arc<Entry> {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.unwritten.count.fetch_add(1, Ordering::SeqCst);
        Arc::new(Entry {
            sink: self.sink.clone(),
            record: Mutex::new(AuditRecord {
                time_ms,
                job: self.job.clone(),
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
            unwritten: self.unwritten.clone(),
        })
    }

    /// Waits until every record opened so far is written, or `timeout`.
    pub(crate) async fn settled(&self, timeout: Duration) {
        let all_written = async {
            loop {
                // Registered before the count is read, so a record written
                // in between still wakes this.
                let written = self.unwritten.written.notified();
                if self.unwritten.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                written.await;
            }
        };
        let _ = tokio::time::timeout(timeout, all_written).await;
    }
}

/// A record being filled in while a request or tunnel runs; written once,
/// when the last holder drops it, so every exit path produces exactly one
/// line with the final byte counts. Opened by
/// [`Gate::record`](crate::gate::Gate::record), for the proxy's requests and
/// tunnels and WASM egress's wasi-http requests alike (R-NET-10), so
/// `network.log` has one format.
pub struct Entry {
    sink: Arc<dyn AuditSink>,
    record: Mutex<AuditRecord>,
    start: Instant,
    meter: Arc<Meter>,
    unwritten: Arc<Unwritten>,
}

impl Entry {
    /// Changes the record before it is written.
    pub fn update(&self, f: impl FnOnce(&mut AuditRecord)) {
        f(&mut self.record.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Records the parsed target: its normalised host and its port.
    pub fn set_target(&self, target: &Target) {
        self.update(|r| {
            r.host = target.host.to_string();
            r.port = Some(target.port);
        });
    }

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
        self.unwritten.count.fetch_sub(1, Ordering::SeqCst);
        self.unwritten.written.notify_waiters();
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
        let e = Recorder::new(sink, "job-1".into()).open(Meter::new());
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

    #[tokio::test(start_paused = true)]
    async fn r_net_9_settled_waits_for_records_still_held() {
        let sink = MemorySink::new();
        let recorder = Recorder::new(Arc::new(sink.clone()), "job-1".into());
        let held = recorder.open(Meter::new());
        let dropped = recorder.open(Meter::new());
        drop(dropped);
        let start = Instant::now();
        recorder.settled(Duration::from_secs(3)).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(3),
            "gave up at the timeout"
        );
        assert_eq!(sink.records().len(), 1);

        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(held);
        });
        let start = Instant::now();
        recorder.settled(Duration::from_secs(60)).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "returned once written"
        );
        assert_eq!(sink.records().len(), 2);
        writer.await.unwrap();
    }
}
