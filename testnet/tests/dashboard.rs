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
