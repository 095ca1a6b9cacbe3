//! Every `/api/v1` route, walked with the callers that must be refused: nobody (401), a member of
//! another organisation (404, never 403), and a viewer on anything beyond reading (403).
//!
//! The table must list every documented route: a route added without a row here fails
//! `every_documented_route_is_in_the_table`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{As, TestStack, User};
use uuid::Uuid;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// No credentials needed (registration, sign-in, refresh).
    Public,
    /// A signed-in user, no organisation.
    User,
    /// A member of the organisation with at least this role.
    Org(events::Role),
}

use Guard::{Org, Public, User as SignedIn};
use events::Role::{Admin, Staff, Viewer};

const ROUTES: &[(&str, &str, Guard)] = &[
    ("POST", "/api/v1/auth/register", Public),
    ("POST", "/api/v1/auth/sign-in", Public),
    ("POST", "/api/v1/auth/refresh", Public),
    ("POST", "/api/v1/auth/sign-out", SignedIn),
    ("POST", "/api/v1/auth/password", SignedIn),
    ("GET", "/api/v1/me", SignedIn),
    ("GET", "/api/v1/me/sessions", SignedIn),
    ("DELETE", "/api/v1/me/sessions/{session_id}", SignedIn),
    ("POST", "/api/v1/organisations", SignedIn),
    ("POST", "/api/v1/invitations/accept", SignedIn),
    ("GET", "/api/v1/organisation", Org(Viewer)),
    ("PATCH", "/api/v1/organisation", Org(Admin)),
    ("GET", "/api/v1/organisation/logo", Org(Viewer)),
    ("PUT", "/api/v1/organisation/logo", Org(Admin)),
    ("GET", "/api/v1/members", Org(Viewer)),
    ("PATCH", "/api/v1/members/{user_id}", Org(Admin)),
    ("DELETE", "/api/v1/members/{user_id}", Org(Admin)),
    ("GET", "/api/v1/invitations", Org(Admin)),
    ("POST", "/api/v1/invitations", Org(Admin)),
    (
        "POST",
        "/api/v1/invitations/{invitation_id}/resend",
        Org(Admin),
    ),
    ("DELETE", "/api/v1/invitations/{invitation_id}", Org(Admin)),
    ("GET", "/api/v1/api-keys", Org(Admin)),
    ("POST", "/api/v1/api-keys", Org(Admin)),
    ("DELETE", "/api/v1/api-keys/{key_id}", Org(Admin)),
    ("GET", "/api/v1/audit", Org(Admin)),
    ("GET", "/api/v1/event-stats", Org(Viewer)),
    ("POST", "/api/v1/dispatch-probes", Org(Admin)),
    ("POST", "/api/v1/contacts", Org(Staff)),
    ("GET", "/api/v1/contacts", Org(Viewer)),
    ("GET", "/api/v1/contacts/{contact_id}", Org(Viewer)),
    ("PATCH", "/api/v1/contacts/{contact_id}", Org(Staff)),
    ("DELETE", "/api/v1/contacts/{contact_id}", Org(Admin)),
    ("GET", "/api/v1/contacts/{contact_id}/timeline", Org(Viewer)),
    ("POST", "/api/v1/contacts/{contact_id}/status", Org(Staff)),
    ("POST", "/api/v1/contacts/{contact_id}/restore", Org(Admin)),
    ("POST", "/api/v1/contacts/imports", Org(Staff)),
    ("GET", "/api/v1/contacts/imports/{import_id}", Org(Staff)),
    (
        "GET",
        "/api/v1/contacts/imports/{import_id}/rows",
        Org(Staff),
    ),
    ("GET", "/api/v1/contacts/export", Org(Viewer)),
    ("POST", "/api/v1/groups", Org(Staff)),
    ("GET", "/api/v1/groups", Org(Viewer)),
    ("GET", "/api/v1/groups/{group_id}", Org(Viewer)),
    ("PATCH", "/api/v1/groups/{group_id}", Org(Staff)),
    ("DELETE", "/api/v1/groups/{group_id}", Org(Admin)),
    ("GET", "/api/v1/groups/{group_id}/contacts", Org(Viewer)),
    ("POST", "/api/v1/groups/{group_id}/contacts", Org(Staff)),
    (
        "POST",
        "/api/v1/groups/{group_id}/contacts/remove",
        Org(Staff),
    ),
    (
        "DELETE",
        "/api/v1/groups/{group_id}/contacts/{contact_id}",
        Org(Staff),
    ),
    ("POST", "/api/v1/custom-fields", Org(Admin)),
    ("GET", "/api/v1/custom-fields", Org(Viewer)),
    ("PATCH", "/api/v1/custom-fields/{key}", Org(Admin)),
    ("DELETE", "/api/v1/custom-fields/{key}", Org(Admin)),
    ("GET", "/api/v1/contact-conflicts", Org(Viewer)),
    ("POST", "/api/v1/contacts/{contact_id}/merge", Org(Staff)),
    ("POST", "/api/v1/contacts/{contact_id}/unmerge", Org(Staff)),
    (
        "POST",
        "/api/v1/contacts/{contact_id}/conflicts/{conflict_id}/resolve",
        Org(Staff),
    ),
];

fn documented_routes() -> BTreeSet<(String, String)> {
    let doc = service::openapi::combined([query_api::openapi(), command_api::openapi()]);
    let mut routes = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let operations = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (method, present) in operations {
            if present {
                routes.insert((method.to_owned(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_documented_route_is_in_the_table() {
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(table.len(), ROUTES.len(), "no route is listed twice");
    let documented = documented_routes();
    let missing: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the table: {missing:?}"
    );
    let stale: Vec<_> = table.difference(&documented).collect();
    assert!(stale.is_empty(), "table rows with no route: {stale:?}");
}

/// What a route is called with: an organisation A with an admin and a viewer, its resources, and
/// an outsider who is the admin of organisation B.
struct World {
    stack: TestStack,
    org_a: Uuid,
    viewer: User,
    outsider: User,
    invitation_id: Uuid,
    invitation_token: String,
    key_id: Uuid,
    viewer_session: Uuid,
    contact_id: Uuid,
    group_id: Uuid,
    import_id: Uuid,
}

/// A file `POST /api/v1/contacts/imports` accepts.
const IMPORT_CSV: &str = "full_name,email\nImported,imported@a.example\n";

/// The custom field organisation A defines (organisation B has none).
const FIELD_KEY: &str = "plan";

async fn world() -> World {
    let stack = TestStack::spawn().await;
    let admin = stack.sign_up("admin@a.example").await;
    let org_a = stack.create_org(&admin, "A").await;
    let viewer = stack
        .member(&admin, org_a, "viewer@a.example", "viewer")
        .await;
    let invitation = stack
        .invite(&admin, org_a, "later@a.example", "staff")
        .await;
    let (key_id, _) = stack.api_key(&admin, org_a, "staff").await;
    let (status, contact) = stack
        .call(
            Method::POST,
            "/api/v1/contacts",
            &(&admin).into(),
            Some(org_a),
            Some(json!({"full_name": "Someone of A", "email": "someone@a.example"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let (status, group) = stack
        .call(
            Method::POST,
            "/api/v1/groups",
            &(&admin).into(),
            Some(org_a),
            Some(json!({"name": "Group of A"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let (status, field) = stack
        .call(
            Method::POST,
            "/api/v1/custom-fields",
            &(&admin).into(),
            Some(org_a),
            Some(json!({"key": FIELD_KEY, "label": "Plan", "kind": "text"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{field}");
    let imported = stack
        .request(
            Method::POST,
            "/api/v1/contacts/imports",
            &(&admin).into(),
            Some(org_a),
        )
        .header("content-type", "text/csv")
        .body(IMPORT_CSV)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), StatusCode::ACCEPTED);
    let import: Value = imported.json().await.unwrap();
    let outsider = stack.sign_up("admin@b.example").await;
    stack.create_org(&outsider, "B").await;
    let (status, sessions) = stack
        .call(
            Method::GET,
            "/api/v1/me/sessions",
            &(&viewer).into(),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    World {
        org_a,
        invitation_id: invitation["invitation_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        invitation_token: invitation["token"].as_str().unwrap().to_owned(),
        key_id,
        viewer_session: sessions[0]["session_id"].as_str().unwrap().parse().unwrap(),
        contact_id: contact["contact_id"].as_str().unwrap().parse().unwrap(),
        group_id: group["group_id"].as_str().unwrap().parse().unwrap(),
        import_id: import["import_id"].as_str().unwrap().parse().unwrap(),
        viewer,
        outsider,
        stack,
    }
}

impl World {
    /// The path with its parameters naming organisation A's resources.
    fn path(&self, template: &str) -> String {
        template
            .replace("{user_id}", &self.viewer.user_id.to_string())
            .replace("{invitation_id}", &self.invitation_id.to_string())
            .replace("{key_id}", &self.key_id.to_string())
            .replace("{session_id}", &self.viewer_session.to_string())
            .replace("{contact_id}", &self.contact_id.to_string())
            .replace("{group_id}", &self.group_id.to_string())
            .replace("{import_id}", &self.import_id.to_string())
            .replace("{key}", FIELD_KEY)
            .replace("{conflict_id}", &Uuid::now_v7().to_string())
    }

    /// A body the route would accept, so that only the caller decides the answer.
    fn body(&self, method: &str, template: &str) -> Option<Value> {
        let body = match (method, template) {
            ("POST", "/api/v1/auth/register") => return None,
            ("POST", "/api/v1/auth/password") => {
                json!({"current_password": testkit::PASSWORD, "new_password": "another good password"})
            }
            ("POST", "/api/v1/organisations") => json!({"name": "C"}),
            ("POST", "/api/v1/invitations/accept") => json!({"token": self.wrong_token()}),
            ("PATCH", "/api/v1/organisation") => json!({"name": "A2"}),
            ("PATCH", "/api/v1/members/{user_id}") => json!({"role": "staff"}),
            ("POST", "/api/v1/invitations") => json!({"email": "x@a.example", "role": "staff"}),
            ("POST", "/api/v1/api-keys") => json!({"name": "k", "role": "viewer"}),
            ("POST", "/api/v1/dispatch-probes") => json!({"channel": "test"}),
            ("POST", "/api/v1/contacts") => json!({"full_name": "New person"}),
            ("PATCH", "/api/v1/contacts/{contact_id}") => json!({"full_name": "Renamed"}),
            ("POST", "/api/v1/contacts/{contact_id}/status") => json!({"status": "blocked"}),
            ("POST", "/api/v1/contacts/{contact_id}/merge") => json!({"source": Uuid::now_v7()}),
            ("POST", "/api/v1/groups") => json!({"name": "New group"}),
            ("PATCH", "/api/v1/groups/{group_id}") => json!({"name": "Renamed group"}),
            (
                "POST",
                "/api/v1/groups/{group_id}/contacts" | "/api/v1/groups/{group_id}/contacts/remove",
            ) => {
                json!({"contact_ids": [self.contact_id]})
            }
            ("POST", "/api/v1/custom-fields") => {
                json!({"key": "tier", "label": "Tier", "kind": "number"})
            }
            ("PATCH", "/api/v1/custom-fields/{key}") => json!({"label": "Renamed field"}),
            ("POST", "/api/v1/contacts/{contact_id}/conflicts/{conflict_id}/resolve") => {
                json!({"action": "keep"})
            }
            (_, _) => return None,
        };
        Some(body)
    }

    /// Organisation A's invitation with a secret that is not its own.
    fn wrong_token(&self) -> String {
        let (prefix, _) = self.invitation_token.rsplit_once('.').unwrap();
        format!("{prefix}.cin_{}", "0".repeat(64))
    }

    async fn send(&self, method: &str, template: &str, who: &As, org: Option<Uuid>) -> StatusCode {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .stack
            .request(method.clone(), &self.path(template), who, org);
        if template == "/api/v1/contacts/imports" {
            request = request.header("content-type", "text/csv").body(IMPORT_CSV);
        } else if template == "/api/v1/organisation/logo" && method == Method::PUT {
            request = request
                .header("content-type", "image/png")
                .body(b"\x89PNG\r\n\x1a\n0000".to_vec());
        } else if let Some(body) = self.body(method.as_str(), template) {
            request = request.json(&body);
        }
        request.send().await.unwrap().status()
    }
}

#[tokio::test]
async fn every_route_refuses_strangers_outsiders_and_viewers() {
    let world = world().await;
    let outsider: As = (&world.outsider).into();
    let viewer: As = (&world.viewer).into();
    for (method, template, guard) in ROUTES {
        let route = format!("{method} {template}");
        if *guard != Public {
            let status = world.send(method, template, &As::Nobody, None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{route} without credentials"
            );
        }
        match guard {
            Public => {}
            SignedIn => {
                // Someone else's resource answers as if it did not exist.
                if template.contains('{') || template.ends_with("/accept") {
                    let status = world.send(method, template, &outsider, None).await;
                    assert_eq!(status, StatusCode::NOT_FOUND, "{route} as an outsider");
                }
            }
            Org(needed) => {
                let status = world
                    .send(method, template, &outsider, Some(world.org_a))
                    .await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{route} as an outsider naming A"
                );
                if template.contains('{') {
                    let status = world.send(method, template, &outsider, None).await;
                    assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "{route} as an outsider with A's ids"
                    );
                }
                if *needed > Viewer {
                    let status = world
                        .send(method, template, &viewer, Some(world.org_a))
                        .await;
                    assert_eq!(status, StatusCode::FORBIDDEN, "{route} as a viewer");
                }
            }
        }
    }
}
