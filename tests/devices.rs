//! Devices (issue 13) through the real layer, on every store (`per_backend!`): listing,
//! ending one, ending the others, last-seen writes, the device limit and lifecycle events.
//! The store-level contract of the new `TokenStore` methods is in the behavioural suite
//! (`device_records` in `tests/common/suite.rs`).
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::body::Body;
use axum::extract::{Form, Path};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{Request, StatusCode};
use serde::Deserialize;
use slates::{
    Auth, AuthEvent, AuthEventKind, Clock, CurrentUser, Devices, Engine, EngineBuilder,
    ManualClock, Token,
};
use time::Duration;

use common::harness::{Client, Reply};
use common::Backend;

const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

#[derive(Deserialize)]
struct LoginForm {
    username: String,
}

async fn login(auth: Auth, Form(f): Form<LoginForm>) -> Result<StatusCode, slates::Error> {
    auth.login(&f.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(user: CurrentUser) -> String {
    user.username().to_owned()
}

/// `[[id, current, label, last_seen unix], …]`
async fn list(devices: Devices) -> Result<Json<Vec<(String, bool, String, i64)>>, slates::Error> {
    let list = devices.list().await?;
    Ok(Json(
        list.into_iter()
            .map(|d| {
                (
                    d.id.to_string(),
                    d.current,
                    d.label,
                    d.last_seen.unix_timestamp(),
                )
            })
            .collect(),
    ))
}

async fn end(devices: Devices, Path(id): Path<String>) -> Result<StatusCode, slates::Error> {
    Ok(match devices.end(&id).await? {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_FOUND,
    })
}

async fn end_others(devices: Devices) -> Result<String, slates::Error> {
    Ok(devices.end_others().await?.to_string())
}

async fn rotate(auth: Auth) -> Result<StatusCode, slates::Error> {
    auth.rotate().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_named(auth: Auth) -> Result<StatusCode, slates::Error> {
    assert!(auth.username().await?.is_some());
    auth.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout(auth: Auth) -> Result<StatusCode, slates::Error> {
    auth.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_everywhere(auth: Auth) -> Result<StatusCode, slates::Error> {
    auth.logout_everywhere().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn app(engine: &Engine) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/devices", get(list))
        .route("/devices/{id}/end", post(end))
        .route("/logout-others", post(end_others))
        .route("/rotate", post(rotate))
        .route("/logout", post(logout))
        .route("/logout-named", post(logout_named))
        .route("/logout-everywhere", post(logout_everywhere))
        .layer(engine.layer())
}

/// A client of `engine` logged in as `name` with a `User-Agent`.
async fn device(engine: &Engine, name: &str, user_agent: &str) -> Client {
    let mut c = Client::new(app(engine));
    let req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", user_agent)
        .body(Body::from(format!("username={name}")))
        .unwrap();
    assert_eq!(c.send(req).await.status, StatusCode::NO_CONTENT);
    c
}

fn devices_of(reply: &Reply) -> Vec<(String, bool, String, i64)> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

async fn builder(backend: Backend, test: &str, clock: &ManualClock) -> Option<EngineBuilder> {
    backend.builder(test, clock).await
}

/// A user sees their devices (one current), ends one of theirs (never another user's: that
/// answers like an unknown id), ends the others, and ends their current one.
pub async fn list_end_and_end_others(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some(b) = builder(backend, test, &clock).await else {
        return;
    };
    let engine = b.build().await.unwrap();
    let mut phone = device(&engine, "ada", FIREFOX_LINUX).await;
    let mut laptop = device(&engine, "ada", CHROME_WINDOWS).await;
    let mut tablet = device(&engine, "ada", FIREFOX_LINUX).await;
    let mut bob = device(&engine, "bob", FIREFOX_LINUX).await;

    let seen_by_phone = devices_of(&phone.get("/devices").await);
    assert_eq!(seen_by_phone.len(), 3, "ada's three devices, not bob's");
    assert_eq!(seen_by_phone.iter().filter(|d| d.1).count(), 1);
    assert!(seen_by_phone[0].1, "the current device comes first");
    assert_eq!(seen_by_phone[0].2, "Firefox on Linux");
    assert!(seen_by_phone.iter().any(|d| d.2 == "Chrome on Windows 10"));
    let laptop_id = devices_of(&laptop.get("/devices").await)[0].0.clone();
    let bob_id = devices_of(&bob.get("/devices").await)[0].0.clone();

    // Ending bob's device from ada's phone answers like an id that does not exist.
    let unknown = slates::DeviceId::generate().unwrap().to_string();
    for id in [bob_id.as_str(), unknown.as_str(), "not-an-id"] {
        assert_eq!(
            phone.post(&format!("/devices/{id}/end")).await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        bob.get("/me").await.status,
        StatusCode::OK,
        "bob's device is untouched"
    );

    // Ending the laptop takes effect on its next request.
    let path = format!("/devices/{laptop_id}/end");
    assert_eq!(phone.post(&path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(laptop.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        phone.post(&path).await.status,
        StatusCode::NOT_FOUND,
        "already ended"
    );
    assert_eq!(devices_of(&phone.get("/devices").await).len(), 2);

    // End the others: the tablet goes, the phone stays, bob is untouched.
    assert_eq!(phone.post("/logout-others").await.body, "1");
    assert_eq!(tablet.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(phone.get("/me").await.status, StatusCode::OK);
    assert_eq!(bob.get("/me").await.status, StatusCode::OK);
    let left = devices_of(&phone.get("/devices").await);
    assert_eq!(left.len(), 1);
    assert!(left[0].1);

    // Ending the current device by id logs this browser out.
    let own = format!("/devices/{}/end", left[0].0);
    let r = phone.post(&own).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(phone.cookie.is_none(), "the response removes the cookie");

    // Anonymous: no devices.
    assert_eq!(phone.get("/devices").await.status, StatusCode::UNAUTHORIZED);
}

/// A rotation is a new device id; the old token, in its grace, is not listed.
pub async fn rotation_lists_one_device(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some(b) = builder(backend, test, &clock).await else {
        return;
    };
    let engine = b.build().await.unwrap();
    let mut phone = device(&engine, "ada", FIREFOX_LINUX).await;
    let before = devices_of(&phone.get("/devices").await);
    // A browser sends its User-Agent with every request: the new token's label is this one's.
    let rotate = Request::post("/rotate")
        .header("user-agent", FIREFOX_LINUX)
        .body(Body::empty())
        .unwrap();
    assert_eq!(phone.send(rotate).await.status, StatusCode::NO_CONTENT);
    let after = devices_of(&phone.get("/devices").await);
    assert_eq!(after.len(), 1, "the old token, in its grace, is not listed");
    assert!(after[0].1);
    assert_eq!(after[0].2, "Firefox on Linux");
    assert_ne!(after[0].0, before[0].0, "a rotation is a new device id");
}

/// `last_seen` is written once the interval has passed, and not again within it.
pub async fn last_seen_once_per_interval(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some(b) = builder(backend, test, &clock).await else {
        return;
    };
    let engine = b
        .last_seen_interval(Duration::minutes(10))
        .build()
        .await
        .unwrap();
    let login_time = clock.now().unix_timestamp();
    let mut phone = device(&engine, "ada", FIREFOX_LINUX).await;
    let mut laptop = device(&engine, "ada", CHROME_WINDOWS).await;
    let laptop_seen =
        |list: Vec<(String, bool, String, i64)>| list.into_iter().find(|d| !d.1).unwrap().3;
    clock.advance(Duration::minutes(9));
    assert_eq!(laptop.get("/me").await.status, StatusCode::OK);
    let list = devices_of(&phone.get("/devices").await);
    assert_eq!(
        laptop_seen(list),
        login_time,
        "within the interval: not written"
    );
    clock.advance(Duration::minutes(1));
    assert_eq!(laptop.get("/me").await.status, StatusCode::OK);
    let list = devices_of(&phone.get("/devices").await);
    let touched = clock.now().unix_timestamp();
    assert_eq!(laptop_seen(list), touched, "interval reached: written");
    clock.advance(Duration::minutes(5));
    assert_eq!(laptop.get("/me").await.status, StatusCode::OK);
    let list = devices_of(&phone.get("/devices").await);
    assert_eq!(laptop_seen(list), touched, "once per interval");
}

/// The limit at its edge: max-1 and max devices all stay; the login that makes max+1 ends
/// the least recently seen device, which here is neither the first nor the last login.
pub async fn max_devices_ends_least_recently_seen(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some(b) = builder(backend, test, &clock).await else {
        return;
    };
    let engine = b
        .max_devices(3)
        .last_seen_interval(Duration::minutes(1))
        .build()
        .await
        .unwrap();
    let mut first = device(&engine, "ada", FIREFOX_LINUX).await;
    clock.advance(Duration::minutes(1));
    let mut second = device(&engine, "ada", FIREFOX_LINUX).await;
    let mut bob = device(&engine, "bob", FIREFOX_LINUX).await;
    assert_eq!(devices_of(&first.get("/devices").await).len(), 2, "max - 1");
    clock.advance(Duration::minutes(1));
    let mut third = device(&engine, "ada", FIREFOX_LINUX).await;
    assert_eq!(devices_of(&first.get("/devices").await).len(), 3, "max");
    // The first device is seen again: now the second is the least recently seen.
    clock.advance(Duration::minutes(1));
    assert_eq!(first.get("/me").await.status, StatusCode::OK);
    clock.advance(Duration::minutes(1));
    let mut fourth = device(&engine, "ada", FIREFOX_LINUX).await;
    assert_eq!(
        second.get("/me").await.status,
        StatusCode::UNAUTHORIZED,
        "least recently seen: ended"
    );
    for c in [&mut first, &mut third, &mut fourth, &mut bob] {
        assert_eq!(c.get("/me").await.status, StatusCode::OK);
    }
    assert_eq!(
        devices_of(&first.get("/devices").await).len(),
        3,
        "max + 1 came back to max"
    );
}

/// Collects the events a subscriber gets.
#[derive(Clone, Default)]
struct Audit(Arc<Mutex<Vec<AuthEvent>>>);

impl Audit {
    /// Waits (up to 5 s) until `n` events arrived; returns them.
    async fn wait_for(&self, n: usize) -> Vec<AuthEvent> {
        let deadline = Instant::now() + StdDuration::from_secs(5);
        loop {
            let got = self.0.lock().unwrap().clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    }
}

/// Every lifecycle event reaches the subscriber, in order, with user, device and the
/// token's short hash prefix (never the token).
pub async fn lifecycle_events(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some(b) = builder(backend, test, &clock).await else {
        return;
    };
    let audit = Audit::default();
    let sink = audit.clone();
    let engine = b
        .auth_events(move |e: &AuthEvent| sink.0.lock().unwrap().push(e.clone()))
        .build()
        .await
        .unwrap();
    let mut phone = device(&engine, "ada", FIREFOX_LINUX).await; // Login
    let phone_token = phone.cookie.clone().unwrap();
    let mut laptop = device(&engine, "ada", FIREFOX_LINUX).await; // Login
    let mut tablet = device(&engine, "ada", FIREFOX_LINUX).await; // Login
    clock.advance(Duration::days(4));
    assert_eq!(phone.get("/me").await.status, StatusCode::OK); // Renewal
    let laptop_id = devices_of(&laptop.get("/devices").await)[0].0.clone(); // Renewal
    phone.post(&format!("/devices/{laptop_id}/end")).await; // DeviceEnded
    assert_eq!(laptop.get("/me").await.status, StatusCode::UNAUTHORIZED); // Refused
    phone.post("/rotate").await; // Rotation
    phone.post("/logout-others").await; // OthersEnded (the tablet, the rotated-out token)
    assert_eq!(tablet.get("/me").await.status, StatusCode::UNAUTHORIZED); // Refused
    phone.post("/logout").await; // Logout
    let mut again = device(&engine, "ada", FIREFOX_LINUX).await; // Login
    again.post("/logout-everywhere").await; // LogoutEverywhere

    use AuthEventKind::*;
    let expected = [
        Login,
        Login,
        Login,
        Renewal,
        Renewal,
        DeviceEnded,
        Refused,
        Rotation,
        OthersEnded,
        Refused,
        Logout,
        Login,
        LogoutEverywhere,
    ];
    let events = audit.wait_for(expected.len()).await;
    let kinds: Vec<AuthEventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, expected);
    let phone_hash = Token::parse(&phone_token).unwrap().hash();
    assert_eq!(
        events[0].token.as_deref(),
        Some(phone_hash.short().as_str())
    );
    assert_eq!(
        events[5].device.as_ref().map(|d| d.to_string()),
        Some(laptop_id)
    );
    for e in &events {
        let user = e.user.as_ref().map(|u| u.as_str());
        assert!(e.at >= engine.now() - Duration::days(5));
        assert_eq!(e.token.as_ref().map(String::len), Some(8), "{e:?}");
        assert!(!phone_token.contains(e.token.as_deref().unwrap()));
        if matches!(e.kind, Renewal | Refused) {
            // The token check reads no device id (the memory store's one-line lookup).
            assert_eq!(e.device, None, "{e:?}");
        }
        if e.kind == Refused {
            // An ended token is unknown: its user is not known either.
            assert_eq!(user, None);
        } else if e.kind == Logout {
            // The `/logout` handler never asked who the user is: a logout is one delete,
            // with no lookup just to name the user (`logout_event_names_a_known_user`).
            assert_eq!(user, None);
        } else {
            assert_eq!(user, Some("ada"), "{e:?}");
        }
    }
    assert_eq!(engine.stats().events_dropped, 0);
}

/// A subscriber that blocks forever (until the end of the test) and one that panics never
/// slow or fail a request; what the full queue could not take is counted.
pub async fn subscriber_cannot_slow_or_fail_requests(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some(b) = builder(backend, test, &clock).await else {
        return;
    };
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let blocked = Mutex::new(blocked);
    let (entered, inside) = std::sync::mpsc::channel::<()>();
    let entered = Mutex::new(entered);
    let engine = b
        .auth_event_queue(2)
        .auth_events(move |_: &AuthEvent| {
            let _ = entered.lock().unwrap().send(());
            let _ = blocked.lock().unwrap().recv();
        })
        .build()
        .await
        .unwrap();
    // On a task of its own, so that a request that blocks (a broken delivery) shows as a
    // timeout here rather than a hung test.
    let requests = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for i in 0..10 {
                let mut c = device(&engine, "ada", FIREFOX_LINUX).await;
                if i == 0 {
                    // The subscriber holds the first event (and blocks) before the others come.
                    inside.recv_timeout(StdDuration::from_secs(5)).unwrap();
                }
                assert_eq!(c.get("/me").await.status, StatusCode::OK);
            }
        })
    };
    tokio::time::timeout(StdDuration::from_secs(5), requests)
        .await
        .expect("requests waited for the subscriber")
        .unwrap();
    // One event is with the subscriber, two wait in the queue: the other seven were dropped.
    assert_eq!(engine.stats().events_dropped, 7);
    drop(release);

    let Some(b) = builder(backend, &format!("{test}_panic"), &clock).await else {
        return;
    };
    let audit = Audit::default();
    let sink = audit.clone();
    let engine = b
        .auth_events(move |e: &AuthEvent| {
            sink.0.lock().unwrap().push(e.clone());
            panic!("a failing subscriber");
        })
        .build()
        .await
        .unwrap();
    let mut c = device(&engine, "ada", FIREFOX_LINUX).await;
    assert_eq!(c.get("/me").await.status, StatusCode::OK);
    assert_eq!(c.post("/logout").await.status, StatusCode::NO_CONTENT);
    let kinds: Vec<_> = audit.wait_for(2).await.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [AuthEventKind::Login, AuthEventKind::Logout],
        "delivery goes on after a panic"
    );
}

/// The client network is kept only when asked, truncated, from axum's `ConnectInfo`.
pub async fn client_ip_only_when_asked_and_truncated(backend: Backend, test: &str) {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    for (record, addr, want) in [
        (false, Some("203.0.113.77:5000"), None),
        (true, None, None),
        (true, Some("203.0.113.77:5000"), Some("203.0.113.0/24")),
        (true, Some("[2001:db8:1:2::9]:443"), Some("2001:db8:1::/48")),
    ] {
        let clock = ManualClock::new();
        let name = format!("{test}_{record}_{}", addr.map_or(0, |a| a.len()));
        let Some(b) = builder(backend, &name, &clock).await else {
            return;
        };
        let engine = b.record_client_ip(record).build().await.unwrap();
        let mut c = Client::new(app(&engine));
        let mut req = Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("username=ada"))
            .unwrap();
        if let Some(addr) = addr {
            let addr: SocketAddr = addr.parse().unwrap();
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        assert_eq!(c.send(req).await.status, StatusCode::NO_CONTENT);
        let devices = engine.user_devices("ada").await.unwrap();
        assert_eq!(devices[0].ip.as_deref(), want, "record {record}, {addr:?}");
        assert_eq!(devices[0].label, "Unknown device", "no User-Agent");
    }
}

/// A record written before devices existed (no `device`, `seen`, `label`, `ip`): it keeps
/// working, is not listed until its next request, which gives it an id; "end the others"
/// ends it like any other.
pub async fn records_from_before_devices_keep_working(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some(b) = builder(backend, test, &clock).await else {
        return;
    };
    let engine = b.build().await.unwrap();
    let token = Token::generate().unwrap();
    let now = clock.now();
    let expires = now + Duration::days(7);
    match backend {
        Backend::Memory => {
            let record = slates::store::TokenRecord {
                hash: token.hash(),
                user: slates::Username::new("ada").unwrap(),
                created: now,
                expires,
                renewed: None,
                rotated: None,
                device: None,
                last_seen: now,
                label: String::new(),
                ip: None,
            };
            engine.token_store().insert_token(&record).await.unwrap();
        }
        #[cfg(feature = "mongodb")]
        Backend::Mongo(_) => {
            // Exactly what an earlier version wrote.
            let options = common::mongo::client_options().await.unwrap();
            let client = slates::mongodb::Client::with_options(options).unwrap();
            let db = client.database(&common::mongo::database_name(test));
            let date = |t: time::OffsetDateTime| {
                slates::bson::DateTime::from_millis((t.unix_timestamp_nanos() / 1_000_000) as i64)
            };
            db.collection::<slates::bson::Document>("_auth")
                .insert_one(slates::bson::doc! {
                    "_id": token.hash().to_hex(), "user": "ada",
                    "created": date(now), "expires": date(expires),
                })
                .await
                .unwrap();
            let read = engine
                .token_store()
                .find_token(&token.hash(), now)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (read.device, read.last_seen, read.label, read.ip),
                (None, now, String::new(), None)
            );
        }
    }
    let mut phone = device(&engine, "ada", FIREFOX_LINUX).await;
    assert_eq!(
        devices_of(&phone.get("/devices").await).len(),
        1,
        "not listed yet"
    );
    let mut old = Client::new(app(&engine));
    old.cookie = Some(token.encode());
    assert_eq!(old.get("/me").await.status, StatusCode::OK);
    let listed = devices_of(&old.get("/devices").await);
    assert_eq!(listed.len(), 2, "its request gave it an id");
    let own = listed.iter().find(|d| d.1).unwrap();
    assert_eq!((own.2.as_str(), own.3), ("", now.unix_timestamp()));
    assert!(slates::DeviceId::parse(&own.0).is_some());
    assert_eq!(phone.post("/logout-others").await.body, "1");
    assert_eq!(old.get("/me").await.status, StatusCode::UNAUTHORIZED);
}

/// A logout whose request resolved its identity names the user in its event.
pub async fn logout_event_names_a_known_user(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some(b) = builder(backend, test, &clock).await else {
        return;
    };
    let audit = Audit::default();
    let sink = audit.clone();
    let engine = b
        .auth_events(move |e: &AuthEvent| sink.0.lock().unwrap().push(e.clone()))
        .build()
        .await
        .unwrap();
    let mut phone = device(&engine, "ada", FIREFOX_LINUX).await;
    assert_eq!(
        phone.post("/logout-named").await.status,
        StatusCode::NO_CONTENT
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = audit.0.lock().unwrap().clone();
        if let Some(e) = events.iter().find(|e| e.kind == AuthEventKind::Logout) {
            assert_eq!(e.user.as_ref().map(|u| u.as_str()), Some("ada"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no logout event");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

per_backend!(
    logout_event_names_a_known_user,
    list_end_and_end_others,
    rotation_lists_one_device,
    last_seen_once_per_interval,
    max_devices_ends_least_recently_seen,
    lifecycle_events,
    subscriber_cannot_slow_or_fail_requests,
    client_ip_only_when_asked_and_truncated,
    records_from_before_devices_keep_working,
);
