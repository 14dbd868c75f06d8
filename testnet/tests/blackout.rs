//! A silent blackout between two members, through the testnet's link layer (a userspace proxy
//! per link that, blackholed, forwards nothing and closes nothing, as a route that drops every
//! packet does): each side shows the other disconnected once its pings go unanswered, and
//! when the link carries again the requester's outbox is sent at once, not at the end of its
//! backoff. Nothing is lost or duplicated.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use comity_testnet::links::Conditions;
use common::*;

const CONNECT: Duration = Duration::from_secs(30);
const BLACKOUT: Duration = Duration::from_secs(20);
/// From the heal to the outbox drained: a redial (every 3 s) and one push round. The first
/// retry of what the blackout caught comes 40 s (± a fifth) after its first attempt failed,
/// well past this: only the retry on reconnect sends it in time.
const AFTER_HEAL: Duration = Duration::from_secs(10);
/// Two unanswered pings (every 2 s, 3 s to answer) and a margin.
const NOTICED: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_blackout_is_noticed_and_the_outbox_drains_as_soon_as_it_heals() {
    let dir = tempfile::tempdir().unwrap();
    // A long first backoff: without the retry on reconnect, what waits would be sent only
    // some 20 s after the heal.
    let mut bloc =
        comity_testnet::Bloc::create_with(dir.path(), &[j("FR"), j("DE")], "testnet", |c| {
            c.outbox.initial_backoff_ms = 40_000;
        })
        .await
        .unwrap();
    bloc.run_links().await.unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let before = send(&bloc, "FR", "DE", Some(10_000)).await;
    assert_eq!(before.summary.state, "delivered");

    bloc.link(
        "FR",
        "DE",
        Conditions {
            blackhole: true,
            ..Conditions::default()
        },
    )
    .await
    .unwrap();
    let blackout = Instant::now();
    let mut sent = BTreeSet::from([before.summary.case_id]);
    for _ in 0..5 {
        sent.insert(send(&bloc, "FR", "DE", None).await.summary.case_id);
    }

    // Both sides notice: no TCP error ever comes, only unanswered pings.
    for (at, other) in [("FR", "DE"), ("DE", "FR")] {
        wait_disconnected(&bloc, at, other, blackout, NOTICED).await;
    }
    assert!(bloc.log("FR").contains("stopped answering pings"));
    assert!(
        bloc.client("FR").status().await.unwrap().outbox_depth >= 5,
        "the requests sent into the blackout wait in FR's outbox"
    );

    tokio::time::sleep(BLACKOUT.saturating_sub(blackout.elapsed())).await;
    bloc.heal_links().await.unwrap();
    wait_outbox_empty(&bloc.client("FR"), AFTER_HEAL).await;

    // Every request held once by each side, and both replicas agree.
    for member in ["FR", "DE"] {
        assert_holds_once(&bloc, member, &sent).await;
    }
    bloc.wait_converged(Duration::from_secs(20)).await.unwrap();
}
