//! The whole case lifecycle between real nodes, each step a signed event both replicas hold;
//! and a partition that heals without an operator.

mod common;

use std::time::Duration;

use comity_node::admin::api::{Action, AdminClient, ClientError};
use comity_protocol::{CaseId, Decision};
use common::*;

const CONNECT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(20);

async fn act(client: &AdminClient, case: CaseId, action: Action) {
    client
        .act(case, &action)
        .await
        .unwrap_or_else(|e| panic!("{action:?} on {case}: {e}"));
}

async fn refused(client: &AdminClient, case: CaseId, action: Action) -> String {
    match client.act(case, &action).await {
        Err(ClientError::Api { status, error }) => {
            assert_eq!(status, 409, "{error:?}");
            error.reason
        }
        other => panic!("{action:?} should be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_runs_its_lifecycle_with_identical_logs_on_both_sides() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    // Accepted, fulfilled, acknowledged, closed.
    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    let why = refused(
        &fr,
        id,
        Action::Decide {
            decision: Decision::Accept,
        },
    )
    .await;
    assert!(why.contains("only the executing side"), "{why}");
    act(
        &de,
        id,
        Action::Decide {
            decision: Decision::Accept,
        },
    )
    .await;
    wait_for_state(&fr, id, "accepted", SETTLE).await;
    let why = refused(
        &de,
        id,
        Action::Decide {
            decision: Decision::Refuse {
                reasons: vec!["changed our mind".into()],
            },
        },
    )
    .await;
    assert!(why.contains("does not apply"), "{why}");
    act(
        &de,
        id,
        Action::Fulfil {
            note: "subscriber record sent".into(),
        },
    )
    .await;
    wait_for_state(&fr, id, "fulfilled", SETTLE).await;
    act(&fr, id, Action::Acknowledge).await;
    wait_for_state(&de, id, "evidence-acknowledged", SETTLE).await;
    act(&fr, id, Action::Close).await;
    wait_for_state(&de, id, "closed", SETTLE).await;
    let (fr_log, de_log) = (fr.log(id).await.unwrap(), de.log(id).await.unwrap());
    assert_eq!(fr_log.envelopes, de_log.envelopes);
    assert_eq!(fr_log.heads, de_log.heads);
    let kinds: Vec<&str> = fr_log.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "received",
            "decided",
            "fulfilled",
            "evidence-acknowledged",
            "closed"
        ]
    );

    // Clarification, then refusal with reasons.
    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    act(
        &de,
        id,
        Action::RequestClarification {
            question: "Which time zone?".into(),
        },
    )
    .await;
    wait_for_state(&fr, id, "clarification-requested", SETTLE).await;
    act(
        &fr,
        id,
        Action::Clarify {
            answer: "UTC".into(),
        },
    )
    .await;
    wait_for_state(&de, id, "clarified", SETTLE).await;
    act(
        &de,
        id,
        Action::Decide {
            decision: Decision::Refuse {
                reasons: vec!["dual criminality not met".into()],
            },
        },
    )
    .await;
    let refused_case = wait_for_state(&fr, id, "refused", SETTLE).await;
    assert!(
        refused_case.summary.due.is_none(),
        "a refused case expects nothing more"
    );

    // Withdrawn by the requester.
    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    let delivered = fr.case(id).await.unwrap();
    assert_eq!(delivered.summary.overdue, None);
    assert!(
        delivered.summary.due.is_some(),
        "a delivered request has a decision deadline"
    );
    act(
        &fr,
        id,
        Action::Withdraw {
            reason: "suspect identified otherwise".into(),
        },
    )
    .await;
    wait_for_state(&de, id, "withdrawn", SETTLE).await;

    // The list filters by state.
    let closed = fr
        .cases_filtered(&comity_node::admin::api::CaseFilter {
            state: Some("closed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    bloc.wait_converged(SETTLE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_and_conflicting_steps_resolve_alike() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    let crossing = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    act(
        &de,
        crossing,
        Action::Decide {
            decision: Decision::Accept,
        },
    )
    .await;
    let to_refuse = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    wait_for_state(&fr, crossing, "accepted", SETTLE).await;

    bloc.partition("FR", "DE", true).await.unwrap();
    // Both sides go on working: a withdrawal crosses a fulfilment, a refusal is written, a new
    // request is queued, and FR still reaches IT.
    act(
        &fr,
        crossing,
        Action::Withdraw {
            reason: "no longer needed".into(),
        },
    )
    .await;
    act(
        &de,
        crossing,
        Action::Fulfil {
            note: "sent".into(),
        },
    )
    .await;
    act(
        &de,
        to_refuse,
        Action::Decide {
            decision: Decision::Refuse {
                reasons: vec!["not proportionate".into()],
            },
        },
    )
    .await;
    let queued = send(&bloc, "FR", "DE", None).await.summary.case_id;
    let to_it = send(&bloc, "FR", "IT", Some(20_000)).await;
    assert_eq!(to_it.summary.state, "delivered");
    // FR holds its two steps for DE (the withdrawal and the new request) and is cut off:
    // the positive sign that the partition holds, before looking at what did not cross it.
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let lag = fr.status().await.unwrap();
        let de_lag = lag
            .members
            .iter()
            .find(|m| m.jurisdiction == j("DE"))
            .unwrap()
            .clone();
        if !de_lag.connected && de_lag.pending_events >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{de_lag:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fr.case(to_refuse).await.unwrap().summary.state, "delivered");
    assert_eq!(fr.case(crossing).await.unwrap().summary.state, "withdrawn");
    assert_eq!(de.case(crossing).await.unwrap().summary.state, "fulfilled");

    bloc.partition("FR", "DE", false).await.unwrap();
    bloc.wait_converged(Duration::from_secs(30)).await.unwrap();
    for client in [&fr, &de] {
        assert_eq!(
            client.case(crossing).await.unwrap().summary.state,
            "withdrawn"
        );
        assert_eq!(
            client.case(to_refuse).await.unwrap().summary.state,
            "refused"
        );
        assert_eq!(
            client.case(queued).await.unwrap().summary.state,
            "delivered"
        );
    }
    let (fr_log, de_log) = (
        fr.log(crossing).await.unwrap(),
        de.log(crossing).await.unwrap(),
    );
    assert_eq!(fr_log.envelopes, de_log.envelopes);
    assert!(
        fr_log
            .entries
            .iter()
            .any(|e| e.kind == "withdrawn" && e.applied)
    );
    // Pushes made during the partition end receipted (possibly after a pull got there first).
    wait_outbox_empty(&fr, Duration::from_secs(30)).await;
    wait_outbox_empty(&de, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_and_undelivered_requests_are_flagged_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let members = [j("FR"), j("DE")];
    let mut bloc = comity_testnet::Bloc::create_with(dir.path(), &members, "testnet", |config| {
        // Flag at once, so that the test need not wait for a real deadline.
        config.outbox.not_delivered_after_secs = 0;
    })
    .await
    .unwrap();
    // The shortest deadlines a bloc may set for the request's instrument, in place of the
    // Regulation's ten days; both clocks are moved past them below.
    bloc.set_instrument_rules(
        comity_protocol::Instrument::EuEpoc,
        comity_protocol::bloc::InstrumentRules {
            decision_hours: Some(1),
            execution_hours: Some(1),
            ..Default::default()
        },
    )
    .unwrap();

    // DE is down: the request is flagged not delivered, with the reason, and kept queued.
    bloc.start("FR").unwrap();
    bloc.wait_up("FR", CONNECT).await.unwrap();
    let fr = bloc.client("FR");
    let id = send(&bloc, "FR", "DE", None).await.summary.case_id;
    let queued = wait_case(&fr, id, "FR trying", |c| c.delivery.last_error.is_some()).await;
    assert!(queued.summary.not_delivered, "{:?}", queued.summary);
    assert_eq!(queued.summary.state, "submitted");

    // Delivered, it waits for a decision past its one-hour deadline: overdue on both sides.
    bloc.start("DE").unwrap();
    wait_for_state(&fr, id, "delivered", CONNECT).await;
    let de = bloc.client("DE");
    wait_for_state(&de, id, "delivered", CONNECT).await;
    for client in [&fr, &de] {
        client.advance_clock(2 * 3600).await.unwrap();
    }
    let overdue = comity_node::admin::api::CaseFilter {
        overdue: true,
        ..Default::default()
    };
    for client in [&fr, &de] {
        let late = client.cases_filtered(&overdue).await.unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].overdue.as_deref(), Some("decision"));
        assert_eq!(
            late[0].due_rule.as_deref(),
            Some("bloc setting instruments.eu-epoc.decision_hours = 1"),
            "each side says which rule set the deadline"
        );
        assert!(!late[0].not_delivered);
    }
    act(
        &de,
        id,
        Action::Decide {
            decision: Decision::Accept,
        },
    )
    .await;
    wait_for_state(&fr, id, "accepted", SETTLE).await;
    fr.advance_clock(2 * 3600).await.unwrap();
    let late = fr.cases_filtered(&overdue).await.unwrap();
    assert_eq!(late[0].overdue.as_deref(), Some("fulfilment"));
    act(
        &de,
        id,
        Action::Fulfil {
            note: String::new(),
        },
    )
    .await;
    wait_for_state(&fr, id, "fulfilled", SETTLE).await;
    assert!(fr.cases_filtered(&overdue).await.unwrap().is_empty());
}
