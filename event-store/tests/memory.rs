//! The event-store contract against the in-memory backend.

mod contract;

use std::sync::Arc;

use event_store::memory::MemoryEventStore;

fn store() -> Arc<MemoryEventStore> {
    Arc::new(MemoryEventStore::new())
}

#[tokio::test]
async fn expected_version_cases() {
    contract::expected_version_cases(store()).await;
}

#[tokio::test]
async fn idempotent_reappend() {
    contract::idempotent_reappend(store()).await;
}

#[tokio::test]
async fn event_ids_are_unique_across_streams() {
    contract::event_ids_are_unique_across_streams(store()).await;
}

#[tokio::test]
async fn read_order() {
    contract::read_order(store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_subscribers() {
    contract::concurrent_writers_and_subscribers(store()).await;
}

#[tokio::test]
async fn resume_from_checkpoint() {
    contract::resume_from_checkpoint(store()).await;
}

#[tokio::test]
async fn multi_stream_appends() {
    contract::multi_stream_appends(store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_stream_appends_are_all_or_nothing() {
    contract::multi_stream_appends_are_all_or_nothing(store()).await;
}

#[tokio::test]
async fn read_of_types() {
    contract::read_of_types(store()).await;
}
