//! Real node processes exchanging requests over TCP + Noise: delivery, signed receipts,
//! the durable outbox and exactly-once processing.

mod common;

use std::time::Duration;

use comity_node::admin::api::CaseRole;
use comity_node::identity::NodeIdentity;
use comity_protocol::{
    EventPush, ExchangeResponse, Receipt, RejectCode, SignedEnvelope, Timestamp,
};
use comity_testnet::peer::RawPeer;
use common::*;

const CONNECT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr_sends_to_de_which_stores_it_and_fr_verifies_the_receipt() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();

    let fr = bloc.client("FR");
    let case = send(&bloc, "FR", "DE", Some(20_000)).await;
    assert_eq!(case.summary.state, "delivered", "{:?}", case.delivery);
    let receipt_view = case.receipt.as_ref().unwrap();
    assert!(receipt_view.signature_valid);

    // Verify DE's receipt independently, with DE's signing key as the bloc's genesis lists it.
    let roster = comity_testnet::genesis_roster(&bloc.node("FR").dir).unwrap();
    let de_key = roster
        .by_jurisdiction(&j("DE"))
        .unwrap()
        .1
        .verifying_key()
        .unwrap();
    let signed_receipt = case.signed_receipt.clone().unwrap();
    let receipt: Receipt = signed_receipt.open(&de_key).unwrap();
    assert_eq!(receipt.receiver, j("DE"));
    assert_eq!(receipt.case_id, case.summary.case_id);
    assert_eq!(Some(receipt.message_id), case.message_id);
    // ...and FR's key does not verify it.
    let fr_key = roster
        .by_jurisdiction(&j("FR"))
        .unwrap()
        .1
        .verifying_key()
        .unwrap();
    assert!(signed_receipt.open::<Receipt>(&fr_key).is_err());

    let de = bloc.client("DE");
    let received = de.case(case.summary.case_id).await.unwrap();
    assert_eq!(received.summary.role, CaseRole::Executing);
    assert_eq!(received.summary.state, "delivered");
    assert_eq!(received.request, Some(request("FR", "DE")));
    assert_eq!(received.signed_receipt, case.signed_receipt);
    // Both replicas hold the same signed log: FR's request, then DE's `received`.
    let fr_log = fr.log(case.summary.case_id).await.unwrap();
    let de_log = de.log(case.summary.case_id).await.unwrap();
    assert_eq!(fr_log.heads, de_log.heads);
    assert_eq!(fr_log.envelopes, de_log.envelopes);
    let kinds: Vec<&str> = de_log.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "received"]);
    assert_eq!(de.inbox().await.unwrap().len(), 1);
    assert!(
        bloc.client("IT").cases().await.unwrap().is_empty(),
        "IT is not party to the case"
    );
    assert_eq!(fr.status().await.unwrap().outbox_depth, 0);

    // SIGTERM stops a node gracefully.
    let status = bloc
        .stop("IT")
        .unwrap()
        .expect("IT exits by itself on SIGTERM");
    assert!(status.success(), "{status:?}");
    let log = bloc.log("IT");
    assert!(log.contains("SIGTERM") && log.contains("stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_node_that_is_down_is_delivered_exactly_once_when_it_starts() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    bloc.start("FR").unwrap();
    bloc.start("IT").unwrap();
    bloc.wait_up("FR", CONNECT).await.unwrap();
    let fr = bloc.client("FR");

    let case = send(&bloc, "FR", "DE", None).await;
    let id = case.summary.case_id;
    assert_eq!(case.summary.state, "submitted");
    assert_eq!(fr.status().await.unwrap().outbox_depth, 1);

    // It stays queued, with the reason, across a crash of the sender: once FR has tried and
    // failed at least once.
    let queued = wait_case(&fr, id, "FR trying", |c| {
        c.delivery.attempts >= 1 && c.delivery.last_error.is_some()
    })
    .await;
    assert_eq!(queued.summary.state, "submitted");
    bloc.kill("FR").unwrap();
    bloc.start("FR").unwrap();
    bloc.wait_up("FR", CONNECT).await.unwrap();
    assert_eq!(fr.status().await.unwrap().outbox_depth, 1);

    bloc.start("DE").unwrap();
    let mut delivered = wait_for_state(&fr, id, "delivered", CONNECT).await;
    // A pull can bring DE's `received` event a moment before the push's receipt lands.
    let deadline = std::time::Instant::now() + CONNECT;
    while delivered.receipt.is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        delivered = fr.case(id).await.unwrap();
    }
    assert!(delivered.receipt.as_ref().unwrap().signature_valid);
    assert_eq!(fr.status().await.unwrap().outbox_depth, 0);
    let de = bloc.client("DE");
    assert_eq!(de.cases().await.unwrap().len(), 1);
    // Processed once: DE stated once that it holds the request.
    let processed_once = |log: &comity_node::admin::api::LogView| {
        let kinds: Vec<&str> = log.entries.iter().map(|e| e.kind.as_str()).collect();
        let notes: Vec<_> = log.entries.iter().map(|e| &e.note).collect();
        assert_eq!(kinds, ["submitted", "received"], "notes: {notes:?}");
    };
    let de_log = de.log(id).await.unwrap();
    processed_once(&de_log);

    // A resend of the same message gets the original receipt and is not processed again.
    let fr_identity = NodeIdentity::load_dir(&bloc.node("FR").dir).unwrap();
    let roster = comity_testnet::genesis_roster(&bloc.node("FR").dir).unwrap();
    let de_member = roster.by_jurisdiction(&j("DE")).unwrap().0.clone();
    let replayer = RawPeer::start(fr_identity.clone(), &de_member)
        .await
        .unwrap();
    // The exact push FR sent, rebuilt from its parts: Ed25519 signatures are deterministic.
    let fr_log = fr.log(id).await.unwrap();
    let mut push = EventPush {
        message_id: delivered.message_id.unwrap(),
        case_id: id,
        sent_at: fr_log.entries[0].at,
        events: vec![fr_log.envelopes[0].clone()],
    };
    let resent = SignedEnvelope::sign(&push, &fr_identity.signing_key()).unwrap();
    match replayer.push(de_member.peer_id, &resent).await.unwrap() {
        ExchangeResponse::Receipt(answer) => {
            assert_eq!(Some(answer.receipt), delivered.signed_receipt)
        }
        other => panic!("expected the original receipt, got {other:?}"),
    }
    // The same message id with other content is refused, not processed.
    push.sent_at = Timestamp::from_millis(push.sent_at.as_millis() + 1);
    let altered = SignedEnvelope::sign(&push, &fr_identity.signing_key()).unwrap();
    match replayer.push(de_member.peer_id, &altered).await.unwrap() {
        ExchangeResponse::Rejected(r) => assert_eq!(r.code, RejectCode::Malformed),
        other => panic!("a reused message id with other content must be refused, got {other:?}"),
    }
    // Neither the resend nor the altered copy changed DE's case: same log, same heads, the
    // original receipt.
    assert_eq!(de.cases().await.unwrap().len(), 1);
    let after = de.log(id).await.unwrap();
    processed_once(&after);
    assert_eq!(after.heads, de_log.heads);
    assert_eq!(after.envelopes, de_log.envelopes);
    assert_eq!(
        de.case(id).await.unwrap().signed_receipt,
        delivered.signed_receipt
    );
    assert!(
        bloc.log("DE")
            .contains("duplicate message answered with its original receipt")
    );
}
