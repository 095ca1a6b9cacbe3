-- Data keys of crypto-shredding (events::personal): one AES-256 key per data subject (a contact,
-- a user…) seals that subject's personal fields inside events. The log is kept forever and never
-- rewritten, so erasing a person means destroying their key here: every copy of the ciphertext,
-- in the log, in backups and in replays, becomes unreadable at once.
--
-- Keys are stored wrapped by the master key (`CORBI_MASTER_KEY`): `<key id>:` + nonce +
-- AES-256-GCM ciphertext, with `org_id || subject_id` as associated data.
--
-- Erasing sets `wrapped_key` to NULL and stamps `erased_at`; the row stays, so an erased subject
-- never silently gets a new key and new personal data.

CREATE TABLE data_keys (
    subject_id  uuid PRIMARY KEY,
    org_id      uuid NOT NULL,
    wrapped_key bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
);
