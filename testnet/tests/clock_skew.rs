//! A member whose clock is 5 minutes ahead: the other side measures it on connect and on each
//! receipt and names it in its status and its log, the member itself sees the other as
//! behind, and both notice when the clocks agree again.

mod common;

use std::time::Duration;

use comity_testnet::faults::{Fault, Span};
use common::*;

const CONNECT: Duration = Duration::from_secs(30);

async fn skew(bloc: &mut comity_testnet::Bloc, member: &str, by: &str) {
    bloc.apply(&Fault::Clock {
        member: j(member),
        skew: by.parse::<Span>().unwrap(),
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_five_minutes_ahead_is_named_on_both_sides_until_it_agrees_again() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    // Measured on connect (the pull each side makes), before any request.
    let offset = measured(&fr).await;
    assert!(offset.abs() < 1_000, "{offset} ms on connect");

    // In line: measured, and nothing to say.
    send(&bloc, "FR", "DE", Some(10_000)).await;
    let status = fr.status().await.unwrap();
    assert!(status.clock_alerts.is_empty(), "{:?}", status.clock_alerts);
    let offset = status.members[0]
        .clock_offset_ms
        .expect("measured on the receipt");
    assert!(
        offset.abs() < 1_000,
        "{offset} ms between two clocks of one machine"
    );

    skew(&mut bloc, "DE", "+5m").await;
    let case = send(&bloc, "FR", "DE", Some(10_000)).await.summary.case_id;
    let status = fr.status().await.unwrap();
    let offset = status.members[0].clock_offset_ms.unwrap();
    assert!((299_000..301_000).contains(&offset), "{offset}");
    assert_eq!(status.clock_alerts.len(), 1, "{:?}", status.clock_alerts);
    assert!(
        status.clock_alerts[0].starts_with("DE's clock is 5 min 0 s ahead of this node's"),
        "{}",
        status.clock_alerts[0]
    );
    assert!(bloc.log("FR").contains("DE's clock is 5 min"));

    // DE's own pushes (its acceptance) show it FR behind.
    de.act(
        case,
        &comity_node::admin::api::Action::Decide {
            decision: comity_protocol::Decision::Accept,
        },
    )
    .await
    .unwrap();
    wait_for_state(&fr, case, "accepted", Duration::from_secs(30)).await;
    let alerts = de.status().await.unwrap().clock_alerts;
    assert!(
        alerts.len() == 1 && alerts[0].contains("FR's clock is 5 min 0 s behind"),
        "{alerts:?}"
    );

    // Set right again: the next receipt clears it.
    skew(&mut bloc, "DE", "-5m").await;
    send(&bloc, "FR", "DE", Some(10_000)).await;
    assert!(fr.status().await.unwrap().clock_alerts.is_empty());
    assert!(bloc.log("FR").contains("DE's clock agrees with ours again"));

    // An hour off, and FR restarted: named on connect, with no request sent.
    skew(&mut bloc, "DE", "+1h").await;
    bloc.stop("FR").unwrap();
    bloc.start("FR").unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let fr = bloc.client("FR");
    let offset = measured(&fr).await;
    assert!((3_599_000..3_601_000).contains(&offset), "{offset}");
    let alerts = fr.status().await.unwrap().clock_alerts;
    assert!(
        alerts.len() == 1 && alerts[0].starts_with("DE's clock is 1 h 0 min ahead"),
        "{alerts:?}"
    );
}

/// DE's clock offset as FR measured it, once it has (within 10 s).
async fn measured(fr: &comity_node::admin::api::AdminClient) -> i64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = fr.status().await.unwrap();
        if let Some(offset) = status.members[0].clock_offset_ms {
            return offset;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "DE's clock not measured: {:?}",
            status.members
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
