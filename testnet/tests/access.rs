//! The access log: a read of case content needs a stated purpose and is recorded with the
//! officer and the time; auditors read the log, other roles cannot.

mod common;

use std::time::Duration;

use comity_node::admin::api::{AdminClient, ClientError};
use comity_node::admin::officers::Role;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_case_content_is_logged_with_its_purpose() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let de_admin = bloc.client("DE");
    let url = bloc.node("DE").admin_url();
    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;

    let reviewer = de_admin
        .add_officer("reviewer", Role::Reviewer)
        .await
        .unwrap();
    let reviewer = AdminClient::new(&url, reviewer.token);
    let auditor = bloc.appoint("DE", "auditor", Role::Auditor).await.unwrap();
    let auditor = AdminClient::new(&url, auditor.token);

    // Without a purpose: refused, and nothing is read.
    match reviewer.case(id).await {
        Err(ClientError::Api { status: 400, error }) => {
            assert!(error.reason.contains("purpose"), "{error:?}")
        }
        other => panic!("a read without a purpose must be refused, got {other:?}"),
    }
    let reviewer = reviewer.with_purpose("assess proportionality");
    let case = reviewer.case(id).await.unwrap();
    assert!(case.request.is_some());
    reviewer.log(id).await.unwrap();

    let log = auditor.access_log(Some(id)).await.unwrap();
    let by_reviewer: Vec<_> = log.iter().filter(|r| r.officer == "reviewer").collect();
    assert_eq!(by_reviewer.len(), 2, "{log:?}");
    assert!(
        by_reviewer
            .iter()
            .all(|r| r.purpose == "assess proportionality" && r.role == Role::Reviewer)
    );
    assert_eq!(by_reviewer[0].what, "case");
    assert_eq!(by_reviewer[1].what, "log");
    // Auditors read the access log; a reviewer cannot.
    match reviewer.access_log(None).await {
        Err(ClientError::Api { status: 403, error }) => assert!(error.reason.contains("`auditor`")),
        other => panic!("only auditors read the access log, got {other:?}"),
    }
}

/// Oversight is not appointed by the overseen alone: one admin only proposes an auditor or an
/// oversight officer, the same admin cannot approve it, a second admin does. The oversight
/// officer then reads the access log, the audit log and the officers (who appointed whom),
/// and is refused the content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversight_takes_two_admins_and_never_reads_content() {
    use comity_node::admin::api::OfficerChange;

    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (admin, admin2) = (bloc.client("DE"), bloc.second_admin("DE"));
    let url = bloc.node("DE").admin_url();
    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    admin.case(id).await.unwrap(); // a read of content, recorded

    for role in [Role::Auditor, Role::Oversight] {
        let name = format!("{role}-1");
        let proposed = admin.appoint_officer(&name, role).await.unwrap();
        assert!(
            matches!(&proposed, OfficerChange::Pending { pending } if pending.proposed_by == "admin"),
            "{proposed:?}"
        );
        // Not an officer yet, and its proposer cannot complete it.
        assert!(
            admin
                .officers()
                .await
                .unwrap()
                .iter()
                .all(|o| o.name != name)
        );
        match admin.approve_officer(&name).await {
            Err(ClientError::Api { status: 409, error }) => {
                assert!(error.reason.contains("four-eyes"), "{}", error.reason)
            }
            other => panic!("the proposer approved its own proposal: {other:?}"),
        }
    }
    assert_eq!(admin.pending_officers().await.unwrap().len(), 2);
    let OfficerChange::Added { officer, token } =
        admin2.approve_officer("oversight-1").await.unwrap()
    else {
        panic!("the second admin's approval adds the officer");
    };
    assert_eq!(officer.appointed_by, ["admin", "admin2"]);
    let oversight = AdminClient::new(&url, token).with_purpose("annual inspection");

    // It reads the access log, the audit log and who appointed whom ...
    let reads = oversight.access_log(Some(id)).await.unwrap();
    assert!(reads.iter().any(|r| r.officer == "admin"), "{reads:?}");
    let entries = oversight.audit_entries(0, 1000).await.unwrap();
    assert!(
        entries.iter().any(|e| matches!(
            &e.entry.what,
            comity_protocol::audit::AuditWhat::Officer { officer, change, by: Some(by), .. }
                if officer == "oversight-1" && change == "added" && by == "admin, admin2"
        )),
        "the appointment and both admins are in the audit log"
    );
    let listed = oversight.officers().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|o| o.name == "oversight-1" && o.appointed_by.len() == 2)
    );
    assert_eq!(oversight.cases().await.unwrap().len(), 1, "case metadata");
    // ... but never the content, and it appoints nobody.
    for result in [
        oversight.case(id).await.map(|_| ()),
        oversight.log(id).await.map(|_| ()),
    ] {
        match result {
            Err(ClientError::Api { status: 403, .. }) => {}
            other => panic!("oversight read content: {other:?}"),
        }
    }
    match oversight.appoint_officer("x", Role::Reviewer).await {
        Err(ClientError::Api { status: 403, .. }) => {}
        other => panic!("oversight appointed an officer: {other:?}"),
    }

    // Revoking it takes two admins too: its token works until the second approves.
    assert!(matches!(
        admin.revoke_or_propose("oversight-1").await.unwrap(),
        OfficerChange::Pending { .. }
    ));
    oversight.access_log(None).await.unwrap();
    admin2.approve_officer("oversight-1").await.unwrap();
    match oversight.access_log(None).await {
        Err(ClientError::Api { status: 401, .. }) => {}
        other => panic!("a revoked token still works: {other:?}"),
    }
}
