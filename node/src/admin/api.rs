//! The admin API's request and response types, and the typed client that the CLI, the testnet
//! and any case-management system use. Defined once, for both ends.

use std::time::Duration;

use comity_protocol::{
    AssistanceRequest, CaseId, FieldProblem, Jurisdiction, MessageId, Receipt, SignedEnvelope,
    Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::cases::record::{CaseRecord, CaseState, Delivery, Role};

pub const API_PREFIX: &str = "/v1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusView {
    pub jurisdiction: Jurisdiction,
    pub bloc: String,
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub members: Vec<PeerView>,
    pub outbox_depth: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerView {
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub peer_id: String,
    pub connected: bool,
    pub addresses: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewRequest {
    pub request: AssistanceRequest,
    /// Sign and queue at once instead of leaving a draft.
    #[serde(default)]
    pub send: bool,
    /// With `send`: wait up to this long for the verified receipt.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SendCase {
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseSummary {
    pub case_id: CaseId,
    pub role: Role,
    pub counterparty: Jurisdiction,
    pub state: CaseState,
    pub kind: String,
    pub instrument: String,
    pub urgency: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseDetail {
    #[serde(flatten)]
    pub summary: CaseSummary,
    pub message_id: Option<MessageId>,
    pub request: AssistanceRequest,
    pub delivery: Delivery,
    /// The signed request, and whether its signature verifies with the requester's key.
    pub request_signature_valid: Option<bool>,
    pub receipt: Option<ReceiptView>,
    /// The signed request and receipt exactly as exchanged, for showing to a third party.
    pub signed_request: Option<SignedEnvelope>,
    pub signed_receipt: Option<SignedEnvelope>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptView {
    pub signer: String,
    pub signature_valid: bool,
    /// Why the receipt does not verify, if it does not.
    pub problem: Option<String>,
    pub receipt: Option<Receipt>,
}

/// Every error the API returns: a machine code, a reason a person can act on, and for invalid
/// requests every field-level problem.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<FieldProblem>,
}

impl CaseSummary {
    pub fn of(record: &CaseRecord) -> Self {
        Self {
            case_id: record.case_id,
            role: record.role,
            counterparty: record.counterparty.clone(),
            state: record.state,
            kind: record.request.kind.to_string(),
            instrument: record.request.instrument.to_string(),
            urgency: record.request.urgency.to_string(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the admin API at {url}: {message} (is `comity run` running?)")]
    Connect { url: String, message: String },
    #[error("{}", describe(.status, .error))]
    Api { status: u16, error: ApiError },
    #[error("unexpected response from the admin API: {0}")]
    Protocol(String),
}

fn describe(status: &u16, error: &ApiError) -> String {
    let mut text = format!("{} ({}): {}", error.error, status, error.reason);
    for p in &error.problems {
        text.push_str(&format!("\n  - {}: {}", p.field, p.problem));
    }
    text
}

/// A typed client of one node's admin API.
#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(256)
            .build()
            .expect("http client");
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http,
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<T, ClientError> {
        let response =
            request
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| ClientError::Connect {
                    url: format!("{}{}", self.base, path),
                    message: e.to_string(),
                })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
        } else {
            let error = serde_json::from_slice(&bytes).unwrap_or_else(|_| ApiError {
                error: "http".into(),
                reason: String::from_utf8_lossy(&bytes).into_owned(),
                problems: vec![],
            });
            Err(ClientError::Api {
                status: status.as_u16(),
                error,
            })
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{API_PREFIX}{path}", self.base);
        self.call(self.http.get(url), path).await
    }

    async fn post<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = format!("{}{API_PREFIX}{path}", self.base);
        self.call(self.http.post(url).json(body), path).await
    }

    pub async fn status(&self) -> Result<StatusView, ClientError> {
        self.get("/status").await
    }
    pub async fn peers(&self) -> Result<Vec<PeerView>, ClientError> {
        self.get("/peers").await
    }
    pub async fn create_request(&self, body: &NewRequest) -> Result<CaseDetail, ClientError> {
        self.post("/requests", body).await
    }
    pub async fn send(
        &self,
        case: CaseId,
        wait: Option<Duration>,
    ) -> Result<CaseDetail, ClientError> {
        let body = SendCase {
            wait_ms: wait.map(|w| w.as_millis() as u64),
        };
        self.post(&format!("/cases/{case}/send"), &body).await
    }
    pub async fn cases(&self) -> Result<Vec<CaseSummary>, ClientError> {
        self.get("/cases").await
    }
    pub async fn inbox(&self) -> Result<Vec<CaseSummary>, ClientError> {
        self.get("/inbox").await
    }
    pub async fn case(&self, case: CaseId) -> Result<CaseDetail, ClientError> {
        self.get(&format!("/cases/{case}")).await
    }
}

/// Verifies a stored receipt against the executing member's key, for display.
pub fn receipt_view(
    receipt: &SignedEnvelope,
    key: Option<&comity_protocol::PublicKey>,
) -> ReceiptView {
    let signer = receipt.signer.to_string();
    let Some(key) = key else {
        return ReceiptView {
            signer,
            signature_valid: false,
            problem: Some("the receipt's signer is not in the roster".into()),
            receipt: None,
        };
    };
    match key
        .verifying_key()
        .map_err(|e| e.to_string())
        .and_then(|k| receipt.open::<Receipt>(&k).map_err(|e| e.to_string()))
    {
        Ok(body) => ReceiptView {
            signer,
            signature_valid: true,
            problem: None,
            receipt: Some(body),
        },
        Err(problem) => ReceiptView {
            signer,
            signature_valid: false,
            problem: Some(problem),
            receipt: None,
        },
    }
}
