//! A node of the earlier wire format (`/comity/exchange/1.0.0`, before COSE signatures) gets a
//! clear refusal from a current node — no protocol in common, so not a byte of its message is
//! read or misread — and the current node keeps serving its members.

mod common;

use std::time::{Duration, Instant};

use comity_node::identity::NodeIdentity;
use comity_node::network::codec::FrameCodec;
use common::*;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{StreamProtocol, noise, tcp, yamux};

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_speaking_the_old_exchange_protocol_is_refused_by_negotiation() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();

    // A member's identity (FR's), so that the allow-list admits the connection: the refusal
    // below is about the protocol version, not about who is asking.
    let fr = bloc.node("FR");
    let identity = NodeIdentity::load_dir(&fr.dir).unwrap();
    let roster = comity_testnet::genesis_roster(&fr.dir).unwrap();
    let de = roster.by_jurisdiction(&j("DE")).unwrap().0.clone();

    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity.keypair())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                FrameCodec::default(),
                [(
                    StreamProtocol::new("/comity/exchange/1.0.0"),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .build();
    let address = de.addresses[0].clone().with(Protocol::P2p(de.peer_id));
    swarm.dial(address).unwrap();
    swarm
        .behaviour_mut()
        .send_request(&de.peer_id, b"an envelope of the old format".to_vec());

    let deadline = Instant::now() + Duration::from_secs(30);
    let failure = loop {
        let event = tokio::time::timeout_at(deadline.into(), swarm.select_next_some())
            .await
            .expect("no answer from DE within 30 s");
        match event {
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                break error;
            }
            SwarmEvent::Behaviour(request_response::Event::Message { message, .. }) => {
                panic!("DE answered an old-format request: {message:?}")
            }
            _ => {}
        }
    };
    assert!(
        matches!(failure, OutboundFailure::UnsupportedProtocols),
        "{failure:?}"
    );

    // DE still serves its members on the current protocol.
    let case = send(&bloc, "FR", "DE", Some(20_000)).await;
    assert_eq!(case.summary.state, "delivered");
}
