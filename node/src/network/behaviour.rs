//! The composed libp2p behaviour. Behaviours that can refuse a connection come first, so a
//! connection over the limits or from a peer outside the roster is dropped before any other
//! protocol sees it.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, connection_limits, gossipsub, identify, identity, kad, mdns,
    ping, request_response,
};

use super::codec::FrameCodec;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub exchange: request_response::Behaviour<FrameCodec>,
    /// Evidence transfers: the receiver pulls sealed chunks, several streams at once.
    pub evidence: request_response::Behaviour<FrameCodec>,
    /// Bloc-wide announcements: members' signed audit checkpoints, for witnessing.
    pub gossip: gossipsub::Behaviour,
}

/// Exchange requests read or answered at once on one connection (inbound and outbound).
pub const EXCHANGE_STREAMS_PER_CONNECTION: usize = 64;

#[derive(Debug, Clone)]
pub struct BehaviourConfig {
    pub bloc: String,
    pub mdns: bool,
    pub max_connections: u32,
    pub max_connections_per_peer: u32,
    pub max_pending_incoming: u32,
    pub request_timeout: Duration,
    /// Size limits of exchange frames; the protocol's limits unless a test needs others.
    pub frames: FrameCodec,
    /// Each member's rate budget at the door.
    pub rates: super::admission::Rates,
    /// Keep-alive: how often each connection is pinged, and how long it may go without an
    /// answered ping before it is closed (a slow answer still counts).
    pub ping_interval: Duration,
    pub dead_after: Duration,
}

impl Behaviour {
    pub fn new(key: &identity::Keypair, config: &BehaviourConfig) -> std::io::Result<Self> {
        let peer_id = key.public().to_peer_id();
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(config.max_pending_incoming));

        let kad_protocol = StreamProtocol::try_from_owned(comity_protocol::kad_protocol(
            &config.bloc,
        ))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        // Kademlia finds members' addresses; Comity stores no records in it. With inserts
        // filtered, a peer's PUT_VALUE or ADD_PROVIDER is only an event, which nobody stores:
        // no member can fill this node's memory through the DHT.
        let mut kad_config = kad::Config::new(kad_protocol);
        kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
        // Members are dialled at the roster's addresses (or the node's routes), never at
        // addresses a query turns up: no bootstrap queries, which would dial on their own.
        kad_config.set_periodic_bootstrap_interval(None);
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        kad.set_mode(Some(kad::Mode::Server));

        let mdns = if config.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };

        let exchange = request_response::Behaviour::with_codec(
            config.frames.clone(),
            [(
                StreamProtocol::new(comity_protocol::EXCHANGE_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            // Per connection, inbound and outbound together: with two connections per member,
            // at most 2 × 64 frames of a member are read or answered at once (each ≤ 1 MiB).
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(EXCHANGE_STREAMS_PER_CONNECTION),
        );

        let evidence = request_response::Behaviour::with_codec(
            FrameCodec {
                max_request: comity_protocol::evidence::MAX_EVIDENCE_REQUEST,
                max_response: comity_protocol::evidence::MAX_EVIDENCE_RESPONSE,
                // A chunk of the default size, sealed, in its frame.
                response_capacity: (1 << 20) + (64 << 10),
            },
            [(
                StreamProtocol::new(comity_protocol::evidence::EVIDENCE_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            // A chunk of the largest size must fit in the timeout even on a slow link.
            request_response::Config::default()
                .with_request_timeout(config.request_timeout.max(Duration::from_secs(60)))
                .with_max_concurrent_streams(64),
        );

        const GOSSIP_QUEUE_PER_MEMBER: usize = 128;
        let gossip_config = gossipsub::ConfigBuilder::default()
            // Announcements are pushed along the mesh at once; the heartbeat only maintains
            // the mesh and gossips what was seen, which a bloc of members that all connect
            // to each other needs rarely: every second would be most of an idle node's work.
            .heartbeat_interval(Duration::from_secs(5))
            .validation_mode(gossipsub::ValidationMode::Strict)
            .max_transmit_size(64 << 10)
            // What may wait to go to one member. libp2p's default, 5,000 messages a member,
            // let a bloc of 50 on a starved machine grow each node by 150 MiB of gossip for
            // members that read too slowly; past this, gossip to that member is dropped (the
            // periodic announcements and pulls make it up).
            .connection_handler_queue_len(GOSSIP_QUEUE_PER_MEMBER)
            .build()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let gossip = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;

        Ok(Self {
            limits: connection_limits::Behaviour::new(limits),
            allow: allow_block_list::Behaviour::default(),
            // No cache of announced addresses to dial from: what a member announces is
            // learned (or not, for a routed member) by the event loop alone.
            identify: identify::Behaviour::new(
                identify::Config::new(format!("/comity/{}/2.0.0", config.bloc), key.public())
                    .with_cache_size(0),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(config.ping_interval)
                    .with_timeout(config.dead_after),
            ),
            kad,
            mdns: mdns.into(),
            exchange,
            evidence,
            gossip,
        })
    }
}

/// A swarm with `keypair` as its identity, subscribed to `topics`, listening on `listen`.
pub(super) fn build_swarm(
    keypair: libp2p::identity::Keypair,
    behaviour: &BehaviourConfig,
    topics: &[&libp2p::gossipsub::IdentTopic],
    listen: &[libp2p::Multiaddr],
) -> Result<libp2p::Swarm<Behaviour>, super::NetworkError> {
    let setup = |e: &dyn std::fmt::Display| super::NetworkError::Setup(e.to_string());
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| {
            Behaviour::new(key, behaviour)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    for t in topics {
        swarm
            .behaviour_mut()
            .gossip
            .subscribe(t)
            .map_err(|e| super::NetworkError::Setup(e.to_string()))?;
    }
    for addr in listen {
        port_free(addr).map_err(|message| super::NetworkError::Listen {
            addr: addr.clone(),
            message,
        })?;
        swarm
            .listen_on(addr.clone())
            .map_err(|e| super::NetworkError::Listen {
                addr: addr.clone(),
                message: e.to_string(),
            })?;
    }
    Ok(swarm)
}

/// Whether the TCP port of `addr` is free. libp2p's listener shares ports (`SO_REUSEPORT`),
/// so a second node given the same port would start beside the first and silently split its
/// connections; a plain bind, which no listener shares, tells. Port 0 is always free.
fn port_free(addr: &libp2p::Multiaddr) -> Result<(), String> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(std::net::IpAddr::V6(v6)),
            Protocol::Tcp(port) if port != 0 => {
                let Some(ip) = ip else { return Ok(()) };
                return match std::net::TcpListener::bind((ip, port)) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
                        "another process listens on port {port}; each node needs its own `[network] listen` port"
                    )),
                    Err(_) => Ok(()), // anything else, libp2p's own bind reports
                };
            }
            _ => {}
        }
    }
    Ok(())
}
