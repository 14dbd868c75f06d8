//! Which deadline a case's next step has, how long data is preserved, and which rule says so.
//!
//! Three sources, most specific first: the bloc's own figure for the instrument
//! ([`Settings::instruments`]), the instrument's text ([`Instrument::terms`]), and the bloc's
//! deadline for the request's urgency ([`Settings::deadlines`]). An urgent or emergency
//! request may shorten a deadline to its urgency's, never lengthen it. Every answer names the
//! rule it came from, so that an officer can see why a case is due when it is.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bloc::Settings;
use crate::ids::Timestamp;
use crate::request::{Anchor, Instrument, Urgency};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// A deadline and the rule that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deadline {
    /// How long after [`Deadline::from`].
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    #[serde(with = "seconds")]
    pub after: Duration,
    pub from: Anchor,
    /// The rule in words: `eu-eio: Directive 2014/41/EU Art. 12, 30 days`.
    pub rule: String,
}

/// How data preserved under an instrument is kept, and the rule that says so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreservationRule {
    /// How long a preservation lasts when the officer names no end; `None`: the officer must.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    #[serde(with = "opt_seconds")]
    pub period: Option<Duration>,
    /// How much longer than `period` it may last, in all, by extensions; `None`: no cap.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    #[serde(with = "opt_seconds")]
    pub max_extension: Option<Duration>,
    pub rule: String,
}

fn days_or_hours(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(DAY) {
        format!("{} days", s / DAY)
    } else {
        format!("{} hours", s / HOUR)
    }
}

fn urgency_setting(urgency: Urgency) -> &'static str {
    match urgency {
        Urgency::Normal => "deadlines.normal_hours",
        Urgency::Urgent => "deadlines.urgent_hours",
        Urgency::Emergency => "deadlines.emergency_hours",
    }
}

/// The urgency's deadline, if the request is urgent and it is shorter than `deadline`.
fn shortened(settings: &Settings, urgency: Urgency, deadline: Deadline) -> Deadline {
    let by_urgency = settings.deadlines.for_urgency(urgency);
    if urgency != Urgency::Normal && by_urgency < deadline.after {
        return Deadline {
            after: by_urgency,
            from: deadline.from,
            rule: format!(
                "bloc setting {} = {}: the request is {urgency}, which shortens the {} of {}",
                urgency_setting(urgency),
                by_urgency.as_secs() / HOUR,
                days_or_hours(deadline.after),
                deadline.rule
            ),
        };
    }
    deadline
}

fn bloc_default(
    settings: &Settings,
    instrument: Instrument,
    urgency: Urgency,
) -> (Duration, String) {
    let after = settings.deadlines.for_urgency(urgency);
    let rule = format!(
        "bloc setting {} = {} ({instrument} sets no figure)",
        urgency_setting(urgency),
        after.as_secs() / HOUR
    );
    (after, rule)
}

/// How long the executing side has to decide on a delivered request, from its receipt.
pub fn decision(settings: &Settings, instrument: Instrument, urgency: Urgency) -> Deadline {
    let terms = instrument.terms(urgency);
    let bloc = settings
        .instruments
        .get(&instrument)
        .and_then(|r| r.decision_hours);
    let (after, rule) = match (bloc, terms.decision) {
        (Some(h), _) => (
            Duration::from_secs(h.saturating_mul(HOUR)),
            format!("bloc setting instruments.{instrument}.decision_hours = {h}"),
        ),
        (None, Some(d)) => (
            d,
            format!("{instrument}: {}, {}", terms.citation, days_or_hours(d)),
        ),
        (None, None) => bloc_default(settings, instrument, urgency),
    };
    let deadline = Deadline {
        after,
        from: Anchor::Receipt,
        rule,
    };
    shortened(settings, urgency, deadline)
}

/// How long the executing side has to fulfil an accepted request, and from what.
pub fn execution(settings: &Settings, instrument: Instrument, urgency: Urgency) -> Deadline {
    let terms = instrument.terms(urgency);
    let bloc = settings
        .instruments
        .get(&instrument)
        .and_then(|r| r.execution_hours);
    let anchor = terms.execution.map_or(Anchor::Decision, |(_, a)| a);
    let (after, from, rule) = match (bloc, terms.execution) {
        (Some(h), _) => (
            Duration::from_secs(h.saturating_mul(HOUR)),
            anchor,
            format!("bloc setting instruments.{instrument}.execution_hours = {h}"),
        ),
        (None, Some((d, anchor))) => (
            d,
            anchor,
            format!("{instrument}: {}, {}", terms.citation, days_or_hours(d)),
        ),
        (None, None) => {
            let (after, rule) = bloc_default(settings, instrument, urgency);
            (after, Anchor::Decision, rule)
        }
    };
    shortened(settings, urgency, Deadline { after, from, rule })
}

/// How data preserved under `instrument` is kept.
pub fn preservation(settings: &Settings, instrument: Instrument) -> PreservationRule {
    let terms = instrument.terms(Urgency::Normal).preservation;
    let bloc = settings
        .instruments
        .get(&instrument)
        .copied()
        .unwrap_or_default();
    let period = bloc
        .preservation_days
        .map(|d| Duration::from_secs(u64::from(d) * DAY))
        .or(terms.map(|t| t.period));
    let max_extension = bloc
        .extension_days
        .map(|d| Duration::from_secs(u64::from(d) * DAY))
        .or(terms.and_then(|t| t.max_extension));
    let citation = instrument.terms(Urgency::Normal).citation;
    let source = match (bloc.preservation_days, bloc.extension_days, terms) {
        (None, None, Some(_)) => format!("{instrument}: {citation}"),
        (None, None, None) => format!("{instrument} sets no preservation period"),
        _ => format!("bloc settings instruments.{instrument}.*"),
    };
    let rule = match (period, max_extension) {
        (Some(p), Some(e)) => format!(
            "{source}: {}, extendable by {} at most",
            days_or_hours(p),
            days_or_hours(e)
        ),
        (Some(p), None) => format!("{source}: {}, extendable without a cap", days_or_hours(p)),
        (None, Some(e)) => format!(
            "{source}: the officer names the end; extendable by {} at most",
            days_or_hours(e)
        ),
        (None, None) => format!("{source}: the officer names the end"),
    };
    PreservationRule {
        period,
        max_extension,
        rule,
    }
}

impl PreservationRule {
    /// The latest end a preservation started at `since` may have, when the rule caps it.
    pub fn latest_end(&self, since: Timestamp) -> Option<Timestamp> {
        let cap = self.period?.checked_add(self.max_extension?)?;
        Some(since.saturating_add(cap))
    }

    /// Whether a new preservation, starting `now`, may end at `until` (`None`: the rule's
    /// period); the end it gets, or why not.
    pub fn start(&self, now: Timestamp, until: Option<Timestamp>) -> Result<Timestamp, String> {
        let until = match (until, self.period) {
            (Some(until), _) => until,
            (None, Some(period)) => now.saturating_add(period),
            (None, None) => {
                return Err(format!("{}; give the end with --until", self.rule));
            }
        };
        if until <= now {
            return Err(format!(
                "the preservation would end at {until}, which is not in the future"
            ));
        }
        if let (Some(period), Some(_)) = (self.period, self.max_extension)
            && until > now.saturating_add(period)
        {
            return Err(format!(
                "a preservation lasts {} at first ({}); preserve until {} at the latest and extend it later",
                days_or_hours(period),
                self.rule,
                now.saturating_add(period)
            ));
        }
        Ok(until)
    }

    /// Whether a preservation started at `since` may be extended to `until`.
    pub fn extend(&self, since: Timestamp, until: Timestamp) -> Result<(), String> {
        match self.latest_end(since) {
            Some(latest) if until > latest => Err(format!(
                "extension refused: a preservation started at {since} may last until {latest} at the latest ({}); release it, or make a new request",
                self.rule
            )),
            _ => Ok(()),
        }
    }
}

mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

mod opt_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bloc::InstrumentRules;
    use proptest::prelude::*;

    fn d(days: u64) -> Duration {
        Duration::from_secs(days * DAY)
    }

    fn h(hours: u64) -> Duration {
        Duration::from_secs(hours * HOUR)
    }

    #[test]
    fn each_instrument_gets_its_own_deadlines() {
        use Instrument::*;
        use Urgency::*;
        let bloc = Settings::default(); // 240 / 72 / 8 hours
        // (instrument, urgency, decision, execution, execution counted from, rule contains)
        let table = [
            (
                EuEio,
                Normal,
                d(30),
                d(90),
                Anchor::Decision,
                "Directive 2014/41/EU",
            ),
            (
                EuEio,
                Urgent,
                h(72),
                h(72),
                Anchor::Decision,
                "deadlines.urgent_hours",
            ),
            (EuEpoc, Normal, d(10), d(10), Anchor::Receipt, "2023/1543"),
            (EuEpoc, Urgent, h(72), h(72), Anchor::Receipt, "is urgent"),
            (EuEpoc, Emergency, h(8), h(8), Anchor::Receipt, "2023/1543"),
            (
                Budapest2apArt8,
                Normal,
                d(45),
                d(10),
                Anchor::Decision,
                "Second Additional",
            ),
            (
                MlatBilateral,
                Normal,
                d(10),
                d(10),
                Anchor::Decision,
                "sets no figure",
            ),
            (
                MlatBilateral,
                Emergency,
                h(8),
                h(8),
                Anchor::Decision,
                "emergency_hours",
            ),
            (
                Budapest2apArt10,
                Emergency,
                h(8),
                h(8),
                Anchor::Decision,
                "sets no figure",
            ),
        ];
        for (instrument, urgency, dec, exe, from, rule) in table {
            let what = format!("{instrument} {urgency}");
            let decision = decision(&bloc, instrument, urgency);
            let execution = execution(&bloc, instrument, urgency);
            assert_eq!(decision.after, dec, "{what}: decision ({})", decision.rule);
            assert_eq!(decision.from, Anchor::Receipt, "{what}");
            assert_eq!(
                execution.after, exe,
                "{what}: execution ({})",
                execution.rule
            );
            assert_eq!(execution.from, from, "{what}");
            assert!(decision.rule.contains(rule), "{what}: {}", decision.rule);
        }
    }

    #[test]
    fn the_bloc_overrides_an_instrument_and_says_so() {
        let mut bloc = Settings::default();
        bloc.instruments.insert(
            Instrument::EuEio,
            InstrumentRules {
                decision_hours: Some(24 * 20),
                ..Default::default()
            },
        );
        let dec = decision(&bloc, Instrument::EuEio, Urgency::Normal);
        assert_eq!(dec.after, d(20));
        assert_eq!(
            dec.rule,
            "bloc setting instruments.eu-eio.decision_hours = 480"
        );
        // Only what the bloc sets changes: execution keeps the Directive's 90 days.
        assert_eq!(
            execution(&bloc, Instrument::EuEio, Urgency::Normal).after,
            d(90)
        );
        // The bloc's urgency deadlines apply where neither gives a figure.
        bloc.deadlines.normal_hours = 100;
        assert_eq!(
            decision(&bloc, Instrument::MlatBilateral, Urgency::Normal).after,
            h(100)
        );
    }

    #[test]
    fn preservation_follows_the_instrument_then_the_bloc() {
        let bloc = Settings::default();
        let pr = preservation(&bloc, Instrument::EuEpocPr);
        assert_eq!((pr.period, pr.max_extension), (Some(d(60)), Some(d(30))));
        assert!(
            pr.rule.contains("extendable by 30 days at most"),
            "{}",
            pr.rule
        );
        let art29 = preservation(&bloc, Instrument::BudapestArt29);
        assert_eq!((art29.period, art29.max_extension), (Some(d(60)), None));
        let mlat = preservation(&bloc, Instrument::MlatBilateral);
        assert_eq!((mlat.period, mlat.max_extension), (None, None));

        let now = Timestamp::from_millis(1_000_000_000_000);
        assert_eq!(pr.start(now, None), Ok(now.saturating_add(d(60))));
        assert!(pr.start(now, Some(now.saturating_add(d(61)))).is_err());
        assert!(mlat.start(now, None).unwrap_err().contains("--until"));
        assert!(pr.start(now, Some(now)).is_err(), "an end in the past");
        assert_eq!(pr.extend(now, now.saturating_add(d(90))), Ok(()));
        let refused = pr.extend(now, now.saturating_add(d(91))).unwrap_err();
        assert!(refused.contains("at the latest"), "{refused}");
        assert_eq!(art29.extend(now, now.saturating_add(d(900))), Ok(()));

        let mut bloc = Settings::default();
        bloc.instruments.insert(
            Instrument::EuEpocPr,
            InstrumentRules {
                extension_days: Some(0),
                ..Default::default()
            },
        );
        let none = preservation(&bloc, Instrument::EuEpocPr);
        assert_eq!(none.max_extension, Some(Duration::ZERO));
        assert!(none.extend(now, now.saturating_add(d(60) + h(1))).is_err());
    }

    proptest! {
        /// Whatever the settings and the instrument, an urgent or emergency request is never
        /// due later than the bloc's deadline for its urgency, and every deadline names its rule.
        #[test]
        fn urgency_never_lengthens(
            normal in 1u64..9000, urgent in 1u64..9000, emergency in 1u64..9000,
            i in 0..Instrument::ALL.len(), bloc_hours in proptest::option::of(1u64..9000),
        ) {
            let mut bloc = Settings::default();
            bloc.deadlines.normal_hours = normal;
            bloc.deadlines.urgent_hours = urgent;
            bloc.deadlines.emergency_hours = emergency;
            let instrument = Instrument::ALL[i];
            if let Some(h) = bloc_hours {
                bloc.instruments.insert(instrument, InstrumentRules {
                    decision_hours: Some(h),
                    execution_hours: Some(h),
                    ..Default::default()
                });
            }
            for urgency in Urgency::ALL {
                for deadline in [decision(&bloc, instrument, *urgency), execution(&bloc, instrument, *urgency)] {
                    prop_assert!(!deadline.rule.is_empty());
                    if *urgency != Urgency::Normal {
                        prop_assert!(deadline.after <= bloc.deadlines.for_urgency(*urgency), "{}", deadline.rule);
                    }
                }
            }
        }

        /// An extension the rule allows is never past the cap; one past it is always refused.
        #[test]
        fn extensions_stay_under_the_cap(period in 1u32..400, ext in 0u32..400, asked in 0u64..2000) {
            let rule = PreservationRule {
                period: Some(d(u64::from(period))),
                max_extension: Some(d(u64::from(ext))),
                rule: String::new(),
            };
            let since = Timestamp::from_millis(1_700_000_000_000);
            let until = since.saturating_add(d(asked));
            prop_assert_eq!(rule.extend(since, until).is_ok(), asked <= u64::from(period + ext));
        }
    }
}
