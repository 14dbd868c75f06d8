//! A link that loses, delays and damages what one member sends (the network's fault filter,
//! between real processes): lost pushes are sent again until receipted, damaged ones are
//! refused with a reason at the receiver (and stay refused at the sender: a request refused at
//! the door is not offered again), nothing is applied twice or half, and both members go on
//! serving.

mod common;

use std::time::{Duration, Instant};

use comity_testnet::LinkFault;
use common::*;

const CONNECT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_requests_are_retried_and_damaged_ones_refused_without_harm() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    // Every request FR sends DE is lost, after a delay: the cases wait in FR's outbox.
    let lossy = LinkFault {
        drop_every: 1,
        delay_ms: 30,
        ..LinkFault::default()
    };
    bloc.impair("FR", "DE", lossy).await.unwrap();
    let queued: Vec<_> = [
        send(&bloc, "FR", "DE", None).await,
        send(&bloc, "FR", "DE", None).await,
    ]
    .iter()
    .map(|c| c.summary.case_id)
    .collect();
    for id in &queued {
        let case = fr.case(*id).await.unwrap();
        assert_ne!(case.summary.state, "delivered", "nothing crossed the link");
    }

    // Every other request is lost: the outbox sends again until each push is receipted.
    let half = LinkFault {
        drop_every: 2,
        delay_ms: 10,
        ..LinkFault::default()
    };
    bloc.impair("FR", "DE", half).await.unwrap();
    for id in &queued {
        let case = wait_for_state(&fr, *id, "delivered", SETTLE).await;
        assert!(case.delivery.attempts >= 1);
    }
    bloc.wait_converged(SETTLE).await.unwrap();
    let before = de.refusals().await.unwrap().len();

    // Every request leaves damaged: DE refuses what it cannot verify, records FR as the
    // sender, and applies none of it.
    let damaged = LinkFault {
        corrupt_every: 1,
        ..LinkFault::default()
    };
    bloc.impair("FR", "DE", damaged).await.unwrap();
    let hit = send(&bloc, "FR", "DE", None).await.summary.case_id;
    let deadline = Instant::now() + SETTLE;
    let refusal = loop {
        let refusals = de.refusals().await.unwrap();
        if let Some(r) = refusals.get(before..).and_then(|new| new.first()) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "DE recorded no refusal");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refusal.member, Some(j("FR")));
    assert!(!refusal.reason.is_empty());

    // The link heals and DE serves on.
    bloc.impair("FR", "DE", LinkFault::default()).await.unwrap();
    let fresh = send(&bloc, "FR", "DE", Some(20_000)).await;
    let fresh = wait_for_state(&fr, fresh.summary.case_id, "delivered", SETTLE).await;
    assert_eq!(fresh.delivery.refused, None);
    let hit = fr.case(hit).await.unwrap();
    let refused = hit.delivery.refused.is_some();
    assert!(
        refused || hit.summary.state == "delivered",
        "the damaged push is refused with a reason or, if the damage missed all that is \
         checked, delivered: {:?}",
        hit.delivery
    );
    if refused {
        // A request refused at the door is not offered again: DE holds nothing of it.
        assert!(de.case(hit.summary.case_id).await.is_err());
    }
    // Every other case reaches one state on both sides.
    let id = hit.summary.case_id.to_string();
    let deadline = Instant::now() + SETTLE;
    loop {
        let divergent = bloc.divergence().await.unwrap();
        if divergent.iter().all(|line| refused && line.contains(&id)) {
            break;
        }
        assert!(Instant::now() < deadline, "{divergent:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
