//! Each member's share of this node's request handling: a member may have a bounded number of
//! requests in hand at once (the node's places shared out among the other members, 16 at
//! least), so that its flood waits on itself and not on the other members.
//! What goes over the bound is answered at once with `unavailable` (the sender retries), and
//! counted; the counts are logged once per interval, not once per message. No I/O here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// The fewest requests of one member handled at once, however many members share the places.
pub const MIN_SHARE: usize = 16;

/// One member's share of `places` when `members` other members may send.
pub fn share(places: usize, members: usize) -> usize {
    (places / members.max(1)).max(MIN_SHARE)
}
/// How often the requests turned away are logged, per member.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Requests in hand per member, and those turned away since the last report.
#[derive(Debug)]
pub struct Budget {
    in_hand: HashMap<PeerId, usize>,
    turned_away: HashMap<PeerId, u64>,
    /// Since the node started, per member (members only reach this: the allow-list).
    turned_away_total: HashMap<PeerId, u64>,
    reported: Instant,
}

impl Budget {
    pub fn new(now: Instant) -> Self {
        Self {
            in_hand: HashMap::new(),
            turned_away: HashMap::new(),
            turned_away_total: HashMap::new(),
            reported: now,
        }
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

    /// `peer`'s requests in hand now, and those turned away since the node started.
    pub fn usage(&self, peer: &PeerId) -> (usize, u64) {
        (
            self.in_hand.get(peer).copied().unwrap_or(0),
            self.turned_away_total.get(peer).copied().unwrap_or(0),
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
    fn one_member_over_its_share_leaves_the_others_theirs() {
        let t0 = Instant::now();
        let mut budget = Budget::new(t0);
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
    fn a_member_alone_may_use_the_node_and_many_share_it_down_to_a_floor() {
        assert_eq!(share(128, 1), 128);
        assert_eq!(share(128, 4), 32);
        assert_eq!(share(128, 30), MIN_SHARE);
        assert_eq!(share(128, 0), 128);
    }

    #[test]
    fn places_given_back_leave_nothing_behind() {
        let mut budget = Budget::new(Instant::now());
        let peer = PeerId::random();
        assert!(budget.admit(peer, 2) && budget.admit(peer, 2));
        budget.done(&peer);
        budget.done(&peer);
        budget.done(&peer); // one too many: harmless
        assert!(budget.in_hand.is_empty());
    }
}
