//! What an operator's tools see of a running node, between real processes: `config check`
//! reads what `run` would and reports problems with their line; `/health` and
//! `/ready` answer without a token, in status words only, and `/ready` turns unready when every
//! member is cut off; a node's log written to a file carries no colour codes; the CLI ends
//! `request send --wait` fails when nothing was delivered in time; the CLI ends
//! quietly when its reader goes away (`comity status | head -1`), and names the URL it tried
//! when the node is down; a node given another's peer-to-peer port refuses to start.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_without_a_token_and_follow_the_links() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let fr = bloc.node("FR").admin_url();

    // `config check` beside the running node: what `run` would read, checked without starting.
    let config = bloc.node("FR").config.clone();
    let checked = ok(comity(&config, &["config", "check"]));
    assert!(
        checked.contains("ready to run") && checked.contains("MiB free"),
        "{checked}"
    );
    let broken = config.with_file_name("broken.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &broken,
        text.replacen("[node]", "[node]\nlisten_everywhere = 1", 1),
    )
    .unwrap();
    let out = comity(&broken, &["config", "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("listen_everywhere") && stderr.contains("line"),
        "{stderr}"
    );

    assert_eq!(get(&format!("{fr}/health")).await, (200, "alive\n".into()));
    assert_eq!(get(&format!("{fr}/ready")).await, (200, "ready\n".into()));

    // FR cut off from every member: unready, saying why in words, and ready again after.
    bloc.partition("FR", "DE", true).await.unwrap();
    bloc.partition("FR", "IT", true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let unready = loop {
        let answer = get(&format!("{fr}/ready")).await;
        if answer.0 != 200 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(unready, (503, "unready: no-member-connected\n".into()));
    // Meanwhile `request send --wait` cannot deliver: it says so and exits non-zero.
    let draft = bloc
        .client("FR")
        .create_request(&comity_node::admin::api::NewRequest {
            request: request("FR", "DE"),
        })
        .await
        .unwrap();
    let id = draft.summary.case_id.to_string();
    bloc.approver("FR")
        .approve(draft.summary.case_id)
        .await
        .unwrap();
    let out = comity(
        &bloc.node("FR").config,
        &["request", "send", &id, "--wait", "1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit 0 without delivery");
    assert!(stderr.contains("not delivered within 1 s"), "{stderr}");
    bloc.partition("FR", "DE", false).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{fr}/ready")).await.0 != 200 {
        assert!(Instant::now() < deadline, "FR never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The API itself still wants a token; its description does not, and is the one checked in.
    assert_eq!(get(&format!("{fr}/v1/status")).await.0, 401);
    let (status, served) = get(&format!("{fr}/v1/openapi.json")).await;
    assert_eq!(status, 200);
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .unwrap();
    assert!(served == checked_in, "the node serves another description");

    // The log, written to a file, is plain text.
    let log = bloc.log("FR");
    assert!(!log.is_empty());
    assert!(!log.contains('\u{1b}'), "escape codes in node.log");

    // `comity status | head -1`: the reader is gone before the CLI writes.
    let mut child = std::process::Command::new(comity_testnet::comity_binary().unwrap())
        .args(["status", "-c"])
        .arg(&bloc.node("FR").config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success() || status.signal() == Some(13),
        "{status:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A node that is down: the error names the URL the CLI tried.
    bloc.stop("FR").unwrap();
    let out = comity(&bloc.node("FR").config, &["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("/v1/status") && stderr.contains("is `comity run` running?"),
        "{stderr}"
    );

    // A node given the peer-to-peer port of another (DE's) refuses to start, saying so.
    let mut second = comity_node::config::Config::load(&config).unwrap();
    let de = comity_node::config::Config::load(&bloc.node("DE").config).unwrap();
    second.network.listen = de.network.listen.clone();
    let second_path = config.with_file_name("second.toml");
    std::fs::write(&second_path, second.to_commented_toml()).unwrap();
    let mut run = std::process::Command::new(comity_testnet::comity_binary().unwrap())
        .args(["run", "-c"])
        .arg(&second_path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            run.kill().unwrap();
            panic!("a second node on DE's port kept running");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    run.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("another process listens on port"),
        "{stderr}"
    );
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_opmon_show_the_exchanges_and_the_outbox_without_content() {
    let dir = tempfile::tempdir().unwrap();
    let port = comity_testnet::free_port();
    let mut bloc =
        comity_testnet::Bloc::create_with(dir.path(), &[j("FR"), j("DE")], "testnet", |c| {
            if c.node.jurisdiction.as_str() == "FR" {
                c.metrics.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
            } else {
                // DE keeps metadata only: its records never name a case.
                c.log.mode = comity_node::opmon::Mode::Metadata;
            }
        })
        .await
        .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let metrics = format!("http://127.0.0.1:{port}");

    // Health on the metrics listener too, without a token.
    assert_eq!(
        get(&format!("{metrics}/health")).await,
        (200, "alive\n".into())
    );
    assert_eq!(
        get(&format!("{metrics}/ready")).await,
        (200, "ready\n".into())
    );

    for _ in 0..3 {
        send(&bloc, "FR", "DE", Some(20_000)).await;
    }
    // DE cut off: the next request waits in FR's outbox.
    bloc.partition("FR", "DE", true).await.unwrap();
    let draft = send(&bloc, "FR", "DE", None).await;

    let (status, text) = get(&format!("{metrics}/metrics")).await;
    assert_eq!(status, 200);
    assert!(text.ends_with("# EOF\n"), "not OpenMetrics");
    let out_receipts = sample(
        &text,
        "comity_exchanges_total",
        &[
            "member=\"DE\"",
            "direction=\"out\"",
            "kind=\"push\"",
            "outcome=\"receipt\"",
        ],
    );
    assert!(out_receipts >= Some(3.0), "{text}");
    assert_eq!(
        sample(&text, "comity_outbox_messages", &["member=\"DE\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "comity_member_connected", &["member=\"DE\""]),
        Some(0.0)
    );
    assert!(sample(&text, "comity_cases", &["role=\"requester\""]).is_some());
    assert!(sample(&text, "comity_store_commit_duration_seconds_count", &[]) > Some(0.0));
    assert!(
        sample(
            &text,
            "comity_exchange_duration_seconds_count",
            &["direction=\"out\"", "kind=\"push\""]
        ) >= Some(3.0)
    );
    assert!(sample(&text, "comity_bloc_config_version", &[]) >= Some(1.0));
    assert!(
        text.contains("libp2p_swarm_connections_established_total"),
        "no libp2p metrics"
    );
    // Nothing personal: not the selector, not the authority, not a case id.
    for secret in [
        "alice@example.org",
        "Parquet",
        &draft.summary.case_id.to_string(),
    ] {
        assert!(!text.contains(secret), "{secret} in metrics");
    }

    // Operational monitoring: FR's record of each push, both times and sizes, no content; DE
    // holds the same exchange under the same id.
    // Records are written in batches (within a second or so).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (json, pushes) = loop {
        let json = ok(comity(
            &bloc.node("FR").config,
            &["opmon", "--member", "DE", "--json"],
        ));
        let records: Vec<comity_node::opmon::Record> = serde_json::from_str(&json).unwrap();
        let pushes: Vec<_> = records
            .into_iter()
            .filter(|r| r.kind == "push" && r.outcome == "receipt")
            .collect();
        if pushes.len() >= 3 || Instant::now() > deadline {
            break (json, pushes);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(pushes.len() >= 3, "{json}");
    for r in &pushes {
        assert_eq!(r.direction, comity_node::opmon::Direction::Out);
        assert!(r.case_id.is_some(), "FR keeps full records: {r:?}");
        assert!(r.request_bytes > 0 && r.response_bytes > 0, "{r:?}");
        assert!(r.requested_at <= r.answered_at, "{r:?}");
    }
    for secret in ["alice@example.org", "Parquet", "Phishing"] {
        assert!(!json.contains(secret), "{secret} in opmon");
    }
    // One case's traffic.
    let case = pushes[0].case_id.unwrap().to_string();
    let one = ok(comity(
        &bloc.node("FR").config,
        &["opmon", "--case", &case, "--json"],
    ));
    let one: Vec<comity_node::opmon::Record> = serde_json::from_str(&one).unwrap();
    assert!(
        !one.is_empty() && one.iter().all(|r| r.case_id == pushes[0].case_id),
        "{one:?}"
    );
    let table = ok(comity(&bloc.node("FR").config, &["opmon", "--since", "1h"]));
    assert!(
        table.contains("receipt") && table.contains("push"),
        "{table}"
    );
    let bad = comity(&bloc.node("FR").config, &["opmon", "--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let de = ok(comity(
            &bloc.node("DE").config,
            &["opmon", "--member", "FR", "--json"],
        ));
        let de: Vec<comity_node::opmon::Record> = serde_json::from_str(&de).unwrap();
        if let Some(same) = de.iter().find(|r| r.id == pushes[0].id) {
            assert!(
                de.iter().all(|r| r.case_id.is_none()),
                "DE keeps metadata only"
            );
            assert_eq!(same.direction, comity_node::opmon::Direction::In);
            assert_eq!(same.request_bytes, pushes[0].request_bytes);
            assert_eq!(same.response_bytes, pushes[0].response_bytes);
            break;
        }
        assert!(Instant::now() < deadline, "DE holds no record of FR's push");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
