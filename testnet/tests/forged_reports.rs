//! A member's transparency reports, published on the bloc's gossip topic by a peer that holds
//! that member's identity, between real processes: a report it publishes of itself is kept; one
//! issued in another member's name, one carrying another member's figures, and one signed by a
//! key that is not the member's are refused and logged, and never shown.

mod common;

use std::time::Duration;

use comity_node::identity::NodeIdentity;
use comity_node::report::compute;
use comity_protocol::report::PublishedReport;
use comity_protocol::{SignedEnvelope, Timestamp};
use comity_testnet::peer::RawPeer;
use common::*;

/// A past month: nodes publish their own reports only for the current periods, so whatever is
/// kept for this one came from the peer under test.
const PERIOD: &str = "2024-03";

fn report(issuer: &str, jurisdiction: &str, sent: u64) -> PublishedReport {
    let mut report = compute(jurisdiction, &[], None, |_| false);
    report.period = Some(PERIOD.parse().unwrap());
    report.requests.sent = sent;
    PublishedReport {
        issuer: j(issuer),
        issued_at: Timestamp::now(),
        report,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_members_report_of_itself_is_kept() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    // IT's node is down; a peer holding IT's keys publishes in its place.
    bloc.stop("IT").unwrap();
    let it = NodeIdentity::load_dir(&bloc.node("IT").dir).unwrap();
    let roster = comity_testnet::genesis_roster(&bloc.node("FR").dir).unwrap();
    let fr_member = roster.by_jurisdiction(&j("FR")).unwrap().0.clone();
    let raw = RawPeer::start_in_bloc(&bloc.bloc_id, it.clone(), &fr_member)
        .await
        .unwrap();

    let key = it.signing_key();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let sign = |r: &PublishedReport, k: &ed25519_dalek::SigningKey| {
        SignedEnvelope::sign(r, k).unwrap().to_bytes()
    };
    // The marker 999 is in every report that must be refused.
    let bad = [
        sign(&report("FR", "FR", 999), &key),
        sign(&report("IT", "FR", 999), &key),
        sign(&report("IT", "IT", 999), &stranger),
    ];
    let good = sign(&report("IT", "IT", 7), &key);

    // Gossip needs a moment to graft the peer into the mesh: publish until the good one is
    // kept, the bad ones first each time.
    let auditor = bloc.client("FR");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let kept = loop {
        for b in &bad {
            raw.publish(b.clone()).await;
        }
        raw.publish(good.clone()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reports = auditor.bloc_reports(PERIOD).await.unwrap();
        if reports.iter().any(|r| r.jurisdiction == "IT") {
            break reports;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "IT's own report never reached FR: {reports:?}"
        );
    };
    let it_report = kept.iter().find(|r| r.jurisdiction == "IT").unwrap();
    assert_eq!(it_report.requests.sent, 7);
    assert!(
        kept.iter().all(|r| r.requests.sent != 999),
        "a refused report is shown: {kept:?}"
    );
    wait_for_log(
        &bloc,
        "FR",
        &["report refused", "IT"],
        Duration::from_secs(10),
    )
    .await;
    wait_for_log(
        &bloc,
        "FR",
        &["report refused: it does not verify"],
        Duration::from_secs(10),
    )
    .await;
}
