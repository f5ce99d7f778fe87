//! Outage and recovery (issue 3, point 5): a dedicated server on its own port is killed
//! under a running app, and started again on the same port and data directory. Requests get
//! 503 while it is down (never 401, never someone else), nothing is half-written, and the
//! same cookie works again as soon as it is back, without rebuilding the app.
mod common;

use std::time::{Duration as StdDuration, Instant};

use bson::Bson;
use common::harness::Client;
use common::mongo::{self, ServerProcess};
use http::StatusCode;
use slates::{Engine, ManualClock, MongoStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_answers_503_and_recovery_needs_no_rebuild() {
    let Some(binary) = mongo::dedicated_binary("outage_answers_503_and_recovery_needs_no_rebuild")
    else {
        return;
    };
    let port = mongo::free_port();
    let dir = mongo::temp_dir("outage");
    let mut server = ServerProcess::start(&binary, port, &dir);
    // The production constructor: database from the URI path, short timeouts.
    let store = MongoStore::connect(&format!(
        "mongodb://127.0.0.1:{port}/outage?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000"
    ))
    .await
    .unwrap();
    assert_eq!(store.database().name(), "outage");
    let slates = Engine::builder(store)
        .clock(ManualClock::new())
        .secure(false)
        .build()
        .await
        .unwrap();
    let app = common::suite::test_app(&slates);

    let mut c = Client::new(app.clone());
    assert_eq!(
        c.post_form("/login", "username=ada").await.status,
        StatusCode::NO_CONTENT
    );
    let cookie = c.cookie.clone().expect("a cookie");
    let ada = slates.user_slates("ada").unwrap();
    ada.raw_slate("user")
        .set("tz", "Europe/Paris")
        .await
        .unwrap();
    assert_eq!(c.get("/me").await.body, "ada Europe/Paris");
    assert_eq!(c.post("/hits").await.body, "1");

    // Kill the server while one task keeps incrementing: every write is one command, so
    // each either happened whole or not at all.
    let mut writer = c.clone();
    let hammer = tokio::spawn(async move {
        let (mut ok, mut attempts) = (0_i64, 0_i64);
        let deadline = Instant::now() + StdDuration::from_millis(1500);
        while Instant::now() < deadline {
            attempts += 1;
            let r = writer.post("/hits").await;
            match r.status {
                StatusCode::OK => ok += 1,
                StatusCode::SERVICE_UNAVAILABLE => {}
                other => panic!("during the outage: {other} {}", r.body),
            }
        }
        (ok, attempts)
    });
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    server.kill();
    let (ok, attempts) = hammer.await.unwrap();

    // Down: 503 with a generic body, the cookie is kept, nobody is served as anonymous.
    for path in ["/me", "/maybe"] {
        let t = Instant::now();
        let r = c.get(path).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path} while the server is down: {}",
            r.body
        );
        assert!(
            t.elapsed() < StdDuration::from_secs(5),
            "503 should come fast, took {:?}",
            t.elapsed()
        );
        assert!(
            !r.body.to_lowercase().contains("mongo") && !r.body.contains("127.0.0.1"),
            "no server text in responses: {}",
            r.body
        );
        assert!(r.set_cookies().is_empty(), "the cookie is not removed");
        assert_eq!(c.cookie.as_deref(), Some(cookie.as_str()));
    }
    let r = Client::new(app.clone())
        .post_form("/login", "username=bob")
        .await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "login while down"
    );
    assert!(slates.stats().store_errors > 0);

    // Back on the same port and data: the same app and cookie work again, quickly.
    server.restart();
    let back = Instant::now();
    let r = loop {
        let r = c.get("/me").await;
        if r.status == StatusCode::OK || back.elapsed() > StdDuration::from_secs(20) {
            break r;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    };
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "ada Europe/Paris")
    );
    crate::say!(
        "outage: {ok} of {attempts} increments acknowledged around the kill; served again {:?} after restart",
        back.elapsed()
    );
    assert_eq!(c.cookie.as_deref(), Some(cookie.as_str()));

    // Every acknowledged increment is there (an unacknowledged one may have landed too),
    // and the slate still reads as a whole slate (its version readable).
    let counter = ada.raw_slate("counter").get_doc().await.unwrap().unwrap();
    let hits = match counter.doc.to_document().unwrap().get("hits") {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        other => panic!("hits: {other:?}"),
    };
    assert!(
        (1 + ok..=1 + attempts).contains(&hits),
        "hits {hits}, acknowledged {ok}, attempted {attempts}"
    );
    assert_eq!(c.post("/hits").await.body, (hits + 1).to_string());
    let r = Client::new(app).post_form("/login", "username=bob").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "login after recovery");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn connect_settings() {
    // No command is sent by connect: these need no server.
    let store = MongoStore::connect("mongodb://127.0.0.1:9/").await.unwrap();
    assert_eq!(store.database().name(), slates::store::DEFAULT_DATABASE);
    let store = MongoStore::connect("mongodb://127.0.0.1:9/app_db")
        .await
        .unwrap();
    assert_eq!(store.database().name(), "app_db");
    let err = MongoStore::connect("http://not-mongo").await.unwrap_err();
    assert!(matches!(err, slates::Error::Config(_)), "{err}");
    // Nothing listens on port 9: building fails fast with Unavailable, not a hang or a panic.
    let t = Instant::now();
    let store = MongoStore::connect(
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300&connectTimeoutMS=300",
    )
    .await
    .unwrap();
    let err = Engine::builder(store).build().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(t.elapsed() < StdDuration::from_secs(5));
}
