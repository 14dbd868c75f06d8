//! The typed client of a node's admin API, used by the CLI, the testnet and any
//! case-management system: one method per endpoint, every error with the API's reason.

use std::time::Duration;

use comity_protocol::{CaseId, Jurisdiction};

use super::api::{
    API_PREFIX, Action, ApiError, CaseDetail, CaseFilter, CaseSummary, EquivocationView,
    EvidenceUpload, FaultRequest, FulfilledView, LogView, NewEvidence, NewOfficer, NewOfficerToken,
    NewRequest, OfficerChange, PeerView, RefusalView, SendCase, StatusView,
};
use super::officers::{Officer, Role as OfficerRole};
use serde::Serialize;

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

/// The error in a failed response: the API's JSON error, or the body as text.
fn api_error(status: u16, body: &[u8]) -> ClientError {
    let error = serde_json::from_slice(body).unwrap_or_else(|_| ApiError {
        error: "http".into(),
        reason: String::from_utf8_lossy(body).into_owned(),
        problems: vec![],
    });
    ClientError::Api { status, error }
}

/// Longest an evidence upload or download may take (gigabytes on a slow disk).
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A typed client of one node's admin API.
#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
    /// The purpose stated when reading case content.
    purpose: Option<String>,
}

impl AdminClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        let http = Self::http()
            .build()
            .expect("an http client without TLS settings builds");
        Self::with_http(base, token, http)
    }

    /// A client of an https admin API whose certificate is `ca_pem` or was issued by it (a
    /// pinned self-signed certificate, or the operator's CA): no other authority is trusted.
    pub fn with_ca(
        base: impl Into<String>,
        token: impl Into<String>,
        ca_pem: &[u8],
    ) -> Result<Self, ClientError> {
        let certificates = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| ClientError::Protocol(format!("the CA file is not PEM: {e}")))?;
        if certificates.is_empty() {
            return Err(ClientError::Protocol(
                "the CA file holds no certificate".into(),
            ));
        }
        let mut builder = Self::http()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .https_only(true);
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Protocol(format!("cannot set up TLS: {e}")))?;
        Ok(Self::with_http(base, token, http))
    }

    fn http() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(256)
    }

    fn with_http(base: impl Into<String>, token: impl Into<String>, http: reqwest::Client) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http,
            purpose: None,
        }
    }

    /// States the purpose recorded in the access log for every read of case content.
    pub fn with_purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purpose = Some(purpose.into());
        self
    }

    async fn get_content<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        let url = format!("{}{API_PREFIX}{path}", self.base);
        let mut request = self.http.get(url);
        if let Some(purpose) = &self.purpose {
            request = request.query(&[("purpose", purpose)]);
        }
        self.call(request, path).await
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
                    url: format!("{}{API_PREFIX}{path}", self.base),
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
            Err(api_error(status.as_u16(), &bytes))
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

    /// Announces a package for `case`: refused (nothing sent) unless it may be delivered.
    pub async fn begin_evidence(
        &self,
        case: CaseId,
        body: &NewEvidence,
    ) -> Result<EvidenceUpload, ClientError> {
        self.post(&format!("/cases/{case}/evidence"), body).await
    }

    /// Sends the announced files' bytes (back to back) and waits for the sealed package.
    pub async fn upload_evidence(
        &self,
        upload: &str,
        body: reqwest::Body,
    ) -> Result<FulfilledView, ClientError> {
        let path = format!("/evidence/uploads/{upload}");
        let url = format!("{}{API_PREFIX}{path}", self.base);
        let request = self.http.put(url).timeout(STREAM_TIMEOUT).body(body);
        self.call(request, &path).await
    }

    pub async fn evidence_status(
        &self,
        case: CaseId,
    ) -> Result<crate::evidence::EvidenceStatus, ClientError> {
        self.get(&format!("/cases/{case}/evidence/status")).await
    }

    /// The file table of a received package (content: needs a stated purpose).
    pub async fn evidence_index(
        &self,
        case: CaseId,
    ) -> Result<crate::evidence::PackageIndex, ClientError> {
        self.get_content(&format!("/cases/{case}/evidence")).await
    }

    /// File `n` of a received package, as a response whose body streams its bytes.
    pub async fn evidence_file(
        &self,
        case: CaseId,
        n: usize,
    ) -> Result<reqwest::Response, ClientError> {
        self.stream(&format!("/cases/{case}/evidence/files/{n}"), &[])
            .await
    }

    /// The case as a signed, self-contained bundle (`application/cbor-seq`), streamed.
    pub async fn export(
        &self,
        case: CaseId,
        with_evidence: bool,
    ) -> Result<reqwest::Response, ClientError> {
        let with = if with_evidence { "true" } else { "false" };
        self.stream(&format!("/cases/{case}/export"), &[("with_evidence", with)])
            .await
    }

    /// A GET whose answer is streamed rather than decoded (with the stated purpose, if any).
    async fn stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{API_PREFIX}{path}", self.base);
        let mut request = self.http.get(url).timeout(STREAM_TIMEOUT).query(query);
        if let Some(purpose) = &self.purpose {
            request = request.query(&[("purpose", purpose)]);
        }
        let response =
            request
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| ClientError::Connect {
                    url: format!("{}{API_PREFIX}{path}", self.base),
                    message: e.to_string(),
                })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        Err(api_error(status, &bytes))
    }

    /// Testnets only: what the node does wrong when serving evidence.
    pub async fn evidence_faults(
        &self,
        faults: &crate::evidence::EvidenceFaults,
    ) -> Result<crate::evidence::EvidenceFaults, ClientError> {
        self.post("/faults/evidence", faults).await
    }

    pub async fn bloc_status(&self) -> Result<crate::bloc::BlocStatus, ClientError> {
        self.get("/bloc").await
    }
    /// Hands the node a configuration received out of band (verified like any other).
    pub async fn bloc_import(&self, cose: &[u8]) -> Result<serde_json::Value, ClientError> {
        self.post(
            "/bloc/import",
            &serde_json::json!({ "cose": hex::encode(cose) }),
        )
        .await
    }
    pub async fn bloc_history(&self) -> Result<Vec<crate::bloc::VersionView>, ClientError> {
        self.get("/bloc/history").await
    }
    pub async fn bloc_version(&self, n: u64) -> Result<crate::bloc::VersionView, ClientError> {
        self.get(&format!("/bloc/versions/{n}")).await
    }
    pub async fn bloc_proposals(&self) -> Result<Vec<crate::bloc::ProposalView>, ClientError> {
        self.get("/bloc/proposals").await
    }
    pub async fn bloc_propose(
        &self,
        body: &crate::bloc::ProposeRequest,
    ) -> Result<crate::bloc::ProposalView, ClientError> {
        self.post("/bloc/proposals", body).await
    }
    /// Signs the open proposal named by its version or (a prefix of) its hash.
    pub async fn bloc_sign(&self, which: &str) -> Result<crate::bloc::ProposalView, ClientError> {
        let which: String = which
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        self.post(&format!("/bloc/sign?which={which}"), &serde_json::json!({}))
            .await
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
    /// The draft checked against the executing member's published policy (`None`: it
    /// publishes none).
    pub async fn precheck(
        &self,
        case: CaseId,
    ) -> Result<Option<crate::cases::Precheck>, ClientError> {
        self.get(&format!("/cases/{case}/precheck")).await
    }
    /// Sends again the messages of a case its member never acknowledged in time.
    pub async fn retry(&self, case: CaseId) -> Result<CaseDetail, ClientError> {
        self.post(&format!("/cases/{case}/retry"), &serde_json::json!({}))
            .await
    }
    pub async fn approve(&self, case: CaseId) -> Result<CaseDetail, ClientError> {
        self.post(&format!("/cases/{case}/approve"), &serde_json::json!({}))
            .await
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
    pub async fn cases_filtered(
        &self,
        filter: &CaseFilter,
    ) -> Result<Vec<CaseSummary>, ClientError> {
        let mut query = Vec::new();
        if let Some(state) = &filter.state {
            query.push(format!("state={state}"));
        }
        if filter.overdue {
            query.push("overdue=true".into());
        }
        if filter.lapsing {
            query.push("lapsing=true".into());
        }
        self.get(&format!("/cases?{}", query.join("&"))).await
    }
    /// The signed log of a case (needs a purpose: see `with_purpose`).
    pub async fn log(&self, case: CaseId) -> Result<LogView, ClientError> {
        self.get_content(&format!("/cases/{case}/log")).await
    }
    /// Drafts a new version of a sent request (another officer approves it with `approve`).
    pub async fn amend(
        &self,
        case: CaseId,
        request: comity_protocol::AssistanceRequest,
    ) -> Result<CaseDetail, ClientError> {
        self.post(
            &format!("/cases/{case}/amend"),
            &super::api::NewRequest { request },
        )
        .await
    }

    /// Withdraws a drafted amendment (`amend`) or an asked override (`override`).
    pub async fn cancel_pending(
        &self,
        case: CaseId,
        what: &str,
    ) -> Result<CaseDetail, ClientError> {
        self.post(
            &format!("/cases/{case}/{what}/cancel"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Asks to override the policy's refusal of a case, for `reason`.
    pub async fn request_override(
        &self,
        case: CaseId,
        reason: &str,
    ) -> Result<CaseDetail, ClientError> {
        let body = super::api::OverrideRequestBody {
            reason: reason.to_owned(),
        };
        self.post(&format!("/cases/{case}/override"), &body).await
    }

    /// Approves another officer's override of the policy (four-eyes).
    pub async fn approve_override(&self, case: CaseId) -> Result<CaseDetail, ClientError> {
        self.post(
            &format!("/cases/{case}/override/approve"),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn act(&self, case: CaseId, action: &Action) -> Result<CaseDetail, ClientError> {
        self.post(&format!("/cases/{case}/act"), action).await
    }
    /// Adds an officer whose role one admin may appoint; see [`Self::appoint_officer`].
    pub async fn add_officer(
        &self,
        name: &str,
        role: OfficerRole,
    ) -> Result<NewOfficerToken, ClientError> {
        match self.appoint_officer(name, role).await? {
            OfficerChange::Added { officer, token } => Ok(NewOfficerToken { officer, token }),
            other => Err(pending_error(other)),
        }
    }
    pub async fn officers(&self) -> Result<Vec<Officer>, ClientError> {
        self.get("/officers").await
    }
    /// Revokes an officer whose role one admin may revoke; see [`Self::change_officer`].
    pub async fn revoke_officer(&self, name: &str) -> Result<Officer, ClientError> {
        match self.revoke_or_propose(name).await? {
            OfficerChange::Revoked { officer } => Ok(officer),
            other => Err(pending_error(other)),
        }
    }

    /// Revokes an officer, or proposes its revocation to a second admin (auditors, oversight,
    /// governors, admins once there are two).
    pub async fn revoke_or_propose(&self, name: &str) -> Result<OfficerChange, ClientError> {
        self.post(&format!("/officers/{name}/revoke"), &serde_json::json!({}))
            .await
    }

    /// Appoints an officer, or proposes the appointment to a second admin.
    pub async fn appoint_officer(
        &self,
        name: &str,
        role: OfficerRole,
    ) -> Result<OfficerChange, ClientError> {
        self.post(
            "/officers",
            &NewOfficer {
                name: name.to_owned(),
                role,
            },
        )
        .await
    }

    /// Approves another admin's proposed appointment or revocation (four-eyes).
    pub async fn approve_officer(&self, name: &str) -> Result<OfficerChange, ClientError> {
        self.post(&format!("/officers/{name}/approve"), &serde_json::json!({}))
            .await
    }

    /// Every version of the node's policy, with what changed.
    pub async fn policy_history(&self) -> Result<Vec<crate::audit::PolicyVersion>, ClientError> {
        self.get("/policy/history").await
    }

    /// A page of the audit log (auditors, oversight).
    pub async fn audit_entries(
        &self,
        from: u64,
        limit: u64,
    ) -> Result<Vec<super::api::AuditEntryView>, ClientError> {
        self.get(&format!("/audit/entries?from={from}&limit={limit}"))
            .await
    }

    /// Appointments and revocations waiting for a second admin.
    pub async fn pending_officers(
        &self,
    ) -> Result<Vec<super::officers::PendingChange>, ClientError> {
        self.get("/officers/pending").await
    }
    /// Testnets only: moves the node's clock forward.
    pub async fn advance_clock(&self, secs: u64) -> Result<serde_json::Value, ClientError> {
        self.post(
            "/faults/clock",
            &serde_json::json!({ "advance_secs": secs }),
        )
        .await
    }

    /// Testnets: moves the node's clock by `secs`, either way (a skewed clock).
    pub async fn skew_clock(&self, secs: i64) -> Result<serde_json::Value, ClientError> {
        self.post("/faults/clock", &serde_json::json!({ "skew_secs": secs }))
            .await
    }
    pub async fn transparency(
        &self,
        period: Option<&str>,
    ) -> Result<crate::report::Report, ClientError> {
        match period {
            Some(p) => self.get(&format!("/reports/transparency?period={p}")).await,
            None => self.get("/reports/transparency").await,
        }
    }
    /// The members' published transparency reports for `period` (`GET /v1/reports/bloc`).
    pub async fn bloc_reports(
        &self,
        period: &str,
    ) -> Result<Vec<crate::report::Report>, ClientError> {
        self.get(&format!("/reports/bloc?period={period}")).await
    }
    /// Has the running node write a checkpoint of its store beside it; returns where (on the
    /// node's host).
    pub async fn backup_checkpoint(&self) -> Result<std::path::PathBuf, ClientError> {
        let taken: super::Checkpoint = self
            .post("/backup/checkpoint", &serde_json::json!({}))
            .await?;
        Ok(taken.dir)
    }
    /// The records of exchanges (`GET /v1/opmon`), oldest first.
    pub async fn opmon(
        &self,
        query: &crate::opmon::Query,
    ) -> Result<Vec<crate::opmon::Record>, ClientError> {
        let mut params = Vec::new();
        if let Some(since) = query.since {
            params.push(format!("since={since}"));
        }
        if let Some(member) = &query.member {
            params.push(format!("member={member}"));
        }
        if let Some(limit) = query.limit {
            params.push(format!("limit={limit}"));
        }
        if let Some(case) = query.case {
            params.push(format!("case={case}"));
        }
        match params.is_empty() {
            true => self.get("/opmon").await,
            false => self.get(&format!("/opmon?{}", params.join("&"))).await,
        }
    }
    pub async fn refusals(&self) -> Result<Vec<RefusalView>, ClientError> {
        self.get("/refusals").await
    }
    pub async fn equivocations(&self) -> Result<Vec<EquivocationView>, ClientError> {
        self.get("/equivocations").await
    }
    pub async fn fault(
        &self,
        member: Jurisdiction,
        link: crate::network::LinkFault,
    ) -> Result<serde_json::Value, ClientError> {
        self.post("/faults", &FaultRequest { member, link }).await
    }
    pub async fn inbox(&self) -> Result<Vec<CaseSummary>, ClientError> {
        self.get("/inbox").await
    }
    /// One case with its content (needs a purpose: see `with_purpose`).
    pub async fn case(&self, case: CaseId) -> Result<CaseDetail, ClientError> {
        self.get_content(&format!("/cases/{case}")).await
    }
    pub async fn access_log(
        &self,
        case: Option<CaseId>,
    ) -> Result<Vec<super::access::AccessRecord>, ClientError> {
        match case {
            Some(case) => self.get(&format!("/access-log?case={case}")).await,
            None => self.get("/access-log").await,
        }
    }
}

/// A change that one admin could not make alone, as an error for the callers that expected it
/// done.
fn pending_error(change: OfficerChange) -> ClientError {
    ClientError::Protocol(match change {
        OfficerChange::Pending { pending } => format!(
            "the {} of {} ({}) waits for a second admin's approval (`comity officer approve {}`)",
            pending.change, pending.name, pending.role, pending.name
        ),
        other => format!("unexpected answer: {other:?}"),
    })
}
