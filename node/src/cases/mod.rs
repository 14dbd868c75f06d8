//! Cases: the requests this node drafted, sent and received, and the exchange that moves them.
//!
//! Owns the case records and the outbox. Every state change is one store batch, committed
//! (synced) before it is acknowledged to an officer or a peer. This module logs identifiers
//! and sizes only, never a request's contents or selectors.

mod exchange;
mod outbox;
pub mod record;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use comity_protocol::{
    AssistanceRequest, CaseId, ExchangeRequest, Jurisdiction, MessageId, RequestMessage,
    SignedEnvelope, Timestamp, ValidationErrors, to_canonical_cbor,
};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::identity::NodeIdentity;
use crate::network::{self, InboundRequest};
use crate::roster::Roster;
use crate::store::{Batch, Cf, Store, StoreError};
pub use outbox::OutboxSettings;
use record::{CaseRecord, CaseState, Delivery, OutboxEntry, Role, case_key, message_key};

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("request is invalid: {0}")]
    Invalid(ValidationErrors),
    #[error("no case {0}")]
    NotFound(CaseId),
    #[error("{counterparty} is not a member of bloc {bloc}; check the roster")]
    UnknownMember {
        counterparty: Jurisdiction,
        bloc: String,
    },
    #[error("case {case} is {state}; only a draft can be sent")]
    NotDraft { case: CaseId, state: CaseState },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Corrupt(#[from] record::CorruptRecord),
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

/// The case service: a cheap, cloneable handle.
#[derive(Clone, Debug)]
pub struct Cases {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    identity: NodeIdentity,
    roster: Arc<Roster>,
    jurisdiction: Jurisdiction,
    network: network::Client,
    outbox: mpsc::Sender<OutboxEntry>,
    /// Officers waiting for a case to leave `Submitted` (send with `wait`).
    waiters: Mutex<HashMap<CaseId, Vec<oneshot::Sender<()>>>>,
    /// Serialises read-modify-write of one case record.
    locks: [tokio::sync::Mutex<()>; 64],
}

impl Cases {
    /// Starts the case service: the outbox worker and the inbound exchange handler.
    pub fn start(
        store: Store,
        identity: NodeIdentity,
        roster: Arc<Roster>,
        jurisdiction: Jurisdiction,
        network: network::Client,
        inbound: mpsc::Receiver<InboundRequest>,
        outbox_settings: OutboxSettings,
    ) -> Result<Self, CaseError> {
        let (outbox_tx, outbox_rx) = mpsc::channel(4096);
        let cases = Self {
            inner: Arc::new(Inner {
                store,
                identity,
                roster,
                jurisdiction,
                network,
                outbox: outbox_tx,
                waiters: Mutex::new(HashMap::new()),
                locks: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            }),
        };
        let pending = cases.outbox_entries()?;
        info!(pending = pending.len(), "outbox loaded");
        tokio::spawn(outbox::run(
            cases.clone(),
            outbox_settings,
            pending,
            outbox_rx,
        ));
        tokio::spawn(exchange::serve(cases.clone(), inbound));
        Ok(cases)
    }

    pub fn jurisdiction(&self) -> &Jurisdiction {
        &self.inner.jurisdiction
    }

    pub fn roster(&self) -> &Roster {
        &self.inner.roster
    }

    fn lock(&self, case: &CaseId) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        case.hash(&mut h);
        &self.inner.locks[(h.finish() % 64) as usize]
    }

    /// Checks a request and makes it a draft case (not yet stored).
    fn new_draft(&self, request: AssistanceRequest) -> Result<CaseRecord, CaseError> {
        request.validate().map_err(CaseError::Invalid)?;
        if request.requesting != self.inner.jurisdiction {
            return Err(CaseError::Invalid(ValidationErrors(vec![
                comity_protocol::FieldProblem {
                    field: "requesting".into(),
                    problem: format!(
                        "this node speaks for {}, not {}",
                        self.inner.jurisdiction, request.requesting
                    ),
                },
            ])));
        }
        if self
            .inner
            .roster
            .by_jurisdiction(&request.executing)
            .is_none()
        {
            return Err(CaseError::UnknownMember {
                counterparty: request.executing.clone(),
                bloc: self.inner.roster.bloc().to_owned(),
            });
        }
        let now = Timestamp::now();
        Ok(CaseRecord {
            case_id: CaseId::new(),
            role: Role::Requester,
            counterparty: request.executing.clone(),
            state: CaseState::Draft,
            created_at: now,
            updated_at: now,
            request,
            message_id: None,
            envelope: None,
            receipt: None,
            delivery: Delivery::default(),
        })
    }

    /// Creates a draft from a validated request.
    pub async fn create_draft(&self, request: AssistanceRequest) -> Result<CaseRecord, CaseError> {
        let record = self.new_draft(request)?;
        let mut batch = Batch::new();
        batch.put(Cf::Cases, case_key(&record.case_id), record.encode());
        self.inner.store.commit(batch).await?;
        info!(case = %record.case_id, to = %record.counterparty, "draft created");
        Ok(record)
    }

    /// Creates a case and sends it at once: draft, signature and outbox entry in one batch.
    pub async fn create_and_send(
        &self,
        request: AssistanceRequest,
        wait: Option<Duration>,
    ) -> Result<CaseRecord, CaseError> {
        let mut record = self.new_draft(request)?;
        let waiter = wait.map(|_| self.register_waiter(record.case_id));
        let entry = self.submit(&mut record)?;
        self.persist(&record, &entry).await?;
        self.dispatch(record.case_id, entry, wait.zip(waiter)).await
    }

    /// Signs a draft and queues it in the outbox, durably, in one batch. With `wait`, returns
    /// once the executing side's receipt is verified and stored (or the wait runs out).
    pub async fn send(
        &self,
        case_id: CaseId,
        wait: Option<Duration>,
    ) -> Result<CaseRecord, CaseError> {
        let waiter = wait.map(|_| self.register_waiter(case_id));
        let _guard = self.lock(&case_id).lock().await;
        let mut record = self.get(&case_id)?.ok_or(CaseError::NotFound(case_id))?;
        if record.state != CaseState::Draft {
            return Err(CaseError::NotDraft {
                case: case_id,
                state: record.state,
            });
        }
        let entry = self.submit(&mut record)?;
        // Still under the case lock: two officers sending the same draft cannot both succeed.
        self.persist(&record, &entry).await?;
        drop(_guard);
        self.dispatch(case_id, entry, wait.zip(waiter)).await
    }

    /// Signs the request of a draft: the case becomes `submitted` with the outbox entry that
    /// will carry it. Nothing is stored yet.
    fn submit(&self, record: &mut CaseRecord) -> Result<OutboxEntry, CaseError> {
        let message = RequestMessage {
            message_id: MessageId::new(),
            case_id: record.case_id,
            sent_at: Timestamp::now(),
            request: record.request.clone(),
        };
        let envelope = SignedEnvelope::sign(&message, self.inner.identity.signing_key())
            .map_err(|e| CaseError::Encode(e.to_string()))?;
        let frame = to_canonical_cbor(&ExchangeRequest::Submit(envelope.clone()))
            .map_err(|e| CaseError::Encode(e.to_string()))?;
        record.state = CaseState::Submitted;
        record.message_id = Some(message.message_id);
        record.envelope = Some(envelope);
        record.updated_at = message.sent_at;
        Ok(OutboxEntry {
            message_id: message.message_id,
            case_id: record.case_id,
            to: record.counterparty.clone(),
            body_hash: record
                .envelope
                .as_ref()
                .map(|e| e.body_hash())
                .expect("signed above"),
            frame,
            queued_at: message.sent_at,
        })
    }

    /// Stores a submitted case with its outbox entry, synced, in one batch.
    async fn persist(&self, record: &CaseRecord, entry: &OutboxEntry) -> Result<(), CaseError> {
        let mut batch = Batch::new();
        batch.put(Cf::Cases, case_key(&record.case_id), record.encode());
        batch.put(Cf::Outbox, message_key(&entry.message_id), entry.encode());
        self.inner.store.commit(batch).await?;
        info!(case = %record.case_id, message = %entry.message_id, to = %entry.to, bytes = entry.frame.len(), "request queued");
        Ok(())
    }

    /// Hands a stored outbox entry to the worker and optionally waits for its delivery to end.
    async fn dispatch(
        &self,
        case_id: CaseId,
        entry: OutboxEntry,
        wait: Option<(Duration, oneshot::Receiver<()>)>,
    ) -> Result<CaseRecord, CaseError> {
        // The entry is durable: if the worker's queue is gone the node is stopping, and the
        // outbox is reloaded from the store at the next start.
        let _ = self.inner.outbox.send(entry).await;
        if let Some((wait, waiter)) = wait {
            let _ = tokio::time::timeout(wait, waiter).await;
        }
        self.get(&case_id)?.ok_or(CaseError::NotFound(case_id))
    }

    fn register_waiter(&self, case_id: CaseId) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .waiters
            .lock()
            .expect("waiters lock")
            .entry(case_id)
            .or_default()
            .push(tx);
        rx
    }

    fn wake_waiters(&self, case_id: &CaseId) {
        if let Some(waiters) = self
            .inner
            .waiters
            .lock()
            .expect("waiters lock")
            .remove(case_id)
        {
            for w in waiters {
                let _ = w.send(());
            }
        }
    }

    pub fn get(&self, case_id: &CaseId) -> Result<Option<CaseRecord>, CaseError> {
        match self.inner.store.get(Cf::Cases, &case_key(case_id))? {
            Some(bytes) => Ok(Some(CaseRecord::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every case, newest first.
    pub fn list(&self) -> Result<Vec<CaseRecord>, CaseError> {
        let mut cases = self
            .inner
            .store
            .scan(Cf::Cases)?
            .iter()
            .map(|(_, v)| CaseRecord::decode(v))
            .collect::<Result<Vec<_>, _>>()?;
        cases.reverse();
        Ok(cases)
    }

    pub fn outbox_depth(&self) -> Result<usize, CaseError> {
        Ok(self.inner.store.count(Cf::Outbox)?)
    }

    fn outbox_entries(&self) -> Result<Vec<OutboxEntry>, CaseError> {
        self.inner
            .store
            .scan(Cf::Outbox)?
            .iter()
            .map(|(_, v)| OutboxEntry::decode(v).map_err(CaseError::from))
            .collect()
    }
}
