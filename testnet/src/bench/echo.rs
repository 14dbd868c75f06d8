//! The baseline: a bare libp2p request-response echo over the same transport the node uses
//! (TCP + Noise + Yamux, the same frame codec), with no Comity layer at all.

use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot};

use comity_node::network::codec::FrameCodec;

const PROTOCOL: &str = "/comity-bench/echo/1.0.0";

type Behaviour = request_response::Behaviour<FrameCodec>;

fn swarm() -> anyhow::Result<Swarm<Behaviour>> {
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                FrameCodec::default(),
                [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(30))
                    .with_max_concurrent_streams(1024),
            )
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build())
}

/// Starts the echo server; returns its PeerId and address.
pub async fn serve() -> anyhow::Result<(PeerId, Multiaddr)> {
    let mut server = swarm()?;
    server.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    let peer = *server.local_peer_id();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = server.select_next_some().await
            {
                let _ = server.behaviour_mut().send_response(channel, request);
            }
        }
    });
    Ok((peer, addr))
}

type Pending = oneshot::Sender<Result<Vec<u8>, String>>;

/// A client handle on a bare echo connection.
#[derive(Clone, Debug)]
pub struct EchoClient {
    tx: mpsc::Sender<(Vec<u8>, Pending)>,
}

impl EchoClient {
    pub async fn connect(peer: PeerId, addr: Multiaddr) -> anyhow::Result<Self> {
        let mut client = swarm()?;
        client.add_peer_address(peer, addr.clone());
        client.dial(addr)?;
        let (tx, mut rx) = mpsc::channel::<(Vec<u8>, Pending)>(1024);
        tokio::spawn(async move {
            let mut pending = std::collections::HashMap::new();
            loop {
                tokio::select! {
                    Some((frame, reply)) = rx.recv() => {
                        let id = client.behaviour_mut().send_request(&peer, frame);
                        pending.insert(id, reply);
                    }
                    event = client.select_next_some() => match event {
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            message: request_response::Message::Response { request_id, response },
                            ..
                        }) => {
                            if let Some(reply) = pending.remove(&request_id) {
                                let _ = reply.send(Ok(response));
                            }
                        }
                        SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                            if let Some(reply) = pending.remove(&request_id) {
                                let _ = reply.send(Err(error.to_string()));
                            }
                        }
                        _ => {}
                    },
                    else => break,
                }
            }
        });
        Ok(Self { tx })
    }

    pub async fn echo(&self, frame: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((frame, reply)).await?;
        rx.await?.map_err(|e| anyhow::anyhow!(e))
    }
}
