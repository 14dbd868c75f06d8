//! Officers' bearer tokens. A token is shown once, when it is made; the store keeps only its
//! BLAKE3 hash, keyed by that hash, so checking a token is one lookup and a stolen store
//! reveals no usable token.

use serde::{Deserialize, Serialize};

use crate::store::{Batch, Cf, Store, StoreError};
use comity_protocol::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Officer {
    pub name: String,
    pub role: String,
    pub created_at: Timestamp,
}

/// A fresh random token: `comity_` and 64 hex digits (256 bits).
pub fn generate() -> String {
    format!("comity_{}", hex::encode(rand::random::<[u8; 32]>()))
}

fn key(token: &str) -> Vec<u8> {
    blake3::hash(token.trim().as_bytes()).as_bytes().to_vec()
}

/// Stores the hash of `token` for `officer`, synced.
pub async fn register(store: &Store, token: &str, officer: &Officer) -> Result<(), StoreError> {
    let mut batch = Batch::new();
    let mut value = Vec::new();
    ciborium::into_writer(officer, &mut value).expect("officer serialises");
    batch.put(Cf::Tokens, key(token), value);
    store.commit(batch).await
}

/// The officer a presented token belongs to, if any.
pub fn authenticate(store: &Store, token: &str) -> Result<Option<Officer>, StoreError> {
    Ok(store
        .get(Cf::Tokens, &key(token))?
        .and_then(|bytes| ciborium::from_reader(bytes.as_slice()).ok()))
}
