//! `GET /api/v1/event-stats`: events per stream category and day for one organisation, from the
//! `event_stats` projection.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use service::{ApiError, Caller, FieldError, Problem};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::QueryState;
use service::consistency::{ConsistencyToken, wait_for_projection};

pub const PATH: &str = "/api/v1/event-stats";
/// The projection this endpoint reads.
pub const PROJECTION: &str = "event_stats";

/// Filters of `GET /api/v1/event-stats`. Dates are parsed here rather than by serde so an error
/// names the parameter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventStatsQuery {
    /// First day included (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date, example = "2025-01-01")]
    pub from: Option<String>,
    /// Last day included (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date, example = "2025-01-31")]
    pub to: Option<String>,
    /// Only this stream category, e.g. `contact`.
    pub category: Option<String>,
}

/// The filters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filters {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    category: Option<String>,
}

fn parse_date(field: &str, value: Option<&str>) -> Result<Option<NaiveDate>, FieldError> {
    value
        .map(|text| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| FieldError::new(field, "must be a date written YYYY-MM-DD"))
        })
        .transpose()
}

impl EventStatsQuery {
    fn validate(&self) -> Result<Filters, ApiError> {
        let mut errors = Vec::new();
        let from = parse_date("from", self.from.as_deref()).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let to = parse_date("to", self.to.as_deref()).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let category = match self.category.as_deref() {
            Some(c) if c.is_empty() || c.len() > 100 => {
                errors.push(FieldError::new("category", "must be 1 to 100 characters"));
                None
            }
            other => other.map(str::to_string),
        };
        if !errors.is_empty() {
            return Err(ApiError::Validation { errors });
        }
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(ApiError::validation("to", "must not be before `from`"));
        }
        Ok(Filters { from, to, category })
    }
}

/// One category on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventStatsRow {
    pub day: NaiveDate,
    pub category: String,
    pub event_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventStatsTotals {
    /// Events in every row.
    pub event_count: i64,
    /// Events per category over the whole range.
    pub by_category: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventStats {
    pub org_id: Uuid,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub category: Option<String>,
    /// Sorted by day, then category.
    pub rows: Vec<EventStatsRow>,
    pub totals: EventStatsTotals,
}

/// Events per stream category and day.
#[utoipa::path(
    get,
    path = "/api/v1/event-stats",
    tag = "monitoring",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header,
         description = "Wait until this command's write is visible (bounded by CORBI_CONSISTENCY_TIMEOUT_MS)"),
        EventStatsQuery,
    ),
    responses(
        (status = 200, description = "The statistics", body = EventStats),
        (status = 400, description = "Missing or malformed header or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Inconsistent filters", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The read model did not reach the consistency token in time", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "event_stats", skip_all, fields(org_id = %caller.org_id))]
pub async fn event_stats(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    query: web::Query<EventStatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filters = query.validate()?;
    if let Some(token) = token.0 {
        wait_for_projection(&state.pool, PROJECTION, token, state.consistency_timeout).await?;
    }
    let rows = read_rows(&state.pool, caller.org_id, &filters).await?;
    let mut by_category: BTreeMap<String, i64> = BTreeMap::new();
    for row in &rows {
        *by_category.entry(row.category.clone()).or_default() += row.event_count;
    }
    let totals = EventStatsTotals {
        event_count: by_category.values().sum(),
        by_category,
    };
    Ok(HttpResponse::Ok().json(EventStats {
        org_id: caller.org_id,
        from: filters.from,
        to: filters.to,
        category: filters.category,
        rows,
        totals,
    }))
}

#[tracing::instrument(skip(pool))]
async fn read_rows(
    pool: &sqlx::PgPool,
    org_id: Uuid,
    filters: &Filters,
) -> Result<Vec<EventStatsRow>, ApiError> {
    let rows: Vec<(NaiveDate, String, i64)> = sqlx::query_as(
        "SELECT day, category, event_count FROM rm_event_stats \
         WHERE org_id = $1 \
           AND ($2::date IS NULL OR day >= $2) \
           AND ($3::date IS NULL OR day <= $3) \
           AND ($4::text IS NULL OR category = $4) \
         ORDER BY day, category",
    )
    .bind(org_id)
    .bind(filters.from)
    .bind(filters.to)
    .bind(filters.category.as_deref())
    .fetch_all(pool)
    .await
    .map_err(|e| crate::db_error(e, "reading rm_event_stats"))?;
    Ok(rows
        .into_iter()
        .map(|(day, category, event_count)| EventStatsRow {
            day,
            category,
            event_count,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(from: Option<&str>, to: Option<&str>, category: Option<&str>) -> EventStatsQuery {
        EventStatsQuery {
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            category: category.map(str::to_string),
        }
    }

    fn fields(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation { errors } => errors.into_iter().map(|e| e.field).collect(),
            other => vec![format!("unexpected {other}")],
        }
    }

    #[test]
    fn filters_are_parsed_and_every_bad_one_is_named() {
        let ok = query(Some("2025-01-01"), Some("2025-01-31"), Some("contact"))
            .validate()
            .expect("valid");
        assert_eq!(ok.from, NaiveDate::from_ymd_opt(2025, 1, 1));
        assert_eq!(query(None, None, None).validate().expect("valid").to, None);

        let bad = query(Some("2025-13-01"), Some("yesterday"), Some(""))
            .validate()
            .expect_err("invalid");
        assert_eq!(fields(bad), ["from", "to", "category"]);

        let reversed = query(Some("2025-02-01"), Some("2025-01-01"), None)
            .validate()
            .expect_err("reversed");
        assert_eq!(fields(reversed), ["to"]);
    }
}
