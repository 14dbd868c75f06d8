//! The replicated case log: every change to a case is a signed [`CaseEvent`]; both
//! jurisdictions hold the same set of events; the case state ([`CaseView`]) is a deterministic
//! fold of that set, identical whatever the order, duplication or delay of delivery.
//!
//! This module owns the event format, the checks an event must pass to enter a log, and the
//! fold. It must never do I/O or read the clock: a replica's state may depend on nothing but
//! the events it holds, or two replicas holding the same events could disagree.
//!
//! # Insertion
//!
//! An event enters a log only if it is signed by its author's roster key, names this case,
//! links only to events already held (else [`EventError::MissingLinks`]: fetch them, retry),
//! carries the author's next sequence number given its causal past, links its author's
//! previous event, does not reuse an (author, seq) pair (equivocation), and is of a kind its
//! author's side may write. An event that passes is kept **even if it is not a valid
//! transition** in the state the log is in: validity depends on what else is held, which
//! differs between replicas until they converge, whereas membership must not.
//!
//! # Conflict rules
//!
//! The fold applies events in the order (height, precedence, id):
//!
//! - *height*: 1 for the submission, otherwise 1 + the greatest height among the event's
//!   links. An event is always higher than everything it has seen, so the order is a linear
//!   extension of causality: no event is applied before one it links to, directly or not.
//! - *precedence*: among events of equal height, a withdrawal comes first; all other kinds
//!   are equal. A requester's withdrawal therefore beats any executing-side step taken
//!   concurrently (without having seen the withdrawal).
//! - *id*: the [`EventId`] bytes break the remaining ties, the same way on every replica.
//!
//! Each event is then checked against the state reached so far. An event that is not a valid
//! transition there is kept and listed in [`CaseView::entries`] with `applied: false` and the
//! reason ("case already withdrawn", "decision already made: decisions are final", ...). In
//! particular:
//!
//! 1. A withdrawal concurrent with a fulfilment of the same height folds first: the case is
//!    withdrawn and the fulfilment is not applied, on both replicas. If the fulfilment is
//!    lower (the executing side had seen less), it is applied first and the withdrawal then
//!    withdraws the fulfilled case: the state is still `withdrawn`, and `fulfilled_at`
//!    records that evidence was sent.
//! 2. Decisions are final. Two concurrent decisions could only come from the executing side
//!    signing two events with one sequence number, which insertion refuses as equivocation;
//!    a later decision (e.g. after a clarification that came too late) is not applied.
//! 3. A receipt (`received`) applies whenever it is folded: it records `delivered_at` and
//!    moves `submitted` to `delivered`, and leaves any later state alone.
//! 4. Preservation is a sub-state beside the lifecycle: `preserved` starts it (not on a
//!    closed or withdrawn case, nor while one is active), `preservation-extended` only moves
//!    its end later, and `preservation-released` ends it; `purged` records `purged_at` in
//!    any state.

mod event;
mod fold;
mod state;
#[cfg(test)]
mod tests;

pub use event::{Approval, CaseEvent, Decision, EventId, EventKind, PolicyOutcome, Side};
pub use fold::{CaseLog, EventError, Inserted, KeyProblem};
pub use state::{CaseState, CaseView, LogEntry, Preservation};

/// Most events one case may hold. A real case has tens; the cap bounds what a misbehaving
/// peer can make a replica store and fold.
pub const MAX_EVENTS: usize = 4096;
