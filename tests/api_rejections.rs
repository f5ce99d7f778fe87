//! Issue 11, API points 4 and 10: what an anonymous request gets (`WhenLoggedOut`: 401 for
//! APIs, a 303 to the login page for browsers, with a `next` parameter for page visits),
//! the login URL checked at build, `safe_next` (property tests: whatever it accepts is a
//! same-site path safe to put in `Location`), and rejections whose `status()` and
//! `body_text()` are what their response says.
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use common::harness::{read, Client, Reply};
use http::header::{ACCEPT, LOCATION};
use http::{Method, Request, StatusCode, Uri};
use proptest::prelude::*;
use slates::{
    safe_next, Auth, CurrentUser, Engine, Error, LoginRequired, MemoryStore, MissingLayer,
    NotLoggedIn, UserSlates, WhenLoggedOut,
};
use tower::ServiceExt;

/// What Chromium sends when it navigates to a page.
const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                       image/webp,image/apng,*/*;q=0.8";
const JSON: &str = "application/json";

// ---------------------------------------------------------------- the app

async fn h_me(user: CurrentUser) -> String {
    user.username().to_owned()
}

async fn h_slates(slates: UserSlates) -> String {
    slates.username().to_owned()
}

async fn h_maybe(user: Option<CurrentUser>) -> String {
    user.map_or_else(|| "anonymous".to_owned(), |u| u.username().to_owned())
}

async fn h_engine(engine: Engine) -> String {
    engine.config().cookie.name.clone()
}

async fn h_auth(auth: Auth) -> String {
    auth.username()
        .await
        .ok()
        .flatten()
        .unwrap_or("anonymous")
        .to_owned()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    username: String,
}

async fn h_login(auth: Auth, form: axum::Form<LoginForm>) -> Result<StatusCode, Error> {
    auth.login(&form.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The rejections the probe route saw, to compare with the responses sent.
type Seen = Arc<Mutex<Vec<LoginRequired>>>;

/// Every route the tests need; `probe` records the rejection it got, then answers with it.
fn routes(seen: &Seen) -> Router {
    let seen = seen.clone();
    let probe = move |user: Result<CurrentUser, LoginRequired>| async move {
        match user {
            Ok(user) => user.username().to_owned().into_response(),
            Err(rejection) => {
                seen.lock().unwrap().push(rejection.clone());
                rejection.into_response()
            }
        }
    };
    Router::new()
        .route("/login", post(h_login))
        .route("/import/review", get(h_me).post(h_me).put(h_me))
        .route("/slates", get(h_slates).post(h_slates))
        .route("/maybe", get(h_maybe))
        .route("/engine", get(h_engine))
        .route("/auth", get(h_auth))
        .route("/probe", get(probe.clone()).post(probe))
        .fallback(h_me)
}

async fn engine(policy: Option<WhenLoggedOut>) -> Engine {
    let mut builder = Engine::builder(MemoryStore::new()).secure(false);
    if let Some(policy) = policy {
        builder = builder.when_logged_out(policy);
    }
    builder.build().await.expect("build")
}

async fn redirecting() -> (Router, Engine, Seen) {
    let engine = engine(Some(WhenLoggedOut::redirect("/login"))).await;
    let seen = Seen::default();
    (routes(&seen).layer(engine.layer()), engine, seen)
}

async fn send(app: &Router, method: Method, uri: &str, accept: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(accept) = accept {
        req = req.header(ACCEPT, accept);
    }
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await;
    read(res.unwrap()).await
}

/// The `next` parameter of a login URL, decoded as a login handler's `Query` would.
fn next_of(location: &str) -> String {
    let uri: Uri = location.parse().expect("a valid URI");
    let Query(params) = Query::<HashMap<String, String>>::try_from_uri(&uri).unwrap();
    params.get("next").cloned().expect("a next parameter")
}

fn location(reply: &Reply) -> Option<&str> {
    reply.headers.get(LOCATION).map(|v| v.to_str().unwrap())
}

// ---------------------------------------------------------------- the redirect policy

/// A page visit (GET or HEAD asking for HTML) is sent to the login page with the page's
/// path and query, percent-encoded, as `next`; decoded, `next` is the page again and
/// passes `safe_next`. `UserSlates` rejects the same way.
#[tokio::test]
async fn page_visits_are_sent_to_login_with_next() {
    let (app, _engine, _seen) = redirecting().await;
    let page = "/import/review?step=2&q=a%20b%26c&x=+";
    for (method, path, accept) in [
        (Method::GET, page, BROWSER),
        (Method::HEAD, page, BROWSER),
        (Method::GET, page, "text/html"),
        (Method::GET, "/slates?tab=1", BROWSER),
        (Method::GET, "/somewhere/else/", BROWSER),
    ] {
        let r = send(&app, method.clone(), path, Some(accept)).await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "{method} {path}: {}",
            r.body
        );
        let to = location(&r).expect("a Location header");
        assert!(
            to.starts_with("/login?next=%2F") || to.starts_with("/login?next=/"),
            "{to}"
        );
        assert_eq!(next_of(to), path, "{method} {path}: next round-trips");
        assert_eq!(safe_next(&next_of(to)), Some(path));
        if method == Method::GET {
            assert!(r.body.contains(to), "the body says where: {}", r.body);
        }
    }
    let r = send(&app, Method::GET, page, Some(BROWSER)).await;
    assert_eq!(
        location(&r),
        Some("/login?next=/import/review%3Fstep%3D2%26q%3Da%2520b%2526c%26x%3D%2B")
    );
}

/// A request that does not ask for HTML gets 401 without a `Location` whatever its method
/// (API calls: JSON, no `Accept`, `*/*`); a browser's form post (or other method) asking
/// for HTML is sent to the login page without `next` (a `GET` of its URL after login could
/// not redo the post).
#[tokio::test]
async fn apis_get_401_and_form_posts_go_to_login_without_next() {
    let (app, _engine, _seen) = redirecting().await;
    for (method, path, accept) in [
        (Method::GET, "/import/review", Some(JSON)),
        (Method::GET, "/import/review", None),
        (Method::GET, "/import/review", Some("*/*")),
        (Method::GET, "/slates", Some(JSON)),
        (Method::HEAD, "/slates", Some(JSON)),
        (Method::POST, "/import/review", Some(JSON)),
        (Method::POST, "/slates", None),
        (Method::PUT, "/import/review", Some("*/*")),
    ] {
        let r = send(&app, method.clone(), path, accept).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} {accept:?}"
        );
        if method != Method::HEAD {
            assert_eq!(r.body, "Not logged in.", "{method} {path} {accept:?}");
        }
        assert_eq!(location(&r), None, "{method} {path} {accept:?}");
    }
    for (method, path) in [
        (Method::POST, "/import/review?step=2"),
        (Method::POST, "/slates"),
        (Method::PUT, "/import/review"),
    ] {
        let r = send(&app, method.clone(), path, Some(BROWSER)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{method} {path}");
        assert_eq!(location(&r), Some("/login"), "{method} {path}: no next");
    }
    let engine = engine(Some(WhenLoggedOut::redirect("/account/login?x=1"))).await;
    let app = routes(&Seen::default()).layer(engine.layer());
    let r = send(&app, Method::POST, "/slates", Some(BROWSER)).await;
    assert_eq!(location(&r), Some("/account/login?x=1"));
}

/// The default policy answers 401 to page visits too.
#[tokio::test]
async fn default_policy_is_401_even_for_pages() {
    for policy in [None, Some(WhenLoggedOut::Unauthorized)] {
        let engine = engine(policy.clone()).await;
        assert_eq!(engine.config().when_logged_out, WhenLoggedOut::Unauthorized);
        let app = routes(&Seen::default()).layer(engine.layer());
        for path in ["/import/review", "/slates"] {
            let r = send(&app, Method::GET, path, Some(BROWSER)).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{policy:?} {path}");
            assert_eq!(location(&r), None);
        }
    }
}

/// A logged-in page visit is served; optional login never redirects.
#[tokio::test]
async fn logged_in_and_optional_pages_are_served() {
    let (app, engine, _seen) = redirecting().await;
    let mut c = Client::new(app.clone());
    c.cookie_name = engine.config().cookie.name.clone();
    let r = send(&app, Method::GET, "/maybe", Some(BROWSER)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "anonymous"));
    assert_eq!(c.post_form("/login", "username=ada").await.status, 204);
    let r = c
        .send(
            Request::get("/import/review")
                .header(ACCEPT, BROWSER)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ada"));
    assert_eq!(c.get("/slates").await.body, "ada");
}

/// A login URL that is not a path on this site is refused at build, never at the first
/// request; a path with a query is fine and `next` is appended with `&`.
#[tokio::test]
async fn login_url_must_be_a_path_on_this_site() {
    for bad in [
        "",
        "login",
        "//evil.example",
        "//evil.example/login",
        "https://x",
        "https://evil.example/login",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/login\r\nSet-Cookie: a=b",
        "/log in",
        " /login",
    ] {
        let built = Engine::builder(MemoryStore::new())
            .when_logged_out(WhenLoggedOut::redirect(bad))
            .build()
            .await;
        assert!(matches!(built, Err(Error::Config(_))), "{bad:?}: {built:?}");
    }
    for good in ["/login", "/account/login?x=1", "/"] {
        let built = Engine::builder(MemoryStore::new())
            .when_logged_out(WhenLoggedOut::redirect(good))
            .build()
            .await;
        assert!(built.is_ok(), "{good:?}");
    }
    let engine = engine(Some(WhenLoggedOut::redirect("/account/login?x=1"))).await;
    let app = routes(&Seen::default()).layer(engine.layer());
    let r = send(&app, Method::GET, "/import/review?a=1", Some(BROWSER)).await;
    let to = location(&r).unwrap();
    assert_eq!(to, "/account/login?x=1&next=/import/review%3Fa%3D1");
    assert_eq!(next_of(to), "/import/review?a=1");
}

/// A login URL with a fragment (`/login#form`) passes `safe_next`, so the build accepts it;
/// the `next` parameter is then appended after the `#` and never reaches the server: the
/// user lands on the home page after logging in, silently. The build must refuse such a URL
/// (or `next` must go before the fragment).
#[tokio::test]
async fn login_url_with_a_fragment_keeps_next_or_is_refused() {
    let built = Engine::builder(MemoryStore::new())
        .secure(false)
        .when_logged_out(WhenLoggedOut::redirect("/login#form"))
        .build()
        .await;
    let Ok(engine) = built else {
        assert!(matches!(built, Err(Error::Config(_))));
        return;
    };
    let app = routes(&Seen::default()).layer(engine.layer());
    let r = send(&app, Method::GET, "/import/review", Some(BROWSER)).await;
    let to = location(&r).unwrap();
    let before_fragment = to.split('#').next().unwrap();
    assert!(
        before_fragment.contains("next="),
        "`next` is lost in the fragment: {to}"
    );
}

// ---------------------------------------------------------------- rejections

/// `status()` and `body_text()` of every `LoginRequired` variant an app can meet are what
/// its response says (and the redirect's `location()` is the `Location` header), for the
/// composite enum and for each named type.
#[tokio::test]
async fn rejections_agree_with_their_responses() {
    let (app, _engine, seen) = redirecting().await;
    let no_layer_seen = Seen::default();
    let no_layer = routes(&no_layer_seen);
    let cases = [
        (
            &app,
            &seen,
            Method::GET,
            Some(JSON),
            StatusCode::UNAUTHORIZED,
        ),
        (
            &app,
            &seen,
            Method::GET,
            Some(BROWSER),
            StatusCode::SEE_OTHER,
        ),
        (
            &app,
            &seen,
            Method::POST,
            Some(BROWSER),
            StatusCode::SEE_OTHER,
        ),
        (
            &no_layer,
            &no_layer_seen,
            Method::GET,
            Some(BROWSER),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ];
    let mut variants = Vec::new();
    for (app, seen, method, accept, status) in cases {
        let r = send(app, method.clone(), "/probe?x=1", accept).await;
        let rejection = seen
            .lock()
            .unwrap()
            .pop()
            .expect("the probe saw a rejection");
        assert_eq!(r.status, status, "{rejection:?}");
        assert_eq!(rejection.status(), r.status, "{rejection:?}");
        assert_eq!(rejection.body_text(), r.body, "{rejection:?}");
        // The named type inside says the same.
        let (inner_status, inner_body, inner_response) = match rejection.clone() {
            LoginRequired::NotLoggedIn(n) => (n.status(), n.body_text(), n.into_response()),
            LoginRequired::Redirect(redirect) => {
                assert_eq!(location(&r), Some(redirect.location()));
                let want = match method {
                    Method::GET => "/login?next=/probe%3Fx%3D1",
                    _ => "/login",
                };
                assert_eq!(redirect.location(), want);
                (
                    redirect.status(),
                    redirect.body_text(),
                    redirect.into_response(),
                )
            }
            LoginRequired::MissingLayer(m) => (m.status(), m.body_text(), m.into_response()),
            other => panic!("a new variant: {other:?}"),
        };
        assert_eq!((inner_status, inner_body), (r.status, r.body.clone()));
        let again = read(inner_response).await;
        assert_eq!((again.status, again.body), (r.status, r.body.clone()));
        assert_eq!(again.headers.get(LOCATION), r.headers.get(LOCATION));
        variants.push(std::mem::discriminant(&rejection));
    }
    variants.dedup();
    assert_eq!(variants.len(), 3, "every variant was met");
    // The named types on their own.
    let direct: [(StatusCode, String, Response); 2] = [
        (
            NotLoggedIn.status(),
            NotLoggedIn.body_text(),
            NotLoggedIn.into_response(),
        ),
        (
            MissingLayer.status(),
            MissingLayer.body_text(),
            MissingLayer.into_response(),
        ),
    ];
    for (status, body, response) in direct {
        let r = read(response).await;
        assert_eq!((r.status, r.body), (status, body));
    }
    let composite = LoginRequired::from(MissingLayer);
    assert_eq!(composite.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// A route without the layer answers 500 with the text that names the fix, whatever the
/// extractor; never 401 (which would hide the mistake as "not logged in").
#[tokio::test]
async fn routes_without_the_layer_answer_500_missing_layer() {
    let app = routes(&Seen::default());
    for path in [
        "/import/review",
        "/slates",
        "/maybe",
        "/engine",
        "/auth",
        "/probe",
    ] {
        for accept in [Some(BROWSER), Some(JSON), None] {
            let r = send(&app, Method::GET, path, accept).await;
            assert_eq!(
                (r.status, r.body.as_str()),
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    MissingLayer.body_text().as_str()
                ),
                "{path} {accept:?}"
            );
        }
    }
    assert!(MissingLayer
        .body_text()
        .contains("Is the slates layer installed"));
}

// ---------------------------------------------------------------- safe_next

/// Whether `s` meets `safe_next`'s documented promise: one leading `/` (not followed by `/`
/// or `\`), no backslash, no control character, no whitespace, at most 2048 bytes; and,
/// what a login handler needs of it, a valid `Location` header value.
fn meets_the_promise(s: &str) -> Result<(), String> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err("does not start with /".into());
    }
    if matches!(bytes.get(1), Some(b'/' | b'\\')) {
        return Err("another host (// or /\\)".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || *c == '\\')
    {
        return Err(format!("holds {c:?}"));
    }
    if s.len() > 2048 {
        return Err("over 2048 bytes".into());
    }
    http::HeaderValue::from_str(s).map_err(|e| format!("not a header value: {e}"))?;
    Ok(())
}

/// Strings near the edges: a leading `/`, then slashes, backslashes, ASCII and Unicode
/// whitespace and controls, URL syntax and ordinary characters.
fn tricky() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("//".to_owned()),
        prop::sample::select(vec![
            " ", "\t", "\r", "\n", "\0", "\x7f", "\u{85}", "\u{a0}", "\u{2028}", "\u{3000}",
            "\u{feff}", "\u{200b}", "\u{1b}",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec!["?", "#", "&", "=", "%", "%2F", "%5C", ":", "@", "."])
            .prop_map(str::to_owned),
        "[a-z0-9]{1,4}",
        any::<char>().prop_map(String::from),
    ];
    (
        prop::sample::select(vec!["/", "", "//", "/\\", "\\", " /", "https:", "/%2F"]),
        prop::collection::vec(piece, 0..6),
    )
        .prop_map(|(head, pieces)| format!("{head}{}", pieces.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the string, what `safe_next` accepts keeps its promise, and it returns the
    /// input itself.
    #[test]
    fn prop_safe_next_accepts_only_what_it_promises(s in prop_oneof![any::<String>(), tricky()]) {
        if let Some(ok) = safe_next(&s) {
            prop_assert_eq!(ok, s.as_str());
            if let Err(why) = meets_the_promise(ok) {
                return Err(TestCaseError::fail(format!("accepted {ok:?}, which {why}")));
            }
        }
    }

    /// Conversely, a plain same-site path (visible ASCII, no backslash, not `//`) is
    /// accepted: the check does not refuse what the layer itself produces.
    #[test]
    fn prop_safe_next_keeps_plain_paths(s in "/[!-\\[\\]-~]{0,40}") {
        prop_assume!(!s.starts_with("//"));
        prop_assert_eq!(safe_next(&s), Some(s.as_str()));
    }
}

/// Known open redirects and header injections are refused.
#[test]
fn safe_next_refuses_known_bad_inputs() {
    let long = format!("/{}", "a".repeat(2048));
    let bad = [
        "",
        "a",
        "login",
        "https://evil.example/",
        "http:/evil.example",
        "//evil.example/",
        "///evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "\\/evil.example/",
        "/\t/evil.example/",
        "/ /evil.example",
        " /a",
        "/a\r\nSet-Cookie: x=1",
        "/a\nb",
        "/a\0b",
        "/a\x7fb",
        "/a\x1bb",
        "/a b",
        "javascript:alert(1)",
        "/a\\b",
        long.as_str(),
    ];
    for s in bad {
        assert_eq!(safe_next(s), None, "{s:?}");
    }
    for good in ["/", "/a", "/import/review?step=2&x=%2F", "/a/b#c", "/~user"] {
        assert_eq!(safe_next(good), Some(good), "{good:?}");
    }
    let edge = format!("/{}", "a".repeat(2047));
    assert_eq!(safe_next(&edge).map(str::len), Some(2048));
}

/// Unicode controls and whitespace are controls and whitespace too: `safe_next` promises
/// none, and a raw non-ASCII `Location` is not what a browser should be sent (the layer
/// itself only ever produces percent-encoded ASCII `next` values).
#[test]
fn safe_next_refuses_unicode_controls_and_whitespace() {
    for s in [
        "/a\u{85}b",     // NEL: a control and a line break
        "/a\u{a0}b",     // no-break space
        "/a\u{2028}b",   // line separator
        "/\u{3000}evil", // ideographic space
        "/a\u{9b}b",     // C1 control (CSI)
    ] {
        assert_eq!(safe_next(s), None, "{s:?}");
    }
}

// ---------------------------------------------------------------- next round-trips

/// A URI path and query of characters a request line may hold, percent-escapes included.
fn page_uri() -> impl Strategy<Value = String> {
    let segment = "([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-F]{2}){1,8}";
    let query = "([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-F]{2}){0,12}";
    (
        prop::collection::vec(segment, 1..4),
        prop::option::of(query),
    )
        .prop_map(|(segments, query)| {
            let path = format!("/{}", segments.join("/"));
            match query {
                Some(q) => format!("{path}?{q}"),
                None => path,
            }
        })
        .prop_filter("a valid request target", |s| s.parse::<Uri>().is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Through the real layer: any page a browser can ask for comes back, decoded from
    /// `next`, exactly as asked, and passes `safe_next`; the `Location` is one valid header.
    #[test]
    fn prop_next_round_trips_through_the_layer(page in page_uri()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (app, _engine, _seen) = redirecting().await;
            let r = send(&app, Method::GET, &page, Some(BROWSER)).await;
            prop_assert_eq!(r.status, StatusCode::SEE_OTHER);
            prop_assert_eq!(r.headers.get_all(LOCATION).iter().count(), 1);
            let to = location(&r).unwrap();
            let encoded = to.strip_prefix("/login?next=").unwrap();
            prop_assert!(!encoded.contains(['?', '&', '#', '=', '+']), "{}", to);
            prop_assert_eq!(next_of(to), page.clone());
            prop_assert_eq!(safe_next(&page), Some(page.as_str()));
            Ok(())
        })?;
    }
}
