//! A node's view of its bloc's configuration chain: the versions it verified from the trust
//! anchor, the proposals for the next version with the signatures gathered so far, versions
//! that arrived early, and forks. Configurations may arrive in any order, any number of times,
//! from any member (gossip, pulls); every node that was offered the same objects ends at the
//! same head.

use std::collections::BTreeMap;

use super::{BlocError, Verified, config_hash, peek, verify_genesis, verify_successor};
use crate::envelope::{MultiSigned, PublicKey};
use crate::ids::Hash32;

/// Versions held that arrived before their predecessor, at most.
const MAX_EARLY: usize = 64;
/// Proposals for the next version held at once, at most.
const MAX_PROPOSALS: usize = 64;
/// Open proposals one member may have signed at once, at most: one member cannot crowd out
/// the others' proposals.
const MAX_PROPOSALS_PER_MEMBER: usize = 4;
/// Forks kept as evidence, at most (the first ones: they are what the members must resolve).
const MAX_FORKS: usize = 16;

/// What became of an offered configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// It (and perhaps versions that were waiting for it) became current: these versions, in
    /// order.
    Applied(Vec<u64>),
    /// A proposal for the next version: valid so far, short of the threshold (signatures held,
    /// signatures needed).
    Proposal {
        hash: Hash32,
        valid: usize,
        needed: usize,
    },
    /// Held until the versions before it arrive.
    Early { version: u64 },
    /// The current version again: nothing to do.
    Current,
    /// A different, validly signed configuration of a version already held: kept as evidence.
    Fork {
        version: u64,
        held: Hash32,
        other: Hash32,
    },
    /// Refused; nothing changed.
    Refused(BlocError),
}

#[derive(Debug, Clone)]
pub struct Chain {
    anchor: Hash32,
    versions: Vec<Verified>,
    proposals: BTreeMap<Hash32, MultiSigned>,
    early: BTreeMap<u64, Vec<MultiSigned>>,
    forks: Vec<(u64, Hash32, MultiSigned)>,
}

impl Chain {
    /// A chain that trusts only `anchor` (the genesis hash) and holds nothing yet.
    pub fn new(anchor: Hash32) -> Self {
        Self {
            anchor,
            versions: Vec::new(),
            proposals: BTreeMap::new(),
            early: BTreeMap::new(),
            forks: Vec::new(),
        }
    }

    pub fn anchor(&self) -> &Hash32 {
        &self.anchor
    }

    /// The current version, once the genesis is held.
    pub fn head(&self) -> Option<&Verified> {
        self.versions.last()
    }

    /// Every version held, genesis first.
    pub fn versions(&self) -> &[Verified] {
        &self.versions
    }

    pub fn version(&self, n: u64) -> Option<&Verified> {
        let i = usize::try_from(n.checked_sub(1)?).ok()?;
        self.versions.get(i)
    }

    /// Proposals for the next version, with the signatures gathered so far.
    pub fn proposals(&self) -> impl Iterator<Item = (&Hash32, &MultiSigned)> {
        self.proposals.iter()
    }

    /// Forks seen: (version, the other configuration's hash, the other configuration).
    pub fn forks(&self) -> &[(u64, Hash32, MultiSigned)] {
        &self.forks
    }

    /// Takes in one configuration, verifying it from the anchor.
    pub fn offer(&mut self, signed: &MultiSigned) -> Offered {
        let claimed = match peek(signed) {
            Ok(c) => c,
            Err(e) => return Offered::Refused(e),
        };
        let hash = config_hash(signed);
        let Some(head) = self.head() else {
            if claimed.version != 1 {
                return self.hold_early(claimed.version, signed);
            }
            return match verify_genesis(signed, &self.anchor) {
                Ok(v) => {
                    self.versions.push(v);
                    let mut applied = vec![1];
                    applied.extend(self.drain_early());
                    Offered::Applied(applied)
                }
                Err(e) => Offered::Refused(e),
            };
        };
        let head_version = head.config.version;
        if claimed.version <= head_version {
            let Some(held) = self.version(claimed.version) else {
                return Offered::Refused(BlocError::Malformed(format!(
                    "version {} is not a version",
                    claimed.version
                )));
            };
            if held.hash == hash {
                return if claimed.version == head_version {
                    Offered::Current
                } else {
                    Offered::Refused(BlocError::Rollback {
                        current: head_version,
                        found: claimed.version,
                    })
                };
            }
            return self.check_fork(claimed.version, hash, signed);
        }
        if claimed.version > head_version + 1 {
            return self.hold_early(claimed.version, signed);
        }
        match self.take_next(hash, signed) {
            Offered::Applied(mut applied) => {
                applied.extend(self.drain_early());
                Offered::Applied(applied)
            }
            other => other,
        }
    }

    /// A configuration for the version after the head: merged with a proposal of the same
    /// body, applied when it reaches the threshold.
    fn take_next(&mut self, hash: Hash32, signed: &MultiSigned) -> Offered {
        let Some(head) = self.head() else {
            return Offered::Refused(BlocError::Invalid("no genesis held yet".into()));
        };
        let mut merged = self
            .proposals
            .get(&hash)
            .cloned()
            .unwrap_or_else(|| MultiSigned {
                content_type: signed.content_type.clone(),
                body: signed.body.clone(),
                signatures: Vec::new(),
            });
        // Only the signatures of keys the two versions name are kept: an outsider's cannot
        // grow the object.
        let next = match peek(signed) {
            Ok(c) => c,
            Err(e) => return Offered::Refused(e),
        };
        let relevant = |k: &PublicKey| {
            [&head.config, &next].iter().any(|c| {
                c.members
                    .iter()
                    .any(|m| m.transport_key == *k || m.signing_keys.iter().any(|r| r.key == *k))
            })
        };
        for (key, outcome) in signed.verify_signatures() {
            if let Err(e) = outcome {
                return Offered::Refused(BlocError::BadSignature(format!("by key {key}: {e}")));
            }
        }
        for (key, signature) in &signed.signatures {
            if relevant(key) {
                merged.insert_signature(*key, *signature);
            }
        }
        match verify_successor(&head.config, &head.hash, &merged) {
            Ok(verified) => {
                let version = verified.config.version;
                self.versions.push(verified);
                self.proposals
                    .retain(|_, p| peek(p).is_ok_and(|c| c.version > version));
                Offered::Applied(vec![version])
            }
            // A proposal carries at least one member's signature (its proposer's): one that
            // carries none is an outsider's, or a forgery.
            Err(e @ BlocError::BelowThreshold { valid: 0, .. }) => Offered::Refused(e),
            Err(BlocError::BelowThreshold { valid, needed, .. }) => {
                if !self.proposals.contains_key(&hash)
                    && let Some(busy) = self.busy_signer(&merged)
                {
                    return Offered::Refused(BlocError::Invalid(format!(
                        "{busy} has already signed {MAX_PROPOSALS_PER_MEMBER} open proposals; sign one of them or let them lapse first"
                    )));
                }
                if !self.proposals.contains_key(&hash) && self.proposals.len() >= MAX_PROPOSALS {
                    return Offered::Refused(BlocError::Invalid(format!(
                        "{MAX_PROPOSALS} proposals are already open for version {}; sign or let one lapse first",
                        next.version
                    )));
                }
                self.proposals.insert(hash, merged);
                Offered::Proposal {
                    hash,
                    valid,
                    needed,
                }
            }
            Err(e) => Offered::Refused(e),
        }
    }

    /// A member among `proposal`'s signers that already signed the most open proposals
    /// allowed.
    fn busy_signer(&self, proposal: &MultiSigned) -> Option<crate::Jurisdiction> {
        let head = self.head()?;
        let signers = super::count_signers(&head.config, proposal).ok()?;
        signers.into_iter().find(|j| {
            self.proposals
                .values()
                .filter(|p| super::count_signers(&head.config, p).is_ok_and(|s| s.contains(j)))
                .count()
                >= MAX_PROPOSALS_PER_MEMBER
        })
    }

    /// Drops proposals issued before `oldest` (they lapse) and returns their hashes.
    pub fn prune_proposals(&mut self, oldest: crate::Timestamp) -> Vec<Hash32> {
        let stale: Vec<Hash32> = self
            .proposals
            .iter()
            .filter(|(_, p)| peek(p).is_ok_and(|c| c.issued_at < oldest))
            .map(|(h, _)| *h)
            .collect();
        for h in &stale {
            self.proposals.remove(h);
        }
        stale
    }

    /// The version and hash of another open proposal for the same version that `key` has
    /// signed, if any: a member signs one proposal per version.
    pub fn signed_other(&self, key: &PublicKey, except: &Hash32) -> Option<(u64, Hash32)> {
        let next = self.head()?.config.version + 1;
        self.proposals
            .iter()
            .filter(|(h, _)| *h != except)
            .find(|(_, p)| {
                p.signatures.iter().any(|(k, _)| k == key)
                    && peek(p).is_ok_and(|c| c.version == next)
            })
            .map(|(h, _)| (next, *h))
    }

    fn hold_early(&mut self, version: u64, signed: &MultiSigned) -> Offered {
        let held: usize = self.early.values().map(Vec::len).sum();
        let slot = self.early.entry(version).or_default();
        if !slot.contains(signed) {
            if held >= MAX_EARLY {
                return Offered::Refused(BlocError::Invalid(format!(
                    "{MAX_EARLY} versions are already waiting for their predecessors"
                )));
            }
            slot.push(signed.clone());
        }
        Offered::Early { version }
    }

    fn drain_early(&mut self) -> Vec<u64> {
        let mut applied = Vec::new();
        loop {
            let next = self.head().map_or(1, |h| h.config.version + 1);
            self.early.retain(|v, _| *v >= next);
            let Some(waiting) = self.early.remove(&next) else {
                break;
            };
            let before = self.versions.len();
            for signed in waiting {
                match self.offer(&signed) {
                    Offered::Applied(v) => {
                        applied.extend(v);
                        break;
                    }
                    _ => continue,
                }
            }
            if self.versions.len() == before {
                break;
            }
        }
        applied
    }

    fn check_fork(&mut self, version: u64, hash: Hash32, signed: &MultiSigned) -> Offered {
        let Some(held) = self.version(version).map(|v| v.hash) else {
            return Offered::Refused(BlocError::Malformed(format!(
                "version {version} is not held"
            )));
        };
        let valid = match version.checked_sub(1).and_then(|p| self.version(p)) {
            None => verify_genesis(signed, &self.anchor).map(|_| ()),
            Some(prev) => verify_successor(&prev.config, &prev.hash, signed).map(|_| ()),
        };
        match valid {
            Ok(()) => {
                if !self.forks.iter().any(|(_, h, _)| *h == hash) {
                    if self.forks.len() >= MAX_FORKS {
                        return Offered::Refused(BlocError::Invalid(format!(
                            "{MAX_FORKS} forks are already kept as evidence; this one is not kept"
                        )));
                    }
                    self.forks.push((version, hash, signed.clone()));
                }
                Offered::Fork {
                    version,
                    held,
                    other: hash,
                }
            }
            Err(BlocError::BelowThreshold { .. }) => Offered::Refused(BlocError::Rollback {
                current: self.head().map_or(0, |h| h.config.version),
                found: version,
            }),
            Err(e) => Offered::Refused(e),
        }
    }
}
