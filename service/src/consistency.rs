//! Read-your-writes (DESIGN §4): a query carrying `X-Consistency-Token` waits, bounded, until the
//! projection serving it has passed the position the command wrote. Commands that change who
//! may do what wait the same way for the `access` projection before they answer.

use std::future::{Ready, ready};
use std::time::{Duration, Instant};

use crate::{ApiError, FieldError, Problem};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest};
use events::Position;
use sqlx::PgPool;

pub const HEADER: &str = "X-Consistency-Token";

/// The optional `X-Consistency-Token` header: the `consistency_token` a command answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsistencyToken(pub Option<Position>);

impl FromRequest for ConsistencyToken {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(value) = req.headers().get(HEADER) else {
            return ready(Ok(ConsistencyToken(None)));
        };
        let parsed = value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<Position>().ok());
        ready(match parsed {
            Some(position) => Ok(ConsistencyToken(Some(position))),
            None => {
                let message = "must be a consistency_token returned by a command, e.g. `1207.43`";
                Err(Problem::typed(
                    StatusCode::BAD_REQUEST,
                    "invalid-header",
                    "A request header is missing or invalid",
                )
                .detail(format!("{HEADER}: {message}"))
                .errors(vec![FieldError::new(HEADER, message)]))
            }
        })
    }
}

/// Where the generation of `projection` that readers use has got to; `None` before it has a
/// registry row or a checkpoint.
pub async fn projection_position(
    pool: &PgPool,
    projection: &str,
) -> Result<Option<Position>, sqlx::Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT c.commit_position, c.prepare_position \
         FROM projections p \
         JOIN checkpoints c ON c.name = 'projection:' || p.name || ':g' || p.generation \
         WHERE p.name = $1",
    )
    .bind(projection)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(commit, prepare)| {
        Position::new(
            u64::try_from(commit).unwrap_or(0),
            u64::try_from(prepare).unwrap_or(0),
        )
    }))
}

/// Returns once `projection` has passed `token`, polling with short, growing pauses; 503 with
/// `Retry-After` when `timeout` runs out first.
#[tracing::instrument(skip(pool), fields(token = %token))]
pub async fn wait_for_projection(
    pool: &PgPool,
    projection: &str,
    token: Position,
    timeout: Duration,
) -> Result<(), ApiError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let position = projection_position(pool, projection)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "reading a projection checkpoint");
                ApiError::Unavailable {
                    detail: "The read database is unavailable; retry shortly.".into(),
                    retry_after: Some(Duration::from_secs(1)),
                }
            })?;
        if position.is_some_and(|p| p >= token) {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            tracing::info!(?position, "consistency token not reached in time");
            return Err(ApiError::Unavailable {
                detail: format!(
                    "The {projection} read model has not caught up with consistency token \
                     {token} within {} ms; retry shortly.",
                    timeout.as_millis()
                ),
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
