//! Negotiation between real nodes: after a partial acceptance the requester amends its
//! request (a new signed version inside the same case, four-eyes), the executing side sees
//! what changed, checks it against its policy again and accepts it; on another case the
//! requester accepts the narrower scope. Both replicas hold identical logs.

mod common;

use std::time::Duration;

use comity_node::admin::api::{Action, ClientError};
use comity_protocol::{DataCategory, Decision};
use common::*;

const SETTLE: Duration = Duration::from_secs(30);

const DE_POLICY: &str = r#"
[[agreement]]
partner = "FR"
instruments = ["eu-epoc"]
data_categories = ["subscriber", "traffic"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_acceptance_is_answered_by_an_amendment_or_by_accepting_the_scope() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    std::fs::write(bloc.node("DE").dir.join("policy.toml"), DE_POLICY).unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(SETTLE).await.unwrap();
    let (fr, de, fr_approver) = (bloc.client("FR"), bloc.client("DE"), bloc.approver("FR"));
    let partial = |scope: &str| Action::Decide {
        decision: Decision::Partial {
            scope: scope.into(),
        },
    };

    // A partial acceptance, answered by an amendment.
    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    wait_for_state(&de, id, "under-review", SETTLE).await;
    de.act(id, &partial("subscriber data only")).await.unwrap();
    wait_for_state(&fr, id, "partially-accepted", SETTLE).await;

    let mut narrower = request("FR", "DE");
    let asked = narrower.retention_days;
    narrower.retention_days = 30;
    narrower.data_categories = vec![DataCategory::Subscriber];
    // A first draft, withdrawn before anyone approves it: nothing is signed.
    let first = fr.amend(id, request("FR", "DE")).await.unwrap();
    assert!(first.pending_amendment.is_some());
    let withdrawn = ok(comity(
        &bloc.node("FR").config,
        &[
            "case",
            "amend",
            &id.to_string(),
            "--cancel",
            "--token-file",
            bloc.node("FR").token_file.to_str().unwrap(),
        ],
    ));
    assert!(!withdrawn.contains("AMENDMENT"), "{withdrawn}");
    assert!(fr.case(id).await.unwrap().pending_amendment.is_none());
    let file = bloc.dir.join("narrower.json");
    std::fs::write(&file, serde_json::to_string_pretty(&narrower).unwrap()).unwrap();
    let drafted = comity(
        &bloc.node("FR").config,
        &[
            "case",
            "amend",
            &id.to_string(),
            "--file",
            file.to_str().unwrap(),
            "--token-file",
            bloc.node("FR").token_file.to_str().unwrap(),
        ],
    );
    let shown = ok(drafted);
    assert!(shown.contains("AMENDMENT"), "{shown}");
    // Nothing signed yet; its drafter cannot approve it; the approver does.
    match fr.approve(id).await {
        Err(ClientError::Api { status, error }) => {
            assert!(
                status == 403 || error.reason.contains("four-eyes"),
                "{error:?}"
            )
        }
        other => panic!("the drafter approved its own amendment: {other:?}"),
    }
    let pending = fr.case(id).await.unwrap().pending_amendment.unwrap();
    assert_eq!(pending.changes, [format!("retention_days: {asked} → 30")]);
    fr_approver.approve(id).await.unwrap();

    // DE holds the new version, sees what changed, has checked it again, and decides afresh.
    let at_de = wait_case(&de, id, "DE checked the new version", |c| {
        c.summary.state == "under-review" && c.request_version == 2
    })
    .await;
    assert_eq!(at_de.request.unwrap(), narrower);
    assert_eq!(at_de.summary.policy.as_deref(), Some("passed"));
    let amendment = &at_de.amendments[0];
    assert_eq!(
        (amendment.version, amendment.drafted_by.as_str()),
        (2, "admin")
    );
    assert_eq!(amendment.approved_by.as_deref(), Some("approver"));
    assert_eq!(amendment.changes.len(), 1, "{:?}", amendment.changes);
    de.act(
        id,
        &Action::Decide {
            decision: Decision::Accept,
        },
    )
    .await
    .unwrap();
    wait_for_state(&fr, id, "accepted", SETTLE).await;
    bloc.wait_converged(SETTLE).await.unwrap();
    let (fr_log, de_log) = (fr.log(id).await.unwrap(), de.log(id).await.unwrap());
    assert_eq!(fr_log.envelopes, de_log.envelopes, "both logs identical");
    let steps: Vec<&str> = de_log.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        steps,
        [
            "submitted",
            "received",
            "policy-checked",
            "decided",
            "amended",
            "policy-checked",
            "decided"
        ]
    );
    assert!(de_log.entries.iter().all(|e| e.applied));

    // Another partial acceptance, whose scope the requester accepts.
    let other = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    wait_for_state(&de, other, "under-review", SETTLE).await;
    de.act(other, &partial("March only")).await.unwrap();
    wait_for_state(&fr, other, "partially-accepted", SETTLE).await;
    fr.act(other, &Action::AcceptScope).await.unwrap();
    let seen = wait_case(&de, other, "DE sees the scope accepted", |c| {
        c.scope_accepted_at.is_some()
    })
    .await;
    assert_eq!(seen.summary.state, "partially-accepted");
    // Once accepted in full, there is nothing to amend.
    match fr.amend(id, narrower).await {
        Err(ClientError::Api { status: 409, error }) => {
            assert!(
                error.reason.contains("partial acceptance"),
                "{}",
                error.reason
            )
        }
        other => panic!("an accepted request was amended: {other:?}"),
    }
}
