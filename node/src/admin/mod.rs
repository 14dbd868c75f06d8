//! The admin API: HTTP + JSON for officers and operators, bearer-token authenticated.
//!
//! Listens on loopback unless configured otherwise. Every error is JSON with a code and a
//! reason. Handlers stay thin: they translate between HTTP and the case service.

pub mod access;
pub mod api;
mod bloc;
mod cases;
mod client;
mod evidence;
mod export;
pub mod health;
pub mod metrics;
pub mod officers;
pub mod openapi;
pub mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use tracing::{info, warn};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cases::{CaseError, Cases};
use crate::network;
use crate::store::Store;
use api::{AccessQuery, ApiError, FaultRequest, NewOfficer, PeerView, StatusView};
use officers::{Officer, Role};
use openapi::Errors;

/// Roles that may list cases (no content).
const READERS: &[Role] = &[
    Role::Requester,
    Role::Approver,
    Role::Reviewer,
    Role::Auditor,
    Role::Oversight,
];
/// Roles that may read a case's content (with a stated purpose). Auditors and oversight may
/// not.
const CONTENT_READERS: &[Role] = &[Role::Requester, Role::Approver, Role::Reviewer];

/// Longest an officer may ask to wait for a receipt in one call.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct AdminState {
    pub cases: Cases,
    pub evidence: crate::evidence::Evidence,
    pub store: Store,
    pub network: network::Client,
    /// Whether `POST /v1/faults` is served (testnets only).
    pub faults: bool,
    /// The last store probe of `/ready`, reused for a second.
    pub ready_probe: health::ReadyProbe,
}

#[derive(Debug)]
pub struct Failure(StatusCode, ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn failure(status: StatusCode, error: &str, reason: impl Into<String>) -> Failure {
    Failure(
        status,
        ApiError {
            error: error.into(),
            reason: reason.into(),
            problems: vec![],
        },
    )
}

impl From<CaseError> for Failure {
    fn from(e: CaseError) -> Self {
        match e {
            CaseError::Invalid(problems) => Failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                ApiError {
                    error: "invalid-request".into(),
                    reason: format!(
                        "the request has {} problem(s); fix them and submit again",
                        problems.0.len()
                    ),
                    problems: problems.0,
                },
            ),
            CaseError::NotFound(_) => failure(StatusCode::NOT_FOUND, "not-found", e.to_string()),
            CaseError::UnknownMember { .. } => failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-member",
                e.to_string(),
            ),
            CaseError::NotDraft { .. } | CaseError::Refused(_) => {
                failure(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            CaseError::Store(_)
            | CaseError::Corrupt(_)
            | CaseError::Encode(_)
            | CaseError::Log(_) => failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()),
            CaseError::Vault(crate::vault::VaultError::Shredded(_)) => {
                failure(StatusCode::GONE, "purged", e.to_string())
            }
            CaseError::Vault(_) => failure(StatusCode::SERVICE_UNAVAILABLE, "vault", e.to_string()),
        }
    }
}

type Reply<T> = Result<Json<T>, Failure>;

/// Every endpoint of `/v1`, each registered with its OpenAPI description (`routes!` takes
/// only handlers that carry one): the router and `openapi::document` come from this one list.
fn v1_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(peers))
        .routes(routes!(cases::create_request))
        .routes(routes!(cases::list_cases))
        .routes(routes!(cases::inbox))
        .routes(routes!(cases::show_case))
        .routes(routes!(cases::send_case))
        .routes(routes!(cases::case_log))
        .routes(routes!(export::export))
        .routes(routes!(cases::act))
        .routes(routes!(cases::approve))
        .routes(routes!(cases::amend))
        .routes(routes!(cases::cancel_amendment))
        .routes(routes!(cases::cancel_override))
        .routes(routes!(cases::request_override))
        .routes(routes!(cases::approve_override))
        .routes(routes!(cases::retry))
        .routes(routes!(cases::precheck))
        .routes(routes!(evidence::announce, evidence::index))
        .routes(routes!(evidence::status))
        .routes(routes!(evidence::file))
        .routes({
            // Evidence files may be large: their upload is streamed, without a body limit.
            let (schemas, paths, method) = routes!(evidence::upload);
            (
                schemas,
                paths,
                method.layer(axum::extract::DefaultBodyLimit::disable()),
            )
        })
        .routes(routes!(evidence::faults))
        .routes(routes!(fault))
        .routes(routes!(advance_clock))
        .routes(routes!(refusals))
        .routes(routes!(opmon))
        .routes(routes!(backup_checkpoint))
        .routes(routes!(equivocations))
        .routes(routes!(access_log))
        .routes(routes!(transparency))
        .routes(routes!(bloc_reports))
        .routes(routes!(list_officers, add_officer))
        .routes(routes!(revoke_officer))
        .routes(routes!(approve_officer))
        .routes(routes!(pending_officers))
        .routes(routes!(audit_entries))
        .routes(routes!(policy_history))
        .routes(routes!(bloc::status))
        .routes(routes!(bloc::history))
        .routes(routes!(bloc::version))
        .routes(routes!(bloc::proposals, bloc::propose))
        .routes(routes!(bloc::sign))
        .routes(routes!(bloc::import))
}

/// The whole API with its description; `/v1` behind the token check when `state` is given
/// (the description alone needs no state).
fn api(state: Option<AdminState>) -> OpenApiRouter<AdminState> {
    let mut v1 = v1_routes();
    if let Some(state) = state {
        v1 = v1.route_layer(middleware::from_fn_with_state(state, authenticate));
    }
    // Added after the token check: the description is public.
    let v1 = v1.routes(routes!(openapi::served));
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(health::alive))
        .routes(routes!(health::ready))
        .nest(api::API_PREFIX, v1)
}

pub fn router(state: AdminState) -> Router {
    let (router, _) = api(Some(state.clone())).split_for_parts();
    router
        .method_not_allowed_fallback(|| async {
            failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this endpoint does not take that method; see /v1/openapi.json",
            )
        })
        .fallback(|| async {
            failure(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such endpoint; see /v1/openapi.json",
            )
        })
        .with_state(state)
}

/// Serves the admin API until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(problem) = tls::exposure_problem(addr, tls.is_some()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            problem,
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind the admin API on {addr}: {e}"),
        )
    })?;
    let router = router(state);
    match tls {
        Some(config) => {
            info!(%addr, "admin API listening (https)");
            let listener = tls::TlsListener::new(listener, config)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            info!(%addr, "admin API listening");
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

async fn authenticate(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return failure(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing bearer token: pass --token-file or set COMITY_TOKEN",
        )
        .into_response();
    };
    match officers::authenticate(&state.store, token) {
        Ok(Some(officer)) => {
            // Every call is attributed; paths hold identifiers only, never content.
            info!(officer = %officer.name, role = %officer.role, method = %request.method(), path = %request.uri().path(), "admin call");
            let mut request = request;
            request.extensions_mut().insert(officer);
            next.run(request).await
        }
        Ok(None) => {
            warn!(path = %request.uri().path(), "admin call with an unknown token refused");
            failure(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown or revoked token",
            )
            .into_response()
        }
        Err(e) => failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()).into_response(),
    }
}

/// This node: jurisdiction, PeerId, addresses, members, outbox, audit witnesses, bloc configuration, store and alerts.
#[utoipa::path(
    get,
    path = "/status",
    tag = "node",
    responses((status = 200, description = "This node: its jurisdiction, members, outbox, audit witnesses, bloc configuration and alerts", body = StatusView), Errors)
)]
async fn status(State(state): State<AdminState>) -> Reply<StatusView> {
    let net = network_status(&state).await?;
    let roster = state.cases.roster();
    let bloc = state.cases.governance().status().await;
    let mut bloc_alerts = bloc.forks.clone();
    if bloc.expired {
        bloc_alerts.push(
            "the bloc configuration has expired: no new request can start until the members renew it (`comity bloc propose --renew`)".into(),
        );
    } else if bloc.expiring_soon {
        bloc_alerts.push(format!(
            "the bloc configuration expires in {} day(s): renew it with `comity bloc propose --renew`",
            bloc.days_left.unwrap_or_default()
        ));
    }
    Ok(Json(StatusView {
        store_writable: health::store_writable(&state).await,
        policy_mode: if state.cases.policy().is_some() {
            "policy"
        } else {
            "manual-review"
        }
        .into(),
        policy_agreements: state.cases.policy().map_or(0, |p| p.agreements.len()),
        expired_agreements: state
            .cases
            .policy()
            .map(|p| p.expired(state.cases.now()).into_iter().collect())
            .unwrap_or_default(),
        bloc_version: bloc.version.unwrap_or_default(),
        bloc_hash: bloc.hash,
        bloc_expires_at: bloc.expires_at,
        bloc_alerts,
        clock_alerts: state.cases.clock_alerts(),
        jurisdiction: state.cases.jurisdiction().clone(),
        bloc: roster.bloc().to_owned(),
        peer_id: net.peer_id.clone(),
        listen_addrs: net.listen_addrs.clone(),
        members: peer_views(&state, &net),
        outbox_depth: state.cases.outbox_depth()?,
        witnessed: crate::audit::witness::witnessed(&state.store),
        cosigned_by: crate::audit::witness::cosigned_by(&state.store),
        audit_alerts: crate::audit::witness::evidence(&state.store)
            .into_iter()
            .map(|e| format!("{} at {}: {}", e.member, e.at, e.reason))
            .collect(),
        equivocations: state
            .cases
            .equivocations()
            .unwrap_or_default()
            .into_iter()
            .map(|e| api::EquivocationView::from(e).describe())
            .collect(),
        sealing_key: Some(state.evidence.sealing_key().to_string()),
        sealing_key_in_roster: roster
            .by_jurisdiction(state.cases.jurisdiction())
            .and_then(|(m, _)| m.sealing_key)
            == Some(state.evidence.sealing_key()),
    }))
}

async fn network_status(state: &AdminState) -> Result<network::NetworkStatus, Failure> {
    state.network.status().await.ok_or_else(|| {
        failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the node is shutting down",
        )
    })
}

fn peer_views(state: &AdminState, net: &network::NetworkStatus) -> Vec<PeerView> {
    let lag = state.cases.outbox_by_member().unwrap_or_default();
    let governance = state.cases.governance();
    let roster = state.cases.roster();
    let ours = (roster.version(), roster.hash());
    roster
        .members()
        .iter()
        .filter(|m| m.peer_id.to_string() != net.peer_id)
        .map(|m| {
            let lag = lag.get(&m.jurisdiction).copied().unwrap_or_default();
            let (pending_pushes, pending_events) = (lag.pushes, lag.events);
            let head = governance.peer_head(&m.jurisdiction);
            let bloc_agreement = head.as_ref().map(|h| {
                match (h.version.cmp(&ours.0), Some(h.hash) == ours.1) {
                    (std::cmp::Ordering::Equal, true) => "same",
                    (std::cmp::Ordering::Less, _) => "behind",
                    (std::cmp::Ordering::Greater, _) => "ahead",
                    (std::cmp::Ordering::Equal, false) => "DIFFERS",
                }
                .to_owned()
            });
            let (requests_in_hand, request_share, requests_turned_away) =
                state.cases.budget_usage(&m.peer_id);
            let over = net
                .turned_away
                .iter()
                .find(|(p, _)| *p == m.peer_id.to_string())
                .map(|(_, over)| *over)
                .unwrap_or_default();
            let rate_budget = Some(api::RateUsage {
                exchange_per_s: net.rates.exchange,
                evidence_per_s: net.rates.evidence,
                gossip_per_s: net.rates.gossip,
                exchange_over: over[0],
                evidence_over: over[1],
                gossip_over: over[2],
            });
            PeerView {
                rate_budget,
                requests_in_hand,
                request_share,
                requests_turned_away,
                bloc_version: head.map(|h| h.version),
                bloc_agreement,
                jurisdiction: m.jurisdiction.clone(),
                name: m.name.clone(),
                peer_id: m.peer_id.to_string(),
                connected: net.connected.contains(&m.peer_id.to_string()),
                addresses: m.addresses.iter().map(|a| a.to_string()).collect(),
                pending_pushes,
                pending_events,
                clock_offset_ms: state
                    .cases
                    .clock_offset(&m.jurisdiction)
                    .map(|s| s.offset_ms),
            }
        })
        .collect()
}

/// The bloc's members: connected or not, replication lag, configuration agreement and budgets.
#[utoipa::path(
    get,
    path = "/peers",
    tag = "node",
    responses((status = 200, description = "Each member: connected or not, replication lag, budgets", body = Vec<PeerView>), Errors)
)]
async fn peers(State(state): State<AdminState>) -> Reply<Vec<PeerView>> {
    let net = network_status(&state).await?;
    Ok(Json(peer_views(&state, &net)))
}

/// Members that signed two different events as the same number, with both events kept as evidence (auditors).
#[utoipa::path(
    get,
    path = "/equivocations",
    tag = "audit",
    responses((status = 200, description = "Members that signed two different events as one number (auditors)", body = Vec<api::EquivocationView>), Errors)
)]
async fn equivocations(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Vec<api::EquivocationView>> {
    allow(&officer, &[Role::Auditor, Role::Oversight])?;
    Ok(Json(
        state
            .cases
            .equivocations()?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// A checkpoint of the store the running node took for `comity backup`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// Where it is on the node's host: a directory beside the store (`store.backup-…`), on
    /// the same file system and inside the node's data directory, which is all a sandboxed
    /// node may write. `comity backup` copies it into the backup, then removes it.
    #[schema(value_type = String)]
    pub dir: std::path::PathBuf,
}

/// A consistent copy of the store, taken while the node runs (admins): RocksDB hard-links
/// the table files and copies the rest into a new directory beside the store.
#[utoipa::path(
    post,
    path = "/backup/checkpoint",
    tag = "operations",
    responses((status = 200, description = "The checkpoint was written (admins)", body = Checkpoint), Errors)
)]
async fn backup_checkpoint(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Checkpoint> {
    allow(&officer, &[Role::Admin])?;
    let store = state.store.clone();
    let name = format!(
        "store.backup-{}-{:08x}",
        comity_protocol::Timestamp::now().as_millis(),
        rand::random::<u32>()
    );
    let dir = store.path().with_file_name(name);
    let taken = dir.clone();
    tokio::task::spawn_blocking(move || store.checkpoint_to(&taken))
        .await
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()))?;
    info!(officer = %officer.name, dir = %dir.display(), "store checkpoint taken for a backup");
    Ok(Json(Checkpoint { dir }))
}

/// The record of every exchange (operational monitoring): no content, so auditors and the
/// node's administrators may read it.
#[utoipa::path(
    get,
    path = "/opmon",
    tag = "operations",
    params(crate::opmon::Query),
    responses((status = 200, description = "Exchange records, oldest first (auditors, admins)", body = Vec<crate::opmon::Record>), Errors)
)]
async fn opmon(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(query): Query<crate::opmon::Query>,
) -> Reply<Vec<crate::opmon::Record>> {
    allow(&officer, &[Role::Auditor, Role::Oversight, Role::Admin])?;
    let store = state.store.clone();
    let records = tokio::task::spawn_blocking(move || crate::opmon::list(&store, &query))
        .await
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()))?;
    Ok(Json(records))
}

/// Messages and events refused from members, per member and code, with the reason (auditors).
#[utoipa::path(
    get,
    path = "/refusals",
    tag = "audit",
    responses((status = 200, description = "Messages refused from members, with the reason (auditors)", body = Vec<api::RefusalView>), Errors)
)]
async fn refusals(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Vec<api::RefusalView>> {
    allow(&officer, &[Role::Auditor, Role::Oversight])?;
    Ok(Json(
        state
            .cases
            .refusals()?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Testnets only: moves the node's clock forward, to reach deadlines and retention
/// (`{"advance_secs": N}`), or either way, as a machine whose clock is off
/// (`{"skew_secs": ±N}`).
#[utoipa::path(
    post,
    path = "/faults/clock",
    tag = "testnet",
    request_body = Object,
    responses((status = 200, description = "The clock moved (testnets with [testing] faults, admins)", body = Object), Errors)
)]
async fn advance_clock(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Json(body): Json<serde_json::Value>,
) -> Reply<serde_json::Value> {
    allow(&officer, &[Role::Admin])?;
    faults_enabled(&state)?;
    if let Some(skew) = body["skew_secs"].as_i64() {
        state.cases.shift_clock(skew.saturating_mul(1000));
        warn!(skew_secs = skew, "fault injection: clock skewed");
        return Ok(Json(serde_json::json!({ "now": state.cases.now() })));
    }
    let secs = body["advance_secs"].as_u64().ok_or_else(|| {
        failure(
            StatusCode::BAD_REQUEST,
            "bad-json",
            "give {\"advance_secs\": N} (forward) or {\"skew_secs\": ±N} (either way)",
        )
    })?;
    state
        .cases
        .advance_clock(std::time::Duration::from_secs(secs));
    warn!(secs, "fault injection: clock advanced");
    Ok(Json(serde_json::json!({ "now": state.cases.now() })))
}

/// Cuts, slows or damages the link to a member (testnets with `[testing] faults`; admins).
#[utoipa::path(
    post,
    path = "/faults",
    tag = "testnet",
    request_body = FaultRequest,
    responses((status = 200, description = "The link fault is in force (testnets with [testing] faults, admins)", body = Object), Errors)
)]
async fn fault(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    body: Result<Json<FaultRequest>, axum::extract::rejection::JsonRejection>,
) -> Reply<serde_json::Value> {
    allow(&officer, &[Role::Admin])?;
    faults_enabled(&state)?;
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    let roster = state.cases.roster();
    let Some((member, _)) = roster.by_jurisdiction(&body.member) else {
        return Err(failure(
            StatusCode::NOT_FOUND,
            "unknown-member",
            format!(
                "{} is not an admitted member of the bloc (see `comity bloc status`)",
                body.member
            ),
        ));
    };
    state
        .network
        .set_link(member.peer_id, body.link.clone())
        .await;
    Ok(Json(
        serde_json::json!({"member": body.member, "link": body.link}),
    ))
}

/// Aggregate statistics of a period, without personal data (auditors).
#[utoipa::path(
    get,
    path = "/reports/transparency",
    tag = "reports",
    params(api::ReportQuery),
    responses((status = 200, description = "This node's transparency report for a period (auditors)", body = crate::report::Report), Errors)
)]
async fn transparency(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(query): Query<api::ReportQuery>,
) -> Reply<crate::report::Report> {
    allow(&officer, &[Role::Auditor, Role::Oversight])?;
    let period = match &query.period {
        Some(p) => Some(
            p.parse::<crate::report::Period>()
                .map_err(|e| failure(StatusCode::BAD_REQUEST, "period", e))?,
        ),
        None => None,
    };
    Ok(Json(crate::report::of_cases(
        &state.cases,
        period.as_ref(),
    )?))
}

/// The signed transparency reports the bloc's members published for a period (ours included),
/// one per member, each verified against the roster when it arrived (auditors).
#[utoipa::path(
    get,
    path = "/reports/bloc",
    tag = "reports",
    params(api::ReportQuery),
    responses((status = 200, description = "The members' published reports for a period (auditors)", body = Vec<crate::report::Report>), Errors)
)]
async fn bloc_reports(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(query): Query<api::ReportQuery>,
) -> Reply<Vec<crate::report::Report>> {
    allow(&officer, &[Role::Auditor, Role::Oversight])?;
    let Some(period) = &query.period else {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "period",
            "say which period: ?period=2026, 2026-Q3 or 2026-11 (members publish the current month, quarter and year)",
        ));
    };
    let period = period
        .parse::<crate::report::Period>()
        .map_err(|e| failure(StatusCode::BAD_REQUEST, "period", e))?;
    Ok(Json(crate::report::collected(&state.store, &period.name)))
}

/// Every read of case content: officer, time, case, stated purpose (auditors).
#[utoipa::path(
    get,
    path = "/access-log",
    tag = "audit",
    params(AccessQuery),
    responses((status = 200, description = "Every read of case content (auditors)", body = Vec<access::AccessRecord>), Errors)
)]
async fn access_log(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(query): Query<AccessQuery>,
) -> Reply<Vec<access::AccessRecord>> {
    allow(&officer, &[Role::Auditor, Role::Oversight])?;
    let case = match &query.case {
        Some(id) => Some(cases::parse_case(id)?),
        None => None,
    };
    Ok(Json(access::list(&state.store, case).map_err(|e| {
        failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
    })?))
}

/// Fault injection is served on testnets only.
fn faults_enabled(state: &AdminState) -> Result<(), Failure> {
    if state.faults {
        return Ok(());
    }
    Err(failure(
        StatusCode::FORBIDDEN,
        "faults-disabled",
        "fault injection is off; it is for testnets only ([testing] faults = true)",
    ))
}

/// 403 unless `officer` holds one of `roles`; the error names them.
fn allow(officer: &Officer, roles: &[Role]) -> Result<(), Failure> {
    officer.require(roles).map_err(|needed| {
        let needed: Vec<String> = needed.iter().map(|r| format!("`{r}`")).collect();
        warn!(officer = %officer.name, role = %officer.role, "admin call refused: role");
        failure(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs the role {} (officer {} is `{}`)",
                needed.join(" or "),
                officer.name,
                officer.role
            ),
        )
    })
}

/// The versions of this node's policy, oldest first, each with what changed (admins, auditors, oversight, reviewers).
#[utoipa::path(
    get,
    path = "/policy/history",
    tag = "policy",
    responses((status = 200, description = "Every version of the policy the node started with, and what changed, rule by rule", body = Vec<crate::audit::PolicyVersion>), Errors)
)]
async fn policy_history(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Vec<crate::audit::PolicyVersion>> {
    allow(&officer, &[Role::Auditor, Role::Oversight, Role::Reviewer])?;
    let versions = crate::audit::policy_versions(&state.store)
        .map_err(|e| failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()))?;
    Ok(Json(versions))
}

/// A page of the audit log: every case event, access, officer change, approval, override and refusal, as identifiers only (auditors, oversight).
#[utoipa::path(
    get,
    path = "/audit/entries",
    tag = "audit",
    params(api::AuditQuery),
    responses((status = 200, description = "Entries of the audit log, oldest first, with their indices", body = Vec<api::AuditEntryView>), Errors)
)]
async fn audit_entries(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(query): Query<api::AuditQuery>,
) -> Reply<Vec<api::AuditEntryView>> {
    allow(&officer, &[Role::Auditor, Role::Oversight])?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "limit",
            format!("limit={limit}: ask for 1 to 1000 entries at a time, and page with from="),
        ));
    }
    let entries = crate::audit::entries(&state.store, query.from, limit)
        .map_err(|e| failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()))?;
    Ok(Json(
        entries
            .into_iter()
            .map(|(index, entry)| api::AuditEntryView { index, entry })
            .collect(),
    ))
}

/// The officers, their roles, who appointed and revoked them (admins, auditors, oversight).
#[utoipa::path(
    get,
    path = "/officers",
    tag = "officers",
    responses((status = 200, description = "The officers, their roles and who appointed them (admins, auditors, oversight)", body = Vec<Officer>), Errors)
)]
async fn list_officers(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Vec<Officer>> {
    allow(&officer, &[Role::Admin, Role::Auditor, Role::Oversight])?;
    Ok(Json(officers::list(&state.store).map_err(officer_failure)?))
}

/// Appointments and revocations waiting for a second admin (admins, auditors, oversight).
#[utoipa::path(
    get,
    path = "/officers/pending",
    tag = "officers",
    responses((status = 200, description = "Changes waiting for a second admin", body = Vec<officers::PendingChange>), Errors)
)]
async fn pending_officers(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Vec<officers::PendingChange>> {
    allow(&officer, &[Role::Admin, Role::Auditor, Role::Oversight])?;
    Ok(Json(
        officers::pending_changes(&state.store).map_err(officer_failure)?,
    ))
}

fn change_status(change: &api::OfficerChange) -> StatusCode {
    match change {
        api::OfficerChange::Added { .. } => StatusCode::CREATED,
        api::OfficerChange::Revoked { .. } => StatusCode::OK,
        api::OfficerChange::Pending { .. } => StatusCode::ACCEPTED,
    }
}

/// Appoints an officer with one role; its token is shown once. Auditors, oversight, governors (and admins, once there are two) are appointed by two admins: one proposes (202), another approves (`/officers/{name}/approve`).
#[utoipa::path(
    post,
    path = "/officers",
    tag = "officers",
    request_body = NewOfficer,
    responses(
        (status = 201, description = "The officer was added; its token is shown once (admins)", body = api::OfficerChange),
        (status = 202, description = "The appointment waits for a second admin's approval", body = api::OfficerChange),
        Errors
    )
)]
async fn add_officer(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    body: Result<Json<NewOfficer>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<api::OfficerChange>), Failure> {
    allow(&officer, &[Role::Admin])?;
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    let change: api::OfficerChange =
        officers::appoint(&state.store, &body.name, body.role, &officer.name)
            .await
            .map_err(officer_failure)?
            .into();
    info!(by = %officer.name, officer = %body.name, role = %body.role, pending = matches!(change, api::OfficerChange::Pending { .. }), "officer appointment");
    Ok((change_status(&change), Json(change)))
}

/// Approves another admin's proposed appointment or revocation (four-eyes; admins).
#[utoipa::path(
    post,
    path = "/officers/{name}/approve",
    tag = "officers",
    params(("name" = String, Path, description = "The officer's name")),
    responses(
        (status = 201, description = "The appointment is approved: the officer is added, its token shown once", body = api::OfficerChange),
        (status = 200, description = "The revocation is approved: the token no longer works", body = api::OfficerChange),
        Errors
    )
)]
async fn approve_officer(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<api::OfficerChange>), Failure> {
    allow(&officer, &[Role::Admin])?;
    let change: api::OfficerChange = officers::approve(&state.store, &name, &officer.name)
        .await
        .map_err(officer_failure)?
        .into();
    info!(by = %officer.name, officer = %name, "officer change approved");
    Ok((change_status(&change), Json(change)))
}

/// Revokes an officer's token; for auditors, oversight, governors (and admins, once there are two), proposes it to a second admin (202).
#[utoipa::path(
    post,
    path = "/officers/{name}/revoke",
    tag = "officers",
    params(("name" = String, Path, description = "The officer's name")),
    responses(
        (status = 200, description = "The officer's token no longer works (admins)", body = api::OfficerChange),
        (status = 202, description = "The revocation waits for a second admin's approval", body = api::OfficerChange),
        Errors
    )
)]
async fn revoke_officer(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<api::OfficerChange>), Failure> {
    allow(&officer, &[Role::Admin])?;
    let change: api::OfficerChange = officers::revoke(&state.store, &name, &officer.name)
        .await
        .map_err(officer_failure)?
        .into();
    info!(by = %officer.name, officer = %name, "officer revocation");
    Ok((change_status(&change), Json(change)))
}

fn officer_failure(e: officers::OfficerError) -> Failure {
    use officers::OfficerError;
    let status = match e {
        OfficerError::Exists(_) => StatusCode::CONFLICT,
        OfficerError::NotFound(_) => StatusCode::NOT_FOUND,
        OfficerError::BadName(_) => StatusCode::UNPROCESSABLE_ENTITY,
        OfficerError::PendingExists { .. }
        | OfficerError::FourEyes(_)
        | OfficerError::ProposerGone(_) => StatusCode::CONFLICT,
        OfficerError::NothingPending(_) => StatusCode::NOT_FOUND,
        OfficerError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    failure(status, "officer", e.to_string())
}
