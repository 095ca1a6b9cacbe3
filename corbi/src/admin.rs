//! Administration from the command line: `corbi admin create-user` (works whether open
//! registration is on or off) and `corbi seed-demo` (the demo organisation `deploy/dev up`
//! starts with). Both append through the same code as the HTTP commands.
#![allow(clippy::print_stdout)]

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use command_api::{AuthSettings, CommandState};
use domain::reservation::Reservation;
use event_store::EventStore;
use events::reservation::{self, Scope};
use events::{Actor, Email, Metadata};
use service::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

/// The demo account `corbi seed-demo` creates.
pub const DEMO_EMAIL: &str = "demo@corbi.local";
pub const DEMO_PASSWORD: &str = "changeme123";
const DEMO_ORGANISATION: &str = "Demo Dental Clinic";

/// The command side as the servers run it, minus the HTTP.
pub struct Deps {
    pub store: Arc<dyn EventStore>,
    pub pool: PgPool,
    /// `CORBI_MASTER_KEY`, so anything sealed here opens in the servers.
    pub keyring: Arc<events::Keyring>,
}

fn state(
    Deps {
        store,
        pool,
        keyring,
    }: Deps,
) -> CommandState {
    CommandState::new(
        store,
        pool,
        AuthSettings {
            // No projector runs while these commands do; nobody waits for the read models.
            read_model_wait: Duration::ZERO,
            keyring,
            ..AuthSettings::default()
        },
    )
}

fn api_error(error: ApiError) -> anyhow::Error {
    match error {
        ApiError::Internal(error) => error,
        other => anyhow::anyhow!("{}", other.problem().detail.unwrap_or_default()),
    }
}

/// `corbi admin create-user`: the password is read from the first line of standard input, so it
/// never shows in the process list or the shell history.
pub async fn create_user(deps: Deps, email: &str, name: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {email:?}: {e}"))?;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    let user_id = command_api::auth::create_user(&state(deps), email, name.into(), password)
        .await
        .map_err(api_error)?;
    println!("{user_id}");
    Ok(())
}

/// `corbi seed-demo`: the demo user as admin of a demo organisation. Running it again changes
/// nothing.
pub async fn seed_demo(deps: Deps) -> anyhow::Result<()> {
    let state = state(deps);
    let email = Email::parse(DEMO_EMAIL)?;
    let stream = reservation::stream(&Scope::UserEmail, email.as_str());
    let (held, _) = command_api::aggregate::load::<Reservation>(&*state.store, &stream)
        .await
        .map_err(api_error)?;
    let user_id = match held {
        Reservation::HeldBy(user_id) => user_id,
        Reservation::Free => {
            command_api::auth::create_user(&state, email, "Demo User".into(), DEMO_PASSWORD.into())
                .await
                .map_err(api_error)?
        }
    };
    // A fixed id, so a second run finds the organisation of the first.
    let org_id = Uuid::new_v5(
        &command_api::idempotency::NAMESPACE,
        b"corbi:demo-organisation",
    );
    let metadata = Metadata {
        actor: Actor::System {
            name: "seed-demo".into(),
        },
        ..Metadata::default()
    };
    match command_api::organisations::create_organisation(
        &state,
        org_id,
        DEMO_ORGANISATION.into(),
        user_id,
        &metadata,
    )
    .await
    {
        Ok(_) | Err(ApiError::Conflict(_)) => {}
        Err(error) => return Err(api_error(error)),
    }
    println!("demo organisation {org_id}: sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}");
    Ok(())
}
