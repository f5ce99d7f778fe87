//! Issue 14: guest slates through the real layer, on every backend, with every store call
//! recorded (the `Hooked` decorator): a read-only visitor costs nothing and gets no cookie;
//! the first guest write issues the guest cookie; guest slates expire; hostile guest
//! cookies are anonymous with no store call; a guest token never works as an auth token
//! and vice versa; login carries chosen slates over and never upgrades the guest token;
//! logout keeps guest data; flash messages are read once.
mod common;

use common::guest_app::{app, set_cookie_of, Browser, AUTH, GUEST};
use common::hooked::{hooked_engine, Call};
use common::Backend;
use http::StatusCode;
use time::Duration;

async fn read_only_visitor_costs_nothing(backend: Backend, test: &str) {
    let Some((engine, hooked, _)) = hooked_engine(backend, test).await else {
        return;
    };
    let mut b = Browser::new(app(&engine));
    for path in [
        "/hits",
        "/cart",
        "/guest/hits",
        "/notes",
        "/flash",
        "/static",
        "/guest/exists",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert!(r.set_cookies().is_empty(), "{path}: no cookie");
    }
    assert_eq!(b.get("/hits").await.body, "0");
    assert_eq!(b.get("/guest/exists").await.body, "false");
    assert_eq!(b.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        hooked.calls(),
        [],
        "a visitor who never wrote costs no store call"
    );
    assert_eq!(b.guest, None);
}

async fn first_write_issues_the_guest_cookie(backend: Backend, test: &str) {
    let Some((engine, hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let mut b = Browser::new(app(&engine));
    let r = b.post("/hits", "").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));
    let sc = set_cookie_of(&r, GUEST).expect("the first write sets the guest cookie");
    assert_eq!(r.set_cookies().len(), 1, "only the guest cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=86400"] {
        assert!(sc.contains(attribute), "{sc}");
    }
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(
        b.guest.as_ref().map(String::len),
        Some(43),
        "256 bits, base64url"
    );
    // No cookie yet: no lookup; the guest record is inserted, then the write.
    assert_eq!(hooked.calls(), [Call::ReplaceSlateIf, Call::UpdateSlate]);
    hooked.clear_calls();

    // The cookie sent back: one record read, one write, no new cookie.
    let r = b.post("/hits", "").await;
    assert_eq!(r.body, "2");
    assert!(r.set_cookies().is_empty());
    assert_eq!(hooked.calls(), [Call::GetSlate, Call::UpdateSlate]);
    hooked.clear_calls();
    assert_eq!(b.get("/hits").await.body, "2");
    assert_eq!(hooked.calls(), [Call::GetSlate, Call::GetSlate]);

    // A guest slate expires a day after its last write (COUNTER itself never expires).
    let expires = b.get("/guest/expires").await.body;
    let expected = (clock.now() + Duration::days(1)).unix_timestamp();
    assert_eq!(expires, expected.to_string());
    // A second visitor gets a guest of its own.
    let mut other = Browser::new(app(&engine));
    assert_eq!(other.post("/hits", "").await.body, "1");
    assert_ne!(other.guest, b.guest);
}

async fn guest_idle_expiry_and_renewal(backend: Backend, test: &str) {
    let Some((engine, _, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let mut b = Browser::new(app(&engine));
    b.post("/hits", "").await;
    b.post("/notes", "kept").await;
    // Before half the idle time: a write does not renew (no cookie).
    clock.advance(Duration::hours(11));
    let r = b.post("/hits", "").await;
    assert!(r.set_cookies().is_empty());
    // Past half: the write renews the guest and sends the cookie again.
    clock.advance(Duration::hours(2));
    let r = b.post("/hits", "").await;
    assert_eq!(r.body, "3");
    let sc = set_cookie_of(&r, GUEST).expect("renewed");
    assert!(sc.contains("Max-Age=86400"), "{sc}");
    // 23 h after the renewal: the guest lives, its counter too (written then); the notes,
    // not written for 36 h, are gone.
    clock.advance(Duration::hours(23));
    assert_eq!(b.get("/hits").await.body, "3");
    assert_eq!(b.get("/notes").await.body, "");
    // A day after the last write: everything reads as absent and the cookie is removed.
    clock.advance(Duration::hours(1));
    let r = b.get("/guest/hits").await;
    assert_eq!(r.body, "0");
    assert!(set_cookie_of(&r, GUEST).unwrap().contains("Max-Age=0"));
    assert_eq!(b.guest, None);
}

async fn hostile_guest_cookies_are_anonymous(backend: Backend, test: &str) {
    let Some((engine, hooked, _)) = hooked_engine(backend, test).await else {
        return;
    };
    let mut victim = Browser::new(app(&engine));
    victim.post("/hits", "").await;
    let real = victim.guest.clone().unwrap();
    let other = slates::Token::generate().unwrap().encode();
    let huge = "A".repeat(8 * 1024);
    let hostile = [
        format!("{GUEST}=nope"),
        format!("{GUEST}={}", &real[..42]),
        format!("{GUEST}={huge}"),
        format!("{GUEST}={real}; {GUEST}={other}"), // duplicated with another value
        format!(
            "{GUEST}={}",
            real.replace(|c: char| c.is_ascii_digit(), "+")
        ),
    ];
    for cookie in &hostile {
        hooked.clear_calls();
        let req = http::Request::get("/hits").header("cookie", cookie.as_str());
        let r = send(&engine, req.body(axum::body::Body::empty()).unwrap()).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, "0"),
            "{cookie:.60}"
        );
        assert_eq!(hooked.calls(), [], "no store call for {cookie:.60}");
        let sc = set_cookie_of(&r, GUEST).unwrap_or_default();
        if cookie.contains("nope") {
            assert!(
                sc.contains("Max-Age=0"),
                "a malformed guest cookie is removed"
            );
        }
    }
    // 100 cookies in one header, the guest one malformed: still no store call.
    let many: Vec<String> = (0..100).map(|i| format!("c{i}=v")).collect();
    let header = format!("{}; {GUEST}=x", many.join("; "));
    hooked.clear_calls();
    let r = send(&engine, get_with_cookie("/hits", &header)).await;
    assert_eq!(r.body, "0");
    assert_eq!(hooked.calls(), []);

    // An unknown well-formed token: one read of the (missing) record, then anonymous and
    // removed. A write with it issues a fresh guest: a token the client chose is never
    // adopted.
    let mut planted = Browser::new(app(&engine));
    planted.guest = Some(other.clone());
    hooked.clear_calls();
    let r = planted.get("/hits").await;
    assert_eq!(r.body, "0");
    assert_eq!(hooked.calls(), [Call::GetSlate]);
    assert!(set_cookie_of(&r, GUEST).unwrap().contains("Max-Age=0"));
    planted.guest = Some(other.clone());
    let r = planted.post("/hits", "").await;
    assert_eq!(r.body, "1");
    let issued = planted.guest.clone().unwrap();
    assert_ne!(issued, other, "not adopted");
    assert_eq!(
        victim.get("/hits").await.body,
        "1",
        "the victim is untouched"
    );
}

async fn guest_and_auth_tokens_never_swap(backend: Backend, test: &str) {
    let Some((engine, _, _)) = hooked_engine(backend, test).await else {
        return;
    };
    let mut b = Browser::new(app(&engine));
    b.post("/notes", "guest notes").await;
    let guest = b.guest.clone().unwrap();
    // Login never upgrades the guest token: a fresh auth token, the guest cookie untouched.
    let r = b.post("/login", "ada").await; // login_carrying
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        set_cookie_of(&r, GUEST).is_none(),
        "login leaves the guest cookie"
    );
    let auth = b.auth.clone().unwrap();
    assert_ne!(auth, guest);
    assert_eq!(b.guest.as_deref(), Some(guest.as_str()));
    b.post("/hits", "").await; // ada's hits
    assert_eq!(b.get("/me").await.body, "ada");

    // The guest token as the auth cookie: not logged in.
    let mut forged = Browser::new(app(&engine));
    forged.auth = Some(guest.clone());
    assert_eq!(forged.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.get("/hits").await.body, "0");
    // The auth token as the guest cookie: no guest, and none of ada's slates.
    let mut forged = Browser::new(app(&engine));
    forged.guest = Some(auth.clone());
    assert_eq!(forged.get("/guest/hits").await.body, "0");
    assert_eq!(forged.get("/notes").await.body, "");
    assert_eq!(forged.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.guest, None, "refused and removed");

    // Logout never destroys guest data.
    assert_eq!(b.post("/logout", "").await.status, StatusCode::OK);
    assert_eq!(b.auth, None);
    assert_eq!(b.get("/notes").await.body, "guest notes");
    // Unless asked: forget deletes the guest's slates and removes its cookie.
    let r = b.post("/forget", "").await;
    assert!(set_cookie_of(&r, GUEST).unwrap().contains("Max-Age=0"));
    let mut again = Browser::new(app(&engine));
    again.guest = Some(guest);
    assert_eq!(again.get("/notes").await.body, "");
    // ada's slates are untouched.
    let ada = engine.user_slates("ada").unwrap();
    assert_eq!(
        ada.raw_slate("counter")
            .get_doc()
            .await
            .unwrap()
            .unwrap()
            .doc
            .get_i64("hits")
            .unwrap(),
        1
    );
}

async fn login_carries_over_chosen_slates(backend: Backend, test: &str) {
    let Some((engine, _, _)) = hooked_engine(backend, test).await else {
        return;
    };
    // ada has 5 hits and a cart from before.
    let ada = engine.user_slates("ada").unwrap();
    ada.raw_slate("counter").inc("hits", 5).await.unwrap();
    ada.raw_slate("cart").push("items", "old").await.unwrap();
    let mut b = Browser::new(app(&engine));
    for _ in 0..3 {
        b.post("/hits", "").await;
    }
    b.post("/cart", "a").await;
    b.post("/cart", "b").await;
    b.post("/notes", "stays").await;
    let guest = b.guest.clone().unwrap();
    let r = b.post("/login", "ada").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "2"),
        "two slates carried"
    );
    assert_eq!(b.get("/hits").await.body, "8", "added");
    assert_eq!(b.get("/cart").await.body, "old,a,b", "appended in order");
    // The carried slates are gone from the guest; the others stay.
    assert_eq!(b.get("/guest/hits").await.body, "0");
    assert_eq!(b.get("/notes").await.body, "stays");
    let mut alone = Browser::new(app(&engine));
    alone.guest = Some(guest);
    assert_eq!(alone.get("/hits").await.body, "0");
    assert_eq!(alone.get("/cart").await.body, "");
    // The cart keeps its workflow's expiry on the user's side.
    let cart = ada.raw_slate("cart").get_doc().await.unwrap().unwrap();
    assert_eq!(cart.expires, Some(engine.now() + Duration::minutes(30)));
    // Logging in again carries nothing more.
    assert_eq!(b.post("/login", "ada").await.body, "0");
    assert_eq!(b.get("/hits").await.body, "8");
    // Discard: the guest's cart is dropped, the user's left as it is.
    let mut c = Browser::new(app(&engine));
    c.post("/cart", "x").await;
    assert_eq!(c.get("/guest/exists").await.body, "true");
    let r = c.post("/login-discarding-cart", "ada").await;
    assert_eq!(r.body, "1", "one slate handled");
    assert_eq!(c.get("/cart").await.body, "old,a,b");
    c.post("/logout", "").await;
    assert_eq!(c.get("/cart").await.body, "", "the guest's cart is gone");
    // A visitor with no guest cookie logs in at no guest cost.
    let mut fresh = Browser::new(app(&engine));
    assert_eq!(fresh.post("/login", "bob").await.body, "0");
    assert_eq!(fresh.guest, None);
}

async fn flash_messages_are_read_once(backend: Backend, test: &str) {
    let Some((engine, _, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let mut b = Browser::new(app(&engine));
    b.post("/flash", "saved").await;
    b.post("/flash", "again").await;
    assert!(b.guest.is_some(), "a guest flash is a guest write");
    let mut tab2 = b.clone();
    assert_eq!(b.get("/flash").await.body, "saved|again");
    assert_eq!(
        tab2.get("/flash").await.body,
        "",
        "the other tab does not see it again"
    );
    // For users too; and unread messages expire after an hour.
    b.post("/login-plain", "ada").await;
    b.post("/flash", "welcome").await;
    assert_eq!(b.get("/flash").await.body, "welcome");
    b.post("/flash", "stale").await;
    clock.advance(slates::FLASH_TTL);
    assert_eq!(b.get("/flash").await.body, "");
}

per_backend!(
    read_only_visitor_costs_nothing,
    first_write_issues_the_guest_cookie,
    guest_idle_expiry_and_renewal,
    hostile_guest_cookies_are_anonymous,
    guest_and_auth_tokens_never_swap,
    login_carries_over_chosen_slates,
    flash_messages_are_read_once,
);

// ------------------------------------------------------------------ helpers

use slates::{Clock as _, Engine, ManualClock, MemoryStore};
use tower::ServiceExt;

fn get_with_cookie(path: &str, cookie: &str) -> http::Request<axum::body::Body> {
    http::Request::get(path)
        .header("cookie", cookie)
        .body(axum::body::Body::empty())
        .unwrap()
}

async fn send(engine: &Engine, req: http::Request<axum::body::Body>) -> common::harness::Reply {
    common::harness::read(app(engine).oneshot(req).await.unwrap()).await
}

/// The store sees the SHA-256 of the guest token only: every guest slate (the record
/// included) belongs to `_g.<hex SHA-256>`, and no stored value holds the token.
#[tokio::test]
async fn the_store_keeps_only_the_hash_of_the_guest_token() {
    let store = MemoryStore::new();
    let engine = Engine::builder(store.clone())
        .clock(ManualClock::new())
        .secure(false)
        .build()
        .await
        .unwrap();
    let mut b = Browser::new(app(&engine));
    b.post("/hits", "").await;
    b.post("/flash", "hello").await;
    let token = b.guest.clone().unwrap();
    let hash = slates::Token::parse(&token).unwrap().hash().to_hex();
    let slates = store.dump_slates();
    assert_eq!(slates.len(), 3, "record, counter, flash");
    for (owner, name, doc) in &slates {
        assert_eq!(owner.as_str(), format!("_g.{hash}"), "{name}");
        assert!(owner.is_guest());
        assert!(!format!("{doc:?}").contains(&token));
    }
    assert_eq!(store.token_count(), 0, "a guest is no auth token");
    // No username can be a guest owner.
    assert!(slates::Username::new(&format!("_g.{hash}")).is_err());
}

/// The guest cookie follows the token cookie's settings: `__Host-slates-guest`, `Secure`,
/// by default; `build` refuses guest cookie settings the token cookie's rules refuse.
#[tokio::test]
async fn guest_cookie_settings() {
    let engine = Engine::builder(MemoryStore::new()).build().await.unwrap();
    assert_eq!(engine.config().guest_cookie.name, "__Host-slates-guest");
    assert!(engine.config().guest_cookie.secure);
    assert_eq!(engine.config().guest_idle_timeout, Duration::days(1));
    let r = send(
        &engine,
        http::Request::post("/hits")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    let sc = set_cookie_of(&r, "__Host-slates-guest").expect("guest cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(sc.contains(attribute), "{sc}");
    }
    assert!(!sc.contains("Domain"), "{sc}");
    let refused = [
        Engine::builder(MemoryStore::new()).guest_cookie_name("__Host-slates"),
        Engine::builder(MemoryStore::new()).guest_cookie_name("bad name"),
        Engine::builder(MemoryStore::new())
            .secure(false)
            .guest_cookie_name("__Host-g"),
        Engine::builder(MemoryStore::new()).guest_idle_timeout(Duration::ZERO),
        Engine::builder(MemoryStore::new()).guest_idle_timeout(Duration::days(401)),
        Engine::builder(MemoryStore::new()).guest_collection("guests"),
        Engine::builder(MemoryStore::new()).guest_collection("_auth"),
    ];
    for builder in refused {
        assert!(
            matches!(builder.build().await, Err(slates::Error::Config(_))),
            "refused"
        );
    }
}

#[allow(dead_code)]
const _NAMES: [&str; 2] = [AUTH, GUEST];
