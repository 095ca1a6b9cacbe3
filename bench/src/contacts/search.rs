//! Searching contacts: `GET /api/v1/contacts?q=` for a name prefix and a phone prefix over a read
//! model of two organisations of a million contacts each, against `GET /api/v1/contacts/{id}` on
//! the same server in the same run. The read model is written with SQL (this measures the query
//! side), into the table of the live generation of the `contacts` projection.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::json;
use uuid::Uuid;

use super::{Args, names};
use crate::db::{self, BenchDatabase};
use crate::load::{self, Load, Window};
use crate::report::{Figure, Target};
use crate::server::{Admin, Server, expect};

/// Rows per fill statement (and transaction).
const FILL_CHUNK: i64 = 250_000;

/// A page of search results, as asked for.
const LIMIT: usize = 50;

/// Contacts of the bench organisation looked up by id, drawn from the read model.
const LOOKUP_IDS: i64 = 10_000;

/// The p99 a search must stay under, in milliseconds.
const SEARCH_P99_MS: f64 = 20.0;

/// Inserts contacts `$1 .. $2` of the read model: even ones in organisation `$3`, odd ones in
/// `$4`; names drawn from the first names `$5` and surnames `$6` by hashes of the row number (so
/// every run writes the same rows), an email made of the name, a Portuguese (+3519[1236]…) or UK
/// (+447…) mobile number, created over the last three years.
const FILL: &str = "
INSERT INTO {table} (contact_id, org_id, full_name, email, whatsapp, created_at, updated_at)
SELECT gen_random_uuid(),
       CASE WHEN i % 2 = 0 THEN $3::uuid ELSE $4::uuid END,
       n.first || ' ' || n.last,
       regexp_replace(translate(lower(n.first || '.' || n.last), 'áàâãéêíóôõúüç',
                                'aaaaeeiooouuc'), '[^a-z.]', '', 'g')
           || (i / 2) || '@'
           || (ARRAY['gmail.com', 'hotmail.com', 'outlook.com', 'sapo.pt', 'icloud.com',
                     'yahoo.co.uk', 'btinternet.com', 'live.com.pt'])
              [1 + abs(hashint8extended(i, 3) % 8)::int],
       CASE WHEN hashint8extended(i, 4) % 2 = 0
            THEN '+3519' || (ARRAY['1', '2', '3', '6'])[1 + abs(hashint8extended(i, 5) % 4)::int]
                 || lpad((i * 7919 % 10000000)::text, 7, '0')
            ELSE '+447' || (ARRAY['4', '5', '7', '8', '9'])[1 + abs(hashint8extended(i, 5) % 5)::int]
                 || lpad((i * 7919 % 100000000)::text, 8, '0')
       END,
       n.at,
       n.at
FROM generate_series($1::int8, $2::int8 - 1) AS i,
     LATERAL (SELECT ($5::text[])[1 + abs(hashint8extended(i, 1) % cardinality($5::text[]))::int]
                         AS first,
                     ($6::text[])[1 + abs(hashint8extended(i, 2) % cardinality($6::text[]))::int]
                         AS last,
                     now() - abs(hashint8extended(i, 6) % 94608000) * interval '1 second' AS at) AS n";

/// The query of `GET /api/v1/contacts` (query-api/src/contacts.rs, `list`, sort `recent`), copied
/// here only to EXPLAIN it: `$2` is the LIKE pattern, `$10` the limit plus one. `{merged}` is
/// `AND merged_into IS NULL` where the read model has merges.
const LIST: &str = r#"SELECT contact_id, full_name, email, whatsapp, telegram_chat_id,
    instagram_scoped_id, instagram_user_id, status, tags, created_at, updated_at, deleted_at,
    last_inbound_at, last_outbound_at,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS sort_key
  FROM rm_contacts
 WHERE org_id = $1
   AND ($2::text IS NULL OR search LIKE $2)
   AND ($3::text IS NULL OR status = $3)
   AND ($4::text IS NULL OR tags @> ARRAY[$4])
   AND ($5::timestamptz IS NULL OR created_at >= $5)
   AND ($6::timestamptz IS NULL OR created_at < $6)
   AND ($7 OR deleted_at IS NULL)
   AND erased_at IS NULL{merged}
   AND ($8::text IS NULL OR (created_at, contact_id) < ($8::timestamptz, $9))
 ORDER BY created_at DESC, contact_id DESC
 LIMIT $10"#;

pub async fn run(
    corbi: &Path,
    database: &BenchDatabase,
    client: &tokio_postgres::Client,
    admin: &Admin,
    authorization: HeaderValue,
    args: &Args,
) -> anyhow::Result<Vec<Figure>> {
    let generation = database.live_generation("contacts").await?;
    let table = projector::table(projector::contacts::CONTACTS, generation);
    fill(client, &table, admin.org_id, args.search_contacts).await?;
    let ids = lookup_ids(client, &table, admin.org_id).await?;

    let mut server = Server::start(corbi, &database.url).await?;
    let window = Window {
        connections: args.search_connections,
        warm_up: Duration::from_secs(args.warm_up_seconds),
        measured: Duration::from_secs(args.search_seconds),
    };
    let searches = [
        ("name", args.name_prefix.as_str()),
        ("phone", args.phone_prefix.as_str()),
    ];
    let mut urls = Vec::new();
    for (_, prefix) in searches {
        let url = Url::parse_with_params(
            &server.url("/api/v1/contacts"),
            &[("q", prefix), ("limit", &LIMIT.to_string())],
        )?;
        found_a_page(&server, &url, &authorization).await?;
        urls.push(url);
    }
    db::checkpoint(client).await?;
    let by_id = lookups(&server, &authorization, ids, window).await?;
    let mut loads = Vec::new();
    for url in &urls {
        db::checkpoint(client).await?;
        loads.push(get(url.as_str(), &authorization, window).await?);
    }
    server.stop().await;

    let connections = args.search_connections;
    let id_rate = by_id.requests_per_second();
    let id_latency = by_id.percentiles();
    let mut figures = vec![
        by_id.rate(
            format!("GET /api/v1/contacts/{{id}}, {connections} connections"),
            None,
        ),
        Figure::latency(
            format!("  latency, {connections} connections"),
            id_latency,
            None,
        ),
    ];
    for ((kind, prefix), load) in searches.into_iter().zip(loads) {
        let name = format!("GET /api/v1/contacts?q={prefix}&limit={LIMIT} ({kind})");
        figures.push(load.rate(name, Some((id_rate, "by id"))));
        let mut latency = Figure::latency(
            format!("  latency, {connections} connections"),
            load.percentiles(),
            Some((id_latency, "by id")),
        )
        .target(Target::AtMost(SEARCH_P99_MS));
        let plan = explain(client, admin.org_id, prefix).await?;
        eprintln!(
            "plan of the search for {prefix:?} (as a connection's prepared statement runs it):"
        );
        eprintln!("{}", plan.settled.join("\n"));
        if latency.pass() == Some(false) {
            eprintln!(
                "MISS: the search for {prefix:?} has p99 {:.1} ms; its custom plan:\n{}\n\
                 and its generic plan:\n{}",
                load.percentiles().p99,
                plan.custom.join("\n"),
                plan.generic.join("\n")
            );
        }
        latency.extra["plan"] = json!(plan.settled);
        figures.push(latency);
    }
    Ok(figures)
}

/// Replaces the rows of the contacts table `table` with `per_org` contacts in the bench
/// organisation and as many in another, then rebuilds its indexes (faster than keeping them up
/// row by row, and the same indexes) and VACUUM ANALYZEs it, as a table at rest would be.
async fn fill(
    client: &tokio_postgres::Client,
    table: &str,
    org_id: Uuid,
    per_org: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let indexes = client
        .query(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)
             FROM pg_index WHERE indrelid = to_regclass($1) AND NOT indisprimary",
            &[&table],
        )
        .await?;
    let indexes: Vec<(String, String)> = indexes
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    anyhow::ensure!(!indexes.is_empty(), "{table} has no indexes to rebuild");
    // The creations of the first figure would be the newest rows; without them the read model is
    // exactly the two generated organisations.
    client
        .batch_execute(&format!("TRUNCATE {table}"))
        .await
        .with_context(|| format!("emptying {table}"))?;
    for (name, _) in &indexes {
        client.batch_execute(&format!("DROP INDEX {name}")).await?;
    }
    let statement = client.prepare(&FILL.replace("{table}", table)).await?;
    let first = names::words(names::FIRST);
    let last = names::words(names::LAST);
    let other_org = Uuid::new_v4();
    let total = i64::try_from(per_org * 2)?;
    let mut done = 0i64;
    while done < total {
        let upto = (done + FILL_CHUNK).min(total);
        client
            .execute(
                &statement,
                &[&done, &upto, &org_id, &other_org, &first, &last],
            )
            .await
            .with_context(|| format!("filling {table}"))?;
        done = upto;
        eprint!("\rfilling {table}: {done}/{total}");
    }
    eprintln!(" in {:.1}s; indexes…", started.elapsed().as_secs_f64());
    client
        .batch_execute("SET maintenance_work_mem = '256MB'")
        .await?;
    for (_, definition) in &indexes {
        client
            .batch_execute(definition)
            .await
            .with_context(|| format!("rebuilding {definition}"))?;
    }
    client.batch_execute("RESET maintenance_work_mem").await?;
    client
        .batch_execute(&format!("VACUUM ANALYZE {table}"))
        .await?;
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), pg_total_relation_size('{table}')::float8,
                        count(*) FILTER (WHERE org_id = $1)
                 FROM {table}"
            ),
            &[&org_id],
        )
        .await?;
    eprintln!(
        "  {} contacts ({} in the bench organisation), {:.0} MB with indexes, in {:.1}s",
        row.try_get::<_, i64>(0)?,
        row.try_get::<_, i64>(2)?,
        row.try_get::<_, f64>(1)? / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Ids of the bench organisation's contacts, spread over the table.
async fn lookup_ids(
    client: &tokio_postgres::Client,
    table: &str,
    org_id: Uuid,
) -> anyhow::Result<Vec<Uuid>> {
    let rows = client
        .query(
            &format!(
                "SELECT contact_id FROM {table} TABLESAMPLE SYSTEM (2) REPEATABLE (1)
                 WHERE org_id = $1 LIMIT $2"
            ),
            &[&org_id, &LOOKUP_IDS],
        )
        .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(
        !ids.is_empty(),
        "no contact of the bench organisation in {table}"
    );
    Ok(ids)
}

/// A search must find a full page, or it measures nothing much.
async fn found_a_page(
    server: &Server,
    url: &Url,
    authorization: &HeaderValue,
) -> anyhow::Result<()> {
    let page = expect(
        server
            .client()
            .get(url.clone())
            .header(AUTHORIZATION, authorization.clone())
            .send()
            .await,
        StatusCode::OK,
        &format!("GET {url}"),
    )
    .await?;
    let found = page["items"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        found == LIMIT,
        "GET {url} found {found} contacts, not a page of {LIMIT}: {page}"
    );
    Ok(())
}

/// `GET /api/v1/contacts/{id}` of ids drawn in turn from `ids` by a hash of a shared counter.
async fn lookups(
    server: &Server,
    authorization: &HeaderValue,
    ids: Vec<Uuid>,
    window: Window,
) -> anyhow::Result<Load> {
    let base = server.url("/api/v1/contacts");
    let authorization = authorization.clone();
    let sent = AtomicU64::new(0);
    let what = format!("GET {base}/{{id}}");
    let request: load::Request = Arc::new(move |client: &reqwest::Client| {
        let n = sent.fetch_add(1, Ordering::Relaxed);
        // Fibonacci hashing: consecutive requests land far apart in the sample.
        let index = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % ids.len();
        client
            .get(format!("{base}/{}", ids[index]))
            .header(AUTHORIZATION, authorization.clone())
    });
    load::closed_loop(&what, window, StatusCode::OK, request).await
}

async fn get(url: &str, authorization: &HeaderValue, window: Window) -> anyhow::Result<Load> {
    let (target, authorization) = (url.to_owned(), authorization.clone());
    let request: load::Request = Arc::new(move |client: &reqwest::Client| {
        client
            .get(&target)
            .header(AUTHORIZATION, authorization.clone())
    });
    load::closed_loop(&format!("GET {url}"), window, StatusCode::OK, request).await
}

/// EXPLAIN ANALYZE of a search: the plan a connection's prepared statement settles on (after
/// the executions that let Postgres choose between custom and generic plans), and both.
struct Plans {
    settled: Vec<String>,
    custom: Vec<String>,
    generic: Vec<String>,
}

async fn explain(
    client: &tokio_postgres::Client,
    org_id: Uuid,
    prefix: &str,
) -> anyhow::Result<Plans> {
    let has_merges: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                            WHERE table_name = 'rm_contacts' AND column_name = 'merged_into')",
            &[],
        )
        .await?
        .try_get(0)?;
    let list = LIST.replace(
        "{merged}",
        if has_merges {
            "\n   AND merged_into IS NULL"
        } else {
            ""
        },
    );
    let pattern = quote(&contains_pattern(prefix));
    let execute = format!(
        "EXECUTE bench_list_contacts('{org_id}', {pattern}, NULL, NULL, NULL, NULL, false, \
         NULL, NULL, {})",
        LIMIT + 1
    );
    client
        .batch_execute(&format!(
            "DEALLOCATE ALL;
             PREPARE bench_list_contacts(uuid, text, text, text, timestamptz, timestamptz, bool,
                                         text, uuid, int8) AS {list}"
        ))
        .await?;
    // Postgres plans the first five executions with the values, then may keep a generic plan.
    for _ in 0..6 {
        client.batch_execute(&execute).await?;
    }
    let settled = plan(client, &execute).await?;
    client
        .batch_execute("SET plan_cache_mode = force_custom_plan")
        .await?;
    let custom = plan(client, &execute).await?;
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .await?;
    let generic = plan(client, &execute).await?;
    client
        .batch_execute("RESET plan_cache_mode; DEALLOCATE ALL")
        .await?;
    Ok(Plans {
        settled,
        custom,
        generic,
    })
}

async fn plan(client: &tokio_postgres::Client, execute: &str) -> anyhow::Result<Vec<String>> {
    let rows = client
        .simple_query(&format!("EXPLAIN (ANALYZE, BUFFERS) {execute}"))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect())
}

/// `q` as the list endpoint turns it into a LIKE pattern (query-api/src/contacts.rs).
fn contains_pattern(q: &str) -> String {
    let escaped = q
        .trim()
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_the_endpoints() {
        assert_eq!(contains_pattern(" Mar "), "%mar%");
        assert_eq!(contains_pattern("+35191"), "%+35191%");
        assert_eq!(contains_pattern("50%_off"), "%50\\%\\_off%");
        assert_eq!(quote("O'Brien"), "'O''Brien'");
    }
}
