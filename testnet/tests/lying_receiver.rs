//! The requester's side of delivery when the receiver lies. A peer with DE's own identity, at
//! DE's address, answers FR's pushes with a receipt that does not verify with DE's roster key,
//! then with one that DE signed for another body, then with a refusal. Neither receipt may
//! count as delivery, and both are retried until the real DE answers honestly; the refusal
//! is final and is shown to the officer.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use comity_node::admin::api::{AdminClient, CaseDetail};
use comity_protocol::{CaseId, RejectCode};
use comity_testnet::peer::Lie;
use common::*;

const CONNECT: Duration = Duration::from_secs(30);

async fn error_says(client: &AdminClient, id: CaseId, needle: &str) -> CaseDetail {
    wait_case(client, id, &format!("an error saying {needle:?}"), |c| {
        c.delivery
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(needle))
    })
    .await
}

/// Not delivered: no receipt kept, still submitted, still queued.
fn undelivered(case: &CaseDetail) {
    assert_eq!(case.summary.state, "submitted", "{:?}", case.delivery);
    assert!(case.receipt.is_none() && case.signed_receipt.is_none());
    assert!(case.delivery.refused.is_none(), "{:?}", case.delivery);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_counts_only_a_receipt_that_verifies_for_exactly_what_it_sent() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start("FR").unwrap();
    bloc.wait_up("FR", CONNECT).await.unwrap();
    let fr = bloc.client("FR");

    // A receipt of exactly FR's push, signed with a key that is not DE's.
    let lie = Arc::new(Mutex::new(Lie::ForeignSignature(
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    )));
    let raw = lying_de(&bloc, lie.clone()).await;
    let forged = send(&bloc, "FR", "DE", None).await.summary.case_id;
    let case = error_says(&fr, forged, "invalid receipt").await;
    undelivered(&case);
    assert!(
        bloc.log("FR").contains("receipt refused"),
        "FR does not log the refused receipt"
    );

    // A receipt DE really signed, but of another body than the one FR sent.
    *lie.lock().unwrap() = Lie::WrongBodyHash;
    let other_body = send(&bloc, "FR", "DE", None).await.summary.case_id;
    let case = error_says(&fr, other_body, "body hash does not match").await;
    undelivered(&case);
    assert_eq!(fr.status().await.unwrap().outbox_depth, 2);

    // The real DE comes back: both requests are delivered, with receipts that verify.
    drop(raw);
    bloc.start("DE").unwrap();
    for id in [forged, other_body] {
        wait_for_state(&fr, id, "delivered", CONNECT).await;
        let case = wait_case(&fr, id, "a receipt", |c| c.receipt.is_some()).await;
        assert!(case.receipt.unwrap().signature_valid);
    }
    wait_outbox_empty(&fr, CONNECT).await;

    // A refusal of the message itself: final, not retried, and shown to the officer.
    bloc.kill("DE").unwrap();
    *lie.lock().unwrap() = Lie::Refuse(RejectCode::Invalid);
    let _raw = lying_de(&bloc, lie.clone()).await;
    let refused = send(&bloc, "FR", "DE", None).await.summary.case_id;
    let case = wait_case(&fr, refused, "a refusal", |c| c.delivery.refused.is_some()).await;
    let why = case.delivery.refused.clone().unwrap();
    assert!(why.contains("refused by a lying receiver"), "{why}");
    assert_eq!(case.summary.state, "submitted");
    assert!(case.receipt.is_none());
    assert_eq!(fr.status().await.unwrap().outbox_depth, 0);
}
