//! The case service's tables: how records, logs and queued pushes are keyed, encoded and
//! sealed in the store. Every read of a case goes through here.

use std::collections::HashMap;

use comity_protocol::{CaseId, CaseLog, Jurisdiction, SignedEnvelope};

use super::record::{CaseRecord, OutboxEntry, case_key, decode, encode, events_prefix};
use super::{CaseError, Cases};
use crate::store::Cf;

/// What waits in the outbox for one member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxLag {
    /// Pushes not yet receipted, and the events in them (those given up included).
    pub pushes: usize,
    pub events: usize,
    /// Pushes no longer sent until an officer retries them, and their events.
    pub given_up: usize,
    pub given_up_events: usize,
    /// When the oldest push still being sent was queued.
    pub oldest: Option<comity_protocol::Timestamp>,
}

impl Cases {
    /// A case's record without its content opened (lists, indexes, bookkeeping).
    pub fn record_closed(&self, case_id: &CaseId) -> Result<Option<CaseRecord>, CaseError> {
        match self.inner.store.get(Cf::Cases, &case_key(case_id))? {
            Some(bytes) => Ok(Some(self.decode_record(&bytes, false)?)),
            None => Ok(None),
        }
    }

    pub fn get(&self, case_id: &CaseId) -> Result<Option<CaseRecord>, CaseError> {
        match self.inner.store.get(Cf::Cases, &case_key(case_id))? {
            Some(bytes) => Ok(Some(self.decode_record(&bytes, true)?)),
            None => Ok(None),
        }
    }

    /// The case's signed log, rebuilt from the store. Signatures were checked when each event
    /// was stored; `verify_log` checks them all again.
    pub fn load_log(&self, case_id: &CaseId) -> Result<CaseLog, CaseError> {
        self.read_log(case_id, false)
    }

    /// The case's signed log with every signature verified again against the roster, for
    /// showing to an officer or auditor.
    pub fn verify_log(&self, case_id: &CaseId) -> Result<CaseLog, CaseError> {
        self.read_log(case_id, true)
    }

    fn read_log(&self, case_id: &CaseId, verify: bool) -> Result<CaseLog, CaseError> {
        let mut log = CaseLog::new(*case_id);
        let Some(record) = self.inner.store.get(Cf::Cases, &case_key(case_id))? else {
            return Ok(log);
        };
        let key_id = self.decode_record(&record, false)?.key_id;
        let roster = self.roster();
        let stored = self
            .inner
            .store
            .scan_prefix(Cf::Events, &events_prefix(case_id))?;
        for (_, sealed) in stored {
            let bytes = self.inner.vault.unseal(&key_id, case_id, &sealed)?;
            let envelope =
                SignedEnvelope::from_bytes(&bytes, comity_protocol::limits::MAX_REQUEST_FRAME)
                    .map_err(|e| CaseError::Log(e.to_string()))?;
            let inserted = if verify {
                log.insert(envelope, Self::held_key_of(&roster))
            } else {
                log.insert_stored(envelope)
            };
            inserted.map_err(|e| CaseError::Log(e.to_string()))?;
        }
        Ok(log)
    }

    /// Every case, newest first.
    /// Stores again every record with a decision, in this version's form: records written by
    /// an earlier one kept the decision's texts in the clear. Run once, when the index is
    /// rebuilt for a new layout.
    pub(super) async fn rewrite_decisions(&self) -> Result<(), CaseError> {
        let mut batch = crate::store::Batch::new();
        let mut n = 0;
        for (key, bytes) in self.inner.store.scan(Cf::Cases)? {
            let record = self.decode_record(&bytes, false)?;
            if record.log.decision.is_some() {
                batch.put(Cf::Cases, key, self.encode_record(&record)?);
                n += 1;
            }
        }
        if n > 0 {
            self.inner.store.commit(batch).await?;
            tracing::info!(records = n, "decision texts moved out of the case records");
        }
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<CaseRecord>, CaseError> {
        let mut cases = self
            .inner
            .store
            .scan(Cf::Cases)?
            .iter()
            // Lists need no content: records are not opened.
            .map(|(_, v)| self.decode_record(v, false))
            .collect::<Result<Vec<CaseRecord>, _>>()?;
        cases.reverse();
        Ok(cases)
    }

    /// The cases submitted or purged at or after `from` (through the index: no scan of every
    /// case), unopened.
    pub fn active_since(
        &self,
        from: comity_protocol::Timestamp,
    ) -> Result<Vec<CaseRecord>, CaseError> {
        let mut cases = Vec::new();
        for id in super::index::active_since(&self.inner.store, from)? {
            cases.extend(self.record_closed(&id)?);
        }
        Ok(cases)
    }

    pub fn outbox_depth(&self) -> Result<usize, CaseError> {
        Ok(self.inner.store.count(Cf::Outbox)?)
    }

    /// Pushes not yet receipted, per member: the replication lag. Read without opening a
    /// frame; pushes of a case whose content was destroyed cannot be sent any more and are
    /// left out, as in [`Self::outbox_entries`].
    pub fn outbox_by_member(&self) -> Result<HashMap<Jurisdiction, OutboxLag>, CaseError> {
        let mut lag: HashMap<Jurisdiction, OutboxLag> = HashMap::new();
        for (_, v) in self.inner.store.scan(Cf::Outbox)? {
            let entry: OutboxEntry = decode(&v)?;
            if entry.sealed && !self.inner.vault.holds(&entry.key_id) {
                continue;
            }
            let member = lag.entry(entry.to).or_default();
            member.pushes += 1;
            member.events += entry.events;
            if entry.dead {
                member.given_up += 1;
                member.given_up_events += entry.events;
            } else {
                member.oldest = Some(
                    member
                        .oldest
                        .map_or(entry.queued_at, |t| t.min(entry.queued_at)),
                );
            }
        }
        Ok(lag)
    }

    /// Queued pushes with their frames opened. Pushes of a case whose content was destroyed
    /// cannot be sent any more and are left out.
    pub(super) fn outbox_entries(&self) -> Result<Vec<OutboxEntry>, CaseError> {
        let mut entries = Vec::new();
        for (_, v) in self.inner.store.scan(Cf::Outbox)? {
            let mut entry: OutboxEntry = decode(&v)?;
            if entry.sealed {
                match self
                    .inner
                    .vault
                    .unseal(&entry.key_id, &entry.case_id, &entry.frame)
                {
                    Ok(frame) => {
                        entry.frame = frame;
                        entry.sealed = false;
                    }
                    Err(crate::vault::VaultError::Shredded(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// A case record as stored: its request sealed with the case's key. A request never
    /// changes once made (it is only removed, by a purge), so a record read from the store
    /// keeps the sealed bytes it was read with: the request is sealed once per case.
    pub(super) fn encode_record(&self, record: &CaseRecord) -> Result<Vec<u8>, CaseError> {
        // Each piece of content the record holds open (read, or just made) and not yet sealed:
        // the request, a pending override's reason, a pending amendment.
        let unsealed_request = record.request.is_some() && record.sealed_request.is_empty();
        let unsealed_reason = record
            .override_request
            .as_ref()
            .is_some_and(|o| o.sealed_reason.is_empty() && o.reason.is_some());
        let unsealed_amendment = record
            .pending_amendment
            .as_ref()
            .is_some_and(|a| a.sealed.is_empty() && a.request.is_some());
        if !unsealed_reason && !unsealed_request && !unsealed_amendment {
            return Ok(encode(record));
        }
        let seal = |plain: &[u8]| {
            self.inner
                .vault
                .seal(&record.key_id, &record.case_id, plain)
        };
        let mut stored = record.clone();
        if let (true, Some(request)) = (unsealed_request, &record.request) {
            stored.sealed_request = seal(&encode(request))?;
        }
        if let (true, Some(o)) = (unsealed_reason, stored.override_request.as_mut()) {
            o.sealed_reason = seal(o.reason.as_deref().unwrap_or_default().as_bytes())?;
        }
        if let (true, Some(a)) = (unsealed_amendment, stored.pending_amendment.as_mut())
            && let Some(request) = &a.request
        {
            a.sealed = seal(&encode(request))?;
        }
        Ok(encode(&stored))
    }

    /// Opens content sealed with a case's key; `None` once the key is destroyed (purged).
    fn open_sealed(
        &self,
        record: &CaseRecord,
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, CaseError> {
        match self
            .inner
            .vault
            .unseal(&record.key_id, &record.case_id, sealed)
        {
            Ok(plain) => Ok(Some(plain)),
            Err(crate::vault::VaultError::Shredded(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A stored case record; with `open`, its content opened (absent once purged): the
    /// request, a pending override's reason, a pending amendment.
    fn decode_record(&self, bytes: &[u8], open: bool) -> Result<CaseRecord, CaseError> {
        let mut record: CaseRecord = decode(bytes)?;
        if !open {
            return Ok(record);
        }
        if !record.sealed_request.is_empty() {
            record.request = match self.open_sealed(&record, &record.sealed_request)? {
                Some(plain) => Some(decode(&plain)?),
                None => None,
            };
        }
        let reason = match &record.override_request {
            Some(o) if !o.sealed_reason.is_empty() => self
                .open_sealed(&record, &o.sealed_reason)?
                .map(|plain| String::from_utf8_lossy(&plain).into_owned()),
            _ => None,
        };
        if let Some(o) = record.override_request.as_mut() {
            o.reason = reason;
        }
        let amendment = match &record.pending_amendment {
            Some(a) if !a.sealed.is_empty() => match self.open_sealed(&record, &a.sealed)? {
                Some(plain) => Some(decode(&plain)?),
                None => None,
            },
            _ => None,
        };
        if let Some(a) = record.pending_amendment.as_mut() {
            a.request = amendment;
        }
        Ok(record)
    }

    /// A queued push as stored: a frame carrying case content is sealed with the case's key.
    pub(super) fn encode_outbox(&self, entry: &OutboxEntry) -> Result<Vec<u8>, CaseError> {
        let mut stored = entry.clone();
        if !entry.sealed && !entry.clear {
            stored.frame = self
                .inner
                .vault
                .seal(&entry.key_id, &entry.case_id, &entry.frame)?;
            stored.sealed = true;
        }
        Ok(encode(&stored))
    }
}
