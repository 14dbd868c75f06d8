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
pub mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use tracing::{info, warn};

use crate::cases::{CaseError, Cases};
use crate::network;
use crate::store::Store;
use api::{AccessQuery, ApiError, FaultRequest, NewOfficer, NewOfficerToken, PeerView, StatusView};
use officers::{Officer, Role};

/// Roles that may list cases (no content).
const READERS: &[Role] = &[
    Role::Requester,
    Role::Approver,
    Role::Reviewer,
    Role::Auditor,
];
/// Roles that may read a case's content (with a stated purpose). Auditors may not.
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

pub fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route("/status", get(status))
        .route("/peers", get(peers))
        .route("/requests", post(cases::create_request))
        .route("/cases", get(cases::list_cases))
        .route("/inbox", get(cases::inbox))
        .route("/cases/{id}", get(cases::show_case))
        .route("/cases/{id}/send", post(cases::send_case))
        .route("/cases/{id}/log", get(cases::case_log))
        .route("/cases/{id}/export", get(export::export))
        .route("/cases/{id}/act", post(cases::act))
        .route("/cases/{id}/approve", post(cases::approve))
        .route("/cases/{id}/retry", post(cases::retry))
        .route("/cases/{id}/precheck", get(cases::precheck))
        .route(
            "/cases/{id}/evidence",
            post(evidence::announce).get(evidence::index),
        )
        .route("/cases/{id}/evidence/status", get(evidence::status))
        .route("/cases/{id}/evidence/files/{n}", get(evidence::file))
        .route(
            "/evidence/uploads/{upload}",
            put(evidence::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/faults/evidence", post(evidence::faults))
        .route("/faults", post(fault))
        .route("/faults/clock", post(advance_clock))
        .route("/refusals", get(refusals))
        .route("/opmon", get(opmon))
        .route("/backup/checkpoint", post(backup_checkpoint))
        .route("/equivocations", get(equivocations))
        .route("/access-log", get(access_log))
        .route("/reports/transparency", get(transparency))
        .route("/reports/bloc", get(bloc_reports))
        .route("/officers", get(list_officers).post(add_officer))
        .route("/officers/{name}/revoke", post(revoke_officer))
        .route("/bloc", get(bloc::status))
        .route("/bloc/history", get(bloc::history))
        .route("/bloc/versions/{n}", get(bloc::version))
        .route("/bloc/proposals", get(bloc::proposals).post(bloc::propose))
        .route("/bloc/sign", post(bloc::sign))
        .route("/bloc/import", post(bloc::import))
        .method_not_allowed_fallback(|| async {
            failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this endpoint does not take that method; see docs/architecture.md",
            )
        })
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/health", get(health::alive))
        .route("/ready", get(health::ready))
        .nest(api::API_PREFIX, v1)
        .fallback(|| async {
            failure(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such endpoint; see docs/architecture.md",
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
        bloc_version: bloc.version.unwrap_or_default(),
        bloc_hash: bloc.hash,
        bloc_expires_at: bloc.expires_at,
        bloc_alerts,
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
            let (pending_pushes, pending_events) =
                lag.get(&m.jurisdiction).copied().unwrap_or_default();
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
            }
        })
        .collect()
}

async fn peers(State(state): State<AdminState>) -> Reply<Vec<PeerView>> {
    let net = network_status(&state).await?;
    Ok(Json(peer_views(&state, &net)))
}

async fn equivocations(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Vec<api::EquivocationView>> {
    allow(&officer, &[Role::Auditor])?;
    Ok(Json(
        state
            .cases
            .equivocations()?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Where the running node writes a checkpoint of its store, for `comity backup`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRequest {
    /// A directory on the node's host that does not exist yet (its parent must).
    pub dir: std::path::PathBuf,
}

/// A consistent copy of the store, taken while the node runs (admins): RocksDB hard-links
/// the table files and copies the rest into `dir`.
async fn backup_checkpoint(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Json(request): Json<CheckpointRequest>,
) -> Reply<CheckpointRequest> {
    allow(&officer, &[Role::Admin])?;
    if !request.dir.is_absolute() || request.dir.exists() {
        return Err(failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            format!(
                "{} must be an absolute path that does not exist yet",
                request.dir.display()
            ),
        ));
    }
    let store = state.store.clone();
    let dir = request.dir.clone();
    tokio::task::spawn_blocking(move || store.checkpoint_to(&dir))
        .await
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()))?;
    info!(officer = %officer.name, "store checkpoint taken for a backup");
    Ok(Json(request))
}

/// The record of every exchange (operational monitoring): no content, so auditors and the
/// node's administrators may read it.
async fn opmon(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(query): Query<crate::opmon::Query>,
) -> Reply<Vec<crate::opmon::Record>> {
    allow(&officer, &[Role::Auditor, Role::Admin])?;
    let store = state.store.clone();
    let records = tokio::task::spawn_blocking(move || crate::opmon::list(&store, &query))
        .await
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()))?;
    Ok(Json(records))
}

async fn refusals(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Vec<api::RefusalView>> {
    allow(&officer, &[Role::Auditor])?;
    Ok(Json(
        state
            .cases
            .refusals()?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Testnets only: moves the node's clock forward, to reach deadlines and retention.
async fn advance_clock(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Json(body): Json<serde_json::Value>,
) -> Reply<serde_json::Value> {
    allow(&officer, &[Role::Admin])?;
    faults_enabled(&state)?;
    let secs = body["advance_secs"].as_u64().ok_or_else(|| {
        failure(
            StatusCode::BAD_REQUEST,
            "bad-json",
            "give {\"advance_secs\": N}",
        )
    })?;
    state
        .cases
        .advance_clock(std::time::Duration::from_secs(secs));
    warn!(secs, "fault injection: clock advanced");
    Ok(Json(serde_json::json!({ "now": state.cases.now() })))
}

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
async fn transparency(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(query): Query<api::ReportQuery>,
) -> Reply<crate::report::Report> {
    allow(&officer, &[Role::Auditor])?;
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
async fn bloc_reports(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(query): Query<api::ReportQuery>,
) -> Reply<Vec<crate::report::Report>> {
    allow(&officer, &[Role::Auditor])?;
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

async fn access_log(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Query(query): Query<AccessQuery>,
) -> Reply<Vec<access::AccessRecord>> {
    allow(&officer, &[Role::Auditor])?;
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

async fn list_officers(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
) -> Reply<Vec<Officer>> {
    allow(&officer, &[Role::Admin])?;
    Ok(Json(officers::list(&state.store).map_err(officer_failure)?))
}

async fn add_officer(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    body: Result<Json<NewOfficer>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<NewOfficerToken>), Failure> {
    allow(&officer, &[Role::Admin])?;
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    let (added, token) = officers::add(&state.store, &body.name, body.role)
        .await
        .map_err(officer_failure)?;
    info!(by = %officer.name, officer = %added.name, role = %added.role, "officer added");
    Ok((
        StatusCode::CREATED,
        Json(NewOfficerToken {
            officer: added,
            token,
        }),
    ))
}

async fn revoke_officer(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Reply<Officer> {
    allow(&officer, &[Role::Admin])?;
    let revoked = officers::revoke(&state.store, &name)
        .await
        .map_err(officer_failure)?;
    info!(by = %officer.name, officer = %revoked.name, "officer revoked");
    Ok(Json(revoked))
}

fn officer_failure(e: officers::OfficerError) -> Failure {
    use officers::OfficerError;
    let status = match e {
        OfficerError::Exists(_) => StatusCode::CONFLICT,
        OfficerError::NotFound(_) => StatusCode::NOT_FOUND,
        OfficerError::BadName(_) => StatusCode::UNPROCESSABLE_ENTITY,
        OfficerError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    failure(status, "officer", e.to_string())
}
