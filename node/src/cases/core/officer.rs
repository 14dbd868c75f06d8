//! Officers' inputs: a draft, its approval and its sending on the requesting side; an
//! approval of disclosure and every later step on either side; the retention purge.

use comity_protocol::{
    Approval, AssistanceRequest, CaseId, CaseLog, EventKind, FieldProblem, Side, ValidationErrors,
};

use super::{Case, Context, Effect, Plan, purge};
use crate::cases::CaseError;
use crate::cases::record::{CaseRecord, Delivery, LogSummary, RequestSummary, Role};
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
    if let Some(refused) = &record.delivery.refused {
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
    check_preservation(ctx, &record, &kind)?;
    let purging = matches!(kind, EventKind::Purged);
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
    record.log = LogSummary::of(&log);
    record.updated_at = ctx.now;
    let mut effects = Vec::new();
    if purging {
        purge(&mut record, ctx.now);
        effects.push(Effect::Shred(record.key_id.clone()));
    }
    Ok(Plan {
        record: Some(record),
        events: vec![(index, envelope)],
        outbox_put: vec![entry],
        effects,
        ..Plan::default()
    })
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
            rule()
                .start(ctx.now, Some(*until))
                .map_err(CaseError::Refused)?;
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
