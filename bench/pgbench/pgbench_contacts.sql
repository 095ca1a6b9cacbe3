-- The pgbench baseline's table of `bench contacts`: a contact row as the contacts read model
-- keeps it (projector/src/contacts.rs, less the columns a new contact leaves at their defaults),
-- with its email unique per organisation as the reservations make it.
DROP TABLE IF EXISTS pgbench_contacts;
CREATE TABLE pgbench_contacts (
    contact_id uuid        PRIMARY KEY,
    org_id     uuid        NOT NULL,
    full_name  text,
    email      text,
    whatsapp   text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ON pgbench_contacts (org_id, email);
