//! For the services' HTTP tests (feature `testing`): a server on an ephemeral port, and the
//! checks every problem answer must pass.

use reqwest::StatusCode;
use serde_json::Value;

use crate::server::HttpApp;

/// An [`HttpApp`] served on `127.0.0.1:0` with one worker, until the test's runtime ends.
pub struct TestServer {
    pub base: String,
    /// Follows no redirects, so tests see them.
    pub client: reqwest::Client,
}

impl TestServer {
    pub fn start(app: HttpApp) -> TestServer {
        let app = app
            .workers(1)
            .bind(([127, 0, 0, 1], 0).into())
            .expect("binds an ephemeral port");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds");
        TestServer { base, client }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET path`, sent.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request is answered")
    }
}

/// Asserts that `response` is an `application/problem+json` answer with `status`, carrying a
/// request id, and returns its body.
pub async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert!(
        response.headers().contains_key("x-request-id"),
        "a problem carries the request id"
    );
    let body: Value = response.json().await.expect("problem is JSON");
    assert_eq!(body["status"], status.as_u16(), "status in the body");
    body
}
