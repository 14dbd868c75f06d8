//! Officers' inputs: drafts, approvals, sends and every step in every state.

use comity_protocol::audit::AuditWhat;
use comity_protocol::{CaseId, CaseState, Decision, EventKind, PolicyOutcome, Timestamp};

use super::*;
use crate::cases::record::Role;

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

/// DE's policy: an agreement with FR for the sample request's instrument and data, ending
/// `expires_after` minutes after T0 (`None`: no agreement with FR at all).
fn de_policy(expires_after: Option<i64>) -> comity_protocol::policy::Policy {
    use comity_protocol::policy::{Agreement, Policy};
    Policy {
        agreements: expires_after
            .map(|m| Agreement {
                partner: j("FR"),
                instruments: vec![comity_protocol::Instrument::EuEpoc],
                data_categories: comity_protocol::DataCategory::ALL.to_vec(),
                expires: Some(Timestamp::from_millis(T0 + m * 60_000)),
            })
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// FR's request delivered to a DE that runs `policy`.
fn delivered_under(roster: &Roster, policy: comity_protocol::policy::Policy) -> (Party, Party) {
    let (mut fr, mut de) = sent(roster);
    de.policy = Some(policy);
    let entry = fr.outbox[0].clone();
    let plan = de.take_push(roster, &j("FR"), &entry).unwrap();
    fr.take_receipt(roster, &j("DE"), &entry, plan.reply.unwrap());
    (fr, de)
}

#[test]
fn a_refusal_by_the_policy_binds_until_a_four_eyes_override() {
    let roster = roster();
    let (mut fr, mut de) = delivered_under(&roster, de_policy(None));
    assert_eq!(de.record().log.policy, Some(PolicyOutcome::Refused));
    assert!(de.record().log.policy_blocks());
    let accept = || EventKind::Decided {
        decision: Decision::Accept,
    };

    // Neither accepting nor a partial acceptance; refusing stays open.
    for decision in [
        Decision::Accept,
        Decision::Partial {
            scope: "less".into(),
        },
    ] {
        let err = de
            .act(&roster, EventKind::Decided { decision }, "reviewer.a")
            .unwrap_err();
        assert!(err.to_string().contains("comity case override"), "{err}");
    }
    let refusal = de.with_clone(&roster, |ctx, case| {
        act(
            ctx,
            case,
            EventKind::Decided {
                decision: Decision::Refuse {
                    reasons: vec!["no agreement".into()],
                },
            },
            "reviewer.a",
        )
    });
    assert!(refusal.is_ok(), "{refusal:?}");

    // An override needs a reason, is asked once, and is approved by another officer.
    let ask = |de: &mut Party, officer: &str, reason: &str| {
        let plan = de.with(&roster, |ctx, case| {
            request_override(ctx, case, officer, reason.into())
        })?;
        Ok::<_, CaseError>(de.apply(plan))
    };
    assert!(ask(&mut de, "reviewer.a", "  ").is_err());
    let plan = ask(&mut de, "reviewer.a", "treaty applies pending renewal").unwrap();
    assert!(plan.events.is_empty(), "asking signs nothing yet");
    assert!(matches!(
        plan.audit.as_slice(),
        [AuditWhat::PolicyOverride { step, .. }] if step == "requested"
    ));
    let again = ask(&mut de, "reviewer.b", "again").unwrap_err();
    assert!(again.to_string().contains("already asked"), "{again}");
    assert!(
        de.act(&roster, accept(), "reviewer.b").is_err(),
        "not yet approved"
    );
    let own = de
        .with(&roster, |ctx, case| {
            approve_override(ctx, case, "reviewer.a")
        })
        .unwrap_err();
    assert!(own.to_string().contains("four-eyes"), "{own}");
    let plan = de
        .with(&roster, |ctx, case| {
            approve_override(ctx, case, "approver.b")
        })
        .unwrap();
    let plan = de.apply(plan);
    assert_eq!(plan.events.len(), 1, "the override is signed into the log");
    assert!(de.record().override_request.is_none());
    assert!(!de.record().log.policy_blocks());
    assert_eq!(de.record().log.overrides, 1);
    let err = de
        .with(&roster, |ctx, case| {
            approve_override(ctx, case, "approver.c")
        })
        .unwrap_err();
    assert!(err.to_string().contains("no override"), "{err}");

    de.act(&roster, accept(), "reviewer.b").unwrap();
    // FR holds the override and the decision too: both replicas alike.
    for entry in de.outbox.clone() {
        fr.take_push(&roster, &j("DE"), &entry).unwrap();
    }
    assert_eq!(fr.record().log.overrides, 1);
    same_case(&fr, &de);
}

#[test]
fn an_agreement_that_expires_mid_case_flags_it_and_blocks_its_next_step() {
    let roster = roster();
    // The agreement ends 30 minutes after T0: the request arrives under it.
    let (_fr, mut de) = delivered_under(&roster, de_policy(Some(30)));
    assert_eq!(de.record().log.policy, Some(PolicyOutcome::Passed));
    de.act(
        &roster,
        EventKind::Decided {
            decision: Decision::Accept,
        },
        "reviewer.a",
    )
    .unwrap();
    // Before the expiry, checking again changes nothing and signs nothing.
    let plan = de.with(&roster, recheck).unwrap();
    assert!(plan.is_empty());
    // After it, the pending (accepted, not fulfilled) case is flagged, still accepted.
    de.minutes = 31;
    let plan = de.with(&roster, recheck).unwrap();
    de.apply(plan);
    assert_eq!(de.state(), Some(CaseState::Accepted));
    assert_eq!(de.record().log.policy, Some(PolicyOutcome::Refused));
    let err = de
        .act(
            &roster,
            EventKind::Fulfilled {
                manifest_root: None,
                note: String::new(),
            },
            "reviewer.b",
        )
        .unwrap_err();
    assert!(err.to_string().contains("to fulfil it anyway"), "{err}");
    assert!(
        de.with(&roster, recheck).unwrap().is_empty(),
        "flagged once"
    );
}

#[test]
fn an_amendment_lists_what_changed() {
    let old = sample_request();
    assert!(request_changes(&old, &old).is_empty());
    let mut new = old.clone();
    new.urgency = comity_protocol::Urgency::Urgent;
    new.necessity = "x".repeat(500);
    let lines = request_changes(&old, &new);
    assert!(
        lines.contains(&"urgency: \"normal\" → \"urgent\"".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"necessity: changed".to_owned()),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2);
}

#[test]
fn an_amendment_is_drafted_approved_by_another_officer_and_checked_again() {
    let roster = roster();
    let (mut fr, mut de) = delivered_case(&roster);
    de.act(
        &roster,
        EventKind::Decided {
            decision: Decision::Partial {
                scope: "subscriber data only".into(),
            },
        },
        "reviewer",
    )
    .unwrap();
    let entry = de.outbox.last().unwrap().clone();
    fr.take_push(&roster, &j("DE"), &entry).unwrap();
    assert_eq!(fr.state(), Some(CaseState::PartiallyAccepted));

    let mut narrower = sample_request();
    narrower.data_categories = vec![comity_protocol::DataCategory::Subscriber];
    let plan = fr
        .with(&roster, |ctx, case| {
            amend(ctx, case, narrower.clone(), "juge.martin")
        })
        .unwrap();
    let plan = fr.apply(plan);
    assert!(
        plan.events.is_empty(),
        "nothing is signed before the approval"
    );
    let mut elsewhere = narrower.clone();
    elsewhere.executing = j("IT");
    assert!(
        fr.with(&roster, |ctx, case| amend(ctx, case, elsewhere, "x"))
            .is_err()
    );
    // Withdrawn, then drafted again: nothing was signed in between.
    let plan = fr
        .with(&roster, |ctx, case| {
            cancel_pending(ctx, case, Pending::Amendment, "juge.martin")
        })
        .unwrap();
    assert!(fr.apply(plan).events.is_empty());
    assert!(fr.record().pending_amendment.is_none());
    assert!(
        fr.with(&roster, |ctx, case| cancel_pending(
            ctx,
            case,
            Pending::Amendment,
            "x"
        ))
        .is_err(),
        "nothing left to withdraw"
    );
    let plan = fr
        .with(&roster, |ctx, case| {
            amend(ctx, case, narrower.clone(), "juge.martin")
        })
        .unwrap();
    fr.apply(plan);
    let own = fr
        .with(&roster, |ctx, case| {
            accept_amendment(ctx, case, "juge.martin")
        })
        .unwrap_err();
    assert!(own.to_string().contains("four-eyes"), "{own}");
    let plan = fr
        .with(&roster, |ctx, case| {
            accept_amendment(ctx, case, "procureure.dubois")
        })
        .unwrap();
    fr.apply(plan);
    assert_eq!(fr.state(), Some(CaseState::Amended));
    assert_eq!(fr.record().log.request_version, 2);
    assert_eq!(fr.record().request.as_ref(), Some(&narrower));
    assert!(
        fr.record().sealed_request.is_empty(),
        "sealed again as stored"
    );
    assert_eq!(
        fr.record().summary.data_categories,
        narrower.data_categories
    );

    // DE takes the new version and, running a policy, checks it again at once.
    de.policy = Some(comity_protocol::policy::Policy::default());
    let entry = fr.outbox.last().unwrap().clone();
    let plan = de.take_push(&roster, &j("FR"), &entry).unwrap();
    assert_eq!(de.record().request.as_ref(), Some(&narrower));
    let reply = plan.reply.unwrap();
    assert_eq!(
        reply.events.len(),
        1,
        "the new check comes back with the receipt"
    );
    assert_eq!(de.state(), Some(CaseState::UnderReview));
    de.act(
        &roster,
        EventKind::Decided {
            decision: Decision::Refuse {
                reasons: vec!["no agreement".into()],
            },
        },
        "reviewer",
    )
    .unwrap();
    assert_eq!(de.state(), Some(CaseState::Refused), "decided afresh");
}

#[test]
fn what_awaits_an_approval_and_can_no_longer_apply_is_dropped() {
    use crate::cases::record::{OverrideRequest, PendingAmendment};
    let roster = roster();
    let (_fr, mut de) = delivered_under(&roster, de_policy(None));
    let mut record = de.record().clone();
    record.override_request = Some(OverrideRequest {
        requested_by: "a".into(),
        requested_at: Timestamp::from_millis(T0),
        for_check: record.log.policy_checks,
        reason: Some("r".into()),
        sealed_reason: Vec::new(),
    });
    record.drop_stale_requests();
    assert!(
        record.override_request.is_some(),
        "still the check it was asked for"
    );
    record.log.policy_checks += 1; // the policy checked the case again since
    record.drop_stale_requests();
    assert!(record.override_request.is_none());
    record.pending_amendment = Some(PendingAmendment {
        drafted_by: "a".into(),
        drafted_at: Timestamp::from_millis(T0),
        request: None,
        sealed: vec![1],
    });
    record.log.state = Some(CaseState::Accepted);
    record.drop_stale_requests();
    assert!(
        record.pending_amendment.is_none(),
        "an accepted case is amended no more"
    );
    de.case.record = Some(record);
}
