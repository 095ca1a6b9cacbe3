//! The contacts projection holds a batch's new contacts and timeline rows and writes each table
//! in one statement. A batch that creates, changes, merges and erases contacts side by side must
//! leave exactly the rows that the same events leave applied one at a time.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use event_store::EventStore;
use event_store::data_keys::DataKeys;
use events::{Keyring, RecordedEvent};
use projector::Projection;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool};
use testkit::{As, TestStack};
use uuid::Uuid;

/// Generations of the contacts tables beside the live one, built by the test itself.
const ONE_AT_A_TIME: i32 = 101;
const ALL_AT_ONCE: i32 = 102;

struct Writer {
    stack: TestStack,
    admin: As,
    org: Uuid,
}

impl Writer {
    async fn new() -> Writer {
        let stack = TestStack::spawn().await;
        let ada = stack.sign_up("ada@example.com").await;
        let org = stack.create_org(&ada, "Clinic").await;
        let writer = Writer {
            stack,
            admin: As::User(ada),
            org,
        };
        writer
            .expect(
                Method::PATCH,
                "/api/v1/organisation",
                json!({"branding": {"default_phone_region": "PT"}}),
                StatusCode::OK,
            )
            .await;
        writer
    }

    /// Sends `body` and checks the answer's status.
    async fn expect(&self, method: Method, path: &str, body: Value, status: StatusCode) -> Value {
        let body = (!body.is_null()).then_some(body);
        let (answered, answer) = self
            .stack
            .call(method, path, &self.admin, Some(self.org), body)
            .await;
        assert_eq!(answered, status, "{path}: {answer}");
        answer
    }

    /// Creates a contact and answers its id.
    async fn create(&self, body: Value) -> String {
        let created = self
            .expect(Method::POST, "/api/v1/contacts", body, StatusCode::CREATED)
            .await;
        created["contact_id"].as_str().unwrap().to_owned()
    }

    async fn update(&self, id: &str, body: Value) {
        let path = format!("/api/v1/contacts/{id}");
        self.expect(Method::PATCH, &path, body, StatusCode::OK)
            .await;
    }

    async fn post(&self, path: &str, body: Value) {
        self.expect(Method::POST, path, body, StatusCode::OK).await;
    }
}

/// Every event of the log the contacts projection reads, in log order.
async fn contact_events(stack: &TestStack, projection: &dyn Projection) -> Vec<RecordedEvent> {
    // Every event committed so far, including those readers see only once other tests'
    // older transactions have ended.
    let target = stack.store.committed_head().await.unwrap();
    let mut events = Vec::new();
    let mut after = None;
    while after < target {
        let batch = stack.store.read_all(after, 1_000).await.unwrap();
        let Some(last) = batch.last() else {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        };
        after = Some(last.position);
        events.extend(
            batch
                .into_iter()
                .filter(|e| projection.handles().contains(&e.event_type.as_str())),
        );
    }
    events
}

/// The rows of the contacts tables of `generation`: contacts, timeline (in its order, with
/// the log positions) and conflicts.
async fn rows(pool: &PgPool, generation: i32) -> [Vec<Value>; 3] {
    let queries = [
        format!("SELECT to_jsonb(c) FROM rm_contacts_g{generation} c ORDER BY contact_id"),
        format!("SELECT to_jsonb(t) FROM rm_contact_timeline_g{generation} t ORDER BY seq"),
        format!(
            "SELECT to_jsonb(c) FROM rm_contact_conflicts_g{generation} c ORDER BY conflict_id"
        ),
    ];
    let mut rows: [Vec<Value>; 3] = Default::default();
    for (query, rows) in queries.into_iter().zip(&mut rows) {
        *rows = sqlx::query_scalar(AssertSqlSafe(query))
            .fetch_all(pool)
            .await
            .unwrap();
    }
    rows
}

#[tokio::test]
async fn one_batch_leaves_the_rows_that_one_event_at_a_time_leaves() {
    let w = Writer::new().await;
    w.expect(
        Method::POST,
        "/api/v1/custom-fields",
        json!({"key": "plan", "label": "Plan", "kind": "select", "options": ["gold", "silver"]}),
        StatusCode::CREATED,
    )
    .await;
    // A contact changed right after it is created, again and again.
    let ana = w
        .create(json!({
            "full_name": "Ana", "email": "ana@example.com", "tags": ["vip"],
            "notes": "likes mornings", "custom_fields": {"plan": "gold"}
        }))
        .await;
    w.update(
        &ana,
        json!({
            "full_name": "Ana Maria", "whatsapp": "+351961000001", "add_tags": ["new"],
            "remove_tags": ["vip"], "custom_fields": {"plan": "silver"}, "notes": null,
            "whatsapp_blocked": true
        }),
    )
    .await;
    w.post(
        &format!("/api/v1/contacts/{ana}/status"),
        json!({"status": "unsubscribed", "reason": "asked"}),
    )
    .await;
    // A duplicate merged into her, and a contact that wants her email.
    let dup = w
        .create(json!({
            "full_name": "Ana S.", "email": "ana.s@example.com", "whatsapp": "+351961000002",
            "tags": ["imported"]
        }))
        .await;
    let carla = w
        .create(json!({"full_name": "Carla", "email": "carla@example.com"}))
        .await;
    w.expect(
        Method::PATCH,
        &format!("/api/v1/contacts/{carla}"),
        json!({"email": "ana@example.com"}),
        StatusCode::CONFLICT,
    )
    .await;
    w.post(
        &format!("/api/v1/contacts/{ana}/merge"),
        json!({"source": dup}),
    )
    .await;
    // Created, renamed, deleted, restored and erased, with others created in between.
    let dora = w
        .create(
            json!({"full_name": "Dora", "email": "dora@example.com", "whatsapp": "+351961000003"}),
        )
        .await;
    w.update(&dora, json!({"full_name": "Dora D."})).await;
    let eve = w
        .create(json!({"full_name": "Eve", "tags": ["b", "a"]}))
        .await;
    w.expect(
        Method::DELETE,
        &format!("/api/v1/contacts/{dora}"),
        Value::Null,
        StatusCode::OK,
    )
    .await;
    w.post(&format!("/api/v1/contacts/{dora}/restore"), Value::Null)
        .await;
    w.update(&eve, json!({"add_tags": ["late"]})).await;
    w.expect(
        Method::DELETE,
        &format!("/api/v1/contacts/{carla}?erase=true"),
        Value::Null,
        StatusCode::OK,
    )
    .await;
    w.post(&format!("/api/v1/contacts/{dup}/unmerge"), Value::Null)
        .await;
    let fay = w.create(json!({"full_name": "Fay"})).await;
    w.expect(
        Method::DELETE,
        &format!("/api/v1/contacts/{dora}?erase=true"),
        Value::Null,
        StatusCode::OK,
    )
    .await;
    w.update(&fay, json!({"full_name": "Fay F."})).await;
    // A duplicate that stays merged.
    let gus = w.create(json!({"full_name": "Gus"})).await;
    w.post(
        &format!("/api/v1/contacts/{eve}/merge"),
        json!({"source": gus}),
    )
    .await;

    let keys = DataKeys::new(w.stack.db.pool.clone(), Arc::new(Keyring::development()));
    let contacts = projector::Contacts::new(keys);
    // Prepared (opened) once, as the runtime prepares every batch before applying it.
    let events = contacts
        .prepare(contact_events(&w.stack, &contacts).await)
        .await
        .unwrap();
    let mut conn = w.stack.db.pool.acquire().await.unwrap();
    contacts.create(&mut conn, ONE_AT_A_TIME).await.unwrap();
    for event in &events {
        contacts
            .apply(&mut conn, ONE_AT_A_TIME, std::slice::from_ref(event))
            .await
            .unwrap();
    }
    contacts.create(&mut conn, ALL_AT_ONCE).await.unwrap();
    contacts
        .apply(&mut conn, ALL_AT_ONCE, &events)
        .await
        .unwrap();

    let [one_contacts, one_timeline, one_conflicts] = rows(&w.stack.db.pool, ONE_AT_A_TIME).await;
    let [contacts, timeline, conflicts] = rows(&w.stack.db.pool, ALL_AT_ONCE).await;
    assert_eq!(contacts, one_contacts);
    assert_eq!(timeline, one_timeline);
    assert_eq!(conflicts, one_conflicts);

    // And those rows are the right ones: every event in the timeline, in log order…
    let recorded: Vec<&Value> = timeline.iter().map(|row| &row["event_id"]).collect();
    let logged: Vec<Value> = events.iter().map(|e| json!(e.event_id)).collect();
    assert_eq!(recorded, logged.iter().collect::<Vec<_>>());
    // …the changes made after each create…
    let contact = |id: &str| {
        contacts
            .iter()
            .find(|row| row["contact_id"] == id)
            .unwrap_or_else(|| panic!("no row of {id}"))
    };
    let ana_row = contact(&ana);
    assert_eq!(ana_row["full_name"], "Ana Maria");
    assert_eq!(ana_row["whatsapp"], "+351961000001");
    assert_eq!(ana_row["tags"], json!(["new"]));
    assert_eq!(ana_row["custom_fields"], json!({"plan": "silver"}));
    assert_eq!(ana_row["status"], "unsubscribed");
    assert_eq!(ana_row["whatsapp_blocked"], true);
    assert!(ana_row["notes"].is_null());
    assert_eq!(contact(&eve)["tags"], json!(["a", "b", "late"]));
    assert_eq!(contact(&fay)["full_name"], "Fay F.");
    // …the duplicate back on its own, with its history…
    let dup_row = contact(&dup);
    assert!(dup_row["merged_into"].is_null());
    assert_eq!(dup_row["whatsapp"], "+351961000002");
    let dup_history = timeline
        .iter()
        .filter(|row| row["origin_contact_id"] == dup.as_str())
        .all(|row| row["contact_id"] == dup.as_str());
    assert!(dup_history, "the duplicate's history went back");
    assert_eq!(contact(&gus)["merged_into"], eve.as_str());
    let gus_created = timeline
        .iter()
        .find(|row| {
            row["origin_contact_id"] == gus.as_str() && row["event_type"] == "ContactCreated"
        })
        .unwrap();
    assert_eq!(
        gus_created["contact_id"],
        eve.as_str(),
        "Gus's history is Eve's"
    );
    // …and nothing left of the erased.
    for (id, secrets) in [(&carla, ["Carla", "carla@"]), (&dora, ["Dora", "dora@"])] {
        assert!(contact(id)["erased_at"].is_string());
        let left = [&contacts, &timeline, &conflicts]
            .iter()
            .flat_map(|rows| rows.iter())
            .map(Value::to_string)
            .find(|row| secrets.iter().any(|secret| row.contains(secret)));
        assert_eq!(left, None, "personal data of {id} left");
    }
    assert_eq!(conflicts.len(), 1);
    assert!(conflicts[0]["value"].is_null(), "{}", conflicts[0]);
}
