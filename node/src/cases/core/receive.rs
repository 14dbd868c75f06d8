//! Events from the other party: by push (answered with a signed receipt), by pull, or with
//! the receipt of one of our pushes. They are verified against the bloc's keys and stored
//! with what this node writes in answer; a new request creates the case.

use comity_protocol::{
    AssistanceRequest, CaseLog, EnvelopeError, EventError, EventKind, Hash32, Inserted,
    Jurisdiction, MessageId, Receipt, Receipted, RejectCode, SignedEnvelope,
};

use super::{Case, Context, Effect, Plan};
use crate::cases::record::{CaseRecord, Delivery, LogSummary, OutboxEntry, RequestSummary, Role};

/// How the events came.
#[derive(Clone, Debug)]
pub enum Via<'a> {
    /// A push with this message id and body hash: answered with a signed receipt.
    Push {
        message_id: MessageId,
        body_hash: Hash32,
    },
    /// A pull answer.
    Pull,
    /// The answer to our push `entry`, with the receipt that ends its delivery.
    Answer {
        entry: &'a OutboxEntry,
        receipt: &'a SignedEnvelope,
    },
}

/// Why events from a peer could not be taken in.
#[derive(Debug, PartialEq, Eq)]
pub enum IngestError {
    /// Links point to events we do not hold: retry after a pull.
    Missing(usize),
    /// Refused for good: the code and a reason.
    Refused(RejectCode, String),
    /// The author signed two different events with the same number: refused (as invalid),
    /// and both signed envelopes are evidence to keep.
    Equivocation(Box<Equivocation>),
    Unavailable(String),
}

/// Two different events an author signed as the same number of its own in one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equivocation {
    pub author: Jurisdiction,
    pub seq: u64,
    /// The one held first.
    pub existing: SignedEnvelope,
    /// The one just offered.
    pub offered: SignedEnvelope,
    /// What the member is told, and what the refusal records.
    pub reason: String,
}

impl IngestError {
    pub fn describe(&self) -> String {
        match self {
            IngestError::Missing(n) => format!("{n} linked event(s) missing"),
            IngestError::Refused(code, why) => format!("{code}: {why}"),
            IngestError::Equivocation(e) => format!("{}: {}", RejectCode::Invalid, e.reason),
            IngestError::Unavailable(why) => why.clone(),
        }
    }
}

fn refused(code: RejectCode, why: impl Into<String>) -> IngestError {
    IngestError::Refused(code, why.into())
}

/// Verifies `events` of the case from member `from` and plans storing the new ones with
/// everything they imply.
pub fn receive(
    ctx: &Context,
    case: Case,
    from: &Jurisdiction,
    events: Vec<SignedEnvelope>,
    via: Via,
) -> Result<Plan, IngestError> {
    let Case { record, mut log } = case;
    let push = match &via {
        Via::Push {
            message_id,
            body_hash,
        } => Some((*message_id, *body_hash)),
        _ => None,
    };
    if record.as_ref().is_some_and(|r| r.purged_at.is_some()) {
        return purged(ctx, log.case_id(), push);
    }
    // A new request pushed to this node starts a case: not on an expired bloc configuration
    // (cases under way go on).
    if record.is_none()
        && push.is_some()
        && let Some(why) = &ctx.closed
    {
        return Err(refused(RejectCode::Invalid, why.clone()));
    }
    let first_new = log.len();
    let (fresh, pushed) = insert_all(ctx, &mut log, events)?;
    let view = log.view();
    let counterparty = counterparty(ctx, &view, from)?;
    let receipt = match push {
        Some((message_id, body_hash)) => Some((
            message_id,
            sign_receipt(ctx, log.case_id(), message_id, body_hash)?,
        )),
        None => None,
    };
    // The push that carries the request is the one whose receipt proves its delivery; a pull
    // may have brought the request first, so the record may exist without it.
    let carries_genesis = view.entries.first().is_some_and(|g| pushed.contains(&g.id));
    let mut record = match record {
        Some(mut record) => {
            if record.role == Role::Executing
                && record.receipt.is_none()
                && carries_genesis
                && let Some((message_id, signed)) = &receipt
            {
                record.genesis_message = Some(*message_id);
                record.receipt = Some(signed.clone());
            }
            record
        }
        None => new_record(ctx, &log, &view, counterparty, receipt.as_ref())?,
    };
    let mut plan = Plan::default();
    let own = answer_request(ctx, &mut log, &view, &record)?;
    if !own.is_empty() && receipt.is_none() {
        plan.outbox_put.push(ctx.push(&record, own.clone(), false)?);
    }
    if fresh.is_empty() && own.is_empty() && receipt.is_none() && matches!(via, Via::Pull) {
        return Ok(plan);
    }
    plan.received = fresh.len();
    plan.events = (first_new..)
        .zip(fresh.into_iter().chain(own.clone()))
        .collect();
    settle(ctx, &mut plan, &mut record, &log, &via);
    if let Some((message_id, signed)) = receipt {
        // The push that delivers the request is answered with this side's statements, also
        // when a pull brought the request first and they were made then: the requester holds
        // `received` with the receipt, not a moment later by this node's own push.
        let events = if own.is_empty() && carries_genesis && record.role == Role::Executing {
            let mut others = log.version_vector();
            others.remove(ctx.me);
            within_reply(log.events_after(&others))
        } else {
            own
        };
        plan.reply = Some(Receipted {
            receipt: signed.clone(),
            events,
        });
        plan.inbox = Some((message_id, signed));
    }
    plan.record = Some(record);
    Ok(plan)
}

/// A case whose content is destroyed here: nothing can be added. A push is receipted so that
/// the sender stops, and nothing is kept, not even the push's message id: a purged case leaves
/// no row a member could make grow.
fn purged(
    ctx: &Context,
    case_id: comity_protocol::CaseId,
    push: Option<(MessageId, Hash32)>,
) -> Result<Plan, IngestError> {
    let mut plan = Plan::default();
    if let Some((message_id, body_hash)) = push {
        let receipt = sign_receipt(ctx, case_id, message_id, body_hash)?;
        plan.reply = Some(Receipted {
            receipt,
            events: Vec::new(),
        });
    }
    Ok(plan)
}

/// The other party of the case, which must be the member the events came from.
fn counterparty(
    ctx: &Context,
    view: &comity_protocol::CaseView,
    from: &Jurisdiction,
) -> Result<Jurisdiction, IngestError> {
    let (Some(requesting), Some(executing)) = (&view.requesting, &view.executing) else {
        return Err(refused(
            RejectCode::Malformed,
            "no request (genesis event) for this case",
        ));
    };
    let counterparty = if ctx.me == executing {
        requesting
    } else if ctx.me == requesting {
        executing
    } else {
        return Err(refused(
            RejectCode::Misaddressed,
            format!(
                "case between {requesting} and {executing} is not for {}",
                ctx.me
            ),
        ));
    };
    if counterparty != from {
        return Err(refused(
            RejectCode::Misaddressed,
            format!("case with {counterparty} arrived from {from}"),
        ));
    }
    Ok(counterparty.clone())
}

/// What the stored events imply for the record: its summary of the log, a purge that follows
/// the requester's, the end of our push's delivery, the announcement of a package.
fn settle(ctx: &Context, plan: &mut Plan, record: &mut CaseRecord, log: &CaseLog, via: &Via) {
    let had_root = record.log.manifest_root.is_some();
    let after = log.view();
    let version = record.log.request_version;
    record.log = LogSummary::from_view(&after, log);
    super::adopt_version(record, version, log, &after);
    record.drop_stale_requests();
    record.updated_at = ctx.now;
    // The requester's purge destroys what the requester received, not this node's own
    // records, which it keeps for its own retention (`Cases::retention_until`) and then
    // destroys with a signed `records-destroyed`. It is stored as the signed event it is.
    if let Via::Answer { entry, receipt } = via {
        super::delivery::apply_receipt(ctx, record, entry, receipt);
        plan.outbox_delete.push(entry.message_id);
        if entry.genesis {
            plan.effects.push(Effect::WakeWaiters(entry.case_id));
        }
    }
    // A fulfilment that names a package: its transfer is recorded with the event, so that it
    // starts (or resumes after a crash) once this batch is stored.
    if record.role == Role::Requester
        && !had_root
        && let Some(root) = record.log.manifest_root
    {
        plan.announce = Some((root, record.counterparty.clone()));
    }
    if record.log.manifest_root.is_some() {
        plan.effects.push(Effect::WakeEvidence);
    }
}

/// Verifies and inserts `events`: returns the envelopes new to the log, and the ids of all
/// (new or already held).
fn insert_all(
    ctx: &Context,
    log: &mut CaseLog,
    events: Vec<SignedEnvelope>,
) -> Result<(Vec<SignedEnvelope>, Vec<comity_protocol::EventId>), IngestError> {
    let mut fresh = Vec::new();
    let mut ids = Vec::new();
    for envelope in events {
        match log.insert(envelope.clone(), crate::cases::key_of(ctx.roster)) {
            Ok(Inserted::New(id)) => {
                ids.push(id);
                fresh.push(envelope);
            }
            Ok(Inserted::Duplicate(id)) => ids.push(id),
            Err(e @ EventError::Equivocation { .. }) => {
                let EventError::Equivocation {
                    author,
                    seq,
                    existing,
                    ..
                } = &e
                else {
                    unreachable!("matched above")
                };
                let held = log.get(existing).map(|(_, held)| held.clone());
                return Err(match held {
                    Some(existing) => IngestError::Equivocation(Box::new(Equivocation {
                        author: author.clone(),
                        seq: *seq,
                        existing,
                        offered: envelope,
                        reason: e.to_string(),
                    })),
                    None => event_refusal(e),
                });
            }
            Err(e) => return Err(event_refusal(e)),
        }
    }
    Ok((fresh, ids))
}

fn event_refusal(e: EventError) -> IngestError {
    match e {
        EventError::MissingLinks(ids) => IngestError::Missing(ids.len()),
        // An event of a case whose request we have not received yet: pull it first.
        EventError::MissingGenesis { .. } => IngestError::Missing(1),
        EventError::Envelope(EnvelopeError::BadSignature) => refused(
            RejectCode::BadSignature,
            "an event's signature does not verify with its author's roster key",
        ),
        // Decoding errors may quote the body: code `malformed`, whose detail stays out of logs
        // and refusal records.
        e @ EventError::Envelope(_) => refused(RejectCode::Malformed, e.to_string()),
        e @ (EventError::UnknownAuthor(_) | EventError::Key { .. }) => {
            refused(RejectCode::UnknownSigner, e.to_string())
        }
        e => refused(RejectCode::Invalid, e.to_string()),
    }
}

fn sign_receipt(
    ctx: &Context,
    case_id: comity_protocol::CaseId,
    message_id: MessageId,
    body_hash: Hash32,
) -> Result<SignedEnvelope, IngestError> {
    let receipt = Receipt {
        message_id,
        case_id,
        body_hash,
        receiver: ctx.me.clone(),
        received_at: ctx.now,
    };
    SignedEnvelope::sign(&receipt, ctx.signer).map_err(|e| IngestError::Unavailable(e.to_string()))
}

/// The record of a case this node learns of from its request (its key is allocated by the
/// shell when the plan is stored).
fn new_record(
    ctx: &Context,
    log: &CaseLog,
    view: &comity_protocol::CaseView,
    counterparty: Jurisdiction,
    receipt: Option<&(MessageId, SignedEnvelope)>,
) -> Result<CaseRecord, IngestError> {
    let (request, approval) = genesis(log, view)
        .ok_or_else(|| refused(RejectCode::Malformed, "genesis without a request"))?;
    if let Err(problems) = request.validate() {
        return Err(refused(RejectCode::Invalid, problems.to_string()));
    }
    let role = if *ctx.me == request.executing {
        Role::Executing
    } else {
        Role::Requester
    };
    Ok(CaseRecord {
        case_id: log.case_id(),
        role,
        counterparty,
        created_at: view.submitted_at.unwrap_or(ctx.now),
        updated_at: ctx.now,
        summary: RequestSummary::of(&request),
        approval: Some(approval),
        request: Some(request),
        sealed_request: Vec::new(),
        purged_at: None,
        key_id: String::new(),
        genesis_message: receipt.map(|(id, _)| *id),
        receipt: receipt.map(|(_, r)| r.clone()),
        delivery: Delivery::default(),
        log: LogSummary::default(),
        drafted_by: None,
        disclosure_approval: None,
        override_request: None,
        pending_amendment: None,
    })
}

/// The request and its approval, from the log's genesis (the first entry of `view`).
fn genesis(
    log: &CaseLog,
    view: &comity_protocol::CaseView,
) -> Option<(AssistanceRequest, comity_protocol::Approval)> {
    let first = view.entries.first()?.id;
    match &log.get(&first)?.0.kind {
        EventKind::Submitted { request, approval } => Some(((**request).clone(), approval.clone())),
        _ => None,
    }
}

/// The executing side states, signed, that it holds the request, and checks it against its
/// policy at once: the requester sees both with the receipt (or by a push after a pull).
fn answer_request(
    ctx: &Context,
    log: &mut CaseLog,
    view: &comity_protocol::CaseView,
    record: &CaseRecord,
) -> Result<Vec<SignedEnvelope>, IngestError> {
    let received = view
        .entries
        .iter()
        .any(|e| e.author == *ctx.me && e.kind == "received");
    if record.role != Role::Executing {
        return Ok(Vec::new());
    }
    let mut kinds = Vec::new();
    // A new request is receipted and checked; an amended one (a new version, not yet
    // checked or decided) is checked again.
    let check = if !received {
        kinds.push(EventKind::Received);
        record.request.clone()
    } else if view.state == Some(comity_protocol::CaseState::Amended) {
        super::request_in_force(log, view)
    } else {
        return Ok(Vec::new());
    };
    if let Some(policy) = ctx.policy {
        let request = check
            .ok_or_else(|| IngestError::Unavailable("the request's content is not open".into()))?;
        let check = policy.check(&request, &record.counterparty, ctx.now);
        kinds.push(EventKind::PolicyChecked {
            outcome: check.outcome,
            rules: check.event_rules(),
        });
    }
    let mut own = Vec::new();
    for kind in kinds {
        own.push(ctx.append(log, kind)?.1);
    }
    Ok(own)
}

/// Bytes of events a reply to a push may carry: the rest of the frame is the receipt and its
/// framing, with room to spare.
pub const REPLY_EVENTS_BUDGET: usize = comity_protocol::limits::MAX_RESPONSE_FRAME - (64 << 10);

/// The longest prefix of `events` (in fold order, so causal) whose encoding fits in a reply:
/// an answer the sender cannot receive would wedge its outbox. What is left out reaches the
/// sender by its pulls.
pub fn within_reply(events: Vec<SignedEnvelope>) -> Vec<SignedEnvelope> {
    // An upper bound of an envelope's encoding: its body, its content type, the key id, the
    // signature, and the COSE structure and headers around them.
    let size = |e: &SignedEnvelope| e.body.len() + e.content_type.len() + 32 + 64 + 64;
    let mut used = 0;
    events
        .into_iter()
        .take_while(|e| {
            used += size(e);
            used <= REPLY_EVENTS_BUDGET
        })
        .collect()
}
