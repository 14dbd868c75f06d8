//! Operational monitoring: one record per exchange this node took part in, like an X-Road
//! security server's — which member, which way, what was asked, the sizes, when the request
//! left or arrived and when its answer did, and how it ended. Never content, selectors or
//! case ids: what `comity opmon` shows an operator, and what the metrics count.
//!
//! A record's `id` is a hash of the request's bytes, so both ends of an exchange give it the
//! same id: two operators can compare their records of it without showing each other
//! anything else.
//!
//! Records are queued (bounded; a full queue drops and counts) and written in batches by one
//! task, which also deletes those past the retention limits.

use std::time::{Duration, Instant};

use comity_protocol::{ExchangeRequest, ExchangeResponse, Timestamp};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::metrics::{ExchangeLabels, FlowLabels};
use crate::network::RequestError;
use crate::roster::Membership;
use crate::store::{Batch, Cf, Store, StoreError};

/// Records that may wait for the writer; past this they are dropped (and counted).
const QUEUE: usize = 8192;
/// Most records written in one batch, and the longest one waits for its batch.
const BATCH: usize = 1024;
const BATCH_WAIT: Duration = Duration::from_secs(1);
/// How often records past the limits are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = ExchangeDirection)]
pub enum Direction {
    /// A member asked this node.
    In,
    /// This node asked a member.
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// One exchange, as this node saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ExchangeRecord)]
pub struct Record {
    /// BLAKE3 of the request's bytes (16 bytes, hex): the same at both ends.
    pub id: String,
    /// The member's jurisdiction code (its PeerId if the roster does not name it).
    pub member: String,
    pub direction: Direction,
    /// `exchange` or `evidence`.
    pub protocol: String,
    /// What was asked: `push`, `pull`, `policy`, `consistency`, `bloc`, `manifest`, `chunk`.
    pub kind: String,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// When the request left this node (out) or reached it (in).
    pub requested_at: Timestamp,
    /// When the answer reached this node (out) or left it (in).
    pub answered_at: Timestamp,
    /// What the answer was (`receipt`, `events`, `rejected`, `refused`, …), or `failed`
    /// when none came.
    pub outcome: String,
    /// The refusal code, or why no answer came (`timeout`, `unreachable`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The case the exchange was about, when it was about one case (pushes, evidence) and the
    /// node keeps full records (`[log] mode = "full"`); never in `metadata` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<comity_protocol::CaseId>,
}

impl Record {
    pub fn duration(&self) -> Duration {
        Duration::from_millis(
            self.answered_at
                .as_millis()
                .saturating_sub(self.requested_at.as_millis())
                .max(0) as u64,
        )
    }
}

/// How long records are kept, and how many at most.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub days: u32,
    pub max_records: usize,
}

/// A request sent or received, as its record needs it, from when it started.
#[derive(Clone, Debug)]
pub struct Started {
    pub peer: PeerId,
    pub protocol: &'static str,
    /// Filled when the request is sent, or (for one that arrived) when it is answered: the
    /// network's event loop does not hash frames.
    id: Option<String>,
    case: Option<comity_protocol::CaseId>,
    /// Whether the records name cases (`[log] mode = "full"`).
    keeps_cases: bool,
    kind: String,
    bytes: u64,
    at: Timestamp,
    started: Instant,
}

impl Started {
    /// Whether the record would keep the case this exchange is about (worth reading it).
    pub fn keeps_cases(&self) -> bool {
        self.keeps_cases
    }

    /// The case this exchange is about (kept only in `full` mode).
    pub fn about(&mut self, case: comity_protocol::CaseId) {
        if self.keeps_cases {
            self.case = Some(case);
        }
    }
}

/// What the node keeps of each exchange beyond the case itself (`[log] mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Records name the case an exchange was about, so that an operator can follow one case's
    /// traffic (`comity opmon --case`).
    #[default]
    Full,
    /// Records never name a case: nothing ties an exchange to a case, or to the people in it.
    Metadata,
}

/// Where the network hands its exchanges; cloned into every part that sends or answers.
#[derive(Clone, Debug)]
pub struct Tap {
    records: Option<mpsc::Sender<Record>>,
    membership: Option<Membership>,
    mode: Mode,
}

impl Tap {
    /// Counts exchanges in the metrics but keeps no records (tools and unit tests).
    pub fn off() -> Self {
        Self {
            records: None,
            membership: None,
            mode: Mode::Metadata,
        }
    }

    /// A tap whose records go to the returned queue (for [`run`]).
    pub fn new(membership: Membership, mode: Mode) -> (Self, mpsc::Receiver<Record>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Self {
                records: Some(tx),
                membership: Some(membership),
                mode,
            },
            rx,
        )
    }

    /// A request about to be sent to `peer`.
    pub fn start(&self, peer: PeerId, protocol: &'static str, frame: &[u8]) -> Started {
        let mut started = self.arrived(peer, protocol, frame);
        started.id = Some(exchange_id(frame));
        started
    }

    /// A request that just arrived from `peer` (read ahead only: this runs in the network's
    /// event loop).
    pub fn arrived(&self, peer: PeerId, protocol: &'static str, frame: &[u8]) -> Started {
        Started {
            peer,
            protocol,
            id: None,
            case: None,
            keeps_cases: self.mode == Mode::Full && self.records.is_some(),
            kind: request_kind(protocol, frame),
            bytes: frame.len() as u64,
            at: Timestamp::now(),
            started: Instant::now(),
        }
    }

    /// This node's answer to `asked` (whose bytes were `request`) is on its way.
    pub fn answered(&self, asked: Started, request: &[u8], response: &[u8]) {
        let (outcome, fault) = response_outcome(asked.protocol, response);
        self.observe(
            Record {
                id: asked.id.unwrap_or_else(|| exchange_id(request)),
                case_id: asked.case,
                member: self.member(&asked.peer),
                direction: Direction::In,
                protocol: asked.protocol.into(),
                kind: asked.kind,
                request_bytes: asked.bytes,
                response_bytes: response.len() as u64,
                requested_at: asked.at,
                answered_at: Timestamp::now(),
                outcome,
                fault,
            },
            asked.started.elapsed(),
        );
    }

    /// A request this node sent, and what came back.
    pub fn sent(&self, asked: Started, request_bytes: u64, result: &Result<Vec<u8>, RequestError>) {
        let (outcome, fault, response_bytes) = match result {
            Ok(frame) => {
                let (outcome, fault) = response_outcome(asked.protocol, frame);
                (outcome, fault, frame.len() as u64)
            }
            Err(e) => ("failed".to_owned(), Some(failure_word(e).to_owned()), 0),
        };
        self.observe(
            Record {
                id: asked.id.unwrap_or_default(),
                case_id: asked.case,
                member: self.member(&asked.peer),
                direction: Direction::Out,
                protocol: asked.protocol.into(),
                kind: asked.kind,
                request_bytes,
                response_bytes,
                requested_at: asked.at,
                answered_at: Timestamp::now(),
                outcome,
                fault,
            },
            asked.started.elapsed(),
        );
    }

    fn member(&self, peer: &PeerId) -> String {
        self.membership
            .as_ref()
            .and_then(|m| {
                m.current()
                    .by_peer(peer)
                    .map(|(member, _)| member.jurisdiction.to_string())
            })
            .unwrap_or_else(|| peer.to_string())
    }

    fn observe(&self, record: Record, took: Duration) {
        let metrics = crate::metrics::get();
        let direction = record.direction.as_str();
        let protocol = protocol_name(&record.protocol);
        let flow = FlowLabels {
            direction,
            protocol,
            kind: record.kind.clone(),
        };
        metrics
            .exchanges
            .get_or_create(&ExchangeLabels {
                member: record.member.clone(),
                direction,
                protocol,
                kind: record.kind.clone(),
                outcome: match &record.fault {
                    Some(fault) => format!("{}:{fault}", record.outcome),
                    None => record.outcome.clone(),
                },
            })
            .inc();
        metrics
            .exchange_seconds
            .get_or_create(&flow)
            .observe(took.as_secs_f64());
        metrics
            .request_bytes
            .get_or_create(&flow)
            .inc_by(record.request_bytes);
        metrics
            .response_bytes
            .get_or_create(&flow)
            .inc_by(record.response_bytes);
        if let Some(records) = &self.records
            && records.try_send(record).is_err()
        {
            metrics.opmon_dropped.inc();
        }
    }
}

fn protocol_name(protocol: &str) -> &'static str {
    match protocol {
        "evidence" => "evidence",
        _ => "exchange",
    }
}

/// The id both ends give an exchange: the first 16 bytes of BLAKE3 of the request.
pub fn exchange_id(frame: &[u8]) -> String {
    hex::encode(&blake3::hash(frame).as_bytes()[..16])
}

fn request_kind(protocol: &str, frame: &[u8]) -> String {
    let kind = match protocol {
        "evidence" => comity_protocol::messages::peek_variant_name(frame),
        _ => ExchangeRequest::peek_kind(frame),
    };
    kind.unwrap_or("unreadable").to_owned()
}

fn response_outcome(protocol: &str, frame: &[u8]) -> (String, Option<String>) {
    let peeked = match protocol {
        "evidence" => comity_protocol::messages::peek_variant_name(frame).map(|k| (k, None)),
        _ => ExchangeResponse::peek_outcome(frame),
    };
    match peeked {
        Some((kind, code)) => (kind.to_owned(), code.map(str::to_owned)),
        None => ("unreadable".to_owned(), None),
    }
}

fn failure_word(e: &RequestError) -> &'static str {
    match e {
        RequestError::Unreachable(_) => "unreachable",
        RequestError::Timeout => "timeout",
        RequestError::ConnectionClosed => "connection-closed",
        RequestError::UnsupportedProtocol => "unsupported-protocol",
        RequestError::Io(_) => "stream-error",
        RequestError::Shutdown => "shutdown",
    }
}

/// Writes queued records in batches and deletes those past `retention`, until the queue
/// closes.
pub async fn run(store: Store, mut records: mpsc::Receiver<Record>, retention: Retention) {
    // Keys end in a sequence number; starting it at random keeps keys of a restart apart.
    let mut seq: u32 = rand::random();
    let mut held = match tokio::task::spawn_blocking({
        let store = store.clone();
        move || store.count(Cf::Opmon)
    })
    .await
    {
        Ok(Ok(n)) => n,
        _ => 0,
    };
    let mut last_sweep = Instant::now();
    let mut batch_records = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = records.recv().await else {
            break;
        };
        batch_records.push(first);
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch_records.len() < BATCH {
            match tokio::time::timeout_at(deadline, records.recv()).await {
                Ok(Some(record)) => batch_records.push(record),
                Ok(None) | Err(_) => break,
            }
        }
        let mut batch = Batch::new();
        for record in batch_records.drain(..) {
            seq = seq.wrapping_add(1);
            let Ok(value) = comity_protocol::to_canonical_cbor(&record) else {
                continue;
            };
            batch.put(Cf::Opmon, key(record.answered_at, seq).to_vec(), value);
            held += 1;
        }
        if let Err(e) = store.commit(batch).await {
            tracing::warn!(error = %e, "operational monitoring records were not saved");
        }
        if last_sweep.elapsed() >= SWEEP_EVERY || held > retention.max_records {
            last_sweep = Instant::now();
            match sweep(&store, retention, Timestamp::now(), held).await {
                Ok(left) => held = left,
                Err(e) => {
                    tracing::warn!(error = %e, "old operational monitoring records were not deleted")
                }
            }
        }
        crate::metrics::get().opmon_records.set(held as i64);
    }
}

fn key(at: Timestamp, seq: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&(at.as_millis().max(0) as u64).to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Deletes the records older than the retention days, then the oldest beyond the most kept,
/// of the `held` records the store holds (counted by the writer as it goes: the table is not
/// counted again); returns how many are left.
pub async fn sweep(
    store: &Store,
    retention: Retention,
    now: Timestamp,
    held: usize,
) -> Result<usize, StoreError> {
    let cutoff = now
        .as_millis()
        .saturating_sub(i64::from(retention.days) * 86_400_000);
    let doomed = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || doomed(&store, retention, cutoff, held))
            .await
            .map_err(|e| StoreError::Read(e.to_string()))??
    };
    let (keys, left) = doomed;
    for chunk in keys.chunks(10_000) {
        let mut batch = Batch::new();
        for k in chunk {
            batch.delete(Cf::Opmon, k.clone());
        }
        store.commit(batch).await?;
    }
    Ok(left)
}

/// The keys to delete (oldest first: those before the cutoff, and as many more as the store
/// holds beyond the most kept), and how many records remain after.
fn doomed(
    store: &Store,
    retention: Retention,
    cutoff_millis: i64,
    total: usize,
) -> Result<(Vec<Vec<u8>>, usize), StoreError> {
    let cutoff = key(Timestamp::from_millis(cutoff_millis.max(0)), 0);
    let over = total.saturating_sub(retention.max_records);
    let mut keys = Vec::new();
    store.visit(Cf::Opmon, (&[], &[0xff; 13]), false, |k, _| {
        let doomed = keys.len() < over || k < &cutoff[..];
        if doomed {
            keys.push(k.to_vec());
        }
        doomed
    })?;
    let left = total.saturating_sub(keys.len());
    Ok((keys, left))
}

/// Which records to list: since when, with which member, how many at most (the newest).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Query {
    #[serde(default)]
    pub since: Option<Timestamp>,
    #[serde(default)]
    pub member: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only exchanges about this case (recorded in `full` mode only).
    #[serde(default)]
    pub case: Option<comity_protocol::CaseId>,
}

/// Most records one query returns.
pub const MAX_LIST: usize = 10_000;

/// The newest records that match `query`, oldest first.
pub fn list(store: &Store, query: &Query) -> Result<Vec<Record>, StoreError> {
    let limit = query.limit.unwrap_or(1000).clamp(1, MAX_LIST);
    let from = key(query.since.unwrap_or(Timestamp::from_millis(0)), 0);
    let mut found = Vec::new();
    store.visit(Cf::Opmon, (&from, &[0xff; 13]), true, |_, v| {
        if let Ok(record) =
            comity_protocol::from_cbor::<Record>(v, comity_protocol::limits::MAX_REQUEST_FRAME)
            && query
                .member
                .as_ref()
                .is_none_or(|m| record.member.eq_ignore_ascii_case(m))
            && query.case.is_none_or(|c| record.case_id == Some(c))
        {
            found.push(record);
        }
        found.len() < limit
    })?;
    found.reverse();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: i64, member: &str) -> Record {
        Record {
            id: exchange_id(&at.to_be_bytes()),
            member: member.into(),
            direction: Direction::In,
            protocol: "exchange".into(),
            kind: "push".into(),
            request_bytes: 100,
            response_bytes: 50,
            requested_at: Timestamp::from_millis(at - 3),
            answered_at: Timestamp::from_millis(at),
            outcome: "receipt".into(),
            fault: None,
            case_id: None,
        }
    }

    async fn put(store: &Store, records: &[Record]) {
        let mut batch = Batch::new();
        for (i, r) in records.iter().enumerate() {
            batch.put(
                Cf::Opmon,
                key(r.answered_at, i as u32).to_vec(),
                comity_protocol::to_canonical_cbor(r).unwrap(),
            );
        }
        store.commit(batch).await.unwrap();
    }

    #[tokio::test]
    async fn lists_the_newest_matching_records_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let records: Vec<Record> = (1..=10)
            .map(|i| record(1_000 * i, if i % 2 == 0 { "FI" } else { "EE" }))
            .collect();
        put(&store, &records).await;
        let all = list(&store, &Query::default()).unwrap();
        assert_eq!(all, records);
        let fi = list(
            &store,
            &Query {
                member: Some("fi".into()),
                limit: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(fi, vec![records[7].clone(), records[9].clone()]);
        let since = list(
            &store,
            &Query {
                since: Some(Timestamp::from_millis(8_000)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(since, records[7..].to_vec());
        let about = list(
            &store,
            &Query {
                case: Some(comity_protocol::CaseId::from_parts(1, 2)),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(about.is_empty(), "no record names that case");
    }

    #[tokio::test]
    async fn the_sweep_keeps_the_retention_days_and_the_most_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let day = 86_400_000;
        let now = 100 * day;
        // Five records older than 30 days, then ten within.
        let records: Vec<Record> = (0..15)
            .map(|i| {
                record(
                    if i < 5 {
                        now - 40 * day + i
                    } else {
                        now - day + i
                    },
                    "FI",
                )
            })
            .collect();
        put(&store, &records).await;
        let retention = Retention {
            days: 30,
            max_records: 100,
        };
        let left = sweep(&store, retention, Timestamp::from_millis(now), 15)
            .await
            .unwrap();
        assert_eq!(left, 10);
        assert_eq!(
            list(&store, &Query::default()).unwrap(),
            records[5..].to_vec()
        );
        let left = sweep(
            &store,
            Retention {
                days: 30,
                max_records: 4,
            },
            Timestamp::from_millis(now),
            left,
        )
        .await
        .unwrap();
        assert_eq!(left, 4);
        assert_eq!(
            list(&store, &Query::default()).unwrap(),
            records[11..].to_vec()
        );
    }

    #[test]
    fn both_ends_name_an_exchange_alike_and_a_record_holds_no_content() {
        let frame = b"\x00request frame with a selector in it";
        assert_eq!(exchange_id(frame), exchange_id(frame.as_slice()));
        assert_eq!(exchange_id(frame).len(), 32);
        let tap = Tap::off();
        let asked = tap.arrived(PeerId::random(), "exchange", frame);
        assert_eq!(asked.id, None, "hashed in the event loop");
        assert!(!asked.keeps_cases());
        let encoded = serde_json::to_string(&record(5, "FI")).unwrap();
        assert!(!encoded.contains("selector"));
        assert_eq!(asked.kind, "unreadable");
        assert_eq!(asked.bytes, frame.len() as u64);
    }
}
