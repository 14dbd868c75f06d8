//! Benchmarks against real node processes, each beside a baseline measured in the same run.

pub mod converge;
pub mod echo;
pub mod evidence;
pub mod exchange;
pub mod hostile;
pub mod scale;

use std::time::Duration;

/// For benchmarks of the engine's capacity between members that trust each other: no rate
/// budget (`[network] requests_per_second_per_member = 0`), which would cap the figure at
/// the budget instead of measuring the engine.
pub(crate) fn unbudgeted(config: &mut comity_node::config::Config) {
    config.network.requests_per_second_per_member = 0;
}

/// Latency percentiles of a sample, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Fails, naming the field, if any figure of `report` is missing: NaN or infinite (which JSON
/// would print as `null`), as a percentile of no sample or a rate over no time would be.
pub(crate) fn every_figure_present(report: &impl serde::Serialize) -> anyhow::Result<()> {
    fn walk(path: &str, value: &serde_json::Value) -> anyhow::Result<()> {
        match value {
            serde_json::Value::Null => anyhow::bail!("the benchmark measured no {path}"),
            serde_json::Value::Object(map) => map
                .iter()
                .try_for_each(|(k, v)| walk(&format!("{path}.{k}"), v)),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| walk(&format!("{path}[{i}]"), v)),
            _ => Ok(()),
        }
    }
    walk("report", &serde_json::to_value(report)?)
}

/// The size of the frame that carries a sample request, so that baselines carry the same bytes.
pub(crate) fn push_frame_len() -> anyhow::Result<usize> {
    let identity = comity_node::identity::NodeIdentity::from_seed([1u8; 32]);
    let case_id = comity_protocol::CaseId::new();
    let genesis = crate::peer::genesis(
        &identity.signing_key(),
        case_id,
        comity_protocol::examples::sample_request(),
    );
    let push = crate::peer::signed_push(&identity.signing_key(), case_id, vec![genesis]);
    Ok(comity_protocol::to_canonical_cbor(&comity_protocol::ExchangeRequest::Push(push))?.len())
}

/// `n` approved drafts of the sample request at FR (drafted by `client`, approved by
/// `approver`), ready to be sent: what officers do before the benchmarked part.
pub(crate) async fn approved_drafts(
    client: &comity_node::admin::api::AdminClient,
    approver: &comity_node::admin::api::AdminClient,
    n: usize,
) -> anyhow::Result<Vec<comity_protocol::CaseId>> {
    let mut request = comity_protocol::examples::sample_request();
    request.requesting = "FR".parse()?;
    request.executing = "DE".parse()?;
    approved_drafts_of(client, approver, request, n).await
}

/// `n` approved drafts of `request`, drafted by `client` and approved by `approver`.
pub(crate) async fn approved_drafts_of(
    client: &comity_node::admin::api::AdminClient,
    approver: &comity_node::admin::api::AdminClient,
    request: comity_protocol::AssistanceRequest,
    n: usize,
) -> anyhow::Result<Vec<comity_protocol::CaseId>> {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|_| {
            let request = request.clone();
            async move {
                let draft = client
                    .create_request(&comity_node::admin::api::NewRequest { request })
                    .await?;
                approver.approve(draft.summary.case_id).await?;
                anyhow::Ok(draft.summary.case_id)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Hands out prepared case ids to concurrent senders.
#[derive(Debug)]
pub(crate) struct Drafts(std::sync::Mutex<Vec<comity_protocol::CaseId>>);

impl Drafts {
    pub(crate) fn new(ids: Vec<comity_protocol::CaseId>) -> Self {
        Self(std::sync::Mutex::new(ids))
    }
    pub(crate) fn next(&self) -> anyhow::Result<comity_protocol::CaseId> {
        self.0
            .lock()
            .expect("drafts lock")
            .pop()
            .ok_or_else(|| anyhow::anyhow!("ran out of prepared drafts"))
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize)]
    struct Figures {
        rate: f64,
        runs: [f64; 2],
    }

    #[test]
    fn a_missing_figure_fails_the_benchmark_and_is_named() {
        let whole = Figures {
            rate: 412.0,
            runs: [400.0, 424.0],
        };
        assert!(super::every_figure_present(&whole).is_ok());
        let nan = Figures {
            rate: f64::NAN,
            runs: [400.0, 424.0],
        };
        let err = super::every_figure_present(&nan).unwrap_err().to_string();
        assert!(err.contains("report.rate"), "{err}");
        let infinite = Figures {
            rate: 1.0,
            runs: [400.0, f64::INFINITY],
        };
        let err = super::every_figure_present(&infinite)
            .unwrap_err()
            .to_string();
        assert!(err.contains("report.runs[1]"), "{err}");
    }
}
