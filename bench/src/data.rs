//! The events the benchmarks write: ~400 bytes of JSON data, ~50 organisations, a few stream
//! categories. The SQL fill of `bench catchup` ([`FILL_CHUNK`]) builds the same object in SQL.

use serde_json::{Value, json};
use uuid::Uuid;

/// Organisations the events are spread over.
pub const ORGS: u64 = 50;

/// The stream categories of the filled log (`<category>-<uuid>`).
pub const CATEGORIES: [&str; 6] = ["contact", "deal", "booking", "message", "invoice", "task"];

/// Namespace of the benchmark's deterministic ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x6265_6e63_685f_636f_7262_695f_6f72_6773);

/// The id of organisation `n` (mod [`ORGS`]).
pub fn org(n: u64) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("org-{}", n % ORGS).as_bytes())
}

/// The data of a contact event: about 400 bytes once serialized.
pub fn contact(seq: u64, id: Uuid) -> Value {
    json!({
        "contact_id": id,
        "name": format!("Contact {seq}"),
        "email": format!("contact{seq}@example.com"),
        "phone": format!("+33 6 {:08}", seq % 100_000_000),
        "address": {
            "street": format!("{} rue de la Paix", seq % 1000),
            "city": "Paris",
            "postcode": "75002",
            "country": "FR"
        },
        "tags": ["lead", "newsletter", "vip"],
        "notes": NOTES,
        "source": "bench",
        "score": seq % 100
    })
}

/// Filler that brings the data to a realistic size (the SQL fill uses the same text).
pub const NOTES: &str =
    "Met at the spring fair; prefers email; asked for a quote on the premium plan and a call back.";

/// The metadata the fill writes, as the store would for a system actor named `bench`.
pub const FILL_METADATA: &str = r#"{"actor":{"kind":"system","name":"bench"}}"#;

/// Inserts events `$1 .. $2` (of `$3` in all, over `$4` streams of the categories `$7`) straight into `events`, one
/// chunk per statement (and so per transaction). Event `i` is version `i / $4` of stream
/// `i % $4`, so streams interleave in the log like real traffic.
pub const FILL_CHUNK: &str = "
INSERT INTO events (event_id, stream, version, event_type, schema_version, org_id, data, metadata,
                    recorded_at)
SELECT (lpad(to_hex(i), 16, '0') || substr(md5(i::text), 1, 16))::uuid,
       c.category || '-' || s.id,
       i / $4,
       initcap(c.category) || CASE WHEN i / $4 = 0 THEN 'Created' ELSE 'Updated' END,
       1,
       md5('org-' || ((i % $4) % 50))::uuid,
       jsonb_build_object(
           'contact_id', s.id,
           'name', 'Contact ' || i,
           'email', 'contact' || i || '@example.com',
           'phone', '+33 6 ' || lpad((i % 100000000)::text, 8, '0'),
           'address', jsonb_build_object('street', (i % 1000) || ' rue de la Paix',
                                         'city', 'Paris', 'postcode', '75002', 'country', 'FR'),
           'tags', jsonb_build_array('lead', 'newsletter', 'vip'),
           'notes', $5::text,
           'source', 'bench',
           'score', i % 100),
       $6::text::jsonb,
       now() - interval '30 days' + (i::float8 * 2592000 / $3::int8) * interval '1 second'
FROM generate_series($1::int8, $2::int8 - 1) AS i,
     LATERAL (SELECT md5('stream-' || (i % $4))::uuid AS id) AS s,
     LATERAL (SELECT ($7::text[])[1 + ((i % $4) % cardinality($7::text[]))::int] AS category) AS c";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_data_is_about_400_bytes() {
        let len = contact(123_456, Uuid::new_v4()).to_string().len();
        assert!((350..=450).contains(&len), "{len} bytes");
    }

    #[test]
    fn there_are_fifty_organisations() {
        let orgs: std::collections::HashSet<Uuid> = (0..200).map(org).collect();
        assert_eq!(orgs.len(), ORGS as usize);
        assert_eq!(CATEGORIES.len(), 6);
    }
}
