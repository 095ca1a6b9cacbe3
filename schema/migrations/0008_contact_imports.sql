-- Contact imports: the command side's own job tables (like `sessions`), not read models. The
-- contacts an import makes or changes are events like any other; these rows only say how far a
-- job got and what became of each row of its file.

-- One uploaded CSV file and its job. `csv` holds the file while the job may still need it and is
-- cleared when the job ends, so personal data does not outlive the import (an erased contact
-- must not live on in an old upload).
CREATE TABLE contact_imports (
    import_id         uuid PRIMARY KEY,
    org_id            uuid NOT NULL,
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'done', 'failed')),
    dry_run           boolean NOT NULL,
    on_duplicate      text NOT NULL CHECK (on_duplicate IN ('skip', 'update')),
    -- Target (`full_name`, `email`…, `custom.<key>`) → CSV column header.
    mapping           jsonb NOT NULL,
    -- The submitter's event metadata (actor, address, user agent): the job writes as them.
    metadata          jsonb NOT NULL,
    actor_kind        text NOT NULL,
    actor_id          text,
    -- SHA-256 of the body and options, to tell a retried submission (same Idempotency-Key)
    -- from a different one.
    request_hash      text NOT NULL,
    csv               bytea,
    rows_total        integer NOT NULL,
    rows_processed    integer NOT NULL DEFAULT 0,
    rows_created      integer NOT NULL DEFAULT 0,
    rows_updated      integer NOT NULL DEFAULT 0,
    rows_skipped      integer NOT NULL DEFAULT 0,
    rows_rejected     integer NOT NULL DEFAULT 0,
    rows_valid        integer NOT NULL DEFAULT 0,
    -- The latest log position the job wrote, as a consistency token.
    consistency_token text,
    error             text,
    -- The claim: which run holds the job and until when (renewed with every progress update);
    -- a job whose lease ran out is claimed again and resumes.
    run_id            uuid,
    lease_until       timestamptz,
    attempts          integer NOT NULL DEFAULT 0,
    run_after         timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX contact_imports_by_org ON contact_imports (org_id, created_at DESC);
CREATE INDEX contact_imports_open ON contact_imports (created_at)
    WHERE status IN ('queued', 'running');

-- What became of each row. `row_number` counts records with the header as row 1, as a
-- spreadsheet numbers them; `line` is the file line the record starts on. No personal values
-- are kept here, only outcomes and error messages.
CREATE TABLE contact_import_rows (
    import_id  uuid NOT NULL REFERENCES contact_imports ON DELETE CASCADE,
    row_number integer NOT NULL,
    line       integer NOT NULL,
    outcome    text NOT NULL
               CHECK (outcome IN ('created', 'updated', 'skipped_duplicate', 'rejected', 'valid')),
    contact_id uuid,
    -- [{field, message}]
    errors     jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (import_id, row_number)
);

CREATE INDEX contact_import_rows_by_outcome ON contact_import_rows (import_id, outcome, row_number);
