//! A shared testnet across machines, with a network namespace standing in for the other
//! machine: the founders listen on an address of this machine (one end of a veth pair made by
//! the test), an operator "elsewhere" (in the namespace, reaching the founders only through the
//! veth) makes its node with `comity init` and the join kit, the founders admit its card by
//! governance, and requests flow both ways. Needs root (namespaces); the namespace and its
//! link are removed at the end.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A network namespace with a veth pair to it: `host` here, `guest` inside.
struct Namespace {
    name: String,
    host: IpAddr,
    guest: IpAddr,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("the ip tool");
    assert!(
        out.status.success(),
        "ip {}: {} (this test needs root, to make a network namespace)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Namespace {
    fn new() -> Self {
        let n = std::process::id() % 200 + 20;
        let name = format!("comity-share-{n}");
        let (outside, inside) = (format!("cmtsh{n}a"), format!("cmtsh{n}b"));
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ]);
        ip(&["link", "set", &inside, "netns", &name]);
        let (host, guest) = (format!("10.231.{n}.1"), format!("10.231.{n}.2"));
        ip(&["addr", "add", &format!("{host}/24"), "dev", &outside]);
        ip(&["link", "set", &outside, "up"]);
        for args in [
            vec!["addr", "add", &format!("{guest}/24"), "dev", &inside],
            vec!["link", "set", &inside, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut full = vec!["netns", "exec", &name, "ip"];
            full.extend(args);
            ip(&full);
        }
        Self {
            name,
            host: host.parse().unwrap(),
            guest: guest.parse().unwrap(),
        }
    }

    /// `comity ARGS` run inside the namespace.
    fn comity(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(comity_testnet::comity_binary().unwrap())
            .args(args)
            .output()
            .unwrap()
    }

    fn spawn_node(&self, config: &Path, log: &Path) -> Child {
        let log = std::fs::File::create(log).unwrap();
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(comity_testnet::comity_binary().unwrap())
            .arg("run")
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // The veth pair goes with the namespace.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn status_json(ns: &Namespace, config: &Path) -> Option<serde_json::Value> {
    let out = ns.comity(&["status", "--json", "-c", config.to_str().unwrap()]);
    serde_json::from_slice(&out.stdout).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_on_another_machine_joins_by_the_kit_and_exchanges_requests() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let mut bloc =
        comity_testnet::Bloc::create_on(dir.path(), &[j("FR"), j("DE")], "shared", ns.host, |_| {})
            .await
            .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let kit = bloc.join_kit().unwrap();
    assert!(
        kit.bootstrap
            .iter()
            .all(|b| b.to_string().starts_with(&format!("/ip4/{}/tcp/", ns.host)))
    );
    assert!(
        kit.instructions(dir.path())
            .contains(&kit.anchor.to_string())
    );

    // The operator elsewhere: only the kit, and an address of its own.
    let se_dir = dir.path().join("SE-machine");
    let mut init = vec![
        "init".to_owned(),
        "--jurisdiction".into(),
        "SE".into(),
        "--data-dir".into(),
        se_dir.to_str().unwrap().into(),
        "--listen".into(),
        format!("/ip4/{}/tcp/4001", ns.guest),
        "--bloc".into(),
        kit.bloc.clone(),
        "--bloc-anchor".into(),
        kit.anchor.to_string(),
        "--token-file".into(),
        se_dir.join("admin.token").to_str().unwrap().into(),
    ];
    for b in &kit.bootstrap {
        init.push("--bootstrap".into());
        init.push(b.to_string());
    }
    let args: Vec<&str> = init.iter().map(String::as_str).collect();
    let made = ns.comity(&args);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = se_dir.join("comity.toml");
    let mut se = ns.spawn_node(&config, &se_dir.join("node.log"));

    // Refused until admitted; then the founders' signatures bring it in.
    let card = std::fs::read_to_string(se_dir.join("member.toml")).unwrap();
    let version = bloc.admit(&card).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = status_json(&ns, &config);
        let joined = status.as_ref().is_some_and(|s| {
            s["bloc_version"] == serde_json::json!(version)
                && s["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().filter(|m| m["connected"] == true).count() == 2)
        });
        if joined {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SE did not join over the veth: {status:?}\n{}",
            std::fs::read_to_string(se_dir.join("node.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A request each way across the "machines".
    let to_se = send(&bloc, "FR", "SE", Some(20_000)).await;
    assert_eq!(to_se.summary.state, "delivered", "{:?}", to_se.delivery);
    let listed = ns.comity(&["case", "list", "--json", "-c", config.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&to_se.summary.case_id.to_string()),
        "SE does not list FR's request"
    );

    let _ = se.kill();
    let _ = se.wait();
}
