//! Issue 10, point 3: time limits that leave no doubt. The server process is frozen
//! (SIGSTOP) for longer than every limit during a stream of increments, then thawed. slates
//! never abandons a command it sent (every command the driver started is answered, by a
//! reply or a failure), every acknowledged increment is in the final count, and a write
//! that failed was applied at most once.
//!
//! One sequential stream: FerretDB's own updates are not atomic under concurrency (a known
//! FerretDB 1.x gap), so concurrent streams would measure FerretDB, not slates.
mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use common::mongo::{self, ServerProcess};
use slates::mongodb::event::command::CommandEvent;
use slates::mongodb::event::EventHandler;
use slates::mongodb::options::ClientOptions;
use slates::{Engine, MongoStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_server_loses_no_acknowledged_increment() {
    let test = "stalled_server_loses_no_acknowledged_increment";
    let Some(binary) = mongo::dedicated_binary(test) else {
        return;
    };
    let port = mongo::free_port();
    let dir = mongo::temp_dir("stall");
    let server = ServerProcess::start(&binary, port, &dir);
    let mut options = ClientOptions::parse(format!(
        "mongodb://127.0.0.1:{port}/stall?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000&heartbeatFrequencyMS=500"
    ))
    .await
    .unwrap();
    // Every command sent must get its answer, a reply or a failure: a command whose
    // operation was dropped mid-flight gets neither, and may still run later.
    let open: Arc<Mutex<HashSet<i32>>> = Arc::default();
    let sent = Arc::new(AtomicUsize::new(0));
    let (o, s) = (open.clone(), sent.clone());
    options.command_event_handler = Some(EventHandler::callback(move |event| match event {
        CommandEvent::Started(e) => {
            s.fetch_add(1, Ordering::SeqCst);
            o.lock().unwrap().insert(e.request_id);
        }
        CommandEvent::Succeeded(e) => {
            o.lock().unwrap().remove(&e.request_id);
        }
        CommandEvent::Failed(e) => {
            o.lock().unwrap().remove(&e.request_id);
        }
        _ => {}
    }));
    let store = MongoStore::connect_with_options(options)
        .unwrap()
        .max_time(Some(StdDuration::from_secs(1)));
    let slates = Engine::builder(store).build().await.unwrap();
    let counter = slates.user_slates("ada").unwrap().raw_slate("counter");
    assert_eq!(counter.inc("hits", 0).await.unwrap(), 0);

    let stall = StdDuration::from_secs(4); // longer than maxTimeMS and the detection time
    let stream = {
        let counter = counter.clone();
        tokio::spawn(async move {
            let (mut acked, mut failed, mut last) = (0_i64, 0_i64, 0_i64);
            let mut slowest = StdDuration::ZERO;
            let end =
                Instant::now() + StdDuration::from_secs(1) + stall + StdDuration::from_secs(4);
            while Instant::now() < end {
                let started = Instant::now();
                match counter.inc("hits", 1).await {
                    Ok(v) => {
                        assert!(v > last, "acknowledged values only grow: {v} after {last}");
                        acked += 1;
                        last = v;
                    }
                    Err(e) if e.is_unavailable() => failed += 1,
                    Err(e) => panic!("during the stall: {e:?}"),
                }
                slowest = slowest.max(started.elapsed());
            }
            (acked, failed, last, slowest)
        })
    };
    tokio::time::sleep(StdDuration::from_secs(1)).await;
    server.signal("STOP");
    tokio::time::sleep(stall).await;
    server.signal("CONT");
    let (acked, failed, last, slowest) = stream.await.unwrap();

    // Settled: whatever was sent has been answered; nothing lands later.
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    let settled = hits(&counter).await;
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let later = hits(&counter).await;
    crate::say!(
        "stall: {acked} increments acknowledged, {failed} failed (503), final count {later}, \
         slowest request {slowest:?} during a {stall:?} stall"
    );
    assert_eq!(settled, later, "nothing changed after the stream");
    // The engine caches (the default on MongoDB): its tail of the invalidation channel
    // has a `getMore` waiting (`awaitData`) or sends one every `TAIL_POLL` (polling, on
    // FerretDB). Drop the engine; the tail gets the reply to its last `getMore` (at most
    // `TAIL_AWAIT` later), kills its cursor and ends.
    drop((slates, counter));
    tokio::time::sleep(slates::store::TAIL_AWAIT * 5).await;
    let unanswered = open.lock().unwrap().len();
    assert_eq!(
        unanswered,
        0,
        "every one of the {} commands sent was answered (succeeded or failed): none abandoned",
        sent.load(Ordering::SeqCst)
    );
    assert!(last <= later, "the last acknowledged value is there");
    assert!(
        acked <= later && later <= acked + failed,
        "every acknowledged increment is counted, and a failed one at most once: \
         acked {acked}, failed {failed}, final {later}"
    );
    assert!(
        failed > 0,
        "the stall was noticed: requests failed instead of waiting it out"
    );
    drop(server);
}

async fn hits(counter: &slates::RawSlate) -> i64 {
    let doc = counter.get_doc().await.unwrap().unwrap();
    match doc.doc.to_document().unwrap().get("hits") {
        Some(bson::Bson::Int32(n)) => i64::from(*n),
        Some(bson::Bson::Int64(n)) => *n,
        other => panic!("hits: {other:?}"),
    }
}
