//! Which audit entries a node writes: every case event (its own and its peer's), every read of
//! case content with the officer, every officer added or revoked, every four-eyes approval,
//! and every refused message, each read back from the node's store.

mod common;

use std::time::{Duration, Instant};

use comity_node::admin::officers::Role;
use comity_node::audit::{AuditEntry, AuditWhat};
use comity_node::identity::NodeIdentity;
use comity_node::store::{Cf, Store};
use comity_protocol::{CaseId, RejectCode, from_cbor};
use comity_testnet::Bloc;
use comity_testnet::peer::{RawPeer, genesis, signed_push};
use common::*;

/// Every entry of a node's audit log, in order.
fn entries(bloc: &Bloc, member: &str) -> Vec<AuditWhat> {
    let store = Store::open_read_only(&bloc.node(member).dir.join("store")).unwrap();
    store
        .scan(Cf::Audit)
        .unwrap()
        .into_iter()
        .map(|(_, v)| from_cbor::<AuditEntry>(&v, 1 << 20).unwrap().what)
        .collect()
}

/// Polls until `member`'s audit log holds an entry `wanted` accepts.
async fn audited(bloc: &Bloc, member: &str, what: &str, wanted: impl Fn(&AuditWhat) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = entries(bloc, member);
        if all.iter().any(&wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{member}'s audit log has no entry for {what}: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn event(case: CaseId, author: &str, kind: &str) -> impl Fn(&AuditWhat) -> bool {
    let (author, kind) = (j(author), kind.to_owned());
    move |w| {
        matches!(w, AuditWhat::CaseEvent { case_id, author: a, kind: k, .. }
            if *case_id == case && *a == author && *k == kind)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_read_officer_change_approval_and_refusal_is_audited() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let fr = bloc.client("FR");

    fr.add_officer("clerk", Role::Requester).await.unwrap();
    fr.revoke_officer("clerk").await.unwrap();
    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    fr.case(id).await.unwrap();

    // A push whose signature does not verify, from FR's connection: DE refuses it.
    let fr_dir = bloc.node("FR").dir.clone();
    let fr_key = NodeIdentity::load_dir(&fr_dir).unwrap();
    let de = comity_testnet::genesis_roster(&fr_dir)
        .unwrap()
        .by_jurisdiction(&j("DE"))
        .unwrap()
        .0
        .clone();
    let forger = NodeIdentity::generate();
    let refused_case = CaseId::new();
    let mut forged = signed_push(
        &forger.signing_key(),
        refused_case,
        vec![genesis(
            &fr_key.signing_key(),
            refused_case,
            request("FR", "DE"),
        )],
    );
    forged.signer = fr_key.public_key();
    let raw = RawPeer::start(fr_key, &de).await.unwrap();
    raw.push(de.peer_id, &forged).await.unwrap();

    for member in ["FR", "DE"] {
        audited(&bloc, member, "the request", event(id, "FR", "submitted")).await;
        audited(
            &bloc,
            member,
            "DE's receipt event",
            event(id, "DE", "received"),
        )
        .await;
    }
    let officer = |name: &'static str, change: &'static str| {
        move |w: &AuditWhat| {
            matches!(w, AuditWhat::Officer { officer, role, change: c, .. }
                if officer == name && role == "requester" && c == change)
        }
    };
    audited(&bloc, "FR", "the officer added", officer("clerk", "added")).await;
    audited(
        &bloc,
        "FR",
        "the officer revoked",
        officer("clerk", "revoked"),
    )
    .await;
    audited(&bloc, "FR", "the approval", |w| {
        matches!(w, AuditWhat::Approval { officer, case_id } if officer == "approver" && *case_id == id)
    })
    .await;
    audited(&bloc, "FR", "the admin's read of the case", |w| {
        matches!(w, AuditWhat::Access { officer, case_id, read } if officer == "admin" && *case_id == id && read == "case")
    })
    .await;
    let fr_peer = bloc.node("FR").peer_id.clone();
    audited(&bloc, "DE", "the refused push", |w| {
        matches!(w, AuditWhat::Refusal { peer, code, .. }
            if *peer == fr_peer && *code == RejectCode::BadSignature.to_string())
    })
    .await;
    // Nothing of the refused message's case was audited as an event.
    assert!(
        !entries(&bloc, "DE")
            .iter()
            .any(|w| matches!(w, AuditWhat::CaseEvent { case_id, .. } if *case_id == refused_case))
    );
}
