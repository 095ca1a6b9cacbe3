//! Custom field definitions, read side: `GET /api/v1/custom-fields` in display order, from the
//! `custom_fields` projection; and what contact reads need to hide the values of removed
//! definitions ([`live_keys`], [`visible`]).

use std::collections::BTreeSet;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use events::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service::consistency::{ConsistencyToken, wait_for_projection};
use service::{ApiError, Caller};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{QueryState, db_error};

pub const FIELDS: &str = "/api/v1/custom-fields";
/// The projection these endpoints read.
pub const PROJECTION: &str = "custom_fields";

/// A custom field definition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct CustomFieldDefinition {
    #[schema(example = "plan")]
    pub key: String,
    #[schema(example = "Plan")]
    pub label: String,
    /// `text`, `number`, `date`, `boolean`, `select` or `multi_select`.
    #[schema(example = "select")]
    pub kind: String,
    pub required: bool,
    /// The choices of `select` and `multi_select` fields; empty for other kinds.
    pub options: Vec<String>,
    pub display_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomFieldList {
    /// Every live definition, by display order then key.
    pub items: Vec<CustomFieldDefinition>,
}

/// The organisation's live custom field keys: a contact's values under any other key belong to
/// removed definitions and are not shown.
pub async fn live_keys(pool: &sqlx::PgPool, org_id: Uuid) -> Result<BTreeSet<String>, ApiError> {
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT key FROM rm_custom_fields WHERE org_id = $1")
            .bind(org_id)
            .fetch_all(pool)
            .await
            .map_err(|e| db_error(e, "reading custom field keys"))?;
    Ok(keys.into_iter().collect())
}

/// A contact's `custom_fields` object without the values of removed definitions.
pub fn visible(values: Value, live: &BTreeSet<String>) -> Value {
    match values {
        Value::Object(values) => Value::Object(
            values
                .into_iter()
                .filter(|(key, _)| live.contains(key))
                .collect(),
        ),
        other => other,
    }
}

/// The organisation's custom field definitions, in display order.
#[utoipa::path(
    get,
    path = "/api/v1/custom-fields",
    tag = "custom fields",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
    ),
    responses(
        (status = 200, description = "Every definition", body = CustomFieldList),
    )
)]
#[tracing::instrument(name = "custom_fields", skip_all, fields(org_id = %caller.org_id))]
pub async fn list(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(token) = token.0 {
        wait_for_projection(&state.pool, PROJECTION, token, state.consistency_timeout).await?;
    }
    // At most `domain::custom_fields::MAX_FIELDS` per organisation: one answer, no pages.
    let items: Vec<CustomFieldDefinition> = sqlx::query_as(
        "SELECT key, label, kind, required, options, display_order, created_at, updated_at
         FROM rm_custom_fields WHERE org_id = $1
         ORDER BY display_order, key",
    )
    .bind(caller.org_id)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "listing custom fields"))?;
    Ok(HttpResponse::Ok().json(CustomFieldList { items }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_of_removed_definitions_are_hidden() {
        let live = BTreeSet::from(["plan".to_string(), "vip".to_string()]);
        assert_eq!(
            visible(json!({"plan": "gold", "old": 1, "vip": null}), &live),
            json!({"plan": "gold", "vip": null})
        );
        assert_eq!(visible(json!({}), &live), json!({}));
        assert_eq!(visible(json!({"old": 1}), &BTreeSet::new()), json!({}));
    }
}
