//! Policy as data on arrival: every incoming request is checked against the executing node's
//! policy, and the outcome with the rules that fired is a signed event the requester sees at
//! once, with the receipt.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const DE_POLICY: &str = r#"
refused_offences = ["political"]
languages = ["de", "fr"]
dual_criminality = ["fraud", "cybercrime"]

[[agreement]]
partner = "FR"
instruments = ["eu-epoc"]
data_categories = ["subscriber", "traffic"]
expires = 2099-12-31
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_requests_are_checked_and_the_requester_sees_why() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    std::fs::write(bloc.node("DE").dir.join("policy.toml"), DE_POLICY).unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();

    // Before sending, a draft is pre-checked against DE's signed, published policy.
    let draft = |from: &str| {
        let client = bloc.client(from);
        let request = request(from, "DE");
        async move {
            client
                .create_request(&comity_node::admin::api::NewRequest { request })
                .await
                .unwrap()
                .summary
                .case_id
        }
    };
    let fr_draft = draft("FR").await;
    let it_draft = draft("IT").await;
    let fr_pre = bloc
        .client("FR")
        .precheck(fr_draft)
        .await
        .unwrap()
        .expect("DE publishes its policy");
    assert_eq!(fr_pre.issuer, j("DE"));
    assert_eq!(fr_pre.check.outcome, comity_protocol::PolicyOutcome::Passed);

    // DE reads German and French: a draft in Spanish is flagged before it is sent, with what
    // to do; with a signed translation into German it passes.
    let precheck_in = |translations: Vec<comity_protocol::Translation>| {
        let client = bloc.client("FR");
        let mut request = request("FR", "DE");
        request.language = "es".into();
        request.translations = translations;
        async move {
            let id = client
                .create_request(&comity_node::admin::api::NewRequest { request })
                .await
                .unwrap()
                .summary
                .case_id;
            client.precheck(id).await.unwrap().unwrap().check
        }
    };
    let spanish = precheck_in(Vec::new()).await;
    assert_eq!(spanish.outcome, comity_protocol::PolicyOutcome::Referred);
    let rule = spanish.rules.iter().find(|r| r.rule == "language").unwrap();
    assert!(rule.explanation.contains("add a translation"), "{rule:?}");
    let translated = precheck_in(vec![comity_protocol::Translation {
        language: "de".into(),
        offence_description: "Betrug mit gestohlenen Kontodaten".into(),
        necessity: "Die Bestandsdaten sind zur Identifizierung erforderlich.".into(),
        purpose: "Strafverfahren wegen Betrugs".into(),
    }])
    .await;
    assert_eq!(
        translated.outcome,
        comity_protocol::PolicyOutcome::Passed,
        "{translated:?}"
    );
    let it_pre = bloc.client("IT").precheck(it_draft).await.unwrap().unwrap();
    assert_eq!(
        it_pre.check.outcome,
        comity_protocol::PolicyOutcome::Refused
    );
    assert!(
        it_pre
            .check
            .event_rules()
            .iter()
            .any(|r| r.contains("no agreement with IT"))
    );
    // A member without a policy publishes none.
    let to_fr = bloc
        .client("DE")
        .create_request(&comity_node::admin::api::NewRequest {
            request: request("DE", "FR"),
        })
        .await
        .unwrap();
    assert_eq!(
        bloc.client("DE")
            .precheck(to_fr.summary.case_id)
            .await
            .unwrap(),
        None
    );

    // FR has an agreement: passed, and the case is under review at once on both sides.
    let from_fr = send(&bloc, "FR", "DE", Some(20_000)).await;
    assert_eq!(from_fr.summary.state, "under-review");
    let log = bloc
        .client("FR")
        .log(from_fr.summary.case_id)
        .await
        .unwrap();
    let kinds: Vec<&str> = log.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "received", "policy-checked"]);

    // IT has none: refused by the rules (a reviewer still decides), and IT is told why.
    let from_it = send(&bloc, "IT", "DE", Some(20_000)).await;
    assert_eq!(from_it.summary.state, "under-review");
    let out = Command::new(comity_testnet::comity_binary().unwrap())
        .args([
            "policy",
            "explain",
            &from_it.summary.case_id.to_string(),
            "--purpose",
            "why refused",
            "-c",
        ])
        .arg(&bloc.node("IT").config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let explained = String::from_utf8_lossy(&out.stdout);
    assert!(explained.contains("checked by DE: refused"), "{explained}");
    assert!(explained.contains("no agreement with IT"), "{explained}");
    let out = Command::new(comity_testnet::comity_binary().unwrap())
        .args([
            "policy",
            "explain",
            &from_fr.summary.case_id.to_string(),
            "--purpose",
            "audit",
            "-c",
        ])
        .arg(&bloc.node("FR").config)
        .output()
        .unwrap();
    let explained = String::from_utf8_lossy(&out.stdout);
    assert!(explained.contains("checked by DE: passed"), "{explained}");
    assert!(
        explained.contains("dual-criminality: fraud is an offence here too"),
        "{explained}"
    );
    bloc.wait_converged(Duration::from_secs(20)).await.unwrap();
}

/// A policy refusal binds between real nodes: an expired agreement's request cannot be
/// accepted by one officer; an override asked by one and approved by another lets it through,
/// signed into both logs and counted in the transparency report. A pending case whose
/// agreement expires mid-way is flagged by the monitor, and its fulfilment is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_binds_until_a_four_eyes_override_and_expiry_mid_case_blocks() {
    use comity_node::admin::api::{Action, ClientError};
    use comity_protocol::Decision;

    let dir = tempfile::tempdir().unwrap();
    let mut bloc = comity_testnet::Bloc::create_with(
        dir.path(),
        &[j("FR"), j("DE"), j("IT")],
        "testnet",
        |c| {
            c.safeguards.retention_sweep_secs = 1;
        },
    )
    .await
    .unwrap();
    // FR's agreement ended long ago (the sunset clause); IT's ends in two days.
    let in_two_days = comity_protocol::Timestamp::from_millis(
        comity_protocol::Timestamp::now().as_millis() + 2 * 86_400_000,
    );
    let policy = format!(
        r#"
[[agreement]]
partner = "FR"
instruments = ["eu-epoc"]
data_categories = ["subscriber", "traffic"]
expires = 2020-01-01

[[agreement]]
partner = "IT"
instruments = ["eu-epoc"]
data_categories = ["subscriber", "traffic"]
expires = {in_two_days}
"#
    );
    std::fs::write(bloc.node("DE").dir.join("policy.toml"), policy).unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (fr, de, approver) = (bloc.client("FR"), bloc.client("DE"), bloc.approver("DE"));
    let status = de.status().await.unwrap();
    assert_eq!(status.policy_mode, "policy");
    assert_eq!(status.expired_agreements, vec![j("FR")]);
    assert_eq!(
        bloc.client("FR").status().await.unwrap().policy_mode,
        "manual-review",
        "FR runs without a policy, as its config says"
    );

    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    let case = wait_case(&de, id, "DE checked it", |c| c.summary.policy.is_some()).await;
    assert_eq!(case.summary.policy.as_deref(), Some("refused"));
    assert!(case.summary.policy_blocked);
    let accept = Action::Decide {
        decision: Decision::Accept,
    };
    let conflict = |r: Result<_, ClientError>, needle: &str| match r {
        Err(ClientError::Api { status: 409, error }) => {
            assert!(error.reason.contains(needle), "{}", error.reason)
        }
        other => panic!("expected a 409 saying {needle:?}, got {other:?}"),
    };
    conflict(de.act(id, &accept).await, "override");

    // One officer asks, with a reason; the same officer cannot approve; another does.
    let asked = de
        .request_override(id, "renewal of the treaty signed, in force next month")
        .await
        .unwrap();
    let pending = asked.override_request.unwrap();
    assert_eq!(pending.requested_by, "admin");
    conflict(de.approve_override(id).await, "four-eyes");
    conflict(de.act(id, &accept).await, "override");
    approver.approve_override(id).await.unwrap();
    de.act(id, &accept).await.unwrap();
    wait_for_state(&fr, id, "accepted", Duration::from_secs(20)).await;
    bloc.wait_converged(Duration::from_secs(30)).await.unwrap();
    let log = fr.log(id).await.unwrap();
    let kinds: Vec<&str> = log.entries.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.ends_with(&["policy-overridden", "decided"]),
        "FR's replica holds the override: {kinds:?}"
    );
    assert_eq!(log.envelopes, de.log(id).await.unwrap().envelopes);
    let report = de.transparency(None).await.unwrap();
    assert_eq!((report.overrides, report.overridden_cases), (1, 1));

    // IT's request arrives under its agreement and is accepted; the agreement then ends.
    let it = send(&bloc, "IT", "DE", Some(20_000)).await.summary.case_id;
    let case = wait_case(&de, it, "DE checked it", |c| c.summary.policy.is_some()).await;
    assert_eq!(case.summary.policy.as_deref(), Some("passed"));
    de.act(it, &accept).await.unwrap();
    de.advance_clock(3 * 86_400).await.unwrap();
    let flagged = wait_case(&de, it, "the monitor flags it", |c| {
        c.summary.policy_blocked
    })
    .await;
    assert_eq!(flagged.summary.state, "accepted");
    conflict(
        de.act(
            it,
            &Action::Fulfil {
                note: String::new(),
            },
        )
        .await,
        "to fulfil it anyway",
    );
    let it_client = bloc.client("IT");
    let seen = wait_case(&it_client, it, "IT sees the new check", |c| {
        c.summary.policy.as_deref() == Some("refused")
    })
    .await;
    assert_eq!(seen.summary.state, "accepted");
}

/// Each change of the policy is kept: the file as it was, and what changed rule by rule, in
/// the audit log, `comity policy history` and `comity policy diff`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_are_kept_with_their_rules_and_a_readable_diff() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    let path = bloc.node("DE").dir.join("policy.toml");
    std::fs::write(&path, DE_POLICY).unwrap();
    bloc.start("DE").unwrap();
    bloc.wait_up("DE", Duration::from_secs(30)).await.unwrap();
    bloc.stop("DE").unwrap();
    // The sunset clause moves, and a partner's agreement ends.
    let edited = DE_POLICY.replace("expires = 2099-12-31", "expires = 2027-06-30");
    let edited = format!(
        "{edited}\n[[agreement]]\npartner = \"IT\"\ninstruments = [\"eu-epoc\"]\ndata_categories = [\"subscriber\"]\n"
    );
    std::fs::write(&path, &edited).unwrap();
    bloc.start("DE").unwrap();
    bloc.wait_up("DE", Duration::from_secs(30)).await.unwrap();

    let history = bloc.client("DE").policy_history().await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[1].changes,
        [
            "~ agreement with FR: expires 2099-12-31T00:00:00.000Z → 2027-06-30T00:00:00.000Z",
            "+ agreement with IT: eu-epoc for subscriber data, expires never",
        ]
    );
    let config = bloc.node("DE").config.clone();
    let shown = ok(comity(&config, &["policy", "history"]));
    assert!(shown.contains("+ agreement with IT"), "{shown}");
    let diff = ok(comity(&config, &["policy", "diff"]));
    assert!(diff.contains("-expires = 2099-12-31"), "{diff}");
    assert!(diff.contains("+expires = 2027-06-30"), "{diff}");
    assert!(diff.contains("+partner = \"IT\""), "{diff}");
    assert!(diff.contains("rules that changed:"), "{diff}");
}
