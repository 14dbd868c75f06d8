//! What the COSE form costs per signed object, beside the project-specific envelope it
//! replaced (kept here, as it was, as the baseline): sign and encode a request's genesis
//! event, then decode, check and open it, both ways in the same run, interleaved.
//!
//! `cargo run --release -p comity-protocol --example envelope_cost [-- cose|legacy N]`
//! With a mode, runs only that one N times (for `valgrind --tool=callgrind`, whose
//! instruction counts do not depend on what else the machine is doing).

use std::hint::black_box;
use std::time::Instant;

use comity_protocol::caselog::{CaseEvent, EventKind};
use comity_protocol::{
    CaseId, PublicKey, Signature64, SignedEnvelope, Timestamp, from_cbor, is_canonical,
    to_canonical_cbor,
};
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

/// The envelope before COSE: `domain || 0x00 || body` signed, the struct as canonical CBOR.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Legacy {
    version: u16,
    domain: String,
    signer: PublicKey,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    signature: Signature64,
}

const DOMAIN: &str = "comity/event/v1";

fn legacy_message(domain: &str, body: &[u8]) -> Vec<u8> {
    [domain.as_bytes(), &[0], body].concat()
}

fn legacy_sign(event: &CaseEvent, key: &SigningKey) -> Vec<u8> {
    let body = to_canonical_cbor(event).unwrap();
    let signature = key.sign(&legacy_message(DOMAIN, &body));
    to_canonical_cbor(&Legacy {
        version: 1,
        domain: DOMAIN.into(),
        signer: PublicKey::from(&key.verifying_key()),
        body,
        signature: Signature64(signature.to_bytes()),
    })
    .unwrap()
}

fn legacy_open(bytes: &[u8], key: &ed25519_dalek::VerifyingKey) -> CaseEvent {
    let envelope: Legacy = from_cbor(bytes, 1 << 20).unwrap();
    assert!(envelope.version == 1 && envelope.domain == DOMAIN);
    let signature = ed25519_dalek::Signature::from_bytes(&envelope.signature.0);
    key.verify_strict(
        &legacy_message(&envelope.domain, &envelope.body),
        &signature,
    )
    .unwrap();
    assert!(is_canonical(&envelope.body));
    from_cbor(&envelope.body, 1 << 20).unwrap()
}

fn cose_sign(event: &CaseEvent, key: &SigningKey) -> Vec<u8> {
    SignedEnvelope::sign(event, key).unwrap().to_bytes()
}

fn cose_open(bytes: &[u8], key: &ed25519_dalek::VerifyingKey) -> CaseEvent {
    SignedEnvelope::from_bytes(bytes, 1 << 20)
        .unwrap()
        .open(key)
        .unwrap()
}

fn genesis() -> CaseEvent {
    let request = comity_protocol::examples::sample_request();
    CaseEvent {
        case_id: CaseId::from_parts(1_790_000_000_000, 2),
        author: request.requesting.clone(),
        seq: 1,
        links: vec![],
        at: Timestamp::from_millis(1_790_000_000_000),
        kind: EventKind::Submitted {
            request: Box::new(request),
            approval: comity_protocol::examples::sample_approval(),
        },
    }
}

/// Microseconds per sign+encode and per decode+open, over `n` rounds.
fn time(
    n: usize,
    sign: fn(&CaseEvent, &SigningKey) -> Vec<u8>,
    open: fn(&[u8], &ed25519_dalek::VerifyingKey) -> CaseEvent,
) -> (f64, f64, usize) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let event = genesis();
    let started = Instant::now();
    let mut bytes = Vec::new();
    for _ in 0..n {
        bytes = black_box(sign(black_box(&event), &key));
    }
    let signing = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let started = Instant::now();
    for _ in 0..n {
        black_box(open(black_box(&bytes), &key.verifying_key()));
    }
    let opening = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    (signing, opening, bytes.len())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(2000);
    match args.first().map(String::as_str) {
        Some("cose") => {
            time(n, cose_sign, cose_open);
        }
        Some("legacy") => {
            time(n, legacy_sign, legacy_open);
        }
        _ => {
            let (mut legacy, mut cose) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                legacy.push(time(n, legacy_sign, legacy_open));
                cose.push(time(n, cose_sign, cose_open));
            }
            let median = |v: &mut Vec<(f64, f64, usize)>, f: fn(&(f64, f64, usize)) -> f64| {
                let mut xs: Vec<f64> = v.iter().map(f).collect();
                xs.sort_by(f64::total_cmp);
                xs[xs.len() / 2]
            };
            for (name, v) in [("legacy envelope", &mut legacy), ("COSE_Sign1", &mut cose)] {
                println!(
                    "{name:<16} sign+encode {:>7.1} µs   decode+check+open {:>7.1} µs   {} bytes",
                    median(v, |r| r.0),
                    median(v, |r| r.1),
                    v[0].2
                );
            }
        }
    }
}
