//! What members ask of this node, as the event loop takes it in: each request through its
//! member's rate budget (answered at once, unread, when over it), then to the service that
//! answers it; answers to this node's own requests back to whoever waits for them.

use libp2p::PeerId;
use libp2p::request_response;
use tracing::{debug, warn};

use super::admission::Door;
use super::event_loop::{EventLoop, Pending};
use super::{InboundRequest, RequestError};

impl EventLoop {
    /// Events of the exchange protocol, or (`evidence`) of the evidence protocol: the same
    /// frames, each to its own service and its own pending map.
    pub(super) fn on_exchange_event(
        &mut self,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
        evidence: bool,
    ) {
        use request_response::{Event, InboundFailure, Message, OutboundFailure};
        fn pending(this: &mut EventLoop, evidence: bool) -> &mut Pending {
            match evidence {
                true => &mut this.pending_evidence,
                false => &mut this.pending,
            }
        }
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let door = if evidence {
                    Door::Evidence
                } else {
                    Door::Exchange
                };
                if !self.within_budget(peer, door) {
                    // Answered at once, unread: the sender's outbox retries.
                    let busy = super::admission::over_budget_frame(door, self.admission.rates());
                    let behaviour = self.swarm.behaviour_mut();
                    let _ = match door {
                        Door::Evidence => behaviour.evidence.send_response(channel, busy),
                        _ => behaviour.exchange.send_response(channel, busy),
                    };
                    return;
                }
                let inbound_queue = match evidence {
                    true => &self.evidence_inbound,
                    false => &self.inbound,
                };
                let protocol = if evidence { "evidence" } else { "exchange" };
                let inbound = InboundRequest {
                    started: self.tap.arrived(peer, protocol, &request),
                    peer,
                    frame: request,
                    channel,
                };
                if let Err(e) = inbound_queue.try_send(inbound) {
                    // Dropping the channel resets the stream; the sender's outbox retries.
                    debug!(%peer, "inbound queue full, request dropped for retry");
                    drop(e);
                }
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = pending(self, evidence).remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                request_id, error, ..
            } => {
                let error = match error {
                    OutboundFailure::DialFailure => {
                        RequestError::Unreachable("no connection could be made".into())
                    }
                    OutboundFailure::Timeout => RequestError::Timeout,
                    OutboundFailure::ConnectionClosed => RequestError::ConnectionClosed,
                    OutboundFailure::UnsupportedProtocols => RequestError::UnsupportedProtocol,
                    OutboundFailure::Io(e) => RequestError::Io(e.to_string()),
                };
                if let Some(reply) = pending(self, evidence).remove(&request_id) {
                    let _ = reply.send(Err(error));
                }
            }
            Event::InboundFailure { peer, error, .. } => match error {
                InboundFailure::Io(e) => {
                    // Oversized or cut-off frames: counted, and logged once per interval.
                    debug!(%peer, error = %e, "refused inbound exchange stream");
                    let now = std::time::Instant::now();
                    self.admission.refused_stream(peer);
                    self.report_budget(now);
                }
                other => debug!(%peer, error = %other, "inbound exchange failed"),
            },
            Event::ResponseSent { .. } => {}
        }
    }

    /// Whether a message of `peer` through `door` is within the member's rate budget.
    pub(super) fn within_budget(&mut self, peer: PeerId, door: Door) -> bool {
        let now = std::time::Instant::now();
        let admitted = self.admission.admit(peer, door, now);
        self.report_budget(now);
        admitted
    }

    /// Logs, once per interval, what members sent beyond their budgets, with counts.
    pub(super) fn report_budget(&mut self, now: std::time::Instant) {
        let rates = self.admission.rates();
        for (peer, door, n) in self.admission.report(now) {
            let member = self
                .roster
                .by_peer(&peer)
                .map(|(m, _)| m.jurisdiction.to_string());
            warn!(%peer, member, turned_away = n, what = door.name(), rate_per_s = rates.of(door), "a member sent beyond its rate budget; the rest were answered \"retry shortly\" unread (gossip: dropped)");
        }
        for (peer, n) in self.admission.report_refused(now) {
            let member = self
                .roster
                .by_peer(&peer)
                .map(|(m, _)| m.jurisdiction.to_string());
            warn!(%peer, member, streams = n, "refused inbound streams (oversized or cut-off frames)");
        }
    }
}
