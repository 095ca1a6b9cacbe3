-- The event log. Append-only: rows are never updated or deleted (see the triggers below).
CREATE TABLE events (
    global_position bigint GENERATED ALWAYS AS IDENTITY,
    -- The writing transaction: readers order by (transaction_id, global_position) and stop below
    -- the oldest transaction still running, so an append that commits late is never skipped.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    stream          text        NOT NULL,
    version         bigint      NOT NULL CHECK (version >= 0),
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version >= 1),
    org_id          uuid        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream, version)
);

CREATE INDEX events_log_order ON events (transaction_id, global_position);

CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % on events is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- Where each subscriber (a projection generation, the dispatch relay…) has got to in the log.
-- Written in the same transaction as the subscriber's own effects.
CREATE TABLE checkpoints (
    name             text        PRIMARY KEY,
    commit_position  bigint      NOT NULL,
    prepare_position bigint      NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The projections and the generation of their read model that readers use. A replay builds
-- generation + 1 beside it and switches this row (and the reader views) in one transaction.
CREATE TABLE projections (
    name         text        PRIMARY KEY,
    generation   integer     NOT NULL,
    code_version integer     NOT NULL,
    switched_at  timestamptz NOT NULL DEFAULT now()
);
