//! Policy as data on arrival: every incoming request is checked against the executing node's
//! policy, and the outcome with the rules that fired is a signed event the requester sees at
//! once, with the receipt.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const DE_POLICY: &str = r#"
refused_offences = ["political"]
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
