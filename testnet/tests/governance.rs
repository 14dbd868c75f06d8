//! Bloc governance between real processes: a member joins when the threshold signs, a key
//! rotates and a compromised one is revoked without a restart, a member that was away catches
//! up, replays and forgeries are refused, and an expired configuration stops new requests only.

mod common;

use std::time::Duration;

use comity_node::admin::api::Action;
use comity_node::bloc::ProposeRequest;
use comity_protocol::bloc::Threshold;
use comity_protocol::{CaseId, Decision, ExchangeResponse, RejectCode};
use comity_testnet::peer::{RawPeer, genesis, signed_push};
use common::*;

const CONNECT: Duration = Duration::from_secs(30);
const APPLY: Duration = Duration::from_secs(15);

fn renew() -> ProposeRequest {
    ProposeRequest {
        renew: true,
        ..ProposeRequest::default()
    }
}

async fn versions(bloc: &comity_testnet::Bloc, members: &[&str]) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for m in members {
        out.push(bloc.client(m).bloc_status().await.unwrap().version);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixth_member_joins_live_when_the_threshold_signs() {
    let founders = ["AT", "BE", "DE", "FR", "IT"];
    let (_dir, mut bloc) = bloc(&founders).await;
    bloc.set_threshold("3/5".parse::<Threshold>().unwrap())
        .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();

    // SE prepares its node with only the bloc's anchor and one member's address, and starts.
    let card = bloc.prepare_member("SE", "FR").await.unwrap();
    bloc.start("SE").unwrap();
    bloc.wait_up("SE", CONNECT).await.unwrap();
    let se = bloc.client("SE");
    assert_eq!(se.bloc_status().await.unwrap().version, None);

    let add = ProposeRequest {
        add: vec![card],
        ..ProposeRequest::default()
    };
    let proposed = bloc.propose("FR", &add).await.unwrap();
    assert_eq!((proposed.version, proposed.needed), (2, 3));
    assert!(
        proposed.changes.iter().any(|c| c.contains("+ member SE")),
        "{proposed:?}"
    );
    // The proposal reaches DE by gossip; DE signs: two of three.
    let two = bloc.sign("DE", "2").await.unwrap();
    assert_eq!(two.signed_by.len(), 2, "{two:?}");
    assert!(!two.applied);

    // Two signatures are not enough: nothing changes anywhere, and SE stays refused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(versions(&bloc, &founders).await, vec![Some(1); 5]);
    assert_eq!(se.bloc_status().await.unwrap().version, None);
    let fr_peers = bloc.client("FR").peers().await.unwrap();
    assert!(!fr_peers.iter().any(|p| p.jurisdiction.as_str() == "SE"));

    // The third signature applies it on every member, with no restart, within seconds.
    wait_until(APPLY, "IT holds both signatures", || async {
        bloc.client("IT")
            .bloc_proposals()
            .await
            .unwrap()
            .iter()
            .any(|p| p.signed_by.len() == 2)
    })
    .await;
    let applied = bloc.sign("IT", "2").await.unwrap();
    assert!(applied.applied, "{applied:?}");
    for m in founders.iter().chain(&["SE"]) {
        bloc.wait_version(m, 2, APPLY).await.unwrap();
    }
    // SE verified the chain from its anchor and now exchanges requests with two members.
    let se_status = se.bloc_status().await.unwrap();
    assert_eq!(
        se_status.hash,
        bloc.client("FR").bloc_status().await.unwrap().hash
    );
    for to in ["FR", "DE"] {
        let case = send(&bloc, "SE", to, Some(20_000)).await;
        assert_eq!(
            case.summary.state, "delivered",
            "SE → {to}: {:?}",
            case.delivery
        );
    }
    let case = send(&bloc, "AT", "SE", Some(20_000)).await;
    assert_eq!(
        case.summary.state, "delivered",
        "AT → SE: {:?}",
        case.delivery
    );
}

/// DE (of FR, DE and IT) rotates its `kind` key: its proposal carries the new key's card and
/// DE's vote; FR's signature makes two of three, the threshold; all three apply version 2.
async fn rotate_de_key(bloc: &comity_testnet::Bloc, kind: &str) {
    let rotate = ProposeRequest {
        rotate_key: Some(kind.into()),
        ..ProposeRequest::default()
    };
    let proposed = bloc.propose("DE", &rotate).await.unwrap();
    let change = format!("DE {kind} key");
    assert!(
        proposed.changes.iter().any(|c| c.contains(&change)),
        "{proposed:?}"
    );
    assert!(bloc.sign("FR", "2").await.unwrap().applied);
    for m in ["FR", "DE", "IT"] {
        bloc.wait_version(m, 2, APPLY).await.unwrap();
    }
}

async fn act(client: &comity_node::admin::api::AdminClient, case: CaseId, action: Action) {
    client
        .act(case, &action)
        .await
        .unwrap_or_else(|e| panic!("{action:?} on {case}: {e}"));
}

/// Polls `check` until it holds; panics naming `what` after `timeout`.
async fn wait_until<F, Fut>(timeout: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_keeps_old_cases_verifying_and_signs_nothing_new() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    // No grace after the rotation (by default a retired key still counts for 72 hours, while
    // the members sign): what the old key signs afterwards is refused at once.
    bloc.rules.rotation_grace_hours = 0;
    bloc.form_genesis().unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));
    let before = send(&bloc, "FR", "DE", Some(20_000)).await;
    assert_eq!(before.summary.state, "delivered");
    let old_key = before.signed_receipt.as_ref().unwrap().signer;
    let de_dir = bloc.node("DE").dir.clone();
    let old_identity = comity_node::identity::NodeIdentity::load_dir(&de_dir).unwrap();
    assert_eq!(old_identity.public_key(), old_key);

    // DE rotates: its proposal carries the new key's card and DE's vote; FR's makes two of
    // three members, the threshold.
    rotate_de_key(&bloc, "signing").await;
    let status = fr.bloc_status().await.unwrap();
    let de_entry = status
        .members
        .iter()
        .find(|m| m.jurisdiction.as_str() == "DE")
        .unwrap();
    let new_key = de_entry.signing_key.unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(de_entry.keys[0].retired, Some(2));

    // Cases from before still verify on both sides, with a note.
    for client in [&fr, &de] {
        let log = client.log(before.summary.case_id).await.unwrap();
        assert!(!log.entries.is_empty());
    }
    let again = fr.case(before.summary.case_id).await.unwrap();
    let receipt = again.receipt.unwrap();
    assert!(receipt.signature_valid, "{receipt:?}");
    assert_eq!(
        receipt.key_note.as_deref(),
        Some("key retired in version 2")
    );
    // ...in a bundle exported now, which lists both of DE's keys and checks offline...
    let bundle = bloc.dir.join("before.cbor");
    let id = before.summary.case_id.to_string();
    ok(comity(
        &bloc.node("FR").config,
        &[
            "case",
            "export",
            &id,
            "--out",
            bundle.to_str().unwrap(),
            "--purpose",
            "court",
            "--wait",
            "60",
        ],
    ));
    let verify = comity_testnet::comity_binary()
        .unwrap()
        .with_file_name("comity-verify");
    let out = std::process::Command::new(verify)
        .args(["bundle", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("key retired in version 2"), "{report}");
    // ...and DE's own audit log, whose checkpoints were signed with both keys in turn.
    let verified = ok(comity(&bloc.node("DE").config, &["audit", "verify"]));
    assert!(verified.contains("the audit log verifies"), "{verified}");

    // New events carry the new key, with no restart of DE.
    let after = send(&bloc, "FR", "DE", Some(20_000)).await;
    assert_eq!(after.summary.state, "delivered", "{:?}", after.delivery);
    assert_eq!(after.signed_receipt.unwrap().signer, new_key);

    // Something signed with the old key now is refused: a push, and an event in a push.
    let roster = comity_testnet::genesis_roster(&bloc.node("DE").dir).unwrap();
    let fr_member = roster.by_jurisdiction(&j("FR")).unwrap().0.clone();
    let raw = RawPeer::start(old_identity.clone(), &fr_member)
        .await
        .unwrap();
    let fr_peer = fr_member.peer_id;
    let old = old_identity.signing_key();
    let case_id = CaseId::new();
    let push = signed_push(
        &old,
        case_id,
        vec![genesis(&old, case_id, request("DE", "FR"))],
    );
    match raw.push(fr_peer, &push).await.unwrap() {
        ExchangeResponse::Rejected(r) => {
            assert_eq!(r.code, RejectCode::UnknownSigner);
            assert!(r.detail.contains("retired in version 2"), "{}", r.detail);
        }
        other => panic!("a push signed with a retired key was taken: {other:?}"),
    }
    let current = comity_node::identity::NodeIdentity::load_dir(&de_dir).unwrap();
    assert_eq!(
        current.public_key(),
        new_key,
        "signing.key holds the new key"
    );
    let push = signed_push(
        &current.signing_key(),
        case_id,
        vec![genesis(&old, case_id, request("DE", "FR"))],
    );
    match raw.push(fr_peer, &push).await.unwrap() {
        ExchangeResponse::Rejected(r) => {
            assert!(r.detail.contains("retired"), "{}", r.detail)
        }
        other => panic!("an event signed with a retired key was taken: {other:?}"),
    }
    assert!(fr.case(case_id).await.is_err(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_member_is_cut_off_and_its_held_events_say_so() {
    let (_dir, mut bloc) = bloc(&["DE", "ES", "FR", "IT"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let fr = bloc.client("FR");
    let sent = send(&bloc, "FR", "IT", Some(20_000)).await;
    // IT's `received` comes with the receipt, or by its own push when IT pulled the request
    // before the push arrived: either way FR holds it shortly.
    let held = wait_for_state(&fr, sent.summary.case_id, "delivered", CONNECT).await;
    let it_key = held.signed_receipt.as_ref().unwrap().signer;

    // IT's key leaked: FR, DE and ES (three of four) revoke it.
    let revoke = ProposeRequest {
        revoke: vec![(j("IT"), it_key)],
        ..ProposeRequest::default()
    };
    let proposed = bloc.propose("FR", &revoke).await.unwrap();
    assert_eq!(proposed.needed, 3);
    for m in ["DE", "ES"] {
        bloc.sign(m, "2").await.unwrap();
    }
    for m in ["DE", "ES", "FR"] {
        bloc.wait_version(m, 2, APPLY).await.unwrap();
    }
    // Disconnected and refused everywhere within seconds.
    for m in ["DE", "ES", "FR"] {
        wait_until(APPLY, "IT is gone from the members' peers", || async {
            !bloc
                .client(m)
                .status()
                .await
                .unwrap()
                .members
                .iter()
                .any(|p| p.jurisdiction.as_str() == "IT")
        })
        .await;
    }
    wait_for_log(
        &bloc,
        "FR",
        &["no longer a member: disconnected and refused"],
        APPLY,
    )
    .await;
    // A push with the revoked key, over IT's own transport identity, gets nowhere.
    let it_identity = comity_node::identity::NodeIdentity::load_dir(&bloc.node("IT").dir).unwrap();
    let roster = comity_testnet::genesis_roster(&bloc.node("FR").dir).unwrap();
    let fr_member = roster.by_jurisdiction(&j("FR")).unwrap().0.clone();
    let raw = RawPeer::start(it_identity.clone(), &fr_member)
        .await
        .unwrap();
    let key = it_identity.signing_key();
    let case_id = CaseId::new();
    let push = signed_push(
        &key,
        case_id,
        vec![genesis(&key, case_id, request("IT", "FR"))],
    );
    assert!(
        raw.push(fr_member.peer_id, &push).await.is_err(),
        "IT's connection is refused"
    );
    wait_for_log(&bloc, "FR", &["refused connection"], APPLY).await;
    // New requests to IT are refused at once; what FR holds from IT says the key was revoked.
    let err = fr
        .create_request(&comity_node::admin::api::NewRequest {
            request: request("FR", "IT"),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("IT"), "{err}");
    let log = fr.log(held.summary.case_id).await.unwrap();
    assert!(
        log.key_notes
            .iter()
            .flatten()
            .any(|n| n == "signed by a key later revoked (version 2)"),
        "{:?}",
        log.key_notes
    );
    let receipt = fr
        .case(held.summary.case_id)
        .await
        .unwrap()
        .receipt
        .unwrap();
    assert_eq!(
        receipt.key_note.as_deref(),
        Some("signed by a key later revoked (version 2)")
    );

    // IT comes back: its operator makes a card with a new signing key, a member proposes it,
    // the threshold signs; IT is admitted again, pulls the chain and signs with the new key.
    let card_file = bloc.dir.join("it-new.toml");
    ok(comity(
        &bloc.node("IT").config,
        &[
            "bloc",
            "card",
            "--new-signing-key",
            "--out",
            card_file.to_str().unwrap(),
        ],
    ));
    let update = ProposeRequest {
        update: vec![std::fs::read_to_string(&card_file).unwrap()],
        ..ProposeRequest::default()
    };
    let proposed = bloc.propose("FR", &update).await.unwrap();
    assert!(
        proposed
            .changes
            .iter()
            .any(|c| c.contains("+ IT signing key")),
        "{proposed:?}"
    );
    // Three members are admitted now (IT is not): two of three make the threshold.
    assert_eq!(proposed.needed, 2);
    assert!(bloc.sign("DE", "3").await.unwrap().applied);
    for m in ["DE", "ES", "FR", "IT"] {
        bloc.wait_version(m, 3, CONNECT).await.unwrap();
    }
    let back = send(&bloc, "IT", "FR", Some(20_000)).await;
    assert_eq!(back.summary.state, "delivered", "{:?}", back.delivery);
    let it_now = comity_node::identity::NodeIdentity::load_dir(&bloc.node("IT").dir).unwrap();
    assert_ne!(it_now.public_key(), it_key);
    assert!(!bloc.node("IT").dir.join("signing.key.next").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_away_catches_up_and_replays_and_forgeries_are_refused() {
    let (_dir, mut bloc) = bloc(&["DE", "ES", "FR", "IT"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    bloc.stop("ES").unwrap();

    // Two changes while ES is away, each signed by FR, DE and IT.
    let deadlines = ProposeRequest {
        set: vec![("deadlines.normal_hours".into(), "300".into())],
        ..ProposeRequest::default()
    };
    for (version, change) in [(2, deadlines), (3, renew())] {
        bloc.propose("FR", &change).await.unwrap();
        for m in ["DE", "IT"] {
            bloc.sign(m, &version.to_string()).await.unwrap();
        }
        bloc.wait_version("FR", version, APPLY).await.unwrap();
    }
    let fr = bloc.client("FR");
    let history = fr.bloc_history().await.unwrap();
    assert_eq!(history.len(), 3);
    assert!(
        history[1]
            .changes
            .iter()
            .any(|c| c == "~ deadlines.normal_hours: 240 → 300"),
        "{:?}",
        history[1].changes
    );

    // ES comes back: it pulls both versions and verifies them from its anchor.
    bloc.start("ES").unwrap();
    bloc.wait_version("ES", 3, CONNECT).await.unwrap();
    let es = bloc.client("ES");
    assert_eq!(
        es.bloc_status().await.unwrap().hash,
        fr.bloc_status().await.unwrap().hash
    );

    // A replayed old version: refused, logged, nothing changes.
    let dir = bloc.dir.clone();
    let v2 = dir.join("v2.cbor");
    let v2_bytes = {
        let store =
            comity_node::store::Store::open_read_only(&bloc.node("FR").dir.join("store")).unwrap();
        let mut key = b"v".to_vec();
        key.extend_from_slice(&2u64.to_be_bytes());
        store
            .get(comity_node::store::Cf::Bloc, &key)
            .unwrap()
            .unwrap()
    };
    std::fs::write(&v2, &v2_bytes).unwrap();
    let err = es.bloc_import(&v2_bytes).await.unwrap_err();
    assert!(err.to_string().contains("rollback or a replay"), "{err}");
    wait_for_log(
        &bloc,
        "ES",
        &["bloc configuration refused", "rollback"],
        APPLY,
    )
    .await;

    // A forged version 4: the next version, but signed by outsiders' keys only.
    let mut forged = comity_protocol::bloc::peek(
        &comity_protocol::MultiSigned::from_bytes(&v2_bytes, 1 << 20).unwrap(),
    )
    .unwrap();
    let head = es.bloc_status().await.unwrap();
    forged.version = 4;
    forged.previous = head.hash;
    forged.issued_at = head.issued_at.unwrap();
    forged.expires_at = head.expires_at.unwrap();
    let mut signed = comity_protocol::MultiSigned::new(&forged).unwrap();
    for seed in 1..=3u8 {
        signed.add_signature(&ed25519_dalek::SigningKey::from_bytes(&[seed; 32]));
    }
    let err = es.bloc_import(&signed.to_bytes()).await.unwrap_err();
    assert!(err.to_string().contains("signed by 0"), "{err}");
    // Garbage, and a configuration of another bloc: clear errors, and ES still serves.
    let err = es.bloc_import(b"not a configuration").await.unwrap_err();
    assert!(
        err.to_string().contains("not a bloc configuration"),
        "{err}"
    );
    let mut other = forged.clone();
    other.bloc = "another-bloc".into();
    other.version = 4;
    let err = es
        .bloc_import(
            &comity_protocol::MultiSigned::new(&other)
                .unwrap()
                .to_bytes(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another-bloc"), "{err}");
    assert_eq!(es.bloc_status().await.unwrap().version, Some(3));
    let case = send(&bloc, "ES", "FR", Some(20_000)).await;
    assert_eq!(case.summary.state, "delivered");

    // IT leaves: removed by FR, DE and ES, it is disconnected and refused everywhere; its
    // entry stays (marked left), so what it signed before still reads.
    let remove = ProposeRequest {
        remove: vec![j("IT")],
        ..ProposeRequest::default()
    };
    assert!(
        bloc.propose("FR", &remove)
            .await
            .unwrap()
            .changes
            .contains(&"- member IT leaves".to_string())
    );
    for m in ["DE", "ES"] {
        bloc.sign(m, "4").await.unwrap();
    }
    for m in ["DE", "ES", "FR"] {
        bloc.wait_version(m, 4, APPLY).await.unwrap();
        wait_until(APPLY, "IT is disconnected", || async {
            !bloc
                .client(m)
                .status()
                .await
                .unwrap()
                .members
                .iter()
                .any(|p| p.jurisdiction.as_str() == "IT")
        })
        .await;
    }
    let status = fr.bloc_status().await.unwrap();
    let it = status
        .members
        .iter()
        .find(|m| m.jurisdiction.as_str() == "IT")
        .unwrap();
    assert_eq!((it.admitted, it.left), (false, Some(4)));
    let err = fr
        .create_request(&comity_node::admin::api::NewRequest {
            request: request("FR", "IT"),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a member"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_configuration_refuses_new_requests_while_cases_under_way_complete() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));
    let under_way = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;

    // Past the configuration's expiry (90 days) on DE's clock first: a new request pushed to
    // DE is refused there, with the reason, and not retried.
    de.advance_clock(91 * 86_400).await.unwrap();
    let refused = send(&bloc, "FR", "DE", None).await.summary.case_id;
    let refused = wait_case(&fr, refused, "DE refuses it", |c| {
        c.delivery.refused.is_some()
    })
    .await;
    let reason = refused.delivery.refused.unwrap();
    assert!(reason.contains("expired"), "{reason}");
    assert!(
        de.case(refused.summary.case_id).await.is_err(),
        "nothing kept at DE"
    );
    // Then on FR's too.
    fr.advance_clock(91 * 86_400).await.unwrap();
    let status = fr.bloc_status().await.unwrap();
    assert!(status.expired, "{status:?}");
    let err = fr
        .create_request(&comity_node::admin::api::NewRequest {
            request: request("FR", "DE"),
        })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("expired"), "{text}");
    assert!(text.contains("comity bloc propose --renew"), "{text}");

    // The case under way goes on: DE decides and fulfils, FR sees it and acknowledges.
    act(
        &de,
        under_way,
        Action::Decide {
            decision: Decision::Accept,
        },
    )
    .await;
    act(
        &de,
        under_way,
        Action::Fulfil {
            note: String::new(),
        },
    )
    .await;
    wait_for_state(&fr, under_way, "fulfilled", APPLY).await;

    // Renewed by both, FR may start requests again.
    bloc.propose("FR", &renew()).await.unwrap();
    assert!(bloc.sign("DE", "2").await.unwrap().applied);
    bloc.wait_version("FR", 2, APPLY).await.unwrap();
    assert!(!fr.bloc_status().await.unwrap().expired);
    let again = send(&bloc, "FR", "DE", Some(20_000)).await;
    assert_eq!(again.summary.state, "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_transport_key_moves_the_member_to_its_new_peer_id_without_a_restart() {
    let (_dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let fr = bloc.client("FR");
    let old_peer = bloc.node("DE").peer_id.clone();
    let old = comity_node::identity::NodeIdentity::load_dir(&bloc.node("DE").dir).unwrap();
    let pid = bloc.pid("DE").unwrap();

    rotate_de_key(&bloc, "transport").await;
    // DE now speaks under its new PeerId, the same process, and the members reach it there.
    let de = bloc.client("DE");
    wait_until(
        CONNECT,
        "DE under its new PeerId, connected to FR and IT",
        || async {
            let status = de.status().await.unwrap();
            status.peer_id != old_peer && status.members.iter().all(|m| m.connected)
        },
    )
    .await;
    let new_peer = de.status().await.unwrap().peer_id;
    let fr_view = fr.peers().await.unwrap();
    let de_view = fr_view
        .iter()
        .find(|p| p.jurisdiction.as_str() == "DE")
        .unwrap();
    assert_eq!(de_view.peer_id, new_peer);
    assert_eq!(bloc.pid("DE").unwrap(), pid, "no restart");
    for (from, to) in [("FR", "DE"), ("DE", "IT")] {
        let case = send(&bloc, from, to, Some(20_000)).await;
        assert_eq!(
            case.summary.state, "delivered",
            "{from} → {to}: {:?}",
            case.delivery
        );
    }
    // The old key file is gone (replaced by the new one), and the old identity speaks for
    // nobody: for a few minutes its connection is still admitted (so that a member that
    // rotated learns of the version over its old connections), but nothing it sends is taken.
    assert!(!bloc.node("DE").dir.join("node.key.next").exists());
    assert_eq!(old.peer_id().to_string(), old_peer);
    let roster = comity_testnet::genesis_roster(&bloc.node("FR").dir).unwrap();
    let fr_member = roster.by_jurisdiction(&j("FR")).unwrap().0.clone();
    let raw = RawPeer::start(old.clone(), &fr_member).await.unwrap();
    let case_id = CaseId::new();
    let key = old.signing_key();
    let push = signed_push(
        &key,
        case_id,
        vec![genesis(&key, case_id, request("DE", "FR"))],
    );
    match raw.push(fr_member.peer_id, &push).await {
        Err(_) => {}
        Ok(ExchangeResponse::Rejected(r)) => {
            assert_eq!(r.code, RejectCode::UnknownSigner, "{}", r.detail)
        }
        Ok(other) => panic!("the old PeerId was served: {other:?}"),
    }
    assert!(fr.case(case_id).await.is_err());
}
