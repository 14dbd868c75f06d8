//! The files operators hand each other: a member's self-signed `member.toml`, and a genesis
//! that founders sign one by one, offline, before it is assembled.

use std::path::Path;

use anyhow::Context;
use comity_protocol::bloc::{self, BlocConfig, MemberCard, Rules, Settings, config_hash};
use comity_protocol::{Hash32, MultiSigned, PublicKey, Timestamp};
use serde::{Deserialize, Serialize};

use crate::identity::NodeIdentity;

/// `member.toml`: the card in words, and the card itself (hex of its `COSE_Sign`, signed by
/// the member's signing and transport keys). The words are checked against the card.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberFile {
    bloc: String,
    jurisdiction: comity_protocol::Jurisdiction,
    name: String,
    addresses: Vec<String>,
    transport_key: PublicKey,
    signing_key: PublicKey,
    #[serde(default)]
    sealing_key: Option<comity_protocol::evidence::SealingKey>,
    card: String,
}

/// Makes this node's signed card and its `member.toml` text.
pub fn member_file(
    identity: &NodeIdentity,
    bloc: &str,
    jurisdiction: &comity_protocol::Jurisdiction,
    name: &str,
    addresses: &[String],
    sealing_key: Option<comity_protocol::evidence::SealingKey>,
) -> (MultiSigned, String) {
    member_file_with_keys(
        &identity.signing_key(),
        &identity.transport_signing_key(),
        bloc,
        jurisdiction,
        name,
        addresses,
        sealing_key,
    )
}

/// As [`member_file`], with the keys given (a card that introduces a new key).
pub fn member_file_with_keys(
    signing: &ed25519_dalek::SigningKey,
    transport: &ed25519_dalek::SigningKey,
    bloc: &str,
    jurisdiction: &comity_protocol::Jurisdiction,
    name: &str,
    addresses: &[String],
    sealing_key: Option<comity_protocol::evidence::SealingKey>,
) -> (MultiSigned, String) {
    let card = MemberCard {
        bloc: bloc.to_owned(),
        jurisdiction: jurisdiction.clone(),
        name: name.to_owned(),
        addresses: addresses.to_vec(),
        transport_key: PublicKey::from(&transport.verifying_key()),
        signing_key: PublicKey::from(&signing.verifying_key()),
        sealing_key,
        made_at: Timestamp::now(),
    };
    let signed = card.sign(signing, transport);
    let file = MemberFile {
        bloc: card.bloc,
        jurisdiction: card.jurisdiction,
        name: card.name,
        addresses: card.addresses,
        transport_key: card.transport_key,
        signing_key: card.signing_key,
        sealing_key: card.sealing_key,
        card: hex::encode(signed.to_bytes()),
    };
    let text = format!(
        "# This member's card for bloc {bloc}, signed by its own keys. Send it to a member of the\n# bloc, whose governor proposes adding it (`comity bloc propose --add member.toml`), or to the\n# founders for a genesis (`comity bloc genesis`). Editing it breaks its signature.\n{}",
        toml::to_string_pretty(&file).expect("a member file serialises")
    );
    (signed, text)
}

/// Reads a `member.toml` text: the card must verify and say what the words say.
pub fn parse_member_file(text: &str) -> Result<MultiSigned, String> {
    let file: MemberFile =
        toml::from_str(text).map_err(|e| format!("member.toml is not valid: {e}"))?;
    let bytes =
        hex::decode(file.card.trim()).map_err(|_| "member.toml: `card` is not hex".to_owned())?;
    let card = MemberCard::open(&bytes, &file.bloc).map_err(|e| {
        format!(
            "member.toml: the card of {} does not verify: {e}",
            file.jurisdiction
        )
    })?;
    let same = card.jurisdiction == file.jurisdiction
        && card.name == file.name
        && card.addresses == file.addresses
        && card.transport_key == file.transport_key
        && card.signing_key == file.signing_key
        && card.sealing_key == file.sealing_key;
    if !same {
        return Err(format!(
            "member.toml of {}: the text was edited after the card was signed; ask its operator for a new one (`comity bloc card`)",
            file.jurisdiction
        ));
    }
    MultiSigned::from_bytes(&bytes, bloc::MAX_CARD_BYTES).map_err(|e| e.to_string())
}

/// A genesis from the founders' `member.toml` files, with no signature yet.
pub fn genesis(
    bloc_id: &str,
    member_files: &[String],
    rules: Rules,
    settings: Settings,
) -> anyhow::Result<MultiSigned> {
    let cards = member_files
        .iter()
        .map(|t| parse_member_file(t).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = BlocConfig::genesis(bloc_id, &cards, rules, settings, Timestamp::now())?;
    Ok(MultiSigned::new(&config)?)
}

/// Reads a configuration file (a genesis being signed, or one version).
pub fn read_config(path: &Path) -> anyhow::Result<MultiSigned> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let signed = MultiSigned::from_bytes(&bytes, bloc::MAX_CONFIG_BYTES + 64 * 1024)
        .with_context(|| format!("{} is not a bloc configuration", path.display()))?;
    bloc::peek(&signed).with_context(|| format!("{}", path.display()))?;
    Ok(signed)
}

/// Signs a genesis offline with this node's signing key, after checking that the genesis
/// lists this node with exactly its keys.
pub fn sign_genesis(
    signed: &mut MultiSigned,
    identity: &NodeIdentity,
) -> anyhow::Result<comity_protocol::Jurisdiction> {
    let config = bloc::peek(signed)?;
    let me = config
        .members
        .iter()
        .find(|m| m.current_key() == Some(&identity.public_key()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "this node's signing key {} is not in the genesis; is it the right node directory?",
                identity.public_key()
            )
        })?;
    if me.transport_key != identity.transport_key() {
        anyhow::bail!(
            "the genesis lists {} with another transport key than this node's",
            me.jurisdiction
        );
    }
    signed.add_signature(&identity.signing_key());
    Ok(me.jurisdiction.clone())
}

/// Merges the founders' signed copies of one genesis and verifies the result: every founder
/// signed. Returns the genesis and its hash, the bloc's trust anchor.
pub fn assemble(copies: &[MultiSigned]) -> anyhow::Result<(MultiSigned, Hash32)> {
    let first = copies
        .first()
        .ok_or_else(|| anyhow::anyhow!("give the founders' signed copies of the genesis"))?;
    let mut merged = first.clone();
    for copy in copies {
        if copy.body != first.body {
            anyhow::bail!(
                "the copies are not of the same genesis ({} and {}); every founder signs the same file",
                config_hash(first),
                config_hash(copy)
            );
        }
        for (key, outcome) in copy.verify_signatures() {
            outcome.with_context(|| format!("the signature by {key} does not verify"))?;
        }
        for (key, signature) in &copy.signatures {
            merged.insert_signature(*key, *signature);
        }
    }
    let anchor = config_hash(&merged);
    bloc::verify_genesis(&merged, &anchor)?;
    Ok((merged, anchor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(j: &str) -> (NodeIdentity, String) {
        let id = NodeIdentity::generate();
        let (_, text) = member_file(
            &id,
            "eu-test",
            &j.parse().unwrap(),
            &format!("{j} ministry"),
            &["/ip4/127.0.0.1/tcp/7000".into()],
            None,
        );
        (id, text)
    }

    #[test]
    fn founders_sign_offline_and_assemble() {
        let (fr, fr_file) = node("FR");
        let (de, de_file) = node("DE");
        let blank = genesis(
            "eu-test",
            &[fr_file, de_file],
            Rules::default(),
            Settings::default(),
        )
        .unwrap();
        let mut a = blank.clone();
        let mut b = blank.clone();
        assert_eq!(sign_genesis(&mut a, &fr).unwrap().as_str(), "FR");
        sign_genesis(&mut b, &de).unwrap();
        let err = assemble(std::slice::from_ref(&a)).unwrap_err();
        assert!(format!("{err:#}").contains("missing DE"), "{err:#}");
        let (merged, anchor) = assemble(&[a, b]).unwrap();
        assert_eq!(anchor, config_hash(&merged));
        let stranger = NodeIdentity::generate();
        let err = sign_genesis(&mut merged.clone(), &stranger).unwrap_err();
        assert!(err.to_string().contains("not in the genesis"), "{err}");
    }

    #[test]
    fn an_edited_member_file_is_refused() {
        let (_, text) = node("FR");
        assert!(parse_member_file(&text).is_ok());
        let edited = text.replace("FR ministry", "Someone else");
        let err = parse_member_file(&edited).unwrap_err();
        assert!(err.contains("edited after"), "{err}");
        let err = parse_member_file("jurisdiction = 1").unwrap_err();
        assert!(err.contains("not valid"), "{err}");
    }
}
