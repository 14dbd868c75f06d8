//! Every policy rule, table-driven, and the file checks.

use comity_protocol::examples::sample_request;
use comity_protocol::{
    Authority, DataCategory, Instrument, PolicyOutcome, Selector, TimeWindow, Timestamp,
};

use super::*;

const POLICY: &str = r#"
default_retention_days = 180
refused_offences = ["political"]
dual_criminality = ["fraud", "cybercrime"]

[[agreement]]
partner = "FR"
instruments = ["eu-epoc", "mlat-bilateral"]
data_categories = ["subscriber", "traffic", "content"]
expires = 2027-12-31

[[agreement]]
partner = "IT"
instruments = ["eu-epoc"]
data_categories = ["subscriber"]
expires = 2026-01-01T00:00:00Z

[[death_penalty]]
state = "FR"
offences = ["murder"]

[minimisation]
max_window_days = 365
max_selectors = 2
content_requires_judicial_approval = true
"#;

fn now() -> Timestamp {
    "2026-11-27T00:00:00Z".parse().unwrap()
}

fn fired(check: &PolicyCheck, rule: &str) -> Option<PolicyOutcome> {
    check
        .rules
        .iter()
        .find(|r| r.rule == rule)
        .map(|r| r.outcome)
}

#[test]
fn the_example_policy_parses() {
    let policy = parse(POLICY).unwrap();
    assert_eq!(policy.agreements.len(), 2);
    assert_eq!(policy.default_retention_days, Some(180));
    let shipped = include_str!("../../../docs/examples/policy.toml");
    parse(shipped).unwrap();
}

#[test]
fn every_rule_fires_as_the_table_says() {
    use PolicyOutcome::{Passed, Referred, Refused};
    let policy = parse(POLICY).unwrap();
    type Edit = fn(&mut comity_protocol::AssistanceRequest);
    let table: Vec<(&str, &str, Edit, &str, PolicyOutcome, PolicyOutcome)> = vec![
        // (case, from, change to the sample request, rule, its outcome, overall outcome)
        ("agreed request", "FR", |_| {}, "agreement", Passed, Passed),
        ("no agreement", "DE", |_| {}, "agreement", Refused, Refused),
        (
            "expired agreement",
            "IT",
            |_| {},
            "agreement.expired",
            Refused,
            Refused,
        ),
        (
            "instrument not agreed",
            "FR",
            |r| r.instrument = Instrument::EuEio,
            "agreement.instrument",
            Refused,
            Refused,
        ),
        (
            "category not agreed",
            "IT",
            |r| r.data_categories = vec![DataCategory::Traffic],
            "agreement.data",
            Refused,
            Refused,
        ),
        (
            "political offence",
            "FR",
            |r| r.offence.category = "political".into(),
            "refusal.offence",
            Refused,
            Refused,
        ),
        (
            "death penalty",
            "FR",
            |r| r.offence.category = "murder".into(),
            "refusal.death-penalty",
            Refused,
            Refused,
        ),
        (
            "unknown offence here",
            "FR",
            |r| r.offence.category = "gambling".into(),
            "dual-criminality",
            Referred,
            Referred,
        ),
        (
            "known offence",
            "FR",
            |_| {},
            "dual-criminality",
            Passed,
            Passed,
        ),
        (
            "window too long",
            "FR",
            |r| {
                r.time_window = Some(TimeWindow {
                    from: "2024-01-01T00:00:00Z".parse().unwrap(),
                    to: "2026-01-01T00:00:00Z".parse().unwrap(),
                })
            },
            "minimisation.window",
            Referred,
            Referred,
        ),
        (
            "window across the whole clock (its length overflows i64)",
            "FR",
            |r| {
                r.time_window = Some(TimeWindow {
                    from: Timestamp::from_millis(i64::MIN + 1),
                    to: Timestamp::from_millis(i64::MAX),
                })
            },
            "minimisation.window",
            Referred,
            Referred,
        ),
        (
            "too many selectors",
            "FR",
            |r| {
                r.selectors = vec![
                    Selector::Email("a@example.org".into()),
                    Selector::Email("b@example.org".into()),
                    Selector::Email("c@example.org".into()),
                ]
            },
            "minimisation.selectors",
            Referred,
            Referred,
        ),
        (
            "content without a judge",
            "FR",
            |r| {
                r.instrument = Instrument::MlatBilateral;
                r.data_categories = vec![DataCategory::Content];
            },
            "minimisation.content-judicial",
            Refused,
            Refused,
        ),
    ];
    for (case, from, edit, rule, outcome, overall) in table {
        let mut request = sample_request();
        edit(&mut request);
        let check = policy.check(&request, &from.parse().unwrap(), now());
        assert_eq!(fired(&check, rule), Some(outcome), "{case}: {check:?}");
        assert_eq!(check.outcome, overall, "{case}: {check:?}");
    }

    // Content with a validating authority passes the judicial rule.
    let mut request = sample_request();
    request.instrument = Instrument::MlatBilateral;
    request.data_categories = vec![DataCategory::Content];
    request.validating_authority = Some(Authority {
        name: "Juge des libertés".into(),
        role: "judge".into(),
        contact: "jld@example.fr".into(),
    });
    let check = policy.check(&request, &"FR".parse().unwrap(), now());
    assert_eq!(fired(&check, "minimisation.content-judicial"), None);
    assert_eq!(check.outcome, PolicyOutcome::Passed);
    assert!(check.event_rules().iter().all(|r| r.starts_with("passed ")));
    assert_eq!(policy.expired(now()).len(), 1);
}

#[test]
fn a_bad_file_reports_every_problem_with_its_field_and_line() {
    let bad = r#"refused_offences = ["Political Offences"]

[[agreement]]
partner = "XX"
instruments = ["eu-epocc"]
data_categories = ["subscriber", "dna"]
expires = 2027-12-31

[minimisation]
max_selectors = 0
"#;
    let problems = parse(bad).unwrap_err();
    let found: Vec<(&str, usize)> = problems
        .iter()
        .map(|p| (p.field.as_str(), p.line))
        .collect();
    assert_eq!(
        found,
        [
            ("agreement[0].partner", 4),
            ("agreement[0].instruments[0]", 5),
            ("agreement[0].data_categories[1]", 6),
            ("refused_offences[0]", 1),
            ("minimisation.max_selectors", 10),
        ],
        "{problems:?}"
    );

    let syntax =
        parse("[[agreement]]\npartner = \"FR\"\ninstruments = [\"eu-epoc\"\n").unwrap_err();
    assert_eq!(syntax.len(), 1);
    assert!(syntax[0].line >= 3, "{syntax:?}");

    let unknown = parse("dual_criminalty = [\"fraud\"]\n").unwrap_err();
    assert!(
        unknown[0].problem.contains("dual_criminalty"),
        "{unknown:?}"
    );
}

#[test]
fn the_language_rule_accepts_the_request_or_a_translation() {
    let mut policy = Policy {
        languages: vec!["de".into(), "en".into()],
        ..Policy::default()
    };
    let fr: comity_protocol::Jurisdiction = "FR".parse().unwrap();
    let rule = |policy: &Policy, request: &comity_protocol::AssistanceRequest| {
        policy
            .check(request, &fr, now())
            .rules
            .into_iter()
            .find(|r| r.rule == "language")
    };
    let mut request = sample_request(); // in French
    let referred = rule(&policy, &request).unwrap();
    assert_eq!(referred.outcome, PolicyOutcome::Referred);
    assert!(
        referred.explanation.contains("in fr only") && referred.explanation.contains("de, en"),
        "{referred:?}"
    );
    request.translations.push(comity_protocol::Translation {
        language: "en".into(),
        offence_description: "fraud".into(),
        necessity: "needed".into(),
        purpose: "investigation".into(),
    });
    assert_eq!(
        rule(&policy, &request).unwrap().outcome,
        PolicyOutcome::Passed
    );
    policy.languages.clear();
    assert!(
        rule(&policy, &request).is_none(),
        "no languages: not checked"
    );

    let problems = parse("languages = [\"de\", \"German\"]\n").unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "languages[1]");
    assert_eq!(
        parse("languages = [\"de\"]\n").unwrap().languages,
        vec!["de".to_owned()]
    );
}
