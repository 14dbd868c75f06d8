//! Each lifecycle transition, and the conflict rules on concurrent events.

use super::*;

#[test]
fn full_lifecycle_to_closed() {
    use CaseState as S;
    let r = walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        ("DE", policy(PolicyOutcome::Passed), S::UnderReview),
        ("DE", decided(Decision::Accept), S::Accepted),
        ("DE", fulfilled(), S::Fulfilled),
        (
            "FR",
            EventKind::EvidenceAcknowledged {
                manifest_root: Some(Hash32::of(b"manifest")),
            },
            S::EvidenceAcknowledged,
        ),
        ("FR", EventKind::Closed, S::Closed),
    ]);
    let view = r.log.view();
    assert_eq!(view.requesting, Some(j("FR")));
    assert_eq!(view.executing, Some(j("DE")));
    assert_eq!(view.decision, Some(Decision::Accept));
    let times: Vec<_> = view.entries.iter().map(|e| e.at).collect();
    assert_eq!(view.submitted_at, Some(times[0]));
    assert_eq!(view.delivered_at, Some(times[1]));
    assert_eq!(view.decided_at, Some(times[3]));
    assert_eq!(view.fulfilled_at, Some(times[4]));
    assert_eq!(view.closed_at, Some(times[6]));
    assert_eq!(r.log.len(), 7);
    assert_eq!(view.heads, r.log.heads());
    assert_eq!(view.heads.len(), 1);
}

#[test]
fn clarification_loops_then_partial_acceptance() {
    use CaseState as S;
    let r = walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        ("DE", ask(), S::ClarificationRequested),
        ("FR", answer(), S::Clarified),
        ("DE", policy(PolicyOutcome::Referred), S::UnderReview),
        ("DE", ask(), S::ClarificationRequested),
        ("FR", answer(), S::Clarified),
        (
            "DE",
            decided(Decision::Partial {
                scope: "subscriber data only".into(),
            }),
            S::PartiallyAccepted,
        ),
        ("DE", fulfilled(), S::Fulfilled),
    ]);
    assert!(matches!(
        r.log.view().decision,
        Some(Decision::Partial { .. })
    ));
}

#[test]
fn a_refusing_policy_check_only_puts_the_case_under_review() {
    use CaseState as S;
    walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        ("DE", policy(PolicyOutcome::Refused), S::UnderReview),
        ("DE", decided(Decision::Accept), S::Accepted),
    ]);
}

#[test]
fn refusal_then_close_by_either_side() {
    use CaseState as S;
    let refuse = || {
        decided(Decision::Refuse {
            reasons: vec!["no dual criminality".into()],
        })
    };
    for closer in ["FR", "DE"] {
        walk(vec![
            ("DE", EventKind::Received, S::Delivered),
            ("DE", refuse(), S::Refused),
            (closer, EventKind::Closed, S::Closed),
        ]);
    }
}

#[test]
fn withdrawal_before_closure_and_what_comes_after_it() {
    use CaseState as S;
    let mut r = walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        ("DE", policy(PolicyOutcome::Passed), S::UnderReview),
        ("FR", withdrawn(), S::Withdrawn),
    ]);
    // Kept, not applied: the executing side did sign it.
    r.act("DE", decided(Decision::Accept)).unwrap();
    let entry = r.last_entry();
    assert!(!entry.applied);
    assert_eq!(entry.note.as_deref(), Some("case already withdrawn"));
    assert_eq!(r.state(), S::Withdrawn);
    assert_eq!(r.log.view().decision, None);

    r.act("DE", EventKind::Closed).unwrap();
    assert_eq!(r.state(), S::Closed);
    r.act("FR", withdrawn()).unwrap();
    assert_eq!(r.last_entry().note.as_deref(), Some("case already closed"));
    assert_eq!(r.state(), S::Closed);
}

#[test]
fn decisions_are_final() {
    use CaseState as S;
    let mut r = walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        ("DE", decided(Decision::Accept), S::Accepted),
    ]);
    r.act(
        "DE",
        decided(Decision::Refuse {
            reasons: vec!["second thoughts".into()],
        }),
    )
    .unwrap();
    let entry = r.last_entry();
    assert!(!entry.applied);
    assert!(
        entry
            .note
            .as_deref()
            .unwrap()
            .starts_with("decision already made: decisions are final"),
        "{entry:?}"
    );
    assert_eq!(r.log.view().decision, Some(Decision::Accept));
}

#[test]
fn a_partial_acceptance_is_negotiated_by_accepting_the_scope_or_amending() {
    use CaseState as S;
    let partial = || {
        decided(Decision::Partial {
            scope: "subscriber data only".into(),
        })
    };
    let amended = |necessity: &str| {
        let mut request = sample_request();
        request.necessity = necessity.into();
        EventKind::Amended {
            request: Box::new(request),
            approval: crate::examples::sample_approval(),
        }
    };
    let mut r = walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        ("DE", partial(), S::PartiallyAccepted),
        ("FR", EventKind::ScopeAccepted, S::PartiallyAccepted),
    ]);
    assert!(r.log.view().scope_accepted_at.is_some());
    r.act("FR", EventKind::ScopeAccepted).unwrap();
    assert!(!r.last_entry().applied, "accepted once");

    // An amendment instead: a new version, decided afresh.
    let mut r = walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        ("DE", partial(), S::PartiallyAccepted),
        ("FR", amended("narrowed to March"), S::Amended),
        (
            "DE",
            EventKind::PolicyChecked {
                outcome: PolicyOutcome::Passed,
                rules: vec![],
            },
            S::UnderReview,
        ),
        ("DE", decided(Decision::Accept), S::Accepted),
    ]);
    let view = r.log.view();
    assert_eq!((view.request_version, view.amended_at.len()), (2, 1));
    assert_eq!(view.decision, Some(Decision::Accept));
    // Not once accepted in full, nor by the executing side, nor changing the parties.
    r.act("FR", amended("again")).unwrap();
    assert!(!r.last_entry().applied);
    assert!(r.act("DE", amended("by the wrong side")).is_err());
    let mut r = walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        (
            "DE",
            EventKind::ClarificationRequested {
                question: "which month?".into(),
            },
            S::ClarificationRequested,
        ),
    ]);
    let mut elsewhere = sample_request();
    elsewhere.executing = "IT".parse().unwrap();
    r.act(
        "FR",
        EventKind::Amended {
            request: Box::new(elsewhere),
            approval: crate::examples::sample_approval(),
        },
    )
    .unwrap();
    let entry = r.last_entry();
    assert!(!entry.applied);
    assert!(entry.note.unwrap().contains("cannot change the parties"));
    r.act("FR", amended("March only")).unwrap();
    assert_eq!(
        r.log.view().state,
        Some(S::Amended),
        "after a clarification too"
    );
}

#[test]
fn steps_out_of_turn_are_kept_but_not_applied() {
    let mut r = Replica::submitted();
    let cases = [
        ("DE", fulfilled(), "cannot fulfil a case that is submitted"),
        ("FR", answer(), "cannot clarify a case that is submitted"),
        (
            "DE",
            decided(Decision::Accept),
            "cannot decide a case that is submitted",
        ),
        (
            "FR",
            EventKind::Closed,
            "cannot close a case that is submitted",
        ),
        (
            "FR",
            EventKind::EvidenceAcknowledged {
                manifest_root: None,
            },
            "cannot acknowledge evidence on a case that is submitted",
        ),
    ];
    for (who, kind, note) in cases {
        r.act(who, kind).unwrap();
        let entry = r.last_entry();
        assert!(!entry.applied);
        assert_eq!(entry.note.as_deref(), Some(note));
    }
    assert_eq!(r.state(), CaseState::Submitted);
}

#[test]
fn a_receipt_applies_whenever_it_comes() {
    let mut r = Replica::submitted();
    r.act("FR", withdrawn()).unwrap();
    r.act("DE", EventKind::Received).unwrap();
    let view = r.log.view();
    assert!(view.entries.iter().all(|e| e.applied));
    assert_eq!(view.state, Some(CaseState::Withdrawn));
    assert_eq!(view.delivered_at, Some(view.entries[2].at));
    r.act("DE", EventKind::Received).unwrap();
    assert_eq!(
        r.last_entry().note.as_deref(),
        Some("receipt already recorded")
    );
}

#[test]
fn preservation_is_a_sub_state() {
    let t = Timestamp::from_millis;
    let mut r = Replica::submitted();
    let mut step = |who: &str, kind: EventKind, applied: bool| {
        r.act(who, kind).unwrap();
        assert_eq!(r.last_entry().applied, applied, "{:?}", r.last_entry());
        r.log.view().preservation.map(|p| (p.until, p.released))
    };
    let p = |until, released| Some((t(until), released));
    assert_eq!(step("DE", EventKind::PreservationReleased, false), None);
    assert_eq!(
        step("DE", EventKind::Preserved { until: t(10) }, true),
        p(10, false)
    );
    assert_eq!(
        step("DE", EventKind::Preserved { until: t(20) }, false),
        p(10, false)
    );
    assert_eq!(
        step("DE", EventKind::PreservationExtended { until: t(30) }, true),
        p(30, false)
    );
    assert_eq!(
        step(
            "DE",
            EventKind::PreservationExtended { until: t(25) },
            false
        ),
        p(30, false)
    );
    assert_eq!(
        step("FR", EventKind::PreservationReleased, true),
        p(30, true)
    );
    assert_eq!(
        step(
            "DE",
            EventKind::PreservationExtended { until: t(40) },
            false
        ),
        p(30, true)
    );
    assert_eq!(
        step("DE", EventKind::Preserved { until: t(50) }, true),
        p(50, false)
    );
    assert_eq!(step("FR", withdrawn(), true), p(50, false));
    assert_eq!(
        step("DE", EventKind::PreservationReleased, true),
        p(50, true)
    );
    assert_eq!(
        step("DE", EventKind::Preserved { until: t(60) }, false),
        p(50, true)
    );
}

#[test]
fn purge_applies_in_any_state_once() {
    let mut r = Replica::submitted();
    r.act("FR", EventKind::Purged).unwrap();
    assert!(r.last_entry().applied);
    assert_eq!(r.log.view().purged_at, Some(r.last_entry().at));
    r.act("FR", EventKind::Purged).unwrap();
    assert_eq!(r.last_entry().note.as_deref(), Some("data already purged"));
}

/// Both sides act on the same view: FR withdraws while DE fulfils.
fn concurrent_withdrawal_and_fulfilment() -> (Replica, SignedEnvelope, SignedEnvelope) {
    use CaseState as S;
    let mut r = walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        ("DE", decided(Decision::Accept), S::Accepted),
    ]);
    let withdrawal = r.build("FR", withdrawn());
    let fulfilment = r.build("DE", fulfilled());
    (r, withdrawal, fulfilment)
}

#[test]
fn withdrawal_beats_a_concurrent_fulfilment_on_both_replicas() {
    let (base, withdrawal, fulfilment) = concurrent_withdrawal_and_fulfilment();
    let mut views = Vec::new();
    for first_withdrawal in [true, false] {
        let mut r = Replica {
            log: base.log.clone(),
            clock: 0,
        };
        let (a, b) = if first_withdrawal {
            (&withdrawal, &fulfilment)
        } else {
            (&fulfilment, &withdrawal)
        };
        r.insert(a.clone()).unwrap();
        r.insert(b.clone()).unwrap();
        views.push((r.log.view(), r.log.envelopes()));
    }
    assert_eq!(views[0], views[1]);
    let view = &views[0].0;
    assert_eq!(view.state, Some(CaseState::Withdrawn));
    assert_eq!(view.fulfilled_at, None);
    let fulfil = view.entries.iter().find(|e| e.kind == "fulfilled").unwrap();
    assert!(!fulfil.applied);
    assert_eq!(fulfil.note.as_deref(), Some("case already withdrawn"));
    assert_eq!(view.heads.len(), 2, "two concurrent heads");
}

#[test]
fn sync_by_version_vector_brings_a_replica_up_to_date() {
    let (mut a, withdrawal, fulfilment) = concurrent_withdrawal_and_fulfilment();
    a.insert(withdrawal).unwrap();
    a.insert(fulfilment).unwrap();
    let mut b = Replica::empty();
    // Part of the log first, as after an interrupted sync.
    for env in a.log.envelopes().into_iter().take(2) {
        b.insert(env).unwrap();
    }
    let missing = a.log.events_after(&b.log.version_vector());
    assert_eq!(missing.len(), a.log.len() - 2);
    for env in missing {
        b.insert(env).unwrap();
    }
    assert_eq!(b.log.version_vector(), a.log.version_vector());
    assert_eq!(
        a.log.version_vector(),
        [(j("DE"), 3), (j("FR"), 2)].into_iter().collect()
    );
    assert_eq!(b.log.view(), a.log.view());
    assert!(a.log.events_after(&a.log.version_vector()).is_empty());
}

#[test]
fn evidence_received_applies_only_to_the_package_the_fulfilment_named() {
    use CaseState as S;
    let mut r = walk(vec![
        ("DE", EventKind::Received, S::Delivered),
        ("DE", decided(Decision::Accept), S::Accepted),
        ("DE", fulfilled(), S::Fulfilled),
    ]);
    r.act(
        "FR",
        EventKind::EvidenceReceived {
            manifest_root: Hash32::of(b"another package"),
        },
    )
    .unwrap();
    let entry = r.last_entry();
    assert!(!entry.applied);
    assert!(
        entry
            .note
            .as_deref()
            .unwrap()
            .contains("not the one the fulfilment named")
    );
    r.act(
        "FR",
        EventKind::EvidenceReceived {
            manifest_root: Hash32::of(b"manifest"),
        },
    )
    .unwrap();
    assert!(r.last_entry().applied);
    let view = r.log.view();
    assert_eq!(view.manifest_root, Some(Hash32::of(b"manifest")));
    assert!(view.evidence_received_at.is_some());
    assert_eq!(
        view.state,
        Some(S::Fulfilled),
        "arrival is not acknowledgement"
    );
    // Only the requesting side states what it received.
    assert!(
        r.act(
            "DE",
            EventKind::EvidenceReceived {
                manifest_root: Hash32::of(b"manifest"),
            },
        )
        .is_err()
    );
}
