//! The assistance request: what one jurisdiction asks another for, under which instrument,
//! about whom and why. Modelled on ETSI TS 103 120 (HI-1) and the EU EPOC form.
//!
//! This module owns the shape of a request and the facts of the legal instruments (codes,
//! deadlines). The rules that tie fields together live in [`crate::validate`].

use crate::ids::{Jurisdiction, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

pub use crate::selector::Selector;

/// A request for mutual legal assistance, as signed by the requesting node.
///
/// Deserializing checks only the shape; call [`AssistanceRequest::validate`] to check the
/// rules and get every problem at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AssistanceRequest {
    pub requesting: Jurisdiction,
    pub executing: Jurisdiction,
    pub issuing_authority: Authority,
    /// Approval by a judge, prosecutor or other independent authority, where the instrument
    /// requires it (eu-epoc for traffic or content data; us-cloud-exec always).
    pub validating_authority: Option<Authority>,
    pub instrument: Instrument,
    pub kind: RequestKind,
    pub offence: Offence,
    /// Non-empty, without duplicates.
    pub data_categories: Vec<DataCategory>,
    /// Non-empty, at most [`crate::limits::MAX_SELECTORS`], without duplicates.
    pub selectors: Vec<Selector>,
    /// Period the data relates to, if any.
    pub time_window: Option<TimeWindow>,
    pub urgency: Urgency,
    /// Necessity and proportionality statement.
    pub necessity: String,
    pub confidentiality: Confidentiality,
    /// How long the requesting side asks to keep the data, 1 to 3650 days.
    pub retention_days: u32,
    /// Purpose limitation: what the data may be used for.
    pub purpose: String,
    /// ISO 639-1 code of the language the request is written in (two lower-case letters).
    pub language: String,
    /// Translations of the free-text fields into other languages, signed with the request,
    /// for an executing side that accepts another language (an EPOC's certificate must be in
    /// one the executing state accepts). At most [`MAX_TRANSLATIONS`], one per language.
    /// Left out of the encoding when empty, so that requests signed before it keep their bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub translations: Vec<Translation>,
}

/// Most translations one request may carry.
pub const MAX_TRANSLATIONS: usize = 8;

/// The request's free-text fields in another language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Translation {
    /// ISO 639-1 code (two lower-case letters), other than the request's own.
    pub language: String,
    pub offence_description: String,
    pub necessity: String,
    pub purpose: String,
}

impl AssistanceRequest {
    /// Every language the request can be read in: its own, then its translations'.
    pub fn languages(&self) -> Vec<&str> {
        std::iter::once(self.language.as_str())
            .chain(self.translations.iter().map(|t| t.language.as_str()))
            .collect()
    }
}

/// An authority acting in a request: who issued or validated it, and how to reach them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Authority {
    pub name: String,
    /// E.g. "investigating judge", "public prosecutor".
    pub role: String,
    /// An address or number at which the executing side can reach the authority.
    pub contact: String,
}

/// The offence under investigation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Offence {
    /// Category code from the bloc's list, lower-case kebab case: `fraud`, `cybercrime`.
    pub category: String,
    pub description: String,
    /// Maximum custodial penalty in months under the requesting side's law, if any. Some
    /// instruments are only available above a threshold (eu-epoc: 36 months for traffic and
    /// content data).
    pub max_penalty_months: Option<u32>,
}

/// The period the requested data relates to; `from` is inclusive, `to` exclusive.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// Whether the person concerned may be told about the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Confidentiality {
    pub delay_user_notification: bool,
    /// Required when delaying notification: the law allows delay only for a stated reason.
    pub reason: Option<String>,
}

/// A code that is not one of an enum's known codes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} {input:?}; expected one of: {expected}")]
pub struct UnknownCode {
    pub what: &'static str,
    pub input: String,
    pub expected: String,
}

/// Defines an enum of kebab-case codes with `ALL`, `code()`, `Display` and `FromStr`, so that
/// the wire, the CLI and the documentation use the very same strings.
macro_rules! coded_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $code:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $code)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The code used on the wire and on the command line.
            pub const fn code(&self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;

            fn from_str(s: &str) -> Result<Self, UnknownCode> {
                Self::ALL.iter().copied().find(|v| v.code() == s).ok_or_else(|| UnknownCode {
                    what: $what,
                    input: s.to_owned(),
                    expected: Self::ALL.iter().map(|v| v.code()).collect::<Vec<_>>().join(", "),
                })
            }
        }
    };
}

coded_enum!(
    /// The legal instrument a request is made under, as a code of the bloc's catalogue.
    /// See `shared/reference/legal-instruments.md` for what each covers.
    Instrument, "instrument" {
        /// A bilateral mutual legal assistance treaty.
        MlatBilateral = "mlat-bilateral",
        /// Budapest Convention Art. 29: expedited preservation of stored data.
        BudapestArt29 = "budapest-art29",
        /// Budapest Art. 30: expedited disclosure of preserved traffic data.
        BudapestArt30 = "budapest-art30",
        /// Budapest Art. 31: mutual assistance accessing stored data.
        BudapestArt31 = "budapest-art31",
        /// Second Additional Protocol Art. 6: domain name registration information.
        Budapest2apArt6 = "budapest-2ap-art6",
        /// 2AP Art. 7: subscriber information directly from providers.
        Budapest2apArt7 = "budapest-2ap-art7",
        /// 2AP Art. 8: giving effect to orders of another Party.
        Budapest2apArt8 = "budapest-2ap-art8",
        /// 2AP Art. 9: expedited disclosure in an emergency.
        Budapest2apArt9 = "budapest-2ap-art9",
        /// 2AP Art. 10: emergency mutual assistance.
        Budapest2apArt10 = "budapest-2ap-art10",
        /// Directive 2014/41/EU: European Investigation Order.
        EuEio = "eu-eio",
        /// Regulation (EU) 2023/1543: European Production Order.
        EuEpoc = "eu-epoc",
        /// Regulation (EU) 2023/1543: European Preservation Order.
        EuEpocPr = "eu-epoc-pr",
        /// A CLOUD Act executive agreement (e.g. US-UK 2019).
        UsCloudExec = "us-cloud-exec",
    }
);

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Where a deadline is counted from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// From the executing side's signed receipt of the request.
    Receipt,
    /// From the executing side's decision.
    Decision,
}

/// How long data preserved under an instrument is kept, and how far it may be extended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PreservationTerms {
    /// How long a preservation lasts when the officer names no end.
    pub period: Duration,
    /// How much longer than `period` it may be extended, in all; `None`: no cap.
    pub max_extension: Option<Duration>,
}

/// What an instrument's own text sets for one urgency: the catalogue entry of
/// [`Instrument::terms`]. `None` where the text gives no figure.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InstrumentTerms {
    /// Time to decide on (recognise, accept or refuse) a delivered request, from its receipt.
    pub decision: Option<Duration>,
    /// Time to execute (fulfil) an accepted request, and what it is counted from.
    pub execution: Option<(Duration, Anchor)>,
    pub preservation: Option<PreservationTerms>,
    /// Where the figures come from, for the officer who reads a deadline.
    pub citation: &'static str,
}

impl Instrument {
    /// The instrument's catalogue entry for a request of `urgency`: the deadlines and
    /// preservation rules its own text sets. A bloc may override any of them
    /// ([`crate::bloc::Settings::instruments`]); [`crate::deadlines`] combines the two.
    ///
    /// - eu-epoc (Regulation 2023/1543 Art. 10): produce within 10 days of receipt, 8 hours in
    ///   an emergency; the decision is due by then too.
    /// - eu-epoc-pr (Art. 11): preserve without undue delay for 60 days, extendable by 30.
    /// - eu-eio (Directive 2014/41/EU Art. 12): recognise within 30 days, execute within 90
    ///   days of that decision. "Shorter when urgent" has no figure: an urgent EIO takes the
    ///   bloc's deadline for its urgency.
    /// - budapest-art29 (Budapest Convention Art. 29(7)): preserve at least 60 days, and
    ///   afterwards pending the decision on the request: no cap.
    /// - budapest-2ap-art8 (Second Additional Protocol Art. 8): serve within 45 days.
    /// - Others give no figure ("expedited", "as fast as possible", or treaty-specific).
    pub fn terms(&self, urgency: Urgency) -> InstrumentTerms {
        let none = InstrumentTerms {
            decision: None,
            execution: None,
            preservation: None,
            citation: "",
        };
        let emergency = urgency == Urgency::Emergency;
        match self {
            Instrument::EuEpoc => {
                let limit = if emergency { 8 * HOUR } else { 10 * DAY };
                InstrumentTerms {
                    decision: Some(limit),
                    execution: Some((limit, Anchor::Receipt)),
                    citation: "Regulation (EU) 2023/1543 Art. 10",
                    ..none
                }
            }
            Instrument::EuEpocPr => InstrumentTerms {
                preservation: Some(PreservationTerms {
                    period: 60 * DAY,
                    max_extension: Some(30 * DAY),
                }),
                citation: "Regulation (EU) 2023/1543 Art. 11",
                ..none
            },
            Instrument::EuEio if urgency == Urgency::Normal => InstrumentTerms {
                decision: Some(30 * DAY),
                execution: Some((90 * DAY, Anchor::Decision)),
                citation: "Directive 2014/41/EU Art. 12",
                ..none
            },
            Instrument::EuEio => InstrumentTerms {
                citation: "Directive 2014/41/EU Art. 12(2)",
                ..none
            },
            Instrument::BudapestArt29 => InstrumentTerms {
                preservation: Some(PreservationTerms {
                    period: 60 * DAY,
                    max_extension: None,
                }),
                citation: "Budapest Convention Art. 29(7)",
                ..none
            },
            Instrument::Budapest2apArt8 => InstrumentTerms {
                decision: Some(45 * DAY),
                citation: "Second Additional Protocol Art. 8",
                ..none
            },
            _ => none,
        }
    }

    /// Whether a request of kind [`RequestKind::Preservation`] may use this instrument.
    pub fn allows_preservation(&self) -> bool {
        matches!(
            self,
            Instrument::BudapestArt29 | Instrument::EuEpocPr | Instrument::MlatBilateral
        )
    }
}

coded_enum!(
    /// What the requesting side wants done with the data.
    RequestKind, "request kind" {
        /// Hand the data over.
        Disclosure = "disclosure",
        /// Keep the data from being deleted, pending a disclosure request.
        Preservation = "preservation",
        /// Hand the data over at once: a life or physical safety is at imminent risk.
        EmergencyDisclosure = "emergency-disclosure",
    }
);

coded_enum!(
    /// Categories of data (Regulation 2023/1543 Art. 3). Traffic and content data carry the
    /// strictest conditions.
    DataCategory, "data category" {
        Subscriber = "subscriber",
        /// Data requested only to identify the user, e.g. who had an IP address and port.
        UserIdentifying = "user-identifying",
        Traffic = "traffic",
        Content = "content",
    }
);

impl DataCategory {
    /// Traffic and content data: the categories most instruments restrict further.
    pub fn is_sensitive(&self) -> bool {
        matches!(self, DataCategory::Traffic | DataCategory::Content)
    }
}

coded_enum!(
    /// How fast the requesting side needs an answer.
    Urgency, "urgency" {
        Normal = "normal",
        Urgent = "urgent",
        /// Imminent threat to life or physical safety.
        Emergency = "emergency",
    }
);

impl Urgency {
    /// The answer time the urgency asks for when the instrument sets none: 10 days, 3 days,
    /// 8 hours (the last two follow eu-epoc's emergency figure and common 24/7 practice).
    pub fn default_deadline(&self) -> Duration {
        match self {
            Urgency::Normal => 10 * DAY,
            Urgency::Urgent => 3 * DAY,
            Urgency::Emergency => 8 * HOUR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_on_every_surface() {
        for i in Instrument::ALL {
            assert_eq!(i.code().parse::<Instrument>().unwrap(), *i);
            assert_eq!(
                serde_json::to_value(i).unwrap(),
                serde_json::json!(i.code())
            );
        }
        for k in RequestKind::ALL {
            assert_eq!(k.to_string().parse::<RequestKind>().unwrap(), *k);
        }
        for c in DataCategory::ALL {
            assert_eq!(c.to_string().parse::<DataCategory>().unwrap(), *c);
        }
        for u in Urgency::ALL {
            assert_eq!(u.to_string().parse::<Urgency>().unwrap(), *u);
        }
        assert_eq!(Instrument::ALL.len(), 13);
        assert_eq!(Instrument::Budapest2apArt10.code(), "budapest-2ap-art10");
        assert_eq!(
            RequestKind::EmergencyDisclosure.code(),
            "emergency-disclosure"
        );
        assert_eq!(DataCategory::UserIdentifying.code(), "user-identifying");
    }

    #[test]
    fn unknown_code_lists_the_valid_ones() {
        let err = "eu-epoc-x".parse::<Instrument>().unwrap_err().to_string();
        assert!(
            err.contains("unknown instrument") && err.contains("eu-epoc-pr"),
            "{err}"
        );
    }

    #[test]
    fn the_catalogue_follows_the_reference() {
        use Urgency::*;
        type Row = (
            Instrument,
            Urgency,
            Option<Duration>,
            Option<(Duration, Anchor)>,
            Option<Duration>,
            Option<Option<Duration>>,
        );
        // (instrument, urgency, decision, execution, preservation period, extension cap)
        let table: &[Row] = &[
            (
                Instrument::EuEpoc,
                Normal,
                Some(10 * DAY),
                Some((10 * DAY, Anchor::Receipt)),
                None,
                None,
            ),
            (
                Instrument::EuEpoc,
                Urgent,
                Some(10 * DAY),
                Some((10 * DAY, Anchor::Receipt)),
                None,
                None,
            ),
            (
                Instrument::EuEpoc,
                Emergency,
                Some(8 * HOUR),
                Some((8 * HOUR, Anchor::Receipt)),
                None,
                None,
            ),
            (
                Instrument::EuEio,
                Normal,
                Some(30 * DAY),
                Some((90 * DAY, Anchor::Decision)),
                None,
                None,
            ),
            (Instrument::EuEio, Urgent, None, None, None, None),
            (
                Instrument::EuEpocPr,
                Normal,
                None,
                None,
                Some(60 * DAY),
                Some(Some(30 * DAY)),
            ),
            (
                Instrument::BudapestArt29,
                Urgent,
                None,
                None,
                Some(60 * DAY),
                Some(None),
            ),
            (
                Instrument::Budapest2apArt8,
                Normal,
                Some(45 * DAY),
                None,
                None,
                None,
            ),
            (Instrument::MlatBilateral, Normal, None, None, None, None),
            (
                Instrument::Budapest2apArt9,
                Emergency,
                None,
                None,
                None,
                None,
            ),
        ];
        for &(instrument, urgency, decision, execution, period, cap) in table {
            let t = instrument.terms(urgency);
            let what = format!("{instrument} {urgency}");
            assert_eq!(t.decision, decision, "{what}: decision");
            assert_eq!(t.execution, execution, "{what}: execution");
            assert_eq!(
                t.preservation.map(|p| p.period),
                period,
                "{what}: preservation"
            );
            assert_eq!(
                t.preservation.map(|p| p.max_extension),
                cap,
                "{what}: extension cap"
            );
            let figures = t.decision.is_some() || t.execution.is_some() || t.preservation.is_some();
            assert!(
                !figures || !t.citation.is_empty(),
                "{what}: a figure names its source"
            );
        }
        for i in Instrument::ALL {
            if i.terms(Normal).preservation.is_some() {
                assert!(i.allows_preservation(), "{i}");
            }
        }
    }
}
