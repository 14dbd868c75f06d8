//! What arrives from the other party, and how both sides converge whatever the order.

use comity_protocol::{CaseState, Decision, EventKind, Hash32, RejectCode};

use super::*;
use proptest::prelude::*;

#[test]
fn a_duplicate_push_adds_nothing_but_its_own_receipt() {
    let roster = roster();
    let (fr, mut de) = sent(&roster);
    let entry = fr.outbox[0].clone();
    de.take_push(&roster, &j("FR"), &entry).unwrap();
    let events = de.case.log.len();
    // The same events again under another message id (a resend after a lost receipt).
    let mut again = entry.clone();
    let (_, _, pushed) = open_push(&entry);
    let resent = fr
        .with_clone(&roster, |ctx, _| ctx.push(fr.record(), pushed, true))
        .unwrap();
    again.frame = resent.frame;
    let plan = de.take_push(&roster, &j("FR"), &again).unwrap();
    assert_eq!(plan.received, 0);
    assert!(
        plan.events.is_empty(),
        "no event twice, no second `received`"
    );
    assert_eq!(de.case.log.len(), events);
    assert!(plan.reply.is_some() && plan.inbox.is_some());
    assert_eq!(de.inbox.len(), 2);
}

#[test]
fn a_pull_that_overtakes_the_push_creates_the_case_and_the_push_then_proves_delivery() {
    let roster = roster();
    let (mut fr, mut de) = sent(&roster);
    let entry = fr.outbox[0].clone();
    let (_, _, events) = open_push(&entry);
    let plan = de.take_pull(&roster, &j("FR"), events).unwrap();
    assert!(plan.reply.is_none());
    assert!(de.record().receipt.is_none(), "no receipt without the push");
    // DE's `received` goes by its own push, since there is no receipt to carry it.
    assert_eq!(de.outbox.len(), 1);
    let plan = de.take_push(&roster, &j("FR"), &entry).unwrap();
    assert!(plan.events.is_empty(), "nothing new, no second `received`");
    let reply = plan.reply.unwrap();
    assert_eq!(
        reply.events.len(),
        1,
        "the receipt carries DE's `received`, made at the pull"
    );
    assert_eq!(de.record().genesis_message, Some(entry.message_id));
    assert!(de.record().receipt.is_some());
    fr.take_receipt(&roster, &j("DE"), &entry, reply);
    assert!(fr.record().receipt.is_some());
    assert_eq!(
        fr.state(),
        Some(CaseState::Delivered),
        "delivered with the receipt, not after DE's own push"
    );
    settle(&roster, &mut fr, &mut de);
    same_case(&fr, &de);
    assert_eq!(fr.state(), Some(CaseState::Delivered));
}

#[test]
fn a_replayed_receipt_changes_nothing_that_matters() {
    let roster = roster();
    let (mut fr, mut de) = sent(&roster);
    let entry = fr.outbox[0].clone();
    let reply = de
        .take_push(&roster, &j("FR"), &entry)
        .unwrap()
        .reply
        .unwrap();
    fr.take_receipt(&roster, &j("DE"), &entry, reply.clone());
    let before = fr.record().clone();
    fr.take_receipt(&roster, &j("DE"), &entry, reply);
    let after = fr.record();
    assert_eq!(after.receipt, before.receipt);
    assert_eq!(after.log, before.log);
    assert!(fr.outbox.is_empty());
}

#[test]
fn a_refused_request_is_marked_undeliverable_and_takes_no_further_step_but_its_retention_ends() {
    let roster = roster();
    let (mut fr, _) = sent(&roster);
    let entry = fr.outbox[0].clone();
    let plan = fr.with(&roster, |ctx, case| {
        failed(ctx, case.record, &entry, "connection refused")
    });
    fr.apply(plan);
    assert_eq!(fr.record().delivery.attempts, 1);
    assert_eq!(fr.outbox.len(), 1, "a failed attempt keeps the push");
    let plan = fr.with(&roster, |ctx, case| {
        refused(ctx, case.record, &entry, "malformed: no")
    });
    fr.apply(plan);
    assert!(fr.outbox.is_empty());
    assert_eq!(
        fr.record().delivery.refused.as_deref(),
        Some("malformed: no")
    );
    assert!(fr.effects.contains(&Effect::WakeWaiters(entry.case_id)));
    let err = fr
        .act(&roster, EventKind::Withdrawn { reason: "r".into() }, "o")
        .unwrap_err();
    assert!(err.to_string().contains("refused this request"), "{err}");
    // Its retention still ends here: FR destroys its copy, and sends nothing.
    let plan = fr.act(&roster, EventKind::Purged, "retention").unwrap();
    assert!(plan.outbox_put.is_empty());
    assert!(fr.record().purged_at.is_some() && fr.record().request.is_none());
    assert!(plan.effects.iter().any(|e| matches!(e, Effect::Shred(_))));
}

#[test]
fn a_purge_racing_a_fulfilment_destroys_the_requesters_copy_and_the_executing_side_keeps_its_own() {
    let roster = roster();
    let (mut fr, mut de) = accepted(&roster);
    settle(&roster, &mut fr, &mut de);
    // Concurrently: FR's retention ends while DE fulfils.
    de.act(
        &roster,
        EventKind::Fulfilled {
            manifest_root: Some(Hash32([7; 32])),
            note: "n".into(),
        },
        "c",
    )
    .unwrap();
    fr.act(&roster, EventKind::Purged, "retention").unwrap();
    let key = fr.record().key_id.clone();
    assert!(fr.effects.contains(&Effect::Shred(key)));
    assert!(fr.record().request.is_none());
    assert!(
        fr.outbox[0].clear,
        "a purge's push carries no content and is stored in clear"
    );
    // The fulfilment reaches a purged case: receipted, nothing kept, no transfer announced.
    let fulfilment = de.outbox[0].clone();
    let plan = fr.take_push(&roster, &j("DE"), &fulfilment).unwrap();
    assert!(plan.events.is_empty() && plan.record.is_none() && plan.announce.is_none());
    assert!(plan.reply.is_some());
    assert!(plan.inbox.is_none(), "not even the message id is kept");
    // The purge reaches DE: it is recorded, and DE keeps its own records for its own
    // retention: the request still opens there.
    let purge = fr.outbox[0].clone();
    let plan = de.take_push(&roster, &j("FR"), &purge).unwrap();
    assert!(de.record().purged_at.is_none() && de.record().request.is_some());
    assert!(!plan.effects.iter().any(|e| matches!(e, Effect::Shred(_))));
    assert_eq!(plan.events.len(), 1, "the signed purge is kept as evidence");
    // At the end of its own retention DE destroys its records, with a signed statement that
    // goes in clear (it carries no content) to FR, which has nothing left to add it to.
    de.act(&roster, EventKind::RecordsDestroyed, "retention")
        .unwrap();
    assert!(de.record().purged_at.is_some() && de.record().request.is_none());
    assert!(de.effects.iter().any(|e| matches!(e, Effect::Shred(_))));
    let statement = de.outbox.last().unwrap().clone();
    assert!(statement.clear);
    let plan = fr.take_push(&roster, &j("DE"), &statement).unwrap();
    assert!(plan.reply.is_some() && plan.record.is_none());
    let err = de.act(&roster, EventKind::Closed, "o").unwrap_err();
    assert!(err.to_string().contains("destroyed"), "{err}");
    // Only the executing side states it, only once.
    assert!(fr.act(&roster, EventKind::RecordsDestroyed, "o").is_err());
}

#[test]
fn a_fulfilment_naming_a_package_announces_its_transfer_once() {
    let roster = roster();
    let (mut fr, mut de) = accepted(&roster);
    de.act(
        &roster,
        EventKind::Fulfilled {
            manifest_root: Some(Hash32([7; 32])),
            note: "n".into(),
        },
        "c",
    )
    .unwrap();
    let first = de.outbox[0].clone();
    let plan = fr.take_push(&roster, &j("DE"), &first).unwrap();
    assert!(plan.announce.is_none(), "the decision names no package");
    let second = de.outbox[1].clone();
    let plan = fr.take_push(&roster, &j("DE"), &second).unwrap();
    assert_eq!(plan.announce, Some((Hash32([7; 32]), j("DE"))));
    assert!(plan.effects.contains(&Effect::WakeEvidence));
    // The same fulfilment again, by a pull: nothing new, nothing announced again.
    let (_, _, again) = open_push(&second);
    let third = fr.take_pull(&roster, &j("DE"), again).unwrap();
    assert!(
        third.announce.is_none() && third.events.is_empty(),
        "announced once"
    );
}

#[test]
fn events_from_the_wrong_member_forged_or_ahead_of_their_links_are_refused() {
    let roster = roster();
    let (fr, mut de) = sent(&roster);
    let entry = fr.outbox[0].clone();
    let (_, _, events) = open_push(&entry);
    // IT relays FR's request: the case is not IT's to push.
    let err = de.take_pull(&roster, &j("IT"), events.clone()).unwrap_err();
    assert!(
        matches!(err, IngestError::Refused(RejectCode::Misaddressed, _)),
        "{err:?}"
    );
    // A flipped signature bit.
    let mut forged = events[0].clone();
    forged.signature.0[0] ^= 1;
    let err = de.take_pull(&roster, &j("FR"), vec![forged]).unwrap_err();
    assert!(
        matches!(err, IngestError::Refused(RejectCode::BadSignature, _)),
        "{err:?}"
    );
    // An event whose genesis DE does not hold: pull first.
    let (mut fr2, _) = delivered_case(&roster);
    fr2.act(&roster, EventKind::Withdrawn { reason: "r".into() }, "o")
        .unwrap();
    let (_, _, later) = open_push(&fr2.outbox[0]);
    let mut fresh = Party::new("DE", 2, fr2.record().case_id);
    let err = fresh.take_pull(&roster, &j("FR"), later).unwrap_err();
    assert!(matches!(err, IngestError::Missing(_)), "{err:?}");
    assert!(
        fresh.case.record.is_none() && de.case.record.is_none(),
        "nothing stored"
    );
}

#[test]
fn a_new_request_on_an_expired_configuration_is_refused_while_cases_under_way_go_on() {
    let roster = roster();
    let (mut fr, mut de) = sent(&roster);
    de.closed = Some("the bloc configuration expired".into());
    let entry = fr.outbox[0].clone();
    let err = de.take_push(&roster, &j("FR"), &entry).unwrap_err();
    assert!(
        matches!(err, IngestError::Refused(RejectCode::Invalid, _)),
        "{err:?}"
    );
    de.closed = None;
    let reply = de
        .take_push(&roster, &j("FR"), &entry)
        .unwrap()
        .reply
        .unwrap();
    fr.take_receipt(&roster, &j("DE"), &entry, reply);
    de.closed = Some("expired".into());
    fr.closed = Some("expired".into());
    de.act(
        &roster,
        EventKind::Decided {
            decision: Decision::Accept,
        },
        "r",
    )
    .unwrap();
    settle(&roster, &mut fr, &mut de);
    assert_eq!(fr.state(), Some(CaseState::Accepted));
}

#[derive(Clone, Debug)]
enum Op {
    /// An officer's step on one side (true: FR).
    Step(bool, usize),
    /// Deliver the `n`th queued push of one side (true: FR's).
    Deliver(bool, usize),
}

fn step(requester: bool, i: usize) -> EventKind {
    if requester {
        [
            EventKind::Withdrawn { reason: "r".into() },
            EventKind::EvidenceAcknowledged {
                manifest_root: None,
            },
            EventKind::Clarified { answer: "a".into() },
            EventKind::Closed,
        ][i % 4]
            .clone()
    } else {
        [
            EventKind::Decided {
                decision: Decision::Accept,
            },
            EventKind::ClarificationRequested {
                question: "q".into(),
            },
            EventKind::Fulfilled {
                manifest_root: None,
                note: "n".into(),
            },
            EventKind::Decided {
                decision: Decision::Refuse {
                    reasons: vec!["x".into()],
                },
            },
        ][i % 4]
            .clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Steps on both sides and deliveries in any order: once every push is delivered, both
    /// sides hold the same events and fold the same state.
    #[test]
    fn both_sides_converge_whatever_the_order_of_steps_and_deliveries(
        ops in proptest::collection::vec(
            prop_oneof![
                (any::<bool>(), 0usize..4).prop_map(|(s, i)| Op::Step(s, i)),
                (any::<bool>(), 0usize..3).prop_map(|(s, i)| Op::Deliver(s, i)),
            ],
            1..16,
        )
    ) {
        let roster = roster();
        let (mut fr, mut de) = delivered_case(&roster);
        for op in ops {
            match op {
                Op::Step(on_fr, i) => {
                    let party = if on_fr { &mut fr } else { &mut de };
                    // A step that does not apply now is refused and stores nothing.
                    let _ = party.act(&roster, step(on_fr, i), "officer");
                }
                Op::Deliver(from_fr, n) => {
                    let (from, to) = if from_fr { (&mut fr, &mut de) } else { (&mut de, &mut fr) };
                    if let Some(entry) = from.outbox.get(n).cloned() {
                        match to.take_push(&roster, &from.me, &entry) {
                            Ok(plan) => {
                                from.take_receipt(&roster, &to.me, &entry, plan.reply.unwrap());
                            }
                            // Overtook an event it links to: the pull brings it later.
                            Err(IngestError::Missing(_)) => {
                                let have = &to.record().log.have;
                                let missing = from.case.log.events_after(have);
                                to.take_pull(&roster, &from.me, missing).unwrap();
                            }
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            }
        }
        settle(&roster, &mut fr, &mut de);
        same_case(&fr, &de);
    }
}

/// A delivered case that DE accepted (FR has not received the decision yet).
fn accepted(roster: &Roster) -> (Party, Party) {
    let (fr, mut de) = delivered_case(roster);
    let accept = EventKind::Decided {
        decision: Decision::Accept,
    };
    de.act(roster, accept, "reviewer").unwrap();
    (fr, de)
}

#[test]
fn a_reply_never_carries_more_events_than_its_frame_holds() {
    let big = |n: u8| comity_protocol::SignedEnvelope {
        content_type: "application/comity.event+cbor".into(),
        signer: comity_protocol::PublicKey([n; 32]),
        body: vec![n; 100_000],
        signature: comity_protocol::Signature64([n; 64]),
    };
    let events: Vec<_> = (0..20).map(big).collect();
    let kept = crate::cases::core::within_reply(events.clone());
    assert!(!kept.is_empty() && kept.len() < events.len());
    assert_eq!(
        kept[..],
        events[..kept.len()],
        "a prefix: causal order kept"
    );
    let reply = comity_protocol::ExchangeResponse::Receipt(comity_protocol::Receipted {
        receipt: big(99),
        events: kept,
    });
    let frame = comity_protocol::to_canonical_cbor(&reply).unwrap();
    assert!(
        frame.len() <= comity_protocol::limits::MAX_RESPONSE_FRAME,
        "{} bytes",
        frame.len()
    );
    // Small events all fit.
    let small: Vec<_> = (0..20)
        .map(|n| comity_protocol::SignedEnvelope {
            body: vec![n; 100],
            ..big(n)
        })
        .collect();
    assert_eq!(crate::cases::core::within_reply(small).len(), 20);
}

#[test]
fn a_push_never_acknowledged_is_given_up_shown_on_its_case_and_sent_again_on_request() {
    use crate::cases::core::{Effect, given_up, retried};
    let roster = roster();
    let (mut fr, mut de) = sent(&roster);
    let entry = fr.outbox[0].clone();
    let week = std::time::Duration::from_secs(7 * 86_400);
    let plan = fr.with(&roster, |ctx, case| {
        given_up(ctx, case.record, &entry, week)
    });
    fr.apply(plan);
    assert_eq!(fr.outbox.len(), 1, "kept, never silently dropped");
    assert!(fr.outbox[0].dead, "and no longer sent");
    let shown = fr.record().delivery.given_up.clone().unwrap();
    assert!(
        shown.contains("DE") && shown.contains("168 hour"),
        "{shown}"
    );
    assert!(fr.effects.contains(&Effect::WakeWaiters(entry.case_id)));

    // An officer asks for it again: it is sent as before, and delivers the case.
    let dead = fr.outbox.clone();
    let plan = fr.with(&roster, |ctx, case| retried(ctx, case.record, dead));
    fr.apply(plan);
    assert!(!fr.outbox[0].dead);
    assert!(
        fr.outbox[0].queued_at > entry.queued_at,
        "the member has the whole wait again"
    );
    assert_eq!(fr.record().delivery.given_up, None);
    let entry = fr.outbox[0].clone();
    let reply = de
        .take_push(&roster, &j("FR"), &entry)
        .unwrap()
        .reply
        .unwrap();
    fr.take_receipt(&roster, &j("DE"), &entry, reply);
    assert_eq!(fr.state(), Some(CaseState::Delivered));
    assert!(fr.outbox.is_empty());
}

#[test]
fn an_author_signing_two_events_as_one_number_is_refused_with_both_kept() {
    let roster = roster();
    let (mut fr, mut de) = delivered_case(&roster);
    settle(&roster, &mut fr, &mut de);
    // The same DE, twice: once it accepts, once it refuses, both as its next event.
    let mut twin = Party {
        me: de.me.clone(),
        key: de.key.clone(),
        case: de.case.clone(),
        outbox: Vec::new(),
        inbox: de.inbox.clone(),
        effects: Vec::new(),
        closed: de.closed.clone(),
        minutes: de.minutes,
        policy: None,
    };
    de.act(
        &roster,
        EventKind::Decided {
            decision: Decision::Accept,
        },
        "reviewer",
    )
    .unwrap();
    twin.act(
        &roster,
        EventKind::Decided {
            decision: Decision::Refuse {
                reasons: vec!["no".into()],
            },
        },
        "reviewer",
    )
    .unwrap();
    let accepted = de.outbox[0].clone();
    let refused = twin.outbox[0].clone();
    fr.take_push(&roster, &j("DE"), &accepted).unwrap();
    let before = fr.case.log.len();
    let Err(IngestError::Equivocation(e)) = fr.take_push(&roster, &j("DE"), &refused) else {
        panic!("an equivocation is refused as such")
    };
    assert_eq!(e.author, j("DE"));
    assert_eq!(e.existing, open_push(&accepted).2[0]);
    assert_eq!(e.offered, open_push(&refused).2[0]);
    assert!(e.reason.contains("equivocation"), "{}", e.reason);
    assert_eq!(fr.case.log.len(), before, "nothing of it applied");
}
