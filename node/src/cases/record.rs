//! The stored record of one case, on either side of the exchange.

use comity_protocol::{
    AssistanceRequest, CaseId, Hash32, Jurisdiction, MessageId, SignedEnvelope, Timestamp,
};
use serde::{Deserialize, Serialize};

/// Which side of the case this node is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// We drafted and sent the request.
    Requester,
    /// We received the request and are asked to execute it.
    Executing,
}

/// Where a case stands in the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseState {
    Draft,
    /// Signed and queued in the outbox; not yet receipted by the executing side.
    Submitted,
    /// The executing side returned a valid signed receipt.
    Delivered,
    /// The executing side refused the message itself (not the request's merits).
    Undeliverable,
    /// Received from the requesting side and receipted.
    Received,
}

impl std::fmt::Display for CaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaseState::Draft => "draft",
            CaseState::Submitted => "submitted",
            CaseState::Delivered => "delivered",
            CaseState::Undeliverable => "undeliverable",
            CaseState::Received => "received",
        })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Requester => "requester",
            Role::Executing => "executing",
        })
    }
}

/// Delivery attempts of a submitted request (requester side).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub attempts: u32,
    pub last_attempt: Option<Timestamp>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub case_id: CaseId,
    pub role: Role,
    pub counterparty: Jurisdiction,
    pub state: CaseState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub request: AssistanceRequest,
    /// The message that carries the request, once signed.
    pub message_id: Option<MessageId>,
    /// The signed request exactly as sent or received.
    pub envelope: Option<SignedEnvelope>,
    /// The executing side's signed receipt; both sides keep it.
    pub receipt: Option<SignedEnvelope>,
    #[serde(default)]
    pub delivery: Delivery,
}

#[derive(Debug, thiserror::Error)]
#[error("stored case record is corrupt: {0}")]
pub struct CorruptRecord(pub String);

impl CaseRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        ciborium::into_writer(self, &mut out).expect("case records always serialise");
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CorruptRecord> {
        ciborium::from_reader(bytes).map_err(|e| CorruptRecord(e.to_string()))
    }
}

/// A message waiting in the outbox for its signed receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub message_id: MessageId,
    pub case_id: CaseId,
    pub to: Jurisdiction,
    /// BLAKE3 of the signed body: the receipt must name exactly this.
    pub body_hash: Hash32,
    /// The encoded `ExchangeRequest`, exactly as every attempt sends it.
    pub frame: Vec<u8>,
    pub queued_at: Timestamp,
}

impl OutboxEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.frame.len() + 128);
        ciborium::into_writer(self, &mut out).expect("outbox entries always serialise");
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CorruptRecord> {
        ciborium::from_reader(bytes).map_err(|e| CorruptRecord(e.to_string()))
    }
}

/// Store keys: the ULID text form, which sorts by creation time like the ULID itself.
pub fn case_key(id: &CaseId) -> Vec<u8> {
    id.to_string().into_bytes()
}

pub fn message_key(id: &MessageId) -> Vec<u8> {
    id.to_string().into_bytes()
}
