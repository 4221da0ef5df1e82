//! The node's S3-compatible object store: uploads for the `s3` publisher
//! (R-VOL-2) and downloads for S3 inputs (issue 17).
//!
//! Requests are presigned by `rusty-s3` (AWS Signature Version 4 in the
//! query string, path-style URLs) and sent with reqwest, file bodies
//! streamed from and to disk. The endpoint, region and credentials are the
//! node operator's ([`S3Config::from_aws_environment`]); a job names only a
//! bucket and a key, so it cannot point the node's credentials at a server
//! of its choosing.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use tokio::io::AsyncWriteExt;

/// How long a signed request stays valid: enough for a slow upload to
/// start, short enough that a leaked URL is soon useless.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// Most objects one prefix input may list before it is refused.
pub const MAX_LISTED_OBJECTS: usize = 10_000;

/// The node's S3 settings.
#[derive(Clone)]
pub struct S3Config {
    /// Base URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// For temporary credentials (`AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// Settings with the operator's credentials, found where AWS's own
    /// tools look: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`), else the profile `AWS_PROFILE` (or `default`)
    /// of the credentials file (`AWS_SHARED_CREDENTIALS_FILE`, or
    /// `~/.aws/credentials`). Never from a job.
    pub fn from_aws_environment(endpoint: &str, region: &str) -> Result<S3Config, S3Error> {
        Self::from_variables(endpoint, region, |name| std::env::var(name).ok())
    }

    /// [`S3Config::from_aws_environment`] with the variables `lookup` gives.
    pub fn from_variables(
        endpoint: &str,
        region: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Config, S3Error> {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let config = |key: String, secret: String, token: Option<String>| S3Config {
            endpoint: endpoint.to_owned(),
            region: region.to_owned(),
            access_key_id: key,
            secret_access_key: secret,
            session_token: token,
        };
        if let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        {
            return Ok(config(key, secret, var("AWS_SESSION_TOKEN")));
        }
        let file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let missing = |file: &str| S3Error::NoCredentials {
            profile: profile.clone(),
            file: file.to_owned(),
        };
        let Some(file) = file else {
            return Err(missing("~/.aws/credentials"));
        };
        let shown = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing(&shown)),
            Err(e) => {
                return Err(S3Error::CredentialsFile {
                    file: shown,
                    reason: e.to_string(),
                });
            }
        };
        // Profile names and keys are case-sensitive, as in AWS's tools.
        let mut ini = configparser::ini::Ini::new_cs();
        ini.read(text).map_err(|reason| S3Error::CredentialsFile {
            file: shown.clone(),
            reason,
        })?;
        let get = |name: &str| ini.get(&profile, name).filter(|v| !v.is_empty());
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(key), Some(secret)) => Ok(config(key, secret, get("aws_session_token"))),
            _ => Err(missing(&shown)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    #[error("S3 endpoint `{0}` is not an http(s) URL")]
    Endpoint(String),
    #[error("{0}")]
    Bucket(String),
    #[error("object key `{0}` cannot be used: it is empty or has `.` or `..` between its slashes")]
    Key(String),
    #[error(
        "the job names S3 endpoint `{job}`, but this node uses only its configured endpoint \
         `{node}`: leave the endpoint out of the job"
    )]
    EndpointNotAllowed { job: String, node: String },
    #[error("the job names S3 region {job}, and this node's S3 is in {node}")]
    RegionNotServed { job: String, node: String },
    #[error(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile \
         [{profile}] aws_access_key_id and aws_secret_access_key in {file}"
    )]
    NoCredentials { profile: String, file: String },
    #[error("cannot read the AWS credentials file {file}: {reason}")]
    CredentialsFile { file: String, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} has a name that is not UTF-8")]
    Name { path: PathBuf },
    #[error("s3://{bucket}/{key}: {reason}")]
    Object {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("s3://{bucket}/{key} is larger than the {max} bytes left for this input")]
    TooLarge {
        bucket: String,
        key: String,
        max: u64,
    },
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// A client for one S3-compatible endpoint.
#[derive(Debug, Clone)]
pub struct S3Client {
    http: reqwest::Client,
    endpoint: url::Url,
    config: S3Config,
    credentials: Credentials,
}

impl S3Client {
    pub fn new(config: S3Config) -> Result<Self, S3Error> {
        let endpoint = url::Url::parse(&config.endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| S3Error::Endpoint(config.endpoint.clone()))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| S3Error::Client(e.to_string()))?;
        let credentials = match &config.session_token {
            Some(token) => Credentials::new_with_token(
                config.access_key_id.clone(),
                config.secret_access_key.clone(),
                token.clone(),
            ),
            None => Credentials::new(
                config.access_key_id.clone(),
                config.secret_access_key.clone(),
            ),
        };
        Ok(S3Client {
            http,
            endpoint,
            config,
            credentials,
        })
    }

    /// The endpoint as the operator gave it.
    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// Refuses a job's endpoint or region unless it is the node's own
    /// (the rule of `protocol::compute::S3Offer`, checked at bid time too).
    pub fn check_job(&self, endpoint: Option<&str>, region: Option<&str>) -> Result<(), S3Error> {
        let offer = protocol::compute::S3Offer {
            endpoint: self.config.endpoint.clone(),
            region: self.config.region.clone(),
        };
        match offer.mismatch(endpoint, region) {
            None => Ok(()),
            Some(protocol::compute::S3Mismatch::Endpoint) => Err(S3Error::EndpointNotAllowed {
                job: endpoint.unwrap_or_default().to_owned(),
                node: self.config.endpoint.clone(),
            }),
            Some(protocol::compute::S3Mismatch::Region) => Err(S3Error::RegionNotServed {
                job: region.unwrap_or_default().to_owned(),
                node: self.config.region.clone(),
            }),
        }
    }

    fn bucket(&self, name: &str) -> Result<Bucket, S3Error> {
        protocol::job::rules::check_bucket(name).map_err(S3Error::Bucket)?;
        Bucket::new(
            self.endpoint.clone(),
            UrlStyle::Path,
            name.to_owned(),
            self.config.region.clone(),
        )
        .map_err(|e| S3Error::Bucket(format!("{name}: {e}")))
    }

    /// Uploads every file under `dir` to `bucket` at `prefix` + its relative
    /// path (`/`-separated); returns the keys written, sorted. S3 has no
    /// directories: empty ones are not represented.
    pub async fn upload_tree(
        &self,
        bucket: &str,
        prefix: &str,
        dir: &Path,
    ) -> Result<Vec<String>, S3Error> {
        self.bucket(bucket)?;
        let mut files = Vec::new();
        collect_files(dir, String::new(), &mut files).await?;
        files.sort();
        let mut keys = Vec::with_capacity(files.len());
        for (rel, path) in files {
            let key = format!("{prefix}{rel}");
            self.put_file(bucket, &key, &path).await?;
            keys.push(key);
        }
        Ok(keys)
    }

    /// Reads a whole object into memory (for small objects: checks, tests).
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, S3Error> {
        let response = self.get(bucket, key).await?;
        let bytes = response.bytes().await.map_err(|e| S3Error::Object {
            bucket: bucket.into(),
            key: key.into(),
            reason: e.to_string(),
        })?;
        Ok(bytes.to_vec())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<reqwest::Response, S3Error> {
        check_key(key)?;
        let b = self.bucket(bucket)?;
        let url = b.get_object(Some(&self.credentials), key).sign(SIGNED_FOR);
        let err = |reason: String| S3Error::Object {
            bucket: bucket.into(),
            key: key.into(),
            reason,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !response.status().is_success() {
            return Err(err(format!("GET: HTTP {}", response.status())));
        }
        Ok(response)
    }

    /// Streams one object into a new file at `dest`, refusing it past
    /// `max` bytes (the file is then removed). Returns the bytes written.
    pub async fn download(
        &self,
        bucket: &str,
        key: &str,
        dest: &Path,
        max: u64,
    ) -> Result<u64, S3Error> {
        let response = self.get(bucket, key).await?;
        let too_large = || S3Error::TooLarge {
            bucket: bucket.into(),
            key: key.into(),
            max,
        };
        if response.content_length().is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let write_err = |source| S3Error::Write {
            path: dest.to_owned(),
            source,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .await
            .map_err(write_err)?;
        let mut written = 0u64;
        let mut body = response.bytes_stream();
        let copied = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| S3Error::Object {
                    bucket: bucket.into(),
                    key: key.into(),
                    reason: e.to_string(),
                })?;
                written += chunk.len() as u64;
                if written > max {
                    return Err(too_large());
                }
                file.write_all(&chunk).await.map_err(write_err)?;
            }
            file.flush().await.map_err(write_err)
        }
        .await;
        if let Err(e) = copied {
            drop(file);
            let _ = tokio::fs::remove_file(dest).await;
            return Err(e);
        }
        Ok(written)
    }

    /// The objects under `prefix`, in key order, at most `max_objects` of
    /// them (more is an error: the input is too broad to fetch).
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        max_objects: usize,
    ) -> Result<Vec<Listed>, S3Error> {
        let b = self.bucket(bucket)?;
        let err = |reason: String| S3Error::Object {
            bucket: bucket.into(),
            key: prefix.into(),
            reason,
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&b, Some(&self.credentials));
            if !prefix.is_empty() {
                action.with_prefix(prefix);
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let response = self
                .http
                .get(action.sign(SIGNED_FOR))
                .send()
                .await
                .map_err(|e| err(e.to_string()))?;
            if !response.status().is_success() {
                return Err(err(format!("listing: HTTP {}", response.status())));
            }
            let text = response.text().await.map_err(|e| err(e.to_string()))?;
            let page = ListObjectsV2::parse_response(&text)
                .map_err(|e| err(format!("listing: unreadable answer ({e})")))?;
            for object in page.contents {
                out.push(Listed {
                    key: object.key,
                    size: object.size.unwrap_or(0),
                });
            }
            if out.len() > max_objects {
                return Err(err(format!(
                    "more than {max_objects} objects: name a narrower prefix"
                )));
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Streams one file to `s3://bucket/key`, retrying server errors.
    pub async fn put_file(&self, bucket: &str, key: &str, path: &Path) -> Result<(), S3Error> {
        check_key(key)?;
        let b = self.bucket(bucket)?;
        let put_err = |reason: String| S3Error::Object {
            bucket: bucket.into(),
            key: key.into(),
            reason,
        };
        let read_err = |source| S3Error::Read {
            path: path.to_owned(),
            source,
        };
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=3 {
            let file = tokio::fs::File::open(path).await.map_err(read_err)?;
            let len = file.metadata().await.map_err(read_err)?.len();
            let url = b.put_object(Some(&self.credentials), key).sign(SIGNED_FOR);
            let sent = self
                .http
                .put(url)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(reqwest::Body::from(file))
                .send()
                .await;
            let transient = match sent {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_server_error() => format!("HTTP {}", r.status()),
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    let body: String = body.chars().take(300).collect();
                    return Err(put_err(format!("HTTP {status}: {body}")));
                }
                Err(e) if e.is_connect() => e.to_string(),
                Err(e) => return Err(put_err(e.to_string())),
            };
            if attempt == 3 {
                return Err(put_err(format!(
                    "gave up after {attempt} attempts: {transient}"
                )));
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        unreachable!("the loop returns on its last attempt")
    }
}

/// A key a URL can name as it is: not empty, no `.` or `..` segment (a URL
/// would resolve them, reaching another object or bucket).
fn check_key(key: &str) -> Result<(), S3Error> {
    if key.is_empty() || key.split('/').any(|s| s == "." || s == "..") {
        return Err(S3Error::Key(key.to_owned()));
    }
    Ok(())
}

async fn collect_files(
    dir: &Path,
    prefix: String,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), S3Error> {
    let read_err = |source| S3Error::Read {
        path: dir.to_owned(),
        source,
    };
    let mut entries = tokio::fs::read_dir(dir).await.map_err(read_err)?;
    while let Some(e) = entries.next_entry().await.map_err(read_err)? {
        let path = e.path();
        let name = e
            .file_name()
            .into_string()
            .map_err(|_| S3Error::Name { path: path.clone() })?;
        let ft = e.file_type().await.map_err(read_err)?;
        if ft.is_dir() {
            Box::pin(collect_files(&path, format!("{prefix}{name}/"), out)).await?;
        } else if ft.is_file() {
            out.push((format!("{prefix}{name}"), path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_a_url_would_resolve_are_refused() {
        for bad in ["", "a/../b", "../other-bucket/x", "./x", "a/."] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a/b.csv", "a..b", "dir/", ".hidden"] {
            assert!(check_key(good).is_ok(), "{good:?}");
        }
    }

    // The operator's credentials file, profile by AWS_PROFILE; the
    // variables win over it.
    #[test]
    fn credentials_come_from_the_variables_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKD\naws_secret_access_key = SD\n\n\
             [ci]\naws_access_key_id = AKC\naws_secret_access_key = SC\naws_session_token = T\n",
        )
        .unwrap();
        let file = file.to_str().unwrap().to_owned();
        let with = |vars: &[(&str, &str)]| {
            let mut all = vec![("AWS_SHARED_CREDENTIALS_FILE", file.as_str())];
            all.extend_from_slice(vars);
            let all: Vec<(String, String)> = all
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            S3Config::from_variables("http://127.0.0.1:1", "r", move |n| {
                all.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
            })
        };
        let c = with(&[]).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token), ("AKD", None));
        let c = with(&[("AWS_PROFILE", "ci")]).unwrap();
        assert_eq!(c.access_key_id, "AKC");
        assert_eq!(c.session_token.as_deref(), Some("T"));
        let err = with(&[("AWS_PROFILE", "nope")]).unwrap_err();
        assert!(err.to_string().contains("[nope]"), "{err}");
        let c = with(&[
            ("AWS_PROFILE", "nope"),
            ("AWS_ACCESS_KEY_ID", "AKV"),
            ("AWS_SECRET_ACCESS_KEY", "SV"),
        ])
        .unwrap();
        assert_eq!(c.access_key_id, "AKV");
        let err = S3Config::from_variables("http://127.0.0.1:1", "r", |_| None).unwrap_err();
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    }
}
