//! The body of every answer that is not a success, the gate's refusals
//! included: `{"error": "what went wrong and what to do"}`.

use serde::{Deserialize, Serialize};

/// Why the node refused or failed a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

impl ErrorBody {
    /// The message of an answer's body, if it is an [`ErrorBody`].
    pub fn message_of(body: &[u8]) -> Option<String> {
        serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .map(|e| e.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::round_trips;

    #[test]
    fn an_error_body_round_trips_and_is_read_from_bytes() {
        let body = ErrorBody {
            error: "the API needs the node's token".into(),
        };
        round_trips(&body, &[""]);
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(ErrorBody::message_of(&bytes), Some(body.error));
        assert_eq!(ErrorBody::message_of(b"<html>"), None);
    }
}
