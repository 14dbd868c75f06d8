//! Shared set-up for the integration tests: a local bloc of real node processes.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use comity_node::admin::api::{AdminClient, CaseDetail};
use comity_protocol::{AssistanceRequest, CaseId, Jurisdiction};
use comity_testnet::Bloc;
use tempfile::TempDir;

pub fn j(code: &str) -> Jurisdiction {
    code.parse().unwrap()
}

pub async fn bloc(codes: &[&str]) -> (TempDir, Bloc) {
    let dir = tempfile::tempdir().unwrap();
    let jurisdictions: Vec<Jurisdiction> = codes.iter().map(|c| j(c)).collect();
    let bloc = Bloc::create(dir.path(), &jurisdictions).await.unwrap();
    (dir, bloc)
}

pub fn request(from: &str, to: &str) -> AssistanceRequest {
    let mut request = comity_protocol::examples::sample_request();
    request.requesting = j(from);
    request.executing = j(to);
    request
}

/// Sends a request from `from` to `to` with four-eyes: drafted by the admin officer, approved
/// by the member's approver officer, then sent (waiting `wait` ms for the receipt).
pub async fn send(bloc: &Bloc, from: &str, to: &str, wait: Option<u64>) -> CaseDetail {
    comity_testnet::send_request(
        &bloc.client(from),
        &bloc.approver(from),
        request(from, to),
        wait.map(Duration::from_millis),
    )
    .await
    .unwrap()
}

/// Polls a case until it reaches `state`; panics with the last view after `timeout`.
pub async fn wait_for_state(
    client: &AdminClient,
    case: CaseId,
    state: &str,
    timeout: Duration,
) -> CaseDetail {
    let deadline = Instant::now() + timeout;
    loop {
        let detail = client.case(case).await.unwrap();
        if detail.summary.state == state {
            return detail;
        }
        if Instant::now() > deadline {
            panic!(
                "case {case} still {} after {timeout:?}: {:?}",
                detail.summary.state, detail.delivery
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls a node's view of a case until `done` holds; panics with the last view after 30 s.
pub async fn wait_case(
    client: &AdminClient,
    id: CaseId,
    what: &str,
    done: impl Fn(&CaseDetail) -> bool,
) -> CaseDetail {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let case = client.case(id).await.unwrap();
        if done(&case) {
            return case;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {} {:?}",
            case.summary.state,
            case.delivery
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until a node's outbox is empty (every push receipted); panics after `timeout`.
pub async fn wait_outbox_empty(client: &AdminClient, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let depth = client.status().await.unwrap().outbox_depth;
        if depth == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "outbox still holds {depth} push(es) after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the `comity` CLI with `args` against the node whose config is `config`.
pub fn comity(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(comity_testnet::comity_binary().unwrap())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

/// The stdout of a CLI run that must succeed (its stderr otherwise).
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls a node's log until a line holds every one of `needles`; panics after `timeout`.
/// The positive signal that something happened, where a sleep could only hope it had.
pub async fn wait_for_log(bloc: &Bloc, member: &str, needles: &[&str], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let log = bloc.log(member);
        if log.lines().any(|l| needles.iter().all(|n| l.contains(n))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{member}'s log has no line with {needles:?} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A request FR→DE that DE accepted, once FR has seen the acceptance.
pub async fn accepted_case(bloc: &Bloc) -> CaseId {
    let id = send(bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    bloc.client("DE")
        .act(
            id,
            &comity_node::admin::api::Action::Decide {
                decision: comity_protocol::Decision::Accept,
            },
        )
        .await
        .unwrap();
    wait_for_state(&bloc.client("FR"), id, "accepted", Duration::from_secs(60)).await;
    id
}

/// DE fulfils case `id` with `files` as evidence, through the CLI; its stdout.
pub fn fulfil_with_evidence(bloc: &Bloc, id: CaseId, files: &[std::path::PathBuf]) -> String {
    let mut args = vec![
        "case".to_owned(),
        "fulfil".into(),
        id.to_string(),
        "--note".into(),
        "records attached".into(),
        "--evidence".into(),
    ];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(comity(&bloc.node("DE").config, &args))
}

/// Where a case's evidence package stands on a node; `None` while it has none (404).
pub async fn evidence_status(
    client: &AdminClient,
    id: CaseId,
) -> Option<comity_node::evidence::EvidenceStatus> {
    match client.evidence_status(id).await {
        Ok(s) => Some(s),
        Err(comity_node::admin::api::ClientError::Api { status: 404, .. }) => None,
        Err(e) => panic!("evidence status: {e}"),
    }
}

/// A peer with DE's identity listening at DE's address (DE stopped), lying to FR as `lie` says.
pub async fn lying_de(
    bloc: &Bloc,
    lie: std::sync::Arc<std::sync::Mutex<comity_testnet::peer::Lie>>,
) -> comity_testnet::peer::RawPeer {
    let de = bloc.node("DE");
    let identity = comity_node::identity::NodeIdentity::load_dir(&de.dir).unwrap();
    let roster = comity_testnet::genesis_roster(&bloc.node("FR").dir).unwrap();
    let (fr, fr_key) = roster.by_jurisdiction(&j("FR")).unwrap();
    let listen = format!("/ip4/127.0.0.1/tcp/{}", de.p2p_port)
        .parse()
        .unwrap();
    comity_testnet::peer::RawPeer::lying_receiver(identity, j("DE"), listen, fr, fr_key, lie)
        .await
        .unwrap()
}

/// An officer's upload of one file of `size` bytes that sends only what the test feeds it:
/// the sender for its bytes (an `Err` breaks it) and the upload's outcome.
pub async fn held_upload(
    de: &AdminClient,
    id: CaseId,
    name: &str,
    size: u64,
) -> (
    futures::channel::mpsc::Sender<std::io::Result<Vec<u8>>>,
    tokio::task::JoinHandle<
        Result<comity_node::admin::api::FulfilledView, comity_node::admin::api::ClientError>,
    >,
) {
    let ticket = de
        .begin_evidence(
            id,
            &comity_node::admin::api::NewEvidence {
                files: vec![comity_node::evidence::UploadFile {
                    name: name.into(),
                    size,
                    media_type: "application/octet-stream".into(),
                }],
                note: String::new(),
            },
        )
        .await
        .unwrap();
    let (bytes, body) = futures::channel::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let de = de.clone();
    let upload = tokio::spawn(async move {
        de.upload_evidence(&ticket.upload, reqwest::Body::wrap_stream(body))
            .await
    });
    (bytes, upload)
}

/// Whether member `at` shows `other` connected.
pub async fn connected(bloc: &Bloc, at: &str, other: &str) -> bool {
    bloc.client(at)
        .status()
        .await
        .unwrap()
        .members
        .iter()
        .any(|m| m.jurisdiction.as_str() == other && m.connected)
}

/// Member `member` holds exactly the cases `sent`, each once.
pub async fn assert_holds_once(
    bloc: &Bloc,
    member: &str,
    sent: &std::collections::BTreeSet<CaseId>,
) {
    let held: Vec<CaseId> = bloc
        .client(member)
        .cases()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.case_id)
        .collect();
    let unique: std::collections::BTreeSet<CaseId> = held.iter().copied().collect();
    assert_eq!(held.len(), unique.len(), "{member} lists a case twice");
    assert_eq!(&unique, sent, "{member} holds other cases than were sent");
}

/// Polls until member `at` no longer shows `other` connected; panics once `within` has passed
/// since `since` (when the link went bad).
pub async fn wait_disconnected(
    bloc: &Bloc,
    at: &str,
    other: &str,
    since: Instant,
    within: Duration,
) {
    while connected(bloc, at, other).await {
        assert!(
            since.elapsed() < within,
            "{at} still shows {other} connected {:?} after the link went bad",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
