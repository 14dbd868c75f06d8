//! Runs every checked-in corpus input and every past crash through its fuzz target, as a plain
//! test: a crash once found stays fixed.
//!
//! The seeds in `fuzz/corpus/<target>/` are written from the golden vectors and the examples
//! by `COMITY_WRITE_SEEDS=1 cargo test -p comity-fuzz --test corpus` (which writes and then
//! fails, so that a run that writes is never taken for a run that checked). Inputs that a long
//! fuzz run found are merged into the same directories by `scripts/fuzz --merge`; crashes are
//! kept in `fuzz/regressions/<target>/`, named for what they found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use comity_fuzz::TARGETS;
use comity_protocol::audit::Checkpoint;
use comity_protocol::bloc::{BlocConfig, MemberCard, Rules, Settings};
use comity_protocol::evidence::{EvidenceManifest, EvidenceRequest, EvidenceResponse, chunk_frame};
use comity_protocol::examples::sample_request;
use comity_protocol::messages::{CaseHave, EventsPage, PullRequest, Receipted};
use comity_protocol::report::{PublishedReport, Report};
use comity_protocol::{
    CaseEvent, CaseId, ExchangeRequest, ExchangeResponse, Hash32, MultiSigned, RejectCode,
    Rejection, SignedEnvelope, Timestamp, from_cbor, to_canonical_cbor,
};
use ed25519_dalek::SigningKey;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a corpus directory lists").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_and_past_crash_passes_its_target() {
    if std::env::var_os("COMITY_WRITE_SEEDS").is_some() {
        write_seeds();
        panic!("seeds written; run again without COMITY_WRITE_SEEDS to check them");
    }
    for (name, target) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} has no seeds");
        for input in corpus
            .iter()
            .chain(&inputs(&fuzz_dir().join("regressions").join(name)))
        {
            let bytes = std::fs::read(input).expect("a corpus input reads");
            // A panic names the target and the file through the test's own output.
            eprintln!("{name}: {}", input.display());
            target(&bytes);
        }
    }
}

#[test]
fn every_target_has_a_program() {
    for (name, _) in TARGETS {
        let program = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&program).expect("each target has its program");
        assert!(text.contains(&format!("comity_fuzz::{name}(")), "{name}");
    }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("a sample time")
}

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    to_canonical_cbor(value).expect("a sample encodes")
}

fn vector(name: &str) -> Vec<u8> {
    let path = fuzz_dir().join("../protocol/tests/vectors").join(name);
    std::fs::read(path).expect("the golden vectors are checked in")
}

fn example(name: &str) -> Vec<u8> {
    std::fs::read(fuzz_dir().join("../docs/examples").join(name)).expect("docs/examples")
}

/// Valid inputs for each target, from the golden vectors, the documented examples and values
/// built with the protocol's own types.
fn seeds() -> BTreeMap<&'static str, Vec<(&'static str, Vec<u8>)>> {
    let genesis = vector("genesis_event.cbor");
    let push = vector("push_envelope.cbor");
    let receipt = vector("receipt_envelope.cbor");
    let multi = vector("multi_signed.cbor");
    let genesis_env = SignedEnvelope::from_bytes(&genesis, usize::MAX).expect("vector");
    let push_env = SignedEnvelope::from_bytes(&push, usize::MAX).expect("vector");
    let receipt_env = SignedEnvelope::from_bytes(&receipt, usize::MAX).expect("vector");
    let event: CaseEvent = from_cbor(&genesis_env.body, usize::MAX).expect("vector");
    let case_id: CaseId = event.case_id;

    let mut s: BTreeMap<&'static str, Vec<(&'static str, Vec<u8>)>> = BTreeMap::new();
    s.insert(
        "canonical",
        vec![
            ("genesis", genesis.clone()),
            ("push", push.clone()),
            ("map", cbor(&BTreeMap::from([(1u8, "a"), (2, "b")]))),
        ],
    );
    s.insert(
        "envelope",
        vec![
            ("genesis", genesis.clone()),
            ("push", push.clone()),
            ("receipt", receipt.clone()),
            ("multi", multi.clone()),
        ],
    );
    s.insert(
        "exchange_request",
        vec![
            ("push", cbor(&ExchangeRequest::Push(push_env.clone()))),
            (
                "pull",
                cbor(&ExchangeRequest::Pull(PullRequest {
                    cases: vec![CaseHave {
                        case_id,
                        have: BTreeMap::from([(event.author.clone(), 1)]),
                    }],
                    range: None,
                })),
            ),
            ("policy", cbor(&ExchangeRequest::Policy)),
            (
                "consistency",
                cbor(&ExchangeRequest::Consistency { old: 3, new: 9 }),
            ),
            ("bloc", cbor(&ExchangeRequest::Bloc { have: 2 })),
        ],
    );
    s.insert(
        "exchange_response",
        vec![
            (
                "receipt",
                cbor(&ExchangeResponse::Receipt(Receipted {
                    receipt: receipt_env.clone(),
                    events: vec![genesis_env.clone()],
                })),
            ),
            (
                "rejected",
                cbor(&ExchangeResponse::Rejected(Rejection {
                    code: RejectCode::Malformed,
                    detail: "the message is not a signed push".into(),
                })),
            ),
            (
                "events",
                cbor(&ExchangeResponse::Events(EventsPage {
                    events: vec![genesis_env.clone()],
                    more: true,
                    answered_at: None,
                })),
            ),
            ("policy", cbor(&ExchangeResponse::Policy(None))),
        ],
    );
    s.insert(
        "case_event",
        vec![
            ("genesis", genesis_env.body.clone()),
            ("log", cbor(&vec![genesis_env.clone()])),
        ],
    );
    let manifest = EvidenceManifest {
        case_id,
        from: "DE".parse().expect("DE"),
        to: "FR".parse().expect("FR"),
        created_at: at("2026-07-01T10:00:00Z"),
        chunk_size: 1 << 20,
        total_bytes: 3 << 19,
        file_count: 1,
        handshake: vec![7; 48],
        sealed_index: vec![9; 80],
        chunks: vec![Hash32([1; 32]), Hash32([2; 32])],
    };
    s.insert(
        "evidence",
        vec![
            (
                "manifest_request",
                cbor(&EvidenceRequest::Manifest { case_id }),
            ),
            (
                "chunk_request",
                cbor(&EvidenceRequest::Chunk {
                    case_id,
                    root: Hash32([3; 32]),
                    index: 1,
                }),
            ),
            (
                "chunk",
                chunk_frame::<()>(40, |b| {
                    b.fill(5);
                    Ok(())
                })
                .expect("a chunk frame"),
            ),
            (
                "refused",
                cbor(&EvidenceResponse::Refused {
                    reason: "no such package".into(),
                }),
            ),
            ("manifest", cbor(&manifest)),
        ],
    );
    let report = PublishedReport {
        issuer: "DE".parse().expect("DE"),
        issued_at: at("2026-11-30T00:00:00Z"),
        report: Report {
            jurisdiction: "DE".into(),
            period: Some("2026-11".parse().expect("a period")),
            ..Report::default()
        },
    };
    let checkpoint = Checkpoint {
        log: "DE".parse().expect("DE"),
        tree_size: 12,
        root: Hash32([4; 32]),
        at: at("2026-11-30T00:00:00Z"),
    };
    s.insert(
        "gossip",
        vec![
            ("year", b"2026".to_vec()),
            ("quarter", b"2026-Q3".to_vec()),
            ("month", b"2026-11".to_vec()),
            (
                "report",
                SignedEnvelope::sign(&report, &key(2))
                    .expect("signs")
                    .to_bytes(),
            ),
            (
                "checkpoint",
                SignedEnvelope::sign(&checkpoint, &key(2))
                    .expect("signs")
                    .to_bytes(),
            ),
        ],
    );
    let card = |seed: u8, jurisdiction: &str| {
        MemberCard {
            bloc: "fuzz".into(),
            jurisdiction: jurisdiction.parse().expect("a jurisdiction"),
            name: format!("{jurisdiction} central authority"),
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            transport_key: comity_protocol::PublicKey(key(seed).verifying_key().to_bytes()),
            signing_key: comity_protocol::PublicKey(key(seed + 1).verifying_key().to_bytes()),
            sealing_key: None,
            made_at: at("2026-07-01T10:00:00Z"),
        }
        .sign(&key(seed + 1), &key(seed))
    };
    let cards = [card(10, "DE"), card(20, "FR")];
    let config = BlocConfig::genesis(
        "fuzz",
        &cards,
        Rules::default(),
        Settings::default(),
        at("2026-07-01T10:00:00Z"),
    )
    .expect("a genesis of two founders");
    let mut signed = MultiSigned::new(&config).expect("encodes");
    signed.add_signature(&key(11));
    signed.add_signature(&key(21));
    s.insert(
        "bloc",
        vec![
            ("genesis", signed.to_bytes()),
            ("config", cbor(&config)),
            ("card", cards[0].to_bytes()),
        ],
    );
    s.insert("policy_file", vec![("example", example("policy.toml"))]);
    let request = serde_json::to_vec_pretty(&sample_request()).expect("JSON");
    s.insert(
        "request_file",
        vec![("example", example("request.toml")), ("json", request)],
    );
    let config = comity_node::config::Config::new(
        "DE".parse().expect("DE"),
        "/ip4/0.0.0.0/tcp/4001".parse().expect("an address"),
        "127.0.0.1:7401".parse().expect("an address"),
    );
    s.insert(
        "node_config",
        vec![("commented", config.to_commented_toml().into_bytes())],
    );
    s.insert(
        "bundle",
        vec![(
            "parts",
            [
                comity_protocol::bundle::encode_part(&signed.to_bytes()),
                comity_protocol::bundle::encode_part(&genesis),
            ]
            .concat(),
        )],
    );
    s
}

fn write_seeds() {
    for (target, files) in seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("a corpus directory");
        for (name, bytes) in files {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("a seed writes");
        }
    }
}
