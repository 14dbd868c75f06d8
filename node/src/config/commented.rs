//! `comity.toml` as `comity init` writes it: every value the node runs with, and a comment on
//! each section and on the settings an operator is likely to change.

use super::Config;

impl Config {
    /// The configuration as a TOML file that explains itself: every section and the settings
    /// an operator is likely to change carry a comment; optional settings left unset are shown
    /// commented out. Values are written by `toml_edit`, so any path or name round-trips.
    pub fn to_commented_toml(&self) -> String {
        let mut doc: toml_edit::DocumentMut = toml::to_string(self)
            .expect("a configuration always serializes")
            .parse()
            .expect("what toml writes, toml_edit reads");
        for (section, key, comment) in COMMENTS {
            let Some(table) = doc.get_mut(section).and_then(|t| t.as_table_mut()) else {
                continue;
            };
            let comment = comment
                .lines()
                .map(|l| format!("# {l}\n"))
                .collect::<String>();
            if key.is_empty() {
                let decor = table.decor_mut();
                decor.set_prefix(format!("\n{comment}"));
            } else if let Some(mut k) = table.key_mut(key) {
                k.leaf_decor_mut().set_prefix(comment);
            }
        }
        format!(
            "# Comity node configuration. Relative paths are resolved against this file's directory.\n{doc}"
        )
    }
}

/// What `to_commented_toml` says about each section (key "") and setting.
const COMMENTS: &[(&str, &str, &str)] = &[
    (
        "node",
        "jurisdiction",
        "The jurisdiction this node speaks for (ISO 3166-1 alpha-2, or a bloc body code like FR-PNF).",
    ),
    ("node", "store_dir", "RocksDB store directory."),
    (
        "node",
        "key_file",
        "Ed25519 transport key (mode 0600). Its public half is this node's PeerId; keep a backup offline.",
    ),
    (
        "node",
        "signing_key_file",
        "Ed25519 application signing key (mode 0600): what this member signs with. The bloc\nconfiguration lists it; rotate it with `comity bloc propose --rotate-key signing`.",
    ),
    (
        "node",
        "policy",
        "This node's policy (see docs/examples/policy.toml); incoming requests are checked against it\non arrival and again while pending when it changes or an agreement expires. A refusal binds:\naccepting the request needs an override approved by a second officer.",
    ),
    (
        "node",
        "policy_mode",
        "Without a policy file: \"policy\" refuses to start; \"manual-review\" starts and leaves every\nincoming request to a reviewer, unchecked (`comity status` shows it). Write policy.toml and\nit applies, whatever this says.",
    ),
    (
        "node",
        "master_key",
        "Encryption at rest: the master key (0600, back it up offline) wraps one key per case, kept in\nkeys_dir; destroying a case's key destroys its content (retention).",
    ),
    (
        "node",
        "sealing_key",
        "Evidence: the key packages for this jurisdiction are sealed to (0600; its public half is this\nmember's sealing key in the bloc configuration), and where packages are kept, sealed.",
    ),
    (
        "network",
        "",
        "Where peers reach this node (TCP + Noise + Yamux), and how many connections it takes.",
    ),
    ("network", "mdns", "mDNS discovery: local testnets only."),
    (
        "network",
        "request_timeout_secs",
        "Seconds a peer has to answer one exchange request.",
    ),
    (
        "network",
        "requests_per_second_per_member",
        "Each member's rate budget here (two seconds' worth may come at once): beyond it, its\nrequests are answered \"retry shortly\" unread, and its gossip dropped; of its requests,\nqueries_per_second_per_member may be pulls, proofs and policy queries (a pull counts one\nmore for every 64 KiB of events it is answered with). 0 is no budget.",
    ),
    (
        "network",
        "redial_interval_secs",
        "Seconds between dials of members that are not connected.",
    ),
    (
        "network",
        "anti_entropy_secs",
        "Seconds between asks to every connected member for events of shared cases this node\nlacks: the safety net under the outbox (members are also asked on connect).",
    ),
    (
        "network",
        "ping_interval_secs",
        "Each connection is pinged this often; one without an answered ping for dead_after_secs\nis closed and its member dialled again: a link that silently stops carrying packets shows\nas disconnected within about dead_after_secs (a slow answer still counts).",
    ),
    (
        "admin",
        "listen",
        "Admin API (HTTP + JSON, bearer tokens). Beyond loopback only with TLS: set tls_cert and\ntls_key (PEM; `comity tls-cert` makes a self-signed pair), or the node will not start.",
    ),
    (
        "outbox",
        "initial_backoff_ms",
        "Retries of undelivered messages: first delay, then doubling up to the cap.",
    ),
    (
        "outbox",
        "not_delivered_after_secs",
        "Seconds after which a request without a receipt is flagged \"not delivered\" (still retried).",
    ),
    (
        "outbox",
        "give_up_after_secs",
        "Seconds after which a message its member never acknowledged is no longer sent: it is kept\nand shown on its case until an officer sends it again (`comity case retry`).",
    ),
    (
        "log",
        "filter",
        "RUST_LOG-style filter (the RUST_LOG variable overrides it); format is \"text\" or \"json\".",
    ),
    (
        "safeguards",
        "disclosure_approval",
        "Data categories whose disclosure needs an approver's approval, and a second officer to fulfil\n(subscriber, user-identifying, traffic, content).",
    ),
    (
        "safeguards",
        "retention_sweep_secs",
        "Seconds between looks for cases whose retention has ended (their content is then destroyed).",
    ),
    (
        "safeguards",
        "max_new_cases_per_member_per_day",
        "New requests one member may open here in a day (UTC); more wait, in the sender's outbox, for\nthe next day.",
    ),
    (
        "audit",
        "checkpoint_secs",
        "Seconds between signed checkpoints of the audit log (when it grew), each published to the\nbloc at once; an unchanged one is published again every 30 of these, or when a member\nconnects.",
    ),
    (
        "audit",
        "report_secs",
        "Seconds between computations of this node's transparency reports, each signed and published\nto the bloc when its figures changed; an unchanged one again every 30 of these, or when a\nmember connects.",
    ),
    (
        "dashboard",
        "",
        "A read-only page of the bloc-wide statistics (and, in mode \"internal\", cosigned audit\ncheckpoints), without login, on a port of its own. Off unless set, e.g. listen =\n\"127.0.0.1:7791\". Mode \"public\" serves only the members' signed aggregate reports, with strict\nsecurity headers, a bounded request rate and cacheable answers: the one to publish.",
    ),
    (
        "log",
        "mode",
        "What the node keeps of each exchange beyond the case: \"full\" (its operational record names\nthe case it was about) or \"metadata\" (records never name a case).",
    ),
    (
        "metrics",
        "",
        "Prometheus/OpenMetrics endpoint (GET /metrics, /health, /ready) on a port of its own, without a\ntoken. Off unless set, e.g. listen = \"127.0.0.1:7792\"; it carries counts, sizes, times and\njurisdiction codes only. docs/operations.md lists every metric.",
    ),
    (
        "opmon",
        "",
        "Operational monitoring: a record of every exchange (member, direction, kind, sizes, times,\noutcome; never content), listed by `comity opmon`.",
    ),
    (
        "opmon",
        "retention_days",
        "Records older than this many days are deleted.",
    ),
    (
        "opmon",
        "max_records",
        "At most this many records are kept (about 150 bytes each); the oldest go first.",
    ),
    (
        "evidence",
        "parallel",
        "Chunks of a package pulled at once from the sending member.",
    ),
    ("bloc", "id", "The bloc this node belongs to."),
    (
        "bloc",
        "genesis",
        "The bloc's trust anchor (`anchor`, the hash of its genesis configuration) is received out of\nband: only configurations chained to it are trusted. A founder may leave it unset and start\nfrom this genesis file (the node then adopts that genesis's hash as its anchor).",
    ),
    (
        "bloc",
        "bootstrap",
        "Members to reach first (multiaddrs with /p2p/PEERID), to pull the configuration from.",
    ),
    (
        "bloc",
        "announce_secs",
        "Seconds between re-announcements of the current version and open proposals.",
    ),
    (
        "testing",
        "",
        "Testnets only: `faults` lets the admin API cut, slow and damage links to members and move\nthe clock; `cases_per_pull` (4096 by default) lowers the number of cases one pull lists.",
    ),
];

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn commented_toml_round_trips() {
        let config = Config::new(
            "FR".parse().unwrap(),
            "/ip4/127.0.0.1/tcp/4100".parse().unwrap(),
            "127.0.0.1:7800".parse().unwrap(),
        );
        let back: Config = toml::from_str(&config.to_commented_toml()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn commented_toml_round_trips_every_optional_setting_and_awkward_paths() {
        let mut config = Config::new(
            "FR".parse().unwrap(),
            "/ip4/127.0.0.1/tcp/4100".parse().unwrap(),
            "127.0.0.1:7800".parse().unwrap(),
        );
        config.node.store_dir = PathBuf::from("a \"quoted\" dir\\with\\backslashes");
        config.bloc.anchor = Some(comity_protocol::Hash32::of(b"genesis"));
        config.dashboard.listen = Some("127.0.0.1:7791".parse().unwrap());
        config.metrics.listen = Some("127.0.0.1:7792".parse().unwrap());
        config.testing.cases_per_pull = Some(16);
        config.testing.faults = true;
        let text = config.to_commented_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
        for (section, key, comment) in COMMENTS {
            let first = comment.lines().next().unwrap();
            assert!(
                text.contains(&format!("# {first}")),
                "{section}.{key}: comment missing"
            );
        }
    }
}
