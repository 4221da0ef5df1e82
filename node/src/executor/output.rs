//! Captured stdout/stderr with a cap. A task that writes more than the cap
//! keeps running; the excess is counted and dropped, and the truncation is
//! reported, rather than trapping the guest with an error nobody can read.

use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// A capped sink writing to a file. Clones share the file and the count.
#[derive(Clone)]
pub struct CappedOutput {
    state: Arc<Mutex<State>>,
}

struct State {
    file: std::fs::File,
    cap: u64,
    written: u64,
    seen: u64,
}

impl CappedOutput {
    pub fn create(path: &Path, cap: u64) -> std::io::Result<CappedOutput> {
        let file = std::fs::File::create(path)?;
        Ok(CappedOutput {
            state: Arc::new(Mutex::new(State {
                file,
                cap,
                written: 0,
                seen: 0,
            })),
        })
    }

    /// Bytes the task wrote, kept or not.
    pub fn seen(&self) -> u64 {
        self.lock().seen
    }

    /// Whether bytes were dropped.
    pub fn truncated(&self) -> bool {
        let s = self.lock();
        s.seen > s.written
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind: safe to reuse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds bytes as if the task wrote them (for messages the node adds).
    pub fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_bytes(bytes)
    }

    fn write_bytes(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut s = self.lock();
        s.seen += bytes.len() as u64;
        let room = s.cap.saturating_sub(s.written);
        let keep = (bytes.len() as u64).min(room) as usize;
        if keep > 0 {
            s.file.write_all(&bytes[..keep])?;
            s.written += keep as u64;
        }
        Ok(())
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(wasmtime::format_err!(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.lock()
            .file
            .flush()
            .map_err(|e| StreamError::LastOperationFailed(wasmtime::format_err!(e)))
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.write_bytes(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.lock().file.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
