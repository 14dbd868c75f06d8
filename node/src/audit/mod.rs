//! The audit log: every case event, every read of case content, every officer and approval
//! change, every refusal of a peer's message, in an append-only Merkle log (RFC 9162 hashing)
//! that the node seals with signed checkpoints. Entries hold identifiers only, never content.
//!
//! Entries are appended by the store's writer in the same atomic write as the change they
//! record (see `store::Batch::audit`). This module makes entries, signs checkpoints, and
//! verifies a log and proves entries — from a store opened read-only, beside a running node,
//! so that auditors need not stop it.

use comity_protocol::audit::{Checkpoint, Cosignature};
use comity_protocol::merkle::{self, ConsistencyProof, InclusionProof};
use comity_protocol::{
    CaseEvent, CaseId, Hash32, Jurisdiction, SignedEnvelope, Timestamp, from_cbor, limits,
    to_canonical_cbor,
};
use serde::{Deserialize, Serialize};

use crate::store::{Batch, Cf, Store, StoreError};

pub use comity_protocol::audit::{
    AuditEntry, AuditWhat, CheckpointConsistency, EntryProof, check_consistency, check_entry,
    consistency_statement, entry_statements,
};

pub mod witness;

/// Adds an entry for `what` to `batch`.
pub fn record(batch: &mut Batch, what: AuditWhat) {
    let entry = AuditEntry {
        at: Timestamp::now(),
        what,
    };
    batch.audit(to_canonical_cbor(&entry).expect("audit entries encode"));
}

/// One version of the policy file, as this node started with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyVersion {
    /// 1 for the first version recorded, then one more per change.
    pub version: u64,
    pub at: Timestamp,
    /// BLAKE3 of the file; `None`: no file (manual review).
    pub hash: Option<Hash32>,
    /// What changed from the version before, rule by rule.
    pub changes: Vec<String>,
    /// The file as it was; `None` without a file.
    pub text: Option<String>,
}

fn version_key(version: u64) -> Vec<u8> {
    format!("policy/v/{version:016}").into_bytes()
}

/// Every recorded version of the policy, oldest first.
pub fn policy_versions(store: &Store) -> Result<Vec<PolicyVersion>, StoreError> {
    Ok(store
        .scan_prefix(Cf::Settings, b"policy/v/")?
        .into_iter()
        .filter_map(|(_, v)| ciborium::from_reader(v.as_slice()).ok())
        .collect())
}

/// Records the policy in force if it is not the one recorded last: a new kept version of the
/// file, and an audit entry with its hash and the rules that changed. `current` is the file's
/// text, `None` without one. Returns whether it changed.
pub async fn record_policy(store: &Store, current: Option<&str>) -> Result<bool, StoreError> {
    const KEY: &[u8] = b"policy";
    let policy_hash = current.map(|t| Hash32::of(t.as_bytes()));
    let value = policy_hash.map(|h| h.0.to_vec()).unwrap_or_default();
    let recorded = store.get(Cf::Settings, KEY)?;
    let versions = policy_versions(store)?;
    if recorded.as_deref() == Some(value.as_slice()) && !versions.is_empty() {
        return Ok(false);
    }
    let parse = |t: &str| crate::policy::parse(t).ok();
    let mut changes = match versions.last() {
        Some(last) => comity_protocol::policy::changes(
            last.text.as_deref().and_then(parse).as_ref(),
            current.and_then(parse).as_ref(),
        ),
        None if recorded.is_some() => {
            vec!["(the versions before this one were not kept)".to_owned()]
        }
        None => Vec::new(),
    };
    if recorded.as_deref() == Some(value.as_slice()) {
        // A store from before versions were kept, with this very policy: only keep it.
        changes = vec!["(the policy in force when versions began to be kept)".to_owned()];
    }
    let version = PolicyVersion {
        version: versions.last().map_or(1, |v| v.version + 1),
        at: Timestamp::now(),
        hash: policy_hash,
        changes: changes.clone(),
        text: current.map(str::to_owned),
    };
    let mut bytes = Vec::new();
    ciborium::into_writer(&version, &mut bytes).expect("a policy version encodes");
    let mut batch = Batch::new();
    if recorded.as_deref() != Some(value.as_slice()) {
        record(
            &mut batch,
            AuditWhat::Policy {
                policy_hash,
                changes,
            },
        );
    }
    batch.put(Cf::Settings, version_key(version.version), bytes);
    batch.put(Cf::Settings, KEY.to_vec(), value);
    store.commit(batch).await?;
    Ok(true)
}

/// Adds an entry for a stored case event.
pub fn record_event(batch: &mut Batch, envelope: &SignedEnvelope) {
    if let Ok(event) = from_cbor::<CaseEvent>(&envelope.body, limits::MAX_REQUEST_FRAME) {
        record(
            batch,
            AuditWhat::CaseEvent {
                case_id: event.case_id,
                event_id: Hash32::of(&envelope.to_bytes()),
                author: event.author,
                kind: event.kind.code().to_owned(),
            },
        );
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no entry {0} in the audit log")]
    NoEntry(u64),
    #[error("no checkpoint covers entry {0} yet; wait for the next one")]
    NotCheckpointed(u64),
    #[error("no checkpoint at tree size {0}")]
    NoCheckpoint(u64),
    #[error("{0}")]
    Proof(#[from] merkle::MerkleError),
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("no signing key to check the checkpoints with")]
    NoKey,
}

fn index_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// Every leaf hash of the log, in order, as stored.
fn leaves(store: &Store) -> Result<Vec<[u8; 32]>, AuditError> {
    Ok(store
        .scan(Cf::AuditLeaves)?
        .into_iter()
        .filter_map(|(_, v)| <[u8; 32]>::try_from(&v[..]).ok())
        .collect())
}

fn checkpoints(store: &Store) -> Result<Vec<(u64, SignedEnvelope)>, AuditError> {
    Ok(store
        .scan(Cf::Checkpoints)?
        .into_iter()
        .filter_map(|(k, v)| {
            let size = u64::from_be_bytes(<[u8; 8]>::try_from(&k[..]).ok()?);
            let envelope = SignedEnvelope::from_bytes(&v, limits::MAX_RESPONSE_FRAME).ok()?;
            Some((size, envelope))
        })
        .collect())
}

/// The latest signed checkpoint, to publish to the bloc (one read, whatever the history).
pub fn latest_checkpoint(store: &Store) -> Result<Option<SignedEnvelope>, AuditError> {
    let Some((_, bytes)) = store.last(Cf::Checkpoints)? else {
        return Ok(None);
    };
    Ok(SignedEnvelope::from_bytes(&bytes, limits::MAX_RESPONSE_FRAME).ok())
}

/// Where the log's right edge is kept, as of the last checkpoint (`Cf::Settings`).
const FRONTIER_KEY: &[u8] = b"audit-frontier";

/// The log's right edge as of the last checkpoint, extended by every leaf appended since:
/// a checkpoint reads only the new leaves. A missing or damaged stored edge is rebuilt from
/// the first leaf.
fn frontier(store: &Store) -> Result<merkle::Frontier, AuditError> {
    let stored = store
        .get(Cf::Settings, FRONTIER_KEY)?
        .and_then(|b| from_cbor::<merkle::Frontier>(&b, limits::MAX_REQUEST_FRAME).ok())
        .filter(merkle::Frontier::is_well_formed);
    let mut frontier = stored.unwrap_or_default();
    let new = store.scan_range(Cf::AuditLeaves, &index_key(frontier.size()), &[0xff; 9])?;
    for (key, leaf) in new {
        let (Ok(index), Ok(leaf)) = (
            <[u8; 8]>::try_from(&key[..]),
            <[u8; 32]>::try_from(&leaf[..]),
        ) else {
            continue;
        };
        if u64::from_be_bytes(index) != frontier.size() {
            // Not the next leaf: the stored edge does not fit this log; start again.
            return rebuilt(store);
        }
        frontier.push(leaf);
    }
    Ok(frontier)
}

fn rebuilt(store: &Store) -> Result<merkle::Frontier, AuditError> {
    let mut frontier = merkle::Frontier::default();
    for leaf in leaves(store)? {
        frontier.push(leaf);
    }
    Ok(frontier)
}

/// The tree sizes at which the log was checkpointed, oldest first.
pub fn checkpoint_sizes(store: &Store) -> Result<Vec<u64>, AuditError> {
    Ok(checkpoints(store)?
        .into_iter()
        .map(|(size, _)| size)
        .collect())
}

/// Signs and stores a checkpoint of the log as it stands, if it grew since the last one.
pub async fn checkpoint(
    store: &Store,
    log: &Jurisdiction,
    key: &ed25519_dalek::SigningKey,
) -> Result<Option<Checkpoint>, AuditError> {
    let frontier = frontier(store)?;
    let size = frontier.size();
    let last = store
        .last(Cf::Checkpoints)?
        .and_then(|(k, _)| <[u8; 8]>::try_from(&k[..]).ok())
        .map(u64::from_be_bytes);
    if size == 0 || last == Some(size) {
        return Ok(None);
    }
    let checkpoint = Checkpoint {
        log: log.clone(),
        tree_size: size,
        root: Hash32(frontier.root()),
        at: Timestamp::now(),
    };
    let signed =
        SignedEnvelope::sign(&checkpoint, key).map_err(|e| AuditError::Sign(e.to_string()))?;
    let mut batch = Batch::new();
    batch.put(Cf::Checkpoints, index_key(size).to_vec(), signed.to_bytes());
    batch.put(
        Cf::Settings,
        FRONTIER_KEY.to_vec(),
        to_canonical_cbor(&frontier).map_err(|e| AuditError::Sign(e.to_string()))?,
    );
    store.commit(batch).await?;
    Ok(Some(checkpoint))
}

/// The outcome of verifying a whole log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Verification {
    pub entries: u64,
    pub checkpoints: usize,
    /// Every problem found, each naming the entry or checkpoint; empty when the log holds.
    pub problems: Vec<String>,
}

/// Recomputes the whole log: every entry against its leaf hash, every checkpoint's signature
/// (with one of `signers`, the node's signing keys over time: a checkpoint signed before a
/// rotation verifies with the key of its time) and root.
pub fn verify(
    store: &Store,
    signers: &[ed25519_dalek::VerifyingKey],
) -> Result<Verification, AuditError> {
    let mut report = Verification::default();
    let entries = store.scan(Cf::Audit)?;
    let leaves = store.scan(Cf::AuditLeaves)?;
    report.entries = entries.len() as u64;
    let mut hashes = Vec::with_capacity(entries.len());
    for (i, (key, entry)) in entries.iter().enumerate() {
        let index = <[u8; 8]>::try_from(&key[..])
            .map(u64::from_be_bytes)
            .unwrap_or(u64::MAX);
        if index != i as u64 {
            report
                .problems
                .push(format!("entry {i} is missing: the log jumps to {index}"));
        }
        let leaf = merkle::leaf_hash(entry);
        match leaves.get(i).map(|(_, v)| v.as_slice()) {
            Some(stored) if stored == leaf => {}
            _ => report.problems.push(format!(
                "entry {i} was altered: its bytes no longer hash to the leaf recorded when it was appended"
            )),
        }
        if from_cbor::<AuditEntry>(entry, limits::MAX_REQUEST_FRAME).is_err() {
            report
                .problems
                .push(format!("entry {i} does not decode as an audit entry"));
        }
        hashes.push(leaf);
    }
    for (size, envelope) in checkpoints(store)? {
        report.checkpoints += 1;
        let signer = signers
            .iter()
            .find(|k| k.as_bytes() == &envelope.signer.0)
            .or(signers.last())
            .ok_or(AuditError::NoKey)?;
        match envelope.open::<Checkpoint>(signer) {
            Err(e) => report.problems.push(format!(
                "checkpoint at size {size}: signature does not verify ({e})"
            )),
            Ok(checkpoint) => {
                if checkpoint.tree_size as usize > hashes.len() {
                    report.problems.push(format!(
                        "checkpoint at size {size} covers more entries than the log holds ({})",
                        hashes.len()
                    ));
                } else if merkle::root(&hashes[..checkpoint.tree_size as usize])
                    != checkpoint.root.0
                {
                    report.problems.push(format!(
                        "checkpoint at size {size}: the log's first {size} entries no longer have the signed root; history was rewritten"
                    ));
                }
            }
        }
    }
    Ok(report)
}

/// Proves entry `index` against the checkpoint covering it that the most witnesses cosigned
/// (of the latest cosignature kept from each), else against the first that covers it.
pub fn prove(store: &Store, index: u64) -> Result<EntryProof, AuditError> {
    Ok(prove_all(store, &[index])?.remove(0))
}

/// Proves several entries against one checkpoint: the one covering them all that the most
/// witnesses cosigned, else the first that covers them all. One read of the log for all.
pub fn prove_all(store: &Store, indices: &[u64]) -> Result<Vec<EntryProof>, AuditError> {
    let Some(&last) = indices.iter().max() else {
        return Ok(Vec::new());
    };
    let entries = indices
        .iter()
        .map(|i| {
            store
                .get(Cf::Audit, &index_key(*i))?
                .ok_or(AuditError::NoEntry(*i))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let all = checkpoints(store)?;
    let roots: std::collections::BTreeMap<u64, Hash32> = all
        .iter()
        .filter_map(|(size, c)| {
            let c: Checkpoint = from_cbor(&c.body, limits::MAX_RESPONSE_FRAME).ok()?;
            Some((*size, c.root))
        })
        .collect();
    // Cosignatures kept (the latest of each witness) that match one of our checkpoints.
    let cosigned: Vec<(u64, SignedEnvelope)> = store
        .scan(Cf::Cosignatures)?
        .into_iter()
        .filter_map(|(_, v)| {
            let envelope = SignedEnvelope::from_bytes(&v, limits::MAX_RESPONSE_FRAME).ok()?;
            let c: Cosignature = from_cbor(&envelope.body, limits::MAX_RESPONSE_FRAME).ok()?;
            (roots.get(&c.tree_size) == Some(&c.root)).then_some((c.tree_size, envelope))
        })
        .collect();
    let best = roots
        .keys()
        .filter(|size| **size > last)
        .map(|size| (cosigned.iter().filter(|(s, _)| s == size).count(), *size))
        .filter(|(count, _)| *count > 0)
        // Most cosignatures, then the smallest tree.
        .max_by_key(|(count, size)| (*count, std::cmp::Reverse(*size)))
        .map(|(_, size)| size);
    let (size, checkpoint) = match best {
        Some(size) => all.into_iter().find(|(s, _)| *s == size),
        None => all.into_iter().find(|(size, _)| *size > last),
    }
    .ok_or(AuditError::NotCheckpointed(last))?;
    let leaves = leaves(store)?;
    let cosignatures: Vec<SignedEnvelope> = cosigned
        .into_iter()
        .filter(|(s, _)| *s == size)
        .map(|(_, c)| c)
        .collect();
    indices
        .iter()
        .zip(entries)
        .map(|(index, entry)| {
            Ok(EntryProof {
                entry,
                proof: InclusionProof::generate(&leaves[..size as usize], *index)?,
                checkpoint: checkpoint.clone(),
                cosignatures: cosignatures.clone(),
            })
        })
        .collect()
}

/// Up to `limit` entries from index `from`, each with its index: what an auditor reads.
pub fn entries(store: &Store, from: u64, limit: u64) -> Result<Vec<(u64, AuditEntry)>, AuditError> {
    let end = from.saturating_add(limit);
    Ok(store
        .scan_range(Cf::Audit, &from.to_be_bytes(), &end.to_be_bytes())?
        .into_iter()
        .filter_map(|(k, v)| {
            let index = u64::from_be_bytes(<[u8; 8]>::try_from(&k[..]).ok()?);
            Some((index, from_cbor(&v, limits::MAX_REQUEST_FRAME).ok()?))
        })
        .collect())
}

/// The audit entry indices of `case_id`'s stored events, by event id.
pub fn case_event_entries(
    store: &Store,
    case_id: &CaseId,
) -> Result<std::collections::BTreeMap<Hash32, u64>, AuditError> {
    // A scan of the whole log: exports are rare, and the log keeps no index by case.
    Ok(store
        .scan(Cf::Audit)?
        .into_iter()
        .filter_map(|(k, v)| {
            let index = u64::from_be_bytes(<[u8; 8]>::try_from(&k[..]).ok()?);
            match from_cbor::<AuditEntry>(&v, limits::MAX_REQUEST_FRAME)
                .ok()?
                .what
            {
                AuditWhat::CaseEvent {
                    case_id: c,
                    event_id,
                    ..
                } if c == *case_id => Some((event_id, index)),
                _ => None,
            }
        })
        .collect())
}

pub fn consistency(store: &Store, old: u64, new: u64) -> Result<CheckpointConsistency, AuditError> {
    let all = checkpoints(store)?;
    let find = |size: u64| {
        all.iter()
            .find(|(s, _)| *s == size)
            .map(|(_, c)| c.clone())
            .ok_or(AuditError::NoCheckpoint(size))
    };
    let (old_checkpoint, new_checkpoint) = (find(old)?, find(new)?);
    let leaves = leaves(store)?;
    let proof = ConsistencyProof::generate(&leaves[..new as usize], old)?;
    Ok(CheckpointConsistency {
        proof,
        old: old_checkpoint,
        new: new_checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checkpoints_extend_the_stored_edge_and_rebuild_it_when_it_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let log: Jurisdiction = "FR".parse().unwrap();
        let grow = |n: usize| {
            let store = store.clone();
            async move {
                for i in 0..n {
                    let mut batch = Batch::new();
                    record(
                        &mut batch,
                        AuditWhat::Officer {
                            officer: format!("o{i}"),
                            role: "clerk".into(),
                            change: "added".into(),
                            by: None,
                        },
                    );
                    store.commit(batch).await.unwrap();
                }
            }
        };
        let root_of_all = |store: &Store| Hash32(merkle::root(&leaves(store).unwrap()));
        grow(5).await;
        let first = checkpoint(&store, &log, &key).await.unwrap().unwrap();
        assert_eq!((first.tree_size, first.root), (5, root_of_all(&store)));
        assert!(
            checkpoint(&store, &log, &key).await.unwrap().is_none(),
            "no growth"
        );
        grow(6).await;
        let second = checkpoint(&store, &log, &key).await.unwrap().unwrap();
        assert_eq!((second.tree_size, second.root), (11, root_of_all(&store)));
        let latest = latest_checkpoint(&store).unwrap().unwrap();
        assert_eq!(
            latest.open::<Checkpoint>(&key.verifying_key()).unwrap(),
            second
        );
        // A stored edge that does not fit (damaged): rebuilt from the leaves.
        let mut batch = Batch::new();
        batch.put(Cf::Settings, FRONTIER_KEY.to_vec(), b"garbage".to_vec());
        store.commit(batch).await.unwrap();
        grow(1).await;
        let third = checkpoint(&store, &log, &key).await.unwrap().unwrap();
        assert_eq!((third.tree_size, third.root), (12, root_of_all(&store)));
    }

    #[tokio::test]
    async fn a_change_of_policy_is_an_audit_entry_with_its_rules_and_a_kept_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let entries = |store: &Store| store.scan(Cf::Audit).unwrap().len();
        let first = "[[agreement]]\npartner = \"FR\"\ninstruments = [\"eu-epoc\"]\ndata_categories = [\"subscriber\"]\n";
        assert!(record_policy(&store, Some(first)).await.unwrap());
        assert!(
            !record_policy(&store, Some(first)).await.unwrap(),
            "unchanged"
        );
        assert_eq!(entries(&store), 1);
        let second = format!("refused_offences = [\"political\"]\n{first}expires = 2020-01-01\n");
        assert!(record_policy(&store, Some(&second)).await.unwrap());
        assert!(record_policy(&store, None).await.unwrap(), "removed");
        assert!(!record_policy(&store, None).await.unwrap());
        assert_eq!(entries(&store), 3);

        let versions = policy_versions(&store).unwrap();
        assert_eq!(versions.len(), 3);
        assert_eq!(versions[1].text.as_deref(), Some(second.as_str()));
        assert_eq!(
            versions[1].changes,
            [
                "~ agreement with FR: expires never → 2020-01-01T00:00:00.000Z",
                "~ refused_offences: none → political"
            ]
        );
        assert_eq!(
            versions[2].changes,
            [
                "- the policy file (now: manual review)",
                "- agreement with FR",
                "~ refused_offences: political → none"
            ]
        );
        // The audit entry carries the same lines.
        let last: AuditEntry = from_cbor(
            &store.scan(Cf::Audit).unwrap()[1].1,
            limits::MAX_REQUEST_FRAME,
        )
        .unwrap();
        assert!(
            matches!(last.what, AuditWhat::Policy { changes, .. } if changes == versions[1].changes)
        );
    }
}
