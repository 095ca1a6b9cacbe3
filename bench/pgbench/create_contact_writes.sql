-- pgbench baseline of `bench contacts`: the writes one `POST /api/v1/contacts` makes, as plain SQL,
-- one create per transaction, into copies of the real tables (create_contact_writes_tables.sql):
-- the contact's data key; its `ContactCreated` event and the reservations of its email and phone
-- number, in one statement as the append writes them; then what the projections write for it:
-- the contact's row (with every read-model index, the trigram one too), its timeline row and the
-- audit rows of the three events. `bench` runs it as
--   pgbench -n -M prepared -f create_contact_writes.sql -c C -j min(C,2) -T N \
--           -D org=<uuid> -D data=<a ContactCreated's sealed data> -D metadata=<its metadata> \
--           -D shown=<its data as the timeline shows it> -D owner=<a reservation's data>
-- with the JSON of the newest contact in the log. Ids are time-ordered like UUIDv7 ids
-- (`pgbench_w_id()`, beside the tables); `n` numbers the email and phone number.
\set n random(1, 1000000000000000)
BEGIN;
INSERT INTO pgbench_w_data_keys (subject_id, org_id, wrapped_key)
VALUES (
    pgbench_w_id(),
    :org,
    decode('646576' || '3a' || md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex')
);
INSERT INTO pgbench_w_events (event_id, stream, version, event_type, schema_version, org_id, data, metadata)
VALUES
    (gen_random_uuid(), 'contact-' || gen_random_uuid(), 0, 'ContactCreated', 1, :org, :data, :metadata),
    (gen_random_uuid(), 'reservation-' || md5('email' || :n) || md5(:n || 'email'), 0, 'Reserved', 1,
     :org, :owner, :metadata),
    (gen_random_uuid(), 'reservation-' || md5('whatsapp' || :n) || md5(:n || 'whatsapp'), 0, 'Reserved',
     1, :org, :owner, :metadata);
INSERT INTO pgbench_w_contacts (contact_id, org_id, full_name, email, whatsapp, custom_fields, created_at, updated_at)
VALUES (
    pgbench_w_id(),
    :org,
    'Bench ' || :n,
    'c' || :n || '@bench.example',
    '+3519' || lpad((:n::int8 % 100000000)::text, 8, '0'),
    '{}',
    now(),
    now()
);
INSERT INTO pgbench_w_timeline (seq, org_id, contact_id, origin_contact_id, event_id, event_type, data, actor_kind, actor_id, recorded_at)
VALUES (
    :n,
    :org,
    pgbench_w_id(),
    pgbench_w_id(),
    gen_random_uuid(),
    'ContactCreated',
    :shown,
    'user',
    'bench',
    now()
);
INSERT INTO pgbench_w_audit (org_id, event_id, stream, event_type, actor_kind, actor_id, ip, user_agent, data, recorded_at)
VALUES
    (:org, gen_random_uuid(), 'contact-' || :n, 'ContactCreated', 'user', 'bench', '127.0.0.1', NULL, :data, now()),
    (:org, gen_random_uuid(), 'reservation-' || :n, 'Reserved', 'user', 'bench', '127.0.0.1', NULL, :owner, now()),
    (:org, gen_random_uuid(), 'reservation-' || :n, 'Reserved', 'user', 'bench', '127.0.0.1', NULL, :owner, now());
END;
