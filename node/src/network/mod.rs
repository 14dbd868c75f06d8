//! Peer-to-peer networking: owns the libp2p `Swarm` and nothing else.
//!
//! `new` returns a cloneable [`Client`], the [`EventLoop`] that alone touches the swarm, and a
//! bounded stream of inbound exchange requests. Every command carries a oneshot reply; the event
//! loop keeps pending replies in maps keyed by request id. This module never decodes a
//! message: it moves frames, admits roster members only, and keeps them connected.

pub mod admission;
mod behaviour;
pub mod codec;
mod event_loop;
pub mod faults;
mod inbound;
pub mod republish;

use std::time::Duration;

use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use behaviour::BehaviourConfig;
pub use event_loop::EventLoop;
pub use faults::LinkFault;

use crate::identity::NodeIdentity;
use crate::roster::Membership;

/// Inbound requests waiting for the exchange service (frames of up to 1 MiB each). Past this a
/// request is dropped, its stream resets, and the sender's outbox retries it.
const INBOUND_QUEUE: usize = 256;
const COMMAND_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot start networking: {0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {message} (is the port in use?)")]
    Listen { addr: Multiaddr, message: String },
}

/// Why a request to a peer got no response.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    #[error("no response in time")]
    Timeout,
    #[error("connection closed before the response")]
    ConnectionClosed,
    #[error("peer does not speak the exchange protocol")]
    UnsupportedProtocol,
    #[error("stream error: {0}")]
    Io(String),
    #[error("the network is shutting down")]
    Shutdown,
}

/// Inbound evidence requests waiting for the evidence service (small frames).
const EVIDENCE_QUEUE: usize = 64;

/// An exchange request from an admitted peer, with the channel to answer it on.
#[derive(Debug)]
pub struct InboundRequest {
    pub peer: PeerId,
    pub frame: Vec<u8>,
    pub channel: ResponseChannel<Vec<u8>>,
    /// When it arrived, for the exchange's record (given back with the answer).
    pub started: crate::opmon::Started,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NetworkStatus {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub connected: Vec<String>,
    /// Each member's rate budget, and what each member sent beyond it since the node started
    /// (exchange, evidence, gossip), by PeerId.
    pub rates: admission::Rates,
    pub turned_away: Vec<(String, [u64; 3])>,
}

#[derive(Debug)]
enum Command {
    Request {
        peer: PeerId,
        frame: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RequestError>>,
    },
    Respond {
        channel: ResponseChannel<Vec<u8>>,
        frame: Vec<u8>,
    },
    Status {
        reply: oneshot::Sender<NetworkStatus>,
    },
    /// An evidence request (`/comity/evidence/2.0.0`).
    EvidenceRequest {
        peer: PeerId,
        frame: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RequestError>>,
    },
    EvidenceRespond {
        channel: ResponseChannel<Vec<u8>>,
        frame: Vec<u8>,
    },
    /// Publish on the bloc's checkpoints topic.
    Publish {
        data: Vec<u8>,
        /// Whether it went to at least one member.
        sent: oneshot::Sender<bool>,
    },
    /// Publish on the bloc's governance topic.
    PublishGovernance { data: Vec<u8> },
    /// Start the network again under a new transport key.
    Rekey { keypair: libp2p::identity::Keypair },
    /// Fault injection (testnets): cut or restore the link to a member.
    SetLink { peer: PeerId, cut: bool },
}

/// The rest of the node's handle on the network.
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    connected: broadcast::Sender<PeerId>,
    gossip: broadcast::Sender<(PeerId, Vec<u8>)>,
    governance: broadcast::Sender<(PeerId, Vec<u8>)>,
    /// Fault injection on links (testnets): empty, and passing everything, otherwise.
    faults: faults::Faults,
    /// Where every exchange is recorded (operational monitoring, metrics).
    tap: crate::opmon::Tap,
}

impl Client {
    /// Sends one exchange request frame and waits for the response frame.
    pub async fn request(&self, peer: PeerId, frame: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        self.request_about(peer, frame, None).await
    }

    /// [`Client::request`] for a request about one case (its record names the case in `full`
    /// logging mode).
    pub async fn request_about(
        &self,
        peer: PeerId,
        frame: Vec<u8>,
        case: Option<comity_protocol::CaseId>,
    ) -> Result<Vec<u8>, RequestError> {
        let (mut started, bytes) = (self.tap.start(peer, "exchange", &frame), frame.len());
        if let Some(case) = case {
            started.about(case);
        }
        let result = self.send_request(peer, frame).await;
        self.tap.sent(started, bytes as u64, &result);
        result
    }

    async fn send_request(&self, peer: PeerId, frame: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        let frame = self.faults.outbound(peer, frame).await?;
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Request { peer, frame, reply })
            .await
            .map_err(|_| RequestError::Shutdown)?;
        rx.await.map_err(|_| RequestError::Shutdown)?
    }

    /// Answers a request (`started` arrived with it, `request` is its bytes: for the
    /// exchange's record).
    pub async fn respond(
        &self,
        (started, request): (crate::opmon::Started, &[u8]),
        channel: ResponseChannel<Vec<u8>>,
        frame: Vec<u8>,
    ) {
        self.tap.answered(started, request, &frame);
        // If the loop is gone the node is stopping; the peer will retry and get the same receipt.
        let _ = self
            .commands
            .send(Command::Respond { channel, frame })
            .await;
    }

    /// Sends one evidence request frame and waits for the response frame.
    pub async fn evidence_request(
        &self,
        peer: PeerId,
        frame: Vec<u8>,
    ) -> Result<Vec<u8>, RequestError> {
        let (mut started, bytes) = (self.tap.start(peer, "evidence", &frame), frame.len());
        if started.keeps_cases()
            && let Some(case) = evidence_case(&frame)
        {
            started.about(case);
        }
        let result = self.send_evidence_request(peer, frame).await;
        self.tap.sent(started, bytes as u64, &result);
        result
    }

    async fn send_evidence_request(
        &self,
        peer: PeerId,
        frame: Vec<u8>,
    ) -> Result<Vec<u8>, RequestError> {
        let frame = self.faults.outbound(peer, frame).await?;
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::EvidenceRequest { peer, frame, reply })
            .await
            .map_err(|_| RequestError::Shutdown)?;
        rx.await.map_err(|_| RequestError::Shutdown)?
    }

    /// Answers an evidence request (`started` arrived with it, `request` is its bytes).
    pub async fn evidence_respond(
        &self,
        (mut started, request): (crate::opmon::Started, &[u8]),
        channel: ResponseChannel<Vec<u8>>,
        frame: Vec<u8>,
    ) {
        if started.keeps_cases()
            && let Some(case) = evidence_case(request)
        {
            started.about(case);
        }
        self.tap.answered(started, request, &frame);
        // If the loop is gone the node is stopping; the receiver asks again later.
        let _ = self
            .commands
            .send(Command::EvidenceRespond { channel, frame })
            .await;
    }

    pub async fn status(&self) -> Option<NetworkStatus> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Status { reply }).await.ok()?;
        rx.await.ok()
    }

    /// Puts `fault` in force on the link to a peer (testnets): a cut closes its connections
    /// and refuses new ones; the other faults apply to the requests sent to it.
    pub async fn set_link(&self, peer: PeerId, fault: LinkFault) {
        let cut = fault.cut;
        self.faults.set(peer, fault);
        let _ = self.commands.send(Command::SetLink { peer, cut }).await;
    }

    /// Publishes `data` to the bloc on the checkpoints topic, best effort; whether it went to
    /// at least one member (none may be connected, or none has told its subscription yet).
    pub async fn publish(&self, data: Vec<u8>) -> bool {
        let (sent, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::Publish { data, sent })
            .await
            .is_err()
        {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Starts the network again under a new transport key (this node's rotation applied).
    pub async fn rekey(&self, keypair: libp2p::identity::Keypair) {
        let _ = self.commands.send(Command::Rekey { keypair }).await;
    }

    /// Publishes `data` on the bloc's governance topic (configurations and proposals).
    pub async fn publish_governance(&self, data: Vec<u8>) {
        let _ = self
            .commands
            .send(Command::PublishGovernance { data })
            .await;
    }

    /// Messages published on the governance topic by members (or, while this node holds no
    /// configuration, by its bootstrap peers), with their publisher.
    pub fn governance(&self) -> broadcast::Receiver<(PeerId, Vec<u8>)> {
        self.governance.subscribe()
    }

    /// Messages published on the checkpoints topic, with their (signed) publisher.
    pub fn gossip(&self) -> broadcast::Receiver<(PeerId, Vec<u8>)> {
        self.gossip.subscribe()
    }

    /// Peers as they (re)connect: the outbox retries their queue at once.
    pub fn connections(&self) -> broadcast::Receiver<PeerId> {
        self.connected.subscribe()
    }
}

/// The case an evidence request is about (its frames are small: read whole).
fn evidence_case(frame: &[u8]) -> Option<comity_protocol::CaseId> {
    use comity_protocol::evidence::{EvidenceRequest, MAX_EVIDENCE_REQUEST};
    comity_protocol::from_cbor::<EvidenceRequest>(frame, MAX_EVIDENCE_REQUEST)
        .ok()
        .map(|r| r.case_id())
}

/// Everything the network needs to start.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    pub identity: NodeIdentity,
    pub membership: Membership,
    /// Peers to reach while this node holds no configuration (it is joining).
    pub bootstrap: Vec<(PeerId, Multiaddr)>,
    pub listen: Vec<Multiaddr>,
    pub behaviour: BehaviourConfig,
    pub redial_interval: Duration,
    /// Members reached at these addresses only (`[network] routes`).
    pub routes: std::collections::BTreeMap<comity_protocol::Jurisdiction, Multiaddr>,
    /// Where exchanges are recorded ([`crate::opmon::Tap::off`] keeps none).
    pub tap: crate::opmon::Tap,
}

/// What peers ask of this node: exchange requests for the case service, evidence requests for
/// the evidence service.
#[derive(Debug)]
pub struct Inbound {
    pub exchange: mpsc::Receiver<InboundRequest>,
    pub evidence: mpsc::Receiver<InboundRequest>,
}

pub fn new(settings: NetworkSettings) -> Result<(Client, EventLoop, Inbound), NetworkError> {
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let (evidence_tx, evidence_rx) = mpsc::channel(EVIDENCE_QUEUE);
    let (connected_tx, _) = broadcast::channel(256);
    let (gossip_tx, _) = broadcast::channel(256);
    let (governance_tx, _) = broadcast::channel(256);
    let tap = settings.tap.clone();
    let event_loop = EventLoop::new(
        settings,
        commands_rx,
        inbound_tx,
        evidence_tx,
        connected_tx.clone(),
        (gossip_tx.clone(), governance_tx.clone()),
    )?;
    Ok((
        Client {
            commands: commands_tx,
            connected: connected_tx,
            gossip: gossip_tx,
            governance: governance_tx,
            faults: faults::Faults::default(),
            tap,
        },
        event_loop,
        Inbound {
            exchange: inbound_rx,
            evidence: evidence_rx,
        },
    ))
}
