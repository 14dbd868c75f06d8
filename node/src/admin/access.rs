//! The access log: every read of a case's content, with the officer, the time and the purpose
//! they stated. Written (synced) before the content is returned, so no read goes unrecorded.

use comity_protocol::{CaseId, MessageId, Timestamp};
use serde::{Deserialize, Serialize};

use super::officers::{Officer, Role};
use crate::store::{Batch, Cf, Store, StoreError};

/// Longest purpose an officer may state.
pub const MAX_PURPOSE: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccessRecord {
    pub at: Timestamp,
    pub officer: String,
    pub role: Role,
    pub case_id: CaseId,
    /// What was read: `case` (the request) or `log` (the signed events).
    pub what: String,
    pub purpose: String,
}

/// Records a read, synced.
pub async fn record(
    store: &Store,
    officer: &Officer,
    case_id: CaseId,
    what: &str,
    purpose: &str,
) -> Result<(), StoreError> {
    let record = AccessRecord {
        at: Timestamp::now(),
        officer: officer.name.clone(),
        role: officer.role,
        case_id,
        what: what.to_owned(),
        purpose: purpose.to_owned(),
    };
    let mut value = Vec::new();
    ciborium::into_writer(&record, &mut value).expect("access records serialise");
    let key = format!("{:020}/{}", record.at.as_millis(), MessageId::new());
    let mut batch = Batch::new();
    batch.put(Cf::Access, key.into_bytes(), value);
    crate::audit::record(
        &mut batch,
        crate::audit::AuditWhat::Access {
            officer: record.officer.clone(),
            case_id,
            read: record.what.clone(),
        },
    );
    store.commit(batch).await
}

/// The access log, oldest first; of one case if given.
pub fn list(store: &Store, case: Option<CaseId>) -> Result<Vec<AccessRecord>, StoreError> {
    Ok(store
        .scan(Cf::Access)?
        .iter()
        .filter_map(|(_, v)| ciborium::from_reader::<AccessRecord, _>(v.as_slice()).ok())
        .filter(|r| case.is_none_or(|c| r.case_id == c))
        .collect())
}
