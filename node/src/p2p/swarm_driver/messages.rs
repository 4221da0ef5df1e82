//! Gossip and direct messages: validated before anything reaches the
//! application or is forwarded, acknowledged, resent once when their
//! connection closes under them, and counted against peers that send
//! what is refused.

use libp2p::PeerId;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::request_response;
use protocol::id::NodeId;
use protocol::rate::Verdict;

use super::{Reply, SwarmDriver};
use crate::p2p::codec::Ack;
use crate::p2p::limits::Kind;
use crate::p2p::validate::{self, node_id, peer_id};
use crate::p2p::{P2pError, P2pEvent};

/// Strikes that graylist a peer (see [`SwarmDriver::strike`]).
const GRAYLIST_STRIKES: u32 = 3;

/// A direct message awaiting its acknowledgement.
pub(super) struct Sending {
    pub(super) to: NodeId,
    pub(super) reply: Reply<()>,
    /// Kept to send it again if its connection closes under it.
    pub(super) bytes: Vec<u8>,
    pub(super) resent: bool,
}

impl SwarmDriver {
    /// R-P2P-3 for gossip: validate, then tell gossipsub whether to forward.
    pub(super) fn gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        if let (Some(author), Some(kind)) = (message.source, Kind::of_topic(message.topic.as_str()))
        {
            let verdict = self.limits.check(kind, &author);
            if verdict != Verdict::Allow {
                // Only a flood from the author itself counts against the
                // neighbour: an honest relay may forward a burst this node
                // counts differently.
                let floods = verdict == Verdict::Flood && author == propagation_source;
                let acceptance = if floods {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Ignore
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                match self.limits.rejection(kind, &author) {
                    Some(reason) if floods => self.rejected(&propagation_source, reason),
                    _ => tracing::debug!(%author, kind = kind.label(), "over its rate: dropped"),
                }
                return;
            }
        }
        let verdict = validate::gossip(
            message.topic.as_str(),
            message.source.as_ref(),
            &message.data,
        );
        let acceptance = match &verdict {
            Ok(_) => MessageAcceptance::Accept,
            Err(reason) if reason.penalises() => MessageAcceptance::Reject,
            Err(_) => MessageAcceptance::Ignore,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
        match verdict {
            Ok((from, message)) => self.emit(P2pEvent::Gossip { from, message }),
            Err(reason) => self.rejected(&propagation_source, reason),
        }
    }

    /// R-P2P-3 for direct messages: validate, deliver, acknowledge.
    pub(super) fn direct(&mut self, event: request_response::Event<Vec<u8>, Ack>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let ack = match self.limits.check(Kind::Direct, &peer) {
                    Verdict::Allow => self.deliver_direct(&peer, &request),
                    Verdict::Drop => {
                        tracing::debug!(%peer, "direct message over its rate: answered busy");
                        Ack::Busy
                    }
                    Verdict::Flood => {
                        let reason = self.limits.rejection(Kind::Direct, &peer);
                        let ack =
                            Ack::rejected(&reason.as_ref().map_or_else(
                                || "over the rate limit".to_owned(),
                                |r| r.to_string(),
                            ));
                        // Past a graylisting, more reports say nothing new.
                        if self.strike(&peer) <= GRAYLIST_STRIKES
                            && let Some(reason) = reason
                        {
                            self.rejected(&peer, reason);
                        }
                        ack
                    }
                };
                // Fails only if the stream is gone; the sender sees that.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .direct
                    .send_response(channel, ack);
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(Sending {
                    to: peer, reply, ..
                }) = self.sends.remove(&request_id)
                {
                    let _ = reply.send(match response {
                        Ack::Accepted => Ok(()),
                        Ack::Busy => Err(P2pError::Busy { peer }),
                        Ack::Rejected(reason) => Err(P2pError::Rejected { peer, reason }),
                    });
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                let Some(sending) = self.sends.remove(&request_id) else {
                    return;
                };
                let peer_id = peer_id(&sending.to);
                if matches!(error, request_response::OutboundFailure::ConnectionClosed)
                    && !sending.resent
                    && self.swarm.is_connected(&peer_id)
                {
                    // The connection it rode was replaced (a relayed one
                    // closed once hole punching opened a direct one): the
                    // peer is still there. Receivers take a message twice
                    // harmlessly, so it goes again, once.
                    tracing::debug!(peer = %sending.to, "connection closed under a message: resending");
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .direct
                        .send_request(&peer_id, sending.bytes.clone());
                    self.sends.insert(
                        id,
                        Sending {
                            resent: true,
                            ..sending
                        },
                    );
                    return;
                }
                let Sending {
                    to: peer, reply, ..
                } = sending;
                {
                    let _ = reply.send(Err(P2pError::SendFailed {
                        peer,
                        cause: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound direct message failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Validates a direct message within its sender's rate and hands it on.
    pub(super) fn deliver_direct(&mut self, peer: &PeerId, request: &[u8]) -> Ack {
        match validate::direct(peer, request) {
            Ok((from, message)) => match self.events.try_send(P2pEvent::Direct { from, message }) {
                Ok(()) => Ack::Accepted,
                Err(_) => {
                    tracing::warn!(%peer, "event queue full: direct message answered busy");
                    Ack::Busy
                }
            },
            Err(reason) => {
                let ack = Ack::rejected(&reason.to_string());
                if reason.penalises() {
                    self.strike(peer);
                }
                self.rejected(peer, reason);
                ack
            }
        }
    }

    /// Counts a rejected direct message against `peer`'s gossipsub score,
    /// through the application-specific component (P5, weight 10): `n`
    /// strikes score `-10 n²`, the curve rejected gossip follows (P4), so
    /// three bad direct messages graylist a peer too. Kept while the peer
    /// stays connected.
    pub(super) fn strike(&mut self, peer: &PeerId) -> u32 {
        let strikes = self.strikes.entry(*peer).or_default();
        *strikes = strikes.saturating_add(1);
        let count = *strikes;
        let penalty = -f64::from(count).powi(2);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(peer, penalty);
        count
    }

    pub(super) fn rejected(&mut self, sender: &PeerId, reason: validate::Rejection) {
        let Ok(from) = node_id(sender) else {
            return;
        };
        if !reason.penalises() {
            tracing::debug!(peer = %from, %reason, "dropped a message of a newer protocol version");
            return;
        }
        tracing::warn!(peer = %from, %reason, "rejected a message");
        self.emit(P2pEvent::Rejected { from, reason });
    }
}
