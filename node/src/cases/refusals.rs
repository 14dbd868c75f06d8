//! Refusals of what members send: kept so that operators and auditors see what was refused
//! from whom and why, within bounds a member cannot push. Per peer and code the store keeps a
//! tally and the latest few refusals (older ones are overwritten), and the audit log gets one
//! entry per hour with the count of those in between, whatever case ids the sender invents.
//! Tallies are counted in memory and written at most once a second each, with the refusal of
//! the moment as a sample: a flood of refusals costs a write a second, not a write each (a
//! stop or a crash loses at most the last second's count).
//!
//! An equivocation (a member signing two different events as the same number of its own in one
//! case) is refused like any invalid event, and both signed envelopes are kept as evidence: once
//! per author, case and number, 16 per author at most.
//!
//! Keys (`Cf::Refusals`): `t/{member or peer}/{code}` → the tally; `s/{member or peer}/{code}/{slot}`
//! → a refusal; `e/{author}/{case}/{seq}` → an equivocation. Stores from before this layout keep
//! their older records, which are listed too.

use std::time::Duration;

use comity_protocol::{CaseId, RejectCode, Timestamp};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::record::{Refusal, decode, encode};
use super::{CaseError, Cases};
use crate::store::{Batch, Cf};

/// A refusal identical to one recorded less than this long ago is not recorded again.
const REFUSAL_REPEAT_WINDOW: Duration = Duration::from_secs(3600);
/// Distinct recent refusals remembered for that.
const MAX_RECENT_REFUSALS: usize = 10_000;
/// Refusals kept per peer and code: the latest ones.
const SAMPLES: u64 = 16;
/// One audit entry per peer and code in this long; the refusals between are counted in it.
const AUDIT_WINDOW_MS: i64 = 3_600_000;

/// A tally is written at most this often (its count is kept here in between).
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// Tallies counted in memory at once (one per member or peer and code).
const MAX_COUNTED: usize = 4096;

/// A tally as counted, when it was last written, and what is still to write (the sample's
/// key and refusal) when counts came since.
#[derive(Debug)]
pub(super) struct Counted {
    tally: Tally,
    written: Option<std::time::Instant>,
    pending: Option<(Vec<u8>, Refusal)>,
}

/// Equivocations kept per author: the first ones are the evidence that matters.
const MAX_EQUIVOCATIONS: usize = 16;

/// Two different events a member signed as the same number of its own in one case, as kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EquivocationRecord {
    pub at: Timestamp,
    /// The member that sent the second one (the author, or the member that passed it on).
    pub from: comity_protocol::Jurisdiction,
    pub author: comity_protocol::Jurisdiction,
    pub case_id: CaseId,
    pub seq: u64,
    pub existing: comity_protocol::SignedEnvelope,
    pub offered: comity_protocol::SignedEnvelope,
}

/// The refusals of one kind from one peer, all told.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    pub first_at: Option<Timestamp>,
    pub last_at: Option<Timestamp>,
    /// When the last audit entry for these was written.
    pub audited_at: Option<Timestamp>,
    /// Refusals since that entry, counted in the next one.
    pub unaudited: u64,
}

/// One more refusal at `now`: the new tally, the slot its sample overwrites, and, when it is
/// audited, how many went unaudited before it.
pub(super) fn tally_step(held: Option<Tally>, now: Timestamp) -> (Tally, u64, Option<u64>) {
    let mut tally = held.unwrap_or_default();
    let slot = tally.count % SAMPLES;
    tally.count += 1;
    tally.first_at.get_or_insert(now);
    tally.last_at = Some(now);
    let due = tally
        .audited_at
        .is_none_or(|at| now.as_millis().saturating_sub(at.as_millis()) >= AUDIT_WINDOW_MS);
    if due {
        let repeats = std::mem::take(&mut tally.unaudited);
        tally.audited_at = Some(now);
        (tally, slot, Some(repeats))
    } else {
        tally.unaudited += 1;
        (tally, slot, None)
    }
}

/// A tally's write: the tally and its sample, in one batch.
fn tally_batch(tally_key: Vec<u8>, tally: &Tally, sample_key: Vec<u8>, refusal: &Refusal) -> Batch {
    let mut batch = Batch::new();
    batch.put(Cf::Refusals, tally_key, encode(tally));
    batch.put(Cf::Refusals, sample_key, encode(refusal));
    batch
}

impl Cases {
    /// Keeps a refusal (synced) so that operators and auditors can see what was refused from
    /// whom and why; the refused message itself is not applied.
    pub(super) async fn record_refusal(
        &self,
        peer: PeerId,
        case_id: Option<CaseId>,
        code: RejectCode,
        reason: &str,
    ) {
        // Refusal records are read by auditors, who never see content: the details of
        // malformed or invalid messages may quote it, so only field names are kept.
        let reason = match code {
            RejectCode::Malformed => {
                "malformed (details withheld: they may quote the content)".to_owned()
            }
            RejectCode::Invalid => withheld_problems(reason),
            _ => reason.to_owned(),
        };
        // The same refusal again (an invalid event offered by every pull, say) is recorded
        // once per window, so that a faulty member cannot grow the log without end.
        {
            let mut recent = self.inner.recent_refusals.lock().expect("refusals lock");
            let key = (peer, case_id, code, reason.clone());
            let now = std::time::Instant::now();
            if recent
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < REFUSAL_REPEAT_WINDOW)
            {
                tracing::debug!(%peer, %code, "refusal already recorded in this window");
                return;
            }
            if recent.len() >= MAX_RECENT_REFUSALS {
                recent.retain(|_, at| now.duration_since(*at) < REFUSAL_REPEAT_WINDOW);
                if recent.len() >= MAX_RECENT_REFUSALS {
                    recent.clear();
                }
            }
            recent.insert(key, now);
        }
        let refusal = Refusal {
            at: self.now(),
            peer: peer.to_string(),
            member: self
                .inner
                .governance
                .roster()
                .by_peer(&peer)
                .map(|(m, _)| m.jurisdiction.clone()),
            case_id,
            code,
            reason,
        };
        self.count_refusal(peer, refusal).await;
    }

    /// Counts a refusal in its tally (per member or peer, and code), and writes the tally with
    /// this refusal as a sample when a second has passed since the last write or an audit
    /// entry is due; otherwise a second after the last write.
    async fn count_refusal(&self, peer: PeerId, refusal: Refusal) {
        let code = refusal.code;
        let who = refusal
            .member
            .as_ref()
            .map_or_else(|| refusal.peer.clone(), |m| m.to_string());
        let tally_key = format!("t/{who}/{code}").into_bytes();
        let mut tallies = self.inner.refusal_tallies.lock().await;
        let held = match tallies.get(&tally_key) {
            Some(counted) => Some(counted.tally.clone()),
            None => match self.inner.store.get(Cf::Refusals, &tally_key) {
                Ok(held) => held.and_then(|b| decode::<Tally>(&b).ok()),
                Err(e) => {
                    warn!(%peer, error = %e, "could not read the refusal tally");
                    return;
                }
            },
        };
        let (tally, slot, audit) = tally_step(held, refusal.at);
        let now = std::time::Instant::now();
        if tallies.len() >= MAX_COUNTED && !tallies.contains_key(&tally_key) {
            // Only members and peers that reached this node are counted: a full map means
            // that many of them. Tallies already written are forgotten (they are read again
            // from the store when needed); those with counts still to write stay.
            tallies.retain(|_, c| c.pending.is_some());
        }
        let sample_key = format!("s/{who}/{code}/{slot:02}").into_bytes();
        let counted = tallies.entry(tally_key.clone()).or_insert(Counted {
            tally: tally.clone(),
            written: None,
            pending: None,
        });
        counted.tally = tally.clone();
        let due = counted
            .written
            .is_none_or(|w| now.duration_since(w) >= PERSIST_EVERY);
        if audit.is_none() && !due {
            // Written a second after the last write at the latest, with this refusal as its
            // sample: a burst's last count is not left waiting for the next refusal.
            let flush_due = counted.pending.is_none();
            counted.pending = Some((sample_key, refusal));
            if flush_due {
                let cases = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(PERSIST_EVERY).await;
                    cases.flush_tally(tally_key).await;
                });
            }
            return;
        }
        counted.written = Some(now);
        counted.pending = None;
        drop(tallies);
        let mut batch = tally_batch(tally_key, &tally, sample_key, &refusal);
        if let Some(repeats) = audit {
            crate::audit::record(
                &mut batch,
                crate::audit::AuditWhat::Refusal {
                    peer: refusal.peer.clone(),
                    code: refusal.code.to_string(),
                    case_id: refusal.case_id,
                    repeats,
                },
            );
        }
        if let Err(e) = self.inner.store.commit(batch).await {
            warn!(%peer, error = %e, "could not record a refusal");
        }
    }

    /// Writes a tally counted since its last write, with its latest refusal as a sample.
    async fn flush_tally(&self, tally_key: Vec<u8>) {
        let mut tallies = self.inner.refusal_tallies.lock().await;
        let Some(counted) = tallies.get_mut(&tally_key) else {
            return;
        };
        let Some((sample_key, refusal)) = counted.pending.take() else {
            return;
        };
        counted.written = Some(std::time::Instant::now());
        let tally = counted.tally.clone();
        drop(tallies);
        let batch = tally_batch(tally_key, &tally, sample_key, &refusal);
        if let Err(e) = self.inner.store.commit(batch).await {
            warn!(error = %e, "could not record a refusal tally");
        }
    }

    /// Keeps both signed envelopes of an equivocation, once per author, case and number.
    pub(super) async fn keep_equivocation(
        &self,
        from: &crate::roster::Member,
        case_id: CaseId,
        e: &super::core::Equivocation,
    ) {
        let prefix = format!("e/{}/", e.author);
        let key = format!("{prefix}{case_id}/{:020}", e.seq).into_bytes();
        // Serialised with the tallies' writes: one look at what is held, then one write.
        let _guard = self.inner.refusal_tallies.lock().await;
        let held = self
            .inner
            .store
            .scan_prefix(Cf::Refusals, prefix.as_bytes())
            .unwrap_or_default();
        if held.iter().any(|(k, _)| *k == key) || held.len() >= MAX_EQUIVOCATIONS {
            // Refused and counted like any invalid event; logged only when kept.
            return;
        }
        warn!(author = %e.author, seq = e.seq, case = %case_id, from = %from.jurisdiction, "EQUIVOCATION: two different events signed as the same number; both kept as evidence");
        let record = EquivocationRecord {
            at: self.now(),
            from: from.jurisdiction.clone(),
            author: e.author.clone(),
            case_id,
            seq: e.seq,
            existing: e.existing.clone(),
            offered: e.offered.clone(),
        };
        let mut batch = Batch::new();
        batch.put(Cf::Refusals, key, encode(&record));
        if let Err(err) = self.inner.store.commit(batch).await {
            warn!(error = %err, "could not keep the evidence of an equivocation");
        }
    }

    /// Every equivocation kept, oldest first.
    pub fn equivocations(&self) -> Result<Vec<EquivocationRecord>, CaseError> {
        let mut kept = self
            .inner
            .store
            .scan_prefix(Cf::Refusals, b"e/")?
            .iter()
            .map(|(_, v)| decode::<EquivocationRecord>(v).map_err(CaseError::from))
            .collect::<Result<Vec<_>, _>>()?;
        kept.sort_by_key(|e| e.at);
        Ok(kept)
    }

    /// The refusals kept (the latest few of each peer and code), oldest first.
    pub fn refusals(&self) -> Result<Vec<Refusal>, CaseError> {
        let mut kept = self
            .inner
            .store
            .scan(Cf::Refusals)?
            .iter()
            .filter(|(k, _)| !k.starts_with(b"t/") && !k.starts_with(b"e/"))
            .map(|(_, v)| decode::<Refusal>(v).map_err(CaseError::from))
            .collect::<Result<Vec<_>, _>>()?;
        kept.sort_by_key(|r| r.at);
        Ok(kept)
    }
}

/// `field: problem; field: problem` → the fields only (problems may quote content).
fn withheld_problems(detail: &str) -> String {
    let fields: Vec<&str> = detail
        .split("; ")
        .filter_map(|p| p.split_once(": ").map(|(field, _)| field.trim()))
        .filter(|f| !f.is_empty() && !f.contains(' '))
        .collect();
    if fields.is_empty() {
        "invalid (details withheld: they may quote the content)".to_owned()
    } else {
        format!(
            "invalid fields: {} (details withheld: they may quote the content)",
            fields.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_keeps_a_bounded_sample_and_one_audit_entry_an_hour() {
        let at = |ms: i64| Timestamp::from_millis(1_800_000_000_000 + ms);
        let mut held = None;
        let mut slots = std::collections::BTreeSet::new();
        let mut audited = Vec::new();
        // 1,000 refusals a second apart (each with a new case id, say).
        for i in 0..1_000 {
            let (tally, slot, audit) = tally_step(held, at(i * 1_000));
            slots.insert(slot);
            audited.extend(audit);
            held = Some(tally);
        }
        let tally = held.clone().unwrap();
        assert_eq!(tally.count, 1_000);
        assert_eq!(
            slots.len() as u64,
            SAMPLES,
            "the samples overwrite one another"
        );
        assert_eq!(audited, vec![0], "one entry in the first hour");
        // An hour after the entry, the next refusal is audited with the 999 in between.
        let (tally, _, audit) = tally_step(held, at(AUDIT_WINDOW_MS));
        assert_eq!(audit, Some(999));
        assert_eq!((tally.unaudited, tally.first_at), (0, Some(at(0))));
    }
}
