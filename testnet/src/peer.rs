//! A bare exchange peer for tests and fault injection: the node's own network layer with a
//! roster of one target, sending whatever frames the test hands it — malformed, oversized,
//! forged, replayed — to see how a real node answers; or, standing in for a member at its
//! address, answering a real node's pushes as a lying receiver would (see [`Lie`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use comity_node::identity::NodeIdentity;
use comity_node::network::codec::FrameCodec;
use comity_node::network::{self, BehaviourConfig, NetworkSettings, RequestError};
use comity_node::roster::{Member, Roster};
use comity_protocol::{
    AssistanceRequest, CaseEvent, CaseId, EventKind, EventPush, EventsPage, ExchangeRequest,
    ExchangeResponse, Hash32, Jurisdiction, MessageId, Receipt, Receipted, RejectCode, Rejection,
    SignedEnvelope, Timestamp, from_cbor, limits, to_canonical_cbor,
};
use libp2p::{Multiaddr, PeerId};
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
        let (client, event_loop, _inbound) =
            Self::network(identity, target, "/ip4/127.0.0.1/tcp/0".parse()?, frames)?;
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(event_loop.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(Self { client, stop })
    }

    /// Starts a peer with `identity` in bloc `bloc` (its gossip topics are that bloc's), which
    /// knows only `target`: to publish on the bloc's topics as a member would.
    pub async fn start_in_bloc(
        bloc: &str,
        identity: NodeIdentity,
        target: &Member,
    ) -> anyhow::Result<Self> {
        let (client, event_loop, _inbound) = Self::network_in(
            bloc,
            identity,
            target,
            "/ip4/127.0.0.1/tcp/0".parse()?,
            FrameCodec::default(),
        )?;
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(event_loop.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(Self { client, stop })
    }

    /// Publishes `data` on the bloc's checkpoints topic (reports, checkpoints).
    pub async fn publish(&self, data: Vec<u8>) {
        self.client.publish(data).await;
    }

    /// Starts a peer with `identity` (a member's own, taken from its directory while that
    /// member is down) listening at `listen` (that member's address), which answers every push
    /// from `sender` as `lie` says at the time. Other requests are answered `Unavailable`.
    pub async fn lying_receiver(
        identity: NodeIdentity,
        me: Jurisdiction,
        listen: Multiaddr,
        sender: &Member,
        sender_key: &comity_protocol::PublicKey,
        lie: Arc<Mutex<Lie>>,
    ) -> anyhow::Result<Self> {
        let sender_key = sender_key.verifying_key()?;
        let (client, event_loop, mut inbound) =
            Self::network(identity.clone(), sender, listen, FrameCodec::default())?;
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(event_loop.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let answering = client.clone();
        tokio::spawn(async move {
            while let Some(request) = inbound.exchange.recv().await {
                let lie = lie.lock().expect("lock").clone();
                let answer = lie.answer(&identity, &me, &sender_key, &request.frame);
                let frame = to_canonical_cbor(&answer).expect("responses encode");
                answering
                    .respond((request.started, &request.frame), request.channel, frame)
                    .await;
            }
        });
        Ok(Self { client, stop })
    }

    fn network(
        identity: NodeIdentity,
        target: &Member,
        listen: Multiaddr,
        frames: FrameCodec,
    ) -> anyhow::Result<(network::Client, network::EventLoop, network::Inbound)> {
        Self::network_in("raw", identity, target, listen, frames)
    }

    fn network_in(
        bloc: &str,
        identity: NodeIdentity,
        target: &Member,
        listen: Multiaddr,
        frames: FrameCodec,
    ) -> anyhow::Result<(network::Client, network::EventLoop, network::Inbound)> {
        // A raw peer holds no bloc configuration: it knows `target` as a bootstrap peer,
        // which it admits and dials.
        let address = target
            .addresses
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{} has no address", target.jurisdiction))?;
        Ok(network::new(NetworkSettings {
            identity,
            membership: comity_node::roster::Membership::fixed(Roster::empty(bloc)),
            bootstrap: vec![(target.peer_id, address)],
            listen: vec![listen],
            behaviour: BehaviourConfig {
                bloc: bloc.into(),
                mdns: false,
                max_connections: 16,
                max_connections_per_peer: 4,
                max_pending_incoming: 16,
                request_timeout: Duration::from_secs(10),
                frames,
                // A raw peer takes whatever the node under test sends it.
                rates: comity_node::network::admission::Rates {
                    exchange: 0,
                    evidence: 0,
                    gossip: 0,
                },
                ping_interval: Duration::from_secs(2),
                dead_after: Duration::from_secs(10),
            },
            redial_interval: Duration::from_millis(200),
            routes: Default::default(),
            tap: comity_node::opmon::Tap::off(),
        })?)
    }

    pub async fn send_frame(&self, peer: PeerId, frame: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        self.client.request(peer, frame).await
    }

    /// Sends an evidence request (`/comity/evidence/1.0.0`) and decodes the answer.
    pub async fn evidence(
        &self,
        peer: PeerId,
        request: &comity_protocol::evidence::EvidenceRequest,
    ) -> anyhow::Result<comity_protocol::evidence::EvidenceResponse> {
        let response = self
            .client
            .evidence_request(peer, to_canonical_cbor(request)?)
            .await?;
        Ok(from_cbor(
            &response,
            comity_protocol::evidence::MAX_EVIDENCE_RESPONSE,
        )?)
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

/// How a lying receiver answers a push.
#[derive(Clone, Debug)]
pub enum Lie {
    /// A receipt of exactly the push, signed with this key instead of the receiver's own.
    ForeignSignature(ed25519_dalek::SigningKey),
    /// A receipt signed with the receiver's own key that names another body than the push's.
    WrongBodyHash,
    /// A rejection with this code (nothing stored).
    Refuse(RejectCode),
    /// Pushes are answered `Unavailable`; every pull gets these events, whatever they are.
    Serve(Vec<SignedEnvelope>),
}

impl Lie {
    fn answer(
        &self,
        identity: &NodeIdentity,
        me: &Jurisdiction,
        sender: &ed25519_dalek::VerifyingKey,
        frame: &[u8],
    ) -> ExchangeResponse {
        let unavailable = |detail: &str| {
            ExchangeResponse::Rejected(Rejection {
                code: RejectCode::Unavailable,
                detail: detail.into(),
            })
        };
        let request = from_cbor::<ExchangeRequest>(frame, limits::MAX_REQUEST_FRAME);
        let envelope = match (self, request) {
            (Lie::Serve(events), Ok(ExchangeRequest::Pull(_))) => {
                return ExchangeResponse::Events(EventsPage {
                    events: events.clone(),
                    more: false,
                    answered_at: None,
                });
            }
            (Lie::Serve(_), _) => return unavailable("this peer only answers pulls"),
            (_, Ok(ExchangeRequest::Push(envelope))) => envelope,
            _ => return unavailable("a lying receiver answers pushes only"),
        };
        let Ok(push) = envelope.open::<EventPush>(sender) else {
            return unavailable("the push does not verify with the sender's key");
        };
        let mut receipt = Receipt {
            message_id: push.message_id,
            case_id: push.case_id,
            body_hash: envelope.body_hash(),
            receiver: me.clone(),
            received_at: Timestamp::now(),
        };
        let signed = match self {
            Lie::ForeignSignature(key) => SignedEnvelope::sign(&receipt, key),
            Lie::WrongBodyHash => {
                receipt.body_hash = Hash32([0x42; 32]);
                SignedEnvelope::sign(&receipt, &identity.signing_key())
            }
            Lie::Refuse(code) => {
                return ExchangeResponse::Rejected(Rejection {
                    code: *code,
                    detail: "refused by a lying receiver".into(),
                });
            }
            Lie::Serve(_) => unreachable!("answered above"),
        };
        ExchangeResponse::Receipt(Receipted {
            receipt: signed.expect("receipts encode"),
            events: vec![],
        })
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
