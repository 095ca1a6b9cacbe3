//! Cursor pagination (`?after=&limit=`) shared by the lists.

use service::ApiError;

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
