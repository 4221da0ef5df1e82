//! The answers of the content endpoints (`POST /api/v1/blobs`,
//! `/manifests`, `/provide` and `/fetch`): the content's CID, or, for a
//! fetch with `progress`, JSON lines ([`FetchLine`]).

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::error::ErrorBody;

/// Content the node has: what it stored, provides or fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentAnswer {
    #[serde(with = "protocol::id::cid_string")]
    pub cid: Cid,
}

/// How far a fetch is: bytes in the store so far (fetched or already
/// there), of the content's size once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchProgress {
    pub fetched: u64,
    pub total: Option<u64>,
}

/// One line of a fetch answered with progress (`application/x-ndjson`):
/// progress lines, then one last line, the content or the error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FetchLine {
    /// The fetch failed (the last line).
    Failed(ErrorBody),
    /// The content is in the store (the last line).
    Done(ContentAnswer),
    /// Bytes so far.
    Progress(FetchProgress),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cid, round_trips};

    #[test]
    fn answers_and_fetch_lines_round_trip_and_read_with_unknown_fields() {
        let done = ContentAnswer { cid: cid(b"hello") };
        let json = round_trips(&done, &[""]);
        assert_eq!(json["cid"], cid(b"hello").to_string());
        round_trips(&FetchLine::Done(done), &[""]);
        let failed = FetchLine::Failed(ErrorBody {
            error: "no provider answered".into(),
        });
        round_trips(&failed, &[""]);
        for total in [Some(10), None] {
            let progress = FetchLine::Progress(FetchProgress { fetched: 4, total });
            round_trips(&progress, &[""]);
        }
    }

    #[test]
    fn fetch_lines_read_as_the_node_writes_them() {
        let line = |text: &str| serde_json::from_str::<FetchLine>(text).unwrap();
        assert_eq!(
            line(r#"{"fetched":5,"total":null}"#),
            FetchLine::Progress(FetchProgress {
                fetched: 5,
                total: None
            })
        );
        assert!(
            matches!(line(r#"{"error":"too large"}"#), FetchLine::Failed(e) if e.error == "too large")
        );
        let c = cid(b"x");
        assert_eq!(
            line(&format!(r#"{{"cid":"{c}"}}"#)),
            FetchLine::Done(ContentAnswer { cid: c })
        );
        assert!(serde_json::from_str::<FetchLine>(r#"{"cid":"not a cid"}"#).is_err());
    }
}
