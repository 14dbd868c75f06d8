//! Officers' inputs: a draft, its approval and its sending on the requesting side; an
//! approval of disclosure and every later step on either side; the retention purge.

use comity_protocol::{
    Approval, AssistanceRequest, CaseId, CaseLog, Decision, EventKind, FieldProblem, Side,
    ValidationErrors,
};

use super::{Case, Context, Effect, Plan, purge};
use crate::cases::CaseError;
use crate::cases::record::{
    CaseRecord, Delivery, LogSummary, OverrideRequest, RequestSummary, Role,
};
use comity_protocol::audit::AuditWhat;

/// Checks a request and makes it a draft of `officer` (its key is allocated by the shell).
pub fn draft(
    ctx: &Context,
    case_id: CaseId,
    request: AssistanceRequest,
    officer: &str,
) -> Result<CaseRecord, CaseError> {
    request.validate().map_err(CaseError::Invalid)?;
    if let Some(why) = &ctx.closed {
        return Err(CaseError::Refused(why.clone()));
    }
    if request.requesting != *ctx.me {
        return Err(CaseError::Invalid(ValidationErrors(vec![FieldProblem {
            field: "requesting".into(),
            problem: format!(
                "this node speaks for {}, not {}",
                ctx.me, request.requesting
            ),
        }])));
    }
    if ctx.roster.by_jurisdiction(&request.executing).is_none() {
        return Err(CaseError::UnknownMember {
            counterparty: request.executing.clone(),
            bloc: ctx.roster.bloc().to_owned(),
        });
    }
    Ok(CaseRecord {
        case_id,
        role: Role::Requester,
        counterparty: request.executing.clone(),
        created_at: ctx.now,
        updated_at: ctx.now,
        summary: RequestSummary::of(&request),
        request: Some(request),
        sealed_request: Vec::new(),
        purged_at: None,
        key_id: String::new(),
        genesis_message: None,
        receipt: None,
        delivery: Delivery::default(),
        log: LogSummary::default(),
        drafted_by: Some(officer.to_owned()),
        approval: None,
        disclosure_approval: None,
        override_request: None,
        pending_amendment: None,
    })
}

/// Four-eyes. On the requesting side: `approver` approves a draft that another officer
/// drafted; the approval travels in the signed request. On the executing side: `approver`
/// approves disclosing the data of a case, and must not be the officer who then fulfils it.
/// Refused when it would approve one's own draft or approve twice.
pub fn approve(ctx: &Context, mut record: CaseRecord, approver: &str) -> Result<Plan, CaseError> {
    let case_id = record.case_id;
    let refuse = |why: String| Err(CaseError::Refused(why));
    match record.role {
        Role::Requester => {
            if record.log.state.is_some() {
                return refuse(format!(
                    "case {case_id} was already sent; approvals are for drafts"
                ));
            }
            if let Some(existing) = &record.approval {
                return refuse(format!(
                    "case {case_id} was already approved by {} at {}; an approval is given once",
                    existing.approved_by, existing.approved_at
                ));
            }
            let drafted_by = record.drafted_by.clone().unwrap_or_default();
            if drafted_by == approver {
                return refuse(format!(
                    "four-eyes: {approver} drafted case {case_id} and cannot approve it; another approver must"
                ));
            }
            record.approval = Some(Approval {
                drafted_by,
                approved_by: approver.to_owned(),
                approved_at: ctx.now,
            });
        }
        Role::Executing => {
            if let Some((by, at)) = &record.disclosure_approval {
                return refuse(format!(
                    "disclosure for case {case_id} was already approved by {by} at {at}; an approval is given once"
                ));
            }
            record.disclosure_approval = Some((approver.to_owned(), ctx.now));
        }
    }
    record.updated_at = ctx.now;
    Ok(Plan {
        record: Some(record),
        audit: vec![AuditWhat::Approval {
            officer: approver.to_owned(),
            case_id,
        }],
        ..Plan::default()
    })
}

/// Signs an approved draft's request as the genesis of its log and queues the push that
/// carries it. The push is dated like the genesis, so that it can be rebuilt exactly.
pub fn send(ctx: &Context, mut record: CaseRecord) -> Result<Plan, CaseError> {
    let case_id = record.case_id;
    if record.role != Role::Requester || record.log.state.is_some() {
        return Err(CaseError::NotDraft {
            case: case_id,
            state: record.state_code(),
        });
    }
    let Some(approval) = record.approval.clone() else {
        return Err(CaseError::Refused(format!(
            "four-eyes: case {case_id} needs an approval by an approver other than its drafter before it is sent (`comity request approve {case_id}`)"
        )));
    };
    if let Some(why) = &ctx.closed {
        return Err(CaseError::Refused(why.clone()));
    }
    let request = record
        .request
        .clone()
        .ok_or_else(|| CaseError::Refused("the draft's content is gone".into()))?;
    let mut log = CaseLog::new(case_id);
    let kind = EventKind::Submitted {
        request: Box::new(request),
        approval,
    };
    let (_, genesis) = ctx.append(&mut log, kind)?;
    let entry = ctx.push(&record, vec![genesis.clone()], true)?;
    record.genesis_message = Some(entry.message_id);
    record.delivery.queued_at = Some(ctx.now);
    record.log = LogSummary::of(&log);
    record.updated_at = ctx.now;
    Ok(Plan {
        record: Some(record),
        events: vec![(0, genesis)],
        outbox_put: vec![entry],
        ..Plan::default()
    })
}

/// An officer's step in a case (or the node's own, such as the retention purge): a signed
/// event of this node and the push that carries it to the other party. Refused, with the
/// reason, unless this side may take the step now.
pub fn act(ctx: &Context, case: Case, kind: EventKind, officer: &str) -> Result<Plan, CaseError> {
    let Case { record, mut log } = case;
    let mut record = record.ok_or(CaseError::NotFound(log.case_id()))?;
    let case_id = record.case_id;
    if matches!(kind, EventKind::Fulfilled { .. }) {
        check_disclosure_approval(ctx, &record, officer)?;
    }
    if let Some(at) = record.purged_at {
        return Err(CaseError::Refused(format!(
            "case {case_id}'s content was destroyed at {at}; nothing more can be recorded on it"
        )));
    }
    // A request the other side refused at the door: nothing more goes to it, but this node
    // still destroys its copy when its retention ends (recorded in its own log only).
    let destroying = matches!(kind, EventKind::Purged | EventKind::RecordsDestroyed);
    let refused_at_door = record.delivery.refused.is_some();
    if let Some(refused) = &record.delivery.refused
        && !destroying
    {
        return Err(CaseError::Refused(format!(
            "{} refused this request when it arrived ({refused}); nothing more can be sent on it",
            record.counterparty
        )));
    }
    if log.is_empty() {
        return Err(CaseError::Refused(format!(
            "case {case_id} is a draft: send it first (`comity request send {case_id}`)"
        )));
    }
    let side = match record.role {
        Role::Requester => Side::Requester,
        Role::Executing => Side::Executing,
    };
    let allowed = kind.allowed_author();
    if allowed != Side::Either && allowed != side {
        return Err(CaseError::Refused(format!(
            "only the {} side may record `{}`; this node is the {} side of case {case_id}",
            side_name(allowed),
            kind.code(),
            record.role
        )));
    }
    if record.role == Role::Executing
        && let Some(at) = record.log.requester_purged_at
        && matches!(
            kind,
            EventKind::Decided { .. }
                | EventKind::Fulfilled { .. }
                | EventKind::ClarificationRequested { .. }
                | EventKind::PolicyOverridden { .. }
                | EventKind::Preserved { .. }
                | EventKind::PreservationExtended { .. }
        )
    {
        return Err(CaseError::Refused(format!(
            "{} destroyed what it received of case {case_id} at {at}: nothing more goes to it (this node keeps its own records until its own retention ends)",
            record.counterparty
        )));
    }
    check_preservation(ctx, &record, &kind)?;
    check_policy(&record, &kind)?;
    // This side destroys its copy: the requester its received data, the executing side its
    // own records.
    let purging = matches!(kind, EventKind::Purged | EventKind::RecordsDestroyed);
    let code = kind.code();
    let index = log.len();
    let (id, envelope) = ctx.append(&mut log, kind)?;
    let view = log.view();
    if let Some(entry) = view.entries.iter().find(|e| e.id == id)
        && !entry.applied
    {
        let why = entry.note.clone().unwrap_or_default();
        return Err(CaseError::Refused(format!(
            "`{code}` does not apply to case {case_id} now ({}): {why}",
            record.state_code()
        )));
    }
    let mut entry = ctx.push(&record, vec![envelope.clone()], false)?;
    // A `purged` event carries no content: its push is stored in clear, so that it can still
    // be delivered once the case's key is destroyed.
    entry.clear = purging;
    let version = record.log.request_version;
    record.log = LogSummary::from_view(&view, &log);
    super::adopt_version(&mut record, version, &log, &view);
    record.drop_stale_requests();
    record.updated_at = ctx.now;
    let mut effects = Vec::new();
    if purging {
        purge(&mut record, ctx.now);
        effects.push(Effect::Shred(record.key_id.clone()));
    }
    Ok(Plan {
        record: Some(record),
        events: vec![(index, envelope)],
        outbox_put: if refused_at_door {
            Vec::new()
        } else {
            vec![entry]
        },
        effects,
        ..Plan::default()
    })
}

/// A policy that refused a case binds: accepting or fulfilling it needs an override that
/// covers the latest check. Refusing it, asking for clarification, preserving do not.
fn check_policy(record: &CaseRecord, kind: &EventKind) -> Result<(), CaseError> {
    let goes_on = matches!(
        kind,
        EventKind::Decided {
            decision: Decision::Accept | Decision::Partial { .. }
        } | EventKind::Fulfilled { .. }
    );
    if record.role != Role::Executing || !goes_on || !record.log.policy_blocks() {
        return Ok(());
    }
    let id = record.case_id;
    Err(CaseError::Refused(format!(
        "the policy refused case {id} (its rules are in `comity case log {id}`): to {} it anyway, an officer asks for an override with a reason (`comity case override {id} --reason …`) and another officer approves it (`comity case override {id} --approve`)",
        if matches!(kind, EventKind::Fulfilled { .. }) {
            "fulfil"
        } else {
            "accept"
        }
    )))
}

/// Asks to go on with a case the policy refused, for a stated reason. The reason is kept,
/// sealed, until another officer approves ([`approve_override`]).
pub fn request_override(
    ctx: &Context,
    case: Case,
    officer: &str,
    reason: String,
) -> Result<Plan, CaseError> {
    let mut record = case.record.ok_or(CaseError::NotFound(case.log.case_id()))?;
    let id = record.case_id;
    let refuse = |why: String| Err(CaseError::Refused(why));
    if record.role != Role::Executing {
        return refuse(format!(
            "case {id} is one this node sent: only the executing side's policy can be overridden"
        ));
    }
    if record.purged_at.is_some() {
        return refuse(format!("case {id}'s content was destroyed"));
    }
    if !record.log.policy_blocks() {
        return refuse(format!(
            "nothing to override: the policy's latest check of case {id} did not refuse it, or an override already covers it"
        ));
    }
    let reason = reason.trim().to_owned();
    if reason.is_empty() || reason.len() > comity_protocol::limits::MAX_TEXT {
        return refuse(format!(
            "an override needs a reason of 1 to {} bytes: why this request should go on despite the policy",
            comity_protocol::limits::MAX_TEXT
        ));
    }
    if let Some(pending) = &record.override_request {
        return refuse(format!(
            "{} already asked to override the policy on case {id} at {}; another officer approves it (`comity case override {id} --approve`)",
            pending.requested_by, pending.requested_at
        ));
    }
    record.override_request = Some(OverrideRequest {
        requested_by: officer.to_owned(),
        requested_at: ctx.now,
        for_check: record.log.policy_checks,
        reason: Some(reason),
        sealed_reason: Vec::new(),
    });
    record.updated_at = ctx.now;
    Ok(Plan {
        record: Some(record),
        audit: vec![AuditWhat::PolicyOverride {
            officer: officer.to_owned(),
            case_id: id,
            step: "requested".into(),
        }],
        ..Plan::default()
    })
}

/// Negotiation: an officer drafts a new version of a sent request, after a partial acceptance
/// or a clarification. It is kept, sealed, until another officer approves it
/// ([`accept_amendment`]), which signs it into the log.
pub fn amend(
    ctx: &Context,
    case: Case,
    request: AssistanceRequest,
    officer: &str,
) -> Result<Plan, CaseError> {
    use comity_protocol::CaseState as S;
    let mut record = case.record.ok_or(CaseError::NotFound(case.log.case_id()))?;
    let id = record.case_id;
    let refuse = |why: String| Err(CaseError::Refused(why));
    if record.role != Role::Requester {
        return refuse(format!(
            "case {id} was sent to this node: only the requesting side amends its request"
        ));
    }
    if record.purged_at.is_some() {
        return refuse(format!("case {id}'s content was destroyed"));
    }
    if !matches!(
        record.log.state,
        Some(S::PartiallyAccepted | S::ClarificationRequested | S::Clarified)
    ) {
        return refuse(format!(
            "case {id} is {}: a request is amended after a partial acceptance or a clarification",
            record.state_code()
        ));
    }
    request.validate().map_err(CaseError::Invalid)?;
    if request.requesting != record.summary.requesting
        || request.executing != record.summary.executing
    {
        return refuse(format!(
            "an amendment keeps the parties of case {id} ({} to {})",
            record.summary.requesting, record.summary.executing
        ));
    }
    if let Some(pending) = &record.pending_amendment {
        return refuse(format!(
            "{} already drafted an amendment of case {id} at {}; another officer approves it (`comity request approve {id}`)",
            pending.drafted_by, pending.drafted_at
        ));
    }
    record.pending_amendment = Some(super::super::record::PendingAmendment {
        drafted_by: officer.to_owned(),
        drafted_at: ctx.now,
        request: Some(request),
        sealed: Vec::new(),
    });
    record.updated_at = ctx.now;
    Ok(Plan {
        record: Some(record),
        ..Plan::default()
    })
}

/// Withdraws what waits for an approval in a case: a drafted amendment or an asked override.
/// Nothing was signed for either, so nothing is sent; the officer is recorded in the log.
pub fn cancel_pending(
    ctx: &Context,
    case: Case,
    what: Pending,
    officer: &str,
) -> Result<Plan, CaseError> {
    let mut record = case.record.ok_or(CaseError::NotFound(case.log.case_id()))?;
    let id = record.case_id;
    let had = match what {
        Pending::Amendment => record.pending_amendment.take().is_some(),
        Pending::Override => record.override_request.take().is_some(),
    };
    if !had {
        return Err(CaseError::Refused(format!(
            "no {} of case {id} awaits approval",
            what.name()
        )));
    }
    record.updated_at = ctx.now;
    Ok(Plan {
        record: Some(record),
        audit: vec![AuditWhat::PendingWithdrawn {
            officer: officer.to_owned(),
            case_id: id,
            pending: what.name().to_owned(),
        }],
        ..Plan::default()
    })
}

/// What may wait for a second officer in a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    Amendment,
    Override,
}

impl Pending {
    fn name(self) -> &'static str {
        match self {
            Pending::Amendment => "amendment",
            Pending::Override => "override",
        }
    }
}

/// Four-eyes on an amendment: `approver`, not its drafter, approves it; the node signs the new
/// version into the log with both names, as it did the first.
pub fn accept_amendment(ctx: &Context, case: Case, approver: &str) -> Result<Plan, CaseError> {
    let Case { record, log } = case;
    let mut record = record.ok_or(CaseError::NotFound(log.case_id()))?;
    let id = record.case_id;
    let Some(pending) = record.pending_amendment.take() else {
        return Err(CaseError::Refused(format!(
            "case {id} was already sent and no amendment of it awaits approval"
        )));
    };
    if pending.drafted_by == approver {
        return Err(CaseError::Refused(format!(
            "four-eyes: {approver} drafted this amendment and cannot approve it; another approver must"
        )));
    }
    let request = pending.request.ok_or_else(|| {
        CaseError::Refused(format!("the amendment of case {id} could not be opened"))
    })?;
    let kind = EventKind::Amended {
        request: Box::new(request),
        approval: Approval {
            drafted_by: pending.drafted_by,
            approved_by: approver.to_owned(),
            approved_at: ctx.now,
        },
    };
    let mut plan = act(
        ctx,
        Case {
            record: Some(record),
            log,
        },
        kind,
        approver,
    )?;
    plan.audit.push(AuditWhat::Approval {
        officer: approver.to_owned(),
        case_id: id,
    });
    Ok(plan)
}

/// The policy monitor's check of a pending case: when the policy in force (or the time, past
/// an agreement's expiry) gives another outcome than the case's latest check, the node signs
/// the new check into the log. A refusal then blocks acceptance and fulfilment until an
/// override covers it. Nothing happens to a case that is not pending here, or whose outcome
/// is unchanged.
pub fn recheck(ctx: &Context, case: Case) -> Result<Plan, CaseError> {
    use comity_protocol::CaseState as S;
    let (Some(record), Some(policy)) = (&case.record, ctx.policy) else {
        return Ok(Plan::default());
    };
    let pending = matches!(
        record.log.state,
        Some(
            S::Delivered
                | S::UnderReview
                | S::ClarificationRequested
                | S::Clarified
                | S::Amended
                | S::Accepted
                | S::PartiallyAccepted
        )
    );
    if record.role != Role::Executing || record.purged_at.is_some() || !pending {
        return Ok(Plan::default());
    }
    let Some(request) = &record.request else {
        return Ok(Plan::default());
    };
    let check = policy.check(request, &record.counterparty, ctx.now);
    if record.log.policy == Some(check.outcome) {
        return Ok(Plan::default());
    }
    let kind = EventKind::PolicyChecked {
        outcome: check.outcome,
        rules: check.event_rules(),
    };
    act(ctx, case, kind, "policy-monitor")
}

/// Four-eyes on an override: `approver`, not the officer who asked, approves it; the node
/// signs a `policy-overridden` event with the reason and both names into the case's log.
pub fn approve_override(ctx: &Context, case: Case, approver: &str) -> Result<Plan, CaseError> {
    let Case { record, log } = case;
    let mut record = record.ok_or(CaseError::NotFound(log.case_id()))?;
    let id = record.case_id;
    let Some(pending) = record.override_request.take() else {
        return Err(CaseError::Refused(format!(
            "no override of the policy was asked for on case {id} (`comity case override {id} --reason …`)"
        )));
    };
    if pending.requested_by == approver {
        return Err(CaseError::Refused(format!(
            "four-eyes: {approver} asked for this override and cannot approve it; another officer must"
        )));
    }
    let reason = pending.reason.ok_or_else(|| {
        CaseError::Refused(format!(
            "the reason for the override of case {id} could not be opened"
        ))
    })?;
    let kind = EventKind::PolicyOverridden {
        reason,
        requested_by: pending.requested_by,
        approved_by: approver.to_owned(),
    };
    let mut plan = act(
        ctx,
        Case {
            record: Some(record),
            log,
        },
        kind,
        approver,
    )?;
    plan.audit.push(AuditWhat::PolicyOverride {
        officer: approver.to_owned(),
        case_id: id,
        step: "approved".into(),
    });
    Ok(plan)
}

/// The instrument's preservation rules (or the bloc's for it): a new preservation lasts at
/// most its period where extensions are capped, and no extension goes past the cap. Steps the
/// fold refuses anyway (preserving twice, extending nothing) are left to it.
fn check_preservation(
    ctx: &Context,
    record: &CaseRecord,
    kind: &EventKind,
) -> Result<(), CaseError> {
    let active = record.log.preservation.filter(|p| !p.released);
    let rule = || {
        comity_protocol::deadlines::preservation(ctx.roster.settings(), record.summary.instrument)
    };
    match (kind, active) {
        (EventKind::Preserved { until }, None) => {
            let rule = rule();
            rule.start(ctx.now, Some(*until))
                .map_err(CaseError::Refused)?;
            // Started again after a release: still within the cap of the first start.
            if let Some(since) = record.log.preservation.and_then(|p| p.since) {
                rule.extend(since, *until).map_err(CaseError::Refused)?;
            }
        }
        (EventKind::PreservationExtended { until }, Some(p)) => {
            let since = p.since.unwrap_or(ctx.now);
            rule().extend(since, *until).map_err(CaseError::Refused)?;
        }
        _ => {}
    }
    Ok(())
}

/// Four-eyes on disclosure: the categories the node's safeguards name need an approval by
/// an approver other than the officer who discloses.
pub fn check_disclosure_approval(
    ctx: &Context,
    record: &CaseRecord,
    officer: &str,
) -> Result<(), CaseError> {
    let sensitive: Vec<String> = record
        .summary
        .data_categories
        .iter()
        .filter(|c| ctx.disclosure_approval.contains(c))
        .map(|c| c.to_string())
        .collect();
    if sensitive.is_empty() {
        return Ok(());
    }
    let why = match &record.disclosure_approval {
        None => format!(
            "four-eyes: disclosing {} data needs an approver's approval first (`comity case approve {}`)",
            sensitive.join(", "),
            record.case_id
        ),
        Some((by, _)) if by == officer => format!(
            "four-eyes: {officer} approved this disclosure and cannot also make it; another officer must fulfil"
        ),
        Some(_) => return Ok(()),
    };
    Err(CaseError::Refused(why))
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Requester => "requesting",
        Side::Executing => "executing",
        Side::Either => "either",
    }
}
