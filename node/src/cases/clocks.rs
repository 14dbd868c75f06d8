//! How far each member's clock is from this node's, measured on every push: the receiver
//! signs the time it received the message (`Receipt::received_at`, by its own clock), which
//! is compared with the middle of the round trip by ours, NTP-style, the half round trip being
//! the uncertainty. A member whose clock is further off than [`SKEW_WARNING`] is named in
//! `comity status` and in the log; deadlines and reports are unaffected (each node dates what
//! it receives by its own clock), but what the two sides show an officer drifts apart.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use comity_protocol::{Jurisdiction, Timestamp};

/// Beyond this, a member's clock is reported as off. Synchronised clocks agree within
/// milliseconds; half a minute is a clock nobody keeps.
pub const SKEW_WARNING: Duration = Duration::from_secs(30);

/// One measurement: how far the member's clock is ahead of ours (negative: behind), and how
/// much of that may be the network (half the round trip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    pub offset_ms: i64,
    pub uncertainty_ms: i64,
    pub measured_at: Timestamp,
}

impl ClockSample {
    /// From a push sent at `sent` and answered at `answered` (our clock), received at
    /// `remote` by the member's.
    pub fn measure(sent: Timestamp, answered: Timestamp, remote: Timestamp) -> Self {
        let (sent, answered) = (sent.as_millis(), answered.as_millis().max(sent.as_millis()));
        let half = (answered - sent) / 2;
        Self {
            offset_ms: remote.as_millis() - (sent + half),
            uncertainty_ms: half,
            measured_at: Timestamp::from_millis(answered),
        }
    }

    /// Off by more than the warning even with all the uncertainty counted in its favour.
    pub fn skewed(&self) -> bool {
        self.offset_ms
            .unsigned_abs()
            .saturating_sub(self.uncertainty_ms.unsigned_abs())
            > SKEW_WARNING.as_millis() as u64
    }

    /// In words, for `comity status` and the log.
    pub fn describe(&self, member: &Jurisdiction) -> String {
        let way = if self.offset_ms >= 0 {
            "ahead of"
        } else {
            "behind"
        };
        format!(
            "{member}'s clock is {} {way} this node's (± {} ms, measured {}): check time synchronisation (NTP) on both; each side dates what it receives by its own clock",
            span(self.offset_ms.unsigned_abs()),
            self.uncertainty_ms,
            self.measured_at
        )
    }
}

/// "5 min 3 s", "1 h 0 min", "42 s", to the nearest second (a measured 4 min 59.997 s is
/// "5 min 0 s": the milliseconds are within the uncertainty shown beside it).
fn span(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// What a new sample changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    BecameSkewed,
    BackInLine,
    None,
}

/// The latest sample per member.
#[derive(Debug, Default)]
pub struct Clocks {
    latest: Mutex<BTreeMap<Jurisdiction, ClockSample>>,
}

impl Clocks {
    pub fn record(&self, member: &Jurisdiction, sample: ClockSample) -> Change {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let was = latest.get(member).is_some_and(|s| s.skewed());
        latest.insert(member.clone(), sample);
        match (was, sample.skewed()) {
            (false, true) => Change::BecameSkewed,
            (true, false) => Change::BackInLine,
            _ => Change::None,
        }
    }

    pub fn get(&self, member: &Jurisdiction) -> Option<ClockSample> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(member)
            .copied()
    }

    /// The members whose clocks are off, in words.
    pub fn alerts(&self) -> Vec<String> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, s)| s.skewed())
            .map(|(m, s)| s.describe(m))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + ms)
    }

    #[test]
    fn an_offset_is_measured_from_the_middle_of_the_round_trip() {
        // Sent at 0, answered at 40: the member received it at +20 by a clock 5 min ahead.
        let s = ClockSample::measure(t(0), t(40), t(20 + 300_000));
        assert_eq!((s.offset_ms, s.uncertainty_ms), (300_000, 20));
        assert!(s.skewed());
        assert!(
            s.describe(&"DE".parse().unwrap())
                .starts_with("DE's clock is 5 min 0 s ahead of")
        );
        let just_under = ClockSample::measure(t(0), t(6), t(3 - 299_997));
        assert!(
            just_under
                .describe(&"FR".parse().unwrap())
                .starts_with("FR's clock is 5 min 0 s behind")
        );
        let behind = ClockSample::measure(t(0), t(10), t(5 - 3_600_000));
        assert!(
            behind
                .describe(&"IT".parse().unwrap())
                .contains("1 h 0 min behind")
        );
    }

    #[test]
    fn a_member_is_reported_once_when_it_drifts_and_once_when_it_is_back() {
        let clocks = Clocks::default();
        let de: Jurisdiction = "DE".parse().unwrap();
        let fine = ClockSample::measure(t(0), t(10), t(5));
        let off = ClockSample::measure(t(0), t(10), t(5 + 60_000));
        assert_eq!(clocks.record(&de, fine), Change::None);
        assert_eq!(clocks.record(&de, off), Change::BecameSkewed);
        assert_eq!(clocks.record(&de, off), Change::None);
        assert_eq!(clocks.alerts().len(), 1);
        assert_eq!(clocks.record(&de, fine), Change::BackInLine);
        assert!(clocks.alerts().is_empty());
    }

    proptest! {
        /// Whatever the network's delay, the true offset lies within the uncertainty, and a
        /// slow round trip alone never makes a clock look off.
        #[test]
        fn the_true_offset_lies_within_the_uncertainty(
            offset in -7_200_000i64..7_200_000,
            there in 0i64..20_000,
            back in 0i64..20_000,
        ) {
            let s = ClockSample::measure(t(0), t(there + back), t(there + offset));
            prop_assert!((s.offset_ms - offset).abs() <= s.uncertainty_ms + 1);
            if offset.unsigned_abs() <= SKEW_WARNING.as_millis() as u64 {
                prop_assert!(!s.skewed());
            }
        }
    }
}
