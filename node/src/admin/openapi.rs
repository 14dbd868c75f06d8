//! The admin API described once, in OpenAPI 3.1: generated from the handlers and the same
//! types the daemon and the client use, served at `GET /v1/openapi.json` (without a token)
//! and checked in as `docs/openapi.json`, so that a national case-management system can
//! integrate without reading Rust.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::api::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Comity admin API",
        description = "A Comity node's API for officers, operators and case-management systems. Every `/v1` endpoint but this description needs a bearer token (`comity officer add` makes one per officer; each officer has one role). Reads of case content state a purpose (`?purpose=`), recorded in the access log. Errors are JSON: a machine code, a reason a person can act on, and for invalid requests every field's problem.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(ApiError)),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    tags(
        (name = "node", description = "This node and its members"),
        (name = "cases", description = "Requests and their cases"),
        (name = "evidence", description = "Evidence packages"),
        (name = "audit", description = "Refusals, equivocations and the access log (auditors)"),
        (name = "reports", description = "Transparency reports (auditors)"),
        (name = "officers", description = "Officers and their tokens (admins)"),
        (name = "bloc", description = "The bloc configuration (governors propose and sign)"),
        (name = "operations", description = "Health, operational records and backups"),
        (name = "testnet", description = "Fault injection, served only with [testing] faults"),
    )
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An officer's token, from `comity officer add`"))
                    .build(),
            ),
        );
    }
}

/// The description's frame (title, security, tags) before the paths are added.
pub(super) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The whole description, paths and schemas, as the router registers them.
pub fn document() -> utoipa::openapi::OpenApi {
    super::api(None).into_openapi()
}

/// The description as served and checked in: pretty JSON, with a final newline.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the description always encodes");
    text.push('\n');
    text
}

/// The errors any endpoint may answer, each an [`ApiError`].
pub(super) struct Errors;

impl utoipa::IntoResponses for Errors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        [
            ("400", "The body or the query could not be read"),
            ("401", "No token, or a token that is not an officer's"),
            ("403", "The officer's role may not do this"),
            ("404", "No such case, file or version"),
            ("409", "Not possible in the case's present state"),
            ("422", "The request is invalid: every problem is listed"),
            ("503", "The node cannot do it now (store, network); retry"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ApiError")))
                        .build(),
                )
                .build();
            (status.to_owned(), RefOr::T(response))
        })
        .collect()
    }
}

/// This description (no token needed).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    security(()),
    responses((status = 200, description = "This API's OpenAPI 3.1 description", content_type = "application/json", body = Object))
)]
pub(super) async fn served() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.get_or_init(document_json).clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let doc = document();
        let mut undescribed = Vec::new();
        let mut operations = 0;
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (method, operation) in [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("delete", &item.delete),
                ("patch", &item.patch),
            ] {
                let Some(operation) = operation else { continue };
                operations += 1;
                // Client generators name their functions by these: each must be unique.
                let id = operation.operation_id.clone().unwrap_or_default();
                assert!(ids.insert(id.clone()), "operation id {id:?} used twice");
                let summary = operation.summary.as_deref().unwrap_or("");
                let answered = operation
                    .responses
                    .responses
                    .keys()
                    .any(|status| status.starts_with('2'));
                if summary.is_empty() || operation.tags.is_none() || !answered {
                    undescribed.push(format!("{method} {path}"));
                }
            }
        }
        assert!(
            undescribed.is_empty(),
            "without a summary, tag or answer: {undescribed:?}"
        );
        assert!(operations >= 41, "only {operations} operations described");
        // Routes are registered only through `routes!`, which takes only described handlers:
        // a plain `.route(` would serve an endpoint the description does not have.
        let source = include_str!("mod.rs");
        assert!(
            !source.contains(concat!(".route", "(")),
            "admin/mod.rs registers a route outside `routes!`"
        );
    }

    #[test]
    fn the_checked_in_description_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let current = document_json();
        if std::env::var_os("COMITY_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &current).unwrap();
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == current,
            "docs/openapi.json is not the API's description: regenerate it with `COMITY_UPDATE_OPENAPI=1 cargo test -p comity-node --lib openapi`"
        );
    }
}
