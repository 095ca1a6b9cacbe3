//! Custom field definitions, read side: `GET /api/v1/custom-fields` in display order, from the
//! `custom_fields` projection. (Contact reads hide the values of removed definitions by joining
//! the same table.)

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use events::Role;
use serde::{Deserialize, Serialize};
use service::consistency::{ConsistencyToken, wait_for_projection};
use service::{ApiError, Caller};
use utoipa::ToSchema;

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
