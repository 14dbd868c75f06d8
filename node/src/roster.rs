//! The bloc roster: which jurisdictions are members, under which PeerId, at which addresses.
//!
//! The roster is the node's allow-list. A member's PeerId is an Ed25519 identity that carries
//! its public key, so the same roster entry both admits a connection and verifies that
//! member's signed envelopes and receipts; nothing else is trusted.

use std::collections::HashMap;
use std::path::Path;

use comity_protocol::{Jurisdiction, PublicKey};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("cannot read roster {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("roster {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

/// One member of the bloc, as the bloc agreed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub peer_id: PeerId,
    #[serde(default)]
    pub addresses: Vec<Multiaddr>,
    /// The X25519 key evidence for this member is sealed to (`comity init` prints it).
    /// Without it, no evidence can be delivered to this member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealing_key: Option<comity_protocol::evidence::SealingKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    bloc: String,
    #[serde(default)]
    deadlines: Deadlines,
    #[serde(default)]
    evidence: EvidenceLimits,
    #[serde(default, rename = "member")]
    members: Vec<Member>,
}

/// The bloc's deadlines by urgency, for a decision on a delivered request and for fulfilment
/// of an accepted one. Defaults from the EU e-Evidence Regulation (2023/1543): ten days, and
/// eight hours in an emergency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Deadlines {
    pub normal_hours: u64,
    pub urgent_hours: u64,
    pub emergency_hours: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            normal_hours: 240,
            urgent_hours: 72,
            emergency_hours: 8,
        }
    }
}

impl Deadlines {
    pub fn for_urgency(&self, urgency: comity_protocol::Urgency) -> std::time::Duration {
        use comity_protocol::Urgency;
        let hours = match urgency {
            Urgency::Normal => self.normal_hours,
            Urgency::Urgent => self.urgent_hours,
            Urgency::Emergency => self.emergency_hours,
        };
        std::time::Duration::from_secs(hours * 3600)
    }
}

/// The bloc's limits on evidence packages: every member seals and accepts packages by them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceLimits {
    /// Largest package (all files together), in bytes. Larger ones are refused before any
    /// byte moves.
    pub max_package_bytes: u64,
    /// Bytes per chunk: a multiple of 32 KiB between 64 KiB and 8 MiB. A package has at most
    /// 16,384 chunks, so `max_package_bytes / chunk_bytes` may not exceed that.
    pub chunk_bytes: u32,
}

impl Default for EvidenceLimits {
    fn default() -> Self {
        Self {
            max_package_bytes: 16 << 30,
            chunk_bytes: 1 << 20,
        }
    }
}

impl EvidenceLimits {
    fn problem(&self) -> Option<String> {
        use comity_protocol::evidence::{
            MAX_CHUNK_BYTES, MAX_CHUNKS, MIN_CHUNK_BYTES, RECORD_BYTES,
        };
        let chunk = self.chunk_bytes;
        if !(MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&chunk)
            || !(chunk as usize).is_multiple_of(RECORD_BYTES)
        {
            return Some(format!(
                "[evidence] chunk_bytes = {chunk} must be a multiple of {RECORD_BYTES} between {MIN_CHUNK_BYTES} and {MAX_CHUNK_BYTES}"
            ));
        }
        let chunks = comity_protocol::evidence::chunk_count(self.max_package_bytes, chunk);
        if chunks > MAX_CHUNKS {
            return Some(format!(
                "[evidence] max_package_bytes = {} needs {chunks} chunks of {chunk} bytes; at most {MAX_CHUNKS} are allowed: raise chunk_bytes or lower the limit",
                self.max_package_bytes
            ));
        }
        None
    }
}

/// A checked roster with lookups by PeerId and by jurisdiction.
#[derive(Clone, Debug)]
pub struct Roster {
    bloc: String,
    deadlines: Deadlines,
    evidence: EvidenceLimits,
    members: Vec<Member>,
    keys: Vec<PublicKey>,
    by_peer: HashMap<PeerId, usize>,
    by_jurisdiction: HashMap<Jurisdiction, usize>,
}

impl Roster {
    pub fn new(bloc: String, members: Vec<Member>) -> Result<Self, String> {
        let bloc_ok = !bloc.is_empty()
            && bloc.len() <= 32
            && bloc
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !bloc_ok {
            return Err(format!(
                "bloc id {bloc:?} must be 1 to 32 characters of a-z, 0-9 and '-'"
            ));
        }
        let mut by_peer = HashMap::new();
        let mut by_jurisdiction = HashMap::new();
        let mut keys = Vec::with_capacity(members.len());
        for (i, member) in members.iter().enumerate() {
            let key = member_key(&member.peer_id).ok_or_else(|| {
                format!(
                    "member {}: PeerId {} is not an Ed25519 identity; Comity verifies signatures with the key it carries",
                    member.jurisdiction, member.peer_id
                )
            })?;
            keys.push(key);
            if by_peer.insert(member.peer_id, i).is_some() {
                return Err(format!("PeerId {} is listed twice", member.peer_id));
            }
            if by_jurisdiction
                .insert(member.jurisdiction.clone(), i)
                .is_some()
            {
                return Err(format!(
                    "jurisdiction {} is listed twice",
                    member.jurisdiction
                ));
            }
        }
        Ok(Self {
            bloc,
            deadlines: Deadlines::default(),
            evidence: EvidenceLimits::default(),
            members,
            keys,
            by_peer,
            by_jurisdiction,
        })
    }

    pub fn load(path: &Path) -> Result<Self, RosterError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RosterError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| RosterError::Invalid {
            path: shown,
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: RosterFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(problem) = file.evidence.problem() {
            return Err(problem);
        }
        Ok(Self::new(file.bloc, file.members)?
            .with_deadlines(file.deadlines)
            .with_evidence(file.evidence))
    }

    pub fn to_toml(&self) -> String {
        let file = RosterFile {
            bloc: self.bloc.clone(),
            deadlines: self.deadlines,
            evidence: self.evidence,
            members: self.members.clone(),
        };
        toml::to_string_pretty(&file).expect("roster serialises")
    }

    pub fn bloc(&self) -> &str {
        &self.bloc
    }

    pub fn with_deadlines(mut self, deadlines: Deadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Sets the evidence limits (checked).
    pub fn with_evidence(mut self, evidence: EvidenceLimits) -> Self {
        self.evidence = evidence;
        self
    }

    pub fn evidence(&self) -> &EvidenceLimits {
        &self.evidence
    }

    pub fn deadlines(&self) -> &Deadlines {
        &self.deadlines
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn by_peer(&self, peer: &PeerId) -> Option<(&Member, &PublicKey)> {
        self.by_peer
            .get(peer)
            .map(|&i| (&self.members[i], &self.keys[i]))
    }

    /// A message on the bloc's gossip topic from `peer`, as the member who sent it, that
    /// member's key and the envelope; `None` when the peer is not a member, its roster key is
    /// unusable or the bytes are not an envelope. The envelope is not yet opened.
    pub fn member_message(
        &self,
        peer: &PeerId,
        data: &[u8],
    ) -> Option<(
        &Member,
        ed25519_dalek::VerifyingKey,
        comity_protocol::SignedEnvelope,
    )> {
        let (member, key) = self.by_peer(peer)?;
        let key = key.verifying_key().ok()?;
        let envelope = comity_protocol::SignedEnvelope::from_bytes(
            data,
            comity_protocol::limits::MAX_RESPONSE_FRAME,
        )
        .ok()?;
        Some((member, key, envelope))
    }

    pub fn by_jurisdiction(&self, j: &Jurisdiction) -> Option<(&Member, &PublicKey)> {
        self.by_jurisdiction
            .get(j)
            .map(|&i| (&self.members[i], &self.keys[i]))
    }
}

/// The Ed25519 public key inlined in a PeerId, if it is an Ed25519 identity.
pub fn member_key(peer: &PeerId) -> Option<PublicKey> {
    let multihash = peer.as_ref();
    // Multihash code 0 is the identity hash: the digest is the protobuf-encoded public key.
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let ed = key.try_into_ed25519().ok()?;
    Some(PublicKey(ed.to_bytes()))
}

/// Writes `contents` to `path` readable by the owner only (keys, tokens).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(j: &str) -> (Member, libp2p::identity::Keypair) {
        let key = libp2p::identity::Keypair::generate_ed25519();
        (
            Member {
                jurisdiction: j.parse().unwrap(),
                name: j.into(),
                peer_id: key.public().to_peer_id(),
                addresses: vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()],
                sealing_key: None,
            },
            key,
        )
    }

    #[test]
    fn evidence_limits_round_trip_and_bad_ones_are_explained() {
        let (fr, _) = member("FR");
        let limits = EvidenceLimits {
            max_package_bytes: 1 << 30,
            chunk_bytes: 256 * 1024,
        };
        let roster = Roster::new("eu-test".into(), vec![fr])
            .unwrap()
            .with_evidence(limits);
        let text = roster.to_toml();
        assert_eq!(*Roster::parse(&text).unwrap().evidence(), limits);
        let odd = text.replace("chunk_bytes = 262144", "chunk_bytes = 100000");
        let err = Roster::parse(&odd).unwrap_err();
        assert!(err.contains("multiple of 32768"), "{err}");
        let huge = text.replace(
            "max_package_bytes = 1073741824",
            "max_package_bytes = 68719476736",
        );
        let err = Roster::parse(&huge).unwrap_err();
        assert!(err.contains("raise chunk_bytes"), "{err}");
    }

    #[test]
    fn peer_id_yields_the_signing_key() {
        let (m, key) = member("FR");
        let ed = key.try_into_ed25519().unwrap();
        assert_eq!(member_key(&m.peer_id).unwrap().0, ed.public().to_bytes());
    }

    #[test]
    fn round_trips_and_refuses_duplicates() {
        let (fr, _) = member("FR");
        let (de, _) = member("DE");
        let roster = Roster::new("eu-test".into(), vec![fr.clone(), de]).unwrap();
        let back = Roster::parse(&roster.to_toml()).unwrap();
        assert_eq!(back.members(), roster.members());
        assert!(back.by_peer(&fr.peer_id).is_some());

        let (mut fr2, _) = member("DE");
        fr2.jurisdiction = "FR".parse().unwrap();
        let err = Roster::new("eu-test".into(), vec![fr, fr2]).unwrap_err();
        assert!(err.contains("FR is listed twice"), "{err}");
        assert!(Roster::new("EU Test".into(), vec![]).is_err());
    }
}
