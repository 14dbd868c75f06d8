//! Comity's signatures are standard COSE: an independent implementation (pycose, in the
//! virtualenv that `scripts/bootstrap` makes) verifies the checked-in vectors and refuses
//! them once tampered with. `scripts/cose-check.py` is the checker; the same checker runs on
//! objects taken from a running node in `testnet/tests/exchange.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("..")
}

/// The virtualenv's Python: `$COMITY_VENV`, else `~/.cache/comity-venv`, as bootstrap makes it.
fn python() -> PathBuf {
    let venv = std::env::var_os("COMITY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/comity-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/bootstrap, which installs pycose there",
        python.display()
    );
    python
}

/// Runs the checker on `files`; the JSON line of each, and whether all verified.
fn cose_check(files: &[&Path]) -> (bool, Vec<serde_json::Value>) {
    let out = Command::new(python())
        .arg(repo().join("scripts/cose-check.py"))
        .args(files)
        .output()
        .expect("the checker starts");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect::<Vec<serde_json::Value>>();
    assert_eq!(
        lines.len(),
        files.len(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), lines)
}

const VECTORS: [&str; 4] = [
    "genesis_event.cbor",
    "push_envelope.cbor",
    "receipt_envelope.cbor",
    "multi_signed.cbor",
];

#[test]
fn pycose_verifies_the_vectors() {
    let dir = repo().join("protocol/tests/vectors");
    let files: Vec<PathBuf> = VECTORS.iter().map(|v| dir.join(v)).collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (ok, lines) = cose_check(&refs);
    assert!(ok, "{lines:#?}");
    assert_eq!(lines[0]["kind"], "COSE_Sign1");
    assert_eq!(lines[0]["content_type"], "application/comity.event.v1+cbor");
    assert_eq!(
        lines[2]["content_type"],
        "application/comity.receipt.v1+cbor"
    );
    assert_eq!(lines[3]["kind"], "COSE_Sign");
    assert_eq!(lines[3]["signers"].as_array().unwrap().len(), 2);
}

#[test]
fn pycose_refuses_tampered_vectors() {
    let dir = repo().join("protocol/tests/vectors");
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in VECTORS {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        // One bit of the payload's last byte, and one of the signature's last byte.
        for (what, at) in [
            ("payload", bytes.len() - 70),
            ("signature", bytes.len() - 1),
        ] {
            let mut tampered = bytes.clone();
            tampered[at] ^= 0x01;
            let path = tmp.path().join(format!("{name}.{what}"));
            std::fs::write(&path, tampered).unwrap();
            files.push(path);
        }
    }
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (ok, lines) = cose_check(&refs);
    assert!(!ok);
    for line in &lines {
        assert_eq!(line["ok"], false, "accepted a tampered object: {line}");
    }
}
