//! The bundle report for people: plain text for a terminal, HTML for a printed court file.
//! Both say what the case is (without content unless asked), who did what when, every check
//! with ✓ or ✗, and the first failure with what it means.

use std::fmt::Write;

use comity_protocol::bundle::BundleReport;

fn or_unknown<T: ToString>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "unknown".into())
}

fn summary_lines(r: &BundleReport) -> Vec<(String, String)> {
    vec![
        ("Case".into(), or_unknown(&r.case_id)),
        (
            "Exported by".into(),
            format!(
                "{} at {}",
                or_unknown(&r.exported_by),
                or_unknown(&r.exported_at)
            ),
        ),
        (
            "Parties".into(),
            format!(
                "requesting {} → executing {}",
                or_unknown(&r.requesting),
                or_unknown(&r.executing)
            ),
        ),
        (
            "Request".into(),
            format!(
                "{} under {}",
                or_unknown(&r.request_kind),
                or_unknown(&r.instrument)
            ),
        ),
        (
            "State".into(),
            format!(
                "{} (as folded from the signed log; the exporter recorded {})",
                or_unknown(&r.state_verified),
                or_unknown(&r.state_recorded)
            ),
        ),
        (
            "Audit log cosigned by".into(),
            if r.cosigners.is_empty() {
                "no other member".into()
            } else {
                r.cosigners
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        (
            "Evidence chunks carried".into(),
            r.evidence_chunks.to_string(),
        ),
    ]
}

fn verdict(r: &BundleReport) -> String {
    match r.first_failure() {
        None if r.ok() => format!(
            "VERIFIED: all {} checks hold. The keys are those the bundle lists; compare them with the bloc's configuration.",
            r.checks.len()
        ),
        None => "NOT VERIFIED: nothing could be checked".into(),
        Some(c) => format!(
            "NOT VERIFIED: {} of {} checks failed. First failure: {} — {}",
            r.checks.iter().filter(|c| !c.ok).count(),
            r.checks.len(),
            c.what,
            c.problem.as_deref().unwrap_or("failed")
        ),
    }
}

pub fn text(r: &BundleReport) -> String {
    let mut out = String::new();
    if r.case_id.is_some() {
        for (k, v) in summary_lines(r) {
            let _ = writeln!(out, "{k:<24} {v}");
        }
    }
    if !r.steps.is_empty() {
        let _ = writeln!(out, "\nWho did what, when (from the signed log):");
        for s in &r.steps {
            let _ = writeln!(
                out,
                "  {}  {:<3} {:<24} {} {}{}",
                s.at,
                s.author.to_string(),
                s.kind,
                if s.proved {
                    "✓ in audit log"
                } else {
                    "✗ not proved"
                },
                &s.event_id.to_string()[..16],
                if s.applied {
                    ""
                } else {
                    "  (signed, not applied)"
                }
            );
        }
    }
    let _ = writeln!(out, "\nChecks:");
    for c in &r.checks {
        match &c.problem {
            None => {
                let _ = writeln!(out, "  ✓ {}", c.what);
            }
            Some(p) => {
                let _ = writeln!(out, "  ✗ {} — {p}", c.what);
            }
        }
    }
    if !r.keys.is_empty() {
        let _ = writeln!(
            out,
            "\nKeys relied on (compare them with the bloc's configuration):"
        );
        for k in &r.keys {
            let _ = writeln!(
                out,
                "  {:<3} {:<24} {}{}",
                k.jurisdiction.to_string(),
                k.name,
                k.signing_key,
                k.note
                    .as_ref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(content) = &r.content {
        let _ = writeln!(
            out,
            "\nContent (personal data, shown because --show-content was given):\n{}",
            serde_json::to_string_pretty(content).unwrap_or_default()
        );
    }
    let _ = writeln!(out, "\n{}", verdict(r));
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn html(r: &BundleReport) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Comity case bundle verification</title>\n<style>\
         body{font-family:serif;max-width:60em;margin:2em auto;color:#111}\
         table{border-collapse:collapse;width:100%;margin:1em 0}\
         td,th{border:1px solid #999;padding:.3em .5em;text-align:left;vertical-align:top}\
         .ok{color:#064}.bad{color:#a00;font-weight:bold}code{font-size:.85em}\
         </style></head><body>\n<h1>Comity case bundle: verification report</h1>\n",
    );
    let ok = r.ok();
    let _ = writeln!(
        out,
        "<p class=\"{}\">{}</p>",
        if ok { "ok" } else { "bad" },
        escape(&verdict(r))
    );
    out.push_str("<table>\n");
    for (k, v) in summary_lines(r) {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(&k),
            escape(&v)
        );
    }
    out.push_str("</table>\n<h2>Who did what, when</h2>\n<table>\n<tr><th>time</th><th>author</th><th>step</th><th>in audit log</th><th>event id</th></tr>\n");
    for s in &r.steps {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td class=\"{}\">{}</td><td><code>{}</code></td></tr>",
            s.at,
            escape(&s.author.to_string()),
            escape(&s.kind),
            if s.applied { "" } else { " (not applied)" },
            if s.proved { "ok" } else { "bad" },
            if s.proved {
                "✓ proved"
            } else {
                "✗ not proved"
            },
            s.event_id
        );
    }
    out.push_str("</table>\n<h2>Checks</h2>\n<table>\n");
    for c in &r.checks {
        let _ = writeln!(
            out,
            "<tr><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            if c.ok { "ok" } else { "bad" },
            if c.ok { "✓" } else { "✗" },
            escape(&c.what),
            escape(c.problem.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>\n<h2>Keys relied on</h2>\n<table>\n");
    for k in &r.keys {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&k.jurisdiction.to_string()),
            escape(&k.name),
            k.signing_key,
            escape(k.note.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>\n");
    if let Some(content) = &r.content {
        let _ = writeln!(
            out,
            "<h2>Content (personal data)</h2>\n<pre>{}</pre>",
            escape(&serde_json::to_string_pretty(content).unwrap_or_default())
        );
    }
    out.push_str("<p>Checked offline by comity-verify with the keys the bundle lists; compare them with the bloc's configuration.</p>\n</body></html>\n");
    out
}

/// CBOR as JSON for reading: byte strings as hex, tags dropped, non-text keys as text.
pub fn cbor_to_json(value: &ciborium::Value) -> serde_json::Value {
    use ciborium::Value as C;
    use serde_json::Value as J;
    match value {
        C::Integer(i) => J::from(i128::from(*i) as i64),
        C::Bytes(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        C::Float(f) => J::from(*f),
        C::Text(t) => J::String(t.clone()),
        C::Bool(b) => J::Bool(*b),
        C::Null => J::Null,
        C::Tag(_, v) => cbor_to_json(v),
        C::Array(a) => J::Array(a.iter().map(cbor_to_json).collect()),
        C::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        C::Text(t) => t.clone(),
                        other => cbor_to_json(other).to_string(),
                    };
                    (key, cbor_to_json(v))
                })
                .collect(),
        ),
        _ => J::Null,
    }
}
