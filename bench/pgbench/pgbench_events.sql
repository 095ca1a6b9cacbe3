-- The pgbench baseline's table: the shape of `events` (schema/migrations/0001_event_store.sql)
-- copied from the migrated table itself, so the two can never drift apart. INCLUDING ALL copies
-- the identity `global_position`, the defaults (`transaction_id xid8 DEFAULT
-- pg_current_xact_id()`, `recorded_at DEFAULT now()`), the CHECK constraints, and every index:
-- `unique (event_id)`, `unique (stream, version)` and `(transaction_id, global_position)`.
-- (The immutability triggers fire only on UPDATE/DELETE/TRUNCATE, so they cost an insert nothing
-- and are left out.)
DROP TABLE IF EXISTS pgbench_events;
CREATE TABLE pgbench_events (LIKE events INCLUDING ALL);
