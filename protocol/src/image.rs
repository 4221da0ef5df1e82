//! Docker image references and the registries a node pulls from (R-POL-3,
//! R-SEC-3).
//!
//! A job names its image as Docker reads it (`busybox:1.37.0`,
//! `ghcr.io/team/app@sha256:...`). A node that lacks the image pulls it
//! only from the registries its operator lists (`--pull-from`): by name
//! (`docker.io`, `127.0.0.1:5000`) or `*` for any public registry. The
//! reference names the host the Docker engine dials, outside any proxy, so
//! under `*` that host must be an ordinary public address, as for a URL
//! input: an IP literal is decided here, a name on its resolved addresses by
//! the node before it pulls. A registry the operator names is trusted as
//! named, loopback included.
//!
//! ```
//! use protocol::image::{ImageRef, PullPolicy, Pull};
//! let policy = PullPolicy::parse(["docker.io", "127.0.0.1:5000"]).unwrap();
//! let hub = ImageRef::parse("busybox:1.37.0").unwrap();
//! assert_eq!(hub.registry(), "docker.io");
//! assert_eq!(policy.route(&hub), Ok(Pull::Named));
//! let other = ImageRef::parse("ghcr.io/team/app:1").unwrap();
//! assert!(policy.route(&other).is_err());
//! let any = PullPolicy::parse(["*"]).unwrap();
//! assert_eq!(any.route(&other), Ok(Pull::Public { host: "ghcr.io".into() }));
//! assert!(any.route(&ImageRef::parse("169.254.169.254/x:1").unwrap()).is_err());
//! ```

use std::fmt;
use std::net::IpAddr;

use oci_spec::distribution::Reference;

use crate::policy::RefuseReason;

/// Docker Hub as references name it, and the aliases operators may write.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: [&str; 3] = ["index.docker.io", "registry-1.docker.io", "hub.docker.com"];
/// The host the engine dials for Docker Hub images.
const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    reference: Reference,
    /// As the job wrote it, for messages.
    written: String,
}

impl ImageRef {
    /// Parses `image` as the engine would (a name without a registry is
    /// Docker Hub's, without a tag or digest it is `:latest`).
    pub fn parse(image: &str) -> Result<ImageRef, String> {
        image
            .parse::<Reference>()
            .map(|reference| ImageRef {
                reference,
                written: image.to_owned(),
            })
            .map_err(|_| {
                format!(
                    "`{image}` is not an image reference: write [REGISTRY/]NAME[:TAG][@sha256:DIGEST], \
                     e.g. `ubuntu:24.04`"
                )
            })
    }

    /// The registry, as references name it: `docker.io`, `ghcr.io`,
    /// `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The repository within the registry: `library/busybox`.
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The tag, when the reference pins no digest (`latest` when it names
    /// neither).
    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// The reference in full: `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        self.reference.whole()
    }

    /// The pinned digest, `sha256:...`.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// The host (no port) the engine dials for this image.
    pub fn dial_host(&self) -> &str {
        let registry = self.registry();
        if registry == DOCKER_HUB {
            return DOCKER_HUB_HOST;
        }
        host_of(registry)
    }

    /// The registry's host as an IP address, when it is written as one.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        self.dial_host().parse().ok()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// `host:port` without the port (references carry no IPv6 literals).
fn host_of(registry: &str) -> &str {
    registry.split(':').next().unwrap_or(registry)
}

/// One registry a node pulls from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    /// `*`: any registry at an ordinary public address.
    Any,
    /// One registry by name (`docker.io`, `127.0.0.1:5000`), at whatever
    /// address it has.
    Named(String),
}

impl Registry {
    /// Reads one `--pull-from` value.
    pub fn parse(value: &str) -> Result<Registry, String> {
        let value = value.trim();
        if value == "*" {
            return Ok(Registry::Any);
        }
        let lower = value.to_ascii_lowercase();
        if DOCKER_HUB_ALIASES.contains(&lower.as_str()) {
            return Ok(Registry::Named(DOCKER_HUB.into()));
        }
        // The reference grammar decides what a registry name is.
        match Reference::try_from(format!("{lower}/skrei-probe:1")) {
            Ok(r) if r.registry() == lower => Ok(Registry::Named(lower)),
            _ => Err(format!(
                "`{value}` is not a registry: write a host with an optional port \
                 (`docker.io`, `ghcr.io`, `127.0.0.1:5000`), or `*` for any public registry"
            )),
        }
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Registry::Any => f.write_str("*"),
            Registry::Named(name) => f.write_str(name),
        }
    }
}

/// The registries a node pulls from (`--pull-from`); none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullPolicy {
    registries: Vec<Registry>,
}

/// How a node may pull an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pull {
    /// From a registry its operator names: no address check.
    Named,
    /// Under `*`: only once `host` resolves to ordinary public addresses
    /// that are not the node's own (the node checks, it has the resolver).
    Public {
        /// The host the engine will dial.
        host: String,
    },
}

impl PullPolicy {
    /// Reads `--pull-from` values; an empty list pulls nothing.
    pub fn parse<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Result<PullPolicy, String> {
        let registries = values
            .into_iter()
            .map(|v| Registry::parse(v.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PullPolicy { registries })
    }

    /// Whether the node pulls at all.
    pub fn pulls(&self) -> bool {
        !self.registries.is_empty()
    }

    /// The registries, as the operator listed them.
    pub fn registries(&self) -> &[Registry] {
        &self.registries
    }

    /// Whether and how the node may pull `image`, or why not.
    pub fn route(&self, image: &ImageRef) -> Result<Pull, RefuseReason> {
        let registry = image.registry();
        if !self.pulls() {
            return Err(RefuseReason::ImageMissing {
                image: image.to_string(),
            });
        }
        if self
            .registries
            .iter()
            .any(|r| matches!(r, Registry::Named(name) if name.eq_ignore_ascii_case(registry)))
        {
            return Ok(Pull::Named);
        }
        if !self.registries.contains(&Registry::Any) {
            return Err(RefuseReason::RegistryNotAllowed {
                image: image.to_string(),
                registry: registry.to_owned(),
            });
        }
        if let Some(ip) = image.literal_ip()
            && let Some(range) = crate::address::classify(ip)
        {
            return Err(RefuseReason::RegistryAddressRefused {
                image: image.to_string(),
                registry: registry.to_owned(),
                why: format!("a special-purpose address: {range}"),
            });
        }
        if image.dial_host().eq_ignore_ascii_case("localhost") {
            return Err(RefuseReason::RegistryAddressRefused {
                image: image.to_string(),
                registry: registry.to_owned(),
                why: "this node's loopback".into(),
            });
        }
        Ok(Pull::Public {
            host: image.dial_host().to_owned(),
        })
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.registries.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn references_read_as_the_engine_reads_them() {
        let hub = image("busybox");
        assert_eq!(hub.registry(), "docker.io");
        assert_eq!(hub.repository(), "library/busybox");
        assert_eq!(hub.tag(), Some("latest"));
        assert_eq!(hub.dial_host(), "registry-1.docker.io");
        let local = image(
            "127.0.0.1:5000/team/app@sha256:264bccb1fff2f81f8e2ae74932af6be29235593fb5e9e6246768e23463cc745b",
        );
        assert_eq!(local.registry(), "127.0.0.1:5000");
        assert_eq!(local.dial_host(), "127.0.0.1");
        assert_eq!(local.literal_ip(), Some("127.0.0.1".parse().unwrap()));
        assert!(local.digest().unwrap().starts_with("sha256:264b"));
        assert!(ImageRef::parse("x@sha256:abc").is_err());
        assert!(ImageRef::parse("a::b").is_err());
        assert!(ImageRef::parse("x:.tag").is_err());
    }

    #[test]
    fn registries_are_named_hosts_or_any() {
        assert_eq!(Registry::parse("*"), Ok(Registry::Any));
        assert_eq!(
            Registry::parse("Docker.io"),
            Ok(Registry::Named("docker.io".into()))
        );
        assert_eq!(
            Registry::parse("index.docker.io"),
            Ok(Registry::Named("docker.io".into()))
        );
        assert_eq!(
            Registry::parse("127.0.0.1:5000"),
            Ok(Registry::Named("127.0.0.1:5000".into()))
        );
        for bad in ["", "http://ghcr.io", "ghcr.io/team", "a b", "ghcr.io:port"] {
            let err = Registry::parse(bad).unwrap_err();
            assert!(err.contains("not a registry"), "{bad}: {err}");
        }
    }

    /// R-POL-3, R-SEC-3: the node pulls from the registries its operator
    /// lists; under `*` not from special-purpose addresses written into
    /// the reference, unless the operator names that registry.
    #[test]
    fn r_sec_3_pulls_go_only_to_allowed_registries() {
        let none = PullPolicy::default();
        assert!(matches!(
            none.route(&image("busybox:1.37.0")),
            Err(RefuseReason::ImageMissing { .. })
        ));
        let named = PullPolicy::parse(["docker.io"]).unwrap();
        assert_eq!(named.route(&image("busybox:1.37.0")), Ok(Pull::Named));
        assert!(matches!(
            named.route(&image("ghcr.io/a/b:1")),
            Err(RefuseReason::RegistryNotAllowed { registry, .. }) if registry == "ghcr.io"
        ));
        let any = PullPolicy::parse(["*"]).unwrap();
        for special in [
            "169.254.169.254/x:1",
            "127.0.0.1:5000/x:1",
            "10.1.2.3/x",
            "localhost:5000/x",
            "0.0.0.0/x",
        ] {
            assert!(
                matches!(
                    any.route(&image(special)),
                    Err(RefuseReason::RegistryAddressRefused { .. })
                ),
                "{special}"
            );
        }
        assert_eq!(
            any.route(&image("ghcr.io/a/b:1")),
            Ok(Pull::Public {
                host: "ghcr.io".into()
            })
        );
        let local = PullPolicy::parse(["*", "127.0.0.1:5000"]).unwrap();
        assert_eq!(local.route(&image("127.0.0.1:5000/x:1")), Ok(Pull::Named));
        assert!(local.route(&image("127.0.0.1:5001/x:1")).is_err());
    }
}
