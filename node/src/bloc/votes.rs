//! Proposals and signatures: a governor proposes a version, members sign it, and it applies
//! where the threshold is reached.

use super::*;

impl Governance {
    /// Proposes the next version with `amendments`, signed by this node (and, for a rotation,
    /// proven by the new key's card), and announces it.
    pub async fn propose(
        &self,
        change: &ProposeRequest,
        officer: &str,
    ) -> Result<ProposalView, GovernanceError> {
        let (head, already) = {
            let chain = self.inner.chain.lock().await;
            let head = chain.head().cloned().ok_or_else(|| {
                GovernanceError::Refused("this node holds no bloc configuration yet".into())
            })?;
            let already = chain.signed_other(&self.inner.identity.public_key(), &Hash32([0; 32]));
            (head, already)
        };
        if !head
            .config
            .member(&self.inner.jurisdiction)
            .is_some_and(|m| m.is_admitted())
        {
            return Err(GovernanceError::Refused(
                "this node is not an admitted member of the bloc: a member's governor proposes for it (`comity bloc propose --add` or `--update` with this node's card)".into(),
            ));
        }
        if let Some((version, other)) = already {
            return Err(GovernanceError::Refused(format!(
                "this member already signed proposal {other} for version {version}; a member signs one proposal per version (sign that one, or wait until it lapses after 14 days)"
            )));
        }
        let mut amendments = Vec::new();
        for card in &change.add {
            let card = files::parse_member_file(card).map_err(GovernanceError::Refused)?;
            amendments.push(Amendment::Add(card));
        }
        for card in &change.update {
            let card = files::parse_member_file(card).map_err(GovernanceError::Refused)?;
            amendments.push(Amendment::Update(card));
        }
        for j in &change.remove {
            amendments.push(Amendment::Remove(j.clone()));
        }
        for (j, key) in &change.revoke {
            amendments.push(Amendment::Revoke(j.clone(), *key));
        }
        for (name, value) in &change.set {
            amendments.push(Amendment::Set(name.clone(), value.clone()));
        }
        if let Some(kind) = change.rotate_key.as_deref() {
            amendments.push(Amendment::Update(self.rotation_card(&head.config, kind)?));
        }
        if change.renew {
            amendments.push(Amendment::Renew);
        }
        if amendments.is_empty() {
            return Err(GovernanceError::Refused(
                "a proposal changes something: --add, --remove, --rotate-key, --revoke-key, --set or --renew".into(),
            ));
        }
        let next = head.config.amend(&head.hash, &amendments, self.now())?;
        let mut signed =
            MultiSigned::new(&next).map_err(|e| GovernanceError::Refused(e.to_string()))?;
        if head
            .config
            .member(&self.inner.jurisdiction)
            .is_some_and(|m| m.is_admitted())
        {
            signed.add_signature(&self.inner.identity.signing_key());
        }
        let hash = config_hash(&signed);
        self.vote(&signed, officer, "proposed").await?;
        // Held as a proposal, or (when this node's signature alone was the threshold) applied.
        match self.proposal(&hash).await {
            Some(view) => Ok(view),
            None => self.applied_view(&hash).await,
        }
    }

    /// This member's card with a new key of `kind` (`signing` or `transport`), signed by the
    /// new key and the one that stays. The new key is made now and kept as `*.next` until the
    /// version that introduces it applies.
    fn rotation_card(
        &self,
        config: &BlocConfig,
        kind: &str,
    ) -> Result<MultiSigned, GovernanceError> {
        let me = config.member(&self.inner.jurisdiction).ok_or_else(|| {
            GovernanceError::Refused("this node is not a member; it has no key to rotate".into())
        })?;
        // The new key is made now (kept as `*.next` until the version applies); the card
        // that introduces it is signed by it and by the key that stays.
        let (signing, transport) = match kind {
            "signing" => (
                self.pending_key(&self.inner.settings.signing_key)?,
                self.inner.identity.transport_signing_key(),
            ),
            "transport" => (
                (*self.inner.identity.signing_key()).clone(),
                self.pending_key(&self.inner.settings.transport_key)?,
            ),
            other => {
                return Err(GovernanceError::Refused(format!(
                    "--rotate-key {other}: write `signing` (the application signing key) or `transport` (the libp2p identity)"
                )));
            }
        };
        let card = MemberCard {
            bloc: config.bloc.clone(),
            jurisdiction: me.jurisdiction.clone(),
            name: me.name.clone(),
            addresses: me.addresses.clone(),
            transport_key: comity_protocol::PublicKey::from(&transport.verifying_key()),
            signing_key: comity_protocol::PublicKey::from(&signing.verifying_key()),
            sealing_key: me.sealing_key,
            made_at: self.now(),
        };
        Ok(card.sign(&signing, &transport))
    }

    /// Takes in a configuration handed over out of band (`comity bloc import`): a version
    /// this node missed, or a proposal. It is verified like any other; nothing is trusted as
    /// given.
    pub async fn import(&self, bytes: &[u8], officer: &str) -> Result<String, GovernanceError> {
        let signed = decode(bytes)?;
        let version = bloc::peek(&signed)?.version;
        let from = format!("officer {officer} (import)");
        match self.offer(&signed, &from).await {
            Offered::Applied(versions) => Ok(format!("applied version(s) {versions:?}")),
            Offered::Proposal { valid, needed, .. } => Ok(format!(
                "held as a proposal for version {version}: {valid} of {needed} signatures"
            )),
            Offered::Early { version } => Ok(format!(
                "held: version {version} applies once the versions before it arrive"
            )),
            Offered::Current => Ok(format!("version {version} is already the current version")),
            Offered::Fork { version, other, .. } => Err(GovernanceError::Refused(format!(
                "version {version} differs from the one held ({other}): a fork, kept as evidence"
            ))),
            Offered::Refused(e) => Err(GovernanceError::Bloc(e)),
        }
    }

    /// Adds this node's signature to an open proposal, named by its version (when only one is
    /// open for it) or by its hash (or a prefix of it).
    pub async fn sign(&self, which: &str, officer: &str) -> Result<ProposalView, GovernanceError> {
        let roster = self.roster();
        if !roster
            .config()
            .and_then(|c| c.member(&self.inner.jurisdiction))
            .is_some_and(|m| m.is_admitted())
        {
            return Err(GovernanceError::Refused(
                "this node is not an admitted member: its signature would count for nothing".into(),
            ));
        }
        // A version number, or a hash prefix long enough not to name the wrong proposal.
        let by_version = which.parse::<u64>().ok().filter(|_| which.len() < 8);
        if by_version.is_none() && which.len() < 8 {
            return Err(GovernanceError::Refused(format!(
                "name a proposal by its version, or by at least 8 characters of its hash (not {which:?})"
            )));
        }
        let mut proposal = {
            let chain = self.inner.chain.lock().await;
            let matching: Vec<&MultiSigned> = chain
                .proposals()
                .filter(|(h, p)| match by_version {
                    Some(v) => bloc::peek(p).is_ok_and(|c| c.version == v),
                    None => h.to_string().starts_with(which),
                })
                .map(|(_, p)| p)
                .collect();
            let one = match matching.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(GovernanceError::NotFound(format!(
                        "no open proposal {which}; see `comity bloc proposals`"
                    )));
                }
                _ => {
                    return Err(GovernanceError::Refused(format!(
                        "{} proposals are open for {which}; name one by its hash",
                        matching.len()
                    )));
                }
            };
            let hash = config_hash(&one);
            if let Some((version, other)) =
                chain.signed_other(&self.inner.identity.public_key(), &hash)
            {
                return Err(GovernanceError::Refused(format!(
                    "this member already signed another proposal for version {version} ({other}); a member signs one proposal per version"
                )));
            }
            one
        };
        // Only what this node's clock can vouch for: a proposal issued in the future would
        // hold back every retirement time after it.
        let claimed = bloc::peek(&proposal)?;
        let now = self.now();
        if claimed.issued_at.as_millis() > now.as_millis() + 3_600_000 {
            return Err(GovernanceError::Refused(format!(
                "the proposal is issued at {}, in the future of this node's clock ({now}); it is not signed",
                claimed.issued_at
            )));
        }
        proposal.add_signature(&self.inner.identity.signing_key());
        let hash = config_hash(&proposal);
        self.vote(&proposal, officer, "signed").await?;
        match self.proposal(&hash).await {
            Some(view) => Ok(view),
            None => self.applied_view(&hash).await,
        }
    }

    /// Offers a configuration this node's officer made or signed, records the vote, and
    /// announces it.
    pub(super) async fn vote(
        &self,
        signed: &MultiSigned,
        officer: &str,
        action: &str,
    ) -> Result<(), GovernanceError> {
        let hash = config_hash(signed);
        let version = bloc::peek(signed)?.version;
        match self.offer(signed, "this node").await {
            Offered::Refused(e) => return Err(GovernanceError::Bloc(e)),
            Offered::Fork { .. } | Offered::Current | Offered::Early { .. } => {
                return Err(GovernanceError::Refused(format!(
                    "version {version} is not the next version of this node's chain"
                )));
            }
            Offered::Applied(_) | Offered::Proposal { .. } => {}
        }
        let mut batch = Batch::new();
        crate::audit::record(
            &mut batch,
            crate::audit::AuditWhat::BlocVote {
                officer: officer.to_owned(),
                version,
                hash,
                action: action.to_owned(),
            },
        );
        self.inner.store.commit(batch).await?;
        info!(%officer, version, %hash, action, "bloc configuration vote");
        if let Some(network) = self.inner.network.get() {
            network.publish_governance(signed.to_bytes()).await;
        }
        Ok(())
    }

    /// A version that applied, as the proposal it was: who signed, how many were needed and
    /// what it changed.
    pub(super) async fn applied_view(
        &self,
        hash: &Hash32,
    ) -> Result<ProposalView, GovernanceError> {
        let chain = self.inner.chain.lock().await;
        let v = chain
            .versions()
            .iter()
            .rev()
            .find(|v| v.hash == *hash)
            .ok_or_else(|| GovernanceError::NotFound("the proposal is gone".into()))?;
        let previous = v
            .config
            .version
            .checked_sub(1)
            .and_then(|p| chain.version(p));
        Ok(ProposalView {
            version: v.config.version,
            hash: v.hash,
            signed_by: v.signers.clone(),
            needed: previous.map_or(v.signers.len(), |p| p.config.required_signatures()),
            applied: true,
            changes: previous.map_or_else(Vec::new, |p| bloc::diff(&p.config, &v.config)),
        })
    }

    pub(super) async fn proposal(&self, hash: &Hash32) -> Option<ProposalView> {
        self.proposals().await.into_iter().find(|p| p.hash == *hash)
    }

    /// Open proposals, with who signed and what they change.
    pub async fn proposals(&self) -> Vec<ProposalView> {
        let chain = self.inner.chain.lock().await;
        let Some(head) = chain.head() else {
            return Vec::new();
        };
        chain
            .proposals()
            .filter_map(|(hash, p)| {
                let config = bloc::peek(p).ok()?;
                let signed_by = bloc::count_signers(&head.config, p).unwrap_or_default();
                Some(ProposalView {
                    version: config.version,
                    hash: *hash,
                    signed_by,
                    needed: head.config.required_signatures(),
                    applied: false,
                    changes: bloc::diff(&head.config, &config),
                })
            })
            .collect()
    }
}

/// What `comity bloc propose` asks for.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    /// `member.toml` texts of members to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// `member.toml` texts that replace members' cards (new addresses, sealing key, keys),
    /// each signed by the keys it names.
    #[serde(default)]
    pub update: Vec<String>,
    #[serde(default)]
    pub remove: Vec<Jurisdiction>,
    /// `signing`: rotate this node's signing key.
    #[serde(default)]
    pub rotate_key: Option<String>,
    #[serde(default)]
    pub revoke: Vec<(Jurisdiction, comity_protocol::PublicKey)>,
    #[serde(default)]
    pub set: Vec<(String, String)>,
    #[serde(default)]
    pub renew: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProposalView {
    pub version: u64,
    pub hash: Hash32,
    pub signed_by: Vec<Jurisdiction>,
    pub needed: usize,
    pub applied: bool,
    pub changes: Vec<String>,
}
