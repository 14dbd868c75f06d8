//! `GET /health` and `GET /ready`: for systemd, a load balancer or Kubernetes, without a
//! token, answering status words only (nothing about cases, members or keys).
//!
//! `/health` says the process serves HTTP. `/ready` says the node can do its work: its store
//! takes a synced write, its network listens, it holds a bloc configuration that has not
//! expired, at least one member is connected, and the store's disk has the room a node needs
//! (`daemon::ROOM_NEEDED`, 64 MiB). Otherwise it answers 503 with the words of
//! what is missing, e.g. `unready: no-member-connected`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;

use super::AdminState;
use crate::store::{Batch, Cf};

/// A store probe (one small synced write) is made at most this often; callers in between get
/// its result. Without a token anyone who reaches the port may ask.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// When the store was last probed, and whether it took the write.
pub type ReadyProbe = Arc<Mutex<Option<(Instant, bool)>>>;

/// Whether the process serves HTTP (no token needed).
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    security(()),
    responses((status = 200, description = "`alive`", content_type = "text/plain", body = String))
)]
pub async fn alive() -> &'static str {
    "alive\n"
}

/// Whether the node can do its work (no token needed): `ready`, or 503 and the words of what
/// is missing (docs/operations.md lists them).
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        (status = 503, description = "`unready: ` and the words of what is missing, e.g. `no-member-connected`", content_type = "text/plain", body = String),
    )
)]
pub async fn ready(State(state): State<AdminState>) -> (StatusCode, String) {
    let mut missing = Vec::new();
    if !store_writable(&state).await {
        missing.push("store-not-writable");
    } else if crate::daemon::free_room(state.store.path())
        .is_ok_and(|free| free < crate::daemon::ROOM_NEEDED)
    {
        // Writes still succeed, but a flush or a restart may not: the node needs this much.
        missing.push("store-disk-nearly-full");
    }
    match state.network.status().await {
        None => missing.push("network-stopped"),
        Some(net) => {
            if net.listen_addrs.is_empty() {
                missing.push("network-not-listening");
            }
            if net.connected.is_empty() {
                missing.push("no-member-connected");
            }
        }
    }
    let bloc = state.cases.governance().status().await;
    if bloc.version.is_none() {
        missing.push("no-bloc-configuration");
    } else if bloc.expired {
        missing.push("bloc-configuration-expired");
    }
    answer(&missing)
}

/// The answer for what is missing: `ready`, or 503 and the missing things' words.
fn answer(missing: &[&str]) -> (StatusCode, String) {
    if missing.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unready: {}\n", missing.join(" ")),
        )
    }
}

/// Whether the store takes a small synced write (probed at most once a second).
pub(super) async fn store_writable(state: &AdminState) -> bool {
    let now = Instant::now();
    if let Some((at, ok)) = *state.ready_probe.lock().expect("probe lock")
        && now.duration_since(at) < PROBE_EVERY
    {
        return ok;
    }
    let mut batch = Batch::new();
    let stamp = comity_protocol::Timestamp::now().as_millis().to_be_bytes();
    batch.put(Cf::Settings, b"ready-probe".to_vec(), stamp.to_vec());
    let ok = state.store.commit(batch).await.is_ok();
    *state.ready_probe.lock().expect("probe lock") = Some((Instant::now(), ok));
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_names_what_is_missing_in_words() {
        assert_eq!(answer(&[]), (StatusCode::OK, "ready\n".to_owned()));
        let (code, text) = answer(&["no-member-connected", "store-not-writable"]);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(text, "unready: no-member-connected store-not-writable\n");
    }
}
