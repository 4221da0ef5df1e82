//! Uploads to an S3-compatible object store, for the `s3` publisher (R-VOL-2).
//!
//! Just enough of S3 to publish a result tree: path-style `PUT` of each file
//! (streamed from disk, `UNSIGNED-PAYLOAD`), signed with AWS Signature
//! Version 4. The endpoint and credentials are the node operator's
//! configuration; a job names only the bucket and key prefix, so it cannot
//! point the node's credentials at a server of its choosing.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The node's S3 settings.
#[derive(Clone)]
pub struct S3Config {
    /// Base URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
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

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    #[error("S3 endpoint `{0}` is not an http(s) URL")]
    Endpoint(String),
    #[error("`{0}` is not a valid S3 bucket name (3-63 of a-z, 0-9, `.`, `-`)")]
    Bucket(String),
    #[error(
        "the job names S3 endpoint `{job}`, but this node publishes only to its configured \
         endpoint `{node}`: leave the endpoint out of the job"
    )]
    EndpointNotAllowed { job: String, node: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} has a name that is not UTF-8")]
    Name { path: PathBuf },
    #[error("s3://{bucket}/{key}: {reason}")]
    Object {
        bucket: String,
        key: String,
        reason: String,
    },
}

/// A client for one S3-compatible endpoint.
#[derive(Debug, Clone)]
pub struct S3Client {
    http: reqwest::Client,
    endpoint: url::Url,
    config: S3Config,
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
        Ok(S3Client {
            http,
            endpoint,
            config,
        })
    }

    /// Refuses a job's endpoint unless it is the node's own.
    pub fn check_job_endpoint(&self, job: Option<&str>) -> Result<(), S3Error> {
        match job {
            Some(e) if e.trim_end_matches('/') != self.config.endpoint.trim_end_matches('/') => {
                Err(S3Error::EndpointNotAllowed {
                    job: e.to_string(),
                    node: self.config.endpoint.clone(),
                })
            }
            _ => Ok(()),
        }
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
        check_bucket(bucket)?;
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
        check_bucket(bucket)?;
        let (url, host) = self.object_url(bucket, key);
        let amz_date = amz_date(SystemTime::now());
        let empty = hex(&Sha256::digest(b""));
        let auth = self.sign(&SignInput {
            method: "GET",
            host: &host,
            path: url.path(),
            query: "",
            headers: &[("x-amz-content-sha256", &empty), ("x-amz-date", &amz_date)],
            payload_hash: &empty,
            amz_date: &amz_date,
        });
        let err = |reason: String| S3Error::Object {
            bucket: bucket.into(),
            key: key.into(),
            reason,
        };
        let response = self
            .http
            .get(url)
            .header("x-amz-content-sha256", &empty)
            .header("x-amz-date", &amz_date)
            .header(reqwest::header::AUTHORIZATION, auth)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !response.status().is_success() {
            return Err(err(format!("GET: HTTP {}", response.status())));
        }
        let bytes = response.bytes().await.map_err(|e| err(e.to_string()))?;
        Ok(bytes.to_vec())
    }

    /// Path-style URL of an object, and the `host` header value it is signed with.
    fn object_url(&self, bucket: &str, key: &str) -> (url::Url, String) {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        let object_path = format!(
            "{base}/{}/{}",
            uri_encode(bucket, true),
            uri_encode(key, false)
        );
        url.set_path(&object_path);
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        (url, host)
    }

    /// Streams one file to `s3://bucket/key`, retrying server errors.
    pub async fn put_file(&self, bucket: &str, key: &str, path: &Path) -> Result<(), S3Error> {
        check_bucket(bucket)?;
        let put_err = |reason: String| S3Error::Object {
            bucket: bucket.into(),
            key: key.into(),
            reason,
        };
        let read_err = |source| S3Error::Read {
            path: path.to_owned(),
            source,
        };
        let (url, host) = self.object_url(bucket, key);
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=3 {
            let file = tokio::fs::File::open(path).await.map_err(read_err)?;
            let len = file.metadata().await.map_err(read_err)?.len();
            let amz_date = amz_date(SystemTime::now());
            let auth = self.sign(&SignInput {
                method: "PUT",
                host: &host,
                path: url.path(),
                query: "",
                headers: &[
                    ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                    ("x-amz-date", &amz_date),
                ],
                payload_hash: "UNSIGNED-PAYLOAD",
                amz_date: &amz_date,
            });
            let sent = self
                .http
                .put(url.clone())
                .header(reqwest::header::CONTENT_LENGTH, len)
                .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                .header("x-amz-date", &amz_date)
                .header(reqwest::header::AUTHORIZATION, auth)
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

    fn sign(&self, input: &SignInput<'_>) -> String {
        sign_v4(
            &self.config.access_key_id,
            &self.config.secret_access_key,
            &self.config.region,
            input,
        )
    }
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

fn check_bucket(bucket: &str) -> Result<(), S3Error> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(S3Error::Bucket(bucket.into()))
    }
}

/// What a Signature Version 4 covers.
struct SignInput<'a> {
    method: &'a str,
    host: &'a str,
    /// Already URI-encoded.
    path: &'a str,
    /// Canonical query string (empty for none).
    query: &'a str,
    /// Headers to sign besides `host`, lower-case names.
    headers: &'a [(&'a str, &'a str)],
    payload_hash: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    amz_date: &'a str,
}

/// The `Authorization` header value of AWS Signature Version 4 for S3.
fn sign_v4(access_key: &str, secret: &str, region: &str, input: &SignInput<'_>) -> String {
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.push(("host".into(), input.host.to_string()));
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        input.method, input.path, input.query, input.payload_hash
    );
    let date = &input.amz_date[..8];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        input.amz_date,
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, \
         Signature={signature}"
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// S3's URI encoding: everything but unreserved characters (and `/` in keys).
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn amz_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of AWS's Signature Version 4 documentation for S3
    // ("GET Object"): pins the canonical request and key derivation.
    #[test]
    fn aws_documented_signature() {
        let auth = sign_v4(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            &SignInput {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/test.txt",
                query: "",
                headers: &[
                    ("range", "bytes=0-9"),
                    (
                        "x-amz-content-sha256",
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    ),
                    ("x-amz-date", "20130524T000000Z"),
                ],
                payload_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                amz_date: "20130524T000000Z",
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_369_353_600 + 3661);
        assert_eq!(amz_date(t), "20130524T010101Z");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800);
        assert_eq!(amz_date(leap), "20240229T000000Z");
    }

    #[test]
    fn encoding_and_buckets() {
        assert_eq!(uri_encode("a b/ü~", false), "a%20b/%C3%BC~");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert!(check_bucket("my-bucket.1").is_ok());
        for bad in ["ab", "UPPER", "-x-y", "a_b", "../x"] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
    }
}
