//! Issue 12, point 1: lazy resolution, through the real layer on every backend, counting the
//! store calls with the `Hooked` decorator. A route that never asks who the user is costs
//! no store call (even with a valid, renewable or malformed cookie, and with the store
//! down); one that needs only the username costs the token lookup; the profile is read on
//! first access, once per request; cookie removal and renewal happen when resolution did.
mod common;

use axum::routing::get;
use axum::Router;
use common::harness::Client;
use common::hooked::{hooked_engine, pause_first, Call, Hooked, Phase};
use common::Backend;
use http::StatusCode;
use slates::{CurrentUser, Engine, Error, ManualClock, UserSlates};
use time::Duration;

async fn h_name(user: Option<CurrentUser>) -> String {
    user.map_or("anonymous".to_owned(), |u| u.username().to_owned())
}

/// Asks for the identity through two extractors and reads the profile three times.
async fn h_profile_thrice(user: CurrentUser, slates: UserSlates) -> Result<String, Error> {
    let a = user.raw_profile().await?.map(|d| d.iter().count());
    let b = user.profile_version().await?;
    let c = user.raw_profile().await?.map(|d| d.iter().count());
    assert_eq!(a, c);
    Ok(format!(
        "{} {} {:?}",
        user.username(),
        slates.username(),
        b.is_some()
    ))
}

fn app(engine: &Engine) -> Router {
    // `test_app` (the suite's routes: `/login`, `/static`, ...) carries its own layer.
    Router::new()
        .route(
            "/engine",
            get(|e: Engine| async move { e.config().cookie.name.clone() }),
        )
        .route("/name", get(h_name))
        .route("/profile", get(h_profile_thrice))
        .layer(engine.layer())
        .merge(common::suite::test_app(engine))
}

/// A hooked engine on `backend` and a client of [`app`] logged in as ada.
async fn ada_logged_in(
    backend: Backend,
    test: &str,
) -> Option<(Engine, Hooked, ManualClock, Client)> {
    let (engine, hooked, clock) = hooked_engine(backend, test).await?;
    let mut c = Client::new(app(&engine));
    assert_eq!(
        c.post_form("/login", "username=ada").await.status,
        StatusCode::NO_CONTENT
    );
    Some((engine, hooked, clock, c))
}

/// Four days after the login, past the renewal point: a `/name` on `c` renews the token,
/// writes the device's last-seen time and sets the renewed cookie.
async fn renews_when_asked(c: &mut Client, hooked: &Hooked) {
    let r = c.get("/name").await;
    assert_eq!(r.body, "ada");
    assert_eq!(
        hooked.calls(),
        [Call::FindToken, Call::RenewToken, Call::TouchToken]
    );
    assert_eq!(r.set_cookies().len(), 1, "renewal sets the cookie");
    assert!(!r.set_cookies()[0].contains("Max-Age=0"));
    hooked.clear_calls();
}

async fn lazy_costs(backend: Backend, test: &str) {
    let Some((engine, hooked, clock, mut c)) = ada_logged_in(backend, test).await else {
        return;
    };
    assert_eq!(
        hooked.calls(),
        [Call::InsertToken],
        "login on an anonymous request"
    );
    hooked.clear_calls();

    // No identity asked: nothing read, nothing set.
    for path in ["/static", "/engine"] {
        let r = c.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.set_cookies().is_empty(), "{path}");
    }
    assert_eq!(hooked.calls(), [], "routes that never ask cost nothing");

    // The username only: one token lookup.
    assert_eq!(c.get("/name").await.body, "ada");
    assert_eq!(hooked.calls(), [Call::FindToken]);
    hooked.clear_calls();

    // Two identity extractors and three profile reads: one lookup, one profile read.
    engine
        .user_slates("ada")
        .unwrap()
        .raw_slate("user")
        .set("tz", "UTC")
        .await
        .unwrap();
    hooked.clear_calls();
    let r = c.get("/profile").await;
    assert_eq!(r.body, "ada ada true");
    assert_eq!(hooked.calls(), [Call::FindToken, Call::GetSlate]);
    hooked.clear_calls();

    // Past the renewal point: a route that does not ask neither renews nor reads...
    clock.advance(Duration::days(4));
    let r = c.get("/static").await;
    assert!(r.set_cookies().is_empty());
    assert_eq!(hooked.calls(), []);
    // ...one that asks renews (and, four days on, writes the device's last-seen time) and
    // sends the renewed cookie.
    renews_when_asked(&mut c, &hooked).await;

    // A malformed cookie: removed only where the identity was asked for, never a store call.
    let mut bad = Client::new(app(&engine));
    bad.cookie = Some("not-a-token".into());
    let r = bad.get("/static").await;
    assert!(r.set_cookies().is_empty(), "not asked: left alone");
    let r = bad.get("/name").await;
    assert_eq!(r.body, "anonymous");
    assert!(r.set_cookies()[0].contains("Max-Age=0"), "asked: removed");
    // An unknown well-formed token: one lookup, then removed.
    let mut unknown = Client::new(app(&engine));
    unknown.cookie = Some(slates::Token::generate().unwrap().encode());
    let r = unknown.get("/name").await;
    assert_eq!(r.body, "anonymous");
    assert!(r.set_cookies()[0].contains("Max-Age=0"));
    assert_eq!(hooked.calls(), [Call::FindToken]);
    hooked.clear_calls();

    // The token store fails: routes that ask answer 503 with Retry-After and keep the
    // cookie; routes that do not ask are served.
    hooked.fail_call(0, Phase::Before);
    let r = c.get("/name").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["retry-after"], "5");
    assert!(
        r.set_cookies().is_empty(),
        "a hiccup never drops the cookie"
    );
    assert_eq!(c.get("/static").await.status, StatusCode::OK);
    // The profile read failing: the handler's error is a store error (503), once.
    hooked.fail_call(1, Phase::Before);
    let r = c.get("/profile").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    // And service resumes.
    assert_eq!(c.get("/profile").await.body, "ada ada true");

    let stats = engine.stats();
    assert!(stats.requests >= 14, "{stats:?}");
}

/// The layer around the whole router (`Engine::wrap`, as the examples serve): a route that
/// never asks and the router's fallback (a 404) cost no store call; one that asks costs the
/// token lookup, and a renewal's cookie is set on its response.
async fn around_the_router_costs_nothing_until_asked(backend: Backend, test: &str) {
    let Some((engine, hooked, clock, login)) = ada_logged_in(backend, test).await else {
        return;
    };
    let wrapped = engine.wrap(
        Router::new()
            .route("/static", get(|| async { "static" }))
            .route("/name", get(h_name)),
    );
    let mut c = Client::new(wrapped);
    c.cookie = login.cookie.clone();
    hooked.clear_calls();
    assert_eq!(c.get("/static").await.status, StatusCode::OK);
    assert_eq!(c.get("/nowhere").await.status, StatusCode::NOT_FOUND);
    assert_eq!(hooked.calls(), [], "not asked: nothing read");
    assert_eq!(c.get("/name").await.body, "ada");
    assert_eq!(hooked.calls(), [Call::FindToken]);
    hooked.clear_calls();
    clock.advance(Duration::days(4));
    renews_when_asked(&mut c, &hooked).await;
}

/// Two identity questions of one request at once (a handler that extracts twice with
/// `join!`), the first paused in its renewal: the second waits for the first's answer
/// instead of renewing again, and the response carries the one renewed cookie.
async fn concurrent_resolutions_renew_once(backend: Backend, test: &str) {
    two_questions_one_renewal(backend, test, Call::RenewToken, Phase::Before).await;
}

/// The same, the first paused once it has renewed and touched the record: the second finds
/// a record with nothing left to do (settled at once), and still waits for the first, whose
/// renewed cookie is the response's (answering at once, it would have dropped it). Settled
/// at once needs a store that answers lookups without waiting: the memory store does; on
/// MongoDB (no cache in this engine) the second question waits for its lookup, and this
/// checks the plain waiting path again.
async fn settled_resolution_waits_for_one_in_flight(backend: Backend, test: &str) {
    two_questions_one_renewal(backend, test, Call::TouchToken, Phase::After).await;
}

/// Two identity questions of one request at once, the first paused at `pause` in `phase`
/// until the second has run as far as it can.
async fn two_questions_one_renewal(backend: Backend, test: &str, pause: Call, phase: Phase) {
    use axum::extract::{FromRequestParts, Request};
    use tokio::sync::Notify;

    let Some((engine, hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    // Login and the lookups before the first one's pause make no such call.
    let (paused, release) = pause_first(&hooked, pause, phase);
    let (p, r) = (paused.clone(), release.clone());
    let twice = move |req: Request| {
        let (paused, release) = (p.clone(), r.clone());
        async move {
            let (mut first, _) = req.into_parts();
            let (mut second, _) = Request::new(()).into_parts();
            second.headers = first.headers.clone();
            second.extensions = first.extensions.clone();
            let asked = Notify::new();
            let (a, b, ()) = tokio::join!(
                CurrentUser::from_request_parts(&mut first, &()),
                async {
                    // Asked while the first one waits in its renewal.
                    paused.notified().await;
                    asked.notify_one();
                    CurrentUser::from_request_parts(&mut second, &()).await
                },
                async {
                    // The first one's renewal goes on once the second has run as far as it
                    // can without an answer.
                    asked.notified().await;
                    for _ in 0..10 {
                        tokio::task::yield_now().await;
                    }
                    release.notify_one();
                }
            );
            format!("{} {}", a.unwrap().username(), b.unwrap().username())
        }
    };
    let app = Router::new()
        .route("/twice", get(twice))
        .layer(engine.layer())
        .merge(common::suite::test_app(&engine));
    let mut c = Client::new(app);
    assert_eq!(
        c.post_form("/login", "username=ada").await.status,
        StatusCode::NO_CONTENT
    );
    // Past the renewal point; lookups the store answers at once go through unhooked, so
    // that the second question finds the record while the first one is still renewing.
    clock.advance(Duration::days(4));
    hooked.allow_ready(true);
    hooked.clear_calls();
    let r = c.get("/twice").await;
    assert_eq!(r.body, "ada ada");
    let calls = hooked.calls();
    assert_eq!(
        calls.iter().filter(|c| **c == Call::RenewToken).count(),
        1,
        "one renewal: {calls:?}"
    );
    assert_eq!(r.set_cookies().len(), 1, "the renewed cookie, once");
    assert!(!r.set_cookies()[0].contains("Max-Age=0"));
}

per_backend!(
    lazy_costs,
    around_the_router_costs_nothing_until_asked,
    concurrent_resolutions_renew_once,
    settled_resolution_waits_for_one_in_flight
);
