//! The core's rules, input by input and state by state, between two in-memory parties (FR
//! requests, DE executes) whose "store" is applying each plan to their case as the shell would.

use std::collections::BTreeMap;
use std::sync::Arc;

use comity_protocol::bloc::{BlocConfig, MemberCard, Rules, Settings, config_hash, verify_genesis};
use comity_protocol::examples::sample_request;
use comity_protocol::{
    CaseId, CaseState, Decision, EventKind, EventPush, ExchangeRequest, Hash32, Jurisdiction,
    MessageId, MultiSigned, PublicKey, RejectCode, SignedEnvelope, Timestamp, from_cbor, limits,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;
use crate::cases::record::Role;

const T0: i64 = 1_790_000_000_000;

fn j(code: &str) -> Jurisdiction {
    code.parse().unwrap()
}

fn signing(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A bloc of FR (seed 1), DE (seed 2) and IT (seed 3), formed at T0.
fn roster() -> Roster {
    let cards: Vec<MultiSigned> = [("FR", 1u8), ("DE", 2), ("IT", 3)]
        .iter()
        .map(|(code, seed)| {
            let transport = signing(seed + 100);
            MemberCard {
                bloc: "eu-test".into(),
                jurisdiction: j(code),
                name: format!("{code} ministry"),
                addresses: vec![],
                transport_key: PublicKey::from(&transport.verifying_key()),
                signing_key: PublicKey::from(&signing(*seed).verifying_key()),
                sealing_key: None,
                made_at: Timestamp::from_millis(T0),
            }
            .sign(&signing(*seed), &transport)
        })
        .collect();
    let config = BlocConfig::genesis(
        "eu-test",
        &cards,
        Rules::default(),
        Settings::default(),
        Timestamp::from_millis(T0),
    )
    .unwrap();
    let mut signed = MultiSigned::new(&config).unwrap();
    for seed in 1..=3 {
        signed.add_signature(&signing(seed));
    }
    let verified = verify_genesis(&signed, &config_hash(&signed)).unwrap();
    Roster::from_config(Arc::new(verified))
}

/// One party: its key, its case as stored, its outbox and the receipts it gave.
struct Party {
    me: Jurisdiction,
    key: SigningKey,
    case: Case,
    outbox: Vec<OutboxEntry>,
    inbox: BTreeMap<MessageId, SignedEnvelope>,
    effects: Vec<Effect>,
    closed: Option<String>,
    minutes: i64,
}

impl Party {
    fn new(code: &str, seed: u8, case_id: CaseId) -> Self {
        Self {
            me: j(code),
            key: signing(seed),
            case: Case::new(case_id),
            outbox: Vec::new(),
            inbox: BTreeMap::new(),
            effects: Vec::new(),
            closed: None,
            minutes: 0,
        }
    }

    /// Runs `rule` with this party's context, a minute later than the last input.
    fn with<T>(&mut self, roster: &Roster, rule: impl FnOnce(&Context, Case) -> T) -> T {
        self.minutes += 1;
        let ctx = Context {
            me: &self.me,
            roster,
            signer: &self.key,
            policy: None,
            disclosure_approval: &[comity_protocol::DataCategory::Content],
            now: Timestamp::from_millis(T0 + self.minutes * 60_000),
            closed: self.closed.clone(),
        };
        rule(&ctx, self.case.clone())
    }

    /// What the shell does with a plan: store it all, then note its effects.
    fn apply(&mut self, plan: Plan) -> Plan {
        if let Some(record) = &plan.record {
            let mut record = record.clone();
            if record.key_id.is_empty() {
                record.key_id = format!("key-of-{}", record.case_id);
            }
            self.case.record = Some(record);
        }
        for (index, envelope) in &plan.events {
            assert_eq!(*index, self.case.log.len(), "events are stored in order");
            self.case.log.insert_stored(envelope.clone()).unwrap();
        }
        self.outbox
            .retain(|e| !plan.outbox_delete.contains(&e.message_id));
        self.outbox.extend(plan.outbox_put.iter().cloned());
        if let Some((id, receipt)) = &plan.inbox {
            assert!(
                self.inbox.insert(*id, receipt.clone()).is_none(),
                "inbox guard"
            );
        }
        self.effects.extend(plan.effects.iter().cloned());
        plan
    }

    fn record(&self) -> &CaseRecord {
        self.case.record.as_ref().expect("the case is held")
    }

    fn state(&self) -> Option<CaseState> {
        self.record().log.state
    }

    fn act(&mut self, roster: &Roster, kind: EventKind, officer: &str) -> Result<Plan, CaseError> {
        let plan = self.with(roster, |ctx, case| act(ctx, case, kind, officer))?;
        Ok(self.apply(plan))
    }

    /// Takes in a push from `entry`, as the shell would after checking its envelope.
    fn take_push(
        &mut self,
        roster: &Roster,
        from: &Jurisdiction,
        entry: &OutboxEntry,
    ) -> Result<Plan, IngestError> {
        let (message_id, body_hash, events) = open_push(entry);
        let via = Via::Push {
            message_id,
            body_hash,
        };
        let plan = self.with(roster, |ctx, case| receive(ctx, case, from, events, via))?;
        Ok(self.apply(plan))
    }

    fn take_pull(
        &mut self,
        roster: &Roster,
        from: &Jurisdiction,
        events: Vec<SignedEnvelope>,
    ) -> Result<Plan, IngestError> {
        let plan = self.with(roster, |ctx, case| {
            receive(ctx, case, from, events, Via::Pull)
        })?;
        Ok(self.apply(plan))
    }

    /// The receipt of `entry` came back with `answer`: stored with the events, or alone.
    fn take_receipt(
        &mut self,
        roster: &Roster,
        from: &Jurisdiction,
        entry: &OutboxEntry,
        reply: Receipted,
    ) -> Plan {
        let via = Via::Answer {
            entry,
            receipt: &reply.receipt,
        };
        let events = reply.events.clone();
        let plan = if events.is_empty() {
            self.with(roster, |ctx, case| {
                delivered(ctx, case.record, entry, &reply.receipt)
            })
        } else {
            self.with(roster, |ctx, case| receive(ctx, case, from, events, via))
                .expect("the answer verifies")
        };
        self.apply(plan)
    }
}

fn open_push(entry: &OutboxEntry) -> (MessageId, Hash32, Vec<SignedEnvelope>) {
    let ExchangeRequest::Push(envelope) =
        from_cbor::<ExchangeRequest>(&entry.frame, limits::MAX_REQUEST_FRAME).unwrap()
    else {
        panic!("an outbox entry holds a push");
    };
    let push: EventPush = from_cbor(&envelope.body, limits::MAX_REQUEST_FRAME).unwrap();
    (push.message_id, envelope.body_hash(), push.events)
}

/// FR's approved draft, sent: FR holds the pushed request in its outbox.
fn sent(roster: &Roster) -> (Party, Party) {
    let case_id = CaseId::new();
    let mut fr = Party::new("FR", 1, case_id);
    let de = Party::new("DE", 2, case_id);
    let draft = fr
        .with(roster, |ctx, _| {
            draft(ctx, case_id, sample_request(), "juge.martin")
        })
        .unwrap();
    fr.case.record = Some(draft);
    let plan = fr
        .with(roster, |ctx, case| {
            approve(ctx, case.record.unwrap(), "procureure.dubois")
        })
        .unwrap();
    fr.apply(plan);
    let plan = fr
        .with(roster, |ctx, case| send(ctx, case.record.unwrap()))
        .unwrap();
    fr.apply(plan);
    (fr, de)
}

/// The request delivered: DE stored it and its `received` statement, FR holds both and the
/// receipt.
fn delivered_case(roster: &Roster) -> (Party, Party) {
    let (mut fr, mut de) = sent(roster);
    let entry = fr.outbox[0].clone();
    let plan = de.take_push(roster, &j("FR"), &entry).unwrap();
    fr.take_receipt(roster, &j("DE"), &entry, plan.reply.unwrap());
    (fr, de)
}

/// Delivers every queued push both ways until both outboxes are empty.
fn settle(roster: &Roster, fr: &mut Party, de: &mut Party) {
    for _ in 0..20 {
        if fr.outbox.is_empty() && de.outbox.is_empty() {
            return;
        }
        deliver_first(roster, fr, de);
        deliver_first(roster, de, fr);
    }
    panic!("pushes never settle");
}

fn deliver_first(roster: &Roster, from: &mut Party, to: &mut Party) {
    let Some(entry) = from.outbox.first().cloned() else {
        return;
    };
    let plan = to.take_push(roster, &from.me, &entry).unwrap();
    from.take_receipt(roster, &to.me, &entry, plan.reply.unwrap());
}

fn same_case(fr: &Party, de: &Party) {
    let (a, b) = (&fr.record().log, &de.record().log);
    assert_eq!(a.heads, b.heads, "both sides hold the same events");
    assert_eq!(a.state, b.state);
    assert_eq!(a.have, b.have);
}

#[test]
fn a_request_is_drafted_approved_sent_received_and_receipted_with_one_fold_on_both_sides() {
    let roster = roster();
    let (fr, de) = delivered_case(&roster);
    assert_eq!(de.record().role, Role::Executing);
    assert_eq!(de.record().counterparty, j("FR"));
    assert_eq!(de.state(), Some(CaseState::Delivered));
    // DE's `received` statement came back with the receipt: no push of it is queued.
    assert!(de.outbox.is_empty(), "{:?}", de.outbox);
    assert!(fr.outbox.is_empty(), "the receipted push is done");
    assert!(fr.record().receipt.is_some());
    assert_eq!(fr.record().delivery.attempts, 1);
    assert_eq!(de.record().genesis_message, fr.record().genesis_message);
    assert!(
        fr.effects
            .contains(&Effect::WakeWaiters(fr.record().case_id))
    );
    same_case(&fr, &de);
}

#[test]
fn a_draft_must_speak_for_this_node_to_a_member_while_the_bloc_allows_new_requests() {
    let roster = roster();
    let case_id = CaseId::new();
    let mut de = Party::new("DE", 2, case_id);
    let err = de
        .with(&roster, |ctx, _| draft(ctx, case_id, sample_request(), "x"))
        .unwrap_err();
    assert!(err.to_string().contains("speaks for DE, not FR"), "{err}");
    let mut fr = Party::new("FR", 1, case_id);
    let mut to_spain = sample_request();
    to_spain.executing = j("ES");
    let err = fr
        .with(&roster, |ctx, _| draft(ctx, case_id, to_spain, "x"))
        .unwrap_err();
    assert!(matches!(err, CaseError::UnknownMember { .. }), "{err}");
    fr.closed = Some("the bloc configuration expired".into());
    let err = fr
        .with(&roster, |ctx, _| draft(ctx, case_id, sample_request(), "x"))
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn four_eyes_refuses_self_approval_double_approval_and_sending_unapproved() {
    let roster = roster();
    let case_id = CaseId::new();
    let mut fr = Party::new("FR", 1, case_id);
    let draft = fr
        .with(&roster, |ctx, _| {
            draft(ctx, case_id, sample_request(), "juge.martin")
        })
        .unwrap();
    let err = fr
        .with(&roster, |ctx, _| send(ctx, draft.clone()))
        .unwrap_err();
    assert!(err.to_string().contains("needs an approval"), "{err}");
    let err = fr
        .with(&roster, |ctx, _| approve(ctx, draft.clone(), "juge.martin"))
        .unwrap_err();
    assert!(err.to_string().contains("cannot approve it"), "{err}");
    let plan = fr
        .with(&roster, |ctx, _| {
            approve(ctx, draft.clone(), "procureure.dubois")
        })
        .unwrap();
    assert_eq!(plan.audit.len(), 1, "an approval is audited");
    let approved = plan.record.unwrap();
    let err = fr
        .with(&roster, |ctx, _| approve(ctx, approved.clone(), "autre"))
        .unwrap_err();
    assert!(err.to_string().contains("already approved"), "{err}");
    // Sending on an expired configuration is refused; sending twice is refused.
    fr.closed = Some("expired".into());
    assert!(
        fr.with(&roster, |ctx, _| send(ctx, approved.clone()))
            .is_err()
    );
    fr.closed = None;
    let sent = fr
        .with(&roster, |ctx, _| send(ctx, approved.clone()))
        .unwrap()
        .record
        .unwrap();
    let err = fr.with(&roster, |ctx, _| send(ctx, sent)).unwrap_err();
    assert!(matches!(err, CaseError::NotDraft { .. }), "{err}");
}

#[test]
fn disclosure_of_named_categories_needs_another_officers_approval() {
    let roster = roster();
    let (_, mut de) = delivered_case(&roster);
    let mut record = de.record().clone();
    record.summary.data_categories = vec![comity_protocol::DataCategory::Content];
    de.case.record = Some(record.clone());
    let fulfil = || EventKind::Fulfilled {
        manifest_root: None,
        note: "none".into(),
    };
    de.act(
        &roster,
        EventKind::Decided {
            decision: Decision::Accept,
        },
        "rev",
    )
    .unwrap();
    let err = de.act(&roster, fulfil(), "clerk").unwrap_err();
    assert!(
        err.to_string().contains("needs an approver's approval"),
        "{err}"
    );
    let plan = de
        .with(&roster, |ctx, case| {
            approve(ctx, case.record.unwrap(), "boss")
        })
        .unwrap();
    de.apply(plan);
    let err = de.act(&roster, fulfil(), "boss").unwrap_err();
    assert!(err.to_string().contains("cannot also make it"), "{err}");
    de.act(&roster, fulfil(), "clerk").unwrap();
    assert_eq!(de.state(), Some(CaseState::Fulfilled));
}

/// Every event kind an officer can record, tried on both sides in each state a case passes
/// through: the step is refused with a reason, or stored with its push and applied.
#[test]
fn every_step_in_every_state_is_either_applied_or_refused_with_a_reason() {
    let roster = roster();
    let kinds = || {
        vec![
            EventKind::Decided {
                decision: Decision::Accept,
            },
            EventKind::Decided {
                decision: Decision::Refuse {
                    reasons: vec!["no".into()],
                },
            },
            EventKind::ClarificationRequested {
                question: "which?".into(),
            },
            EventKind::Clarified {
                answer: "this".into(),
            },
            EventKind::Fulfilled {
                manifest_root: None,
                note: "none".into(),
            },
            EventKind::EvidenceAcknowledged {
                manifest_root: None,
            },
            EventKind::Withdrawn {
                reason: "moot".into(),
            },
            EventKind::Closed,
            EventKind::Preserved {
                until: Timestamp::from_millis(T0 + 86_400_000),
            },
            EventKind::PreservationReleased,
            EventKind::Purged,
        ]
    };
    // The path to each state: steps (by side) from a delivered case.
    let paths: Vec<Vec<(bool, EventKind)>> = vec![
        vec![],
        vec![(
            false,
            EventKind::ClarificationRequested {
                question: "q".into(),
            },
        )],
        vec![(
            false,
            EventKind::Decided {
                decision: Decision::Accept,
            },
        )],
        vec![
            (
                false,
                EventKind::Decided {
                    decision: Decision::Accept,
                },
            ),
            (
                false,
                EventKind::Fulfilled {
                    manifest_root: None,
                    note: "n".into(),
                },
            ),
        ],
        vec![(true, EventKind::Withdrawn { reason: "r".into() })],
        vec![(true, EventKind::Purged)],
    ];
    let mut applied = 0;
    let mut refused = 0;
    for path in &paths {
        for requester_side in [true, false] {
            for kind in kinds() {
                let (mut fr, mut de) = delivered_case(&roster);
                for (on_fr, step) in path {
                    let party = if *on_fr { &mut fr } else { &mut de };
                    party.act(&roster, step.clone(), "officer").unwrap();
                    settle(&roster, &mut fr, &mut de);
                }
                let party = if requester_side { &mut fr } else { &mut de };
                let before = party.case.log.len();
                let code = kind.code();
                match party.act(&roster, kind, "officer") {
                    Ok(plan) => {
                        applied += 1;
                        assert_eq!(plan.events.len(), 1);
                        assert_eq!(plan.outbox_put.len(), 1, "{code} is pushed");
                        assert_eq!(party.case.log.len(), before + 1);
                        let last = party.case.log.view();
                        assert!(
                            last.entries
                                .iter()
                                .all(|e| e.kind != code || e.applied || e.author != party.me)
                        );
                        // The other side takes it in and both fold the same case.
                        settle(&roster, &mut fr, &mut de);
                        if fr.record().purged_at.is_none() {
                            same_case(&fr, &de);
                        }
                    }
                    Err(e) => {
                        refused += 1;
                        assert!(!e.to_string().is_empty());
                        assert_eq!(
                            party.case.log.len(),
                            before,
                            "a refused step stores nothing"
                        );
                    }
                }
            }
        }
    }
    assert!(
        applied > 10 && refused > 30,
        "applied {applied}, refused {refused}"
    );
}

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

impl Party {
    /// `with` on a copy, for building inputs without moving this party's clock.
    fn with_clone<T>(&self, roster: &Roster, rule: impl FnOnce(&Context, Case) -> T) -> T {
        let ctx = Context {
            me: &self.me,
            roster,
            signer: &self.key,
            policy: None,
            disclosure_approval: &[],
            now: Timestamp::from_millis(T0 + self.minutes * 60_000),
            closed: None,
        };
        rule(&ctx, self.case.clone())
    }
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
    assert!(reply.events.is_empty());
    assert_eq!(de.record().genesis_message, Some(entry.message_id));
    assert!(de.record().receipt.is_some());
    fr.take_receipt(&roster, &j("DE"), &entry, reply);
    assert!(fr.record().receipt.is_some());
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
fn a_refused_request_is_marked_undeliverable_and_takes_no_further_step() {
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
}

#[test]
fn a_purge_racing_a_fulfilment_destroys_the_content_on_both_sides() {
    let roster = roster();
    let (mut fr, mut de) = delivered_case(&roster);
    de.act(
        &roster,
        EventKind::Decided {
            decision: Decision::Accept,
        },
        "r",
    )
    .unwrap();
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
    // The purge reaches DE: it destroys its copy too.
    let purge = fr.outbox[0].clone();
    let plan = de.take_push(&roster, &j("FR"), &purge).unwrap();
    assert!(de.record().purged_at.is_some() && de.record().request.is_none());
    assert!(plan.effects.iter().any(|e| matches!(e, Effect::Shred(_))));
    let err = de.act(&roster, EventKind::Closed, "o").unwrap_err();
    assert!(err.to_string().contains("destroyed"), "{err}");
}

#[test]
fn a_fulfilment_naming_a_package_announces_its_transfer_once() {
    let roster = roster();
    let (mut fr, mut de) = delivered_case(&roster);
    de.act(
        &roster,
        EventKind::Decided {
            decision: Decision::Accept,
        },
        "r",
    )
    .unwrap();
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
