//! Evidence goes to the requesting party only, and only sealed with the sender's roster key:
//! a third member asking DE for the package of an FR→DE case is refused, and FR refuses a
//! package that DE sealed with a key other than the one the roster lists for DE.

mod common;

use std::time::{Duration, Instant};

use comity_node::evidence::PackageState;
use comity_node::identity::NodeIdentity;
use comity_protocol::CaseId;
use comity_protocol::evidence::{EvidenceRequest, EvidenceResponse};
use comity_testnet::Bloc;
use comity_testnet::peer::RawPeer;
use common::*;

const SETTLE: Duration = Duration::from_secs(60);

fn fulfil(bloc: &Bloc, dir: &std::path::Path, id: CaseId) {
    let file = dir.join(format!("records-{id}.csv"));
    std::fs::write(&file, vec![7u8; 200_000]).unwrap();
    fulfil_with_evidence(bloc, id, &[file]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_requester_is_served_and_only_a_package_sealed_with_the_roster_key_is_taken() {
    let (dir, mut bloc) = bloc(&["FR", "DE", "IT"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    // A delivered package of an FR→DE case: IT, a member but not a party, asks DE for it.
    let id = accepted_case(&bloc).await;
    fulfil(&bloc, dir.path(), id);
    let done = {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(s) = evidence_status(&fr, id).await
                && s.state == PackageState::Complete
            {
                break s;
            }
            assert!(Instant::now() < deadline, "FR never completed the package");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let it_dir = bloc.node("IT").dir.clone();
    let it = NodeIdentity::load_dir(&it_dir).unwrap();
    let de_member = comity_testnet::genesis_roster(&it_dir)
        .unwrap()
        .by_jurisdiction(&j("DE"))
        .unwrap()
        .0
        .clone();
    let served_before = de.evidence_status(id).await.unwrap().chunks_served;
    let nosy = RawPeer::start(it, &de_member).await.unwrap();
    for request in [
        EvidenceRequest::Manifest { case_id: id },
        EvidenceRequest::Chunk {
            case_id: id,
            root: done.root,
            index: 0,
        },
        // Chunks pulled while sealed go to the requester alone, too.
        EvidenceRequest::Staged {
            case_id: id,
            index: 0,
        },
    ] {
        match nosy.evidence(de_member.peer_id, &request).await.unwrap() {
            EvidenceResponse::Refused { reason } => {
                assert!(reason.contains("not shared with IT"), "{reason}")
            }
            other => panic!("IT was served {:?}", std::mem::discriminant(&other)),
        }
    }
    assert_eq!(
        de.evidence_status(id).await.unwrap().chunks_served,
        served_before,
        "DE served IT a chunk"
    );
    // Nor can IT offer FR a package for a case between FR and DE (FR would reserve its space
    // and pull from IT).
    let fr_member = comity_testnet::genesis_roster(&it_dir)
        .unwrap()
        .by_jurisdiction(&j("FR"))
        .unwrap()
        .0
        .clone();
    let offering = RawPeer::start(NodeIdentity::load_dir(&it_dir).unwrap(), &fr_member)
        .await
        .unwrap();
    let offer = EvidenceRequest::Offer {
        case_id: id,
        chunk_size: 1 << 20,
        total_bytes: 1 << 20,
    };
    match offering.evidence(fr_member.peer_id, &offer).await.unwrap() {
        EvidenceResponse::Refused { reason } => {
            assert!(reason.contains("not shared with IT"), "{reason}")
        }
        other => panic!("FR took IT's offer: {:?}", std::mem::discriminant(&other)),
    }

    // DE's sealing key is replaced by one the roster does not list: FR refuses the package
    // before pulling a chunk.
    bloc.kill("DE").unwrap();
    let key = bloc.node("DE").dir.join("sealing.key");
    std::fs::remove_file(&key).unwrap();
    comity_node::evidence::create_sealing_key(&key).unwrap();
    bloc.start("DE").unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let id = accepted_case(&bloc).await;
    fulfil(&bloc, dir.path(), id);
    let deadline = Instant::now() + SETTLE;
    let refused = loop {
        let s = evidence_status(&fr, id).await;
        if let Some(s) = &s
            && s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("roster sealing key"))
        {
            break s.clone();
        }
        assert!(Instant::now() < deadline, "FR did not refuse it: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused.state, PackageState::Announced, "{refused:?}");
    assert_eq!(refused.chunks_verified, 0);
}

/// A requester may keep only so many requests for chunks not yet sealed waiting at the
/// sender, each holding one of the sender's answers in flight: beyond that, refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_may_keep_only_so_many_staged_chunks_waiting() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let de = bloc.client("DE");
    let id = accepted_case(&bloc).await;
    // FR's own node away (it would pull too): FR's key in a raw peer asks instead.
    bloc.kill("FR").unwrap();
    let fr_dir = bloc.node("FR").dir.clone();
    let de_member = comity_testnet::genesis_roster(&fr_dir)
        .unwrap()
        .by_jurisdiction(&j("DE"))
        .unwrap()
        .0
        .clone();

    // An upload that has sent nothing yet: the package is being sealed, no chunk is.
    let (mut bytes, upload) = held_upload(&de, id, "image.bin", 4 << 20).await;
    let case = id.to_string();
    wait_for_log(&bloc, "DE", &["evidence upload receiving", &case], SETTLE).await;

    let fr = RawPeer::start(NodeIdentity::load_dir(&fr_dir).unwrap(), &de_member)
        .await
        .unwrap();
    let ask = EvidenceRequest::Staged {
        case_id: id,
        index: 1,
    };
    let answers =
        futures::future::join_all((0..17).map(|_| fr.evidence(de_member.peer_id, &ask))).await;
    let mut waited = 0;
    let mut refused = Vec::new();
    for answer in answers {
        match answer.unwrap() {
            EvidenceResponse::NotYet => waited += 1,
            EvidenceResponse::Refused { reason } => refused.push(reason),
            other => panic!(
                "a chunk not sealed was served: {:?}",
                std::mem::discriminant(&other)
            ),
        }
    }
    assert_eq!(waited, 16, "{refused:?}");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("more than 16"), "{}", refused[0]);

    use futures::SinkExt;
    bytes
        .send(Err(std::io::Error::other("officer gave up")))
        .await
        .unwrap();
    assert!(upload.await.unwrap().is_err());
}
