//! Court-ready case bundles: one self-contained file from which anyone can verify a case
//! without the network or either node — every signed event, the signed receipt, the signed
//! evidence manifest (and, if asked, the sealed evidence), an inclusion proof of every event in
//! the exporting node's audit log with the other members' cosignatures, and the keys that check
//! every signature.
//!
//! The file is a CBOR sequence (RFC 8742) of byte strings: first the exporting node's signed
//! [`BundleHeader`] (the bytes of a `COSE_Sign1`, `application/comity.case-bundle.v1+cbor`),
//! which lists every part that follows with its kind, size and BLAKE3 hash; then each part,
//! in that order. Parts are read one at a time, so a bundle with gigabytes of evidence is
//! verified in bounded memory.
//!
//! [`Verifier`] checks a bundle part by part and reports each check; it does no I/O.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, AuditWhat, EntryProof, check_entry};
use crate::caselog::{CaseEvent, CaseLog, EventKind};
use crate::envelope::{PublicKey, Signable, SignedEnvelope};
use crate::evidence::EvidenceManifest;
use crate::ids::{CaseId, Hash32, Jurisdiction, MessageId, Timestamp};
use crate::limits::MAX_REQUEST_FRAME;
use crate::messages::{EventPush, Receipt};
use crate::{AssistanceRequest, from_cbor, to_canonical_cbor};

/// Largest part a verifier reads into memory: an event, a proof, a sealed evidence chunk.
pub const MAX_PART: usize = 16 << 20;
/// Most parts one bundle may list (events, proofs and chunks together).
pub const MAX_PARTS: usize = 1 << 20;

/// A member whose key the bundle relies on, as the exporting node's roster lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BundleMember {
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub signing_key: PublicKey,
    /// How the key stood when the bundle was made, when it is no longer the member's current
    /// key: e.g. "signed by a key later revoked (version 4)". A member is listed once per key
    /// that signed something in the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What kind of object a part holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PartKind {
    /// A signed case event (`COSE_Sign1`), in the case log's fold order.
    Event,
    /// The executing member's signed receipt of the push that carried the request.
    Receipt,
    /// The executing member's signed evidence manifest.
    Manifest,
    /// An [`EntryProof`] (canonical CBOR) of one event in the exporter's audit log.
    Proof,
    /// One sealed evidence chunk, in manifest order.
    Chunk,
}

impl std::fmt::Display for PartKind {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            PartKind::Event => "event",
            PartKind::Receipt => "receipt",
            PartKind::Manifest => "evidence manifest",
            PartKind::Proof => "audit proof",
            PartKind::Chunk => "evidence chunk",
        })
    }
}

/// One part of the bundle: what it is, and the hash and size of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub kind: PartKind,
    pub len: u64,
    pub blake3: Hash32,
}

/// The signed first item of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BundleHeader {
    pub case_id: CaseId,
    /// The node that exported the bundle and signed this header; its audit log is the one
    /// the proofs are against.
    pub exported_by: Jurisdiction,
    pub exported_at: Timestamp,
    /// The case's state as the exporting node recorded it.
    pub state: Option<String>,
    /// The push that carried the request (what the receipt acknowledges).
    pub genesis_message: Option<MessageId>,
    pub members: Vec<BundleMember>,
    /// Every part that follows, in order.
    pub parts: Vec<Part>,
}

impl Signable for BundleHeader {
    const CONTENT_TYPE: &'static str = "application/comity.case-bundle.v1+cbor";
}

impl Part {
    pub fn of(kind: PartKind, bytes: &[u8]) -> Self {
        Self {
            kind,
            len: bytes.len() as u64,
            blake3: Hash32::of(bytes),
        }
    }
}

/// Encodes one part as the CBOR byte string that holds it in the sequence.
pub fn encode_part(bytes: &[u8]) -> Vec<u8> {
    let mut out = crate::canonical::bstr_head(bytes.len());
    out.extend_from_slice(bytes);
    out
}

/// Reads the head of one CBOR byte string: its length and the head's size. `None` if `head`
/// does not start a definite-length byte string (or is too short to say).
pub fn part_len(head: &[u8]) -> Option<(u64, usize)> {
    let first = *head.first()?;
    if first >> 5 != 2 {
        return None;
    }
    let take = |n: usize| -> Option<u64> {
        let bytes = head.get(1..1 + n)?;
        Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    match first & 0x1f {
        n @ 0..=23 => Some((u64::from(n), 1)),
        24 => Some((take(1)?, 2)),
        25 => Some((take(2)?, 3)),
        26 => Some((take(4)?, 5)),
        27 => Some((take(8)?, 9)),
        _ => None,
    }
}

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    pub what: String,
    pub ok: bool,
    /// Why it failed, in words that say what it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One step of the case, without content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Step {
    pub at: Timestamp,
    pub author: Jurisdiction,
    pub kind: String,
    pub event_id: Hash32,
    pub applied: bool,
    /// Whether an inclusion proof of this event in the exporter's audit log verified.
    pub proved: bool,
}

/// What a verification found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BundleReport {
    pub case_id: Option<CaseId>,
    pub exported_by: Option<Jurisdiction>,
    pub exported_at: Option<Timestamp>,
    pub requesting: Option<Jurisdiction>,
    pub executing: Option<Jurisdiction>,
    pub instrument: Option<String>,
    pub request_kind: Option<String>,
    pub state_recorded: Option<String>,
    pub state_verified: Option<String>,
    pub steps: Vec<Step>,
    /// Witnesses whose cosignature of the proving checkpoint verified, by jurisdiction.
    pub cosigners: Vec<Jurisdiction>,
    pub evidence_chunks: u64,
    /// The keys the bundle relies on, as its header lists them: a reader compares them with
    /// the bloc's roster.
    pub keys: Vec<BundleMember>,
    pub checks: Vec<Check>,
    /// The request itself: only when asked for (it holds personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<AssistanceRequest>,
}

impl BundleReport {
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// Adds the check that the bundle is of case `expected` (the case a reader was given).
    pub fn require_case(&mut self, expected: CaseId) {
        let outcome = match self.case_id {
            Some(found) if found == expected => Ok(()),
            Some(found) => Err(format!(
                "this is a bundle of another case ({found}), not of {expected}"
            )),
            None => Err("the bundle names no case".into()),
        };
        self.check(format!("the bundle is of case {expected}"), outcome);
    }

    /// The first check that failed.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.ok)
    }

    fn check(&mut self, what: impl Into<String>, outcome: Result<(), String>) -> bool {
        let ok = outcome.is_ok();
        self.checks.push(Check {
            what: what.into(),
            ok,
            problem: outcome.err(),
        });
        ok
    }
}

/// Verifies a bundle fed to it part by part: [`Verifier::header`] with the first item's
/// bytes, [`Verifier::part`] with each following item's bytes, then [`Verifier::finish`].
#[derive(Debug)]
pub struct Verifier {
    report: BundleReport,
    header: Option<BundleHeader>,
    keys: BTreeMap<Jurisdiction, Vec<VerifyingKey>>,
    exporter: Option<VerifyingKey>,
    log: Option<CaseLog>,
    events: Vec<SignedEnvelope>,
    receipt: Option<SignedEnvelope>,
    manifest: Option<EvidenceManifest>,
    manifest_root: Option<Hash32>,
    proofs: Vec<EntryProof>,
    next: usize,
    chunk: u64,
    chunks_ok: bool,
    show_content: bool,
}

impl Verifier {
    pub fn new(show_content: bool) -> Self {
        Self {
            report: BundleReport::default(),
            header: None,
            keys: BTreeMap::new(),
            exporter: None,
            log: None,
            events: Vec::new(),
            receipt: None,
            manifest: None,
            manifest_root: None,
            proofs: Vec::new(),
            next: 0,
            chunk: 0,
            chunks_ok: true,
            show_content,
        }
    }

    /// The first item: the exporter's signed header. Returns false if nothing after it can be
    /// checked (the report says why).
    pub fn header(&mut self, bytes: &[u8]) -> bool {
        let envelope = match SignedEnvelope::from_bytes(bytes, MAX_REQUEST_FRAME) {
            Ok(e) => e,
            Err(e) => {
                return self.report.check(
                    "the bundle starts with a signed header",
                    Err(format!("this is not a Comity case bundle: {e}")),
                );
            }
        };
        let header: BundleHeader = match envelope
            .content_type
            .eq(BundleHeader::CONTENT_TYPE)
            .then(|| from_cbor(&envelope.body, MAX_REQUEST_FRAME))
        {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                return self.report.check(
                    "the bundle starts with a signed header",
                    Err(format!("the header does not decode: {e}")),
                );
            }
            None => {
                return self.report.check(
                    "the bundle starts with a signed header",
                    Err(format!(
                        "the first object is a {:?}, not a case bundle header",
                        envelope.content_type
                    )),
                );
            }
        };
        for member in &header.members {
            if let Ok(key) = member.signing_key.verifying_key() {
                self.keys
                    .entry(member.jurisdiction.clone())
                    .or_default()
                    .push(key);
            }
        }
        self.report.case_id = Some(header.case_id);
        self.report.exported_by = Some(header.exported_by.clone());
        self.report.exported_at = Some(header.exported_at);
        self.report.state_recorded = header.state.clone();
        self.report.keys = header.members.clone();
        let exporter = self.listed_key(&header.exported_by, &envelope.signer);
        let signed = match exporter {
            None => Err(format!(
                "the bundle lists no key for its exporter {}; it cannot be attributed",
                header.exported_by
            )),
            Some(key) => envelope
                .open::<BundleHeader>(&key)
                .map(|_| ())
                .map_err(|e| format!("{e}: the header was altered after export")),
        };
        let ok = self.report.check(
            format!(
                "header signed by the exporting member {}",
                header.exported_by
            ),
            signed,
        );
        if header.parts.len() > MAX_PARTS {
            return self.report.check(
                "the header lists a bounded number of parts",
                Err(format!(
                    "{} parts, more than {MAX_PARTS}",
                    header.parts.len()
                )),
            );
        }
        self.exporter = exporter;
        self.log = Some(CaseLog::new(header.case_id));
        self.header = Some(header);
        ok
    }

    /// The length the next part must have (so that a reader can refuse a longer one before
    /// reading it), or `None` when every listed part has been read.
    pub fn expected_len(&self) -> Option<u64> {
        self.header
            .as_ref()
            .and_then(|h| h.parts.get(self.next))
            .map(|p| p.len)
    }

    /// The reader could not locate the next part (the file ends inside it, or what follows is
    /// not a byte string): what was read is still checked, and this is a failure.
    pub fn unreadable(&mut self, why: String) {
        self.report.check(
            format!("part {} can be read", self.next + 1),
            Err(format!("{why}: every part after it is unchecked")),
        );
        self.next = usize::MAX;
    }

    /// The next part's bytes.
    pub fn part(&mut self, bytes: &[u8]) {
        let Some(part) = self
            .header
            .as_ref()
            .and_then(|h| h.parts.get(self.next))
            .cloned()
        else {
            self.report.check(
                "the bundle holds only the parts its header lists",
                Err("an extra item follows the last listed part".into()),
            );
            return;
        };
        let index = self.next;
        self.next += 1;
        if Hash32::of(bytes) != part.blake3 || bytes.len() as u64 != part.len {
            let header = self.header.as_ref().expect("a part follows a header");
            let nth = header.parts[..index]
                .iter()
                .filter(|p| p.kind == part.kind)
                .count()
                + 1;
            self.report.check(
                format!("part {} ({} {nth}) is the one the header lists", index + 1, part.kind),
                Err("its bytes differ from the hash the exporter signed: the bundle was altered or damaged".into()),
            );
            if part.kind == PartKind::Chunk {
                self.chunk += 1;
                self.chunks_ok = false;
            }
            return;
        }
        match part.kind {
            PartKind::Event => self.event(bytes),
            PartKind::Receipt => self.receipt(bytes),
            PartKind::Manifest => self.manifest(bytes),
            PartKind::Proof => match from_cbor::<EntryProof>(bytes, MAX_PART) {
                Ok(p) => self.proofs.push(p),
                Err(e) => {
                    self.report.check(
                        format!("part {index}: an audit proof"),
                        Err(format!("does not decode: {e}")),
                    );
                }
            },
            PartKind::Chunk => self.chunk(bytes),
        }
    }

    /// `signer`, if the header lists it as one of `j`'s keys.
    fn listed_key(&self, j: &Jurisdiction, signer: &PublicKey) -> Option<VerifyingKey> {
        self.keys
            .get(j)?
            .iter()
            .find(|k| k.as_bytes() == &signer.0)
            .copied()
    }

    fn key_of(
        &self,
    ) -> impl Fn(&CaseEvent, &PublicKey) -> Result<VerifyingKey, crate::caselog::KeyProblem> + '_
    {
        |event, signer| {
            self.listed_key(&event.author, signer)
                .ok_or(crate::caselog::KeyProblem::NotAMember)
        }
    }

    fn event(&mut self, bytes: &[u8]) {
        let n = self.events.len() + 1;
        let outcome = SignedEnvelope::from_bytes(bytes, MAX_PART)
            .map_err(|e| e.to_string())
            .and_then(|envelope| {
                let mut log = self.log.take().expect("a header was read");
                let inserted = log
                    .insert(envelope.clone(), self.key_of())
                    .map(|_| envelope)
                    .map_err(|e| e.to_string());
                self.log = Some(log);
                inserted
            });
        let what = format!("event {n}: signed by its author, and a valid step of the case log");
        if let Ok(envelope) = &outcome {
            self.events.push(envelope.clone());
        }
        self.report.check(what, outcome.map(|_| ()));
    }

    /// The executing member and `signer` as its key, if the header lists it.
    fn executing_key(&self, signer: &PublicKey) -> Option<(Jurisdiction, VerifyingKey)> {
        let executing = self.log.as_ref()?.view().executing?;
        let key = self.listed_key(&executing, signer)?;
        Some((executing, key))
    }

    fn receipt(&mut self, bytes: &[u8]) {
        match SignedEnvelope::from_bytes(bytes, MAX_PART) {
            Ok(envelope) => self.receipt = Some(envelope),
            Err(e) => {
                self.report.check("the receipt decodes", Err(e.to_string()));
            }
        }
    }

    fn manifest(&mut self, bytes: &[u8]) {
        let outcome = SignedEnvelope::from_bytes(bytes, MAX_PART)
            .map_err(|e| e.to_string())
            .and_then(|envelope| {
                let (executing, key) = self
                    .executing_key(&envelope.signer)
                    .ok_or("not signed by a key the header lists for the executing member")?;
                let manifest = envelope
                    .open::<EvidenceManifest>(&key)
                    .map_err(|e| format!("not signed by {executing}: {e}"))?;
                self.manifest_root = Some(EvidenceManifest::root(&envelope));
                self.manifest = Some(manifest);
                Ok(())
            });
        self.report
            .check("evidence manifest signed by the executing member", outcome);
    }

    fn chunk(&mut self, bytes: &[u8]) {
        let index = self.chunk;
        self.chunk += 1;
        let expected = self
            .manifest
            .as_ref()
            .and_then(|m| m.chunks.get(index as usize));
        if expected != Some(&Hash32::of(bytes)) {
            self.chunks_ok = false;
            self.report.check(
                format!("evidence chunk {index} is the one the signed manifest names"),
                Err("its BLAKE3 hash is not the manifest's: the evidence was altered".into()),
            );
        }
    }

    /// Runs the checks that need every part, and returns the report.
    pub fn finish(mut self) -> BundleReport {
        let Some(header) = self.header.take() else {
            return self.report;
        };
        if self.next < header.parts.len() && self.next != usize::MAX {
            self.report.check(
                "every part the header lists is present",
                Err(format!(
                    "the bundle ends after {} of {} parts: it was truncated",
                    self.next,
                    header.parts.len()
                )),
            );
        }
        let view = self.log.as_ref().expect("a header was read").view();
        self.report.requesting = view.requesting.clone();
        self.report.executing = view.executing.clone();
        self.report.state_verified = view.state.map(|s| s.code().to_owned());
        self.report.check(
            "the case log has its genesis",
            view.submitted_at
                .map(|_| ())
                .ok_or_else(|| "no request event: the log is incomplete".to_owned()),
        );
        if let Some(genesis) = self.events.first().and_then(|e| {
            from_cbor::<CaseEvent>(&e.body, MAX_REQUEST_FRAME)
                .ok()
                .map(|ev| (e.clone(), ev))
        }) && let EventKind::Submitted { request, .. } = &genesis.1.kind
        {
            self.report.instrument = Some(request.instrument.to_string());
            self.report.request_kind = Some(request.kind.to_string());
            if self.show_content {
                self.report.content = Some((**request).clone());
            }
            self.check_receipt(&header, &genesis.0, &genesis.1);
        }
        let recorded = header.state.clone();
        self.report.check(
            "the state folded from the log is the state the exporter recorded",
            if recorded == self.report.state_verified {
                Ok(())
            } else {
                Err(format!(
                    "the log folds to {:?}, the exporter recorded {:?}: events are missing or were added",
                    self.report.state_verified, recorded
                ))
            },
        );
        if let Some(named) = view.manifest_root {
            let outcome = match self.manifest_root {
                Some(root) if root == named => Ok(()),
                Some(root) => Err(format!(
                    "the manifest's root is {root}, the fulfilment names {named}"
                )),
                None => Err("the fulfilment names a package, the bundle holds no manifest".into()),
            };
            self.report.check(
                "the evidence manifest is the package the fulfilment names",
                outcome,
            );
        }
        if let Some(manifest) = &self.manifest {
            self.report.evidence_chunks = self.chunk;
            if self.chunk > 0 {
                let complete = self.chunk == manifest.chunks.len() as u64;
                self.report.check(
                    format!(
                        "evidence: {} sealed chunks as the manifest lists",
                        self.chunk
                    ),
                    if complete && self.chunks_ok {
                        Ok(())
                    } else if !complete {
                        Err(format!(
                            "{} of {} chunks present",
                            self.chunk,
                            manifest.chunks.len()
                        ))
                    } else {
                        Err("a chunk differs from the manifest".into())
                    },
                );
            }
        }
        self.check_proofs(&header, &view);
        self.report
    }

    fn check_receipt(
        &mut self,
        header: &BundleHeader,
        genesis: &SignedEnvelope,
        event: &CaseEvent,
    ) {
        let Some(receipt) = self.receipt.clone() else {
            if self.report.state_verified.as_deref() != Some("submitted") {
                self.report.check(
                    "the executing member's signed receipt of the request",
                    Err("the bundle holds no receipt".into()),
                );
            }
            return;
        };
        let outcome = (|| {
            let (executing, key) = self
                .executing_key(&receipt.signer)
                .ok_or("not signed by a key the header lists for the executing member")?;
            let body: Receipt = receipt
                .open(&key)
                .map_err(|e| format!("not signed by {executing}: {e}"))?;
            let message_id = header
                .genesis_message
                .ok_or("the header names no message that carried the request")?;
            if body.message_id != message_id || body.case_id != event.case_id {
                return Err(format!(
                    "the receipt is for message {} of case {}, not for the request's push",
                    body.message_id, body.case_id
                ));
            }
            if body.receiver != executing {
                return Err(format!("the receipt names {} as receiver", body.receiver));
            }
            // The push that carried the request is dated like the genesis and holds only it,
            // so its exact body can be rebuilt and hashed.
            let push = EventPush {
                message_id,
                case_id: event.case_id,
                sent_at: event.at,
                events: vec![genesis.clone()],
            };
            let hash = Hash32::of(&to_canonical_cbor(&push).map_err(|e| e.to_string())?);
            if hash != body.body_hash {
                return Err(
                    "the receipt's body hash is not the hash of the push that carried this request"
                        .into(),
                );
            }
            Ok(())
        })();
        self.report.check(
            "the executing member's signed receipt names exactly this request",
            outcome,
        );
    }

    fn check_proofs(&mut self, header: &BundleHeader, view: &crate::CaseView) {
        let Some(exporter) = self.exporter else {
            return;
        };
        let ids: BTreeMap<Hash32, ()> = self
            .events
            .iter()
            .map(|e| (Hash32::of(&e.to_bytes()), ()))
            .collect();
        let mut proved = BTreeMap::new();
        let witnesses: BTreeMap<PublicKey, Jurisdiction> = header
            .members
            .iter()
            .map(|m| (m.signing_key, m.jurisdiction.clone()))
            .collect();
        let mut cosigners = std::collections::BTreeSet::new();
        for (i, proof) in self.proofs.iter().enumerate() {
            // The checkpoint may predate a rotation of the exporter's key: it checks with
            // whichever of the exporter's listed keys signed it.
            let signer = self
                .listed_key(&header.exported_by, &proof.checkpoint.signer)
                .unwrap_or(exporter);
            let outcome = (|| {
                let (checkpoint, cosigned) = check_entry(proof, &signer)?;
                if checkpoint.log != header.exported_by {
                    return Err(format!("the checkpoint is of {}'s log", checkpoint.log));
                }
                let entry: AuditEntry = from_cbor(&proof.entry, MAX_REQUEST_FRAME)
                    .map_err(|e| format!("the proved entry does not decode: {e}"))?;
                let AuditWhat::CaseEvent {
                    case_id, event_id, ..
                } = entry.what
                else {
                    return Err("the proved entry is not a case event".into());
                };
                if case_id != header.case_id || !ids.contains_key(&event_id) {
                    return Err("the proved entry is of an event not in this bundle".into());
                }
                for (c, key) in cosigned {
                    match witnesses.get(&key) {
                        Some(j) if *j == c.witness => {
                            cosigners.insert(j.clone());
                        }
                        _ => {
                            return Err(format!(
                                "a cosignature claims to be {}'s but its key is not that member's",
                                c.witness
                            ));
                        }
                    }
                }
                proved.insert(event_id, ());
                Ok(())
            })();
            self.report.check(
                format!(
                    "audit proof {}: the event is in {}'s signed audit log",
                    i + 1,
                    header.exported_by
                ),
                outcome,
            );
        }
        for entry in view.entries.iter().cloned() {
            self.report.steps.push(Step {
                at: entry.at,
                author: entry.author,
                kind: entry.kind,
                event_id: entry.id,
                applied: entry.applied,
                proved: proved.contains_key(&entry.id),
            });
        }
        let unproved = self.report.steps.iter().filter(|s| !s.proved).count();
        self.report.check(
            "every event is proved in the exporter's audit log",
            if unproved == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{unproved} event(s) without a valid inclusion proof"
                ))
            },
        );
        self.report.cosigners = cosigners.into_iter().collect();
    }
}

#[cfg(test)]
mod tests;
