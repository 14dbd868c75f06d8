//! A member may open a bounded number of cases at another member in a day: beyond its quota
//! its requests wait in its own outbox (answered `unavailable`), nothing is lost, and the next
//! day they arrive.

mod common;

use std::time::{Duration, Instant};

use comity_node::config::Config;
use common::*;

const CONNECT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_a_members_daily_quota_wait_for_the_next_day() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    let path = bloc.node("DE").config.clone();
    let mut config = Config::load(&path).unwrap();
    config.safeguards.max_new_cases_per_member_per_day = 2;
    std::fs::write(&path, config.to_commented_toml()).unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(send(&bloc, "FR", "DE", Some(5_000)).await.summary.case_id);
    }
    for id in &sent[..2] {
        wait_for_state(&fr, *id, "delivered", SETTLE).await;
    }
    let third = fr.case(sent[2]).await.unwrap();
    assert_ne!(third.summary.state, "delivered");
    let why = third.delivery.last_error.unwrap_or_default();
    assert!(why.contains("daily quota"), "{why}");
    assert_eq!(
        de.cases().await.unwrap().len(),
        2,
        "DE opened two, not three"
    );

    // The next day at DE: the third arrives with FR's next attempt.
    de.advance_clock(86_400).await.unwrap();
    let deadline = Instant::now() + SETTLE;
    while de.cases().await.unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the third request never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_state(&fr, sent[2], "delivered", Duration::from_secs(90)).await;
}
