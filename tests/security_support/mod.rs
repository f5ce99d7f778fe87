//! Support shared by the security suites (`tests/security*.rs`, issue 4): a backend with raw
//! access to what its store holds, and the router the suites drive (`per_backend!`, which
//! expands each test once per store, is in `tests/common`).
#![allow(dead_code, unused_macros, unused_imports)]

use axum::body::Body;
use axum::extract::{Form, Path};
use axum::routing::{get, post};
use axum::Router;
use http::{HeaderValue, Request, StatusCode};
use serde::Deserialize;
use slates::store::{Faults, Intercepted};
use slates::{
    Auth, CurrentUser, Engine, EngineBuilder, Error, ManualClock, MemoryStore, UserSlates,
};
use tower::ServiceExt;

use crate::common::harness::{read, Client, Reply};
use crate::common::Backend;

/// One configured slates system on a fresh store, with raw access to that store.
pub struct Env {
    pub backend: Backend,
    pub slates: Engine,
    pub clock: ManualClock,
    pub raw: Raw,
}

/// Direct access to what a store holds, bypassing the store traits.
pub enum Raw {
    /// The memory store, and the fault injection wrapped around it.
    Memory(MemoryStore, Faults),
    /// The test's own database, read with the driver.
    #[cfg(feature = "mongodb")]
    Mongo(slates::mongodb::Database),
}

impl Env {
    /// A fresh store of `backend` with a manual clock and plain-http cookies, configured
    /// further by `configure`. `None`: backend not available here, skip the test.
    pub async fn new(
        backend: Backend,
        test: &str,
        configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Option<Env> {
        let clock = ManualClock::new();
        let (builder, raw) = match backend {
            Backend::Memory => {
                let store = MemoryStore::new();
                let faults = Faults::new();
                let builder = Engine::builder(Intercepted::new(store.clone(), faults.clone()))
                    .clock(clock.clone())
                    .secure(false);
                (builder, Raw::Memory(store, faults))
            }
            #[cfg(feature = "mongodb")]
            Backend::Mongo(layout) => {
                // As `Backend::builder`, keeping the database handle for raw reads.
                let options = crate::common::mongo::client_options().await?;
                let db = crate::common::mongo::database(test, options).await;
                let builder = Engine::builder(slates::MongoStore::from_database(db.clone()))
                    .layout(layout)
                    .clock(clock.clone())
                    .secure(false);
                (builder, Raw::Mongo(db))
            }
        };
        #[cfg(not(feature = "mongodb"))]
        let _ = test; // names the Mongo database
        let slates = configure(builder).build().await.expect("build slates");
        Some(Env {
            backend,
            slates,
            clock,
            raw,
        })
    }

    /// The memory store, when this is the memory backend.
    pub fn memory(&self) -> Option<&MemoryStore> {
        match &self.raw {
            Raw::Memory(m, _) => Some(m),
            #[cfg(feature = "mongodb")]
            Raw::Mongo(_) => None,
        }
    }

    /// The fault injection around the memory store, when this is the memory backend.
    pub fn faults(&self) -> Option<&Faults> {
        match &self.raw {
            Raw::Memory(_, f) => Some(f),
            #[cfg(feature = "mongodb")]
            Raw::Mongo(_) => None,
        }
    }

    /// Store calls made so far (memory backend only).
    pub fn operations(&self) -> Option<u64> {
        self.faults().map(Faults::calls)
    }

    /// The router of the suites, on this system.
    pub fn app(&self) -> Router {
        app(&self.slates, self.faults().cloned())
    }

    /// A cookie-keeping client on [`Env::app`].
    pub fn client(&self) -> Client {
        let mut c = Client::new(self.app());
        c.cookie_name = self.slates.config().cookie.name.clone();
        c
    }

    /// A client logged in as `name`.
    pub async fn logged_in(&self, name: &str) -> Client {
        let mut c = self.client();
        let r = c
            .post_form("/login", &format!("username={}", form_encode(name)))
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "login {name:?}: {}",
            r.body
        );
        assert!(c.cookie.is_some(), "login {name:?} set no cookie");
        c
    }

    /// Everything the store holds, as bytes to search: a text rendering of every token
    /// record and every slate, the token hashes in binary as kept, and every slate's BSON
    /// (memory); every document of every collection, as BSON and as text (MongoDB).
    pub async fn haystack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match &self.raw {
            Raw::Memory(store, _) => {
                let mut tokens = store.dump_tokens();
                tokens.sort_by_key(|t| t.hash.to_hex());
                for t in tokens {
                    out.extend_from_slice(
                        format!(
                            "token {} {} {} {} {:?}\n",
                            t.hash.to_hex(),
                            t.user,
                            t.created,
                            t.expires,
                            t.renewed
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(t.hash.as_bytes());
                    out.push(b'\n');
                }
                let mut slates = store.dump_slates();
                slates.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
                for (user, slate, doc) in slates {
                    let fields = doc.to_document().expect("slate fields");
                    out.extend_from_slice(format!("slate {user} {slate} {fields}\n").as_bytes());
                    out.extend_from_slice(doc.as_bytes());
                    out.push(b'\n');
                }
            }
            #[cfg(feature = "mongodb")]
            Raw::Mongo(db) => {
                for (coll, doc) in mongo_documents(db).await {
                    out.extend_from_slice(format!("{coll} {doc}\n").as_bytes());
                    out.extend_from_slice(&bson::to_vec(&doc).expect("document to BSON"));
                    out.push(b'\n');
                }
            }
        }
        out
    }

    /// Hex `_id` of every token record the store holds, expired ones included, sorted.
    pub async fn token_hashes(&self) -> Vec<String> {
        let mut hashes: Vec<String> = match &self.raw {
            Raw::Memory(store, _) => store
                .dump_tokens()
                .iter()
                .map(|t| t.hash.to_hex())
                .collect(),
            #[cfg(feature = "mongodb")]
            Raw::Mongo(db) => {
                let auth = &self.slates.config().store.auth_collection;
                mongo_documents(db)
                    .await
                    .into_iter()
                    .filter(|(coll, _)| coll == auth)
                    .map(|(_, doc)| doc.get_str("_id").expect("a string _id").to_owned())
                    .collect()
            }
        };
        hashes.sort();
        hashes
    }

    /// How many records (tokens and slates, expired ones included) the store holds.
    pub async fn record_count(&self) -> usize {
        match &self.raw {
            Raw::Memory(store, _) => store.dump_tokens().len() + store.dump_slates().len(),
            #[cfg(feature = "mongodb")]
            Raw::Mongo(db) => mongo_documents(db).await.len(),
        }
    }
}

/// Every document of every collection of `db` but the server's own (`system.*`), sorted.
#[cfg(feature = "mongodb")]
async fn mongo_documents(db: &slates::mongodb::Database) -> Vec<(String, bson::Document)> {
    let mut out = Vec::new();
    let mut names = db.list_collection_names().await.expect("list collections");
    names.sort();
    for name in names.into_iter().filter(|n| !n.starts_with("system.")) {
        let mut cursor = db
            .collection::<bson::Document>(&name)
            .find(bson::doc! {})
            .await
            .expect("find");
        let mut docs = Vec::new();
        while cursor.advance().await.expect("read documents") {
            let doc = cursor.deserialize_current().expect("a document");
            docs.push((name.clone(), doc));
        }
        docs.sort_by_key(|(_, d)| d.to_string());
        out.extend(docs);
    }
    out
}

/// Percent-encodes every byte but ASCII alphanumerics, for forms and paths.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends a request with exactly these `Cookie` header values (raw bytes) through `app`.
pub async fn with_cookie_headers(app: &Router, path: &str, cookies: &[Vec<u8>]) -> Reply {
    let mut req = Request::get(path).body(Body::empty()).unwrap();
    for c in cookies {
        req.headers_mut().append(
            "cookie",
            HeaderValue::from_bytes(c).expect("a valid header value"),
        );
    }
    read(app.clone().oneshot(req).await.expect("infallible")).await
}

/// The `Set-Cookie` values of `reply` for cookie `name`, parsed.
pub fn cookies_named(reply: &Reply, name: &str) -> Vec<cookie::Cookie<'static>> {
    reply
        .set_cookies()
        .into_iter()
        .map(|s| cookie::Cookie::parse(s).expect("a parsable Set-Cookie"))
        .filter(|c| c.name() == name)
        .collect()
}

// ---------------------------------------------------------------- the router

#[derive(Deserialize)]
struct LoginForm {
    username: String,
}

async fn login(auth: Auth, Form(f): Form<LoginForm>) -> Result<StatusCode, Error> {
    auth.login(&f.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(user: CurrentUser) -> String {
    user.username().to_owned()
}

async fn maybe(user: Option<CurrentUser>) -> String {
    user.map(|u| u.username().to_owned())
        .unwrap_or_else(|| "anonymous".into())
}

async fn logout(auth: Auth) -> Result<StatusCode, Error> {
    auth.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_everywhere(auth: Auth) -> Result<String, Error> {
    Ok(auth.logout_everywhere().await?.to_string())
}

async fn rotate(auth: Auth) -> Result<StatusCode, Error> {
    auth.rotate().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn read_slate(slates: UserSlates, Path(name): Path<String>) -> Result<String, Error> {
    let doc = slates.raw_slate(&name).get_doc().await?;
    Ok(doc
        .and_then(|d| d.doc.get_str("v").ok().map(str::to_owned))
        .unwrap_or_else(|| "-".into()))
}

async fn write_slate(
    slates: UserSlates,
    Path(name): Path<String>,
    body: String,
) -> Result<String, Error> {
    Ok(slates.raw_slate(&name).set("v", body).await?.to_string())
}

/// Tries to grow the slate past the 16 MiB limit.
async fn oversize(slates: UserSlates, Path(name): Path<String>) -> Result<String, Error> {
    let big = "x".repeat(17 * 1024 * 1024);
    Ok(slates.raw_slate(&name).set("blob", big).await?.to_string())
}

/// The suites' router. With a memory store, a request carrying `x-fail-next: N` makes the
/// next N store operations fail once the layer is done with the request (that is, in the
/// handler), so a test can fail a handler's write without failing the token lookup.
pub fn app(slates: &Engine, faults: Option<Faults>) -> Router {
    let arm = move |req: Request<Body>| {
        if let (Some(faults), Some(n)) = (&faults, req.headers().get("x-fail-next")) {
            let n: u32 = n.to_str().unwrap().parse().unwrap();
            faults.fail_next(n);
        }
        req
    };
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/rotate", post(rotate))
        .route("/slate/{name}", get(read_slate).post(write_slate))
        .route("/oversize/{name}", post(oversize))
        .route("/stats", get(slates::stats_handler))
        .layer(tower::util::MapRequestLayer::new(arm))
        .layer(slates.layer())
}

/// A request to `path` with `method`, a form body, and `x-fail-next: fail_next` when given.
pub fn request(method: &str, path: &str, body: &str, fail_next: Option<u32>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(n) = fail_next {
        b = b.header("x-fail-next", n.to_string());
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

// ---------------------------------------------------------------- tokens in bytes

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The raw 32 bytes behind a cookie value.
pub fn token_bytes(cookie: &str) -> Vec<u8> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cookie)
        .expect("a base64url cookie");
    assert_eq!(bytes.len(), 32);
    bytes
}

/// Every form in which the token itself could have been stored (or logged).
pub fn token_forms(cookie: &str) -> Vec<(&'static str, Vec<u8>)> {
    use base64::Engine as _;
    let raw = token_bytes(cookie);
    vec![
        ("cookie value", cookie.as_bytes().to_vec()),
        (
            "standard base64",
            base64::engine::general_purpose::STANDARD
                .encode(&raw)
                .into_bytes(),
        ),
        ("hex", hex(&raw).into_bytes()),
        ("upper hex", hex(&raw).to_uppercase().into_bytes()),
        ("raw bytes", raw),
    ]
}

pub fn sha256_hex(cookie: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(token_bytes(cookie)))
}
