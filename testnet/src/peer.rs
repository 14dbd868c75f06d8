//! A bare exchange peer for tests and fault injection: the node's own network layer with a
//! roster of one target, sending whatever frames the test hands it — malformed, oversized,
//! forged, replayed — to see how a real node answers.

use std::sync::Arc;
use std::time::Duration;

use comity_node::identity::NodeIdentity;
use comity_node::network::codec::FrameCodec;
use comity_node::network::{self, BehaviourConfig, NetworkSettings, RequestError};
use comity_node::roster::{Member, Roster};
use comity_protocol::{
    AssistanceRequest, CaseEvent, CaseId, EventKind, EventPush, ExchangeRequest, ExchangeResponse,
    MessageId, SignedEnvelope, Timestamp, from_cbor, limits, to_canonical_cbor,
};
use libp2p::PeerId;
use tokio::sync::watch;

#[derive(Debug)]
pub struct RawPeer {
    client: network::Client,
    stop: watch::Sender<bool>,
}

impl RawPeer {
    /// Starts a peer with `identity` that knows only `target`.
    pub async fn start(identity: NodeIdentity, target: &Member) -> anyhow::Result<Self> {
        Self::start_with_limits(identity, target, FrameCodec::default()).await
    }

    /// As `start`, with other frame limits: to send what a well-behaved peer would refuse to.
    pub async fn start_with_limits(
        identity: NodeIdentity,
        target: &Member,
        frames: FrameCodec,
    ) -> anyhow::Result<Self> {
        let roster =
            Roster::new("raw".into(), vec![target.clone()]).map_err(|e| anyhow::anyhow!(e))?;
        let (client, event_loop, _inbound) = network::new(NetworkSettings {
            identity,
            roster: Arc::new(roster),
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            behaviour: BehaviourConfig {
                bloc: "raw".into(),
                mdns: false,
                max_connections: 16,
                max_connections_per_peer: 4,
                max_pending_incoming: 16,
                request_timeout: Duration::from_secs(10),
                frames,
            },
            redial_interval: Duration::from_millis(200),
        })?;
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(event_loop.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(Self { client, stop })
    }

    pub async fn send_frame(&self, peer: PeerId, frame: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        self.client.request(peer, frame).await
    }

    /// Sends a signed push and decodes the answer.
    pub async fn push(
        &self,
        peer: PeerId,
        envelope: &SignedEnvelope,
    ) -> anyhow::Result<ExchangeResponse> {
        let frame = to_canonical_cbor(&ExchangeRequest::Push(envelope.clone()))?;
        let response = self.send_frame(peer, frame).await?;
        Ok(from_cbor(&response, limits::MAX_RESPONSE_FRAME)?)
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The genesis event of a new case carrying `request`, signed with `key`.
pub fn genesis(
    key: &ed25519_dalek::SigningKey,
    case_id: CaseId,
    request: AssistanceRequest,
) -> SignedEnvelope {
    let event = CaseEvent {
        case_id,
        author: request.requesting.clone(),
        seq: 1,
        links: vec![],
        at: Timestamp::now(),
        kind: EventKind::Submitted {
            request: Box::new(request),
            approval: comity_protocol::examples::sample_approval(),
        },
    };
    SignedEnvelope::sign(&event, key).expect("events encode")
}

/// A push of `events` of `case_id`, signed with `key`.
pub fn signed_push(
    key: &ed25519_dalek::SigningKey,
    case_id: CaseId,
    events: Vec<SignedEnvelope>,
) -> SignedEnvelope {
    let push = EventPush {
        message_id: MessageId::new(),
        case_id,
        sent_at: Timestamp::now(),
        events,
    };
    SignedEnvelope::sign(&push, key).expect("pushes encode")
}
