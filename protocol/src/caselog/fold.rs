//! [`CaseLog`]: the verified set of one case's events, the checks an event must pass to join
//! it, and the deterministic order in which the set is folded into a [`CaseView`].
//!
//! Everything here is a function of the set of events held, never of the order they arrived
//! in: indexes are sorted maps and the fold order is computed from the events themselves.

use super::MAX_EVENTS;
use super::event::{CaseEvent, EventId, EventKind, Side};
use super::state::CaseView;
use crate::envelope::{EnvelopeError, PublicKey, Signable, SignedEnvelope};
use crate::from_cbor;
use crate::ids::{CaseId, Hash32, Jurisdiction, Timestamp};
use crate::limits::MAX_REQUEST_FRAME;
use ed25519_dalek::VerifyingKey;
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// What [`CaseLog::insert`] did with a valid event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    New(EventId),
    /// Already held: redelivery is harmless.
    Duplicate(EventId),
}

/// Why an event was refused. A refused event is not stored and changes nothing.
/// Why the caller's key lookup gives no key for an event's signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// The author is not a member (or has no key at all).
    NotAMember,
    /// The author is a member, but this key may not sign this event (unknown, retired
    /// before the event, revoked).
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    #[error("event envelope refused: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error(
        "event author {0} is not a party to this case or has no key in the roster; only the requesting and executing jurisdictions may write to a case"
    )]
    UnknownAuthor(Jurisdiction),
    #[error("event by {author} refused: {reason}")]
    Key {
        author: Jurisdiction,
        reason: String,
    },
    #[error("event belongs to case {found}, not to case {expected}; route it to its own case")]
    WrongCase { expected: CaseId, found: CaseId },
    #[error("a {kind} event may be written only by {side}, and {author} is not it")]
    WrongSide {
        kind: &'static str,
        author: Jurisdiction,
        side: Side,
    },
    #[error(
        "a case has exactly one submission, and this case already has {existing}; this one is refused"
    )]
    NotGenesis { existing: EventId },
    #[error(
        "a {kind} event cannot be the first of a case: fetch the case's submission (the event with no links) first, then retry"
    )]
    MissingGenesis { kind: &'static str },
    #[error(
        "event links to {} event(s) this replica does not hold yet; fetch them from the peer and retry (nothing was stored)", .0.len()
    )]
    MissingLinks(Vec<EventId>),
    #[error(
        "event is {author}'s number {found} in this case, but its links show {author} had written {} event(s) before it, so it should be number {expected}", expected - 1
    )]
    BadSequence {
        author: Jurisdiction,
        expected: u64,
        found: u64,
    },
    #[error(
        "event {seq} by {author} does not link to {author}'s previous event {previous}; an author must link its own last event"
    )]
    MissingOwnLink {
        author: Jurisdiction,
        seq: u64,
        previous: EventId,
    },
    #[error(
        "{author} signed two different events as its number {seq} ({existing} and {new}): equivocation; keep both envelopes as evidence and raise it with {author}"
    )]
    Equivocation {
        author: Jurisdiction,
        seq: u64,
        existing: EventId,
        new: EventId,
    },
    #[error(
        "event links are malformed: {0}; links must be sorted, without duplicates, and empty only for the submission"
    )]
    BadLinks(&'static str),
    #[error("event is malformed: {0}")]
    Malformed(String),
    #[error(
        "case already holds {max} events, the most one case may hold; this looks like a misbehaving peer"
    )]
    TooManyEvents { max: usize },
}

/// A verified event, with what the log derived from it on insert.
#[derive(Debug, Clone)]
struct Stored {
    event: CaseEvent,
    envelope: SignedEnvelope,
    /// 1 for the genesis, else 1 + the highest height among its links.
    height: u64,
    /// How many events of each author are in this event's causal past, itself included.
    seen: BTreeMap<Jurisdiction, u64>,
}

/// Position in the fold: (height, precedence, id). Sorting by height first keeps causes
/// before their effects; precedence then settles concurrent events of equal height.
type FoldKey = (u64, u8, EventId);

/// The replicated log of one case: every verified event, indexed by id.
#[derive(Debug, Clone)]
pub struct CaseLog {
    case_id: CaseId,
    /// (requesting, executing), fixed by the genesis.
    parties: Option<(Jurisdiction, Jurisdiction)>,
    genesis: Option<EventId>,
    events: BTreeMap<EventId, Stored>,
    by_author: BTreeMap<(Jurisdiction, u64), EventId>,
    /// Events some other event links to: whatever is not in here is a head.
    linked: BTreeSet<EventId>,
    order: BTreeSet<FoldKey>,
}

/// Concurrent events of equal height fold in this order: a withdrawal first, so that the
/// requester's withdrawal beats any executing-side step taken without having seen it.
fn precedence(kind: &EventKind) -> u8 {
    match kind {
        EventKind::Withdrawn { .. } => 0,
        _ => 1,
    }
}

impl CaseLog {
    /// A log for `case_id` whose parties are not known until the genesis arrives.
    pub fn new(case_id: CaseId) -> Self {
        Self {
            case_id,
            parties: None,
            genesis: None,
            events: BTreeMap::new(),
            by_author: BTreeMap::new(),
            linked: BTreeSet::new(),
            order: BTreeSet::new(),
        }
    }

    pub fn case_id(&self) -> CaseId {
        self.case_id
    }

    /// Verifies and adds one event. `key_of` is the caller's roster: the public key of a
    /// jurisdiction. Checks, in order: signature by `key_of(author)`, case id, parties and
    /// genesis rules, links known (else [`EventError::MissingLinks`], nothing stored), seq,
    /// own link, equivocation, allowed side, shape.
    ///
    /// An event that passes is added even if it is not a valid transition in the current
    /// state (a decision after a withdrawal): the fold records it as not applied. Refusing it
    /// instead would make acceptance depend on arrival order, and replicas would diverge.
    pub fn insert(
        &mut self,
        envelope: SignedEnvelope,
        key_of: impl Fn(&CaseEvent, &PublicKey) -> Result<VerifyingKey, KeyProblem>,
    ) -> Result<Inserted, EventError> {
        self.insert_with(envelope, |envelope| Self::open(envelope, key_of))
    }

    /// Adds an event that this replica verified when it first stored it, to rebuild a log from
    /// its own store without paying for every signature again. Every other rule is checked.
    /// Never use it for an event that came from anywhere but this node's own store.
    pub fn insert_stored(&mut self, envelope: SignedEnvelope) -> Result<Inserted, EventError> {
        self.insert_with(envelope, |envelope| {
            if envelope.content_type != CaseEvent::CONTENT_TYPE {
                return Err(EnvelopeError::WrongContentType {
                    expected: CaseEvent::CONTENT_TYPE.to_owned(),
                    found: envelope.content_type.clone(),
                }
                .into());
            }
            Ok(from_cbor(&envelope.body, MAX_REQUEST_FRAME).map_err(EnvelopeError::from)?)
        })
    }

    fn insert_with(
        &mut self,
        envelope: SignedEnvelope,
        open: impl FnOnce(&SignedEnvelope) -> Result<CaseEvent, EventError>,
    ) -> Result<Inserted, EventError> {
        // The id covers the signature, so identical bytes were verified when first stored.
        let id = Hash32::of(&envelope.to_bytes());
        if self.events.contains_key(&id) {
            return Ok(Inserted::Duplicate(id));
        }
        if self.events.len() >= MAX_EVENTS {
            return Err(EventError::TooManyEvents { max: MAX_EVENTS });
        }
        let event = open(&envelope)?;
        if event.case_id != self.case_id {
            return Err(EventError::WrongCase {
                expected: self.case_id,
                found: event.case_id,
            });
        }
        self.check_genesis_rules(&event)?;
        let (height, mut seen) = self.check_links(&event)?;
        self.check_own_chain(&event, id, &mut seen)?;
        self.check_side(&event)?;
        if let Some(problem) = event.kind.problem() {
            return Err(EventError::Malformed(problem));
        }

        if let EventKind::Submitted { request, .. } = &event.kind {
            self.parties = Some((request.requesting.clone(), request.executing.clone()));
            self.genesis = Some(id);
        }
        self.by_author.insert((event.author.clone(), event.seq), id);
        self.linked.extend(event.links.iter().copied());
        self.order.insert((height, precedence(&event.kind), id));
        self.events.insert(
            id,
            Stored {
                event,
                envelope,
                height,
                seen,
            },
        );
        Ok(Inserted::New(id))
    }

    /// Checks the domain, reads the author, and verifies the signature with the author's key.
    fn open(
        envelope: &SignedEnvelope,
        key_of: impl Fn(&CaseEvent, &PublicKey) -> Result<VerifyingKey, KeyProblem>,
    ) -> Result<CaseEvent, EventError> {
        if envelope.content_type != CaseEvent::CONTENT_TYPE {
            return Err(EnvelopeError::WrongContentType {
                expected: CaseEvent::CONTENT_TYPE.to_owned(),
                found: envelope.content_type.clone(),
            }
            .into());
        }
        // The author is needed to pick the key; this unverified decode is bounded, and
        // nothing read from it is trusted until `open` has checked the signature.
        let claimed: CaseEvent =
            from_cbor(&envelope.body, MAX_REQUEST_FRAME).map_err(EnvelopeError::from)?;
        let key = key_of(&claimed, &envelope.signer).map_err(|problem| match problem {
            KeyProblem::NotAMember => EventError::UnknownAuthor(claimed.author.clone()),
            KeyProblem::Refused(reason) => EventError::Key {
                author: claimed.author.clone(),
                reason,
            },
        })?;
        Ok(envelope.open::<CaseEvent>(&key)?)
    }

    fn check_genesis_rules(&self, event: &CaseEvent) -> Result<(), EventError> {
        if let Some((requesting, executing)) = &self.parties
            && event.author != *requesting
            && event.author != *executing
        {
            return Err(EventError::UnknownAuthor(event.author.clone()));
        }
        match (&event.kind, self.genesis) {
            (EventKind::Submitted { .. }, Some(existing)) => {
                Err(EventError::NotGenesis { existing })
            }
            (EventKind::Submitted { request, .. }, None) => {
                if !event.links.is_empty() {
                    return Err(EventError::BadLinks("the submission has links"));
                }
                if event.seq != 1 {
                    return Err(EventError::BadSequence {
                        author: event.author.clone(),
                        expected: 1,
                        found: event.seq,
                    });
                }
                if request.requesting != event.author {
                    return Err(EventError::Malformed(format!(
                        "the submission is signed by {} but the request is from {}; the requesting jurisdiction must submit its own request",
                        event.author, request.requesting
                    )));
                }
                if request.executing == request.requesting {
                    return Err(EventError::Malformed(format!(
                        "the request asks {} to assist itself; requesting and executing jurisdictions must differ",
                        request.executing
                    )));
                }
                Ok(())
            }
            (kind, None) => Err(EventError::MissingGenesis { kind: kind.code() }),
            (_, Some(_)) if event.links.is_empty() => Err(EventError::BadLinks(
                "only the submission may have no links",
            )),
            (_, Some(_)) => Ok(()),
        }
    }

    /// Checks the links are well formed and held; returns the event's height and causal-past
    /// counts (itself not yet included).
    fn check_links(
        &self,
        event: &CaseEvent,
    ) -> Result<(u64, BTreeMap<Jurisdiction, u64>), EventError> {
        if event.links.windows(2).any(|w| w[0] >= w[1]) {
            return Err(EventError::BadLinks("links are unsorted or repeated"));
        }
        let missing: Vec<EventId> = event
            .links
            .iter()
            .filter(|l| !self.events.contains_key(l))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(EventError::MissingLinks(missing));
        }
        let mut height = 0;
        let mut seen: BTreeMap<Jurisdiction, u64> = BTreeMap::new();
        for link in &event.links {
            let linked = &self.events[link];
            height = height.max(linked.height);
            for (author, &n) in &linked.seen {
                let entry = seen.entry(author.clone()).or_default();
                *entry = (*entry).max(n);
            }
        }
        Ok((height + 1, seen))
    }

    /// Seq, own link and equivocation; on success `seen` includes the event itself.
    fn check_own_chain(
        &self,
        event: &CaseEvent,
        id: EventId,
        seen: &mut BTreeMap<Jurisdiction, u64>,
    ) -> Result<(), EventError> {
        let before = seen.get(&event.author).copied().unwrap_or(0);
        if event.seq != before + 1 {
            return Err(EventError::BadSequence {
                author: event.author.clone(),
                expected: before + 1,
                found: event.seq,
            });
        }
        if before > 0 {
            let previous = self.by_author[&(event.author.clone(), before)];
            if event.links.binary_search(&previous).is_err() {
                return Err(EventError::MissingOwnLink {
                    author: event.author.clone(),
                    seq: event.seq,
                    previous,
                });
            }
        }
        if let Some(&existing) = self.by_author.get(&(event.author.clone(), event.seq)) {
            return Err(EventError::Equivocation {
                author: event.author.clone(),
                seq: event.seq,
                existing,
                new: id,
            });
        }
        seen.insert(event.author.clone(), event.seq);
        Ok(())
    }

    fn check_side(&self, event: &CaseEvent) -> Result<(), EventError> {
        let side = event.kind.allowed_author();
        let Some((requesting, executing)) = &self.parties else {
            // Only the genesis gets here without parties, and it names its own author.
            return Ok(());
        };
        let ok = match side {
            Side::Requester => event.author == *requesting,
            Side::Executing => event.author == *executing,
            Side::Either => true,
        };
        if ok {
            Ok(())
        } else {
            Err(EventError::WrongSide {
                kind: event.kind.code(),
                author: event.author.clone(),
                side,
            })
        }
    }

    /// Builds (does not insert) `author`'s next event: seq after its last, links to the
    /// current heads plus its own last event (which another event may already link to).
    pub fn next_event(&self, author: &Jurisdiction, kind: EventKind, at: Timestamp) -> CaseEvent {
        let written = self.written_by(author);
        let mut links: BTreeSet<EventId> = self.heads().into_iter().collect();
        if written > 0 {
            links.insert(self.by_author[&(author.clone(), written)]);
        }
        CaseEvent {
            case_id: self.case_id,
            author: author.clone(),
            seq: written + 1,
            links: links.into_iter().collect(),
            at,
            kind,
        }
    }

    /// How many events `author` has in this log. Every stored event's predecessors are
    /// stored, so an author's events are always exactly its numbers 1 to this.
    fn written_by(&self, author: &Jurisdiction) -> u64 {
        self.by_author
            .range((author.clone(), 0)..=(author.clone(), u64::MAX))
            .count() as u64
    }

    /// Events no other event links to, sorted. Two replicas with the same heads hold the
    /// same events, which is what nodes compare after a reconnect.
    pub fn heads(&self) -> Vec<EventId> {
        self.events
            .keys()
            .filter(|id| !self.linked.contains(id))
            .copied()
            .collect()
    }

    /// Per author, the highest seq held (the log holds all lower ones too).
    pub fn version_vector(&self) -> BTreeMap<Jurisdiction, u64> {
        let mut vv = BTreeMap::new();
        for (author, _) in self.by_author.keys() {
            *vv.entry(author.clone()).or_default() += 1;
        }
        vv
    }

    /// What a replica whose version vector is `have` lacks, in fold order, which is causal:
    /// the replica can insert them one by one.
    pub fn events_after(&self, have: &BTreeMap<Jurisdiction, u64>) -> Vec<SignedEnvelope> {
        self.in_fold_order()
            .filter(|s| s.event.seq > have.get(&s.event.author).copied().unwrap_or(0))
            .map(|s| s.envelope.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// All events, in the deterministic fold order.
    pub fn envelopes(&self) -> Vec<SignedEnvelope> {
        self.in_fold_order().map(|s| s.envelope.clone()).collect()
    }

    /// The fold: the case as these events make it.
    pub fn view(&self) -> CaseView {
        let mut view = CaseView::empty(self.case_id);
        for (_, _, id) in &self.order {
            let stored = &self.events[id];
            view.fold(*id, &stored.event, &stored.seen);
        }
        view.heads = self.heads();
        view
    }

    pub fn get(&self, id: &EventId) -> Option<(&CaseEvent, &SignedEnvelope)> {
        self.events.get(id).map(|s| (&s.event, &s.envelope))
    }

    fn in_fold_order(&self) -> impl Iterator<Item = &Stored> {
        self.order.iter().map(|(_, _, id)| &self.events[id])
    }
}
