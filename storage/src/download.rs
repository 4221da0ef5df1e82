//! HTTP(S) downloads of URL inputs (R-VOL-1).
//!
//! A download is bounded in every way a hostile or broken server could
//! stretch it: a size limit (checked against `Content-Length` and again
//! while streaming), connect and read timeouts, a bounded number of
//! redirects, and retries with exponential backoff only where trying again
//! can help (connection failures, `5xx`, `429`, a body cut short). A `404`
//! is final at once. The proxy settings of the node's environment are
//! ignored: the node, not the job, downloads inputs. Unless the operator
//! allows it, only public addresses are contacted ([`crate::address`]).
//!
//! The file is named from a sanitised `Content-Disposition` or the URL's last
//! path segment, written inside the given directory only, and hashed while
//! it streams: the returned CID records exactly what the job saw.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cid::Cid;
use futures::StreamExt;
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::address::{Blocked, GuardedResolver, check_literal};
use crate::cid as cids;
use crate::manifest::MAX_NAME_BYTES;

/// Limits of URL downloads; a node setting.
#[derive(Debug, Clone)]
pub struct DownloadConfig {
    /// Largest body accepted, after decompression.
    pub max_bytes: u64,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// Attempts after the first, on transient failures only.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    pub max_redirects: usize,
    /// PEM certificates trusted besides the built-in web roots (a private
    /// CA of the operator's, or a test server's).
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Also download from loopback, private, link-local and other special
    /// addresses. Off by default: see [`crate::address`].
    pub allow_private: bool,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            max_bytes: 10 * 1024 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_redirects: 5,
            extra_roots_pem: Vec::new(),
            allow_private: false,
        }
    }
}

/// A file downloaded into a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the file is, inside the directory given.
    pub path: PathBuf,
    /// Its size in bytes (after any `Content-Encoding` was undone).
    pub size: u64,
    /// The CID of its bytes (raw, BLAKE3).
    pub cid: Cid,
    /// HTTP requests made, retries included.
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    #[error("`{url}` is not an http(s) URL")]
    Url { url: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("{url}: {blocked}")]
    Blocked { url: String, blocked: Blocked },
    #[error("{url}: HTTP {status} (not retried)")]
    Status { url: String, status: u16 },
    #[error("{url}: gave up after {attempts} attempts; last: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("{url}: {reason}")]
    Request { url: String, reason: String },
    #[error("{url}: the body is larger than the {limit}-byte limit for URL inputs")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: cannot write {path}: {source}")]
    Write {
        url: String,
        path: PathBuf,
        source: io::Error,
    },
}

/// Downloads URLs with one connection pool and the node's limits.
#[derive(Debug, Clone)]
pub struct Downloader {
    client: reqwest::Client,
    config: DownloadConfig,
}

/// Why one attempt failed, and whether another could succeed.
enum Attempt {
    Transient(String),
    Final(DownloadError),
}

impl Downloader {
    pub fn new(config: DownloadConfig) -> Result<Self, DownloadError> {
        let mut builder = reqwest::Client::builder();
        for pem in &config.extra_roots_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| DownloadError::Client(format!("extra root certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let guard = !config.allow_private;
        if guard {
            builder = builder.dns_resolver(GuardedResolver::shared());
        }
        let max_redirects = config.max_redirects;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` starts with the first URL, which is no redirect.
            if attempt.previous().len() > max_redirects {
                let e = format!("more than {max_redirects} redirects");
                return attempt.error(e);
            }
            // IP literals bypass the resolver: check them on every hop.
            if guard && let Err(blocked) = check_literal(attempt.url()) {
                return attempt.error(blocked);
            }
            attempt.follow()
        });
        let client = builder
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .redirect(redirects)
            .gzip(true)
            .user_agent(concat!("skrei/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DownloadError::Client(e.to_string()))?;
        Ok(Downloader { client, config })
    }

    /// Downloads `url` into the existing directory `dir`.
    pub async fn download(&self, url: &str, dir: &Path) -> Result<Downloaded, DownloadError> {
        let parsed = url::Url::parse(url).map_err(|_| DownloadError::Url { url: url.into() })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DownloadError::Url { url: url.into() });
        }
        if !self.config.allow_private
            && let Err(blocked) = check_literal(&parsed)
        {
            return Err(DownloadError::Blocked {
                url: url.into(),
                blocked,
            });
        }
        let mut attempts = 0;
        let mut delay = self.config.backoff;
        loop {
            attempts += 1;
            match self.attempt(&parsed, dir).await {
                Ok((path, size, hash)) => {
                    return Ok(Downloaded {
                        path,
                        size,
                        cid: cids::file_cid(hash),
                        attempts,
                    });
                }
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Transient(last)) => {
                    if attempts > self.config.retries {
                        return Err(DownloadError::Exhausted {
                            url: url.into(),
                            attempts,
                            last,
                        });
                    }
                    tracing::debug!(url, attempts, %last, "retrying download");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
            }
        }
    }

    async fn attempt(
        &self,
        url: &url::Url,
        dir: &Path,
    ) -> Result<(PathBuf, u64, [u8; 32]), Attempt> {
        let url_s = url.to_string();
        let limit = self.config.max_bytes;
        let response = match self.client.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) if find_blocked(&e).is_some() => {
                return Err(Attempt::Final(DownloadError::Blocked {
                    url: url_s,
                    blocked: find_blocked(&e).expect("just found"),
                }));
            }
            Err(e) if e.is_connect() && !is_tls_failure(&e) => {
                return Err(Attempt::Transient(error_chain(&e)));
            }
            Err(e) => {
                return Err(Attempt::Final(DownloadError::Request {
                    url: url_s,
                    reason: error_chain(&e),
                }));
            }
        };
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Attempt::Transient(format!("HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(Attempt::Final(DownloadError::Status {
                url: url_s,
                status: status.as_u16(),
            }));
        }
        let too_large = || {
            Attempt::Final(DownloadError::TooLarge {
                url: url.to_string(),
                limit,
            })
        };
        // With gzip the length is the compressed size, and reqwest hides it.
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let name = response
            .headers()
            .get(reqwest::header::CONTENT_DISPOSITION)
            .and_then(|v| disposition_file_name(v.as_bytes()))
            .or_else(|| url_file_name(response.url()))
            .or_else(|| url_file_name(url))
            .unwrap_or_else(|| "download".to_string());
        let path = dir.join(&name);
        let write_err = |source| {
            Attempt::Final(DownloadError::Write {
                url: url.to_string(),
                path: path.clone(),
                source,
            })
        };
        // Written under a temporary name, renamed once complete: a failed
        // attempt never leaves a half file under the real name.
        // Unique per attempt: URL inputs sharing a directory download at once.
        static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
        let n = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        let partial = dir.join(format!(".skrei-{}-{n}.partial", std::process::id()));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .await
            .map_err(write_err)?;
        let mut hasher = blake3::Hasher::new();
        let mut size: u64 = 0;
        let mut body = response.bytes_stream();
        let streamed = async {
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) if e.is_timeout() => {
                        return Err(Attempt::Final(DownloadError::Request {
                            url: url.to_string(),
                            reason: format!("timed out reading the body: {}", error_chain(&e)),
                        }));
                    }
                    Err(e) => return Err(Attempt::Transient(error_chain(&e))),
                };
                size += chunk.len() as u64;
                if size > limit {
                    return Err(too_large());
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(write_err)?;
            }
            file.flush().await.map_err(write_err)?;
            file.sync_all().await.map_err(write_err)?;
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        // A hard link never replaces an existing file, unlike a rename:
        // two inputs that pick the same name cannot overwrite each other.
        let linked = tokio::fs::hard_link(&partial, &path).await;
        let _ = tokio::fs::remove_file(&partial).await;
        linked.map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                write_err(io::Error::new(
                    e.kind(),
                    "another input already wrote a file of this name",
                ))
            } else {
                write_err(e)
            }
        })?;
        Ok((path, size, hasher.finalize().into()))
    }
}

/// The address guard's verdict somewhere in `e`'s sources, if any.
fn find_blocked(e: &(dyn std::error::Error + 'static)) -> Option<Blocked> {
    let mut source = Some(e);
    while let Some(cause) = source {
        if let Some(b) = cause.downcast_ref::<Blocked>() {
            return Some(b.clone());
        }
        source = cause.source();
    }
    None
}

/// A TLS handshake that failed on the certificate or protocol: trying
/// again meets the same certificate. rustls reports these to the connector
/// as `InvalidData` I/O errors, which the connector wraps in another I/O
/// error (and `io::Error::source` skips the wrapped error: use `get_ref`).
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::InvalidData {
                return true;
            }
            if let Some(inner) = io.get_ref() {
                source = Some(inner);
                continue;
            }
        }
        source = cause.source();
    }
    false
}

/// `e` with its sources: reqwest's top-level message rarely says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The file name a `Content-Disposition` header suggests, made safe: the
/// last path component only, no control characters, never `.` or `..`.
pub fn disposition_file_name(header: &[u8]) -> Option<String> {
    let header = String::from_utf8_lossy(header);
    let mut plain = None;
    let mut extended = None;
    for param in header.split(';').skip(1) {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            // RFC 5987: charset'language'percent-encoded
            "filename*" => {
                let encoded = value.splitn(3, '\'').nth(2).unwrap_or(value);
                extended = Some(percent_decode(encoded));
            }
            "filename" => {
                let v = value.strip_prefix('"').unwrap_or(value);
                let v = v.strip_suffix('"').unwrap_or(v);
                plain = Some(v.replace("\\\"", "\""));
            }
            _ => {}
        }
    }
    extended
        .and_then(|n| sanitise_file_name(&n))
        .or_else(|| plain.and_then(|n| sanitise_file_name(&n)))
}

/// The URL's last non-empty path segment, decoded and made safe.
pub fn url_file_name(url: &url::Url) -> Option<String> {
    let segment = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    sanitise_file_name(&percent_decode(segment))
}

/// Reduces a name from the network to one safe path component, or `None`.
pub fn sanitise_file_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean_trimmed = clean.trim();
    if clean_trimmed.is_empty() || clean_trimmed == "." || clean_trimmed == ".." {
        return None;
    }
    clean = clean_trimmed.to_string();
    if clean.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    Some(clean)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    // R-VOL-1: names from the network never leave the input's directory.
    #[test]
    fn hostile_dispositions() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"attachment; filename=\"../../etc/passwd\"", Some("passwd")),
            (b"attachment; filename=/etc/shadow", Some("shadow")),
            (b"attachment; filename=\"..\"", None),
            (b"attachment; filename=\"a\0b\"", Some("ab")),
            (
                b"attachment; filename=\"C:\\\\win\\\\x.exe\"",
                Some("x.exe"),
            ),
            (
                b"attachment; filename*=UTF-8''%2e%2e%2Fetc%2Fpasswd",
                Some("passwd"),
            ),
            (
                b"attachment; filename*=UTF-8''caf%C3%A9.txt; filename=x",
                Some("café.txt"),
            ),
            (b"attachment; filename*=UTF-8''a%00b", Some("ab")),
            (b"inline", None),
            (b"attachment; filename=\"report.csv\"", Some("report.csv")),
        ];
        for (header, want) in cases {
            assert_eq!(
                disposition_file_name(header).as_deref(),
                *want,
                "{}",
                String::from_utf8_lossy(header)
            );
        }
    }

    proptest::proptest! {
        // Whatever a server sends, the name is one plain path component.
        #[test]
        fn sanitised_names_are_safe(header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut h = b"attachment; filename=".to_vec();
            h.extend_from_slice(&header);
            if let Some(name) = disposition_file_name(&h) {
                proptest::prop_assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES);
                proptest::prop_assert!(!name.contains(['/', '\\', '\0']));
                proptest::prop_assert!(name != "." && name != "..");
                proptest::prop_assert!(crate::manifest::check_name(&name).is_ok());
            }
        }
    }

    #[test]
    fn names_from_urls() {
        let name = |u: &str| url_file_name(&url::Url::parse(u).unwrap());
        assert_eq!(name("http://h/a/b.txt").as_deref(), Some("b.txt"));
        assert_eq!(name("http://h/a/dir/").as_deref(), Some("dir"));
        assert_eq!(name("http://h/").as_deref(), None);
        assert_eq!(name("http://h/x/%2e%2e").as_deref(), None);
        assert_eq!(name("http://h/x/a%2Fb").as_deref(), Some("b"));
        assert_eq!(name("http://h/caf%C3%A9").as_deref(), Some("café"));
    }
}
