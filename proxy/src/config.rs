//! One job's proxy settings.

use std::time::Duration;

use protocol::domain::DomainSet;

use crate::deny::DenySet;
use crate::local::OwnAddresses;
use crate::ranges::Cidr;

/// R-NET-6: 10 Mbit/s in each direction.
pub const DEFAULT_RATE: u64 = 1_250_000;

/// The header that carries the job id to upstreams (R-NET-7): a client's
/// own is always removed and replaced with the real one.
pub const JOB_HEADER: &str = "x-skrei-job";

/// Everything that decides what one job's proxy does.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The job this proxy serves; written to audit records and sent upstream
    /// as `X-Skrei-Job` on plain HTTP.
    pub job_id: String,
    /// The job's domains: the one allow decision is `DomainSet::allows`.
    pub domains: DomainSet,
    /// Bytes per second from the job to the world; 0 is unlimited.
    pub rate_up: u64,
    /// Bytes per second from the world to the job; 0 is unlimited.
    pub rate_down: u64,
    /// Ports `CONNECT` may reach (default: 443 only).
    pub connect_ports: Vec<u16>,
    /// Ports plain HTTP may reach (default: 80 only), so that a POST cannot
    /// be aimed at a database or cache port of an allowed host (R-NET-3).
    pub http_ports: Vec<u16>,
    /// Ranges the operator allows despite the special-purpose table.
    pub allowed_ranges: Vec<Cidr>,
    /// Control-plane destinations no job may reach (shared, updatable).
    pub deny: DenySet,
    /// The node's own addresses, refused unless an allowed range covers
    /// them (R-SEC-3): this host's by default.
    pub own_addresses: OwnAddresses,
    /// Timeouts and sizes.
    pub limits: Limits,
}

impl ProxyConfig {
    /// Defaults for a job: 10 Mbit/s each way, plain HTTP to port 80 and
    /// `CONNECT` to 443 only, no
    /// allowed ranges, an empty deny set, this host's addresses as its own.
    pub fn new(job_id: impl Into<String>, domains: DomainSet) -> ProxyConfig {
        ProxyConfig {
            job_id: job_id.into(),
            domains,
            rate_up: DEFAULT_RATE,
            rate_down: DEFAULT_RATE,
            connect_ports: vec![443],
            http_ports: vec![80],
            allowed_ranges: Vec::new(),
            deny: DenySet::new(),
            own_addresses: OwnAddresses::system(),
            limits: Limits::default(),
        }
    }
}

/// Timeouts and sizes that bound what one client can hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to receive a whole request head.
    pub header_read_timeout: Duration,
    /// A connection or tunnel with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// Time to connect to an upstream.
    pub connect_timeout: Duration,
    /// Time to resolve a name.
    pub resolve_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most header lines in a request head.
    pub max_headers: usize,
    /// Most concurrent client connections of this job.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            resolve_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_connections: 256,
        }
    }
}
