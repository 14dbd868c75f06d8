//! The network actor: the only owner of the `Swarm`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, mdns, noise, tcp, yamux};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::{Command, InboundRequest, NetworkError, NetworkSettings, NetworkStatus, RequestError};
use crate::roster::Roster;

pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    roster: Arc<Roster>,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<InboundRequest>,
    evidence_inbound: mpsc::Sender<InboundRequest>,
    connected_tx: broadcast::Sender<PeerId>,
    gossip_tx: broadcast::Sender<(PeerId, Vec<u8>)>,
    topic: gossipsub::IdentTopic,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, RequestError>>>,
    /// Evidence requests in flight (ids are per behaviour, hence a map of their own).
    pending_evidence: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, RequestError>>>,
    connected: HashSet<PeerId>,
    /// Members whose link a fault injection cut: not redialled until restored.
    cut: HashSet<PeerId>,
    listen: Vec<Multiaddr>,
    redial_interval: Duration,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer_id", self.swarm.local_peer_id())
            .finish_non_exhaustive()
    }
}

impl EventLoop {
    pub(super) fn new(
        settings: NetworkSettings,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Sender<InboundRequest>,
        evidence_inbound: mpsc::Sender<InboundRequest>,
        connected_tx: broadcast::Sender<PeerId>,
        gossip_tx: broadcast::Sender<(PeerId, Vec<u8>)>,
    ) -> Result<Self, NetworkError> {
        let setup = |e: &dyn std::fmt::Display| NetworkError::Setup(e.to_string());
        let behaviour_config = settings.behaviour.clone();
        let mut swarm =
            libp2p::SwarmBuilder::with_existing_identity(settings.identity.keypair().clone())
                .with_tokio()
                .with_tcp(
                    tcp::Config::default().nodelay(true),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .map_err(|e| setup(&e))?
                .with_behaviour(|key| {
                    Behaviour::new(key, &behaviour_config)
                        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                })
                .map_err(|e| setup(&e))?
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
                .build();

        let local = *swarm.local_peer_id();
        for member in settings.roster.members() {
            if member.peer_id == local {
                continue;
            }
            swarm.behaviour_mut().allow.allow_peer(member.peer_id);
            for addr in &member.addresses {
                swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&member.peer_id, addr.clone());
            }
        }
        let topic =
            gossipsub::IdentTopic::new(format!("/comity/{}/checkpoints/2", settings.roster.bloc()));
        swarm
            .behaviour_mut()
            .gossip
            .subscribe(&topic)
            .map_err(|e| NetworkError::Setup(e.to_string()))?;
        for addr in &settings.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetworkError::Listen {
                    addr: addr.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(Self {
            swarm,
            roster: settings.roster,
            commands,
            inbound,
            evidence_inbound,
            connected_tx,
            gossip_tx,
            topic,
            pending: HashMap::new(),
            pending_evidence: HashMap::new(),
            connected: HashSet::new(),
            cut: HashSet::new(),
            listen: Vec::new(),
            redial_interval: settings.redial_interval,
        })
    }

    /// Runs until `shutdown` resolves or every client handle is dropped.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut redial = tokio::time::interval(self.redial_interval);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                _ = redial.tick() => self.dial_missing_members(),
                _ = &mut shutdown => break,
            }
        }
        for (_, reply) in self.pending.drain().chain(self.pending_evidence.drain()) {
            let _ = reply.send(Err(RequestError::Shutdown));
        }
        info!("network stopped");
    }

    fn dial_missing_members(&mut self) {
        let local = *self.swarm.local_peer_id();
        let missing: Vec<_> = self
            .roster
            .members()
            .iter()
            .filter(|m| {
                m.peer_id != local
                    && !self.connected.contains(&m.peer_id)
                    && !self.cut.contains(&m.peer_id)
            })
            .map(|m| (m.peer_id, m.addresses.clone()))
            .collect();
        for (peer, addresses) in missing {
            let opts = DialOpts::peer_id(peer)
                .addresses(addresses)
                .extend_addresses_through_behaviour()
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(%peer, error = %e, "dial not started");
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request { peer, frame, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .exchange
                    .send_request(&peer, frame);
                self.pending.insert(id, reply);
            }
            Command::Respond { channel, frame } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .exchange
                    .send_response(channel, frame)
                    .is_err()
                {
                    debug!("response not sent: the peer closed the stream");
                }
            }
            Command::EvidenceRequest { peer, frame, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .evidence
                    .send_request(&peer, frame);
                self.pending_evidence.insert(id, reply);
            }
            Command::EvidenceRespond { channel, frame } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .evidence
                    .send_response(channel, frame)
                    .is_err()
                {
                    debug!("evidence response not sent: the peer closed the stream");
                }
            }
            Command::Publish { data } => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(self.topic.clone(), data)
                {
                    debug!(error = %e, "nothing published");
                }
            }
            Command::SetLink { peer, cut } => {
                if cut {
                    warn!(%peer, "fault injection: link cut");
                    self.cut.insert(peer);
                    self.swarm.behaviour_mut().allow.disallow_peer(peer);
                } else {
                    warn!(%peer, "fault injection: link restored");
                    self.cut.remove(&peer);
                    self.swarm.behaviour_mut().allow.allow_peer(peer);
                    self.dial_missing_members();
                }
            }
            Command::Status { reply } => {
                let mut connected: Vec<String> =
                    self.connected.iter().map(|p| p.to_string()).collect();
                connected.sort();
                let _ = reply.send(NetworkStatus {
                    peer_id: self.swarm.local_peer_id().to_string(),
                    listen_addrs: self.listen.iter().map(|a| a.to_string()).collect(),
                    connected,
                });
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                if self.connected.insert(peer_id) {
                    let member = self
                        .roster
                        .by_peer(&peer_id)
                        .map(|(m, _)| m.jurisdiction.to_string());
                    info!(peer = %peer_id, member = ?member, "member connected");
                    let _ = self.connected_tx.send(peer_id);
                }
                debug!(peer = %peer_id, connections = num_established.get(), "connection established");
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                self.connected.remove(&peer_id);
                info!(peer = %peer_id, cause = ?cause.map(|c| c.to_string()), "member disconnected");
            }
            SwarmEvent::IncomingConnectionError {
                peer_id,
                error,
                send_back_addr,
                ..
            } => match error {
                ListenError::Denied { cause } => warn!(
                    peer = ?peer_id.map(|p| p.to_string()),
                    remote = %send_back_addr,
                    reason = %cause,
                    "refused connection: peer is not a member of the bloc roster or over the limits"
                ),
                other => {
                    debug!(remote = %send_back_addr, error = %other, "incoming connection failed")
                }
            },
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => match error {
                DialError::Denied { cause } => {
                    warn!(peer = ?peer_id.map(|p| p.to_string()), reason = %cause, "refused outgoing connection")
                }
                other => {
                    debug!(peer = ?peer_id.map(|p| p.to_string()), error = %other, "dial failed")
                }
            },
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Exchange(event) => self.on_exchange_event(event, false),
            BehaviourEvent::Evidence(event) => self.on_exchange_event(event, true),
            BehaviourEvent::Gossip(gossipsub::Event::Message { message, .. }) => {
                // Only members' messages count; the publisher's signature was checked.
                if let Some(source) = message.source
                    && self.roster.by_peer(&source).is_some()
                {
                    let _ = self.gossip_tx.send((source, message.data));
                }
            }
            // Learn members' current addresses; never strangers'.
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if self.roster.by_peer(&peer_id).is_some() =>
            {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if self.roster.by_peer(&peer).is_some() && !self.connected.contains(&peer) {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer, addr.clone());
                        let _ = self.swarm.dial(
                            DialOpts::peer_id(peer)
                                .addresses(vec![addr])
                                .condition(PeerCondition::DisconnectedAndNotDialing)
                                .build(),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Events of the exchange protocol, or (`evidence`) of the evidence protocol: the same
    /// frames, each to its own service and its own pending map.
    fn on_exchange_event(
        &mut self,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
        evidence: bool,
    ) {
        use request_response::{Event, InboundFailure, Message, OutboundFailure};
        let (inbound_queue, pending) = if evidence {
            (&self.evidence_inbound, &mut self.pending_evidence)
        } else {
            (&self.inbound, &mut self.pending)
        };
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let inbound = InboundRequest {
                    peer,
                    frame: request,
                    channel,
                };
                if let Err(e) = inbound_queue.try_send(inbound) {
                    // Dropping the channel resets the stream; the sender's outbox retries.
                    warn!(%peer, "inbound queue full, request dropped for retry");
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
                if let Some(reply) = pending.remove(&request_id) {
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
                if let Some(reply) = pending.remove(&request_id) {
                    let _ = reply.send(Err(error));
                }
            }
            Event::InboundFailure { peer, error, .. } => match error {
                InboundFailure::Io(e) => {
                    warn!(%peer, error = %e, "refused inbound exchange stream")
                }
                other => debug!(%peer, error = %other, "inbound exchange failed"),
            },
            Event::ResponseSent { .. } => {}
        }
    }
}
