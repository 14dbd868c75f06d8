//! Cases: the requests this node drafted, sent and received, their signed logs, and the
//! exchange that replicates them.
//!
//! Every change to a case is a signed event appended to its log (`comity_protocol::caselog`)
//! and pushed to the other party through the durable outbox, in one synced batch. Members that
//! reconnect pull what they lack. This module logs identifiers and sizes only, never a
//! request's contents or selectors.

mod budget;
pub mod clocks;
pub mod core;
mod exchange;
mod index;
mod monitor;
mod outbox;
mod precheck;
pub mod record;
mod refusals;
pub use refusals::EquivocationRecord;
mod retention;
mod shell;
mod sync;
mod tables;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use comity_protocol::caselog::KeyProblem;
use comity_protocol::{
    AssistanceRequest, CaseId, CaseState, DataCategory, EventKind, Jurisdiction, SignedEnvelope,
    Timestamp, ValidationErrors,
};
use comity_protocol::{CaseEvent, PublicKey};
use ed25519_dalek::VerifyingKey;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::bloc::Governance;
use crate::identity::NodeIdentity;
use crate::network::{self, InboundRequest};
use crate::roster::Roster;
use crate::store::{Batch, Store, StoreError};
pub use outbox::CaseSettings;
pub use precheck::Precheck;
use record::{CaseRecord, OutboxEntry, Role};
use shell::Load;
pub use sync::CASES_PER_PULL;
pub use tables::OutboxLag;

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("request is invalid: {0}")]
    Invalid(ValidationErrors),
    #[error("no case {0}")]
    NotFound(CaseId),
    #[error("{counterparty} is not a member of bloc {bloc}; see `comity bloc status`")]
    UnknownMember {
        counterparty: Jurisdiction,
        bloc: String,
    },
    #[error("case {case} is {state}; only a draft can be sent")]
    NotDraft { case: CaseId, state: &'static str },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Corrupt(#[from] record::CorruptRecord),
    #[error("stored case log does not verify: {0}; the store may be damaged")]
    Log(String),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
}

/// Told, in the batch that stores a fulfilment, of the evidence package it names: the
/// evidence service records the transfer there, so that it starts (or resumes after a crash)
/// once the batch is stored; and, in the batch that purges a case, of the purge, so that the
/// case's package goes with it. Cases know nothing else of evidence.
pub trait Fulfilments: Send + Sync + std::fmt::Debug {
    fn announced(
        &self,
        batch: &mut Batch,
        case_id: CaseId,
        root: comity_protocol::Hash32,
        from: &Jurisdiction,
        at: Timestamp,
    );
    fn purged(&self, batch: &mut Batch, case_id: CaseId);
}

/// What makes two refusals the same: who, which case, which code, which reason.
type RefusalKey = (
    libp2p::PeerId,
    Option<CaseId>,
    comity_protocol::RejectCode,
    String,
);

/// The case service: a cheap, cloneable handle.
#[derive(Clone, Debug)]
pub struct Cases {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    /// Case keys: content is sealed before it reaches the store.
    vault: crate::vault::Vault,
    identity: NodeIdentity,
    governance: Governance,
    jurisdiction: Jurisdiction,
    network: network::Client,
    outbox: mpsc::Sender<OutboxEntry>,
    /// Officers waiting for a request's delivery to end (send with `wait`).
    waiters: Mutex<HashMap<CaseId, Vec<oneshot::Sender<()>>>>,
    not_delivered_after: Duration,
    retention_sweep: Duration,
    /// Data categories whose disclosure needs a second officer's approval.
    disclosure_approval: Vec<DataCategory>,
    policy: Option<crate::policy::Policy>,
    /// Members' published policy summaries, verified, with when they were fetched.
    summaries: Mutex<HashMap<Jurisdiction, (crate::policy::PolicySummary, std::time::Instant)>>,
    /// Serialises read-modify-write of one case (its record and its log).
    locks: [tokio::sync::Mutex<()>; 64],
    /// Members to pull from soon, for the sync worker (which takes the receiver).
    sync_tx: mpsc::Sender<libp2p::PeerId>,
    sync_rx: Mutex<Option<mpsc::Receiver<libp2p::PeerId>>>,
    /// Wakes the evidence service: a fulfilment named a package, or its arrival was confirmed.
    evidence_wake: Arc<tokio::sync::Notify>,
    /// Records, in a fulfilment's batch, the transfer of the package it names.
    fulfilments: Arc<dyn Fulfilments>,
    cases_per_pull: usize,
    give_up_after: Duration,
    /// New requests one member may open here in a day, and what each opened today.
    new_cases_per_day: u32,
    opened_today: Mutex<HashMap<Jurisdiction, (i64, u32)>>,
    /// Members told today that they reached their quota (logged once a day each).
    quota_warned: Mutex<std::collections::HashSet<(Jurisdiction, i64)>>,
    /// Each member's share of the request places, and its use.
    budget: Arc<std::sync::Mutex<budget::Budget>>,
    /// Refusals recorded lately, by peer, case, code and reason: repeats are not recorded.
    recent_refusals: Mutex<HashMap<RefusalKey, std::time::Instant>>,
    /// The refusal tallies, counted here and written at most once a second each (with a
    /// sample and, hourly, an audit entry): a flood of refusals is not a flood of writes.
    refusal_tallies: tokio::sync::Mutex<HashMap<Vec<u8>, refusals::Counted>>,
    /// How far each member's clock is from ours, measured on receipts.
    clocks: clocks::Clocks,
}

impl Cases {
    /// Starts the case service: the outbox worker, the inbound exchange handler and the
    /// synchronisation of logs with members as they connect.
    pub async fn start(
        store: Store,
        vault: crate::vault::Vault,
        identity: NodeIdentity,
        governance: Governance,
        network: network::Client,
        inbound: mpsc::Receiver<InboundRequest>,
        settings: CaseSettings,
    ) -> Result<Self, CaseError> {
        let jurisdiction = governance.jurisdiction().clone();
        let (outbox_tx, outbox_rx) = mpsc::channel(4096);
        let (sync_tx, sync_rx) = mpsc::channel(256);
        let cases = Self {
            inner: Arc::new(Inner {
                store,
                vault,
                identity,
                governance,
                jurisdiction,
                network,
                outbox: outbox_tx,
                waiters: Mutex::new(HashMap::new()),
                not_delivered_after: settings.not_delivered_after,
                retention_sweep: settings.retention_sweep,
                disclosure_approval: settings.disclosure_approval.clone(),
                policy: settings.policy.clone(),
                summaries: Mutex::new(HashMap::new()),
                locks: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
                sync_tx,
                sync_rx: Mutex::new(Some(sync_rx)),
                evidence_wake: Arc::new(tokio::sync::Notify::new()),
                fulfilments: settings.fulfilments.clone(),
                cases_per_pull: settings.cases_per_pull.max(1),
                give_up_after: settings.give_up_after,
                new_cases_per_day: settings.new_cases_per_member_per_day,
                opened_today: Mutex::new(HashMap::new()),
                quota_warned: Mutex::new(std::collections::HashSet::new()),
                budget: Arc::new(std::sync::Mutex::new(budget::Budget::new(
                    settings.queries_per_second_per_member,
                    std::time::Instant::now(),
                ))),
                recent_refusals: Mutex::new(HashMap::new()),
                clocks: clocks::Clocks::default(),
                refusal_tallies: tokio::sync::Mutex::new(HashMap::new()),
            }),
        };
        let cap = cases.retention_cap();
        if index::ensure(&cases.inner.store, cap, || cases.list()).await? {
            info!("case index built from the stored cases");
            cases.rewrite_decisions().await?;
        }
        let mut pending = cases.outbox_entries()?;
        pending.retain(|e| !e.dead);
        info!(pending = pending.len(), "outbox loaded");
        // Subscribed here, before any task runs, so that no connection goes unseen.
        let outbox_connections = cases.inner.network.connections();
        let sync_connections = cases.inner.network.connections();
        let anti_entropy = settings.anti_entropy;
        tokio::spawn(outbox::run(
            cases.clone(),
            settings,
            pending,
            outbox_rx,
            outbox_connections,
        ));
        tokio::spawn(exchange::serve(cases.clone(), inbound));
        tokio::spawn(sync::run(cases.clone(), sync_connections, anti_entropy));
        tokio::spawn(retention::run(cases.clone()));
        tokio::spawn(monitor::run(cases.clone()));
        Ok(cases)
    }

    /// The node's clock: the system clock, plus an offset that testnets may advance (to see
    /// deadlines and retention without waiting).
    /// (The governance service keeps the one clock: bloc expiry and case deadlines agree.)
    pub fn now(&self) -> Timestamp {
        self.inner.governance.now()
    }

    /// How far `member`'s clock was from ours when last measured (on a receipt).
    pub fn clock_offset(&self, member: &Jurisdiction) -> Option<clocks::ClockSample> {
        self.inner.clocks.get(member)
    }

    /// Records a measure of `member`'s clock (from a receipt, or a pull's answer), and says in
    /// the log when it drifts off or comes back in line.
    pub(crate) fn note_clock(&self, member: &Jurisdiction, sample: clocks::ClockSample) {
        match self.inner.clocks.record(member, sample) {
            clocks::Change::BecameSkewed => {
                warn!(member = %member, offset_ms = sample.offset_ms, "{}", sample.describe(member))
            }
            clocks::Change::BackInLine => {
                info!(member = %member, offset_ms = sample.offset_ms, "{member}'s clock agrees with ours again")
            }
            clocks::Change::None => {}
        }
    }

    /// The members whose clocks are off, in words.
    pub fn clock_alerts(&self) -> Vec<String> {
        self.inner.clocks.alerts()
    }

    /// Fault injection (testnets): moves the node's clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.inner.governance.advance_clock(by);
    }

    /// Fault injection (testnets): moves the node's clock by `ms`, either way (a skewed clock).
    pub fn shift_clock(&self, ms: i64) {
        self.inner.governance.shift_clock(ms);
    }

    /// Until when this node keeps a case's content: on the requesting side, the request's
    /// retention from its submission, capped by this node's policy; on the executing side,
    /// this node's own retention of its records. Nobody can extend it.
    pub fn retention_until(&self, record: &CaseRecord) -> Option<Timestamp> {
        index::retention_until(record, self.retention_cap())
    }

    /// The policy incoming requests are checked against; `None` in manual review.
    pub fn policy(&self) -> Option<&crate::policy::Policy> {
        self.inner.policy.as_ref()
    }

    /// The preservation rule of `record`'s instrument (or the bloc's for it).
    pub fn preservation_rule(
        &self,
        record: &CaseRecord,
    ) -> comity_protocol::deadlines::PreservationRule {
        comity_protocol::deadlines::preservation(
            self.inner.governance.roster().settings(),
            record.summary.instrument,
        )
    }

    /// The policy's retention: its cap on received data, and how long this node keeps its
    /// own records of the requests it executed.
    fn retention_cap(&self) -> index::Retention {
        let policy = self.inner.policy.as_ref();
        index::Retention {
            cap_days: policy.and_then(|p| p.default_retention_days),
            executing_days: policy
                .and_then(|p| p.executing_retention_days)
                .unwrap_or(comity_protocol::policy::DEFAULT_EXECUTING_RETENTION_DAYS),
        }
    }

    /// The case keys: evidence records are sealed with their case's key too.
    pub fn vault(&self) -> &crate::vault::Vault {
        &self.inner.vault
    }

    /// Notified when a stored event concerns an evidence package.
    pub fn evidence_wake(&self) -> Arc<tokio::sync::Notify> {
        self.inner.evidence_wake.clone()
    }

    /// A member's requests in hand, its share of the places, and those turned away since start.
    pub fn budget_usage(&self, peer: &libp2p::PeerId) -> (usize, usize, u64) {
        let (in_hand, turned_away) = self.inner.budget.lock().expect("budget lock").usage(peer);
        (in_hand, self.request_share(), turned_away)
    }

    /// One member's share of the request places, with as many members as the bloc has now.
    fn request_share(&self) -> usize {
        let others = self.roster().members().len().saturating_sub(1);
        budget::share(exchange::MAX_CONCURRENT, others)
    }

    pub fn jurisdiction(&self) -> &Jurisdiction {
        &self.inner.jurisdiction
    }

    /// The roster now (it changes when a new bloc configuration applies).
    pub fn roster(&self) -> Arc<Roster> {
        self.inner.governance.roster()
    }

    pub fn governance(&self) -> &Governance {
        &self.inner.governance
    }

    fn lock(&self, case: &CaseId) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        case.hash(&mut h);
        &self.inner.locks[(h.finish() % 64) as usize]
    }

    /// The key an event held here was signed with, if it was ever its author's (checked
    /// when it arrived; a key retired or revoked since still reads, with a note).
    fn held_key_of(
        roster: &Roster,
    ) -> impl Fn(&CaseEvent, &PublicKey) -> Result<VerifyingKey, KeyProblem> + '_ {
        |event, signer| match roster.note(&event.author, signer) {
            Some(_) => signer
                .verifying_key()
                .map_err(|e| KeyProblem::Refused(e.to_string())),
            None => Err(KeyProblem::NotAMember),
        }
    }

    /// Creates a draft from a validated request, drafted by `officer`.
    pub async fn create_draft(
        &self,
        request: AssistanceRequest,
        officer: &str,
    ) -> Result<CaseRecord, CaseError> {
        let case_id = CaseId::new();
        let plan = self
            .run(case_id, Load::Record, |ctx, _| {
                let record = core::draft(ctx, case_id, request, officer)?;
                Ok::<_, CaseError>(core::Plan {
                    record: Some(record),
                    ..core::Plan::default()
                })
            })
            .await?;
        let record = plan.record.expect("a draft plan holds its record");
        info!(case = %record.case_id, to = %record.counterparty, officer, "draft created");
        Ok(record)
    }

    /// Four-eyes: see [`core::approve`]. Refusals are logged.
    pub async fn approve(&self, case_id: CaseId, approver: &str) -> Result<CaseRecord, CaseError> {
        // A sent request's pending amendment, or a draft or a disclosure.
        let plan = self
            .run(case_id, Load::Log, |ctx, case| {
                if case
                    .record
                    .as_ref()
                    .is_some_and(|r| r.pending_amendment.is_some())
                {
                    return core::accept_amendment(ctx, case, approver);
                }
                core::approve(ctx, Self::found(case_id, case.record)?, approver)
            })
            .await
            .inspect_err(|e| {
                warn!(case = %case_id, officer = approver, reason = %e, "approval refused");
            })?;
        let record = plan.record.expect("an approval plan holds its record");
        info!(case = %case_id, officer = approver, role = %record.role, "approved");
        Ok(record)
    }

    /// Signs a draft's request as the genesis of its log and queues it, durably, in one batch.
    /// With `wait`, returns once the executing side's receipt is verified (or the wait ends).
    /// Under the case's lock: two officers sending the same draft cannot both succeed.
    pub async fn send(
        &self,
        case_id: CaseId,
        wait: Option<Duration>,
    ) -> Result<CaseRecord, CaseError> {
        let waiter = wait.map(|_| self.register_waiter(case_id));
        let plan = self
            .run(case_id, Load::Record, |ctx, case| {
                core::send(ctx, Self::found(case_id, case.record)?)
            })
            .await
            .inspect_err(|e| match e {
                CaseError::Refused(why) if why.starts_with("four-eyes") => {
                    warn!(case = %case_id, "send refused: not approved");
                }
                CaseError::Refused(_) => {
                    warn!(case = %case_id, reason = %e, "send refused: the bloc configuration does not allow new requests");
                }
                _ => {}
            })?;
        if let Some(entry) = plan.outbox_put.first() {
            info!(case = %case_id, message = %entry.message_id, to = %entry.to, bytes = entry.frame.len(), "request queued");
        }
        self.finish_wait(case_id, wait.zip(waiter)).await
    }

    /// An officer's step in a case (see [`core::act`]): a signed event of this node, stored
    /// with its push to the other party in one batch. Refused, with the reason, unless this
    /// side may take the step now.
    pub async fn act(
        &self,
        case_id: CaseId,
        kind: EventKind,
        officer: &str,
    ) -> Result<CaseRecord, CaseError> {
        let code = kind.code();
        let plan = self
            .run(case_id, Load::Log, |ctx, case| {
                core::act(ctx, case, kind, officer)
            })
            .await
            .inspect_err(|e| match e {
                CaseError::Refused(why) if why.starts_with("four-eyes") => {
                    warn!(case = %case_id, officer, "fulfilment refused: disclosure not approved by another officer");
                }
                CaseError::Refused(why) => {
                    tracing::debug!(case = %case_id, officer, event = code, reason = %why, "step refused");
                }
                _ => {}
            })?;
        let record = plan.record.expect("a step's plan holds its record");
        info!(case = %case_id, event = code, to = %record.counterparty, officer, "event recorded");
        Ok(record)
    }

    /// Withdraws a drafted amendment or an asked override (see [`core::cancel_pending`]).
    pub async fn cancel_pending(
        &self,
        case_id: CaseId,
        what: core::Pending,
        officer: &str,
    ) -> Result<CaseRecord, CaseError> {
        let plan = self
            .run(case_id, Load::Record, |ctx, case| {
                core::cancel_pending(ctx, case, what, officer)
            })
            .await?;
        info!(case = %case_id, officer, ?what, "pending approval withdrawn");
        Ok(plan.record.expect("a withdrawal's plan holds its record"))
    }

    /// Drafts an amendment of a sent request (see [`core::amend`]).
    pub async fn amend(
        &self,
        case_id: CaseId,
        request: comity_protocol::AssistanceRequest,
        officer: &str,
    ) -> Result<CaseRecord, CaseError> {
        let plan = self
            .run(case_id, Load::Record, |ctx, case| {
                core::amend(ctx, case, request, officer)
            })
            .await
            .inspect_err(|e| warn!(case = %case_id, officer, reason = %e, "amendment refused"))?;
        info!(case = %case_id, officer, "amendment drafted, awaiting approval");
        Ok(plan.record.expect("an amendment plan holds its record"))
    }

    /// An officer asks to go on with a case the policy refused (see [`core::request_override`]).
    pub async fn request_override(
        &self,
        case_id: CaseId,
        officer: &str,
        reason: String,
    ) -> Result<CaseRecord, CaseError> {
        let plan = self
            .run(case_id, Load::Record, |ctx, case| {
                core::request_override(ctx, case, officer, reason)
            })
            .await
            .inspect_err(
                |e| warn!(case = %case_id, officer, reason = %e, "override request refused"),
            )?;
        info!(case = %case_id, officer, "override of the policy asked for");
        Ok(plan.record.expect("an override plan holds its record"))
    }

    /// Another officer approves the override; the node signs it into the case's log.
    pub async fn approve_override(
        &self,
        case_id: CaseId,
        approver: &str,
    ) -> Result<CaseRecord, CaseError> {
        let plan = self
            .run(case_id, Load::Log, |ctx, case| {
                core::approve_override(ctx, case, approver)
            })
            .await
            .inspect_err(|e| warn!(case = %case_id, officer = approver, reason = %e, "override approval refused"))?;
        info!(case = %case_id, officer = approver, "override of the policy approved and recorded");
        Ok(plan.record.expect("an override plan holds its record"))
    }

    /// Four-eyes on disclosure: the categories the node's safeguards name need an approval by
    /// an approver other than the officer who discloses.
    pub fn check_disclosure_approval(
        &self,
        record: &CaseRecord,
        officer: &str,
    ) -> Result<(), CaseError> {
        self.with_context(|ctx| core::check_disclosure_approval(ctx, record, officer))
            .inspect_err(|_| {
                warn!(case = %record.case_id, officer, "fulfilment refused: disclosure not approved by another officer");
            })
    }

    fn found(case_id: CaseId, record: Option<CaseRecord>) -> Result<CaseRecord, CaseError> {
        record.ok_or(CaseError::NotFound(case_id))
    }

    /// Signs any object as this node (a case bundle's header, say).
    pub fn sign_object<T: comity_protocol::Signable>(
        &self,
        body: &T,
    ) -> Result<SignedEnvelope, CaseError> {
        SignedEnvelope::sign(body, &self.inner.identity.signing_key())
            .map_err(|e| CaseError::Encode(e.to_string()))
    }

    /// Hands stored outbox entries to the worker. They are durable: if the worker's queue is
    /// gone the node is stopping, and the outbox is reloaded from the store at the next start.
    async fn dispatch(&self, entries: Vec<OutboxEntry>) {
        for entry in entries.into_iter().filter(|e| !e.dead) {
            let _ = self.inner.outbox.send(entry).await;
        }
    }

    async fn finish_wait(
        &self,
        case_id: CaseId,
        wait: Option<(Duration, oneshot::Receiver<()>)>,
    ) -> Result<CaseRecord, CaseError> {
        if let Some((wait, waiter)) = wait {
            let _ = tokio::time::timeout(wait, waiter).await;
        }
        self.get(&case_id)?.ok_or(CaseError::NotFound(case_id))
    }

    fn register_waiter(&self, case_id: CaseId) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.inner.waiters.lock().expect("waiters lock");
        // Waits that timed out left closed senders behind; drop them as we go.
        waiters.retain(|_, list| {
            list.retain(|w| !w.is_closed());
            !list.is_empty()
        });
        waiters.entry(case_id).or_default().push(tx);
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
}

/// The key an event's signer may use for a new event: the author's current key, or a
/// retired one if the event predates the retirement; never a revoked one.
pub(crate) fn key_of(
    roster: &Roster,
) -> impl Fn(&CaseEvent, &PublicKey) -> Result<VerifyingKey, KeyProblem> + '_ {
    |event, signer| {
        use comity_protocol::bloc::KeyRefusal;
        match roster.accepts(&event.author, signer, event.at) {
            Ok(()) => signer
                .verifying_key()
                .map_err(|e| KeyProblem::Refused(e.to_string())),
            Err(KeyRefusal::NotAMember(_)) => Err(KeyProblem::NotAMember),
            Err(e) => Err(KeyProblem::Refused(e.to_string())),
        }
    }
}

/// How long before a preservation lapses officers are warned: it is flagged in case lists
/// (`--lapsing`) and the node logs it once.
pub const PRESERVATION_WARNING: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// Where a case stands against its deadlines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// When the next step is due: a decision on a delivered request, or fulfilment of an
    /// accepted one.
    pub at: Option<Timestamp>,
    /// The rule that set `at`: the instrument's text, or the bloc's setting.
    pub rule: Option<String>,
    /// `decision` or `fulfilment`, once past due.
    pub overdue: Option<&'static str>,
    /// Sent, without a receipt for longer than the configured time.
    pub not_delivered: bool,
}

impl Cases {
    /// When `record`'s next step is due, by the rule its instrument, urgency and the bloc's
    /// settings give (`comity_protocol::deadlines`).
    pub fn due(&self, record: &CaseRecord, now: Timestamp) -> Due {
        use comity_protocol::Anchor;
        use comity_protocol::deadlines;
        let roster = self.inner.governance.roster();
        let settings = roster.settings();
        let (instrument, urgency) = (record.summary.instrument, record.summary.urgency);
        let mut due = Due::default();
        let log = &record.log;
        let received = log.delivered_at.or(log.submitted_at);
        let step = match log.state {
            Some(
                CaseState::Submitted
                | CaseState::Delivered
                | CaseState::UnderReview
                | CaseState::ClarificationRequested
                | CaseState::Clarified
                | CaseState::Amended,
            ) => Some((
                "decision",
                deadlines::decision(settings, instrument, urgency),
            )),
            Some(CaseState::Accepted | CaseState::PartiallyAccepted) => Some((
                "fulfilment",
                deadlines::execution(settings, instrument, urgency),
            )),
            _ => None,
        };
        if let Some((step, deadline)) = step {
            let from = match deadline.from {
                Anchor::Receipt => received,
                Anchor::Decision => log.decided_at,
            };
            if let Some(from) = from {
                let at = from.saturating_add(deadline.after);
                due.at = Some(at);
                due.rule = Some(deadline.rule);
                if now > at {
                    due.overdue = Some(step);
                }
            }
        }
        if record.role == Role::Requester
            && record.receipt.is_none()
            && let Some(queued) = record.delivery.queued_at
        {
            due.not_delivered = now > queued.saturating_add(self.inner.not_delivered_after);
        }
        due
    }
}
