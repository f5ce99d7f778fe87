//! Security suite, issue 4, threats 4, 8 and 9: hostile `Cookie` headers, the attributes of
//! the cookies slates sends, and what responses give away.

mod common;
#[macro_use]
mod security_support;

use cookie::SameSite;
use http::StatusCode;
use slates::{token_from_headers, CookieToken, Engine, Error, MemoryStore, Token};
use time::Duration;

use common::harness::Reply;
use common::Backend;
use security_support::{cookies_named, request, with_cookie_headers, Env};

per_backend!(
    t4_cookie_abuse_is_anonymous_and_costs_no_store_call,
    t8_cookie_attributes_as_configured,
    t9_unknown_expired_malformed_answers_are_identical,
);

// ---------------------------------------------------------------- 4. cookie abuse

/// What a crafted `Cookie` header must come to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// No slates cookie: anonymous, no store call, no `Set-Cookie`.
    Absent,
    /// A slates cookie that is not one well-formed token: anonymous, no store call, the
    /// cookie removed.
    Malformed,
    /// A well-formed token the store does not know: anonymous after one lookup.
    Unknown,
    /// This user's live token.
    User(&'static str),
}

/// Threat 4: each hostile or broken `Cookie` header gives an anonymous request (or, for a
/// live token, its user), through the real layer, never a panic; malformed values cost no
/// store call (memory store operation counter and the stats), unknown ones one lookup.
///
/// Documented choices checked here: the slates cookie twice with different values is
/// ambiguous and treated as malformed (a sibling subdomain may have planted one); the same
/// value twice counts once; a pair without `=` is no cookie; names are case-sensitive; a
/// header that is not UTF-8 is read lossily, so a replaced byte spoils only its own cookie.
async fn t4_cookie_abuse_is_anonymous_and_costs_no_store_call(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let ada = env.logged_in("ada").await.cookie.unwrap();
    let bob = env.logged_in("bob").await.cookie.unwrap();
    let unknown = Token::generate().unwrap().encode();
    let app = env.app();

    let hundred_others: String = (0..100)
        .map(|i| format!("c{i}=v{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    let hundred_with_ada: String = (0..100)
        .map(|i| {
            if i == 57 {
                format!("slates={ada}")
            } else {
                format!("c{i}=v{i}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut plus = ada.clone();
    plus.replace_range(5..6, "+");
    let mut slash = ada.clone();
    slash.replace_range(5..6, "/");
    let mut noncanonical = "A".repeat(42);
    noncanonical.push('B'); // stray low bits in the last character
    let b = |s: &str| s.as_bytes().to_vec();
    let cases: Vec<(&str, Vec<Vec<u8>>, Expect)> = vec![
        ("no cookie header", vec![], Expect::Absent),
        ("empty header", vec![b("")], Expect::Absent),
        (
            "other cookies only",
            vec![b("theme=dark; lang=fr")],
            Expect::Absent,
        ),
        ("name without =", vec![b("slates")], Expect::Absent),
        (
            "name in other case",
            vec![b(&format!("SLATES={ada}"))],
            Expect::Absent,
        ),
        (
            "name as a prefix",
            vec![b(&format!("xslates={ada}; slatesx={ada}"))],
            Expect::Absent,
        ),
        (
            "100 other cookies",
            vec![b(&hundred_others)],
            Expect::Absent,
        ),
        (
            "100 other Cookie headers",
            (0..100).map(|i| b(&format!("c{i}=v{i}"))).collect(),
            Expect::Absent,
        ),
        ("empty value", vec![b("slates=")], Expect::Malformed),
        (
            "empty quoted value",
            vec![b("slates=\"\"")],
            Expect::Malformed,
        ),
        (
            "42 characters",
            vec![b(&format!("slates={}", &ada[..42]))],
            Expect::Malformed,
        ),
        (
            "44 characters",
            vec![b(&format!("slates={ada}A"))],
            Expect::Malformed,
        ),
        (
            "standard alphabet +",
            vec![b(&format!("slates={plus}"))],
            Expect::Malformed,
        ),
        (
            "standard alphabet /",
            vec![b(&format!("slates={slash}"))],
            Expect::Malformed,
        ),
        (
            "padding",
            vec![b(&format!("slates={}=", &ada[..42]))],
            Expect::Malformed,
        ),
        (
            "punctuation",
            vec![b(&format!("slates={}", "!".repeat(43)))],
            Expect::Malformed,
        ),
        (
            "non-canonical",
            vec![b(&format!("slates={noncanonical}"))],
            Expect::Malformed,
        ),
        (
            "multi-byte",
            vec![b(&format!("slates={}é", &ada[..41]))],
            Expect::Malformed,
        ),
        (
            "8 KB value",
            vec![b(&format!("slates={}", "A".repeat(8192)))],
            Expect::Malformed,
        ),
        (
            "a valid token in an 8 KB value",
            vec![b(&format!("slates={}", ada.repeat(191)))],
            Expect::Malformed,
        ),
        (
            "non-UTF-8 value",
            vec![b"slates=\xff\xfe\xfd".to_vec()],
            Expect::Malformed,
        ),
        (
            "non-UTF-8 inside a token",
            vec![[
                b"slates=".as_slice(),
                &ada.as_bytes()[..40],
                b"\xc3\xa9\xff",
            ]
            .concat()],
            Expect::Malformed,
        ),
        (
            "two live tokens, one header",
            vec![b(&format!("slates={ada}; slates={bob}"))],
            Expect::Malformed,
        ),
        (
            "two live tokens, two headers",
            vec![b(&format!("slates={ada}")), b(&format!("slates={bob}"))],
            Expect::Malformed,
        ),
        (
            "a live token and junk",
            vec![b(&format!("slates={ada}; slates=junk"))],
            Expect::Malformed,
        ),
        (
            "junk and a live token",
            vec![b(&format!("slates=; slates={ada}"))],
            Expect::Malformed,
        ),
        (
            "a live token and a non-UTF-8 one",
            vec![b(&format!("slates={ada}")), b"slates=\xff".to_vec()],
            Expect::Malformed,
        ),
        (
            "well-formed, unknown",
            vec![b(&format!("slates={unknown}"))],
            Expect::Unknown,
        ),
        // Positive controls: the parser does find a live token in a crowd.
        (
            "live token",
            vec![b(&format!("slates={ada}"))],
            Expect::User("ada"),
        ),
        (
            "live token quoted",
            vec![b(&format!("slates=\"{ada}\""))],
            Expect::User("ada"),
        ),
        (
            "live token among 100 cookies",
            vec![b(&hundred_with_ada)],
            Expect::User("ada"),
        ),
        (
            "live token in the third of three headers",
            vec![b("a=1"), b("b=2; c=3"), b(&format!("slates={bob}"))],
            Expect::User("bob"),
        ),
        (
            "the same token twice",
            vec![b(&format!("slates={ada}; slates={ada}"))],
            Expect::User("ada"),
        ),
        (
            "live token next to a non-UTF-8 cookie",
            vec![[b"junk=\xff\xfe; slates=", ada.as_bytes()].concat()],
            Expect::User("ada"),
        ),
    ];

    for (what, headers, expect) in cases {
        // The decision itself.
        let mut map = http::HeaderMap::new();
        for h in &headers {
            map.append("cookie", http::HeaderValue::from_bytes(h).unwrap());
        }
        let decision = token_from_headers(&map, "slates");
        match (expect, &decision) {
            (Expect::Absent, CookieToken::Absent)
            | (Expect::Malformed, CookieToken::Malformed)
            | (Expect::Unknown | Expect::User(_), CookieToken::Present(_)) => {}
            _ => panic!("{what}: decision {decision:?}, expected {expect:?}"),
        }

        // Through the layer.
        let ops = env.operations();
        let stats = env.slates.stats();
        let r = with_cookie_headers(&app, "/maybe", &headers).await;
        let after = env.slates.stats();
        let lookups = after.lookup.count - stats.lookup.count;
        assert_eq!(r.status, StatusCode::OK, "{what}");
        let removal = cookies_named(&r, "slates");
        match expect {
            Expect::Absent | Expect::Malformed => {
                assert_eq!(r.body, "anonymous", "{what}");
                assert_eq!(lookups, 0, "{what}: no lookup");
                if let Some(ops) = ops {
                    assert_eq!(env.operations(), Some(ops), "{what}: no store call");
                }
                let malformed = after.malformed_tokens - stats.malformed_tokens;
                assert_eq!(malformed, u64::from(expect == Expect::Malformed), "{what}");
                if expect == Expect::Absent {
                    assert!(removal.is_empty(), "{what}: {removal:?}");
                } else {
                    assert_eq!(removal.len(), 1, "{what}: the bad cookie is removed");
                    assert_eq!(removal[0].value(), "", "{what}");
                }
            }
            Expect::Unknown => {
                assert_eq!(r.body, "anonymous", "{what}");
                assert_eq!(lookups, 1, "{what}: one lookup");
                if let Some(ops) = ops {
                    assert_eq!(
                        env.operations(),
                        Some(ops + 1),
                        "{what}: one read, no write"
                    );
                }
                assert_eq!(after.unknown_tokens - stats.unknown_tokens, 1, "{what}");
                assert_eq!(removal.len(), 1, "{what}: the unknown cookie is removed");
            }
            Expect::User(name) => {
                assert_eq!(r.body, name, "{what}");
                assert_eq!(lookups, 1, "{what}");
            }
        }
    }
    assert_eq!(env.slates.stats().store_errors, 0);
}

/// Threat 4, the anonymous routes: no cookie at all and a malformed one give the same 401
/// on a login-only route, and nothing is written: the store holds exactly the two tokens it
/// held before.
#[tokio::test]
async fn t4_malformed_cookie_on_protected_route_is_401_and_writes_nothing() {
    let env = Env::new(Backend::Memory, "", |b| b).await.unwrap();
    env.logged_in("ada").await;
    let before = env.haystack().await;
    let ops = env.operations().unwrap();
    let app = env.app();
    for value in ["", "x", "!!!", "\"\""] {
        let r = with_cookie_headers(&app, "/me", &[format!("slates={value}").into_bytes()]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{value:?}");
    }
    assert_eq!(env.operations(), Some(ops));
    assert_eq!(env.haystack().await, before);
}

// ---------------------------------------------------------------- 8. cookie attributes

/// The one `Set-Cookie` for `name` in `r`, with the cache header every cookie-setting
/// response must carry.
fn the_cookie(r: &Reply, name: &str, what: &str) -> cookie::Cookie<'static> {
    let mut cookies = cookies_named(r, name);
    assert_eq!(
        cookies.len(),
        1,
        "{what}: one Set-Cookie for {name}: {:?}",
        r.set_cookies()
    );
    assert_eq!(
        r.headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{what}: a response that sets the token must not be cached"
    );
    cookies.pop().unwrap()
}

/// What a configuration must show on every cookie slates sends.
struct Attributes {
    secure: bool,
    same_site: SameSite,
    path: &'static str,
    domain: Option<&'static str>,
    max_age: Duration,
}

fn check_attributes(c: &cookie::Cookie<'_>, want: &Attributes, what: &str) {
    assert_eq!(c.http_only(), Some(true), "{what}: HttpOnly");
    assert_eq!(c.secure().unwrap_or(false), want.secure, "{what}: Secure");
    assert_eq!(c.same_site(), Some(want.same_site), "{what}: SameSite");
    assert_eq!(c.path(), Some(want.path), "{what}: Path");
    assert_eq!(c.domain(), want.domain, "{what}: Domain");
    assert_eq!(c.max_age(), Some(want.max_age), "{what}: Max-Age");
}

/// Login, renewal, a layer-initiated removal (unknown token) and logout, under `env`'s
/// configuration: every cookie carries the configured attributes.
async fn check_cookie_life_cycle(env: &Env, want: Attributes, config: &str) {
    let name = env.slates.config().cookie.name.clone();
    let lifetime = env.slates.config().idle_timeout;
    let mut c = env.client();
    let r = c.post_form("/login", "username=ada").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{config}");
    let login = the_cookie(&r, &name, &format!("{config}: login"));
    check_attributes(&login, &want, &format!("{config}: login"));
    assert_eq!(login.value().len(), 43);

    env.clock.advance(lifetime * 0.6); // past half-life: this request renews
    let r = c.get("/me").await;
    assert_eq!(r.body, "ada", "{config}");
    let renewal = the_cookie(&r, &name, &format!("{config}: renewal"));
    check_attributes(&renewal, &want, &format!("{config}: renewal"));
    assert_eq!(
        renewal.value(),
        login.value(),
        "{config}: renewal keeps the token"
    );

    let removed = Attributes {
        max_age: Duration::ZERO,
        ..want
    };
    let mut stranger = env.client();
    stranger.cookie = Some(Token::generate().unwrap().encode());
    let r = stranger.get("/maybe").await;
    let removal = the_cookie(&r, &name, &format!("{config}: removal"));
    check_attributes(&removal, &removed, &format!("{config}: removal"));
    assert_eq!(removal.value(), "", "{config}: removal");

    let r = c.post("/logout").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{config}");
    let logout = the_cookie(&r, &name, &format!("{config}: logout"));
    check_attributes(&logout, &removed, &format!("{config}: logout"));
    assert_eq!(logout.value(), "", "{config}: logout");
    assert_eq!(
        logout.expires_datetime(),
        Some(time::OffsetDateTime::UNIX_EPOCH),
        "{config}: logout expires the cookie in the past too"
    );
}

/// Threat 8: HttpOnly, Secure, SameSite, Path, Domain and Max-Age are as configured on
/// login, renewal, removal and logout responses: the secure defaults, a relaxed development
/// configuration, and the `__Host-` prefix.
async fn t8_cookie_attributes_as_configured(backend: Backend, test: &str) {
    // The defaults (the test builder switches Secure off; switch it back on).
    let Some(env) = Env::new(backend, &format!("{test}_defaults"), |b| b.secure(true)).await else {
        return;
    };
    let defaults = Attributes {
        secure: true,
        same_site: SameSite::Lax,
        path: "/",
        domain: None,
        max_age: Duration::days(7),
    };
    check_cookie_life_cycle(&env, defaults, "defaults").await;

    let env = Env::new(backend, &format!("{test}_custom"), |b| {
        b.secure(false)
            .cookie_path("/app")
            .cookie_domain("example.test")
            .same_site(SameSite::Strict)
            .idle_timeout(Duration::hours(2))
    })
    .await
    .unwrap();
    let custom = Attributes {
        secure: false,
        same_site: SameSite::Strict,
        path: "/app",
        domain: Some("example.test"),
        max_age: Duration::hours(2),
    };
    check_cookie_life_cycle(&env, custom, "custom").await;

    let env = Env::new(backend, &format!("{test}_host"), |b| {
        b.cookie_name("__Host-slates")
            .secure(true)
            .same_site(SameSite::None)
    })
    .await
    .unwrap();
    let host = Attributes {
        secure: true,
        same_site: SameSite::None,
        path: "/",
        domain: None,
        max_age: Duration::days(7),
    };
    check_cookie_life_cycle(&env, host, "__Host-").await;
}

/// Threat 8: the builder refuses a `__Host-` cookie with a Domain, without Secure, or with a
/// path other than `/` (the browser would drop such a cookie silently), and a `__Secure-`
/// cookie without Secure. The same settings without the prefix build (positive control).
#[tokio::test]
async fn t8_builder_refuses_inconsistent_prefixed_cookies() {
    type Configure = fn(slates::EngineBuilder) -> slates::EngineBuilder;
    let build = |f: Configure| async move { f(Engine::builder(MemoryStore::new())).build().await };
    let refused: [(&str, Configure); 5] = [
        ("__Host- with a Domain", |b| {
            b.cookie_name("__Host-s").cookie_domain("example.test")
        }),
        ("__Host- without Secure", |b| {
            b.cookie_name("__Host-s").secure(false)
        }),
        ("__Host- with Path=/app", |b| {
            b.cookie_name("__Host-s").cookie_path("/app")
        }),
        ("__Secure- without Secure", |b| {
            b.cookie_name("__Secure-s").secure(false)
        }),
        ("a name that is no token", |b| b.cookie_name("sla tes")),
    ];
    for (what, f) in refused {
        match build(f).await {
            Err(Error::Config(msg)) => assert!(!msg.is_empty(), "{what}"),
            other => panic!(
                "{what}: expected Error::Config, got {:?}",
                other.map(|_| ())
            ),
        }
    }
    let accepted: [(&str, Configure); 4] = [
        ("__Host- with the defaults", |b| b.cookie_name("__Host-s")),
        ("__Secure- with a Domain and a path", |b| {
            b.cookie_name("__Secure-s")
                .cookie_domain("example.test")
                .cookie_path("/app")
        }),
        ("plain name with a Domain", |b| {
            b.cookie_domain("example.test")
        }),
        ("plain name, plain http", |b| {
            b.secure(false).cookie_path("/app")
        }),
    ];
    for (what, f) in accepted {
        assert!(build(f).await.is_ok(), "{what}");
    }
}

// ---------------------------------------------------------------- 9. information leaks

/// Status, every header and the body, comparable.
fn fingerprint(r: &Reply) -> (StatusCode, Vec<(String, Vec<u8>)>, String) {
    let mut headers: Vec<(String, Vec<u8>)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    headers.sort();
    (r.status, headers, r.body.clone())
}

/// Threat 9: the answers to an unknown token, an expired token and a malformed token (of
/// several kinds) are byte-identical: status, headers and body, on a protected route, an
/// optional-login route and the login route.
async fn t9_unknown_expired_malformed_answers_are_identical(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let expired = env.logged_in("ada").await.cookie.unwrap();
    env.clock.advance(Duration::days(15));
    let live = env.logged_in("bob").await.cookie.unwrap();
    let app = env.app();
    let kinds: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "unknown",
            vec![format!("slates={}", Token::generate().unwrap().encode()).into_bytes()],
        ),
        ("expired", vec![format!("slates={expired}").into_bytes()]),
        ("malformed", vec![b"slates=garbage".to_vec()]),
        ("empty", vec![b"slates=".to_vec()]),
        (
            "oversized",
            vec![format!("slates={}", "A".repeat(8192)).into_bytes()],
        ),
        (
            "ambiguous",
            vec![format!("slates={live}; slates={expired}").into_bytes()],
        ),
        ("non-UTF-8", vec![b"slates=\xff\xff".to_vec()]),
    ];
    for path in ["/me", "/maybe", "/rotate", "/logout-everywhere"] {
        let mut seen = Vec::new();
        for (kind, headers) in &kinds {
            let req = {
                let mut req = request(
                    if path.starts_with("/m") {
                        "GET"
                    } else {
                        "POST"
                    },
                    path,
                    "",
                    None,
                );
                for h in headers {
                    req.headers_mut()
                        .append("cookie", http::HeaderValue::from_bytes(h).unwrap());
                }
                req
            };
            use tower::ServiceExt as _;
            let r = common::harness::read(app.clone().oneshot(req).await.unwrap()).await;
            seen.push((*kind, fingerprint(&r)));
        }
        let (first_kind, first) = &seen[0];
        assert!(
            first.1.iter().any(|(k, _)| k == "set-cookie"),
            "{path}: the bad cookie is removed"
        );
        for (kind, fp) in &seen[1..] {
            assert_eq!(
                fp, first,
                "{path}: {kind} answered differently from {first_kind}"
            );
        }
    }
}

/// Threat 9: no response body carries a store error's text: failures of the lookup, of a
/// login, of a write, of logouts and rotation, and errors built from a store error that
/// holds a secret.
#[tokio::test]
async fn t9_no_store_error_text_in_bodies() {
    use axum::response::IntoResponse;
    let env = Env::new(Backend::Memory, "", |b| b).await.unwrap();
    let store = env.faults().unwrap().clone();
    let leaks = [
        "memory store",
        "simulated",
        "outage",
        "NotConnected",
        "store unavailable",
        "store error",
    ];
    let check = |r: &Reply, what: &str| {
        assert!(r.status.is_server_error(), "{what}: {}", r.status);
        for leak in leaks {
            assert!(
                !r.body.contains(leak),
                "{what}: body {:?} leaks {leak:?}",
                r.body
            );
        }
    };
    let mut c = env.logged_in("ada").await;
    for (method, path, body) in [
        ("POST", "/slate/draft", "x"),
        ("GET", "/slate/draft", ""),
        ("POST", "/rotate", ""),
        ("POST", "/logout-everywhere", ""),
        ("POST", "/logout", ""),
        ("POST", "/login", "username=bob"),
    ] {
        let r = c.send(request(method, path, body, Some(1))).await;
        check(&r, path);
        assert_eq!(c.get("/me").await.body, "ada", "{path}");
    }
    store.set_available(false);
    let r = c.get("/me").await;
    check(&r, "lookup");
    let mut anon = env.client();
    let r = anon.post_form("/login", "username=bob").await;
    check(&r, "anonymous login");
    store.set_available(true);

    // Errors that wrap a store error with something secret in it.
    let secret = "mongodb://admin:hunter2@db.internal:27017";
    let errors = [
        Error::Unavailable(Box::new(std::io::Error::other(secret))),
        Error::Store(Box::new(std::io::Error::other(secret))),
    ];
    for e in errors {
        let shown = e.to_string();
        let r = common::harness::read(e.into_response()).await;
        assert!(r.status.is_server_error());
        assert!(
            !r.body.contains("hunter2") && !r.body.contains("db.internal"),
            "{shown}"
        );
    }
}
