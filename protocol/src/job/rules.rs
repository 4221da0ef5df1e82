//! The rules a job's values must follow, each in one place. The file reader
//! (which knows lines and columns) and [`JobSpec::validate`](super::JobSpec::validate)
//! (which checks specs from the wire) both call these. Each returns a message
//! that says what is wrong and what to write instead.

use std::collections::BTreeSet;

use super::{
    Engine, MAX_COUNT, MAX_INLINE_BYTES, Network, NetworkMode, Publisher, Source, Task, Timeouts,
};

/// Longest free-text value (names, labels, meta).
pub const MAX_TEXT: usize = 1024;
/// Most domains a job may list.
pub const MAX_DOMAINS: usize = 256;
/// Longest timeout: 30 days.
pub const MAX_TIMEOUT_SECS: u64 = 30 * 24 * 3600;
/// Folders a task may not mount over: the container runtime owns them.
const RESERVED_PATHS: &[&str] = &["/proc", "/sys", "/dev"];
/// Names the results folder uses for its own files.
const RESERVED_RESULT_NAMES: &[&str] = &["stdout", "stderr", "exitCode", "network.log"];

/// Free text: bounded, no control characters.
pub fn check_text(s: &str) -> Result<(), String> {
    if s.chars().count() > MAX_TEXT {
        return Err(format!("longer than {MAX_TEXT} characters: shorten it"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(format!("contains the control character {c:?}: remove it"));
    }
    Ok(())
}

/// `Count`: 1..=MAX_COUNT.
pub fn check_count(n: i128) -> Result<(), String> {
    if n < 1 || n > i128::from(MAX_COUNT) {
        return Err(format!(
            "{n} is out of range: Count is how many nodes run the task, from 1 to {MAX_COUNT}"
        ));
    }
    Ok(())
}

/// `Tasks`: exactly one.
pub fn check_task_count(n: usize) -> Result<(), String> {
    match n {
        1 => Ok(()),
        0 => Err("a job needs one task: add `Tasks: [{Name: main, Engine: ...}]`".into()),
        n => Err(format!(
            "{n} tasks given; a job runs exactly one task (as in Bacalhau v1): \
             split them into separate jobs"
        )),
    }
}

/// A Docker image reference such as `ubuntu:24.04` or `registry:5000/team/app@sha256:...`.
pub fn check_image(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("the image is empty: name one, e.g. `ubuntu:24.04`".into());
    }
    if image.len() > 512 {
        return Err("the image reference is longer than 512 characters".into());
    }
    if image.starts_with('-') {
        return Err(format!("`{image}` starts with `-`: an image name cannot"));
    }
    if let Some(c) = image
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(format!(
            "`{image}` contains {c:?}: image references are ASCII without spaces"
        ));
    }
    // The repository path (before any tag or digest) must be lower case.
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let repo_end = without_digest[last_slash..]
        .find(':')
        .map_or(without_digest.len(), |i| last_slash + i);
    let path = &without_digest[..repo_end];
    let path = match path.split_once('/') {
        // A first component with a dot, a colon or `localhost` is a registry host.
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => path,
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "`{image}`: repository names are lower case: write `{}`",
            image.replacen(path, &path.to_ascii_lowercase(), 1)
        ));
    }
    crate::image::ImageRef::parse(image).map(drop)
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        _ => false,
    };
    if ok && name.len() <= 256 {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an environment variable name: use letters, digits and `_`, \
             not starting with a digit"
        ))
    }
}

/// A Docker-style `KEY=value` pair.
pub fn check_env_pair(pair: &str) -> Result<(&str, &str), String> {
    let Some((k, v)) = pair.split_once('=') else {
        return Err(format!("`{pair}` has no `=`: write `NAME=value`"));
    };
    check_env_name(k)?;
    check_env_value(v)?;
    Ok((k, v))
}

/// An environment variable value: anything but NUL.
pub fn check_env_value(v: &str) -> Result<(), String> {
    if v.contains('\0') {
        return Err("contains a NUL character, which environment values cannot hold".into());
    }
    Ok(())
}

/// An absolute path inside the task; returns its normalised form
/// (`//a/./b/` -> `/a/b`). `..` is refused rather than resolved, so that what
/// a user reads is what the node mounts.
pub fn check_absolute_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "`{path}` is not absolute: write a path starting with `/`, e.g. `/inputs/{}`",
            path.trim_start_matches("./")
        ));
    }
    if path.contains('\0') || path.chars().any(char::is_control) {
        return Err(format!("`{path}` contains control characters"));
    }
    if path.len() > 1024 {
        return Err("the path is longer than 1024 characters".into());
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "`{path}` contains `..`: write the absolute path without it"
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("`/` is the task's whole file system: name a folder below it".into());
    }
    let normalised = format!("/{}", parts.join("/"));
    for reserved in RESERVED_PATHS {
        if is_within(&normalised, reserved) {
            return Err(format!(
                "`{normalised}` is inside `{reserved}`, which the runtime owns: choose another folder"
            ));
        }
    }
    Ok(normalised)
}

/// For specs from the wire: the path must already be in normal form.
pub fn require_normalised(path: &str, normalised: &str) -> Result<(), String> {
    if path == normalised {
        Ok(())
    } else {
        Err(format!("`{path}` is not normalised: write `{normalised}`"))
    }
}

/// `a` is `b` or below it, on path-component boundaries.
pub fn is_within(a: &str, b: &str) -> bool {
    a == b || (a.starts_with(b) && a.as_bytes().get(b.len()) == Some(&b'/'))
}

/// An HTTP(S) URL input; returns its normalised form.
pub fn check_url(input: &str) -> Result<String, String> {
    let url = url::Url::parse(input).map_err(|e| {
        format!("`{input}` is not a URL ({e}): write an absolute `https://host/path` URL")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{input}`: only http and https URLs can be downloaded; for content by hash use a CID input"
        ));
    }
    if url.host().is_none() {
        return Err(format!("`{input}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{input}` carries credentials, which every node would see: remove `user:pass@` \
             and publish the data where it needs none"
        ));
    }
    Ok(url.to_string())
}

/// An inline `data:` URL (RFC 2397, base64); returns the decoded bytes.
pub fn check_data_url(input: &str) -> Result<Vec<u8>, String> {
    if !input.starts_with("data:") {
        return Err(format!(
            "inline data must be a `data:` URL, e.g. `data:text/plain;base64,aGVsbG8=` \
             (found `{}`)",
            input.chars().take(40).collect::<String>()
        ));
    }
    let header = input.split_once(',').map(|(h, _)| h).unwrap_or(input);
    if !header.ends_with(";base64") {
        return Err("inline data must be base64-encoded: write `data:<type>;base64,<data>`".into());
    }
    // base64 is 4/3 of the data: refuse long strings before decoding them.
    if input.len() > MAX_INLINE_BYTES / 3 * 4 + 1024 {
        return Err(format!(
            "inline data is larger than {MAX_INLINE_BYTES} bytes: add it with `skrei add` \
             and use its CID instead"
        ));
    }
    let url =
        data_url::DataUrl::process(input).map_err(|e| format!("not a valid data: URL ({e:?})"))?;
    let (bytes, _) = url
        .decode_to_vec()
        .map_err(|_| "the base64 data after `,` does not decode".to_string())?;
    if bytes.len() > MAX_INLINE_BYTES {
        return Err(format!(
            "inline data is larger than {MAX_INLINE_BYTES} bytes: add it with `skrei add` \
             and use its CID instead"
        ));
    }
    Ok(bytes)
}

/// Any input source.
pub fn check_source(source: &Source) -> Result<(), String> {
    match source {
        Source::Cid(c) => check_content_cid(&c.cid),
        Source::Url(u) => {
            let normalised = check_url(&u.url)?;
            require_normalised(&u.url, &normalised)
        }
        Source::Inline(i) => check_data_url(&i.url).map(|_| ()),
        Source::Local(l) => {
            if !l.source_path.starts_with('/') {
                return Err(format!(
                    "`{}` is not absolute: local paths are absolute paths on the compute node",
                    l.source_path
                ));
            }
            if l.source_path.split('/').any(|p| p == "..") {
                return Err(format!("`{}` contains `..`", l.source_path));
            }
            check_text(&l.source_path)
        }
        Source::S3(s) => {
            check_bucket(&s.bucket)?;
            check_s3_key(&s.key)?;
            if let Some(filter) = &s.filter {
                s3_filter(filter)?;
            }
            check_s3_endpoint(s.endpoint.as_deref())
        }
    }
}

/// Longest S3 `Filter` accepted, in bytes: a key filter is short.
pub const MAX_S3_FILTER_BYTES: usize = 1024;

/// An S3 input's `Filter`, compiled: a regular expression matched anywhere
/// in each listed key (linear time; its compiled size is bounded, so a
/// peer's filter cannot make a node spend much).
pub fn s3_filter(filter: &str) -> Result<regex::Regex, String> {
    if filter.len() > MAX_S3_FILTER_BYTES {
        return Err(format!(
            "Filter is longer than {MAX_S3_FILTER_BYTES} bytes: match keys with a shorter \
             expression, or a narrower Key prefix"
        ));
    }
    regex::RegexBuilder::new(filter)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("Filter `{filter}` is not a regular expression: {e}"))
}

/// An S3 bucket name: 3 to 63 of a-z, 0-9, `.` and `-`.
pub fn check_bucket(bucket: &str) -> Result<(), String> {
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c))
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-']);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{bucket}` is not an S3 bucket name: 3 to 63 lower-case letters, digits, `.` or `-`"
        ))
    }
}

/// An S3 key or prefix: no `.` or `..` between slashes, which a URL would
/// resolve into another object or bucket.
fn check_s3_key(key: &str) -> Result<(), String> {
    check_text(key)?;
    if key.split('/').any(|part| part == "." || part == "..") {
        return Err(format!(
            "S3 key `{key}` has `.` or `..` between slashes: name the object by its own key"
        ));
    }
    Ok(())
}

fn check_s3_endpoint(endpoint: Option<&str>) -> Result<(), String> {
    match endpoint {
        Some(e) => check_url(e).map(drop).map_err(|m| format!("Endpoint: {m}")),
        None => Ok(()),
    }
}

/// A CID skrei can fetch: BLAKE3 (32 bytes) of a file (raw) or a folder
/// (dag-cbor), as `skrei add` prints. IPFS's `Qm...` and other sha2-256
/// CIDs are refused here rather than on every node.
pub fn check_content_cid(cid: &cid::Cid) -> Result<(), String> {
    crate::id::content_of(cid)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A WASM export name.
pub fn check_wasm_entrypoint(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(format!(
            "`{name}` is not an export name: write the function to call, usually `_start`"
        ));
    }
    Ok(())
}

/// The name of an output folder in the results.
/// A result name as Bacalhau's files write it (any non-blank text, often
/// a path such as `/outputs`) made into a folder name of its own: path
/// separators and characters other than letters, digits, `.`, `_` and `-`
/// become `_`, `.` and `..` parts go, leading and trailing separators too
/// (`/outputs` -> `outputs`, `/data/out` -> `data_out`). A name already
/// valid is kept as it is; [`check_result_name`] still judges the result.
pub fn result_folder_name(name: &str) -> String {
    if check_result_name(name).is_ok() {
        return name.to_owned();
    }
    let parts: Vec<String> = name
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    let joined = parts.join("_");
    joined
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

pub fn check_result_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && name.len() <= 128;
    if !ok {
        return Err(format!(
            "`{name}` is not a result name: use letters, digits, `.`, `_` and `-`, e.g. `outputs`"
        ));
    }
    if RESERVED_RESULT_NAMES.contains(&name) {
        return Err(format!(
            "`{name}` is a file the results already hold: choose another name"
        ));
    }
    Ok(())
}

/// Where inputs and outputs go must not collide: an input cannot be mounted
/// inside another, and outputs (writable) cannot overlap inputs (read-only).
pub fn check_mounts(task: &Task) -> Result<(), String> {
    let mut problems = Vec::new();
    let targets: Vec<&str> = task
        .input_sources
        .iter()
        .map(|i| i.target.as_str())
        .collect();
    for (i, a) in targets.iter().enumerate() {
        for b in &targets[i + 1..] {
            if is_within(a, b) || is_within(b, a) {
                problems.push(format!(
                    "inputs at `{a}` and `{b}` overlap: give each input its own target, \
                     e.g. `/inputs/a` and `/inputs/b`"
                ));
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, r) in task.result_paths.iter().enumerate() {
        if !names.insert(r.name.as_str()) {
            problems.push(format!("two result paths are named `{}`", r.name));
        }
        for other in &task.result_paths[i + 1..] {
            if is_within(&r.path, &other.path) || is_within(&other.path, &r.path) {
                problems.push(format!(
                    "result paths `{}` and `{}` overlap",
                    r.path, other.path
                ));
            }
        }
        for t in &targets {
            if is_within(&r.path, t) || is_within(t, &r.path) {
                problems.push(format!(
                    "result path `{}` overlaps input `{t}`: inputs are read-only, so write \
                     outputs elsewhere (e.g. `/outputs`)",
                    r.path
                ));
            }
        }
    }
    if let Engine::Docker(p) = &task.engine
        && p.working_directory.as_deref() == Some("")
    {
        problems.push("WorkingDirectory is empty: leave it out or name a folder".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Publisher parameters.
pub fn check_publisher(p: &Publisher) -> Result<(), String> {
    match p {
        Publisher::Local => Ok(()),
        Publisher::Dir(d) => {
            if d.path.starts_with('/') && !d.path.split('/').any(|c| c == "..") {
                check_text(&d.path)
            } else {
                Err(format!(
                    "`{}`: the dir publisher needs an absolute path on the compute node",
                    d.path
                ))
            }
        }
        Publisher::S3(s) => {
            check_bucket(&s.bucket)?;
            check_s3_key(&s.key)?;
            check_s3_endpoint(s.endpoint.as_deref())
        }
    }
}

/// Network mode and domains agree (R-NET-3, R-NET-5).
pub fn check_network(n: &Network) -> Result<(), String> {
    match n.r#type {
        NetworkMode::Http if n.domains.is_empty() => Err(
            "Type HTTP needs the domains the job may reach: add `Domains: [example.com]` \
             (a leading dot, `.example.com`, also covers subdomains)"
                .into(),
        ),
        NetworkMode::None | NetworkMode::Full if !n.domains.is_empty() => Err(format!(
            "Domains apply only to Type HTTP, but Type is {}: remove Domains, or set Type: HTTP",
            match n.r#type {
                NetworkMode::None => "None",
                _ => "Full",
            }
        )),
        _ if n.domains.len() > MAX_DOMAINS => Err(format!(
            "{} domains listed, more than {MAX_DOMAINS}: use leading-dot entries \
             (`.example.com`) to cover subdomains",
            n.domains.len()
        )),
        _ => Ok(()),
    }
}

/// One timeout in seconds: 1..=MAX_TIMEOUT_SECS.
pub fn check_timeout_secs(secs: u64) -> Result<(), String> {
    if secs == 0 || secs > MAX_TIMEOUT_SECS {
        return Err(format!(
            "{secs} s is out of range: give seconds from 1 to {MAX_TIMEOUT_SECS} (30 days), \
             or leave it out for the node's default"
        ));
    }
    Ok(())
}

/// All timeouts.
pub fn check_timeouts(t: &Timeouts) -> Result<(), String> {
    for (name, v) in [
        ("ExecutionTimeout", t.execution_timeout),
        ("QueueTimeout", t.queue_timeout),
        ("TotalTimeout", t.total_timeout),
    ] {
        if let Some(v) = v {
            check_timeout_secs(v).map_err(|m| format!("{name}: {m}"))?;
        }
    }
    Ok(())
}
