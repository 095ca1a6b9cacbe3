//! Custom field definitions end to end: defined, changed and removed by admins, listed in
//! display order, every invalid input named by its field, and kept per organisation.
#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{As, TestStack, error_fields};
use uuid::Uuid;

const FIELDS: &str = "/api/v1/custom-fields";

async fn setup() -> (TestStack, As, Uuid) {
    let stack = TestStack::spawn().await;
    let ada = stack.sign_up("ada@example.com").await;
    let org = stack.create_org(&ada, "Clinic").await;
    (stack, As::User(ada), org)
}

async fn define(stack: &TestStack, who: &As, org: Uuid, body: Value) -> (StatusCode, Value) {
    stack
        .call(Method::POST, FIELDS, who, Some(org), Some(body))
        .await
}

async fn change(
    stack: &TestStack,
    who: &As,
    org: Uuid,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    stack
        .call(
            Method::PATCH,
            &format!("{FIELDS}/{key}"),
            who,
            Some(org),
            Some(body),
        )
        .await
}

/// The definitions once the projection has the write `token` made.
async fn list(stack: &TestStack, who: &As, org: Uuid, token: &Value) -> Vec<Value> {
    let body = stack.read(who, org, FIELDS, token).await;
    body["items"].as_array().unwrap().clone()
}

fn keys(items: &[Value]) -> Vec<&str> {
    items.iter().map(|f| f["key"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn definitions_are_defined_changed_removed_and_listed_in_order() {
    let (stack, admin, org) = setup().await;
    let (status, plan) = define(
        &stack,
        &admin,
        org,
        json!({"key": "plan", "label": " Plan ", "kind": "select", "required": true,
               "options": ["gold", " silver "]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    assert_eq!(plan["key"], "plan");
    let (status, _) = define(
        &stack,
        &admin,
        org,
        json!({"key": "since", "label": "Client since", "kind": "date"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, vip) = define(
        &stack,
        &admin,
        org,
        json!({"key": "vip", "label": "VIP", "kind": "boolean", "display_order": -1}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let items = list(&stack, &admin, org, &vip["consistency_token"]).await;
    assert_eq!(keys(&items), ["vip", "plan", "since"]);
    assert_eq!(items[1]["label"], "Plan");
    assert_eq!(items[1]["kind"], "select");
    assert_eq!(items[1]["required"], true);
    assert_eq!(items[1]["options"], json!(["gold", "silver"]));
    assert_eq!(items[1]["display_order"], 0);
    assert_eq!(items[2]["display_order"], 1, "after the last one");
    assert_eq!(items[2]["options"], json!([]));

    // The same definition again is a retry; another one under the key is refused.
    let (status, same) = define(
        &stack,
        &admin,
        org,
        json!({"key": "plan", "label": "Plan", "kind": "select", "required": true,
               "options": ["gold", "silver"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(same["consistency_token"].is_null());
    let (status, _) = define(
        &stack,
        &admin,
        org,
        json!({"key": "plan", "label": "Plan", "kind": "text"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, changed) = change(
        &stack,
        &admin,
        org,
        "plan",
        json!({"label": "Plan tier", "kind": "select", "options": ["gold", "silver", "platinum"],
               "required": false, "display_order": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let items = list(&stack, &admin, org, &changed["consistency_token"]).await;
    assert_eq!(keys(&items), ["vip", "since", "plan"]);
    assert_eq!(items[2]["label"], "Plan tier");
    assert_eq!(items[2]["options"], json!(["gold", "silver", "platinum"]));
    assert_eq!(items[2]["required"], false);
    let (status, unchanged) =
        change(&stack, &admin, org, "plan", json!({"label": "Plan tier"})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(unchanged["consistency_token"].is_null());

    let (status, removed) = stack
        .call(
            Method::DELETE,
            &format!("{FIELDS}/since"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    let items = list(&stack, &admin, org, &removed["consistency_token"]).await;
    assert_eq!(keys(&items), ["vip", "plan"]);
    let (status, again) = stack
        .call(
            Method::DELETE,
            &format!("{FIELDS}/since"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "removing again is a retry");
    assert!(again["consistency_token"].is_null());
    // A removed key comes back only with its kind: its hidden values come back with it.
    let (status, problem) = define(
        &stack,
        &admin,
        org,
        json!({"key": "since", "label": "Since", "kind": "text"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&problem), ["key"]);
    let (status, back) = define(
        &stack,
        &admin,
        org,
        json!({"key": "since", "label": "Since", "kind": "date"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let items = list(&stack, &admin, org, &back["consistency_token"]).await;
    assert_eq!(keys(&items), ["vip", "plan", "since"]);

    for (method, key) in [(Method::PATCH, "nope"), (Method::DELETE, "nope")] {
        let body = (method == Method::PATCH).then(|| json!({"label": "x"}));
        let (status, _) = stack
            .call(method, &format!("{FIELDS}/{key}"), &admin, Some(org), body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn every_invalid_input_names_its_field() {
    let (stack, admin, org) = setup().await;
    let cases = [
        (
            json!({"key": "Bad Key", "label": "", "kind": "colour", "options": ["x"]}),
            vec!["key", "label", "kind"],
        ),
        (
            json!({"key": "_x", "label": "x".repeat(101), "kind": "text"}),
            vec!["key", "label"],
        ),
        (
            json!({"key": format!("a{}", "b".repeat(50)), "label": "L", "kind": "text"}),
            vec!["key"],
        ),
        (
            json!({"key": "tier", "label": "Tier", "kind": "select"}),
            vec!["options"],
        ),
        (
            json!({"key": "tier", "label": "Tier", "kind": "number", "options": ["1"]}),
            vec!["options"],
        ),
        (
            json!({"key": "tier", "label": "Tier", "kind": "multi_select", "options": ["a", " a"]}),
            vec!["options"],
        ),
        (
            json!({"key": "tier", "label": "Tier", "kind": "select", "options": [""]}),
            vec!["options"],
        ),
        (
            json!({"key": "tier", "label": "Tier", "kind": "select",
                   "options": (0..101).map(|n| n.to_string()).collect::<Vec<_>>()}),
            vec!["options"],
        ),
        (json!({"key": "tier", "label": "Tier"}), vec!["kind"]),
        (
            json!({"key": "tier", "label": "Tier", "kind": "text", "colour": "red"}),
            vec!["colour"],
        ),
    ];
    for (body, expected) in cases {
        let (status, problem) = define(&stack, &admin, org, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(error_fields(&problem), expected, "{body}");
    }

    let (status, plan) = define(
        &stack,
        &admin,
        org,
        json!({"key": "plan", "label": "Plan", "kind": "select", "options": ["gold"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let changes = [
        (json!({"kind": "text"}), vec!["kind"]),
        (json!({"kind": "colour"}), vec!["kind"]),
        (
            json!({"label": " ", "options": []}),
            vec!["label", "options"],
        ),
        (json!({"options": ["gold", "gold"]}), vec!["options"]),
        (json!({"key": "other"}), vec!["key"]),
    ];
    for (body, expected) in changes {
        let (status, problem) = change(&stack, &admin, org, "plan", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(error_fields(&problem), expected, "{body}");
    }
    let items = list(&stack, &admin, org, &plan["consistency_token"]).await;
    assert_eq!(keys(&items), ["plan"], "nothing else was defined");
    assert_eq!(items[0]["options"], json!(["gold"]), "nothing changed");
}

#[tokio::test]
async fn definitions_belong_to_their_organisation_and_its_admins() {
    let (stack, admin, org) = setup().await;
    let (_, plan) = define(
        &stack,
        &admin,
        org,
        json!({"key": "plan", "label": "Plan", "kind": "text"}),
    )
    .await;
    let As::User(ada) = &admin else {
        unreachable!("setup signs a user in")
    };
    let staff = As::User(stack.member(ada, org, "bob@example.com", "staff").await);
    let (status, _) = define(
        &stack,
        &staff,
        org,
        json!({"key": "tier", "label": "Tier", "kind": "text"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        keys(&list(&stack, &staff, org, &plan["consistency_token"]).await),
        ["plan"],
        "staff read them"
    );

    let other = stack.sign_up("other@example.com").await;
    let other_org = stack.create_org(&other, "Other").await;
    let outsider = As::User(other);
    assert!(
        list(&stack, &outsider, other_org, &plan["consistency_token"])
            .await
            .is_empty()
    );
    let (status, _) = change(
        &stack,
        &outsider,
        other_org,
        "plan",
        json!({"label": "Mine"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("{FIELDS}/plan"),
            &outsider,
            Some(other_org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The same key is free in another organisation.
    let (status, _) = define(
        &stack,
        &outsider,
        other_org,
        json!({"key": "plan", "label": "Their plan", "kind": "number"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = stack
        .call(Method::GET, FIELDS, &outsider, Some(org), None)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "naming an organisation one is not in"
    );
}

/// Creates a contact without custom fields on `server` as `who`, answering the status.
async fn create_plain_contact(
    server: &service::testing::TestServer,
    who: &As,
    org: Uuid,
    name: &str,
) -> StatusCode {
    let As::User(user) = who else {
        panic!("a user creates the contacts")
    };
    server
        .client
        .post(server.url("/api/v1/contacts"))
        .bearer_auth(&user.access_token)
        .header("X-Org-ID", org.to_string())
        .json(&json!({ "full_name": name }))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_new_definition_is_enforced_at_once_here_and_soon_in_every_other_process() {
    let (stack, admin, org) = setup().await;
    // A second process over the same database, whose definitions (none yet) are now in memory.
    let other = stack.server_with_store(stack.store.clone());
    assert_eq!(
        create_plain_contact(&other, &admin, org, "Before").await,
        StatusCode::CREATED
    );

    let (status, _) = define(
        &stack,
        &admin,
        org,
        json!({"key": "plan", "label": "Plan", "kind": "text", "required": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Here at once: the definition's own process.
    let (status, problem) = stack
        .call(
            Method::POST,
            "/api/v1/contacts",
            &admin,
            Some(org),
            Some(json!({"full_name": "Here"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&problem), ["custom_fields.plan"]);
    // There as soon as the announcement arrives: well within two seconds, not the entries'
    // minute-long lifetime.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let status = create_plain_contact(&other, &admin, org, "There").await;
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            break;
        }
        assert_eq!(status, StatusCode::CREATED);
        assert!(
            std::time::Instant::now() < deadline,
            "the other process still accepts contacts without the required field"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
