//! `GET /api/v1/event-stats` against a real server and database.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::Position;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::testing::problem;
use testkit::{As, Options, TestStack};
use uuid::Uuid;

/// The stack with a stand-in for `event_stats` (the test writes its rows and checkpoint), and a
/// member of one organisation asking.
struct TestApp {
    stack: TestStack,
    viewer: As,
    org: Uuid,
}

impl TestApp {
    async fn spawn(consistency_timeout: Duration) -> TestApp {
        let stack = TestStack::spawn_with_options(Options {
            projections: Some(vec![Arc::new(projector::Access)]),
            consistency_timeout,
            ..Options::default()
        })
        .await;
        common::create_event_stats_model(&stack.db.pool).await;
        let admin = stack.sign_up("admin@example.com").await;
        let org = stack.create_org(&admin, "Acme").await;
        let viewer = As::User(
            stack
                .member(&admin, org, "viewer@example.com", "viewer")
                .await,
        );
        TestApp { stack, viewer, org }
    }

    fn pool(&self) -> &sqlx::PgPool {
        &self.stack.db.pool
    }

    fn stats(&self, org: Option<Uuid>, query: &str) -> reqwest::RequestBuilder {
        self.stack.request(
            Method::GET,
            &format!("/api/v1/event-stats{query}"),
            &self.viewer,
            org,
        )
    }
}

async fn ok_json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn stats_are_scoped_to_the_organisation_and_sorted() {
    let app = TestApp::spawn(Duration::from_secs(1)).await;
    let (org, other) = (app.org, Uuid::new_v4());
    let pool = app.pool();
    common::add_stat(pool, org, "probe", "2025-01-02", 3).await;
    common::add_stat(pool, org, "contact", "2025-01-02", 5).await;
    common::add_stat(pool, org, "probe", "2025-01-01", 1).await;
    common::add_stat(pool, other, "contact", "2025-01-01", 100).await;
    common::add_stat(pool, other, "secret", "2025-01-02", 7).await;

    let body = ok_json(app.stats(None, "").send().await.unwrap()).await;
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

    // Another organisation's rows are not the caller's to read.
    let response = app.stats(Some(other), "").send().await.unwrap();
    problem(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn filters_narrow_the_rows() {
    let app = TestApp::spawn(Duration::from_secs(1)).await;
    let org = app.org;
    for (category, day, n) in [
        ("probe", "2025-01-01", 1),
        ("probe", "2025-01-02", 2),
        ("contact", "2025-01-02", 4),
        ("probe", "2025-01-03", 8),
    ] {
        common::add_stat(app.pool(), org, category, day, n).await;
    }
    let body = ok_json(
        app.stats(None, "?from=2025-01-02&to=2025-01-02")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["totals"]["event_count"], 6);
    assert_eq!(body["from"], "2025-01-02");

    let body = ok_json(
        app.stats(None, "?category=probe&from=2025-01-02")
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
async fn a_malformed_org_header_or_filter_is_named() {
    let app = TestApp::spawn(Duration::from_secs(1)).await;
    let body = problem(
        app.stats(None, "")
            .header("X-Org-ID", "acme")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "X-Org-ID");

    let org = app.org;
    let body = problem(
        app.stats(Some(org), "?from=01/02/2025")
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "from");

    let body = problem(
        app.stats(Some(org), "?from=2025-02-01&to=2025-01-01")
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "to");

    let body = problem(
        app.stats(Some(org), "?catgory=probe").send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "catgory");

    let body = problem(
        app.stats(Some(org), "")
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
    let org = app.org;
    let token = Position::new(40, 7);
    common::set_checkpoint(app.pool(), Position::new(40, 6)).await;

    let pool = app.pool().clone();
    let projector = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        common::add_stat(&pool, org, "probe", "2025-03-01", 1).await;
        common::set_checkpoint(&pool, Position::new(40, 7)).await;
    });
    let started = Instant::now();
    let body = ok_json(
        app.stats(None, "")
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
        app.stats(None, "")
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
        .stats(None, "")
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
