//! Transparency reports from a testnet workload match the workload's counts exactly.

mod common;

use std::process::Command;
use std::time::Duration;

use comity_node::admin::api::{Action, AdminClient};
use comity_node::admin::officers::Role;
use comity_protocol::{DataCategory, Decision};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_counts_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let members = [j("FR"), j("DE"), j("IT")];
    let mut bloc = comity_testnet::Bloc::create_with(dir.path(), &members, "testnet", |c| {
        c.audit.report_secs = 1;
    })
    .await
    .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    // The workload must fall in one calendar month: if one ends within the next two minutes,
    // start after it has.
    let month = |t: comity_protocol::Timestamp| t.to_string()[..7].to_owned();
    let now = comity_protocol::Timestamp::now();
    let soon = comity_protocol::Timestamp::from_millis(now.as_millis() + 120_000);
    if month(now) != month(soon) {
        while month(comity_protocol::Timestamp::now()) == month(now) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // FR sends three requests to DE and one (traffic data too) to IT; DE accepts two and
    // refuses one; FR withdraws nothing; IT decides nothing.
    let mut to_de = Vec::new();
    for _ in 0..3 {
        to_de.push(send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id);
    }
    let mut traffic = request("FR", "IT");
    traffic.instrument = comity_protocol::Instrument::MlatBilateral;
    traffic.data_categories = vec![DataCategory::Subscriber, DataCategory::Traffic];
    comity_testnet::send_request(
        &fr,
        &bloc.approver("FR"),
        traffic,
        Some(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    for id in &to_de[..2] {
        de.act(
            *id,
            &Action::Decide {
                decision: Decision::Accept,
            },
        )
        .await
        .unwrap();
    }
    de.act(
        to_de[2],
        &Action::Decide {
            decision: Decision::Refuse {
                reasons: vec!["not proportionate".into()],
            },
        },
    )
    .await
    .unwrap();
    bloc.wait_converged(Duration::from_secs(20)).await.unwrap();

    let url = bloc.node("FR").admin_url();
    let auditor = AdminClient::new(
        &url,
        bloc.appoint("FR", "auditor", Role::Auditor)
            .await
            .unwrap()
            .token,
    );
    // The month the workload was submitted in, from the cases themselves (not from the clock
    // now, which may have moved to the next month).
    let mut months = std::collections::BTreeSet::new();
    for case in fr.cases().await.unwrap() {
        let log = fr.log(case.case_id).await.unwrap();
        months.insert(month(log.entries[0].at));
    }
    assert_eq!(months.len(), 1, "the workload spans {months:?}");
    let period = months.pop_first().unwrap();
    let report = auditor.transparency(Some(&period)).await.unwrap();
    assert_eq!((report.requests.sent, report.requests.received), (4, 0));
    assert_eq!(report.by_partner["DE"].sent, 3);
    assert_eq!(report.by_partner["IT"].sent, 1);
    assert_eq!(report.by_instrument["eu-epoc"].sent, 3);
    assert_eq!(report.by_instrument["mlat-bilateral"].sent, 1);
    assert_eq!(report.by_data_category["subscriber"].sent, 4);
    assert_eq!(report.by_data_category["traffic"].sent, 1);
    assert_eq!(report.by_outcome["accepted"].sent, 2);
    assert_eq!(report.by_outcome["refused"].sent, 1);
    assert_eq!(report.by_outcome["pending"].sent, 1);
    assert!(report.decision_minutes_median.is_some());
    assert_eq!((report.overdue, report.purges), (0, 0));

    // DE sees the same three from its side; a period before the workload counts nothing.
    let de_auditor = AdminClient::new(
        bloc.node("DE").admin_url(),
        bloc.appoint("DE", "auditor", Role::Auditor)
            .await
            .unwrap()
            .token,
    );
    let at_de = de_auditor.transparency(Some(&period)).await.unwrap();
    assert_eq!((at_de.requests.sent, at_de.requests.received), (0, 3));
    assert_eq!(at_de.by_outcome["accepted"].received, 2);
    assert_eq!(
        auditor
            .transparency(Some("2020-Q1"))
            .await
            .unwrap()
            .requests
            .sent,
        0
    );

    // The CLI's formats carry the same numbers.
    let token = bloc
        .appoint("FR", "auditor-cli", Role::Auditor)
        .await
        .unwrap()
        .token;
    for (format, needle) in [
        ("csv", "partner,DE,3,0"),
        ("html", "<td>DE</td><td>3</td>"),
        ("table", "DE"),
    ] {
        let out = Command::new(comity_testnet::comity_binary().unwrap())
            .args([
                "report",
                "transparency",
                "--period",
                &period,
                "--format",
                format,
                "--token",
                &token,
                "-c",
            ])
            .arg(&bloc.node("FR").config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(needle), "{format}: {text}");
    }

    // Every member publishes its signed report for the period; FR keeps all three, and DE's
    // as FR holds it is DE's own count.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let published = loop {
        let reports = auditor.bloc_reports(&period).await.unwrap();
        // Each member publishes on its own timer: wait until every one has published since
        // the workload, not just the first.
        let complete = reports.len() == 3
            && reports
                .iter()
                .any(|r| r.jurisdiction == "DE" && r.requests.received == 3)
            && reports
                .iter()
                .any(|r| r.jurisdiction == "IT" && r.requests.received == 1)
            && reports
                .iter()
                .any(|r| r.jurisdiction == "FR" && r.requests.sent == 4);
        if complete || std::time::Instant::now() > deadline {
            break reports;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let by_member: std::collections::BTreeMap<_, _> = published
        .iter()
        .map(|r| (r.jurisdiction.clone(), r))
        .collect();
    assert_eq!(
        by_member.keys().cloned().collect::<Vec<_>>(),
        ["DE", "FR", "IT"]
    );
    assert_eq!(by_member["DE"].by_outcome["accepted"].received, 2);
    assert_eq!(by_member["FR"].requests.sent, 4);
    assert_eq!(by_member["IT"].requests.received, 1);
    match auditor.bloc_reports("next year").await {
        Err(comity_node::admin::api::ClientError::Api { status: 400, error }) => {
            assert_eq!(error.error, "period", "{error:?}")
        }
        other => panic!("a period that is not one must be refused with a 400, got {other:?}"),
    }
}
