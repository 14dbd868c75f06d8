//! The instruments' own rules between real nodes: a European Investigation Order gets the
//! Directive's 30 days to decide (not the Regulation's ten), both sides say which rule set
//! the deadline; a European Preservation Order preserves for 60 days by default, cannot be
//! extended past 30 more, and at its end the executing node records a signed release that
//! both replicas hold.

mod common;

use std::time::Duration;

use comity_node::admin::api::{Action, CaseFilter, ClientError};
use comity_protocol::{DataCategory, Instrument, RequestKind};
use common::*;

const SETTLE: Duration = Duration::from_secs(30);
const DAY: u64 = 86_400;

fn conflict(result: Result<impl std::fmt::Debug, ClientError>, needle: &str) {
    match result {
        Err(ClientError::Api { status: 409, error }) => {
            assert!(error.reason.contains(needle), "{:?}", error.reason)
        }
        other => panic!("expected a 409 saying {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instruments_set_their_own_deadlines_and_preservations_lapse_into_a_signed_release() {
    let dir = tempfile::tempdir().unwrap();
    let mut bloc =
        comity_testnet::Bloc::create_with(dir.path(), &[j("FR"), j("DE")], "testnet", |c| {
            c.safeguards.retention_sweep_secs = 1;
        })
        .await
        .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(SETTLE).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    // An EIO: 30 days to decide, by the Directive, on both sides.
    let mut eio = request("FR", "DE");
    eio.instrument = Instrument::EuEio;
    eio.data_categories = vec![DataCategory::Subscriber];
    let eio = comity_testnet::send_request(&fr, &bloc.approver("FR"), eio, Some(SETTLE))
        .await
        .unwrap()
        .summary
        .case_id;
    wait_for_state(&de, eio, "delivered", SETTLE).await;
    wait_for_state(&fr, eio, "delivered", SETTLE).await;
    for client in [&fr, &de] {
        let case = client.case(eio).await.unwrap().summary;
        let received = client.log(eio).await.unwrap();
        let receipt_at = received
            .entries
            .iter()
            .find(|e| e.kind == "received")
            .unwrap()
            .at;
        assert_eq!(
            case.due,
            Some(receipt_at.saturating_add(Duration::from_secs(30 * DAY))),
            "{case:?}"
        );
        let rule = case.due_rule.unwrap();
        assert!(rule.contains("eu-eio: Directive 2014/41/EU"), "{rule}");
    }

    // An EPOC-PR, preserved for the Regulation's 60 days when the officer names no end.
    let mut pr = request("FR", "DE");
    pr.instrument = Instrument::EuEpocPr;
    pr.kind = RequestKind::Preservation;
    pr.data_categories = vec![DataCategory::Traffic];
    let pr = comity_testnet::send_request(&fr, &bloc.approver("FR"), pr, Some(SETTLE))
        .await
        .unwrap()
        .summary
        .case_id;
    wait_for_state(&de, pr, "delivered", SETTLE).await;
    let now: comity_protocol::Timestamp =
        serde_json::from_value(de.advance_clock(0).await.unwrap()["now"].clone()).unwrap();
    conflict(
        de.act(
            pr,
            &Action::Preserve {
                until: Some(now.saturating_add(Duration::from_secs(75 * DAY))),
            },
        )
        .await,
        "lasts 60 days at first",
    );
    let preserved = de.act(pr, &Action::Preserve { until: None }).await.unwrap();
    let p = preserved.summary.preservation.unwrap();
    let since = p.since.unwrap();
    // The end is set as the officer's step is taken, the start as it is signed, a moment later.
    let sixty = since.saturating_add(Duration::from_secs(60 * DAY));
    assert!(
        p.until <= sixty && p.until.as_millis() > sixty.as_millis() - 5_000,
        "{p:?}"
    );
    assert_eq!(
        p.latest_end,
        Some(since.saturating_add(Duration::from_secs(90 * DAY)))
    );
    assert!(!p.lapses_soon);

    // Extended by the 30 days allowed, not a day more.
    conflict(
        de.act(
            pr,
            &Action::ExtendPreservation {
                until: since.saturating_add(Duration::from_secs(91 * DAY)),
            },
        )
        .await,
        "extension refused",
    );
    let end = since.saturating_add(Duration::from_secs(90 * DAY));
    de.act(pr, &Action::ExtendPreservation { until: end })
        .await
        .unwrap();

    // A week before the end it is flagged lapsing; past it, DE records the release itself.
    for client in [&fr, &de] {
        client.advance_clock(85 * DAY).await.unwrap();
    }
    let lapsing = de
        .cases_filtered(&CaseFilter {
            lapsing: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(lapsing.len(), 1, "{lapsing:?}");
    assert_eq!(lapsing[0].case_id, pr);
    for client in [&fr, &de] {
        client.advance_clock(6 * DAY).await.unwrap();
    }
    let released = wait_case(&fr, pr, "FR sees the release", |c| {
        c.summary
            .preservation
            .as_ref()
            .is_some_and(|p| p.released_at.is_some())
    })
    .await;
    assert!(released.summary.preservation.unwrap().released_at.unwrap() > end);
    bloc.wait_converged(SETTLE).await.unwrap();
    let (fr_log, de_log) = (fr.log(pr).await.unwrap(), de.log(pr).await.unwrap());
    assert_eq!(
        fr_log.envelopes, de_log.envelopes,
        "both replicas hold the release"
    );
    let release = de_log
        .entries
        .iter()
        .find(|e| e.kind == "preservation-released")
        .unwrap();
    assert!(release.applied);
    assert_eq!(
        release.author,
        j("DE"),
        "the executing node signed the release"
    );
    conflict(
        de.act(
            pr,
            &Action::ExtendPreservation {
                until: end.saturating_add(Duration::from_secs(DAY)),
            },
        )
        .await,
        "already released",
    );
}
