//! Starting an execution the core awarded to this node: its inputs'
//! providers looked up, then run (see `daemon::exec`) on a task of its own
//! whose outcome comes back to the core.

use protocol::id::{ExecutionId, JobId};
use protocol::job::JobSpec;
use protocol::messages::Outcome;

use super::super::exec;
use super::results::find_providers;
use super::{CoreDriver, Internal};
use crate::executor::Cancel;

impl CoreDriver {
    pub(super) fn start(
        &mut self,
        job_id: JobId,
        execution_id: ExecutionId,
        spec: JobSpec,
        providers: Vec<String>,
        partition: u32,
    ) {
        tracing::info!(%job_id, %execution_id, "starting execution");
        let cancel = Cancel::default();
        self.running.insert((job_id, execution_id), cancel.clone());
        let ctx = self.exec.clone();
        let tx = self.internal_tx.clone();
        let p2p = self.p2p.clone();
        let data_addrs = self.data_addrs.clone();
        let deny = self.control_plane();
        let node = self.me;
        tokio::spawn(async move {
            let mut providers = providers;
            for cid in exec::content_inputs(&spec) {
                find_providers(&p2p, &data_addrs, cid, &mut providers).await;
            }
            let step_tx = tx.clone();
            let report = move |step| {
                let _ = step_tx.send(Internal::Step {
                    job_id,
                    execution_id,
                    step,
                });
            };
            let attempt = exec::Attempt {
                job_id,
                execution_id,
                node,
                partition,
                report: &report,
            };
            let outcome = exec::run(ctx, attempt, spec, providers, deny, cancel).await;
            if let Outcome::Failed { failure } = &outcome {
                let cause = failure.cause;
                tracing::warn!(%job_id, %execution_id, %cause, "execution failed: {failure}");
            }
            let _ = tx.send(Internal::Finished {
                job_id,
                execution_id,
                outcome,
            });
        });
    }
}
