//! Building and running an HTTP server, the same way for `corbi up` (both APIs on one port, split
//! by method), one-service mode and tests (port 0).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::extract::{json_config, path_config, query_config};
use crate::readiness::{Readiness, health, ready};
use crate::request_id::observe;
use crate::routing::{KnownRoutes, problem_fallback, read, read_guard, unmatched};

type Configure = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// What one API contributes to a server: its routes and their documentation.
#[derive(Clone)]
pub struct Api {
    name: &'static str,
    openapi: Arc<OpenApi>,
    configure: Configure,
}

impl Api {
    /// `configure` registers the API's routes; it runs once per worker thread.
    pub fn new(
        name: &'static str,
        openapi: OpenApi,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            openapi: Arc::new(openapi),
            configure: Arc::new(configure),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn openapi(&self) -> &OpenApi {
        &self.openapi
    }
}

#[derive(Clone)]
enum Mount {
    One(Api),
    /// `GET`/`HEAD` go to `read`, every other method to `write`, so one path can have both.
    SplitByMethod {
        read: Api,
        write: Api,
    },
}

/// A server about to be bound: `/health`, `/ready`, `/metrics`, `/api/openapi.json` and
/// `/api/docs` plus the mounted API(s), behind the request-id, metrics and problem+json layers.
#[derive(Clone)]
pub struct HttpApp {
    mount: Mount,
    readiness: Readiness,
    workers: Option<usize>,
    signals: bool,
}

impl HttpApp {
    /// A server for one API.
    pub fn new(api: Api, readiness: Readiness) -> Self {
        Self {
            mount: Mount::One(api),
            readiness,
            workers: None,
            signals: true,
        }
    }

    /// One server for both sides: `GET` and `HEAD` requests are routed to `read`'s routes, all
    /// other methods to `write`'s. A method the matching side does not serve on a known path
    /// answers 405 with `Allow`.
    pub fn split_by_method(read: Api, write: Api, readiness: Readiness) -> Self {
        Self {
            mount: Mount::SplitByMethod { read, write },
            readiness,
            workers: None,
            signals: true,
        }
    }

    /// Worker threads (default: one per physical core).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers.max(1));
        self
    }

    /// Leaves SIGINT/SIGTERM to the caller, which then stops the server through
    /// [`Application::handle`] (e.g. `corbi up` stopping every component together). By default
    /// the server stops gracefully on those signals by itself.
    pub fn without_signal_handling(mut self) -> Self {
        self.signals = false;
        self
    }

    /// The combined OpenAPI document this server serves.
    pub fn openapi(&self) -> OpenApi {
        match &self.mount {
            Mount::One(api) => crate::openapi::combined([(*api.openapi).clone()]),
            Mount::SplitByMethod { read, write } => {
                crate::openapi::combined([(*read.openapi).clone(), (*write.openapi).clone()])
            }
        }
    }

    fn name(&self) -> String {
        match &self.mount {
            Mount::One(api) => api.name.to_string(),
            Mount::SplitByMethod { read, write } => format!("{}+{}", read.name, write.name),
        }
    }

    /// Binds `addr` (port 0 picks a free port) and returns the server, not yet running.
    pub fn bind(self, addr: SocketAddr) -> io::Result<Application> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        self.listen(listener)
    }

    /// Serves on an already bound listener.
    pub fn listen(self, listener: TcpListener) -> io::Result<Application> {
        crate::metrics::install();
        let addr = listener.local_addr()?;
        let name = self.name();
        let openapi = self.openapi();
        let known = web::Data::new(known_routes(&openapi));
        let readiness = web::Data::new(self.readiness.clone());
        let mount = self.mount;

        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(ErrorHandlers::new().default_handler(problem_fallback))
                .wrap(from_fn(observe))
                .app_data(json_config())
                .app_data(query_config())
                .app_data(path_config())
                .app_data(known.clone())
                .app_data(readiness.clone())
                .route("/health", read().to(health))
                .route("/ready", read().to(ready))
                .route("/metrics", read().to(crate::metrics::metrics_endpoint))
                .route("/api/docs", read().to(docs_redirect))
                .service(
                    SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", openapi.clone()),
                )
                .configure(|cfg| mount_routes(cfg, &mount))
                .default_service(web::to(unmatched))
        })
        .shutdown_timeout(10);
        if let Some(workers) = self.workers {
            server = server.workers(workers);
        }
        if !self.signals {
            server = server.disable_signals();
        }
        let server = server.listen(listener)?.run();
        tracing::info!(service = %name, %addr, "listening");
        Ok(Application { addr, server })
    }
}

fn mount_routes(cfg: &mut web::ServiceConfig, mount: &Mount) {
    match mount {
        Mount::One(api) => (api.configure)(cfg),
        Mount::SplitByMethod { read, write } => {
            // A guarded scope whose guard fails is skipped by the router, so writes fall
            // through to the second scope; inside a scope, an unknown path reaches the app's
            // default service (404/405).
            let read = read.configure.clone();
            let write = write.configure.clone();
            cfg.service(
                web::scope("")
                    .guard(read_guard())
                    .configure(move |c| read(c)),
            );
            cfg.service(web::scope("").configure(move |c| write(c)));
        }
    }
}

fn known_routes(openapi: &OpenApi) -> KnownRoutes {
    let mut doc = openapi.clone();
    // Served by Swagger UI, not documented as operations, but still known paths.
    for path in ["/api/openapi.json", "/api/docs", "/api/docs/{_:.*}"] {
        doc.paths.paths.insert(
            path.to_string(),
            utoipa::openapi::path::PathItem::new(
                utoipa::openapi::path::HttpMethod::Get,
                utoipa::openapi::path::OperationBuilder::new(),
            ),
        );
    }
    KnownRoutes::from_openapi(&doc)
}

/// Swagger UI's page loads its assets relative to `/api/docs/`.
async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/api/docs/"))
        .finish()
}

/// A bound server: run it, or stop it through its handle.
pub struct Application {
    addr: SocketAddr,
    server: Server,
}

impl Application {
    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops the server from elsewhere (`handle.stop(true)` drains in-flight requests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped by its handle or by SIGINT/SIGTERM.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        self.server.await
    }
}
