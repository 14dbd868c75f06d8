//! The end of one delivery attempt of our push: a verified receipt, a refusal of the message
//! itself, or a failure to retry. Only the push that carries the request leaves a mark on the
//! case (its receipt is the proof of delivery; its failures are what officers see).

use comity_protocol::SignedEnvelope;

use super::{Context, Effect, Plan};
use crate::cases::record::{CaseRecord, OutboxEntry};

/// The receipt of `entry` verified (`record` is `None` if the case is gone).
pub fn delivered(
    ctx: &Context,
    record: Option<CaseRecord>,
    entry: &OutboxEntry,
    receipt: &SignedEnvelope,
) -> Plan {
    let mut plan = Plan {
        outbox_delete: vec![entry.message_id],
        ..Plan::default()
    };
    if let Some(mut record) = record {
        apply_receipt(ctx, &mut record, entry, receipt);
        plan.record = Some(record);
    }
    if entry.genesis {
        plan.effects.push(Effect::WakeWaiters(entry.case_id));
    }
    plan
}

/// For a request, its receipt is the proof of delivery.
pub(super) fn apply_receipt(
    ctx: &Context,
    record: &mut CaseRecord,
    entry: &OutboxEntry,
    receipt: &SignedEnvelope,
) {
    if entry.genesis {
        record.receipt = Some(receipt.clone());
        record.delivery.attempts += 1;
        record.delivery.last_attempt = Some(ctx.now);
        record.delivery.last_error = None;
    }
}

/// The member refused the message itself, for good: the push is dropped; for a request,
/// the case is marked undeliverable with the member's reason.
pub fn refused(
    ctx: &Context,
    record: Option<CaseRecord>,
    entry: &OutboxEntry,
    reason: &str,
) -> Plan {
    let mut plan = Plan {
        outbox_delete: vec![entry.message_id],
        effects: vec![Effect::WakeWaiters(entry.case_id)],
        ..Plan::default()
    };
    if entry.genesis
        && let Some(mut record) = record
    {
        record.updated_at = ctx.now;
        record.delivery.attempts += 1;
        record.delivery.last_attempt = Some(ctx.now);
        record.delivery.last_error = Some(reason.to_owned());
        record.delivery.refused = Some(reason.to_owned());
        plan.record = Some(record);
    }
    plan
}

/// An attempt failed and will be retried: for a request, the case says why it is not
/// delivered yet. Nothing to store for any other push (the entry itself is durable).
pub fn failed(
    ctx: &Context,
    record: Option<CaseRecord>,
    entry: &OutboxEntry,
    reason: &str,
) -> Plan {
    let mut plan = Plan::default();
    if entry.genesis
        && let Some(mut record) = record
    {
        record.delivery.attempts += 1;
        record.delivery.last_attempt = Some(ctx.now);
        record.delivery.last_error = Some(reason.to_owned());
        plan.record = Some(record);
    }
    plan
}

/// `entry` was not acknowledged for longer than the outbox waits (`waited`): it is kept but no
/// longer sent, and the case says so, until an officer asks for it to be sent again.
pub fn given_up(
    ctx: &Context,
    record: Option<CaseRecord>,
    entry: &OutboxEntry,
    waited: std::time::Duration,
) -> Plan {
    let mut dead = entry.clone();
    dead.dead = true;
    let mut plan = Plan {
        outbox_put: vec![dead],
        effects: vec![Effect::WakeWaiters(entry.case_id)],
        ..Plan::default()
    };
    if let Some(mut record) = record {
        record.updated_at = ctx.now;
        record.delivery.given_up = Some(format!(
            "{} acknowledged no message of this case in {} hour(s); they are no longer sent: `comity case retry {}` sends them again",
            entry.to,
            waited.as_secs() / 3600,
            entry.case_id
        ));
        plan.record = Some(record);
    }
    plan
}

/// An officer asks for the case's given-up pushes (`dead`) to be sent again: queued anew, so
/// that the member has the whole wait again.
pub fn retried(ctx: &Context, record: Option<CaseRecord>, dead: Vec<OutboxEntry>) -> Plan {
    let mut plan = Plan {
        outbox_put: dead
            .into_iter()
            .map(|mut e| {
                e.dead = false;
                e.queued_at = ctx.now;
                e
            })
            .collect(),
        ..Plan::default()
    };
    if let Some(mut record) = record
        && record.delivery.given_up.is_some()
    {
        record.updated_at = ctx.now;
        record.delivery.given_up = None;
        plan.record = Some(record);
    }
    plan
}
