//! What a node stores of each case's evidence package (`Cf::Evidence`, keyed by case id), and
//! what it shows of it. Its signed manifest is kept beside it, sealed with the case's key.

use comity_protocol::{CaseId, Hash32, Jurisdiction, Timestamp};
use serde::{Deserialize, Serialize};

use crate::cases::record::encode;
use crate::store::{Batch, Cf};

/// Which way a package goes on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TransferDirection)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Sealed here, served to the requesting member.
    Outgoing,
    /// Announced by a fulfilment, pulled from the executing member.
    Incoming,
}

/// Where a package stands on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PackageState {
    /// Incoming: the fulfilment named it; the manifest is not fetched yet.
    Announced,
    /// Incoming: the manifest is checked and chunks are being pulled.
    Transferring,
    /// Incoming: every chunk verified and the file is durable. Outgoing: sealed and served.
    Complete,
}

/// The stored record of a case's package (`Cf::Evidence`, keyed by case id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PackageRecord {
    pub case_id: CaseId,
    pub direction: Direction,
    pub root: Hash32,
    /// The other member: the requester for an outgoing package, the executing side otherwise.
    pub counterparty: Jurisdiction,
    pub state: PackageState,
    pub total_bytes: u64,
    pub sealed_bytes: u64,
    pub chunks: u64,
    pub chunk_size: u32,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// Incoming: milliseconds from the first chunk requested to the last verified, over every
    /// attempt this process made (after a restart, from the restart's first request).
    pub transfer_ms: Option<u64>,
    pub last_error: Option<String>,
    /// Outgoing: the sealed copy was deleted once the requester confirmed its arrival.
    #[serde(default)]
    pub delivered: bool,
    /// Incoming, once complete: chunk responses received to complete it since this node last
    /// started (resent ones included), and the pulls that took (1 when nothing interrupted it).
    #[serde(default)]
    pub chunks_fetched: u64,
    #[serde(default)]
    pub pulls: u32,
    /// Incoming, once complete: chunks pulled while the sender was still sealing the package
    /// that the signed manifest then confirmed (not fetched again).
    #[serde(default)]
    pub chunks_staged: u64,
}

/// What `comity evidence status` shows.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvidenceStatus {
    pub case_id: CaseId,
    pub direction: Direction,
    pub root: Hash32,
    pub counterparty: Jurisdiction,
    pub state: PackageState,
    pub total_bytes: u64,
    pub sealed_bytes: u64,
    pub chunks: u64,
    /// Incoming: chunks verified and kept. Outgoing: equal to `chunks`.
    pub chunks_verified: u64,
    pub bytes_verified: u64,
    /// Incoming: chunk responses received since this node started (resent ones included);
    /// once complete, those it took to complete the package.
    pub chunks_fetched: u64,
    /// Incoming: pulls started since this node started (each resumption is one more); once
    /// complete, those it took.
    #[serde(default)]
    pub pulls: u32,
    /// Incoming: chunks pulled while the sender was still sealing the package that the signed
    /// manifest confirmed.
    #[serde(default)]
    pub chunks_staged: u64,
    /// Outgoing: chunk responses served since this node started.
    pub chunks_served: u64,
    /// Bytes per second over the current transfer, when one is running.
    pub rate_bytes_per_s: Option<f64>,
    pub eta_secs: Option<f64>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub transfer_ms: Option<u64>,
    /// Outgoing: whether the requester's node stated that the package arrived whole.
    pub received_confirmed: bool,
    pub last_error: Option<String>,
}

/// Puts the record of an announced package (a fulfilment naming `root` arrived) in `batch`,
/// with the events that announce it: its transfer starts once the batch is stored.
pub fn announce(
    batch: &mut Batch,
    case_id: CaseId,
    root: Hash32,
    from: &Jurisdiction,
    at: Timestamp,
) {
    let record = PackageRecord {
        case_id,
        direction: Direction::Incoming,
        root,
        counterparty: from.clone(),
        state: PackageState::Announced,
        total_bytes: 0,
        sealed_bytes: 0,
        chunks: 0,
        chunk_size: 0,
        created_at: at,
        completed_at: None,
        transfer_ms: None,
        last_error: None,
        delivered: false,
        chunks_fetched: 0,
        pulls: 0,
        chunks_staged: 0,
    };
    batch.put(Cf::Evidence, record_key(&case_id), encode(&record));
    batch.put(Cf::Evidence, open_key(&case_id), Vec::new());
}

/// Marks the package of a case purged in this batch for deletion by the next sweep.
pub(super) fn purged(batch: &mut Batch, case_id: &CaseId) {
    batch.put(Cf::Evidence, purged_key(case_id), Vec::new());
}

// The evidence table (`Cf::Evidence`): a package's record under `{case}`, its sealed manifest
// under `{case}/manifest`, `open/{case}` while the package needs tending (a transfer to run or
// resume, a file to delete once its arrival is confirmed), and `purged/{case}` once its case
// was purged. Sweeps read the last two, never every package ever held.

pub(super) fn record_key(case_id: &CaseId) -> Vec<u8> {
    case_id.to_string().into_bytes()
}

pub(super) fn manifest_key(case_id: &CaseId) -> Vec<u8> {
    format!("{case_id}/manifest").into_bytes()
}

pub(super) const OPEN: &[u8] = b"open/";
pub(super) const PURGED: &[u8] = b"purged/";

pub(super) fn open_key(case_id: &CaseId) -> Vec<u8> {
    [OPEN, case_id.to_string().as_bytes()].concat()
}

pub(super) fn purged_key(case_id: &CaseId) -> Vec<u8> {
    [PURGED, case_id.to_string().as_bytes()].concat()
}
