//! Data keys against the real Postgres: created once per subject however many callers race,
//! erased for good, and sealed events that survive the log and open again — or read as erased.

use std::sync::Arc;

use event_store::data_keys::{DataKeyError, DataKeys};
use event_store::postgres::PgEventStore;
use event_store::{Direction, EventStore, ExpectedVersion};
use events::personal::{self, Keyring, Personal};
use events::{Metadata, NewEvent, RecordedEvent};
use schema::testing::TestDatabase;
use serde_json::json;
use uuid::Uuid;

async fn data_keys() -> (TestDatabase, DataKeys) {
    let db = TestDatabase::create().await.expect("test database");
    let keys = DataKeys::new(db.pool.clone(), Arc::new(Keyring::development()));
    (db, keys)
}

fn contact_created(org_id: Uuid, subject: Uuid) -> NewEvent {
    NewEvent::new(
        org_id,
        "ContactCreated",
        json!({
            "contact_id": subject,
            "full_name": {"$personal": "Ada Lovelace"},
            "email": null,
            "identities": [
                {"channel": "email", "address": {"$personal": "ada@example.com"}},
                {"channel": "telegram", "chat_id": {"$personal": 42}},
            ],
            "tags": ["vip"],
        }),
    )
    .with_metadata(Metadata {
        subject: Some(subject),
        ..Metadata::default()
    })
}

fn recorded(event: &NewEvent) -> RecordedEvent {
    RecordedEvent {
        event_id: event.event_id,
        stream: format!("contact-{}", Uuid::now_v7()),
        version: 0,
        position: events::Position::START,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        org_id: event.org_id,
        data: event.data.clone(),
        metadata: event.metadata.clone(),
        recorded_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn ensure_is_stable() {
    let (_db, keys) = data_keys().await;
    let (org, subject) = (Uuid::now_v7(), Uuid::now_v7());
    let first = keys.ensure(org, subject).await.expect("creates");
    let again = keys.ensure(org, subject).await.expect("reads");
    assert_eq!(first, again);
    assert_eq!(keys.get(subject).await.expect("get"), Some(first));
    assert_eq!(keys.get(Uuid::now_v7()).await.expect("get"), None);
    let other = keys.ensure(org, Uuid::now_v7()).await.expect("creates");
    assert_ne!(other, again, "every subject has a key of its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creators_agree_on_one_key() {
    let (_db, keys) = data_keys().await;
    let (org, subject) = (Uuid::now_v7(), Uuid::now_v7());
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let keys = keys.clone();
            tokio::spawn(async move { keys.ensure(org, subject).await })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        created.push(task.await.expect("task").expect("ensure"));
    }
    assert!(created.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(
        keys.get(subject).await.expect("get"),
        Some(created[0].clone())
    );
}

#[tokio::test]
async fn a_subject_belongs_to_one_organisation() {
    let (_db, keys) = data_keys().await;
    let subject = Uuid::now_v7();
    keys.ensure(Uuid::now_v7(), subject).await.expect("creates");
    let error = keys
        .ensure(Uuid::now_v7(), subject)
        .await
        .expect_err("other org");
    assert!(
        matches!(error, DataKeyError::OtherOrganisation { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn erase_destroys_the_key_for_good() {
    let (db, keys) = data_keys().await;
    let (org, subject) = (Uuid::now_v7(), Uuid::now_v7());
    keys.ensure(org, subject).await.expect("creates");
    assert!(keys.erase(subject).await.expect("erases"));
    assert!(
        !keys.erase(subject).await.expect("erases again"),
        "nothing left"
    );
    assert!(!keys.erase(Uuid::now_v7()).await.expect("unknown"));
    assert_eq!(keys.get(subject).await.expect("get"), None);

    let error = keys.ensure(org, subject).await.expect_err("erased");
    assert!(matches!(error, DataKeyError::Erased { .. }), "{error}");

    let (wrapped_is_null, erased_at_set): (bool, bool) = sqlx::query_as(
        "SELECT wrapped_key IS NULL, erased_at IS NOT NULL FROM data_keys WHERE subject_id = $1",
    )
    .bind(subject)
    .fetch_one(&db.pool)
    .await
    .expect("row stays");
    assert!(wrapped_is_null && erased_at_set);
}

#[tokio::test]
async fn get_many_skips_erased_and_unknown_subjects() {
    let (db, keys) = data_keys().await;
    let org = Uuid::now_v7();
    let (kept, erased, unknown) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let kept_key = keys.ensure(org, kept).await.expect("creates");
    keys.ensure(org, erased).await.expect("creates");
    keys.erase(erased).await.expect("erases");

    let mut tx = db.pool.begin().await.expect("transaction");
    let found = keys
        .get_many(&mut *tx, &[kept, erased, unknown])
        .await
        .expect("get_many");
    tx.commit().await.expect("commit");
    assert_eq!(found.len(), 1);
    assert_eq!(found.get(&kept), Some(&kept_key));
    assert!(
        keys.get_many(&db.pool, &[])
            .await
            .expect("empty")
            .is_empty()
    );
}

#[tokio::test]
async fn a_sealed_event_round_trips_through_the_log() {
    let (db, keys) = data_keys().await;
    let store = PgEventStore::connect(&db.url, 4).expect("store connects");
    let (org, subject) = (Uuid::now_v7(), Uuid::now_v7());
    let original = contact_created(org, subject);
    let mut event = original.clone();
    keys.seal_event(&mut event).await.expect("seals");
    assert!(personal::has_sealed(&event.data));
    assert!(!event.data.to_string().contains("Ada"), "{}", event.data);

    let stream = format!("contact-{subject}");
    store
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await
        .expect("appends");
    let mut read = store
        .read_stream(&stream, None, Direction::Forwards, 10)
        .await
        .expect("reads");
    assert_eq!(read.len(), 1);
    assert!(personal::has_sealed(&read[0].data), "stored sealed");

    keys.open_event(&mut read[0]).await.expect("opens");
    assert_eq!(read[0].data, original.data);
    let name: Personal<String> =
        serde_json::from_value(read[0].data["full_name"].clone()).expect("decodes");
    assert_eq!(name.clear().map(String::as_str), Some("Ada Lovelace"));
}

#[tokio::test]
async fn after_erase_every_sealed_field_reads_as_erased() {
    let (_db, keys) = data_keys().await;
    let (org, subject) = (Uuid::now_v7(), Uuid::now_v7());
    let mut event = contact_created(org, subject);
    keys.seal_event(&mut event).await.expect("seals");
    let sealed = recorded(&event);
    keys.erase(subject).await.expect("erases");

    let mut one = sealed.clone();
    keys.open_event(&mut one).await.expect("opens as erased");
    let mut batch = vec![
        sealed.clone(),
        recorded(&NewEvent::new(org, "Other", json!({}))),
    ];
    keys.open_events(&mut batch).await.expect("opens as erased");
    for data in [&one.data, &batch[0].data] {
        assert!(!personal::has_sealed(data), "{data}");
        assert_eq!(data["full_name"], json!({"$erased": true}));
        assert_eq!(data["identities"][0]["address"], json!({"$erased": true}));
        assert_eq!(data["identities"][1]["chat_id"], json!({"$erased": true}));
        assert_eq!(data["tags"], json!(["vip"]));
        let name: Personal<String> =
            serde_json::from_value(data["full_name"].clone()).expect("decodes");
        assert!(name.is_erased());
    }

    // Nothing new about an erased subject is sealed under a fresh key.
    let mut later = contact_created(org, subject);
    let error = keys.seal_event(&mut later).await.expect_err("erased");
    assert!(matches!(error, DataKeyError::Erased { .. }), "{error}");
}

#[tokio::test]
async fn personal_data_without_a_subject_is_refused() {
    let (_db, keys) = data_keys().await;
    let mut event = contact_created(Uuid::now_v7(), Uuid::now_v7());
    event.metadata.subject = None;
    let error = keys.seal_event(&mut event).await.expect_err("no subject");
    assert!(matches!(error, DataKeyError::NoSubject { .. }), "{error}");

    let mut plain = NewEvent::new(Uuid::now_v7(), "Plain", json!({"n": 1}));
    keys.seal_event(&mut plain).await.expect("nothing to seal");
    assert_eq!(plain.data, json!({"n": 1}));
}

#[tokio::test]
async fn keys_survive_master_key_rotation() {
    let (db, keys) = data_keys().await;
    let (org, subject) = (Uuid::now_v7(), Uuid::now_v7());
    let key = keys.ensure(org, subject).await.expect("creates under dev");

    let rotated = Keyring::parse(&format!(
        "k2:{},dev:Y29yYmktZGV2ZWxvcG1lbnQta2V5LW5vdC1zZWNyZXQ=",
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
    ))
    .expect("valid");
    let rotated = DataKeys::new(db.pool.clone(), Arc::new(rotated));
    assert_eq!(rotated.get(subject).await.expect("unwraps"), Some(key));

    let forgotten =
        Keyring::parse("k2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").expect("valid");
    let forgotten = DataKeys::new(db.pool.clone(), Arc::new(forgotten));
    let error = forgotten.get(subject).await.expect_err("dev is gone");
    assert!(error.to_string().contains("`dev`"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_naming_one_subject_under_two_organisations_do_not_share_its_key() {
    let (_db, keys) = data_keys().await;
    let subject = Uuid::now_v7();
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    // Many callers at once, so that some of them share a statement.
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let keys = keys.clone();
            let org = if n % 2 == 0 { first } else { second };
            tokio::spawn(async move { (org, keys.ensure(org, subject).await) })
        })
        .collect();
    let mut owners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (org, Ok(_)) => owners.push(org),
            (_, Err(DataKeyError::OtherOrganisation { .. })) => {}
            (_, Err(error)) => panic!("{error}"),
        }
    }
    assert!(!owners.is_empty(), "one organisation holds the key");
    assert!(
        owners.windows(2).all(|pair| pair[0] == pair[1]),
        "only one organisation got the key: {owners:?}"
    );
}
