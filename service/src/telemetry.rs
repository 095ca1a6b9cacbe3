//! The process-wide `tracing` subscriber.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber: `filter` is a `tracing` directive (`info,sqlx=warn`), `format`
/// pretty for people or JSON for collectors: one object per line with the fields of every
/// enclosing span, so a line logged deep inside a handler still carries the request id. Logs go to stderr so command output on stdout stays clean.
///
/// Fails if the filter is malformed or a subscriber is already installed.
pub fn init(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("CORBI_LOG: not a tracing filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Pretty => builder
            .with_target(true)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the tracing subscriber: {e}"))
}
