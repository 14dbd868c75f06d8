//! Each member's rate budget at this node's door, before any of its messages is decoded: a
//! token bucket per member and per door (exchange requests, evidence requests, gossip), in the
//! spirit of libp2p's connection and memory limits. A member over its rate is answered at once
//! with a fixed "retry shortly" (its sender's outbox retries), or its gossip is dropped; it
//! costs this node a counter, not a decode, a signature check or a write.
//!
//! What is turned away is counted per member and door, and reported once per interval with
//! the counts, not once per message. No I/O here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// The doors a member's messages come through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Door {
    Exchange,
    Evidence,
    Gossip,
}

impl Door {
    pub const ALL: [Door; 3] = [Door::Exchange, Door::Evidence, Door::Gossip];

    pub fn name(self) -> &'static str {
        match self {
            Door::Exchange => "exchange requests",
            Door::Evidence => "evidence requests",
            Door::Gossip => "gossip messages",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Messages per second a member may send through each door; a member may also send up to
/// two seconds' worth at once (a burst after a partition or a restart).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Rates {
    pub exchange: u32,
    pub evidence: u32,
    pub gossip: u32,
}

impl Rates {
    pub fn of(&self, door: Door) -> u32 {
        match door {
            Door::Exchange => self.exchange,
            Door::Evidence => self.evidence,
            Door::Gossip => self.gossip,
        }
    }
}

/// Seconds' worth of messages a member may send at once.
const BURST_SECS: f64 = 2.0;
/// How often what was turned away is reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// One token bucket: `rate` a second, two seconds' worth at once.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(rate: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(rate) * BURST_SECS,
            at: now,
        }
    }

    /// Takes a token at `now` if there is one. A rate of 0 is no budget: always a token.
    pub fn take(&mut self, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        false
    }

    /// Charges `cost` more tokens at `now` for what a message turned out to cost (a pull
    /// answered with a megabyte of events): the bucket may go into debt, down to minus its
    /// burst, and the next messages wait until it is paid.
    pub fn charge(&mut self, rate: u32, cost: f64, now: Instant) {
        if rate == 0 {
            return;
        }
        self.refill(rate, now);
        let burst = f64::from(rate) * BURST_SECS;
        self.tokens = (self.tokens - cost.max(0.0)).max(-burst);
    }

    fn refill(&mut self, rate: u32, now: Instant) {
        let rate = f64::from(rate);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate * BURST_SECS);
        self.at = now;
    }
}

/// The buckets and the counts of what was turned away.
#[derive(Debug)]
pub struct Admission {
    rates: Rates,
    buckets: HashMap<(PeerId, Door), Bucket>,
    /// Since the last report.
    over: HashMap<(PeerId, Door), u64>,
    /// Since the node started, per member and door.
    over_total: HashMap<PeerId, [u64; 3]>,
    reported: Instant,
    /// Streams refused before a message was read (oversized or cut-off frames), since the
    /// last report of them.
    refused: HashMap<PeerId, u64>,
    refused_reported: Instant,
}

impl Admission {
    pub fn new(rates: Rates, now: Instant) -> Self {
        Self {
            rates,
            buckets: HashMap::new(),
            over: HashMap::new(),
            over_total: HashMap::new(),
            reported: now,
            refused: HashMap::new(),
            refused_reported: now,
        }
    }

    pub fn rates(&self) -> Rates {
        self.rates
    }

    /// Whether one message of `peer` through `door` is within its rate at `now`; if not, it
    /// is counted as turned away. A rate of 0 turns nothing away (no budget).
    pub fn admit(&mut self, peer: PeerId, door: Door, now: Instant) -> bool {
        let rate = self.rates.of(door);
        if rate == 0 {
            return true;
        }
        let bucket = self
            .buckets
            .entry((peer, door))
            .or_insert_with(|| Bucket::full(rate, now));
        if bucket.take(rate, now) {
            return true;
        }
        *self.over.entry((peer, door)).or_default() += 1;
        self.over_total.entry(peer).or_default()[door.index()] += 1;
        false
    }

    /// `peer`'s messages turned away since the node started, per door.
    pub fn turned_away(&self, peer: &PeerId) -> [u64; 3] {
        self.over_total.get(peer).copied().unwrap_or_default()
    }

    /// Forgets a member's buckets (it left the bloc); its counts stay for the record.
    pub fn forget(&mut self, peer: &PeerId) {
        self.buckets.retain(|(p, _), _| p != peer);
    }

    /// Counts a stream of `peer` refused before its message was read.
    pub fn refused_stream(&mut self, peer: PeerId) {
        *self.refused.entry(peer).or_default() += 1;
    }

    /// Once per [`REPORT_EVERY`]: streams refused per member since the last report.
    pub fn report_refused(&mut self, now: Instant) -> Vec<(PeerId, u64)> {
        if self.refused.is_empty()
            || now.saturating_duration_since(self.refused_reported) < REPORT_EVERY
        {
            return Vec::new();
        }
        self.refused_reported = now;
        self.refused.drain().collect()
    }

    /// Once per [`REPORT_EVERY`]: what each member had turned away since the last report.
    pub fn report(&mut self, now: Instant) -> Vec<(PeerId, Door, u64)> {
        if self.over.is_empty() || now.saturating_duration_since(self.reported) < REPORT_EVERY {
            return Vec::new();
        }
        self.reported = now;
        let mut report: Vec<_> = self.over.drain().map(|((p, d), n)| (p, d, n)).collect();
        report.sort_by_key(|a| (a.1, a.0));
        report
    }
}

/// The fixed answer to a request beyond its member's rate budget: `unavailable` (retried by
/// the sender's outbox) on the exchange, `refused` on the evidence protocol.
pub fn over_budget_frame(door: Door, rates: Rates) -> Vec<u8> {
    let detail = format!(
        "over your rate budget at this node ({} {} per second); retry shortly",
        rates.of(door),
        door.name()
    );
    let reply = match door {
        Door::Evidence => comity_protocol::to_canonical_cbor(
            &comity_protocol::evidence::EvidenceResponse::Refused { reason: detail },
        ),
        _ => comity_protocol::to_canonical_cbor(&comity_protocol::ExchangeResponse::Rejected(
            comity_protocol::Rejection {
                code: comity_protocol::RejectCode::Unavailable,
                detail,
            },
        )),
    };
    reply.expect("fixed answers encode")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATES: Rates = Rates {
        exchange: 10,
        evidence: 100,
        gossip: 0,
    };

    #[test]
    fn a_member_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut admission = Admission::new(RATES, t0);
        let peer = PeerId::random();
        let burst = (0..100)
            .filter(|_| admission.admit(peer, Door::Exchange, t0))
            .count();
        assert_eq!(burst, 20, "two seconds' worth at once");
        // Half a second later, five more.
        let later = t0 + Duration::from_millis(500);
        let more = (0..100)
            .filter(|_| admission.admit(peer, Door::Exchange, later))
            .count();
        assert_eq!(more, 5);
        assert_eq!(admission.turned_away(&peer), [175, 0, 0]);
    }

    #[test]
    fn a_costly_message_is_paid_for_before_the_next() {
        let t0 = Instant::now();
        let mut bucket = Bucket::full(10, t0);
        assert!(bucket.take(10, t0));
        // Charged 49 more: 19 - 49 = -30, floored at minus the burst (-20).
        bucket.charge(10, 49.0, t0);
        assert!(
            !bucket.take(10, t0 + Duration::from_millis(2000)),
            "still in debt"
        );
        assert!(bucket.take(10, t0 + Duration::from_millis(2100)), "paid");
        // No budget, no debt.
        let mut free = Bucket::full(0, t0);
        free.charge(0, 1e9, t0);
        assert!(free.take(0, t0));
    }

    #[test]
    fn one_members_flood_leaves_the_others_and_the_other_doors_alone() {
        let t0 = Instant::now();
        let mut admission = Admission::new(RATES, t0);
        let (flooder, other) = (PeerId::random(), PeerId::random());
        for _ in 0..1000 {
            admission.admit(flooder, Door::Exchange, t0);
        }
        assert!(admission.admit(other, Door::Exchange, t0));
        assert!(admission.admit(flooder, Door::Evidence, t0));
        assert!(
            (0..10_000).all(|_| admission.admit(flooder, Door::Gossip, t0)),
            "a rate of 0 is no budget"
        );
    }

    #[test]
    fn what_is_turned_away_is_reported_once_per_interval_with_counts() {
        let t0 = Instant::now();
        let mut admission = Admission::new(RATES, t0);
        let peer = PeerId::random();
        for _ in 0..25 {
            admission.admit(peer, Door::Exchange, t0);
        }
        assert!(admission.report(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(
            admission.report(t0 + REPORT_EVERY),
            vec![(peer, Door::Exchange, 5)]
        );
        assert!(admission.report(t0 + REPORT_EVERY * 3).is_empty());
        admission.forget(&peer);
        assert_eq!(admission.turned_away(&peer), [5, 0, 0], "counts stay");
    }

    proptest! {
        /// Over any span, a member gets at most its burst plus its rate times the span.
        #[test]
        fn admitted_never_exceeds_burst_plus_rate(steps in proptest::collection::vec(0u64..400, 1..300)) {
            let t0 = Instant::now();
            let mut admission = Admission::new(RATES, t0);
            let peer = PeerId::random();
            let (mut now, mut admitted) = (t0, 0u64);
            for ms in steps {
                now += Duration::from_millis(ms);
                admitted += u64::from(admission.admit(peer, Door::Exchange, now));
            }
            let span = now.duration_since(t0).as_secs_f64();
            prop_assert!(admitted as f64 <= 20.0 + 10.0 * span + 1e-9);
        }
    }
}
