-- Credentials and sessions: the command side's own tables, not read models.
--
-- Password hashes stay out of the event log (the log is kept forever; see events::user), and a
-- session row changes on every refresh. The log still records every sign-in, password change
-- and ended session as events of the user's stream.

CREATE TABLE credentials (
    user_id       uuid PRIMARY KEY,
    -- argon2id PHC string.
    password_hash text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per issued token pair. A refresh ends its row (rotated_at and ended_at set) and adds
-- the next one to the same family; presenting a rotated refresh token again ends the family.
-- Tokens are stored as SHA-256 hashes of 256-bit random values.
CREATE TABLE sessions (
    session_id         uuid PRIMARY KEY,
    family_id          uuid NOT NULL,
    user_id            uuid NOT NULL,
    access_hash        text NOT NULL UNIQUE,
    access_expires_at  timestamptz NOT NULL,
    refresh_hash       text NOT NULL UNIQUE,
    refresh_expires_at timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    rotated_at         timestamptz,
    ended_at           timestamptz,
    ip                 text,
    user_agent         text
);

CREATE INDEX sessions_by_family ON sessions (family_id);
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE ended_at IS NULL;
