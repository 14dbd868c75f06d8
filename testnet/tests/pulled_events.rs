//! Events that arrive by pull are held to the same rules as pushed ones. A peer with DE's
//! identity, at DE's address, answers FR's pull with a forged DE event (signed with another
//! key), then with an event DE really signed but may not author (a withdrawal, which only
//! the requester may write). FR refuses each, records the refusal, and its case is unchanged.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use comity_node::admin::api::AdminClient;
use comity_node::identity::NodeIdentity;
use comity_protocol::{
    CaseId, CaseLog, Decision, EventKind, RejectCode, SignedEnvelope, Timestamp,
};
use comity_testnet::peer::Lie;
use common::*;

const CONNECT: Duration = Duration::from_secs(30);

/// Polls FR's refusals until one for `case` has `code`, from DE.
async fn refused(fr: &AdminClient, case: CaseId, code: RejectCode) {
    let deadline = Instant::now() + CONNECT;
    loop {
        let refusals = fr.refusals().await.unwrap();
        if let Some(r) = refusals
            .iter()
            .find(|r| r.case_id == Some(case) && r.code == code)
        {
            assert_eq!(r.member, Some(j("DE")), "{r:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "FR recorded no {code} refusal for {case}: {refusals:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_events_that_are_forged_or_misattributed_are_refused_and_not_applied() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let fr = bloc.client("FR");
    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    bloc.wait_converged(CONNECT).await.unwrap();
    let before = fr.log(id).await.unwrap();
    bloc.kill("DE").unwrap();

    // DE's next event, as FR's replica would accept it if DE had signed it.
    let mut log = CaseLog::new(id);
    for envelope in &before.envelopes {
        log.insert_stored(envelope.clone()).unwrap();
    }
    let decide = log.next_event(
        &j("DE"),
        EventKind::Decided {
            decision: Decision::Accept,
        },
        Timestamp::now(),
    );
    // Signed with another key, but naming DE's as its signer.
    let de_key = NodeIdentity::load_dir(&bloc.node("DE").dir).unwrap();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let mut forged = SignedEnvelope::sign(&decide, &stranger).unwrap();
    forged.signer = de_key.public_key();
    let lie = Arc::new(Mutex::new(Lie::Serve(vec![forged])));
    let raw = lying_de(&bloc, lie.clone()).await;
    refused(&fr, id, RejectCode::BadSignature).await;
    drop(raw);

    // Signed by DE, but a withdrawal: only the requesting side may author it.
    let withdraw = log.next_event(
        &j("DE"),
        EventKind::Withdrawn {
            reason: "not DE's to withdraw".into(),
        },
        Timestamp::now(),
    );
    let misattributed = SignedEnvelope::sign(&withdraw, &de_key.signing_key()).unwrap();
    *lie.lock().unwrap() = Lie::Serve(vec![misattributed]);
    let _raw = lying_de(&bloc, lie.clone()).await;
    // (The refusal's reason is withheld from the list: it may quote the content.)
    refused(&fr, id, RejectCode::Invalid).await;

    // Neither was applied: FR's replica is what it was before DE went down.
    let after = fr.log(id).await.unwrap();
    assert_eq!(after.heads, before.heads);
    assert_eq!(after.envelopes, before.envelopes);
    assert_eq!(fr.case(id).await.unwrap().summary.state, "delivered");
}
