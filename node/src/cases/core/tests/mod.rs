//! The core's rules, input by input and state by state, between two in-memory parties (FR
//! requests, DE executes) whose "store" is applying each plan to their case as the shell would.
//! This module is the harness; `officer` tests officers' inputs, `exchange` what arrives from
//! the other party and how both sides converge.

mod exchange;
mod officer;

use std::collections::BTreeMap;
use std::sync::Arc;

use comity_protocol::bloc::{BlocConfig, MemberCard, Rules, Settings, config_hash, verify_genesis};
use comity_protocol::examples::sample_request;
use comity_protocol::{
    CaseId, CaseState, EventKind, EventPush, ExchangeRequest, Hash32, Jurisdiction, MessageId,
    MultiSigned, PublicKey, SignedEnvelope, Timestamp, from_cbor, limits,
};
use ed25519_dalek::SigningKey;

pub(super) use super::*;

pub(super) const T0: i64 = 1_790_000_000_000;

pub(super) fn j(code: &str) -> Jurisdiction {
    code.parse().unwrap()
}

pub(super) fn signing(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A bloc of FR (seed 1), DE (seed 2) and IT (seed 3), formed at T0.
pub(super) fn roster() -> Roster {
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
pub(super) struct Party {
    pub(super) me: Jurisdiction,
    pub(super) key: SigningKey,
    pub(super) case: Case,
    pub(super) outbox: Vec<OutboxEntry>,
    pub(super) inbox: BTreeMap<MessageId, SignedEnvelope>,
    pub(super) effects: Vec<Effect>,
    pub(super) closed: Option<String>,
    pub(super) minutes: i64,
    pub(super) policy: Option<Policy>,
}

impl Party {
    pub(super) fn new(code: &str, seed: u8, case_id: CaseId) -> Self {
        Self {
            me: j(code),
            key: signing(seed),
            case: Case::new(case_id),
            outbox: Vec::new(),
            inbox: BTreeMap::new(),
            effects: Vec::new(),
            closed: None,
            minutes: 0,
            policy: None,
        }
    }

    /// Runs `rule` with this party's context, a minute later than the last input.
    pub(super) fn with<T>(&mut self, roster: &Roster, rule: impl FnOnce(&Context, Case) -> T) -> T {
        self.minutes += 1;
        let ctx = Context {
            me: &self.me,
            roster,
            signer: &self.key,
            policy: self.policy.as_ref(),
            disclosure_approval: &[comity_protocol::DataCategory::Content],
            now: Timestamp::from_millis(T0 + self.minutes * 60_000),
            closed: self.closed.clone(),
        };
        rule(&ctx, self.case.clone())
    }

    /// What the shell does with a plan: store it all, then note its effects.
    pub(super) fn apply(&mut self, plan: Plan) -> Plan {
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
        // Stored by message id: a put replaces the entry it names.
        self.outbox.retain(|e| {
            !plan.outbox_delete.contains(&e.message_id)
                && !plan.outbox_put.iter().any(|p| p.message_id == e.message_id)
        });
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

    pub(super) fn record(&self) -> &CaseRecord {
        self.case.record.as_ref().expect("the case is held")
    }

    pub(super) fn state(&self) -> Option<CaseState> {
        self.record().log.state
    }

    pub(super) fn act(
        &mut self,
        roster: &Roster,
        kind: EventKind,
        officer: &str,
    ) -> Result<Plan, CaseError> {
        let plan = self.with(roster, |ctx, case| act(ctx, case, kind, officer))?;
        Ok(self.apply(plan))
    }

    /// Takes in a push from `entry`, as the shell would after checking its envelope.
    pub(super) fn take_push(
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

    pub(super) fn take_pull(
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
    pub(super) fn take_receipt(
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

pub(super) fn open_push(entry: &OutboxEntry) -> (MessageId, Hash32, Vec<SignedEnvelope>) {
    let ExchangeRequest::Push(envelope) =
        from_cbor::<ExchangeRequest>(&entry.frame, limits::MAX_REQUEST_FRAME).unwrap()
    else {
        panic!("an outbox entry holds a push");
    };
    let push: EventPush = from_cbor(&envelope.body, limits::MAX_REQUEST_FRAME).unwrap();
    (push.message_id, envelope.body_hash(), push.events)
}

/// FR's approved draft, sent: FR holds the pushed request in its outbox.
pub(super) fn sent(roster: &Roster) -> (Party, Party) {
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
pub(super) fn delivered_case(roster: &Roster) -> (Party, Party) {
    let (mut fr, mut de) = sent(roster);
    let entry = fr.outbox[0].clone();
    let plan = de.take_push(roster, &j("FR"), &entry).unwrap();
    fr.take_receipt(roster, &j("DE"), &entry, plan.reply.unwrap());
    (fr, de)
}

/// Delivers every queued push both ways until both outboxes are empty.
pub(super) fn settle(roster: &Roster, fr: &mut Party, de: &mut Party) {
    for _ in 0..20 {
        if fr.outbox.is_empty() && de.outbox.is_empty() {
            return;
        }
        deliver_first(roster, fr, de);
        deliver_first(roster, de, fr);
    }
    panic!("pushes never settle");
}

pub(super) fn deliver_first(roster: &Roster, from: &mut Party, to: &mut Party) {
    let Some(entry) = from.outbox.first().cloned() else {
        return;
    };
    let plan = to.take_push(roster, &from.me, &entry).unwrap();
    from.take_receipt(roster, &to.me, &entry, plan.reply.unwrap());
}

pub(super) fn same_case(fr: &Party, de: &Party) {
    let (a, b) = (&fr.record().log, &de.record().log);
    assert_eq!(a.heads, b.heads, "both sides hold the same events");
    assert_eq!(a.state, b.state);
    assert_eq!(a.have, b.have);
}

impl Party {
    /// `with` on a copy, for building inputs without moving this party's clock.
    pub(super) fn with_clone<T>(
        &self,
        roster: &Roster,
        rule: impl FnOnce(&Context, Case) -> T,
    ) -> T {
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
