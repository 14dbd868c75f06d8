//! Pre-checking a draft: the executing member publishes a signed summary of what it accepts
//! (its policy); the requester runs the same rules on its draft before anyone approves or sends
//! it, and sees what the executing node will say.

use std::time::Duration;

use comity_protocol::policy::{PolicyCheck, PolicySummary};
use comity_protocol::{
    CaseId, ExchangeRequest, ExchangeResponse, Jurisdiction, SignedEnvelope, Timestamp, from_cbor,
    limits, to_canonical_cbor,
};
use serde::{Deserialize, Serialize};

use super::{CaseError, Cases};

/// The result of pre-checking a draft against a member's published summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Precheck {
    pub issuer: Jurisdiction,
    /// When the member signed the summary the check used.
    pub issued_at: Timestamp,
    pub check: PolicyCheck,
}

/// How long a fetched summary is used before it is asked for again.
const SUMMARY_TTL: Duration = Duration::from_secs(300);

impl Cases {
    /// This node's policy as a signed summary for members to pre-check against, if it has one.
    pub(super) fn signed_policy(&self) -> Result<Option<SignedEnvelope>, CaseError> {
        let Some(policy) = &self.inner.policy else {
            return Ok(None);
        };
        let summary = PolicySummary {
            issuer: self.inner.jurisdiction.clone(),
            issued_at: self.now(),
            policy: policy.clone(),
        };
        SignedEnvelope::sign(&summary, &self.inner.identity.signing_key())
            .map(Some)
            .map_err(|e| CaseError::Encode(e.to_string()))
    }

    /// Checks a draft against the executing member's published policy.
    pub async fn precheck(&self, case_id: CaseId) -> Result<Option<Precheck>, CaseError> {
        let record = self.get(&case_id)?.ok_or(CaseError::NotFound(case_id))?;
        let request = record
            .request
            .ok_or_else(|| CaseError::Refused(format!("case {case_id}'s content is gone")))?;
        let Some(summary) = self.policy_of(&request.executing).await? else {
            return Ok(None);
        };
        let check = summary
            .policy
            .check(&request, &self.inner.jurisdiction, self.now());
        Ok(Some(Precheck {
            issuer: summary.issuer,
            issued_at: summary.issued_at,
            check,
        }))
    }

    /// A member's verified policy summary: cached for a few minutes, else asked for.
    async fn policy_of(&self, member: &Jurisdiction) -> Result<Option<PolicySummary>, CaseError> {
        if let Some((summary, fetched)) =
            self.inner.summaries.lock().expect("summaries").get(member)
            && fetched.elapsed() < SUMMARY_TTL
        {
            return Ok(Some(summary.clone()));
        }
        let Some((peer, key)) = self
            .inner
            .governance
            .roster()
            .by_jurisdiction(member)
            .map(|(m, k)| (m.peer_id, *k))
        else {
            return Err(CaseError::UnknownMember {
                counterparty: member.clone(),
                bloc: self.inner.governance.roster().bloc().to_owned(),
            });
        };
        let unavailable = |why: String| {
            CaseError::Refused(format!("{member}'s policy could not be fetched: {why}"))
        };
        let frame = to_canonical_cbor(&ExchangeRequest::Policy)
            .map_err(|e| CaseError::Encode(e.to_string()))?;
        let answer = self
            .inner
            .network
            .request(peer, frame)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let envelope = match from_cbor::<ExchangeResponse>(&answer, limits::MAX_RESPONSE_FRAME)
            .map_err(|e| unavailable(e.to_string()))?
        {
            ExchangeResponse::Policy(Some(envelope)) => envelope,
            ExchangeResponse::Policy(None) => return Ok(None),
            _ => return Err(unavailable("it answered something else".into())),
        };
        let verifying = key
            .verifying_key()
            .map_err(|e| unavailable(e.to_string()))?;
        let summary: PolicySummary = envelope
            .open(&verifying)
            .map_err(|e| unavailable(format!("the summary does not verify: {e}")))?;
        if summary.issuer != *member {
            return Err(unavailable(format!(
                "the summary names {} as its issuer",
                summary.issuer
            )));
        }
        self.inner
            .summaries
            .lock()
            .expect("summaries")
            .insert(member.clone(), (summary.clone(), std::time::Instant::now()));
        Ok(Some(summary))
    }
}
