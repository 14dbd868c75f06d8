//! Every scenario shipped under `testnet/scenarios/`, in its shortened form, between real node
//! processes: each must pass its invariants. And a scenario that breaks one on purpose (a case
//! deleted from both its parties' stores behind their backs) must be reported, the case named.

use std::path::PathBuf;

use comity_testnet::scenario::{self, Scenario, ScenarioReport};

fn shipped(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
}

async fn run_short(name: &str) -> ScenarioReport {
    let plan = Scenario::load(&shipped(name), true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = scenario::run(&plan, true, dir.path(), &mut |_| {})
        .await
        .unwrap();
    assert!(
        report.violations.is_empty(),
        "{name}: {:#?}",
        report.violations
    );
    assert!(report.acknowledged > 0, "{name}: nothing was sent");
    report
}

/// Every case the workload acknowledged was taken through its whole lifecycle.
fn all_lifecycles_done(report: &ScenarioReport) {
    assert!(
        report.lifecycles_unfinished.is_empty(),
        "{}: {:#?}",
        report.name,
        report.lifecycles_unfinished
    );
    assert_eq!(report.lifecycles_completed, report.acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_link() {
    all_lifecycles_done(&run_short("lossy-link").await);
}

/// Real packets dropped by the kernel, each member in a namespace of its own (needs root).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_loss() {
    all_lifecycles_done(&run_short("packet-loss").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackout() {
    all_lifecycles_done(&run_short("blackout").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition() {
    all_lifecycles_done(&run_short("partition").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop() {
    all_lifecycles_done(&run_short("crash-loop").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full() {
    all_lifecycles_done(&run_short("disk-full").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew() {
    all_lifecycles_done(&run_short("clock-skew").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance() {
    let report = run_short("governance").await;
    // Only cases whose executing member was removed stay unfinished.
    for unfinished in &report.lifecycles_unfinished {
        assert!(
            unfinished.ends_with("the executing member was removed"),
            "{unfinished}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bloc_of_50() {
    all_lifecycles_done(&run_short("bloc-of-50").await);
}

#[test]
fn every_shipped_scenario_reads_in_both_forms() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        for short in [false, true] {
            Scenario::load(&path, short).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        }
        count += 1;
    }
    assert_eq!(
        count, 9,
        "a scenario was added or removed: add or remove its test"
    );
}

#[test]
fn a_short_form_that_names_no_step_is_refused() {
    let text = "name = \"x\"\nmembers = [\"FR\", \"DE\"]\n[[step]]\nname = \"load\"\ndo = \"workload\"\nrequests = 1\n[short.lod]\nrequests = 2\n";
    let err = Scenario::parse(text, true).unwrap_err().to_string();
    assert!(err.contains("\"lod\""), "{err}");
    assert!(Scenario::parse(text, false).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_deleted_behind_the_nodes_backs_is_reported_by_name() {
    let text = r#"
name = "sabotage"
members = ["FR", "DE"]
links = false
settle = "10s"

[[step]]
do = "workload"
requests = 3
pairs = ["FR>DE"]

[[step]]
do = "await-workloads"

[[step]]
do = "wait"
for = "2s"

[[step]]
do = "delete-case"
nth = 1
"#;
    let plan = Scenario::parse(text, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = scenario::run(&plan, false, dir.path(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.acknowledged, 3);
    let log = std::fs::read_to_string(dir.path().join("FR/node.log")).unwrap();
    assert!(!log.is_empty());
    // The case is named: by the continuous check (it was listed, then gone) and by the
    // final one (an acknowledged request its parties no longer hold).
    let named: Vec<&String> = report
        .violations
        .iter()
        .filter(|v| v.contains("lost case") || v.contains("is not held by"))
        .collect();
    assert!(
        named.len() >= 2,
        "the deleted case is not reported: {:#?}",
        report.violations
    );
    let case = named[0]
        .split_whitespace()
        .find(|w| w.len() > 20)
        .unwrap()
        .trim_end_matches(':');
    assert!(
        report
            .violations
            .iter()
            .filter(|v| v.contains(case))
            .count()
            >= 2,
        "{:#?}",
        report.violations
    );
}
