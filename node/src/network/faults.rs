//! Fault injection on links to members (testnets only, `[testing] faults`): a filter between
//! the node's services and the swarm, in the manner of TiKV's `transport_simulate`. The
//! services send as they always do; the filter loses, delays or damages what they send to a
//! member, and the event loop closes and refuses the connections of a cut link. No service
//! code knows of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::RequestError;

/// What fault injection does to the link with one member. The default is a healthy link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkFault {
    /// Connections are closed and refused, in both directions.
    #[serde(default)]
    pub cut: bool,
    /// Every n-th request to the member is lost before it leaves (1: all; 0: none). The
    /// sender sees a timeout, as it would for a request lost on the way.
    #[serde(default)]
    pub drop_every: u32,
    /// Every request to the member waits this long before it leaves.
    #[serde(default)]
    pub delay_ms: u64,
    /// Every n-th request to the member leaves with one byte changed (1: all; 0: none).
    #[serde(default)]
    pub corrupt_every: u32,
}

impl LinkFault {
    pub fn is_healthy(&self) -> bool {
        *self == Self::default()
    }
}

/// What becomes of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sent after `delay`, with the byte at `corrupt` (if any) changed.
    Send {
        delay: Duration,
        corrupt: Option<usize>,
    },
    /// Lost after `delay`.
    Drop { delay: Duration },
}

/// The faults in force, per member, and how many requests each link has carried. Pure: the
/// verdict for the n-th request on a link depends on the fault and n alone.
#[derive(Debug, Default)]
pub struct LinkFilter {
    links: HashMap<PeerId, (LinkFault, u64)>,
}

impl LinkFilter {
    /// Puts `fault` in force on the link with `peer` (a healthy one removes the entry).
    pub fn set(&mut self, peer: PeerId, fault: LinkFault) {
        if fault.is_healthy() {
            self.links.remove(&peer);
        } else {
            self.links.insert(peer, (fault, 0));
        }
    }

    /// The verdict for the next request of `len` bytes to `peer`.
    pub fn outbound(&mut self, peer: &PeerId, len: usize) -> Verdict {
        let Some((fault, sent)) = self.links.get_mut(peer) else {
            return Verdict::Send {
                delay: Duration::ZERO,
                corrupt: None,
            };
        };
        *sent += 1;
        let nth = |every: u32| every > 0 && *sent % u64::from(every) == 0;
        let delay = Duration::from_millis(fault.delay_ms);
        if nth(fault.drop_every) {
            return Verdict::Drop { delay };
        }
        let corrupt = (nth(fault.corrupt_every) && len > 0)
            // Spread over the frame, the same for the same request number.
            .then(|| (*sent as usize).wrapping_mul(7_919) % len);
        Verdict::Send { delay, corrupt }
    }
}

/// The filter as the network client applies it.
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<Mutex<LinkFilter>>);

impl Faults {
    pub fn set(&self, peer: PeerId, fault: LinkFault) {
        self.lock().set(peer, fault);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkFilter> {
        // The filter holds no invariant a panicking holder could break.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `frame` as it is to leave for `peer`, after the link's delay; or the error the sender
    /// sees when the link loses it.
    pub async fn outbound(
        &self,
        peer: PeerId,
        mut frame: Vec<u8>,
    ) -> Result<Vec<u8>, RequestError> {
        let verdict = self.lock().outbound(&peer, frame.len());
        match verdict {
            Verdict::Send { delay, corrupt } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if let Some(at) = corrupt {
                    tracing::warn!(%peer, at, "fault injection: request damaged");
                    frame[at] ^= 0x5a;
                }
                Ok(frame)
            }
            Verdict::Drop { delay } => {
                tokio::time::sleep(delay).await;
                tracing::warn!(%peer, "fault injection: request lost");
                Err(RequestError::Timeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(filter: &mut LinkFilter, peer: &PeerId, n: usize) -> Vec<Verdict> {
        (0..n).map(|_| filter.outbound(peer, 100)).collect()
    }

    #[test]
    fn a_healthy_link_passes_everything_untouched() {
        let mut filter = LinkFilter::default();
        let peer = PeerId::random();
        let pass = Verdict::Send {
            delay: Duration::ZERO,
            corrupt: None,
        };
        assert!(sent(&mut filter, &peer, 5).iter().all(|v| *v == pass));
        filter.set(
            peer,
            LinkFault {
                drop_every: 1,
                ..LinkFault::default()
            },
        );
        filter.set(peer, LinkFault::default());
        assert!(sent(&mut filter, &peer, 5).iter().all(|v| *v == pass));
    }

    #[test]
    fn every_nth_request_is_lost_or_damaged_and_other_links_are_not_touched() {
        let mut filter = LinkFilter::default();
        let (faulty, other) = (PeerId::random(), PeerId::random());
        filter.set(
            faulty,
            LinkFault {
                drop_every: 3,
                corrupt_every: 2,
                delay_ms: 40,
                ..LinkFault::default()
            },
        );
        let verdicts = sent(&mut filter, &faulty, 6);
        let delay = Duration::from_millis(40);
        let dropped: Vec<usize> = (0..6)
            .filter(|i| matches!(verdicts[*i], Verdict::Drop { .. }))
            .collect();
        assert_eq!(dropped, vec![2, 5], "the 3rd and 6th are lost");
        // The 2nd and 4th are damaged (the 6th was lost first).
        for (i, v) in verdicts.iter().enumerate() {
            match v {
                Verdict::Send { delay: d, corrupt } => {
                    assert_eq!(*d, delay);
                    assert_eq!(corrupt.is_some(), i == 1 || i == 3, "request {}", i + 1);
                    assert!(corrupt.is_none_or(|at| at < 100));
                }
                Verdict::Drop { delay: d } => assert_eq!(*d, delay),
            }
        }
        assert!(sent(&mut filter, &other, 6).iter().all(|v| *v
            == Verdict::Send {
                delay: Duration::ZERO,
                corrupt: None
            }));
    }

    #[test]
    fn an_empty_frame_is_never_damaged_out_of_bounds() {
        let mut filter = LinkFilter::default();
        let peer = PeerId::random();
        filter.set(
            peer,
            LinkFault {
                corrupt_every: 1,
                ..LinkFault::default()
            },
        );
        assert_eq!(
            filter.outbound(&peer, 0),
            Verdict::Send {
                delay: Duration::ZERO,
                corrupt: None
            }
        );
    }

    #[test]
    fn the_api_reads_a_fault_with_only_the_fields_it_names() {
        let fault: LinkFault = serde_json::from_str(r#"{"cut": true}"#).unwrap();
        assert!(fault.cut && fault.drop_every == 0);
        assert!(serde_json::from_str::<LinkFault>(r#"{"drop": 1}"#).is_err());
    }
}
