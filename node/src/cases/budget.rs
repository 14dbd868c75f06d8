//! Each member's share of this node's request handling: a member may have a bounded number of
//! requests in hand at once (the node's places shared out among the other members, 16 at
//! least), so that its flood waits on itself and not on the other members; and a rate of
//! queries (pulls, proofs, the policy, the bloc configuration), whose answers cost this node
//! reads that a push does not (a pull may list thousands of cases).
//! What goes over the bound is answered at once with `unavailable` (the sender retries), and
//! counted; the counts are logged once per interval, not once per message. No I/O here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::network::admission::Bucket;

/// The fewest requests of one member handled at once, however many members share the places.
pub const MIN_SHARE: usize = 16;

/// One member's share of `places` when `members` other members may send.
pub fn share(places: usize, members: usize) -> usize {
    (places / members.max(1)).max(MIN_SHARE)
}
/// How often the requests turned away are logged, per member.
/// Bytes of a query's answer that count as one query against the member's rate: a pull
/// answered with a full page (about a megabyte of events, read and unsealed case by case)
/// counts as fifteen.
pub const QUERY_UNIT: usize = 64 << 10;

pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Requests in hand per member, and those turned away since the last report.
#[derive(Debug)]
pub struct Budget {
    in_hand: HashMap<PeerId, usize>,
    turned_away: HashMap<PeerId, u64>,
    /// Since the node started, per member (members only reach this: the allow-list).
    turned_away_total: HashMap<PeerId, u64>,
    reported: Instant,
    /// Queries a second per member (0: no budget), each member's bucket, and the queries over
    /// it: since the last report, and since the node started.
    query_rate: u32,
    queries: HashMap<PeerId, Bucket>,
    queries_over: HashMap<PeerId, u64>,
    queries_over_total: HashMap<PeerId, u64>,
    queries_reported: Instant,
}

impl Budget {
    pub fn new(query_rate: u32, now: Instant) -> Self {
        Self {
            in_hand: HashMap::new(),
            turned_away: HashMap::new(),
            turned_away_total: HashMap::new(),
            reported: now,
            query_rate,
            queries: HashMap::new(),
            queries_over: HashMap::new(),
            queries_over_total: HashMap::new(),
            queries_reported: now,
        }
    }

    /// Whether a query of `peer` (a member: only members reach this) is within its rate.
    pub fn query(&mut self, peer: PeerId, now: Instant) -> bool {
        let rate = self.query_rate;
        let bucket = self
            .queries
            .entry(peer)
            .or_insert_with(|| Bucket::full(rate, now));
        if bucket.take(rate, now) {
            return true;
        }
        *self.queries_over.entry(peer).or_default() += 1;
        *self.queries_over_total.entry(peer).or_default() += 1;
        false
    }

    /// Charges `peer` for what its query turned out to cost: one query more per
    /// [`QUERY_UNIT`] bytes of answer.
    pub fn charge_query(&mut self, peer: PeerId, answer_bytes: usize, now: Instant) {
        let rate = self.query_rate;
        let cost = answer_bytes as f64 / QUERY_UNIT as f64;
        self.queries
            .entry(peer)
            .or_insert_with(|| Bucket::full(rate, now))
            .charge(rate, cost, now);
    }

    pub fn query_rate(&self) -> u32 {
        self.query_rate
    }

    /// Once per `REPORT_EVERY`: members' queries over their rate since the last report.
    pub fn report_queries(&mut self, now: Instant) -> Vec<(PeerId, u64)> {
        if self.queries_over.is_empty() || now.duration_since(self.queries_reported) < REPORT_EVERY
        {
            return Vec::new();
        }
        self.queries_reported = now;
        self.queries_over.drain().collect()
    }

    /// Takes one of `peer`'s `cap` places, or counts the request as turned away.
    pub fn admit(&mut self, peer: PeerId, cap: usize) -> bool {
        let n = self.in_hand.entry(peer).or_default();
        if *n >= cap {
            *self.turned_away.entry(peer).or_default() += 1;
            *self.turned_away_total.entry(peer).or_default() += 1;
            return false;
        }
        *n += 1;
        true
    }

    /// Gives back a place `admit` took.
    pub fn done(&mut self, peer: &PeerId) {
        if let Some(n) = self.in_hand.get_mut(peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_hand.remove(peer);
            }
        }
    }

    /// `peer`'s requests in hand now, and those turned away since the node started (beyond
    /// its share, and queries beyond its rate).
    pub fn usage(&self, peer: &PeerId) -> (usize, u64) {
        (
            self.in_hand.get(peer).copied().unwrap_or(0),
            self.turned_away_total.get(peer).copied().unwrap_or(0)
                + self.queries_over_total.get(peer).copied().unwrap_or(0),
        )
    }

    /// Once per `REPORT_EVERY`: the members turned away since the last report, with counts.
    pub fn report(&mut self, now: Instant) -> Vec<(PeerId, u64)> {
        if now.duration_since(self.reported) < REPORT_EVERY || self.turned_away.is_empty() {
            return Vec::new();
        }
        self.reported = now;
        self.turned_away.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_answered_with_a_page_counts_as_many_queries_as_its_size() {
        let t0 = Instant::now();
        let mut budget = Budget::new(20, t0);
        let (puller, other) = (PeerId::random(), PeerId::random());
        assert!(budget.query(puller, t0));
        // A 960 KiB page: 15 queries more; with 39 left of the burst, 24 remain.
        budget.charge_query(puller, 960 << 10, t0);
        assert_eq!((0..100).filter(|_| budget.query(puller, t0)).count(), 24);
        // Small answers cost next to nothing; the other members are not charged.
        budget.charge_query(other, 100, t0);
        assert_eq!((0..100).filter(|_| budget.query(other, t0)).count(), 39);
        // No budget (rate 0): never charged, never refused.
        let mut free = Budget::new(0, t0);
        free.charge_query(puller, 1 << 30, t0);
        assert!(free.query(puller, t0));
    }

    #[test]
    fn one_member_over_its_share_leaves_the_others_theirs() {
        let t0 = Instant::now();
        let mut budget = Budget::new(0, t0);
        let (flooder, other) = (PeerId::random(), PeerId::random());
        let admitted = (0..100).filter(|_| budget.admit(flooder, 3)).count();
        assert_eq!(admitted, 3, "the flooder gets its share and no more");
        assert!(
            (0..3).all(|_| budget.admit(other, 3)),
            "the others keep theirs"
        );
        budget.done(&flooder);
        assert!(
            budget.admit(flooder, 3),
            "a place given back is taken again"
        );
        // Counted, and reported once per interval.
        assert!(budget.report(t0 + Duration::from_secs(1)).is_empty());
        let report = budget.report(t0 + REPORT_EVERY);
        assert_eq!(report, vec![(flooder, 97)]);
        assert!(
            budget.report(t0 + REPORT_EVERY * 3).is_empty(),
            "nothing new"
        );
        assert_eq!(budget.usage(&flooder), (3, 97), "shown against its share");
        assert_eq!(budget.usage(&other), (3, 0));
    }

    #[test]
    fn queries_beyond_a_members_rate_are_turned_away_and_counted() {
        let t0 = Instant::now();
        let mut budget = Budget::new(5, t0);
        let (asker, other) = (PeerId::random(), PeerId::random());
        let answered = (0..50).filter(|_| budget.query(asker, t0)).count();
        assert_eq!(answered, 10, "two seconds' worth at once");
        assert!(budget.query(other, t0), "the others keep theirs");
        assert!(budget.query(asker, t0 + Duration::from_millis(200)));
        assert_eq!(budget.usage(&asker), (0, 40));
        assert_eq!(budget.report_queries(t0 + REPORT_EVERY), vec![(asker, 40)]);
    }

    #[test]
    fn a_member_alone_may_use_the_node_and_many_share_it_down_to_a_floor() {
        assert_eq!(share(128, 1), 128);
        assert_eq!(share(128, 4), 32);
        assert_eq!(share(128, 30), MIN_SHARE);
        assert_eq!(share(128, 0), 128);
    }

    #[test]
    fn places_given_back_leave_nothing_behind() {
        let mut budget = Budget::new(0, Instant::now());
        let peer = PeerId::random();
        assert!(budget.admit(peer, 2) && budget.admit(peer, 2));
        budget.done(&peer);
        budget.done(&peer);
        budget.done(&peer); // one too many: harmless
        assert!(budget.in_hand.is_empty());
    }
}
