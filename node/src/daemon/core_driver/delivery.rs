//! Direct messages on their way: sent off the driver's loop, retried
//! while the receiver is busy, and reported back when undeliverable.

use std::time::Duration;

use protocol::id::NodeId;
use protocol::messages::Direct;
use protocol::node::Outgoing;

use super::{BUSY_RETRY_FOR, CoreDriver, Internal};
use crate::p2p::P2pError;

impl CoreDriver {
    /// Sends a signed message. A peer that answers "busy" (its queue is
    /// full, or this node is over its rate there) is asked again for a
    /// little while; any other failure goes back to the core, which decides
    /// what it means (an award declined, a result offered again later).
    pub(super) fn send(
        &self,
        to: NodeId,
        direct: Result<Direct, protocol::messages::MessageError>,
        msg: Outgoing,
        attempt: u32,
    ) {
        let direct = match direct {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(%to, "signing a message: {e}");
                return;
            }
        };
        let p2p = self.p2p.clone();
        let tx = self.internal_tx.clone();
        let until = tokio::time::Instant::now() + BUSY_RETRY_FOR;
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(250);
            let mut sent = p2p.send(to, &direct).await;
            while let Err(P2pError::Busy { .. }) = &sent {
                if tokio::time::Instant::now() + wait > until {
                    break;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
                sent = p2p.send(to, &direct).await;
            }
            match sent {
                Ok(()) if attempt > 0 => {
                    tracing::info!(%to, attempt, "result delivered once the requester was back");
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::debug!(%to, attempt, "message not delivered: {e}");
                    let _ = tx.send(Internal::Undelivered {
                        to,
                        msg,
                        error: e.to_string(),
                    });
                }
            }
        });
    }
}
