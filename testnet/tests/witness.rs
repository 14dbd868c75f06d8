//! Witnessing: members check and cosign each other's audit checkpoints as they grow; a member
//! that rewrites its log is caught by its witness, which keeps the contradicting checkpoints.

mod common;

use std::time::{Duration, Instant};

use comity_node::admin::api::{Action, StatusView};
use comity_node::store::{Batch, Cf, Store};
use comity_protocol::Decision;
use common::*;

async fn status_until(
    bloc: &comity_testnet::Bloc,
    node: &str,
    what: &str,
    ok: impl Fn(&StatusView) -> bool,
) -> StatusView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = bloc.client(node).status().await.unwrap();
        if ok(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{node}: {what} did not happen: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_log_is_caught_by_a_witness() {
    let dir = tempfile::tempdir().unwrap();
    let mut bloc =
        comity_testnet::Bloc::create_with(dir.path(), &[j("FR"), j("DE")], "testnet", |c| {
            c.audit.checkpoint_secs = 1;
        })
        .await
        .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();

    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    let first = status_until(&bloc, "FR", "witnessing DE", |s| {
        s.witnessed.iter().any(|(m, _, _)| m == "DE")
    })
    .await;
    let size = first
        .witnessed
        .iter()
        .find(|(m, _, _)| m == "DE")
        .unwrap()
        .1;
    // DE's log grows; FR checks the consistency proof and cosigns the larger checkpoint.
    bloc.client("DE")
        .act(
            id,
            &Action::Decide {
                decision: Decision::Accept,
            },
        )
        .await
        .unwrap();
    status_until(&bloc, "FR", "witnessing DE's grown log", |s| {
        s.witnessed.iter().any(|(m, n, _)| m == "DE" && *n > size)
    })
    .await;
    // The cosignature goes back: DE holds FR's, over its grown log.
    status_until(&bloc, "DE", "receiving FR's cosignature", |s| {
        s.cosigned_by.iter().any(|(w, n, _)| w == "FR" && *n > size)
    })
    .await;
    assert!(
        bloc.client("FR")
            .status()
            .await
            .unwrap()
            .audit_alerts
            .is_empty()
    );
    // A proof of one of DE's entries carries FR's cosignature of the checkpoint it is proved
    // against, which anyone can check offline.
    let out = comity(&bloc.node("DE").config, &["audit", "prove", "0"]);
    let proof_file = dir.path().join("proof.json");
    std::fs::write(&proof_file, ok(out)).unwrap();
    let de_key = comity_node::identity::NodeIdentity::load_dir(&bloc.node("DE").dir)
        .unwrap()
        .public_key()
        .to_string();
    let fr_key = comity_node::identity::NodeIdentity::load_dir(&bloc.node("FR").dir)
        .unwrap()
        .public_key()
        .to_string();
    let check = |file: &std::path::Path| {
        std::process::Command::new(comity_testnet::comity_binary().unwrap())
            .args([
                "audit",
                "check",
                file.to_str().unwrap(),
                "--signer",
                &de_key,
            ])
            .output()
            .unwrap()
    };
    let checked = ok(check(&proof_file));
    assert!(
        checked.contains("cosigned by FR") && checked.contains(&fr_key),
        "{checked}"
    );
    // A cosignature altered in the proof makes the whole proof fail.
    let mut proof: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&proof_file).unwrap()).unwrap();
    // The COSE bytes end with the signature: change its last hex digit.
    let cose = proof["cosignatures"][0]["cose"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if cose.ends_with('0') { "1" } else { "0" };
    proof["cosignatures"][0]["cose"] = format!("{}{flipped}", &cose[..cose.len() - 1]).into();
    std::fs::write(&proof_file, proof.to_string()).unwrap();
    let out = check(&proof_file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cosignature"));

    // DE rewrites its history: one entry changed, its leaf and checkpoints redone to match.
    bloc.stop("DE").unwrap();
    {
        let store = Store::open(&bloc.node("DE").dir.join("store")).unwrap();
        let key = 0u64.to_be_bytes();
        let mut entry = store.get(Cf::Audit, &key).unwrap().unwrap();
        let last = entry.len() - 1;
        entry[last] ^= 0x01;
        let mut batch = Batch::new();
        batch.put(
            Cf::AuditLeaves,
            key.to_vec(),
            comity_protocol::merkle::leaf_hash(&entry).to_vec(),
        );
        batch.put(Cf::Audit, key.to_vec(), entry);
        for (size, _) in store.scan(Cf::Checkpoints).unwrap() {
            batch.delete(Cf::Checkpoints, size);
        }
        // And the right edge of the tree that checkpoints extend, so that they match.
        batch.delete(Cf::Settings, b"audit-frontier".to_vec());
        store.commit(batch).await.unwrap();
    }
    bloc.start("DE").unwrap();
    let caught = status_until(&bloc, "FR", "catching DE's rewrite", |s| {
        !s.audit_alerts.is_empty()
    })
    .await;
    assert!(
        caught.audit_alerts.iter().any(|a| a.starts_with("DE ")),
        "{:?}",
        caught.audit_alerts
    );
    assert!(bloc.log("FR").contains("AUDIT ALERT"));
}
