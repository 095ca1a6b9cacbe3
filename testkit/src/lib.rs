//! The whole HTTP stack as `corbi up` serves it — both APIs on one port, split by method, and the
//! projector keeping every read model — on an ephemeral port over a fresh database, with helpers
//! for the steps most tests start with: sign up, create an organisation, invite, make API keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use command_api::{AuthSettings, CommandState};
use event_store::EventStore;
use event_store::data_keys::DataKeys;
use event_store::postgres::PgEventStore;
use events::Keyring;
use projector::Projection;
use query_api::QueryState;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use service::readiness::{migrations_check, postgres_check};
use service::testing::TestServer;
use service::{HttpApp, Readiness};
use tokio::sync::watch;
use uuid::Uuid;

/// The password every helper-made account has.
pub const PASSWORD: &str = "correct horse battery";

/// A running stack. The projector stops when it is dropped.
pub struct TestStack {
    pub server: TestServer,
    pub store: Arc<PgEventStore>,
    pub db: schema::testing::TestDatabase,
    _projector: watch::Sender<bool>,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub user_id: Uuid,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// Who a request is sent as.
#[derive(Debug, Clone)]
pub enum As {
    Nobody,
    User(User),
    ApiKey(String),
}

impl From<&User> for As {
    fn from(user: &User) -> As {
        As::User(user.clone())
    }
}

/// How a stack is set up.
pub struct Options {
    pub auth: AuthSettings,
    /// The projections the projector runs (`None`: all of them); a test that stands in for
    /// one itself leaves it out.
    pub projections: Option<Vec<Arc<dyn Projection>>>,
    /// How long queries wait for an `X-Consistency-Token`.
    pub consistency_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: AuthSettings {
                read_model_wait: Duration::from_secs(10),
                ..AuthSettings::default()
            },
            projections: None,
            consistency_timeout: Duration::from_secs(10),
        }
    }
}

impl TestStack {
    pub async fn spawn() -> TestStack {
        Self::spawn_with_options(Options::default()).await
    }

    pub async fn spawn_with(auth: AuthSettings) -> TestStack {
        Self::spawn_with_options(Options {
            auth: AuthSettings {
                read_model_wait: Duration::from_secs(10),
                ..auth
            },
            ..Options::default()
        })
        .await
    }

    pub async fn spawn_with_options(options: Options) -> TestStack {
        let _ = service::telemetry::init("warn", service::LogFormat::Pretty);
        let db = schema::testing::TestDatabase::create()
            .await
            .expect("test database");
        let store = Arc::new(PgEventStore::connect(&db.url, 8).expect("store connects"));
        let (stop, stopped) = watch::channel(false);
        let keys = DataKeys::new(db.pool.clone(), Arc::new(Keyring::development()));
        let projections = options.projections.unwrap_or_else(|| projector::all(&keys));
        let names: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
        tokio::spawn(projector::run(
            store.clone(),
            db.pool.clone(),
            projections,
            projector::ProjectorConfig::default(),
            stopped,
        ));
        exposed(&db, &names).await;
        let readiness = Readiness::new();
        readiness.register("event_store", command_api::event_store_check(store.clone()));
        readiness.register("read_db", postgres_check(db.pool.clone()));
        readiness.register("migrations", migrations_check(db.pool.clone()));
        let commands = CommandState::new(store.clone(), db.pool.clone(), options.auth);
        let app = HttpApp::split_by_method(
            query_api::api(
                QueryState::new(
                    db.pool.clone(),
                    options.consistency_timeout,
                    commands.sessions.clone(),
                )
                .with_log(store.clone(), keys.clone()),
            ),
            command_api::api(commands),
            readiness,
        );
        TestStack {
            server: TestServer::start(app),
            store,
            db,
            _projector: stop,
        }
    }

    /// A second server over the same database whose command side appends to `store` (an
    /// unreachable one, say), with the event store in its readiness checks.
    pub fn server_with_store(&self, store: Arc<dyn EventStore>) -> TestServer {
        let readiness = Readiness::new();
        readiness.register("event_store", command_api::event_store_check(store.clone()));
        let commands = CommandState::new(store, self.db.pool.clone(), AuthSettings::default());
        TestServer::start(HttpApp::split_by_method(
            query_api::api(QueryState::new(
                self.db.pool.clone(),
                Duration::from_secs(10),
                commands.sessions.clone(),
            )),
            command_api::api(commands),
            readiness,
        ))
    }

    /// A request to `path` sent as `who`, for the organisation `org` (`X-Org-ID`) if given.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        who: &As,
        org: Option<Uuid>,
    ) -> RequestBuilder {
        let mut request = self.server.client.request(method, self.server.url(path));
        match who {
            As::Nobody => {}
            As::User(user) => request = request.bearer_auth(&user.access_token),
            As::ApiKey(key) => request = request.header("X-API-Key", key),
        }
        if let Some(org) = org {
            request = request.header("X-Org-ID", org.to_string());
        }
        request
    }

    /// Sends `method path` with a JSON body (if any) and returns the status and JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        who: &As,
        org: Option<Uuid>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path, who, org);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("answered");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// `GET path` as `who`, once the read models have the write `token` (a consistency token, or
    /// `null` for none) made; it must answer 200.
    pub async fn read(&self, who: &As, org: Uuid, path: &str, token: &Value) -> Value {
        let mut request = self.request(Method::GET, path, who, Some(org));
        if let Some(token) = token.as_str() {
            request = request.header("X-Consistency-Token", token);
        }
        let response = request.send().await.expect("answered");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.expect("a JSON answer")
    }

    /// Registers `email` and returns the signed-in user.
    pub async fn sign_up(&self, email: &str) -> User {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                &As::Nobody,
                None,
                Some(json!({"email": email, "password": PASSWORD, "name": "Test User"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "registers {email}: {body}");
        user_from(email, &body)
    }

    /// Signs `email` in again: a new session.
    pub async fn sign_in(&self, email: &str) -> User {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/sign-in",
                &As::Nobody,
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "signs in {email}: {body}");
        user_from(email, &body)
    }

    /// Creates an organisation with `admin` as its admin.
    pub async fn create_org(&self, admin: &User, name: &str) -> Uuid {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/organisations",
                &admin.into(),
                None,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creates {name}: {body}");
        body["organisation_id"].as_str().unwrap().parse().unwrap()
    }

    /// Invites `email` to `org` as `role` and returns the invitation's answer (with its token).
    pub async fn invite(&self, admin: &User, org: Uuid, email: &str, role: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/invitations",
                &admin.into(),
                Some(org),
                Some(json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "invites {email}: {body}");
        body
    }

    /// A new user who joined `org` as `role` through an invitation.
    pub async fn member(&self, admin: &User, org: Uuid, email: &str, role: &str) -> User {
        let invitation = self.invite(admin, org, email, role).await;
        let user = self.sign_up(email).await;
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/invitations/accept",
                &(&user).into(),
                None,
                Some(json!({"token": invitation["token"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{email} accepts: {body}");
        user
    }

    /// A new API key of `org` with `role`; returns its id and secret.
    pub async fn api_key(&self, admin: &User, org: Uuid, role: &str) -> (Uuid, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/api-keys",
                &admin.into(),
                Some(org),
                Some(json!({"name": format!("{role} key"), "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creates a key: {body}");
        (
            body["key_id"].as_str().unwrap().parse().unwrap(),
            body["secret"].as_str().unwrap().to_owned(),
        )
    }
}

fn user_from(email: &str, tokens: &Value) -> User {
    User {
        user_id: tokens["user_id"].as_str().unwrap().parse().unwrap(),
        email: email.to_owned(),
        access_token: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// Waits until every projection of `names` has a generation readers see, as a deployment's
/// readiness check does before it takes traffic: a test's first read must not find a read
/// model still being created.
async fn exposed(db: &schema::testing::TestDatabase, names: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = projector::status(&db.pool).await.unwrap_or_default();
        if names
            .iter()
            .all(|name| statuses.iter().any(|s| s.name == *name))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the read models were not created within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The fields a problem answer names in its `errors`, in order.
pub fn error_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| e["field"].as_str().expect("a field name"))
        .collect()
}
