//! The server skeleton end to end: a real server on port 0 with two small test APIs.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use actix_web::{HttpResponse, web};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use service::readiness::{migrations_check, postgres_check};
use service::testing::{TestServer, problem};
use service::{Api, ApiError, CheckResult, HttpApp, Readiness};
use utoipa::OpenApi;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewThing {
    #[allow(dead_code)]
    name: String,
}

#[utoipa::path(get, path = "/things", responses((status = 200)))]
async fn list_things() -> HttpResponse {
    HttpResponse::Ok().json(json!({"side": "read"}))
}

#[utoipa::path(get, path = "/things/{id}", responses((status = 200)))]
async fn get_thing(id: web::Path<uuid::Uuid>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"side": "read", "id": id.into_inner()}))
}

#[utoipa::path(post, path = "/things", request_body = NewThing, responses((status = 201)))]
async fn create_thing(_body: web::Json<NewThing>) -> HttpResponse {
    HttpResponse::Created().json(json!({"side": "write"}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    #[allow(dead_code)]
    from: Option<String>,
}

#[utoipa::path(get, path = "/search", responses((status = 200)))]
async fn search(_query: web::Query<SearchQuery>) -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[utoipa::path(get, path = "/boom", responses((status = 500)))]
async fn boom() -> Result<HttpResponse, ApiError> {
    Err(ApiError::Internal(
        anyhow::anyhow!("password authentication failed").context("loading things"),
    ))
}

#[utoipa::path(get, path = "/panic", responses((status = 500)))]
async fn panics() -> HttpResponse {
    panic!("handler bug")
}

#[derive(OpenApi)]
#[openapi(paths(list_things, get_thing, search, boom, panics))]
struct ReadDoc;

#[derive(OpenApi)]
#[openapi(paths(create_thing))]
struct WriteDoc;

fn read_api() -> Api {
    Api::new("test-read", ReadDoc::openapi(), |cfg| {
        cfg.route("/things", service::routing::read().to(list_things))
            .route("/things/{id}", service::routing::read().to(get_thing))
            .route("/search", service::routing::read().to(search))
            .route("/boom", service::routing::read().to(boom))
            .route("/panic", service::routing::read().to(panics));
    })
}

fn write_api() -> Api {
    Api::new("test-write", WriteDoc::openapi(), |cfg| {
        cfg.route("/things", web::post().to(create_thing));
    })
}

fn split_server(readiness: Readiness) -> TestServer {
    TestServer::start(HttpApp::split_by_method(read_api(), write_api(), readiness))
}

#[tokio::test]
async fn health_is_always_ok_and_ready_reports_each_check() {
    let db = schema::testing::TestDatabase::create()
        .await
        .expect("test database");
    let readiness = Readiness::new().with_timeout(Duration::from_millis(500));
    readiness.register("read_db", postgres_check(db.pool.clone()));
    readiness.register("migrations", migrations_check(db.pool.clone()));
    let server = split_server(readiness.clone());

    let health = server.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);

    let ready = server.get("/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["checks"]["migrations"],
        json!({"ok": true, "detail": "0 pending"})
    );
    assert_eq!(body["checks"]["read_db"]["ok"], true);

    readiness.register("rabbitmq", || async {
        CheckResult::failed("connection refused")
    });
    readiness.register("stuck", || async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        CheckResult::ok("never")
    });
    let started = std::time::Instant::now();
    let ready = server.get("/ready").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "checks are time-bounded"
    );
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(
        body["checks"]["rabbitmq"],
        json!({"ok": false, "detail": "connection refused"})
    );
    assert_eq!(body["checks"]["stuck"]["ok"], false);
    assert_eq!(body["checks"]["migrations"]["ok"], true);

    // Liveness never depends on the checks.
    assert_eq!(server.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let server = split_server(Readiness::new());
    let id = uuid::Uuid::new_v4();
    assert_eq!(
        server.get(&format!("/things/{id}")).await.status(),
        StatusCode::OK
    );
    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    // The recorder is process-wide: other tests count their requests on it too.
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"path_pattern="/things/{id}""#)
            && l.contains(r#"method="GET""#)
            && l.contains(r#"status="200""#)),
        "no counter for the route pattern in:\n{text}"
    );
    assert!(
        !text.contains(&id.to_string()),
        "raw paths must not become labels"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let server = split_server(Readiness::new());
    let body = problem(server.get("/nowhere").await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["title"], "Not Found");

    // DELETE goes to the write side, which has no DELETE /things: 405 with what is allowed.
    let response = server
        .client
        .delete(server.url("/things"))
        .send()
        .await
        .unwrap();
    let allow = response
        .headers()
        .get("allow")
        .expect("allow")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(allow, "GET, HEAD, POST");
    problem(response, StatusCode::METHOD_NOT_ALLOWED).await;

    // GET on a write-only path: the read side has no such route, still a 405.
    let single = TestServer::start(HttpApp::new(write_api(), Readiness::new()));
    let response = single.get("/things").await;
    assert_eq!(response.headers().get("allow").unwrap(), "POST");
    problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
    let response = single
        .client
        .post(single.url("/health"))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn one_path_serves_reads_and_writes_split_by_method() {
    let server = split_server(Readiness::new());
    let read: Value = server.get("/things").await.json().await.unwrap();
    assert_eq!(read["side"], "read");
    let write = server
        .client
        .post(server.url("/things"))
        .json(&json!({"name": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::CREATED);
    assert_eq!(write.json::<Value>().await.unwrap()["side"], "write");

    let head = server
        .client
        .head(server.url("/things"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_bodies_are_problems_naming_what_is_wrong() {
    let server = split_server(Readiness::new());
    let post = |body: &'static str, content_type: &'static str| {
        server
            .client
            .post(server.url("/things"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let body = problem(
        post(r#"{"name": "#, "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["type"], "urn:corbi:problem:malformed-json");
    assert!(body["detail"].as_str().unwrap().contains("EOF"), "{body}");

    let body = problem(
        post("{}", "application/json").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "name");

    let body = problem(
        post(r#"{"name": "a", "nmae": "b"}"#, "application/json")
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "nmae");

    let body = problem(
        post(r#"{"name": "a"}"#, "text/plain").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );

    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(300 * 1024));
    let response = server
        .client
        .post(server.url("/things"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn bad_paths_and_queries_name_the_parameter() {
    let server = split_server(Readiness::new());
    let body = problem(
        server.get("/things/not-a-uuid").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "id");
    let body = problem(
        server.get("/search?form=2024-01-01").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "form");
}

#[tokio::test]
async fn internal_errors_and_panics_answer_a_generic_problem() {
    let server = split_server(Readiness::new());
    let body = problem(server.get("/boom").await, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert!(!body.to_string().contains("password"), "{body}");
    let body = problem(
        server.get("/panic").await,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert!(!body.to_string().contains("handler bug"), "{body}");
    // The worker survived.
    assert_eq!(server.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let server = split_server(Readiness::new());
    let response = server
        .client
        .get(server.url("/health"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers().get("x-request-id").unwrap(), "req-123");

    let response = server.get("/health").await;
    let made = response
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");

    let response = server
        .client
        .get(server.url("/health"))
        .header("x-request-id", "x".repeat(500))
        .send()
        .await
        .unwrap();
    let replaced = response
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        uuid::Uuid::parse_str(replaced).is_ok(),
        "an oversized id is replaced"
    );
}

#[tokio::test]
async fn openapi_document_and_swagger_ui_are_served() {
    let server = split_server(Readiness::new());
    let doc: Value = server.get("/api/openapi.json").await.json().await.unwrap();
    for path in ["/health", "/ready", "/metrics", "/things", "/things/{id}"] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from {doc}"
        );
    }
    assert!(doc["paths"]["/things"].get("get").is_some());
    assert!(doc["paths"]["/things"].get("post").is_some());
    assert!(doc["components"]["schemas"].get("Problem").is_some());

    let redirect = server.get("/api/docs").await;
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    let page = server.get("/api/docs/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("swagger"));
}
