-- The tables of `create_contact_writes.sql`: copies of the event log, the data keys and the
-- live read-model tables a create writes to ({contacts}, {timeline} and {audit} are their live
-- generations), with every index, default and identity, and filled with the rows of the
-- originals so that their indexes are as deep as the ones the server wrote to. (`bench` vacuums
-- and analyzes them next, which cannot share this multi-statement string.)
DROP TABLE IF EXISTS pgbench_w_events, pgbench_w_data_keys, pgbench_w_contacts, pgbench_w_timeline,
                     pgbench_w_audit;
-- An id ordered by time like the UUIDv7 ids the server gives: microseconds since the epoch, then
-- random bits (as `insert_contact.sql` makes them).
CREATE OR REPLACE FUNCTION pgbench_w_id() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 16, '0')
            || substr(md5(random()::text), 1, 16))::uuid
$$;
CREATE TABLE pgbench_w_events (LIKE events INCLUDING ALL);
INSERT INTO pgbench_w_events OVERRIDING SYSTEM VALUE SELECT * FROM events;
SELECT setval(pg_get_serial_sequence('pgbench_w_events', 'global_position'),
              (SELECT max(global_position) FROM pgbench_w_events));
CREATE TABLE pgbench_w_data_keys (LIKE data_keys INCLUDING ALL);
INSERT INTO pgbench_w_data_keys SELECT * FROM data_keys;
CREATE TABLE pgbench_w_contacts (LIKE {contacts} INCLUDING ALL);
INSERT INTO pgbench_w_contacts (contact_id, org_id, full_name, email, whatsapp, telegram_chat_id,
                                instagram_scoped_id, instagram_user_id, tags, notes, custom_fields,
                                created_at, updated_at)
SELECT contact_id, org_id, full_name, email, whatsapp, telegram_chat_id, instagram_scoped_id,
       instagram_user_id, tags, notes, custom_fields, created_at, updated_at
FROM {contacts};
CREATE TABLE pgbench_w_timeline (LIKE {timeline} INCLUDING ALL);
INSERT INTO pgbench_w_timeline SELECT * FROM {timeline};
CREATE TABLE pgbench_w_audit (LIKE {audit} INCLUDING ALL);
INSERT INTO pgbench_w_audit OVERRIDING SYSTEM VALUE SELECT * FROM {audit};
SELECT setval(pg_get_serial_sequence('pgbench_w_audit', 'seq'),
              (SELECT max(seq) FROM pgbench_w_audit));
