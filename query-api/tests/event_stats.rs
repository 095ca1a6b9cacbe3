//! `GET /api/v1/event-stats` against a real server and database.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use events::Position;
use query_api::QueryState;
use reqwest::StatusCode;
use serde_json::{Value, json};
use service::testing::{TestServer, problem};
use service::{HttpApp, Readiness};
use uuid::Uuid;

struct TestApp {
    base: String,
    client: reqwest::Client,
    db: schema::testing::TestDatabase,
}

impl TestApp {
    async fn spawn(consistency_timeout: Duration) -> TestApp {
        let db = schema::testing::TestDatabase::create()
            .await
            .expect("test database");
        common::create_event_stats_model(&db.pool).await;
        let state = QueryState::new(db.pool.clone(), consistency_timeout);
        let TestServer { base, client } =
            TestServer::start(HttpApp::new(query_api::api(state), Readiness::new()));
        TestApp { base, client, db }
    }

    fn stats(&self, org: Option<&str>, query: &str) -> reqwest::RequestBuilder {
        let request = self
            .client
            .get(format!("{}/api/v1/event-stats{query}", self.base));
        match org {
            Some(org) => request.header("X-Org-ID", org),
            None => request,
        }
    }
}

async fn ok_json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn stats_are_scoped_to_the_organisation_and_sorted() {
    let app = TestApp::spawn(Duration::from_secs(1)).await;
    let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
    let pool = &app.db.pool;
    common::add_stat(pool, org, "probe", "2025-01-02", 3).await;
    common::add_stat(pool, org, "contact", "2025-01-02", 5).await;
    common::add_stat(pool, org, "probe", "2025-01-01", 1).await;
    common::add_stat(pool, other, "contact", "2025-01-01", 100).await;
    common::add_stat(pool, other, "secret", "2025-01-02", 7).await;

    let body = ok_json(app.stats(Some(&org.to_string()), "").send().await.unwrap()).await;
    assert_eq!(body["org_id"], org.to_string());
    assert_eq!(
        body["rows"],
        json!([
            {"day": "2025-01-01", "category": "probe", "event_count": 1},
            {"day": "2025-01-02", "category": "contact", "event_count": 5},
            {"day": "2025-01-02", "category": "probe", "event_count": 3},
        ])
    );
    assert_eq!(
        body["totals"],
        json!({"event_count": 9, "by_category": {"contact": 5, "probe": 4}})
    );
    assert!(
        !body.to_string().contains("secret"),
        "another org's rows leaked"
    );

    let nobody = ok_json(
        app.stats(Some(&Uuid::new_v4().to_string()), "")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(nobody["rows"], json!([]));
    assert_eq!(nobody["totals"]["event_count"], 0);
}

#[tokio::test]
async fn filters_narrow_the_rows() {
    let app = TestApp::spawn(Duration::from_secs(1)).await;
    let org = Uuid::new_v4();
    for (category, day, n) in [
        ("probe", "2025-01-01", 1),
        ("probe", "2025-01-02", 2),
        ("contact", "2025-01-02", 4),
        ("probe", "2025-01-03", 8),
    ] {
        common::add_stat(&app.db.pool, org, category, day, n).await;
    }
    let org = org.to_string();
    let body = ok_json(
        app.stats(Some(&org), "?from=2025-01-02&to=2025-01-02")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["totals"]["event_count"], 6);
    assert_eq!(body["from"], "2025-01-02");

    let body = ok_json(
        app.stats(Some(&org), "?category=probe&from=2025-01-02")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        body["totals"],
        json!({"event_count": 10, "by_category": {"probe": 10}})
    );
}

#[tokio::test]
async fn a_missing_or_malformed_org_header_or_filter_is_named() {
    let app = TestApp::spawn(Duration::from_secs(1)).await;
    let body = problem(
        app.stats(None, "").send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "X-Org-ID");
    assert!(body["detail"].as_str().unwrap().contains("required"));

    let body = problem(
        app.stats(Some("acme"), "").send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "X-Org-ID");

    let org = Uuid::new_v4().to_string();
    let body = problem(
        app.stats(Some(&org), "?from=01/02/2025")
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "from");

    let body = problem(
        app.stats(Some(&org), "?from=2025-02-01&to=2025-01-01")
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "to");

    let body = problem(
        app.stats(Some(&org), "?catgory=probe")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "catgory");

    let body = problem(
        app.stats(Some(&org), "")
            .header("X-Consistency-Token", "latest")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "X-Consistency-Token");
}

#[tokio::test]
async fn a_consistency_token_waits_until_the_projection_passes_it() {
    let app = TestApp::spawn(Duration::from_secs(5)).await;
    let org = Uuid::new_v4();
    let token = Position::new(40, 7);
    common::set_checkpoint(&app.db.pool, Position::new(40, 6)).await;

    let pool = app.db.pool.clone();
    let projector = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        common::add_stat(&pool, org, "probe", "2025-03-01", 1).await;
        common::set_checkpoint(&pool, Position::new(40, 7)).await;
    });
    let started = Instant::now();
    let body = ok_json(
        app.stats(Some(&org.to_string()), "")
            .header("X-Consistency-Token", token.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    let waited = started.elapsed();
    projector.await.unwrap();
    assert!(
        waited >= Duration::from_millis(200),
        "answered before the checkpoint moved"
    );
    assert!(
        waited < Duration::from_secs(2),
        "kept waiting after it moved: {waited:?}"
    );
    assert_eq!(body["totals"]["event_count"], 1, "the write is visible");

    // A token already passed answers at once.
    let started = Instant::now();
    ok_json(
        app.stats(Some(&org.to_string()), "")
            .header("X-Consistency-Token", "40.2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn an_unreachable_token_answers_503_after_the_timeout() {
    let app = TestApp::spawn(Duration::from_millis(300)).await;
    let started = Instant::now();
    let response = app
        .stats(Some(&Uuid::new_v4().to_string()), "")
        .header("X-Consistency-Token", "999999.1")
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body["detail"].as_str().unwrap().contains("999999.1"));
}
