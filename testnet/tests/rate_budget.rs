//! A member's rate budget, between real processes: a member (a raw peer holding IT's keys)
//! that sends far beyond its budget is answered "retry shortly" unread for the excess; the
//! counts show in `comity peers` and in one log line per interval, not one per message; and
//! another member's requests are served as before.

mod common;

use std::time::Duration;

use comity_node::config::Config;
use comity_node::identity::NodeIdentity;
use comity_protocol::{ExchangeRequest, ExchangeResponse, RejectCode, from_cbor, limits};
use comity_testnet::peer::RawPeer;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_beyond_its_rate_is_told_to_retry_and_the_others_are_served() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    let path = bloc.node("DE").config.clone();
    let mut config = Config::load(&path).unwrap();
    config.network.requests_per_second_per_member = 20;
    // The queries' own budget (also 20 a second by default) is lifted, so that the flood of
    // policy queries meets the request budget alone and every refusal names it.
    config.network.queries_per_second_per_member = 0;
    std::fs::write(&path, config.to_commented_toml()).unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    // IT's node stops; a raw peer with its keys floods DE with policy requests.
    bloc.stop("IT").unwrap();
    let it = NodeIdentity::load_dir(&bloc.node("IT").dir).unwrap();
    let roster = comity_testnet::genesis_roster(&bloc.node("FR").dir).unwrap();
    let de = roster.by_jurisdiction(&j("DE")).unwrap().0.clone();
    let flooder = RawPeer::start(it, &de).await.unwrap();
    let frame = comity_protocol::to_canonical_cbor(&ExchangeRequest::Policy).unwrap();

    let (mut answered, mut over) = (0, 0);
    for _ in 0..200 {
        let answer = flooder.send_frame(de.peer_id, frame.clone()).await.unwrap();
        match from_cbor::<ExchangeResponse>(&answer, limits::MAX_RESPONSE_FRAME).unwrap() {
            ExchangeResponse::Rejected(r) if r.code == RejectCode::Unavailable => {
                assert!(r.detail.contains("rate budget"), "{}", r.detail);
                over += 1;
            }
            ExchangeResponse::Policy(_) => answered += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // Two seconds' worth at once, then 20 a second: the flood took well under ten seconds.
    assert!((40..120).contains(&answered), "{answered} answered");
    assert_eq!(answered + over, 200);

    // FR, within its budget, is served as before.
    let case = send(&bloc, "FR", "DE", Some(20_000)).await;
    assert_eq!(case.summary.state, "delivered");

    let peers = bloc.client("DE").peers().await.unwrap();
    let it_view = peers.iter().find(|p| p.jurisdiction == j("IT")).unwrap();
    let usage = it_view.rate_budget.clone().unwrap();
    assert_eq!(usage.exchange_per_s, 20);
    assert_eq!(usage.exchange_over, over);
    let fr_view = peers.iter().find(|p| p.jurisdiction == j("FR")).unwrap();
    assert_eq!(fr_view.rate_budget.clone().unwrap().exchange_over, 0);

    // Logged with counts, once per interval: not once per message.
    wait_for_log(
        &bloc,
        "DE",
        &["beyond its rate budget"],
        Duration::from_secs(30),
    )
    .await;
    let lines = bloc
        .log("DE")
        .lines()
        .filter(|l| l.contains("beyond its rate budget"))
        .count();
    assert!(
        lines <= 3,
        "{lines} log lines for {over} requests over the budget"
    );
}
