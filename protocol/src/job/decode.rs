//! STUB
use super::{JobErrors, JobSpec, document::Node};
pub(crate) fn job(_n: &Node) -> Result<JobSpec, JobErrors> {
    Err(JobErrors::one("", "not yet"))
}
