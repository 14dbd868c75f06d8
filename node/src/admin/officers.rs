//! Officers, their roles, and their bearer tokens.
//!
//! A token is shown once, when it is made; the store keeps only its BLAKE3 hash, keyed by that
//! hash, so checking a token is one lookup and a stolen store reveals no usable token. Every
//! admin API call is made by an officer and checked against the officer's role.

use serde::{Deserialize, Serialize};

use crate::store::{Batch, Cf, Store, StoreError};
use comity_protocol::Timestamp;

/// What an officer may do. `admin` is the node operator's role and may do everything; give
/// officers the narrower roles.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Drafts, sends, withdraws and closes requests; answers clarifications; acknowledges.
    Requester,
    /// Approves other officers' drafts (four-eyes).
    Approver,
    /// Reviews incoming requests: decides, asks for clarification, fulfils, preserves.
    Reviewer,
    /// Reads refusals, access logs and statistics; never case content.
    Auditor,
    /// Speaks for this member in the bloc's governance: proposes and signs new versions of
    /// the bloc configuration.
    Governor,
    /// Operates the node: officers, faults, and every officer's actions.
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Requester,
        Role::Approver,
        Role::Reviewer,
        Role::Auditor,
        Role::Governor,
        Role::Admin,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Approver => "approver",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Governor => "governor",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Officer {
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
}

impl Officer {
    /// Ok if the officer holds one of `roles` (or is an admin); else the roles it lacks.
    pub fn require(&self, roles: &[Role]) -> Result<(), Vec<Role>> {
        if self.role == Role::Admin || roles.contains(&self.role) {
            Ok(())
        } else {
            Err(roles.to_vec())
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OfficerError {
    #[error("an officer named {0:?} already exists; choose another name or revoke that one")]
    Exists(String),
    #[error("no officer named {0:?}")]
    NotFound(String),
    #[error(
        "officer names are 1 to 64 characters of letters, digits, '.', '_' and '-'; {0:?} is not"
    )]
    BadName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A fresh random token: `comity_` and 64 hex digits (256 bits).
pub fn generate() -> String {
    format!("comity_{}", hex::encode(rand::random::<[u8; 32]>()))
}

fn token_key(token: &str) -> Vec<u8> {
    blake3::hash(token.trim().as_bytes()).as_bytes().to_vec()
}

/// The stored form of an officer: the officer, and its token's hash so that revocation can
/// remove the token.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OfficerRecord {
    officer: Officer,
    token_hash: Vec<u8>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("officers serialise");
    out
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    ciborium::from_reader(bytes).ok()
}

/// Creates an officer with a new token (returned once, stored hashed), synced.
pub async fn add(store: &Store, name: &str, role: Role) -> Result<(Officer, String), OfficerError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(OfficerError::BadName(name.to_owned()));
    }
    let officer = Officer {
        name: name.to_owned(),
        role,
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    let token = generate();
    let mut batch = Batch::new();
    batch.require_absent(Cf::Officers, name.as_bytes().to_vec());
    let record = OfficerRecord {
        officer: officer.clone(),
        token_hash: token_key(&token),
    };
    batch.put(Cf::Officers, name.as_bytes().to_vec(), encode(&record));
    batch.put(Cf::Tokens, token_key(&token), encode(&officer));
    crate::audit::record(
        &mut batch,
        crate::audit::AuditWhat::Officer {
            officer: name.to_owned(),
            role: role.to_string(),
            change: "added".into(),
        },
    );
    match store.commit(batch).await {
        Ok(()) => Ok((officer, token)),
        Err(StoreError::Exists(_)) => Err(OfficerError::Exists(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Every officer, revoked ones included, by name.
pub fn list(store: &Store) -> Result<Vec<Officer>, OfficerError> {
    Ok(store
        .scan(Cf::Officers)?
        .iter()
        .filter_map(|(_, v)| decode::<OfficerRecord>(v))
        .map(|r| r.officer)
        .collect())
}

/// Revokes an officer: its token stops working at once; the record stays, for the audit.
pub async fn revoke(store: &Store, name: &str) -> Result<Officer, OfficerError> {
    let stored = store
        .get(Cf::Officers, name.as_bytes())?
        .ok_or_else(|| OfficerError::NotFound(name.to_owned()))?;
    let mut record: OfficerRecord =
        decode(&stored).ok_or_else(|| OfficerError::NotFound(name.to_owned()))?;
    record.officer.revoked_at.get_or_insert_with(Timestamp::now);
    let mut batch = Batch::new();
    batch.put(Cf::Officers, name.as_bytes().to_vec(), encode(&record));
    batch.delete(Cf::Tokens, record.token_hash.clone());
    crate::audit::record(
        &mut batch,
        crate::audit::AuditWhat::Officer {
            officer: name.to_owned(),
            role: record.officer.role.to_string(),
            change: "revoked".into(),
        },
    );
    store.commit(batch).await?;
    Ok(record.officer)
}

/// The officer a presented token belongs to, if any and not revoked.
pub fn authenticate(store: &Store, token: &str) -> Result<Option<Officer>, StoreError> {
    Ok(store
        .get(Cf::Tokens, &token_key(token))?
        .and_then(|bytes| decode::<Officer>(&bytes))
        .filter(|o| o.revoked_at.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn officers_are_unique_and_revocation_stops_their_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (officer, token) = add(&store, "anna", Role::Reviewer).await.unwrap();
        assert_eq!(authenticate(&store, &token).unwrap(), Some(officer));
        assert!(matches!(
            add(&store, "anna", Role::Admin).await,
            Err(OfficerError::Exists(_))
        ));
        assert!(matches!(
            add(&store, "no spaces", Role::Admin).await,
            Err(OfficerError::BadName(_))
        ));
        revoke(&store, "anna").await.unwrap();
        assert_eq!(authenticate(&store, &token).unwrap(), None);
        let listed = list(&store).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked_at.is_some());
        assert!(matches!(
            revoke(&store, "bob").await,
            Err(OfficerError::NotFound(_))
        ));
    }

    #[test]
    fn admin_holds_every_role_and_others_only_theirs() {
        let officer = |role| Officer {
            name: "x".into(),
            role,
            created_at: Timestamp::from_millis(0),
            revoked_at: None,
        };
        assert!(officer(Role::Admin).require(&[Role::Reviewer]).is_ok());
        assert!(officer(Role::Reviewer).require(&[Role::Reviewer]).is_ok());
        assert_eq!(
            officer(Role::Requester).require(&[Role::Reviewer]),
            Err(vec![Role::Reviewer])
        );
    }
}
