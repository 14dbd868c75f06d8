//! Officers and roles: every admin endpoint with every role is either allowed or refused with
//! a 403 that names the role it needs; a revoked officer's token stops working.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use comity_node::admin::api::Action;
use comity_node::admin::officers::Role;
use comity_protocol::Decision;
use common::*;
use reqwest::Method;
use serde_json::json;

struct Endpoint {
    node: &'static str,
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    allowed: Vec<Role>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_checks_the_officers_role() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    let mut tokens: BTreeMap<(&str, Role), String> = BTreeMap::new();
    for (node, admin) in [("FR", &fr), ("DE", &de)] {
        let _ = admin;
        for role in Role::ALL {
            let added = bloc
                .appoint(node, &format!("{role}-1"), role)
                .await
                .unwrap();
            assert_eq!(added.officer.role, role);
            tokens.insert((node, role), added.token);
        }
    }
    let sent = send(&bloc, "FR", "DE", Some(20_000)).await.summary.case_id;
    let draft = fr
        .create_request(&comity_node::admin::api::NewRequest {
            request: request("FR", "DE"),
        })
        .await
        .unwrap()
        .summary
        .case_id;

    use Role::*;
    let everyone = Role::ALL.to_vec();
    let readers = vec![Requester, Approver, Reviewer, Auditor, Oversight, Admin];
    let overseers = vec![Auditor, Oversight, Admin];
    let content = vec![Requester, Approver, Reviewer, Admin];
    let endpoint = |node, method, path: String, body, allowed| Endpoint {
        node,
        method,
        path,
        body,
        allowed,
    };
    let endpoints = vec![
        endpoint(
            "FR",
            Method::GET,
            "/v1/status".into(),
            None,
            everyone.clone(),
        ),
        endpoint(
            "FR",
            Method::GET,
            "/v1/peers".into(),
            None,
            everyone.clone(),
        ),
        // The bloc configuration holds no personal data: every officer may read it; only a
        // governor (or an admin) speaks for the member in its governance.
        endpoint("FR", Method::GET, "/v1/bloc".into(), None, everyone.clone()),
        endpoint(
            "FR",
            Method::GET,
            "/v1/bloc/history".into(),
            None,
            everyone.clone(),
        ),
        endpoint(
            "FR",
            Method::GET,
            "/v1/bloc/versions/1".into(),
            None,
            everyone.clone(),
        ),
        endpoint(
            "FR",
            Method::GET,
            "/v1/bloc/proposals".into(),
            None,
            everyone.clone(),
        ),
        endpoint(
            "FR",
            Method::POST,
            "/v1/bloc/proposals".into(),
            Some(json!({ "renew": true })),
            vec![Governor, Admin],
        ),
        endpoint(
            "FR",
            Method::POST,
            "/v1/bloc/sign?which=99".into(),
            Some(json!({})),
            vec![Governor, Admin],
        ),
        endpoint(
            "FR",
            Method::POST,
            "/v1/bloc/import".into(),
            Some(json!({ "cose": "00" })),
            vec![Governor, Admin],
        ),
        endpoint("FR", Method::GET, "/v1/cases".into(), None, readers.clone()),
        endpoint("DE", Method::GET, "/v1/inbox".into(), None, readers.clone()),
        endpoint(
            "FR",
            Method::GET,
            format!("/v1/cases/{sent}"),
            None,
            content.clone(),
        ),
        endpoint(
            "FR",
            Method::GET,
            format!("/v1/cases/{sent}/log"),
            None,
            content.clone(),
        ),
        endpoint(
            "FR",
            Method::POST,
            "/v1/requests".into(),
            Some(json!({ "request": request("FR", "DE") })),
            vec![Requester, Admin],
        ),
        endpoint(
            "FR",
            Method::POST,
            format!("/v1/cases/{draft}/send"),
            Some(json!({})),
            vec![Requester, Admin],
        ),
        endpoint(
            "DE",
            Method::POST,
            format!("/v1/cases/{sent}/act"),
            Some(json!({"action": "request-clarification", "question": "which account?"})),
            vec![Reviewer, Admin],
        ),
        endpoint(
            "FR",
            Method::POST,
            format!("/v1/cases/{sent}/act"),
            Some(json!({"action": "withdraw", "reason": "no longer needed"})),
            vec![Requester, Admin],
        ),
        endpoint(
            "DE",
            Method::GET,
            "/v1/refusals".into(),
            None,
            overseers.clone(),
        ),
        endpoint(
            "FR",
            Method::GET,
            "/v1/access-log".into(),
            None,
            overseers.clone(),
        ),
        endpoint(
            "FR",
            Method::POST,
            "/v1/faults/clock".into(),
            Some(json!({"advance_secs": 0})),
            vec![Admin],
        ),
        endpoint(
            "FR",
            Method::GET,
            format!("/v1/cases/{draft}/precheck"),
            None,
            vec![Requester, Approver, Admin],
        ),
        endpoint(
            "FR",
            Method::POST,
            "/v1/officers/nobody/revoke".into(),
            Some(json!({})),
            vec![Admin],
        ),
        // Approving is four-eyes: only the approver role, and an admin does not stand in.
        endpoint(
            "FR",
            Method::POST,
            format!("/v1/cases/{draft}/approve"),
            Some(json!({})),
            vec![Approver],
        ),
        // Evidence: progress for any reader; opening for content readers; delivering for
        // reviewers (refused for the case's state, but not for the role).
        endpoint(
            "FR",
            Method::GET,
            format!("/v1/cases/{sent}/evidence/status"),
            None,
            readers.clone(),
        ),
        endpoint(
            "FR",
            Method::GET,
            format!("/v1/cases/{sent}/evidence?purpose=audit"),
            None,
            content.clone(),
        ),
        endpoint(
            "FR",
            Method::GET,
            format!("/v1/cases/{sent}/evidence/files/0?purpose=audit"),
            None,
            content.clone(),
        ),
        endpoint(
            "DE",
            Method::POST,
            format!("/v1/cases/{sent}/evidence"),
            Some(json!({"files": [{"name": "a.pdf", "size": 1, "media_type": "application/pdf"}]})),
            vec![Reviewer, Admin],
        ),
        endpoint(
            "DE",
            Method::PUT,
            "/v1/evidence/uploads/none".into(),
            None,
            vec![Reviewer, Admin],
        ),
        endpoint(
            "DE",
            Method::POST,
            "/v1/faults/evidence".into(),
            Some(json!({})),
            vec![Admin],
        ),
        endpoint(
            "FR",
            Method::GET,
            "/v1/officers".into(),
            None,
            overseers.clone(),
        ),
        endpoint(
            "FR",
            Method::GET,
            "/v1/officers/pending".into(),
            None,
            overseers.clone(),
        ),
        endpoint(
            "FR",
            Method::POST,
            "/v1/officers/nobody/approve".into(),
            Some(json!({})),
            vec![Admin],
        ),
        endpoint(
            "FR",
            Method::GET,
            "/v1/audit/entries?from=0&limit=10".into(),
            None,
            overseers.clone(),
        ),
        endpoint(
            "FR",
            Method::POST,
            format!("/v1/cases/{sent}/amend"),
            Some(json!({"request": request("FR", "DE")})),
            vec![Requester, Admin],
        ),
        endpoint(
            "FR",
            Method::POST,
            format!("/v1/cases/{sent}/amend/cancel"),
            Some(json!({})),
            vec![Requester, Approver, Admin],
        ),
        endpoint(
            "DE",
            Method::POST,
            format!("/v1/cases/{sent}/override/cancel"),
            Some(json!({})),
            vec![Reviewer, Approver, Admin],
        ),
        endpoint(
            "DE",
            Method::POST,
            format!("/v1/cases/{sent}/override"),
            Some(json!({"reason": "why not"})),
            vec![Reviewer, Admin],
        ),
        endpoint(
            "DE",
            Method::POST,
            format!("/v1/cases/{sent}/override/approve"),
            Some(json!({})),
            vec![Approver, Reviewer, Admin],
        ),
        endpoint(
            "FR",
            Method::POST,
            "/v1/officers".into(),
            Some(json!({"name": "someone", "role": "auditor"})),
            vec![Admin],
        ),
        endpoint(
            "FR",
            Method::POST,
            "/v1/faults".into(),
            Some(json!({"member": "DE", "cut": false})),
            vec![Admin],
        ),
        // Reports: auditors (and admins) only.
        endpoint(
            "FR",
            Method::GET,
            "/v1/reports/transparency?period=2026".into(),
            None,
            overseers.clone(),
        ),
        endpoint(
            "FR",
            Method::GET,
            "/v1/reports/bloc?period=2026".into(),
            None,
            overseers.clone(),
        ),
    ];
    // Every case action, each on the side that takes it (most are then refused for the case's
    // state, which is not the point here: only the role is). Destructive ones last.
    let until = comity_protocol::Timestamp::from_millis(
        comity_protocol::Timestamp::now().as_millis() + 86_400_000,
    );
    let mut endpoints = endpoints;
    for (node, action, allowed) in [
        (
            "DE",
            Action::Decide {
                decision: Decision::Accept,
            },
            vec![Reviewer, Admin],
        ),
        (
            "DE",
            Action::Fulfil {
                note: "records attached".into(),
            },
            vec![Reviewer, Admin],
        ),
        (
            "DE",
            Action::Preserve { until: Some(until) },
            vec![Reviewer, Admin],
        ),
        (
            "DE",
            Action::ExtendPreservation { until },
            vec![Reviewer, Admin],
        ),
        (
            "DE",
            Action::ReleasePreservation,
            vec![Requester, Reviewer, Admin],
        ),
        (
            "FR",
            Action::Clarify {
                answer: "the account at example.org".into(),
            },
            vec![Requester, Admin],
        ),
        ("FR", Action::Acknowledge, vec![Requester, Admin]),
        ("FR", Action::AcceptScope, vec![Requester, Admin]),
        ("FR", Action::Close, vec![Requester, Reviewer, Admin]),
        ("FR", Action::Purge, vec![Requester, Admin]),
    ] {
        endpoints.push(endpoint(
            node,
            Method::POST,
            format!("/v1/cases/{sent}/act"),
            Some(serde_json::to_value(&action).unwrap()),
            allowed,
        ));
    }

    let http = reqwest::Client::new();
    for e in &endpoints {
        for role in Role::ALL {
            let url = format!("{}{}", bloc.node(e.node).admin_url(), e.path);
            let mut call = http
                .request(e.method.clone(), &url)
                .bearer_auth(&tokens[&(e.node, role)]);
            if let Some(body) = &e.body {
                call = call.json(body);
            }
            let response = call.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if e.allowed.contains(&role) {
                // Allowed: it may still be refused for what it asks (a 4xx other than 401 or
                // 403), but a 5xx is a failure, not a permission.
                assert!(
                    status < 500 && status != 403 && status != 401,
                    "{role} on {} {} {:?}: {status} {body}",
                    e.method,
                    e.path,
                    e.body
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{role} on {} {} should be refused: {body}",
                    e.method, e.path
                );
                assert_eq!(body["error"], "forbidden");
                let reason = body["reason"].as_str().unwrap();
                for needed in e.allowed.iter().filter(|r| **r != Admin) {
                    assert!(reason.contains(&format!("`{needed}`")), "{reason}");
                }
            }
        }
    }

    // A revoked officer's token stops working at once.
    let token = &tokens[&("FR", Requester)];
    let url = format!("{}/v1/status", bloc.node("FR").admin_url());
    assert_eq!(
        http.get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    fr.revoke_officer("requester-1").await.unwrap();
    assert_eq!(
        http.get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let listed = fr.officers().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|o| o.name == "requester-1" && o.revoked_at.is_some())
    );
    assert!(listed.iter().any(|o| o.name == "admin" && o.role == Admin));
}
