//! The bloc configuration: who is a member, with which keys, under which rules — one
//! versioned document that the members sign together, with no central signer.
//!
//! - A [`BlocConfig`] is carried as a `COSE_Sign` ([`MultiSigned`]), one signature per signing
//!   member. Its hash ([`config_hash`]) is the BLAKE3 of its canonical body, so two members
//!   compare one value; signatures are not part of it (more may be added later).
//! - Version 1, the genesis, is signed by every founder; its hash is the bloc's **trust
//!   anchor**. Version N+1 names the hash of version N and is valid only when the threshold of
//!   N's members signed it, each with the key N says is theirs now ([`verify_successor`]).
//! - Every member entry carries its **card** ([`MemberCard`]): the member's keys, signed by
//!   those same keys (transport and signing). That is the proof of possession of every key a
//!   version introduces, and it binds the keys to the jurisdiction and the bloc.
//! - Keys have a history: a key is introduced in one version and may be retired (rotated
//!   away) or revoked (compromised) in a later one, never brought back. Objects keep
//!   verifying with the key that was valid for them ([`BlocConfig::accepts`]).
//! - Members are never deleted: one who leaves keeps its entry (so its old signatures still
//!   verify), marked `left`, and is no longer admitted.
//!
//! Everything here is pure: times are passed in, nothing is read or written.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::envelope::{MultiSigned, PublicKey, Signable};
use crate::evidence::SealingKey;
use crate::ids::{Hash32, Jurisdiction, Timestamp};

/// Largest encoded configuration (all members, their cards and key histories).
pub const MAX_CONFIG_BYTES: usize = 512 * 1024;
/// Largest encoded member card.
pub const MAX_CARD_BYTES: usize = 8 * 1024;
/// At most this many members (present and past) in one bloc.
pub const MAX_MEMBERS: usize = 256;
/// At most this many signing keys in one member's history.
pub const MAX_KEYS_PER_MEMBER: usize = 64;
const MAX_ADDRESSES: usize = 8;
const MAX_TEXT: usize = 256;
const DAY_MS: i64 = 86_400_000;

mod chain;
pub use chain::{Chain, Offered};

/// One version of the bloc's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlocConfig {
    pub bloc: String,
    /// 1 for the genesis, then strictly one more per version.
    pub version: u64,
    /// Hash of the previous version's body; `None` only for the genesis.
    pub previous: Option<Hash32>,
    pub issued_at: Timestamp,
    /// After this, no new request starts until the bloc renews (its sunset clause).
    pub expires_at: Timestamp,
    pub rules: Rules,
    pub settings: Settings,
    /// Sorted by jurisdiction, one entry each, present and past members alike.
    pub members: Vec<Member>,
}

impl Signable for BlocConfig {
    const CONTENT_TYPE: &'static str = "application/comity.bloc-config.v1+cbor";
}

/// How the bloc governs itself.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The share of the current members that must sign the next version.
    pub threshold: Threshold,
    /// Each new version expires this many days after it is issued.
    pub lifetime_days: u32,
    /// Warn this many days before expiry.
    pub warn_days: u32,
    /// A retired (not revoked) key still counts for objects made up to this many hours after
    /// the version that retired it was issued: the time members may take to sign a rotation,
    /// during which the rotating member still signs with its old key.
    pub rotation_grace_hours: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            threshold: Threshold {
                numerator: 2,
                denominator: 3,
            },
            lifetime_days: 90,
            warn_days: 14,
            rotation_grace_hours: 72,
        }
    }
}

/// A fraction of the members, rounded up: two thirds of five is four... of four is three.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub numerator: u32,
    pub denominator: u32,
}

impl Threshold {
    /// Signatures needed among `members`: at least one, at most all.
    pub fn of(&self, members: usize) -> usize {
        let n = members as u64 * u64::from(self.numerator);
        let needed = n.div_ceil(u64::from(self.denominator.max(1))) as usize;
        needed.clamp(1, members.max(1))
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.numerator, self.denominator)
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("threshold {s:?} must be a fraction such as 2/3 or 1/2");
        let (n, d) = s.split_once('/').ok_or_else(bad)?;
        let t = Threshold {
            numerator: n.trim().parse().map_err(|_| bad())?,
            denominator: d.trim().parse().map_err(|_| bad())?,
        };
        t.problem().map_or(Ok(t), Err)
    }
}

impl Threshold {
    fn problem(&self) -> Option<String> {
        // More than half: two disjoint groups of members can never both reach it, so two
        // honest halves cannot fork the bloc.
        (self.denominator == 0
            || self.numerator > self.denominator
            || u64::from(self.numerator) * 2 <= u64::from(self.denominator))
        .then(|| format!("threshold {self} must be a fraction above 1/2 and at most 1, e.g. 2/3"))
    }
}

/// The bloc-wide settings every member applies alike.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub deadlines: Deadlines,
    pub evidence: EvidenceLimits,
    /// The bloc's own figures for instruments, replacing those of the instruments' texts
    /// ([`crate::Instrument::terms`]), e.g. where a treaty between the members sets shorter
    /// ones. Left out of the encoding when empty, so that configurations signed before it
    /// existed keep their bytes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, InstrumentRules>))]
    pub instruments: BTreeMap<crate::Instrument, InstrumentRules>,
}

/// A bloc's figures for one instrument; each one left out keeps the instrument's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct InstrumentRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_hours: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_hours: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preservation_days: Option<u32>,
    /// Most days a preservation may be extended by, in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_days: Option<u32>,
}

impl InstrumentRules {
    /// The setting names of one instrument's rules: `instruments.<code>.<field>`.
    pub const FIELDS: &[&str] = &[
        "decision_hours",
        "execution_hours",
        "preservation_days",
        "extension_days",
    ];

    fn fields(&self) -> [(&'static str, Option<u64>); 4] {
        [
            ("decision_hours", self.decision_hours),
            ("execution_hours", self.execution_hours),
            ("preservation_days", self.preservation_days.map(u64::from)),
            ("extension_days", self.extension_days.map(u64::from)),
        ]
    }

    fn problem(&self, instrument: crate::Instrument) -> Option<String> {
        let bad = |name: &str, value: u64, max: u64| {
            format!("instruments.{instrument}.{name} = {value} must be between 1 and {max}")
        };
        for (name, value) in self.fields() {
            let Some(value) = value else { continue };
            let max = if name.ends_with("_hours") {
                24 * 366
            } else {
                3660
            };
            let min = u64::from(name != "extension_days");
            if !(min..=max).contains(&value) {
                return Some(bad(name, value, max));
            }
        }
        None
    }
}

/// The bloc's deadlines by urgency, for a decision on a delivered request and for fulfilment
/// of an accepted one. Defaults from the EU e-Evidence Regulation (2023/1543): ten days, and
/// eight hours in an emergency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    pub fn for_urgency(&self, urgency: crate::Urgency) -> std::time::Duration {
        use crate::Urgency;
        let hours = match urgency {
            Urgency::Normal => self.normal_hours,
            Urgency::Urgent => self.urgent_hours,
            Urgency::Emergency => self.emergency_hours,
        };
        std::time::Duration::from_secs(hours.saturating_mul(3600))
    }

    fn problem(&self) -> Option<String> {
        let all = [
            ("normal_hours", self.normal_hours),
            ("urgent_hours", self.urgent_hours),
            ("emergency_hours", self.emergency_hours),
        ];
        all.iter()
            .find(|(_, h)| !(1..=24 * 366).contains(h))
            .map(|(name, h)| format!("deadlines.{name} = {h} must be between 1 and 8784 hours"))
    }
}

/// The bloc's limits on evidence packages: every member seals and accepts packages by them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// What is wrong with these limits, in words; `None` when they are usable.
    pub fn problem(&self) -> Option<String> {
        use crate::evidence::{MAX_CHUNK_BYTES, MAX_CHUNKS, MIN_CHUNK_BYTES, RECORD_BYTES};
        let chunk = self.chunk_bytes;
        if !(MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&chunk)
            || !(chunk as usize).is_multiple_of(RECORD_BYTES)
        {
            return Some(format!(
                "evidence.chunk_bytes = {chunk} must be a multiple of {RECORD_BYTES} between {MIN_CHUNK_BYTES} and {MAX_CHUNK_BYTES}"
            ));
        }
        let chunks = crate::evidence::chunk_count(self.max_package_bytes, chunk);
        if chunks > MAX_CHUNKS {
            return Some(format!(
                "evidence.max_package_bytes = {} needs {chunks} chunks of {chunk} bytes; at most {MAX_CHUNKS} are allowed: raise chunk_bytes or lower the limit",
                self.max_package_bytes
            ));
        }
        None
    }
}

/// One member, present or past.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub jurisdiction: Jurisdiction,
    pub name: String,
    /// Multiaddrs (text) where the member listens.
    pub addresses: Vec<String>,
    /// Its libp2p identity (Ed25519): the PeerId the allow-list admits.
    pub transport_key: PublicKey,
    /// The transport keys it had before, oldest first: none of them may come back.
    pub past_transport_keys: Vec<PublicKey>,
    /// The X25519 key evidence for this member is sealed to.
    pub sealing_key: Option<SealingKey>,
    /// Its application signing keys, oldest first; at most one is current.
    pub signing_keys: Vec<KeyRecord>,
    /// The version that added it.
    pub joined: u64,
    /// The version that removed it; it is then no longer admitted.
    pub left: Option<u64>,
    /// Its latest card (a [`MemberCard`] as a `COSE_Sign`), proving it holds its keys.
    #[serde(with = "serde_bytes")]
    pub card: Vec<u8>,
}

/// One signing key in a member's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub key: PublicKey,
    pub introduced: u64,
    /// Rotated away: objects signed before this still count.
    pub retired: Option<Change>,
    /// Compromised: nothing new signed by it counts.
    pub revoked: Option<Change>,
}

/// The version (and its issue time) that changed a key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub version: u64,
    pub at: Timestamp,
}

impl KeyRecord {
    pub fn is_current(&self) -> bool {
        self.retired.is_none() && self.revoked.is_none()
    }
}

/// What a member states about itself, signed by its signing key and its transport key: the
/// `member.toml` an operator sends to the bloc, and the card in its configuration entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberCard {
    pub bloc: String,
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub addresses: Vec<String>,
    pub transport_key: PublicKey,
    pub signing_key: PublicKey,
    pub sealing_key: Option<SealingKey>,
    pub made_at: Timestamp,
}

impl Signable for MemberCard {
    const CONTENT_TYPE: &'static str = "application/comity.member-card.v1+cbor";
}

/// Why a configuration, a card or an object's key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlocError {
    #[error("not a bloc configuration: {0}")]
    Malformed(String),
    #[error("the configuration is not valid: {0}")]
    Invalid(String),
    #[error("configuration for bloc {found:?}, this node is in bloc {expected:?}")]
    OtherBloc { expected: String, found: String },
    #[error(
        "version {found} is not newer than version {current} held here (a rollback or a replay)"
    )]
    Rollback { current: u64, found: u64 },
    #[error("version {found} does not follow version {current}: versions {} to {} are missing; pull them first", current + 1, found - 1)]
    Gap { current: u64, found: u64 },
    #[error("version {version} names {named} as its previous version, but version {} is {held}", version - 1)]
    BrokenChain {
        version: u64,
        named: String,
        held: String,
    },
    #[error("the genesis hashes to {found}, not the bloc's trust anchor {anchor}")]
    WrongAnchor { anchor: Hash32, found: Hash32 },
    #[error(
        "version {version} is signed by {valid} of its predecessor's members ({signers}); {needed} are needed"
    )]
    BelowThreshold {
        version: u64,
        valid: usize,
        needed: usize,
        signers: String,
    },
    #[error("a signature does not verify: {0}")]
    BadSignature(String),
    #[error(
        "signed by {jurisdiction}'s key {key}, which was {what} in version {version}: it can sign nothing new"
    )]
    DeadKey {
        jurisdiction: Jurisdiction,
        key: PublicKey,
        what: &'static str,
        version: u64,
    },
    #[error("{jurisdiction}'s card does not prove its keys: {reason}")]
    Card {
        jurisdiction: Jurisdiction,
        reason: String,
    },
    #[error("version {version} rewrites history: {reason}")]
    History { version: u64, reason: String },
}

/// Why a signed object's key is not accepted for its claimed author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("{0} is not a member of the bloc")]
    NotAMember(Jurisdiction),
    #[error("{jurisdiction} left the bloc in version {version}")]
    Left {
        jurisdiction: Jurisdiction,
        version: u64,
    },
    #[error("key {key} is not one of {jurisdiction}'s keys")]
    UnknownKey {
        jurisdiction: Jurisdiction,
        key: PublicKey,
    },
    #[error(
        "{jurisdiction}'s key {key} was retired in version {} ({}); this was signed after its grace period",
        change.version, change.at
    )]
    Retired {
        jurisdiction: Jurisdiction,
        key: PublicKey,
        change: Change,
    },
    #[error("{jurisdiction}'s key {key} was revoked as compromised in version {}", change.version)]
    Revoked {
        jurisdiction: Jurisdiction,
        key: PublicKey,
        change: Change,
    },
}

/// How a key stood when an object it signed was held, for showing beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyNote {
    Current,
    Retired(Change),
    Revoked(Change),
}

impl fmt::Display for KeyNote {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            KeyNote::Current => f.write_str("current key"),
            KeyNote::Retired(c) => write!(f, "key retired in version {}", c.version),
            KeyNote::Revoked(c) => {
                write!(f, "signed by a key later revoked (version {})", c.version)
            }
        }
    }
}

/// The hash that names a configuration: BLAKE3 of its canonical body.
pub fn config_hash(signed: &MultiSigned) -> Hash32 {
    Hash32::of(&signed.body)
}

/// A configuration whose signatures and rules were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub config: BlocConfig,
    pub hash: Hash32,
    pub signed: MultiSigned,
    /// The members whose signatures counted.
    pub signers: Vec<Jurisdiction>,
}

impl BlocConfig {
    /// Members admitted now: not left, with a current signing key.
    pub fn admitted(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.is_admitted())
    }

    /// Signatures the next version needs.
    pub fn required_signatures(&self) -> usize {
        self.rules.threshold.of(self.admitted().count())
    }

    pub fn member(&self, jurisdiction: &Jurisdiction) -> Option<&Member> {
        self.members
            .binary_search_by(|m| m.jurisdiction.cmp(jurisdiction))
            .ok()
            .map(|i| &self.members[i])
    }

    /// Days from `now` to expiry (negative once expired).
    pub fn days_left(&self, now: Timestamp) -> i64 {
        self.expires_at
            .as_millis()
            .saturating_sub(now.as_millis())
            .div_euclid(DAY_MS)
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }

    /// Whether `key` may stand for `author` on an object that claims to be made at `made`,
    /// received now: the key is the author's current key, or a retired one and the object
    /// predates the retirement. A revoked key accepts nothing new.
    pub fn accepts(
        &self,
        author: &Jurisdiction,
        key: &PublicKey,
        made: Timestamp,
    ) -> Result<(), KeyRefusal> {
        let member = self
            .member(author)
            .ok_or_else(|| KeyRefusal::NotAMember(author.clone()))?;
        if let Some(version) = member.left {
            return Err(KeyRefusal::Left {
                jurisdiction: author.clone(),
                version,
            });
        }
        let record = member.key_record(key).ok_or(KeyRefusal::UnknownKey {
            jurisdiction: author.clone(),
            key: *key,
        })?;
        if let Some(change) = record.revoked {
            return Err(KeyRefusal::Revoked {
                jurisdiction: author.clone(),
                key: *key,
                change,
            });
        }
        let grace = i64::from(self.rules.rotation_grace_hours) * 3_600_000;
        match record.retired {
            Some(change) if made.as_millis() >= change.at.as_millis().saturating_add(grace) => {
                Err(KeyRefusal::Retired {
                    jurisdiction: author.clone(),
                    key: *key,
                    change,
                })
            }
            _ => Ok(()),
        }
    }

    /// How `key` stands for `author` today, for an object already held (checked when it
    /// arrived): `None` when the key was never the author's.
    pub fn note(&self, author: &Jurisdiction, key: &PublicKey) -> Option<KeyNote> {
        let record = self.member(author)?.key_record(key)?;
        Some(match (record.revoked, record.retired) {
            (Some(c), _) => KeyNote::Revoked(c),
            (None, Some(c)) => KeyNote::Retired(c),
            (None, None) => KeyNote::Current,
        })
    }

    /// Everything about this version that needs no other version: syntax, uniqueness, limits,
    /// and each admitted member's card proving its keys.
    pub fn check_shape(&self) -> Result<(), BlocError> {
        let invalid = |m: String| Err(BlocError::Invalid(m));
        check_bloc_id(&self.bloc)?;
        if self.version == 0 {
            return invalid("version 0: versions start at 1".into());
        }
        if (self.version == 1) != self.previous.is_none() {
            return invalid("the genesis (version 1) and only it has no previous version".into());
        }
        if self.expires_at <= self.issued_at {
            return invalid(format!(
                "it expires ({}) before it is issued ({})",
                self.expires_at, self.issued_at
            ));
        }
        if let Some(p) = self.rules.threshold.problem() {
            return invalid(p);
        }
        if !(1..=3660).contains(&self.rules.lifetime_days) {
            return invalid("rules.lifetime_days must be between 1 and 3660".into());
        }
        if self.expires_at != self.expiry_from(self.issued_at) {
            return invalid(format!(
                "it expires at {}, but a version expires rules.lifetime_days ({}) after it is issued ({})",
                self.expires_at, self.rules.lifetime_days, self.issued_at
            ));
        }
        if self.rules.rotation_grace_hours > 24 * 30 {
            return invalid("rules.rotation_grace_hours must be at most 720 (30 days)".into());
        }
        if let Some(p) = self.settings.deadlines.problem() {
            return invalid(p);
        }
        if let Some(p) = self.settings.evidence.problem() {
            return invalid(p);
        }
        if let Some(p) = self
            .settings
            .instruments
            .iter()
            .find_map(|(i, rules)| rules.problem(*i))
        {
            return invalid(p);
        }
        if self.members.len() > MAX_MEMBERS {
            return invalid(format!("more than {MAX_MEMBERS} members"));
        }
        if !self
            .members
            .windows(2)
            .all(|w| w[0].jurisdiction < w[1].jurisdiction)
        {
            return invalid("members must be sorted by jurisdiction, each listed once".into());
        }
        if self.admitted().next().is_none() {
            return invalid("no member is admitted".into());
        }
        let mut transport = BTreeSet::new();
        let mut signing = BTreeSet::new();
        for m in &self.members {
            let j = &m.jurisdiction;
            if m.name.is_empty() || m.name.len() > MAX_TEXT {
                return invalid(format!("{j}: name must be 1 to {MAX_TEXT} bytes"));
            }
            check_addresses(j, &m.addresses)?;
            if m.joined == 0 || m.joined > self.version {
                return invalid(format!("{j}: joined in version {}", m.joined));
            }
            if m.left.is_some_and(|l| l <= m.joined || l > self.version) {
                return invalid(format!("{j}: left before it joined or after this version"));
            }
            if m.signing_keys.is_empty() || m.signing_keys.len() > MAX_KEYS_PER_MEMBER {
                return invalid(format!(
                    "{j}: 1 to {MAX_KEYS_PER_MEMBER} signing keys in its history"
                ));
            }
            if m.signing_keys.iter().filter(|k| k.is_current()).count() > 1 {
                return invalid(format!("{j}: more than one current signing key"));
            }
            for k in &m.signing_keys {
                let in_range = |c: &Option<Change>| {
                    c.is_none_or(|c| c.version > k.introduced && c.version <= self.version)
                };
                if k.introduced == 0
                    || k.introduced > self.version
                    || !in_range(&k.retired)
                    || !in_range(&k.revoked)
                {
                    return invalid(format!("{j}: key {} has an impossible history", k.key));
                }
                if !signing.insert(k.key) {
                    return invalid(format!("signing key {} is listed twice", k.key));
                }
            }
            if m.left.is_none() && !transport.insert(m.transport_key) {
                return invalid(format!("transport key of {j} is another member's"));
            }
            if m.is_admitted() {
                m.check_card(&self.bloc)?;
            }
        }
        Ok(())
    }
}

impl Member {
    pub fn is_admitted(&self) -> bool {
        self.left.is_none() && self.current_key().is_some()
    }

    /// The key it signs with now, if any (none after its key was revoked and not replaced).
    pub fn current_key(&self) -> Option<&PublicKey> {
        self.signing_keys
            .iter()
            .find(|k| k.is_current())
            .map(|k| &k.key)
    }

    pub fn key_record(&self, key: &PublicKey) -> Option<&KeyRecord> {
        self.signing_keys.iter().find(|k| k.key == *key)
    }

    /// The card must be this member's, for this bloc, name these keys, and be signed by both.
    fn check_card(&self, bloc: &str) -> Result<(), BlocError> {
        let card = MemberCard::open(&self.card, bloc).map_err(|reason| BlocError::Card {
            jurisdiction: self.jurisdiction.clone(),
            reason,
        })?;
        let same = card.jurisdiction == self.jurisdiction
            && card.name == self.name
            && card.addresses == self.addresses
            && card.transport_key == self.transport_key
            && Some(&card.signing_key) == self.current_key()
            && card.sealing_key == self.sealing_key;
        if !same {
            return Err(BlocError::Card {
                jurisdiction: self.jurisdiction.clone(),
                reason: "the entry differs from what the card states".into(),
            });
        }
        Ok(())
    }
}

impl MemberCard {
    /// Signs the card with both of the member's keys.
    pub fn sign(
        &self,
        signing: &ed25519_dalek::SigningKey,
        transport: &ed25519_dalek::SigningKey,
    ) -> MultiSigned {
        let mut signed = MultiSigned::new(self).expect("a card encodes");
        signed.add_signature(signing);
        signed.add_signature(transport);
        signed
    }

    /// Decodes a card and checks that its own two keys signed it, for `bloc`.
    pub fn open(bytes: &[u8], bloc: &str) -> Result<MemberCard, String> {
        let signed = MultiSigned::from_bytes(bytes, MAX_CARD_BYTES).map_err(|e| e.to_string())?;
        let claimed: MemberCard =
            crate::from_cbor(&signed.body, MAX_CARD_BYTES).map_err(|e| e.to_string())?;
        let keys = BTreeSet::from([claimed.signing_key, claimed.transport_key]);
        if keys.len() != 2 {
            return Err("the signing and transport keys must differ".into());
        }
        let (card, _) = signed
            .open::<MemberCard>(&keys, 2)
            .map_err(|e| format!("not signed by both of its keys: {e}"))?;
        if card.bloc != bloc {
            return Err(format!("it is for bloc {:?}", card.bloc));
        }
        check_addresses(&card.jurisdiction, &card.addresses).map_err(|e| e.to_string())?;
        Ok(card)
    }
}

fn check_bloc_id(bloc: &str) -> Result<(), BlocError> {
    let ok = !bloc.is_empty()
        && bloc.len() <= 32
        && bloc
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BlocError::Invalid(format!(
            "bloc id {bloc:?} must be 1 to 32 characters of a-z, 0-9 and '-'"
        )))
    }
}

fn check_addresses(j: &Jurisdiction, addresses: &[String]) -> Result<(), BlocError> {
    if addresses.len() > MAX_ADDRESSES
        || addresses
            .iter()
            .any(|a| !a.starts_with('/') || a.len() > MAX_TEXT)
    {
        return Err(BlocError::Invalid(format!(
            "{j}: at most {MAX_ADDRESSES} addresses, each a multiaddr such as /ip4/192.0.2.7/tcp/7000"
        )));
    }
    Ok(())
}

fn decode(signed: &MultiSigned) -> Result<BlocConfig, BlocError> {
    if signed.content_type != BlocConfig::CONTENT_TYPE {
        return Err(BlocError::Malformed(format!(
            "content type {:?}, expected {:?}",
            signed.content_type,
            BlocConfig::CONTENT_TYPE
        )));
    }
    let config: BlocConfig =
        crate::from_canonical_cbor(&signed.body, MAX_CONFIG_BYTES).map_err(|e| match e {
            crate::CodecError::NonCanonical => {
                BlocError::Malformed("the body is not canonical CBOR".into())
            }
            other => BlocError::Malformed(other.to_string()),
        })?;
    if config.version == 0 {
        return Err(BlocError::Malformed(
            "version 0: versions start at 1".into(),
        ));
    }
    Ok(config)
}

/// Decodes a configuration without checking who signed it (to show a proposal, or to learn
/// which version it claims before verifying it).
pub fn peek(signed: &MultiSigned) -> Result<BlocConfig, BlocError> {
    decode(signed)
}

/// Every signature on `signed` must verify over its body, whoever made it: an object with a
/// broken signature was altered and is refused outright.
fn check_all_signatures(signed: &MultiSigned) -> Result<(), BlocError> {
    for (key, outcome) in signed.verify_signatures() {
        if let Err(e) = outcome {
            return Err(BlocError::BadSignature(format!("by key {key}: {e}")));
        }
    }
    Ok(())
}

/// Verifies a genesis against the bloc's trust anchor: version 1, well formed, and signed by
/// every founder's signing key.
pub fn verify_genesis(signed: &MultiSigned, anchor: &Hash32) -> Result<Verified, BlocError> {
    let hash = config_hash(signed);
    if hash != *anchor {
        return Err(BlocError::WrongAnchor {
            anchor: *anchor,
            found: hash,
        });
    }
    let config = decode(signed)?;
    if config.version != 1 {
        return Err(BlocError::Invalid(format!(
            "the genesis is version {}, not 1",
            config.version
        )));
    }
    config.check_shape()?;
    check_all_signatures(signed)?;
    let signed_by: BTreeSet<PublicKey> = signed.signatures.iter().map(|(k, _)| *k).collect();
    let missing: Vec<String> = config
        .admitted()
        .filter(|m| !m.current_key().is_some_and(|k| signed_by.contains(k)))
        .map(|m| m.jurisdiction.to_string())
        .collect();
    let founders = config.admitted().count();
    if !missing.is_empty() {
        return Err(BlocError::BelowThreshold {
            version: 1,
            valid: founders - missing.len(),
            needed: founders,
            signers: format!(
                "every founder must sign the genesis; missing {}",
                missing.join(", ")
            ),
        });
    }
    let signers = config.admitted().map(|m| m.jurisdiction.clone()).collect();
    Ok(Verified {
        config,
        hash,
        signed: signed.clone(),
        signers,
    })
}

/// Verifies `signed` as the version after `current` (whose hash is `current_hash`): same bloc,
/// exactly the next version, chained to `current`, a history that only grows, and signed by
/// the threshold of `current`'s admitted members with the keys `current` gives them.
pub fn verify_successor(
    current: &BlocConfig,
    current_hash: &Hash32,
    signed: &MultiSigned,
) -> Result<Verified, BlocError> {
    let next = decode(signed)?;
    if next.bloc != current.bloc {
        return Err(BlocError::OtherBloc {
            expected: current.bloc.clone(),
            found: next.bloc,
        });
    }
    if next.version <= current.version {
        return Err(BlocError::Rollback {
            current: current.version,
            found: next.version,
        });
    }
    if next.version != current.version + 1 {
        return Err(BlocError::Gap {
            current: current.version,
            found: next.version,
        });
    }
    if next.previous != Some(*current_hash) {
        return Err(BlocError::BrokenChain {
            version: next.version,
            named: next.previous.map_or("nothing".into(), |h| h.to_string()),
            held: current_hash.to_string(),
        });
    }
    if next.issued_at < current.issued_at {
        return Err(BlocError::Invalid(format!(
            "version {} is issued ({}) before version {} ({})",
            next.version, next.issued_at, current.version, current.issued_at
        )));
    }
    next.check_shape()?;
    check_history(current, &next)?;
    check_all_signatures(signed)?;
    let signers = count_signers(current, signed)?;
    let needed = current.required_signatures();
    if signers.len() < needed {
        return Err(BlocError::BelowThreshold {
            version: next.version,
            valid: signers.len(),
            needed,
            signers: if signers.is_empty() {
                "none".into()
            } else {
                signers
                    .iter()
                    .map(|j| j.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    }
    Ok(Verified {
        hash: config_hash(signed),
        config: next,
        signed: signed.clone(),
        signers,
    })
}

/// The members of `current` whose current key signed; a signature by a key `current` lists as
/// retired or revoked is refused (it can sign nothing new), one by an unknown key counts for
/// nothing (a newcomer's, or an outsider's).
pub fn count_signers(
    current: &BlocConfig,
    signed: &MultiSigned,
) -> Result<Vec<Jurisdiction>, BlocError> {
    let mut by_key: BTreeMap<PublicKey, (&Member, &KeyRecord)> = BTreeMap::new();
    for m in &current.members {
        for k in &m.signing_keys {
            by_key.insert(k.key, (m, k));
        }
    }
    let mut signers = BTreeSet::new();
    for (key, _) in &signed.signatures {
        let Some((member, record)) = by_key.get(key) else {
            continue;
        };
        let dead = match (record.revoked, record.retired) {
            (Some(c), _) => Some(("revoked", c.version)),
            (None, Some(c)) => Some(("retired", c.version)),
            (None, None) => None,
        };
        if let Some((what, version)) = dead {
            return Err(BlocError::DeadKey {
                jurisdiction: member.jurisdiction.clone(),
                key: *key,
                what,
                version,
            });
        }
        if member.is_admitted() {
            signers.insert(member.jurisdiction.clone());
        }
    }
    Ok(signers.into_iter().collect())
}

/// What may change from one version to the next: members are added (joining now) or marked
/// as left, never deleted; a key's record is kept as it was except that it may be retired or
/// revoked now; a key once used never comes back; new keys are introduced now.
fn check_history(current: &BlocConfig, next: &BlocConfig) -> Result<(), BlocError> {
    let version = next.version;
    let history = |reason: String| Err(BlocError::History { version, reason });
    let now = Change {
        version,
        at: next.issued_at,
    };
    let mut used: BTreeSet<PublicKey> = BTreeSet::new();
    let mut used_transport: BTreeSet<PublicKey> = BTreeSet::new();
    for m in &current.members {
        used_transport.extend(m.past_transport_keys.iter().copied());
        used_transport.insert(m.transport_key);
    }
    for m in &current.members {
        used.extend(m.signing_keys.iter().map(|k| k.key));
        let Some(n) = next.member(&m.jurisdiction) else {
            return history(format!(
                "{} is deleted (a member who leaves is marked left)",
                m.jurisdiction
            ));
        };
        if n.joined != m.joined {
            return history(format!("{}'s joining version changed", m.jurisdiction));
        }
        match (m.left, n.left) {
            (Some(a), Some(b)) if a == b => {}
            (None, None) => {}
            (None, Some(v)) if v == version => {}
            _ => return history(format!("{}'s departure changed", m.jurisdiction)),
        }
        if n.signing_keys.len() < m.signing_keys.len()
            || n.signing_keys[..m.signing_keys.len()]
                .iter()
                .zip(&m.signing_keys)
                .any(|(a, b)| !record_may_become(b, a, now))
        {
            return history(format!("{}'s key history is rewritten", m.jurisdiction));
        }
        let moved = n.transport_key != m.transport_key;
        let past_ok = if moved {
            n.past_transport_keys.len() == m.past_transport_keys.len() + 1
                && n.past_transport_keys.starts_with(&m.past_transport_keys)
                && n.past_transport_keys.last() == Some(&m.transport_key)
                && !used_transport.contains(&n.transport_key)
        } else {
            n.past_transport_keys == m.past_transport_keys
        };
        if !past_ok {
            return history(format!(
                "{}'s transport key history is rewritten, or an old transport key comes back",
                m.jurisdiction
            ));
        }
        if m.left.is_some() && n != m {
            return history(format!("{} has left; its entry is frozen", m.jurisdiction));
        }
    }
    for n in &next.members {
        let old_len = current
            .member(&n.jurisdiction)
            .map_or(0, |m| m.signing_keys.len());
        if old_len == 0
            && (n.joined != version
                || n.left.is_some()
                || !n.past_transport_keys.is_empty()
                || used_transport.contains(&n.transport_key))
        {
            return history(format!(
                "{} is new, so it joins in version {version}",
                n.jurisdiction
            ));
        }
        for k in &n.signing_keys[old_len..] {
            if k.introduced != version || !k.is_current() {
                return history(format!(
                    "{}'s new key {} must be introduced, current, in version {version}",
                    n.jurisdiction, k.key
                ));
            }
            if used.contains(&k.key) {
                return history(format!(
                    "key {} was used before and cannot come back",
                    k.key
                ));
            }
        }
    }
    Ok(())
}

/// A key record may stay as it was, or gain a retirement or revocation at `now`.
fn record_may_become(before: &KeyRecord, after: &KeyRecord, now: Change) -> bool {
    let step = |b: Option<Change>, a: Option<Change>| a == b || (b.is_none() && a == Some(now));
    before.key == after.key
        && before.introduced == after.introduced
        && step(before.retired, after.retired)
        && step(before.revoked, after.revoked)
}

/// Verifies a whole chain, genesis first, from the bloc's trust anchor.
pub fn verify_chain(anchor: &Hash32, chain: &[MultiSigned]) -> Result<Vec<Verified>, BlocError> {
    let mut verified: Vec<Verified> = Vec::with_capacity(chain.len());
    for signed in chain {
        let next = match verified.last() {
            None => verify_genesis(signed, anchor)?,
            Some(v) => verify_successor(&v.config, &v.hash, signed)?,
        };
        verified.push(next);
    }
    Ok(verified)
}

/// One change a proposal makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Amendment {
    /// Add a member from its signed card (`member.toml`).
    Add(MultiSigned),
    /// Mark a member as left.
    Remove(Jurisdiction),
    /// Replace a member's card: a new signing key (the old one is retired), a new transport
    /// key, new addresses or a new sealing key.
    Update(MultiSigned),
    /// Revoke a member's signing key as compromised.
    Revoke(Jurisdiction, PublicKey),
    /// Change a setting or rule: `deadlines.normal_hours`, `evidence.chunk_bytes`,
    /// `rules.threshold` (`2/3`), `rules.lifetime_days`…
    Set(String, String),
    /// Extend the expiry only (every new version is issued with a fresh expiry).
    Renew,
}

impl BlocConfig {
    /// The genesis of a new bloc from its founders' cards.
    pub fn genesis(
        bloc: &str,
        cards: &[MultiSigned],
        rules: Rules,
        settings: Settings,
        now: Timestamp,
    ) -> Result<BlocConfig, BlocError> {
        check_bloc_id(bloc)?;
        let mut config = BlocConfig {
            bloc: bloc.to_owned(),
            version: 1,
            previous: None,
            issued_at: now,
            expires_at: now,
            rules,
            settings,
            members: Vec::new(),
        };
        config.expires_at = config.expiry_from(now);
        for card in cards {
            config.add(card, now)?;
        }
        config.check_shape()?;
        Ok(config)
    }

    fn expiry_from(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_millis(
            now.as_millis()
                .saturating_add(i64::from(self.rules.lifetime_days) * DAY_MS),
        )
    }

    /// The next version: this one with `amendments`, issued `now`, chained to `hash`.
    pub fn amend(
        &self,
        hash: &Hash32,
        amendments: &[Amendment],
        now: Timestamp,
    ) -> Result<BlocConfig, BlocError> {
        let mut next = self.clone();
        next.version = self.version + 1;
        next.previous = Some(*hash);
        next.issued_at = now.max(self.issued_at);
        for amendment in amendments {
            match amendment {
                Amendment::Add(card) => next.add(card, now)?,
                Amendment::Remove(j) => {
                    let version = next.version;
                    let m = next.member_mut(j)?;
                    if m.left.is_some() {
                        return Err(BlocError::Invalid(format!("{j} has already left")));
                    }
                    m.left = Some(version);
                }
                Amendment::Update(card) => next.update(card)?,
                Amendment::Revoke(j, key) => {
                    let change = Change {
                        version: next.version,
                        at: next.issued_at,
                    };
                    let m = next.member_mut(j)?;
                    let record = m
                        .signing_keys
                        .iter_mut()
                        .find(|k| k.key == *key)
                        .ok_or_else(|| {
                            BlocError::Invalid(format!("{key} is not one of {j}'s keys"))
                        })?;
                    if record.revoked.is_some() {
                        return Err(BlocError::Invalid(format!("{key} is already revoked")));
                    }
                    record.revoked = Some(change);
                }
                Amendment::Set(name, value) => next.set(name, value)?,
                Amendment::Renew => {}
            }
        }
        next.expires_at = next.expiry_from(next.issued_at);
        next.check_shape()?;
        check_history(self, &next)?;
        Ok(next)
    }

    fn member_mut(&mut self, j: &Jurisdiction) -> Result<&mut Member, BlocError> {
        self.members
            .iter_mut()
            .find(|m| m.jurisdiction == *j)
            .ok_or_else(|| BlocError::Invalid(format!("{j} is not a member")))
    }

    fn add(&mut self, signed: &MultiSigned, _now: Timestamp) -> Result<(), BlocError> {
        let card = MemberCard::open(&signed.to_bytes(), &self.bloc).map_err(|reason| {
            BlocError::Invalid(format!("the member card does not verify: {reason}"))
        })?;
        if self.member(&card.jurisdiction).is_some() {
            return Err(BlocError::Invalid(format!(
                "{} is already a member (present or past); to change its keys or addresses, update its card",
                card.jurisdiction
            )));
        }
        let member = Member {
            jurisdiction: card.jurisdiction.clone(),
            name: card.name,
            addresses: card.addresses,
            transport_key: card.transport_key,
            past_transport_keys: Vec::new(),
            sealing_key: card.sealing_key,
            signing_keys: vec![KeyRecord {
                key: card.signing_key,
                introduced: self.version,
                retired: None,
                revoked: None,
            }],
            joined: self.version,
            left: None,
            card: signed.to_bytes(),
        };
        let at = self
            .members
            .partition_point(|m| m.jurisdiction < member.jurisdiction);
        self.members.insert(at, member);
        Ok(())
    }

    fn update(&mut self, signed: &MultiSigned) -> Result<(), BlocError> {
        let card = MemberCard::open(&signed.to_bytes(), &self.bloc).map_err(|reason| {
            BlocError::Invalid(format!("the member card does not verify: {reason}"))
        })?;
        let change = Change {
            version: self.version,
            at: self.issued_at,
        };
        let version = self.version;
        let m = self.member_mut(&card.jurisdiction)?;
        if m.left.is_some() {
            return Err(BlocError::Invalid(format!(
                "{} has left",
                card.jurisdiction
            )));
        }
        if m.current_key() != Some(&card.signing_key) {
            if m.key_record(&card.signing_key).is_some() {
                return Err(BlocError::Invalid(format!(
                    "key {} was {}'s before and cannot come back",
                    card.signing_key, card.jurisdiction
                )));
            }
            for k in m.signing_keys.iter_mut().filter(|k| k.is_current()) {
                k.retired = Some(change);
            }
            m.signing_keys.push(KeyRecord {
                key: card.signing_key,
                introduced: version,
                retired: None,
                revoked: None,
            });
        }
        if card.transport_key != m.transport_key {
            if m.past_transport_keys.contains(&card.transport_key) {
                return Err(BlocError::Invalid(format!(
                    "transport key {} was {}'s before and cannot come back",
                    card.transport_key, card.jurisdiction
                )));
            }
            let old = m.transport_key;
            m.past_transport_keys.push(old);
        }
        m.name = card.name;
        m.addresses = card.addresses;
        m.transport_key = card.transport_key;
        m.sealing_key = card.sealing_key;
        m.card = signed.to_bytes();
        Ok(())
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), BlocError> {
        let bad = |what: &str| BlocError::Invalid(format!("{name} = {value:?}: {what}"));
        let number = || value.parse::<u64>().map_err(|_| bad("not a whole number"));
        let s = &mut self.settings;
        match name {
            "deadlines.normal_hours" => s.deadlines.normal_hours = number()?,
            "deadlines.urgent_hours" => s.deadlines.urgent_hours = number()?,
            "deadlines.emergency_hours" => s.deadlines.emergency_hours = number()?,
            "evidence.max_package_bytes" => s.evidence.max_package_bytes = number()?,
            "evidence.chunk_bytes" => {
                s.evidence.chunk_bytes = u32::try_from(number()?).map_err(|_| bad("too large"))?
            }
            _ if name.starts_with("instruments.") => {
                let rest = &name["instruments.".len()..];
                let (code, field) = rest.split_once('.').ok_or_else(|| {
                    bad("write instruments.<instrument>.<field>, e.g. instruments.eu-eio.decision_hours")
                })?;
                let instrument: crate::Instrument = code
                    .parse()
                    .map_err(|e: crate::UnknownCode| bad(&e.to_string()))?;
                // `default` removes the bloc's figure: the instrument's own applies again.
                let value = if value == "default" {
                    None
                } else {
                    Some(number()?)
                };
                let days = |v: Option<u64>| {
                    v.map(|v| u32::try_from(v).map_err(|_| bad("too large")))
                        .transpose()
                };
                let rules = s.instruments.entry(instrument).or_default();
                match field {
                    "decision_hours" => rules.decision_hours = value,
                    "execution_hours" => rules.execution_hours = value,
                    "preservation_days" => rules.preservation_days = days(value)?,
                    "extension_days" => rules.extension_days = days(value)?,
                    _ => {
                        return Err(bad(&format!(
                            "an instrument's settings are {}",
                            InstrumentRules::FIELDS.join(", ")
                        )));
                    }
                }
                if *rules == InstrumentRules::default() {
                    s.instruments.remove(&instrument);
                }
            }
            "rules.threshold" => {
                self.rules.threshold = value.parse().map_err(|e: String| bad(&e))?
            }
            "rules.lifetime_days" => {
                self.rules.lifetime_days = u32::try_from(number()?).map_err(|_| bad("too large"))?
            }
            "rules.warn_days" => {
                self.rules.warn_days = u32::try_from(number()?).map_err(|_| bad("too large"))?
            }
            "rules.rotation_grace_hours" => {
                self.rules.rotation_grace_hours =
                    u32::try_from(number()?).map_err(|_| bad("too large"))?
            }
            _ => {
                return Err(BlocError::Invalid(format!(
                    "{name} is not a setting; settings are {}",
                    SETTINGS.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// The names `comity bloc propose --set` accepts.
pub const SETTINGS: &[&str] = &[
    "deadlines.normal_hours",
    "deadlines.urgent_hours",
    "deadlines.emergency_hours",
    "evidence.max_package_bytes",
    "evidence.chunk_bytes",
    "rules.threshold",
    "rules.lifetime_days",
    "rules.warn_days",
    "rules.rotation_grace_hours",
    "instruments.<instrument>.decision_hours",
    "instruments.<instrument>.execution_hours",
    "instruments.<instrument>.preservation_days",
    "instruments.<instrument>.extension_days",
];

/// What changed from `before` to `after`, one line each, for `comity bloc show --diff` and
/// proposals.
pub fn diff(before: &BlocConfig, after: &BlocConfig) -> Vec<String> {
    let mut lines = Vec::new();
    for m in &after.members {
        match before.member(&m.jurisdiction) {
            None => lines.push(format!("+ member {} ({})", m.jurisdiction, m.name)),
            Some(b) => {
                if b.left.is_none() && m.left.is_some() {
                    lines.push(format!("- member {} leaves", m.jurisdiction));
                }
                for k in &m.signing_keys {
                    match b.key_record(&k.key) {
                        None => lines.push(format!("+ {} signing key {}", m.jurisdiction, k.key)),
                        Some(old) => {
                            if old.revoked.is_none() && k.revoked.is_some() {
                                lines.push(format!(
                                    "! {} signing key {} revoked",
                                    m.jurisdiction, k.key
                                ));
                            } else if old.retired.is_none() && k.retired.is_some() {
                                lines.push(format!(
                                    "~ {} signing key {} retired",
                                    m.jurisdiction, k.key
                                ));
                            }
                        }
                    }
                }
                if b.transport_key != m.transport_key {
                    lines.push(format!(
                        "~ {} transport key {}",
                        m.jurisdiction, m.transport_key
                    ));
                }
                if b.addresses != m.addresses {
                    lines.push(format!(
                        "~ {} addresses {}",
                        m.jurisdiction,
                        m.addresses.join(" ")
                    ));
                }
                if b.sealing_key != m.sealing_key {
                    lines.push(format!("~ {} sealing key", m.jurisdiction));
                }
            }
        }
    }
    let settings = |c: &BlocConfig| -> Vec<(&'static str, String)> {
        vec![
            (
                "deadlines.normal_hours",
                c.settings.deadlines.normal_hours.to_string(),
            ),
            (
                "deadlines.urgent_hours",
                c.settings.deadlines.urgent_hours.to_string(),
            ),
            (
                "deadlines.emergency_hours",
                c.settings.deadlines.emergency_hours.to_string(),
            ),
            (
                "evidence.max_package_bytes",
                c.settings.evidence.max_package_bytes.to_string(),
            ),
            (
                "evidence.chunk_bytes",
                c.settings.evidence.chunk_bytes.to_string(),
            ),
            ("rules.threshold", c.rules.threshold.to_string()),
            ("rules.lifetime_days", c.rules.lifetime_days.to_string()),
            ("rules.warn_days", c.rules.warn_days.to_string()),
            (
                "rules.rotation_grace_hours",
                c.rules.rotation_grace_hours.to_string(),
            ),
        ]
    };
    for ((name, a), (_, b)) in settings(before).into_iter().zip(settings(after)) {
        if a != b {
            lines.push(format!("~ {name}: {a} → {b}"));
        }
    }
    let instruments: BTreeSet<_> = before
        .settings
        .instruments
        .keys()
        .chain(after.settings.instruments.keys())
        .collect();
    let shown = |v: Option<u64>| v.map_or_else(|| "default".to_owned(), |v| v.to_string());
    for instrument in instruments {
        let rules = |c: &BlocConfig| {
            c.settings
                .instruments
                .get(instrument)
                .copied()
                .unwrap_or_default()
        };
        for ((name, a), (_, b)) in rules(before)
            .fields()
            .into_iter()
            .zip(rules(after).fields())
        {
            if a != b {
                lines.push(format!(
                    "~ instruments.{instrument}.{name}: {} → {}",
                    shown(a),
                    shown(b)
                ));
            }
        }
    }
    if after.expires_at != before.expires_at {
        lines.push(format!(
            "~ expires {} → {}",
            before.expires_at, after.expires_at
        ));
    }
    lines
}

#[cfg(test)]
mod tests;
