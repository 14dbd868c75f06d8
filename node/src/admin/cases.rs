//! Case endpoints: drafting, approving and sending requests, officers' steps, lists, a case
//! with its content (for a stated purpose, logged first) and its signed log.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use comity_protocol::{CaseId, Timestamp};

use super::api::{
    Action, CaseDetail, CaseFilter, CaseSummary, LogView, NewRequest, PurposeQuery, SendCase,
};
use super::officers::{Officer, Role};
use super::openapi::Errors;
use super::{
    AdminState, CONTENT_READERS, Failure, MAX_WAIT, READERS, Reply, access, allow, api, failure,
};
use crate::cases::CaseError;
use crate::cases::record::{CaseRecord, Role as CaseRole};
use tracing::{info, warn};

pub(super) fn wait(ms: Option<u64>) -> Option<Duration> {
    ms.map(|ms| Duration::from_millis(ms).min(MAX_WAIT))
}

/// Drafts an assistance request; it is checked in full (every problem listed) and waits for a second officer's approval (requesters).
#[utoipa::path(
    post,
    path = "/requests",
    tag = "cases",
    request_body = NewRequest,
    responses((status = 201, description = "The draft was made; another officer approves it before it is sent (requesters)", body = CaseDetail), Errors)
)]
pub(super) async fn create_request(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    body: Result<Json<NewRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CaseDetail>), Failure> {
    allow(&officer, &[Role::Requester])?;
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    let record = state
        .cases
        .create_draft(body.request, &officer.name)
        .await?;
    Ok((StatusCode::CREATED, Json(detail(&state, &record))))
}

/// Sends an approved request to the executing member, optionally waiting for its signed receipt (`wait_ms`, at most 60 s) (requesters).
#[utoipa::path(
    post,
    path = "/cases/{id}/send",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    request_body = Option<SendCase>,
    responses((status = 200, description = "The approved request is sent, and the member's receipt waited for up to wait_ms (requesters)", body = CaseDetail), Errors)
)]
pub(super) async fn send_case(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Result<Json<SendCase>, axum::extract::rejection::JsonRejection>,
) -> Reply<CaseDetail> {
    allow(&officer, &[Role::Requester])?;
    use axum::extract::rejection::JsonRejection;
    let id = parse_case(&id)?;
    let wait_ms = match body {
        Ok(Json(body)) => body.wait_ms,
        // No body at all means no options.
        Err(JsonRejection::MissingJsonContentType(_)) => None,
        Err(e) => return Err(failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text())),
    };
    let record = state.cases.send(id, wait(wait_ms)).await?;
    Ok(Json(detail(&state, &record)))
}

/// Cases this node is party to, newest first, without content; filter by state, overdue or lapsing preservation.
#[utoipa::path(
    get,
    path = "/cases",
    tag = "cases",
    params(CaseFilter),
    responses((status = 200, description = "Cases, newest first, without content", body = Vec<CaseSummary>), Errors)
)]
pub(super) async fn list_cases(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(filter): Query<CaseFilter>,
) -> Reply<Vec<CaseSummary>> {
    allow(&officer, READERS)?;
    let now = state.cases.now();
    let cases = state
        .cases
        .list()?
        .iter()
        .map(|c| summary(&state, c, now))
        .filter(|c| filter.state.as_ref().is_none_or(|s| *s == c.state))
        .filter(|c| !filter.overdue || c.overdue.is_some())
        .filter(|c| !filter.lapsing || c.preservation.as_ref().is_some_and(|p| p.lapses_soon))
        .collect();
    Ok(Json(cases))
}

/// Requests received from other members, without content.
#[utoipa::path(
    get,
    path = "/inbox",
    tag = "cases",
    responses((status = 200, description = "Requests received from other members, without content", body = Vec<CaseSummary>), Errors)
)]
pub(super) async fn inbox(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Vec<CaseSummary>> {
    allow(&officer, READERS)?;
    let now = state.cases.now();
    Ok(Json(
        state
            .cases
            .list()?
            .iter()
            .filter(|c| c.role == CaseRole::Executing)
            .map(|c| summary(&state, c, now))
            .collect(),
    ))
}

/// The case's signed log in fold order, every event verified against its author's key.
#[utoipa::path(
    get,
    path = "/cases/{id}/log",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)"), PurposeQuery),
    responses((status = 200, description = "The case's signed log, verified (content needs a stated purpose)", body = LogView), Errors)
)]
pub(super) async fn case_log(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Query(query): Query<PurposeQuery>,
) -> Reply<LogView> {
    allow(&officer, CONTENT_READERS)?;
    let id = parse_case(&id)?;
    let purpose = stated_purpose(&query)?;
    state.cases.get(&id)?.ok_or(CaseError::NotFound(id))?;
    record_access(&state, &officer, id, "log", purpose).await?;
    let log = state.cases.verify_log(&id)?;
    let view = log.view();
    let roster = state.cases.roster();
    let envelopes = log.envelopes();
    let key_notes = envelopes
        .iter()
        .map(|e| {
            let event: comity_protocol::CaseEvent =
                comity_protocol::from_cbor(&e.body, comity_protocol::limits::MAX_REQUEST_FRAME)
                    .ok()?;
            roster
                .note(&event.author, &e.signer)
                .filter(|n| *n != comity_protocol::bloc::KeyNote::Current)
                .map(|n| n.to_string())
        })
        .collect();
    Ok(Json(LogView {
        case_id: id,
        state: view.state.map(|s| s.code().to_owned()),
        heads: view.heads,
        entries: view.entries,
        envelopes,
        key_notes,
    }))
}

/// A draft checked against the executing member's published policy.
#[utoipa::path(
    get,
    path = "/cases/{id}/precheck",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    responses((status = 200, description = "The draft checked against the executing member's published policy (none when it publishes none)", body = Option<crate::cases::Precheck>), Errors)
)]
pub(super) async fn precheck(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Reply<Option<crate::cases::Precheck>> {
    allow(&officer, &[Role::Requester, Role::Approver])?;
    let id = parse_case(&id)?;
    Ok(Json(state.cases.precheck(id).await?))
}

/// Four-eyes approval: of a draft (requesting side) or of a disclosure (executing side).
/// Only officers who hold the `approver` role approve; an admin does not stand in for one.
#[utoipa::path(
    post,
    path = "/cases/{id}/approve",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    responses((status = 200, description = "The draft is approved by a second officer (approvers)", body = CaseDetail), Errors)
)]
pub(super) async fn approve(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Reply<CaseDetail> {
    let id = parse_case(&id)?;
    if officer.role != Role::Approver {
        warn!(officer = %officer.name, role = %officer.role, case = %id, "approval refused: role");
        return Err(failure(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "approving needs the role `approver` (officer {} is `{}`); four-eyes needs an officer who holds it",
                officer.name, officer.role
            ),
        ));
    }
    let record = state.cases.approve(id, &officer.name).await?;
    Ok(Json(detail(&state, &record)))
}

/// Drafts a new version of a sent request, after a partial acceptance or a clarification; another officer approves it (`/cases/{id}/approve`), which signs it into the case's log (requesters).
#[utoipa::path(
    post,
    path = "/cases/{id}/amend",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    request_body = NewRequest,
    responses((status = 200, description = "The amendment is drafted and awaits another officer's approval", body = CaseDetail), Errors)
)]
pub(super) async fn amend(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Result<Json<NewRequest>, axum::extract::rejection::JsonRejection>,
) -> Reply<CaseDetail> {
    let id = parse_case(&id)?;
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    allow(&officer, &[Role::Requester])?;
    let record = state.cases.amend(id, body.request, &officer.name).await?;
    Ok(Json(detail(&state, &record)))
}

/// Withdraws a drafted amendment that awaits approval (requesters).
#[utoipa::path(
    post,
    path = "/cases/{id}/amend/cancel",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    responses((status = 200, description = "The drafted amendment is withdrawn; nothing was signed or sent", body = CaseDetail), Errors)
)]
pub(super) async fn cancel_amendment(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Reply<CaseDetail> {
    let id = parse_case(&id)?;
    allow(&officer, &[Role::Requester, Role::Approver])?;
    let record = state
        .cases
        .cancel_pending(id, crate::cases::core::Pending::Amendment, &officer.name)
        .await?;
    Ok(Json(detail(&state, &record)))
}

/// Withdraws an override that awaits approval (reviewers, approvers).
#[utoipa::path(
    post,
    path = "/cases/{id}/override/cancel",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    responses((status = 200, description = "The asked override is withdrawn; nothing was signed or sent", body = CaseDetail), Errors)
)]
pub(super) async fn cancel_override(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Reply<CaseDetail> {
    let id = parse_case(&id)?;
    allow(&officer, &[Role::Reviewer, Role::Approver])?;
    let record = state
        .cases
        .cancel_pending(id, crate::cases::core::Pending::Override, &officer.name)
        .await?;
    Ok(Json(detail(&state, &record)))
}

/// Asks to go on with a case the policy refused, for a stated reason; another officer approves it (`/override/approve`) before it counts.
#[utoipa::path(
    post,
    path = "/cases/{id}/override",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    request_body = api::OverrideRequestBody,
    responses((status = 200, description = "The override is asked for and awaits another officer's approval", body = CaseDetail), Errors)
)]
pub(super) async fn request_override(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Result<Json<api::OverrideRequestBody>, axum::extract::rejection::JsonRejection>,
) -> Reply<CaseDetail> {
    let id = parse_case(&id)?;
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    allow(&officer, &[Role::Reviewer])?;
    let record = state
        .cases
        .request_override(id, &officer.name, body.reason)
        .await?;
    Ok(Json(detail(&state, &record)))
}

/// Four-eyes: another officer than the one who asked approves an override of the policy; the node signs it, with the reason and both names, into the case's log.
#[utoipa::path(
    post,
    path = "/cases/{id}/override/approve",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    responses((status = 200, description = "The override is approved and signed into the case log", body = CaseDetail), Errors)
)]
pub(super) async fn approve_override(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Reply<CaseDetail> {
    let id = parse_case(&id)?;
    allow(&officer, &[Role::Approver, Role::Reviewer])?;
    let record = state.cases.approve_override(id, &officer.name).await?;
    Ok(Json(detail(&state, &record)))
}

/// An officer's step in a case (decide, ask or answer a clarification, fulfil, acknowledge, preserve, withdraw, close, purge), signed into its log; the roles allowed depend on the step.
#[utoipa::path(
    post,
    path = "/cases/{id}/act",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    request_body = Action,
    responses((status = 200, description = "The step was taken and signed into the case log", body = CaseDetail), Errors)
)]
pub(super) async fn act(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Result<Json<Action>, axum::extract::rejection::JsonRejection>,
) -> Reply<CaseDetail> {
    let id = parse_case(&id)?;
    let Json(action) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    allow(&officer, action.roles())?;
    let mut event = action
        .into_event(|| {
            let record = state.cases.get(&id).ok().flatten();
            let rule = record.map(|r| state.cases.preservation_rule(&r));
            match rule {
                Some(rule) => rule.start(state.cases.now(), None),
                None => Err(format!("case {id} is not held here")),
            }
        })
        .map_err(|why| failure(StatusCode::CONFLICT, "conflict", why))?;
    // An acknowledgement names the package the fulfilment delivered, when there is one.
    if let comity_protocol::EventKind::EvidenceAcknowledged { manifest_root } = &mut event
        && manifest_root.is_none()
    {
        *manifest_root = state.cases.get(&id)?.and_then(|c| c.log.manifest_root);
    }
    let record = state.cases.act(id, event, &officer.name).await?;
    Ok(Json(detail(&state, &record)))
}

/// One case: its summary, delivery, receipt and decision; with `?purpose=`, its content, the read recorded in the access log.
#[utoipa::path(
    get,
    path = "/cases/{id}",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)"), PurposeQuery),
    responses((status = 200, description = "One case; with ?purpose= its content, the read recorded in the access log", body = CaseDetail), Errors)
)]
pub(super) async fn show_case(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Query(query): Query<PurposeQuery>,
) -> Reply<CaseDetail> {
    allow(&officer, CONTENT_READERS)?;
    let id = parse_case(&id)?;
    let purpose = stated_purpose(&query)?;
    let record = state.cases.get(&id)?.ok_or(CaseError::NotFound(id))?;
    record_access(&state, &officer, id, "case", purpose).await?;
    let mut detail = detail(&state, &record);
    detail.request = record.request.clone();
    if let (Some(view), Some(o)) = (&mut detail.override_request, &record.override_request) {
        view.reason = o.reason.clone();
    }
    // The decision's texts and the amendments are sealed in the log with the rest of the
    // content.
    let amended = record.log.request_version > 1;
    if (record.log.decision.is_some() || amended) && record.purged_at.is_none() {
        let log = state.cases.load_log(&id)?;
        let view = log.view();
        detail.decision = view.decision.clone();
        detail.amendments = amendments(&log, &view);
    }
    if let (Some(view), Some(a), Some(current)) = (
        &mut detail.pending_amendment,
        &record.pending_amendment,
        &record.request,
    ) && let Some(new) = &a.request
    {
        view.changes = crate::cases::core::request_changes(current, new);
    }
    Ok(Json(detail))
}

/// Each applied amendment of `log`, with what it changed from the version before.
fn amendments(
    log: &comity_protocol::CaseLog,
    view: &comity_protocol::CaseView,
) -> Vec<api::AmendmentView> {
    use comity_protocol::EventKind;
    let mut out = Vec::new();
    let mut previous = None;
    for entry in view.entries.iter().filter(|e| e.applied) {
        let Some((event, _)) = log.get(&entry.id) else {
            continue;
        };
        match &event.kind {
            EventKind::Submitted { request, .. } => previous = Some((**request).clone()),
            EventKind::Amended { request, approval } => {
                out.push(api::AmendmentView {
                    version: out.len() as u32 + 2,
                    at: entry.at,
                    drafted_by: approval.drafted_by.clone(),
                    approved_by: Some(approval.approved_by.clone()),
                    changes: previous
                        .as_ref()
                        .map(|p| crate::cases::core::request_changes(p, request))
                        .unwrap_or_default(),
                });
                previous = Some((**request).clone());
            }
            _ => {}
        }
    }
    out
}

/// The purpose an officer states for reading case content: required, bounded.
pub(super) fn stated_purpose(query: &PurposeQuery) -> Result<&str, Failure> {
    match query.purpose.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() && p.len() <= access::MAX_PURPOSE => Ok(p),
        Some(p) if !p.is_empty() => Err(failure(
            StatusCode::BAD_REQUEST,
            "purpose",
            format!(
                "the purpose is {} bytes; keep it under {}",
                p.len(),
                access::MAX_PURPOSE
            ),
        )),
        _ => Err(failure(
            StatusCode::BAD_REQUEST,
            "purpose",
            "reading case content needs a stated purpose: add ?purpose=… (`--purpose` in the CLI); it is recorded in the access log",
        )),
    }
}

pub(super) async fn record_access(
    state: &AdminState,
    officer: &Officer,
    case: CaseId,
    what: &str,
    purpose: &str,
) -> Result<(), Failure> {
    access::record(&state.store, officer, case, what, purpose)
        .await
        .map_err(|e| {
            // No record, no read.
            failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
        })?;
    info!(officer = %officer.name, case = %case, what, "case content read (access logged)");
    Ok(())
}

pub(super) fn parse_case(id: &str) -> Result<CaseId, Failure> {
    id.parse().map_err(|_| {
        failure(
            StatusCode::BAD_REQUEST,
            "bad-case-id",
            format!("{id:?} is not a case id (26 characters, as `comity case list` shows)"),
        )
    })
}

pub(super) fn summary(state: &AdminState, record: &CaseRecord, now: Timestamp) -> CaseSummary {
    let due = state.cases.due(record, now);
    CaseSummary {
        case_id: record.case_id,
        role: record.role.into(),
        counterparty: record.counterparty.clone(),
        state: record.state_code().to_owned(),
        kind: record.summary.kind.to_string(),
        instrument: record.summary.instrument.to_string(),
        urgency: record.summary.urgency.to_string(),
        created_at: record.created_at,
        updated_at: record.updated_at,
        due: due.at,
        due_rule: due.rule,
        overdue: due.overdue.map(str::to_owned),
        not_delivered: due.not_delivered,
        retention_until: state.cases.retention_until(record),
        purged_at: record.purged_at,
        policy: record
            .log
            .policy
            .map(|o| comity_protocol::policy::outcome_code(o).to_owned()),
        policy_blocked: record.role == CaseRole::Executing && record.log.policy_blocks(),
        preservation: record.log.preservation.map(|p| {
            let rule = state.cases.preservation_rule(record);
            api::PreservationView {
                since: p.since,
                until: p.until,
                released_at: p.released_at,
                latest_end: p.since.and_then(|since| rule.latest_end(since)),
                lapses_soon: !p.released
                    && p.until > now
                    && p.until <= now.saturating_add(crate::cases::PRESERVATION_WARNING),
                rule: rule.rule,
            }
        }),
        events: record.log.events,
        heads: record.log.heads.clone(),
    }
}

pub(super) fn detail(state: &AdminState, record: &CaseRecord) -> CaseDetail {
    let roster = state.cases.roster();
    let receipt_signer = match record.role {
        CaseRole::Requester => &record.counterparty,
        CaseRole::Executing => state.cases.jurisdiction(),
    };
    // A receipt checks with the key that signed it, if that was ever the receiver's (a key
    // rotated or revoked since still reads, with a note).
    let receipt = record.receipt.as_ref().map(|r| {
        let note = roster.note(receipt_signer, &r.signer);
        api::receipt_view(
            r,
            note.map(|_| (&r.signer, receipt_signer)),
            note.filter(|n| *n != comity_protocol::bloc::KeyNote::Current)
                .map(|n| n.to_string()),
        )
    });
    CaseDetail {
        summary: summary(state, record, state.cases.now()),
        message_id: record.genesis_message,
        // Content only where a purpose was stated and the read recorded (GET of one case).
        request: None,
        delivery: (&record.delivery).into(),
        // Decision texts are content too: only on a read that stated its purpose.
        decision: None,
        approval: record.approval.clone(),
        disclosure_approval: record.disclosure_approval.clone(),
        overrides: record.log.overrides,
        request_version: record.log.request_version.max(1),
        scope_accepted_at: record.log.scope_accepted_at,
        amendments: Vec::new(),
        pending_amendment: record
            .pending_amendment
            .as_ref()
            .map(|a| api::AmendmentView {
                version: record.log.request_version.max(1) + 1,
                at: a.drafted_at,
                drafted_by: a.drafted_by.clone(),
                approved_by: None,
                changes: Vec::new(),
            }),
        override_request: record.override_request.as_ref().map(|o| api::OverrideView {
            requested_by: o.requested_by.clone(),
            requested_at: o.requested_at,
            reason: None,
        }),
        receipt,
        signed_receipt: record.receipt.clone(),
        manifest_root: record.log.manifest_root,
        evidence_received_at: record.log.evidence_received_at,
    }
}

/// `POST /v1/cases/{id}/retry`: the case's messages its member never acknowledged in time are
/// sent again (an officer of either side).
#[utoipa::path(
    post,
    path = "/cases/{id}/retry",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    responses((status = 200, description = "The case's given-up messages are sent again", body = CaseDetail), Errors)
)]
pub(super) async fn retry(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Reply<CaseDetail> {
    allow(&officer, &[Role::Requester, Role::Reviewer])?;
    let id = parse_case(&id)?;
    let n = state.cases.retry_given_up(id).await?;
    if n == 0 {
        return Err(failure(
            StatusCode::CONFLICT,
            "nothing-to-retry",
            format!("case {id} has no message its member failed to acknowledge in time"),
        ));
    }
    info!(officer = %officer.name, case = %id, messages = n, "given-up messages sent again");
    let record = state.cases.get(&id)?.ok_or(CaseError::NotFound(id))?;
    Ok(Json(detail(&state, &record)))
}
