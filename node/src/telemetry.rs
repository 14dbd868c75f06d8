//! Logging setup: a `RUST_LOG`-style filter and text or JSON lines on stderr.
//!
//! What may be logged is a rule of the codebase, not of this module: identifiers and sizes,
//! never a request's contents, selectors or evidence.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(default_filter: &str, format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // libp2p's request-response warns once per stream it drops at capacity: a line per
    // message a peer sends. This node counts and reports what it turns away itself, once per
    // interval; an explicit directive for the crate still wins.
    let explicit = std::env::var("RUST_LOG").unwrap_or_else(|_| default_filter.to_owned());
    if !explicit.contains("libp2p_request_response") {
        filter = filter.add_directive(
            "libp2p_request_response=error"
                .parse()
                .expect("a static directive parses"),
        );
    }
    // Gossipsub likewise warns once per message it cannot queue for a slow member; the event
    // loop reports those once a minute per member, with the count.
    if !explicit.contains("libp2p_gossipsub") {
        filter = filter.add_directive(
            "libp2p_gossipsub=error"
                .parse()
                .expect("a static directive parses"),
        );
    }
    // Colours only for a person at a terminal: a log file, a pipe or the journal gets plain
    // text, and `NO_COLOR` (any value) turns them off everywhere.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
