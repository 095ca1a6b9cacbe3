-- When each API key was last used. Not an event: a key used a thousand times a minute would
-- flood the log with nothing anyone audits. Written at most once a minute per key.
CREATE TABLE api_key_usage (
    key_id       uuid PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);

-- Organisation logos: the image bytes, addressed by the id a `LogoChanged` event carries. Images
-- stay out of the log (it is read in full by every replay); the event says which one is current.
CREATE TABLE logos (
    logo_id      uuid PRIMARY KEY,
    org_id       uuid NOT NULL,
    content_type text NOT NULL,
    bytes        bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
