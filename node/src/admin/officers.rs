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
    /// Independent oversight: reads case metadata, the access log, refusals, overrides of the
    /// policy and the audit log; never case content.
    Oversight,
    /// Speaks for this member in the bloc's governance: proposes and signs new versions of
    /// the bloc configuration.
    Governor,
    /// Operates the node: officers, faults, and every officer's actions.
    Admin,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Requester,
        Role::Approver,
        Role::Reviewer,
        Role::Auditor,
        Role::Oversight,
        Role::Governor,
        Role::Admin,
    ];

    /// Whether appointing or revoking an officer of this role takes two admins: those who
    /// oversee the node or speak for it in the bloc must not be appointed or removed by the
    /// overseen alone, nor a further admin once there are two.
    pub fn needs_two_admins(self, active_admins: usize) -> bool {
        match self {
            Role::Auditor | Role::Oversight | Role::Governor => true,
            // The first admins are made by `comity init` and by one admin: there is no
            // second to ask yet.
            Role::Admin => active_admins >= 2,
            Role::Requester | Role::Approver | Role::Reviewer => false,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Approver => "approver",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Oversight => "oversight",
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
    /// Who appointed the officer: one admin, or for the roles that need it two (who proposed,
    /// who approved). `comity init` for the first admin.
    #[serde(default)]
    pub appointed_by: Vec<String>,
    /// Who revoked it, likewise.
    #[serde(default)]
    pub revoked_by: Vec<String>,
}

/// A change to the officers that waits for a second admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingChange {
    pub name: String,
    pub role: Role,
    pub change: Change,
    pub proposed_by: String,
    pub proposed_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Appoint,
    Revoke,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Appoint => "appointment",
            Change::Revoke => "revocation",
        })
    }
}

/// What an appointment, revocation or approval did.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// An officer was made: its token, shown once.
    Added(Officer, String),
    Revoked(Officer),
    /// The change waits for another admin's approval.
    Pending(PendingChange),
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
        "a {change} of {name} is already proposed by {by}; another admin approves it (`comity officer approve {name}`) before another is proposed"
    )]
    PendingExists {
        change: Change,
        name: String,
        by: String,
    },
    #[error(
        "{0} proposed this change but is no longer an admin: it cannot be approved; an admin proposes it again"
    )]
    ProposerGone(String),
    #[error(
        "nothing is proposed for officer {0:?}: an admin proposes with `comity officer add` or `revoke`"
    )]
    NothingPending(String),
    #[error(
        "four-eyes: {0} proposed this change and cannot approve it; another admin must (`comity officer approve`)"
    )]
    FourEyes(String),
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

fn check_name(name: &str) -> Result<(), OfficerError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(OfficerError::BadName(name.to_owned()))
    }
}

/// Where a change waiting for a second admin is kept: beside the officers, under a key no
/// officer name can have.
fn pending_key(name: &str) -> Vec<u8> {
    format!("~pending/{name}").into_bytes()
}

fn officer_audit(batch: &mut Batch, name: &str, role: Role, change: &str, by: &[String]) {
    crate::audit::record(
        batch,
        crate::audit::AuditWhat::Officer {
            officer: name.to_owned(),
            role: role.to_string(),
            change: change.to_owned(),
            by: (!by.is_empty()).then(|| by.join(", ")),
        },
    );
}

/// Creates an officer with a new token (returned once, stored hashed), synced, as
/// `appointed_by` did: the start of a node (`comity init`) or one admin for a role that needs
/// no second. The rules of who may appoint whom are [`appoint`]'s.
pub async fn add(store: &Store, name: &str, role: Role) -> Result<(Officer, String), OfficerError> {
    create(store, name, role, &["comity init".to_owned()], None).await
}

async fn create(
    store: &Store,
    name: &str,
    role: Role,
    appointed_by: &[String],
    pending: Option<&str>,
) -> Result<(Officer, String), OfficerError> {
    check_name(name)?;
    let officer = Officer {
        name: name.to_owned(),
        role,
        created_at: Timestamp::now(),
        revoked_at: None,
        appointed_by: appointed_by.to_vec(),
        revoked_by: Vec::new(),
    };
    let token = generate();
    let mut batch = Batch::new();
    batch.require_absent(Cf::Officers, name.as_bytes().to_vec());
    if let Some(name) = pending {
        batch.delete(Cf::Officers, pending_key(name));
    }
    let record = OfficerRecord {
        officer: officer.clone(),
        token_hash: token_key(&token),
    };
    batch.put(Cf::Officers, name.as_bytes().to_vec(), encode(&record));
    batch.put(Cf::Tokens, token_key(&token), encode(&officer));
    officer_audit(&mut batch, name, role, "added", appointed_by);
    match store.commit(batch).await {
        Ok(()) => Ok((officer, token)),
        Err(StoreError::Exists(_)) => Err(OfficerError::Exists(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

fn active_admins(store: &Store) -> Result<usize, OfficerError> {
    Ok(list(store)?
        .iter()
        .filter(|o| o.role == Role::Admin && o.revoked_at.is_none())
        .count())
}

async fn propose(
    store: &Store,
    name: &str,
    role: Role,
    change: Change,
    by: &str,
) -> Result<Outcome, OfficerError> {
    if let Some(existing) = pending(store, name)? {
        return Err(OfficerError::PendingExists {
            change: existing.change,
            name: name.to_owned(),
            by: existing.proposed_by,
        });
    }
    let proposal = PendingChange {
        name: name.to_owned(),
        role,
        change,
        proposed_by: by.to_owned(),
        proposed_at: Timestamp::now(),
    };
    let mut batch = Batch::new();
    // Two admins proposing at once: one proposal stands, the other is told.
    batch.require_absent(Cf::Officers, pending_key(name));
    batch.put(Cf::Officers, pending_key(name), encode(&proposal));
    officer_audit(
        &mut batch,
        name,
        role,
        &format!("{change} proposed"),
        &[by.to_owned()],
    );
    match store.commit(batch).await {
        Ok(()) => Ok(Outcome::Pending(proposal)),
        Err(StoreError::Exists(_)) => Err(match pending(store, name)? {
            Some(p) => OfficerError::PendingExists {
                change: p.change,
                name: name.to_owned(),
                by: p.proposed_by,
            },
            None => OfficerError::Exists(name.to_owned()),
        }),
        Err(e) => Err(e.into()),
    }
}

/// `by`, an admin, appoints an officer: at once for most roles; for those that need two
/// admins ([`Role::needs_two_admins`]), a proposal that another admin approves ([`approve`]).
pub async fn appoint(
    store: &Store,
    name: &str,
    role: Role,
    by: &str,
) -> Result<Outcome, OfficerError> {
    check_name(name)?;
    if store.get(Cf::Officers, name.as_bytes())?.is_some() {
        return Err(OfficerError::Exists(name.to_owned()));
    }
    if let Some(p) = pending(store, name)? {
        return Err(OfficerError::PendingExists {
            change: p.change,
            name: name.to_owned(),
            by: p.proposed_by,
        });
    }
    if role.needs_two_admins(active_admins(store)?) {
        return propose(store, name, role, Change::Appoint, by).await;
    }
    let (officer, token) = create(store, name, role, &[by.to_owned()], None).await?;
    Ok(Outcome::Added(officer, token))
}

/// `by`, an admin other than the one who proposed it, approves a waiting change.
pub async fn approve(store: &Store, name: &str, by: &str) -> Result<Outcome, OfficerError> {
    let proposal =
        pending(store, name)?.ok_or_else(|| OfficerError::NothingPending(name.to_owned()))?;
    if proposal.proposed_by == by {
        return Err(OfficerError::FourEyes(by.to_owned()));
    }
    // A proposal outlives its proposer's office only as a record: it is not approved then.
    let proposer_active = list(store)?
        .iter()
        .any(|o| o.name == proposal.proposed_by && o.role == Role::Admin && o.revoked_at.is_none());
    if !proposer_active {
        return Err(OfficerError::ProposerGone(proposal.proposed_by));
    }
    let both = [proposal.proposed_by.clone(), by.to_owned()];
    match proposal.change {
        Change::Appoint => {
            let (officer, token) = create(store, name, proposal.role, &both, Some(name)).await?;
            Ok(Outcome::Added(officer, token))
        }
        Change::Revoke => Ok(Outcome::Revoked(
            revoke_now(store, name, &both, true).await?,
        )),
    }
}

/// The change waiting for a second admin on officer `name`, if any.
pub fn pending(store: &Store, name: &str) -> Result<Option<PendingChange>, OfficerError> {
    Ok(store
        .get(Cf::Officers, &pending_key(name))?
        .and_then(|bytes| decode(&bytes)))
}

/// Every change waiting for a second admin.
pub fn pending_changes(store: &Store) -> Result<Vec<PendingChange>, OfficerError> {
    Ok(store
        .scan_prefix(Cf::Officers, b"~pending/")?
        .iter()
        .filter_map(|(_, v)| decode(v))
        .collect())
}

/// Every officer, revoked ones included, by name.
pub fn list(store: &Store) -> Result<Vec<Officer>, OfficerError> {
    Ok(store
        .scan(Cf::Officers)?
        .iter()
        .filter(|(k, _)| !k.starts_with(b"~"))
        .filter_map(|(_, v)| decode::<OfficerRecord>(v))
        .map(|r| r.officer)
        .collect())
}

/// `by`, an admin, revokes an officer: its token stops working at once, or, for the roles that
/// need two admins, once another admin approves. The record stays, for the audit.
pub async fn revoke(store: &Store, name: &str, by: &str) -> Result<Outcome, OfficerError> {
    let record = stored(store, name)?;
    if record.officer.revoked_at.is_none()
        && record.officer.role.needs_two_admins(active_admins(store)?)
    {
        return propose(store, name, record.officer.role, Change::Revoke, by).await;
    }
    Ok(Outcome::Revoked(
        revoke_now(store, name, &[by.to_owned()], false).await?,
    ))
}

fn stored(store: &Store, name: &str) -> Result<OfficerRecord, OfficerError> {
    let bytes = store
        .get(Cf::Officers, name.as_bytes())?
        .ok_or_else(|| OfficerError::NotFound(name.to_owned()))?;
    decode(&bytes).ok_or_else(|| OfficerError::NotFound(name.to_owned()))
}

async fn revoke_now(
    store: &Store,
    name: &str,
    by: &[String],
    approved: bool,
) -> Result<Officer, OfficerError> {
    let mut record = stored(store, name)?;
    let mut batch = Batch::new();
    if approved {
        batch.delete(Cf::Officers, pending_key(name));
    }
    if record.officer.revoked_at.is_none() {
        record.officer.revoked_at = Some(Timestamp::now());
        record.officer.revoked_by = by.to_vec();
        officer_audit(&mut batch, name, record.officer.role, "revoked", by);
    }
    batch.put(Cf::Officers, name.as_bytes().to_vec(), encode(&record));
    batch.delete(Cf::Tokens, record.token_hash.clone());
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
        revoke(&store, "anna", "admin").await.unwrap();
        assert_eq!(authenticate(&store, &token).unwrap(), None);
        let listed = list(&store).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked_at.is_some());
        assert!(matches!(
            revoke(&store, "bob", "admin").await,
            Err(OfficerError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn oversight_is_appointed_and_revoked_by_two_admins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        add(&store, "admin", Role::Admin).await.unwrap();
        // With one admin, a second is made by that admin alone (nobody else to ask).
        let Outcome::Added(second, _) = appoint(&store, "admin2", Role::Admin, "admin")
            .await
            .unwrap()
        else {
            panic!("the second admin is made at once");
        };
        assert_eq!(second.appointed_by, ["admin"]);
        for role in [Role::Auditor, Role::Oversight, Role::Governor, Role::Admin] {
            let name = format!("new-{role}");
            let Outcome::Pending(p) = appoint(&store, &name, role, "admin").await.unwrap() else {
                panic!("one admin cannot appoint a {role}");
            };
            assert_eq!(
                (p.change, p.proposed_by.as_str()),
                (Change::Appoint, "admin")
            );
            assert!(
                list(&store).unwrap().iter().all(|o| o.name != name),
                "not yet an officer"
            );
            assert!(matches!(
                appoint(&store, &name, role, "admin2").await,
                Err(OfficerError::PendingExists { .. })
            ));
            assert!(matches!(
                approve(&store, &name, "admin").await,
                Err(OfficerError::FourEyes(_))
            ));
            let Outcome::Added(officer, token) = approve(&store, &name, "admin2").await.unwrap()
            else {
                panic!("approved");
            };
            assert_eq!(officer.appointed_by, ["admin", "admin2"]);
            assert_eq!(
                authenticate(&store, &token).unwrap().map(|o| o.role),
                Some(role)
            );
        }
        // Revoking an auditor waits for the second admin too; its token works until then.
        let Outcome::Pending(_) = revoke(&store, "new-auditor", "admin2").await.unwrap() else {
            panic!("one admin cannot revoke an auditor");
        };
        assert!(
            list(&store)
                .unwrap()
                .iter()
                .any(|o| o.name == "new-auditor" && o.revoked_at.is_none())
        );
        assert_eq!(pending_changes(&store).unwrap().len(), 1);
        let Outcome::Revoked(gone) = approve(&store, "new-auditor", "admin").await.unwrap() else {
            panic!("revoked");
        };
        assert_eq!(gone.revoked_by, ["admin2", "admin"]);
        assert!(pending_changes(&store).unwrap().is_empty());
        assert!(matches!(
            approve(&store, "new-auditor", "admin").await,
            Err(OfficerError::NothingPending(_))
        ));
        // A name with a proposal waiting is not appointed at once under another role.
        let Outcome::Pending(_) = appoint(&store, "inspector", Role::Oversight, "admin")
            .await
            .unwrap()
        else {
            panic!("proposed");
        };
        assert!(matches!(
            appoint(&store, "inspector", Role::Reviewer, "admin2").await,
            Err(OfficerError::PendingExists { .. })
        ));
        // A proposer who is no longer an admin: the proposal cannot be approved.
        add(&store, "admin3", Role::Admin).await.unwrap();
        revoke_now(&store, "admin", &["admin2".into(), "admin3".into()], false)
            .await
            .unwrap();
        assert!(matches!(
            approve(&store, "inspector", "admin2").await,
            Err(OfficerError::ProposerGone(_))
        ));
        // Other roles: one admin, at once.
        assert!(matches!(
            appoint(&store, "rev", Role::Reviewer, "admin")
                .await
                .unwrap(),
            Outcome::Added(..)
        ));
    }

    #[test]
    fn admin_holds_every_role_and_others_only_theirs() {
        let officer = |role| Officer {
            name: "x".into(),
            role,
            created_at: Timestamp::from_millis(0),
            revoked_at: None,
            appointed_by: Vec::new(),
            revoked_by: Vec::new(),
        };
        assert!(officer(Role::Admin).require(&[Role::Reviewer]).is_ok());
        assert!(officer(Role::Reviewer).require(&[Role::Reviewer]).is_ok());
        assert_eq!(
            officer(Role::Requester).require(&[Role::Reviewer]),
            Err(vec![Role::Reviewer])
        );
    }
}
