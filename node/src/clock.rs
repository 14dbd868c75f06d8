//! The node's one clock: the system clock plus an offset that testnets may move forward (to
//! reach deadlines, retention and expiry without waiting). Every service reads the time from
//! here, so that a deadline's pre-check and its real check can never disagree.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use comity_protocol::Timestamp;

/// A cheap, cloneable handle; clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock, not moved.
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> Timestamp {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        Timestamp::from_millis(Timestamp::now().as_millis().saturating_add(offset))
    }

    /// Fault injection (testnets): moves this clock, and every clone of it, forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.shift(ms);
    }

    /// Fault injection (testnets): moves this clock by `ms`, either way, as a machine whose
    /// clock is off would be.
    pub fn shift(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_move_together_and_only_forward_by_what_was_asked() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = other.now();
        clock.advance(Duration::from_secs(86_400));
        let after = other.now();
        let moved = after.as_millis() - before.as_millis();
        assert!(
            (86_400_000..86_400_000 + 60_000).contains(&moved),
            "{moved}"
        );
    }
}
