//! The real `corbi` as a child process of the benchmark: `corbi migrate` and `corbi up` on a
//! port of its own against the bench database, and the user and organisation a benchmark signs
//! up through its API.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// How long `corbi up` may take to answer `/ready` with 200 (it waits for RabbitMQ too).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the read model may take to show the new organisation on `/api/v1/me`.
const READ_MODEL_TIMEOUT: Duration = Duration::from_secs(10);

pub const EMAIL: &str = "bench@corbi.local";
pub const PASSWORD: &str = "bench password 123";

/// The release `corbi` beside this binary (cargo puts every binary of a profile in one folder).
pub fn corbi_binary() -> anyhow::Result<PathBuf> {
    let corbi = std::env::current_exe()
        .context("finding the bench binary")?
        .with_file_name("corbi");
    if !corbi.is_file() {
        bail!(
            "{} is missing: run `cargo build --release -p corbi -p bench` first",
            corbi.display()
        );
    }
    Ok(corbi)
}

/// `corbi up` as a child process on a port of its own, against the bench database. Killed when
/// dropped, so an error or Ctrl-C does not leave it running.
pub struct Server {
    child: Child,
    base: String,
    /// For the setup requests (the load has clients of its own).
    client: reqwest::Client,
}

impl Server {
    /// Runs `corbi migrate`, starts `corbi up` and waits until `/ready` answers 200.
    pub async fn start(corbi: &Path, database_url: &str) -> anyhow::Result<Server> {
        let address = format!("127.0.0.1:{}", free_port()?);
        eprintln!("corbi migrate…");
        let status = corbi_command(corbi, database_url)
            .arg("migrate")
            .status()
            .await
            .with_context(|| format!("running {} migrate", corbi.display()))?;
        anyhow::ensure!(status.success(), "corbi migrate failed ({status})");
        eprintln!("corbi up on {address}…");
        let child = corbi_command(corbi, database_url)
            .env("CORBI_HTTP_ADDR", &address)
            .arg("up")
            .spawn()
            .with_context(|| format!("starting {} up", corbi.display()))?;
        let mut server = Server {
            child,
            base: format!("http://{address}"),
            client: client()?,
        };
        server.wait_until_ready().await?;
        Ok(server)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The process id of `corbi up`, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The client of the setup requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("corbi up exited ({status}) before it was ready; its log is above");
            }
            let answer = match self.client.get(self.url("/ready")).send().await {
                Ok(response) if response.status() == StatusCode::OK => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    format!("{status}: {}", response.text().await.unwrap_or_default())
                }
                Err(error) => format!("{error:#}"),
            };
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "corbi up was not ready within {}s (RabbitMQ is needed too, at AMQP_URL); \
                     last /ready answer: {answer}",
                    READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(&mut self) {
        if let Err(error) = self.child.kill().await {
            eprintln!("could not stop corbi up: {error}");
        }
    }
}

/// `corbi` with the bench's settings. Every `CORBI_*` of the shell is removed so a run measures
/// the defaults; `AMQP_URL` passes through.
pub fn corbi_command(corbi: &Path, database_url: &str) -> Command {
    let mut command = Command::new(corbi);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("CORBI_")) {
            command.env_remove(name);
        }
    }
    command
        .env("DATABASE_URL", database_url)
        .env("CORBI_LOG", "warn")
        .stdin(Stdio::null())
        // Its log goes with the bench's progress; stdout is kept for `--json`.
        .stdout(std::io::stderr())
        .kill_on_drop(true);
    command
}

/// A port nobody listens on now (the listener is dropped before corbi binds it).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A client that keeps at most one idle connection: a worker that has one request in flight at a
/// time then reuses one connection throughout.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// The bench user, signed in, and the organisation it administers.
pub struct Admin {
    pub access_token: String,
    pub org_id: Uuid,
}

/// Registers the bench user, creates an organisation, and waits until `/api/v1/me` shows it.
pub async fn sign_up(server: &Server) -> anyhow::Result<Admin> {
    eprintln!("registering {EMAIL} and creating an organisation…");
    let registered = expect(
        server
            .client
            .post(server.url("/api/v1/auth/register"))
            .json(&json!({ "email": EMAIL, "password": PASSWORD, "name": "Bench" }))
            .send()
            .await,
        StatusCode::CREATED,
        "POST /api/v1/auth/register",
    )
    .await?;
    let token = registered["access_token"]
        .as_str()
        .with_context(|| format!("no access_token in the registration's answer: {registered}"))?
        .to_owned();
    let created = expect(
        server
            .client
            .post(server.url("/api/v1/organisations"))
            .bearer_auth(&token)
            .json(&json!({ "name": "Bench org" }))
            .send()
            .await,
        StatusCode::CREATED,
        "POST /api/v1/organisations",
    )
    .await?;
    let organisation: Uuid = created["organisation_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("no organisation_id in the answer: {created}"))?;

    // The read model behind /me is built asynchronously by the projector.
    let started = Instant::now();
    loop {
        let response = server
            .client
            .get(server.url("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .context("GET /api/v1/me")?;
        let status = response.status();
        let text = response.text().await.context("reading /api/v1/me")?;
        if status == StatusCode::OK {
            let me: Value = serde_json::from_str(&text)
                .with_context(|| format!("/api/v1/me answered {text:?}"))?;
            if me["organisations"]
                .as_array()
                .is_some_and(|o| !o.is_empty())
            {
                eprintln!(
                    "  organisation {organisation} on /api/v1/me after {:.0} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                );
                return Ok(Admin {
                    access_token: token,
                    org_id: organisation,
                });
            }
        }
        if started.elapsed() > READ_MODEL_TIMEOUT {
            bail!(
                "/api/v1/me did not list organisation {organisation} within {}s; last answer \
                 {status}: {text}",
                READ_MODEL_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The JSON body of a response that must have `status`.
pub async fn expect(
    response: reqwest::Result<reqwest::Response>,
    status: StatusCode,
    what: &str,
) -> anyhow::Result<Value> {
    let response = response.with_context(|| what.to_owned())?;
    let actual = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the answer to {what}"))?;
    if actual != status {
        bail!("{what} answered {actual} (expected {status}): {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what} answered {text:?}"))
}
