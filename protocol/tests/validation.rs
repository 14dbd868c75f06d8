//! Table-driven tests of request validation: each rule reports its own field, and every
//! problem is reported at once.

use comity_protocol::examples::sample_request;
use comity_protocol::limits::{MAX_NAME, MAX_SELECTORS, MAX_TEXT};
use comity_protocol::{
    AssistanceRequest, Authority, DataCategory, FieldProblem, Instrument, RequestKind, Selector,
    TimeWindow, Timestamp, Urgency, ValidationErrors,
};

fn translation(language: &str) -> comity_protocol::Translation {
    comity_protocol::Translation {
        language: language.into(),
        offence_description: "fraud".into(),
        necessity: "needed".into(),
        purpose: "the investigation".into(),
    }
}

fn authority() -> Authority {
    Authority {
        name: "Juge Dupont".into(),
        role: "investigating judge".into(),
        contact: "dupont@justice.example.fr".into(),
    }
}

#[test]
fn sample_request_is_valid() {
    assert_eq!(sample_request().validate(), Ok(()));
}

/// Each row breaks one rule and names the one field that must be reported.
#[test]
fn each_rule_reports_its_field() {
    type Edit = fn(&mut AssistanceRequest);
    let table: &[(&str, Edit, &str)] = &[
        (
            "same country",
            |r| r.executing = "FR-PNF".parse().unwrap(),
            "executing",
        ),
        (
            "translation into the request's own language",
            |r| r.translations = vec![translation("fr")],
            "translations[0].language",
        ),
        (
            "two translations into one language",
            |r| r.translations = vec![translation("de"), translation("de")],
            "translations[1].language",
        ),
        (
            "translation language not a code",
            |r| r.translations = vec![translation("DE")],
            "translations[0].language",
        ),
        (
            "translation without a necessity",
            |r| {
                r.translations = vec![comity_protocol::Translation {
                    necessity: " ".into(),
                    ..translation("de")
                }]
            },
            "translations[0].necessity",
        ),
        (
            "too many translations",
            |r| {
                r.translations = ["de", "en", "it", "es", "nl", "pl", "pt", "sv", "fi"]
                    .iter()
                    .map(|l| translation(l))
                    .collect()
            },
            "translations",
        ),
        (
            "empty name",
            |r| r.issuing_authority.name = " ".into(),
            "issuing_authority.name",
        ),
        (
            "long contact",
            |r| r.issuing_authority.contact = "x".repeat(MAX_NAME + 1),
            "issuing_authority.contact",
        ),
        (
            "bad validator",
            |r| {
                r.validating_authority = Some(Authority {
                    role: String::new(),
                    ..authority()
                })
            },
            "validating_authority.role",
        ),
        (
            "category case",
            |r| r.offence.category = "Fraud".into(),
            "offence.category",
        ),
        (
            "category hyphen",
            |r| r.offence.category = "fraud-".into(),
            "offence.category",
        ),
        (
            "category short",
            |r| r.offence.category = "f".into(),
            "offence.category",
        ),
        (
            "no description",
            |r| r.offence.description = String::new(),
            "offence.description",
        ),
        (
            "no categories",
            |r| r.data_categories.clear(),
            "data_categories",
        ),
        (
            "dup category",
            |r| r.data_categories.push(DataCategory::Subscriber),
            "data_categories[1]",
        ),
        ("no selectors", |r| r.selectors.clear(), "selectors"),
        (
            "bad selector",
            |r| r.selectors.push(Selector::Phone("0612".into())),
            "selectors[1]",
        ),
        (
            "dup selector",
            |r| {
                r.selectors
                    .push(Selector::Email("alice@EXAMPLE.org".into()))
            },
            "selectors[1]",
        ),
        (
            "window",
            |r| {
                r.time_window = Some(TimeWindow {
                    from: Timestamp::from_millis(5),
                    to: Timestamp::from_millis(5),
                })
            },
            "time_window.to",
        ),
        ("no necessity", |r| r.necessity = String::new(), "necessity"),
        (
            "long necessity",
            |r| r.necessity = "x".repeat(MAX_TEXT + 1),
            "necessity",
        ),
        ("no purpose", |r| r.purpose = "\n".into(), "purpose"),
        ("retention 0", |r| r.retention_days = 0, "retention_days"),
        (
            "retention long",
            |r| r.retention_days = 3651,
            "retention_days",
        ),
        ("language", |r| r.language = "FR".into(), "language"),
        ("language 3", |r| r.language = "fra".into(), "language"),
        (
            "no reason",
            |r| {
                r.confidentiality.delay_user_notification = true;
                r.confidentiality.reason = None
            },
            "confidentiality.reason",
        ),
        (
            "preservation",
            |r| r.kind = RequestKind::Preservation,
            "instrument",
        ),
        (
            "epoc-pr disclosure",
            |r| r.instrument = Instrument::EuEpocPr,
            "kind",
        ),
        (
            "art29 disclosure",
            |r| r.instrument = Instrument::BudapestArt29,
            "kind",
        ),
        (
            "emergency",
            |r| r.kind = RequestKind::EmergencyDisclosure,
            "urgency",
        ),
        (
            "cloud act",
            |r| r.instrument = Instrument::UsCloudExec,
            "validating_authority",
        ),
    ];
    for (name, edit, field) in table {
        let mut r = sample_request();
        edit(&mut r);
        let errors = r.validate().expect_err(name);
        assert_eq!(errors.fields(), vec![*field], "{name}: {errors}");
    }
}

#[test]
fn eu_epoc_traffic_needs_validation_and_a_serious_offence() {
    let mut r = sample_request();
    r.data_categories.push(DataCategory::Traffic);
    r.offence.max_penalty_months = Some(24);
    let errors = r.validate().unwrap_err();
    assert_eq!(
        errors.fields(),
        vec!["validating_authority", "offence.max_penalty_months"]
    );
    assert!(errors.to_string().contains("at least 3 years"));

    r.validating_authority = Some(authority());
    r.offence.max_penalty_months = Some(36);
    assert_eq!(r.validate(), Ok(()));
}

#[test]
fn coherent_variants_pass() {
    let mut r = sample_request();
    r.kind = RequestKind::Preservation;
    r.instrument = Instrument::EuEpocPr;
    assert_eq!(r.validate(), Ok(()));
    r.instrument = Instrument::MlatBilateral;
    assert_eq!(r.validate(), Ok(()));

    let mut r = sample_request();
    r.kind = RequestKind::EmergencyDisclosure;
    r.urgency = Urgency::Emergency;
    assert_eq!(r.validate(), Ok(()));

    let mut r = sample_request();
    r.confidentiality.delay_user_notification = true;
    r.confidentiality.reason = Some("notification would alert the suspect".into());
    assert_eq!(r.validate(), Ok(()));
}

#[test]
fn reports_every_problem_at_once() {
    let mut r = sample_request();
    r.executing = r.requesting.clone();
    r.issuing_authority.contact = String::new();
    r.selectors = vec![
        Selector::Email("bob@example.org".into()),
        Selector::Domain("example.org".into()),
        Selector::Email("not-an-address".into()),
        Selector::Email("bob@example.org".into()),
    ];
    r.time_window = Some(TimeWindow {
        from: Timestamp::from_millis(2_000),
        to: Timestamp::from_millis(1_000),
    });
    r.retention_days = 0;
    r.language = "french".into();
    let errors = r.validate().unwrap_err();
    assert_eq!(
        errors.fields(),
        vec![
            "executing",
            "issuing_authority.contact",
            "selectors[2]",
            "selectors[3]",
            "time_window.to",
            "retention_days",
            "language",
        ]
    );
    let text = errors.to_string();
    assert!(
        text.contains("selectors[3]: email:bob@example.org is already listed at selectors[0]"),
        "{text}"
    );
    assert_eq!(text.matches("; ").count(), errors.0.len() - 1, "{text}");
}

#[test]
fn too_many_selectors() {
    let mut r = sample_request();
    r.selectors = (0..=MAX_SELECTORS)
        .map(|i| Selector::Email(format!("user{i}@example.org")))
        .collect();
    assert_eq!(r.validate().unwrap_err().fields(), vec!["selectors"]);
}

#[test]
fn errors_serialize_for_the_admin_api() {
    let errors = ValidationErrors(vec![FieldProblem {
        field: "language".into(),
        problem: "bad".into(),
    }]);
    let json = serde_json::to_value(&errors).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"field": "language", "problem": "bad"}])
    );
    assert_eq!(
        serde_json::from_value::<ValidationErrors>(json).unwrap(),
        errors
    );
}
