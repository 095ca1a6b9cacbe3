//! Both APIs on one port, split by method, as `corbi up` serves them: the command answers a
//! consistency token, and a query with that token reads the write once the projection has it.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use command_api::{AuthSettings, CommandState};
use event_store::postgres::PgEventStore;
use events::Position;
use query_api::QueryState;
use reqwest::StatusCode;
use serde_json::{Value, json};
use service::readiness::{migrations_check, postgres_check};
use service::testing::TestServer;
use service::{HttpApp, Readiness};
use uuid::Uuid;

#[tokio::test]
async fn one_port_serves_reads_and_writes_split_by_method() {
    let db = schema::testing::TestDatabase::create()
        .await
        .expect("test database");
    common::create_event_stats_model(&db.pool).await;
    let store = Arc::new(PgEventStore::connect(&db.url, 4).expect("store"));
    let readiness = Readiness::new();
    readiness.register("event_store", command_api::event_store_check(store.clone()));
    readiness.register("read_db", postgres_check(db.pool.clone()));
    readiness.register("migrations", migrations_check(db.pool.clone()));
    let app = HttpApp::split_by_method(
        query_api::api(QueryState::new(db.pool.clone(), Duration::from_secs(5))),
        command_api::api(CommandState::new(
            store,
            db.pool.clone(),
            AuthSettings::default(),
        )),
        readiness,
    );
    let TestServer { base, client } = TestServer::start(app);
    let org = Uuid::new_v4();

    // A write, then a read of it with the token it answered.
    let accepted = client
        .post(format!("{base}/api/v1/dispatch-probes"))
        .json(&json!({"org_id": org, "channel": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let accepted: Value = accepted.json().await.unwrap();
    let token: Position = accepted["consistency_token"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let pool = db.pool.clone();
    tokio::spawn(async move {
        // Stands in for the projector applying the probe event.
        tokio::time::sleep(Duration::from_millis(100)).await;
        common::add_stat(&pool, org, "probe", "2025-05-01", 1).await;
        common::set_checkpoint(&pool, token).await;
    });
    let stats = client
        .get(format!("{base}/api/v1/event-stats"))
        .header("X-Org-ID", org.to_string())
        .header("X-Consistency-Token", token.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    let stats: Value = stats.json().await.unwrap();
    assert_eq!(stats["totals"]["by_category"]["probe"], 1);

    // Each side answers 405 for the other side's methods on its paths.
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
