//! `POST /api/v1/dispatch-probes` against a real server and the Postgres event store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use command_api::dispatch_probes::DispatchProbeAccepted;
use event_store::postgres::PgEventStore;
use event_store::{Direction, EventStore, Position};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::testing::problem;
use testkit::{As, TestStack, User};
use uuid::Uuid;

/// The whole stack with an admin of one organisation, who sends the probes.
struct TestApp {
    stack: TestStack,
    admin: User,
    org: Uuid,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let stack = TestStack::spawn().await;
        let admin = stack.sign_up("ops@example.com").await;
        let org = stack.create_org(&admin, "Ops").await;
        TestApp { stack, admin, org }
    }

    fn store(&self) -> &Arc<PgEventStore> {
        &self.stack.store
    }

    fn url(&self) -> String {
        self.stack.server.url("/api/v1/dispatch-probes")
    }

    fn probe(&self, org: Option<Uuid>) -> reqwest::RequestBuilder {
        self.stack.request(
            Method::POST,
            "/api/v1/dispatch-probes",
            &As::User(self.admin.clone()),
            org.or(Some(self.org)),
        )
    }

    async fn post_probe(&self, body: Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self.probe(None).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("answered")
    }

    /// Every event in the log. (The store's head trails transactions still open elsewhere,
    /// like the projector's, so it cannot tell whether something was just appended.)
    async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.stack.db.pool)
            .await
            .unwrap()
    }

    async fn events_in(&self, probe_id: Uuid) -> Vec<event_store::RecordedEvent> {
        self.store()
            .read_stream(
                &events::probe::stream(probe_id),
                None,
                Direction::Forwards,
                100,
            )
            .await
            .expect("stream reads")
    }
}

async fn accepted(response: reqwest::Response) -> DispatchProbeAccepted {
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let header = response
        .headers()
        .get("x-consistency-token")
        .expect("token header")
        .to_str()
        .unwrap()
        .to_string();
    let body: DispatchProbeAccepted = response.json().await.expect("accepted body");
    assert_eq!(header, body.consistency_token);
    body
}

#[tokio::test]
async fn a_probe_request_is_appended_and_answers_a_consistency_token() {
    let app = TestApp::spawn().await;
    let org = app.org;
    let response = app
        .probe(None)
        .header("x-request-id", "probe-req-1")
        .json(&json!({"channel": "test"}))
        .send()
        .await
        .unwrap();
    let body = accepted(response).await;
    assert_eq!(body.stream_version, 0);
    let token: Position = body.consistency_token.parse().expect("token is a position");

    let events = app.events_in(body.probe_id).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_type, "DispatchProbeRequested");
    assert_eq!(event.org_id, org);
    assert_eq!(event.position, token);
    assert_eq!(
        event.data,
        json!({"probe_id": body.probe_id, "channel": "test"})
    );
    assert_eq!(event.metadata.trace_id.as_deref(), Some("probe-req-1"));

    // Without a key every request is a new probe.
    let second = accepted(app.post_probe(json!({"channel": "test"}), None).await).await;
    assert_ne!(second.probe_id, body.probe_id);
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_first_result_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let body = json!({"channel": "test"});
    let first = accepted(app.post_probe(body.clone(), Some("key-1")).await).await;
    let count = app.event_count().await;
    let retry = accepted(app.post_probe(body.clone(), Some("key-1")).await).await;
    assert_eq!(retry, first);
    assert_eq!(
        app.event_count().await,
        count,
        "the retry appended something"
    );
    assert_eq!(app.events_in(first.probe_id).await.len(), 1);

    // The same key in another organisation is another request.
    let second_org = app.stack.create_org(&app.admin, "Ops 2").await;
    let other_org = accepted(
        app.probe(Some(second_org))
            .header("Idempotency-Key", "key-1")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ne!(other_org.probe_id, first.probe_id);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = TestApp::spawn().await;
    let first = accepted(
        app.post_probe(json!({"channel": "test"}), Some("key-2"))
            .await,
    )
    .await;
    let body = problem(
        app.post_probe(json!({"channel": "email"}), Some("key-2"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["type"], "urn:corbi:problem:idempotency-key-reused");
    let events = app.events_in(first.probe_id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data["channel"], "test");
}

#[tokio::test]
async fn bad_requests_are_problems_and_append_nothing() {
    let app = TestApp::spawn().await;
    let count = app.event_count().await;

    let body = problem(
        app.post_probe(json!({"channel": "carrier-pigeon"}), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "channel");

    let body = problem(
        app.post_probe(json!({}), None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "channel");

    let body = problem(
        app.post_probe(json!({"org_id": app.org, "channel": "test"}), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        body["errors"][0]["field"], "org_id",
        "the organisation comes from the caller"
    );

    let malformed = app
        .probe(None)
        .header("content-type", "application/json")
        .body(r#"{"channel": "#)
        .send()
        .await
        .unwrap();
    problem(malformed, StatusCode::BAD_REQUEST).await;

    let form = app
        .probe(None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("channel=test")
        .send()
        .await
        .unwrap();
    problem(form, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    let body = problem(
        app.post_probe(json!({"channel": "test"}), Some("has spaces"))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");

    let get = app.stack.server.client.get(app.url()).send().await.unwrap();
    assert_eq!(get.headers().get("allow").unwrap(), "POST");
    problem(get, StatusCode::METHOD_NOT_ALLOWED).await;

    assert_eq!(app.event_count().await, count, "nothing was appended");
}

#[tokio::test]
async fn an_unreachable_store_answers_503_and_shows_in_ready() {
    let app = TestApp::spawn().await;
    // The same database and members, with an event store nothing listens for (port 1).
    let store = Arc::new(
        PgEventStore::connect("postgres://postgres@127.0.0.1:1/corbi", 2).expect("lazy connect"),
    );
    let server = app.stack.server_with_store(store);
    let response = server
        .client
        .post(server.url("/api/v1/dispatch-probes"))
        .bearer_auth(&app.admin.access_token)
        .json(&json!({"channel": "test"}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");

    let ready = server.get("/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["checks"]["event_store"]["ok"], false);
}
