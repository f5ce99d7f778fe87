//! Issue 10, points 4 and 5, on the MongoDB-wire server.
//!
//! Point 4: a write whose upsert collides (an expired document the TTL monitor has not
//! removed yet, another writer creating the slate) is retried until the collision resolves,
//! not once. The interleaving is forced with the driver's command monitoring: right after the
//! store removes the expired document, another writer (a second client) puts a new one in
//! its place, twice, so the write collides three times in a row before it can land.
//!
//! Point 5: the per-user layout never touches the app's own collections.
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bson::{doc, Document};
use common::mongo;
use slates::mongodb::event::command::CommandEvent;
use slates::mongodb::event::EventHandler;
use slates::mongodb::Client;
use slates::{Clock, Engine, Layout, ManualClock, MongoStore};
use time::Duration;

fn date(t: time::OffsetDateTime) -> bson::DateTime {
    bson::DateTime::from_millis((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

async fn collides_until_resolved(layout: Layout, test: &str) {
    let Some(mut options) = mongo::client_options().await else {
        return;
    };
    let db_name = mongo::database_name(test);
    let (coll, id): (String, bson::Bson) = match layout {
        Layout::CollectionPerUser => ("slates.user.ada".into(), "upload".into()),
        _ => ("slates".into(), "ada$upload".into()),
    };
    let clock = ManualClock::new();
    // The other writers: a client of their own, outside the store's connection pool.
    let other = Client::with_options(mongo::client_options().await.unwrap())
        .unwrap()
        .database(&db_name)
        .collection::<Document>(&coll);
    // Interleaving: each time the store's conditional delete of an expired document
    // succeeds, the other writer inserts a document in its place before the store retries:
    // first another expired one, then a live one.
    let deletes: Arc<Mutex<Vec<i32>>> = Arc::default();
    let interfered = Arc::new(AtomicUsize::new(0));
    let (d, i, o, c, idc) = (
        deletes.clone(),
        interfered.clone(),
        other.clone(),
        clock.clone(),
        id.clone(),
    );
    let runtime = tokio::runtime::Handle::current();
    options.command_event_handler = Some(EventHandler::callback(move |event| match event {
        CommandEvent::Started(e) if e.command_name == "delete" => {
            let expired_only = e
                .command
                .get_array("deletes")
                .ok()
                .and_then(|a| a.first()?.as_document()?.get_document("q").ok().cloned())
                .is_some_and(|q| q.contains_key("_expires"));
            if expired_only {
                d.lock().unwrap().push(e.request_id);
            }
        }
        CommandEvent::Succeeded(e) if d.lock().unwrap().contains(&e.request_id) => {
            let round = i.fetch_add(1, Ordering::SeqCst);
            let now = c.now();
            let doc = match round {
                0 => {
                    doc! {"_id": idc.clone(), "n": 100, "_v": 1_i64, "_expires": date(now - Duration::minutes(1))}
                }
                1 => {
                    doc! {"_id": idc.clone(), "n": 10, "_v": 2_i64, "_expires": date(now + Duration::minutes(30))}
                }
                _ => return,
            };
            let o = o.clone();
            tokio::task::block_in_place(|| {
                runtime.block_on(std::future::IntoFuture::into_future(o.insert_one(doc)))
            })
            .unwrap();
        }
        _ => {}
    }));
    let db = mongo::database(test, options).await;
    let slates = Engine::builder(MongoStore::from_database(db))
        .layout(layout)
        .clock(clock.clone())
        .secure(false)
        .build()
        .await
        .unwrap();
    let upload = slates
        .user_slates("ada")
        .unwrap()
        .raw_slate("upload")
        .expires_in(Duration::minutes(30));
    upload.set("n", 1).await.unwrap();
    clock.advance(Duration::minutes(31)); // expired, still stored (no TTL monitor here)

    // Collides with the expired document, then with the other writer's expired one, then
    // finds the other writer's live slate and increments it.
    assert_eq!(upload.inc("n", 1).await.unwrap(), 11);
    assert_eq!(
        interfered.load(Ordering::SeqCst),
        2,
        "the interleaving happened twice"
    );
    let got = upload.get_doc().await.unwrap().unwrap();
    assert_eq!(
        got.doc
            .get_i32("n")
            .ok()
            .map(i64::from)
            .or(got.doc.get_i64("n").ok()),
        Some(11)
    );
    assert_eq!(
        deletes.lock().unwrap().len(),
        2,
        "each expired document removed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collisions_are_retried_until_resolved_single_collection() {
    collides_until_resolved(Layout::SingleCollection, "mongo_collisions::single").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collisions_are_retried_until_resolved_per_user() {
    collides_until_resolved(Layout::CollectionPerUser, "mongo_collisions::per_user").await;
}

/// A user named like one of the app's collections: the per-user layout writes to, and
/// drops, only `slates.user.<name>`; the app's collection is untouched.
#[tokio::test]
async fn per_user_layout_never_touches_app_collections() {
    let test = "mongo_collisions::app_collections";
    let Some(store) = mongo::store(test).await else {
        return;
    };
    let db = store.database().clone();
    let orders = db.collection::<Document>("orders");
    orders
        .insert_one(doc! {"_id": "user", "total": 42})
        .await
        .unwrap();
    orders
        .insert_one(doc! {"_id": "cart", "items": 3})
        .await
        .unwrap();
    let slates = Engine::builder(store)
        .layout(Layout::CollectionPerUser)
        .secure(false)
        .build()
        .await
        .unwrap();
    let user = slates.user_slates("orders").unwrap();
    user.raw_slate("user")
        .set("name", "Orders Inc.")
        .await
        .unwrap();
    user.raw_slate("cart").inc("items", 1).await.unwrap();
    assert_eq!(
        user.raw_slate("cart").inc("items", 1).await.unwrap(),
        2,
        "slates' own cart"
    );
    let mut names = db.list_collection_names().await.unwrap();
    names.sort();
    assert!(
        names.contains(&"slates.user.orders".to_owned()),
        "{names:?}"
    );
    user.delete_all().await.unwrap();
    let names = db.list_collection_names().await.unwrap();
    assert!(
        names.contains(&"orders".to_owned()),
        "the app's collection survives: {names:?}"
    );
    assert!(
        !names.contains(&"slates.user.orders".to_owned()),
        "{names:?}"
    );
    assert_eq!(
        orders.find_one(doc! {"_id": "user"}).await.unwrap(),
        Some(doc! {"_id": "user", "total": 42}),
        "the app's documents are untouched"
    );
    assert_eq!(
        orders.find_one(doc! {"_id": "cart"}).await.unwrap(),
        Some(doc! {"_id": "cart", "items": 3})
    );
}
