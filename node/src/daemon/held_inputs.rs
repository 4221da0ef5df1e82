//! What of a job's CID inputs this node's store already holds (R-PLC-1):
//! the requester states the size of inputs it holds in its announcement,
//! a compute node says how many bytes it holds in its bid, and the
//! requester prefers the node that has the data.

use protocol::job::{JobSpec, Source};
use storage::store::Store;

/// The CID inputs' bytes held here, summed, and whether every CID input
/// is held complete. Looks only in the local store; an input it cannot
/// read counts as not held.
pub(super) async fn held_input_bytes(store: &Store, spec: &JobSpec) -> (u64, bool) {
    let mut held = 0u64;
    let mut all = true;
    for input in &spec.task().input_sources {
        let Source::Cid(source) = &input.source else {
            continue;
        };
        let size = match store.has(&source.cid).await {
            Ok(true) => storage::export::measure(store, &source.cid)
                .await
                .ok()
                .map(|size| size.bytes),
            Ok(false) | Err(_) => None,
        };
        match size {
            Some(bytes) => held = held.saturating_add(bytes),
            None => all = false,
        }
    }
    (held, all)
}

/// Whether the job reads any CID input (else there is nothing to look for).
pub(super) fn reads_cids(spec: &JobSpec) -> bool {
    spec.task()
        .input_sources
        .iter()
        .any(|input| matches!(input.source, Source::Cid(_)))
}
