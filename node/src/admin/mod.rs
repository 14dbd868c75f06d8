//! The admin API: HTTP + JSON for officers and operators, bearer-token authenticated.
//!
//! Listens on loopback unless configured otherwise. Every error is JSON with a code and a
//! reason. Handlers stay thin: they translate between HTTP and the case service.

pub mod api;
pub mod tokens;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use comity_protocol::CaseId;
use tracing::{info, warn};

use crate::cases::record::{CaseRecord, Role};
use crate::cases::{CaseError, Cases};
use crate::network;
use crate::store::Store;
use api::{ApiError, CaseDetail, CaseSummary, NewRequest, PeerView, SendCase, StatusView};

/// Longest an officer may ask to wait for a receipt in one call.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct AdminState {
    pub cases: Cases,
    pub store: Store,
    pub network: network::Client,
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
            CaseError::NotDraft { .. } => failure(StatusCode::CONFLICT, "conflict", e.to_string()),
            CaseError::Store(_) | CaseError::Corrupt(_) | CaseError::Encode(_) => {
                failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
            }
        }
    }
}

type Reply<T> = Result<Json<T>, Failure>;

pub fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route("/status", get(status))
        .route("/peers", get(peers))
        .route("/requests", post(create_request))
        .route("/cases", get(list_cases))
        .route("/inbox", get(inbox))
        .route("/cases/{id}", get(show_case))
        .route("/cases/{id}/send", post(send_case))
        .method_not_allowed_fallback(|| async {
            failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this endpoint does not take that method; see docs/architecture.md",
            )
        })
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
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
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind the admin API on {addr}: {e}"),
        )
    })?;
    if !addr.ip().is_loopback() {
        warn!(%addr, "admin API is listening beyond loopback; put TLS in front of it");
    }
    info!(%addr, "admin API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
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
    match tokens::authenticate(&state.store, token) {
        Ok(Some(_officer)) => next.run(request).await,
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
    Ok(Json(StatusView {
        jurisdiction: state.cases.jurisdiction().clone(),
        bloc: roster.bloc().to_owned(),
        peer_id: net.peer_id.clone(),
        listen_addrs: net.listen_addrs.clone(),
        members: peer_views(&state, &net),
        outbox_depth: state.cases.outbox_depth()?,
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
    state
        .cases
        .roster()
        .members()
        .iter()
        .filter(|m| m.peer_id.to_string() != net.peer_id)
        .map(|m| PeerView {
            jurisdiction: m.jurisdiction.clone(),
            name: m.name.clone(),
            peer_id: m.peer_id.to_string(),
            connected: net.connected.contains(&m.peer_id.to_string()),
            addresses: m.addresses.iter().map(|a| a.to_string()).collect(),
        })
        .collect()
}

async fn peers(State(state): State<AdminState>) -> Reply<Vec<PeerView>> {
    let net = network_status(&state).await?;
    Ok(Json(peer_views(&state, &net)))
}

fn wait(ms: Option<u64>) -> Option<Duration> {
    ms.map(|ms| Duration::from_millis(ms).min(MAX_WAIT))
}

async fn create_request(
    State(state): State<AdminState>,
    body: Result<Json<NewRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CaseDetail>), Failure> {
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    let record = if body.send {
        state
            .cases
            .create_and_send(body.request, wait(body.wait_ms))
            .await?
    } else {
        state.cases.create_draft(body.request).await?
    };
    Ok((StatusCode::CREATED, Json(detail(&state, &record))))
}

async fn send_case(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Result<Json<SendCase>, axum::extract::rejection::JsonRejection>,
) -> Reply<CaseDetail> {
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

async fn list_cases(State(state): State<AdminState>) -> Reply<Vec<CaseSummary>> {
    Ok(Json(
        state.cases.list()?.iter().map(CaseSummary::of).collect(),
    ))
}

async fn inbox(State(state): State<AdminState>) -> Reply<Vec<CaseSummary>> {
    Ok(Json(
        state
            .cases
            .list()?
            .iter()
            .filter(|c| c.role == Role::Executing)
            .map(CaseSummary::of)
            .collect(),
    ))
}

async fn show_case(State(state): State<AdminState>, Path(id): Path<String>) -> Reply<CaseDetail> {
    let id = parse_case(&id)?;
    let record = state.cases.get(&id)?.ok_or(CaseError::NotFound(id))?;
    Ok(Json(detail(&state, &record)))
}

fn parse_case(id: &str) -> Result<CaseId, Failure> {
    id.parse().map_err(|_| {
        failure(
            StatusCode::BAD_REQUEST,
            "bad-case-id",
            format!("{id:?} is not a case id (26 characters, as `comity case list` shows)"),
        )
    })
}

fn detail(state: &AdminState, record: &CaseRecord) -> CaseDetail {
    let roster = state.cases.roster();
    let executing = match record.role {
        Role::Requester => &record.counterparty,
        Role::Executing => state.cases.jurisdiction(),
    };
    let requesting = &record.request.requesting;
    let request_signature_valid = record.envelope.as_ref().map(|env| {
        roster
            .by_jurisdiction(requesting)
            .and_then(|(_, key)| key.verifying_key().ok())
            .is_some_and(|k| env.open::<comity_protocol::RequestMessage>(&k).is_ok())
    });
    let receipt = record
        .receipt
        .as_ref()
        .map(|r| api::receipt_view(r, roster.by_jurisdiction(executing).map(|(_, key)| key)));
    CaseDetail {
        summary: CaseSummary::of(record),
        message_id: record.message_id,
        request: record.request.clone(),
        delivery: record.delivery.clone(),
        request_signature_valid,
        receipt,
        signed_request: record.envelope.clone(),
        signed_receipt: record.receipt.clone(),
    }
}
