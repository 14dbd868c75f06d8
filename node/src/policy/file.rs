//! Reading `policy.toml`: every problem at once, each with its field and line.

use std::collections::BTreeSet;
use std::ops::Range;

use comity_protocol::{DataCategory, Instrument, Jurisdiction, Timestamp};
use serde::Deserialize;
use toml::Spanned;

use super::{Agreement, DeathPenalty, Minimisation, Policy};

/// One problem in a policy file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyProblem {
    pub field: String,
    pub line: usize,
    pub problem: String,
}

impl std::fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.problem)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default, rename = "agreement")]
    agreements: Vec<RawAgreement>,
    #[serde(default)]
    refused_offences: Vec<Spanned<String>>,
    #[serde(default)]
    death_penalty: Vec<RawDeathPenalty>,
    #[serde(default)]
    dual_criminality: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    minimisation: RawMinimisation,
    #[serde(default)]
    default_retention_days: Option<Spanned<i64>>,
    #[serde(default)]
    executing_retention_days: Option<Spanned<i64>>,
    #[serde(default)]
    languages: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgreement {
    partner: Spanned<String>,
    instruments: Vec<Spanned<String>>,
    data_categories: Vec<Spanned<String>>,
    #[serde(default)]
    expires: Option<Spanned<toml::value::Datetime>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeathPenalty {
    state: Spanned<String>,
    offences: Vec<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMinimisation {
    max_window_days: Option<Spanned<i64>>,
    max_selectors: Option<Spanned<i64>>,
    #[serde(default)]
    content_requires_judicial_approval: bool,
}

struct Checker<'a> {
    source: &'a str,
    problems: Vec<PolicyProblem>,
}

impl Checker<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        self.source[..span.start.min(self.source.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn problem(&mut self, field: String, span: Range<usize>, problem: impl Into<String>) {
        let line = self.line(span);
        self.problems.push(PolicyProblem {
            field,
            line,
            problem: problem.into(),
        });
    }

    fn parsed<T: std::str::FromStr>(&mut self, field: String, value: &Spanned<String>) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        match value.get_ref().parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(field, value.span(), e.to_string());
                None
            }
        }
    }

    fn offence(&mut self, field: String, value: &Spanned<String>) -> Option<String> {
        let code = value.get_ref();
        let ok = !code.is_empty()
            && code.len() <= 40
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Some(code.clone())
        } else {
            self.problem(
                field,
                value.span(),
                format!(
                    "{code:?} is not an offence category code (lowercase letters, digits and '-')"
                ),
            );
            None
        }
    }

    fn positive(&mut self, field: &str, value: &Spanned<i64>) -> Option<i64> {
        if *value.get_ref() > 0 {
            Some(*value.get_ref())
        } else {
            self.problem(field.into(), value.span(), "must be a positive number");
            None
        }
    }

    fn agreements(&mut self, raw: &[RawAgreement]) -> Vec<Agreement> {
        let mut partners = BTreeSet::new();
        let mut agreements = Vec::new();
        for (i, a) in raw.iter().enumerate() {
            let at = |field: &str| format!("agreement[{i}].{field}");
            let partner: Option<Jurisdiction> = self.parsed(at("partner"), &a.partner);
            if let Some(p) = &partner
                && !partners.insert(p.clone())
            {
                self.problem(
                    at("partner"),
                    a.partner.span(),
                    format!("a second agreement with {p}; merge them"),
                );
            }
            let instruments: Vec<Instrument> = a
                .instruments
                .iter()
                .enumerate()
                .filter_map(|(j, v)| self.parsed(at(&format!("instruments[{j}]")), v))
                .collect();
            let data_categories: Vec<DataCategory> = a
                .data_categories
                .iter()
                .enumerate()
                .filter_map(|(j, v)| self.parsed(at(&format!("data_categories[{j}]")), v))
                .collect();
            let expires = a.expires.as_ref().and_then(|e| self.date(at("expires"), e));
            if let Some(partner) = partner {
                agreements.push(Agreement {
                    partner,
                    instruments,
                    data_categories,
                    expires,
                });
            }
        }
        agreements
    }

    /// A date (the start of that day, UTC) or a timestamp.
    fn date(&mut self, field: String, value: &Spanned<toml::value::Datetime>) -> Option<Timestamp> {
        let text = value.get_ref().to_string();
        let text = if text.len() == 10 {
            format!("{text}T00:00:00Z")
        } else {
            text
        };
        match text.parse::<Timestamp>() {
            Ok(t) => Some(t),
            Err(err) => {
                self.problem(
                    field,
                    value.span(),
                    format!("{err}; write a date like 2027-12-31"),
                );
                None
            }
        }
    }

    fn minimisation(&mut self, raw: &RawMinimisation) -> Minimisation {
        Minimisation {
            max_window_days: raw
                .max_window_days
                .as_ref()
                .and_then(|v| self.positive("minimisation.max_window_days", v))
                .map(|v| v.min(i64::from(u32::MAX)) as u32),
            max_selectors: raw
                .max_selectors
                .as_ref()
                .and_then(|v| self.positive("minimisation.max_selectors", v))
                .map(|v| v as usize),
            content_requires_judicial_approval: raw.content_requires_judicial_approval,
        }
    }
}

/// Reads a policy file. On any problem, returns all of them with their field and line.
pub fn parse(source: &str) -> Result<Policy, Vec<PolicyProblem>> {
    let mut c = Checker {
        source,
        problems: Vec::new(),
    };
    let raw: RawPolicy = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            c.problem("(file)".into(), span, e.message().to_owned());
            return Err(c.problems);
        }
    };

    let agreements = c.agreements(&raw.agreements);
    let refused_offences = raw
        .refused_offences
        .iter()
        .enumerate()
        .filter_map(|(i, v)| c.offence(format!("refused_offences[{i}]"), v))
        .collect();
    let mut death_penalty = Vec::new();
    for (i, d) in raw.death_penalty.iter().enumerate() {
        let state = c.parsed(format!("death_penalty[{i}].state"), &d.state);
        let offences = d
            .offences
            .iter()
            .enumerate()
            .filter_map(|(j, v)| c.offence(format!("death_penalty[{i}].offences[{j}]"), v))
            .collect();
        if let Some(state) = state {
            death_penalty.push(DeathPenalty { state, offences });
        }
    }
    let dual_criminality = raw.dual_criminality.as_ref().map(|list| {
        list.iter()
            .enumerate()
            .filter_map(|(i, v)| c.offence(format!("dual_criminality[{i}]"), v))
            .collect()
    });
    let minimisation = c.minimisation(&raw.minimisation);
    let default_retention_days = raw
        .default_retention_days
        .as_ref()
        .and_then(|v| c.positive("default_retention_days", v))
        .map(|v| v.min(i64::from(u32::MAX)) as u32);
    let executing_retention_days = raw
        .executing_retention_days
        .as_ref()
        .and_then(|v| c.positive("executing_retention_days", v))
        .map(|v| v.min(i64::from(u32::MAX)) as u32);

    let mut languages = Vec::new();
    for (i, l) in raw.languages.iter().enumerate() {
        let code = l.get_ref();
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_lowercase()) {
            languages.push(code.clone());
        } else {
            c.problem(
                format!("languages[{i}]"),
                l.span(),
                format!("{code:?} is not an ISO 639-1 code: use two lower-case letters, such as de or en"),
            );
        }
    }

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Policy {
        agreements,
        refused_offences,
        death_penalty,
        dual_criminality,
        minimisation,
        default_retention_days,
        executing_retention_days,
        languages,
    })
}
