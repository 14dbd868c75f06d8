//! Encryption at rest and retention that deletes: a distinctive selector never reaches the
//! RocksDB files (SST, WAL) in clear on either node; when the request's retention ends the
//! requester destroys what it received and its signed `purged` event reaches the executing
//! node, which keeps its own records until its own retention ends, then destroys them with a
//! signed `records-destroyed`; the sealed content no longer opens, even with the master key. Decision texts are
//! content too: sealed like the request, gone with it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use comity_node::admin::api::ClientError;
use comity_node::cases::record::{CaseRecord, case_key, decode, event_key};
use comity_node::store::{Cf, Store};
use comity_node::vault::{Vault, VaultError};
use comity_protocol::Selector;
use common::*;

const DISTINCTIVE: &str = "zq7-distinctive-selector@example.org";
/// The scope of a partial acceptance: a decision text, content like the request.
const SCOPE: &str = "zq7-distinctive-scope: subscriber data of March only";

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// The id of a case's data key, read from a stopped node's store.
fn key_id(dir: &Path, id: comity_protocol::CaseId) -> String {
    let store = Store::open(&dir.join("store")).unwrap();
    let bytes = store
        .get(Cf::Cases, &case_key(&id))
        .unwrap()
        .expect("the case is stored");
    decode::<CaseRecord>(&bytes).unwrap().key_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_sealed_at_rest_and_destroyed_when_retention_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut bloc =
        comity_testnet::Bloc::create_with(dir.path(), &[j("FR"), j("DE")], "testnet", |c| {
            c.safeguards.retention_sweep_secs = 1;
        })
        .await
        .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    let mut request = request("FR", "DE");
    request.selectors = vec![Selector::Email(DISTINCTIVE.into())];
    request.retention_days = 30;
    let sent = comity_testnet::send_request(
        &fr,
        &bloc.approver("FR"),
        request,
        Some(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    let id = sent.summary.case_id;
    assert_eq!(sent.summary.state, "delivered");
    let until = sent.summary.retention_until.expect("a retention deadline");
    let shown = de.case(id).await.unwrap();
    assert_eq!(
        shown.request.unwrap().selectors,
        vec![Selector::Email(DISTINCTIVE.into())]
    );
    // A decision with a text: officers who state a purpose read it on both sides.
    de.act(
        id,
        &comity_node::admin::api::Action::Decide {
            decision: comity_protocol::Decision::Partial {
                scope: SCOPE.into(),
            },
        },
    )
    .await
    .unwrap();
    wait_for_state(&fr, id, "partially-accepted", Duration::from_secs(20)).await;
    for client in [&fr, &de] {
        let decision = client.case(id).await.unwrap().decision;
        assert_eq!(
            decision,
            Some(comity_protocol::Decision::Partial {
                scope: SCOPE.into()
            })
        );
    }

    // Nothing on disk holds the selector in clear: not the stores (SST, WAL, MANIFEST), not
    // the logs. Stopping flushes what RocksDB holds in memory.
    bloc.stop_all();
    for node in ["FR", "DE"] {
        let found = files_containing(&bloc.node(node).dir, DISTINCTIVE.as_bytes());
        assert!(
            found.is_empty(),
            "{node}: the selector is in clear in {found:?}"
        );
        let found = files_containing(&bloc.node(node).dir, b"zq7-distinctive-scope");
        assert!(
            found.is_empty(),
            "{node}: the decision's text is in clear in {found:?}"
        );
        let dir = &bloc.node(node).dir;
        let key = key_id(dir, id);
        let in_use = [key.clone()].into();
        let vault = Vault::open(&dir.join("master.key"), &dir.join("keys"), &in_use).unwrap();
        assert!(vault.holds(&key), "{node}: the case's key is held");
    }

    // Past the request's retention, FR destroys what it received; DE, the executing side,
    // records FR's signed `purged` event and keeps its own records for its own retention.
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));
    fr.advance_clock(31 * 86_400).await.unwrap();
    let purged = |cases: Vec<comity_node::admin::api::CaseSummary>| {
        cases
            .iter()
            .any(|c| c.case_id == id && c.purged_at.is_some())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !purged(fr.cases().await.unwrap()) {
        assert!(Instant::now() < deadline, "FR did not purge the case");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The deadline was the request's 30 days from its submission.
    let kept = until.as_millis() - sent.summary.created_at.as_millis();
    assert!(
        (30 * 86_400_000..30 * 86_400_000 + 60_000).contains(&kept),
        "{kept} ms"
    );
    let case = fr.case(id).await.unwrap();
    assert!(case.request.is_none(), "FR's content is gone");
    match fr.log(id).await {
        Err(ClientError::Api { status: 410, .. }) => {}
        other => panic!("the log of a purged case is gone, got {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = de.log(id).await.unwrap();
        if log.entries.iter().any(|e| e.kind == "purged" && e.applied) {
            break;
        }
        assert!(Instant::now() < deadline, "DE never got FR's purge");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bloc.wait_converged(Duration::from_secs(20)).await.unwrap();
    let heads = |cases: Vec<comity_node::admin::api::CaseSummary>| {
        cases.into_iter().find(|c| c.case_id == id).unwrap().heads
    };
    assert_eq!(
        heads(fr.cases().await.unwrap()),
        heads(de.cases().await.unwrap())
    );
    let at_de = de.case(id).await.unwrap();
    assert!(at_de.request.is_some(), "DE still opens its own records");
    assert_eq!(
        at_de.decision,
        Some(comity_protocol::Decision::Partial {
            scope: SCOPE.into()
        })
    );
    assert!(at_de.summary.purged_at.is_none());
    let own_until = at_de.summary.retention_until.unwrap();
    // From the submission (signed a moment after the draft was made).
    let own = own_until.as_millis() - sent.summary.created_at.as_millis();
    assert!(
        (5 * 365 * 86_400_000..5 * 365 * 86_400_000 + 60_000).contains(&own),
        "{own} ms: five years, the default when DE's policy does not say"
    );

    // At the end of its own retention DE destroys its records, with a signed statement.
    de.advance_clock(5 * 365 * 86_400 + 86_400).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !purged(de.cases().await.unwrap()) {
        assert!(Instant::now() < deadline, "DE did not destroy its records");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(de.case(id).await.unwrap().request.is_none());
    match de.log(id).await {
        Err(ClientError::Api { status: 410, .. }) => {}
        other => panic!("the log of a destroyed case is gone, got {other:?}"),
    }
    let lines: Vec<String> = bloc
        .log("DE")
        .lines()
        .filter(|l| l.contains(&id.to_string()))
        .map(|l| l.to_owned())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("records-destroyed") && l.contains("event recorded")),
        "{lines:?}"
    );

    // Even with the master key, what the store still holds does not open: the key is gone.
    bloc.stop_all();
    for node in ["FR", "DE"] {
        let dir = &bloc.node(node).dir;
        let key = key_id(dir, id);
        let sealed = {
            let store = Store::open(&dir.join("store")).unwrap();
            store
                .get(Cf::Events, &event_key(&id, 0))
                .unwrap()
                .expect("the sealed event is still stored")
        };
        let in_use = [key.clone()].into();
        let vault = Vault::open(&dir.join("master.key"), &dir.join("keys"), &in_use).unwrap();
        assert!(!vault.holds(&key), "{node}: the case's key is destroyed");
        assert!(matches!(
            vault.unseal(&key, &id, &sealed),
            Err(VaultError::Shredded(_))
        ));
        assert!(files_containing(dir, DISTINCTIVE.as_bytes()).is_empty());
    }
}
