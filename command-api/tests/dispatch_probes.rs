//! `POST /api/v1/dispatch-probes` against a real server and the Postgres event store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use command_api::dispatch_probes::DispatchProbeAccepted;
use command_api::{AuthSettings, CommandState};
use event_store::postgres::PgEventStore;
use event_store::{Direction, EventStore, Position};
use reqwest::StatusCode;
use serde_json::{Value, json};
use service::testing::{TestServer, problem};
use service::{HttpApp, Readiness};
use uuid::Uuid;

struct TestApp {
    base: String,
    client: reqwest::Client,
    store: Arc<PgEventStore>,
    _db: schema::testing::TestDatabase,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let db = schema::testing::TestDatabase::create()
            .await
            .expect("test database");
        let store = Arc::new(PgEventStore::connect(&db.url, 4).expect("store connects"));
        Self::spawn_with(store.clone(), db)
    }

    fn spawn_with(store: Arc<PgEventStore>, db: schema::testing::TestDatabase) -> TestApp {
        let readiness = Readiness::new();
        readiness.register("event_store", command_api::event_store_check(store.clone()));
        let app = HttpApp::new(
            command_api::api(CommandState::new(
                store.clone(),
                db.pool.clone(),
                AuthSettings::default(),
            )),
            readiness,
        );
        let TestServer { base, client } = TestServer::start(app);
        TestApp {
            base,
            client,
            store,
            _db: db,
        }
    }

    async fn post_probe(&self, body: Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/api/v1/dispatch-probes", self.base))
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("answered")
    }

    async fn events_in(&self, probe_id: Uuid) -> Vec<event_store::RecordedEvent> {
        self.store
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
    let org = Uuid::new_v4();
    let response = app
        .client
        .post(format!("{}/api/v1/dispatch-probes", app.base))
        .header("x-request-id", "probe-req-1")
        .json(&json!({"org_id": org, "channel": "test"}))
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
    let second = accepted(
        app.post_probe(json!({"org_id": org, "channel": "test"}), None)
            .await,
    )
    .await;
    assert_ne!(second.probe_id, body.probe_id);
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_first_result_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let org = Uuid::new_v4();
    let body = json!({"org_id": org, "channel": "test"});
    let first = accepted(app.post_probe(body.clone(), Some("key-1")).await).await;
    let head = app.store.head().await.unwrap();
    let retry = accepted(app.post_probe(body.clone(), Some("key-1")).await).await;
    assert_eq!(retry, first);
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "the retry appended something"
    );
    assert_eq!(app.events_in(first.probe_id).await.len(), 1);

    // The same key in another organisation is another request.
    let other_org = accepted(
        app.post_probe(
            json!({"org_id": Uuid::new_v4(), "channel": "test"}),
            Some("key-1"),
        )
        .await,
    )
    .await;
    assert_ne!(other_org.probe_id, first.probe_id);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = TestApp::spawn().await;
    let org = Uuid::new_v4();
    let first = accepted(
        app.post_probe(json!({"org_id": org, "channel": "test"}), Some("key-2"))
            .await,
    )
    .await;
    let body = problem(
        app.post_probe(json!({"org_id": org, "channel": "email"}), Some("key-2"))
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
    let org = Uuid::new_v4();

    let body = problem(
        app.post_probe(json!({"org_id": org, "channel": "carrier-pigeon"}), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "channel");

    let body = problem(
        app.post_probe(json!({"channel": "test"}), None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "org_id");

    let url = format!("{}/api/v1/dispatch-probes", app.base);
    let malformed = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"org_id": "#)
        .send()
        .await
        .unwrap();
    problem(malformed, StatusCode::BAD_REQUEST).await;

    let form = app
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("org_id=x&channel=test")
        .send()
        .await
        .unwrap();
    problem(form, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    let body = problem(
        app.post_probe(
            json!({"org_id": org, "channel": "test"}),
            Some("has spaces"),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");

    let get = app.client.get(&url).send().await.unwrap();
    assert_eq!(get.headers().get("allow").unwrap(), "POST");
    problem(get, StatusCode::METHOD_NOT_ALLOWED).await;

    assert_eq!(
        app.store.head().await.unwrap(),
        None,
        "nothing was appended"
    );
}

#[tokio::test]
async fn an_unreachable_store_answers_503_and_shows_in_ready() {
    let db = schema::testing::TestDatabase::create()
        .await
        .expect("test database");
    // Nothing listens on port 1.
    let store = Arc::new(
        PgEventStore::connect("postgres://postgres@127.0.0.1:1/corbi", 2).expect("lazy connect"),
    );
    let app = TestApp::spawn_with(store, db);
    let response = app
        .post_probe(json!({"org_id": Uuid::new_v4(), "channel": "test"}), None)
        .await;
    assert!(response.headers().contains_key("retry-after"));
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");

    let ready = app
        .client
        .get(format!("{}/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["checks"]["event_store"]["ok"], false);
}
