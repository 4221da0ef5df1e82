//! Name resolution, behind a trait so tests and `--resolve` can inject
//! answers.
//!
//! The proxy resolves each request's normalised host exactly once and
//! connects to an address from that one answer (R-NET-8): a resolver that
//! answers differently on a second call cannot matter, because there is no
//! second call.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, so that resolvers can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name has no address.
    #[error("`{0}` has no address")]
    NotFound(String),
    /// The resolver failed.
    #[error("resolving `{name}` failed: {source}")]
    Io {
        /// The name.
        name: String,
        /// What failed.
        source: io::Error,
    },
}

/// Resolves a normalised host name (never an IP literal: the proxy does not
/// resolve those) to addresses.
pub trait Resolver: Send + Sync + 'static {
    /// Every address of `name`.
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>>;
}

/// The system resolver (`getaddrinfo` through tokio).
///
/// Names are looked up as given, without a trailing dot, so that the hosts
/// file applies (glibc's `files` backend does not match `name.`); the
/// resolver's search list may then be tried for a name that does not exist.
/// Whatever comes back is checked like any other answer.
///
/// The names it is given are normalised and never numeric (the domain
/// grammar refuses `127.1` and `0x7f.1`), so the resolver's habit of reading
/// such names as addresses cannot be triggered through it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        Box::pin(async move {
            let addrs =
                tokio::net::lookup_host((name, 0))
                    .await
                    .map_err(|source| ResolveError::Io {
                        name: name.to_owned(),
                        source,
                    })?;
            let mut ips: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !ips.contains(&a.ip()) {
                    ips.push(a.ip());
                }
            }
            if ips.is_empty() {
                return Err(ResolveError::NotFound(name.to_owned()));
            }
            Ok(ips)
        })
    }
}

/// Fixed answers (`--resolve HOST=IP`, tests), with an optional fallback for
/// names it does not know. The answers are still checked like any other.
#[derive(Clone, Default)]
pub struct StaticResolver {
    map: HashMap<String, Vec<IpAddr>>,
    fallback: Option<Arc<dyn Resolver>>,
}

impl std::fmt::Debug for StaticResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticResolver")
            .field("map", &self.map)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl StaticResolver {
    /// An empty map: every name is not found.
    pub fn new() -> StaticResolver {
        StaticResolver::default()
    }

    /// Add an address for `name` (a normalised host name, as
    /// `protocol::domain::Host` prints it).
    pub fn insert(&mut self, name: impl Into<String>, ip: IpAddr) -> &mut Self {
        self.map.entry(name.into()).or_default().push(ip);
        self
    }

    /// Builder form of [`StaticResolver::insert`].
    pub fn with(mut self, name: impl Into<String>, ip: IpAddr) -> Self {
        self.insert(name, ip);
        self
    }

    /// Ask `fallback` for names not in the map.
    pub fn with_fallback(mut self, fallback: Arc<dyn Resolver>) -> Self {
        self.fallback = Some(fallback);
        self
    }
}

impl Resolver for StaticResolver {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        Box::pin(async move {
            match (self.map.get(name), &self.fallback) {
                (Some(ips), _) => Ok(ips.clone()),
                (None, Some(f)) => f.resolve(name).await,
                (None, None) => Err(ResolveError::NotFound(name.to_owned())),
            }
        })
    }
}
