//! What operators see of the chain: its history, one version, the status.

use super::*;

impl Governance {
    /// The chain, genesis first.
    pub async fn history(&self) -> Vec<Verified> {
        self.inner.chain.lock().await.versions().to_vec()
    }

    pub async fn version(&self, n: u64) -> Option<Verified> {
        self.inner.chain.lock().await.version(n).cloned()
    }

    pub async fn status(&self) -> BlocStatus {
        let chain = self.inner.chain.lock().await;
        let head = chain.head();
        let now = self.now();
        let peers = self.inner.peers.lock().expect("peers lock").clone();
        BlocStatus {
            bloc: self.roster().bloc().to_owned(),
            anchor: *chain.anchor(),
            version: head.map(|h| h.config.version),
            hash: head.map(|h| h.hash),
            issued_at: head.map(|h| h.config.issued_at),
            expires_at: head.map(|h| h.config.expires_at),
            days_left: head.map(|h| h.config.days_left(now)),
            expired: head.is_some_and(|h| h.config.is_expired(now)),
            expiring_soon: head
                .is_some_and(|h| h.config.days_left(now) < i64::from(h.config.rules.warn_days)),
            threshold: head.map(|h| h.config.rules.threshold.to_string()),
            needed: head.map(|h| h.config.required_signatures()),
            signed_by: head.map(|h| h.signers.clone()).unwrap_or_default(),
            members: head
                .map(|h| {
                    h.config
                        .members
                        .iter()
                        .map(|m| MemberView {
                            jurisdiction: m.jurisdiction.clone(),
                            name: m.name.clone(),
                            admitted: m.is_admitted(),
                            left: m.left,
                            signing_key: m.current_key().copied(),
                            transport_key: m.transport_key,
                            keys: m
                                .signing_keys
                                .iter()
                                .map(|k| KeyView {
                                    key: k.key,
                                    introduced: k.introduced,
                                    retired: k.retired.map(|c| c.version),
                                    revoked: k.revoked.map(|c| c.version),
                                })
                                .collect(),
                            head: peers.get(&m.jurisdiction).cloned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            proposals: chain.proposals().count(),
            forks: chain
                .forks()
                .iter()
                .map(|(v, h, _)| format!("version {v}: another validly signed configuration {h}"))
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyView {
    pub key: comity_protocol::PublicKey,
    pub introduced: u64,
    pub retired: Option<u64>,
    pub revoked: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub admitted: bool,
    pub left: Option<u64>,
    pub signing_key: Option<comity_protocol::PublicKey>,
    pub transport_key: comity_protocol::PublicKey,
    pub keys: Vec<KeyView>,
    /// The version and hash this member last said it holds.
    pub head: Option<PeerHead>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BlocStatus {
    pub bloc: String,
    pub anchor: Hash32,
    pub version: Option<u64>,
    pub hash: Option<Hash32>,
    pub issued_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub days_left: Option<i64>,
    pub expired: bool,
    pub expiring_soon: bool,
    pub threshold: Option<String>,
    pub needed: Option<usize>,
    pub signed_by: Vec<Jurisdiction>,
    pub members: Vec<MemberView>,
    pub proposals: usize,
    pub forks: Vec<String>,
}

/// One version as `comity bloc history` and `show` give it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionView {
    pub version: u64,
    pub hash: Hash32,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub signed_by: Vec<Jurisdiction>,
    pub changes: Vec<String>,
    pub config: Option<BlocConfig>,
}

impl VersionView {
    pub fn of(v: &Verified, previous: Option<&Verified>, with_config: bool) -> Self {
        Self {
            version: v.config.version,
            hash: v.hash,
            issued_at: v.config.issued_at,
            expires_at: v.config.expires_at,
            signed_by: v.signers.clone(),
            changes: previous.map_or_else(
                || vec!["genesis".to_owned()],
                |p| bloc::diff(&p.config, &v.config),
            ),
            config: with_config.then(|| v.config.clone()),
        }
    }
}
