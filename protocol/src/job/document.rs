//! STUB
use super::JobErrors;
pub(crate) struct Node;
impl Node {
    pub(crate) fn parse(_text: &str) -> Result<Node, JobErrors> {
        Err(JobErrors::one("", "not yet"))
    }
}
