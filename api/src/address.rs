//! Where a node's blob store is reached, as a value: [`DataAddr`].
//!
//! A node's store is an iroh endpoint. The network carries its address as
//! iroh's JSON text (gossiped `data_addrs`, a result's providers, an
//! announcement's providers); the API shows it as a nested JSON object of
//! the same shape, and `skrei get --from` takes that object's text:
//!
//! ```
//! use api::address::DataAddr;
//!
//! let text = r#"{"id":"ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6","addrs":[{"Ip":"127.0.0.1:4001"}]}"#;
//! let addr: DataAddr = text.parse()?;
//! assert_eq!(addr.socket_addrs().collect::<Vec<_>>(), ["127.0.0.1:4001".parse()?]);
//! assert_eq!(addr.to_string(), text);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Nothing here checks that the id is a valid ed25519 key or that a relay
//! URL parses: the node does when it dials (`iroh::EndpointAddr`).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why text is not a [`DataAddr`] or an [`EndpointId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not 64 hexadecimal digits.
    #[error("`{input}` is not an endpoint id: give the 64 hex digits iroh prints")]
    EndpointId { input: String },
    /// Not the JSON of an endpoint address.
    #[error(
        "not a data address ({reason}): give the JSON object `skrei node info --output json` \
         shows as data_addr, e.g. {{\"id\":\"<64 hex digits>\",\"addrs\":[{{\"Ip\":\"127.0.0.1:4001\"}}]}}"
    )]
    Json { reason: String },
}

/// A blob store's iroh endpoint id: its ed25519 public key, written as 64
/// lower-case hex digits (as iroh writes it).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId([u8; 32]);

impl EndpointId {
    /// The id of these key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> EndpointId {
        EndpointId(bytes)
    }

    /// The public key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointId({self})")
    }
}

impl FromStr for EndpointId {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<EndpointId, AddressError> {
        let refuse = || AddressError::EndpointId {
            input: s.chars().take(80).collect(),
        };
        let digits = s.as_bytes();
        if digits.len() != 64 {
            return Err(refuse());
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| refuse())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| refuse())?;
        }
        Ok(EndpointId(bytes))
    }
}

impl Serialize for EndpointId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EndpointId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EndpointId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One way to reach an endpoint, as iroh names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TransportAddr {
    /// A direct UDP socket address.
    Ip(SocketAddr),
    /// A relay server's URL (nodes started with relays only).
    Relay(String),
}

/// Where a node's blob store is reached: its endpoint id and addresses.
///
/// Unknown fields are ignored, so a newer node's addresses still read;
/// a kind of address this type does not know fails to decode.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DataAddr {
    /// The store's endpoint id.
    pub id: EndpointId,
    /// Its addresses, in iroh's order.
    pub addrs: Vec<TransportAddr>,
}

impl DataAddr {
    /// The direct socket addresses among [`DataAddr::addrs`].
    pub fn socket_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs.iter().filter_map(|a| match a {
            TransportAddr::Ip(addr) => Some(*addr),
            TransportAddr::Relay(_) => None,
        })
    }

    /// Those of `texts` that are data addresses (iroh's JSON): what peers
    /// send is not trusted to be, and one bad entry should not hide the
    /// others.
    pub fn parse_all<'a>(texts: impl IntoIterator<Item = &'a String>) -> Vec<DataAddr> {
        texts.into_iter().filter_map(|t| t.parse().ok()).collect()
    }
}

/// The address as compact JSON, the form the network carries.
impl fmt::Display for DataAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

/// Reads the JSON text of an address (iroh's own, or [`DataAddr`]'s
/// `Display`).
impl FromStr for DataAddr {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<DataAddr, AddressError> {
        serde_json::from_str(s).map_err(|e| AddressError::Json {
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6";

    #[test]
    fn a_data_address_reads_from_and_writes_to_irohs_json() {
        let text = format!(
            r#"{{"id":"{ID}","addrs":[{{"Ip":"127.0.0.1:4001"}},{{"Ip":"[::1]:4002"}},{{"Relay":"https://relay.invalid./"}}]}}"#
        );
        let addr: DataAddr = text.parse().unwrap();
        assert_eq!(addr.id.to_string(), ID);
        assert_eq!(
            addr.socket_addrs().collect::<Vec<_>>(),
            [
                "127.0.0.1:4001".parse::<SocketAddr>().unwrap(),
                "[::1]:4002".parse().unwrap()
            ]
        );
        assert_eq!(addr.to_string(), text);
        // Nested in JSON it is an object, not a string holding JSON.
        let value = serde_json::to_value(&addr).unwrap();
        assert!(value.is_object(), "{value}");
        assert_eq!(value["addrs"][0]["Ip"], "127.0.0.1:4001");
    }

    #[test]
    fn bad_addresses_are_refused_with_what_to_give() {
        let short = format!(r#"{{"id":"{}","addrs":[]}}"#, &ID[..10]);
        let e = short.parse::<DataAddr>().unwrap_err();
        assert!(e.to_string().contains("data_addr"), "{e}");
        let not_hex = format!(r#"{{"id":"{}zz","addrs":[]}}"#, &ID[..62]);
        assert!(not_hex.parse::<DataAddr>().is_err());
        // Multi-byte text of the right length is not hex either (no panic).
        assert!("é".repeat(32).parse::<EndpointId>().is_err());
        let bad_socket = format!(r#"{{"id":"{ID}","addrs":[{{"Ip":"localhost"}}]}}"#);
        assert!(bad_socket.parse::<DataAddr>().is_err());
        assert!("not json".parse::<DataAddr>().is_err());
        // What peers send is filtered, not fatal.
        let good = format!(r#"{{"id":"{ID}","addrs":[]}}"#);
        let texts = vec!["junk".to_string(), good.clone()];
        assert_eq!(DataAddr::parse_all(&texts), [good.parse().unwrap()]);
    }

    #[test]
    fn endpoint_ids_take_either_case_and_print_lower_case() {
        let id: EndpointId = ID.to_uppercase().parse().unwrap();
        assert_eq!(id.to_string(), ID);
        assert_eq!(EndpointId::from_bytes(*id.as_bytes()), id);
    }

    #[test]
    fn unknown_fields_of_an_address_are_ignored() {
        let text = format!(r#"{{"id":"{ID}","addrs":[],"since":"a newer node"}}"#);
        assert!(text.parse::<DataAddr>().unwrap().addrs.is_empty());
    }
}
