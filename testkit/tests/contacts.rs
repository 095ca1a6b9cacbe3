//! Contacts end to end: identifiers normalised and unique per organisation, updates, status
//! history, search, soft delete, and erasure that reaches the event log.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use event_store::data_keys::DataKeys;
use events::Keyring;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::testing::problem;
use testkit::{As, TestStack, error_fields};
use uuid::Uuid;

/// A stack with an admin of an organisation whose phone numbers default to Portugal.
async fn setup() -> (TestStack, As, Uuid) {
    let stack = TestStack::spawn().await;
    let ada = stack.sign_up("ada@example.com").await;
    let org = stack.create_org(&ada, "Clinic").await;
    let admin = As::User(ada);
    let (status, _) = stack
        .call(
            Method::PATCH,
            "/api/v1/organisation",
            &admin,
            Some(org),
            Some(json!({"branding": {"default_phone_region": "PT"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    (stack, admin, org)
}

async fn create(stack: &TestStack, who: &As, org: Uuid, body: Value) -> (StatusCode, Value) {
    stack
        .call(Method::POST, "/api/v1/contacts", who, Some(org), Some(body))
        .await
}

#[tokio::test]
async fn identifiers_are_normalised_and_a_duplicate_names_its_field_and_holder() {
    let (stack, admin, org) = setup().await;
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
    let (status, created) = create(
        &stack,
        &admin,
        org,
        json!({
            "full_name": "  Grace Hopper ", "email": " Grace@Example.COM ",
            "whatsapp": "912 345 678", "telegram_chat_id": "123456", "tags": ["VIP", "lisbon"],
            "notes": "Prefers mornings", "custom_fields": {"plan": "gold"}
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["contact_id"].as_str().unwrap().to_owned();
    let contact = stack
        .read(
            &admin,
            org,
            &format!("/api/v1/contacts/{id}"),
            &created["consistency_token"],
        )
        .await;
    assert_eq!(contact["full_name"], "Grace Hopper");
    assert_eq!(contact["email"], "grace@example.com");
    assert_eq!(contact["whatsapp"], "+351912345678");
    assert_eq!(contact["telegram_chat_id"], "123456");
    assert_eq!(contact["tags"], json!(["lisbon", "vip"]));
    assert_eq!(contact["status"], "active");
    assert_eq!(contact["custom_fields"]["plan"], "gold");

    // The same number written another way, and the same email in other case.
    let (status, body) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Impostor", "whatsapp": "+351 912345678"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["errors"][0]["field"], "whatsapp");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains(&id));
    let (status, body) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Impostor", "email": "GRACE@example.com", "instagram_user_id": "42"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["errors"][0]["field"], "email");
    // The failed create reserved nothing: its free identifier is still free.
    let (status, _) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Someone", "instagram_user_id": "42"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // Another organisation may hold the same identifiers.
    let other = stack.sign_up("other@example.com").await;
    let other_org = stack.create_org(&other, "Other").await;
    let (status, _) = create(
        &stack,
        &As::User(other),
        other_org,
        json!({"full_name": "Grace elsewhere", "email": "grace@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "", "email": "nope", "whatsapp": "12", "tags": [""], "custom_fields": {"$x": 1, "plan": "bronze"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = error_fields(&body);
    assert_eq!(
        fields,
        [
            "full_name",
            "email",
            "whatsapp",
            "tags",
            "custom_fields.$x",
            "custom_fields.plan"
        ]
    );
}

#[tokio::test]
async fn concurrent_creates_with_one_email_let_exactly_one_win() {
    let (stack, admin, org) = setup().await;
    let attempts = (0..8).map(|n| {
        create(
            &stack,
            &admin,
            org,
            json!({"full_name": format!("Twin {n}"), "email": "twin@example.com", "telegram_chat_id": format!("{}", 1000 + n)}),
        )
    });
    let answers = futures::future::join_all(attempts).await;
    let won = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let lost = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .count();
    assert_eq!((won, lost), (1, 7), "{answers:?}");
    // The losers' Telegram ids were not left reserved.
    for (n, (first_status, _)) in answers.iter().enumerate() {
        let (status, body) = create(
            &stack,
            &admin,
            org,
            json!({"full_name": "Later", "telegram_chat_id": format!("{}", 1000 + n)}),
        )
        .await;
        let winner = *first_status == StatusCode::CREATED;
        let expected = if winner {
            StatusCode::CONFLICT
        } else {
            StatusCode::CREATED
        };
        assert_eq!(status, expected, "telegram {n}: {body}");
    }
}

#[tokio::test]
async fn updates_move_identifiers_and_status_changes_keep_their_history() {
    let (stack, admin, org) = setup().await;
    let (_, a) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "A", "email": "a@example.com"}),
    )
    .await;
    let a_id = a["contact_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/contacts/{a_id}");
    let (status, _) = stack
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(org),
            Some(json!({"email": "a2@example.com", "add_tags": ["new"], "notes": null, "whatsapp_blocked": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The old address is free for another contact now.
    let (status, _) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "B", "email": "a@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = stack
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(org),
            Some(json!({"email": "a@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, written) = stack
        .call(
            Method::POST,
            &format!("{path}/status"),
            &admin,
            Some(org),
            Some(json!({"status": "unsubscribed", "reason": "asked by phone"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let contact = stack
        .read(&admin, org, &path, &written["consistency_token"])
        .await;
    assert_eq!(contact["email"], "a2@example.com");
    assert_eq!(contact["status"], "unsubscribed");
    assert_eq!(contact["whatsapp_blocked"], true);
    assert_eq!(contact["tags"], json!(["new"]));
    let change = &contact["status_history"][0];
    assert_eq!(change["from"], "active");
    assert_eq!(change["to"], "unsubscribed");
    assert_eq!(change["reason"], "asked by phone");
    assert_eq!(change["actor_kind"], "user");

    let (status, body) = stack
        .call(
            Method::POST,
            &format!("{path}/status"),
            &admin,
            Some(org),
            Some(json!({"status": "gone"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "status");

    let timeline = stack
        .read(
            &admin,
            org,
            &format!("{path}/timeline"),
            &written["consistency_token"],
        )
        .await;
    let kinds: Vec<&str> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "StatusChanged",
            "IdentityConflictRecorded",
            "ChannelFlagsChanged",
            "Tagged",
            "EmailChanged",
            "ContactCreated"
        ]
    );
    assert_eq!(timeline["items"][4]["data"]["email"], "a2@example.com");
}

#[tokio::test]
async fn lists_search_names_and_identifiers_filter_and_page() {
    let (stack, admin, org) = setup().await;
    let mut token = Value::Null;
    for (name, phone, tag) in [
        ("Ana Silva", "911111111", "vip"),
        ("Bruno Costa", "922222222", "new"),
        ("Ana Costa", "933333333", "vip"),
    ] {
        let (status, body) = create(
            &stack,
            &admin,
            org,
            json!({"full_name": name, "whatsapp": phone, "tags": [tag]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        token = body["consistency_token"].clone();
    }
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["full_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = stack
        .read(&admin, org, "/api/v1/contacts?q=ana&sort=name", &token)
        .await;
    assert_eq!(names(&page), ["Ana Costa", "Ana Silva"]);
    let page = stack
        .read(&admin, org, "/api/v1/contacts?q=%2B35192", &token)
        .await;
    assert_eq!(names(&page), ["Bruno Costa"]);
    let page = stack
        .read(&admin, org, "/api/v1/contacts?tag=vip", &token)
        .await;
    assert_eq!(names(&page), ["Ana Costa", "Ana Silva"], "newest first");
    let first = stack
        .read(&admin, org, "/api/v1/contacts?limit=2&sort=name", &token)
        .await;
    assert_eq!(names(&first), ["Ana Costa", "Ana Silva"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = stack
        .read(
            &admin,
            org,
            &format!("/api/v1/contacts?limit=2&sort=name&after={cursor}"),
            &token,
        )
        .await;
    assert_eq!(names(&rest), ["Bruno Costa"]);
    assert!(rest["next_cursor"].is_null());
    let (status, body) = stack
        .call(
            Method::GET,
            "/api/v1/contacts?status=gone&sort=size",
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn deleted_contacts_hide_and_come_back() {
    let (stack, admin, org) = setup().await;
    let (_, created) = create(&stack, &admin, org, json!({"full_name": "Temp"})).await;
    let path = format!(
        "/api/v1/contacts/{}",
        created["contact_id"].as_str().unwrap()
    );
    let (status, deleted) = stack
        .call(Method::DELETE, &path, &admin, Some(org), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let list = stack
        .read(
            &admin,
            org,
            "/api/v1/contacts",
            &deleted["consistency_token"],
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let (status, _) = stack
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(org),
            Some(json!({"full_name": "X"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a deleted contact is not updated"
    );
    let (status, restored) = stack
        .call(
            Method::POST,
            &format!("{path}/restore"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let list = stack
        .read(
            &admin,
            org,
            "/api/v1/contacts",
            &restored["consistency_token"],
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn erasure_destroys_personal_data_in_read_models_and_the_log() {
    let (stack, admin, org) = setup().await;
    let (_, created) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Erin Erased", "email": "erin@example.com", "whatsapp": "+351961234567", "notes": "secret notes"}),
    )
    .await;
    let id: Uuid = created["contact_id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/v1/contacts/{id}");

    // In the log, personal fields were never in the clear.
    let raw: Vec<Value> =
        sqlx::query_scalar("SELECT data FROM events WHERE stream = $1 ORDER BY version")
            .bind(format!("contact-{id}"))
            .fetch_all(&stack.db.pool)
            .await
            .unwrap();
    let log = Value::Array(raw).to_string();
    for secret in ["Erin", "erin@example.com", "961234567", "secret notes"] {
        assert!(!log.contains(secret), "{secret} is in the log in the clear");
    }

    let (status, erased) = stack
        .call(
            Method::DELETE,
            &format!("{path}?erase=true"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let contact = stack
        .read(&admin, org, &path, &erased["consistency_token"])
        .await;
    for field in ["full_name", "email", "whatsapp", "notes"] {
        assert!(contact[field].is_null(), "{field}: {contact}");
    }
    assert!(contact["erased_at"].is_string());
    let timeline = stack
        .read(
            &admin,
            org,
            &format!("{path}/timeline"),
            &erased["consistency_token"],
        )
        .await;
    assert!(!timeline.to_string().contains("Erin"), "{timeline}");
    let list = stack
        .read(
            &admin,
            org,
            "/api/v1/contacts",
            &erased["consistency_token"],
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // Erased contacts stay erased; their identifiers are free again.
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("{path}/restore"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "New Erin", "email": "erin@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // A replay of the read model from the log finds nothing of her either.
    let keys = DataKeys::new(stack.db.pool.clone(), Arc::new(Keyring::development()));
    let contacts = projector::Contacts::new(keys);
    projector::replay(
        stack.store.clone(),
        stack.db.pool.clone(),
        &contacts,
        projector::Progress::Quiet,
    )
    .await
    .unwrap();
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(c) FROM rm_contacts c WHERE contact_id = $1 UNION ALL
         SELECT to_jsonb(t) FROM rm_contact_timeline t WHERE contact_id = $1",
    )
    .bind(id)
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    let text = Value::Array(rows).to_string();
    for secret in ["Erin", "erin@example.com", "961234567", "secret notes"] {
        assert!(
            !text.contains(secret),
            "{secret} survived the replay: {text}"
        );
    }
}

#[tokio::test]
async fn a_retried_create_with_its_idempotency_key_answers_the_first_contact() {
    let (stack, admin, org) = setup().await;
    let send = |name: &str| {
        stack
            .request(Method::POST, "/api/v1/contacts", &admin, Some(org))
            .header("Idempotency-Key", "import-row-1")
            .json(&json!({"full_name": name, "email": "same@example.com"}))
            .send()
    };
    let first: Value = send("Same").await.unwrap().json().await.unwrap();
    let retry = send("Same").await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["contact_id"], first["contact_id"]);
    let other = send("Different").await.unwrap();
    let body = problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["type"], "urn:corbi:problem:idempotency-key-reused");
}

#[tokio::test]
async fn as_of_shows_a_contact_as_it_was_then() {
    let (stack, admin, org) = setup().await;
    let before = chrono::Utc::now();
    let (_, created) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Old Name", "email": "old@example.com"}),
    )
    .await;
    let path = format!(
        "/api/v1/contacts/{}",
        created["contact_id"].as_str().unwrap()
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let then = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, _) = stack
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(org),
            Some(json!({"full_name": "New Name", "email": "new@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let at = |time: chrono::DateTime<chrono::Utc>| {
        format!(
            "{path}?as_of={}",
            time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .replace('+', "%2B")
        )
    };
    let (status, old) = stack
        .call(Method::GET, &at(then), &admin, Some(org), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{old}");
    assert_eq!(old["full_name"], "Old Name");
    assert_eq!(old["email"], "old@example.com");
    let (_, now) = stack
        .call(
            Method::GET,
            &at(chrono::Utc::now()),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(now["full_name"], "New Name");
    let (status, _) = stack
        .call(Method::GET, &at(before), &admin, Some(org), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not created yet");
    let (status, body) = stack
        .call(
            Method::GET,
            &format!("{path}?as_of=yesterday"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "as_of");

    // After erasure the past is erased too.
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("{path}?erase=true"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, old) = stack
        .call(Method::GET, &at(then), &admin, Some(org), None)
        .await;
    assert!(old["full_name"].is_null(), "{old}");
    assert!(old["email"].is_null());
    assert_eq!(old["erased"], true);
}

#[tokio::test]
async fn a_taken_identifier_is_recorded_as_a_conflict_and_can_be_moved() {
    let (stack, admin, org) = setup().await;
    let (_, holder) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Holder", "email": "shared@example.com"}),
    )
    .await;
    let holder_id = holder["contact_id"].as_str().unwrap().to_owned();
    let (_, wanting) = create(&stack, &admin, org, json!({"full_name": "Wanting"})).await;
    let wanting_id = wanting["contact_id"].as_str().unwrap().to_owned();
    let (status, body) = stack
        .call(
            Method::PATCH,
            &format!("/api/v1/contacts/{wanting_id}"),
            &admin,
            Some(org),
            Some(json!({"email": "Shared@Example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains(&holder_id));

    // Listed for a person to settle, with who tried and what.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let conflict = loop {
        let (_, page) = stack
            .call(
                Method::GET,
                "/api/v1/contact-conflicts",
                &admin,
                Some(org),
                None,
            )
            .await;
        if let Some(first) = page["items"].as_array().and_then(|items| items.first()) {
            break first.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no conflict listed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(conflict["contact_id"], wanting_id);
    assert_eq!(conflict["holder_id"], holder_id);
    assert_eq!(conflict["identity"], "email");
    assert_eq!(conflict["value"], "shared@example.com");
    assert_eq!(conflict["actor_kind"], "user");
    assert!(conflict["resolution"].is_null());

    let resolve = format!(
        "/api/v1/contacts/{wanting_id}/conflicts/{}/resolve",
        conflict["conflict_id"].as_str().unwrap()
    );
    let (status, body) = stack
        .call(
            Method::POST,
            &resolve,
            &admin,
            Some(org),
            Some(json!({"action": "merge?"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "action");
    let (status, moved) = stack
        .call(
            Method::POST,
            &resolve,
            &admin,
            Some(org),
            Some(json!({"action": "move"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let token = &moved["consistency_token"];
    let wanting = stack
        .read(
            &admin,
            org,
            &format!("/api/v1/contacts/{wanting_id}"),
            token,
        )
        .await;
    let holder = stack
        .read(&admin, org, &format!("/api/v1/contacts/{holder_id}"), token)
        .await;
    assert_eq!(wanting["email"], "shared@example.com");
    assert!(holder["email"].is_null());
    let (_, open) = stack
        .call(
            Method::GET,
            "/api/v1/contact-conflicts",
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(open["items"].as_array().unwrap().len(), 0, "{open}");
    let (_, all) = stack
        .call(
            Method::GET,
            "/api/v1/contact-conflicts?status=all",
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(all["items"][0]["resolution"], "moved");
    // The identifier is the new holder's now: the old one cannot take it back unnoticed.
    let (status, _) = stack
        .call(
            Method::PATCH,
            &format!("/api/v1/contacts/{holder_id}"),
            &admin,
            Some(org),
            Some(json!({"email": "shared@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// How many `ContactCreated` events the contact's timeline shows, read at `token`.
async fn creations_in_timeline(
    stack: &TestStack,
    who: &As,
    org: Uuid,
    contact_id: &str,
    token: &Value,
) -> usize {
    let path = format!("/api/v1/contacts/{contact_id}/timeline");
    let timeline = stack.read(who, org, &path, token).await;
    timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "ContactCreated")
        .count()
}

#[tokio::test]
async fn merging_a_duplicate_moves_its_identifiers_and_history_and_unmerging_restores_both() {
    let (stack, admin, org) = setup().await;
    let (_, a) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Ana", "email": "ana@example.com"}),
    )
    .await;
    let (_, b) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Ana S.", "email": "ana.s@example.com", "whatsapp": "+351933000111", "tags": ["imported"]}),
    )
    .await;
    let (a_id, b_id) = (
        a["contact_id"].as_str().unwrap().to_owned(),
        b["contact_id"].as_str().unwrap().to_owned(),
    );
    let (status, body) = stack
        .call(
            Method::POST,
            &format!("/api/v1/contacts/{a_id}/merge"),
            &admin,
            Some(org),
            Some(json!({"source": a_id})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, merged) = stack
        .call(
            Method::POST,
            &format!("/api/v1/contacts/{a_id}/merge"),
            &admin,
            Some(org),
            Some(json!({"source": b_id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let token = &merged["consistency_token"];
    let a = stack
        .read(&admin, org, &format!("/api/v1/contacts/{a_id}"), token)
        .await;
    assert_eq!(a["email"], "ana@example.com", "A keeps its own email");
    assert_eq!(a["whatsapp"], "+351933000111", "B's phone moved");
    assert_eq!(a["tags"], json!(["imported"]));
    let b_view = stack
        .read(&admin, org, &format!("/api/v1/contacts/{b_id}"), token)
        .await;
    assert_eq!(b_view["contact_id"], a_id, "B resolves to A");
    assert_eq!(b_view["resolved_from"], b_id);
    let list = stack.read(&admin, org, "/api/v1/contacts", token).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let created = creations_in_timeline(&stack, &admin, org, &a_id, token).await;
    assert_eq!(created, 2, "B's history shows in A's timeline");
    // The moved phone is A's now.
    let (status, body) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "X", "whatsapp": "+351933000111"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["detail"].as_str().unwrap().contains(&a_id), "{body}");
    // A merged contact takes no other changes.
    let (status, _) = stack
        .call(
            Method::PATCH,
            &format!("/api/v1/contacts/{b_id}"),
            &admin,
            Some(org),
            Some(json!({"full_name": "B again"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, unmerged) = stack
        .call(
            Method::POST,
            &format!("/api/v1/contacts/{b_id}/unmerge"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{unmerged}");
    let token = &unmerged["consistency_token"];
    let a = stack
        .read(&admin, org, &format!("/api/v1/contacts/{a_id}"), token)
        .await;
    let b = stack
        .read(&admin, org, &format!("/api/v1/contacts/{b_id}"), token)
        .await;
    assert!(a["whatsapp"].is_null());
    assert_eq!(a["tags"], json!([]));
    assert_eq!(b["contact_id"], b_id);
    assert_eq!(b["whatsapp"], "+351933000111");
    assert_eq!(b["email"], "ana.s@example.com");
    let list = stack.read(&admin, org, "/api/v1/contacts", token).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let created = creations_in_timeline(&stack, &admin, org, &a_id, token).await;
    assert_eq!(created, 1, "B's history went back");
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/api/v1/contacts/{b_id}/unmerge"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "not merged any more");
}

#[tokio::test]
async fn erasing_a_contact_erases_the_duplicates_merged_into_it() {
    let (stack, admin, org) = setup().await;
    let (_, a) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Keeper", "email": "k@example.com"}),
    )
    .await;
    let (_, b) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Dup", "email": "dup@example.com", "whatsapp": "+351966000111"}),
    )
    .await;
    let (a_id, b_id) = (
        a["contact_id"].as_str().unwrap().to_owned(),
        b["contact_id"].as_str().unwrap().to_owned(),
    );
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/api/v1/contacts/{a_id}/merge"),
            &admin,
            Some(org),
            Some(json!({"source": b_id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, erased) = stack
        .call(
            Method::DELETE,
            &format!("/api/v1/contacts/{a_id}?erase=true"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(c) FROM rm_contacts c WHERE contact_id = ANY($1::uuid[])",
    )
    .bind(vec![
        a_id.parse::<Uuid>().unwrap(),
        b_id.parse::<Uuid>().unwrap(),
    ])
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    // The projection may trail the answer by a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut text = Value::Array(rows).to_string();
    while [
        "Keeper",
        "Dup",
        "k@example.com",
        "dup@example.com",
        "966000111",
    ]
    .iter()
    .any(|s| text.contains(s))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "personal data left: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let rows: Vec<Value> = sqlx::query_scalar(
            "SELECT to_jsonb(c) FROM rm_contacts c WHERE contact_id = ANY($1::uuid[])",
        )
        .bind(vec![
            a_id.parse::<Uuid>().unwrap(),
            b_id.parse::<Uuid>().unwrap(),
        ])
        .fetch_all(&stack.db.pool)
        .await
        .unwrap();
        text = Value::Array(rows).to_string();
    }
    // Both keys are gone, and every identifier is free again.
    for email in ["k@example.com", "dup@example.com"] {
        let (status, body) = create(
            &stack,
            &admin,
            org,
            json!({"full_name": "Again", "email": email}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{email}: {body}");
    }
}

#[tokio::test]
async fn removing_a_custom_field_hides_its_values_but_keeps_them_in_history() {
    let (stack, admin, org) = setup().await;
    let (status, _) = stack
        .call(
            Method::POST,
            "/api/v1/custom-fields",
            &admin,
            Some(org),
            Some(json!({"key": "shoe_size", "label": "Shoe size", "kind": "number"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, created) = create(
        &stack,
        &admin,
        org,
        json!({"full_name": "Feet", "custom_fields": {"shoe_size": 42}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!(
        "/api/v1/contacts/{}",
        created["contact_id"].as_str().unwrap()
    );
    let (status, body) = stack
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(org),
            Some(json!({"custom_fields": {"shoe_size": "big"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "custom_fields.shoe_size");
    let contact = stack
        .read(&admin, org, &path, &created["consistency_token"])
        .await;
    assert_eq!(contact["custom_fields"]["shoe_size"], 42);

    let (status, removed) = stack
        .call(
            Method::DELETE,
            "/api/v1/custom-fields/shoe_size",
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    // The detail reads the custom fields model too, and the token waits for both.
    let contact = stack
        .read(&admin, org, &path, &removed["consistency_token"])
        .await;
    assert!(
        contact["custom_fields"].get("shoe_size").is_none(),
        "{contact}"
    );
    let timeline = stack
        .read(&admin, org, &format!("{path}/timeline"), &Value::Null)
        .await;
    let created = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "ContactCreated")
        .unwrap();
    assert_eq!(
        created["data"]["custom_fields"]["shoe_size"], 42,
        "history keeps the value"
    );
}

#[tokio::test]
async fn lists_filter_by_group_and_custom_field_value() {
    let (stack, admin, org) = setup().await;
    let (status, _) = stack
        .call(
            Method::POST,
            "/api/v1/custom-fields",
            &admin,
            Some(org),
            Some(json!({"key": "plan", "label": "Plan", "kind": "select", "options": ["gold", "silver"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut ids = Vec::new();
    for (name, plan) in [
        ("Gold One", "gold"),
        ("Silver One", "silver"),
        ("Gold Two", "gold"),
    ] {
        let (status, body) = create(
            &stack,
            &admin,
            org,
            json!({"full_name": name, "custom_fields": {"plan": plan}}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["contact_id"].as_str().unwrap().to_owned());
    }
    let (status, group) = stack
        .call(
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(org),
            Some(json!({"name": "Team"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["group_id"].as_str().unwrap();
    let (status, added) = stack
        .call(
            Method::POST,
            &format!("/api/v1/groups/{group_id}/contacts"),
            &admin,
            Some(org),
            Some(json!({"contact_ids": [ids[0], ids[1]]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["full_name"].as_str().unwrap().to_owned())
            .collect()
    };
    // A group filter reads the groups model too, and the token waits for both.
    let page = stack
        .read(
            &admin,
            org,
            &format!("/api/v1/contacts?group={group_id}&sort=name"),
            &added["consistency_token"],
        )
        .await;
    assert_eq!(names(&page), ["Gold One", "Silver One"]);
    let page = stack
        .read(
            &admin,
            org,
            "/api/v1/contacts?custom_field=plan:gold&sort=name",
            &Value::Null,
        )
        .await;
    assert_eq!(names(&page), ["Gold One", "Gold Two"]);
    let (status, body) = stack
        .call(
            Method::GET,
            "/api/v1/contacts?group=nope&custom_field=plan",
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
}
