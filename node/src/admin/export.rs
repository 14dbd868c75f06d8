//! `GET /v1/cases/{id}/export?purpose=…[&with_evidence=true]`: the case as a self-contained,
//! signed bundle (`application/cbor-seq`), for a court or an auditor outside the bloc. The
//! events carry the request, so this is a read of content: allowed to officers who may read
//! content, and logged with its purpose before a byte is returned.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use comity_protocol::bundle::encode_part;
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::cases::{parse_case, record_access, stated_purpose};
use super::officers::Officer;
use super::openapi::Errors;
use super::{AdminState, CONTENT_READERS, Failure, allow, failure};
use crate::admin::api::PurposeQuery;
use crate::audit::AuditError;
use crate::export::{self, ExportError};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ExportQuery {
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    with_evidence: bool,
}

impl From<ExportError> for Failure {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Case(e) => e.into(),
            ExportError::Evidence(e) => e.into(),
            ExportError::Audit(AuditError::NotCheckpointed(_)) => failure(
                StatusCode::CONFLICT,
                "not-checkpointed",
                format!(
                    "{e}: the case's latest events are not yet under a signed checkpoint of the audit log; retry after the next checkpoint"
                ),
            ),
            ExportError::NoPackage => failure(StatusCode::CONFLICT, "no-package", e.to_string()),
            ExportError::Audit(_) | ExportError::NotAudited(_) => {
                failure(StatusCode::SERVICE_UNAVAILABLE, "audit", e.to_string())
            }
        }
    }
}

/// The case as a bundle anyone can verify offline: its signed log, the receipts and the audit log's proofs (`?with_evidence=true` adds the package). A stated purpose, recorded.
#[utoipa::path(
    get,
    path = "/cases/{id}/export",
    tag = "cases",
    params(("id" = String, Path, description = "The case id (a ULID)"), ExportQuery),
    responses((status = 200, description = "A bundle anyone can verify offline: the case's signed log, receipts and audit proofs (a stated purpose, recorded)", content_type = "application/cbor", body = Vec<u8>), Errors)
)]
pub(super) async fn export(
    Extension(officer): Extension<Officer>,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, Failure> {
    allow(&officer, CONTENT_READERS)?;
    let id = parse_case(&id)?;
    let purpose_query = PurposeQuery {
        purpose: query.purpose,
    };
    let purpose = stated_purpose(&purpose_query)?;
    let (cases, evidence, store) = (
        state.cases.clone(),
        state.evidence.clone(),
        state.store.clone(),
    );
    let now = cases.now();
    let with_evidence = query.with_evidence;
    // Verifying every signature and proving every event reads the store: off the async threads.
    let bundle = tokio::task::spawn_blocking(move || {
        export::build(&cases, &evidence, &store, id, with_evidence, now)
    })
    .await
    .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    record_access(&state, &officer, id, "export", purpose).await?;
    tracing::info!(case = %id, bytes = bundle.len(), with_evidence, "case exported");
    let len = bundle.len();
    let head = futures::stream::once(async move { Ok::<_, std::io::Error>(bundle.items) });
    let body = match bundle.evidence {
        None => Body::from_stream(head),
        Some(file) => {
            // One sealed chunk at a time: memory stays at one chunk whatever the package size.
            let chunks = futures::stream::unfold(
                (None::<tokio::fs::File>, file, 0usize),
                |(open, file, i)| async move {
                    let len = *file.chunk_lens.get(i)?;
                    let mut f = match open {
                        Some(f) => f,
                        None => match tokio::fs::File::open(&file.path).await {
                            Ok(f) => f,
                            Err(e) => return Some((Err(e), (None, file, usize::MAX))),
                        },
                    };
                    let mut chunk = vec![0u8; len];
                    match f.read_exact(&mut chunk).await {
                        Ok(_) => Some((Ok(encode_part(&chunk)), (Some(f), file, i + 1))),
                        Err(e) => Some((Err(e), (None, file, usize::MAX))),
                    }
                },
            );
            Body::from_stream(head.chain(chunks).boxed())
        }
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/cbor-seq")
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}
