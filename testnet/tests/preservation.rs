//! Preservation through the admin API, as officers do it: the executing side preserves data
//! until a date and can only move that date later; either side releases it; every step the
//! rules forbid is refused with a 409 and nothing is stored; both replicas end up alike.

mod common;

use std::time::Duration;

use comity_node::admin::api::{Action, ClientError};
use comity_protocol::Timestamp;
use common::*;

const DAY_MS: i64 = 86_400_000;

fn days(n: i64) -> Timestamp {
    Timestamp::from_millis(Timestamp::now().as_millis() + n * DAY_MS)
}

fn conflict(result: Result<impl std::fmt::Debug, ClientError>, needle: &str) {
    match result {
        Err(ClientError::Api { status: 409, error }) => {
            assert!(error.reason.contains(needle), "{:?}", error.reason)
        }
        other => panic!("expected a 409 saying {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_is_preserved_extended_only_later_and_released_through_the_api() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));
    let id = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;

    // Nothing to extend or release yet; the requesting side cannot preserve.
    conflict(
        de.act(id, &Action::ExtendPreservation { until: days(90) })
            .await,
        "nothing is preserved",
    );
    conflict(
        fr.act(id, &Action::ReleasePreservation).await,
        "nothing is preserved",
    );
    let refused = fr
        .act(
            id,
            &Action::Preserve {
                until: Some(days(60)),
            },
        )
        .await;
    assert!(
        matches!(refused, Err(ClientError::Api { status: 409, .. })),
        "the requester preserved data: {refused:?}"
    );

    de.act(
        id,
        &Action::Preserve {
            until: Some(days(60)),
        },
    )
    .await
    .unwrap();
    conflict(
        de.act(
            id,
            &Action::Preserve {
                until: Some(days(70)),
            },
        )
        .await,
        "already preserved",
    );
    conflict(
        de.act(id, &Action::ExtendPreservation { until: days(30) })
            .await,
        "not later",
    );
    de.act(id, &Action::ExtendPreservation { until: days(90) })
        .await
        .unwrap();
    // The requester says it is no longer needed; a second release is refused.
    bloc.wait_converged(Duration::from_secs(30)).await.unwrap();
    fr.act(id, &Action::ReleasePreservation).await.unwrap();
    bloc.wait_converged(Duration::from_secs(30)).await.unwrap();
    conflict(
        de.act(id, &Action::ReleasePreservation).await,
        "already released",
    );

    // Both replicas hold exactly the allowed steps, each applied.
    let (fr_log, de_log) = (fr.log(id).await.unwrap(), de.log(id).await.unwrap());
    assert_eq!(fr_log.envelopes, de_log.envelopes);
    let steps: Vec<(&str, bool)> = de_log
        .entries
        .iter()
        .map(|e| (e.kind.as_str(), e.applied))
        .collect();
    assert_eq!(
        steps,
        [
            ("submitted", true),
            ("received", true),
            ("preserved", true),
            ("preservation-extended", true),
            ("preservation-released", true),
        ]
    );
}
