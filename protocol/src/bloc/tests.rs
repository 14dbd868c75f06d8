use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;

const T0: i64 = 1_790_000_000_000;

fn ts(days: i64) -> Timestamp {
    Timestamp::from_millis(T0 + days * DAY_MS)
}

/// A member's two keys, derived from a seed so that tests are reproducible.
#[derive(Clone)]
struct Founder {
    j: Jurisdiction,
    signing: SigningKey,
    transport: SigningKey,
}

impl Founder {
    fn new(j: &str, seed: u8) -> Self {
        Self {
            j: j.parse().unwrap(),
            signing: SigningKey::from_bytes(&[seed; 32]),
            transport: SigningKey::from_bytes(&[seed.wrapping_add(100); 32]),
        }
    }
    fn key(&self) -> PublicKey {
        PublicKey::from(&self.signing.verifying_key())
    }
    fn card(&self) -> MultiSigned {
        MemberCard {
            bloc: "eu-test".into(),
            jurisdiction: self.j.clone(),
            name: format!("{} ministry", self.j),
            addresses: vec!["/ip4/127.0.0.1/tcp/7000".into()],
            transport_key: PublicKey::from(&self.transport.verifying_key()),
            signing_key: self.key(),
            sealing_key: None,
            made_at: ts(0),
        }
        .sign(&self.signing, &self.transport)
    }
    /// The same member with a new signing key.
    fn rotated(&self, seed: u8) -> Self {
        Self {
            signing: SigningKey::from_bytes(&[seed; 32]),
            ..self.clone()
        }
    }
}

fn founders(n: usize) -> Vec<Founder> {
    ["AT", "BE", "DE", "ES", "FR", "IT", "NL", "PL", "SE"][..n]
        .iter()
        .enumerate()
        .map(|(i, j)| Founder::new(j, i as u8 + 1))
        .collect()
}

fn signed_by(config: &BlocConfig, who: &[&Founder]) -> MultiSigned {
    let mut signed = MultiSigned::new(config).unwrap();
    for f in who {
        signed.add_signature(&f.signing);
    }
    signed
}

fn genesis(fs: &[Founder]) -> (MultiSigned, Hash32) {
    let cards: Vec<_> = fs.iter().map(Founder::card).collect();
    let config = BlocConfig::genesis(
        "eu-test",
        &cards,
        Rules::default(),
        Settings::default(),
        ts(0),
    )
    .unwrap();
    let signed = signed_by(&config, &fs.iter().collect::<Vec<_>>());
    let hash = config_hash(&signed);
    (signed, hash)
}

#[test]
fn thresholds_round_up() {
    let two_thirds = Threshold {
        numerator: 2,
        denominator: 3,
    };
    assert_eq!(two_thirds.of(5), 4);
    assert_eq!(two_thirds.of(3), 2);
    assert_eq!(two_thirds.of(1), 1);
    let three_fifths: Threshold = "3/5".parse().unwrap();
    assert_eq!(three_fifths.of(5), 3);
    assert!("0/3".parse::<Threshold>().is_err());
    assert!("4/3".parse::<Threshold>().is_err());
    // Half or less would let two disjoint halves both reach it: a fork by honest members.
    let err = "1/2".parse::<Threshold>().unwrap_err();
    assert!(err.contains("above 1/2"), "{err}");
    assert!("2/5".parse::<Threshold>().is_err());
}

#[test]
fn genesis_needs_every_founder_and_the_anchor() {
    let fs = founders(3);
    let (signed, hash) = genesis(&fs);
    let v = verify_genesis(&signed, &hash).unwrap();
    assert_eq!(v.signers.len(), 3);
    assert_eq!(v.config.expires_at, ts(90));

    let short = signed_by(&v.config, &[&fs[0], &fs[1]]);
    let err = verify_genesis(&short, &hash).unwrap_err();
    assert!(err.to_string().contains("missing DE"), "{err}");

    let err = verify_genesis(&signed, &Hash32([0; 32])).unwrap_err();
    assert!(matches!(err, BlocError::WrongAnchor { .. }), "{err}");
}

#[test]
fn next_version_needs_the_threshold_of_the_previous_members() {
    let fs = founders(5);
    let (g, hash) = genesis(&fs);
    let v1 = verify_genesis(&g, &hash).unwrap();
    let newcomer = Founder::new("SE", 42);
    let v2 = v1
        .config
        .amend(&hash, &[Amendment::Add(newcomer.card())], ts(1))
        .unwrap();
    assert_eq!(v1.config.required_signatures(), 4);
    // The newcomer's own signature counts for nothing: it is not yet a member.
    let three = signed_by(&v2, &[&fs[0], &fs[1], &fs[2], &newcomer]);
    let err = verify_successor(&v1.config, &hash, &three).unwrap_err();
    assert!(
        matches!(
            err,
            BlocError::BelowThreshold {
                valid: 3,
                needed: 4,
                ..
            }
        ),
        "{err}"
    );
    let four = signed_by(&v2, &[&fs[0], &fs[1], &fs[2], &fs[3]]);
    let applied = verify_successor(&v1.config, &hash, &four).unwrap();
    assert_eq!(applied.config.version, 2);
    assert!(applied.config.member(&newcomer.j).unwrap().is_admitted());
}

#[test]
fn rotation_retires_the_old_key_and_old_objects_still_count() {
    let fs = founders(3);
    let (g, hash) = genesis(&fs);
    let v1 = verify_genesis(&g, &hash).unwrap();
    let de = &fs[2];
    let de2 = de.rotated(77);
    let v2 = v1
        .config
        .amend(&hash, &[Amendment::Update(de2.card())], ts(10))
        .unwrap();
    // Signed by the old key (a member's vote) and two others; the new key proved itself in
    // the card.
    let signed = signed_by(&v2, &[&fs[0], de]);
    let v2 = verify_successor(&v1.config, &hash, &signed).unwrap().config;
    let m = v2.member(&de.j).unwrap();
    assert_eq!(m.current_key(), Some(&de2.key()));
    assert!(v2.accepts(&de.j, &de2.key(), ts(11)).is_ok());
    assert!(v2.accepts(&de.j, &de.key(), ts(9)).is_ok(), "made before");
    // During the grace (72 h by default) DE may still sign with the old key: the members may
    // take that long to sign, and DE switches only when the version applies on its node.
    assert!(
        v2.accepts(&de.j, &de.key(), ts(12)).is_ok(),
        "within the grace"
    );
    let err = v2.accepts(&de.j, &de.key(), ts(13)).unwrap_err();
    assert!(matches!(err, KeyRefusal::Retired { .. }), "{err}");
    assert_eq!(
        v2.note(&de.j, &de.key()),
        Some(KeyNote::Retired(Change {
            version: 2,
            at: ts(10)
        }))
    );

    // The retired key can sign nothing new, not even the next version.
    let h2 = config_hash(&signed);
    let v3 = v2.amend(&h2, &[Amendment::Renew], ts(12)).unwrap();
    let err = verify_successor(&v2, &h2, &signed_by(&v3, &[&fs[0], &fs[1], de])).unwrap_err();
    assert!(
        matches!(
            err,
            BlocError::DeadKey {
                what: "retired",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn revocation_stops_a_member_until_it_has_a_new_key() {
    let fs = founders(3);
    let (g, hash) = genesis(&fs);
    let v1 = verify_genesis(&g, &hash).unwrap();
    let it = &fs[1];
    let v2 = v1
        .config
        .amend(&hash, &[Amendment::Revoke(it.j.clone(), it.key())], ts(3))
        .unwrap();
    let signed = signed_by(&v2, &[&fs[0], &fs[2]]);
    let v2 = verify_successor(&v1.config, &hash, &signed).unwrap().config;
    assert!(!v2.member(&it.j).unwrap().is_admitted());
    let err = v2.accepts(&it.j, &it.key(), ts(1)).unwrap_err();
    assert!(matches!(err, KeyRefusal::Revoked { .. }), "{err}");
    assert_eq!(
        v2.note(&it.j, &it.key()).unwrap().to_string(),
        "signed by a key later revoked (version 2)"
    );
    // Two admitted members now: both must sign (2/3 of 2, rounded up).
    assert_eq!(v2.required_signatures(), 2);
}

#[test]
fn history_cannot_be_rewritten() {
    let fs = founders(3);
    let (g, hash) = genesis(&fs);
    let v1 = verify_genesis(&g, &hash).unwrap().config;
    let all: Vec<&Founder> = fs.iter().collect();

    let mut deleted = v1.amend(&hash, &[Amendment::Renew], ts(1)).unwrap();
    deleted.members.remove(0);
    let err = verify_successor(&v1, &hash, &signed_by(&deleted, &all)).unwrap_err();
    assert!(matches!(err, BlocError::History { .. }), "{err}");

    let mut broken = v1.amend(&hash, &[Amendment::Renew], ts(1)).unwrap();
    broken.previous = Some(Hash32([9; 32]));
    let err = verify_successor(&v1, &hash, &signed_by(&broken, &all)).unwrap_err();
    assert!(matches!(err, BlocError::BrokenChain { .. }), "{err}");

    let err = verify_successor(&v1, &hash, &g).unwrap_err();
    assert!(matches!(err, BlocError::Rollback { .. }), "{err}");

    let mut skipped = v1.amend(&hash, &[Amendment::Renew], ts(1)).unwrap();
    skipped.version = 3;
    let err = verify_successor(&v1, &hash, &signed_by(&skipped, &all)).unwrap_err();
    assert!(err.to_string().contains("pull them first"), "{err}");

    let err = v1
        .amend(&hash, &[Amendment::Update(fs[0].card())], ts(1))
        .and_then(|c| {
            let mut c = c;
            c.members[0].signing_keys[0].introduced = 2;
            verify_successor(&v1, &hash, &signed_by(&c, &all))
        })
        .unwrap_err();
    assert!(matches!(err, BlocError::History { .. }), "{err}");
}

#[test]
fn cards_prove_possession_and_bad_input_is_explained() {
    let fs = founders(2);
    let (g, hash) = genesis(&fs);
    let v1 = verify_genesis(&g, &hash).unwrap().config;

    // A card signed by the signing key only.
    let f = Founder::new("SE", 50);
    let mut half =
        MultiSigned::new(&MemberCard::open(&f.card().to_bytes(), "eu-test").unwrap()).unwrap();
    half.add_signature(&f.signing);
    let err = v1.amend(&hash, &[Amendment::Add(half)], ts(1)).unwrap_err();
    assert!(err.to_string().contains("both of its keys"), "{err}");

    // A card for another bloc.
    let mut card = MemberCard::open(&f.card().to_bytes(), "eu-test").unwrap();
    card.bloc = "other".into();
    let err = v1
        .amend(
            &hash,
            &[Amendment::Add(card.sign(&f.signing, &f.transport))],
            ts(1),
        )
        .unwrap_err();
    assert!(err.to_string().contains("for bloc \"other\""), "{err}");

    let err = v1
        .amend(
            &hash,
            &[Amendment::Set("deadlines.fast".into(), "1".into())],
            ts(1),
        )
        .unwrap_err();
    assert!(err.to_string().contains("is not a setting"), "{err}");
    let err = v1
        .amend(
            &hash,
            &[Amendment::Set("evidence.chunk_bytes".into(), "1000".into())],
            ts(1),
        )
        .unwrap_err();
    assert!(err.to_string().contains("multiple of"), "{err}");

    // An entry edited after its card was signed.
    let mut edited = v1.amend(&hash, &[Amendment::Renew], ts(1)).unwrap();
    edited.members[0].name = "someone else".into();
    let err = edited.check_shape().unwrap_err();
    assert!(matches!(err, BlocError::Card { .. }), "{err}");

    // Garbage and the wrong kind of object.
    let err = peek(
        &MultiSigned::new(&MemberCard::open(&f.card().to_bytes(), "eu-test").unwrap()).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, BlocError::Malformed(_)), "{err}");

    // An expiry other than the rules give (a sunset clause moved to the year 9999).
    let mut forever = v1.amend(&hash, &[Amendment::Renew], ts(1)).unwrap();
    forever.expires_at = ts(3_000_000);
    let err = forever.check_shape().unwrap_err();
    assert!(err.to_string().contains("lifetime_days"), "{err}");

    // Version 0 is not a version (and never reaches the chain's lookups).
    let mut zero = v1.clone();
    zero.version = 0;
    let mut node = Chain::new(hash);
    node.offer(&g);
    assert!(matches!(
        node.offer(&MultiSigned::new(&zero).unwrap()),
        Offered::Refused(BlocError::Malformed(_))
    ));
}

#[test]
fn an_old_transport_key_never_comes_back() {
    let fs = founders(3);
    let (g, hash) = genesis(&fs);
    let v1 = verify_genesis(&g, &hash).unwrap().config;
    let de = &fs[2];
    let moved = Founder {
        transport: SigningKey::from_bytes(&[90; 32]),
        ..de.clone()
    };
    let v2 = v1
        .amend(&hash, &[Amendment::Update(moved.card())], ts(1))
        .unwrap();
    let all: Vec<&Founder> = fs.iter().collect();
    let signed = signed_by(&v2, &all);
    let v2 = verify_successor(&v1, &hash, &signed).unwrap().config;
    assert_eq!(
        v2.member(&de.j).unwrap().past_transport_keys,
        vec![PublicKey::from(&de.transport.verifying_key())]
    );
    // DE's old card (its old transport key) replayed: refused when proposed...
    let h2 = config_hash(&signed);
    let err = v2
        .amend(&h2, &[Amendment::Update(de.card())], ts(2))
        .unwrap_err();
    assert!(err.to_string().contains("cannot come back"), "{err}");
    // ...and when forged into a version by hand.
    let mut back = v2.amend(&h2, &[Amendment::Renew], ts(2)).unwrap();
    let entry = back
        .members
        .iter_mut()
        .find(|m| m.jurisdiction == de.j)
        .unwrap();
    entry.transport_key = PublicKey::from(&de.transport.verifying_key());
    entry.past_transport_keys.clear();
    entry.card = de.card().to_bytes();
    let err = verify_successor(&v2, &h2, &signed_by(&back, &all)).unwrap_err();
    assert!(matches!(err, BlocError::History { .. }), "{err}");
}

#[test]
fn expiry_and_diff() {
    let fs = founders(2);
    let (g, hash) = genesis(&fs);
    let v1 = verify_genesis(&g, &hash).unwrap().config;
    assert_eq!(v1.days_left(ts(76)), 14);
    assert!(!v1.is_expired(ts(89)));
    assert!(v1.is_expired(ts(90)));
    let v2 = v1
        .amend(
            &hash,
            &[
                Amendment::Set("deadlines.normal_hours".into(), "720".into()),
                Amendment::Remove(fs[1].j.clone()),
            ],
            ts(80),
        )
        .unwrap();
    assert_eq!(v2.expires_at, ts(170));
    let lines = diff(&v1, &v2);
    assert!(
        lines.contains(&"- member BE leaves".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"~ deadlines.normal_hours: 240 → 720".to_string()),
        "{lines:?}"
    );
    let err = v2.accepts(&fs[1].j, &fs[1].key(), ts(1)).unwrap_err();
    assert!(matches!(err, KeyRefusal::Left { .. }), "{err}");
}

#[test]
fn instrument_rules_are_settings_that_leave_old_configurations_alone() {
    let fs = founders(2);
    let (g, hash) = genesis(&fs);
    let v1 = verify_genesis(&g, &hash).unwrap().config;
    // No instrument rules: the encoding has no trace of them, so that configurations signed
    // before they existed keep their bytes and hashes.
    let bytes = crate::to_canonical_cbor(&v1.settings).unwrap();
    assert!(!bytes.windows(11).any(|w| w == b"instruments"));

    let set = |name: &str, value: &str| Amendment::Set(name.into(), value.into());
    let v2 = v1
        .amend(
            &hash,
            &[
                set("instruments.eu-eio.decision_hours", "480"),
                set("instruments.eu-epoc-pr.extension_days", "0"),
            ],
            ts(1),
        )
        .unwrap();
    v2.check_shape().unwrap();
    let eio = v2.settings.instruments[&crate::Instrument::EuEio];
    assert_eq!(eio.decision_hours, Some(480));
    let lines = diff(&v1, &v2);
    assert!(
        lines.contains(&"~ instruments.eu-eio.decision_hours: default → 480".to_string()),
        "{lines:?}"
    );
    // Back to the instrument's own figure: the entry goes.
    let v3 = v2
        .amend(
            &hash,
            &[set("instruments.eu-eio.decision_hours", "default")],
            ts(2),
        )
        .unwrap();
    assert!(
        !v3.settings
            .instruments
            .contains_key(&crate::Instrument::EuEio)
    );

    for (name, value, says) in [
        (
            "instruments.eu-xyz.decision_hours",
            "1",
            "unknown instrument",
        ),
        (
            "instruments.eu-eio.speed",
            "1",
            "decision_hours, execution_hours",
        ),
        (
            "instruments.eu-eio",
            "1",
            "instruments.<instrument>.<field>",
        ),
        (
            "instruments.eu-eio.decision_hours",
            "0",
            "between 1 and 8784",
        ),
        (
            "instruments.eu-eio.preservation_days",
            "x",
            "not a whole number",
        ),
    ] {
        let err = v1.amend(&hash, &[set(name, value)], ts(1)).unwrap_err();
        assert!(err.to_string().contains(says), "{name}={value}: {err}");
    }
}

/// A chain of `len` valid versions from `n` founders, each signed by exactly the threshold,
/// some rotating a key; and a set of bad versions that must never apply.
fn scenario(n: usize, len: usize) -> (Hash32, Vec<MultiSigned>, Vec<MultiSigned>) {
    let mut fs = founders(n);
    let (g, anchor) = genesis(&fs);
    let mut chain = vec![g.clone()];
    let mut bad = Vec::new();
    let mut current = verify_genesis(&g, &anchor).unwrap();
    for step in 0..len {
        let c = &current.config;
        let rotate = step % 2 == 1;
        let who = step % n;
        let mut amendments = vec![Amendment::Renew];
        let rotated = fs[who].rotated(200 + step as u8);
        if rotate {
            amendments = vec![Amendment::Update(rotated.card())];
        }
        let next = c
            .amend(&current.hash, &amendments, ts(step as i64 + 1))
            .unwrap();
        let needed = c.required_signatures();
        let signers: Vec<&Founder> = fs.iter().take(needed).collect();
        let short: Vec<&Founder> = fs.iter().take(needed - 1).collect();
        bad.push(signed_by(&next, &short));
        // A competing version signed by outsiders only.
        let outsiders: Vec<Founder> = (0..needed)
            .map(|i| Founder::new("FR", 150 + i as u8))
            .collect();
        let mut forged = next.clone();
        forged.settings.deadlines.normal_hours += 1;
        bad.push(signed_by(&forged, &outsiders.iter().collect::<Vec<_>>()));
        // A version with a broken chain.
        let mut broken = next.clone();
        broken.previous = Some(Hash32([step as u8; 32]));
        bad.push(signed_by(&broken, &signers));
        let signed = signed_by(&next, &signers);
        current = verify_successor(c, &current.hash, &signed).unwrap();
        chain.push(signed);
        if rotate {
            // The old key's signature on a later version is refused.
            let old = fs[who].clone();
            fs[who] = rotated;
            let later = current
                .config
                .amend(&current.hash, &[Amendment::Renew], ts(step as i64 + 1))
                .unwrap();
            let mut with_old: Vec<&Founder> = fs.iter().collect();
            with_old.push(&old);
            bad.push(signed_by(&later, &with_old));
        }
    }
    (anchor, chain, bad)
}

#[test]
fn a_whole_chain_verifies_and_a_replay_is_refused() {
    let (anchor, chain, _) = scenario(4, 4);
    let verified = verify_chain(&anchor, &chain).unwrap();
    assert_eq!(verified.len(), 5);
    let mut node = Chain::new(anchor);
    for signed in &chain {
        assert!(matches!(node.offer(signed), Offered::Applied(_)));
    }
    assert_eq!(node.offer(&chain[4]), Offered::Current);
    assert!(matches!(
        node.offer(&chain[2]),
        Offered::Refused(BlocError::Rollback { .. })
    ));
}

#[test]
fn signatures_gathered_one_by_one_apply_at_the_threshold() {
    let fs = founders(5);
    let (g, anchor) = genesis(&fs);
    let mut node = Chain::new(anchor);
    node.offer(&g);
    let head = node.head().unwrap().clone();
    let next = head
        .config
        .amend(&head.hash, &[Amendment::Renew], ts(1))
        .unwrap();
    for (i, f) in fs.iter().take(3).enumerate() {
        match node.offer(&signed_by(&next, &[f])) {
            Offered::Proposal { valid, needed, .. } => {
                assert_eq!((valid, needed), (i + 1, 4));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        node.offer(&signed_by(&next, &[&fs[4]])),
        Offered::Applied(vec![2])
    );
    assert_eq!(node.proposals().count(), 0);
}

#[test]
fn two_valid_versions_of_the_same_number_are_a_fork() {
    let fs = founders(3);
    let (g, anchor) = genesis(&fs);
    let mut node = Chain::new(anchor);
    node.offer(&g);
    let head = node.head().unwrap().clone();
    let a = head
        .config
        .amend(&head.hash, &[Amendment::Renew], ts(1))
        .unwrap();
    let b = head
        .config
        .amend(&head.hash, &[Amendment::Renew], ts(2))
        .unwrap();
    let all: Vec<&Founder> = fs.iter().collect();
    assert_eq!(node.offer(&signed_by(&a, &all)), Offered::Applied(vec![2]));
    assert!(matches!(
        node.offer(&signed_by(&b, &all)),
        Offered::Fork { version: 2, .. }
    ));
    assert_eq!(node.forks().len(), 1);
    assert_eq!(node.head().unwrap().config, a);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the order in which the good and bad versions arrive, and however often, every
    /// node ends at the same head, and no bad version is ever applied.
    #[test]
    fn every_order_of_arrival_ends_at_the_same_head(
        n in 3usize..6,
        len in 1usize..5,
        order in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        seeds in proptest::collection::vec(any::<u64>(), 2),
    ) {
        let (anchor, chain, bad) = scenario(n, len);
        let all: Vec<MultiSigned> = chain.iter().chain(&bad).cloned().collect();
        let mut heads = Vec::new();
        for seed in seeds {
            let mut arrivals: Vec<MultiSigned> = order.iter().map(|i| i.get(&all).clone()).collect();
            arrivals.extend(all.iter().cloned());
            // A deterministic shuffle per seed.
            let mut state = seed | 1;
            for i in (1..arrivals.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                arrivals.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut node = Chain::new(anchor);
            for a in &arrivals {
                let _ = node.offer(a);
            }
            let held: Vec<Hash32> = node.versions().iter().map(|v| v.hash).collect();
            for b in &bad {
                prop_assert!(!held.contains(&config_hash(b)) || chain.iter().any(|c| config_hash(c) == config_hash(b)));
            }
            heads.push(held);
        }
        let expected: Vec<Hash32> = chain.iter().map(config_hash).collect();
        for held in heads {
            prop_assert_eq!(&held, &expected);
        }
    }
}

#[test]
fn a_signature_over_another_version_or_an_oversized_object_is_refused() {
    let fs = founders(3);
    let (g, anchor) = genesis(&fs);
    let mut node = Chain::new(anchor);
    node.offer(&g);
    let head = node.head().unwrap().clone();
    let a = head
        .config
        .amend(&head.hash, &[Amendment::Renew], ts(1))
        .unwrap();
    let b = head
        .config
        .amend(&head.hash, &[Amendment::Renew], ts(2))
        .unwrap();
    // FR's and DE's signatures made over `a`, moved onto `b`.
    let over_a = signed_by(&a, &[&fs[0], &fs[1]]);
    let mut moved = MultiSigned::new(&b).unwrap();
    for (key, signature) in &over_a.signatures {
        moved.insert_signature(*key, *signature);
    }
    assert!(matches!(
        node.offer(&moved),
        Offered::Refused(BlocError::BadSignature(_))
    ));
    assert_eq!(node.head().unwrap().config.version, 1);
    assert_eq!(node.proposals().count(), 0);

    // A configuration past the size limit does not decode.
    let mut huge = a.clone();
    huge.members[0].name = "x".repeat(MAX_CONFIG_BYTES);
    let bytes = signed_by(&huge, &[&fs[0]]).to_bytes();
    assert!(MultiSigned::from_bytes(&bytes, MAX_CONFIG_BYTES).is_err());
    assert!(matches!(
        node.offer(&MultiSigned::from_bytes(&bytes, usize::MAX).unwrap()),
        Offered::Refused(_)
    ));
}

#[test]
fn one_member_cannot_crowd_out_the_others_proposals_and_proposals_lapse() {
    let fs = founders(5);
    let (g, anchor) = genesis(&fs);
    let mut node = Chain::new(anchor);
    node.offer(&g);
    let head = node.head().unwrap().clone();
    let proposal = |day: i64, by: &Founder| {
        let next = head
            .config
            .amend(&head.hash, &[Amendment::Renew], ts(day))
            .unwrap();
        signed_by(&next, &[by])
    };
    for day in 1..=4 {
        assert!(matches!(
            node.offer(&proposal(day, &fs[0])),
            Offered::Proposal { .. }
        ));
    }
    match node.offer(&proposal(5, &fs[0])) {
        Offered::Refused(e) => assert!(e.to_string().contains("AT has already signed 4"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Another member's proposal is still taken.
    assert!(matches!(
        node.offer(&proposal(6, &fs[1])),
        Offered::Proposal { .. }
    ));
    assert_eq!(
        node.signed_other(&fs[1].key(), &Hash32([0; 32]))
            .map(|(v, _)| v),
        Some(2)
    );
    // Proposals issued before day 3 lapse.
    assert_eq!(node.prune_proposals(ts(3)).len(), 2);
    assert_eq!(node.proposals().count(), 3);
    assert!(matches!(
        node.offer(&proposal(7, &fs[0])),
        Offered::Proposal { .. }
    ));
}
