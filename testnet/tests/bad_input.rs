//! Bad input against a real node: each case is refused with a reason, nothing is stored, and
//! the node goes on serving.

mod common;

use std::time::Duration;

use comity_node::identity::NodeIdentity;
use comity_node::network::RequestError;
use comity_node::network::codec::FrameCodec;
use comity_node::roster::Member;
use comity_protocol::{
    CaseId, CaseLog, Decision, EventKind, ExchangeResponse, RejectCode, SignedEnvelope, Timestamp,
    from_cbor, limits,
};
use comity_testnet::Bloc;
use comity_testnet::peer::{RawPeer, genesis, signed_push};
use common::*;

const CONNECT: Duration = Duration::from_secs(30);

fn members(bloc: &Bloc) -> (NodeIdentity, Member) {
    let fr = bloc.node("FR");
    let roster = comity_testnet::genesis_roster(&fr.dir).unwrap();
    let de = roster.by_jurisdiction(&j("DE")).unwrap().0.clone();
    (NodeIdentity::load_dir(&fr.dir).unwrap(), de)
}

/// A push of a new case's genesis carrying `request`: events signed by `author`, the push by
/// `sender`.
fn new_case(
    author: &NodeIdentity,
    sender: &NodeIdentity,
    request: comity_protocol::AssistanceRequest,
) -> SignedEnvelope {
    let case_id = CaseId::new();
    let genesis = genesis(&author.signing_key(), case_id, request);
    signed_push(&sender.signing_key(), case_id, vec![genesis])
}

fn rejection(response: ExchangeResponse) -> (RejectCode, String) {
    match response {
        ExchangeResponse::Rejected(r) => (r.code, r.detail),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forged_oversized_invalid_and_stranger_requests_are_refused() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = members(&bloc);
    let de_client = bloc.client("DE");
    let forger = NodeIdentity::generate();

    // A member that sends too much: refused by its own codec unless it lifts its limits.
    let sender = RawPeer::start_with_limits(
        fr.clone(),
        &de,
        FrameCodec {
            max_request: 8 << 20,
            max_response: limits::MAX_RESPONSE_FRAME,
            response_capacity: 0,
        },
    )
    .await
    .unwrap();

    // 1. Malformed CBOR.
    let answer = sender
        .send_frame(de.peer_id, b"\xff\x00 not cbor".to_vec())
        .await
        .unwrap();
    let (code, detail) = rejection(from_cbor(&answer, limits::MAX_RESPONSE_FRAME).unwrap());
    assert_eq!(code, RejectCode::Malformed, "{detail}");
    // The same bad frame again is refused again, but recorded once: a faulty member cannot
    // grow the refusal and audit logs without end.
    for _ in 0..3 {
        let again = sender
            .send_frame(de.peer_id, b"\xff\x00 not cbor".to_vec())
            .await
            .unwrap();
        let (code, _) = rejection(from_cbor(&again, limits::MAX_RESPONSE_FRAME).unwrap());
        assert_eq!(code, RejectCode::Malformed);
    }
    let malformed = de_client
        .refusals()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.code == RejectCode::Malformed)
        .count();
    assert_eq!(malformed, 1, "repeats of one refusal are recorded once");

    // 2. An oversized frame: the stream is refused, the node lives on.
    let oversized = vec![0u8; limits::MAX_REQUEST_FRAME + 1];
    match sender.send_frame(de.peer_id, oversized).await {
        Err(RequestError::Io(why)) if why.contains("closed the stream") => {}
        other => panic!("DE must close the stream of an oversized frame, got {other:?}"),
    }

    // 3. A push whose signature does not verify with FR's roster key.
    let mut forged = new_case(&fr, &forger, request("FR", "DE"));
    forged.signer = fr.public_key();
    let (code, detail) = rejection(sender.push(de.peer_id, &forged).await.unwrap());
    assert_eq!(code, RejectCode::BadSignature, "{detail}");

    // 4. A push signed by a key that is not the connected member's.
    let stranger_signed = new_case(&fr, &forger, request("FR", "DE"));
    let (code, _) = rejection(sender.push(de.peer_id, &stranger_signed).await.unwrap());
    assert_eq!(code, RejectCode::UnknownSigner);

    // 5. A well-signed push whose event is forged: the request claims FR but another key
    //    signed it.
    let mut forged_event = genesis(&forger.signing_key(), CaseId::new(), request("FR", "DE"));
    forged_event.signer = fr.public_key();
    let push = signed_push(&fr.signing_key(), CaseId::new(), vec![forged_event]);
    let (code, detail) = rejection(sender.push(de.peer_id, &push).await.unwrap());
    assert_eq!(code, RejectCode::BadSignature, "{detail}");

    // 6. Invalid fields: every problem is listed.
    let mut invalid = request("FR", "DE");
    invalid.selectors.clear();
    invalid.language = "English".into();
    invalid.retention_days = 0;
    let (code, detail) = rejection(
        sender
            .push(de.peer_id, &new_case(&fr, &fr, invalid))
            .await
            .unwrap(),
    );
    assert_eq!(code, RejectCode::Invalid);
    for field in ["selectors", "language", "retention_days"] {
        assert!(detail.contains(field), "{field} missing from: {detail}");
    }

    // 7. Misaddressed: a request FR→IT delivered to DE.
    let (code, _) = rejection(
        sender
            .push(de.peer_id, &new_case(&fr, &fr, request("FR", "IT")))
            .await
            .unwrap(),
    );
    assert_eq!(code, RejectCode::Misaddressed);

    // 8. An event from the wrong side: FR "decides" its own request.
    let case_id = CaseId::new();
    let first = genesis(&fr.signing_key(), case_id, request("FR", "DE"));
    let mut log = CaseLog::new(case_id);
    let fr_key = fr.signing_key().verifying_key();
    log.insert(first.clone(), |_, _| Ok(fr_key)).unwrap();
    let decide = log.next_event(
        &j("FR"),
        EventKind::Decided {
            decision: Decision::Accept,
        },
        Timestamp::now(),
    );
    let decide = SignedEnvelope::sign(&decide, &fr.signing_key()).unwrap();
    let push = signed_push(&fr.signing_key(), case_id, vec![first, decide]);
    let (code, detail) = rejection(sender.push(de.peer_id, &push).await.unwrap());
    assert_eq!(code, RejectCode::Invalid);
    assert!(detail.contains("executing"), "{detail}");

    // 9. A peer that is not on the roster gets no exchange stream at all.
    let stranger = NodeIdentity::generate();
    let stranger_id = stranger.peer_id();
    let outsider = RawPeer::start(stranger.clone(), &de).await.unwrap();
    let envelope = new_case(&stranger, &stranger, request("FR", "DE"));
    match outsider.push(de.peer_id, &envelope).await {
        Err(e) => assert!(
            matches!(
                e.downcast_ref::<RequestError>(),
                Some(RequestError::ConnectionClosed | RequestError::Unreachable(_))
            ),
            "a stranger's connection must be refused, got {e:?}"
        ),
        Ok(answer) => panic!("a stranger got an answer: {answer:?}"),
    }
    wait_for_log(
        &bloc,
        "DE",
        &["refused connection", &stranger_id.to_string()],
        CONNECT,
    )
    .await;

    // Nothing was stored, every refusal was recorded, and the node still serves a request.
    assert!(de_client.cases().await.unwrap().is_empty());
    let refusals = de_client.refusals().await.unwrap();
    let codes: Vec<RejectCode> = refusals.iter().map(|r| r.code).collect();
    for code in [
        RejectCode::Malformed,
        RejectCode::BadSignature,
        RejectCode::UnknownSigner,
        RejectCode::Invalid,
        RejectCode::Misaddressed,
    ] {
        assert!(codes.contains(&code), "{code} not recorded: {codes:?}");
    }
    assert!(refusals.iter().all(|r| r.member == Some(j("FR"))));

    // A flood of forged events, each in a case of its own: every one is refused, and DE keeps
    // a few of that kind from FR (a sample with each write of the tally, at most one a
    // second), not one record per invented case.
    for _ in 0..40 {
        let mut forged_event = genesis(&forger.signing_key(), CaseId::new(), request("FR", "DE"));
        forged_event.signer = fr.public_key();
        let push = signed_push(&fr.signing_key(), CaseId::new(), vec![forged_event]);
        let (code, _) = rejection(sender.push(de.peer_id, &push).await.unwrap());
        assert_eq!(code, RejectCode::BadSignature);
    }
    let kept = de_client
        .refusals()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.code == RejectCode::BadSignature)
        .count();
    assert!(
        (1..=16).contains(&kept),
        "{kept} bad-signature refusals kept"
    );
    let case = send(&bloc, "FR", "DE", Some(20_000)).await;
    assert_eq!(case.summary.state, "delivered");
    assert_eq!(de_client.cases().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_refuses_missing_and_wrong_tokens_and_lists_invalid_fields() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start("FR").unwrap();
    bloc.wait_up("FR", CONNECT).await.unwrap();
    let url = format!("{}/v1/status", bloc.node("FR").admin_url());
    let http = reqwest::Client::new();

    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert!(body["reason"].as_str().unwrap().contains("token"));

    let wrong = http
        .get(&url)
        .bearer_auth("comity_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let mut invalid = request("FR", "DE");
    // Built directly: the text form would refuse to parse it before the node ever saw it.
    invalid.selectors = vec![comity_protocol::Selector::Email("not-an-address".into())];
    invalid.necessity.clear();
    invalid.language = "xx-long".into();
    let err = bloc
        .client("FR")
        .create_request(&comity_node::admin::api::NewRequest { request: invalid })
        .await
        .unwrap_err();
    match err {
        comity_node::admin::api::ClientError::Api { status, error } => {
            assert_eq!(status, 422);
            let fields: Vec<&str> = error.problems.iter().map(|p| p.field.as_str()).collect();
            assert!(
                fields.contains(&"necessity")
                    && fields.contains(&"language")
                    && fields.contains(&"selectors[0]"),
                "{fields:?}"
            );
        }
        other => panic!("expected a 422, got {other}"),
    }
    assert!(
        bloc.client("FR").cases().await.unwrap().is_empty(),
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_member_is_refused_and_both_of_its_events_are_kept() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = members(&bloc);
    let de_client = bloc.client("DE");
    let sender = RawPeer::start(fr.clone(), &de).await.unwrap();

    // A request DE accepts.
    let case_id = CaseId::new();
    let first = genesis(&fr.signing_key(), case_id, request("FR", "DE"));
    let push = signed_push(&fr.signing_key(), case_id, vec![first.clone()]);
    assert!(matches!(
        sender.push(de.peer_id, &push).await.unwrap(),
        ExchangeResponse::Receipt(_)
    ));
    // FR signs two different withdrawals as its second event.
    let mut log = CaseLog::new(case_id);
    log.insert_stored(first).unwrap();
    let withdrawal = |reason: &str| {
        let event = log.next_event(
            &j("FR"),
            EventKind::Withdrawn {
                reason: reason.into(),
            },
            Timestamp::now(),
        );
        SignedEnvelope::sign(&event, &fr.signing_key()).unwrap()
    };
    let (one, other) = (
        withdrawal("no longer needed"),
        withdrawal("sent by mistake"),
    );
    let push = signed_push(&fr.signing_key(), case_id, vec![one.clone()]);
    assert!(matches!(
        sender.push(de.peer_id, &push).await.unwrap(),
        ExchangeResponse::Receipt(_)
    ));
    let push = signed_push(&fr.signing_key(), case_id, vec![other.clone()]);
    let (code, detail) = rejection(sender.push(de.peer_id, &push).await.unwrap());
    assert_eq!(code, RejectCode::Invalid);
    assert!(detail.contains("equivocation"), "{detail}");

    // Both signed events are kept as evidence, and shown.
    let kept = de_client.equivocations().await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        (kept[0].author.clone(), kept[0].case_id),
        (j("FR"), case_id)
    );
    assert_eq!(kept[0].existing, one);
    assert_eq!(kept[0].offered, other);
    let status = de_client.status().await.unwrap();
    assert!(
        status
            .equivocations
            .iter()
            .any(|e| e.contains("FR signed two")),
        "{:?}",
        status.equivocations
    );
    // The same again adds nothing.
    let push = signed_push(&fr.signing_key(), case_id, vec![other]);
    rejection(sender.push(de.peer_id, &push).await.unwrap());
    assert_eq!(de_client.equivocations().await.unwrap().len(), 1);
}
