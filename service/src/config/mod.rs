//! Configuration from environment variables (DESIGN §9): every variable has a working local
//! default, and a malformed one stops start-up with a message naming it and what it expects.

mod parse;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use events::personal::Keyring;

pub use parse::redact_url;
use parse::{parse_addr, parse_name_prefix, parse_number, parse_postgres_url, parse_url};

/// Which backend holds the event log.
#[derive(Clone, PartialEq, Eq)]
pub enum EventStoreBackend {
    Postgres,
    KurrentDb { url: String },
}

impl fmt::Debug for EventStoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventStoreBackend::Postgres => f.write_str("Postgres"),
            EventStoreBackend::KurrentDb { url } => f
                .debug_struct("KurrentDb")
                .field("url", &redact_url(url))
                .finish(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Coloured, multi-field lines for people.
    Pretty,
    /// One JSON object per line, with the fields of the current span, for log collectors.
    Json,
}

/// Everything a Corbi process reads from its environment.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// `DATABASE_URL`: the Postgres holding the read models (and the event log on the postgres
    /// backend).
    pub database_url: String,
    /// `AMQP_URL`: the RabbitMQ broker of the dispatcher.
    pub amqp_url: String,
    /// `CORBI_EVENT_STORE` (+ `KURRENTDB_URL` when it is `kurrentdb`).
    pub event_store: EventStoreBackend,
    /// `CORBI_HTTP_ADDR`: both APIs on one port (`corbi up`).
    pub http_addr: SocketAddr,
    /// `CORBI_COMMAND_API_ADDR`: the command API alone (`corbi command-api`).
    pub command_api_addr: SocketAddr,
    /// `CORBI_QUERY_API_ADDR`: the query API alone (`corbi query-api`).
    pub query_api_addr: SocketAddr,
    /// `CORBI_LOG`: a `tracing` filter directive, e.g. `info,sqlx=warn`.
    pub log_filter: String,
    /// `CORBI_LOG_FORMAT`: `pretty` or `json`.
    pub log_format: LogFormat,
    /// `CORBI_DB_POOL_SIZE`: connections per Postgres pool.
    pub db_pool_size: usize,
    /// `CORBI_AMQP_PREFIX`: prefix of every exchange and queue name, so several deployments (or
    /// tests) can share a broker.
    pub amqp_prefix: String,
    /// `CORBI_DISPATCH_PREFETCH`: unacknowledged jobs a dispatcher worker holds at once.
    pub dispatch_prefetch: u16,
    /// `CORBI_CONSISTENCY_TIMEOUT_MS`: how long a query waits for its consistency token.
    pub consistency_timeout: Duration,
    /// `CORBI_OPEN_REGISTRATION`: whether anyone may register (`corbi admin create-user` and
    /// invitations work either way).
    pub open_registration: bool,
    /// `CORBI_TRUST_FORWARDED`: whether the client address comes from `Forwarded` /
    /// `X-Forwarded-For` (only behind a proxy that sets them) or from the connection.
    pub trust_forwarded: bool,
    /// `CORBI_ACCESS_TOKEN_TTL_SECS` and `CORBI_REFRESH_TOKEN_TTL_SECS`.
    pub token_lifetimes: crate::auth::session::TokenLifetimes,
    /// `CORBI_MASTER_KEY`: the master keys that wrap the data keys of personal data, the first
    /// wrapping and every one unwrapping (rotation); the public development key when unset.
    pub master_key: Arc<Keyring>,
}

impl fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("amqp_url", &redact_url(&self.amqp_url))
            .field("event_store", &self.event_store)
            .field("http_addr", &self.http_addr)
            .field("command_api_addr", &self.command_api_addr)
            .field("query_api_addr", &self.query_api_addr)
            .field("log_filter", &self.log_filter)
            .field("log_format", &self.log_format)
            .field("db_pool_size", &self.db_pool_size)
            .field("amqp_prefix", &self.amqp_prefix)
            .field("dispatch_prefetch", &self.dispatch_prefetch)
            .field("consistency_timeout", &self.consistency_timeout)
            .field("open_registration", &self.open_registration)
            .field("trust_forwarded", &self.trust_forwarded)
            .field("token_lifetimes", &self.token_lifetimes)
            // Shows the key ids only.
            .field("master_key", &self.master_key)
            .finish()
    }
}

/// One variable that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct VarError {
    pub var: &'static str,
    /// What was wrong and what is expected instead.
    pub problem: String,
}

/// Every variable that could not be used, so one start-up attempt reports them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub errors: Vec<VarError>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration")?;
        for error in &self.errors {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

impl ServiceConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<ServiceConfig, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the variables from `vars`, e.g. a map in tests.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<ServiceConfig, ConfigError> {
        Self::from_lookup(|var| vars.get(var).cloned())
    }

    /// Reads each variable through `lookup`. An empty or blank value counts as unset, so
    /// `VAR=` in a compose file falls back to the default.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ServiceConfig, ConfigError> {
        let mut env = Env {
            lookup: &lookup,
            errors: Vec::new(),
        };
        let database_url = env.parse(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/corbi",
            parse_postgres_url,
        );
        let amqp_url = env.parse("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f", |v| {
            parse_url(v, &["amqp", "amqps"])
        });
        let backend = env.parse("CORBI_EVENT_STORE", "postgres", |v| match v {
            "postgres" => Ok(false),
            "kurrentdb" => Ok(true),
            _ => Err("expected `postgres` or `kurrentdb`".to_string()),
        });
        let kurrentdb_url = env.optional("KURRENTDB_URL", |v| {
            parse_url(
                v,
                &[
                    "kurrentdb",
                    "kurrentdb+discover",
                    "kdb",
                    "kdb+discover",
                    "esdb",
                    "esdb+discover",
                ],
            )
        });
        let event_store = match (backend, kurrentdb_url) {
            (Some(false), _) => Some(EventStoreBackend::Postgres),
            (Some(true), Some(Some(url))) => Some(EventStoreBackend::KurrentDb { url }),
            (Some(true), Some(None)) => {
                env.errors.push(VarError {
                    var: "KURRENTDB_URL",
                    problem: "is required when CORBI_EVENT_STORE=kurrentdb \
                              (e.g. kurrentdb://127.0.0.1:2113?tls=false)"
                        .into(),
                });
                None
            }
            _ => None,
        };
        let http_addr = env.parse("CORBI_HTTP_ADDR", "127.0.0.1:8080", parse_addr);
        let command_api_addr = env.parse("CORBI_COMMAND_API_ADDR", "127.0.0.1:8081", parse_addr);
        let query_api_addr = env.parse("CORBI_QUERY_API_ADDR", "127.0.0.1:8082", parse_addr);
        let log_filter = env.parse("CORBI_LOG", "info", |v| {
            tracing_subscriber::EnvFilter::try_new(v)
                .map(|_| v.to_string())
                .map_err(|e| format!("expected a tracing filter like `info,sqlx=warn`: {e}"))
        });
        let log_format = env.parse("CORBI_LOG_FORMAT", "pretty", |v| match v {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `pretty` or `json`".to_string()),
        });
        let db_pool_size = env.parse("CORBI_DB_POOL_SIZE", "16", |v| {
            parse_number::<usize>(v, 1, 1_000)
        });
        let amqp_prefix = env.parse("CORBI_AMQP_PREFIX", "corbi", parse_name_prefix);
        let dispatch_prefetch = env.parse("CORBI_DISPATCH_PREFETCH", "64", |v| {
            parse_number::<u16>(v, 1, u16::MAX)
        });
        let consistency_timeout_ms = env.parse("CORBI_CONSISTENCY_TIMEOUT_MS", "5000", |v| {
            parse_number::<u64>(v, 0, 600_000)
        });

        let open_registration = env.parse("CORBI_OPEN_REGISTRATION", "true", parse_bool);
        let trust_forwarded = env.parse("CORBI_TRUST_FORWARDED", "false", parse_bool);
        let access_ttl = env.parse("CORBI_ACCESS_TOKEN_TTL_SECS", "900", |v| {
            parse_number::<u64>(v, 30, 86_400)
        });
        let refresh_ttl = env.parse("CORBI_REFRESH_TOKEN_TTL_SECS", "2592000", |v| {
            parse_number::<u64>(v, 60, 31_536_000)
        });
        // The error never echoes the value: it is the secret.
        let master_key = env.optional("CORBI_MASTER_KEY", |v| {
            Keyring::parse(v).map_err(|e| e.to_string())
        });

        // Every variable was parsed above, so all of their errors are reported together.
        let config = (|| {
            Some(ServiceConfig {
                database_url: database_url?,
                amqp_url: amqp_url?,
                event_store: event_store?,
                http_addr: http_addr?,
                command_api_addr: command_api_addr?,
                query_api_addr: query_api_addr?,
                log_filter: log_filter?,
                log_format: log_format?,
                db_pool_size: db_pool_size?,
                amqp_prefix: amqp_prefix?,
                dispatch_prefetch: dispatch_prefetch?,
                consistency_timeout: Duration::from_millis(consistency_timeout_ms?),
                open_registration: open_registration?,
                trust_forwarded: trust_forwarded?,
                token_lifetimes: crate::auth::session::TokenLifetimes {
                    access: Duration::from_secs(access_ttl?),
                    refresh: Duration::from_secs(refresh_ttl?),
                },
                master_key: Arc::new(master_key?.unwrap_or_else(Keyring::development)),
            })
        })();
        match config {
            Some(config) if env.errors.is_empty() => Ok(config),
            _ => Err(ConfigError { errors: env.errors }),
        }
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected `true` or `false`".to_string()),
    }
}

/// Collects the errors of every variable it parses.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<VarError>,
}

impl Env<'_> {
    fn value(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// `var` parsed, or `default` parsed when unset; `None` (and an error recorded) when
    /// malformed.
    fn parse<T>(
        &mut self,
        var: &'static str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.value(var).unwrap_or_else(|| default.to_string());
        match parse(&value) {
            Ok(parsed) => Some(parsed),
            Err(problem) => {
                self.errors.push(VarError { var, problem });
                None
            }
        }
    }

    /// `Some(None)` when unset, `Some(Some(_))` when set and valid, `None` when malformed.
    fn optional<T>(
        &mut self,
        var: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.value(var) {
            None => Some(None),
            Some(value) => match parse(&value) {
                Ok(parsed) => Some(Some(parsed)),
                Err(problem) => {
                    self.errors.push(VarError { var, problem });
                    None
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<ServiceConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServiceConfig::from_map(&map)
    }

    fn error_vars(error: &ConfigError) -> Vec<&'static str> {
        error.errors.iter().map(|e| e.var).collect()
    }

    #[test]
    fn defaults_work_locally() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.database_url, "postgres://postgres@127.0.0.1:5432/corbi");
        assert_eq!(c.amqp_url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(c.event_store, EventStoreBackend::Postgres);
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.command_api_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(c.query_api_addr.to_string(), "127.0.0.1:8082");
        assert_eq!(c.log_filter, "info");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.db_pool_size, 16);
        assert_eq!(c.amqp_prefix, "corbi");
        assert_eq!(c.dispatch_prefetch, 64);
        assert_eq!(c.consistency_timeout, Duration::from_millis(5000));
        assert!(c.master_key.is_development());
    }

    #[test]
    fn values_override_defaults_and_blank_means_unset() {
        let c = config(&[
            ("DATABASE_URL", "postgresql://app:secret@db:5433/corbi"),
            ("AMQP_URL", "amqps://mq.internal/vhost"),
            ("CORBI_EVENT_STORE", "kurrentdb"),
            ("KURRENTDB_URL", "kurrentdb://127.0.0.1:2113?tls=false"),
            ("CORBI_HTTP_ADDR", "[::]:9000"),
            ("CORBI_LOG", "debug,sqlx=warn"),
            ("CORBI_LOG_FORMAT", "json"),
            ("CORBI_DB_POOL_SIZE", " 4 "),
            ("CORBI_AMQP_PREFIX", "corbi_test-1"),
            ("CORBI_DISPATCH_PREFETCH", "200"),
            ("CORBI_CONSISTENCY_TIMEOUT_MS", "250"),
            ("CORBI_QUERY_API_ADDR", "   "),
        ])
        .expect("valid");
        assert_eq!(
            c.event_store,
            EventStoreBackend::KurrentDb {
                url: "kurrentdb://127.0.0.1:2113?tls=false".into()
            }
        );
        assert_eq!(c.http_addr.port(), 9000);
        assert_eq!(c.query_api_addr.to_string(), "127.0.0.1:8082");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.db_pool_size, 4);
        assert_eq!(c.dispatch_prefetch, 200);
        assert_eq!(c.consistency_timeout, Duration::from_millis(250));
    }

    #[test]
    fn kurrentdb_needs_its_url() {
        let e = config(&[("CORBI_EVENT_STORE", "kurrentdb")]).expect_err("url is missing");
        assert_eq!(error_vars(&e), ["KURRENTDB_URL"]);
        assert!(e.to_string().contains("KURRENTDB_URL: is required"), "{e}");
        // The URL alone does not switch the backend.
        let c = config(&[("KURRENTDB_URL", "esdb://localhost:2113")]).expect("valid");
        assert_eq!(c.event_store, EventStoreBackend::Postgres);
    }

    #[test]
    fn malformed_values_name_the_variable_and_what_is_expected() {
        let e = config(&[
            ("DATABASE_URL", "mysql://root:hunter2@db/corbi"),
            ("AMQP_URL", "localhost:5672"),
            ("CORBI_EVENT_STORE", "eventstore"),
            ("CORBI_HTTP_ADDR", "localhost"),
            ("CORBI_LOG_FORMAT", "xml"),
            ("CORBI_DB_POOL_SIZE", "many"),
            ("CORBI_DISPATCH_PREFETCH", "0"),
            ("CORBI_CONSISTENCY_TIMEOUT_MS", "-1"),
            ("CORBI_AMQP_PREFIX", "has space"),
        ])
        .expect_err("all malformed");
        assert_eq!(
            error_vars(&e),
            [
                "DATABASE_URL",
                "AMQP_URL",
                "CORBI_EVENT_STORE",
                "CORBI_HTTP_ADDR",
                "CORBI_LOG_FORMAT",
                "CORBI_DB_POOL_SIZE",
                "CORBI_AMQP_PREFIX",
                "CORBI_DISPATCH_PREFETCH",
                "CORBI_CONSISTENCY_TIMEOUT_MS",
            ]
        );
        let text = e.to_string();
        assert!(
            text.contains("DATABASE_URL: expected a URL starting with postgres:// or postgresql://, got scheme `mysql`"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "URLs may hold passwords: {text}");
        assert!(text.contains("CORBI_EVENT_STORE: expected `postgres` or `kurrentdb`"));
        assert!(text.contains("CORBI_HTTP_ADDR: expected a socket address"));
        assert!(
            text.contains("CORBI_DB_POOL_SIZE: expected a whole number from 1 to 1000, got `many`")
        );
        assert!(text.contains("CORBI_DISPATCH_PREFETCH: expected a whole number from 1"));
    }

    #[test]
    fn bad_log_filter_and_bad_kurrentdb_scheme_are_reported() {
        let e = config(&[
            ("CORBI_LOG", "info,[[["),
            ("CORBI_EVENT_STORE", "kurrentdb"),
            ("KURRENTDB_URL", "http://127.0.0.1:2113"),
        ])
        .expect_err("malformed");
        assert_eq!(error_vars(&e), ["KURRENTDB_URL", "CORBI_LOG"]);
    }

    #[test]
    fn master_key_takes_a_rotation_list_and_errors_never_show_key_material() {
        let new = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let old = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
        let c = config(&[("CORBI_MASTER_KEY", &format!("k2:{new},k1:{old}"))]).expect("valid");
        assert!(!c.master_key.is_development());
        assert_eq!(c.master_key.current_id(), "k2");
        assert_eq!(c.master_key.ids().collect::<Vec<_>>(), ["k2", "k1"]);
        let shown = format!("{c:?}");
        assert!(!shown.contains(new) && !shown.contains(old), "{shown}");
        assert!(shown.contains("k2"), "{shown}");

        for bad in [
            new.to_string(),
            format!("k1:{}", &new[..20]),
            format!("k1:{new},k1:{old}"),
            format!("bad id:{new}"),
            "k1:%%%".to_string(),
        ] {
            let e = config(&[("CORBI_MASTER_KEY", &bad)]).expect_err("malformed");
            assert_eq!(error_vars(&e), ["CORBI_MASTER_KEY"], "{bad}");
            let text = e.to_string();
            assert!(text.contains("CORBI_MASTER_KEY: "), "{text}");
            assert!(!text.contains(&new[..12]), "{text}");
        }
    }

    #[test]
    fn debug_output_hides_passwords() {
        let c = config(&[(
            "DATABASE_URL",
            "postgres://app:s3cret@db:5432/corbi?sslmode=require",
        )])
        .expect("valid");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://app:***@db:5432/corbi?sslmode=require"),
            "{shown}"
        );
        assert!(
            shown.contains("amqp://guest:***@127.0.0.1:5672/%2f"),
            "{shown}"
        );
        assert_eq!(
            redact_url("postgres://app@db/corbi"),
            "postgres://app@db/corbi"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
