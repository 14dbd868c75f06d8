//! Evidence packages: how the executing side seals files to the requesting jurisdiction, how
//! the package is cut into chunks that can be checked one by one in transit, and the messages
//! of the `/comity/evidence/2.0.0` transfer protocol.
//!
//! The files of a package are concatenated in order and cut into chunks of `chunk_size`
//! bytes. Each chunk is sealed end to end with a one-way Noise handshake (`X`: the sender's
//! static key travels encrypted, the recipient's is its published sealing key), in records of
//! [`RECORD_BYTES`], each under its own nonce, so that any chunk can be sealed or opened on its
//! own, in any order. The signed [`EvidenceManifest`] carries the handshake, the file table
//! (sealed too: names and media types are case content) and a BLAKE3 hash of every sealed
//! chunk, so that a receiver checks each chunk as it arrives without being able to, or needing
//! to, open it. The manifest's root hash names the exact package in the case log.
//!
//! Nothing here does I/O.

use serde::{Deserialize, Serialize};

use crate::envelope::{Signable, SignedEnvelope};
use crate::ids::{CaseId, Hash32, Jurisdiction, Timestamp};

/// libp2p protocol name of evidence transfers.
pub const EVIDENCE_PROTOCOL: &str = "/comity/evidence/2.0.0";

/// The Noise pattern a package is sealed with: one-way, sender authenticated.
pub const NOISE_PATTERN: &str = "Noise_X_25519_ChaChaPoly_SHA256";

/// Plaintext bytes per sealed record (a Noise transport message holds at most 65,519). A chunk
/// size is a whole number of records.
pub const RECORD_BYTES: usize = 32 * 1024;
/// Authentication tag added to every record.
pub const TAG_BYTES: usize = 16;

/// Nonces of the sealed file table start here, far above any chunk's.
const INDEX_NONCE_BASE: u64 = 1 << 62;

/// Most files one package may hold.
pub const MAX_FILES: usize = 1000;
/// Most chunks one package may have: keeps the signed manifest within one frame.
pub const MAX_CHUNKS: u64 = 16_384;
/// Largest sealed file table, in bytes.
pub const MAX_INDEX_BYTES: usize = 256 * 1024;
/// Smallest and largest chunk sizes a bloc may choose.
pub const MIN_CHUNK_BYTES: u32 = 64 * 1024;
pub const MAX_CHUNK_BYTES: u32 = 8 * 1024 * 1024;
/// Largest evidence request frame (a chunk or manifest request).
pub const MAX_EVIDENCE_REQUEST: usize = 4 * 1024;
/// Largest evidence response frame: a sealed chunk of the largest size, or a manifest.
pub const MAX_EVIDENCE_RESPONSE: usize = MAX_CHUNK_BYTES as usize * 2;

/// A member's published X25519 sealing key (in the bloc roster): evidence for that member is
/// sealed to it. A byte string on the wire, lowercase hex in text.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SealingKey(#[serde(with = "crate::bytes::fixed")] pub [u8; 32]);

impl std::fmt::Display for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "SealingKey({self})")
    }
}

/// One file of a package, as the officer who opens it sees it. Travels sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub media_type: String,
    /// BLAKE3 of the file's content.
    pub blake3: Hash32,
}

/// The signed description of a package (`comity/evidence-manifest/v1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EvidenceManifest {
    pub case_id: CaseId,
    /// The executing jurisdiction, which sealed and signed it.
    pub from: Jurisdiction,
    /// The requesting jurisdiction, the only one that can open it.
    pub to: Jurisdiction,
    pub created_at: Timestamp,
    pub chunk_size: u32,
    /// Plaintext bytes of all files together.
    pub total_bytes: u64,
    pub file_count: u32,
    /// The Noise handshake message that opens the package.
    #[serde(with = "serde_bytes")]
    pub handshake: Vec<u8>,
    /// The file table ([`FileEntry`]s), sealed.
    #[serde(with = "serde_bytes")]
    pub sealed_index: Vec<u8>,
    /// BLAKE3 of every sealed chunk, in order.
    pub chunks: Vec<Hash32>,
}

impl Signable for EvidenceManifest {
    const CONTENT_TYPE: &'static str = "application/comity.evidence-manifest.v1+cbor";
}

/// Why a package could not be sealed, opened or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("sealing failed: {0}")]
    Seal(String),
    #[error(
        "the package does not open with this node's sealing key: it was sealed to another key, or the handshake was altered"
    )]
    Handshake,
    #[error("chunk {0} does not open: its sealed bytes were altered")]
    Chunk(u64),
    #[error("the file table does not open or is malformed: the manifest was altered")]
    Index,
    #[error("manifest is not acceptable: {0}")]
    Manifest(String),
}

/// What binds a package to its case and parties: a handshake moved to another case, or
/// between other members, does not open.
pub fn prologue(case_id: &CaseId, from: &Jurisdiction, to: &Jurisdiction) -> Vec<u8> {
    format!("comity/evidence/v1\0{case_id}\0{from}\0{to}").into_bytes()
}

/// Number of chunks of a package of `total` bytes.
pub fn chunk_count(total: u64, chunk_size: u32) -> u64 {
    total.div_ceil(u64::from(chunk_size.max(1)))
}

/// Plaintext bytes in chunk `index`.
pub fn plain_len(total: u64, chunk_size: u32, index: u64) -> usize {
    let start = index * u64::from(chunk_size);
    total.saturating_sub(start).min(u64::from(chunk_size)) as usize
}

/// Sealed bytes of a chunk holding `plain` bytes.
pub fn sealed_len(plain: usize) -> usize {
    plain + plain.div_ceil(RECORD_BYTES) * TAG_BYTES
}

/// Where sealed chunk `index` starts in the sealed package (every chunk but the last is full).
pub fn sealed_offset(chunk_size: u32, index: u64) -> u64 {
    index * sealed_len(chunk_size as usize) as u64
}

impl EvidenceManifest {
    /// The root hash that names this exact manifest (and so every chunk of the package):
    /// BLAKE3 of its canonical encoding, as signed.
    pub fn root(envelope: &SignedEnvelope) -> Hash32 {
        Hash32(*blake3::keyed_hash(&root_key(), &envelope.body).as_bytes())
    }

    /// Sealed bytes of the whole package.
    pub fn sealed_total(&self) -> u64 {
        let n = self.chunks.len() as u64;
        if n == 0 {
            return 0;
        }
        let last = plain_len(self.total_bytes, self.chunk_size, n - 1);
        sealed_offset(self.chunk_size, n - 1) + sealed_len(last) as u64
    }

    /// Sealed bytes of chunk `index`.
    pub fn sealed_chunk_len(&self, index: u64) -> usize {
        sealed_len(plain_len(self.total_bytes, self.chunk_size, index))
    }

    /// Shape rules, whatever the bloc: what is wrong, or `None`.
    pub fn problem(&self, max_package: u64, chunk_size: u32) -> Option<String> {
        if self.chunk_size != chunk_size {
            return Some(format!(
                "chunk size {} is not the bloc's {chunk_size}",
                self.chunk_size
            ));
        }
        if self.total_bytes > max_package {
            return Some(format!(
                "package of {} bytes is over the bloc's limit of {max_package}",
                self.total_bytes
            ));
        }
        let expected = chunk_count(self.total_bytes, self.chunk_size);
        if self.chunks.len() as u64 != expected {
            return Some(format!(
                "{} chunk hashes for {} bytes; {expected} expected",
                self.chunks.len(),
                self.total_bytes
            ));
        }
        if self.file_count as usize > MAX_FILES || self.file_count == 0 {
            return Some(format!(
                "{} files; a package holds 1 to {MAX_FILES}",
                self.file_count
            ));
        }
        if self.sealed_index.len() > MAX_INDEX_BYTES {
            return Some("the file table is too large".into());
        }
        None
    }
}

fn root_key() -> [u8; 32] {
    blake3::derive_key("comity evidence manifest root v1", b"")
}

/// A file name an officer can be given safely: a plain name, never a path.
pub fn file_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 255 {
        return Some(format!("file name {name:?} must be 1 to 255 bytes"));
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return Some(format!("file name {name:?} must not start with a dot"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Some(format!(
            "file name {name:?} must not contain a path separator or control characters"
        ));
    }
    None
}

/// An X25519 sealing key pair: `(private, public)`.
pub fn generate_sealing_key() -> Result<([u8; 32], [u8; 32]), EvidenceError> {
    let builder = snow::Builder::new(pattern()?);
    let pair = builder
        .generate_keypair()
        .map_err(|e| EvidenceError::Seal(e.to_string()))?;
    let mut private = [0u8; 32];
    let mut public = [0u8; 32];
    private.copy_from_slice(&pair.private);
    public.copy_from_slice(&pair.public);
    Ok((private, public))
}

/// The public half of a sealing key.
pub fn sealing_public_key(private: &[u8; 32]) -> Result<[u8; 32], EvidenceError> {
    use snow::resolvers::CryptoResolver;
    let mut dh = snow::resolvers::DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        .ok_or_else(|| EvidenceError::Seal("no X25519".into()))?;
    dh.set(private);
    let mut public = [0u8; 32];
    public.copy_from_slice(dh.pubkey());
    Ok(public)
}

fn pattern() -> Result<snow::params::NoiseParams, EvidenceError> {
    NOISE_PATTERN
        .parse()
        .map_err(|e: snow::Error| EvidenceError::Seal(e.to_string()))
}

/// Seals the chunks and file table of one package. Any chunk may be sealed in any order,
/// from several threads.
pub struct Sealer {
    transport: snow::StatelessTransportState,
    chunk_size: u32,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Starts a package to `recipient` (its published sealing key) from the holder of
    /// `sender_private`. Returns the sealer and the handshake message for the manifest.
    pub fn new(
        recipient: &[u8; 32],
        sender_private: &[u8; 32],
        prologue: &[u8],
        chunk_size: u32,
    ) -> Result<(Self, Vec<u8>), EvidenceError> {
        let seal = |e: snow::Error| EvidenceError::Seal(e.to_string());
        if !(chunk_size as usize).is_multiple_of(RECORD_BYTES) || chunk_size == 0 {
            return Err(EvidenceError::Seal(format!(
                "chunk size {chunk_size} is not a multiple of {RECORD_BYTES}"
            )));
        }
        let mut handshake = snow::Builder::new(pattern()?)
            .local_private_key(sender_private)
            .map_err(seal)?
            .remote_public_key(recipient)
            .map_err(seal)?
            .prologue(prologue)
            .map_err(seal)?
            .build_initiator()
            .map_err(seal)?;
        let mut message = vec![0u8; 256];
        let len = handshake.write_message(&[], &mut message).map_err(seal)?;
        message.truncate(len);
        let transport = handshake.into_stateless_transport_mode().map_err(seal)?;
        Ok((
            Self {
                transport,
                chunk_size,
            },
            message,
        ))
    }

    /// Seals chunk `index` (`plain` is its whole plaintext) into `out`, replacing its content.
    pub fn seal_chunk(
        &self,
        index: u64,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EvidenceError> {
        let first = index * (self.chunk_size as usize / RECORD_BYTES) as u64;
        seal_records(&self.transport, first, plain, out)
    }

    pub fn seal_index(&self, files: &[FileEntry]) -> Result<Vec<u8>, EvidenceError> {
        let plain = crate::to_canonical_cbor(&files.to_vec())
            .map_err(|e| EvidenceError::Seal(e.to_string()))?;
        let mut out = Vec::new();
        seal_records(&self.transport, INDEX_NONCE_BASE, &plain, &mut out)?;
        Ok(out)
    }
}

fn seal_records(
    transport: &snow::StatelessTransportState,
    first_nonce: u64,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EvidenceError> {
    // Every byte is written below: only a buffer that grows is filled first (a reused one is
    // not zeroed again, which cost a pass over each chunk).
    out.resize(sealed_len(plain.len()), 0);
    let mut at = 0;
    for (j, record) in plain.chunks(RECORD_BYTES).enumerate() {
        let n = transport
            .write_message(first_nonce + j as u64, record, &mut out[at..])
            .map_err(|e| EvidenceError::Seal(e.to_string()))?;
        at += n;
    }
    debug_assert_eq!(at, out.len());
    Ok(())
}

/// Opens the chunks and file table of one package with the recipient's sealing key.
pub struct Opener {
    transport: snow::StatelessTransportState,
    chunk_size: u32,
    sender: [u8; 32],
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl Opener {
    pub fn new(
        recipient_private: &[u8; 32],
        handshake: &[u8],
        prologue: &[u8],
        chunk_size: u32,
    ) -> Result<Self, EvidenceError> {
        if !(chunk_size as usize).is_multiple_of(RECORD_BYTES) || chunk_size == 0 {
            return Err(EvidenceError::Manifest(format!(
                "chunk size {chunk_size} is not a multiple of {RECORD_BYTES}"
            )));
        }
        let mut state = snow::Builder::new(pattern()?)
            .local_private_key(recipient_private)
            .and_then(|b| b.prologue(prologue))
            .and_then(|b| b.build_responder())
            .map_err(|e| EvidenceError::Seal(e.to_string()))?;
        let mut payload = vec![0u8; handshake.len()];
        state
            .read_message(handshake, &mut payload)
            .map_err(|_| EvidenceError::Handshake)?;
        let mut sender = [0u8; 32];
        sender.copy_from_slice(state.get_remote_static().ok_or(EvidenceError::Handshake)?);
        let transport = state
            .into_stateless_transport_mode()
            .map_err(|_| EvidenceError::Handshake)?;
        Ok(Self {
            transport,
            chunk_size,
            sender,
        })
    }

    /// The sealing key of whoever sealed the package (checked against the roster by callers).
    pub fn sender(&self) -> &[u8; 32] {
        &self.sender
    }

    /// Opens chunk `index` into `out`, replacing its content.
    pub fn open_chunk(
        &self,
        index: u64,
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EvidenceError> {
        let first = index * (self.chunk_size as usize / RECORD_BYTES) as u64;
        open_records(&self.transport, first, sealed, out).map_err(|()| EvidenceError::Chunk(index))
    }

    pub fn open_index(&self, sealed: &[u8]) -> Result<Vec<FileEntry>, EvidenceError> {
        let mut plain = Vec::new();
        open_records(&self.transport, INDEX_NONCE_BASE, sealed, &mut plain)
            .map_err(|()| EvidenceError::Index)?;
        let files: Vec<FileEntry> =
            crate::from_cbor(&plain, MAX_INDEX_BYTES).map_err(|_| EvidenceError::Index)?;
        Ok(files)
    }
}

fn open_records(
    transport: &snow::StatelessTransportState,
    first_nonce: u64,
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ()> {
    out.clear();
    out.resize(sealed.len(), 0);
    let mut at = 0;
    for (j, record) in sealed.chunks(RECORD_BYTES + TAG_BYTES).enumerate() {
        if record.len() <= TAG_BYTES {
            return Err(());
        }
        let n = transport
            .read_message(first_nonce + j as u64, record, &mut out[at..])
            .map_err(|_| ())?;
        at += n;
    }
    out.truncate(at);
    Ok(())
}

/// A request of the evidence protocol: from the requesting side to the executing side, but
/// for `Offer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceRequest {
    /// The signed manifest of the case's package.
    Manifest { case_id: CaseId },
    /// One sealed chunk of the package named by `root`.
    Chunk {
        case_id: CaseId,
        root: Hash32,
        index: u64,
    },
    /// From the executing side: a package for the case is being sealed now, of this size and
    /// chunk size. The requesting side may pull its chunks as they are sealed (`Staged`), to
    /// check them once the signed manifest arrives; it owes nothing (answered `Staging` or
    /// `Refused`).
    Offer {
        case_id: CaseId,
        chunk_size: u32,
        total_bytes: u64,
    },
    /// Sealed chunk `index` of the package being sealed (or just sealed) for the case, before
    /// its manifest is signed: answered once it is sealed, or refused after a while. Nothing
    /// vouches for it until the manifest names its hash.
    Staged { case_id: CaseId, index: u64 },
}

impl EvidenceRequest {
    pub fn case_id(&self) -> CaseId {
        match self {
            EvidenceRequest::Manifest { case_id }
            | EvidenceRequest::Chunk { case_id, .. }
            | EvidenceRequest::Offer { case_id, .. }
            | EvidenceRequest::Staged { case_id, .. } => *case_id,
        }
    }
}

/// The answer to an [`EvidenceRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceResponse {
    Manifest(SignedEnvelope),
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Not served, and why (unknown case, not a party, no such package or chunk).
    Refused {
        reason: String,
    },
    /// An offer taken: the requesting side pulls the package's chunks as they are sealed.
    Staging,
    /// A staged chunk not sealed yet, in the time a request may wait: ask again.
    NotYet,
}

/// The canonical encoding of `EvidenceResponse::Chunk` of `len` bytes, without copying them:
/// the bytes are written straight after the header by `fill` (a read from the package file).
/// Identical to `to_canonical_cbor(&EvidenceResponse::Chunk(bytes))`.
pub fn chunk_frame<E>(
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    chunk_frame_in(Vec::new(), len, fill)
}

/// As [`chunk_frame`], in `buffer`'s memory (its initialised bytes are reused as they are, so
/// a recycled buffer needs no zeroing).
pub fn chunk_frame_in<E>(
    mut buffer: Vec<u8>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let mut header = Vec::with_capacity(CHUNK_TAG.len() + 9);
    header.extend_from_slice(CHUNK_TAG);
    let n = len as u64;
    match n {
        0..=23 => header.push(0x40 | n as u8),
        24..=0xff => header.extend_from_slice(&[0x58, n as u8]),
        0x100..=0xffff => {
            header.push(0x59);
            header.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            header.push(0x5a);
            header.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            header.push(0x5b);
            header.extend_from_slice(&n.to_be_bytes());
        }
    }
    let total = header.len() + len;
    if buffer.len() < total {
        buffer.resize(total, 0);
    }
    buffer[..header.len()].copy_from_slice(&header);
    fill(&mut buffer[header.len()..total])?;
    buffer.truncate(total);
    Ok(buffer)
}

/// Where the sealed bytes of a chunk response lie in `frame`, when it is one (in canonical
/// form, with nothing after it); `None` for any other response, to be decoded normally.
pub fn chunk_in_frame(frame: &[u8]) -> Option<std::ops::Range<usize>> {
    let rest = frame.strip_prefix(CHUNK_TAG)?;
    let (&first, rest) = rest.split_first()?;
    let (len, header) = match first {
        0x40..=0x57 => (u64::from(first & 0x1f), 0),
        0x58 => (u64::from(*rest.first()?), 1),
        0x59 => (
            u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            2,
        ),
        0x5a => (
            u64::from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)),
            4,
        ),
        0x5b => (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?), 8),
        _ => return None,
    };
    let start = CHUNK_TAG.len() + 1 + header;
    (Some(frame.len() as u64) == (start as u64).checked_add(len)).then_some(start..frame.len())
}

/// `{"chunk": …}`: a one-entry map keyed by the variant's name, as serde tags it.
const CHUNK_TAG: &[u8] = &[0xa1, 0x65, b'c', b'h', b'u', b'n', b'k'];

#[cfg(test)]
mod tests {
    use super::*;

    fn package(chunk: u32, total: usize) -> (Sealer, Vec<u8>, [u8; 32], Vec<u8>, Vec<u8>) {
        let (rpriv, rpub) = generate_sealing_key().unwrap();
        let (spriv, _) = generate_sealing_key().unwrap();
        let p = prologue(
            &CaseId::new(),
            &"DE".parse().unwrap(),
            &"FR".parse().unwrap(),
        );
        let (sealer, hs) = Sealer::new(&rpub, &spriv, &p, chunk).unwrap();
        let plain: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        (sealer, hs, rpriv, p, plain)
    }

    #[test]
    fn chunks_open_in_any_order_and_only_unaltered() {
        let chunk = 64 * 1024;
        let (sealer, hs, rpriv, p, plain) = package(chunk, 200_000);
        let n = chunk_count(plain.len() as u64, chunk);
        assert_eq!(n, 4);
        let mut sealed = Vec::new();
        for i in 0..n {
            let start = (i * u64::from(chunk)) as usize;
            let len = plain_len(plain.len() as u64, chunk, i);
            let mut out = Vec::new();
            sealer
                .seal_chunk(i, &plain[start..start + len], &mut out)
                .unwrap();
            assert_eq!(out.len(), sealed_len(len));
            sealed.push(out);
        }
        let opener = Opener::new(&rpriv, &hs, &p, chunk).unwrap();
        let mut out = Vec::new();
        for i in (0..n).rev() {
            opener.open_chunk(i, &sealed[i as usize], &mut out).unwrap();
            let start = (i * u64::from(chunk)) as usize;
            assert_eq!(out, plain[start..start + out.len()]);
        }
        // A chunk opened under another index, or altered by one bit, does not open.
        assert_eq!(
            opener.open_chunk(1, &sealed[0], &mut out),
            Err(EvidenceError::Chunk(1))
        );
        let mut bad = sealed[2].clone();
        bad[100] ^= 1;
        assert!(opener.open_chunk(2, &bad, &mut out).is_err());
        let truncated = &sealed[2][..sealed[2].len() - 1];
        assert!(opener.open_chunk(2, truncated, &mut out).is_err());
    }

    #[test]
    fn index_opens_only_for_the_recipient_and_the_same_case() {
        let (sealer, hs, rpriv, p, _) = package(64 * 1024, 10);
        let files = vec![FileEntry {
            name: "a.pdf".into(),
            size: 10,
            media_type: "application/pdf".into(),
            blake3: Hash32::of(b"x"),
        }];
        let sealed = sealer.seal_index(&files).unwrap();
        let opener = Opener::new(&rpriv, &hs, &p, 64 * 1024).unwrap();
        assert_eq!(opener.open_index(&sealed).unwrap(), files);
        let (other, _) = generate_sealing_key().unwrap();
        assert_eq!(
            Opener::new(&other, &hs, &p, 64 * 1024).unwrap_err(),
            EvidenceError::Handshake
        );
        let elsewhere = prologue(
            &CaseId::new(),
            &"DE".parse().unwrap(),
            &"FR".parse().unwrap(),
        );
        assert!(Opener::new(&rpriv, &hs, &elsewhere, 64 * 1024).is_err());
    }

    #[test]
    fn public_key_is_derived_from_the_private() {
        let (private, public) = generate_sealing_key().unwrap();
        assert_eq!(sealing_public_key(&private).unwrap(), public);
    }

    #[test]
    fn sizes_and_offsets() {
        let chunk = 1 << 20;
        assert_eq!(sealed_len(chunk as usize), (1 << 20) + 32 * 16);
        assert_eq!(sealed_len(1), 17);
        assert_eq!(sealed_len(0), 0);
        assert_eq!(chunk_count(0, chunk), 0);
        assert_eq!(chunk_count((3 << 20) + 1, chunk), 4);
        assert_eq!(plain_len((3 << 20) + 1, chunk, 3), 1);
        assert_eq!(
            sealed_offset(chunk, 2),
            2 * sealed_len(chunk as usize) as u64
        );
    }

    #[test]
    fn chunk_frames_are_the_canonical_encoding_and_parse_back() {
        for len in [0usize, 1, 23, 24, 255, 256, 65_535, 65_536, (1 << 20) + 512] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let generic =
                crate::to_canonical_cbor(&EvidenceResponse::Chunk(bytes.clone())).unwrap();
            let fast = chunk_frame(len, |out| {
                out.copy_from_slice(&bytes);
                Ok::<_, ()>(())
            })
            .unwrap();
            assert_eq!(fast, generic, "len {len}");
            let reused = chunk_frame_in(vec![9u8; 3 << 20], len, |out| {
                out.copy_from_slice(&bytes);
                Ok::<_, ()>(())
            })
            .unwrap();
            assert_eq!(reused, generic, "len {len}, in a used buffer");
            let range = chunk_in_frame(&fast).unwrap();
            assert_eq!(&fast[range], &bytes[..]);
            let decoded: EvidenceResponse = crate::from_cbor(&fast, usize::MAX).unwrap();
            assert_eq!(decoded, EvidenceResponse::Chunk(bytes));
        }
        let refused = crate::to_canonical_cbor(&EvidenceResponse::Refused {
            reason: "no".into(),
        })
        .unwrap();
        assert!(chunk_in_frame(&refused).is_none());
        let mut long = chunk_frame(10, |_| Ok::<_, ()>(())).unwrap();
        long.push(0);
        assert!(chunk_in_frame(&long).is_none(), "trailing bytes");
        assert!(
            chunk_in_frame(&long[..long.len() - 2]).is_none(),
            "cut short"
        );
    }

    #[test]
    fn file_names_are_plain_names() {
        assert!(file_name_problem("report.pdf").is_none());
        for bad in ["", "../x", "a/b", ".hidden", "a\\b", "a\nb"] {
            assert!(file_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
