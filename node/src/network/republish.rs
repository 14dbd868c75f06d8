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
    last: HashMap<String, ([u8; 32], Instant)>,
}

impl Republish {
    /// Unchanged content is published again after `again`.
    pub fn new(again: Duration) -> Self {
        Self {
            again,
            last: HashMap::new(),
        }
    }

    /// Whether `content` (its hash) is to be published under `name` at `now`; if so, it is
    /// recorded as published then.
    pub fn due(&mut self, name: &str, content: [u8; 32], now: Instant) -> bool {
        if let Some((hash, at)) = self.last.get(name)
            && *hash == content
            && now.saturating_duration_since(*at) < self.again
        {
            return false;
        }
        self.last.insert(name.to_owned(), (content, now));
        true
    }

    /// Everything is due again (a member connected, which may have missed it).
    pub fn forget(&mut self) {
        self.last.clear();
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
                Ok(_) | Err(RecvError::Lagged(_)) => republish.forget(),
                Err(RecvError::Closed) => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGAIN: Duration = Duration::from_secs(300);

    #[test]
    fn new_content_goes_at_once_and_unchanged_content_only_after_a_while() {
        let mut r = Republish::new(AGAIN);
        let t = Instant::now();
        assert!(r.due("checkpoint", [1; 32], t));
        assert!(!r.due("checkpoint", [1; 32], t + Duration::from_secs(10)));
        assert!(!r.due("checkpoint", [1; 32], t + AGAIN - Duration::from_millis(1)));
        assert!(r.due("checkpoint", [1; 32], t + AGAIN));
        // Changed: at once, and the wait starts again from it.
        assert!(r.due("checkpoint", [2; 32], t + AGAIN + Duration::from_secs(1)));
        assert!(!r.due("checkpoint", [2; 32], t + AGAIN + Duration::from_secs(2)));
        // A member connected: once more at once.
        r.forget();
        assert!(r.due("checkpoint", [2; 32], t + AGAIN + Duration::from_secs(3)));
        assert!(!r.due("checkpoint", [2; 32], t + AGAIN + Duration::from_secs(4)));
    }

    #[test]
    fn each_name_is_paced_on_its_own() {
        let mut r = Republish::new(AGAIN);
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
            let mut r = Republish::new(AGAIN);
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
