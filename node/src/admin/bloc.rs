//! The bloc configuration through the admin API: status, history, versions and proposals for
//! anyone with a token; proposing and signing for governors (recorded in the audit log).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::officers::{Officer, Role};
use super::openapi::Errors;
use super::{AdminState, Failure, Reply, allow, failure};
use crate::bloc::{BlocStatus, GovernanceError, ProposalView, ProposeRequest, VersionView};

impl From<GovernanceError> for Failure {
    fn from(e: GovernanceError) -> Self {
        match e {
            GovernanceError::NotFound(m) => failure(StatusCode::NOT_FOUND, "not-found", m),
            GovernanceError::Refused(m) => failure(StatusCode::CONFLICT, "refused", m),
            GovernanceError::Bloc(e) => {
                failure(StatusCode::CONFLICT, "invalid-configuration", e.to_string())
            }
            GovernanceError::Store(e) => {
                failure(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
            }
            GovernanceError::Io(m) => failure(StatusCode::SERVICE_UNAVAILABLE, "io", m),
        }
    }
}

/// The bloc configuration in force: version, hash, expiry, members and forks.
#[utoipa::path(
    get,
    operation_id = "bloc_status",
    path = "/bloc",
    tag = "bloc",
    responses((status = 200, description = "The bloc configuration in force, its expiry and forks", body = BlocStatus), Errors)
)]
pub(super) async fn status(State(state): State<AdminState>) -> Reply<BlocStatus> {
    Ok(Json(state.cases.governance().status().await))
}

/// Every version of the bloc configuration this node holds, oldest first.
#[utoipa::path(
    get,
    operation_id = "bloc_history",
    path = "/bloc/history",
    tag = "bloc",
    responses((status = 200, description = "Every version of the bloc configuration held", body = Vec<VersionView>), Errors)
)]
pub(super) async fn history(State(state): State<AdminState>) -> Reply<Vec<VersionView>> {
    let chain = state.cases.governance().history().await;
    Ok(Json(
        chain
            .iter()
            .enumerate()
            .map(|(i, v)| VersionView::of(v, i.checked_sub(1).map(|p| &chain[p]), false))
            .collect(),
    ))
}

/// One version of the bloc configuration.
#[utoipa::path(
    get,
    operation_id = "bloc_version",
    path = "/bloc/versions/{n}",
    tag = "bloc",
    params(("n" = u64, Path, description = "The version")),
    responses((status = 200, description = "One version of the bloc configuration", body = VersionView), Errors)
)]
pub(super) async fn version(
    State(state): State<AdminState>,
    Path(n): Path<u64>,
) -> Reply<VersionView> {
    let governance = state.cases.governance();
    let v = governance.version(n).await.ok_or_else(|| {
        failure(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("this node holds no version {n} of the bloc configuration"),
        )
    })?;
    let previous = match n.checked_sub(1) {
        Some(p) if p > 0 => governance.version(p).await,
        _ => None,
    };
    Ok(Json(VersionView::of(&v, previous.as_ref(), true)))
}

/// Open proposals for the next version of the bloc configuration, with the signatures gathered.
#[utoipa::path(
    get,
    operation_id = "bloc_proposals",
    path = "/bloc/proposals",
    tag = "bloc",
    responses((status = 200, description = "Open proposals and their signatures", body = Vec<ProposalView>), Errors)
)]
pub(super) async fn proposals(State(state): State<AdminState>) -> Reply<Vec<ProposalView>> {
    Ok(Json(state.cases.governance().proposals().await))
}

/// Proposes the next version of the bloc configuration: members added, updated or removed, a key rotated, a setting changed, a renewal (governors).
#[utoipa::path(
    post,
    operation_id = "bloc_propose",
    path = "/bloc/proposals",
    tag = "bloc",
    request_body = ProposeRequest,
    responses((status = 201, description = "The proposal is made, signed by this member, and announced (governors)", body = ProposalView), Errors)
)]
pub(super) async fn propose(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    body: Result<Json<ProposeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ProposalView>), Failure> {
    allow(&officer, &[Role::Governor])?;
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    let view = state
        .cases
        .governance()
        .propose(&body, &officer.name)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct Import {
    /// The configuration's COSE_Sign bytes, in hex.
    cose: String,
}

/// Takes in a bloc configuration handed over out of band (its COSE_Sign bytes), checked against the trust anchor (governors).
#[utoipa::path(
    post,
    operation_id = "bloc_import",
    path = "/bloc/import",
    tag = "bloc",
    request_body = Import,
    responses((status = 200, description = "The configuration was checked and applied or kept (governors)", body = Object), Errors)
)]
pub(super) async fn import(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    body: Result<Json<Import>, axum::extract::rejection::JsonRejection>,
) -> Reply<serde_json::Value> {
    allow(&officer, &[Role::Governor])?;
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    let bytes = hex::decode(body.cose.trim()).map_err(|_| {
        failure(
            StatusCode::BAD_REQUEST,
            "bad-configuration",
            "`cose` must be the configuration's bytes in hex",
        )
    })?;
    let outcome = state
        .cases
        .governance()
        .import(&bytes, &officer.name)
        .await?;
    Ok(Json(serde_json::json!({ "outcome": outcome })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SignQuery {
    which: String,
}

/// Signs an open proposal as this member (governors); it applies once the threshold has signed.
#[utoipa::path(
    post,
    operation_id = "bloc_sign",
    path = "/bloc/sign",
    tag = "bloc",
    params(SignQuery),
    responses((status = 200, description = "This member signed the proposal (governors)", body = ProposalView), Errors)
)]
pub(super) async fn sign(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    query: Result<Query<SignQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply<ProposalView> {
    allow(&officer, &[Role::Governor])?;
    let Query(query) = query.map_err(|e| {
        failure(
            StatusCode::BAD_REQUEST,
            "bad-query",
            format!(
                "{}: name the proposal, ?which=VERSION or ?which=HASH",
                e.body_text()
            ),
        )
    })?;
    Ok(Json(
        state
            .cases
            .governance()
            .sign(&query.which, &officer.name)
            .await?,
    ))
}
