//! Court-ready case bundles between real nodes: a case runs its lifecycle with evidence, FR
//! exports it, both nodes are stopped and their directories deleted, and `comity-verify`
//! checks the bundle alone. One changed byte in any part fails it and names the part; a
//! truncated bundle, another case's, one missing a key, or random bytes each give a clear
//! error. The events a node signed also verify with pycose, an independent COSE library.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use comity_node::admin::api::Action;
use comity_node::roster::EvidenceLimits;
use comity_protocol::bundle::{BundleHeader, PartKind, encode_part, part_len};
use comity_protocol::{CaseId, SignedEnvelope, from_cbor};
use common::*;

const CONNECT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(60);

fn verify_binary() -> PathBuf {
    let comity = comity_testnet::comity_binary().unwrap();
    let verify = comity.with_file_name("comity-verify");
    assert!(
        verify.is_file(),
        "{} is missing: cargo build --workspace --bins",
        verify.display()
    );
    verify
}

fn verify(args: &[&str]) -> Output {
    Command::new(verify_binary()).args(args).output().unwrap()
}

/// `comity-verify bundle FILE --json`: whether it verified, and the report.
fn verify_json(file: &Path, extra: &[&str]) -> (bool, serde_json::Value) {
    let mut args = vec!["bundle", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = verify(&args);
    assert_ne!(
        out.status.code(),
        Some(101),
        "comity-verify panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

fn first_failure(report: &serde_json::Value) -> String {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ok"] == false)
        .map(|c| format!("{} — {}", c["what"], c["problem"]))
        .unwrap_or_default()
}

/// `comity case export` at the node whose config is `config`.
fn export(config: &Path, id: CaseId, out: &Path, purpose: &str, with_evidence: bool) -> Output {
    let id = id.to_string();
    let mut args = vec![
        "case",
        "export",
        &id,
        "--out",
        out.to_str().unwrap(),
        "--purpose",
        purpose,
    ];
    if with_evidence {
        args.push("--with-evidence");
    }
    comity(config, &args)
}

/// Where each item of the bundle sits: (offset of its bytes, length).
fn items(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let (len, head) = part_len(&bytes[at..]).unwrap();
        out.push((at + head, len as usize));
        at += head + len as usize;
    }
    out
}

fn header(bytes: &[u8]) -> (SignedEnvelope, BundleHeader) {
    let (at, len) = items(bytes)[0];
    let envelope = SignedEnvelope::from_bytes(&bytes[at..at + len], 1 << 20).unwrap();
    let header = from_cbor(&envelope.body, 1 << 20).unwrap();
    (envelope, header)
}

fn write_evidence(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    [("records.csv", 200_000usize), ("note.txt", 1_000)]
        .iter()
        .map(|(name, size)| {
            let bytes: Vec<u8> = (0..*size)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// The virtualenv's Python with pycose (made by scripts/bootstrap).
fn python() -> PathBuf {
    let venv = std::env::var_os("COMITY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/comity-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/bootstrap",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_case_verifies_offline_and_any_change_is_named() {
    let (dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.set_evidence_limits(EvidenceLimits {
        max_package_bytes: 1 << 30,
        chunk_bytes: 64 * 1024,
    })
    .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    // The whole lifecycle, with evidence.
    let id = accepted_case(&bloc).await;
    let keep = tempfile::tempdir().unwrap();
    let files = write_evidence(&keep.path().join("files"));
    fulfil_with_evidence(&bloc, id, &files);
    let deadline = std::time::Instant::now() + SETTLE;
    while !fr
        .log(id)
        .await
        .unwrap()
        .entries
        .iter()
        .any(|e| e.kind == "evidence-received")
    {
        assert!(std::time::Instant::now() < deadline, "no evidence-received");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fr.act(id, &Action::Acknowledge).await.unwrap();
    fr.act(id, &Action::Close).await.unwrap();
    wait_for_state(&de, id, "closed", SETTLE).await;

    // Export from FR, with the sealed evidence; a second export to the same file is refused.
    let bundle = keep.path().join("case.bundle");
    let fr_config = bloc.node("FR").config.clone();
    let printed = ok(export(&fr_config, id, &bundle, "court file 2026/117", true));
    assert!(printed.contains("comity-verify bundle"), "{printed}");
    let again = export(&fr_config, id, &bundle, "again", false);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600,
        "a bundle holds the request's content: owner only"
    );
    // The export is a logged read of content.
    let access = fr.access_log(Some(id)).await.unwrap();
    assert!(
        access
            .iter()
            .any(|a| a.what == "export" && a.purpose == "court file 2026/117"),
        "{access:?}"
    );
    // DE deleted its sealed copy once FR confirmed: it cannot export the evidence itself.
    let refused = export(
        &bloc.node("DE").config,
        id,
        &keep.path().join("de.bundle"),
        "audit",
        true,
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("export from the requesting node"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Another case, for the "bundle of another case" check below.
    let other = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;

    // FR's signing key, to forge a header below as a careless exporter would.
    let fr_config = comity_node::config::Config::load(&fr_config).unwrap();
    let fr_key = (*comity_node::identity::NodeIdentity::load(
        &fr_config.key_path(),
        &fr_config.signing_key_path(),
    )
    .unwrap()
    .signing_key())
    .clone();

    // The requesting member's sealing key, which a court would be handed to open the evidence,
    // and DE's, which does not open it.
    let fr_sealing = keep.path().join("fr-sealing.key");
    std::fs::copy(bloc.node("FR").dir.join("sealing.key"), &fr_sealing).unwrap();
    let de_sealing = keep.path().join("de-sealing.key");
    std::fs::copy(bloc.node("DE").dir.join("sealing.key"), &de_sealing).unwrap();

    // Nothing of the bloc remains: both nodes stopped, their directories deleted.
    bloc.stop_all();
    drop(bloc);
    drop(dir);

    let (ok_, report) = verify_json(&bundle, &[]);
    assert!(ok_, "{}", first_failure(&report));
    assert_eq!(report["case_id"], id.to_string());
    assert_eq!(report["state_verified"], "closed");
    assert_eq!(report["state_recorded"], "closed");
    assert_eq!(report["requesting"], "FR");
    assert!(report["evidence_chunks"].as_u64().unwrap() >= 3);
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["proved"] == true), "{steps:?}");
    for kind in ["submitted", "fulfilled", "evidence-received", "closed"] {
        assert!(steps.iter().any(|s| s["kind"] == kind), "{kind}: {steps:?}");
    }
    assert!(
        report.get("content").is_none(),
        "no personal data unless asked"
    );
    // The human report and the HTML one say the same.
    let text = verify(&["bundle", bundle.to_str().unwrap()]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("VERIFIED: all"), "{text}");
    assert!(
        !text.contains("alice@example.org"),
        "selectors only with --show-content"
    );
    let html = verify(&["bundle", bundle.to_str().unwrap(), "--html"]);
    assert!(String::from_utf8_lossy(&html.stdout).contains("<h1>"));
    let shown = verify(&["bundle", bundle.to_str().unwrap(), "--show-content"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("alice@example.org"));
    let (_, wrong_case) = verify_json(&bundle, &["--case", &other.to_string()]);
    assert!(
        first_failure(&wrong_case).contains("another case"),
        "{}",
        first_failure(&wrong_case)
    );
    let (ok_, _) = verify_json(&bundle, &["--case", &id.to_string()]);
    assert!(ok_);

    // With the requester's sealing key, the evidence opens whole, every file as uploaded.
    let opened = keep.path().join("opened");
    let out = verify(&[
        "bundle",
        bundle.to_str().unwrap(),
        "--open-evidence",
        opened.to_str().unwrap(),
        "--sealing-key",
        fr_sealing.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for original in &files {
        let name = original.file_name().unwrap();
        assert_eq!(
            std::fs::read(opened.join(name)).unwrap(),
            std::fs::read(original).unwrap(),
            "{name:?}"
        );
    }
    let refused = verify(&[
        "bundle",
        bundle.to_str().unwrap(),
        "--open-evidence",
        keep.path().join("not-opened").to_str().unwrap(),
        "--sealing-key",
        de_sealing.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("does not open the package"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!keep.path().join("not-opened").exists());

    // The events and the receipt a real node signed verify with pycose too.
    let bytes = std::fs::read(&bundle).unwrap();
    let (_, head) = header(&bytes);
    let places = items(&bytes);
    let mut objects = Vec::new();
    for (i, part) in head.parts.iter().enumerate() {
        if matches!(
            part.kind,
            PartKind::Event | PartKind::Receipt | PartKind::Manifest
        ) {
            let (at, len) = places[i + 1];
            let file = keep.path().join(format!("object-{i}.cbor"));
            std::fs::write(&file, &bytes[at..at + len]).unwrap();
            objects.push(file);
        }
    }
    let checked = Command::new(python())
        .arg(
            std::path::Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test"))
                .join("../scripts/cose-check.py"),
        )
        .args(&objects)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // One changed byte in any part fails the bundle and names the part.
    for kind in [
        PartKind::Event,
        PartKind::Receipt,
        PartKind::Manifest,
        PartKind::Proof,
        PartKind::Chunk,
    ] {
        let i = head.parts.iter().position(|p| p.kind == kind).unwrap();
        let (at, len) = places[i + 1];
        let mut altered = bytes.clone();
        altered[at + len / 2] ^= 0x01;
        let file = keep.path().join(format!("altered-{kind}.bundle"));
        std::fs::write(&file, &altered).unwrap();
        let (ok_, report) = verify_json(&file, &[]);
        assert!(!ok_, "{kind} altered, still verified");
        let failure = first_failure(&report);
        assert!(
            failure.contains(&format!("({kind} 1)")) && failure.contains("altered"),
            "{kind}: {failure}"
        );
    }
    // The header itself: its signature.
    let mut altered = bytes.clone();
    let (at, len) = places[0];
    altered[at + len - 70] ^= 0x01;
    let file = keep.path().join("altered-header.bundle");
    std::fs::write(&file, &altered).unwrap();
    let (ok_, report) = verify_json(&file, &[]);
    assert!(!ok_);
    assert!(
        first_failure(&report).contains("header"),
        "{}",
        first_failure(&report)
    );

    // Truncated: the parts that are there are checked, the end is reported.
    let file = keep.path().join("truncated.bundle");
    std::fs::write(&file, &bytes[..bytes.len() - 1000]).unwrap();
    let (ok_, report) = verify_json(&file, &[]);
    assert!(!ok_);
    let all = report["checks"].to_string();
    assert!(all.contains("truncated"), "{all}");

    // Random bytes: not a bundle, said plainly.
    let file = keep.path().join("random.bundle");
    std::fs::write(
        &file,
        (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let (ok_, report) = verify_json(&file, &[]);
    assert!(!ok_);
    assert!(
        first_failure(&report).contains("not a Comity case bundle"),
        "{}",
        first_failure(&report)
    );

    // A bundle whose header, validly signed by FR, leaves out DE's key: DE's events, receipt
    // and manifest cannot be checked, and the report says so.
    let (_, mut stripped) = header(&bytes);
    stripped
        .members
        .retain(|m| m.jurisdiction.to_string() != "DE");
    let resigned = SignedEnvelope::sign(&stripped, &fr_key).unwrap();
    let mut rebuilt = encode_part(&resigned.to_bytes());
    rebuilt.extend_from_slice(&bytes[places[0].0 + places[0].1..]);
    let file = keep.path().join("missing-key.bundle");
    std::fs::write(&file, &rebuilt).unwrap();
    let (ok_, report) = verify_json(&file, &[]);
    assert!(!ok_);
    let header_check = &report["checks"][0];
    assert_eq!(header_check["ok"], true, "{header_check}");
    let failure = first_failure(&report);
    assert!(failure.contains("DE"), "{failure}");
}
