//! Evidence delivery between real nodes: a sealed multi-file package pulled in verified
//! chunks, resumed after either side is killed, refused when damaged, and opened only whole.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use comity_node::admin::api::{Action, AdminClient};
use comity_node::evidence::{EvidenceFaults, EvidenceStatus, PackageState};
use comity_node::roster::EvidenceLimits;
use comity_protocol::CaseId;
use comity_testnet::Bloc;
use common::*;

const CONNECT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(60);
/// Small chunks, so that a few MiB make a package of many chunks.
const CHUNK: u32 = 64 * 1024;
/// The nodes' default number of chunks in flight.
const PARALLEL: u64 = 8;

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

async fn evidence_bloc(max_package: u64) -> (tempfile::TempDir, Bloc) {
    let (dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.set_evidence_limits(EvidenceLimits {
        max_package_bytes: max_package,
        chunk_bytes: CHUNK,
    })
    .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    (dir, bloc)
}

/// Files of pseudo-random bytes (incompressible, distinct), with a marker at the start.
fn write_files(dir: &Path, sizes: &[(&str, usize)]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    sizes
        .iter()
        .map(|(name, size)| {
            let mut bytes = Vec::with_capacity(*size);
            let marker = format!("EVIDENCE-MARKER-{name}");
            bytes.extend_from_slice(&marker.as_bytes()[..marker.len().min(*size)]);
            while bytes.len() < *size {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.extend_from_slice(&seed.to_le_bytes());
            }
            bytes.truncate(*size);
            let path = dir.join(name);
            std::fs::write(&path, &bytes).unwrap();
            path
        })
        .collect()
}

/// Polls FR's view of the package until `done` holds; panics with the last view on timeout.
async fn wait_evidence(
    client: &AdminClient,
    id: CaseId,
    what: &str,
    done: impl Fn(&EvidenceStatus) -> bool,
) -> EvidenceStatus {
    let deadline = Instant::now() + SETTLE;
    loop {
        let s = evidence_status(client, id).await;
        if let Some(s) = &s
            && done(s)
        {
            return s.clone();
        }
        assert!(Instant::now() < deadline, "{what}: still {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until the transfer's last error says `why`.
async fn refused_with(client: &AdminClient, id: CaseId, why: &str) -> EvidenceStatus {
    wait_evidence(client, id, &format!("a refusal saying {why:?}"), |s| {
        s.last_error.as_deref().is_some_and(|e| e.contains(why))
    })
    .await
}

async fn complete(client: &AdminClient, id: CaseId) -> EvidenceStatus {
    wait_evidence(client, id, "complete", |s| {
        s.state == PackageState::Complete
    })
    .await
}

/// `comity evidence fetch` at FR.
fn fetch_cli(bloc: &Bloc, id: CaseId, out: &Path, purpose: &str) -> Output {
    comity(
        &bloc.node("FR").config,
        &[
            "evidence",
            "fetch",
            &id.to_string(),
            "--out",
            out.to_str().unwrap(),
            "--purpose",
            purpose,
        ],
    )
}

/// Fetches with the CLI into `out` and checks every file is byte for byte the original.
fn fetch_and_compare(bloc: &Bloc, id: CaseId, out: &Path, originals: &[PathBuf]) -> String {
    let printed = ok(fetch_cli(bloc, id, out, "prosecution file 2026/117"));
    for original in originals {
        let name = original.file_name().unwrap();
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(original).unwrap(),
            "{name:?} differs"
        );
        // Decrypted evidence is readable by the officer who fetched it, nobody else.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name:?} has mode {mode:o}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".comity-fetch"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    printed
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(files_under(&path));
        } else {
            all.push(path);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_file_package_arrives_sealed_and_opens_whole_for_an_officer() {
    let (dir, bloc) = evidence_bloc(8 << 20).await;
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));
    let id = accepted_case(&bloc).await;
    let originals = write_files(
        &dir.path().join("files"),
        &[
            ("subscriber.pdf", 1_500_000),
            ("traffic.csv", 70_000),
            ("empty.txt", 0),
        ],
    );

    // Over the bloc's limit: refused before any byte moves, nothing recorded.
    let big = write_files(&dir.path().join("big"), &[("dump.bin", (8 << 20) + 1)]);
    let err = failed(comity(
        &bloc.node("DE").config,
        &[
            "case",
            "fulfil",
            &id.to_string(),
            "--evidence",
            big[0].to_str().unwrap(),
        ],
    ));
    assert!(err.contains("over the bloc's limit"), "{err}");
    assert!(evidence_status(&de, id).await.is_none());
    assert_eq!(de.case(id).await.unwrap().summary.state, "accepted");
    // An upload that breaks halfway (the officer's machine dies): nothing is recorded or kept.
    let (mut bytes, upload) = held_upload(&de, id, "partial.bin", 4 << 20).await;
    use futures::SinkExt;
    bytes.send(Ok(vec![1u8; 1 << 20])).await.unwrap();
    let case = id.to_string();
    wait_for_log(&bloc, "DE", &["evidence upload receiving", &case], SETTLE).await;
    // While it uploads, no second package for the case can be announced.
    let files = |names: &[&str]| comity_node::admin::api::NewEvidence {
        files: names
            .iter()
            .map(|n| comity_node::evidence::UploadFile {
                name: (*n).into(),
                size: 1,
                media_type: "application/pdf".into(),
            })
            .collect(),
        note: String::new(),
    };
    let err = de.begin_evidence(id, &files(&["b.pdf"])).await.unwrap_err();
    assert!(err.to_string().contains("being uploaded now"), "{err}");
    bytes
        .send(Err(std::io::Error::other("officer's machine died")))
        .await
        .unwrap();
    // The client's own stream failed, so its error says nothing about DE: DE's log says
    // that DE saw the upload break and dropped what it had sealed.
    assert!(upload.await.unwrap().is_err());
    wait_for_log(&bloc, "DE", &["evidence upload failed", &case], SETTLE).await;
    assert!(evidence_status(&de, id).await.is_none());
    assert!(files_under(&bloc.node("DE").dir.join("evidence")).is_empty());
    assert_eq!(de.case(id).await.unwrap().summary.state, "accepted");

    // Names that differ only in letter case would collide on the officer's disk.
    let err = de
        .begin_evidence(id, &files(&["Report.pdf", "report.PDF"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");

    let printed = fulfil_with_evidence(&bloc, id, &originals);
    assert!(
        printed.contains("fulfilled with evidence package"),
        "{printed}"
    );
    let sent = evidence_status(&de, id).await.unwrap();
    assert_eq!(sent.total_bytes, 1_570_000);
    assert_eq!(sent.chunks, 1_570_000u64.div_ceil(u64::from(CHUNK)));

    let got = complete(&fr, id).await;
    assert_eq!(got.root, sent.root);
    assert_eq!(got.chunks_verified, got.chunks);
    // FR pulled every full chunk while DE sealed them (the offer is answered before the
    // first is sealed), and fetched only the short last one after the fulfilment.
    assert_eq!(got.chunks_staged, got.chunks - 1, "{got:?}");
    assert_eq!(got.chunks_fetched, got.chunks, "{got:?}");
    // The fulfilment names the package, and FR's signed evidence-received reaches DE, which
    // then deletes its sealed copy.
    let log = fr.log(id).await.unwrap();
    assert!(
        log.entries
            .iter()
            .any(|e| e.kind == "evidence-received" && e.applied),
        "{log:?}"
    );
    wait_evidence(&de, id, "confirmed", |s| s.received_confirmed).await;
    let detail = de.case(id).await.unwrap();
    assert_eq!(detail.manifest_root, Some(sent.root));
    assert!(detail.evidence_received_at.is_some());
    let out_dir = bloc.node("DE").dir.join("evidence/out");
    let deadline = Instant::now() + SETTLE;
    while !files_under(&out_dir).is_empty() {
        assert!(Instant::now() < deadline, "DE kept its sealed copy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Sealed at rest on the receiver: no marker of any file in clear under FR's directory.
    for file in files_under(&bloc.node("FR").dir) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !contains(&bytes, b"EVIDENCE-MARKER-subscriber"),
            "clear evidence in {}",
            file.display()
        );
    }

    let out = dir.path().join("out");
    let printed = fetch_and_compare(&bloc, id, &out, &originals);
    assert!(printed.contains("every one verified"), "{printed}");
    let listed: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    // The read is in the access log, with its purpose.
    let access = fr.access_log(Some(id)).await.unwrap();
    assert!(
        access
            .iter()
            .any(|a| a.what == "evidence" && a.purpose == "prosecution file 2026/117"),
        "{access:?}"
    );
    // Fetching again into the same directory would overwrite: refused.
    let err = failed(fetch_cli(&bloc, id, &out, "again"));
    assert!(err.contains("already exists"), "{err}");

    // The officer acknowledges the evidence: the event names the package, on both sides.
    fr.act(id, &Action::Acknowledge).await.unwrap();
    wait_for_state(&de, id, "evidence-acknowledged", SETTLE).await;

    // A package of one empty file: no chunk at all, still sealed, named and opened whole.
    let empty_case = accepted_case(&bloc).await;
    let empty = write_files(&dir.path().join("empty"), &[("nothing-found.txt", 0)]);
    fulfil_with_evidence(&bloc, empty_case, &empty);
    let got = complete(&fr, empty_case).await;
    assert_eq!((got.chunks, got.total_bytes), (0, 0));
    fetch_and_compare(&bloc, empty_case, &dir.path().join("out-empty"), &empty);

    // Retention that deletes: once FR purges the case, FR deletes the package it received
    // (DE keeps its own records for its own retention).
    fr.act(id, &Action::Purge).await.unwrap();
    let deadline = Instant::now() + SETTLE;
    loop {
        let gone = evidence_status(&fr, id).await.is_none();
        let files: Vec<PathBuf> = files_under(&bloc.node("FR").dir.join("evidence"))
            .into_iter()
            .filter(|f| f.to_string_lossy().contains(&id.to_string()))
            .collect();
        if gone && files.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still held after the purge: {files:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_resumes_after_either_side_is_killed_without_resending_verified_chunks() {
    let (dir, mut bloc) = evidence_bloc(64 << 20).await;
    let files = write_files(&dir.path().join("files"), &[("disk-image.bin", 8 << 20)]);
    let chunks = (8u64 << 20).div_ceil(u64::from(CHUNK));
    // The whole transfer after the fulfilment, as from a sender that does not stage.
    let slow = EvidenceFaults {
        delay_ms: Some(100),
        no_staging: true,
        ..Default::default()
    };

    // The receiver is killed halfway, restarts, and finds its verified chunks on disk.
    let id = accepted_case(&bloc).await;
    bloc.client("DE").evidence_faults(&slow).await.unwrap();
    fulfil_with_evidence(&bloc, id, &files);
    let before = wait_evidence(&bloc.client("FR"), id, "a quarter", |s| {
        s.chunks_verified >= chunks / 4
    })
    .await;
    bloc.kill("FR").unwrap();
    // As if FR had died after renaming its file but before recording it complete: on restart
    // it takes the file back, checks every chunk and pulls only what is missing.
    let inbox = bloc.node("FR").dir.join("evidence/in");
    std::fs::rename(
        inbox.join(format!("{id}.part")),
        inbox.join(format!("{id}.sealed")),
    )
    .unwrap();
    bloc.start("FR").unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let done = complete(&bloc.client("FR"), id).await;
    // After its restart FR asked only for what it did not find on disk, in one pull.
    assert_eq!(done.pulls, 1, "{done:?}");
    assert!(
        done.chunks_fetched + before.chunks_verified <= chunks,
        "FR fetched {} chunks after its restart, for {chunks} of which it had {} verified",
        done.chunks_fetched,
        before.chunks_verified
    );
    let served = evidence_status(&bloc.client("DE"), id)
        .await
        .unwrap()
        .chunks_served;
    assert!(
        served <= chunks + PARALLEL,
        "DE served {served} chunks for {chunks} (FR had {} verified when killed)",
        before.chunks_verified
    );
    fetch_and_compare(&bloc, id, &dir.path().join("out1"), &files);

    // The sender is killed halfway; the receiver resumes when it is back.
    let id = accepted_case(&bloc).await;
    bloc.client("DE").evidence_faults(&slow).await.unwrap();
    fulfil_with_evidence(&bloc, id, &files);
    wait_evidence(&bloc.client("FR"), id, "a quarter", |s| {
        s.chunks_verified >= chunks / 4
    })
    .await;
    bloc.kill("DE").unwrap();
    let stalled = refused_with(&bloc.client("FR"), id, "interrupted").await;
    assert_ne!(stalled.state, PackageState::Complete, "{stalled:?}");
    assert!(stalled.chunks_verified < chunks, "{stalled:?}");
    bloc.start("DE").unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let done = complete(&bloc.client("FR"), id).await;
    // Kept once complete: the chunks FR pulled over both pulls, the verified ones not again.
    assert!(
        done.pulls >= 2,
        "the transfer was never interrupted: {done:?}"
    );
    assert!(
        done.chunks_fetched >= chunks && done.chunks_fetched <= chunks + PARALLEL,
        "FR fetched {} chunk responses for {chunks}",
        done.chunks_fetched
    );
    fetch_and_compare(&bloc, id, &dir.path().join("out2"), &files);

    // The receiver is killed while it pulls ahead of the fulfilment (DE still serving chunks
    // as sealed): after its restart nothing of what it wrote is trusted until the manifest
    // names it, and only what is not on disk is fetched again.
    let id = accepted_case(&bloc).await;
    bloc.client("DE")
        .evidence_faults(&EvidenceFaults {
            delay_ms: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    fulfil_with_evidence(&bloc, id, &files);
    let before = wait_evidence(&bloc.client("FR"), id, "a quarter pulled ahead", |s| {
        s.chunks_fetched >= chunks / 4
    })
    .await;
    assert_eq!(before.state, PackageState::Announced, "{before:?}");
    bloc.kill("FR").unwrap();
    bloc.start("FR").unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let done = complete(&bloc.client("FR"), id).await;
    assert!(
        done.chunks_fetched + before.chunks_fetched <= chunks,
        "FR fetched {} chunks after its restart, for {chunks} of which it had pulled {} ahead",
        done.chunks_fetched,
        before.chunks_fetched
    );
    fetch_and_compare(&bloc, id, &dir.path().join("out3"), &files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_packages_are_refused_and_nothing_partial_is_exposed() {
    let (dir, bloc) = evidence_bloc(64 << 20).await;
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));
    let files = write_files(&dir.path().join("files"), &[("mailbox.mbox", 1 << 20)]);
    let id = accepted_case(&bloc).await;
    let fetch = |out: &str| fetch_cli(&bloc, id, &dir.path().join(out), "review");

    // A manifest whose signature does not verify with DE's roster key; chunk 3 altered while
    // FR pulls the chunks as they are sealed.
    de.evidence_faults(&EvidenceFaults {
        forge_manifest: true,
        tamper_chunk: Some(3),
        ..Default::default()
    })
    .await
    .unwrap();
    fulfil_with_evidence(&bloc, id, &files);
    let s = refused_with(&fr, id, "signature").await;
    assert_eq!(s.state, PackageState::Announced, "{s:?}");
    assert!(s.last_error.unwrap().contains("DE's roster key"));
    let err = failed(fetch("out"));
    assert!(err.contains("manifest has not arrived"), "{err}");

    // The altered chunk pulled ahead does not match the manifest, so it is asked for again:
    // cut short, then altered in transit, each refused, never kept.
    de.evidence_faults(&EvidenceFaults {
        truncate_chunk: Some(3),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = refused_with(&fr, id, "truncated").await;
    assert!(s.chunks_verified < s.chunks, "{s:?}");
    de.evidence_faults(&EvidenceFaults {
        tamper_chunk: Some(3),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = refused_with(&fr, id, "(altered)").await;
    assert!(s.chunks_verified < s.chunks, "{s:?}");
    assert!(s.last_error.unwrap().contains("tampered with"));
    let err = failed(fetch("out"));
    assert!(err.contains("not complete"), "{err}");
    assert!(files_under(&dir.path().join("out")).is_empty());

    // Once DE serves the package faithfully, it completes.
    de.evidence_faults(&EvidenceFaults::default())
        .await
        .unwrap();
    complete(&fr, id).await;
    fetch_and_compare(&bloc, id, &dir.path().join("ok"), &files);

    // Damage at rest on FR: one flipped byte, then a truncated file. The fetch fails with a
    // clear reason and leaves nothing in the output directory.
    let sealed = bloc.node("FR").dir.join(format!("evidence/in/{id}.sealed"));
    let mut bytes = std::fs::read(&sealed).unwrap();
    let original = bytes.clone();
    bytes[700_000] ^= 1;
    std::fs::write(&sealed, &bytes).unwrap();
    let err = failed(fetch("flipped"));
    assert!(err.contains("damaged"), "{err}");
    assert!(files_under(&dir.path().join("flipped")).is_empty());
    std::fs::write(&sealed, &original[..original.len() - 100]).unwrap();
    let err = failed(fetch("truncated"));
    assert!(err.contains("truncated"), "{err}");
    assert!(files_under(&dir.path().join("truncated")).is_empty());
}
