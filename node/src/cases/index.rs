//! Indexes of the cases (`Cf::CaseIndex`), written in the batch of every plan that stores a
//! record, so that pulls and the retention sweep read only the cases that concern them:
//!
//! - `m/{member}/{case}` → [`SyncSummary`]: a sent or received case shared with that member,
//!   with how many events of each author it holds and whether it is offered to pulls, so that
//!   a pull (asked or answered) reads no case record but those it must send or that changed;
//! - `r/{until, 20 digits of ms}/{case}`: a case whose content this node keeps until then (a
//!   requester's by the request's retention, an executing node's by its own);
//! - `s/{case}` → key id: a purged case whose key is still to be destroyed;
//! - `i/{case}/{message}`: a push of that case this node receipted (its row in `Cf::Inbox`), so
//!   that a purge takes the rows with it;
//! - `n/{member}/{day, 8 digits}/{case}`: a case a member opened here that day (UTC), for the
//!   per-member daily quota;
//! - `k/{until, 20 digits of ms}/{case}`: an executing case whose data is preserved until
//!   then (an extension adds a later one; the sweep drops the stale one);
//! - `t/{submitted, 20 digits of ms}/{case}` and `p/{purged, 20 digits}/{case}`: when a case
//!   was submitted and purged (kept after the purge), so that a period's report reads only the
//!   cases active in it.
//!
//! Like the dates, the event counts are metadata in the clear (the case ids already are): the
//! requests, their parties' details and the events themselves stay sealed in the records.
//!
//! The key format is this module's alone. Nodes whose store predates the index build it at
//! start; so does a change of the policy's retention cap, which moves every retention date.

use std::collections::BTreeMap;

use comity_protocol::{CaseId, Jurisdiction, Timestamp};

use super::record::{CaseRecord, Role};
use crate::store::{Batch, Cf, Store, StoreError};

/// Names the index's layout and the retention cap it was built with.
const VERSION_KEY: &[u8] = b"v";
const VERSION: &str = "7";

/// What a pull needs of a case shared with a member, kept beside its index entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncSummary {
    /// The highest sequence number held of each author.
    pub have: BTreeMap<Jurisdiction, u64>,
    /// Offered to the member's pulls: not a request it refused at the door.
    pub offered: bool,
}

impl SyncSummary {
    /// The summary of `record` as stored beside its index entry.
    pub fn of(record: &CaseRecord) -> Self {
        Self {
            have: record.log.have.clone(),
            offered: record.delivery.refused.is_none(),
        }
    }
}

fn shared_key(member: &Jurisdiction, case: &CaseId) -> Vec<u8> {
    format!("m/{member}/{case}").into_bytes()
}

fn shared_prefix(member: &Jurisdiction) -> Vec<u8> {
    format!("m/{member}/").into_bytes()
}

fn retention_key(until: Timestamp, case: &CaseId) -> Vec<u8> {
    format!("r/{:020}/{case}", until.as_millis().max(0)).into_bytes()
}

fn dated_key(tag: char, at: Timestamp, case: &CaseId) -> Vec<u8> {
    format!("{tag}/{:020}/{case}", at.as_millis().max(0)).into_bytes()
}

fn shred_key(case: &CaseId) -> Vec<u8> {
    format!("s/{case}").into_bytes()
}

/// The last path segment of an index key: the case id.
fn case_of(key: &[u8]) -> Option<CaseId> {
    let text = std::str::from_utf8(key).ok()?;
    text.rsplit('/').next()?.parse().ok()
}

/// This node's retention, from its policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The most days received data is kept, whatever a request asks for.
    pub cap_days: Option<u32>,
    /// How long this node keeps its own records of the requests it executed.
    pub executing_days: u32,
}

impl Retention {
    fn marker(&self) -> String {
        format!(
            "{}/{}",
            self.cap_days.map_or("-".into(), |d| d.to_string()),
            self.executing_days
        )
    }
}

/// When a case's content must be gone here. On the requesting side: the request's retention
/// from its submission, capped by this node's policy. On the executing side: this node's own
/// retention of its records, from its own receipt (by its clock, not the requester's) and
/// never before a preservation in force ends; the requester's purge does not shorten it.
/// Nobody can extend either.
pub fn retention_until(record: &CaseRecord, retention: Retention) -> Option<Timestamp> {
    let days = |d: u32| std::time::Duration::from_secs(u64::from(d) * 86_400);
    match record.role {
        Role::Requester => {
            let kept = retention
                .cap_days
                .map_or(record.summary.retention_days, |cap| {
                    record.summary.retention_days.min(cap)
                });
            Some(record.log.submitted_at?.saturating_add(days(kept)))
        }
        Role::Executing => {
            let start = record.log.delivered_at.or(record.log.submitted_at)?;
            let until = start.saturating_add(days(retention.executing_days));
            let preserved = record
                .log
                .preservation
                .filter(|p| !p.released)
                .map(|p| p.until);
            Some(preserved.map_or(until, |p| until.max(p)))
        }
    }
}

/// Adds to `batch` the index entries of `record` as it is about to be stored.
pub fn put(batch: &mut Batch, record: &CaseRecord, cap_days: Retention) {
    let id = &record.case_id;
    if record.log.state.is_none() {
        return; // a draft: nobody else knows of it
    }
    if let Some(at) = record.log.submitted_at {
        batch.put(Cf::CaseIndex, dated_key('t', at, id), Vec::new());
    }
    if let Some(at) = record.purged_at {
        batch.put(Cf::CaseIndex, dated_key('p', at, id), Vec::new());
    }
    if record.purged_at.is_some() {
        // Nothing to offer a pull, nothing left to retain; the key is to go.
        batch.delete(Cf::CaseIndex, shared_key(&record.counterparty, id));
        if let Some(until) = retention_until(record, cap_days) {
            batch.delete(Cf::CaseIndex, retention_key(until, id));
        }
        if !record.key_id.is_empty() {
            batch.put(Cf::CaseIndex, shred_key(id), record.key_id.as_bytes());
        }
        return;
    }
    if record.role == Role::Executing
        && let Some(p) = record.log.preservation
        && !p.released
    {
        batch.put(Cf::CaseIndex, dated_key('k', p.until, id), Vec::new());
    }
    if record.role == Role::Executing && record.log.requester_purged_at.is_some() {
        // The requester destroyed what it received: nothing of the case goes to its pulls.
        batch.delete(Cf::CaseIndex, shared_key(&record.counterparty, id));
    } else {
        let summary =
            comity_protocol::to_canonical_cbor(&SyncSummary::of(record)).expect("summaries encode");
        batch.put(Cf::CaseIndex, shared_key(&record.counterparty, id), summary);
    }
    if let Some(until) = retention_until(record, cap_days) {
        batch.put(Cf::CaseIndex, retention_key(until, id), Vec::new());
    }
}

/// The cases shared with `member` that are not purged, each with its summary (`None` if the
/// entry's value cannot be read: the caller reads the record instead).
pub fn shared_with(
    store: &Store,
    member: &Jurisdiction,
) -> Result<Vec<(CaseId, Option<SyncSummary>)>, StoreError> {
    Ok(store
        .scan_prefix(Cf::CaseIndex, &shared_prefix(member))?
        .iter()
        .filter_map(|(k, v)| {
            let summary = comity_protocol::from_cbor(v, comity_protocol::limits::MAX_REQUEST_FRAME);
            Some((case_of(k)?, summary.ok()))
        })
        .collect())
}

/// The requester's cases whose retention ended before `now`.
#[cfg(test)]
pub fn retention_due(store: &Store, now: Timestamp) -> Result<Vec<CaseId>, StoreError> {
    Ok(retention_keys_due(store, now)?
        .into_iter()
        .map(|(_, case)| case)
        .collect())
}

/// An index entry the sweep reads: its key, and when it says the case ends.
pub type DueEntry = ((Vec<u8>, Option<Timestamp>), CaseId);

/// The retention index entries up to `now`: the sweep drops those that no longer stand for
/// their case (its retention moved).
pub fn retention_keys_due(store: &Store, now: Timestamp) -> Result<Vec<DueEntry>, StoreError> {
    let end = format!("r/{:020}/", now.as_millis().max(0)).into_bytes();
    Ok(store
        .scan_range(Cf::CaseIndex, b"r/", &end)?
        .into_iter()
        .filter_map(|(k, _)| {
            let case = case_of(&k)?;
            let at = std::str::from_utf8(&k)
                .ok()
                .and_then(|t| t.strip_prefix("r/")?.split('/').next()?.parse().ok())
                .map(Timestamp::from_millis);
            Some(((k, at), case))
        })
        .collect())
}

/// Preservations that end before `before`, each with its index key: lapsed ones, or, with a
/// later `before`, those to warn about. A key may be stale (the preservation was extended or
/// released since): the record decides.
pub fn preservations_ending(
    store: &Store,
    before: Timestamp,
) -> Result<Vec<(Vec<u8>, CaseId)>, StoreError> {
    let end = format!("k/{:020}/", before.as_millis().max(0)).into_bytes();
    Ok(store
        .scan_range(Cf::CaseIndex, b"k/", &end)?
        .into_iter()
        .filter_map(|(k, _)| {
            let case = case_of(&k)?;
            Some((k, case))
        })
        .collect())
}

/// When a preservation index key says it ends.
pub fn preservation_end(key: &[u8]) -> Option<Timestamp> {
    let text = std::str::from_utf8(key).ok()?;
    let ms = text.strip_prefix("k/")?.split('/').next()?.parse().ok()?;
    Some(Timestamp::from_millis(ms))
}

/// Drops an index key the sweep found done with.
pub fn forget(batch: &mut Batch, key: Vec<u8>) {
    batch.delete(Cf::CaseIndex, key);
}

/// Adds to `batch` that the member `record` is shared with opened it here at `now` (this
/// node's clock: a requester's own dates are not trusted for its quota).
pub fn opened(batch: &mut Batch, record: &CaseRecord, now: Timestamp) {
    if record.role == Role::Executing {
        batch.put(
            Cf::CaseIndex,
            format!(
                "n/{}/{:08}/{}",
                record.counterparty,
                day_of(now),
                record.case_id
            )
            .into_bytes(),
            Vec::new(),
        );
    }
}

/// Adds to `batch` that a push of `case` was receipted under `message`.
pub fn received(batch: &mut Batch, case: &CaseId, message: &comity_protocol::MessageId) {
    batch.put(
        Cf::CaseIndex,
        format!("i/{case}/{message}").into_bytes(),
        Vec::new(),
    );
}

/// Adds to `batch` the deletion of the receipts given for `case`'s pushes (its case is purged).
pub fn forget_received(store: &Store, batch: &mut Batch, case: &CaseId) -> Result<(), StoreError> {
    for (key, _) in store.scan_prefix(Cf::CaseIndex, format!("i/{case}/").as_bytes())? {
        if let Some(message) = std::str::from_utf8(&key)
            .ok()
            .and_then(|k| k.rsplit('/').next())
        {
            batch.delete(Cf::Inbox, message.as_bytes().to_vec());
        }
        batch.delete(Cf::CaseIndex, key);
    }
    Ok(())
}

/// The day (UTC) of `at`, counted from 1970-01-01.
pub fn day_of(at: Timestamp) -> i64 {
    at.as_millis().div_euclid(86_400_000)
}

/// How many cases `member` opened here on `day`.
pub fn opened_on(store: &Store, member: &Jurisdiction, day: i64) -> Result<usize, StoreError> {
    Ok(store
        .scan_prefix(Cf::CaseIndex, format!("n/{member}/{day:08}/").as_bytes())?
        .len())
}

/// The cases submitted or purged at or after `from`: all that a report of a period starting
/// then can count.
pub fn active_since(store: &Store, from: Timestamp) -> Result<Vec<CaseId>, StoreError> {
    let mut cases = Vec::new();
    for tag in ['t', 'p'] {
        let start = format!("{tag}/{:020}/", from.as_millis().max(0)).into_bytes();
        let end = format!("{tag}0").into_bytes(); // '0' sorts right after '/'
        cases.extend(
            store
                .scan_range(Cf::CaseIndex, &start, &end)?
                .iter()
                .filter_map(|(k, _)| case_of(k)),
        );
    }
    cases.sort_unstable();
    cases.dedup();
    Ok(cases)
}

/// Purged cases whose key is still to be destroyed, with the key's id.
pub fn to_shred(store: &Store) -> Result<Vec<(CaseId, String)>, StoreError> {
    Ok(store
        .scan_prefix(Cf::CaseIndex, b"s/")?
        .into_iter()
        .filter_map(|(k, v)| Some((case_of(&k)?, String::from_utf8(v).ok()?)))
        .collect())
}

/// The key of a purged case is destroyed: nothing left to do for it.
pub fn shredded(batch: &mut Batch, case: &CaseId) {
    batch.delete(Cf::CaseIndex, shred_key(case));
}

/// Builds the index from the stored cases if it was built by another layout or with another
/// retention cap (or not at all). Returns whether it did.
pub async fn ensure(
    store: &Store,
    cap_days: Retention,
    records: impl FnOnce() -> Result<Vec<CaseRecord>, super::CaseError>,
) -> Result<bool, super::CaseError> {
    let marker = format!("{VERSION}/{}", cap_days.marker());
    if store.get(Cf::CaseIndex, VERSION_KEY)?.as_deref() == Some(marker.as_bytes()) {
        return Ok(false);
    }
    let mut batch = Batch::new();
    for (key, _) in store.scan(Cf::CaseIndex)? {
        batch.delete(Cf::CaseIndex, key);
    }
    let records = records()?;
    let purged: std::collections::HashSet<CaseId> = records
        .iter()
        .filter(|r| r.purged_at.is_some())
        .map(|r| r.case_id)
        .collect();
    for record in records {
        put(&mut batch, &record, cap_days);
        // Cases stored before this index: their day as the request gives it.
        opened(&mut batch, &record, record.created_at);
    }
    // Receipts given before this index: their case, from the receipt itself.
    for (key, value) in store.scan(Cf::Inbox)? {
        let case = comity_protocol::SignedEnvelope::from_bytes(
            &value,
            comity_protocol::limits::MAX_RESPONSE_FRAME,
        )
        .ok()
        .and_then(|e| {
            comity_protocol::from_cbor::<comity_protocol::Receipt>(
                &e.body,
                comity_protocol::limits::MAX_RESPONSE_FRAME,
            )
            .ok()
        })
        .map(|r| r.case_id);
        if case.is_some_and(|c| purged.contains(&c)) {
            batch.delete(Cf::Inbox, key); // a purged case keeps no receipts
        } else if let (Some(case), Ok(message)) = (case, std::str::from_utf8(&key)) {
            batch.put(
                Cf::CaseIndex,
                format!("i/{case}/{message}").into_bytes(),
                Vec::new(),
            );
        }
    }
    batch.put(Cf::CaseIndex, VERSION_KEY, marker.into_bytes());
    store.commit(batch).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::record::{Delivery, LogSummary, RequestSummary};
    use comity_protocol::CaseState;

    const DAY: i64 = 86_400_000;

    /// A sent case with `member`, submitted on day `day`, retained 365 days by its request.
    fn case(role: Role, member: &str, day: i64) -> CaseRecord {
        let request = comity_protocol::examples::sample_request();
        CaseRecord {
            case_id: CaseId::new(),
            role,
            counterparty: member.parse().unwrap(),
            created_at: Timestamp::from_millis(day * DAY),
            updated_at: Timestamp::from_millis(day * DAY),
            request: None,
            sealed_request: Vec::new(),
            summary: RequestSummary::of(&request),
            purged_at: None,
            key_id: "k".into(),
            genesis_message: None,
            receipt: None,
            delivery: Delivery::default(),
            log: LogSummary {
                state: Some(CaseState::Submitted),
                submitted_at: Some(Timestamp::from_millis(day * DAY)),
                ..LogSummary::default()
            },
            drafted_by: None,
            approval: None,
            disclosure_approval: None,
            override_request: None,
            pending_amendment: None,
        }
    }

    #[tokio::test]
    async fn the_executing_sides_retention_is_its_own() {
        let keep = keep(None);
        // A request backdated by its requester to day 0, received here on day 100.
        let mut theirs = case(Role::Executing, "IT", 0);
        theirs.log.delivered_at = Some(Timestamp::from_millis(100 * DAY));
        let five_years = |from: i64| Timestamp::from_millis((from + 1825) * DAY);
        assert_eq!(retention_until(&theirs, keep), Some(five_years(100)));
        // A preservation in force beyond it holds the records until it ends.
        theirs.log.preservation = Some(comity_protocol::Preservation {
            until: Timestamp::from_millis(2000 * DAY),
            released: false,
            since: Some(Timestamp::from_millis(1900 * DAY)),
            released_at: None,
        });
        assert_eq!(
            retention_until(&theirs, keep),
            Some(Timestamp::from_millis(2000 * DAY))
        );
        // Once the requester purged, nothing of it is offered to the requester's pulls.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = Batch::new();
        put(&mut batch, &theirs, keep);
        store.commit(batch).await.unwrap();
        assert_eq!(shared_ids(&store, "IT"), vec![theirs.case_id]);
        theirs.log.requester_purged_at = Some(Timestamp::from_millis(200 * DAY));
        let mut batch = Batch::new();
        put(&mut batch, &theirs, keep);
        store.commit(batch).await.unwrap();
        assert!(shared_ids(&store, "IT").is_empty());
    }

    fn shared_ids(store: &Store, member: &str) -> Vec<CaseId> {
        shared_with(store, &member.parse().unwrap())
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// A policy's retention: its cap on received data, and the default own retention.
    fn keep(cap_days: Option<u32>) -> Retention {
        Retention {
            cap_days,
            executing_days: comity_protocol::policy::DEFAULT_EXECUTING_RETENTION_DAYS,
        }
    }

    #[tokio::test]
    async fn a_cases_summary_follows_its_record_and_an_unreadable_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut record = case(Role::Executing, "IT", 0);
        let it: Jurisdiction = "IT".parse().unwrap();
        for (seq, refused) in [(1, None), (3, Some("refused at the door".to_owned()))] {
            record.log.have = BTreeMap::from([(it.clone(), seq)]);
            record.delivery.refused = refused.clone();
            let mut batch = Batch::new();
            put(&mut batch, &record, keep(None));
            store.commit(batch).await.unwrap();
            let expected = SyncSummary {
                have: BTreeMap::from([(it.clone(), seq)]),
                offered: refused.is_none(),
            };
            assert_eq!(
                shared_with(&store, &it).unwrap(),
                vec![(record.case_id, Some(expected))]
            );
        }
        // An entry of an older layout (no value): the caller reads the record.
        let mut batch = Batch::new();
        batch.put(Cf::CaseIndex, shared_key(&it, &record.case_id), Vec::new());
        store.commit(batch).await.unwrap();
        assert_eq!(
            shared_with(&store, &it).unwrap(),
            vec![(record.case_id, None)]
        );
    }

    #[tokio::test]
    async fn the_index_is_built_once_from_stored_cases_and_again_when_the_cap_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = case(Role::Requester, "DE", 0);
        let young = case(Role::Requester, "DE", 300);
        let theirs = case(Role::Executing, "IT", 0);
        let mut draft = case(Role::Requester, "DE", 0);
        draft.log = LogSummary::default();
        let records = vec![old.clone(), young.clone(), theirs.clone(), draft.clone()];

        assert!(
            ensure(&store, keep(None), || Ok(records.clone()))
                .await
                .unwrap()
        );
        assert!(
            !ensure(&store, keep(None), || panic!("not read again"))
                .await
                .unwrap()
        );
        let de = shared_ids(&store, "DE");
        assert_eq!(de.len(), 2, "drafts are nobody's to pull");
        assert!(de.contains(&old.case_id) && de.contains(&young.case_id));
        let it = shared_with(&store, &"IT".parse().unwrap()).unwrap();
        assert_eq!(it, vec![(theirs.case_id, Some(SyncSummary::of(&theirs)))]);
        // Day 400: the case of day 0 is due (365 days), the one of day 300 is not; the
        // executing side's case is kept for this node's own retention (1,825 days), whatever
        // the request asked for.
        let due = retention_due(&store, Timestamp::from_millis(400 * DAY)).unwrap();
        assert_eq!(due, vec![old.case_id]);
        let due = retention_due(&store, Timestamp::from_millis(1826 * DAY)).unwrap();
        assert!(due.contains(&theirs.case_id));

        // A policy that caps retention at 30 days moves every date.
        assert!(
            ensure(&store, keep(Some(30)), || Ok(records.clone()))
                .await
                .unwrap()
        );
        let due = retention_due(&store, Timestamp::from_millis(400 * DAY)).unwrap();
        assert_eq!(due.len(), 2);

        // A purge takes the case out of pulls and the sweep, and leaves its key to destroy.
        let mut purged = old.clone();
        purged.purged_at = Some(Timestamp::from_millis(401 * DAY));
        let mut batch = Batch::new();
        put(&mut batch, &purged, keep(Some(30)));
        store.commit(batch).await.unwrap();
        let due = retention_due(&store, Timestamp::from_millis(400 * DAY)).unwrap();
        assert_eq!(due, vec![young.case_id]);
        assert!(!shared_ids(&store, "DE").contains(&old.case_id));
        assert_eq!(
            to_shred(&store).unwrap(),
            vec![(old.case_id, "k".to_owned())]
        );
        let mut batch = Batch::new();
        shredded(&mut batch, &old.case_id);
        store.commit(batch).await.unwrap();
        assert!(to_shred(&store).unwrap().is_empty());

        // A report from day 300 counts the case of day 300 and the one purged on day 401;
        // one from day 402 counts none.
        let active = active_since(&store, Timestamp::from_millis(300 * DAY)).unwrap();
        assert_eq!(active.len(), 2);
        assert!(active.contains(&young.case_id) && active.contains(&old.case_id));
        assert!(
            active_since(&store, Timestamp::from_millis(402 * DAY))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn index_keys_sort_by_date_and_name_their_case() {
        let a = CaseId::new();
        let early = retention_key(Timestamp::from_millis(1_000), &a);
        let late = retention_key(Timestamp::from_millis(20_000_000_000_000), &a);
        assert!(early < late, "zero-padded: byte order is time order");
        assert_eq!(case_of(&early), Some(a));
        assert_eq!(case_of(&shared_key(&"FR".parse().unwrap(), &a)), Some(a));
        assert_eq!(case_of(&shred_key(&a)), Some(a));
        assert_eq!(case_of(b"m/FR/not-a-case"), None);
    }
}
