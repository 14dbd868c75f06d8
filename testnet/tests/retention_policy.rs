//! Each side's retention is its own. The requesting node keeps received data no longer than
//! its own policy allows, whatever the request asked for: a request asking 30 days at a node
//! whose policy says 2 is purged after 2. The executing node keeps its own records for the
//! retention its policy gives (`executing_retention_days`, 10 here), whatever the requester
//! did, then destroys them with a signed `records-destroyed`.

mod common;

use std::time::{Duration, Instant};

use comity_node::admin::api::CaseSummary;
use common::*;

const DAY_MS: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_is_capped_by_the_requesters_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut bloc =
        comity_testnet::Bloc::create_with(dir.path(), &[j("FR"), j("DE")], "testnet", |c| {
            c.safeguards.retention_sweep_secs = 1;
        })
        .await
        .unwrap();
    std::fs::write(
        bloc.node("FR").dir.join("policy.toml"),
        "default_retention_days = 2\n",
    )
    .unwrap();
    std::fs::write(
        bloc.node("DE").dir.join("policy.toml"),
        "executing_retention_days = 10\n\n[[agreement]]\npartner = \"FR\"\ninstruments = [\"eu-epoc\"]\ndata_categories = [\"subscriber\", \"traffic\"]\n",
    )
    .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    let mut asked = request("FR", "DE");
    asked.retention_days = 30;
    let sent = comity_testnet::send_request(
        &fr,
        &bloc.approver("FR"),
        asked,
        Some(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    let id = sent.summary.case_id;
    let until = sent.summary.retention_until.expect("a retention deadline");
    let kept = until.as_millis() - sent.summary.created_at.as_millis();
    assert!(
        (2 * DAY_MS..2 * DAY_MS + 60_000).contains(&kept),
        "kept {kept} ms, not the policy's 2 days"
    );

    // Three days on, well before the 30 asked for, FR's copy is gone; DE keeps its own.
    fr.advance_clock(3 * 86_400).await.unwrap();
    let gone = |cases: Vec<CaseSummary>| {
        cases
            .iter()
            .any(|c| c.case_id == id && c.purged_at.is_some())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gone(fr.cases().await.unwrap()) {
        assert!(
            Instant::now() < deadline,
            "FR kept it past its policy's 2 days"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bloc.wait_converged(Duration::from_secs(20)).await.unwrap();
    de.advance_clock(3 * 86_400).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // two sweeps
    let at_de = de.case(id).await.unwrap();
    assert!(
        at_de.request.is_some(),
        "DE's own records outlive FR's purge"
    );
    let own =
        at_de.summary.retention_until.unwrap().as_millis() - sent.summary.created_at.as_millis();
    assert!(
        (10 * DAY_MS..10 * DAY_MS + 60_000).contains(&own),
        "{own} ms"
    );
    // Ten days on, DE's own retention ends too.
    de.advance_clock(8 * 86_400).await.unwrap();
    let purged = |cases: Vec<CaseSummary>| {
        cases
            .iter()
            .any(|c| c.case_id == id && c.purged_at.is_some())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(purged(fr.cases().await.unwrap()) && purged(de.cases().await.unwrap())) {
        assert!(
            Instant::now() < deadline,
            "not purged after the policy's 2 days"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for client in [&fr, &de] {
        assert!(client.case(id).await.unwrap().request.is_none());
    }
    // The receipts DE gave for the case's pushes went with it: no row of it is left to grow.
    bloc.stop("DE").unwrap();
    let store = comity_node::store::Store::open(&bloc.node("DE").dir.join("store")).unwrap();
    let rows = store.scan(comity_node::store::Cf::Inbox).unwrap();
    assert!(rows.is_empty(), "{} inbox rows left", rows.len());
}
