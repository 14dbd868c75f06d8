//! The read-only dashboard, loaded in headless Chromium: a screenshot is taken, and the page
//! as the browser rendered it shows the workload's numbers and the chart.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(args: &[&str]) -> std::process::Output {
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1024,1400",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{CHROMIUM}: {e} (scripts/bootstrap installs Debian's chromium)")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_bloc_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let port = comity_testnet::free_port();
    let mut bloc = comity_testnet::Bloc::create_with(
        dir.path(),
        &[j("FR"), j("DE"), j("IT")],
        "testnet",
        |c| {
            c.audit.report_secs = 1;
            c.audit.checkpoint_secs = 1;
            if c.node.jurisdiction.as_str() == "FR" {
                c.dashboard.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
            }
        },
    )
    .await
    .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    for _ in 0..2 {
        send(&bloc, "FR", "DE", Some(20_000)).await;
    }
    send(&bloc, "FR", "IT", Some(20_000)).await;
    bloc.wait_converged(Duration::from_secs(20)).await.unwrap();

    // Wait until FR holds every member's report with the workload in it, and DE's checkpoint.
    let url = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = match client.get(&url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if page.contains("<td>DE</td><td>0</td><td>2</td>")
            && page.contains("<td>IT</td><td>0</td><td>1</td>")
            && page.contains("<td>FR</td><td>3</td><td>0</td>")
            && checkpoints_show_de(&page)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard did not fill: {page}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let shot = dir.path().join("dashboard.png");
    let out = chromium(&[&format!("--screenshot={}", shot.display()), &url]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "a blank page? {} bytes", png.len());
    if let Ok(keep) = std::env::var("COMITY_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    let dom = chromium(&["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<td>DE</td><td>0</td><td>2</td>"), "{dom}");
    assert!(dom.contains("<td>FR</td><td>3</td><td>0</td>"), "{dom}");
    assert!(dom.contains("<svg"), "the chart is not in the page: {dom}");
    assert!(dom.contains("Requests sent and received"));
}

/// The checkpoints table has DE's log, cosigned by FR.
fn checkpoints_show_de(page: &str) -> bool {
    page.split("id=\"checkpoints\"")
        .nth(1)
        .is_some_and(|t| t.contains("<tr><td>DE</td>"))
}

/// The public dashboard: only what the members' signed reports say. In headless Chromium, the
/// page holds no case id, no officer name and no selector of the workload; every figure in
/// it is one the signed reports (`/reports.json`) hold; answers carry a strict security
/// policy, an ETag and a cache lifetime, and a flood from one client is turned away with 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_dashboard_shows_only_the_signed_reports() {
    let dir = tempfile::tempdir().unwrap();
    let port = comity_testnet::free_port();
    let mut bloc = comity_testnet::Bloc::create_with(
        dir.path(),
        &[j("FR"), j("DE"), j("IT")],
        "testnet",
        |c| {
            c.audit.report_secs = 1;
            if c.node.jurisdiction.as_str() == "FR" {
                c.dashboard.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
                c.dashboard.mode = comity_node::config::DashboardMode::Public;
                c.dashboard.requests_per_second_per_client = 3;
            }
        },
    )
    .await
    .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let mut secrets = vec!["admin2".to_owned(), "approver".to_owned()];
    for (i, to) in ["DE", "DE", "IT"].iter().enumerate() {
        let selector = format!("zq9-public-check-{i}@example.org");
        let mut request = request("FR", to);
        request.selectors = vec![comity_protocol::Selector::Email(selector.clone())];
        let sent = comity_testnet::send_request(
            &bloc.client("FR"),
            &bloc.approver("FR"),
            request,
            Some(Duration::from_secs(20)),
        )
        .await
        .unwrap();
        secrets.push(sent.summary.case_id.to_string());
        secrets.push(selector);
    }
    bloc.wait_converged(Duration::from_secs(20)).await.unwrap();

    let url = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        if page.contains("<td>DE</td><td>0</td><td>2</td>")
            && page.contains("<td>FR</td><td>3</td><td>0</td>")
            && page.contains("<td>IT</td><td>0</td><td>1</td>")
        {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard did not fill: {page}"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    };
    assert!(
        !page.contains("checkpoints"),
        "public mode shows reports only"
    );

    // Headers: strict, cacheable, and an ETag that a second fetch can reuse.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let response = client.get(&url).send().await.unwrap();
    let headers = response.headers().clone();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let etag = headers["etag"].clone();
    let again = client
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(
        client
            .get(format!("{url}v1/status"))
            .send()
            .await
            .unwrap()
            .status()
            == 404
    );

    // The signed reports, and every figure of the page among what they say.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let signed: serde_json::Value = client
        .get(format!("{url}reports.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reports = signed["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 3);
    let mut said = std::collections::BTreeSet::new();
    for r in reports {
        assert!(r["cose_sign1"].as_str().unwrap().len() > 100, "{r}");
        collect(&r["published"]["report"], &mut said);
    }
    let dom = chromium(&["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains("<td>FR</td><td>3</td><td>0</td>"), "{dom}");
    for secret in &secrets {
        assert!(
            !dom.contains(secret.as_str()),
            "{secret} is in the public page"
        );
    }
    // The page's own labels of its tables' rows: the layout, not data.
    let labels = [
        "total",
        "requests",
        "partner",
        "instrument",
        "data-category",
        "outcome",
        "–",
    ];
    for cell in dom.split("<td>").skip(1) {
        let text = cell.split("</td>").next().unwrap().trim();
        assert!(
            labels.contains(&text) || said.contains(text),
            "{text:?} is in the public page but in no signed report"
        );
    }

    // A flood from one client: the first few are answered, the rest turned away.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(client.get(&url).send().await.unwrap().status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.iter().take(3).all(|s| *s == 200 || *s == 429));
}

/// Every key and scalar a report holds, as text.
fn collect(value: &serde_json::Value, into: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                into.insert(k.clone());
                collect(v, into);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, into)),
        serde_json::Value::String(s) => {
            into.insert(s.clone());
        }
        serde_json::Value::Number(n) => {
            into.insert(n.to_string());
        }
        serde_json::Value::Bool(b) => {
            into.insert(b.to_string());
        }
        serde_json::Value::Null => {}
    }
}
