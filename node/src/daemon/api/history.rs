//! A bounded history of the node's own metrics, for the dashboard's charts
//! (issue 19): sampled every [`INTERVAL`], the last [`KEPT`] samples kept
//! in memory (six hours), the oldest dropped first.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::dashboard::{MetricHistory, MetricSample};
use tokio::sync::watch;

use super::ApiState;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// Samples kept: six hours at [`INTERVAL`].
pub const KEPT: usize = 720;

/// The samples so far.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<MetricSample>>,
    /// Bids counted so far, and the last event counted.
    bids: Mutex<(u64, u64)>,
}

impl History {
    fn push(&self, sample: MetricSample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() >= KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// A copy, oldest first.
    pub fn snapshot(&self) -> MetricHistory {
        MetricHistory {
            interval_ms: INTERVAL.as_millis() as u64,
            samples: self
                .samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }
}

/// Samples the node every [`INTERVAL`] until `stop`, the first at once.
pub async fn sample(state: ApiState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match take(&state).await {
            Ok(sample) => state.history.push(sample),
            Err(e) => tracing::debug!("no metrics sample: {}", e.1),
        }
    }
}

async fn take(state: &ApiState) -> Result<MetricSample, super::ApiError> {
    let view = super::ask(state, |reply| super::CoreCommand::Info { reply }).await?;
    let jobs = state
        .db
        .job_counts()
        .map_err(super::ApiError::internal)?
        .into_iter()
        .collect();
    let bids_received = {
        let mut bids = state.history.bids.lock().unwrap_or_else(|e| e.into_inner());
        let (more, last) = state
            .db
            .bids_received_since(bids.1)
            .map_err(super::ApiError::internal)?;
        *bids = (bids.0 + more, last);
        bids.0
    };
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Ok(MetricSample {
        at_ms,
        jobs,
        running: view.running,
        peers: view.peers.iter().filter(|p| p.connected).count() as u32,
        bids_received,
        egress_bytes: view.egress_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_newest_samples() {
        let h = History::default();
        for i in 0..(KEPT as u64 + 10) {
            h.push(MetricSample {
                at_ms: i,
                jobs: Default::default(),
                running: 0,
                peers: 0,
                bids_received: 0,
                egress_bytes: 0,
            });
        }
        let s = h.snapshot();
        assert_eq!(s.samples.len(), KEPT);
        assert_eq!(s.samples[0].at_ms, 10);
        assert_eq!(s.samples.last().unwrap().at_ms, KEPT as u64 + 9);
    }
}
