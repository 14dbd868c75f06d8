//! Backup, restore and recovery from peers, between real processes: a backup taken while a
//! node works, its data directory deleted and restored from it, the node catching up with its
//! member; a store damaged on disk refused with an error that names the way back; a store
//! lost without a backup rebuilt from the members, every case back with its content.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use comity_protocol::CaseId;
use common::*;

/// The case ids FR holds, once they number at least `want` (or the timeout passes).
async fn fr_cases(bloc: &comity_testnet::Bloc, want: usize) -> BTreeSet<CaseId> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held: BTreeSet<CaseId> = match bloc.client("FR").cases().await {
            Ok(cases) => cases.iter().map(|c| c.case_id).collect(),
            Err(_) => BTreeSet::new(),
        };
        if held.len() >= want || Instant::now() > deadline {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_and_the_node_catches_up() {
    let (dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let mut before = BTreeSet::new();
    for _ in 0..3 {
        before.insert(send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id);
    }

    // A backup taken while FR keeps sending.
    let load = {
        let (client, approver) = (bloc.client("FR"), bloc.approver("FR"));
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for _ in 0..6 {
                let draft = client
                    .create_request(&comity_node::admin::api::NewRequest {
                        request: request("FR", "DE"),
                    })
                    .await
                    .unwrap();
                let id = draft.summary.case_id;
                approver.approve(id).await.unwrap();
                client
                    .send(id, Some(Duration::from_secs(20)))
                    .await
                    .unwrap();
                sent.push(id);
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backup = dir.path().join("fr-backup");
    let fr = bloc.node("FR").clone();
    let out = ok(comity(
        &fr.config,
        &["backup", "--out", backup.to_str().unwrap()],
    ));
    assert!(out.contains("taken by the running node"), "{out}");
    // The node took it beside its store; nothing of it is left there.
    let left: Vec<_> = std::fs::read_dir(&fr.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("store.backup-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        out.contains("master key") && out.contains("not in it"),
        "{out}"
    );
    let during = load.await.unwrap();
    bloc.wait_converged(Duration::from_secs(30)).await.unwrap();

    // The whole data directory lost; restored from the backup (the master key kept apart).
    bloc.stop("FR").unwrap();
    let lost = dir.path().join("FR-lost");
    std::fs::rename(&fr.dir, &lost).unwrap();
    let restore = |extra: &[&str]| {
        std::process::Command::new(comity_testnet::comity_binary().unwrap())
            .args(["restore", "--from"])
            .arg(&backup)
            .arg("--data-dir")
            .arg(&fr.dir)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = restore(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--master-key"));
    let master = lost.join("master.key");
    ok(restore(&["--master-key", master.to_str().unwrap()]));
    // The approver's token is the officer's own, kept outside the node's backup.
    std::fs::copy(lost.join("approver.token"), &fr.approver_token_file).unwrap();
    ok(comity(&fr.config, &["config", "check"]));
    bloc.start("FR").unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();

    // Every case acknowledged before the backup is there; those after come back from DE.
    let all: BTreeSet<CaseId> = before.iter().chain(&during).copied().collect();
    let held = fr_cases(&bloc, all.len()).await;
    assert!(all.is_subset(&held), "missing: {:?}", all.difference(&held));
    bloc.wait_converged(Duration::from_secs(60)).await.unwrap();
    let case = bloc
        .client("FR")
        .case(*during.last().unwrap())
        .await
        .unwrap();
    assert!(
        case.request.is_some(),
        "content of a case caught up from DE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_and_a_lost_one_is_rebuilt_from_the_members() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let mut cases = BTreeSet::new();
    for to in ["DE", "IT", "DE"] {
        cases.insert(send(&bloc, "FR", to, Some(20_000)).await.summary.case_id);
    }
    // One where FR is the executing member.
    cases.insert(send(&bloc, "DE", "FR", Some(20_000)).await.summary.case_id);
    bloc.wait_converged(Duration::from_secs(30)).await.unwrap();
    let fr = bloc.node("FR").clone();
    bloc.stop("FR").unwrap();

    // One byte flipped near the end of every table file: the node refuses to start and says
    // what happened and the two ways back.
    let store = fr.dir.join("store");
    let mut flipped = 0;
    for entry in std::fs::read_dir(&store).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sst") {
            let mut bytes = std::fs::read(&path).unwrap();
            let at = bytes.len() - 12;
            bytes[at] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
            flipped += 1;
        }
    }
    assert!(flipped > 0, "no table files to damage");
    let out = std::process::Command::new(comity_testnet::comity_binary().unwrap())
        .args(["run", "-c"])
        .arg(&fr.config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("damaged")
            && stderr.contains("comity restore")
            && stderr.contains("recover --from-peers"),
        "{stderr}"
    );
    // Recovery refuses a store that holds cases; the damaged one is moved aside.
    std::fs::rename(&store, fr.dir.join("store.damaged")).unwrap();
    std::fs::remove_file(&fr.token_file).unwrap();
    let out = std::process::Command::new(comity_testnet::comity_binary().unwrap())
        .args(["recover", "--from-peers", "--wait", "30", "--save-token"])
        .arg(&fr.token_file)
        .arg("-c")
        .arg(&fr.config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("DE") && stdout.contains("IT"), "{stdout}");
    assert!(stdout.contains("Never recoverable"), "{stdout}");

    bloc.start("FR").unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let held = fr_cases(&bloc, cases.len()).await;
    assert_eq!(held, cases);
    bloc.wait_converged(Duration::from_secs(60)).await.unwrap();
    // Content back, sealed under keys of FR's vault.
    for id in &cases {
        let case = bloc.client("FR").case(*id).await.unwrap();
        assert!(case.request.is_some(), "{id}: no content");
    }
}
