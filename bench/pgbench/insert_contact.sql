-- pgbench baseline of `bench contacts`: one contact row per transaction into `pgbench_contacts`
-- (see pgbench_contacts.sql), the fields `POST /api/v1/contacts` is sent. `bench` runs it as
--   pgbench -n -M prepared -f insert_contact.sql -c C -j min(C,2) -T N -D org=<uuid>
-- The contact id is time-ordered like the UUIDv7 ids the API gives (microseconds since the epoch,
-- then random bits). `n` is random over 10^15, so two of some 10^5 rows share it with odds of
-- about 10^-5 (a duplicate email would fail the run).
\set n random(1, 1000000000000000)
INSERT INTO pgbench_contacts (contact_id, org_id, full_name, email, whatsapp)
VALUES (
    (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 16, '0')
        || substr(md5(random()::text), 1, 16))::uuid,
    :org,
    'Bench ' || :n,
    'c' || :n || '@bench.example',
    '+3519' || lpad((:n::int8 % 100000000)::text, 8, '0')
);
