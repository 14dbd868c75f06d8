//! A member that acknowledges nothing for longer than `[outbox] give_up_after_secs`: its
//! messages are no longer sent, the case says so, nothing is dropped, and an officer's retry
//! sends them again once the member is back.

mod common;

use std::time::{Duration, Instant};

use common::*;

const CONNECT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_never_acknowledged_are_given_up_shown_and_sent_again_on_request() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let fr = bloc.client("FR");
    bloc.stop("DE").unwrap();

    let id = send(&bloc, "FR", "DE", None).await.summary.case_id;
    // Eight days pass at FR (the default gives up after seven).
    fr.advance_clock(8 * 86_400).await.unwrap();
    let deadline = Instant::now() + SETTLE;
    let case = loop {
        let case = fr.case(id).await.unwrap();
        if case.delivery.given_up.is_some() {
            break case;
        }
        assert!(
            Instant::now() < deadline,
            "not given up: {:?}",
            case.delivery
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let shown = case.delivery.given_up.unwrap();
    assert!(
        shown.contains("DE") && shown.contains("comity case retry"),
        "{shown}"
    );
    assert!(case.signed_receipt.is_none());
    let lag = fr.status().await.unwrap().outbox_depth;
    assert!(lag >= 1, "the message is kept, not dropped");

    // DE is back; the officer sends the messages again, and the receipt comes.
    bloc.start("DE").unwrap();
    bloc.wait_connected(CONNECT).await.unwrap();
    let retried = fr.retry(id).await.unwrap();
    assert_eq!(retried.delivery.given_up, None);
    let deadline = Instant::now() + SETTLE;
    while fr.case(id).await.unwrap().signed_receipt.is_none() {
        assert!(Instant::now() < deadline, "no receipt after the retry");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_state(&fr, id, "delivered", SETTLE).await;
    // Nothing is left to send again.
    let err = fr.retry(id).await.unwrap_err().to_string();
    assert!(err.contains("nothing-to-retry"), "{err}");
}
