//! The audit log of a real node: entries for events, reads, officers, approvals and refusals;
//! signed checkpoints; `comity audit verify/prove/consistency/check` beside the running node;
//! and one altered byte named by `verify`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use comity_node::admin::api::Action;
use comity_node::audit;
use comity_node::identity::NodeIdentity;
use comity_node::store::{Batch, Cf, Store};
use comity_protocol::Decision;
use common::*;

fn comity(args: &[&str]) -> Output {
    Command::new(comity_testnet::comity_binary().unwrap())
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sizes(dir: &Path) -> Vec<u64> {
    audit::checkpoint_sizes(&Store::open_read_only(&dir.join("store")).unwrap()).unwrap()
}

/// Entries in a node's audit log now.
fn entries(dir: &Path) -> u64 {
    let store = Store::open_read_only(&dir.join("store")).unwrap();
    store.scan(Cf::AuditLeaves).unwrap().len() as u64
}

/// Polls until the node's latest signed checkpoint covers at least `size` entries; its size.
async fn wait_checkpoint(dir: &Path, size: u64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(at) = sizes(dir).last().filter(|s| **s >= size) {
            return *at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint of {size} entries: {:?}",
            sizes(dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_verifies_proves_and_names_an_altered_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut bloc =
        comity_testnet::Bloc::create_with(dir.path(), &[j("FR"), j("DE")], "testnet", |c| {
            c.audit.checkpoint_secs = 1;
        })
        .await
        .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let de_dir = bloc.node("DE").dir.clone();
    let de_config = bloc.node("DE").config.to_string_lossy().into_owned();
    let de_key = NodeIdentity::load_dir(&de_dir)
        .unwrap()
        .public_key()
        .to_string();
    let fr_key = NodeIdentity::load_dir(&bloc.node("FR").dir)
        .unwrap()
        .public_key()
        .to_string();

    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    bloc.client("DE").case(id).await.unwrap();
    let first = wait_checkpoint(&de_dir, entries(&de_dir)).await;
    bloc.client("DE")
        .act(
            id,
            &Action::Decide {
                decision: Decision::Accept,
            },
        )
        .await
        .unwrap();
    // The decision was audited, and a later checkpoint covers it.
    let latest = wait_checkpoint(&de_dir, entries(&de_dir)).await;
    assert!(latest > first, "the log grew: {first} → {latest}");

    // Beside the running node: the whole log verifies.
    let out = comity(&["audit", "verify", "-c", &de_config]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("the audit log verifies"));

    // An entry proved, and checked offline with DE's key (and not with FR's).
    let proof = dir.path().join("proof.json");
    let out = comity(&["audit", "prove", "0", "-c", &de_config]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&proof, &out.stdout).unwrap();
    let out = comity(&[
        "audit",
        "check",
        proof.to_str().unwrap(),
        "--signer",
        &de_key,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("entry 0 is in DE's audit log"),
        "{}",
        text(&out)
    );
    let out = comity(&[
        "audit",
        "check",
        proof.to_str().unwrap(),
        "--signer",
        &fr_key,
    ]);
    assert!(
        !out.status.success(),
        "a proof must not check with another node's key"
    );

    // The earlier checkpoint is a prefix of the later one.
    let consistency = dir.path().join("consistency.json");
    let out = comity(&[
        "audit",
        "consistency",
        &first.to_string(),
        &latest.to_string(),
        "-c",
        &de_config,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&consistency, &out.stdout).unwrap();
    let out = comity(&[
        "audit",
        "check",
        consistency.to_str().unwrap(),
        "--signer",
        &de_key,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("is a prefix of"), "{}", text(&out));

    // One byte of one stored entry altered: `verify` fails and names it.
    bloc.stop_all();
    {
        let store = Store::open(&de_dir.join("store")).unwrap();
        let key = 2u64.to_be_bytes();
        let mut entry = store.get(Cf::Audit, &key).unwrap().unwrap();
        let last = entry.len() - 1;
        entry[last] ^= 0x01;
        let mut batch = Batch::new();
        batch.put(Cf::Audit, key.to_vec(), entry);
        store.commit(batch).await.unwrap();
    }
    let out = comity(&["audit", "verify", "-c", &de_config]);
    assert!(!out.status.success());
    assert!(text(&out).contains("entry 2 was altered"), "{}", text(&out));

    // Rewriting history consistently (entry and its leaf) is caught by the signed checkpoints.
    {
        let store = Store::open(&de_dir.join("store")).unwrap();
        let key = 2u64.to_be_bytes();
        let entry = store.get(Cf::Audit, &key).unwrap().unwrap();
        let mut batch = Batch::new();
        batch.put(
            Cf::AuditLeaves,
            key.to_vec(),
            comity_protocol::merkle::leaf_hash(&entry).to_vec(),
        );
        store.commit(batch).await.unwrap();
    }
    let out = comity(&["audit", "verify", "-c", &de_config]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("history was rewritten"),
        "{}",
        text(&out)
    );
}
