-- pgbench baseline of `bench append`: one event per transaction into `pgbench_events` (the shape
-- of `events`, see pgbench_events.sql), a new stream each time, as a single-event append to a new
-- stream writes it. `bench` runs it as
--   pgbench -n -M prepared -f insert_event.sql -c C -j min(C,2) -T N \
--           -D org=<uuid> -D data=<~400-byte JSON> -D metadata=<metadata JSON>
-- The event id is time-ordered like the store's UUIDv7 ids (microseconds since the epoch, then
-- random bits), so both tables' unique event-id index grows at its right edge.
INSERT INTO pgbench_events (event_id, stream, version, event_type, schema_version, org_id, data, metadata)
VALUES (
    (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 16, '0')
        || substr(md5(random()::text), 1, 16))::uuid,
    'contact-' || gen_random_uuid(),
    0,
    'ContactCreated',
    1,
    :org,
    :data,
    :metadata
);
