//! Building an assistance request from `comity request new` flags or a TOML/JSON file.
//!
//! Nothing is checked here beyond syntax: the node validates the whole request and answers
//! with every field-level problem at once.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use comity_protocol::{
    AssistanceRequest, Authority, Confidentiality, DataCategory, Instrument, Jurisdiction, Offence,
    RequestKind, Selector, TimeWindow, Timestamp, Urgency,
};

use super::ReadArgs;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// A complete request as TOML or JSON (`requesting` may be left out: it is this node).
    #[arg(long, conflicts_with_all = ["to", "instrument", "selector"])]
    pub file: Option<PathBuf>,
    /// Executing jurisdiction.
    #[arg(long)]
    pub to: Option<Jurisdiction>,
    /// Legal instrument code, e.g. eu-epoc, budapest-art31, mlat-bilateral.
    #[arg(long)]
    pub instrument: Option<Instrument>,
    /// disclosure | preservation | emergency-disclosure
    #[arg(long, default_value = "disclosure")]
    pub kind: RequestKind,
    /// Offence category code, e.g. fraud, cybercrime.
    #[arg(long)]
    pub offence_category: Option<String>,
    /// Offence description.
    #[arg(long)]
    pub offence: Option<String>,
    /// Maximum penalty for the offence, in months of custody.
    #[arg(long)]
    pub max_penalty_months: Option<u32>,
    /// Data category (repeatable): subscriber | user-identifying | traffic | content
    #[arg(long = "data", value_name = "CATEGORY")]
    pub data: Vec<DataCategory>,
    /// Selector (repeatable), e.g. email:alice@example.org, phone:+33612345678,
    /// ip:192.0.2.1:443@2026-10-01T10:00:00Z, imei:…, imsi:…, account:provider/name, domain:…
    #[arg(long = "selector", value_name = "TYPE:VALUE")]
    pub selector: Vec<Selector>,
    /// Start of the time window (RFC 3339).
    #[arg(long)]
    pub from: Option<Timestamp>,
    /// End of the time window (RFC 3339).
    #[arg(long)]
    pub until: Option<Timestamp>,
    /// normal | urgent | emergency
    #[arg(long, default_value = "normal")]
    pub urgency: Urgency,
    /// Necessity and proportionality statement.
    #[arg(long)]
    pub necessity: Option<String>,
    /// Purpose the data may be used for.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Requested retention of the data received, in days.
    #[arg(long, default_value_t = 90)]
    pub retention_days: u32,
    /// Language of the request (ISO 639-1).
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Issuing authority: name, role and contact.
    #[arg(long)]
    pub authority: Option<String>,
    #[arg(long, default_value = "prosecutor")]
    pub authority_role: String,
    #[arg(long)]
    pub authority_contact: Option<String>,
    /// Validating authority (name), where the instrument needs one.
    #[arg(long)]
    pub validating_authority: Option<String>,
    /// Ask the provider to delay notifying the user, with this reason.
    #[arg(long, value_name = "REASON")]
    pub delay_notification: Option<String>,
    #[command(flatten)]
    pub read: ReadArgs,
}

pub fn build(args: &NewArgs, requesting: Jurisdiction) -> anyhow::Result<AssistanceRequest> {
    if let Some(path) = &args.file {
        return from_file(path, requesting);
    }
    let Some(to) = args.to.clone() else {
        bail!("--to is required (or give the whole request with --file)");
    };
    let Some(instrument) = args.instrument else {
        bail!("--instrument is required, e.g. --instrument eu-epoc");
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(AssistanceRequest {
        requesting,
        executing: to,
        issuing_authority: Authority {
            name: text(&args.authority),
            role: args.authority_role.clone(),
            contact: text(&args.authority_contact),
        },
        validating_authority: args.validating_authority.as_ref().map(|name| Authority {
            name: name.clone(),
            role: "judge".into(),
            contact: text(&args.authority_contact),
        }),
        instrument,
        kind: args.kind,
        offence: Offence {
            category: text(&args.offence_category),
            description: text(&args.offence),
            max_penalty_months: args.max_penalty_months,
        },
        data_categories: args.data.clone(),
        selectors: args.selector.clone(),
        time_window: match (args.from, args.until) {
            (Some(from), Some(to)) => Some(TimeWindow { from, to }),
            (None, None) => None,
            _ => bail!("give both --from and --until, or neither"),
        },
        urgency: args.urgency,
        necessity: text(&args.necessity),
        confidentiality: Confidentiality {
            delay_user_notification: args.delay_notification.is_some(),
            reason: args.delay_notification.clone(),
        },
        retention_days: args.retention_days,
        purpose: text(&args.purpose),
        language: args.language.clone(),
        translations: Vec::new(),
    })
}

pub(super) fn from_file(
    path: &PathBuf,
    requesting: Jurisdiction,
) -> anyhow::Result<AssistanceRequest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let format = match path.extension().is_some_and(|e| e == "json") {
        true => RequestFormat::Json,
        false => RequestFormat::Toml,
    };
    parse_request(&text, format, requesting).with_context(|| format!("in {}", path.display()))
}

/// How a request file is written: chosen by its extension (`.json`, anything else TOML).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFormat {
    Json,
    Toml,
}

/// Reads a request written as a file: JSON or TOML, `requesting` filled in when absent. Does
/// not validate it (the draft does, with every problem listed).
pub fn parse_request(
    text: &str,
    format: RequestFormat,
    requesting: Jurisdiction,
) -> anyhow::Result<AssistanceRequest> {
    let mut value: serde_json::Value = match format {
        RequestFormat::Json => serde_json::from_str(text).context("not valid JSON")?,
        RequestFormat::Toml => {
            let toml: toml::Value = toml::from_str(text).context("not valid TOML")?;
            serde_json::to_value(datetimes_as_text(toml))?
        }
    };
    if let Some(map) = value.as_object_mut() {
        map.entry("requesting")
            .or_insert_with(|| serde_json::Value::String(requesting.to_string()));
    }
    serde_json::from_value(value).context("not a valid request")
}

/// TOML's native date-times (`from = 2026-07-01T00:00:00Z`) become RFC 3339 text, which the
/// request's timestamps accept.
fn datetimes_as_text(value: toml::Value) -> toml::Value {
    match value {
        toml::Value::Datetime(dt) => toml::Value::String(dt.to_string()),
        toml::Value::Array(items) => {
            toml::Value::Array(items.into_iter().map(datetimes_as_text).collect())
        }
        toml::Value::Table(table) => toml::Value::Table(
            table
                .into_iter()
                .map(|(k, v)| (k, datetimes_as_text(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_request_file_parses_with_rfc3339_times() {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/examples/request.toml"
        ));
        let request = from_file(&path, "FR".parse().unwrap()).unwrap();
        assert_eq!(request.requesting.as_str(), "FR");
        let window = request.time_window.unwrap();
        assert_eq!(window.from, "2026-09-01T00:00:00Z".parse().unwrap());
        assert_eq!(request.languages(), ["en", "de"], "with its translation");
        request.validate().unwrap();
    }
}
