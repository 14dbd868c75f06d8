//! How configurations travel: announced on the bloc's gossip topic, pulled from members on
//! connect and on every announcement, answered page by page.

use super::*;

impl Governance {
    /// Starts the gossip listener, the pulls on connect and the periodic announcements.
    pub fn start(&self, network: network::Client) {
        let _ = self.inner.network.set(network.clone());
        let this = self.clone();
        let mut gossip = network.governance();
        tokio::spawn(async move {
            loop {
                match gossip.recv().await {
                    Ok((peer, data)) => {
                        let from = this.name_of(&peer);
                        match decode(&data) {
                            Ok(signed) => {
                                this.offer(&signed, &from).await;
                            }
                            Err(e) => warn!(%peer, error = %e, "governance message refused"),
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        debug!(missed = n, "governance messages missed; pulls catch up")
                    }
                    Err(_) => break,
                }
            }
        });
        let this = self.clone();
        let mut connections = network.connections();
        tokio::spawn(async move {
            loop {
                match connections.recv().await {
                    Ok(peer) => {
                        let this = this.clone();
                        tokio::spawn(async move { this.pull_from(peer).await });
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
        });
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.inner.settings.announce);
            loop {
                tick.tick().await;
                this.announce().await;
            }
        });
    }

    pub(super) fn name_of(&self, peer: &PeerId) -> String {
        self.roster()
            .by_peer(peer)
            .map_or_else(|| peer.to_string(), |(m, _)| m.jurisdiction.to_string())
    }

    /// Publishes the current version and the open proposals (members that missed them catch
    /// up), and warns as expiry nears.
    pub(super) async fn announce(&self) {
        let Some(network) = self.inner.network.get() else {
            return;
        };
        let (head, proposals) = {
            let mut chain = self.inner.chain.lock().await;
            // Proposals lapse 14 days after they were issued.
            let oldest = Timestamp::from_millis(
                self.now()
                    .as_millis()
                    .saturating_sub(PROPOSAL_LIFETIME.as_millis() as i64),
            );
            let lapsed = chain.prune_proposals(oldest);
            if !lapsed.is_empty() {
                let mut batch = Batch::new();
                for h in &lapsed {
                    batch.delete(Cf::Bloc, proposal_key(h));
                    info!(proposal = %h, "bloc proposal lapsed unsigned after 14 days");
                }
                if let Err(e) = self.inner.store.commit(batch).await {
                    warn!(error = %e, "cannot drop lapsed proposals from the store");
                }
            }
            (
                chain.head().cloned(),
                chain
                    .proposals()
                    .map(|(_, p)| p.clone())
                    .collect::<Vec<_>>(),
            )
        };
        if let Some(head) = &head {
            let now = self.now();
            let days = head.config.days_left(now);
            let expired = head.config.is_expired(now);
            let soon = days < i64::from(head.config.rules.warn_days);
            // Warned in the log at most once an hour; status shows it all the time.
            let due = (expired || soon) && {
                let mut warned = self.inner.expiry_warned.lock().expect("expiry lock");
                let due = warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600));
                if due {
                    *warned = Some(std::time::Instant::now());
                }
                due
            };
            if due && expired {
                warn!(version = head.config.version, expired = %head.config.expires_at, "the bloc configuration has expired: no new request can start until the members renew it (`comity bloc propose --renew`)");
            } else if due {
                warn!(
                    version = head.config.version,
                    days_left = days,
                    "the bloc configuration expires soon: renew it with `comity bloc propose --renew`"
                );
            }
            network.publish_governance(head.signed.to_bytes()).await;
        }
        for p in proposals {
            network.publish_governance(p.to_bytes()).await;
        }
        // Compare with every connected member again, now and then: a member that stays on
        // another version (or another configuration of the same version) shows in `comity
        // peers`. Not at every announcement: in a bloc of n members that would be n pulls
        // per member and announcement, most of an idle node's work.
        let due = {
            let mut compared = self
                .inner
                .compared
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let due = compared.is_none_or(|t| t.elapsed() >= self.inner.settings.compare);
            if due {
                *compared = Some(std::time::Instant::now());
            }
            due
        };
        if !due {
            return;
        }
        if let Some(status) = network.status().await {
            let roster = self.roster();
            for peer in status
                .connected
                .iter()
                .filter_map(|p| p.parse::<PeerId>().ok())
            {
                if roster.by_peer(&peer).is_some() {
                    let this = self.clone();
                    tokio::spawn(async move { this.pull_from(peer).await });
                }
            }
        }
    }

    /// Asks a newly connected peer for what it holds beyond our head.
    pub(super) async fn pull_from(&self, peer: PeerId) {
        let Some(network) = self.inner.network.get() else {
            return;
        };
        let bootstrap = self
            .inner
            .settings
            .bootstrap
            .iter()
            .any(|a| peer_in(a) == Some(peer));
        if self.roster().by_peer(&peer).is_none() && !bootstrap {
            return;
        }
        for _ in 0..64 {
            let have = self.roster().version();
            let frame =
                comity_protocol::to_canonical_cbor(&comity_protocol::ExchangeRequest::Bloc {
                    have,
                })
                .expect("a request encodes");
            let response = match network.request(peer, frame).await {
                Ok(r) => r,
                Err(e) => {
                    debug!(%peer, error = %e, "bloc pull failed");
                    return;
                }
            };
            let page = match comity_protocol::from_cbor::<comity_protocol::ExchangeResponse>(
                &response,
                comity_protocol::limits::MAX_RESPONSE_FRAME,
            ) {
                Ok(comity_protocol::ExchangeResponse::Bloc(page)) => page,
                Ok(_) | Err(_) => {
                    debug!(%peer, "bloc pull: no usable answer");
                    return;
                }
            };
            let from = self.name_of(&peer);
            if let Some((version, hash)) = page.head
                && let Some((member, _)) = self.roster().by_peer(&peer)
            {
                self.inner.peers.lock().expect("peers lock").insert(
                    member.jurisdiction.clone(),
                    PeerHead {
                        version,
                        hash,
                        at: self.now(),
                    },
                );
            }
            let mut applied = false;
            for bytes in page.configs.iter().chain(&page.proposals) {
                match decode(bytes) {
                    Ok(signed) => {
                        if let Offered::Applied(_) = self.offer(&signed, &from).await {
                            applied = true;
                        }
                    }
                    Err(e) => warn!(%peer, error = %e, "pulled configuration refused"),
                }
            }
            if !page.more || !applied {
                return;
            }
        }
    }

    /// Answers a member's pull: configurations after `have`, open proposals, our head.
    pub async fn answer_pull(&self, have: u64) -> comity_protocol::BlocPage {
        let chain = self.inner.chain.lock().await;
        let mut configs = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        for v in chain.versions().iter().filter(|v| v.config.version > have) {
            let encoded = v.signed.to_bytes();
            if bytes + encoded.len() > PULL_BATCH_BYTES && !configs.is_empty() {
                more = true;
                break;
            }
            bytes += encoded.len();
            configs.push(serde_bytes::ByteBuf::from(encoded));
        }
        let proposals = if more {
            Vec::new()
        } else {
            chain
                .proposals()
                .map(|(_, p)| p.to_bytes())
                .take_while(|p| {
                    bytes += p.len();
                    bytes <= PULL_BATCH_BYTES
                })
                .map(serde_bytes::ByteBuf::from)
                .collect()
        };
        comity_protocol::BlocPage {
            head: chain.head().map(|h| (h.config.version, h.hash)),
            configs,
            proposals,
            more,
        }
    }
}

pub(super) fn peer_in(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The bootstrap peers named in multiaddrs (`/p2p/PEERID`).
pub fn bootstrap_peers(addrs: &[Multiaddr]) -> Vec<(PeerId, Multiaddr)> {
    addrs
        .iter()
        .filter_map(|a| peer_in(a).map(|p| (p, a.clone())))
        .collect()
}
