//! Evidence endpoints: announcing and uploading a package (the executing side's reviewer),
//! its transfer status (any reader), and opening a received package (an officer who may read
//! content, with a stated purpose that is logged before any byte is returned).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::{Extension, Json};
use futures::StreamExt;

use super::api::{EvidenceUpload, FulfilledView, NewEvidence, PurposeQuery};
use super::cases::{detail, parse_case, record_access, stated_purpose};
use super::officers::{Officer, Role};
use super::{AdminState, CONTENT_READERS, Failure, READERS, Reply, allow, failure, faults_enabled};
use crate::evidence::{EvidenceError, EvidenceFaults, EvidenceStatus, PackageIndex};

impl From<EvidenceError> for Failure {
    fn from(e: EvidenceError) -> Self {
        match e {
            EvidenceError::NotFound(_) => {
                failure(StatusCode::NOT_FOUND, "not-found", e.to_string())
            }
            EvidenceError::Refused(_) => failure(StatusCode::CONFLICT, "conflict", e.to_string()),
            EvidenceError::TooLarge(_) => {
                failure(StatusCode::PAYLOAD_TOO_LARGE, "too-large", e.to_string())
            }
            EvidenceError::Incomplete { .. } => {
                failure(StatusCode::CONFLICT, "incomplete", e.to_string())
            }
            EvidenceError::Damaged(_) => {
                failure(StatusCode::UNPROCESSABLE_ENTITY, "damaged", e.to_string())
            }
            EvidenceError::Case(e) => e.into(),
            EvidenceError::Vault(e) => crate::cases::CaseError::Vault(e).into(),
            EvidenceError::Io(_) | EvidenceError::Store(_) => {
                failure(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string())
            }
        }
    }
}

/// `POST /v1/cases/{id}/evidence`: announces a package; everything refusable is refused here.
pub(super) async fn announce(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Result<Json<NewEvidence>, axum::extract::rejection::JsonRejection>,
) -> Reply<EvidenceUpload> {
    allow(&officer, &[Role::Reviewer])?;
    let id = parse_case(&id)?;
    let Json(body) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    let ticket = state
        .evidence
        .begin_upload(id, body.files, body.note, &officer.name)?;
    Ok(Json(ticket))
}

/// `PUT /v1/evidence/uploads/{upload}`: the announced files' bytes, back to back.
pub(super) async fn upload(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(upload): Path<String>,
    body: Body,
) -> Reply<FulfilledView> {
    allow(&officer, &[Role::Reviewer])?;
    let done = state
        .evidence
        .upload(&upload, &officer.name, body.into_data_stream())
        .await?;
    Ok(Json(FulfilledView {
        case: detail(&state, &done.case),
        root: done.record.root,
        total_bytes: done.record.total_bytes,
        sealed_bytes: done.record.sealed_bytes,
        chunks: done.record.chunks,
        seal_ms: done.record.transfer_ms.unwrap_or_default(),
    }))
}

/// `GET /v1/cases/{id}/evidence/status`: progress, without content.
pub(super) async fn status(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Reply<EvidenceStatus> {
    allow(&officer, READERS)?;
    let id = parse_case(&id)?;
    Ok(Json(state.evidence.status(&id)?))
}

/// `GET /v1/cases/{id}/evidence?purpose=…`: the file table of a received package.
pub(super) async fn index(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Query(query): Query<PurposeQuery>,
) -> Reply<PackageIndex> {
    allow(&officer, CONTENT_READERS)?;
    let id = parse_case(&id)?;
    let purpose = stated_purpose(&query)?;
    // Refuse an incomplete or damaged package before logging a read that cannot happen.
    let index = state.evidence.index(&id)?;
    record_access(&state, &officer, id, "evidence", purpose).await?;
    Ok(Json(index))
}

/// `GET /v1/cases/{id}/evidence/files/{n}?purpose=…`: one file's bytes, opened as they go.
pub(super) async fn file(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path((id, n)): Path<(String, usize)>,
    Query(query): Query<PurposeQuery>,
) -> Result<Response, Failure> {
    allow(&officer, CONTENT_READERS)?;
    let id = parse_case(&id)?;
    let purpose = stated_purpose(&query)?;
    let stream = state.evidence.open_file(&id, n)?;
    record_access(&state, &officer, id, &format!("evidence-file-{n}"), purpose).await?;
    let size = stream.entry.size;
    let pieces = futures::stream::unfold(stream.pieces, |mut rx| async move {
        rx.recv().await.map(|piece| {
            (
                piece.map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidData, why)),
                rx,
            )
        })
    })
    .boxed();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, size)
        .body(Body::from_stream(pieces))
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// Testnets only: makes the sending side serve damaged chunks or manifests, or slowly.
pub(super) async fn faults(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    body: Result<Json<EvidenceFaults>, axum::extract::rejection::JsonRejection>,
) -> Reply<EvidenceFaults> {
    allow(&officer, &[Role::Admin])?;
    faults_enabled(&state)?;
    let Json(faults) =
        body.map_err(|e| failure(StatusCode::BAD_REQUEST, "bad-json", e.body_text()))?;
    state.evidence.set_faults(faults.clone());
    Ok(Json(faults))
}
