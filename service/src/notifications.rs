//! Following a Postgres `NOTIFY` channel for the life of the process, for in-memory caches that
//! must drop entries when another process changes what they hold.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Follows `channel` on a connection of its own until the runtime stops, calling `heard` with
/// each notification's payload. `lost` is called whenever notifications may have been missed:
/// once the listener is up (whatever was cached before may be stale) and whenever its connection
/// drops, after which it reconnects.
pub fn follow(
    pool: PgPool,
    channel: &'static str,
    heard: impl Fn(&str) + Send + Sync + 'static,
    lost: impl Fn() + Send + Sync + 'static,
) {
    tokio::spawn(async move {
        loop {
            if let Err(error) = listen(&pool, channel, &heard, &lost).await {
                tracing::warn!(%error, channel, "notifications lost; retrying");
            }
            // Whatever happened while nobody listened is unknown.
            lost();
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    });
}

async fn listen(
    pool: &PgPool,
    channel: &str,
    heard: &impl Fn(&str),
    lost: &impl Fn(),
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    // Entries made before the listener was up may have missed a change.
    lost();
    // `None`: the connection dropped (the listener would reconnect, but notifications in
    // between are gone), so the caller starts over.
    while let Some(notification) = listener.try_recv().await? {
        heard(notification.payload());
    }
    Ok(())
}
