//! The network actor: the only owner of the `Swarm`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, mdns, ping};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use super::admission::{Admission, Door};
use super::behaviour::{Behaviour, BehaviourEvent};
use super::{Command, InboundRequest, NetworkError, NetworkSettings, NetworkStatus, RequestError};
use crate::roster::Roster;
use tokio::sync::watch;

/// How long a member's old PeerId stays admitted after its transport key rotated.
const RETIRING_PEER_GRACE: Duration = Duration::from_secs(300);

/// Where messages of one gossip topic go, with their publisher.
type Gossip = broadcast::Sender<(PeerId, Vec<u8>)>;

/// Requests in flight, by id, each with where its answer goes.
pub(super) type Pending =
    HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, RequestError>>>;

/// How often gossip dropped for a slow member is reported.
const GOSSIP_DROP_REPORT: Duration = Duration::from_secs(60);

pub struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) roster: Arc<Roster>,
    pub(super) membership: watch::Receiver<Arc<Roster>>,
    pub(super) bootstrap: Vec<(PeerId, Multiaddr)>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) inbound: mpsc::Sender<InboundRequest>,
    pub(super) evidence_inbound: mpsc::Sender<InboundRequest>,
    pub(super) connected_tx: broadcast::Sender<PeerId>,
    pub(super) gossip_tx: broadcast::Sender<(PeerId, Vec<u8>)>,
    pub(super) governance_tx: broadcast::Sender<(PeerId, Vec<u8>)>,
    pub(super) topic: gossipsub::IdentTopic,
    pub(super) governance_topic: gossipsub::IdentTopic,
    pub(super) pending: Pending,
    /// Evidence requests in flight (ids are per behaviour, hence a map of their own).
    pub(super) pending_evidence: Pending,
    pub(super) connected: HashSet<PeerId>,
    /// Members whose link a fault injection cut: not redialled until restored.
    pub(super) cut: HashSet<PeerId>,
    /// Old PeerIds of members whose transport key rotated, still admitted until the given
    /// time, so that the member learns (over its old connections) of the version that moved
    /// it: without this, a member could be locked out by its own rotation.
    pub(super) retiring: HashMap<PeerId, std::time::Instant>,
    pub(super) listen: Vec<Multiaddr>,
    /// What the swarm was built from, to build it again under a new transport key.
    pub(super) listen_config: Vec<Multiaddr>,
    pub(super) behaviour: super::BehaviourConfig,
    pub(super) redial_interval: Duration,
    /// When each connection last answered a ping (or opened): one silent for longer than
    /// `dead_after` is closed (see [`EventLoop::close_silent`]).
    pub(super) alive: HashMap<libp2p::swarm::ConnectionId, (PeerId, std::time::Instant)>,
    /// When the silence check last ran (every second, unless the node is starved).
    pub(super) last_keepalive: Option<std::time::Instant>,
    /// Gossip dropped for members that read too slowly, since each was last reported (once a
    /// minute at most).
    pub(super) gossip_dropped: HashMap<PeerId, (std::time::Instant, usize)>,
    /// Members reached at these addresses only, by jurisdiction (`[network] routes`).
    pub(super) routes: std::collections::BTreeMap<comity_protocol::Jurisdiction, Multiaddr>,
    /// Each member's rate budget at the door.
    pub(super) admission: Admission,
    /// Where exchanges are recorded (operational monitoring, metrics).
    pub(super) tap: crate::opmon::Tap,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer_id", self.swarm.local_peer_id())
            .finish_non_exhaustive()
    }
}

impl EventLoop {
    /// Starts the network again under a new transport key (a rotation applied): requests in
    /// flight fail (their outboxes retry), connections and listeners close, and the new
    /// identity listens on the same addresses and dials the members.
    fn rekey(&mut self, keypair: libp2p::identity::Keypair) {
        let topics = [&self.topic, &self.governance_topic];
        // The old swarm must release its ports before the new one listens.
        let quiet = match super::behaviour::build_swarm(
            keypair.clone(),
            &self.behaviour,
            &topics,
            &[],
        ) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot start the network under the new transport key; keeping the old one");
                return;
            }
        };
        drop(std::mem::replace(&mut self.swarm, quiet));
        for (_, reply) in self.pending.drain().chain(self.pending_evidence.drain()) {
            let _ = reply.send(Err(RequestError::ConnectionClosed));
        }
        self.connected.clear();
        self.alive.clear();
        self.listen.clear();
        for addr in &self.listen_config {
            if let Err(e) = self.swarm.listen_on(addr.clone()) {
                warn!(%addr, error = %e, "cannot listen under the new transport key");
            }
        }
        info!(peer_id = %self.swarm.local_peer_id(), "network started again under the new transport key");
        // A fresh allow-list: every member is admitted and dialled again.
        let empty = Arc::new(Roster::empty(self.roster.bloc()));
        let roster = std::mem::replace(&mut self.roster, empty);
        self.apply_roster(roster);
    }

    pub(super) fn new(
        settings: NetworkSettings,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Sender<InboundRequest>,
        evidence_inbound: mpsc::Sender<InboundRequest>,
        connected_tx: broadcast::Sender<PeerId>,
        (gossip_tx, governance_tx): (Gossip, Gossip),
    ) -> Result<Self, NetworkError> {
        let roster = settings.membership.current();
        let topic = gossipsub::IdentTopic::new(format!("/comity/{}/checkpoints/2", roster.bloc()));
        let governance_topic =
            gossipsub::IdentTopic::new(format!("/comity/{}/bloc/1", roster.bloc()));
        let swarm = super::behaviour::build_swarm(
            settings.identity.keypair(),
            &settings.behaviour,
            &[&topic, &governance_topic],
            &settings.listen,
        )?;
        let mut event_loop = Self {
            swarm,
            roster: Arc::new(Roster::empty(roster.bloc())),
            membership: settings.membership.watch(),
            bootstrap: settings.bootstrap,
            commands,
            inbound,
            evidence_inbound,
            connected_tx,
            gossip_tx,
            governance_tx,
            topic,
            governance_topic,
            pending: HashMap::new(),
            pending_evidence: HashMap::new(),
            connected: HashSet::new(),
            cut: HashSet::new(),
            retiring: HashMap::new(),
            listen: Vec::new(),
            listen_config: settings.listen,
            admission: Admission::new(settings.behaviour.rates, std::time::Instant::now()),
            behaviour: settings.behaviour,
            redial_interval: settings.redial_interval,
            routes: settings.routes,
            alive: HashMap::new(),
            last_keepalive: None,
            gossip_dropped: HashMap::new(),
            tap: settings.tap,
        };
        event_loop.apply_roster(roster);
        Ok(event_loop)
    }

    /// Makes the allow-list, the known addresses and the dials follow a new roster: new
    /// members are admitted and dialled, members no longer admitted are disconnected and
    /// refused. While the node holds no configuration, its bootstrap peers are admitted so
    /// that it can pull the chain.
    fn apply_roster(&mut self, roster: Arc<Roster>) {
        let local = *self.swarm.local_peer_id();
        let joining = roster.config().is_none();
        let before: HashSet<PeerId> = self
            .roster
            .members()
            .iter()
            .map(|m| m.peer_id)
            .chain(self.bootstrap.iter().map(|(p, _)| *p))
            .collect();
        let mut now: HashSet<PeerId> = roster.members().iter().map(|m| m.peer_id).collect();
        if joining {
            now.extend(self.bootstrap.iter().map(|(p, _)| *p));
        }
        now.remove(&local);
        for member in roster.members() {
            let addresses = match self.routes.get(&member.jurisdiction) {
                Some(route) => std::slice::from_ref(route),
                None => &member.addresses[..],
            };
            for addr in addresses {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&member.peer_id, addr.clone());
            }
        }
        for (peer, addr) in &self.bootstrap {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(peer, addr.clone());
        }
        for peer in &now {
            if !self.cut.contains(peer) {
                self.swarm.behaviour_mut().allow.allow_peer(*peer);
            }
        }
        for peer in before.difference(&now) {
            if *peer == local {
                continue;
            }
            let moved = self
                .roster
                .by_peer(peer)
                .is_some_and(|(m, _)| roster.by_jurisdiction(&m.jurisdiction).is_some());
            if moved {
                info!(%peer, "a member's old PeerId (its transport key rotated): admitted a few more minutes");
                self.retiring
                    .insert(*peer, std::time::Instant::now() + RETIRING_PEER_GRACE);
                continue;
            }
            info!(%peer, "no longer a member: disconnected and refused");
            self.swarm.behaviour_mut().allow.disallow_peer(*peer);
            let _ = self.swarm.disconnect_peer_id(*peer);
            self.connected.remove(peer);
            self.admission.forget(peer);
        }
        self.roster = roster;
        self.dial_missing_members();
    }

    /// Runs until `shutdown` resolves or every client handle is dropped.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut redial = tokio::time::interval(self.redial_interval);
        let mut keepalive = tokio::time::interval(Duration::from_secs(1));
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                _ = redial.tick() => {
                    self.end_retiring();
                    self.dial_missing_members();
                    self.report_budget(std::time::Instant::now());
                }
                _ = keepalive.tick() => self.close_silent(),
                changed = self.membership.changed() => {
                    if changed.is_ok() {
                        let roster = self.membership.borrow_and_update().clone();
                        self.apply_roster(roster);
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        for (_, reply) in self.pending.drain().chain(self.pending_evidence.drain()) {
            let _ = reply.send(Err(RequestError::Shutdown));
        }
        info!("network stopped");
    }

    /// Closes the connections that stopped answering pings, so that their members are shown
    /// disconnected, their requests fail over to retries, and they are dialled again. A link
    /// that silently stops carrying packets leaves TCP waiting for many minutes; this notices
    /// it within seconds. Not when this node itself was starved of CPU (its check came late):
    /// the silence may be its own, and cutting every member off would only add reconnections
    /// to the load.
    fn close_silent(&mut self) {
        let now = std::time::Instant::now();
        let late = self
            .last_keepalive
            .replace(now)
            .is_some_and(|last| now.duration_since(last) > Duration::from_secs(2));
        if late {
            for (_, last) in self.alive.values_mut() {
                *last = now;
            }
            return;
        }
        let limit = self.behaviour.dead_after;
        let silent: Vec<_> = self
            .alive
            .iter()
            .filter(|(_, (_, last))| now.duration_since(*last) > limit)
            .map(|(c, (p, _))| (*c, *p))
            .collect();
        for (connection, peer) in silent {
            self.alive.remove(&connection);
            let member = self
                .roster
                .by_peer(&peer)
                .map(|(m, _)| m.jurisdiction.to_string());
            warn!(%peer, member = member.as_deref(), silent_secs = limit.as_secs(), "a connection stopped answering pings: closed");
            self.swarm.close_connection(connection);
        }
    }

    /// Refuses the old PeerIds whose grace ended.
    fn end_retiring(&mut self) {
        let now = std::time::Instant::now();
        let ended: Vec<PeerId> = self
            .retiring
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in ended {
            self.retiring.remove(&peer);
            if self.roster.by_peer(&peer).is_none() {
                info!(%peer, "a member's old PeerId: disconnected and refused");
                self.swarm.behaviour_mut().allow.disallow_peer(peer);
                let _ = self.swarm.disconnect_peer_id(peer);
                self.connected.remove(&peer);
                self.admission.forget(&peer);
            }
        }
    }

    /// The address a member is reached at only, if the node routes it (`[network] routes`).
    fn route(&self, peer: &PeerId) -> Option<&Multiaddr> {
        let (member, _) = self.roster.by_peer(peer)?;
        self.routes.get(&member.jurisdiction)
    }

    fn dial_missing_members(&mut self) {
        let local = *self.swarm.local_peer_id();
        let joining = self.roster.config().is_none();
        let missing: Vec<_> = self
            .roster
            .members()
            .iter()
            .map(|m| match self.routes.get(&m.jurisdiction) {
                Some(route) => (m.peer_id, vec![route.clone()]),
                None => (m.peer_id, m.addresses.clone()),
            })
            .chain(
                self.bootstrap
                    .iter()
                    .filter(|_| joining)
                    .map(|(p, a)| (*p, vec![a.clone()])),
            )
            .filter(|(peer, _)| {
                *peer != local && !self.connected.contains(peer) && !self.cut.contains(peer)
            })
            .collect();
        for (peer, addresses) in missing {
            let mut opts = DialOpts::peer_id(peer).addresses(addresses);
            if self.route(&peer).is_none() {
                opts = opts.extend_addresses_through_behaviour();
            }
            let opts = opts
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
            Command::Rekey { keypair } => self.rekey(keypair),
            Command::PublishGovernance { data } => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(self.governance_topic.clone(), data)
                {
                    debug!(error = %e, "nothing published on the governance topic");
                }
            }
            Command::Publish { data, sent } => {
                let published = self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(self.topic.clone(), data);
                if let Err(e) = &published {
                    debug!(error = %e, "nothing published");
                }
                let _ = sent.send(published.is_ok());
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
                let turned_away = self
                    .roster
                    .members()
                    .iter()
                    .map(|m| {
                        (
                            m.peer_id.to_string(),
                            self.admission.turned_away(&m.peer_id),
                        )
                    })
                    .collect();
                let _ = reply.send(NetworkStatus {
                    peer_id: self.swarm.local_peer_id().to_string(),
                    listen_addrs: self.listen.iter().map(|a| a.to_string()).collect(),
                    connected,
                    rates: self.admission.rates(),
                    turned_away,
                });
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        let p2p = &crate::metrics::get().p2p;
        p2p.record(&event);
        if let SwarmEvent::Behaviour(behaviour) = &event {
            match behaviour {
                BehaviourEvent::Identify(e) => p2p.record(e),
                BehaviourEvent::Ping(e) => p2p.record(e),
                BehaviourEvent::Kad(e) => p2p.record(e),
                BehaviourEvent::Gossip(e) => p2p.record(e),
                _ => {}
            }
        }
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.alive
                    .insert(connection_id, (peer_id, std::time::Instant::now()));
                if self.connected.insert(peer_id) {
                    let member = self
                        .roster
                        .by_peer(&peer_id)
                        .map(|(m, _)| m.jurisdiction.to_string());
                    info!(peer = %peer_id, member = member.as_deref(), "member connected");
                    let _ = self.connected_tx.send(peer_id);
                }
                debug!(peer = %peer_id, connections = num_established.get(), "connection established");
            }
            SwarmEvent::ConnectionClosed {
                connection_id,
                num_established,
                ..
            } if num_established > 0 => {
                self.alive.remove(&connection_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                self.alive.remove(&connection_id);
                self.connected.remove(&peer_id);
                let cause = cause.map(|c| c.to_string());
                info!(peer = %peer_id, cause = cause.as_deref(), "member disconnected");
            }
            SwarmEvent::IncomingConnectionError {
                peer_id,
                error,
                send_back_addr,
                ..
            } => match error {
                ListenError::Denied { cause } => warn!(
                    peer = peer_id.map(|p| p.to_string()),
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
                    warn!(peer = peer_id.map(|p| p.to_string()), reason = %cause, "refused outgoing connection")
                }
                other => {
                    debug!(peer = peer_id.map(|p| p.to_string()), error = %other, "dial failed")
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
                let Some(source) = message.source else {
                    return;
                };
                let member = self.roster.by_peer(&source).is_some();
                let joining = self.roster.config().is_none()
                    && self.bootstrap.iter().any(|(p, _)| *p == source);
                // Budgeted after the membership check: the buckets are per member, never
                // per key a member can make up.
                if !(member || joining) || !self.within_budget(source, Door::Gossip) {
                    return;
                }
                if message.topic == self.governance_topic.hash() {
                    let _ = self.governance_tx.send((source, message.data));
                } else if member {
                    let _ = self.gossip_tx.send((source, message.data));
                }
            }
            // Its queue full (it reads too slowly): what did not fit is dropped, and made up by
            // announcements and pulls. Said once a minute per member, with the count.
            BehaviourEvent::Gossip(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            }) => {
                let dropped = failed_messages.priority + failed_messages.non_priority;
                let now = std::time::Instant::now();
                let (since, count) = self
                    .gossip_dropped
                    .entry(peer_id)
                    .or_insert((now - GOSSIP_DROP_REPORT, 0));
                *count += dropped;
                if now.duration_since(*since) >= GOSSIP_DROP_REPORT {
                    let member = self
                        .roster
                        .by_peer(&peer_id)
                        .map_or_else(|| peer_id.to_string(), |(m, _)| m.jurisdiction.to_string());
                    warn!(%member, dropped = *count, "gossip to a member that reads too slowly dropped (its queue is full); announcements and pulls make it up");
                    (*since, *count) = (now, 0);
                }
            }
            // Learn members' current addresses; never strangers', nor those of members
            // reached by a route.
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if self.roster.by_peer(&peer_id).is_some() && self.route(&peer_id).is_none() =>
            {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            // An answered ping: the connection carries (see `close_silent`).
            BehaviourEvent::Ping(ping::Event {
                connection,
                result: Ok(_),
                ..
            }) => {
                if let Some((_, last)) = self.alive.get_mut(&connection) {
                    *last = std::time::Instant::now();
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if self.roster.by_peer(&peer).is_some()
                        && self.route(&peer).is_none()
                        && !self.connected.contains(&peer)
                    {
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
}
