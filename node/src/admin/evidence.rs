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
use super::openapi::Errors;
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
#[utoipa::path(
    post,
    operation_id = "evidence_announce",
    path = "/cases/{id}/evidence",
    tag = "evidence",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    request_body = NewEvidence,
    responses((status = 200, description = "The package is announced; upload its files next (reviewers)", body = EvidenceUpload), Errors)
)]
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
#[utoipa::path(
    put,
    operation_id = "evidence_upload",
    path = "/evidence/uploads/{upload}",
    tag = "evidence",
    params(("upload" = String, Path, description = "The upload id from the announcement")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The announced files' bytes, back to back"),
    responses((status = 200, description = "The package is sealed and the case fulfilled (reviewers)", body = FulfilledView), Errors)
)]
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
#[utoipa::path(
    get,
    operation_id = "evidence_status",
    path = "/cases/{id}/evidence/status",
    tag = "evidence",
    params(("id" = String, Path, description = "The case id (a ULID)")),
    responses((status = 200, description = "How far the package's transfer is", body = EvidenceStatus), Errors)
)]
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
#[utoipa::path(
    get,
    operation_id = "evidence_index",
    path = "/cases/{id}/evidence",
    tag = "evidence",
    params(("id" = String, Path, description = "The case id (a ULID)"), PurposeQuery),
    responses((status = 200, description = "The received package's files (a stated purpose, recorded)", body = PackageIndex), Errors)
)]
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
#[utoipa::path(
    get,
    operation_id = "evidence_file",
    path = "/cases/{id}/evidence/files/{n}",
    tag = "evidence",
    params(("id" = String, Path, description = "The case id (a ULID)"), ("n" = usize, Path, description = "The file's number in the index"), PurposeQuery),
    responses((status = 200, description = "The file's bytes, opened as they go (a stated purpose, recorded)", content_type = "application/octet-stream", body = Vec<u8>), Errors)
)]
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
#[utoipa::path(
    post,
    operation_id = "evidence_faults",
    path = "/faults/evidence",
    tag = "testnet",
    request_body = EvidenceFaults,
    responses((status = 200, description = "The evidence faults in force (testnets, admins)", body = EvidenceFaults), Errors)
)]
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
