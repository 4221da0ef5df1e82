//! Results of this node's jobs: brought into its own store, so they
//! outlive the nodes that made them; and the providers of a job's inputs.

use std::time::Duration;

use cid::Cid;
use iroh::EndpointAddr;
use protocol::id::{ExecutionId, JobId};

use super::{CoreDriver, DataAddrs, Internal};
use crate::p2p::P2pHandle;

/// Longest wait for the DHT to name providers of one input.
const PROVIDER_LOOKUP: Duration = Duration::from_secs(3);

impl CoreDriver {
    /// Brings a result into this node's store, so it outlives the node
    /// that made it.
    pub(super) fn fetch_result(
        &self,
        job_id: JobId,
        execution_id: ExecutionId,
        cid: Cid,
        providers: Vec<String>,
    ) {
        let store = self.store.clone();
        let tx = self.internal_tx.clone();
        let max = self.config.max_result_size;
        tokio::spawn(async move {
            let addrs: Vec<EndpointAddr> = providers
                .iter()
                .filter_map(|p| serde_json::from_str(p).ok())
                .collect();
            let mut wait = Duration::from_millis(200);
            for _ in 0..8 {
                match store.fetch(&cid, &addrs, None, max).await {
                    Ok(_) => {
                        let _ = tx.send(Internal::Fetched {
                            job_id,
                            execution_id,
                        });
                        return;
                    }
                    // Asking again would cost as much again (R-SEC-5).
                    Err(e @ storage::store::FetchError::TooLarge { .. }) => {
                        tracing::warn!(%job_id, %cid, "not fetching the result: {e}");
                        let reason = format!(
                            "the results are larger than this node fetches (--max-result-size \
                             {max} bytes): {e}"
                        );
                        let _ = tx.send(Internal::FetchRefused {
                            job_id,
                            execution_id,
                            reason,
                        });
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%job_id, %cid, "fetching the result: {e}");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }

    /// Results reported before a restart but not fetched yet.
    pub(super) fn resume_fetches(&self) {
        let rows = match self.db.unfetched_results() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("reading results: {e}");
                return;
            }
        };
        for row in rows {
            let (Ok(job_id), Ok(cid)) = (row.job_id.parse::<JobId>(), row.result_cid.parse())
            else {
                continue;
            };
            self.fetch_result(job_id, ExecutionId(row.execution_id), cid, row.providers);
        }
    }
}

/// Adds the blob store addresses of the nodes the DHT names as providers
/// of `cid` (R-P2P-4: content comes from any node that has it).
pub(super) async fn find_providers(
    p2p: &P2pHandle,
    data_addrs: &DataAddrs,
    cid: Cid,
    out: &mut Vec<String>,
) {
    let found = match tokio::time::timeout(PROVIDER_LOOKUP, p2p.get_providers(cid.to_bytes())).await
    {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::debug!(%cid, "no providers from the DHT: {e}");
            return;
        }
        Err(_) => return,
    };
    let known = data_addrs.lock().unwrap_or_else(|e| e.into_inner());
    for node in found {
        for addr in known.get(&node).into_iter().flatten() {
            if !out.contains(addr) && out.len() < protocol::messages::MAX_ADDRS {
                out.push(addr.clone());
            }
        }
    }
}
