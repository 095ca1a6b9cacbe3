//! Contact groups end to end: create and change, bulk membership with live counts, unknown
//! contacts refused by id, members with their names, deletion, and tenant isolation.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use projector::Projection;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{As, Options, TestStack, error_fields};
use uuid::Uuid;

async fn setup() -> (TestStack, As, Uuid) {
    let stack = TestStack::spawn().await;
    let ada = stack.sign_up("ada@example.com").await;
    let org = stack.create_org(&ada, "Clinic").await;
    (stack, As::User(ada), org)
}

/// A new contact of `org`; returns its id.
async fn contact(stack: &TestStack, who: &As, org: Uuid, name: &str) -> String {
    let (status, body) = stack
        .call(
            Method::POST,
            "/api/v1/contacts",
            who,
            Some(org),
            Some(json!({"full_name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["contact_id"].as_str().unwrap().to_owned()
}

async fn create_group(stack: &TestStack, who: &As, org: Uuid, body: Value) -> (StatusCode, Value) {
    stack
        .call(Method::POST, "/api/v1/groups", who, Some(org), Some(body))
        .await
}

fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["contact_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn groups_are_created_changed_listed_and_deleted() {
    let (stack, admin, org) = setup().await;
    let (status, created) = create_group(
        &stack,
        &admin,
        org,
        json!({"name": "  VIP clients ", "description": "Our best", "colour": "#1E90FF"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["group_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/groups/{id}");
    let group = stack
        .read(&admin, org, &path, &created["consistency_token"])
        .await;
    assert_eq!(group["name"], "VIP clients");
    assert_eq!(group["description"], "Our best");
    assert_eq!(group["colour"], "#1e90ff");
    assert_eq!(group["member_count"], 0);

    let (status, problem) = create_group(
        &stack,
        &admin,
        org,
        json!({"name": " ", "description": "x".repeat(1001), "colour": "blue"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&problem), ["name", "description", "colour"]);

    let (status, changed) = stack
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(org),
            Some(json!({"name": "VIP", "colour": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let group = stack
        .read(&admin, org, &path, &changed["consistency_token"])
        .await;
    assert_eq!(
        (&group["name"], &group["description"], &group["colour"]),
        (&json!("VIP"), &json!("Our best"), &Value::Null)
    );
    let (status, same) = stack
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(org),
            Some(json!({"name": "VIP"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(same["consistency_token"].is_null(), "nothing changed");
    let (status, problem) = stack
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(org),
            Some(json!({"colour": "#12345"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&problem), ["colour"]);

    // Listed by name, in pages.
    for name in ["beta testers", "Alpha"] {
        let (status, _) = create_group(&stack, &admin, org, json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, last) = create_group(&stack, &admin, org, json!({"name": "Zulu"})).await;
    let page = stack
        .read(
            &admin,
            org,
            "/api/v1/groups?limit=3",
            &last["consistency_token"],
        )
        .await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alpha", "beta testers", "VIP"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = stack
        .read(
            &admin,
            org,
            &format!("/api/v1/groups?limit=3&after={cursor}"),
            &Value::Null,
        )
        .await;
    assert_eq!(rest["items"][0]["name"], "Zulu");
    assert!(rest["next_cursor"].is_null());
    let found = stack
        .read(&admin, org, "/api/v1/groups?q=ET", &Value::Null)
        .await;
    assert_eq!(found["items"][0]["name"], "beta testers");
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let (status, problem) = stack
        .call(
            Method::GET,
            "/api/v1/groups?after=nope&limit=0",
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&problem), ["after", "limit"]);

    // Staff may change groups; only admins delete them.
    let As::User(ada) = &admin else {
        unreachable!("setup signs a user in")
    };
    let staff = As::User(stack.member(ada, org, "bob@example.com", "staff").await);
    let (status, _) = stack
        .call(
            Method::PATCH,
            &path,
            &staff,
            Some(org),
            Some(json!({"description": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = stack
        .call(Method::DELETE, &path, &staff, Some(org), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, deleted) = stack
        .call(Method::DELETE, &path, &admin, Some(org), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let list = stack
        .read(&admin, org, "/api/v1/groups", &deleted["consistency_token"])
        .await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["group_id"] != id.as_str())
    );
    let (status, _) = stack
        .call(Method::GET, &path, &admin, Some(org), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, again) = stack
        .call(Method::DELETE, &path, &admin, Some(org), None)
        .await;
    assert_eq!(status, StatusCode::OK, "deleting again is a retry");
    assert!(again["consistency_token"].is_null());
    let (status, _) = stack
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(org),
            Some(json!({"name": "Back"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bulk_membership_keeps_a_live_count_and_refuses_unknown_contacts() {
    let (stack, admin, org) = setup().await;
    let ada_id = contact(&stack, &admin, org, "Ada").await;
    let bob_id = contact(&stack, &admin, org, "Bob").await;
    let cy_id = contact(&stack, &admin, org, "Cy").await;
    let (_, group) = create_group(&stack, &admin, org, json!({"name": "Leads"})).await;
    let group_id = group["group_id"].as_str().unwrap();
    let path = format!("/api/v1/groups/{group_id}");
    let members = format!("{path}/contacts");
    let add = |body: Value| stack.call(Method::POST, &members, &admin, Some(org), Some(body));

    let (status, added) = add(json!({"contact_ids": [ada_id, bob_id, ada_id]})).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["added"], 2, "a contact listed twice counts once");
    let group = stack
        .read(&admin, org, &path, &added["consistency_token"])
        .await;
    assert_eq!(group["member_count"], 2);

    let (status, added) = add(json!({"contact_ids": [ada_id, cy_id]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        added["added"], 1,
        "a member added again is not counted again"
    );
    let (_, again) = add(json!({"contact_ids": [ada_id]})).await;
    assert_eq!(again["added"], 0);
    assert!(again["consistency_token"].is_null(), "nothing appended");
    let group = stack
        .read(&admin, org, &path, &added["consistency_token"])
        .await;
    assert_eq!(group["member_count"], 3);

    // Ids that are not the organisation's contacts are named, and nothing is added.
    let stranger = Uuid::now_v7().to_string();
    let other = stack.sign_up("other@example.com").await;
    let other_org = stack.create_org(&other, "Other").await;
    let theirs = contact(&stack, &As::User(other.clone()), other_org, "Theirs").await;
    let newcomer = contact(&stack, &admin, org, "Newcomer").await;
    let (status, problem) = add(json!({"contact_ids": [newcomer, stranger, theirs, bob_id]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(error_fields(&problem), ["contact_ids"]);
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&stranger) && message.contains(&theirs),
        "{message}"
    );
    assert!(
        !message.contains(&newcomer) && !message.contains(&bob_id),
        "{message}"
    );
    for bad in [json!({"contact_ids": []}), json!({"contact_ids": ["nope"]})] {
        let (status, problem) = add(bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_fields(&problem), ["contact_ids"]);
    }
    let too_many: Vec<String> = (0..1001).map(|_| Uuid::now_v7().to_string()).collect();
    let (status, problem) = add(json!({"contact_ids": too_many})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1000")
    );
    // A deleted contact is no candidate either, once the read model knows (until then it may
    // join, as it could have just before its deletion).
    let (status, deleted) = stack
        .call(
            Method::DELETE,
            &format!("/api/v1/contacts/{newcomer}"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let contact_path = format!("/api/v1/contacts/{newcomer}");
    stack
        .read(&admin, org, &contact_path, &deleted["consistency_token"])
        .await;
    let (status, problem) = add(json!({"contact_ids": [newcomer]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&newcomer)
    );
    let group = stack.read(&admin, org, &path, &Value::Null).await;
    assert_eq!(group["member_count"], 3);

    // Members, newest first, in pages, with their names.
    let page = stack
        .read(
            &admin,
            org,
            &format!("{members}?limit=2"),
            &added["consistency_token"],
        )
        .await;
    assert_eq!(ids(&page), [cy_id.as_str(), bob_id.as_str()]);
    assert_eq!(page["items"][0]["full_name"], "Cy");
    assert_eq!(page["items"][0]["status"], "active");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = stack
        .read(
            &admin,
            org,
            &format!("{members}?limit=2&after={cursor}"),
            &Value::Null,
        )
        .await;
    assert_eq!(ids(&rest), [ada_id.as_str()]);
    assert!(rest["next_cursor"].is_null());

    // Bulk and single removal; non-members are ignored.
    let (status, removed) = stack
        .call(
            Method::POST,
            &format!("{members}/remove"),
            &admin,
            Some(org),
            Some(json!({"contact_ids": [bob_id, stranger]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(
        (&removed["added"], &removed["removed"]),
        (&json!(0), &json!(1))
    );
    let (status, removed) = stack
        .call(
            Method::DELETE,
            &format!("{members}/{cy_id}"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(removed["removed"], 1);
    let (status, none) = stack
        .call(
            Method::DELETE,
            &format!("{members}/{cy_id}"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["removed"], 0);
    let group = stack
        .read(&admin, org, &path, &removed["consistency_token"])
        .await;
    assert_eq!(group["member_count"], 1);
    let (_, back) = add(json!({"contact_ids": [bob_id]})).await;
    assert_eq!(back["added"], 1, "removed, then a member again");
    let group = stack
        .read(&admin, org, &path, &back["consistency_token"])
        .await;
    assert_eq!(group["member_count"], 2);

    // An erased member stays, without a name.
    let (status, erased) = stack
        .call(
            Method::DELETE,
            &format!("/api/v1/contacts/{ada_id}?erase=true"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    let token = &erased["consistency_token"];
    stack
        .read(&admin, org, &format!("/api/v1/contacts/{ada_id}"), token)
        .await;
    let page = stack.read(&admin, org, &members, token).await;
    let ada = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["contact_id"] == ada_id.as_str())
        .unwrap();
    assert!(
        ada["full_name"].is_null() && !ada["erased_at"].is_null(),
        "{ada}"
    );
}

#[tokio::test]
async fn another_organisations_group_is_not_found() {
    let (stack, admin, org) = setup().await;
    let ada_id = contact(&stack, &admin, org, "Ada").await;
    let (_, group) = create_group(&stack, &admin, org, json!({"name": "Ours"})).await;
    let group_id = group["group_id"].as_str().unwrap();
    let path = format!("/api/v1/groups/{group_id}");

    let other = stack.sign_up("other@example.com").await;
    let other_org = stack.create_org(&other, "Other").await;
    let outsider = As::User(other);
    for (method, path, body) in [
        (Method::GET, path.clone(), None),
        (Method::GET, format!("{path}/contacts"), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "Mine"}))),
        (Method::DELETE, path.clone(), None),
        (
            Method::POST,
            format!("{path}/contacts"),
            Some(json!({"contact_ids": [ada_id]})),
        ),
        (
            Method::POST,
            format!("{path}/contacts/remove"),
            Some(json!({"contact_ids": [ada_id]})),
        ),
        (Method::DELETE, format!("{path}/contacts/{ada_id}"), None),
    ] {
        let (status, _) = stack
            .call(method.clone(), &path, &outsider, Some(other_org), body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (_, theirs) = create_group(&stack, &outsider, other_org, json!({"name": "Theirs"})).await;
    let list = stack
        .read(
            &outsider,
            other_org,
            "/api/v1/groups",
            &theirs["consistency_token"],
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["name"], "Theirs");
    // Nor can another organisation's contact join their group.
    let (status, problem) = stack
        .call(
            Method::POST,
            &format!(
                "/api/v1/groups/{}/contacts",
                theirs["group_id"].as_str().unwrap()
            ),
            &outsider,
            Some(other_org),
            Some(json!({"contact_ids": [ada_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&problem), ["contact_ids"]);
}

#[tokio::test]
async fn an_idempotency_key_makes_a_create_safe_to_retry() {
    let (stack, admin, org) = setup().await;
    let send = |name: &str| {
        stack
            .request(Method::POST, "/api/v1/groups", &admin, Some(org))
            .header("Idempotency-Key", "group-1")
            .json(&json!({"name": name}))
            .send()
    };
    let first: Value = send("Leads").await.unwrap().json().await.unwrap();
    let retry = send("Leads").await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["group_id"], first["group_id"]);
    assert!(retry["consistency_token"].is_null());
    let reused = send("Other").await.unwrap();
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// A contact the read model does not have yet (here: the contacts projection is not running at
/// all) is found in its stream, so a contact created a moment ago can be added at once.
#[tokio::test]
async fn a_contact_not_yet_projected_can_be_added() {
    let projections: Vec<Arc<dyn Projection>> =
        vec![Arc::new(projector::Access), Arc::new(projector::Groups)];
    let stack = TestStack::spawn_with_options(Options {
        projections: Some(projections),
        ..Options::default()
    })
    .await;
    let ada = stack.sign_up("ada@example.com").await;
    let org = stack.create_org(&ada, "Clinic").await;
    let admin = As::User(ada);
    let ada_id = contact(&stack, &admin, org, "Ada").await;
    let (_, group) = create_group(&stack, &admin, org, json!({"name": "Leads"})).await;
    let members = format!(
        "/api/v1/groups/{}/contacts",
        group["group_id"].as_str().unwrap()
    );
    let (status, added) = stack
        .call(
            Method::POST,
            &members,
            &admin,
            Some(org),
            Some(json!({"contact_ids": [ada_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["added"], 1);
    let (status, problem) = stack
        .call(
            Method::POST,
            &members,
            &admin,
            Some(org),
            Some(json!({"contact_ids": [Uuid::now_v7()]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
}

/// The members of each group (sorted ids) and its count, read at `token`.
async fn memberships(
    stack: &TestStack,
    who: &As,
    org: Uuid,
    groups: &[&str],
    token: &Value,
) -> Vec<(Vec<String>, i64)> {
    let mut all = Vec::new();
    for group_id in groups {
        let page = stack
            .read(
                who,
                org,
                &format!("/api/v1/groups/{group_id}/contacts"),
                token,
            )
            .await;
        let mut members: Vec<String> = ids(&page).into_iter().map(str::to_owned).collect();
        members.sort();
        let group = stack
            .read(who, org, &format!("/api/v1/groups/{group_id}"), token)
            .await;
        all.push((members, group["member_count"].as_i64().unwrap()));
    }
    all
}

#[tokio::test]
async fn a_merge_moves_memberships_and_unmerging_takes_back_only_what_it_added() {
    let (stack, admin, org) = setup().await;
    let a = contact(&stack, &admin, org, "Ana").await;
    let b = contact(&stack, &admin, org, "Ana S.").await;
    let mut groups = Vec::new();
    for (name, members) in [
        ("Both", vec![&a, &b]),
        ("B only", vec![&b]),
        ("B later", vec![&b]),
        ("Gone", vec![&b]),
        ("A only", vec![&a]),
    ] {
        let (status, group) = create_group(&stack, &admin, org, json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{group}");
        let group_id = group["group_id"].as_str().unwrap().to_owned();
        let (status, body) = stack
            .call(
                Method::POST,
                &format!("/api/v1/groups/{group_id}/contacts"),
                &admin,
                Some(org),
                Some(json!({"contact_ids": members})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        groups.push(group_id);
    }
    let [both, b_only, b_later, gone, a_only] = [0, 1, 2, 3, 4].map(|i| groups[i].as_str());

    // Straight after the last membership write: the merge must still see it.
    let (status, merged) = stack
        .call(
            Method::POST,
            &format!("/api/v1/contacts/{a}/merge"),
            &admin,
            Some(org),
            Some(json!({"source": b})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let token = &merged["consistency_token"];
    let only_a = (vec![a.clone()], 1);
    assert_eq!(
        memberships(
            &stack,
            &admin,
            org,
            &groups.iter().map(String::as_str).collect::<Vec<_>>(),
            token
        )
        .await,
        vec![only_a.clone(); 5],
        "B left every group and A is in each once"
    );
    let contact = stack
        .read(&admin, org, &format!("/api/v1/contacts/{a}"), token)
        .await;
    assert_eq!(contact["groups"].as_array().unwrap().len(), 5, "{contact}");
    // A merged contact joins no group: it resolves to A, who is there already.
    let (status, body) = stack
        .call(
            Method::POST,
            &format!("/api/v1/groups/{a_only}/contacts"),
            &admin,
            Some(org),
            Some(json!({"contact_ids": [b]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains(&b), "{body}");

    // Since the merge: A left "B later" by hand, and "Gone" was deleted.
    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{b_later}/contacts/{a}"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{gone}"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, unmerged) = stack
        .call(
            Method::POST,
            &format!("/api/v1/contacts/{b}/unmerge"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{unmerged}");
    let token = &unmerged["consistency_token"];
    let mut a_and_b = vec![a.clone(), b.clone()];
    a_and_b.sort();
    assert_eq!(
        memberships(&stack, &admin, org, &[both, b_only, b_later, a_only], token).await,
        vec![
            (a_and_b, 2),
            (vec![b.clone()], 1),
            (vec![b.clone()], 1),
            (vec![a.clone()], 1),
        ],
        "B is back where it was; A kept only the groups it had before the merge"
    );
    let (status, _) = stack
        .call(
            Method::GET,
            &format!("/api/v1/groups/{gone}"),
            &admin,
            Some(org),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a deleted group stays deleted"
    );
}
