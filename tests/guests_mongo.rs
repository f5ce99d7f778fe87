//! Issue 14 on the MongoDB-wire server, with the driver's command monitoring: where guest
//! slates live (one `_guests` collection in both layouts, never a collection per guest),
//! and the exact commands of a take (one `findAndModify` with `remove`), of a login that
//! carries guest slates over, and of forgetting a guest. This is how atomicity is shown on
//! FerretDB, whose `findAndModify` and updates are not atomic under concurrency (the
//! concurrency tests of `guests_races.rs` skip their final assertion there): slates sends
//! one command per step, which MongoDB applies atomically.
#![cfg(feature = "mongodb")]
mod common;

use std::sync::{Arc, Mutex};

use bson::{doc, Bson, Document};
use common::guest_app::{app, Browser};
use common::mongo;
use slates::mongodb::event::command::CommandEvent;
use slates::mongodb::event::EventHandler;
use slates::{Engine, Layout, ManualClock, MongoStore};

/// Commands that are not part of an operation.
const IGNORED: [&str; 7] = [
    "hello",
    "isMaster",
    "ismaster",
    "ping",
    "buildInfo",
    "endSessions",
    "dropDatabase",
];

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<(String, Document)>>>,
}

impl Recorder {
    fn take(&self) -> Vec<(String, Document)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    /// `name collection` of each command since the last call.
    fn names(&self) -> Vec<String> {
        self.take()
            .into_iter()
            .map(|(name, cmd)| {
                let coll = cmd.get_str(&name).unwrap_or("?").to_owned();
                format!("{name} {coll}")
            })
            .collect()
    }
}

async fn setup(test: &str, layout: Layout) -> Option<(Engine, Recorder, mongodb::Database)> {
    let mut options = mongo::client_options().await?;
    let rec = Recorder::default();
    let (r, db_name) = (rec.clone(), mongo::database_name(test));
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(e) = event {
            if e.db == db_name && !IGNORED.contains(&e.command_name.as_str()) {
                r.seen.lock().unwrap().push((e.command_name, e.command));
            }
        }
    }));
    let db = mongo::database(test, options).await;
    // No cache: this test pins every command a guest request sends.
    let engine = Engine::builder(MongoStore::from_database(db.clone()))
        .no_cache()
        .layout(layout)
        .clock(ManualClock::new())
        .secure(false)
        .build()
        .await
        .expect("build");
    rec.take();
    Some((engine, rec, db))
}

fn hash_of(cookie: &str) -> String {
    slates::Token::parse(cookie).unwrap().hash().to_hex()
}

async fn commands_and_addressing(layout: Layout, test: &str) {
    let Some((engine, rec, db)) = setup(test, layout).await else {
        return;
    };
    let user_coll = match layout {
        Layout::CollectionPerUser => "slates.user.ada",
        _ => "slates",
    };
    let mut b = Browser::new(app(&engine));
    // First guest write: the record (an upsert that never replaces a live one), the hit.
    b.post("/hits", "").await;
    assert_eq!(rec.names(), ["update _guests", "findAndModify _guests"]);
    let hash = hash_of(b.guest.as_deref().unwrap());
    b.post("/flash", "hello").await;
    rec.take();

    // Where it lives: `_guests`, `_id: "<hex>$<slate>"`, each with an `_expires`.
    let guests = db.collection::<Document>("_guests");
    let mut ids = Vec::new();
    let mut cursor = guests.find(doc! {}).await.unwrap();
    while cursor.advance().await.unwrap() {
        let d = cursor.deserialize_current().unwrap();
        assert!(matches!(d.get("_expires"), Some(Bson::DateTime(_))), "{d}");
        ids.push(d.get_str("_id").unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(
        ids,
        [
            format!("{hash}$.flash"),
            format!("{hash}$.guest"),
            format!("{hash}$counter")
        ]
    );
    let collections = db.list_collection_names().await.unwrap();
    assert!(
        collections.iter().all(|c| !c.contains("_g.")),
        "no collection per guest: {collections:?}"
    );

    // A take: one findAndModify with remove, on the live document, with maxTimeMS.
    rec.take(); // the test's own reads
    b.get("/flash").await;
    let seen = rec.take();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["find", "findAndModify"],
        "record read, then the take"
    );
    let take = &seen[1].1;
    assert_eq!(take.get_str("findAndModify").unwrap(), "_guests");
    assert!(take.get_bool("remove").unwrap(), "{take}");
    assert_eq!(
        take.get_document("query").unwrap().get_str("_id").unwrap(),
        format!("{hash}$.flash")
    );
    assert!(take.get("maxTimeMS").is_some(), "{take}");

    // Login carrying the counter over: auth insert, record read, take, one $inc, take.
    b.post("/login", "ada").await;
    let seen = rec.take();
    let shape: Vec<String> = seen
        .iter()
        .map(|(n, c)| format!("{n} {}", c.get_str(n).unwrap_or("?")))
        .collect();
    assert_eq!(
        shape,
        [
            "insert _auth".to_owned(),
            "find _guests".to_owned(),
            "findAndModify _guests".to_owned(),
            format!("findAndModify {user_coll}"),
            "findAndModify _guests".to_owned(),
        ]
    );
    assert!(seen[2].1.get_bool("remove").unwrap());
    let inc = seen[3].1.get_document("update").unwrap();
    assert_eq!(inc.get_document("$inc").unwrap(), &doc! {"hits": 1_i64});
    // A user's flash is taken from the user's own place.
    b.post("/flash", "x").await;
    rec.take();
    b.get("/flash").await;
    let names = rec.names();
    assert_eq!(
        names,
        [
            "find _auth".to_owned(),
            format!("findAndModify {user_coll}")
        ]
    );

    // Forgetting the guest: one delete of its `_id` range in `_guests`, never a drop.
    b.post("/notes", "n").await;
    rec.take();
    b.post("/forget", "").await;
    let seen = rec.take();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["find", "delete"]);
    let delete = &seen[1].1;
    assert_eq!(delete.get_str("delete").unwrap(), "_guests");
    let filter = delete.get_array("deletes").unwrap()[0]
        .as_document()
        .unwrap()
        .get_document("q")
        .unwrap()
        .clone();
    assert_eq!(
        filter,
        doc! {"_id": {"$gte": format!("{hash}$"), "$lt": format!("{hash}%")}}
    );
    assert_eq!(guests.count_documents(doc! {}).await.unwrap(), 0);
    assert!(
        db.collection::<Document>(user_coll)
            .count_documents(doc! {})
            .await
            .unwrap()
            > 0
    );

    // The TTL index that collects expired guest slates (FerretDB 1.x has no TTL indexes).
    let mut indexes = guests.list_indexes().await.unwrap();
    let mut ttl = None;
    while indexes.advance().await.unwrap() {
        let index = indexes.deserialize_current().unwrap();
        if index.keys == doc! {"_expires": 1} {
            ttl = index.options.and_then(|o| o.expire_after);
        }
    }
    if mongo::is_ferretdb().await {
        mongo::ferretdb_note(
            test,
            "no TTL index on `_guests` (FerretDB 1.x has none): expired guest slates read as \
             absent but are not collected",
        );
    } else {
        assert_eq!(ttl, Some(std::time::Duration::ZERO), "TTL index on _guests");
    }
}

#[tokio::test]
async fn guest_commands_single_collection() {
    commands_and_addressing(Layout::SingleCollection, "guests_mongo_single").await;
}

#[tokio::test]
async fn guest_commands_collection_per_user() {
    commands_and_addressing(Layout::CollectionPerUser, "guests_mongo_per_user").await;
}
