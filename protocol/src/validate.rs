//! Validation of an assistance request: every rule a request must meet before it is signed,
//! and again when it is received.
//!
//! Validation reports every problem at once, each with the path of the field it concerns and
//! what to do about it, so a person can fix a request in one pass. It never panics, whatever
//! a peer sent.

use crate::limits::{MAX_NAME, MAX_RETENTION_DAYS, MAX_SELECTORS, MAX_TEXT};
use crate::request::{
    AssistanceRequest, Authority, DataCategory, Instrument, RequestKind, Urgency,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldProblem {
    /// Path of the field, e.g. `selectors[2]`, `issuing_authority.contact`, `time_window.to`.
    pub field: String,
    /// What is wrong and, where it is not obvious, what to do.
    pub problem: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Every problem found in a request; never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{}", self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors(pub Vec<FieldProblem>);

impl ValidationErrors {
    /// The fields that have problems, in the order found.
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|p| p.field.as_str()).collect()
    }
}

/// Collects problems as the rules run.
#[derive(Default)]
struct Problems(Vec<FieldProblem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(FieldProblem {
            field: field.into(),
            problem: problem.into(),
        });
    }

    /// A required text: not blank, not longer than `max` bytes.
    fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.add(field, "must not be empty");
        } else if value.len() > max {
            self.add(
                field,
                format!("is {} bytes long, over the limit of {max}", value.len()),
            );
        }
    }

    fn authority(&mut self, field: &str, a: &Authority) {
        self.text(&format!("{field}.name"), &a.name, MAX_NAME);
        self.text(&format!("{field}.role"), &a.role, MAX_NAME);
        self.text(&format!("{field}.contact"), &a.contact, MAX_NAME);
    }
}

/// `fraud`, `child-sexual-abuse`: lower-case letters and digits in hyphen-separated words,
/// starting with a letter, 2 to 40 bytes.
fn is_category_code(s: &str) -> bool {
    (2..=40).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl AssistanceRequest {
    /// Checks every rule and returns all problems found, or `Ok(())`.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();

        if self.requesting.country() == self.executing.country() {
            p.add(
                "executing",
                format!(
                    "is in the same country as the requesting side ({}), but Comity carries cross-border requests only",
                    self.requesting.country()
                ),
            );
        }

        p.authority("issuing_authority", &self.issuing_authority);
        if let Some(v) = &self.validating_authority {
            p.authority("validating_authority", v);
        }

        if !is_category_code(&self.offence.category) {
            p.add(
                "offence.category",
                format!(
                    "{:?} is not a category code: use 2 to 40 lower-case letters, digits and hyphens, such as fraud or cybercrime",
                    self.offence.category
                ),
            );
        }
        p.text("offence.description", &self.offence.description, MAX_TEXT);

        if self.data_categories.is_empty() {
            p.add(
                "data_categories",
                "name at least one category of data sought",
            );
        }
        for (i, c) in self.data_categories.iter().enumerate() {
            if let Some(first) = self.data_categories[..i].iter().position(|d| d == c) {
                p.add(
                    format!("data_categories[{i}]"),
                    format!("{c} is already listed at data_categories[{first}]"),
                );
            }
        }

        self.check_selectors(&mut p);

        if let Some(w) = &self.time_window
            && w.from >= w.to
        {
            p.add(
                "time_window.to",
                format!(
                    "must be after time_window.from ({} is not after {})",
                    w.to, w.from
                ),
            );
        }

        p.text("necessity", &self.necessity, MAX_TEXT);
        p.text("purpose", &self.purpose, MAX_TEXT);

        if !(1..=MAX_RETENTION_DAYS).contains(&self.retention_days) {
            p.add(
                "retention_days",
                format!(
                    "must be between 1 and {MAX_RETENTION_DAYS} days, not {}",
                    self.retention_days
                ),
            );
        }

        let is_code = |l: &str| l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase());
        if !is_code(&self.language) {
            p.add(
                "language",
                format!(
                    "{:?} is not an ISO 639-1 code: use two lower-case letters, such as fr or de",
                    self.language
                ),
            );
        }
        if self.translations.len() > crate::request::MAX_TRANSLATIONS {
            p.add(
                "translations",
                format!(
                    "{} translations, more than the {} a request may carry",
                    self.translations.len(),
                    crate::request::MAX_TRANSLATIONS
                ),
            );
        }
        let mut seen = vec![self.language.as_str()];
        for (i, t) in self.translations.iter().enumerate() {
            let field = |name: &str| format!("translations[{i}].{name}");
            if !is_code(&t.language) {
                p.add(
                    field("language"),
                    format!(
                        "{:?} is not an ISO 639-1 code: use two lower-case letters",
                        t.language
                    ),
                );
            } else if seen.contains(&t.language.as_str()) {
                p.add(
                    field("language"),
                    format!(
                        "the request is already in {}: one translation per language, none into the request's own",
                        t.language
                    ),
                );
            }
            seen.push(&t.language);
            p.text(
                &field("offence_description"),
                &t.offence_description,
                MAX_TEXT,
            );
            p.text(&field("necessity"), &t.necessity, MAX_TEXT);
            p.text(&field("purpose"), &t.purpose, MAX_TEXT);
        }

        match (&self.confidentiality.delay_user_notification, &self.confidentiality.reason) {
            (true, None) => p.add(
                "confidentiality.reason",
                "give the reason for delaying user notification: the law allows a delay only for a stated reason",
            ),
            (_, Some(reason)) => p.text("confidentiality.reason", reason, MAX_TEXT),
            (false, None) => {}
        }

        self.check_instrument(&mut p);

        if p.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(p.0))
        }
    }

    fn check_selectors(&self, p: &mut Problems) {
        if self.selectors.is_empty() {
            p.add(
                "selectors",
                "name at least one selector: who or what the request is about",
            );
        }
        if self.selectors.len() > MAX_SELECTORS {
            p.add(
                "selectors",
                format!("{} selectors is more than the limit of {MAX_SELECTORS}: split the request or narrow it", self.selectors.len()),
            );
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, s) in self.selectors.iter().enumerate() {
            let field = format!("selectors[{i}]");
            if let Err(e) = s.check() {
                p.add(&field, e.to_string());
                continue;
            }
            if let Some(first) = seen.insert(s.identity_key(), i) {
                // Keep pointing at the first occurrence for later duplicates too.
                seen.insert(s.identity_key(), first);
                p.add(
                    field,
                    format!("{s} is already listed at selectors[{first}]"),
                );
            }
        }
    }

    /// Rules that tie the instrument to the kind, urgency, categories and authorities.
    fn check_instrument(&self, p: &mut Problems) {
        let instrument = self.instrument;
        if self.kind == RequestKind::Preservation && !instrument.allows_preservation() {
            p.add(
                "instrument",
                format!("{instrument} does not provide for preservation: use budapest-art29, eu-epoc-pr or mlat-bilateral"),
            );
        }
        if self.kind != RequestKind::Preservation
            && matches!(instrument, Instrument::EuEpocPr | Instrument::BudapestArt29)
        {
            p.add(
                "kind",
                format!("{instrument} is a preservation instrument: set kind to preservation, or choose a disclosure instrument such as eu-epoc"),
            );
        }
        if self.kind == RequestKind::EmergencyDisclosure && self.urgency != Urgency::Emergency {
            p.add(
                "urgency",
                format!(
                    "an emergency-disclosure request must have urgency emergency, not {}",
                    self.urgency
                ),
            );
        }

        let sensitive = self.data_categories.iter().any(DataCategory::is_sensitive);
        let needs_validation = match instrument {
            Instrument::UsCloudExec => Some(
                "us-cloud-exec orders must be reviewed by a court, judge or other independent authority",
            ),
            Instrument::EuEpoc if sensitive => {
                Some("an eu-epoc for traffic or content data must be validated by a judge or court")
            }
            _ => None,
        };
        if let (Some(why), None) = (needs_validation, &self.validating_authority) {
            p.add(
                "validating_authority",
                format!("{why}: add the validating authority"),
            );
        }

        if instrument == Instrument::EuEpoc && sensitive {
            let enough = self.offence.max_penalty_months.is_some_and(|m| m >= 36);
            if !enough {
                p.add(
                    "offence.max_penalty_months",
                    "eu-epoc allows traffic or content data only for offences punishable by at least 3 years (36 months): give the maximum penalty, or request only subscriber or user-identifying data",
                );
            }
        }
    }
}
