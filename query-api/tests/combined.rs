//! Both APIs on one port, split by method, as `corbi up` serves them, with the projector: the
//! command answers a consistency token, and a query with that token reads the write.
#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{As, TestStack};

#[tokio::test]
async fn one_port_serves_reads_and_writes_split_by_method() {
    let stack = TestStack::spawn().await;
    let admin = stack.sign_up("ops@example.com").await;
    let org = stack.create_org(&admin, "Ops").await;
    let admin = As::User(admin);

    // A write, then a read of it with the token it answered.
    let (status, accepted) = stack
        .call(
            Method::POST,
            "/api/v1/dispatch-probes",
            &admin,
            Some(org),
            Some(json!({"channel": "test"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let token = accepted["consistency_token"].as_str().unwrap();
    let stats = stack
        .request(Method::GET, "/api/v1/event-stats", &admin, Some(org))
        .header("X-Consistency-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    let stats: Value = stats.json().await.unwrap();
    assert_eq!(stats["totals"]["by_category"]["probe"], 1);

    // Each side answers 405 for the other side's methods on its paths.
    let base = &stack.server.base;
    let client = &stack.server.client;
    let wrong = client
        .get(format!("{base}/api/v1/dispatch-probes"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.headers().get("allow").unwrap(), "POST");
    let wrong = client
        .post(format!("{base}/api/v1/event-stats"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.headers().get("allow").unwrap(), "GET, HEAD");

    // The operations endpoints exist once, and the document holds both sides.
    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["migrations"]["detail"], "0 pending");
    let doc: Value = client
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/dispatch-probes"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/event-stats"]["get"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"path_pattern="/api/v1/dispatch-probes""#),
        "{metrics}"
    );
}
