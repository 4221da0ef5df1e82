//! The JSON bodies of the API's `POST` requests. Unknown fields are
//! refused: a client that sends one (an old client naming a `dir`, say)
//! learns at once that the node does not do what it asked.

use serde::{Deserialize, Serialize};

use crate::address::DataAddr;

/// `POST /api/v1/provide`: say in the DHT that the node has a CID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provide {
    pub cid: String,
}

/// `POST /api/v1/fetch`: bring content into the node's store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fetch {
    pub cid: String,
    /// Providers' blob store addresses to fetch from; none: ask the DHT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<DataAddr>,
    /// Answer with JSON lines ([`crate::content::FetchLine`]): progress
    /// while fetching, then the content or the error.
    #[serde(default)]
    pub progress: bool,
    /// Most bytes the content may take in the store; none: the node's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// The media type of a folder's manifest (`POST /api/v1/manifests`).
pub const MANIFEST_TYPE: &str = "application/vnd.skrei.manifest+cbor";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_unknown_fields_are_refused() {
        let provider = r#"{"id":"ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6","addrs":[{"Ip":"127.0.0.1:4001"}]}"#;
        let fetch = Fetch {
            cid: "bafkr4i".into(),
            providers: vec![provider.parse().unwrap()],
            progress: true,
            max_bytes: Some(10),
        };
        let text = serde_json::to_string(&fetch).unwrap();
        assert!(text.contains(r#""providers":[{"id":"#), "{text}");
        assert_eq!(serde_json::from_str::<Fetch>(&text).unwrap(), fetch);
        // A provider is an address, not a string holding one.
        let quoted = serde_json::json!({ "cid": "c", "providers": [provider] });
        assert!(serde_json::from_value::<Fetch>(quoted).is_err());
        let old = r#"{"cid":"bafkr4i","dir":"/root/.ssh/authorized_keys"}"#;
        assert!(serde_json::from_str::<Fetch>(old).is_err());
        assert!(serde_json::from_str::<Provide>(r#"{"cid":"x","path":"/etc"}"#).is_err());
        let minimal: Fetch = serde_json::from_str(r#"{"cid":"c"}"#).unwrap();
        assert_eq!(minimal.max_bytes, None);
        assert!(!minimal.progress);
    }
}
