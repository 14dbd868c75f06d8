//! The durable outbox: delivers each queued message until its peer returns a valid signed
//! receipt, retrying with capped exponential backoff, and at once when the peer reconnects.
//!
//! Entries live in the store from the moment they are queued; this worker only schedules them.
//! A delivery ends in one of three ways: a verified receipt (case delivered), a refusal of the
//! message itself (case undeliverable, with the peer's reason), or a retry later.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use comity_protocol::{
    CaseId, ExchangeResponse, MessageId, Receipt, Receipted, RejectCode, SignedEnvelope, from_cbor,
    limits,
};
use libp2p::PeerId;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::clocks::ClockSample;
use super::core::{self, Via};
use super::record::OutboxEntry;
use super::shell::Load;
use super::{CaseError, Cases};
use crate::roster::Member;

/// How the case service runs: delivery, safeguards and policy.
#[derive(Clone, Debug)]
pub struct CaseSettings {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_in_flight: usize,
    /// A request without a receipt after this long is flagged "not delivered".
    pub not_delivered_after: Duration,
    /// Data categories whose disclosure needs a second officer's approval (four-eyes).
    pub disclosure_approval: Vec<comity_protocol::DataCategory>,
    /// The node's policy, checked on every incoming request.
    pub policy: Option<crate::policy::Policy>,
    /// How often expired retention is looked for.
    pub retention_sweep: Duration,
    /// Most cases listed in one pull request; more are pulled range by range.
    pub cases_per_pull: usize,
    /// How often every connected member is asked for what this node lacks (anti-entropy).
    pub anti_entropy: Duration,
    /// Told of fulfilments that name an evidence package.
    pub fulfilments: std::sync::Arc<dyn super::Fulfilments>,
    /// A push its member has not acknowledged after this long is no longer sent (it is kept,
    /// and shown on its case, until an officer asks for it again).
    pub give_up_after: Duration,
    /// New requests one member may open here in a day (UTC).
    pub new_cases_per_member_per_day: u32,
    /// Queries (pulls, proofs, policy, bloc) one member may make here a second (0: no budget).
    pub queries_per_second_per_member: u32,
}

enum Outcome {
    Delivered,
    Refused,
    Retry(String),
}

struct Pending {
    entry: OutboxEntry,
    attempts: u32,
    due: Instant,
    /// When its first attempt of this run began (by the case service's clock): none has
    /// succeeded since, or it would be gone.
    failing_since: Option<comity_protocol::Timestamp>,
}

pub(super) async fn run(
    cases: Cases,
    settings: CaseSettings,
    loaded: Vec<OutboxEntry>,
    mut queued: mpsc::Receiver<OutboxEntry>,
    mut connections: tokio::sync::broadcast::Receiver<PeerId>,
) {
    let mut pending: HashMap<MessageId, Pending> = HashMap::new();
    let mut schedule: BTreeSet<(Instant, MessageId)> = BTreeSet::new();
    let mut in_flight: JoinSet<(MessageId, Outcome)> = JoinSet::new();
    let mut tasks: HashMap<tokio::task::Id, MessageId> = HashMap::new();
    let now = Instant::now();
    for entry in loaded {
        schedule.insert((now, entry.message_id));
        pending.insert(
            entry.message_id,
            Pending {
                entry,
                attempts: 0,
                due: now,
                failing_since: None,
            },
        );
    }

    loop {
        // Start every due delivery the in-flight cap allows.
        while in_flight.len() < settings.max_in_flight {
            let Some(&(due, id)) = schedule.first() else {
                break;
            };
            if due > Instant::now() {
                break;
            }
            schedule.pop_first();
            let Some(p) = pending.get_mut(&id) else {
                continue;
            };
            // Attempting since the first attempt of this run: none has succeeded since.
            let failing_since = *p.failing_since.get_or_insert_with(|| cases.now());
            let cases = cases.clone();
            let entry = p.entry.clone();
            let task = in_flight.spawn(async move {
                (entry.message_id, cases.deliver(&entry, failing_since).await)
            });
            tasks.insert(task.id(), id);
        }
        let next_due = schedule.first().map(|(due, _)| *due);
        let can_start = in_flight.len() < settings.max_in_flight;
        let sleep = async move {
            match next_due {
                Some(due) if can_start => tokio::time::sleep_until(due).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            entry = queued.recv() => {
                let Some(entry) = entry else { break };
                let now = Instant::now();
                schedule.insert((now, entry.message_id));
                pending.insert(entry.message_id, Pending { entry, attempts: 0, due: now, failing_since: None });
            }
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let (id, outcome) = match done {
                    Ok((task, (id, outcome))) => {
                        tasks.remove(&task);
                        (id, outcome)
                    }
                    // A delivery that panicked is retried like one that failed.
                    Err(e) => match tasks.remove(&e.id()) {
                        Some(id) => (id, Outcome::Retry(format!("delivery task failed: {e}"))),
                        None => continue,
                    },
                };
                match outcome {
                    Outcome::Delivered | Outcome::Refused => { pending.remove(&id); }
                    Outcome::Retry(reason) => {
                        if let Some(p) = pending.get_mut(&id) {
                            p.attempts += 1;
                            p.due = Instant::now() + backoff(&settings, p.attempts);
                            schedule.insert((p.due, id));
                            debug!(message = %id, attempts = p.attempts, %reason, "delivery will be retried");
                        }
                    }
                }
            }
            peer = connections.recv() => {
                // A member (re)connected: whatever waits for it is due now.
                let now = Instant::now();
                let jurisdiction = match peer {
                    Ok(peer) => cases.inner.governance.roster().by_peer(&peer).map(|(m, _)| m.jurisdiction.clone()),
                    Err(_) => None,
                };
                for (id, p) in pending.iter_mut() {
                    let matches = jurisdiction.as_ref().is_none_or(|j| *j == p.entry.to);
                    if matches && p.due > now && schedule.remove(&(p.due, *id)) {
                        p.due = now;
                        schedule.insert((now, *id));
                    }
                }
            }
            _ = sleep => {}
        }
    }
}

fn backoff(settings: &CaseSettings, attempts: u32) -> Duration {
    let exp = settings
        .initial_backoff
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = exp.min(settings.max_backoff);
    // ±20% jitter so that many queued messages do not retry in lockstep.
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    capped.mul_f64(jitter)
}

impl Cases {
    /// One delivery attempt of one outbox entry.
    async fn deliver(
        &self,
        entry: &OutboxEntry,
        failing_since: comity_protocol::Timestamp,
    ) -> Outcome {
        if self.waited_too_long(entry, failing_since) {
            return self.give_up(entry, self.inner.give_up_after).await;
        }
        let roster = self.roster();
        let Some((member, _)) = roster.by_jurisdiction(&entry.to) else {
            warn!(case = %entry.case_id, to = %entry.to, "recipient is no longer an admitted member of the bloc; not retried");
            return self
                .refused(
                    entry,
                    format!("{} is no longer an admitted member of the bloc", entry.to),
                )
                .await;
        };
        let peer: PeerId = member.peer_id;
        let network = &self.inner.network;
        let sent_at = self.now();
        let sent = network.request_about(peer, entry.frame.clone(), Some(entry.case_id));
        let response = match sent.await {
            Ok(frame) => frame,
            Err(e) => return self.retry(entry, e.to_string()).await,
        };
        let response = match from_cbor::<ExchangeResponse>(&response, limits::MAX_RESPONSE_FRAME) {
            Ok(r) => r,
            Err(e) => return self.retry(entry, format!("unreadable response: {e}")).await,
        };
        match response {
            ExchangeResponse::Receipt(Receipted { receipt, events }) => {
                match check_receipt(&receipt, &roster, entry) {
                    Ok(body) => {
                        let sample = ClockSample::measure(sent_at, self.now(), body.received_at);
                        self.note_clock(&entry.to, sample);
                        let member = member.clone();
                        self.delivered(entry, receipt, &member, events).await
                    }
                    Err(reason) => {
                        warn!(message = %entry.message_id, to = %entry.to, %reason, "receipt refused");
                        self.retry(entry, format!("invalid receipt: {reason}"))
                            .await
                    }
                }
            }
            ExchangeResponse::Events(_)
            | ExchangeResponse::Policy(_)
            | ExchangeResponse::Consistency(_)
            | ExchangeResponse::Bloc(_) => {
                self.retry(entry, "the peer answered a push with something else".into())
                    .await
            }
            ExchangeResponse::Rejected(rejection) => match rejection.code {
                RejectCode::Unavailable => self.retry(entry, rejection.detail).await,
                code => {
                    warn!(case = %entry.case_id, message = %entry.message_id, to = %entry.to, %code, "message refused by the peer; not retried");
                    self.refused(entry, format!("{code}: {}", rejection.detail))
                        .await
                }
            },
        }
    }

    async fn delivered(
        &self,
        entry: &OutboxEntry,
        receipt: SignedEnvelope,
        member: &Member,
        answer: Vec<SignedEnvelope>,
    ) -> Outcome {
        if !answer.is_empty() {
            // The receiver's answer (its `received` statement), stored with the receipt.
            let via = Via::Answer {
                entry,
                receipt: &receipt,
            };
            match self.ingest(member, entry.case_id, answer, via).await {
                Ok(_) => return self.finish_delivery(entry),
                // Store the receipt alone; the next pull from that member brings the events.
                Err(e) => {
                    debug!(case = %entry.case_id, reason = %e.describe(), "answer events not stored with the receipt")
                }
            }
        }
        let stored = self
            .run(entry.case_id, Load::Record, |ctx, case| {
                Ok::<_, CaseError>(core::delivered(ctx, case.record, entry, &receipt))
            })
            .await;
        match stored {
            Ok(_) => self.finish_delivery(entry),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    fn finish_delivery(&self, entry: &OutboxEntry) -> Outcome {
        info!(case = %entry.case_id, message = %entry.message_id, to = %entry.to, events = entry.events, "delivered; receipt verified");
        Outcome::Delivered
    }

    async fn refused(&self, entry: &OutboxEntry, reason: String) -> Outcome {
        let stored = self
            .run(entry.case_id, Load::Record, |ctx, case| {
                Ok::<_, CaseError>(core::refused(ctx, case.record, entry, &reason))
            })
            .await;
        match stored {
            Ok(_) => Outcome::Refused,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    /// Whether to stop sending `entry`: queued longer than the outbox waits, and failing in
    /// this run for a day at least (or the whole wait, if shorter), so that a node back after a
    /// long stop, or a clock that jumped, gives its members time to answer first.
    fn waited_too_long(
        &self,
        entry: &OutboxEntry,
        failing_since: comity_protocol::Timestamp,
    ) -> bool {
        let now = self.now().as_millis();
        let give_up_after = i64::try_from(self.inner.give_up_after.as_millis()).unwrap_or(i64::MAX);
        let failing_for = give_up_after.min(86_400_000);
        let queued = now.saturating_sub(entry.queued_at.as_millis());
        now.saturating_sub(failing_since.as_millis()) >= failing_for && queued >= give_up_after
    }

    /// Stops sending a push its member has not acknowledged in `waited`: kept, marked, and
    /// shown on its case.
    async fn give_up(&self, entry: &OutboxEntry, waited: Duration) -> Outcome {
        let stored = self
            .run(entry.case_id, Load::Record, |ctx, case| {
                Ok::<_, CaseError>(core::given_up(ctx, case.record, entry, waited))
            })
            .await;
        match stored {
            Ok(_) => {
                warn!(case = %entry.case_id, message = %entry.message_id, to = %entry.to, hours = waited.as_secs() / 3600, "no receipt in time: the message is no longer sent until an officer retries it");
                Outcome::Refused
            }
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    /// Sends again the pushes of `case_id` given up on (an officer's `comity case retry`).
    /// Returns how many.
    pub async fn retry_given_up(&self, case_id: CaseId) -> Result<usize, CaseError> {
        let dead: Vec<OutboxEntry> = self
            .outbox_entries()?
            .into_iter()
            .filter(|e| e.dead && e.case_id == case_id)
            .collect();
        let n = dead.len();
        self.run(case_id, Load::Record, |ctx, case| {
            if case.record.is_none() {
                return Err(CaseError::NotFound(case_id));
            }
            Ok::<_, CaseError>(core::retried(ctx, case.record, dead))
        })
        .await?;
        info!(case = %case_id, messages = n, "given-up messages sent again");
        Ok(n)
    }

    /// Records a failed attempt of a request's delivery on its case, so officers see why it
    /// is not delivered yet.
    async fn retry(&self, entry: &OutboxEntry, reason: String) -> Outcome {
        if entry.genesis {
            // Losing this bookkeeping in a crash is harmless: the entry itself is durable.
            let _ = self
                .run(entry.case_id, Load::Record, |ctx, case| {
                    Ok::<_, CaseError>(core::failed(ctx, case.record, entry, &reason))
                })
                .await;
        }
        Outcome::Retry(reason)
    }
}

/// A receipt is valid if the executing member signed it for exactly this message and body,
/// with a key the bloc configuration gives it for the time it received the message: its
/// current key, or one retired since (a duplicate push is answered with the original receipt,
/// perhaps signed before the receiver rotated its key); never a revoked one.
fn check_receipt(
    receipt: &SignedEnvelope,
    roster: &crate::roster::Roster,
    entry: &OutboxEntry,
) -> Result<Receipt, String> {
    if roster.note(&entry.to, &receipt.signer).is_none() {
        return Err(format!(
            "signed by {}, which is not a key of {}",
            receipt.signer, entry.to
        ));
    }
    let verifying = receipt.signer.verifying_key().map_err(|e| e.to_string())?;
    let body: Receipt = receipt.open(&verifying).map_err(|e| e.to_string())?;
    roster
        .accepts(&entry.to, &receipt.signer, body.received_at)
        .map_err(|e| e.to_string())?;
    if body.message_id != entry.message_id || body.case_id != entry.case_id {
        return Err(format!(
            "receipt is for message {}, not {}",
            body.message_id, entry.message_id
        ));
    }
    if body.receiver != entry.to {
        return Err(format!(
            "receipt names {} as receiver, expected {}",
            body.receiver, entry.to
        ));
    }
    if body.body_hash != entry.body_hash {
        return Err("receipt's body hash does not match the request we sent".into());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CaseSettings {
        CaseSettings {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_in_flight: 1,
            not_delivered_after: Duration::from_secs(60),
            disclosure_approval: vec![],
            policy: None,
            retention_sweep: Duration::from_secs(60),
            cases_per_pull: 1,
            anti_entropy: Duration::from_secs(60),
            fulfilments: std::sync::Arc::new(crate::evidence::Announcer),
            give_up_after: Duration::from_secs(7 * 86_400),
            new_cases_per_member_per_day: 10_000,
            queries_per_second_per_member: 0,
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_of_a_fifth_either_way() {
        let settings = settings();
        for attempts in 0..40u32 {
            // The schedule, written out: 0.5 s, 0.5 s, 1 s, 2 s, … 32 s, then capped at 60 s.
            let nominal = match attempts {
                0 | 1 => Duration::from_millis(500),
                2..=7 => Duration::from_millis(500 << (attempts - 1)),
                _ => Duration::from_secs(60),
            };
            let samples: Vec<Duration> = (0..200).map(|_| backoff(&settings, attempts)).collect();
            for s in &samples {
                assert!(
                    *s >= nominal.mul_f64(0.8) && *s <= nominal.mul_f64(1.2),
                    "attempt {attempts}: {s:?} outside 0.8–1.2 × {nominal:?}"
                );
            }
            // Jittered: 200 draws spread over most of the ±20% band, not one value.
            let (lo, hi) = (samples.iter().min().unwrap(), samples.iter().max().unwrap());
            assert!(
                (*hi - *lo) > nominal.mul_f64(0.25),
                "attempt {attempts}: draws between {lo:?} and {hi:?} are not jittered"
            );
        }
    }
}
