//! Issue 10, point 7: a server whose updates are not atomic (FerretDB 1.x) is announced with
//! one loud warning when the store is prepared; MongoDB is not. In a binary of its own, with
//! a global subscriber: a thread-local one can miss events whose callsites other tests on
//! other threads registered first.
mod common;

use common::mongo;
use slates::Engine;

#[tokio::test(flavor = "current_thread")]
async fn non_atomic_server_is_announced_once() {
    let logs = common::logs::capture_global();
    let Some(store) = mongo::store("mongo_announce").await else {
        return;
    };
    Engine::builder(store.clone()).build().await.expect("build");
    // Preparing the same store again (an idempotent `build`) says nothing new.
    Engine::builder(store).build().await.expect("build again");
    let text = logs.text();
    let warnings = text.matches("CAN BE LOST").count();
    if mongo::is_ferretdb().await {
        assert_eq!(warnings, 1, "one loud warning on FerretDB:\n{text}");
        assert!(text.contains("WARN"), "{text}");
    } else {
        assert_eq!(warnings, 0, "no warning on MongoDB:\n{text}");
    }
}
