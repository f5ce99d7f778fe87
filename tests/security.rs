//! Security suite, issue 4, threats 1, 2, 3, 6 and 7: tokens at rest, fixation, replay,
//! oversize data and store outages. Cookie abuse, cookie attributes and information leaks
//! are in `security_cookies.rs`; names in `security_names.rs`.
//!
//! Each test names the threat it covers (`t1_…`) and would fail if the protection were
//! removed. Tests that involve a store run on every store (`per_backend!`); the fault
//! injection tests use the `Faults` decorator's `set_available` / `fail_next`.

mod common;
#[macro_use]
mod security_support;

use bson::doc;
use http::StatusCode;
use std::sync::{Arc, Mutex};

use slates::store::{Call, Intercept, Intercepted, StoreFuture, TokenStore};
use slates::{Clock, Engine, Error, ManualClock, MemoryStore, Token};
use time::Duration;

use common::harness::Client;
use common::Backend;
use security_support::{contains, request, sha256_hex, token_forms, Env};

per_backend!(
    t1_store_holds_only_token_hashes,
    t2_planted_unknown_cookie_is_never_adopted,
    t2_planted_live_cookie_dies_at_login,
    t2_rotate_replaces_the_token,
    t2_rotated_token_is_not_renewed_during_grace,
    t3_replay_after_logout,
    t3_replay_after_logout_everywhere,
    t3_replay_after_expiry_with_record_still_stored,
    t3_replay_after_expiry_with_renewal_on,
    t3_renewal_racing_logout_never_resurrects,
    t6_oversize_write_keeps_previous_document,
);

// ---------------------------------------------------------------- 1. tokens at rest

/// Threat 1: a leaked `_auth` collection yields no usable cookie. After login, rotation and
/// renewal, the store holds the SHA-256 of each token and the token in no form at all.
async fn t1_store_holds_only_token_hashes(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let mut ada = env.logged_in("ada").await;
    let first = ada.cookie.clone().unwrap();
    env.slates
        .user_slates("ada")
        .unwrap()
        .raw_slate("user")
        .set("tz", "UTC")
        .await
        .unwrap();
    assert_eq!(ada.post("/rotate").await.status, StatusCode::NO_CONTENT);
    let rotated = ada.cookie.clone().unwrap();
    env.clock.advance(Duration::days(4)); // past half the idle timeout: the next request renews
    let r = ada.get("/me").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ada"));
    assert!(!r.set_cookies().is_empty(), "the request renewed the token");
    let bob = env.logged_in("bob").await;
    let bob_cookie = bob.cookie.clone().unwrap();

    // Raw: everything the store holds.
    let haystack = env.haystack().await;
    for cookie in [&first, &rotated, &bob_cookie] {
        for (form, needle) in token_forms(cookie) {
            assert!(
                !contains(&haystack, &needle),
                "the store holds a token as {form}"
            );
        }
    }
    // The scan does see the token records: the hashes are there (live ones at least).
    for cookie in [&rotated, &bob_cookie] {
        assert!(
            contains(&haystack, sha256_hex(cookie).as_bytes()),
            "the scan must see the hash of each live token"
        );
    }
    // Through the trait: the record is found by hash.
    let hash = Token::parse(&rotated).unwrap().hash();
    assert_eq!(hash.to_hex(), sha256_hex(&rotated));
    let found = env
        .slates
        .token_store()
        .find_token(&hash, env.clock.now())
        .await;
    assert_eq!(found.unwrap().unwrap().user.as_str(), "ada");

    let hashes = env.token_hashes().await;
    assert!(hashes
        .iter()
        .all(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())));
}

// ---------------------------------------------------------------- 2. fixation

/// Threat 2: a well-formed cookie planted before login (never issued by the server) is not
/// adopted: login issues a new token and the planted one stays anonymous.
async fn t2_planted_unknown_cookie_is_never_adopted(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let planted = Token::generate().unwrap().encode();
    let mut victim = env.client();
    victim.cookie = Some(planted.clone());
    let r = victim.post_form("/login", "username=ada").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let issued = victim.cookie.clone().unwrap();
    assert_ne!(issued, planted, "the planted token was adopted");
    let mut attacker = env.client();
    attacker.cookie = Some(planted.clone());
    assert_eq!(attacker.get("/maybe").await.body, "anonymous");
    assert_eq!(victim.get("/maybe").await.body, "ada");
    let planted_hash = Token::parse(&planted).unwrap().hash();
    assert!(env
        .slates
        .token_store()
        .find_token(&planted_hash, env.clock.now())
        .await
        .unwrap()
        .is_none());
    let hashes = env.token_hashes().await;
    assert_eq!(
        hashes,
        vec![sha256_hex(&issued)],
        "one token: the issued one"
    );
}

/// Threat 2: the attacker plants their own live cookie on the victim's browser. When the
/// victim logs in, the planted token is deleted: it never becomes the victim's session, and
/// it does not even stay the attacker's.
async fn t2_planted_live_cookie_dies_at_login(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let mallory = env.logged_in("mallory").await;
    let planted = mallory.cookie.clone().unwrap();
    let mut victim = env.client();
    victim.cookie = Some(planted.clone());
    assert_eq!(victim.get("/maybe").await.body, "mallory");
    assert_eq!(
        victim.post_form("/login", "username=ada").await.status,
        StatusCode::NO_CONTENT
    );
    assert_ne!(victim.cookie.as_deref(), Some(planted.as_str()));
    assert_eq!(victim.get("/maybe").await.body, "ada");
    let mut attacker = env.client();
    attacker.cookie = Some(planted);
    assert_eq!(attacker.get("/maybe").await.body, "anonymous");
}

/// Threat 2: `rotate` replaces the token. With no grace the old token dies at once; the new
/// one works; the store keeps exactly one token for the user.
async fn t2_rotate_replaces_the_token(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b.rotation_grace(Duration::ZERO)).await else {
        return;
    };
    let mut c = env.logged_in("ada").await;
    let old = c.cookie.clone().unwrap();
    assert_eq!(c.post("/rotate").await.status, StatusCode::NO_CONTENT);
    let new = c.cookie.clone().unwrap();
    assert_ne!(old, new);
    let mut replay = env.client();
    replay.cookie = Some(old);
    assert_eq!(replay.get("/maybe").await.body, "anonymous");
    assert_eq!(c.get("/me").await.body, "ada");
    let hashes = env.token_hashes().await;
    assert_eq!(hashes, vec![sha256_hex(&new)]);
    // Rotation needs a login.
    assert_eq!(
        env.client().post("/rotate").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Threat 2: with a grace period, the old token keeps working for in-flight requests and
/// then dies, even if it is used (and would be due for renewal) during the grace.
async fn t2_rotated_token_is_not_renewed_during_grace(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let mut c = env.logged_in("ada").await;
    env.clock.advance(Duration::days(4)); // renewal due from now on
    let old = c.cookie.clone().unwrap();
    assert_eq!(c.post("/rotate").await.status, StatusCode::NO_CONTENT);
    let mut in_flight = env.client();
    in_flight.cookie = Some(old);
    env.clock.advance(Duration::seconds(6));
    assert_eq!(in_flight.get("/maybe").await.body, "ada", "grace period");
    assert!(in_flight.cookie.is_some());
    env.clock.advance(Duration::seconds(5)); // past the 10 s grace
    assert_eq!(
        in_flight.get("/maybe").await.body,
        "anonymous",
        "the rotated-out token outlived its grace"
    );
    assert_eq!(c.get("/me").await.body, "ada");
}

// ---------------------------------------------------------------- 3. replay

/// Threat 3: the cookie of a logged-out browser is refused at once.
async fn t3_replay_after_logout(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let mut c = env.logged_in("ada").await;
    let old = c.cookie.clone().unwrap();
    assert_eq!(c.post("/logout").await.status, StatusCode::NO_CONTENT);
    assert!(c.cookie.is_none(), "logout expires the cookie");
    let mut replay = env.client();
    replay.cookie = Some(old.clone());
    assert_eq!(replay.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay.get("/maybe").await.body, "anonymous");
    let hash = Token::parse(&old).unwrap().hash();
    assert!(env
        .slates
        .token_store()
        .find_token(&hash, env.clock.now())
        .await
        .unwrap()
        .is_none());
    let hashes = env.token_hashes().await;
    assert!(hashes.is_empty(), "logout deletes the record: {hashes:?}");
}

/// Threat 3: "log out everywhere" (from a device, and by an admin) refuses every cookie of
/// the user on every device, and only that user's.
async fn t3_replay_after_logout_everywhere(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let mut phone = env.logged_in("ada").await;
    let laptop = env.logged_in("ada").await;
    let tablet = env.logged_in("ada").await;
    let mut bob = env.logged_in("bob").await;
    let cookies: Vec<String> = [&phone, &laptop, &tablet]
        .iter()
        .map(|c| c.cookie.clone().unwrap())
        .collect();
    let r = phone.post("/logout-everywhere").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "3"));
    for cookie in &cookies {
        let mut replay = env.client();
        replay.cookie = Some(cookie.clone());
        assert_eq!(replay.get("/me").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(bob.get("/me").await.body, "bob");

    // The admin's way (after a password reset): every bob token dies too.
    let mut bob2 = env.logged_in("bob").await;
    assert_eq!(env.slates.logout_user("bob").await.unwrap(), 2);
    assert_eq!(bob.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bob2.get("/me").await.status, StatusCode::UNAUTHORIZED);
    let hashes = env.token_hashes().await;
    assert!(hashes.is_empty(), "{hashes:?}");
}

/// Threat 3: an expired token is refused at once although its `_auth` record is still
/// stored (the TTL monitor lags). Renewal is off here, so only the lookup's
/// `expires > now` filter stands between the old cookie and the account; the boundary is
/// exclusive (a token is dead at its expiry instant).
async fn t3_replay_after_expiry_with_record_still_stored(backend: Backend, test: &str) {
    let lifetime = Duration::hours(2);
    let Some(env) = Env::new(backend, test, |b| b.idle_timeout(lifetime).renew_after(1.0)).await
    else {
        return;
    };
    let mut c = env.logged_in("ada").await;
    let cookie = c.cookie.clone().unwrap();
    env.clock.advance(lifetime - Duration::milliseconds(1));
    assert_eq!(c.get("/maybe").await.body, "ada", "alive until expiry");
    env.clock.advance(Duration::milliseconds(1)); // exactly at expiry
    let r = c.get("/maybe").await;
    assert_eq!(r.body, "anonymous", "a token is dead at its expiry instant");
    assert!(c.cookie.is_none(), "the dead cookie is removed");
    env.clock.advance(Duration::days(1));
    let mut replay = env.client();
    replay.cookie = Some(cookie.clone());
    assert_eq!(replay.get("/me").await.status, StatusCode::UNAUTHORIZED);
    let hashes = env.token_hashes().await;
    assert_eq!(
        hashes,
        vec![sha256_hex(&cookie)],
        "the expired record must still be stored for this test to mean anything"
    );
}

/// Threat 3, with sliding renewal on (the default): an expired token is not renewed back
/// to life either.
async fn t3_replay_after_expiry_with_renewal_on(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let mut c = env.logged_in("ada").await;
    let cookie = c.cookie.clone().unwrap();
    env.clock.advance(Duration::days(7)); // the default idle timeout
    let r = c.get("/maybe").await;
    assert_eq!(r.body, "anonymous");
    env.clock.advance(Duration::hours(1));
    let mut replay = env.client();
    replay.cookie = Some(cookie.clone());
    assert_eq!(replay.get("/maybe").await.body, "anonymous");
    assert!(replay.cookie.is_none());
    let hashes = env.token_hashes().await;
    assert_eq!(hashes, vec![sha256_hex(&cookie)], "record still stored");
}

/// Threat 3: renewal racing a logout never brings the token back. Each round logs in, moves
/// the clock so that every request renews, and fires three renewing requests and a logout
/// at once with the same cookie; afterwards the cookie is refused, every time.
async fn t3_renewal_racing_logout_never_resurrects(backend: Backend, test: &str) {
    let lifetime = Duration::hours(1);
    let Some(env) = Env::new(backend, test, |b| {
        b.idle_timeout(lifetime).renew_after(0.01)
    })
    .await
    else {
        return;
    };
    let mut renewed = 0;
    for round in 0..200 {
        let c = env.logged_in("ada").await;
        let cookie = c.cookie.clone().unwrap();
        env.clock.advance(Duration::minutes(1)); // past 1% of an hour: every request renews
        let renewers: Vec<_> = (0..3)
            .map(|_| {
                let mut c = c.clone();
                tokio::spawn(async move { c.get("/maybe").await })
            })
            .collect();
        let mut out = c.clone();
        let logout = tokio::spawn(async move { out.post("/logout").await });
        for r in renewers {
            let r = r.await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "round {round}: {}", r.body);
            assert!(
                r.body == "ada" || r.body == "anonymous",
                "round {round}: served as {:?}",
                r.body
            );
            if r.body == "ada" && !r.set_cookies().is_empty() {
                renewed += 1;
            }
        }
        assert_eq!(logout.await.unwrap().status, StatusCode::NO_CONTENT);
        let mut replay = env.client();
        replay.cookie = Some(cookie.clone());
        assert_eq!(
            replay.get("/maybe").await.body,
            "anonymous",
            "round {round}: the logged-out token came back"
        );
        let hash = Token::parse(&cookie).unwrap().hash();
        assert!(env
            .slates
            .token_store()
            .find_token(&hash, env.clock.now())
            .await
            .unwrap()
            .is_none());
    }
    assert!(renewed > 0, "no request renewed: the race was not run");
    let hashes = env.token_hashes().await;
    assert!(hashes.is_empty(), "{} tokens left", hashes.len());
}

/// What happens "at the same time" between the layer's token lookup and its renewal.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Race {
    /// Another request of the same browser renews the token first.
    Renewal,
    /// A logout deletes the token first.
    Logout,
    /// A rotation cuts the token's life down to its grace period first.
    Rotation,
}

/// Makes a race deterministic: wrapped around a memory store, it runs the armed [`Race`]
/// on that store just before the next renewal, the worst moment for it.
#[derive(Clone, Default)]
struct Interleaving {
    inner: MemoryStore,
    race: Arc<Mutex<Option<Race>>>,
}

impl Interleaving {
    fn arm(&self, race: Race) {
        *self.race.lock().unwrap() = Some(race);
    }

    /// The memory store with this interleaving around it.
    fn store(&self) -> Intercepted<MemoryStore, Interleaving> {
        Intercepted::new(self.inner.clone(), self.clone())
    }
}

impl Intercept for Interleaving {
    fn around<'a, T, F>(&'a self, call: Call<'a>, op: F) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    {
        let Call::RenewToken(hash, previous, expires, now) = call else {
            return op();
        };
        Box::pin(async move {
            let race = self.race.lock().unwrap().take();
            let inner = &self.inner;
            match race {
                Some(Race::Renewal) => {
                    let later = expires + Duration::milliseconds(5);
                    assert!(inner.renew_token(hash, previous, later, now).await?);
                }
                Some(Race::Logout) => assert!(inner.delete_token(hash).await?),
                Some(Race::Rotation) => {
                    let grace_end = now + Duration::seconds(10);
                    assert!(inner.retire_token(hash, grace_end, now).await?);
                }
                None => {}
            }
            op().await
        })
    }
}

/// Threat 3, the races made deterministic: something lands between a request's token
/// lookup and its renewal.
/// - Another request renewed first: this one is still served as its user and keeps its
///   cookie (a lost renewal race is no logout), and a logout that loses that race still
///   deletes the token.
/// - A logout deleted the token: this request is anonymous and the renewal does not bring
///   the token back.
/// - A rotation cut the token to its grace: this request is served (it is what the grace is
///   for) without renewing it, and the token dies when the grace ends.
#[tokio::test]
async fn t3_renewal_interleavings() {
    let store = Interleaving::default();
    let clock = ManualClock::new();
    let slates = Engine::builder(store.store())
        .clock(clock.clone())
        .secure(false)
        .idle_timeout(Duration::hours(1))
        .build()
        .await
        .unwrap();
    let app = security_support::app(&slates, None);
    let login = || async {
        let mut c = Client::new(app.clone());
        let r = c.post_form("/login", "username=ada").await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        c
    };
    let alive = |cookie: String| {
        let app = app.clone();
        async move {
            let mut c = Client::new(app);
            c.cookie = Some(cookie);
            c.get("/maybe").await.body == "ada"
        }
    };

    // Another request renewed first.
    let mut c = login().await;
    let cookie = c.cookie.clone().unwrap();
    clock.advance(Duration::minutes(31)); // past half-life: renewal due
    store.arm(Race::Renewal);
    let r = c.get("/maybe").await;
    assert_eq!(r.body, "ada", "a lost renewal race is no logout");
    assert_eq!(c.cookie.as_deref(), Some(cookie.as_str()), "cookie kept");
    assert!(alive(cookie.clone()).await);

    // A logout that loses the renewal race still logs out.
    let mut c = login().await;
    let cookie = c.cookie.clone().unwrap();
    clock.advance(Duration::minutes(31));
    store.arm(Race::Renewal);
    assert_eq!(c.post("/logout").await.status, StatusCode::NO_CONTENT);
    assert!(c.cookie.is_none());
    assert!(
        !alive(cookie.clone()).await,
        "the logout must delete the token"
    );

    // A logout deleted the token first.
    let mut c = login().await;
    let cookie = c.cookie.clone().unwrap();
    clock.advance(Duration::minutes(31));
    store.arm(Race::Logout);
    assert_eq!(c.get("/maybe").await.body, "anonymous");
    assert!(c.cookie.is_none(), "the dead cookie is removed");
    assert!(
        !alive(cookie.clone()).await,
        "the renewal brought the token back"
    );
    let hash = Token::parse(&cookie).unwrap().hash();
    assert!(store.inner.dump_tokens().iter().all(|t| t.hash != hash));

    // A rotation cut the token to its grace first.
    let mut c = login().await;
    let cookie = c.cookie.clone().unwrap();
    clock.advance(Duration::minutes(31));
    store.arm(Race::Rotation);
    let r = c.get("/maybe").await;
    assert_eq!(r.body, "ada", "in flight during the grace: served");
    assert!(r.set_cookies().is_empty(), "neither renewed nor removed");
    clock.advance(Duration::seconds(9));
    assert!(alive(cookie.clone()).await);
    clock.advance(Duration::seconds(2));
    assert!(!alive(cookie).await, "the grace ended");
}

// ---------------------------------------------------------------- 6. oversize

/// Threat 6: a write that would take a slate over 16 MiB fails with a typed error and the
/// previous document stays as it was: whole-document put, set, push, a combined update,
/// compare-and-swap, and through a handler (413).
async fn t6_oversize_write_keeps_previous_document(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let ada = env.slates.user_slates("ada").unwrap();
    let s = ada.raw_slate("upload");
    let nine = "n".repeat(9 * 1024 * 1024);
    s.put(&doc! {"keep": "me", "ids": [nine.as_str()]})
        .await
        .unwrap();
    let before = s.get_doc().await.unwrap().unwrap();
    let big = "x".repeat(17 * 1024 * 1024);
    let too_large = |r: Result<i64, Error>, what: &str| {
        assert!(
            matches!(r, Err(Error::DocumentTooLarge { .. })),
            "{what}: {r:?}"
        );
    };
    too_large(s.put(&doc! {"blob": &big}).await, "put");
    too_large(s.set("blob", &big).await, "set of one huge field");
    if limit_enforced_on_updates(backend, test).await {
        too_large(s.set("more", &nine).await, "set growing past the limit");
        too_large(s.push("ids", &nine).await, "push growing past the limit");
        too_large(
            s.update(
                slates::SlateUpdate::new()
                    .set("a", 1)
                    .push("ids", nine.as_str()),
            )
            .await,
            "update",
        );
    }
    let r = s
        .modify_or_default(|d: &mut bson::Document| Some(d.insert("more", nine.as_str())))
        .await;
    assert!(
        matches!(r, Err(Error::DocumentTooLarge { .. })),
        "modify: {:?}",
        r.map(|_| ())
    );
    let after = s.get_doc().await.unwrap().unwrap();
    assert_eq!(after.version, before.version, "nothing was written");
    assert_eq!(after.doc, before.doc, "the previous document is intact");

    // Through a handler: 413, and the slate is unchanged.
    let mut c = env.logged_in("ada").await;
    let r = c.post("/oversize/upload").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    let after = s.get_doc().await.unwrap().unwrap();
    assert_eq!((after.version, &after.doc), (before.version, &before.doc));
}

/// Whether the backend refuses an update whose result would pass 16 MiB (the size of a
/// result is the server's to check). FerretDB 1.x does not: the growth steps are skipped
/// there, loudly, as in the behavioural suite; whole documents and oversized values are
/// refused before sending on every backend.
async fn limit_enforced_on_updates(backend: Backend, test: &str) -> bool {
    #[cfg(not(feature = "mongodb"))]
    let _ = test;
    match backend {
        Backend::Memory => true,
        #[cfg(feature = "mongodb")]
        Backend::Mongo(_) => {
            let enforced = !common::mongo::is_ferretdb().await;
            if !enforced {
                common::mongo::ferretdb_note(
                    test,
                    "growing a slate past 16 MiB by updates is not refused (known FerretDB \
                     1.x gap); those steps are skipped",
                );
            }
            enforced
        }
    }
}

// ---------------------------------------------------------------- 7. store outage

const GENERIC_503: &str = "Service temporarily unavailable. Please try again shortly.";

fn assert_generic_503(r: &common::harness::Reply, what: &str) {
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        r.body
    );
    assert_eq!(
        r.body.trim_end(),
        GENERIC_503,
        "{what}: body must be generic"
    );
    assert!(
        r.set_cookies().is_empty(),
        "{what}: an outage must not touch the cookie: {:?}",
        r.set_cookies()
    );
}

/// Threat 7: while the store is down, requests with a cookie get 503 (never anonymous,
/// never the cookie removed), requests without one are served, and service resumes when
/// the store comes back, with the same app.
#[tokio::test]
async fn t7_outage_gives_503_and_service_resumes() {
    let env = Env::new(Backend::Memory, "", |b| b).await.unwrap();
    let store = env.faults().unwrap().clone();
    let mut ada = env.logged_in("ada").await;
    let cookie = ada.cookie.clone();
    store.set_available(false);
    for path in ["/me", "/maybe"] {
        let r = ada.get(path).await;
        assert_generic_503(&r, path);
        assert_eq!(r.headers["retry-after"], "5");
    }
    assert_eq!(ada.cookie, cookie, "the cookie survives the outage");
    assert_eq!(env.client().get("/maybe").await.body, "anonymous");
    assert!(env.slates.stats().store_errors >= 2);
    store.set_available(true);
    let r = ada.get("/me").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ada"));
}

/// Threat 7: a login during the outage fails with 503, sets no cookie and leaves no token.
#[tokio::test]
async fn t7_login_during_outage_leaves_no_token() {
    let env = Env::new(Backend::Memory, "", |b| b).await.unwrap();
    let store = env.faults().unwrap().clone();
    store.set_available(false);
    let mut c = env.client();
    let r = c.post_form("/login", "username=ada").await;
    assert_generic_503(&r, "login");
    assert!(c.cookie.is_none());
    store.set_available(true);
    assert_eq!(env.record_count().await, 0, "nothing half-written");
    // A login on top of a live session, failing: the old session stays, no new token.
    let mut c = env.logged_in("ada").await;
    let before = c.cookie.clone();
    // The insert of the new token fails.
    let r = c
        .send(request("POST", "/login", "username=bob", Some(1)))
        .await;
    assert_generic_503(&r, "login on top of a session");
    assert_eq!(c.cookie, before);
    assert_eq!(c.get("/me").await.body, "ada");
    assert_eq!(env.token_hashes().await.len(), 1);
}

/// Threat 7: a write that fails leaves the slate as it was, for every kind of write, and a
/// handler whose write fails answers a generic 503.
#[tokio::test]
async fn t7_failed_write_leaves_slate_as_it_was() {
    let env = Env::new(Backend::Memory, "", |b| b).await.unwrap();
    let store = env.faults().unwrap().clone();
    let ada = env.slates.user_slates("ada").unwrap();
    let s = ada.raw_slate("draft");
    s.put(&doc! {"v": "first", "n": 1, "ids": [1]})
        .await
        .unwrap();
    let before = s.get_doc().await.unwrap().unwrap();
    let unavailable = |r: Result<i64, Error>, what: &str| {
        assert!(matches!(r, Err(Error::Unavailable(_))), "{what}: {r:?}");
    };
    store.fail_next(1);
    unavailable(s.put(&doc! {"v": "second"}).await, "put");
    store.fail_next(1);
    unavailable(s.set("v", "second").await, "set");
    store.fail_next(1);
    unavailable(s.unset("v").await, "unset");
    store.fail_next(1);
    unavailable(s.inc("n", 1).await, "inc");
    store.fail_next(1);
    unavailable(s.push("ids", 2).await, "push");
    store.fail_next(1);
    unavailable(s.add_to_set("ids", 3).await, "add_to_set");
    store.fail_next(1);
    unavailable(
        s.update(slates::SlateUpdate::new().set("v", "x")).await,
        "update",
    );
    store.fail_next(1);
    let r = s
        .modify_or_default(|d: &mut bson::Document| Some(d.insert("v", "x")))
        .await;
    assert!(matches!(r, Err(Error::Unavailable(_))));
    store.fail_next(1);
    assert!(matches!(s.delete().await, Err(Error::Unavailable(_))));
    store.fail_next(1);
    assert!(matches!(ada.delete_all().await, Err(Error::Unavailable(_))));
    let after = s.get_doc().await.unwrap().unwrap();
    assert_eq!((after.version, &after.doc), (before.version, &before.doc));

    // Through a handler: the lookup succeeds, the handler's write fails.
    let mut c = env.logged_in("ada").await;
    let r = c
        .send(request("POST", "/slate/draft", "third", Some(1)))
        .await;
    assert_generic_503(&r, "failed write");
    let after = s.get_doc().await.unwrap().unwrap();
    assert_eq!((after.version, &after.doc), (before.version, &before.doc));
    assert_eq!(c.get("/me").await.body, "ada", "still logged in");
    let r = c.post("/slate/draft").await;
    assert_eq!(r.status, StatusCode::OK, "service resumes: {}", r.body);
}

/// Threat 7: logout is all or nothing. When deleting the token fails, the answer is 503,
/// the cookie is kept, and the session still works; a retry logs out.
#[tokio::test]
async fn t7_logout_during_outage_is_all_or_nothing() {
    let env = Env::new(Backend::Memory, "", |b| b).await.unwrap();
    let mut c = env.logged_in("ada").await;
    for path in ["/logout", "/logout-everywhere", "/rotate"] {
        let before = c.cookie.clone();
        let r = c.send(request("POST", path, "", Some(1))).await;
        assert_generic_503(&r, path);
        assert_eq!(c.cookie, before, "{path}");
        assert_eq!(c.get("/me").await.body, "ada", "{path}: still logged in");
        assert_eq!(env.token_hashes().await.len(), 1, "{path}");
    }
    assert_eq!(c.post("/logout").await.status, StatusCode::NO_CONTENT);
    assert_eq!(env.token_hashes().await.len(), 0);
}

/// Threat 7: with a flaky store, each request is either answered 503 or served as its own
/// user; never as someone else, never as anonymous, and no cookie is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t7_flaky_store_never_serves_the_wrong_user() {
    let env = Env::new(Backend::Memory, "", |b| {
        b.idle_timeout(Duration::hours(1)).renew_after(0.01)
    })
    .await
    .unwrap();
    let store = env.faults().unwrap().clone();
    let clients: Vec<(&str, Client)> = vec![
        ("ada", env.logged_in("ada").await),
        ("bob", env.logged_in("bob").await),
        ("cy", env.logged_in("cy").await),
    ];
    let (mut failed, mut served) = (0, 0);
    for round in 0..300u32 {
        if round % 7 == 0 {
            env.clock.advance(Duration::minutes(1)); // renewals join the mix
        }
        store.fail_next(round % 4);
        let mut tasks = Vec::new();
        for (name, c) in &clients {
            let mut c = c.clone();
            let name = *name;
            tasks.push(tokio::spawn(
                async move { (name, c.get("/maybe").await, c) },
            ));
        }
        for t in tasks {
            let (name, r, c) = t.await.unwrap();
            match r.status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    failed += 1;
                    assert_generic_503(&r, name);
                }
                StatusCode::OK => {
                    served += 1;
                    assert_eq!(r.body, name, "round {round}: {name} served as {:?}", r.body);
                }
                s => panic!("round {round}: {name}: {s}"),
            }
            assert!(c.cookie.is_some(), "round {round}: {name} lost the cookie");
        }
    }
    assert!(failed > 0 && served > 0, "{failed} failed, {served} served");
    store.fail_next(0);
    for (name, mut c) in clients {
        assert_eq!(c.get("/me").await.body, name);
    }
}
