//! Contact imports and exports end to end: a 10,000-row file with deliberate bad rows gives an
//! exact report (and its dry run the same one, writing nothing), duplicates update when asked,
//! columns map by parameter, an interrupted job resumes without duplicates, imports are private
//! to their organisation, and an export imports into another organisation as the same contacts.
//!
//! The import worker is driven with `command_api::imports::drain`, so nothing sleeps.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use command_api::{AuthSettings, CommandState};
use event_store::EventStore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{As, TestStack};
use uuid::Uuid;

const IMPORTS: &str = "/api/v1/contacts/imports";

/// The command side the worker runs with, over the stack's database and log.
fn commands(stack: &TestStack) -> CommandState {
    let store: Arc<dyn EventStore> = stack.store.clone();
    CommandState::new(store, stack.db.pool.clone(), AuthSettings::default())
}

async fn drain(stack: &TestStack) {
    command_api::imports::drain(&commands(stack)).await.unwrap();
}

/// An organisation (phone numbers default to Portugal) with a `plan` select field, and its admin.
async fn organisation(stack: &TestStack, email: &str) -> (As, Uuid) {
    let user = stack.sign_up(email).await;
    let org = stack.create_org(&user, "Clinic").await;
    let admin = As::User(user);
    let (status, body) = stack
        .call(
            Method::PATCH,
            "/api/v1/organisation",
            &admin,
            Some(org),
            Some(json!({"branding": {"default_phone_region": "PT"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = stack
        .call(
            Method::POST,
            "/api/v1/custom-fields",
            &admin,
            Some(org),
            Some(json!({"key": "plan", "label": "Plan", "kind": "select", "options": ["gold", "silver"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (admin, org)
}

async fn create(stack: &TestStack, who: &As, org: Uuid, body: Value) -> Value {
    let (status, created) = stack
        .call(Method::POST, "/api/v1/contacts", who, Some(org), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn submit(
    stack: &TestStack,
    who: &As,
    org: Uuid,
    query: &str,
    csv: &str,
) -> (StatusCode, Value) {
    let response = stack
        .request(Method::POST, &format!("{IMPORTS}{query}"), who, Some(org))
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Submits `csv`, runs the job and answers its status.
async fn import(stack: &TestStack, who: &As, org: Uuid, query: &str, csv: &str) -> Value {
    let (status, queued) = submit(stack, who, org, query, csv).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    drain(stack).await;
    let (status, import) = stack
        .call(
            Method::GET,
            queued["progress"].as_str().unwrap(),
            who,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{import}");
    assert_eq!(import["status"], "done", "{import}");
    import
}

/// Every report row with `outcome` (all when `None`), following the cursor.
async fn report(
    stack: &TestStack,
    who: &As,
    org: Uuid,
    import_id: &Value,
    outcome: Option<&str>,
) -> Vec<Value> {
    let import_id = import_id.as_str().unwrap();
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("{IMPORTS}/{import_id}/rows?limit=200");
        if let Some(outcome) = outcome {
            path.push_str(&format!("&outcome={outcome}"));
        }
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let (status, page) = stack.call(Method::GET, &path, who, Some(org), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        rows.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return rows,
        }
    }
}

/// `GET path` as text once the contacts projection has the write `token` made.
async fn get_text(stack: &TestStack, who: &As, org: Uuid, path: &str, token: &Value) -> String {
    let mut request = stack.request(Method::GET, path, who, Some(org));
    if let Some(token) = token.as_str() {
        request = request.header("X-Consistency-Token", token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.unwrap()
}

async fn contact_count(stack: &TestStack, org: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rm_contacts WHERE org_id = $1")
        .bind(org)
        .fetch_one(&stack.db.pool)
        .await
        .unwrap()
}

/// A report row as `(row, outcome, [(field, message)])`.
type Outcome = (i64, String, Vec<(String, String)>);

/// A report row as expected: `(row, outcome, ["field: message" | "field"])`.
type Expected = (i64, &'static str, Vec<String>);

fn outcomes(rows: &[Value]) -> Vec<Outcome> {
    rows.iter()
        .map(|row| {
            let errors = row["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap().to_owned(),
                        e["message"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (
                row["row"].as_i64().unwrap(),
                row["outcome"].as_str().unwrap().to_owned(),
                errors,
            )
        })
        .collect()
}

/// The 10,000-row file: `full_name,email,whatsapp,tags,custom.plan`, with bad rows where
/// `d % 1000` (d counting data rows from 0; row number d + 2) is one of:
/// 100 malformed email, 200 bad phone, 300 no name, 400 the email of the row before,
/// 500 the email of an existing contact, 600 a cell too many, 700 a plan that is no option,
/// 800 the phone of an existing contact, 900 no name and a malformed email.
fn big_file() -> String {
    let mut csv = String::from("full_name,email,whatsapp,tags,custom.plan\n");
    for d in 0..10_000u32 {
        let mut name = format!("Person {d}");
        let mut email = format!("person{d}@example.com");
        let mut phone = if d % 4 == 0 {
            format!("+35191{d:07}")
        } else {
            String::new()
        };
        let mut plan = if d % 2 == 0 { "gold" } else { "silver" }.to_owned();
        let mut extra = "";
        match d % 1000 {
            100 => email = format!("person{d}.example.com"),
            200 => phone = "12345".into(),
            300 => name = String::new(),
            400 => email = format!("person{}@example.com", d - 1),
            500 => email = "existing@example.com".into(),
            600 => extra = ",surplus",
            700 => plan = "platinum".into(),
            800 => phone = "912000001".into(),
            900 => {
                name = " ".into();
                email = "nope".into();
            }
            _ => {}
        }
        csv.push_str(&format!(
            "{name},{email},{phone},batch;group{},{plan}{extra}\n",
            d % 3
        ));
    }
    csv
}

/// What the report of [`big_file`] must say about its rows that were not created, given the
/// ids of the existing contacts.
fn expected_big_report(by_email: Uuid, by_phone: Uuid) -> Vec<Expected> {
    let mut expected = Vec::new();
    for d in 0..10_000i64 {
        let row = d + 2;
        let (outcome, errors): (&str, Vec<String>) = match d % 1000 {
            100 => ("rejected", vec!["email: is not an email address like name@example.com".into()]),
            200 => ("rejected", vec!["whatsapp".into()]),
            300 => (
                "rejected",
                vec!["full_name: a full name must have 1 to 200 characters and no control characters".into()],
            ),
            400 => ("skipped_duplicate", vec![format!("email: duplicates row {}", row - 1)]),
            500 => ("skipped_duplicate", vec![format!("email: belongs to contact {by_email}")]),
            600 => ("rejected", vec!["row: has 6 cells where the header has 5 cells".into()]),
            700 => ("rejected", vec!["custom_fields.plan".into()]),
            800 => ("skipped_duplicate", vec![format!("whatsapp: belongs to contact {by_phone}")]),
            900 => ("rejected", vec!["full_name".into(), "email".into()]),
            _ => continue,
        };
        expected.push((row, outcome, errors));
    }
    expected
}

/// Report rows as `(row, outcome, ["field: message" | "field"])`, the message kept only where
/// `expected` spells it out.
fn comparable(rows: &[Value], expected: &[Expected]) -> Vec<Expected> {
    outcomes(rows)
        .into_iter()
        .map(|(row, outcome, errors)| {
            let spelled: Vec<bool> = expected
                .iter()
                .find(|e| e.0 == row)
                .map(|e| e.2.iter().map(|text| text.contains(": ")).collect())
                .unwrap_or_default();
            let errors = errors
                .into_iter()
                .enumerate()
                .map(|(i, (field, message))| {
                    if spelled.get(i).copied().unwrap_or(false) {
                        format!("{field}: {message}")
                    } else {
                        field
                    }
                })
                .collect();
            let outcome: &'static str = match outcome.as_str() {
                "rejected" => "rejected",
                "skipped_duplicate" => "skipped_duplicate",
                other => panic!("unexpected outcome {other}"),
            };
            (row, outcome, errors)
        })
        .collect()
}

#[tokio::test]
async fn a_ten_thousand_row_file_with_bad_rows_gives_an_exact_report() {
    let stack = TestStack::spawn().await;
    let (admin, org) = organisation(&stack, "ada@example.com").await;
    let by_email = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Existing", "email": "existing@example.com"}),
    )
    .await;
    let by_phone = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Existing phone", "whatsapp": "+351912000001"}),
    )
    .await;
    let id = |created: &Value| -> Uuid { created["contact_id"].as_str().unwrap().parse().unwrap() };
    let expected = expected_big_report(id(&by_email), id(&by_phone));
    let csv = big_file();
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();

    // The dry run finds every problem and writes nothing.
    let started = std::time::Instant::now();
    let dry = import(&stack, &admin, org, "?dry_run=true", &csv).await;
    eprintln!("checked 10,000 rows in {:?}", started.elapsed());
    assert_eq!(
        dry["counts"],
        json!({"total": 10_000, "processed": 10_000, "created": 0, "updated": 0,
               "skipped_duplicate": 30, "rejected": 60, "valid": 9_910}),
        "{dry}"
    );
    let mut dry_problems = report(&stack, &admin, org, &dry["import_id"], Some("rejected")).await;
    dry_problems.extend(
        report(
            &stack,
            &admin,
            org,
            &dry["import_id"],
            Some("skipped_duplicate"),
        )
        .await,
    );
    dry_problems.sort_by_key(|r| r["row"].as_i64());
    assert_eq!(comparable(&dry_problems, &expected), expected);
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
    assert_eq!(events_before, events_after, "a dry run appends nothing");

    // The import itself.
    let started = std::time::Instant::now();
    let done = import(&stack, &admin, org, "", &csv).await;
    eprintln!("imported 10,000 rows in {:?}", started.elapsed());
    assert_eq!(
        done["counts"],
        json!({"total": 10_000, "processed": 10_000, "created": 9_910, "updated": 0,
               "skipped_duplicate": 30, "rejected": 60, "valid": 0}),
        "{done}"
    );
    let rows = report(&stack, &admin, org, &done["import_id"], None).await;
    assert_eq!(rows.len(), 10_000);
    let mut problems: Vec<Value> = rows
        .iter()
        .filter(|r| r["outcome"] != "created")
        .cloned()
        .collect();
    problems.sort_by_key(|r| r["row"].as_i64());
    assert_eq!(comparable(&problems, &expected), expected);
    // The dry run said exactly what the import then did.
    assert_eq!(outcomes(&problems), outcomes(&dry_problems));

    // A duplicate of an earlier row names that row's contact; of an existing one, that contact.
    let row = |n: i64| rows.iter().find(|r| r["row"] == n).unwrap().clone();
    assert_eq!(row(402)["contact_id"], row(401)["contact_id"]);
    assert_eq!(row(401)["outcome"], "created");
    assert_eq!(row(502)["contact_id"], by_email["contact_id"]);
    assert_eq!(row(802)["contact_id"], by_phone["contact_id"]);
    assert_eq!(row(102)["contact_id"], Value::Null);
    assert_eq!(row(2)["line"], 2);

    // Every created row is a contact one can read.
    let token = &done["consistency_token"];
    let page = get_text(&stack, &admin, org, "/api/v1/contacts?limit=1", token).await;
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(contact_count(&stack, org).await, 2 + 9_910);
}

#[tokio::test]
async fn duplicates_update_when_asked_and_columns_map_by_parameter() {
    let stack = TestStack::spawn().await;
    let (admin, org) = organisation(&stack, "ada@example.com").await;
    let ada = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Ada", "email": "ada@lovelace.example", "tags": ["old"]}),
    )
    .await;
    let csv = "Name,E-mail,Phone,Labels,Plan,Other\n\
               Ada Lovelace,ada@lovelace.example,912345678,vip;math,gold,x\n\
               Grace Hopper,grace@example.com,,navy,silver,y\n";
    let query = "?on_duplicate=update&map.full_name=Name&map.email=E-mail&map.whatsapp=phone\
                 &map.tags=Labels&map.custom.plan=Plan";
    let (status, queued) = submit(&stack, &admin, org, query, csv).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(
        queued["mapping"],
        json!({"full_name": "Name", "email": "E-mail", "whatsapp": "Phone", "tags": "Labels",
               "custom.plan": "Plan"})
    );
    assert_eq!(queued["ignored_columns"], json!(["Other"]));
    assert_eq!(queued["rows_total"], 2);
    assert_eq!(queued["status"], "queued");
    drain(&stack).await;
    let (_, done) = stack
        .call(
            Method::GET,
            queued["progress"].as_str().unwrap(),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["counts"]["updated"], 1);
    assert_eq!(done["counts"]["created"], 1);
    let rows = report(&stack, &admin, org, &done["import_id"], None).await;
    assert_eq!(rows[0]["outcome"], "updated");
    assert_eq!(rows[0]["contact_id"], ada["contact_id"]);
    assert_eq!(rows[1]["outcome"], "created");

    let token = &done["consistency_token"];
    let path = format!("/api/v1/contacts/{}", ada["contact_id"].as_str().unwrap());
    let updated: Value =
        serde_json::from_str(&get_text(&stack, &admin, org, &path, token).await).unwrap();
    assert_eq!(updated["full_name"], "Ada Lovelace");
    assert_eq!(updated["whatsapp"], "+351912345678");
    assert_eq!(updated["tags"], json!(["math", "old", "vip"]));
    assert_eq!(updated["custom_fields"]["plan"], "gold");

    // The events are the importing user's.
    let (status, me) = stack
        .call(Method::GET, "/api/v1/me", &admin, None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let created = rows[1]["contact_id"].as_str().unwrap();
    let timeline: Value = serde_json::from_str(
        &get_text(
            &stack,
            &admin,
            org,
            &format!("/api/v1/contacts/{created}/timeline"),
            token,
        )
        .await,
    )
    .unwrap();
    let entry = &timeline["items"][0];
    assert_eq!(entry["actor_kind"], "user");
    assert_eq!(entry["actor"], me["user_id"]);

    // Wrong parameters and files are refused, naming what is wrong.
    let refused = [
        ("?map.nickname=Name", csv, "map.nickname"),
        ("?map.full_name=Name&map.email=Mail", csv, "map.email"),
        ("?map.full_name=Name&limit=3", csv, "limit"),
        ("?map.full_name=Name&dry_run=maybe", csv, "dry_run"),
        ("", csv, "map.full_name"),
        ("", "full_name,custom.tier\nAda,1\n", "map.custom.tier"),
        ("", "full_name\n", "body"),
    ];
    for (query, csv, field) in refused {
        let (status, problem) = submit(&stack, &admin, org, query, csv).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
    let response = stack
        .request(Method::POST, IMPORTS, &admin, Some(org))
        .header("content-type", "text/csv")
        .body(b"full_name\nJos\xe9\n".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = stack
        .request(Method::POST, IMPORTS, &admin, Some(org))
        .json(&json!({"full_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A retried submission answers the first import; the same key for another file does not.
    let send = |body: &'static str| {
        stack
            .request(Method::POST, IMPORTS, &admin, Some(org))
            .header("content-type", "text/csv")
            .header("Idempotency-Key", "import-1")
            .body(body)
            .send()
    };
    let first: Value = send("full_name\nOnce\n")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again = send("full_name\nOnce\n").await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["import_id"], first["import_id"]);
    let other = send("full_name\nTwice\n").await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_interrupted_import_resumes_without_duplicates_and_stays_private() {
    let stack = TestStack::spawn().await;
    let (admin, org) = organisation(&stack, "ada@example.com").await;
    let mut csv = String::from("full_name,email\n");
    for n in 0..300 {
        csv.push_str(&format!("Person {n},person{n}@example.com\n"));
    }
    let done = import(&stack, &admin, org, "", &csv).await;
    assert_eq!(done["counts"]["created"], 300);
    let first = report(&stack, &admin, org, &done["import_id"], None).await;

    // As if the worker had died after reporting 100 rows: the rest were written, not reported.
    let import_id: Uuid = done["import_id"].as_str().unwrap().parse().unwrap();
    sqlx::query("DELETE FROM contact_import_rows WHERE import_id = $1 AND row_number > 101")
        .bind(import_id)
        .execute(&stack.db.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE contact_imports
         SET status = 'running', run_id = gen_random_uuid(), lease_until = now() - interval '1 second',
             csv = $2, rows_processed = 100, rows_created = 100, finished_at = NULL
         WHERE import_id = $1",
    )
    .bind(import_id)
    .bind(csv.as_bytes())
    .execute(&stack.db.pool)
    .await
    .unwrap();
    drain(&stack).await;
    let (_, resumed) = stack
        .call(
            Method::GET,
            &format!("{IMPORTS}/{import_id}"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(resumed["status"], "done");
    assert_eq!(resumed["counts"]["processed"], 300);
    assert_eq!(resumed["counts"]["created"], 300);
    let second = report(&stack, &admin, org, &done["import_id"], None).await;
    assert_eq!(first, second, "the same contacts, found again");
    let token = &resumed["consistency_token"];
    get_text(&stack, &admin, org, "/api/v1/contacts?limit=1", token).await;
    assert_eq!(contact_count(&stack, org).await, 300);

    // Another organisation sees none of it.
    let (outsider, other_org) = organisation(&stack, "grace@example.com").await;
    for path in [
        format!("{IMPORTS}/{import_id}"),
        format!("{IMPORTS}/{import_id}/rows"),
    ] {
        let (status, _) = stack
            .call(Method::GET, &path, &outsider, Some(other_org), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let exported = get_text(
        &stack,
        &outsider,
        other_org,
        "/api/v1/contacts/export",
        &Value::Null,
    )
    .await;
    assert_eq!(exported.lines().count(), 1, "only the header: {exported}");
}

/// CSV text as records, the header first.
fn records(csv: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes());
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn an_exported_filtered_list_imports_into_another_organisation_as_the_same_contacts() {
    let stack = TestStack::spawn().await;
    let (admin, org) = organisation(&stack, "ada@example.com").await;
    let people = [
        json!({"full_name": "Lovelace, Ada", "email": "ada@example.com", "whatsapp": "+351912345678",
               "tags": ["vip", "math"], "notes": "Line one\nLine \"two\"", "custom_fields": {"plan": "gold"}}),
        json!({"full_name": "=HYPERLINK(\"http://x\")", "email": "formula@example.com",
               "telegram_chat_id": "-1001234", "tags": ["vip"]}),
        json!({"full_name": "Not VIP", "email": "notvip@example.com", "tags": ["other"]}),
        json!({"full_name": "Insta", "instagram_scoped_id": "123", "instagram_user_id": "456",
               "tags": ["vip"], "custom_fields": {"plan": "silver"}}),
    ];
    let mut token = Value::Null;
    for person in people {
        token = create(&stack, &admin, org, person).await["consistency_token"].clone();
    }
    let exported = get_text(
        &stack,
        &admin,
        org,
        "/api/v1/contacts/export?tag=vip&sort=name",
        &token,
    )
    .await;
    let table = records(&exported);
    assert_eq!(
        table[0],
        [
            "contact_id",
            "full_name",
            "email",
            "whatsapp",
            "telegram_chat_id",
            "instagram_scoped_id",
            "instagram_user_id",
            "status",
            "tags",
            "notes",
            "created_at",
            "custom.plan"
        ]
    );
    assert_eq!(table.len(), 4, "{exported}");
    // Sorted by name: `'=HYPERLINK…` (guarded as it is written), Insta, Lovelace.
    assert_eq!(table[1][1], "'=HYPERLINK(\"http://x\")");
    assert_eq!(table[1][4], "-1001234");
    assert_eq!(table[3][1], "Lovelace, Ada");
    assert_eq!(table[3][3], "+351912345678");
    assert_eq!(table[3][8], "math;vip");
    assert_eq!(table[3][9], "Line one\nLine \"two\"");
    assert_eq!(table[3][11], "gold");

    let (other_admin, other_org) = organisation(&stack, "grace@example.com").await;
    let (status, queued) = submit(&stack, &other_admin, other_org, "", &exported).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(
        queued["ignored_columns"],
        json!(["contact_id", "status", "created_at"])
    );
    drain(&stack).await;
    let (_, done) = stack
        .call(
            Method::GET,
            queued["progress"].as_str().unwrap(),
            &other_admin,
            Some(other_org),
            None,
        )
        .await;
    assert_eq!(done["counts"]["created"], 3, "{done}");
    let again = get_text(
        &stack,
        &other_admin,
        other_org,
        "/api/v1/contacts/export?tag=vip&sort=name",
        &done["consistency_token"],
    )
    .await;
    // The same contacts, but for their ids and creation times.
    let without_ids = |table: Vec<Vec<String>>| -> Vec<Vec<String>> {
        table
            .into_iter()
            .map(|mut record| {
                record[0].clear();
                record[10].clear();
                record
            })
            .collect()
    };
    assert_eq!(without_ids(records(&again)), without_ids(table));
}
