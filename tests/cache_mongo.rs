//! Issue 12, points 3-6, on the MongoDB-wire server (FerretDB in CI): two engines with
//! their own clients ("instances") share one database and keep their caches in step
//! through the capped collection `_invalidations`. Each instance's commands are recorded
//! (driver command monitoring).
//!
//! - 20 warm `GET /me` on B send no command but the tail's `getMore`s, and
//!   `Stats::store_operations` does not move;
//! - a logout, a log out everywhere and a profile write on A are seen by B (the delay is
//!   measured and printed over many trials, never asserted: no timing in tests; the bench
//!   reports it);
//! - each publication is one `insert` into `_invalidations`;
//! - a killed tail cursor is reopened and the cache flushed; a stalled server (SIGSTOP)
//!   stops the cache, which serves again when the server resumes;
//! - each tail mode sends its own commands (polling on FerretDB by default, `awaitData`
//!   elsewhere); a gap in a publisher's sequence flushes the cache; a document seen again is
//!   ignored; freshness is never confirmed while more than `TAIL_BATCH` queued invalidations
//!   are still being read.
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use bson::{doc, Document};
use common::cache::until_cache;
use common::harness::Client;
use common::mongo;
use http::StatusCode;
use slates::mongodb::event::command::CommandEvent;
use slates::mongodb::event::EventHandler;
use slates::mongodb::options::ClientOptions;
use slates::mongodb::Database;
use slates::store::{
    TailMode, INVALIDATIONS_COLLECTION, PRUNE_AGE, PRUNE_EVERY, TAIL_AWAIT, TAIL_BATCH,
};
use slates::{Engine, ManualClock, MongoStore, Token};

/// The commands one instance sent (name, command), `hello` and friends left out.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, Document)>>>);

impl Recorder {
    fn watch(&self, options: &mut ClientOptions) {
        let seen = self.0.clone();
        options.command_event_handler = Some(EventHandler::callback(move |event| {
            if let CommandEvent::Started(e) = event {
                if !["hello", "isMaster", "ismaster", "buildInfo", "endSessions"]
                    .contains(&e.command_name.as_str())
                {
                    seen.lock().unwrap().push((e.command_name, e.command));
                }
            }
        }));
    }

    fn take(&self) -> Vec<(String, Document)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The commands other than the tail's `getMore`s (and its cursor reopenings and, on
    /// FerretDB, its prunes).
    fn requests(&self) -> Vec<(String, Document)> {
        self.take()
            .into_iter()
            .filter(|(name, cmd)| {
                let tail = ["getMore", "find", "killCursors", "delete"].contains(&name.as_str())
                    && [
                        cmd.get_str("collection"),
                        cmd.get_str("find"),
                        cmd.get_str("killCursors"),
                        cmd.get_str("delete"),
                    ]
                    .contains(&Ok(INVALIDATIONS_COLLECTION));
                !tail
            })
            .collect()
    }

    /// The id of the tail's cursor, from its latest `getMore`.
    fn tail_cursor(&self) -> Option<i64> {
        self.0.lock().unwrap().iter().rev().find_map(|(name, cmd)| {
            (name == "getMore" && cmd.get_str("collection") == Ok(INVALIDATIONS_COLLECTION))
                .then(|| cmd.get_i64("getMore").ok())
                .flatten()
        })
    }
}

struct Instance {
    engine: Engine,
    rec: Recorder,
    client: Client,
}

async fn instance(
    options: ClientOptions,
    test: &str,
    clock: &ManualClock,
    fresh: bool,
) -> Instance {
    instance_in(options, test, clock, fresh, TailMode::Auto).await
}

async fn instance_in(
    options: ClientOptions,
    test: &str,
    clock: &ManualClock,
    fresh: bool,
    mode: TailMode,
) -> Instance {
    let rec = Recorder::default();
    let mut options = options;
    rec.watch(&mut options);
    let db = if fresh {
        mongo::database(test, options).await
    } else {
        let client = slates::mongodb::Client::with_options(options).unwrap();
        client.database(&mongo::database_name(test))
    };
    let engine = Engine::builder(MongoStore::from_database(db).tail_mode(mode))
        .clock(clock.clone())
        .secure(false)
        .build()
        .await
        .expect("build");
    let client = Client::new(common::suite::test_app(&engine));
    Instance {
        engine,
        rec,
        client,
    }
}

/// Waits (at most 10 s) until `instance`'s cache serves.
async fn until_serving(instance: &Instance) {
    until_cache(&instance.engine, "the cache serving", |s| s.serving).await;
}

/// Polls `path` on `client` until the body is `want`; returns how long it took. Fails the
/// test after 10 s (a bound that only a lost invalidation can reach).
async fn until_body(client: &mut Client, path: &str, want: &str) -> StdDuration {
    let started = Instant::now();
    loop {
        let r = client.get(path).await;
        if r.body == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < StdDuration::from_secs(10),
            "{path} still answers {:?}, not {want:?}",
            r.body
        );
        tokio::time::sleep(StdDuration::from_millis(2)).await;
    }
}

/// Checks the tail's commands: one tailable `find` whose first batch holds one document
/// (full: FerretDB keeps the cursor open), with `awaitData` unless `polls`; then `getMore`s
/// of at most `TAIL_BATCH` documents that wait at most `TAIL_AWAIT` (`maxTimeMS`) unless
/// `polls` (no wait: FerretDB refuses `maxTimeMS` on a cursor without `awaitData`).
fn assert_tail_commands(rec: &Recorder, polls: bool) {
    let seen = rec.0.lock().unwrap().clone();
    let find = seen
        .iter()
        .find(|(n, c)| {
            n == "find"
                && c.get_str("find") == Ok(INVALIDATIONS_COLLECTION)
                && c.get_bool("tailable") == Ok(true)
        })
        .map(|(_, c)| c.clone())
        .expect("the tail opened: a tailable find");
    if polls {
        assert_eq!(find.get("awaitData"), None, "{find}");
    } else {
        assert_eq!(find.get_bool("awaitData"), Ok(true), "{find}");
    }
    assert_eq!(
        find.get_i32("batchSize")
            .ok()
            .or(find.get_i64("batchSize").ok().map(|v| v as i32)),
        Some(1)
    );
    let mores: Vec<&Document> = seen
        .iter()
        .filter(|(n, c)| n == "getMore" && c.get_str("collection") == Ok(INVALIDATIONS_COLLECTION))
        .map(|(_, c)| c)
        .collect();
    assert!(!mores.is_empty(), "the tail reads on");
    for more in mores {
        // A full batch may leave invalidations behind: it never confirms freshness.
        assert_eq!(more.get_i64("batchSize"), Ok(TAIL_BATCH as i64));
        if polls {
            assert_eq!(more.get("maxTimeMS"), None, "{more}");
        } else {
            let wait = more.get_i64("maxTimeMS").unwrap();
            assert_eq!(wait as u128, TAIL_AWAIT.as_millis());
        }
    }
    assert_eq!(TAIL_AWAIT, StdDuration::from_millis(100));
}

/// Each tail mode, pinned, sends its own commands (on any server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tail_mode_sends_its_commands() {
    let Some(options) = mongo::client_options().await else {
        return;
    };
    let clock = ManualClock::new();
    for (mode, polls, test) in [
        (TailMode::AwaitData, false, "cache_mongo::mode_await"),
        (TailMode::Poll, true, "cache_mongo::mode_poll"),
    ] {
        let b = instance_in(options.clone(), test, &clock, true, mode).await;
        until_serving(&b).await;
        // A few rounds of reading.
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        assert_tail_commands(&b.rec, polls);
    }
}

/// `_invalidations` in `test`'s database, seen from outside (a client of its own).
fn outside(options: &ClientOptions, test: &str) -> slates::mongodb::Collection<Document> {
    slates::mongodb::Client::with_options(options.clone())
        .unwrap()
        .database(&mongo::database_name(test))
        .collection::<Document>(INVALIDATIONS_COLLECTION)
}

/// Inserts `docs` into `_invalidations` from outside, as one command.
async fn insert_raw(options: &ClientOptions, test: &str, docs: Vec<Document>) {
    outside(options, test)
        .insert_many(docs)
        .await
        .expect("insert into _invalidations");
}

/// A stamped invalidation of the profile of `user`, as publisher `p`'s `s`-th.
fn stamped(user: &str, p: i64, s: i64) -> Document {
    doc! {"k": "p", "v": user, "p": p, "s": s}
}

/// An instance with the cache on a fresh database, with ada logged in and her token cached
/// (two `GET /maybe`). `None`: no server (the skip is reported).
async fn ada_cached(test: &str, clock: &ManualClock) -> Option<(ClientOptions, Instance)> {
    let options = mongo::client_options().await?;
    let mut b = instance(options.clone(), test, clock, true).await;
    until_serving(&b).await;
    b.client.post_form("/login", "username=ada").await;
    assert_eq!(b.client.get("/maybe").await.body, "ada");
    assert_eq!(b.client.get("/maybe").await.body, "ada");
    Some((options, b))
}

/// A publication missing from a publisher's sequence (inserted here with a skipped sequence
/// number: what FerretDB's out-of-order commits or a failed publication leave) flushes the
/// subscriber's whole cache; the late one, if it ever shows up, is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_a_publisher_sequence_flushes_the_cache() {
    let test = "cache_mongo::gap";
    let clock = ManualClock::new();
    let Some((options, b)) = ada_cached(test, &clock).await else {
        return;
    };
    let start = b.engine.stats().cache.unwrap();
    assert!(start.entries >= 1, "{start:?}");

    insert_raw(&options, test, vec![stamped("zed", 77, 1)]).await;
    until_cache(&b.engine, "the first one received", |s| {
        s.invalidations_received == start.invalidations_received + 1
    })
    .await;
    assert_eq!(b.engine.stats().cache.unwrap().flushes, start.flushes);
    assert!(b.engine.stats().cache.unwrap().entries >= 1);

    insert_raw(&options, test, vec![stamped("zed", 77, 3)]).await;
    until_cache(&b.engine, "a flush for the gap", |s| {
        s.flushes > start.flushes
    })
    .await;
    let after = b.engine.stats().cache.unwrap();
    assert_eq!(after.flushes, start.flushes + 1);
    assert_eq!(after.entries, 0, "{after:?}");
    until_serving(&b).await;

    // The late one, then the next: only the next is news.
    insert_raw(
        &options,
        test,
        vec![stamped("zed", 77, 2), stamped("zed", 77, 4)],
    )
    .await;
    until_cache(&b.engine, "the next one received", |s| {
        s.invalidations_received == after.invalidations_received + 1
    })
    .await;
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    let end = b.engine.stats().cache.unwrap();
    assert_eq!(end.invalidations_received, after.invalidations_received + 1);
    assert_eq!(end.flushes, after.flushes);
}

/// A document seen again (a server re-delivering, simulated here by a second document with
/// the same publisher and sequence number, naming B's cached token) costs nothing: it is
/// not applied, and B keeps serving the token from its cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_seen_again_is_ignored() {
    let test = "cache_mongo::again";
    let clock = ManualClock::new();
    let Some((options, mut b)) = ada_cached(test, &clock).await else {
        return;
    };
    let hash = Token::parse(b.client.cookie.as_deref().unwrap())
        .unwrap()
        .hash()
        .to_hex();
    // Counted before the insert: the tail may receive it before this task looks again.
    let first = b.engine.stats().cache.unwrap();
    insert_raw(&options, test, vec![stamped("zed", 78, 1)]).await;
    until_cache(&b.engine, "the first one received", |s| {
        s.invalidations_received > first.invalidations_received
    })
    .await;
    let start = b.engine.stats();

    let again = doc! {"k": "t", "v": hash.as_str(), "p": 78_i64, "s": 1_i64};
    insert_raw(&options, test, vec![again, stamped("zed", 78, 2)]).await;
    let received = start.cache.as_ref().unwrap().invalidations_received;
    until_cache(&b.engine, "the next one received", |s| {
        s.invalidations_received > received
    })
    .await;
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    let cache = b.engine.stats().cache.unwrap();
    assert_eq!(cache.invalidations_received, received + 1, "{cache:?}");
    assert_eq!(cache.flushes, start.cache.as_ref().unwrap().flushes);
    b.rec.take();
    assert_eq!(b.client.get("/maybe").await.body, "ada");
    assert_eq!(
        b.rec.requests(),
        [],
        "the token still served from the cache"
    );
}

/// The documents of `_invalidations` in `test`'s database, in insertion order.
async fn collection_documents(options: &ClientOptions, test: &str) -> Vec<Document> {
    use futures_util::TryStreamExt;
    outside(options, test)
        .find(doc! {})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("read _invalidations")
}

/// On FerretDB (whose polls read the whole collection and which trims it once a minute),
/// each tail deletes what it read `PRUNE_AGE` ago, but the newest of it (a FerretDB cursor
/// whose last document is deleted fails): 30 invalidations are down to the seed and the
/// last one a few seconds later, and B's tail still reads the cursor it had; the next
/// invalidation arrives as before. Each prune is one `delete` by `_id`. On MongoDB
/// (which trims at each insert) nothing is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tails_prune_the_collection_on_ferretdb_only() {
    let test = "cache_mongo::prune";
    let clock = ManualClock::new();
    let Some((options, b)) = ada_cached(test, &clock).await else {
        return;
    };
    let ferretdb = mongo::is_ferretdb().await;
    let a = instance(options.clone(), test, &clock, false).await;
    until_serving(&a).await;
    let start = b.engine.stats().cache.unwrap();
    let cursor = b.rec.tail_cursor().expect("B tails");
    insert_raw(
        &options,
        test,
        (1..=30).map(|s| stamped("zed", 79, s)).collect(),
    )
    .await;
    until_cache(&b.engine, "all 30 received", |s| {
        s.invalidations_received == start.invalidations_received + 30
    })
    .await;
    tokio::time::sleep(PRUNE_AGE + PRUNE_EVERY * 2).await;

    let left = collection_documents(&options, test).await;
    let seqs: Vec<i64> = left.iter().filter_map(|d| d.get_i64("s").ok()).collect();
    if ferretdb {
        assert_eq!(seqs, [30], "all but the newest pruned: {left:?}");
        assert_eq!(left.len(), 2, "the seed stays: {left:?}");
    } else {
        assert_eq!(
            seqs,
            (1..=30).collect::<Vec<_>>(),
            "nothing pruned on MongoDB"
        );
    }
    let deletes: Vec<Document> = b
        .rec
        .take()
        .into_iter()
        .filter(|(n, c)| n == "delete" && c.get_str("delete") == Ok(INVALIDATIONS_COLLECTION))
        .map(|(_, c)| c)
        .collect();
    if ferretdb {
        assert!(!deletes.is_empty(), "B pruned");
        for d in &deletes {
            let statements = d.get_array("deletes").unwrap();
            assert_eq!(statements.len(), 1, "{d}");
            let statement = statements[0].as_document().unwrap();
            assert_eq!(statement.get_i32("limit"), Ok(0), "{d}");
            let q = statement.get_document("q").unwrap();
            assert_eq!(q.keys().collect::<Vec<_>>(), ["_id"], "{d}");
            assert!(
                q.get_document("_id").unwrap().get_array("$in").is_ok(),
                "{d}"
            );
        }
    } else {
        assert_eq!(deletes, Vec::<Document>::new());
    }
    let now = b.engine.stats().cache.unwrap();
    b.rec.take();
    insert_raw(&options, test, vec![stamped("zed", 79, 31)]).await;
    until_cache(&b.engine, "the next one received", |s| {
        s.invalidations_received == now.invalidations_received + 1
    })
    .await;
    // (A flush is not asserted against: one is right if a poll took `TAIL_SILENCE`.)
    assert_eq!(b.rec.tail_cursor(), Some(cursor), "the same cursor");
    assert!(a.engine.stats().cache.unwrap().serving);
}

/// More than `TAIL_BATCH` invalidations queued at once (one `insert` of 1,000): B's
/// freshness is never confirmed at an instant after the insert before all of them were
/// delivered, polling and, except on FerretDB, with `awaitData`. (FerretDB 1.24's
/// `awaitData` `getMore` first returns what is left of an older query, and a short reply
/// from it confirmed freshness with only 900 of the 1,000 delivered: why the tail polls
/// there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_confirms_nothing() {
    let Some(options) = mongo::client_options().await else {
        return;
    };
    let clock = ManualClock::new();
    let mut modes = vec![(TailMode::Poll, "cache_mongo::full_poll")];
    if !mongo::is_ferretdb().await {
        modes.push((TailMode::AwaitData, "cache_mongo::full_await"));
    }
    for (mode, test) in modes {
        let b = instance_in(options.clone(), test, &clock, true, mode).await;
        until_serving(&b).await;
        let start = b.engine.stats().cache.unwrap().invalidations_received;
        let n = 10 * TAIL_BATCH as i64;
        let docs = (1..=n).map(|s| stamped("zed", 79, s)).collect();
        insert_raw(&options, test, docs).await;
        let acknowledged = Instant::now();
        let deadline = acknowledged + StdDuration::from_secs(20);
        let mut looks = 0;
        loop {
            let now = Instant::now();
            // `stats` reads the lag before the count: a confirmation it sees came after the
            // deliveries it covers.
            let stats = b.engine.stats().cache.unwrap();
            looks += 1;
            let confirmed = stats
                .invalidation_lag_ms
                .and_then(|lag| now.checked_sub(StdDuration::from_secs_f64(lag / 1000.0)));
            if confirmed.is_some_and(|at| at > acknowledged) {
                // At least: a reopened tail reads the collection again.
                assert!(
                    stats.invalidations_received >= start + n as u64,
                    "{mode:?}: confirmed after the insert with only {} of {n} delivered \
                     ({looks} looks)",
                    stats.invalidations_received - start
                );
                break;
            }
            assert!(Instant::now() < deadline, "{mode:?}: never confirmed");
            tokio::task::yield_now().await;
        }
        say!("cache_mongo: {mode:?}: {n} queued, confirmed after all ({looks} looks)");
    }
}

fn percentile(sorted: &[StdDuration], p: f64) -> StdDuration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_cache_channel() {
    let test = "cache_mongo::two_instances";
    let Some(options) = mongo::client_options().await else {
        return;
    };
    let clock = ManualClock::new();
    let mut a = instance(options.clone(), test, &clock, true).await;
    let mut b = instance(options, test, &clock, false).await;
    until_serving(&a).await;
    until_serving(&b).await;

    // The tail: polling on FerretDB, `awaitData` elsewhere.
    let polls = mongo::is_ferretdb().await;
    assert_tail_commands(&b.rec, polls);
    // The capped collection: 100 documents on FerretDB (whose every poll reads it all),
    // 10,000 elsewhere.
    let create = a
        .rec
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|(n, c)| n == "create" && c.get_str("create") == Ok(INVALIDATIONS_COLLECTION))
        .map(|(_, c)| c.clone())
        .expect("A created _invalidations");
    assert_eq!(create.get_bool("capped"), Ok(true));
    assert_eq!(create.get_i64("max"), Ok(if polls { 100 } else { 10_000 }));

    // Warm reads on B cost nothing.
    a.client.post_form("/login", "username=ada").await;
    b.client.cookie = a.client.cookie.clone();
    let r = b.client.get("/me").await;
    assert_eq!(r.status, StatusCode::OK);
    b.rec.take();
    let before = b.engine.stats();
    for _ in 0..20 {
        assert_eq!(b.client.get("/me").await.body, "ada -");
    }
    let after = b.engine.stats();
    assert_eq!(b.rec.requests(), [], "20 warm GET /me on B: no command");
    assert_eq!(after.store_operations, before.store_operations);
    let (hits, misses) = (
        after.cache.as_ref().unwrap().hits,
        after.cache.unwrap().misses,
    );
    assert!(hits >= 40, "hits {hits}, misses {misses}");

    // A logout on A: one delete and one insert into `_invalidations`; B refuses.
    a.rec.take();
    assert_eq!(
        a.client.post("/logout").await.status,
        StatusCode::NO_CONTENT
    );
    let sent = a.rec.requests();
    let names: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["delete", "insert"]);
    let insert = &sent[1].1;
    assert_eq!(insert.get_str("insert"), Ok(INVALIDATIONS_COLLECTION));
    let published = insert.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(published.get_str("k"), Ok("t"));
    assert_eq!(published.get_str("v").unwrap().len(), 64, "the token hash");
    until_body(&mut b.client, "/maybe", "anonymous").await;

    // Many trials: logout on A until B refuses; profile write on A until B shows it.
    let (mut logouts, mut writes) = (Vec::new(), Vec::new());
    for i in 0..40 {
        a.client.cookie = None;
        a.client.post_form("/login", "username=ada").await;
        b.client.cookie = a.client.cookie.clone();
        assert_eq!(b.client.get("/maybe").await.body, "ada");
        assert_eq!(b.client.get("/me").await.status, StatusCode::OK); // warm
        let tz = format!("tz{i}");
        a.engine
            .user_slates("ada")
            .unwrap()
            .raw_slate("user")
            .set("tz", tz.as_str())
            .await
            .unwrap();
        writes.push(until_body(&mut b.client, "/me", &format!("ada {tz}")).await);
        a.client.post("/logout").await;
        logouts.push(until_body(&mut b.client, "/maybe", "anonymous").await);
    }
    logouts.sort();
    writes.sort();
    say!(
        "cache_mongo: logout on A refused on B after p50 {:?}, p99 {:?}, max {:?}; profile write \
         seen on B after p50 {:?}, p99 {:?} ({} trials, this machine, FerretDB)",
        percentile(&logouts, 0.5),
        percentile(&logouts, 0.99),
        logouts.last().unwrap(),
        percentile(&writes, 0.5),
        percentile(&writes, 0.99),
        logouts.len()
    );

    // Log out everywhere on A: B refuses.
    a.client.cookie = None;
    a.client.post_form("/login", "username=ada").await;
    b.client.cookie = a.client.cookie.clone();
    assert_eq!(b.client.get("/maybe").await.body, "ada");
    assert_eq!(
        a.client.post("/logout-everywhere").await.status,
        StatusCode::NO_CONTENT
    );
    until_body(&mut b.client, "/maybe", "anonymous").await;
    assert!(b.engine.stats().cache.unwrap().invalidations_received >= 80);
}

/// Kills B's tail cursor from outside: B reopens it, drops its cache (it may have missed
/// invalidations), and keeps refusing logged-out tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tail_is_reopened_and_flushes() {
    let test = "cache_mongo::killed_tail";
    let Some(options) = mongo::client_options().await else {
        return;
    };
    let clock = ManualClock::new();
    let mut a = instance(options.clone(), test, &clock, true).await;
    let mut b = instance(options.clone(), test, &clock, false).await;
    until_serving(&b).await;
    a.client.post_form("/login", "username=ada").await;
    b.client.cookie = a.client.cookie.clone();
    assert_eq!(b.client.get("/maybe").await.body, "ada");
    let flushes = b.engine.stats().cache.unwrap().flushes;

    let id = b.rec.tail_cursor().expect("B tails");
    let admin: Database = slates::mongodb::Client::with_options(options)
        .unwrap()
        .database(&mongo::database_name(test));
    admin
        .run_command(doc! {"killCursors": INVALIDATIONS_COLLECTION, "cursors": [id]})
        .await
        .expect("killCursors");
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while b.engine.stats().cache.unwrap().flushes == flushes {
        assert!(Instant::now() < deadline, "the tail was not reopened");
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    until_serving(&b).await;
    assert_ne!(b.rec.tail_cursor(), Some(id), "a new cursor");
    assert_eq!(
        a.client.post("/logout").await.status,
        StatusCode::NO_CONTENT
    );
    until_body(&mut b.client, "/maybe", "anonymous").await;
}

/// A stalled server (SIGSTOP): B's cache stops serving (a warm request goes to the store
/// and waits), and serves again once the server resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_stops_the_cache_until_it_resumes() {
    let test = "cache_mongo::stalled";
    let Some(binary) = mongo::dedicated_binary(test) else {
        return;
    };
    let port = mongo::free_port();
    let dir = mongo::temp_dir("cache-stall");
    let server = mongo::ServerProcess::start(&binary, port, &dir);
    let options = ClientOptions::parse(format!(
        "{}?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000&heartbeatFrequencyMS=500",
        server.uri()
    ))
    .await
    .unwrap();
    let clock = ManualClock::new();
    let mut a = instance(options.clone(), test, &clock, true).await;
    let mut b = instance(options, test, &clock, false).await;
    until_serving(&b).await;
    a.client.post_form("/login", "username=ada").await;
    b.client.cookie = a.client.cookie.clone();
    assert_eq!(b.client.get("/maybe").await.body, "ada");
    assert_eq!(b.client.get("/maybe").await.body, "ada");
    let hits = b.engine.stats().cache.unwrap().hits;
    assert!(hits >= 1);

    server.signal("STOP");
    let deadline = Instant::now() + StdDuration::from_secs(5);
    while b.engine.stats().cache.unwrap().serving {
        assert!(
            Instant::now() < deadline,
            "the cache kept serving a stalled channel"
        );
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    // A warm request is not answered from the cache: it waits on the stopped server.
    let mut c = b.client.clone();
    let request = tokio::spawn(async move { c.get("/maybe").await });
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    assert!(
        !request.is_finished(),
        "answered from the cache during the stall"
    );
    assert_eq!(b.engine.stats().cache.unwrap().hits, hits);
    server.signal("CONT");
    let r = request.await.unwrap();
    assert!(
        r.status == StatusCode::OK || r.status == StatusCode::SERVICE_UNAVAILABLE,
        "{r:?}"
    );
    until_serving(&b).await;
    until_body(&mut b.client, "/maybe", "ada").await;
    b.rec.take();
    for _ in 0..5 {
        assert_eq!(b.client.get("/maybe").await.body, "ada");
    }
    assert_eq!(b.rec.requests(), [], "served from the cache again");
    drop((a, b));
    drop(server);
}

/// A `counter` example process on `port`, on the database `uri`; killed on drop.
struct App(std::process::Child);

impl App {
    fn start(binary: &std::path::Path, uri: &str, port: u16) -> App {
        let child = std::process::Command::new(binary)
            .env("SLATES_MONGODB_URI", uri)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the counter example");
        App(child)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `counter` example binary, which `cargo test` builds next to the test binaries.
fn counter_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let binary = dir.join("examples").join("counter");
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds the examples (or run `cargo build --example counter`)",
        binary.display()
    );
    binary
}

async fn stats(http: &reqwest::Client, base: &str) -> serde_json::Value {
    let body = http
        .get(format!("{base}/stats"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Point 6 with two real app processes (the `counter` example, on the cache by default on
/// MongoDB) sharing one server: 20 warm `GET /me` on B cost 0 store operations (B's own
/// `/stats`), and a logout on A makes B refuse the cookie (the delay over many trials is
/// printed, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_processes() {
    let test = "cache_mongo::two_processes";
    let Some(server) = mongo::server() else {
        return;
    };
    let binary = counter_binary();
    let db = mongo::database_name(test);
    let options = mongo::client_options().await.unwrap();
    let _ = mongo::database(test, options).await; // dropped: fresh
    let uri = format!("{}{db}", server.uri.trim_end_matches('/').to_owned() + "/");
    let (pa, pb) = (mongo::free_port(), mongo::free_port());
    let (_a, _b) = (App::start(&binary, &uri, pa), App::start(&binary, &uri, pb));
    let (a, b) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Both up, both caches serving.
    let deadline = Instant::now() + StdDuration::from_secs(30);
    for base in [&a, &b] {
        loop {
            let up = match http.get(format!("{base}/stats")).send().await {
                Ok(r) => r
                    .text()
                    .await
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()),
                Err(_) => None,
            };
            if up.is_some_and(|s| s["cache"]["serving"] == true) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{base} never served with its cache on"
            );
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
    }
    let mut logouts = Vec::new();
    for trial in 0..20 {
        let r = http
            .post(format!("{a}/login"))
            .form(&[("username", "ada")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let me = |base: &str| {
            http.get(format!("{base}/me"))
                .header("cookie", cookie.as_str())
                .send()
        };
        assert_eq!(me(&b).await.unwrap().status(), StatusCode::OK); // warm B
        if trial == 0 {
            // The login on A wrote the profile (last login) and published that: wait until B
            // has received everything A published, then warm B.
            let published = stats(&http, &a).await["cache"]["invalidations_published"]
                .as_u64()
                .unwrap();
            let deadline = Instant::now() + StdDuration::from_secs(10);
            while stats(&http, &b).await["cache"]["invalidations_received"]
                .as_u64()
                .unwrap()
                < published
            {
                assert!(
                    Instant::now() < deadline,
                    "B never received A's invalidations"
                );
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
            assert_eq!(me(&b).await.unwrap().status(), StatusCode::OK);
            let before = stats(&http, &b).await;
            for _ in 0..20 {
                assert_eq!(me(&b).await.unwrap().status(), StatusCode::OK);
            }
            let after = stats(&http, &b).await;
            assert_eq!(
                after["store_operations"], before["store_operations"],
                "20 warm GET /me on B cost no store operation: cache before {}, after {}",
                before["cache"], after["cache"]
            );
        }
        let r = http
            .post(format!("{a}/logout"))
            .header("cookie", cookie.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let started = Instant::now();
        while me(&b).await.unwrap().status() != StatusCode::UNAUTHORIZED {
            assert!(
                started.elapsed() < StdDuration::from_secs(10),
                "B still accepts a cookie logged out on A"
            );
            tokio::time::sleep(StdDuration::from_millis(2)).await;
        }
        logouts.push(started.elapsed());
    }
    logouts.sort();
    say!(
        "cache_mongo: two counter processes: logout on A refused on B after p50 {:?}, p99 {:?} \
         ({} trials, this machine, FerretDB)",
        percentile(&logouts, 0.5),
        percentile(&logouts, 0.99),
        logouts.len()
    );
}
