//! `comity-verify`: checks what Comity signs, offline, with nothing but `comity-protocol` — a
//! case bundle from `comity case export`, any single signed object, an audit proof from
//! `comity audit prove` — and says, check by check, what holds and what does not.
//!
//! It never opens a network connection and never writes anything but its report.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use comity_protocol::audit::{
    CheckpointConsistency, EntryProof, check_consistency, check_entry, consistency_statement,
    entry_statements,
};
use comity_protocol::bundle::{BundleReport, MAX_PART, Verifier, part_len};
use comity_protocol::{CaseId, MultiSigned, PublicKey, SignedEnvelope, limits};

mod evidence;
mod report;

#[derive(Debug, Parser)]
#[command(
    name = "comity-verify",
    version,
    about = "Verify Comity case bundles, signed objects and audit proofs offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A case bundle: every signature, the log's fold, the receipt's binding to the request,
    /// the evidence manifest and chunks, every audit proof and cosignature.
    Bundle {
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// Print a printable HTML report (to attach to a court file).
        #[arg(long)]
        html: bool,
        /// Also show the request's content (personal data: selectors, names, the offence).
        #[arg(long)]
        show_content: bool,
        /// The case the bundle must be of (refused if it is another's).
        #[arg(long)]
        case: Option<CaseId>,
        /// Once the bundle verifies, open its sealed evidence into this new directory
        /// (needs --sealing-key; the bundle must have been exported --with-evidence).
        #[arg(long, requires = "sealing_key")]
        open_evidence: Option<PathBuf>,
        /// The requesting member's sealing key file (64 hex characters), which the evidence
        /// is sealed to.
        #[arg(long)]
        sealing_key: Option<PathBuf>,
    },
    /// One signed object (COSE_Sign1 or COSE_Sign, raw bytes or hex): its kind, signers,
    /// whether each signature verifies against its key id, and its body.
    Object {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// An audit proof printed by `comity audit prove` or `comity audit consistency`.
    Proof {
        file: PathBuf,
        /// The public key of the node whose log it is (hex), from the bloc roster.
        #[arg(long)]
        signer: PublicKey,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Bundle {
            file,
            json,
            html,
            show_content,
            case,
            open_evidence,
            sealing_key,
        } => {
            let mut report = verify_bundle(&file, show_content)?;
            if let Some(case) = case {
                report.require_case(case);
            }
            if let (Some(out), Some(key)) = (&open_evidence, &sealing_key) {
                if !report.ok() {
                    anyhow::bail!(
                        "the bundle does not verify, so its evidence is not opened: {}",
                        report
                            .first_failure()
                            .and_then(|c| c.problem.clone())
                            .unwrap_or_default()
                    );
                }
                for (name, size) in evidence::open(&file, key, out)? {
                    eprintln!(
                        "opened {name} ({size} bytes): matches the signed manifest's file table"
                    );
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if html {
                print!("{}", report::html(&report));
            } else {
                print!("{}", report::text(&report));
            }
            Ok(report.ok())
        }
        Command::Object { file, json } => object(&file, json),
        Command::Proof { file, signer } => proof(&file, &signer),
    }
}

/// Reads the bundle one byte string at a time (bounded: a part is read only if its length is
/// the one the signed header lists, and never past [`MAX_PART`]).
fn verify_bundle(path: &Path, show_content: bool) -> anyhow::Result<BundleReport> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut verifier = Verifier::new(show_content);
    match read_item(&mut reader, limits::MAX_REQUEST_FRAME as u64)? {
        Item::Bytes(header) => {
            if !verifier.header(&header) {
                return Ok(verifier.finish());
            }
        }
        Item::End => anyhow::bail!("{} is empty", path.display()),
        Item::Bad(why) => {
            verifier.header(&[]);
            let mut report = verifier.finish();
            report.checks[0].problem = Some(format!("this is not a Comity case bundle: {why}"));
            return Ok(report);
        }
    }
    loop {
        let limit = verifier.expected_len().unwrap_or(0).min(MAX_PART as u64);
        match read_item(&mut reader, limit)? {
            Item::Bytes(part) => verifier.part(&part),
            Item::End => break,
            Item::Bad(why) => {
                verifier.unreadable(why);
                break;
            }
        }
    }
    Ok(verifier.finish())
}

enum Item {
    Bytes(Vec<u8>),
    End,
    Bad(String),
}

fn read_item(reader: &mut impl Read, limit: u64) -> anyhow::Result<Item> {
    let mut head = [0u8; 9];
    if reader.read(&mut head[..1])? == 0 {
        return Ok(Item::End);
    }
    let extra = match head[0] & 0x1f {
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => 0,
    };
    if reader.read_exact(&mut head[1..1 + extra]).is_err() {
        return Ok(Item::Bad("the file ends inside an item's head".into()));
    }
    let Some((len, _)) = part_len(&head[..1 + extra]) else {
        return Ok(Item::Bad(
            "an item is not a CBOR byte string: this is not a case bundle, or it is damaged".into(),
        ));
    };
    if len > limit {
        return Ok(Item::Bad(format!(
            "an item of {len} bytes where the signed header lists at most {limit}: the bundle was altered"
        )));
    }
    let mut bytes = vec![0u8; len as usize];
    if reader.read_exact(&mut bytes).is_err() {
        return Ok(Item::Bad(
            "the file ends inside an item: the bundle was truncated".into(),
        ));
    }
    Ok(Item::Bytes(bytes))
}

/// The file's bytes: raw, or hex text (as the admin API's JSON shows COSE objects).
fn read_object(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(trimmed).context("the file looks like hex but does not decode");
    }
    Ok(bytes)
}

fn object(path: &Path, json: bool) -> anyhow::Result<bool> {
    let bytes = read_object(path)?;
    let max = limits::MAX_REQUEST_FRAME.max(limits::MAX_RESPONSE_FRAME);
    let (kind, content_type, checks, body) = if bytes.starts_with(&[0xd8, 98]) {
        let object = MultiSigned::from_bytes(&bytes, max)
            .with_context(|| format!("{} is not a signed Comity object", path.display()))?;
        let checks: Vec<(PublicKey, Result<(), String>)> = object
            .verify_signatures()
            .into_iter()
            .map(|(key, check)| (key, check.map_err(|e| e.to_string())))
            .collect();
        ("COSE_Sign", object.content_type, checks, object.body)
    } else {
        let envelope = SignedEnvelope::from_bytes(&bytes, max)
            .with_context(|| format!("{} is not a signed Comity object", path.display()))?;
        let check = envelope.verify_signature().map_err(|e| e.to_string());
        (
            "COSE_Sign1",
            envelope.content_type,
            vec![(envelope.signer, check)],
            envelope.body,
        )
    };
    let body: ciborium::Value = comity_protocol::from_cbor(&body, max).context("the body")?;
    let body = report::cbor_to_json(&body);
    let ok = checks.iter().all(|(_, c)| c.is_ok());
    if json {
        let signers: Vec<_> = checks
            .iter()
            .map(|(key, check)| {
                serde_json::json!({
                    "key": key.to_string(),
                    "signature_valid": check.is_ok(),
                    "problem": check.as_ref().err(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "kind": kind,
                "content_type": content_type,
                "signers": signers,
                "body": body,
            }))?
        );
    } else {
        println!("{kind}, content type {content_type}");
        for (key, check) in &checks {
            match check {
                Ok(()) => println!("  ✓ signed by key {key}"),
                Err(e) => println!("  ✗ signature by key {key}: {e}"),
            }
        }
        println!("whose keys these are, check against the bloc's roster");
        println!("body:\n{}", serde_json::to_string_pretty(&body)?);
    }
    Ok(ok)
}

fn proof(path: &Path, signer: &PublicKey) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let key = signer
        .verifying_key()
        .map_err(|e| anyhow::anyhow!("--signer: {e}"))?;
    if let Ok(proof) = serde_json::from_str::<EntryProof>(&text) {
        return Ok(match check_entry(&proof, &key) {
            Ok((checkpoint, cosigners)) => {
                for line in entry_statements(&proof, &checkpoint, &cosigners) {
                    println!("✓ {line}");
                }
                true
            }
            Err(e) => {
                println!("✗ the proof does not hold: {e}");
                false
            }
        });
    }
    let proof: CheckpointConsistency = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is neither an entry nor a consistency proof",
            path.display()
        )
    })?;
    Ok(match check_consistency(&proof, &key) {
        Ok((old, new)) => {
            println!("✓ {}", consistency_statement(&old, &new));
            true
        }
        Err(e) => {
            println!("✗ the proof does not hold: {e}");
            false
        }
    })
}
