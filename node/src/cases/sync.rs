//! Anti-entropy: when a member (re)connects, or when a push names events we lack, pull from it
//! every event of our shared cases that we do not hold. Together with the outbox this heals a
//! lost message, a restart or a partition without an operator.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use comity_protocol::{
    CaseEvent, CaseHave, CaseId, CaseRange, EventsPage, ExchangeRequest, ExchangeResponse,
    PullRequest, SignedEnvelope, from_cbor, limits, to_canonical_cbor,
};
use libp2p::PeerId;
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use super::clocks::ClockSample;
use super::core::{IngestError, Via};
use super::{CaseError, Cases};
use crate::roster::Member;
use comity_protocol::RejectCode;

/// Bytes of events in one pull answer; the rest follows in the next page.
const PAGE_BUDGET: usize = limits::MAX_RESPONSE_FRAME - (64 << 10);
/// Pages pulled in one round before yielding to other work.
const MAX_PAGES: usize = 256;
/// Times a round waits when the member says "retry shortly" (over our rate of queries
/// there), and how long each time: a full page costs about a second of a member's rate.
const MAX_WAITS: usize = 120;
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Cases listed in one pull request (about 70 bytes each, well inside a request frame); more
/// shared cases are pulled range by range.
pub const CASES_PER_PULL: usize = 4096;

/// Runs the pulls; every `anti_entropy`, connected members are asked for anything missed
/// without a reconnect (a push whose answer was lost, say).
pub(super) async fn run(
    cases: Cases,
    mut connections: broadcast::Receiver<PeerId>,
    anti_entropy: Duration,
) {
    let mut requests = cases.sync_requests();
    let mut sweep = tokio::time::interval(anti_entropy);
    let mut running: HashSet<PeerId> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::channel::<(PeerId, bool)>(64);
    let mut again: HashSet<PeerId> = HashSet::new();
    let mut failures: std::collections::HashMap<PeerId, u32> = Default::default();
    loop {
        let peer = tokio::select! {
            peer = connections.recv() => match peer {
                Ok(peer) => peer,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            },
            Some(peer) = requests.recv() => peer,
            _ = sweep.tick() => {
                // Also at start: members may have connected before this worker ran. Spread
                // over the period, not all at once: members started together would otherwise
                // pull from each other in one burst, every period, and every request sent
                // then would wait behind it.
                if let Some(status) = cases.inner.network.status().await {
                    for peer in status.connected.iter().filter_map(|p| p.parse::<PeerId>().ok()) {
                        let tx = cases.inner.sync_tx.clone();
                        let delay = anti_entropy.mul_f64(rand::random::<f64>());
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = tx.try_send(peer);
                        });
                    }
                }
                continue;
            }
            Some((peer, ok)) = done_rx.recv() => {
                running.remove(&peer);
                let asked_again = again.remove(&peer);
                let failed = if ok { failures.remove(&peer); 0 } else {
                    let n = failures.entry(peer).or_default();
                    *n += 1;
                    *n
                };
                // Asked again while running: go once more. Failed: retry a few times, then
                // wait for the member's next connection.
                if asked_again || (1..=3).contains(&failed) {
                    let tx = cases.inner.sync_tx.clone();
                    let pause = Duration::from_millis(if failed > 0 { 500 * u64::from(failed) } else { 20 });
                    tokio::spawn(async move {
                        tokio::time::sleep(pause).await;
                        let _ = tx.try_send(peer);
                    });
                }
                continue;
            }
        };
        let roster = cases.roster();
        let Some((member, _)) = roster.by_peer(&peer) else {
            continue;
        };
        if !running.insert(peer) {
            again.insert(peer);
            continue;
        }
        let member = member.clone();
        let cases = cases.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let ok = match cases.pull_from(&member).await {
                Ok(n) => {
                    if n > 0 {
                        info!(member = %member.jurisdiction, events = n, "pulled missing events");
                    }
                    true
                }
                Err(e) => {
                    debug!(member = %member.jurisdiction, error = %e, "pull failed; will retry");
                    false
                }
            };
            let _ = done.send((peer, ok)).await;
        });
    }
}

impl Cases {
    /// Asks the sync worker to pull from `peer` soon.
    pub(super) fn request_sync(&self, peer: PeerId) {
        let _ = self.inner.sync_tx.try_send(peer);
    }

    fn sync_requests(&self) -> mpsc::Receiver<PeerId> {
        self.inner
            .sync_rx
            .lock()
            .expect("sync receiver lock")
            .take()
            .expect("one sync worker")
    }

    /// Pulls from `member` every event of the cases it shares with this node that this node
    /// lacks, including cases this node holds nothing of (`comity recover --from-peers`).
    /// Returns how many events were stored.
    pub async fn recover_from(&self, member: &Member) -> Result<usize, String> {
        self.pull_from(member).await
    }

    /// How many cases this node shares with `member` (through the index).
    pub fn shared_count(&self, member: &comity_protocol::Jurisdiction) -> Result<usize, CaseError> {
        Ok(super::index::shared_with(&self.inner.store, member)?.len())
    }

    /// The cases shared with `member` that a pull offers or asks for (through the index: only
    /// those cases are read).
    fn shared_with(&self, member: &Member) -> Result<Vec<CaseHave>, CaseError> {
        let mut shared = Vec::new();
        for (case_id, summary) in
            super::index::shared_with(&self.inner.store, &member.jurisdiction)?
        {
            let summary = match summary {
                Some(summary) => summary,
                // Not summarised (an entry of an older layout): from the record itself.
                None => match self.record_closed(&case_id)? {
                    Some(record) if record.log.state.is_some() && record.purged_at.is_none() => {
                        super::index::SyncSummary::of(&record)
                    }
                    _ => continue,
                },
            };
            // A request the member refused at the door is not offered again; a purged case
            // has no entry.
            if summary.offered {
                shared.push(CaseHave {
                    case_id,
                    have: summary.have,
                });
            }
        }
        Ok(shared)
    }

    /// Pulls, page by page, every event of our shared cases that `member` holds and we lack:
    /// range by range of case ids when we share more cases than one request can list.
    /// Returns how many new events were stored.
    async fn pull_from(&self, member: &Member) -> Result<usize, String> {
        let mut ids: Vec<CaseId> = self
            .shared_with(member)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|c| c.case_id)
            .collect();
        ids.sort();
        let ranges = CaseRange::covering(&ids, self.inner.cases_per_pull);
        let whole = ranges.len() == 1;
        let mut stored = 0;
        for range in ranges {
            stored += self.pull_range(member, (!whole).then_some(range)).await?;
        }
        Ok(stored)
    }

    async fn pull_range(&self, member: &Member, range: Option<CaseRange>) -> Result<usize, String> {
        let mut stored = 0;
        let mut waits = 0;
        for _ in 0..MAX_PAGES {
            let cases = self
                .shared_with(member)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|c| {
                    range
                        .as_ref()
                        .is_none_or(|range| range.contains(&c.case_id))
                })
                .collect();
            let request = PullRequest {
                cases,
                range: range.clone(),
            };
            let frame =
                to_canonical_cbor(&ExchangeRequest::Pull(request)).map_err(|e| e.to_string())?;
            let sent_at = self.now();
            let response = self
                .inner
                .network
                .request(member.peer_id, frame)
                .await
                .map_err(|e| e.to_string())?;
            let page = match from_cbor::<ExchangeResponse>(&response, limits::MAX_RESPONSE_FRAME)
                .map_err(|e| e.to_string())?
            {
                ExchangeResponse::Events(page) => page,
                // Over our rate of queries there (a long catch-up pays for its pages): wait
                // and ask again, a while before giving up for this round.
                ExchangeResponse::Rejected(r)
                    if r.code == RejectCode::Unavailable && waits < MAX_WAITS =>
                {
                    waits += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                ExchangeResponse::Rejected(r) => return Err(r.to_string()),
                ExchangeResponse::Receipt(_)
                | ExchangeResponse::Policy(_)
                | ExchangeResponse::Consistency(_)
                | ExchangeResponse::Bloc(_) => {
                    return Err("the member answered a pull with something else".into());
                }
            };
            if let Some(answered_at) = page.answered_at {
                let sample = ClockSample::measure(sent_at, self.now(), answered_at);
                self.note_clock(&member.jurisdiction, sample);
            }
            let (new, held_back) = self.ingest_page(member, page.events).await?;
            stored += new;
            // A page that brought nothing but cases over the member's daily quota would come
            // again and again: stop this round; they are pulled another day.
            if !page.more || (new == 0 && held_back > 0) {
                return Ok(stored);
            }
        }
        Ok(stored)
    }

    /// Takes in a pull's page, case by case. Returns the events stored, and how many cases
    /// were held back because the member is over its daily quota of new cases.
    async fn ingest_page(
        &self,
        member: &Member,
        events: Vec<SignedEnvelope>,
    ) -> Result<(usize, usize), String> {
        let mut by_case: BTreeMap<CaseId, Vec<SignedEnvelope>> = BTreeMap::new();
        for envelope in events {
            // Only the case id is read here; `ingest` verifies everything.
            let event: CaseEvent = from_cbor(&envelope.body, limits::MAX_REQUEST_FRAME)
                .map_err(|e| format!("unreadable event in a pull answer: {e}"))?;
            by_case.entry(event.case_id).or_default().push(envelope);
        }
        let (mut stored, mut held_back) = (0, 0);
        for (case_id, events) in by_case {
            // A case new here counts against its member's daily quota, pulled or pushed.
            let mut opening = None;
            if matches!(self.record_closed(&case_id), Ok(None)) {
                match self.may_open(member) {
                    Ok(place) => opening = Some(place),
                    Err(_) => {
                        held_back += 1;
                        continue;
                    }
                }
            }
            match self.ingest(member, case_id, events, Via::Pull).await {
                Ok(plan) => {
                    if plan.record.is_some()
                        && let Some(opening) = opening.take()
                    {
                        opening.keep();
                    }
                    stored += plan.received;
                }
                Err(IngestError::Refused(code, why)) => {
                    warn!(case = %case_id, member = %member.jurisdiction, %code, "refused pulled events; not applied");
                    self.record_refusal(member.peer_id, Some(case_id), code, &why)
                        .await;
                }
                Err(IngestError::Equivocation(e)) => {
                    warn!(case = %case_id, member = %member.jurisdiction, "equivocation in pulled events; both kept as evidence");
                    self.keep_equivocation(member, case_id, &e).await;
                    self.record_refusal(
                        member.peer_id,
                        Some(case_id),
                        RejectCode::Invalid,
                        &e.reason,
                    )
                    .await;
                }
                Err(IngestError::Missing(n)) => {
                    return Err(format!("{n} linked events still missing"));
                }
                Err(IngestError::Unavailable(why)) => return Err(why),
            }
        }
        Ok((stored, held_back))
    }

    /// What `member` lacks of our shared cases, up to one page.
    pub(super) fn answer_pull(
        &self,
        member: &Member,
        pull: &PullRequest,
    ) -> Result<(EventsPage, usize), CaseError> {
        let have: BTreeMap<CaseId, &BTreeMap<comity_protocol::Jurisdiction, u64>> =
            pull.cases.iter().map(|c| (c.case_id, &c.have)).collect();
        let empty = BTreeMap::new();
        let mut events = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        let in_range = |id: &CaseId| pull.range.as_ref().is_none_or(|r| r.contains(id));
        for ours in self.shared_with(member)? {
            if !in_range(&ours.case_id) {
                continue;
            }
            let theirs = have.get(&ours.case_id).copied().unwrap_or(&empty);
            let behind = ours
                .have
                .iter()
                .any(|(author, seq)| theirs.get(author).copied().unwrap_or(0) < *seq);
            if !behind {
                continue;
            }
            // Only the cases the member lacks events of are read (and unsealed).
            let log = self.load_log(&ours.case_id)?;
            // In causal order, so a page may end inside a case: the asker inserts a prefix
            // and asks again from there.
            for event in log.events_after(theirs) {
                let size = event.to_bytes().len() + 16;
                if bytes + size > PAGE_BUDGET && !events.is_empty() {
                    more = true;
                    break;
                }
                bytes += size;
                events.push(event);
            }
            if more {
                break;
            }
        }
        let answered_at = Some(self.now());
        Ok((
            EventsPage {
                events,
                more,
                answered_at,
            },
            bytes,
        ))
    }
}
