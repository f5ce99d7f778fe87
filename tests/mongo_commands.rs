//! Command shapes (issue 3, point 7): with the driver's command monitoring, each store
//! operation is shown to send exactly the commands it should, one atomic command per
//! operation. This is how atomicity is proven on a server (FerretDB) whose own updates are
//! not atomic under concurrency: slates never reads, modifies in Rust and writes back,
//! except inside the compare-and-swap helper.
mod common;

use std::sync::{Arc, Mutex};

use bson::{doc, Bson, Document};
use common::cache::until_cache;
use common::harness::Client;
use common::mongo;
use http::StatusCode;
use slates::mongodb::event::command::CommandEvent;
use slates::mongodb::event::EventHandler;
use slates::store::{SlateKey, TokenRecord};
use slates::store::{SlateStore as _, TokenStore as _};
use slates::{
    Clock, Engine, Layout, ManualClock, Modified, MongoStore, SlateName, Token, Username,
};
use time::Duration;

/// Commands that are not part of an operation (handshakes, sessions, the test's own set-up).
const IGNORED: [&str; 7] = [
    "hello",
    "isMaster",
    "ismaster",
    "ping",
    "buildInfo",
    "endSessions",
    "dropDatabase",
];

/// The commands sent to the test database, in order.
#[derive(Clone)]
struct Recorder {
    db: String,
    seen: Arc<Mutex<Vec<(String, Document)>>>,
}

impl Recorder {
    /// Everything recorded since the last call.
    fn take(&self) -> Vec<(String, Document)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    /// The names of everything recorded since the last call.
    fn names(&self) -> Vec<String> {
        self.take().into_iter().map(|(n, _)| n).collect()
    }

    /// Asserts that exactly one command, named `name`, was sent since the last call.
    fn one(&self, name: &str, what: &str) -> Document {
        let mut seen = self.take();
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [name], "{what}: expected exactly one `{name}`");
        seen.remove(0).1
    }
}

struct Setup {
    slates: Engine,
    rec: Recorder,
    clock: ManualClock,
    ferretdb: bool,
}

async fn setup(test: &str, layout: Layout) -> Option<Setup> {
    let mut options = mongo::client_options().await?;
    let rec = Recorder {
        db: mongo::database_name(test),
        seen: Arc::default(),
    };
    let r = rec.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(e) = event {
            if e.db == r.db && !IGNORED.contains(&e.command_name.as_str()) {
                r.seen.lock().unwrap().push((e.command_name, e.command));
            }
        }
    }));
    let db = mongo::database(test, options).await;
    let clock = ManualClock::new();
    // No cache: these tests pin the commands every store call sends (the cache's own
    // commands are pinned in tests/cache_mongo.rs).
    let slates = Engine::builder(MongoStore::from_database(db))
        .no_cache()
        .layout(layout)
        .clock(clock.clone())
        .secure(false)
        .build()
        .await
        .expect("build");
    rec.take(); // prepare's probes and indexes
    Some(Setup {
        slates,
        rec,
        clock,
        ferretdb: mongo::is_ferretdb().await,
    })
}

fn date(t: time::OffsetDateTime) -> bson::DateTime {
    bson::DateTime::from_millis((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The one statement of an `update` or `delete` command.
fn statement<'d>(cmd: &'d Document, array: &str) -> &'d Document {
    let list = cmd.get_array(array).expect(array);
    assert_eq!(list.len(), 1, "one statement: {cmd}");
    list[0].as_document().unwrap()
}

/// The command's `maxTimeMS`, if it carries one.
fn max_time_ms(cmd: &Document) -> Option<i64> {
    match cmd.get("maxTimeMS")? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        other => panic!("maxTimeMS: {other:?}"),
    }
}

/// The server-side limit every `find` and `findAndModify` carries (the default).
const MAX_TIME_MS: i64 = 5_000;

fn flag(d: &Document, key: &str) -> bool {
    d.get_bool(key).unwrap_or(false)
}

/// Where a slate lives in `layout`: (collection, `_id`).
fn slate_address(layout: Layout, user: &str, slate: &str) -> (String, Bson) {
    match layout {
        Layout::CollectionPerUser => (format!("slates.user.{user}"), Bson::from(slate)),
        _ => ("slates".to_owned(), format!("{user}${slate}").into()),
    }
}

fn live_filter(id: Bson, now: time::OffsetDateTime) -> Document {
    doc! {"_id": id, "$or": [{"_expires": Bson::Null}, {"_expires": {"$gt": date(now)}}]}
}

// ------------------------------------------------------------------ tokens

async fn token_commands(test: &str, layout: Layout) {
    let Some(Setup {
        slates, rec, clock, ..
    }) = setup(test, layout).await
    else {
        return;
    };
    let store = slates.token_store();
    let now = clock.now();
    let token = Token::generate().unwrap();
    let hex = token.hash().to_hex();
    let record = TokenRecord {
        hash: token.hash(),
        user: Username::new("ada").unwrap(),
        created: now,
        expires: now + Duration::hours(1),
        renewed: None,
        rotated: None,
        device: Some(slates::DeviceId::generate().unwrap()),
        last_seen: now,
        label: String::new(),
        ip: None,
    };

    store.insert_token(&record).await.unwrap();
    let cmd = rec.one("insert", "login");
    assert_eq!(cmd.get_str("insert").unwrap(), "_auth");
    let inserted = cmd.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(
        inserted,
        &doc! {
            "_id": &hex, "user": "ada", "created": date(now), "expires": date(record.expires),
            "seen": date(now), "label": "", "device": record.device.as_ref().unwrap().as_str(),
        },
        "only the hash of the token is stored, with the device fields"
    );

    store.find_token(&token.hash(), now).await.unwrap().unwrap();
    let cmd = rec.one("find", "token lookup");
    assert_eq!(cmd.get_str("find").unwrap(), "_auth");
    assert_eq!(
        cmd.get_document("filter").unwrap(),
        &doc! {"_id": &hex},
        "lookup by _id alone (a point read on FerretDB too); the expiry is checked in Rust"
    );
    assert_eq!(
        max_time_ms(&cmd),
        Some(MAX_TIME_MS),
        "a server-side time limit"
    );

    let later = now + Duration::hours(2);
    assert!(store
        .renew_token(&token.hash(), record.expires, later, now)
        .await
        .unwrap());
    let cmd = rec.one("update", "renewal");
    let s = statement(&cmd, "updates");
    assert_eq!(
        s.get_document("q").unwrap(),
        &doc! {
            "_id": &hex,
            "expires": {"$eq": date(record.expires), "$gt": date(now)},
            "rotated": {"$exists": false},
        }
    );
    assert_eq!(
        s.get_document("u").unwrap(),
        &doc! {"$set": {"expires": date(later), "renewed": date(now)}}
    );
    assert!(!flag(s, "upsert"), "renewal is never an upsert");
    assert!(!flag(s, "multi"));

    store
        .retire_token(&token.hash(), now + Duration::seconds(10), now)
        .await
        .unwrap();
    let cmd = rec.one("update", "rotation grace");
    let s = statement(&cmd, "updates");
    assert_eq!(s.get_document("q").unwrap(), &doc! {"_id": &hex});
    assert_eq!(
        s.get_document("u").unwrap(),
        &doc! {
            "$min": {"expires": date(now + Duration::seconds(10))},
            "$set": {"rotated": date(now)},
        }
    );
    assert!(!flag(s, "upsert"));

    assert!(store.delete_token(&token.hash()).await.unwrap());
    let cmd = rec.one("delete", "logout");
    let s = statement(&cmd, "deletes");
    assert_eq!(s.get_document("q").unwrap(), &doc! {"_id": &hex});
    assert_eq!(s.get_i32("limit").unwrap(), 1);

    // Devices: the user's live records, one find served by the `user` index.
    store.insert_token(&record).await.unwrap();
    rec.take();
    store.user_tokens(&record.user, now).await.unwrap();
    let cmd = rec.one("find", "list devices");
    assert_eq!(
        cmd.get_document("filter").unwrap(),
        &doc! {"user": "ada", "expires": {"$gt": date(now)}}
    );
    assert_eq!(max_time_ms(&cmd), Some(MAX_TIME_MS));

    // The last-seen write: one conditional update, never an upsert (no resurrection).
    let t = now + Duration::minutes(10);
    assert!(store
        .touch_token(&token.hash(), None, now, t)
        .await
        .unwrap());
    let cmd = rec.one("update", "last seen");
    let s = statement(&cmd, "updates");
    assert_eq!(
        s.get_document("q").unwrap(),
        &doc! {"_id": &hex, "expires": {"$gt": date(t)}, "seen": {"$lte": date(now)}}
    );
    assert_eq!(
        s.get_document("u").unwrap(),
        &doc! {"$set": {"seen": date(t)}}
    );
    assert!(!flag(s, "upsert"), "a touch is never an upsert");
    assert!(!flag(s, "multi"));
    // Giving a record from before devices existed its id: only where it has none.
    let id = slates::DeviceId::generate().unwrap();
    store
        .touch_token(&token.hash(), Some(&id), t, t)
        .await
        .unwrap();
    let cmd = rec.one("update", "assign a device id");
    let s = statement(&cmd, "updates");
    assert_eq!(
        s.get_document("q").unwrap(),
        &doc! {"_id": &hex, "expires": {"$gt": date(t)}, "device": {"$exists": false}}
    );
    assert_eq!(
        s.get_document("u").unwrap(),
        &doc! {"$set": {"seen": date(t), "device": id.as_str()}}
    );
    assert!(!flag(s, "upsert"));

    // Ending a device: ONE findAndModify that matches user AND device together, so
    // another user's id can never match (atomic on any server: one command, one document).
    let device = record.device.as_ref().unwrap();
    let ended = store.delete_device(&record.user, device).await.unwrap();
    assert_eq!(ended, Some(token.hash()));
    let cmd = rec.one("findAndModify", "end a device");
    assert_eq!(
        cmd.get_document("query").unwrap(),
        &doc! {"user": "ada", "device": device.as_str()}
    );
    assert!(flag(&cmd, "remove"));
    assert!(!flag(&cmd, "upsert"));
    assert_eq!(max_time_ms(&cmd), Some(MAX_TIME_MS));

    // Ending the others: one delete on `user`, all but the kept token.
    store
        .delete_user_tokens_except(&record.user, &token.hash())
        .await
        .unwrap();
    let cmd = rec.one("delete", "end the other devices");
    let s = statement(&cmd, "deletes");
    assert_eq!(
        s.get_document("q").unwrap(),
        &doc! {"user": "ada", "_id": {"$ne": &hex}}
    );
    assert_eq!(s.get_i32("limit").unwrap(), 0, "deletes many");

    store.delete_user_tokens(&record.user).await.unwrap();
    let cmd = rec.one("delete", "log out everywhere");
    assert_eq!(cmd.get_str("delete").unwrap(), "_auth");
    let s = statement(&cmd, "deletes");
    assert_eq!(s.get_document("q").unwrap(), &doc! {"user": "ada"});
    assert_eq!(s.get_i32("limit").unwrap(), 0, "deletes many");
}

#[tokio::test]
async fn token_commands_single_collection() {
    token_commands("mongo_commands::token_single", Layout::SingleCollection).await;
}

#[tokio::test]
async fn token_commands_collection_per_user() {
    token_commands("mongo_commands::token_per_user", Layout::CollectionPerUser).await;
}

// ------------------------------------------------------------------ slates

async fn slate_commands(test: &str, layout: Layout) {
    let Some(Setup {
        slates, rec, clock, ..
    }) = setup(test, layout).await
    else {
        return;
    };
    let now = clock.now();
    let ada = slates.user_slates("ada").unwrap();
    let (coll, id) = slate_address(layout, "ada", "counter");
    let counter = ada.raw_slate("counter");

    // inc: exactly one findAndModify holding $inc of the field and $set of a fresh _v; its
    // filter matches only a counter that is absent or an integer; no find first.
    assert_eq!(counter.inc("hits", 2).await.unwrap(), 2);
    let cmd = rec.one("findAndModify", "inc");
    assert_eq!(cmd.get_str("findAndModify").unwrap(), coll);
    let mut q = live_filter(id.clone(), now);
    q.insert(
        "$and",
        vec![doc! {"$or": [{"hits": {"$exists": false}}, {"hits": {"$type": ["int", "long"]}}]}],
    );
    assert_eq!(cmd.get_document("query").unwrap(), &q);
    let update = cmd.get_document("update").unwrap();
    assert_eq!(update.get_document("$inc").unwrap(), &doc! {"hits": 2_i64});
    let v_inc = update.get_document("$set").unwrap().get_i64("_v").unwrap();
    assert_eq!(update.len(), 2, "{update}");
    assert!(flag(&cmd, "upsert") && flag(&cmd, "new"));
    assert!(
        !cmd.contains_key("fields"),
        "no projection: the same command on every server"
    );
    assert_eq!(max_time_ms(&cmd), Some(MAX_TIME_MS));

    // Several operators without a counter: one `update` (no document comes back).
    let v_update = counter
        .update(
            slates::SlateUpdate::new()
                .set("step", "review")
                .push("ids", 1)
                .push("ids", 2)
                .add_to_set("tags", "a")
                .unset("old"),
        )
        .await
        .unwrap();
    assert_ne!(v_update, v_inc);
    let cmd = rec.one("update", "update with several operators");
    let s = statement(&cmd, "updates");
    assert_eq!(s.get_document("q").unwrap(), &live_filter(id.clone(), now));
    assert_eq!(
        s.get_document("u").unwrap(),
        &doc! {
            "$set": {"step": "review", "_v": v_update},
            "$unset": {"old": ""},
            "$push": {"ids": {"$each": [1, 2]}},
            "$addToSet": {"tags": {"$each": ["a"]}},
        }
    );
    assert!(flag(s, "upsert"));

    // A read is one find on `_id` alone (a point read); the expiry is checked in Rust.
    let doc = counter.get_doc().await.unwrap().unwrap();
    assert_eq!(doc.version, v_update);
    let cmd = rec.one("find", "get");
    assert_eq!(
        cmd.get_document("filter").unwrap(),
        &doc! {"_id": id.clone()}
    );
    assert_eq!(max_time_ms(&cmd), Some(MAX_TIME_MS));

    // put, keeping the expiry: one findAndModify with a replacement document, on a slate
    // that has no `_expires`, upsert.
    let v = counter.put(&doc! {"fresh": true}).await.unwrap();
    let cmd = rec.one("findAndModify", "put");
    assert_eq!(
        cmd.get_document("query").unwrap(),
        &doc! {"_id": id.clone(), "_expires": {"$exists": false}}
    );
    assert_eq!(
        cmd.get_document("update").unwrap(),
        &doc! {"fresh": true, "_v": v},
        "a replacement document, not a pipeline"
    );
    assert!(flag(&cmd, "upsert"));
    assert_eq!(max_time_ms(&cmd), Some(MAX_TIME_MS));
    // put with an expiry: the same command on `_id` alone.
    let expiring = ada.raw_slate("counter").expires_in(Duration::minutes(5));
    let v = expiring.put(&doc! {"fresh": 2}).await.unwrap();
    let cmd = rec.one("findAndModify", "put with an expiry");
    assert_eq!(
        cmd.get_document("query").unwrap(),
        &doc! {"_id": id.clone()}
    );
    assert_eq!(
        cmd.get_document("update").unwrap(),
        &doc! {"fresh": 2, "_v": v, "_expires": date(now + Duration::minutes(5))},
    );
    // put without an expiry on that expiring slate: the first command collides, a read and
    // a compare-and-swap carrying the expiry follow (the expiry rule).
    let v3 = counter.put(&doc! {"fresh": 3}).await.unwrap();
    assert_eq!(rec.names(), ["findAndModify", "find", "update"]);
    let got = counter.get_doc().await.unwrap().unwrap();
    rec.take();
    assert_eq!(got.version, v3);
    assert_eq!(
        got.expires,
        Some(now + Duration::minutes(5)),
        "put kept the expiry"
    );

    // Compare-and-swap: one update (replacement) filtered on {_id, _v}.
    let key = SlateKey::new(
        Username::new("ada").unwrap(),
        SlateName::new("counter").unwrap(),
    );
    let store = slates.slate_store();
    let v4 = store
        .replace_slate_if(&key, Some(v3), &doc! {"n": 1}, None, now)
        .await
        .unwrap()
        .expect("swapped");
    let cmd = rec.one("update", "compare-and-swap");
    let s = statement(&cmd, "updates");
    let mut q = live_filter(id.clone(), now);
    q.insert("_v", v3);
    assert_eq!(s.get_document("q").unwrap(), &q);
    assert_eq!(
        s.get_document("u").unwrap(),
        &doc! {"n": 1, "_v": v4},
        "a replacement"
    );
    assert!(!flag(s, "upsert"));
    // A stale version writes nothing: still one command.
    assert_eq!(
        store
            .replace_slate_if(&key, Some(v3), &doc! {"n": 2}, None, now)
            .await
            .unwrap(),
        None
    );
    rec.one("update", "stale compare-and-swap");

    // RawSlate::modify is the compare-and-swap helper: one read, one conditional write.
    let modified = counter
        .modify(|d: &mut Document| {
            d.insert("m", 1);
            Some(())
        })
        .await
        .unwrap();
    assert!(modified.is_written());
    assert_eq!(rec.names(), ["find", "update"], "modify");
    // A modify that changes nothing, or declines, sends the read alone.
    let same = counter.modify(|d: &mut Document| d.get("m").map(drop));
    assert!(matches!(same.await.unwrap(), Modified::Unchanged(())));
    let declined = counter.modify(|_: &mut Document| None::<()>);
    assert!(matches!(declined.await.unwrap(), Modified::Declined));
    assert_eq!(rec.names(), ["find", "find"], "modify writing nothing");

    // Delete: one delete on _id with the expiry filter.
    assert!(counter.delete().await.unwrap());
    let cmd = rec.one("delete", "delete");
    let s = statement(&cmd, "deletes");
    assert_eq!(s.get_document("q").unwrap(), &live_filter(id.clone(), now));
    assert_eq!(s.get_i32("limit").unwrap(), 1);

    // An expired slate still in the collection: the upsert collides with it, a point read
    // shows it expired, it is deleted (only if still expired) and the update retried.
    let upload = ada.raw_slate("upload").expires_in(Duration::minutes(5));
    upload.set("step", "one").await.unwrap();
    rec.take();
    clock.advance(Duration::minutes(6));
    assert_eq!(upload.inc("n", 1).await.unwrap(), 1);
    let seen = rec.take();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["findAndModify", "find", "delete", "findAndModify"]);
    let (_, upload_id) = slate_address(layout, "ada", "upload");
    let s = statement(&seen[2].1, "deletes");
    assert_eq!(
        s.get_document("q").unwrap(),
        &doc! {"_id": upload_id, "_expires": {"$lte": date(clock.now())}},
        "only an expired document is deleted"
    );

    // Dropping a user's slates: one command.
    ada.delete_all().await.unwrap();
    match layout {
        Layout::CollectionPerUser => {
            let cmd = rec.one("drop", "delete_all");
            assert_eq!(cmd.get_str("drop").unwrap(), "slates.user.ada");
        }
        _ => {
            let cmd = rec.one("delete", "delete_all");
            let s = statement(&cmd, "deletes");
            assert_eq!(s.get_i32("limit").unwrap(), 0);
            assert_eq!(
                s.get_document("q").unwrap(),
                &doc! {"_id": {"$gte": "ada$", "$lt": "ada%"}},
                "the user's `_id` range"
            );
        }
    }
}

#[tokio::test]
async fn slate_commands_single_collection() {
    slate_commands("mongo_commands::slate_single", Layout::SingleCollection).await;
}

#[tokio::test]
async fn slate_commands_collection_per_user() {
    slate_commands("mongo_commands::slate_per_user", Layout::CollectionPerUser).await;
}

// ------------------------------------------------------------------ through the layer

async fn layer_commands(test: &str, layout: Layout) {
    let Some(Setup {
        slates, rec, clock, ..
    }) = setup(test, layout).await
    else {
        return;
    };
    let (user_coll, user_id) = slate_address(layout, "ada", "user");
    let app = common::suite::test_app(&slates);

    // Anonymous and malformed: no command at all.
    let mut anon = Client::new(app.clone());
    assert_eq!(anon.get("/maybe").await.body, "anonymous");
    anon.cookie = Some("not-a-token".into());
    assert_eq!(anon.get("/maybe").await.body, "anonymous");
    assert!(rec.names().is_empty(), "anonymous traffic costs nothing");

    let mut c = Client::new(app.clone());
    let r = c.post_form("/login", "username=ada").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    rec.one("insert", "login");

    // Lazy resolution: a route that never asks who the user is costs nothing, even with a
    // valid cookie; one that needs only the username costs the token lookup.
    assert_eq!(c.get("/static").await.body, "static");
    assert!(
        rec.names().is_empty(),
        "a route without identity costs nothing"
    );
    assert_eq!(c.get("/maybe").await.body, "ada");
    let seen = rec.take();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["find"], "the username alone: the token lookup");
    assert_eq!(seen[0].1.get_str("find").unwrap(), "_auth");

    // A request that reads the profile: exactly two commands, the token and the user slate.
    let r = c.get("/me").await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = rec.take();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["find", "find"], "an authenticated request");
    assert_eq!(seen[0].1.get_str("find").unwrap(), "_auth");
    assert_eq!(seen[1].1.get_str("find").unwrap(), user_coll);
    assert_eq!(
        seen[1].1.get_document("filter").unwrap(),
        &doc! {"_id": user_id},
        "the user slate is a point read; its expiry is checked in Rust"
    );

    // Past half the lifetime: the token read, one renewal update (never an upsert), then
    // the profile read.
    clock.advance(Duration::days(4));
    assert_eq!(c.get("/me").await.status, StatusCode::OK);
    let seen = rec.take();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    // Four days also passed the last-seen interval: one more conditional update, then the
    // profile read.
    assert_eq!(
        names,
        ["find", "update", "update", "find"],
        "a request that renews"
    );
    assert!(!flag(statement(&seen[1].1, "updates"), "upsert"));
    let touch = statement(&seen[2].1, "updates");
    assert!(
        touch.get_document("q").unwrap().contains_key("seen"),
        "{touch}"
    );
    assert!(!flag(touch, "upsert"));

    // Log out everywhere: the token read (whose user?), then one delete on `user`.
    let mut other = Client::new(app.clone());
    other.post_form("/login", "username=ada").await;
    rec.take();
    assert_eq!(
        c.post("/logout-everywhere").await.status,
        StatusCode::NO_CONTENT
    );
    let seen = rec.take();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["find", "delete"]);
    let s = statement(&seen[1].1, "deletes");
    assert_eq!(s.get_document("q").unwrap(), &doc! {"user": "ada"});

    // Log out: one delete on _id, no lookup.
    let mut c = Client::new(app);
    c.post_form("/login", "username=ada").await;
    rec.take();
    assert_eq!(c.post("/logout").await.status, StatusCode::NO_CONTENT);
    let seen = rec.take();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["delete"]);
    assert_eq!(
        statement(&seen[0].1, "deletes").get_i32("limit").unwrap(),
        1
    );
}

#[tokio::test]
async fn layer_commands_single_collection() {
    layer_commands("mongo_commands::layer_single", Layout::SingleCollection).await;
}

#[tokio::test]
async fn layer_commands_collection_per_user() {
    layer_commands("mongo_commands::layer_per_user", Layout::CollectionPerUser).await;
}

// ------------------------------------------------------------------ indexes

async fn indexes(test: &str, layout: Layout) {
    let Some(Setup {
        slates, ferretdb, ..
    }) = setup(test, layout).await
    else {
        return;
    };
    let _ = slates;
    // A second client: the store's is busy being monitored; any handle will do.
    let options = mongo::client_options().await.unwrap();
    let client = slates::mongodb::Client::with_options(options).unwrap();
    let db = client.database(&mongo::database_name(test));
    let auth = db.collection::<Document>("_auth");
    let specs = list_indexes(&auth).await;
    assert!(
        specs
            .iter()
            .any(|s| s.get_document("key").unwrap() == &doc! {"user": 1}),
        "{specs:?}"
    );
    let ttl = specs
        .iter()
        .find(|s| s.get_document("key").unwrap() == &doc! {"expires": 1});
    if ferretdb {
        assert!(ttl.is_none());
        mongo::ferretdb_note(
            test,
            "TTL indexes are not implemented: no `expires` index, expired tokens are refused by \
             the lookup filter but never garbage-collected",
        );
    } else {
        let ttl = ttl.expect("TTL index on expires");
        let seconds = ttl.get("expireAfterSeconds").expect("a TTL index");
        assert_eq!(
            seconds.as_i32().map(i64::from).or(seconds.as_i64()),
            Some(0)
        );
    }
    // Building again on the same database is fine (idempotent).
    Engine::builder(MongoStore::from_database(db))
        .layout(layout)
        .build()
        .await
        .expect("prepare is idempotent");
}

async fn list_indexes(coll: &slates::mongodb::Collection<Document>) -> Vec<Document> {
    use futures_util::TryStreamExt;
    coll.list_indexes()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            let mut d = doc! {"key": m.keys};
            if let Some(ttl) = m.options.and_then(|o| o.expire_after) {
                d.insert("expireAfterSeconds", ttl.as_secs() as i64);
            }
            d
        })
        .collect()
}

#[tokio::test]
async fn indexes_single_collection() {
    indexes("mongo_commands::indexes_single", Layout::SingleCollection).await;
}

#[tokio::test]
async fn indexes_collection_per_user() {
    indexes(
        "mongo_commands::indexes_per_user",
        Layout::CollectionPerUser,
    )
    .await;
}

#[tokio::test]
async fn second_prepare_with_other_options_is_a_config_error() {
    let Some(options) = mongo::client_options().await else {
        return;
    };
    let db = mongo::database("mongo_commands::second_prepare", options).await;
    let store = MongoStore::from_database(db);
    Engine::builder(store.clone())
        .layout(Layout::SingleCollection)
        .build()
        .await
        .unwrap();
    Engine::builder(store.clone())
        .layout(Layout::SingleCollection)
        .build()
        .await
        .expect("same options again: fine");
    let err = Engine::builder(store)
        .layout(Layout::CollectionPerUser)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, slates::Error::Config(_)), "{err}");
}

/// Building an engine with the cache (the default on MongoDB) asks the server what it is
/// once: the store's prepare and its invalidation channel share one `buildInfo`, and the
/// tail, once started, asks nothing more of it. Building again on the same store asks
/// nothing either.
#[tokio::test]
async fn build_asks_build_info_once() {
    let Some(mut options) = mongo::client_options().await else {
        return;
    };
    let test = "mongo_commands::build_info_once";
    let db_name = mongo::database_name(test);
    let asked = Arc::new(Mutex::new(0_usize));
    let a = asked.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(e) = event {
            if e.db == db_name && e.command_name == "buildInfo" {
                *a.lock().unwrap() += 1;
            }
        }
    }));
    let db = mongo::database(test, options).await;
    let store = MongoStore::from_database(db);
    let engine = Engine::builder(store.clone()).build().await.expect("build");
    assert!(engine.stats().cache.is_some(), "the cache is on");
    // The tail starts in the background and learns what the server is from the store.
    until_cache(&engine, "the tail started", |c| c.serving).await;
    Engine::builder(store).build().await.expect("build again");
    assert_eq!(
        *asked.lock().unwrap(),
        1,
        "one buildInfo for the store and its channel"
    );
}
