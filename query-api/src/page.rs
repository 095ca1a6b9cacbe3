//! Cursor pagination (`?after=&limit=`) and the other query parameters the lists share.

use chrono::{DateTime, Utc};
use service::{ApiError, FieldError};

/// Items per page when the request does not say.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most items one page holds.
pub const MAX_LIMIT: i64 = 200;

/// One page of a list; `next_cursor` is `None` on the last page, else the client passes it as
/// `after`. Each list answers it as its own documented type.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `limit + 1` fetched rows: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// `limit`, checked: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// A cursor that must parse as `T`; 422 naming `after` otherwise.
pub fn cursor<T: std::str::FromStr>(after: Option<&str>) -> Result<Option<T>, ApiError> {
    after
        .map(|text| {
            text.parse()
                .map_err(|_| ApiError::validation("after", "is not a cursor this list returned"))
        })
        .transpose()
}

/// `limit` as [`limit`] checks it, the error collected into `errors` (and the default used) so
/// one answer names every bad parameter.
pub fn checked_limit(requested: Option<i64>, errors: &mut Vec<FieldError>) -> i64 {
    limit(requested).unwrap_or_else(|_| {
        errors.push(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
        DEFAULT_LIMIT
    })
}

/// An RFC 3339 time parameter, an error for `field` collected into `errors`.
pub fn time(
    field: &str,
    value: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    let text = value?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            errors.push(FieldError::new(
                field,
                "must be an RFC 3339 time, e.g. 2026-01-31T09:00:00Z",
            ));
        })
        .ok()
}

/// `q` as a LIKE pattern matching it anywhere (lowercased), with LIKE's own wildcards taken
/// literally.
pub fn contains_pattern(q: &str) -> String {
    let escaped = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
