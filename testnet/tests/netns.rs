//! The namespace link layer: each member in a network namespace of its own, on a bridge the
//! testnet makes, its admin API reached over TLS. Loss drops real packets (and TCP recovers
//! them), a blackhole drops every packet and closes nothing, a cut resets; delay is refused
//! where the kernel has no netem, saying so; the namespaces and the bridge are gone after the
//! testnet. Needs root, `ip`, `nft` and `ss` (scripts/bootstrap installs them).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use comity_testnet::links::Conditions;
use common::*;

const CONNECT: Duration = Duration::from_secs(30);
/// Two unanswered pings and a margin (as through the proxies: `blackout.rs`).
const NOTICED: Duration = Duration::from_secs(15);
const AFTER_HEAL: Duration = Duration::from_secs(10);

fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_in_namespaces_lose_blackhole_and_cut_real_packets() {
    let dir = tempfile::tempdir().unwrap();
    let mut bloc = comity_testnet::Bloc::create_in_namespaces(
        dir.path(),
        &[j("FR"), j("DE"), j("IT")],
        "testnet",
        |c| {
            // Without the retry on reconnect, what the blackhole caught would wait 40 s.
            c.outbox.initial_backoff_ms = 40_000;
        },
    )
    .await
    .unwrap();
    let fabric = bloc.namespaces().unwrap().clone();
    let listed = namespaces();
    for (j, place) in &fabric.members {
        assert!(listed.contains(&place.namespace), "{j}: {listed}");
        let node = bloc.node(j.as_str());
        assert_eq!(node.namespace.as_deref(), Some(place.namespace.as_str()));
        assert!(
            node.admin_url()
                .starts_with(&format!("https://{}:", place.address))
        );
        assert!(
            node.listen
                .to_string()
                .starts_with(&format!("/ip4/{}/", place.address))
        );
    }
    assert!(link_exists(&fabric.bridge));
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();

    // The members are not on this machine's loopback: only in their namespaces.
    let de = bloc.node("DE").clone();
    assert!(std::net::TcpStream::connect(("127.0.0.1", de.p2p_port)).is_err());
    // An officer's CLI reaches a member over TLS, pinning its certificate, from its config.
    let status = ok(comity(&de.config, &["status"]));
    assert!(status.contains("DE"), "{status}");

    // 30 % of the packets between FR and DE dropped, each way: TCP recovers them.
    bloc.link(
        "FR",
        "DE",
        Conditions {
            loss: 0.3,
            ..Conditions::default()
        },
    )
    .await
    .unwrap();
    let mut sent = BTreeSet::new();
    for _ in 0..8 {
        let case = send(&bloc, "FR", "DE", Some(30_000)).await;
        assert_eq!(case.summary.state, "delivered");
        sent.insert(case.summary.case_id);
    }
    for member in ["FR", "DE"] {
        let dropped = fabric.dropped(&j(member)).unwrap();
        assert!(dropped > 0, "no packet of {member}'s was dropped");
    }
    assert_eq!(fabric.dropped(&j("IT")).unwrap(), 0, "IT's links are clean");

    // Delay needs netem; where the kernel has none, the refusal says so.
    let delayed = bloc
        .link(
            "FR",
            "DE",
            Conditions {
                delay_ms: 200,
                ..Conditions::default()
            },
        )
        .await;
    let netem = comity_testnet::netns::netem_missing(&fabric.members[&j("FR")].namespace);
    if let Some(problem) = &netem {
        let e = format!("{:#}", delayed.unwrap_err());
        assert!(
            e.contains("no netem") && e.contains(problem.as_str()),
            "{e}"
        );
    }
    bloc.heal_links().await.unwrap();

    // A silent blackhole: no reset ever comes, only unanswered pings; IT is not touched.
    bloc.link(
        "FR",
        "DE",
        Conditions {
            blackhole: true,
            ..Conditions::default()
        },
    )
    .await
    .unwrap();
    let blackout = Instant::now();
    for _ in 0..3 {
        sent.insert(send(&bloc, "FR", "DE", None).await.summary.case_id);
    }
    for (at, other) in [("FR", "DE"), ("DE", "FR")] {
        wait_disconnected(&bloc, at, other, blackout, NOTICED).await;
    }
    assert!(connected(&bloc, "FR", "IT").await);
    assert!(bloc.client("FR").status().await.unwrap().outbox_depth >= 3);
    bloc.heal_links().await.unwrap();
    wait_outbox_empty(&bloc.client("FR"), AFTER_HEAL).await;

    // A cut: resets, so it is seen at once, and new connections are refused.
    bloc.link(
        "FR",
        "IT",
        Conditions {
            down: true,
            ..Conditions::default()
        },
    )
    .await
    .unwrap();
    let cut = Instant::now();
    wait_disconnected(&bloc, "FR", "IT", cut, NOTICED).await;
    bloc.heal_links().await.unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();

    for member in ["FR", "DE"] {
        assert_holds_once(&bloc, member, &sent).await;
    }
    bloc.wait_converged(Duration::from_secs(20)).await.unwrap();

    drop(bloc);
    let listed = namespaces();
    for place in fabric.members.values() {
        assert!(!listed.contains(&place.namespace), "{listed}");
        assert!(!link_exists(&place.veth));
    }
    assert!(!link_exists(&fabric.bridge));
}

fn testnet(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_comity-testnet"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

/// Runs `down` when the test ends, passed or not: nothing is left running.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = testnet(self.0, &["down"]);
    }
}

/// The command line: `up --links netns`, faults on it, and `down` removing the namespaces.
#[test]
fn up_fault_and_down_on_namespaces_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let _down = Down(dir.path());
    let testnet = |args: &[&str]| testnet(dir.path(), args);
    let fault = |args: &[&str]| {
        let mut all = vec!["fault", "--dir", dir.path().to_str().unwrap()];
        all.extend_from_slice(args);
        Command::new(env!("CARGO_BIN_EXE_comity-testnet"))
            .args(all)
            .output()
            .unwrap()
    };
    let up = ok(testnet(&[
        "up",
        "--links",
        "netns",
        "--jurisdictions",
        "FR,DE",
    ]));
    assert!(up.contains("network namespace of its own"), "{up}");
    let fabric = comity_testnet::netns::Fabric::load(dir.path())
        .unwrap()
        .unwrap();
    assert_eq!(fabric.members.len(), 2);

    let lossy = ok(fault(&["link", "FR", "DE", "--loss", "10%"]));
    assert!(lossy.contains("DE ↔ FR: loss 10 %"), "{lossy}");
    let delayed = fault(&["link", "FR", "DE", "--delay", "200ms"]);
    if up.contains("this kernel has no netem") {
        assert!(!delayed.status.success());
        let e = String::from_utf8_lossy(&delayed.stderr);
        assert!(e.contains("no netem") && e.contains("--links proxy"), "{e}");
    }
    // The loss is still in force after the refused change, in the kernel and in the file.
    let shown = ok(fault(&["show"]));
    assert!(shown.contains("loss 10 %"), "{shown}");
    let healed = ok(fault(&["heal"]));
    assert!(healed.contains("every link is clean"), "{healed}");
    let events = std::fs::read_to_string(dir.path().join(comity_testnet::EVENTS_FILE)).unwrap();
    assert!(events.contains("link FR DE: loss 10 %"), "{events}");

    let down = ok(testnet(&["down"]));
    assert!(down.contains("network namespaces: 2 removed"), "{down}");
    let listed = namespaces();
    for place in fabric.members.values() {
        assert!(!listed.contains(&place.namespace), "{listed}");
    }
    assert!(!link_exists(&fabric.bridge));
}
