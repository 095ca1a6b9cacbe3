//! `POST /api/v1/dispatch-probes`: asks the dispatcher to run a probe through one channel's
//! queue, proving the log → relay → RabbitMQ → worker path end to end.

use actix_web::{HttpResponse, web};
use domain::Aggregate;
use domain::probe::{Probe, ProbeCommand, ProbeError};
use event_store::{ExpectedVersion, StoreError};
use events::probe::{self, ProbeEvent};
use events::{DISPATCH_CHANNELS, Role, TypedEvent};
use serde::{Deserialize, Serialize};
use service::{ApiError, Caller, IdempotencyKey, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{CONSISTENCY_TOKEN_HEADER, CommandState, idempotency, store_error};

pub const PATH: &str = "/api/v1/dispatch-probes";
/// Part of every id derived from an idempotency key on this endpoint.
const ROUTE: &str = "POST /api/v1/dispatch-probes";

/// The body of `POST /api/v1/dispatch-probes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchProbeRequest {
    /// The channel whose dispatch queue the probe travels through.
    #[schema(example = "test")]
    pub channel: String,
}

/// The answer to an accepted probe request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DispatchProbeAccepted {
    pub probe_id: Uuid,
    /// The version of the probe's stream after the append.
    pub stream_version: u64,
    /// Pass it as `X-Consistency-Token` to a query to read this write.
    #[schema(example = "1207.43")]
    pub consistency_token: String,
}

/// Request a dispatch probe.
///
/// Appends `DispatchProbeRequested` to the probe's stream. With an `Idempotency-Key`, a retry
/// answers the first result and appends nothing; the same key with another body is a 422.
#[utoipa::path(
    post,
    path = "/api/v1/dispatch-probes",
    tag = "dispatch probes",
    security(("bearer" = []), ("api_key" = [])),
    request_body = DispatchProbeRequest,
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("Idempotency-Key" = Option<String>, Header,
         description = "Makes retries safe: 1–255 visible ASCII characters, unique per request")
    ),
    responses(
        (status = 202, description = "The probe is requested", body = DispatchProbeAccepted,
         headers(("X-Consistency-Token" = String, description = "Same as `consistency_token`"))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or the idempotency key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The event store is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(
    name = "request_dispatch_probe",
    skip_all,
    fields(org_id = %caller.org_id, probe_id = tracing::field::Empty)
)]
pub async fn request_dispatch_probe(
    state: web::Data<CommandState>,
    caller: Caller,
    key: IdempotencyKey,
    body: web::Json<DispatchProbeRequest>,
) -> Result<HttpResponse, ApiError> {
    // Probes check the organisation's integrations, which admins look after.
    caller.require(Role::Admin)?;
    let org_id = caller.org_id;
    let DispatchProbeRequest { channel } = body.into_inner();
    let (probe_id, event_id) = match &key.0 {
        Some(key) => (
            idempotency::derive(org_id, key, ROUTE, Some("probe_id")),
            idempotency::derive(org_id, key, ROUTE, None),
        ),
        None => (Uuid::now_v7(), Uuid::now_v7()),
    };
    tracing::Span::current().record("probe_id", tracing::field::display(probe_id));

    // The stream is new (a fresh or key-derived id), so the decision is taken on empty history;
    // a concurrent or repeated request is caught by the append's `NoStream`.
    let decided = Probe::default()
        .decide(ProbeCommand::Request { probe_id, channel })
        .map_err(|error| match error {
            ProbeError::InvalidChannel => ApiError::validation(
                "channel",
                format!("must be one of: {}", DISPATCH_CHANNELS.join(", ")),
            ),
            other => ApiError::Conflict(other.to_string()),
        })?;
    let [event] = <[ProbeEvent; 1]>::try_from(decided).map_err(|events| {
        ApiError::Internal(anyhow::anyhow!(
            "a probe request decided {} events",
            events.len()
        ))
    })?;
    let event = event
        .to_new_event(org_id)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("encoding the probe")))?
        .with_id(event_id)
        .with_metadata(events::Metadata {
            idempotency_key: key.0.clone(),
            ..caller.metadata()
        });
    let stream = probe::stream(probe_id);
    let appended = state
        .store
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await;
    let result = match appended {
        Ok(result) => result,
        // With a key the stream and event id are derived from it, so an existing one with
        // other content means the key was used before for a different request.
        Err(StoreError::DuplicateEventId { .. } | StoreError::WrongExpectedVersion { .. })
            if key.0.is_some() =>
        {
            return Err(ApiError::Unprocessable {
                slug: "idempotency-key-reused",
                detail: format!(
                    "This Idempotency-Key was already used for a different request to {ROUTE}; \
                     send a new key for a new request."
                ),
            });
        }
        Err(StoreError::WrongExpectedVersion { .. }) => {
            return Err(ApiError::Conflict(format!(
                "Probe {probe_id} already exists."
            )));
        }
        Err(error) => return Err(store_error(error, "appending DispatchProbeRequested")),
    };

    let token = result.position.to_string();
    tracing::info!(%probe_id, consistency_token = %token, "dispatch probe requested");
    Ok(HttpResponse::Accepted()
        .insert_header((CONSISTENCY_TOKEN_HEADER, token.as_str()))
        .json(DispatchProbeAccepted {
            probe_id,
            stream_version: result.last_version,
            consistency_token: token,
        }))
}
