//! How the CLI shows things: tables for people, `--json` for programs.

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;

use crate::admin::api::{CaseDetail, CaseSummary, LogView, PeerView, StatusView};

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    t
}

pub fn status(s: &StatusView, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(s);
    }
    let connected = s.members.iter().filter(|m| m.connected).count();
    println!("jurisdiction  {}", s.jurisdiction);
    match (s.bloc_version, &s.bloc_hash, &s.bloc_expires_at) {
        (0, _, _) => println!("bloc          {} (no configuration yet: joining)", s.bloc),
        (v, Some(hash), Some(expires)) => {
            println!(
                "bloc          {} version {v} ({hash}), expires {expires}",
                s.bloc
            )
        }
        _ => println!("bloc          {}", s.bloc),
    }
    println!("peer id       {}", s.peer_id);
    println!("listening     {}", s.listen_addrs.join(", "));
    println!("members       {connected}/{} connected", s.members.len());
    println!(
        "outbox        {} message(s) awaiting a receipt",
        s.outbox_depth
    );
    for (member, size, at) in &s.witnessed {
        println!("witnessed     {member}: audit log of {size} entries, cosigned at {at}");
    }
    for (witness, size, at) in &s.cosigned_by {
        println!("cosigned by   {witness}: our audit log of {size} entries, at {at}");
    }
    if let Some(key) = &s.sealing_key {
        let listed = if s.sealing_key_in_roster {
            "as the bloc configuration lists it"
        } else {
            "NOT in the bloc configuration: evidence cannot be delivered to this node"
        };
        println!("sealing key   {key} ({listed})");
    }
    match s.policy_mode.as_str() {
        "manual-review" => println!(
            "policy        MANUAL REVIEW: no policy file; every incoming request goes to reviewers unchecked"
        ),
        _ => println!(
            "policy        {} agreement(s){}",
            s.policy_agreements,
            if s.expired_agreements.is_empty() {
                String::new()
            } else {
                format!(
                    "; EXPIRED with {}",
                    s.expired_agreements
                        .iter()
                        .map(|j| j.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    }
    if !s.store_writable {
        println!(
            "STORE ALERT   the store cannot write: nothing new is saved (free disk space, check the data directory's mount and permissions; see the node's log)"
        );
    }
    for alert in &s.audit_alerts {
        println!("AUDIT ALERT   {alert}");
    }
    for e in &s.equivocations {
        println!("EQUIVOCATION  {e}");
    }
    for alert in &s.bloc_alerts {
        println!("BLOC ALERT    {alert}");
    }
    for alert in &s.clock_alerts {
        println!("CLOCK ALERT   {alert}");
    }
    if !s.members.is_empty() {
        println!();
        peers(&s.members, false)?;
    }
    Ok(())
}

pub fn peers(peers: &[PeerView], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(&peers);
    }
    let mut t = table(&[
        "member",
        "name",
        "connected",
        "lag (pushes/events)",
        "requests (in hand/share, turned away)",
        "over rate (exchange/evidence/gossip)",
        "bloc config",
        "clock",
        "peer id",
    ]);
    for p in peers {
        t.add_row(vec![
            p.jurisdiction.to_string(),
            p.name.clone(),
            if p.connected { "yes" } else { "no" }.to_string(),
            format!("{}/{}", p.pending_pushes, p.pending_events),
            format!(
                "{}/{}, {}",
                p.requests_in_hand, p.request_share, p.requests_turned_away
            ),
            match &p.rate_budget {
                Some(r) => format!(
                    "{}/{}/{} (budget {}/{}/{} per s)",
                    r.exchange_over,
                    r.evidence_over,
                    r.gossip_over,
                    r.exchange_per_s,
                    r.evidence_per_s,
                    r.gossip_per_s
                ),
                None => "-".into(),
            },
            match (p.bloc_version, &p.bloc_agreement) {
                (Some(v), Some(a)) => format!("v{v} ({a})"),
                _ => "not yet compared".into(),
            },
            match p.clock_offset_ms {
                Some(ms) if ms.abs() >= 1000 => format!("{:+} s", ms / 1000),
                Some(ms) => format!("{ms:+} ms"),
                None => "-".into(),
            },
            p.peer_id.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn case_list(cases: &[CaseSummary], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(&cases);
    }
    if cases.is_empty() {
        println!("no cases");
        return Ok(());
    }
    let mut t = table(&[
        "case",
        "role",
        "with",
        "state",
        "kind",
        "instrument",
        "urgency",
        "due",
        "updated",
    ]);
    for c in cases {
        let mut state = c.state.clone();
        if c.not_delivered {
            state.push_str(" (not delivered)");
        }
        if c.policy_blocked {
            state.push_str(" (POLICY REFUSED: override needed)");
        }
        let mut due = match (&c.due, &c.overdue) {
            (Some(due), Some(what)) => format!("{what} OVERDUE since {due}"),
            (Some(due), None) => due.to_string(),
            _ => String::new(),
        };
        if let Some(rule) = &c.due_rule {
            due.push_str(&format!("\n({rule})"));
        }
        if let Some(p) = c.preservation.as_ref().filter(|p| p.lapses_soon) {
            due.push_str(&format!("\npreservation LAPSES at {}", p.until));
        }
        t.add_row(vec![
            c.case_id.to_string(),
            c.role.to_string(),
            c.counterparty.to_string(),
            state,
            c.kind.clone(),
            c.instrument.clone(),
            c.urgency.clone(),
            due,
            c.updated_at.to_string(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn case_detail(c: &CaseDetail, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(c);
    }
    let s = &c.summary;
    println!("case          {}", s.case_id);
    println!("role          {} (with {})", s.role, s.counterparty);
    println!("state         {}", s.state);
    println!(
        "instrument    {} / {} / {}",
        s.instrument, s.kind, s.urgency
    );
    match &c.request {
        Some(r) => {
            println!("route         {} -> {}", r.requesting, r.executing);
            println!("offence       {}", r.offence.category);
            let categories: Vec<String> = r.data_categories.iter().map(|d| d.to_string()).collect();
            println!("data          {}", categories.join(", "));
            println!("selectors     {}", r.selectors.len());
        }
        None if s.purged_at.is_some() => println!("content       destroyed"),
        None => println!("content       not shown (read it with `comity case show --purpose …`)"),
    }
    println!("created       {}", s.created_at);
    println!("updated       {}", s.updated_at);
    if let Some(m) = c.message_id {
        println!("message       {m}");
    }
    println!(
        "log           {} event(s), {} head(s)",
        s.events,
        s.heads.len()
    );
    if let Some(decision) = &c.decision {
        println!("decision      {}", describe_decision(decision));
    }
    if let Some(due) = c.summary.due {
        println!(
            "due           {due}{}",
            c.summary
                .overdue
                .as_ref()
                .map(|what| format!(" — {what} OVERDUE"))
                .unwrap_or_default()
        );
        if let Some(rule) = &c.summary.due_rule {
            println!("              set by {rule}");
        }
    }
    if let Some(p) = &c.summary.preservation {
        let state = match (p.released_at, p.lapses_soon) {
            (Some(at), _) => format!("released at {at} (was until {})", p.until),
            (None, true) => format!("until {} — LAPSES SOON: extend it or let it lapse", p.until),
            (None, false) => format!("until {}", p.until),
        };
        println!("preserved     {state}");
        if let Some(latest) = p.latest_end {
            println!("              extensions up to {latest} at the latest");
        }
        println!("              rule: {}", p.rule);
    }
    if let Some(a) = &c.approval {
        println!(
            "four-eyes     drafted by {}, approved by {} at {}",
            a.drafted_by, a.approved_by, a.approved_at
        );
    }
    if let Some(root) = &c.manifest_root {
        match c.evidence_received_at {
            Some(at) => println!("evidence      package {root}, received whole at {at}"),
            None => println!("evidence      package {root}, not yet received whole"),
        }
    }
    if let Some((by, at)) = &c.disclosure_approval {
        println!("disclosure    approved by {by} at {at}");
    }
    if let Some(outcome) = &c.summary.policy {
        let cover = match (outcome.as_str(), c.summary.policy_blocked) {
            ("refused", false) => " — OVERRIDDEN (four-eyes)",
            ("refused", true) => {
                " — BLOCKED: accepting or fulfilling needs an override (`comity case override`)"
            }
            _ => "",
        };
        println!("policy        {outcome}{cover}");
    }
    if c.overrides > 0 {
        println!("overrides     {}", c.overrides);
    }
    if c.request_version > 1 {
        println!(
            "version       {} of the request (amended)",
            c.request_version
        );
    }
    for a in &c.amendments {
        println!(
            "amended       to version {} at {}, drafted by {}, approved by {}",
            a.version,
            a.at,
            a.drafted_by,
            a.approved_by.as_deref().unwrap_or("-")
        );
        for change in &a.changes {
            println!("                {change}");
        }
    }
    if let Some(at) = c.scope_accepted_at {
        println!("scope         accepted by the requester at {at}");
    }
    if let Some(a) = &c.pending_amendment {
        println!(
            "AMENDMENT     drafted by {} at {}, awaiting another officer's approval (`comity request approve {}`)",
            a.drafted_by, a.at, c.summary.case_id
        );
        for change in &a.changes {
            println!("                {change}");
        }
    }
    if let Some(o) = &c.override_request {
        println!(
            "override      asked by {} at {}, awaiting another officer's approval",
            o.requested_by, o.requested_at
        );
        if let Some(reason) = &o.reason {
            println!("              reason: {reason}");
        }
    }
    print_custody(c);
    Ok(())
}

/// Retention, delivery and receipt of a case: what an officer checks of its custody.
fn print_custody(c: &CaseDetail) {
    let s = &c.summary;
    match (&s.purged_at, &s.retention_until) {
        (Some(at), _) => println!("PURGED        content destroyed at {at}"),
        (None, Some(until)) => {
            println!("retention     until {until}, then the content is destroyed")
        }
        _ => {}
    }
    if c.summary.not_delivered {
        println!("NOT DELIVERED still retrying");
    }
    if let Some(given_up) = &c.delivery.given_up {
        println!("GIVEN UP      {given_up}");
    }
    if let Some(refused) = &c.delivery.refused {
        println!("REFUSED       by {}: {refused}", s.counterparty);
    }
    if c.delivery.attempts > 0 || c.delivery.last_error.is_some() {
        println!(
            "delivery      {} attempt(s){}",
            c.delivery.attempts,
            c.delivery
                .last_error
                .as_ref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    let Some(receipt) = &c.receipt else {
        println!("receipt       none yet");
        return;
    };
    match &receipt.signer_jurisdiction {
        Some(member) => println!("receipt       signed by {member} (key {})", receipt.signer),
        None => println!(
            "receipt       signed by key {} (no member's)",
            receipt.signer
        ),
    }
    println!(
        "  signature   {}",
        if receipt.signature_valid {
            "valid"
        } else {
            "INVALID"
        }
    );
    if let Some(problem) = &receipt.problem {
        println!("  problem     {problem}");
    }
    if let Some(note) = &receipt.key_note {
        println!("  key         {note}");
    }
    if let Some(body) = &receipt.receipt {
        println!("  receiver    {}", body.receiver);
        println!("  received at {}", body.received_at);
        println!("  body hash   {}", body.body_hash);
    }
}

pub fn case_log(log: &LogView, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(log);
    }
    let heads: Vec<String> = log.heads.iter().map(|h| short(&h.to_string())).collect();
    println!(
        "case {}: {} ({} event(s), head(s) {})",
        log.case_id,
        log.state.as_deref().unwrap_or("draft"),
        log.entries.len(),
        heads.join(", ")
    );
    let mut t = table(&[
        "#",
        "at",
        "author",
        "seq",
        "event",
        "signature",
        "applied",
        "event id",
    ]);
    for (i, e) in log.entries.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            e.at.to_string(),
            e.author.to_string(),
            e.seq.to_string(),
            e.kind.clone(),
            match log.key_notes.get(i).cloned().flatten() {
                Some(note) => format!("verified; {note}"),
                None => "verified".to_string(),
            },
            match &e.note {
                None if e.applied => "yes".to_string(),
                None => "no".to_string(),
                Some(note) => format!("no: {note}"),
            },
            short(&e.id.to_string()),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn short(hex: &str) -> String {
    hex.chars().take(12).collect()
}

fn describe_decision(decision: &comity_protocol::Decision) -> String {
    use comity_protocol::Decision;
    match decision {
        Decision::Accept => "accepted".into(),
        Decision::Partial { scope } => format!("accepted in part: {scope}"),
        Decision::Refuse { reasons } => format!("refused: {}", reasons.join("; ")),
    }
}

/// What `recover --from-peers` rebuilt, and what it could not.
pub fn recovered(
    recovered: &crate::daemon::Recovered,
    save_token: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut t = table(&[
        "member",
        "reached",
        "cases shared",
        "events pulled",
        "problem",
    ]);
    let mut missing = Vec::new();
    for m in &recovered.members {
        match &m.reached {
            Some(r) => {
                t.add_row(vec![
                    m.jurisdiction.to_string(),
                    "yes".into(),
                    r.cases.to_string(),
                    r.events.to_string(),
                    r.problem.clone().unwrap_or_default(),
                ]);
                if r.problem.is_some() {
                    missing.push(m.jurisdiction.to_string());
                }
            }
            None => {
                t.add_row(vec![
                    m.jurisdiction.to_string(),
                    "NO".into(),
                    "-".into(),
                    "-".into(),
                    "not connected in time".into(),
                ]);
                missing.push(m.jurisdiction.to_string());
            }
        }
    }
    println!("{t}");
    if !missing.is_empty() {
        println!(
            "Not recovered: the cases shared with {}. Run `comity recover --from-peers` again when they are reachable (it adds to what is here).",
            missing.join(", ")
        );
    }
    println!(
        "Never recoverable from members: drafts never sent, officers and their tokens, the access log, refusal records, operational records, and this node's audit log before now (a new one starts; members that witnessed the old one will report that it does not extend it: tell them why). Evidence packages come back only if the evidence directory survived."
    );
    if let Some(token) = &recovered.admin_token {
        println!();
        println!("The store held no officer: a new admin was made. Its token (shown once):");
        println!("  {token}");
        if let Some(path) = save_token {
            crate::roster::write_private(path, format!("{token}\n").as_bytes())?;
            println!("  also written to {} (mode 0600)", path.display());
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "recovery is incomplete: {} not recovered",
            missing.join(", ")
        );
    }
    Ok(())
}

pub fn opmon(records: &[crate::opmon::Record], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(&records);
    }
    if records.is_empty() {
        println!("no exchanges recorded");
        return Ok(());
    }
    let mut t = table(&[
        "answered at",
        "member",
        "dir",
        "kind",
        "outcome",
        "req B",
        "resp B",
        "ms",
        "id",
    ]);
    for r in records {
        t.add_row(vec![
            r.answered_at.to_string(),
            r.member.clone(),
            r.direction.as_str().to_owned(),
            match r.protocol.as_str() {
                "exchange" => r.kind.clone(),
                other => format!("{other}/{}", r.kind),
            },
            match &r.fault {
                Some(fault) => format!("{} ({fault})", r.outcome),
                None => r.outcome.clone(),
            },
            r.request_bytes.to_string(),
            r.response_bytes.to_string(),
            r.duration().as_millis().to_string(),
            r.id.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn refusals(
    refusals: &[crate::admin::api::RefusalView],
    equivocations: &[crate::admin::api::EquivocationView],
    as_json: bool,
) -> anyhow::Result<()> {
    if as_json {
        return json(&serde_json::json!({
            "refusals": refusals,
            "equivocations": equivocations,
        }));
    }
    for e in equivocations {
        println!("EQUIVOCATION  {}", e.describe());
    }
    if refusals.is_empty() {
        println!("no refusals");
        return Ok(());
    }
    let mut t = table(&["at", "member", "case", "code", "reason", "peer"]);
    for r in refusals {
        t.add_row(vec![
            r.at.to_string(),
            r.member
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "(not a member)".into()),
            r.case_id.map(|c| c.to_string()).unwrap_or_default(),
            r.code.to_string(),
            r.reason.clone(),
            r.peer.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn officers(
    officers: &[crate::admin::officers::Officer],
    pending: &[crate::admin::officers::PendingChange],
    as_json: bool,
) -> anyhow::Result<()> {
    if as_json {
        return json(&serde_json::json!({ "officers": officers, "pending": pending }));
    }
    let mut t = table(&["officer", "role", "created", "appointed by", "revoked"]);
    for o in officers {
        t.add_row(vec![
            o.name.clone(),
            o.role.to_string(),
            o.created_at.to_string(),
            o.appointed_by.join(" + "),
            match o.revoked_at {
                Some(at) if o.revoked_by.is_empty() => at.to_string(),
                Some(at) => format!("{at} by {}", o.revoked_by.join(" + ")),
                None => String::new(),
            },
        ]);
    }
    println!("{t}");
    for p in pending {
        println!(
            "PENDING  {} of {} ({}), proposed by {} at {}: another admin approves with `comity officer approve {}`",
            p.change, p.name, p.role, p.proposed_by, p.proposed_at, p.name
        );
    }
    Ok(())
}

pub fn audit_entries(
    entries: &[crate::admin::api::AuditEntryView],
    as_json: bool,
) -> anyhow::Result<()> {
    if as_json {
        return json(&entries);
    }
    if entries.is_empty() {
        println!("no entries there");
        return Ok(());
    }
    let mut t = table(&["#", "at", "what"]);
    for e in entries {
        let what = serde_json::to_value(&e.entry.what)
            .ok()
            .and_then(|v| {
                let map = v.as_object()?.clone();
                Some(
                    map.iter()
                        .map(|(k, v)| match v {
                            serde_json::Value::String(s) => format!("{k}={s}"),
                            other => format!("{k}={other}"),
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            })
            .unwrap_or_default();
        t.add_row(vec![e.index.to_string(), e.entry.at.to_string(), what]);
    }
    println!("{t}");
    Ok(())
}

pub fn access_log(
    records: &[crate::admin::access::AccessRecord],
    as_json: bool,
) -> anyhow::Result<()> {
    if as_json {
        return json(&records);
    }
    if records.is_empty() {
        println!("no reads of case content recorded");
        return Ok(());
    }
    let mut t = table(&["at", "officer", "role", "case", "read", "purpose"]);
    for r in records {
        t.add_row(vec![
            r.at.to_string(),
            r.officer.clone(),
            r.role.to_string(),
            r.case_id.to_string(),
            r.what.clone(),
            r.purpose.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// The policy checks recorded in a case's log, with every rule that fired.
pub fn policy_explain(log: &LogView, as_json: bool) -> anyhow::Result<()> {
    use comity_protocol::{CaseEvent, EventKind, from_cbor, limits};
    let checks: Vec<(String, String, Vec<String>)> = log
        .envelopes
        .iter()
        .filter_map(|e| from_cbor::<CaseEvent>(&e.body, limits::MAX_REQUEST_FRAME).ok())
        .filter_map(|event| match event.kind {
            EventKind::PolicyChecked { outcome, rules } => Some((
                event.author.to_string(),
                crate::policy::outcome_code(outcome).to_owned(),
                rules,
            )),
            _ => None,
        })
        .collect();
    if as_json {
        let value: Vec<serde_json::Value> = checks
            .iter()
            .map(|(by, outcome, rules)| serde_json::json!({"checked_by": by, "outcome": outcome, "rules": rules}))
            .collect();
        return json(&value);
    }
    if checks.is_empty() {
        println!(
            "case {}: no policy check recorded (the executing node has no policy, or has not received it yet)",
            log.case_id
        );
        return Ok(());
    }
    for (by, outcome, rules) in checks {
        println!("case {}: checked by {by}: {outcome}", log.case_id);
        for rule in rules {
            println!("  - {rule}");
        }
    }
    Ok(())
}

pub fn precheck(precheck: &Option<crate::cases::Precheck>, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(precheck);
    }
    let Some(p) = precheck else {
        println!("the executing member publishes no policy: nothing to pre-check against");
        return Ok(());
    };
    println!(
        "{} would say: {} (its policy as signed at {})",
        p.issuer,
        crate::policy::outcome_code(p.check.outcome),
        p.issued_at
    );
    for rule in p.check.event_rules() {
        println!("  - {rule}");
    }
    Ok(())
}

pub fn evidence_status(s: &crate::evidence::EvidenceStatus) {
    use crate::evidence::{Direction, PackageState};
    use indicatif::HumanBytes;
    let (direction, with) = match s.direction {
        Direction::Outgoing => ("sent", "to"),
        Direction::Incoming => ("received", "from"),
    };
    let state = match (s.direction, s.state) {
        (Direction::Incoming, PackageState::Announced) => "announced (fetching the manifest)",
        (Direction::Incoming, PackageState::Transferring) => "transferring",
        (Direction::Incoming, PackageState::Complete) => "complete: every chunk verified",
        (Direction::Outgoing, _) if s.received_confirmed => "delivered: the requester confirmed it",
        (Direction::Outgoing, _) => "sealed, waiting for the requester to pull it",
    };
    println!("case          {}", s.case_id);
    println!(
        "package       {} ({direction} {with} {})",
        s.root, s.counterparty
    );
    println!("state         {state}");
    if s.chunks > 0 || s.state != PackageState::Announced {
        let percent = if s.sealed_bytes == 0 {
            100.0
        } else {
            s.bytes_verified as f64 * 100.0 / s.sealed_bytes as f64
        };
        println!(
            "size          {} of evidence, {} sealed, {} chunk(s)",
            HumanBytes(s.total_bytes),
            HumanBytes(s.sealed_bytes),
            s.chunks
        );
        if s.direction == Direction::Incoming {
            println!(
                "verified      {} of {} chunks, {} ({percent:.0}%)",
                s.chunks_verified,
                s.chunks,
                HumanBytes(s.bytes_verified)
            );
        } else {
            println!(
                "served        {} chunk(s) since the node started",
                s.chunks_served
            );
        }
    }
    if let Some(rate) = s.rate_bytes_per_s {
        let eta = s
            .eta_secs
            .map(|e| format!(", ETA {e:.0} s"))
            .unwrap_or_default();
        println!("rate          {}/s{eta}", HumanBytes(rate as u64));
    }
    if let (Some(ms), Direction::Incoming) = (s.transfer_ms, s.direction) {
        let mb = s.sealed_bytes as f64 / 1e6 / (ms as f64 / 1000.0).max(1e-3);
        println!("transfer      {:.1} s ({mb:.0} MB/s)", ms as f64 / 1000.0);
    }
    if let Some(at) = s.completed_at {
        println!("completed     {at}");
    }
    if let Some(error) = &s.last_error {
        println!("last error    {error}");
    }
}

pub fn policy_history(
    versions: &[crate::audit::PolicyVersion],
    as_json: bool,
) -> anyhow::Result<()> {
    if as_json {
        return json(&versions);
    }
    if versions.is_empty() {
        println!("no policy recorded yet");
        return Ok(());
    }
    let mut t = table(&["version", "since", "file", "what changed"]);
    for v in versions {
        t.add_row(vec![
            v.version.to_string(),
            v.at.to_string(),
            v.hash.map_or_else(
                || "none (manual review)".to_owned(),
                |h| h.to_string()[..16].to_owned(),
            ),
            v.changes.join("\n"),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Two versions of the policy file, as a unified diff, and the rules that changed.
pub fn policy_diff(old: &crate::audit::PolicyVersion, new: &crate::audit::PolicyVersion) -> String {
    let (a, b) = (
        old.text.clone().unwrap_or_default(),
        new.text.clone().unwrap_or_default(),
    );
    let diff = similar::TextDiff::from_lines(&a, &b);
    let mut out = diff
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("policy version {} ({})", old.version, old.at),
            &format!("policy version {} ({})", new.version, new.at),
        )
        .to_string();
    if out.is_empty() {
        out = format!(
            "versions {} and {} are the same file\n",
            old.version, new.version
        );
    }
    if old.version + 1 == new.version && !new.changes.is_empty() {
        out.push_str("\nrules that changed:\n");
        for line in &new.changes {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}
