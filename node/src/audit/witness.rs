//! Witnessing: members publish their signed checkpoints on the bloc's gossip topic; each node
//! checks every member's new checkpoint against the last one it saw of that member — same size,
//! same root; larger size, a consistency proof the member must give — and countersigns it. A
//! member whose history was rewritten, or who shows different logs to different peers, cannot
//! give that proof: the two contradicting signed checkpoints are kept as evidence, and the
//! alert is logged and shown by `comity status`.

use comity_protocol::audit::{Checkpoint, Cosignature};
use comity_protocol::merkle;
use comity_protocol::{
    ExchangeRequest, ExchangeResponse, Jurisdiction, SignedEnvelope, Timestamp, from_cbor, limits,
    to_canonical_cbor,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::identity::NodeIdentity;
use crate::network;
use crate::roster::Member;
use crate::store::{Batch, Cf, Store};

/// The latest checkpoint of a member that this node checked, with its countersignature.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Witnessed {
    pub checkpoint: SignedEnvelope,
    pub cosignature: SignedEnvelope,
}

/// Two signed checkpoints of one member that cannot both be true.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evidence {
    pub member: Jurisdiction,
    pub at: Timestamp,
    pub reason: String,
    pub earlier: SignedEnvelope,
    pub later: SignedEnvelope,
}

/// Every member's latest witnessed checkpoint: (member, tree size, when cosigned).
pub fn witnessed(store: &Store) -> Vec<(String, u64, Timestamp)> {
    store
        .scan(Cf::Witness)
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| {
            let w: Witnessed = ciborium::from_reader(v.as_slice()).ok()?;
            let c: Cosignature = from_cbor(&w.cosignature.body, limits::MAX_RESPONSE_FRAME).ok()?;
            Some((String::from_utf8_lossy(k).into_owned(), c.tree_size, c.at))
        })
        .collect()
}

/// Who cosigned this node's own log: (witness, tree size, when cosigned), the latest of each.
pub fn cosigned_by(store: &Store) -> Vec<(String, u64, Timestamp)> {
    store
        .scan(Cf::Cosignatures)
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| {
            let e = SignedEnvelope::from_bytes(v, limits::MAX_RESPONSE_FRAME).ok()?;
            let c: Cosignature = from_cbor(&e.body, limits::MAX_RESPONSE_FRAME).ok()?;
            Some((String::from_utf8_lossy(k).into_owned(), c.tree_size, c.at))
        })
        .collect()
}

/// Every contradiction found.
pub fn evidence(store: &Store) -> Vec<Evidence> {
    store
        .scan(Cf::WitnessEvidence)
        .unwrap_or_default()
        .iter()
        .filter_map(|(_, v)| ciborium::from_reader(v.as_slice()).ok())
        .collect()
}

pub async fn run(
    store: Store,
    network: network::Client,
    membership: crate::roster::Membership,
    identity: NodeIdentity,
    me: Jurisdiction,
) {
    let mut gossip = network.gossip();
    let mut lanes: std::collections::HashMap<Jurisdiction, Lane> = std::collections::HashMap::new();
    loop {
        let (source, data) = match gossip.recv().await {
            Ok(message) => message,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => break,
        };
        let roster = membership.current();
        let Some((member, verifying, envelope)) = roster.member_message(&source, &data) else {
            debug!(%source, "gossip message from a non-member, or unreadable");
            continue;
        };
        if member.jurisdiction == me {
            continue;
        }
        if envelope.content_type == <Cosignature as comity_protocol::Signable>::CONTENT_TYPE {
            keep_cosignature(&store, member, &verifying, envelope, &me).await;
            continue;
        }
        if envelope.content_type != <Checkpoint as comity_protocol::Signable>::CONTENT_TYPE {
            continue; // another kind of bloc message (reports)
        }
        let checkpoint: Checkpoint = match envelope.open(&verifying) {
            Ok(c) => c,
            Err(e) => {
                warn!(member = %member.jurisdiction, error = %e, "checkpoint refused: it does not verify");
                continue;
            }
        };
        if checkpoint.log != member.jurisdiction {
            warn!(member = %member.jurisdiction, "checkpoint refused: it is of another member's log");
            continue;
        }
        // Each member's checkpoints are witnessed on a task of their own, one at a time: a
        // member slow to give its consistency proof delays nobody else's. A checkpoint that
        // comes while its member's previous one is still being checked waits (the latest
        // only), and is checked next: members publish an unchanged checkpoint again only
        // rarely, so one passed over could go unwitnessed for minutes.
        let lane = lanes.entry(member.jurisdiction.clone()).or_default();
        {
            let mut state = lane.lock().expect("witness lane lock");
            if state.busy {
                debug!(member = %member.jurisdiction, "still checking this member's previous checkpoint; this one is next");
                state.next = Some((envelope, checkpoint));
                continue;
            }
            state.busy = true;
        }
        let (store, network, member, identity, me, lane) = (
            store.clone(),
            network.clone(),
            member.clone(),
            identity.clone(),
            me.clone(),
            lane.clone(),
        );
        tokio::spawn(async move {
            // Should the check panic, the lane is free again all the same.
            let _free = FreeOnDrop(lane.clone());
            let (mut envelope, mut checkpoint) = (envelope, checkpoint);
            loop {
                witness(
                    &store, &network, &member, envelope, checkpoint, &identity, &me,
                )
                .await;
                let mut state = lane.lock().expect("witness lane lock");
                match state.next.take() {
                    Some(next) => (envelope, checkpoint) = next,
                    None => {
                        state.busy = false;
                        return;
                    }
                }
            }
        });
    }
}

/// One member's checkpoints being witnessed: whether a task is at it, and the latest that
/// came meanwhile. Taken and given back under one lock, so none is lost between the two.
type Lane = std::sync::Arc<std::sync::Mutex<LaneState>>;

#[derive(Default)]
struct LaneState {
    busy: bool,
    next: Option<(SignedEnvelope, Checkpoint)>,
}

struct FreeOnDrop(Lane);

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.lock() {
            state.busy = false;
        }
    }
}

async fn witness(
    store: &Store,
    network: &network::Client,
    member: &Member,
    envelope: SignedEnvelope,
    checkpoint: Checkpoint,
    identity: &NodeIdentity,
    me: &Jurisdiction,
) {
    let key = member.jurisdiction.as_str().as_bytes().to_vec();
    let previous: Option<Witnessed> = store
        .get(Cf::Witness, &key)
        .ok()
        .flatten()
        .and_then(|v| ciborium::from_reader(v.as_slice()).ok());
    if let Some(previous) = previous {
        let Ok(earlier) =
            from_cbor::<Checkpoint>(&previous.checkpoint.body, limits::MAX_RESPONSE_FRAME)
        else {
            return;
        };
        if checkpoint.tree_size < earlier.tree_size {
            return; // an older announcement, already covered
        }
        if checkpoint.tree_size == earlier.tree_size {
            if checkpoint.root != earlier.root {
                alert(store, member, checkpoint.tree_size, previous.checkpoint, envelope, "two checkpoints of the same size with different roots: a split view or a rewritten log").await;
            }
            return;
        }
        // Larger: the member must prove its new log extends the one we saw.
        let request = ExchangeRequest::Consistency {
            old: earlier.tree_size,
            new: checkpoint.tree_size,
        };
        let Ok(frame) = to_canonical_cbor(&request) else {
            return;
        };
        let answer = match network.request(member.peer_id, frame).await {
            Ok(answer) => answer,
            Err(e) => {
                debug!(member = %member.jurisdiction, error = %e, "no consistency proof yet; will check the next checkpoint");
                return;
            }
        };
        let proof = match from_cbor::<ExchangeResponse>(&answer, limits::MAX_RESPONSE_FRAME) {
            Ok(ExchangeResponse::Consistency(proof)) => proof,
            // Its node could not answer now (a full disk, say): asked again next checkpoint.
            Ok(ExchangeResponse::Rejected(r))
                if r.code == comity_protocol::RejectCode::Unavailable =>
            {
                debug!(member = %member.jurisdiction, reason = %r.detail, "no consistency proof yet; will check the next checkpoint");
                return;
            }
            _ => {
                alert(
                    store,
                    member,
                    checkpoint.tree_size,
                    previous.checkpoint,
                    envelope,
                    "the member gave no consistency proof between its checkpoints",
                )
                .await;
                return;
            }
        };
        let holds = proof.old_size == earlier.tree_size
            && proof.new_size == checkpoint.tree_size
            && merkle::verify_consistency(
                earlier.tree_size,
                checkpoint.tree_size,
                &earlier.root.0,
                &checkpoint.root.0,
                &proof.path.iter().map(|h| h.0).collect::<Vec<_>>(),
            )
            .is_ok();
        if !holds {
            alert(store, member, checkpoint.tree_size, previous.checkpoint, envelope, "the new checkpoint is not consistent with the one seen before: the log was rewritten").await;
            return;
        }
    }
    let cosignature = Cosignature {
        log: checkpoint.log.clone(),
        tree_size: checkpoint.tree_size,
        root: checkpoint.root,
        witness: me.clone(),
        at: Timestamp::now(),
    };
    let Ok(cosignature) = SignedEnvelope::sign(&cosignature, &identity.signing_key()) else {
        return;
    };
    // The member learns who vouches for its log: the cosignature goes back over the topic.
    network.publish(cosignature.to_bytes()).await;
    let witnessed = Witnessed {
        checkpoint: envelope,
        cosignature,
    };
    let mut value = Vec::new();
    ciborium::into_writer(&witnessed, &mut value).expect("witness records encode");
    let mut batch = Batch::new();
    batch.put(Cf::Witness, key, value);
    if store.commit(batch).await.is_ok() {
        info!(member = %member.jurisdiction, size = checkpoint.tree_size, "checkpoint witnessed and cosigned");
    }
}

/// Keeps a member's cosignature of this node's own log, if it is of our log and newer than the
/// one held from that witness.
async fn keep_cosignature(
    store: &Store,
    witness: &Member,
    key: &ed25519_dalek::VerifyingKey,
    envelope: SignedEnvelope,
    me: &Jurisdiction,
) {
    let cosignature: Cosignature = match envelope.open(key) {
        Ok(c) => c,
        Err(e) => {
            warn!(member = %witness.jurisdiction, error = %e, "cosignature refused: it does not verify");
            return;
        }
    };
    if cosignature.log != *me || cosignature.witness != witness.jurisdiction {
        return; // a cosignature of another member's log
    }
    let key = witness.jurisdiction.as_str().as_bytes().to_vec();
    if let Ok(Some(held)) = store.get(Cf::Cosignatures, &key)
        && let Ok(held) = SignedEnvelope::from_bytes(&held, limits::MAX_RESPONSE_FRAME)
        && let Ok(held) = from_cbor::<Cosignature>(&held.body, limits::MAX_RESPONSE_FRAME)
        && held.tree_size > cosignature.tree_size
    {
        return;
    }
    let mut batch = Batch::new();
    batch.put(Cf::Cosignatures, key, envelope.to_bytes());
    if store.commit(batch).await.is_ok() {
        debug!(witness = %witness.jurisdiction, size = cosignature.tree_size, "our checkpoint cosigned");
    }
}

/// Evidence kept per member: the first contradictions are what matters, and a member must not
/// be able to grow this table without end.
const MAX_EVIDENCE_PER_MEMBER: usize = 16;

async fn alert(
    store: &Store,
    member: &Member,
    tree_size: u64,
    earlier: SignedEnvelope,
    later: SignedEnvelope,
    reason: &str,
) {
    warn!(member = %member.jurisdiction, size = tree_size, reason, "AUDIT ALERT: a member's log contradicts what it showed before");
    // Once per member and tree size, and a few per member at most.
    let prefix = format!("{}/", member.jurisdiction);
    let key = format!("{prefix}{tree_size:020}").into_bytes();
    let held = store
        .scan_prefix(Cf::WitnessEvidence, prefix.as_bytes())
        .unwrap_or_default();
    if held.iter().any(|(k, _)| *k == key) || held.len() >= MAX_EVIDENCE_PER_MEMBER {
        debug!(member = %member.jurisdiction, size = tree_size, "contradiction already in evidence");
        return;
    }
    let evidence = Evidence {
        member: member.jurisdiction.clone(),
        at: Timestamp::now(),
        reason: reason.to_owned(),
        earlier,
        later,
    };
    let mut value = Vec::new();
    ciborium::into_writer(&evidence, &mut value).expect("evidence encodes");
    let mut batch = Batch::new();
    batch.put(Cf::WitnessEvidence, key, value);
    let _ = store.commit(batch).await;
}
