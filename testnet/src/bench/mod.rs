//! Benchmarks against real node processes, each beside a baseline measured in the same run.

pub mod converge;
pub mod echo;
pub mod exchange;

use std::time::Duration;

/// Latency percentiles of a sample, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Sends the sample request from FR to DE through FR's admin API (`wait` for the receipt).
pub(crate) async fn send_sample(
    client: &comity_node::admin::api::AdminClient,
    wait: Option<u64>,
) -> anyhow::Result<comity_node::admin::api::CaseDetail> {
    let mut request = comity_protocol::examples::sample_request();
    request.requesting = "FR".parse()?;
    request.executing = "DE".parse()?;
    Ok(client
        .create_request(&comity_node::admin::api::NewRequest {
            request,
            send: true,
            wait_ms: wait,
        })
        .await?)
}

/// The size of the frame that carries a sample request, so that baselines carry the same bytes.
pub(crate) fn push_frame_len() -> anyhow::Result<usize> {
    let identity = comity_node::identity::NodeIdentity::from_seed([1u8; 32]);
    let case_id = comity_protocol::CaseId::new();
    let genesis = crate::peer::genesis(
        identity.signing_key(),
        case_id,
        comity_protocol::examples::sample_request(),
    );
    let push = crate::peer::signed_push(identity.signing_key(), case_id, vec![genesis]);
    Ok(comity_protocol::to_canonical_cbor(&comity_protocol::ExchangeRequest::Push(push))?.len())
}
