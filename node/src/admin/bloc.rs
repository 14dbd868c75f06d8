//! The bloc configuration through the admin API: status, history, versions and proposals for
//! anyone with a token; proposing and signing for governors (recorded in the audit log).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::officers::{Officer, Role};
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

pub(super) async fn status(State(state): State<AdminState>) -> Reply<BlocStatus> {
    Ok(Json(state.cases.governance().status().await))
}

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

pub(super) async fn proposals(State(state): State<AdminState>) -> Reply<Vec<ProposalView>> {
    Ok(Json(state.cases.governance().proposals().await))
}

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

#[derive(Debug, Deserialize)]
pub(super) struct Import {
    /// The configuration's COSE_Sign bytes, in hex.
    cose: String,
}

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

#[derive(Debug, Deserialize)]
pub(super) struct SignQuery {
    which: String,
}

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
