//! The officer's CLI against real nodes: a request from a file, sent, and both sides' views.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_from_a_file_is_sent_and_both_sides_show_it() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let fr = bloc.node("FR").config.clone();
    let de = bloc.node("DE").config.clone();
    // Read where cargo runs the test from (a build dir shared by clones keeps the first path).
    let example = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("../docs/examples/request.toml");

    let status = ok(comity(&fr, &["status"]));
    assert!(status.contains("1/1 connected"), "{status}");

    let draft: serde_json::Value = serde_json::from_str(&ok(comity(
        &fr,
        &[
            "request",
            "new",
            "--file",
            example.to_str().unwrap(),
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(draft["state"], "draft");
    assert!(
        draft["request"].is_null(),
        "content only on a read with a purpose"
    );
    let id = draft["case_id"].as_str().unwrap().to_owned();
    let read: serde_json::Value = serde_json::from_str(&ok(comity(
        &fr,
        &[
            "case",
            "show",
            &id,
            "--json",
            "--purpose",
            "check the draft",
        ],
    )))
    .unwrap();
    assert_eq!(read["request"]["requesting"], "FR");
    let out = comity(&fr, &["case", "show", &id]);
    assert!(!out.status.success(), "a read without --purpose is refused");

    // Sending needs a second officer's approval first (four-eyes).
    let out = comity(&fr, &["request", "send", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("four-eyes"));
    let approver_token = bloc.node("FR").approver_token_file.clone();
    let approved: serde_json::Value = serde_json::from_str(&ok(comity(
        &fr,
        &[
            "request",
            "approve",
            &id,
            "--json",
            "--token-file",
            approver_token.to_str().unwrap(),
        ],
    )))
    .unwrap();
    assert_eq!(approved["approval"]["approved_by"], "approver");
    assert_eq!(approved["approval"]["drafted_by"], "admin");

    let sent: serde_json::Value = serde_json::from_str(&ok(comity(
        &fr,
        &["request", "send", &id, "--wait", "20", "--json"],
    )))
    .unwrap();
    assert_eq!(sent["state"], "delivered");
    assert_eq!(sent["receipt"]["signature_valid"], true);

    let shown = ok(comity(&de, &["case", "show", &id, "--purpose", "review"]));
    assert!(
        shown.contains("received") && shown.contains("FR -> DE"),
        "{shown}"
    );
    let shown = ok(comity(
        &fr,
        &["case", "show", &id, "--purpose", "check delivery"],
    ));
    assert!(shown.contains("signature   valid"), "{shown}");
    // The receipt names its signer as the roster does: by the member.
    assert!(shown.contains("signed by DE (key "), "{shown}");

    let inbox: serde_json::Value =
        serde_json::from_str(&ok(comity(&de, &["inbox", "--json"]))).unwrap();
    assert_eq!(inbox.as_array().unwrap().len(), 1);
    let list = ok(comity(&fr, &["case", "list"]));
    assert!(list.contains(&id) && list.contains("delivered"), "{list}");

    // A draft from flags that lacks what the law asks for: every problem is named.
    let out = comity(
        &fr,
        &[
            "request",
            "new",
            "--to",
            "DE",
            "--instrument",
            "eu-epoc",
            "--data",
            "content",
            "--selector",
            "phone:+33612345678",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "necessity",
        "purpose",
        "issuing_authority.name",
        "validating_authority",
    ] {
        assert!(err.contains(field), "{field} not named in: {err}");
    }
}
