//! Content between the user's files and a node, through its API (R-SEC-1).
//!
//! The node cannot tell which local user calls it, so it never opens a path
//! a request names: `add` reads the user's files here, as the user who runs
//! `skrei`, and streams them to the node blob by blob; `get` and `job get`
//! read blobs from the node and write them here, with the user's umask.
//! The walks and their rules (names, links, budgets, no half-written tree)
//! are storage's own, [`storage::import`] and [`storage::export`]; this
//! module only moves the bytes.

use std::path::Path;

use api::content::ContentAnswer;
use api::error::ErrorBody;
use cid::Cid;
use futures::StreamExt;
use storage::cid::{self as cids, Content};
use storage::manifest::{MAX_MANIFEST_BYTES, Manifest};
use storage::store::{AddError, ExportError, StoreError};
use tokio::io::AsyncWriteExt;

/// A node's API as a [`storage::import::Sink`] and [`storage::export::Source`].
pub struct ApiContent<'a> {
    pub base: &'a str,
    pub http: &'a reqwest::Client,
    pub token: Option<&'a str>,
}

impl ApiContent<'_> {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a non-success answer becomes its `error` text.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach the node at {}: {e}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        Err(ErrorBody::message_of(&body).unwrap_or_else(|| format!("the node answered {status}")))
    }

    /// The CID of an answer about content ([`ContentAnswer`]).
    async fn cid_answer(&self, request: reqwest::RequestBuilder) -> Result<Cid, String> {
        let response = self.send(request).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the node's answer: {e}"))?;
        let answer: ContentAnswer = serde_json::from_slice(&body)
            .map_err(|e| format!("the node's answer is not a CID ({e}): {}", excerpt(&body)))?;
        Ok(answer.cid)
    }

    /// `GET /api/v1/blobs/{cid}`, checked to be a success.
    async fn blob(
        &self,
        content: Content,
        method: reqwest::Method,
    ) -> Result<reqwest::Response, StoreError> {
        let cid = content.cid();
        let request = self.request(method, &format!("/api/v1/blobs/{cid}"));
        let response = request.send().await.map_err(|e| StoreError::Store {
            cid,
            reason: format!("cannot reach the node at {}: {e}", self.base),
        })?;
        match response.status() {
            s if s.is_success() => Ok(response),
            reqwest::StatusCode::NOT_FOUND => Err(StoreError::Missing { cid }),
            s => Err(StoreError::Store {
                cid,
                reason: format!("the node answered {s}"),
            }),
        }
    }

    /// Says in the DHT that the node has `cid`.
    pub async fn provide(&self, cid: &Cid) -> Result<(), String> {
        let body = api::requests::Provide {
            cid: cid.to_string(),
        };
        let body = serde_json::to_string(&body).map_err(|e| e.to_string())?;
        let request = self
            .request(reqwest::Method::POST, "/api/v1/provide")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request).await.map(drop)
    }
}

/// The start of an answer's body, for an error message.
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

fn length(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

impl storage::import::Sink for ApiContent<'_> {
    async fn add_file(&self, path: &Path, size: u64) -> Result<Cid, AddError> {
        let store_err = |reason: String| AddError::Store {
            path: path.to_owned(),
            reason,
        };
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| AddError::Read {
                path: path.to_owned(),
                source,
            })?;
        let request = self
            .request(reqwest::Method::POST, "/api/v1/blobs")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::from(file));
        self.cid_answer(request).await.map_err(store_err)
    }

    async fn add_manifest(&self, manifest: &Manifest, path: &Path) -> Result<Cid, AddError> {
        let bytes = manifest.encode();
        let expected = cids::dir_cid(*blake3::hash(&bytes).as_bytes());
        let request = self
            .request(reqwest::Method::POST, "/api/v1/manifests")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/vnd.skrei.manifest+cbor",
            )
            .body(bytes);
        let cid = self
            .cid_answer(request)
            .await
            .map_err(|reason| AddError::Store {
                path: path.to_owned(),
                reason,
            })?;
        if cid != expected {
            return Err(AddError::Store {
                path: path.to_owned(),
                reason: format!("the node stored the folder as {cid}, not {expected}"),
            });
        }
        Ok(cid)
    }
}

impl storage::export::Source for ApiContent<'_> {
    async fn manifest(&self, content: Content) -> Result<Manifest, StoreError> {
        let cid = content.cid();
        let response = self.blob(content, reqwest::Method::GET).await?;
        let too_large = |size: u64| StoreError::Manifest {
            cid,
            source: storage::manifest::ManifestError::TooLarge(size as usize),
        };
        if let Some(size) = length(&response).filter(|s| *s > MAX_MANIFEST_BYTES as u64) {
            return Err(too_large(size));
        }
        let bytes = response.bytes().await.map_err(|e| StoreError::Store {
            cid,
            reason: format!("reading the manifest: {e}"),
        })?;
        if *blake3::hash(&bytes).as_bytes() != content.hash {
            return Err(StoreError::Store {
                cid,
                reason: "the node sent other bytes than the CID names".into(),
            });
        }
        Manifest::decode(&bytes).map_err(|source| StoreError::Manifest { cid, source })
    }

    async fn file_size(&self, content: Content) -> Result<u64, StoreError> {
        let response = self.blob(content, reqwest::Method::HEAD).await?;
        length(&response).ok_or_else(|| StoreError::Store {
            cid: content.cid(),
            reason: "the node gave no size".into(),
        })
    }

    async fn write_file(
        &self,
        content: Content,
        target: &Path,
        executable: bool,
    ) -> Result<u64, ExportError> {
        let cid = content.cid();
        let io_err = |source| ExportError::Io {
            cid,
            target: target.to_owned(),
            source,
        };
        let response = self.blob(content, reqwest::Method::GET).await?;
        let expected = length(&response);
        let mut file = storage::export::create_file(target, executable)
            .await
            .map_err(io_err)?;
        let mut written: u64 = 0;
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| io_err(std::io::Error::other(e)))?;
            written += chunk.len() as u64;
            if expected.is_some_and(|n| written > n) {
                break;
            }
            file.write_all(&chunk).await.map_err(io_err)?;
        }
        file.flush().await.map_err(io_err)?;
        if expected != Some(written) {
            return Err(StoreError::Store {
                cid,
                reason: format!(
                    "the node sent {written} bytes of {}",
                    expected.map_or("an unknown size".to_string(), |n| n.to_string())
                ),
            }
            .into());
        }
        Ok(written)
    }
}
