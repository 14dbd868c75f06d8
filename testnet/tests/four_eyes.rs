//! Four-eyes: a request leaves only after another officer approves it, and content data is
//! disclosed only after an approver other than the discloser approves. Every bypass is
//! refused with a clear error and logged.

mod common;

use std::time::Duration;

use comity_node::admin::api::{Action, AdminClient, ClientError, NewRequest};
use comity_node::admin::officers::Role;
use comity_node::identity::NodeIdentity;
use comity_protocol::{
    Approval, CaseEvent, CaseId, DataCategory, Decision, EventKind, ExchangeResponse, Instrument,
    RejectCode, SignedEnvelope, Timestamp,
};
use comity_testnet::peer::{RawPeer, signed_push};
use common::*;

fn refused(result: Result<impl std::fmt::Debug, ClientError>, status: u16, needle: &str) {
    match result {
        Err(ClientError::Api { status: s, error }) => {
            assert_eq!(s, status, "{error:?}");
            assert!(
                error.reason.contains(needle),
                "{:?} does not say {needle:?}",
                error.reason
            );
        }
        other => panic!("expected a {status} saying {needle:?}, got {other:?}"),
    }
}

async fn officer(admin: &AdminClient, base: &str, name: &str, role: Role) -> AdminClient {
    let added = admin.add_officer(name, role).await.unwrap();
    AdminClient::new(base, added.token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_four_eyes_bypass_is_refused_and_logged() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (fr_admin, de_admin) = (bloc.client("FR"), bloc.client("DE"));
    let (fr_url, de_url) = (bloc.node("FR").admin_url(), bloc.node("DE").admin_url());
    let drafter = officer(&fr_admin, &fr_url, "drafter", Role::Requester).await;
    let departed = officer(&fr_admin, &fr_url, "departed", Role::Approver).await;
    let approver = bloc.approver("FR");

    let mut content = request("FR", "DE");
    content.instrument = Instrument::MlatBilateral;
    content.data_categories = vec![DataCategory::Content];
    let id = drafter
        .create_request(&NewRequest { request: content })
        .await
        .unwrap()
        .summary
        .case_id;

    // Approval by the drafter's own role, and by an admin: the wrong role.
    refused(drafter.approve(id).await, 403, "`approver`");
    refused(fr_admin.approve(id).await, 403, "`approver`");
    // Sending before approval.
    refused(drafter.send(id, None).await, 409, "four-eyes");
    // A revoked approver.
    fr_admin.revoke_officer("departed").await.unwrap();
    match departed.approve(id).await {
        Err(ClientError::Api { status: 401, .. }) => {}
        other => panic!("a revoked officer must be refused, got {other:?}"),
    }
    // The approval, then its replay.
    let approved = approver.approve(id).await.unwrap();
    let approval = approved.approval.clone().unwrap();
    assert_eq!(
        (approval.drafted_by.as_str(), approval.approved_by.as_str()),
        ("drafter", "approver")
    );
    refused(approver.approve(id).await, 409, "already approved");

    // The approval travels in the signed request: DE sees who drafted and who approved.
    let sent = drafter
        .send(id, Some(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(sent.summary.state, "delivered");
    let at_de = de_admin.case(id).await.unwrap();
    assert_eq!(at_de.approval, Some(approval));

    // Executing side: content data is disclosed only after an approver's approval, by someone
    // other than that approver.
    let reviewer = officer(&de_admin, &de_url, "reviewer", Role::Reviewer).await;
    reviewer
        .act(
            id,
            &Action::Decide {
                decision: Decision::Accept,
            },
        )
        .await
        .unwrap();
    let fulfil = Action::Fulfil {
        note: "mailbox export".into(),
    };
    refused(reviewer.act(id, &fulfil).await, 409, "four-eyes");
    bloc.approver("DE").approve(id).await.unwrap();
    refused(
        bloc.approver("DE").approve(id).await,
        409,
        "already approved",
    );
    reviewer.act(id, &fulfil).await.unwrap();
    wait_for_state(&fr_admin, id, "fulfilled", Duration::from_secs(20)).await;

    // A requesting node that forges four-eyes (its drafter approving its own request) is
    // refused by the executing node.
    let fr_dir = bloc.node("FR").dir.clone();
    let fr_key = NodeIdentity::load_dir(&fr_dir).unwrap();
    let de = comity_testnet::genesis_roster(&fr_dir)
        .unwrap()
        .by_jurisdiction(&j("DE"))
        .unwrap()
        .0
        .clone();
    let raw = RawPeer::start(fr_key.clone(), &de).await.unwrap();
    let case_id = CaseId::new();
    let genesis = CaseEvent {
        case_id,
        author: j("FR"),
        seq: 1,
        links: vec![],
        at: Timestamp::now(),
        kind: EventKind::Submitted {
            request: Box::new(request("FR", "DE")),
            approval: Approval {
                drafted_by: "drafter".into(),
                approved_by: "drafter".into(),
                approved_at: Timestamp::now(),
            },
        },
    };
    let genesis = SignedEnvelope::sign(&genesis, &fr_key.signing_key()).unwrap();
    match raw
        .push(
            de.peer_id,
            &signed_push(&fr_key.signing_key(), case_id, vec![genesis]),
        )
        .await
        .unwrap()
    {
        ExchangeResponse::Rejected(r) => {
            assert_eq!(r.code, RejectCode::Invalid);
            assert!(r.detail.contains("four-eyes"), "{}", r.detail);
        }
        other => panic!("a self-approved request must be refused, got {other:?}"),
    }
    match de_admin.case(case_id).await {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("nothing may be stored of a refused request, got {other:?}"),
    }

    // Each refusal is in the logs, by officer.
    let fr_log = bloc.log("FR");
    let logged = |log: &str, needles: &[&str]| {
        assert!(
            log.lines().any(|l| needles.iter().all(|n| l.contains(n))),
            "no log line with {needles:?}"
        );
    };
    // Two refusals for the role: the drafter's and the admin's.
    let by_role: Vec<&str> = fr_log
        .lines()
        .filter(|l| l.contains("approval refused: role"))
        .collect();
    assert_eq!(by_role.len(), 2, "{by_role:?}");
    assert_eq!(
        by_role.iter().filter(|l| l.contains("drafter")).count(),
        1,
        "{by_role:?}"
    );
    // The replayed approval, refused by the case service (not for its role).
    logged(
        &fr_log,
        &["approval refused", "already approved", "approver"],
    );
    logged(&fr_log, &["send refused: not approved", &id.to_string()]);
    logged(&bloc.log("DE"), &["fulfilment refused", "reviewer"]);
}
