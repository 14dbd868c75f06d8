//! Comity's protocol: the types and rules two nodes must agree on, and nothing else.
//!
//! This crate owns identifiers, the assistance request and its validation, the canonical CBOR
//! encoding, signed envelopes, the messages of the exchange protocol and the replicated case
//! log. It must never do I/O (no network, no storage, no clock other than [`Timestamp::now`])
//! so that a second implementation can be checked against it with the golden vectors in
//! `tests/vectors/`.

pub mod audit;
pub mod bloc;
pub mod bundle;
mod bytes;
pub mod canonical;
pub mod caselog;
pub mod deadlines;
pub mod envelope;
pub mod evidence;
pub mod examples;
pub mod ids;
pub mod merkle;
pub mod messages;
#[cfg(feature = "openapi")]
mod openapi;
pub mod policy;
pub mod report;
pub mod request;
pub mod selector;
pub mod validate;

pub use canonical::{CodecError, from_canonical_cbor, from_cbor, is_canonical, to_canonical_cbor};
pub use caselog::{
    Approval, CaseEvent, CaseLog, CaseState, CaseView, Decision, EventError, EventId, EventKind,
    Inserted, LogEntry, PolicyOutcome, Preservation, Side,
};
pub use envelope::{EnvelopeError, MultiSigned, PublicKey, Signable, Signature64, SignedEnvelope};
pub use ids::{ASSIGNED_ALPHA2, CaseId, Hash32, IdError, Jurisdiction, MessageId, Timestamp};
pub use messages::{
    BlocPage, CaseHave, CaseRange, EventPush, EventsPage, ExchangeRequest, ExchangeResponse,
    PullRequest, Receipt, Receipted, RejectCode, Rejection,
};
pub use request::{
    Anchor, AssistanceRequest, Authority, Confidentiality, DataCategory, Instrument, Offence,
    RequestKind, TimeWindow, Translation, UnknownCode, Urgency,
};
pub use selector::{Selector, SelectorError};
pub use validate::{FieldProblem, ValidationErrors};

/// libp2p protocol name of the request/response exchange between two nodes. Version 2 carries
/// COSE-signed objects; a node of version 1 (the earlier project-specific envelope) finds no
/// common protocol and is refused by multistream-select before a byte of a message moves.
pub const EXCHANGE_PROTOCOL: &str = "/comity/exchange/2.0.0";

/// Kademlia protocol name for one bloc. Namespacing by bloc keeps the DHTs of different blocs
/// apart even if their nodes happen to meet (as Forest does with `/fil/kad/{network}/...`).
pub fn kad_protocol(bloc_id: &str) -> String {
    format!("/comity/{bloc_id}/kad/1.0.0")
}

/// Explicit size limits. Every decoder in Comity is bounded by one of these so that a peer
/// cannot make a node allocate without limit; a valid request always fits within them
/// (see the `largest_valid_request_fits_in_a_frame` test).
pub mod limits {
    /// Largest wire frame a node accepts for an exchange request (a signed request envelope).
    pub const MAX_REQUEST_FRAME: usize = 1 << 20;
    /// Largest wire frame for an exchange response (a signed receipt, a rejection, or a page of
    /// pulled events: pages are cut to fit). Evidence never travels in them.
    pub const MAX_RESPONSE_FRAME: usize = 1 << 20;
    /// Most selectors one request may name. More than this is a fishing expedition, not a
    /// targeted request, and would be refused as disproportionate anyway.
    pub const MAX_SELECTORS: usize = 256;
    /// Longest free-text field (necessity statement, purpose, offence description, reasons,
    /// rejection details), in bytes of UTF-8.
    pub const MAX_TEXT: usize = 8192;
    /// Longest short text field (authority name, role and contact, provider and account names,
    /// selector values), in bytes of UTF-8.
    pub const MAX_NAME: usize = 256;
    /// Longest retention a request may ask for, in days (ten years).
    pub const MAX_RETENTION_DAYS: u32 = 3650;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kad_protocol_is_namespaced_by_bloc() {
        assert_eq!(kad_protocol("eu"), "/comity/eu/kad/1.0.0");
    }
}
