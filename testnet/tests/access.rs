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
    let auditor = de_admin
        .add_officer("auditor", Role::Auditor)
        .await
        .unwrap();
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
