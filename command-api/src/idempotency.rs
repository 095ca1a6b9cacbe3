//! Deterministic ids from an `Idempotency-Key` (DESIGN §4): a retried request derives the same
//! event ids, so the store recognises the append and returns the first result.

use uuid::Uuid;

/// The UUIDv5 namespace of every id Corbi derives from an idempotency key. Never change it:
/// retries across a deployment would stop deduplicating.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x84199d36_5174_4dc8_957b_47fba4131914);

/// The id of the `n`-th thing a command derives from its key, scoped to the organisation and the
/// route so two organisations (or two endpoints) never collide on the same key.
///
/// The first event id is `UUIDv5(NAMESPACE, "<org_id>:<key>:<route>")`; other ids append a
/// purpose (`…:probe_id`).
pub fn derive(org_id: Uuid, key: &str, route: &str, purpose: Option<&str>) -> Uuid {
    let name = match purpose {
        None => format!("{org_id}:{key}:{route}"),
        Some(purpose) => format!("{org_id}:{key}:{route}:{purpose}"),
    };
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_org_key_route_and_purpose() {
        let org = Uuid::from_u128(1);
        let route = "POST /api/v1/dispatch-probes";
        let id = derive(org, "k", route, None);
        assert_eq!(id, derive(org, "k", route, None));
        assert_eq!(id.get_version_num(), 5);
        assert_eq!(
            id,
            Uuid::new_v5(&NAMESPACE, format!("{org}:k:{route}").as_bytes())
        );
        assert_ne!(id, derive(Uuid::from_u128(2), "k", route, None));
        assert_ne!(id, derive(org, "k2", route, None));
        assert_ne!(id, derive(org, "k", "POST /other", None));
        assert_ne!(id, derive(org, "k", route, Some("probe_id")));
    }
}
