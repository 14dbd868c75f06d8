//! Policy as data: the rules a node checks incoming requests against, and the signed summary
//! members publish of what they accept, so that a requester can pre-check a draft with the same
//! rules the executing node will apply. Pure: reading policy files is the node's business.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::caselog::PolicyOutcome;
use crate::envelope::Signable;
use crate::ids::{Jurisdiction, Timestamp};
use crate::request::{AssistanceRequest, DataCategory, Instrument};

/// An agreement with one partner: which instruments, which data, until when (sunset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agreement {
    pub partner: Jurisdiction,
    pub instruments: Vec<Instrument>,
    pub data_categories: Vec<DataCategory>,
    pub expires: Option<Timestamp>,
}

/// Offences that carry the death penalty in a requesting state: assistance is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeathPenalty {
    pub state: Jurisdiction,
    pub offences: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Minimisation {
    /// Longest time window a request may cover, in days.
    pub max_window_days: Option<u32>,
    /// Most selectors one request may name.
    pub max_selectors: Option<usize>,
    /// Content data only with a validating (judicial) authority's approval.
    pub content_requires_judicial_approval: bool,
}

/// A node's policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    pub agreements: Vec<Agreement>,
    /// Offence categories refused outright (e.g. political offences).
    pub refused_offences: Vec<String>,
    pub death_penalty: Vec<DeathPenalty>,
    /// Offence categories that are also offences here. `None`: dual criminality is not checked.
    pub dual_criminality: Option<Vec<String>>,
    pub minimisation: Minimisation,
    /// Retention this node applies to received data when a request asks for none longer.
    pub default_retention_days: Option<u32>,
    /// How long this node keeps its own records of a request it received and executed (its
    /// decision, its fulfilment, the request itself), from the request's submission, whatever
    /// the requester does with what it received. [`DEFAULT_EXECUTING_RETENTION_DAYS`] if not
    /// set.
    #[serde(default)]
    pub executing_retention_days: Option<u32>,
    /// The languages (ISO 639-1) this node accepts requests in. A request in none of them,
    /// nor translated into one, is referred to a reviewer; the published summary lists them,
    /// so that a requester's pre-check warns before it sends. Empty: any language.
    #[serde(default)]
    pub languages: Vec<String>,
}

/// How long an executing node keeps its own records of a case when its policy does not say:
/// five years.
pub const DEFAULT_EXECUTING_RETENTION_DAYS: u32 = 5 * 365;

/// One rule's verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleResult {
    /// A stable code, e.g. `agreement.expired`.
    pub rule: String,
    pub outcome: PolicyOutcome,
    /// Why, in words an officer can act on.
    pub explanation: String,
}

/// The check of one request: the overall outcome and every rule that fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyCheck {
    pub outcome: PolicyOutcome,
    pub rules: Vec<RuleResult>,
}

impl PolicyCheck {
    /// The rules as the signed event carries them: `outcome rule: explanation`.
    pub fn event_rules(&self) -> Vec<String> {
        // The event refuses texts over the protocol's limit; explanations are short, but a
        // policy file is not ours to trust blindly.
        let limit = crate::limits::MAX_TEXT;
        self.rules
            .iter()
            .map(|r| {
                let mut line = format!("{} {}: {}", outcome_code(r.outcome), r.rule, r.explanation);
                if line.len() > limit {
                    let mut end = limit - 3;
                    while !line.is_char_boundary(end) {
                        end -= 1;
                    }
                    line.truncate(end);
                    line.push_str("...");
                }
                line
            })
            .collect()
    }
}

pub fn outcome_code(outcome: PolicyOutcome) -> &'static str {
    match outcome {
        PolicyOutcome::Passed => "passed",
        PolicyOutcome::Referred => "referred",
        PolicyOutcome::Refused => "refused",
    }
}

impl Policy {
    /// Checks `request` from `from` at time `now`. Rules that pass are listed too, so that the
    /// requester sees what was checked, not only what failed.
    pub fn check(
        &self,
        request: &AssistanceRequest,
        from: &Jurisdiction,
        now: Timestamp,
    ) -> PolicyCheck {
        let mut rules = Vec::new();
        let mut fire = |rule: &str, outcome, explanation: String| {
            rules.push(RuleResult {
                rule: rule.to_owned(),
                outcome,
                explanation,
            })
        };
        use PolicyOutcome::{Passed, Referred, Refused};

        match self.agreements.iter().find(|a| a.partner == *from) {
            None => fire(
                "agreement",
                Refused,
                format!("no agreement with {from} is in force here"),
            ),
            Some(agreement) => {
                match agreement.expires {
                    Some(expires) if now > expires => fire(
                        "agreement.expired",
                        Refused,
                        format!("the agreement with {from} expired on {expires} (sunset clause)"),
                    ),
                    _ => fire(
                        "agreement",
                        Passed,
                        format!("an agreement with {from} is in force"),
                    ),
                }
                if agreement.instruments.contains(&request.instrument) {
                    fire(
                        "agreement.instrument",
                        Passed,
                        format!("{} is accepted from {from}", request.instrument),
                    );
                } else {
                    fire(
                        "agreement.instrument",
                        Refused,
                        format!(
                            "{} is not an instrument agreed with {from}",
                            request.instrument
                        ),
                    );
                }
                let outside: Vec<String> = request
                    .data_categories
                    .iter()
                    .filter(|c| !agreement.data_categories.contains(c))
                    .map(|c| c.to_string())
                    .collect();
                if outside.is_empty() {
                    fire(
                        "agreement.data",
                        Passed,
                        "every data category asked for is agreed".into(),
                    );
                } else {
                    fire(
                        "agreement.data",
                        Refused,
                        format!("{} data is not agreed with {from}", outside.join(", ")),
                    );
                }
            }
        }

        let offence = request.offence.category.as_str();
        if self.refused_offences.iter().any(|o| o == offence) {
            fire(
                "refusal.offence",
                Refused,
                format!("assistance is refused for {offence} offences"),
            );
        }
        if self
            .death_penalty
            .iter()
            .any(|d| d.state == *from && d.offences.iter().any(|o| o == offence))
        {
            fire(
                "refusal.death-penalty",
                Refused,
                format!("{offence} carries the death penalty in {from}"),
            );
        }
        if let Some(known) = &self.dual_criminality {
            if known.iter().any(|o| o == offence) {
                fire(
                    "dual-criminality",
                    Passed,
                    format!("{offence} is an offence here too"),
                );
            } else {
                fire(
                    "dual-criminality",
                    Referred,
                    format!(
                        "{offence} is not on this node's dual-criminality list: a reviewer must establish it"
                    ),
                );
            }
        }

        let m = &self.minimisation;
        if let (Some(max), Some(window)) = (m.max_window_days, &request.time_window) {
            // In i128: a window across the whole clock must not wrap round to a short one.
            let days = (i128::from(window.to.as_millis()) - i128::from(window.from.as_millis()))
                / 86_400_000;
            if days > i128::from(max) {
                fire(
                    "minimisation.window",
                    Referred,
                    format!(
                        "the time window covers {days} days, more than the {max} allowed without review"
                    ),
                );
            }
        }
        if let Some(max) = m.max_selectors
            && request.selectors.len() > max
        {
            fire(
                "minimisation.selectors",
                Referred,
                format!(
                    "{} selectors, more than the {max} allowed without review",
                    request.selectors.len()
                ),
            );
        }
        if m.content_requires_judicial_approval
            && request.data_categories.contains(&DataCategory::Content)
            && request.validating_authority.is_none()
        {
            fire(
                "minimisation.content-judicial",
                Refused,
                "content data is disclosed only with a judicial authority's approval; the request names no validating authority".into(),
            );
        }

        if !self.languages.is_empty() {
            let readable: Vec<&str> = request
                .languages()
                .into_iter()
                .filter(|l| self.languages.iter().any(|a| a == l))
                .collect();
            if let Some(first) = readable.first() {
                fire(
                    "language",
                    Passed,
                    format!("the request can be read in {first}, which is accepted here"),
                );
            } else {
                fire(
                    "language",
                    Referred,
                    format!(
                        "the request is in {} only; this node accepts {}: add a translation",
                        request.languages().join(", "),
                        self.languages.join(", ")
                    ),
                );
            }
        }

        let outcome = if rules.iter().any(|r| r.outcome == Refused) {
            Refused
        } else if rules.iter().any(|r| r.outcome == Referred) {
            Referred
        } else {
            Passed
        };
        PolicyCheck { outcome, rules }
    }

    /// Partners whose agreement has expired or will by `now`: for operators' warnings.
    pub fn expired(&self, now: Timestamp) -> BTreeSet<Jurisdiction> {
        self.agreements
            .iter()
            .filter(|a| a.expires.is_some_and(|e| now > e))
            .map(|a| a.partner.clone())
            .collect()
    }
}

/// What changed from the policy `old` to `new` (`None`: no policy, manual review), one line
/// per rule, for the audit log and `comity policy history`: `+ agreement with IT`,
/// `~ agreement with FR: expires 2027-12-31T00:00:00.000Z → 2020-01-01T00:00:00.000Z`.
pub fn changes(old: Option<&Policy>, new: Option<&Policy>) -> Vec<String> {
    let empty = Policy::default();
    let mut lines = Vec::new();
    match (old, new) {
        (None, Some(_)) => lines.push("+ a policy file (before: manual review)".to_owned()),
        (Some(_), None) => lines.push("- the policy file (now: manual review)".to_owned()),
        _ => {}
    }
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let join = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let codes = |v: &[Instrument]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
    let cats = |v: &[DataCategory]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let expiry = |e: Option<Timestamp>| e.map_or_else(|| "never".to_owned(), |t| t.to_string());
    for a in &old.agreements {
        if !new.agreements.iter().any(|b| b.partner == a.partner) {
            lines.push(format!("- agreement with {}", a.partner));
        }
    }
    for b in &new.agreements {
        let Some(a) = old.agreements.iter().find(|a| a.partner == b.partner) else {
            lines.push(format!(
                "+ agreement with {}: {} for {} data, expires {}",
                b.partner,
                join(&codes(&b.instruments)),
                join(&cats(&b.data_categories)),
                expiry(b.expires)
            ));
            continue;
        };
        if a.instruments != b.instruments {
            lines.push(format!(
                "~ agreement with {}: instruments {} → {}",
                b.partner,
                join(&codes(&a.instruments)),
                join(&codes(&b.instruments))
            ));
        }
        if a.data_categories != b.data_categories {
            lines.push(format!(
                "~ agreement with {}: data {} → {}",
                b.partner,
                join(&cats(&a.data_categories)),
                join(&cats(&b.data_categories))
            ));
        }
        if a.expires != b.expires {
            lines.push(format!(
                "~ agreement with {}: expires {} → {}",
                b.partner,
                expiry(a.expires),
                expiry(b.expires)
            ));
        }
    }
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            lines.push(format!("~ {name}: {a} → {b}"));
        }
    };
    field(
        "refused_offences",
        join(&old.refused_offences),
        join(&new.refused_offences),
    );
    let penalties = |p: &Policy| {
        p.death_penalty
            .iter()
            .map(|d| format!("{} ({})", d.state, d.offences.join(", ")))
            .collect::<Vec<_>>()
    };
    field(
        "death_penalty",
        join(&penalties(old)),
        join(&penalties(new)),
    );
    let dual = |p: &Policy| {
        p.dual_criminality
            .as_ref()
            .map_or_else(|| "not checked".to_owned(), |d| join(d))
    };
    field("dual_criminality", dual(old), dual(new));
    field(
        "minimisation",
        format!("{:?}", old.minimisation),
        format!("{:?}", new.minimisation),
    );
    let days = |d: Option<u32>| d.map_or_else(|| "not set".to_owned(), |d| d.to_string());
    field(
        "default_retention_days",
        days(old.default_retention_days),
        days(new.default_retention_days),
    );
    field(
        "executing_retention_days",
        days(old.executing_retention_days),
        days(new.executing_retention_days),
    );
    field("languages", join(&old.languages), join(&new.languages));
    lines
}

/// A member's signed statement of what it accepts (its whole policy), for requesters to
/// pre-check their drafts against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicySummary {
    pub issuer: Jurisdiction,
    pub issued_at: Timestamp,
    pub policy: Policy,
}

impl Signable for PolicySummary {
    const CONTENT_TYPE: &'static str = "application/comity.policy.v1+cbor";
}
