//! Each reason `insert` refuses an event, and that a refused event stores nothing.

use super::*;
use crate::envelope::EnvelopeError;

#[test]
fn redelivery_is_a_duplicate() {
    let mut r = Replica::submitted();
    let env = r.build("DE", EventKind::Received);
    let id = r.insert(env.clone()).unwrap();
    assert_eq!(r.log.insert(env, roster), Ok(Inserted::Duplicate(id)));
    assert_eq!(r.log.len(), 2);
    assert!(r.log.get(&id).is_some());
}

#[test]
fn refuses_events_of_the_wrong_side() {
    let mut r = Replica::submitted();
    let err = r.act("FR", decided(Decision::Accept)).unwrap_err();
    assert_eq!(
        err,
        EventError::WrongSide {
            kind: "decided",
            author: j("FR"),
            side: Side::Executing
        }
    );
    assert!(matches!(
        r.act("DE", withdrawn()),
        Err(EventError::WrongSide { .. })
    ));
    assert_eq!(r.log.len(), 1);
}

#[test]
fn refuses_bad_signatures_and_unknown_authors() {
    let mut r = Replica::submitted();
    let event = r
        .log
        .next_event(&j("DE"), EventKind::Received, Timestamp::from_millis(1));
    // Signed by FR's key while claiming to be DE.
    let forged = SignedEnvelope::sign(&event, &key(&j("FR"))).unwrap();
    assert!(matches!(
        r.insert(forged),
        Err(EventError::Envelope(EnvelopeError::UnexpectedSigner { .. }))
    ));
    let mut tampered = sign(&event);
    tampered.signature.0[0] ^= 1;
    assert_eq!(
        r.insert(tampered),
        Err(EventError::Envelope(EnvelopeError::BadSignature))
    );
    // GB has a key in the roster but is not a party to this case.
    let gb = r
        .log
        .next_event(&j("GB"), EventKind::Closed, Timestamp::from_millis(1));
    assert_eq!(r.insert(sign(&gb)), Err(EventError::UnknownAuthor(j("GB"))));
    // US has no key at all.
    let mut us = gb.clone();
    us.author = j("US");
    let env = SignedEnvelope::sign(&us, &key(&j("US"))).unwrap();
    assert_eq!(r.insert(env), Err(EventError::UnknownAuthor(j("US"))));
    // Another message type is refused by its domain.
    let receipt = crate::Receipt {
        message_id: crate::MessageId::from_parts(1, 1),
        case_id: CASE,
        body_hash: Hash32::of(b""),
        receiver: j("DE"),
        received_at: Timestamp::from_millis(1),
    };
    let env = SignedEnvelope::sign(&receipt, &key(&j("DE"))).unwrap();
    assert!(matches!(
        r.insert(env),
        Err(EventError::Envelope(EnvelopeError::WrongContentType { .. }))
    ));
    assert_eq!(r.log.len(), 1);
}

#[test]
fn refuses_events_of_another_case() {
    let mut r = Replica::submitted();
    let mut event = r
        .log
        .next_event(&j("DE"), EventKind::Received, Timestamp::from_millis(1));
    event.case_id = CaseId::from_parts(1, 1);
    assert!(matches!(
        r.insert(sign(&event)),
        Err(EventError::WrongCase { .. })
    ));
}

#[test]
fn the_submission_comes_first_and_only_once() {
    let full = Replica::submitted();
    let received = full
        .log
        .next_event(&j("DE"), EventKind::Received, Timestamp::from_millis(1));
    let mut empty = Replica::empty();
    assert_eq!(
        empty.insert(sign(&received)),
        Err(EventError::MissingGenesis { kind: "received" })
    );

    let mut r = Replica::submitted();
    let genesis = r.log.heads()[0];
    let mut second = r
        .log
        .next_event(&j("FR"), submitted(), Timestamp::from_millis(9));
    second.seq = 1;
    second.links.clear();
    assert_eq!(
        r.insert(sign(&second)),
        Err(EventError::NotGenesis { existing: genesis })
    );

    let mut linked =
        CaseLog::new(CASE).next_event(&j("FR"), submitted(), Timestamp::from_millis(1));
    linked.links = vec![Hash32::of(b"x")];
    assert!(matches!(
        empty.insert(sign(&linked)),
        Err(EventError::BadLinks(_))
    ));

    // The executing side cannot open a case on the requester's behalf.
    let by_de = CaseLog::new(CASE).next_event(&j("DE"), submitted(), Timestamp::from_millis(1));
    assert!(matches!(
        empty.insert(sign(&by_de)),
        Err(EventError::Malformed(_))
    ));
    assert!(empty.log.is_empty());
}

#[test]
fn missing_links_store_nothing_until_they_arrive() {
    let mut a = Replica::submitted();
    let received = a.act("DE", EventKind::Received).unwrap();
    let next = a.build("DE", policy(PolicyOutcome::Passed));
    let mut b = Replica::submitted();
    assert_eq!(
        b.insert(next.clone()),
        Err(EventError::MissingLinks(vec![received]))
    );
    assert_eq!(b.log.len(), 1);
    b.insert(a.log.get(&received).unwrap().1.clone()).unwrap();
    b.insert(next.clone()).unwrap();
    a.insert(next).unwrap();
    assert_eq!(b.log.view(), a.log.view());
}

#[test]
fn refuses_bad_sequence_numbers_and_missing_own_links() {
    let mut r = Replica::submitted();
    let mut skip = r
        .log
        .next_event(&j("DE"), EventKind::Received, Timestamp::from_millis(1));
    skip.seq = 2;
    assert_eq!(
        r.insert(sign(&skip)),
        Err(EventError::BadSequence {
            author: j("DE"),
            expected: 1,
            found: 2
        })
    );
    let genesis = r.log.heads()[0];
    r.act("DE", EventKind::Received).unwrap();
    // FR's second event links only the head, which has FR's genesis in its past but is not it.
    let mut indirect = r
        .log
        .next_event(&j("FR"), withdrawn(), Timestamp::from_millis(1));
    indirect.links.retain(|l| *l != genesis);
    assert_eq!(
        r.insert(sign(&indirect)),
        Err(EventError::MissingOwnLink {
            author: j("FR"),
            seq: 2,
            previous: genesis
        })
    );
    let mut unsorted = r
        .log
        .next_event(&j("FR"), withdrawn(), Timestamp::from_millis(1));
    unsorted.links.reverse();
    assert!(matches!(
        r.insert(sign(&unsorted)),
        Err(EventError::BadLinks(_))
    ));
}

#[test]
fn refuses_equivocation() {
    let mut r = Replica::submitted();
    r.act("DE", EventKind::Received).unwrap();
    let accept = r.build("DE", decided(Decision::Accept));
    let refuse = r.build(
        "DE",
        decided(Decision::Refuse {
            reasons: vec!["changed mind".into()],
        }),
    );
    let existing = r.insert(accept).unwrap();
    let new = Hash32::of(&refuse.to_bytes());
    assert_eq!(
        r.insert(refuse),
        Err(EventError::Equivocation {
            author: j("DE"),
            seq: 2,
            existing,
            new
        })
    );
}

#[test]
fn refuses_a_refusal_without_reasons() {
    let mut r = Replica::submitted();
    let err = r
        .act("DE", decided(Decision::Refuse { reasons: vec![] }))
        .unwrap_err();
    assert!(
        err.to_string().contains("at least one non-empty reason"),
        "{err}"
    );
}

#[test]
fn wire_names_are_kebab_case() {
    let kind = decided(Decision::Refuse {
        reasons: vec!["ne bis in idem".into()],
    });
    assert_eq!(
        serde_json::to_value(&kind).unwrap(),
        serde_json::json!({"decided": {"decision": {"refuse": {"reasons": ["ne bis in idem"]}}}})
    );
    for kind in [
        EventKind::Received,
        policy(PolicyOutcome::Passed),
        ask(),
        answer(),
        fulfilled(),
        withdrawn(),
        EventKind::PreservationExtended {
            until: Timestamp::from_millis(1),
        },
        EventKind::PreservationReleased,
    ] {
        let json = serde_json::to_value(&kind).unwrap();
        let tag = json
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| json.as_object().unwrap().keys().next().unwrap().clone());
        assert_eq!(tag, kind.code());
    }
    assert!(
        serde_json::from_value::<EventKind>(
            serde_json::json!({"clarified": {"answer": "x", "extra": 1}})
        )
        .is_err()
    );
    assert_eq!(CaseState::UnderReview.to_string(), "under-review");
    assert_eq!(
        serde_json::to_value(CaseState::PartiallyAccepted).unwrap(),
        "partially-accepted"
    );
}

#[test]
fn a_log_restored_from_its_own_store_is_the_same_and_keeps_every_rule_but_the_signature() {
    let mut r = Replica::submitted();
    r.act("DE", EventKind::Received).unwrap();
    r.act("DE", decided(Decision::Accept)).unwrap();
    let mut restored = CaseLog::new(CASE);
    for env in r.log.envelopes() {
        assert!(matches!(restored.insert_stored(env), Ok(Inserted::New(_))));
    }
    assert_eq!(restored.view(), r.log.view());
    assert_eq!(restored.heads(), r.log.heads());

    // Out of causal order it is still refused: only the signature check is skipped.
    let mut out_of_order = CaseLog::new(CASE);
    let last = r.log.envelopes().pop().unwrap();
    assert!(matches!(
        out_of_order.insert_stored(last),
        Err(EventError::MissingGenesis { .. })
    ));
}

#[test]
fn a_request_approved_by_its_own_drafter_is_refused() {
    let mut r = Replica::empty();
    let env = r.build(
        "FR",
        EventKind::Submitted {
            request: Box::new(sample_request()),
            approval: Approval {
                drafted_by: "anna".into(),
                approved_by: "anna".into(),
                approved_at: Timestamp::from_millis(1_790_000_000_000),
            },
        },
    );
    match r.log.insert(env, roster) {
        Err(EventError::Malformed(why)) => assert!(why.contains("four-eyes"), "{why}"),
        other => panic!("expected a four-eyes refusal, got {other:?}"),
    }
    assert!(r.log.is_empty());
}
