//! The node API's token (R-SEC-1), and how the `skrei` client finds it.
//!
//! The API listens on loopback, but loopback is not a user: every local
//! user, and every web page a local browser opens, can reach it. So each
//! request must carry the node's token, `Authorization: Bearer TOKEN`. The
//! node keeps it in its data folder ([`TOKEN_FILE`], mode 0600, the same
//! across restarts).
//!
//! The client takes the token from [`TOKEN_ENV`] when set. Otherwise it
//! looks in a per-user record of the nodes this user started, kept under
//! the user's state folder (`$SKREI_STATE_DIR`, else
//! `$XDG_STATE_HOME/skrei`, else `~/.local/state/skrei`): one small file per
//! API address naming the node's token file. Another user has neither the
//! record nor the right to read the token file. And before the client sends
//! a token it found there to a loopback address, it checks that the socket
//! listening there belongs to this user: a stranger who takes the port of a
//! stopped node gets no token.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

pub use api::gate::{TOKEN_ENV, TOKEN_FILE};
/// Overrides where the per-user record of started nodes lives.
pub const STATE_ENV: &str = "SKREI_STATE_DIR";

/// A node's API token: 32 random bytes, written as 64 hex digits.
#[derive(Clone)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl ApiToken {
    /// Reads the token from `data_dir`, or makes one there (mode 0600).
    /// A token file others can read is tightened to 0600 first.
    pub fn load_or_create(data_dir: &Path) -> io::Result<ApiToken> {
        use std::os::unix::fs::PermissionsExt;
        let path = data_dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let token = text.trim();
                if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(io::Error::other(format!(
                        "{} does not hold a token (64 hex digits): move it away to make a new one",
                        path.display()
                    )));
                }
                let mode = std::fs::metadata(&path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "the API token was readable by others; it is now 0600"
                    );
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                }
                Ok(ApiToken(token.to_ascii_lowercase()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| io::Error::other(e.to_string()))?;
                let token: String = secret.iter().map(|b| format!("{b:02x}")).collect();
                create_private(&path, token.as_bytes())?;
                Ok(ApiToken(token))
            }
            Err(e) => Err(e),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Creates `path` holding `bytes`, mode 0600, failing if it exists (two
/// nodes starting on one folder keep one token).
fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        // Made meanwhile by another process: use that one.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    file.write_all(bytes)?;
    file.sync_all()
}

/// The per-user record of started nodes, API address -> token file.
pub mod record {
    use super::*;

    /// This user's folder of records, if a home or state folder is known.
    pub fn dir() -> Option<PathBuf> {
        let base = if let Some(d) = std::env::var_os(STATE_ENV) {
            PathBuf::from(d)
        } else if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
            PathBuf::from(d).join("skrei")
        } else {
            PathBuf::from(std::env::var_os("HOME")?).join(".local/state/skrei")
        };
        Some(base.join("apis"))
    }

    fn file_name(api: SocketAddr) -> String {
        api.to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Entry {
        api: SocketAddr,
        token_file: PathBuf,
    }

    /// Notes that the node at `api` keeps its token in `token_file`.
    pub fn remember(api: SocketAddr, token_file: &Path) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = dir().ok_or_else(|| io::Error::other("no HOME or state folder"))?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let entry = Entry {
            api,
            token_file: std::path::absolute(token_file)?,
        };
        let text = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        let path = dir.join(file_name(api));
        let tmp = dir.join(format!(".{}.{}", file_name(api), std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        std::io::Write::write_all(&mut file, &text)?;
        std::fs::rename(&tmp, &path)
    }

    /// Removes the record of `api` if it still names `token_file`.
    pub fn forget(api: SocketAddr, token_file: &Path) {
        let Some(dir) = dir() else { return };
        let path = dir.join(file_name(api));
        let ours = read(&path)
            .is_some_and(|e| std::path::absolute(token_file).is_ok_and(|t| t == e.token_file));
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }

    fn read(path: &Path) -> Option<Entry> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Why a recorded token was not used.
    #[derive(Debug, thiserror::Error)]
    pub enum FindError {
        #[error(
            "the node at {api} is not this user's (its socket belongs to user {owner}): no token \
             was sent; set {TOKEN_ENV} if you mean to use it"
        )]
        Foreign { api: SocketAddr, owner: u32 },
        #[error("reading the token file {path} recorded for {api}: {source}")]
        Unreadable {
            api: SocketAddr,
            path: PathBuf,
            source: io::Error,
        },
    }

    /// The token of the node this user started at `api`, if there is a
    /// record of one. `api` may name the node by a loopback address or
    /// `localhost` while it listens on all interfaces.
    pub fn find(host: &str, port: u16) -> Result<Option<String>, FindError> {
        let Some(dir) = dir() else { return Ok(None) };
        let wanted: Vec<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
            vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16; 8])]
        } else {
            match host.trim_start_matches('[').trim_end_matches(']').parse() {
                Ok(ip) => vec![ip],
                Err(_) => return Ok(None),
            }
        };
        let Ok(items) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut best: Option<Entry> = None;
        for item in items.flatten() {
            let Some(entry) = read(&item.path()) else {
                continue;
            };
            if entry.api.port() != port {
                continue;
            }
            let ip = entry.api.ip().to_canonical();
            let exact = wanted.iter().any(|w| w.to_canonical() == ip);
            let any = ip.is_unspecified() && wanted.iter().any(|w| w.to_canonical().is_loopback());
            if exact {
                best = Some(entry);
                break;
            }
            if any {
                best = Some(entry);
            }
        }
        let Some(entry) = best else { return Ok(None) };
        let target = SocketAddr::new(wanted[0], port);
        if target.ip().to_canonical().is_loopback()
            && let (Some(owner), Some(me)) = (listener_uid(target), own_uid())
            && owner != me
        {
            return Err(FindError::Foreign { api: target, owner });
        }
        match std::fs::read_to_string(&entry.token_file) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            // The node's folder is gone: the record is stale.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FindError::Unreadable {
                api: entry.api,
                path: entry.token_file,
                source,
            }),
        }
    }

    fn own_uid() -> Option<u32> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    }

    /// The user owning the socket that listens on `addr` (or on all
    /// addresses at its port), from Linux's `/proc/net/tcp{,6}`.
    pub fn listener_uid(addr: SocketAddr) -> Option<u32> {
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            if let Some(uid) = listener_in(&text, addr) {
                return Some(uid);
            }
        }
        None
    }

    /// Parses one `/proc/net/tcp*` table: LISTEN (`0A`) sockets at `addr`.
    pub(crate) fn listener_in(table: &str, addr: SocketAddr) -> Option<u32> {
        let want_ip = addr.ip().to_canonical();
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(uid)) =
                (fields.get(1), fields.get(3), fields.get(7))
            else {
                continue;
            };
            if *state != "0A" {
                continue;
            }
            let Some((ip_hex, port_hex)) = local.split_once(':') else {
                continue;
            };
            if u16::from_str_radix(port_hex, 16).ok() != Some(addr.port()) {
                continue;
            }
            let Some(ip) = proc_ip(ip_hex) else { continue };
            let ip = ip.to_canonical();
            if ip == want_ip || ip.is_unspecified() {
                return uid.parse().ok();
            }
        }
        None
    }

    /// `0100007F` -> 127.0.0.1; IPv6 as four host-order 32-bit words.
    fn proc_ip(hex: &str) -> Option<IpAddr> {
        let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::swap_bytes);
        match hex.len() {
            8 => Some(IpAddr::from(word(hex)?.to_be_bytes())),
            32 => {
                let mut bytes = [0u8; 16];
                for i in 0..4 {
                    let w = word(hex.get(i * 8..i * 8 + 8)?)?;
                    bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
                }
                Some(IpAddr::from(bytes))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_sec_1_the_token_is_private_stable_and_compared_exactly() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = ApiToken::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ApiToken::load_or_create(dir.path()).unwrap();
        assert_eq!(first.as_str(), again.as_str());
        assert_eq!(first.as_str().len(), 64);
        assert!(first.matches(again.as_str()));
        assert!(!first.matches(&first.as_str()[..63]));
        assert!(!first.matches(""));
        // A token file others could read is tightened.
        std::fs::set_permissions(
            dir.path().join(TOKEN_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        ApiToken::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Junk is an error, not a new identity.
        std::fs::write(dir.path().join(TOKEN_FILE), "short").unwrap();
        assert!(ApiToken::load_or_create(dir.path()).is_err());
    }

    #[test]
    fn proc_net_tcp_listeners_are_read_with_their_owner() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:04D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0\n   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0\n   2: 0100007F:0050 0100007F:9C40 01 00000000:00000000 00:00000000 00000000    33        0 3 1 0000000000000000 100 0 0 10 0\n";
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(record::listener_in(table, at("127.0.0.1:1234")), Some(1000));
        // Port 8080 listens on all addresses.
        assert_eq!(record::listener_in(table, at("127.0.0.1:8080")), Some(0));
        // An established connection is not a listener.
        assert_eq!(record::listener_in(table, at("127.0.0.1:80")), None);
        assert_eq!(record::listener_in(table, at("127.0.0.2:1234")), None);
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:04D2 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 1 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(record::listener_in(v6, at("[::1]:1234")), Some(1001));
    }
}
