//! Arbitrary `Cookie` header bytes through the layer's cookie-to-decision path.
//!
//! The input is split on `\n` into up to 64 `Cookie` header values (pieces that are not a
//! valid header value are dropped, as the HTTP server would refuse them). Each request goes
//! through `token_from_headers` and then through the real layer (`oneshot`, current-thread
//! runtime) in front of a memory store that holds one live token. Checked on every input:
//! - nothing panics, and the answer is 200 from the handler (never 5xx);
//! - no cookie or a malformed one (`Absent`, `Malformed`): anonymous, and no store call;
//! - a well-formed token that is not the live one: anonymous after exactly one lookup;
//! - the live token: its user, and only then.
//!
//! Run: `cargo +nightly fuzz run cookie_header -- -max_total_time=300`
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use slates::store::{Faults, Intercepted, TokenRecord, TokenStore};
use slates::{
    token_from_headers, Clock, CookieToken, CurrentUser, Engine, ManualClock, MemoryStore, Token,
    Username,
};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

/// The one live token: the bytes 0..32, base64url. Seeds in the corpus carry it.
const LIVE: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

struct World {
    rt: tokio::runtime::Runtime,
    app: Router,
    faults: Faults,
    live: Token,
}

async fn who(user: Option<CurrentUser>) -> String {
    user.map(|u| u.username().to_owned())
        .unwrap_or_else(|| "anonymous".into())
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = MemoryStore::new();
        let faults = Faults::new();
        // A clock that never moves: no renewal, no expiry, the same answer every time.
        let clock = ManualClock::at(OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap());
        let live = Token::parse(LIVE).unwrap();
        let slates = rt.block_on(async {
            let record = TokenRecord {
                hash: live.hash(),
                user: Username::new("ada").unwrap(),
                created: clock.now(),
                expires: clock.now() + Duration::days(14),
                renewed: None,
                rotated: None,
                device: Some(slates::DeviceId::generate().unwrap()),
                last_seen: clock.now(),
                label: String::new(),
                ip: None,
            };
            store.insert_token(&record).await.unwrap();
            Engine::builder(Intercepted::new(store, faults.clone()))
                .clock(clock)
                .build()
                .await
                .unwrap()
        });
        let app = Router::new().route("/", get(who)).layer(slates.layer());
        World {
            rt,
            app,
            faults,
            live,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut headers = HeaderMap::new();
    for piece in data.split(|b| *b == b'\n').take(64) {
        if let Ok(v) = HeaderValue::from_bytes(piece) {
            headers.append(COOKIE, v);
        }
    }
    let decision = token_from_headers(&headers, "slates");
    if let CookieToken::Present(t) = &decision {
        // A token is only ever found where the client put it.
        let encoded = t.encode();
        assert!(headers
            .get_all(COOKIE)
            .iter()
            .any(|v| String::from_utf8_lossy(v.as_bytes()).contains(&encoded)));
    }

    let before = w.faults.calls();
    let mut req = Request::get("/").body(Body::empty()).unwrap();
    *req.headers_mut() = headers;
    let res = w.rt.block_on(w.app.clone().oneshot(req)).unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let removes_cookie = res.headers().get_all(SET_COOKIE).iter().count() == 1;
    let body = w.rt.block_on(res.into_body().collect()).unwrap().to_bytes();
    let ops = w.faults.calls() - before;
    match decision {
        CookieToken::Absent => {
            assert_eq!(ops, 0, "no cookie: no store call");
            assert_eq!(&body[..], b"anonymous");
            assert!(!removes_cookie);
        }
        CookieToken::Malformed => {
            assert_eq!(ops, 0, "malformed cookie: no store call");
            assert_eq!(&body[..], b"anonymous");
            assert!(removes_cookie);
        }
        CookieToken::Present(t) if t == w.live => {
            assert_eq!(&body[..], b"ada");
            assert_eq!(ops, 2, "token lookup and user slate load");
        }
        CookieToken::Present(_) => {
            assert_eq!(ops, 1, "unknown token: one lookup, no write");
            assert_eq!(&body[..], b"anonymous");
            assert!(removes_cookie);
        }
    }
});
