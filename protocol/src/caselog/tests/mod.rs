//! Unit tests of the case log: each transition and conflict rule on small hand-built
//! histories (`transitions`), and each refusal of `insert` (`insert`). This file holds the
//! shared harness: deterministic keys, a replica with a ticking clock, event builders.

mod insert;
mod transitions;

use super::*;
use crate::envelope::SignedEnvelope;
use crate::examples::sample_request;
use crate::ids::{CaseId, Hash32, Jurisdiction, Timestamp};
use ed25519_dalek::{SigningKey, VerifyingKey};

fn j(code: &str) -> Jurisdiction {
    code.parse().unwrap()
}

/// Deterministic keys: FR (requesting) seed 1, DE (executing) seed 2, GB (a bystander) seed 3.
fn key(who: &Jurisdiction) -> SigningKey {
    let seed = match who.as_str() {
        "FR" => 1,
        "DE" => 2,
        _ => 3,
    };
    SigningKey::from_bytes(&[seed; 32])
}

fn roster(event: &CaseEvent, _signer: &crate::PublicKey) -> Result<VerifyingKey, KeyProblem> {
    let who = &event.author;
    matches!(who.as_str(), "FR" | "DE" | "GB")
        .then(|| key(who).verifying_key())
        .ok_or(KeyProblem::NotAMember)
}

const CASE: CaseId = CaseId::from_parts(1_790_000_000_000, 7);

fn sign(event: &CaseEvent) -> SignedEnvelope {
    SignedEnvelope::sign(event, &key(&event.author)).unwrap()
}

/// One replica, with a clock that ticks once per event.
struct Replica {
    log: CaseLog,
    clock: i64,
}

impl Replica {
    fn empty() -> Self {
        Self {
            log: CaseLog::new(CASE),
            clock: 1_790_000_000_000,
        }
    }

    /// A replica holding the sample request from FR to DE.
    fn submitted() -> Self {
        let mut r = Self::empty();
        r.act("FR", submitted()).unwrap();
        r
    }

    fn build(&mut self, who: &str, kind: EventKind) -> SignedEnvelope {
        self.clock += 1000;
        sign(
            &self
                .log
                .next_event(&j(who), kind, Timestamp::from_millis(self.clock)),
        )
    }

    fn act(&mut self, who: &str, kind: EventKind) -> Result<EventId, EventError> {
        let env = self.build(who, kind);
        self.insert(env)
    }

    fn insert(&mut self, env: SignedEnvelope) -> Result<EventId, EventError> {
        match self.log.insert(env, roster)? {
            Inserted::New(id) => Ok(id),
            Inserted::Duplicate(id) => panic!("unexpected duplicate {id}"),
        }
    }

    fn state(&self) -> CaseState {
        self.log.view().state.unwrap()
    }

    fn last_entry(&self) -> LogEntry {
        self.log.view().entries.last().unwrap().clone()
    }
}

fn submitted() -> EventKind {
    EventKind::Submitted {
        request: Box::new(sample_request()),
        approval: crate::examples::sample_approval(),
    }
}

fn decided(decision: Decision) -> EventKind {
    EventKind::Decided { decision }
}

fn policy(outcome: PolicyOutcome) -> EventKind {
    EventKind::PolicyChecked {
        outcome,
        rules: vec!["agreement-fr-de".into()],
    }
}

fn fulfilled() -> EventKind {
    EventKind::Fulfilled {
        manifest_root: Some(Hash32::of(b"manifest")),
        note: "subscriber record attached".into(),
    }
}

fn withdrawn() -> EventKind {
    EventKind::Withdrawn {
        reason: "suspect identified by other means".into(),
    }
}

fn ask() -> EventKind {
    EventKind::ClarificationRequested {
        question: "Which time zone is the window in?".into(),
    }
}

fn answer() -> EventKind {
    EventKind::Clarified {
        answer: "UTC".into(),
    }
}

/// Runs `steps` on a fresh submitted replica, asserting each one applies and leads to the
/// given state.
fn walk(steps: Vec<(&str, EventKind, CaseState)>) -> Replica {
    let mut r = Replica::submitted();
    assert_eq!(r.state(), CaseState::Submitted);
    for (who, kind, expected) in steps {
        let code = kind.code();
        r.act(who, kind).unwrap();
        let entry = r.last_entry();
        assert!(entry.applied, "{code} not applied: {:?}", entry.note);
        assert_eq!(r.state(), expected, "after {code}");
    }
    r
}
