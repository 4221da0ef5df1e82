//! Relays for content: which iroh relays this node uses (only those its
//! bootstrap peers name, or its operator), and the data address it gives
//! out, which names them.

use protocol::id::NodeId;

use super::CoreDriver;

impl CoreDriver {
    /// The relays a bootstrap peer runs, for this node's store (see
    /// `daemon::relay`): each URL is checked once, in the background.
    pub(super) fn learn_relays(&mut self, from: NodeId, urls: &[String]) {
        for url in urls {
            if !self.relay_urls_seen.insert(url.clone()) {
                continue;
            }
            let (url, store) = (url.clone(), self.store.clone());
            tokio::spawn(async move {
                match crate::daemon::relay::acceptable(&url).await {
                    Ok(relay) => {
                        if store.add_relay(relay).await {
                            tracing::info!(%from, %url, "using the iroh relay of a bootstrap peer");
                        }
                    }
                    Err(why) => {
                        tracing::warn!(%from, %url, "not using the iroh relay a bootstrap peer runs: {why}")
                    }
                }
            });
        }
    }

    /// Reads the store's address again (a relay learnt, an external address
    /// found): node info, new jobs and results name the new one.
    pub(super) fn refresh_data_addr(&mut self) {
        let Ok(addr) = serde_json::to_string(&self.store.addr()) else {
            return;
        };
        if addr != self.data_addr {
            tracing::debug!(%addr, "data address");
            self.core.set_result_providers(vec![addr.clone()]);
            self.data_addr = addr;
        }
    }
}
