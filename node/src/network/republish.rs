//! When a node gossips what it published before and has not changed since (its latest audit
//! checkpoint, its transparency reports): at once when it is new, again after a member
//! connects (it may have missed it), and otherwise only after a long while. Every copy costs every member of the bloc
//! a signature check (gossipsub's and ours) and a forward along the mesh, so an idle bloc of
//! 50 that sent each every few seconds spent much of its idle time on them. The rule is
//! [`Republish`] (no I/O); [`tick_or_connection`] is the publishers' wait.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What was last published under each name (a report's period, "checkpoint"), and when.
#[derive(Debug)]
pub struct Republish {
    again: Duration,
    /// How long after a member connects everything is due at every tick: a message published
    /// before the new member's subscription has arrived reaches nobody new.
    after_connect: Duration,
    connected_until: Option<Instant>,
    last: HashMap<String, ([u8; 32], Instant)>,
}

/// The least time after a connection during which everything is published at every tick.
const AFTER_CONNECT: Duration = Duration::from_secs(5);

impl Republish {
    /// Unchanged content is published again after `again`; after a member connects, at every
    /// tick for `tick` (at least 5 s).
    pub fn new(again: Duration, tick: Duration) -> Self {
        Self {
            again,
            after_connect: tick.max(AFTER_CONNECT),
            connected_until: None,
            last: HashMap::new(),
        }
    }

    /// Whether `content` (its hash) is to be published under `name` at `now`; if so, it is
    /// recorded as published then.
    pub fn due(&mut self, name: &str, content: [u8; 32], now: Instant) -> bool {
        let after_connect = self.connected_until.is_some_and(|until| now < until);
        if let Some((hash, at)) = self.last.get(name)
            && *hash == content
            && now.saturating_duration_since(*at) < self.again
            && !after_connect
        {
            return false;
        }
        self.last.insert(name.to_owned(), (content, now));
        true
    }

    /// What `due` let go under `name` reached nobody: it is due again at the next tick.
    pub fn unsent(&mut self, name: &str) {
        self.last.remove(name);
    }

    /// A member connected at `now` (it may have missed everything): everything is due at
    /// every tick for a while.
    pub fn connected(&mut self, now: Instant) {
        self.connected_until = Some(now + self.after_connect);
    }
}

/// Waits for the publisher's next tick; a member connecting meanwhile makes everything due
/// again at that tick. False once the network is gone (the node is stopping).
pub async fn tick_or_connection(
    tick: &mut tokio::time::Interval,
    connections: &mut tokio::sync::broadcast::Receiver<libp2p::PeerId>,
    republish: &mut Republish,
) -> bool {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        tokio::select! {
            _ = tick.tick() => return true,
            joined = connections.recv() => match joined {
                Ok(_) | Err(RecvError::Lagged(_)) => republish.connected(std::time::Instant::now()),
                Err(RecvError::Closed) => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGAIN: Duration = Duration::from_secs(300);

    const TICK: Duration = Duration::from_secs(1);

    #[test]
    fn new_content_goes_at_once_and_unchanged_content_only_after_a_while() {
        let mut r = Republish::new(AGAIN, TICK);
        let t = Instant::now();
        assert!(r.due("checkpoint", [1; 32], t));
        assert!(!r.due("checkpoint", [1; 32], t + Duration::from_secs(10)));
        assert!(!r.due("checkpoint", [1; 32], t + AGAIN - Duration::from_millis(1)));
        assert!(r.due("checkpoint", [1; 32], t + AGAIN));
        // Changed: at once, and the wait starts again from it.
        assert!(r.due("checkpoint", [2; 32], t + AGAIN + Duration::from_secs(1)));
        assert!(!r.due("checkpoint", [2; 32], t + AGAIN + Duration::from_secs(2)));
        // A member connected: at every tick for 5 s, then rarely again.
        let joined = t + AGAIN + Duration::from_secs(3);
        r.connected(joined);
        for s in 0..5 {
            assert!(r.due("checkpoint", [2; 32], joined + Duration::from_secs(s)));
        }
        assert!(!r.due("checkpoint", [2; 32], joined + Duration::from_secs(5)));
        assert!(!r.due("checkpoint", [2; 32], joined + Duration::from_secs(6)));
        // Sent to nobody: due again at the next tick.
        r.unsent("checkpoint");
        assert!(r.due("checkpoint", [2; 32], joined + Duration::from_secs(7)));
        assert!(!r.due("checkpoint", [2; 32], joined + Duration::from_secs(8)));
    }

    #[test]
    fn after_a_connection_a_long_tick_publishes_once() {
        let minute = Duration::from_secs(60);
        let mut r = Republish::new(AGAIN, minute);
        let t = Instant::now();
        assert!(r.due("2026", [1; 32], t));
        r.connected(t + Duration::from_secs(10));
        assert!(r.due("2026", [1; 32], t + minute));
        assert!(!r.due("2026", [1; 32], t + 2 * minute));
    }

    #[test]
    fn each_name_is_paced_on_its_own() {
        let mut r = Republish::new(AGAIN, TICK);
        let t = Instant::now();
        assert!(r.due("2026", [1; 32], t));
        assert!(r.due("2026-12", [1; 32], t));
        assert!(!r.due("2026", [1; 32], t + Duration::from_secs(1)));
        assert!(r.due("2026-12", [3; 32], t + Duration::from_secs(1)));
    }

    proptest::proptest! {
        /// Over any sequence of ticks, unchanged content goes out at most once per `again`,
        /// and a change always goes out at once.
        #[test]
        fn never_more_often_than_asked_and_never_late_on_a_change(
            steps in proptest::collection::vec((0u64..400, 0u8..3), 1..60)
        ) {
            let mut r = Republish::new(AGAIN, TICK);
            let start = Instant::now();
            let mut now = start;
            let mut last: Option<(u8, Instant)> = None;
            for (advance, content) in steps {
                now += Duration::from_secs(advance);
                let due = r.due("x", [content; 32], now);
                match last {
                    Some((c, at)) if c == content => {
                        proptest::prop_assert_eq!(due, now - at >= AGAIN);
                    }
                    _ => proptest::prop_assert!(due),
                }
                if due {
                    last = Some((content, now));
                }
            }
        }
    }
}
