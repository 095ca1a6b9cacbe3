//! Plumbing shared by Corbi's HTTP services: configuration from the environment, `tracing`
//! set-up, `application/problem+json` errors, request ids, Prometheus metrics, health and
//! readiness, the OpenAPI document and the server builder.
//!
//! An API crate exposes an [`server::Api`] (its routes and OpenAPI paths); a binary mounts one
//! with [`server::HttpApp::new`] or two with [`server::HttpApp::split_by_method`], binds it and
//! runs the returned [`server::Application`].

pub mod auth;
pub mod config;
pub mod consistency;
pub mod database;
pub mod extract;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod problem;
pub mod readiness;
pub mod request_id;
pub mod routing;
pub mod server;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use auth::caller::Caller;
pub use config::{ConfigError, EventStoreBackend, LogFormat, ServiceConfig};
pub use extract::{IdempotencyKey, ORG_ID_HEADER};
pub use problem::{ApiError, FieldError, Problem};
pub use readiness::{CheckResult, Readiness};
pub use request_id::RequestId;
pub use server::{Api, Application, HttpApp};
