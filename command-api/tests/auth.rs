//! Accounts and sessions against a real server, Postgres event store and session tables.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use command_api::auth::Tokens;
use command_api::{AuthSettings, CommandState};
use event_store::postgres::PgEventStore;
use event_store::{Direction, EventStore};
use reqwest::StatusCode;
use serde_json::{Value, json};
use service::auth::session::TokenLifetimes;
use service::testing::{TestServer, problem};
use service::{HttpApp, Readiness};

struct TestApp {
    server: TestServer,
    store: Arc<PgEventStore>,
    _db: schema::testing::TestDatabase,
}

impl TestApp {
    async fn spawn() -> TestApp {
        Self::spawn_with(AuthSettings::default()).await
    }

    async fn spawn_with(auth: AuthSettings) -> TestApp {
        let _ = service::telemetry::init("warn", service::LogFormat::Pretty);
        let db = schema::testing::TestDatabase::create()
            .await
            .expect("test database");
        let store = Arc::new(PgEventStore::connect(&db.url, 8).expect("store connects"));
        let state = CommandState::new(store.clone(), db.pool.clone(), auth);
        let server = TestServer::start(HttpApp::new(command_api::api(state), Readiness::new()));
        TestApp {
            server,
            store,
            _db: db,
        }
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.server
            .client
            .post(self.server.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn register(&self, email: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/register",
            json!({"email": email, "password": "correct horse battery", "name": "Ada Lovelace"}),
        )
        .await
    }

    async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/sign-in",
            json!({"email": email, "password": password}),
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh_token}),
        )
        .await
    }

    async fn sign_out(&self, access_token: &str) -> reqwest::Response {
        self.server
            .client
            .post(self.server.url("/api/v1/auth/sign-out"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    async fn user_event_types(&self, tokens: &Tokens) -> Vec<String> {
        self.store
            .read_stream(
                &events::user::stream(tokens.user_id),
                None,
                Direction::Forwards,
                100,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }
}

async fn tokens(response: reqwest::Response, status: StatusCode) -> Tokens {
    let actual = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn register_sign_out_and_sign_in_again() {
    let app = TestApp::spawn().await;
    let first = tokens(app.register(" Ada@Example.com ").await, StatusCode::CREATED).await;
    assert_eq!(first.token_type, "Bearer");
    assert!(first.access_token.starts_with("cat_"));
    assert!(first.refresh_token.starts_with("crt_"));
    assert!(
        (890..=900).contains(&first.expires_in),
        "{}",
        first.expires_in
    );

    assert_eq!(
        app.sign_out(&first.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    let again = app.sign_out(&first.access_token).await;
    assert_eq!(
        again.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"corbi\""
    );
    problem(again, StatusCode::UNAUTHORIZED).await;
    problem(
        app.refresh(&first.refresh_token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // The email is matched however it is spelled.
    let second = tokens(
        app.sign_in("ada@example.COM", "correct horse battery")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(second.user_id, first.user_id);
    assert_eq!(
        app.user_event_types(&second).await,
        ["UserRegistered", "SignedIn", "SessionsEnded", "SignedIn"]
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_answer_alike() {
    let app = TestApp::spawn().await;
    tokens(app.register("ada@example.com").await, StatusCode::CREATED).await;
    let wrong = problem(
        app.sign_in("ada@example.com", "incorrect horse").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let unknown = problem(
        app.sign_in("nobody@example.com", "incorrect horse").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(wrong["title"], unknown["title"]);
}

#[tokio::test]
async fn a_refresh_token_works_once_and_its_reuse_ends_the_session() {
    let app = TestApp::spawn().await;
    let first = tokens(app.register("ada@example.com").await, StatusCode::CREATED).await;
    let second = tokens(app.refresh(&first.refresh_token).await, StatusCode::OK).await;
    assert_ne!(second.access_token, first.access_token);
    // The rotated pair's access token ended with it.
    problem(
        app.sign_out(&first.access_token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let reused = problem(
        app.refresh(&first.refresh_token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(reused["detail"].as_str().unwrap().contains("used before"));
    // Whoever held the newer pair is signed out too.
    problem(
        app.refresh(&second.refresh_token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        app.sign_out(&second.access_token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        app.user_event_types(&first).await,
        ["UserRegistered", "SignedIn", "SessionsEnded"]
    );
}

#[tokio::test]
async fn access_tokens_expire() {
    let app = TestApp::spawn_with(AuthSettings {
        open_registration: true,
        token_lifetimes: TokenLifetimes {
            access: Duration::from_secs(1),
            refresh: Duration::from_secs(60),
        },
        ..AuthSettings::default()
    })
    .await;
    let issued = tokens(app.register("ada@example.com").await, StatusCode::CREATED).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    problem(
        app.sign_out(&issued.access_token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // The refresh token still trades for a fresh pair.
    let fresh = tokens(app.refresh(&issued.refresh_token).await, StatusCode::OK).await;
    assert_eq!(
        app.sign_out(&fresh.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn one_account_per_email_even_when_registrations_race() {
    let app = Arc::new(TestApp::spawn().await);
    let attempts: Vec<_> = (0..6)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.register("race@example.com").await.status() })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 1);
    let body = problem(app.register("RACE@example.com").await, StatusCode::CONFLICT).await;
    assert!(body["detail"].as_str().unwrap().starts_with("email:"));
}

#[tokio::test]
async fn bad_registrations_name_every_field() {
    let app = TestApp::spawn().await;
    let body = problem(
        app.post(
            "/api/v1/auth/register",
            json!({"email": "not-an-email", "password": "short", "name": "  "}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password", "name"]);
    assert!(
        body["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("10")
    );
    let missing = problem(
        app.post("/api/v1/auth/register", json!({"email": "a@example.com"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(missing["errors"][0]["field"], "password");
    problem(
        app.sign_in("not-an-email", "whatever password").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(app.refresh("crt_nonsense").await, StatusCode::UNAUTHORIZED).await;
    problem(app.sign_out("cat_nonsense").await, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn closed_registration_is_refused() {
    let app = TestApp::spawn_with(AuthSettings {
        open_registration: false,
        ..AuthSettings::default()
    })
    .await;
    problem(app.register("ada@example.com").await, StatusCode::FORBIDDEN).await;
    problem(
        app.sign_in("ada@example.com", "correct horse battery")
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_even_against_the_right_one() {
    let app = TestApp::spawn().await;
    tokens(app.register("ada@example.com").await, StatusCode::CREATED).await;
    for _ in 0..5 {
        problem(
            app.sign_in("ada@example.com", "incorrect horse").await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    // However it is spelled, it is the same account.
    let locked = app
        .sign_in(" ADA@example.com", "correct horse battery")
        .await;
    let retry_after: u64 = locked
        .headers()
        .get("retry-after")
        .expect("a 429 says when to retry")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    let body = problem(locked, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(body["detail"].as_str().unwrap().contains("Too many"));
}

#[tokio::test]
async fn twenty_failures_from_one_address_lock_it_for_every_email() {
    let app = TestApp::spawn().await;
    for n in 0..20 {
        // A forged X-Forwarded-For does not make a new address: only a configured proxy's is
        // believed.
        let response = app
            .server
            .client
            .post(app.server.url("/api/v1/auth/sign-in"))
            .header("X-Forwarded-For", format!("10.0.0.{n}"))
            .json(&json!({"email": format!("guess{n}@example.com"), "password": "incorrect horse"}))
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let locked = app
        .sign_in("yet-another@example.com", "incorrect horse")
        .await;
    assert!(locked.headers().contains_key("retry-after"));
    problem(locked, StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn signing_in_forgets_the_accounts_failures() {
    let app = TestApp::spawn().await;
    tokens(app.register("ada@example.com").await, StatusCode::CREATED).await;
    let wrong_four_times = || async {
        for _ in 0..4 {
            problem(
                app.sign_in("ada@example.com", "incorrect horse").await,
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
    };
    wrong_four_times().await;
    tokens(
        app.sign_in("ada@example.com", "correct horse battery")
            .await,
        StatusCode::OK,
    )
    .await;
    // Eight failures in the window, but only four since the success.
    wrong_four_times().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_take_about_as_long() {
    let app = TestApp::spawn().await;
    tokens(app.register("ada@example.com").await, StatusCode::CREATED).await;
    // The first unknown email also builds the dummy hash it verifies against; keep it out of the
    // measurements.
    problem(
        app.sign_in("warm-up@example.com", "incorrect horse").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Interleaved, so a busy machine slows both kinds alike. Four wrong passwords stay below the
    // account limit; nine failures in all stay below the address limit.
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    let mut details = Vec::new();
    for n in 0..4 {
        for (email, times) in [
            ("ada@example.com".to_owned(), &mut wrong),
            (format!("nobody{n}@example.com"), &mut unknown),
        ] {
            let started = std::time::Instant::now();
            let response = app.sign_in(&email, "incorrect horse").await;
            times.push(started.elapsed());
            details.push(problem(response, StatusCode::UNAUTHORIZED).await["detail"].clone());
        }
    }
    assert!(
        details.windows(2).all(|pair| pair[0] == pair[1]),
        "{details:?}"
    );

    // The fastest try of each is its own cost with the least of the machine's other work in it
    // (other tests run alongside). Skipping the verification would make an unknown email tens
    // of times faster, far outside these bounds.
    let fastest = |times: &[Duration]| times.iter().min().copied().unwrap_or_default();
    let (wrong, unknown) = (fastest(&wrong), fastest(&unknown));
    let ratio = wrong.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (1.0 / 3.0..=3.0).contains(&ratio),
        "wrong password {wrong:?}, unknown email {unknown:?}"
    );
}
