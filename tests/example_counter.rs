//! The `counter` example through its own `app()`: the HTTP contract (login, /me, hits,
//! logout, logout everywhere, stats), the HTML page, and concurrent hits over a real
//! listener with a cookie-keeping client.
mod common;

#[allow(dead_code)]
#[path = "../examples/counter.rs"]
mod counter;

use std::collections::BTreeSet;
use std::future::IntoFuture;

use axum::body::Body;
use common::harness::Client;
use common::Backend;
use counter::app;
use http::{Request, StatusCode};
#[cfg(feature = "mongodb")]
use slates::Layout;
use slates::{Engine, ManualClock, MemoryStore};

async fn new_slates() -> Engine {
    Engine::builder(MemoryStore::new())
        .clock(ManualClock::new())
        .secure(false)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn contract_login_me_hits_logout() {
    contract(Backend::Memory, "counter_contract_memory").await;
}

/// The same contract on the production store (a MongoDB-wire server).
#[cfg(feature = "mongodb")]
#[tokio::test]
async fn contract_on_mongo() {
    contract(
        Backend::Mongo(Layout::SingleCollection),
        "example_counter_contract",
    )
    .await;
}

async fn contract(backend: Backend, test: &str) {
    let Some(slates) = backend.slates(test, &ManualClock::new()).await else {
        return;
    };
    let mut client = Client::new(app(slates));

    // Anonymous: 401 where a user is needed, and no cookie; `/hits` is the visitor's.
    for (method, path) in [
        ("GET", "/me"),
        ("POST", "/logout-everywhere"),
        ("GET", "/devices"),
        ("POST", "/logout-others"),
    ] {
        let r = client
            .send(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(r.set_cookies().is_empty(), "{method} {path}");
    }
    for path in ["/hits", "/"] {
        let r = client.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            r.set_cookies().is_empty(),
            "{path}: a visitor who never hit gets no cookie"
        );
    }
    assert_eq!(client.get("/hits").await.body, "0");

    // Login: 204 + Set-Cookie with the secure defaults (bar Secure, off for plain http).
    let r = client.post_form("/login", "username=ada").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let set_cookie = r.set_cookies().join("\n");
    assert!(set_cookie.starts_with("slates="), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    let token = client.cookie.clone().expect("cookie kept");

    // /me: the username and the user slate written at login.
    let r = client.get("/me").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    let me: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(me["username"], "ada");
    assert_eq!(me["user"]["name"], "ada");
    assert_eq!(me["user"]["logins"], 1);

    // Hits: plain-text counts, each POST one atomic increment.
    let r = client.get("/hits").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "0"));
    for expected in 1..=3 {
        let r = client.post("/hits").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, expected.to_string());
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
    }
    let r = client.get("/hits").await;
    assert_eq!(r.body, "3");

    // Stats: JSON counters.
    let r = client.get("/stats").await;
    assert_eq!(r.status, StatusCode::OK);
    let stats: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(stats["logins"], 1);
    assert!(stats["requests"].as_u64().unwrap() >= 8, "{stats}");
    assert!(stats["authenticated"].as_u64().unwrap() >= 5, "{stats}");

    // Logout: 204 + an expired cookie; the old token is refused afterwards.
    let r = client.post("/logout").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let set_cookie = r.set_cookies().join("\n");
    assert!(set_cookie.contains("Max-Age=0"), "{set_cookie}");
    assert!(client.cookie.is_none());
    client.cookie = Some(token);
    let r = client.get("/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "old cookie refused");
    // A hit with the old cookie counts as an anonymous visitor's, never as ada's.
    let r = client.post("/hits").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));

    // Logging in again: the count lives in the user's slates, not in the token.
    client.cookie = None;
    let r = client.post_form("/login", "username=ada").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(client.get("/hits").await.body, "3");
    let me: serde_json::Value = serde_json::from_str(&client.get("/me").await.body).unwrap();
    assert_eq!(me["user"]["logins"], 2);
}

#[tokio::test]
async fn devices_contract() {
    devices(Backend::Memory, "counter_devices_memory").await;
}

/// The devices contract on the production store (a MongoDB-wire server).
#[cfg(feature = "mongodb")]
#[tokio::test]
async fn devices_contract_on_mongo() {
    devices(
        Backend::Mongo(Layout::SingleCollection),
        "example_counter_devices",
    )
    .await;
}

/// Logs a new client of `app` in as `name`, with a `User-Agent`.
async fn device(app: &slates::SlatesService<axum::Router>, name: &str, user_agent: &str) -> Client {
    let mut c = Client::new(app.clone());
    let req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", user_agent)
        .body(Body::from(format!("username={name}")))
        .unwrap();
    assert_eq!(c.send(req).await.status, StatusCode::NO_CONTENT);
    c
}

/// `GET /devices` as parsed JSON, checking the shape of every entry.
async fn list(c: &mut Client) -> Vec<serde_json::Value> {
    use time::format_description::well_known::Rfc3339;
    let r = c.get("/devices").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    let list: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
    for d in &list {
        let keys: BTreeSet<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["id", "current", "created", "last_seen", "label"]),
            "{d}"
        );
        assert!(d["id"].is_string() && d["label"].is_string() && d["current"].is_boolean());
        for t in ["created", "last_seen"] {
            time::OffsetDateTime::parse(d[t].as_str().unwrap(), &Rfc3339).expect("RFC 3339");
        }
    }
    assert_eq!(
        list.iter().filter(|d| d["current"] == true).count(),
        1,
        "exactly one current device"
    );
    list
}

async fn devices(backend: Backend, test: &str) {
    let Some(slates) = backend.slates(test, &ManualClock::new()).await else {
        return;
    };
    let app = app(slates);
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let mut phone = device(&app, "ada", firefox).await;
    let mut laptop = device(&app, "ada", "curl/8.5.0").await;
    let mut tablet = device(&app, "ada", firefox).await;
    let mut bob = device(&app, "bob", firefox).await;

    let seen = list(&mut phone).await;
    assert_eq!(seen.len(), 3);
    let current = seen.iter().find(|d| d["current"] == true).unwrap();
    assert_eq!(current["label"], "Firefox on Linux");
    let laptop_id = list(&mut laptop)
        .await
        .into_iter()
        .find(|d| d["current"] == true)
        .unwrap()["id"]
        .clone();
    let bob_id = list(&mut bob).await[0]["id"].clone();

    // 404 for an id that is not one of the caller's: another user's, unknown, malformed.
    for id in [bob_id.as_str().unwrap(), "AAAAAAAAAAAAAAAAAAAAAA", "nope"] {
        let r = phone.post(&format!("/devices/{id}/end")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
    }
    assert_eq!(bob.get("/me").await.status, StatusCode::OK);

    // 204 for one of the caller's: that device's cookie is refused from then on.
    let end = format!("/devices/{}/end", laptop_id.as_str().unwrap());
    assert_eq!(phone.post(&end).await.status, StatusCode::NO_CONTENT);
    assert_eq!(laptop.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        laptop.get("/devices").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(phone.post(&end).await.status, StatusCode::NOT_FOUND);
    assert_eq!(list(&mut phone).await.len(), 2);

    // Log out the others: the tablet ends, the phone stays, bob is untouched.
    let r = phone.post("/logout-others").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    assert_eq!(tablet.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(phone.get("/me").await.status, StatusCode::OK);
    assert_eq!(bob.get("/me").await.status, StatusCode::OK);
    let left = list(&mut phone).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["current"], true);
}

#[tokio::test]
async fn users_have_their_own_counters() {
    let app = app(new_slates().await);
    let mut ada = Client::new(app.clone());
    let mut bob = Client::new(app);
    assert_eq!(ada.post_form("/login", "username=ada").await.status, 204);
    assert_eq!(bob.post_form("/login", "username=bob").await.status, 204);
    ada.post("/hits").await;
    ada.post("/hits").await;
    assert_eq!(bob.post("/hits").await.body, "1");
    assert_eq!(ada.get("/hits").await.body, "2");
}

#[tokio::test]
async fn logout_everywhere_ends_every_login_of_the_user() {
    let app = app(new_slates().await);
    let mut laptop = Client::new(app.clone());
    let mut phone = Client::new(app.clone());
    let mut other = Client::new(app);
    for (c, name) in [
        (&mut laptop, "ada"),
        (&mut phone, "ada"),
        (&mut other, "bob"),
    ] {
        let r = c.post_form("/login", &format!("username={name}")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(phone.get("/me").await.status, StatusCode::OK);
    let r = laptop.post("/logout-everywhere").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.set_cookies().join("").contains("Max-Age=0"));
    assert_eq!(phone.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(other.get("/me").await.status, StatusCode::OK, "bob stays");
}

#[tokio::test]
async fn bad_usernames_are_400_and_log_nobody_in() {
    let mut client = Client::new(app(new_slates().await));
    for bad in ["", "_auth", "a%24b", "system.x"] {
        let r = client.post_form("/login", &format!("username={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.body);
        assert!(r.set_cookies().is_empty(), "{bad:?}");
    }
    let r = client.post("/login").await;
    assert!(r.status.is_client_error(), "no form at all");
}

#[tokio::test]
async fn html_page_and_plain_forms() {
    let mut client = Client::new(app(new_slates().await));
    let r = client.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(r#"<form method="post" action="/login""#));

    // A browser form (Accept: text/html) is sent back to the page instead of a 204.
    let html = "text/html,application/xhtml+xml;q=0.9";
    let form = |path: &str, body: &str| {
        Request::post(path)
            .header("accept", html)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let r = client.send(form("/login", "username=%3Ci%3Eeve")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/");
    assert!(client.cookie.is_some());
    let r = client.send(form("/hits", "")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = client.get("/").await;
    assert!(
        r.body.contains(r#"<output id="count">1</output>"#),
        "{}",
        r.body
    );
    // The username is escaped.
    assert!(r.body.contains("&lt;i&gt;eve"), "{}", r.body);
    assert!(!r.body.contains("<i>eve"));
    assert_eq!(r.headers["cache-control"], "no-store");
    let r = client.send(form("/logout", "")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(client.cookie.is_none());
    assert!(client.get("/").await.body.contains("Log in"));
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let mut client = Client::new(app(new_slates().await));
    assert_eq!(client.post_form("/login", "username=ada").await.status, 204);
    let r = client
        .send(
            Request::post("/hits")
                .header("host", "127.0.0.1:3000")
                .header("origin", "http://evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(client.get("/hits").await.body, "0", "nothing counted");
    let r = client
        .send(
            Request::post("/hits")
                .header("host", "127.0.0.1:3000")
                .header("origin", "http://127.0.0.1:3000")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));
}

/// Two "tabs" (one cookie jar) over a real socket hit the counter concurrently: every
/// increment is counted once, and every count from 1 to N is handed out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_hits_over_a_real_listener() {
    const TASKS: usize = 8;
    const HITS: usize = 50;
    let slates = Engine::builder(MemoryStore::new())
        .secure(false)
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, app(slates).into_make_service()).into_future());

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    assert_eq!(
        http.get(format!("{base}/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = http
        .post(format!("{base}/login"))
        .form(&[("username", "ada")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let me = http.get(format!("{base}/me")).send().await.unwrap();
    let me: serde_json::Value = serde_json::from_str(&me.text().await.unwrap()).unwrap();
    assert_eq!(me["username"], "ada");

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let http = http.clone(); // clones share the cookie jar: same login, like two tabs
        let url = format!("{base}/hits");
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(HITS);
            for _ in 0..HITS {
                let r = http.post(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                seen.push(r.text().await.unwrap().parse::<usize>().unwrap());
            }
            seen
        }));
    }
    let mut all = BTreeSet::new();
    for t in tasks {
        for n in t.await.unwrap() {
            assert!(all.insert(n), "count {n} handed out twice");
        }
    }
    let total = TASKS * HITS;
    assert_eq!(all, (1..=total).collect::<BTreeSet<_>>());
    let now = http.get(format!("{base}/hits")).send().await.unwrap();
    assert_eq!(now.text().await.unwrap(), total.to_string());

    let r = http.post(format!("{base}/logout")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the client dropped the expired cookie");
    let r = http.get(format!("{base}/hits")).send().await.unwrap();
    assert_eq!(r.status(), 200, "anonymous: the visitor's count");
    assert_eq!(r.text().await.unwrap(), "0");
    server.abort();
}

// ------------------------------------------------------------------ guests (issue 14)

/// The visitor contract: anonymous hits count on the visitor's own counter (the first one
/// sets the guest cookie); `POST /login` adds them to the user's counter, atomically and
/// once; the guest cookie alone then reads 0; logged-in `/hits` is unchanged.
#[tokio::test]
async fn guest_hits_carry_over_at_login() {
    guest_contract(Backend::Memory, "counter_guest_contract_memory").await;
}

/// The same on the production store, both layouts.
#[cfg(feature = "mongodb")]
#[tokio::test]
async fn guest_hits_carry_over_at_login_on_mongo() {
    for layout in [Layout::SingleCollection, Layout::CollectionPerUser] {
        let test = format!("example_counter_guest_{layout:?}");
        guest_contract(Backend::Mongo(layout), &test).await;
    }
}

async fn guest_contract(backend: Backend, test: &str) {
    use common::guest_app::{set_cookie_of, Browser, GUEST};
    let Some(slates) = backend.slates(test, &ManualClock::new()).await else {
        return;
    };
    let app = app(slates);
    // ada already has 10 hits.
    let mut ada = Browser::new(app.clone());
    let login = |b: &mut Browser, name: &'static str| {
        let mut b = b.clone();
        async move {
            let req = Request::post("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("username={name}")))
                .unwrap();
            let r = send_with_cookies(&mut b, req).await;
            (b, r)
        }
    };
    let (mut ada, r) = login(&mut ada, "ada").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for _ in 0..10 {
        ada.post("/hits", "").await;
    }

    // A visitor who never hit: 0, no cookie.
    let mut visitor = Browser::new(app.clone());
    let r = visitor.get("/hits").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "0"));
    assert!(r.set_cookies().is_empty());
    // Anonymous hits: the first sets the guest cookie, the next ones do not.
    let r = visitor.post("/hits", "").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));
    let sc = set_cookie_of(&r, GUEST).expect("guest cookie");
    assert!(
        sc.contains("HttpOnly") && sc.contains("SameSite=Lax"),
        "{sc}"
    );
    for expected in ["2", "3"] {
        let r = visitor.post("/hits", "").await;
        assert_eq!(r.body, expected);
        assert!(r.set_cookies().is_empty());
    }
    assert_eq!(visitor.get("/hits").await.body, "3");
    let guest_cookie = visitor.guest.clone().unwrap();

    // Login with the guest cookie: the visitor's 3 hits are added to ada's 10.
    let (mut logged_in, r) = login(&mut visitor, "ada").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        set_cookie_of(&r, GUEST).is_none(),
        "the guest cookie is left as it is"
    );
    assert_ne!(logged_in.auth.as_deref(), Some(guest_cookie.as_str()));
    assert_eq!(logged_in.get("/hits").await.body, "13");
    assert_eq!(
        ada.get("/hits").await.body,
        "13",
        "ada's other browser sees them"
    );
    // Logged-in hits unchanged.
    assert_eq!(logged_in.post("/hits", "").await.body, "14");
    // The guest cookie alone reads 0: the guest's counter is gone.
    let mut guest_only = Browser::new(app.clone());
    guest_only.guest = Some(guest_cookie);
    assert_eq!(guest_only.get("/hits").await.body, "0");
    // Logging in again carries nothing more.
    let (mut again, _) = login(&mut guest_only, "ada").await;
    assert_eq!(again.get("/hits").await.body, "14");
}

/// Sends `req` through `b`'s app with `b`'s cookies, keeping the `Set-Cookie`s.
async fn send_with_cookies(
    b: &mut common::guest_app::Browser,
    req: Request<Body>,
) -> common::harness::Reply {
    b.send_request(req).await
}

/// A cross-site post is refused (403) by `same_origin_only`, which the example puts inside
/// the slates layer: it costs no store operation, counts no hit and keeps the login.
#[tokio::test]
async fn cross_site_posts_are_refused_before_any_store_call() {
    let slates = new_slates().await;
    let mut client = Client::new(app(slates.clone()));
    assert_eq!(client.post_form("/login", "username=ada").await.status, 204);
    assert_eq!(client.post_form("/hits", "").await.status, StatusCode::OK);
    let before = slates.stats().store_operations;
    for path in ["/hits", "/logout", "/logout-everywhere"] {
        let r = client
            .send(
                Request::post(path)
                    .header("sec-fetch-site", "cross-site")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(slates.stats().store_operations, before, "no store call");
    assert!(client.cookie.is_some(), "still logged in");
    assert_eq!(client.get("/hits").await.body, "1", "no hit counted");
}
