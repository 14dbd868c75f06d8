//! Policy as data: what this node accepts from whom, and what it refers to a reviewer or
//! refuses. The rules themselves live in `comity_protocol::policy`, so that a requester can
//! pre-check a draft against a member's published summary with the same code; this module
//! reads `policy.toml` and decides nothing else. It never stores or sends anything.

mod file;

pub use comity_protocol::policy::{
    Agreement, DeathPenalty, Minimisation, Policy, PolicyCheck, PolicySummary, RuleResult,
    outcome_code,
};
pub use file::{PolicyProblem, parse};

#[cfg(test)]
mod tests;
