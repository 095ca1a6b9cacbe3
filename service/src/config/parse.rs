//! Parsers of single values; each error says what is expected, the caller adds the variable.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

pub(super) fn parse_postgres_url(value: &str) -> Result<String, String> {
    parse_url(value, &["postgres", "postgresql"])?;
    PgConnectOptions::from_str(value)
        .map(|_| value.to_string())
        .map_err(|e| format!("expected a postgres:// URL, but it does not parse: {e}"))
}

/// Checks the scheme and that something follows it. The value itself is never echoed: URLs may
/// hold passwords.
pub(super) fn parse_url(value: &str, schemes: &[&str]) -> Result<String, String> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    match value.split_once("://") {
        Some((scheme, rest)) if schemes.contains(&scheme) && !rest.is_empty() => {
            Ok(value.to_string())
        }
        Some((scheme, _)) if !schemes.contains(&scheme) => Err(format!(
            "expected a URL starting with {expected}, got scheme `{scheme}`"
        )),
        _ => Err(format!("expected a URL starting with {expected}")),
    }
}

pub(super) fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| {
        format!("expected a socket address like 127.0.0.1:8080 or [::]:8080, got `{value}`")
    })
}

pub(super) fn parse_number<T>(value: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    match value.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!(
            "expected a whole number from {min} to {max}, got `{value}`"
        )),
    }
}

/// Exchange and queue names are built from the prefix, so it keeps to characters every broker
/// tool displays and quotes without surprises.
pub(super) fn parse_name_prefix(value: &str) -> Result<String, String> {
    let valid = value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(value.to_string())
    } else {
        Err(format!(
            "expected up to 64 letters, digits, `-`, `_` or `.`, got `{value}`"
        ))
    }
}

/// `scheme://user:***@host/…`: the URL with its password hidden, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}
