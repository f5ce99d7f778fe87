//! Shared by the bench binaries: the four systems under test, each as a real axum router
//! with the same routes, and a small client that drives them with `oneshot`.
//!
//! Every router is finalized with `with_state(())`, as `axum::serve` does once per
//! connection: a router called directly without it turns each handler (and each layer
//! around it) into a route again on every request, a cost no served app pays.
//!
//! Systems:
//! - **slates** on its `MemoryStore`;
//! - **tower-sessions** 0.15 on its `MemoryStore` (lazy load, whole-record save at the end),
//!   and (scenario 4) the same behind a moka cache ([`moka`]);
//! - **locking session**: [`locking`], a reference middleware that holds a per-session
//!   `tokio::sync::Mutex` for the whole request (PHP file sessions, CherryPy's default);
//! - **bare axum**: no session layer, the floor; and the same with a layer that does
//!   nothing but hand each request one shared value in its extensions, added with
//!   `Router::layer` ([`bare_app::pass_layer`], an [`insert_layer::InsertLayer`]): what
//!   axum's per-route layering costs any layer, before the layer does anything of its own;
//! - **minimal token layer**: the floor's check inside such a layer, kept in one
//!   `OnceLock` per request ([`floor_app::layered`], the same layer): the least a token
//!   layer on axum's routes costs.
//!
//! Every system stores the same user data: the username and a small profile (display name,
//! time zone, permissions, panels). slates keeps the profile in the user slate; the session
//! systems keep `user` and `profile` in the session record.
#![allow(dead_code)]

pub mod callgrind;
pub mod chart;
pub mod insert_layer;
pub mod locking;
pub mod moka;
#[cfg(feature = "mongodb")]
pub mod mongo;
pub mod report;
pub mod two_instances;

use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, StatusCode};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

/// Simulated I/O inside a writing handler (a query, a call to another service): the window
/// in which a load-at-start, save-at-end session loses updates.
pub const WRITE_WORK: Duration = Duration::from_millis(1);
/// How long the slow writer of the "logout undone" race works before it writes.
pub const SLOW_WRITE: Duration = Duration::from_millis(100);

/// A single-threaded runtime: the one-thread measurements of every bench binary.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether `SLATES_BENCH_QUICK` asks for the quick mode (CI: few iterations, small sizes).
pub fn quick() -> bool {
    std::env::var("SLATES_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The systems under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// slates, `MemoryStore`, its layer applied with `Router::layer` (on every route).
    Engine,
    /// slates, `MemoryStore`, its layer wrapped around the whole router
    /// (`SlatesLayer::layer(router)`, as `ServiceBuilder` does): axum does not box a route
    /// for it.
    EngineAround,
    /// tower-sessions 0.15, `MemoryStore`, its layer applied with `Router::layer`.
    TowerSessions,
    /// tower-sessions 0.15, `MemoryStore`, its layer wrapped around the whole router.
    TowerSessionsAround,
    /// tower-sessions 0.15, `MemoryStore` behind its moka cache ([`moka`]).
    TowerSessionsMoka,
    /// The locking reference session.
    Locking,
    /// axum without a session layer.
    Bare,
    /// axum with a layer that only inserts one `Arc` into each request's extensions, added
    /// with `Router::layer`: the cost of being a route layer.
    BarePass,
    /// The floor of a token check: bare axum plus what any cookie-token check must do
    /// (split the `Cookie` header, decode the token, SHA-256 it, one map lookup).
    Floor,
    /// The floor's check in a minimal layer added with `Router::layer`: the layer hands each
    /// request an `Arc` holding a `OnceLock`; the extractor fills it with the floor's check
    /// and clones the user out. No expiry, counters or cookie changes: the least a token
    /// layer on axum's routes costs.
    FloorLayer,
}

impl Kind {
    /// Every system, in table order.
    pub const ALL: [Kind; 10] = [
        Kind::Engine,
        Kind::EngineAround,
        Kind::TowerSessions,
        Kind::TowerSessionsAround,
        Kind::TowerSessionsMoka,
        Kind::Locking,
        Kind::Bare,
        Kind::BarePass,
        Kind::Floor,
        Kind::FloorLayer,
    ];
    /// The systems that keep per-user state.
    pub const STATEFUL: [Kind; 3] = [Kind::Engine, Kind::TowerSessions, Kind::Locking];

    /// Name in tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Engine => "slates",
            Kind::EngineAround => "slates, layer around the router",
            Kind::TowerSessions => "tower-sessions 0.15",
            Kind::TowerSessionsAround => "tower-sessions 0.15, layer around the router",
            Kind::TowerSessionsMoka => "tower-sessions 0.15 + moka cache",
            Kind::Locking => "locking session",
            Kind::Bare => "bare axum",
            Kind::BarePass => "bare axum + a no-op layer (Router::layer, one extension)",
            Kind::Floor => "floor (bare axum + cookie split + SHA-256 + map lookup)",
            Kind::FloorLayer => {
                "minimal token layer (the floor's check in a Router::layer, one OnceLock)"
            }
        }
    }

    /// A short id (criterion benchmark ids, file names).
    pub fn id(self) -> &'static str {
        match self {
            Kind::Engine => "slates",
            Kind::EngineAround => "slates_around",
            Kind::TowerSessions => "tower_sessions",
            Kind::TowerSessionsAround => "tower_sessions_around",
            Kind::TowerSessionsMoka => "tower_sessions_moka",
            Kind::Locking => "locking",
            Kind::Bare => "bare",
            Kind::BarePass => "bare_pass",
            Kind::Floor => "floor",
            Kind::FloorLayer => "floor_layer",
        }
    }

    /// The app of this system, with every bench route.
    pub async fn app(self) -> App {
        match self {
            Kind::Engine => App::Router(slates_app::app(slates_app::memory().await)),
            Kind::EngineAround => App::Slates(slates_app::around(slates_app::memory().await)),
            Kind::TowerSessions => App::Router(ts_app::app()),
            Kind::TowerSessionsAround => App::TowerSessions(ts_app::around()),
            Kind::TowerSessionsMoka => App::Router(ts_app::with_store(moka::cached_memory_store())),
            Kind::Locking => App::Router(locking_app::app()),
            Kind::Bare => App::Router(bare_app::app()),
            Kind::BarePass => App::Router(bare_app::app().layer(bare_app::pass_layer())),
            Kind::Floor => App::Router(floor_app::app()),
            Kind::FloorLayer => App::Router(floor_app::layered()),
        }
    }
}

/// The profile every system stores for a user.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    pub name: String,
    pub timezone: String,
    pub permissions: Vec<String>,
    pub panels: Vec<String>,
}

impl Profile {
    pub fn of(user: &str) -> Self {
        Profile {
            name: format!("User {user}"),
            timezone: "Europe/Paris".into(),
            permissions: vec!["read".into(), "write".into(), "upload".into()],
            panels: vec!["inbox".into(), "reports".into(), "stats".into()],
        }
    }
}

/// A list of items that writers append to (scenario 2).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cart {
    pub items: Vec<i64>,
}

/// A system's app as `axum::serve` would be given it: a router with the session layer on
/// its routes (`Router::layer`), or the layer's service wrapped around the router.
#[derive(Clone)]
pub enum App {
    /// A router (the session layer, if any, on its routes).
    Router(Router),
    /// slates' layer around the router.
    Slates(slates::SlatesService<Router>),
    /// tower-sessions' layer around the router.
    TowerSessions(ts_app::Around),
}

impl App {
    /// Sends `req` through a clone of the app, as a connection does.
    pub async fn oneshot(&self, req: Request<Body>) -> Response {
        match self {
            App::Router(app) => app.clone().oneshot(req).await.unwrap(),
            App::Slates(app) => app.clone().oneshot(req).await.unwrap(),
            App::TowerSessions(app) => app.clone().oneshot(req).await.unwrap(),
        }
    }
}

/// A router plus the cookie of one logged-in user: what a browser tab holds.
#[derive(Clone)]
pub struct Tab {
    pub kind: Kind,
    pub app: App,
    /// `name=value`, ready for a `Cookie` header (empty for bare axum).
    pub cookie: HeaderValue,
}

impl Tab {
    /// Logs `user` in on a fresh router of `kind`.
    pub async fn login(kind: Kind, user: &str) -> Tab {
        Self::login_on(kind, kind.app().await, user).await
    }

    /// Logs `user` in on `app` (the app of `kind`).
    pub async fn login_on(kind: Kind, app: App, user: &str) -> Tab {
        let res = app
            .oneshot(
                Request::post(format!("/login/{user}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{kind:?} login");
        let cookie = match res.headers().get(SET_COOKIE) {
            Some(v) => {
                let s = v.to_str().unwrap();
                HeaderValue::from_str(s.split(';').next().unwrap()).unwrap()
            }
            // Bare axum sets no cookie; send one of the same size anyway, so that every
            // system gets the same request.
            None => HeaderValue::from_static("bare=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        };
        Tab { kind, app, cookie }
    }

    /// The request `method path` carrying this tab's cookie.
    pub fn request(&self, method: &str, path: &str) -> Request<Body> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        if !self.cookie.is_empty() {
            req.headers_mut().insert(COOKIE, self.cookie.clone());
        }
        req
    }

    /// Sends `method path` and returns the response (body not read).
    pub async fn send(&self, method: &str, path: &str) -> Response {
        self.app.oneshot(self.request(method, path)).await
    }

    /// Scenario 1: the authenticated read-only request. Returns its status.
    pub async fn me(&self) -> StatusCode {
        self.send("GET", "/me").await.status()
    }

    /// Sends `method path` and reads the body to a string.
    pub async fn text(&self, method: &str, path: &str) -> (StatusCode, String) {
        use http_body_util::BodyExt;
        let res = self.send(method, path).await;
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn error(e: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

/// slates: `CurrentUser` for reads, one atomic operator per write.
pub mod slates_app {
    use super::*;
    use slates::{Auth, CurrentUser, Engine, MemoryStore, UserSlates};

    /// slates on a fresh memory store, renewal as configured by default.
    pub async fn memory() -> Engine {
        with_store(MemoryStore::new()).await
    }

    /// slates on `store`, plain-http cookies, no cache (the benches measure the store path).
    pub async fn with_store(store: impl slates::Store) -> Engine {
        Engine::builder(store)
            .no_cache()
            .secure(false)
            .build()
            .await
            .unwrap()
    }

    /// The bench routes over `slates`, its layer on every route (`Router::layer`).
    pub fn app(slates: Engine) -> Router {
        routes().layer(slates.layer()).with_state(())
    }

    /// The bench routes, slates' layer wrapped around the router.
    pub fn around(slates: Engine) -> slates::SlatesService<Router> {
        use tower::Layer as _;
        slates.layer().layer(routes().with_state(()))
    }

    fn routes() -> Router {
        Router::new()
            .route("/login/{user}", post(login))
            .route("/me", get(me))
            .route("/profile", get(profile))
            .route("/add", post(add))
            .route("/add-cas", post(add_cas))
            .route("/items", get(items))
            .route("/slow-write", post(slow_write))
            .route("/logout", post(logout))
            .route("/long", get(long))
    }

    async fn login(auth: Auth, slates: Engine, Path(user): Path<String>) -> Response {
        let put = async {
            slates
                .user_slates(&user)?
                .raw_slate("user")
                .put(&Profile::of(&user))
                .await?;
            auth.login(&user).await
        };
        match put.await {
            Ok(()) => "ok".into_response(),
            Err(e) => error(e),
        }
    }

    /// Scenario 1: the user's name, no store call beyond what the layer did.
    pub async fn me(user: CurrentUser) -> String {
        user.username().to_owned()
    }

    /// Scenario 4: the display name from the profile (the token lookup, then one slate
    /// read).
    pub async fn profile(user: CurrentUser) -> Response {
        match user.profile::<Profile>().await {
            Ok(Some(p)) => p.name.into_response(),
            Ok(None) => StatusCode::NOT_FOUND.into_response(),
            Err(e) => error(e),
        }
    }

    async fn add(slates: UserSlates) -> Response {
        tokio::time::sleep(WRITE_WORK).await;
        match slates.raw_slate("cart").push("items", 1).await {
            Ok(_) => "ok".into_response(),
            Err(e) => error(e),
        }
    }

    async fn add_cas(slates: UserSlates) -> Response {
        tokio::time::sleep(WRITE_WORK).await;
        match slates
            .raw_slate("cart")
            .modify_or_default(|c: &mut Cart| {
                c.items.push(1);
                Some(())
            })
            .await
        {
            Ok(_) => "ok".into_response(),
            Err(e) => error(e),
        }
    }

    async fn items(slates: UserSlates) -> Response {
        match slates.raw_slate("cart").get::<Cart>().await {
            Ok(c) => c
                .unwrap_or_default()
                .items
                .len()
                .to_string()
                .into_response(),
            Err(e) => error(e),
        }
    }

    async fn slow_write(slates: UserSlates) -> Response {
        tokio::time::sleep(SLOW_WRITE).await;
        match slates.raw_slate("draft").set("text", "written late").await {
            Ok(_) => "ok".into_response(),
            Err(e) => error(e),
        }
    }

    async fn logout(auth: Auth) -> Response {
        match auth.logout().await {
            Ok(()) => "bye".into_response(),
            Err(e) => error(e),
        }
    }

    async fn long(user: CurrentUser) -> String {
        tokio::time::sleep(super::long_hold()).await;
        user.username().to_owned()
    }
}

/// How long the long request of scenario 3 holds.
pub fn long_hold() -> Duration {
    Duration::from_millis(500)
}

/// tower-sessions 0.15 on its `MemoryStore` (or, scenario 4, any session store).
pub mod ts_app {
    use super::*;
    use tower_sessions::{MemoryStore, Session, SessionManagerLayer, SessionStore};

    pub fn app() -> Router {
        with_store(MemoryStore::default())
    }

    pub fn with_store<S: SessionStore + Clone>(store: S) -> Router {
        routes()
            .layer(SessionManagerLayer::new(store).with_secure(false))
            .with_state(())
    }

    /// tower-sessions' service wrapped around the router.
    pub type Around = <SessionManagerLayer<MemoryStore> as tower::Layer<Router>>::Service;

    /// The bench routes, tower-sessions' layer wrapped around the router.
    pub fn around() -> Around {
        use tower::Layer as _;
        SessionManagerLayer::new(MemoryStore::default())
            .with_secure(false)
            .layer(routes().with_state(()))
    }

    fn routes() -> Router {
        Router::new()
            .route("/login/{user}", post(login))
            .route("/me", get(me))
            .route("/profile", get(profile))
            .route("/add", post(add))
            .route("/items", get(items))
            .route("/slow-write", post(slow_write))
            .route("/logout", post(logout))
            .route("/long", get(long))
    }

    async fn login(session: Session, Path(user): Path<String>) -> Response {
        let r = async {
            session.cycle_id().await?;
            session.insert("user", &user).await?;
            session.insert("profile", Profile::of(&user)).await
        };
        match r.await {
            Ok(()) => "ok".into_response(),
            Err(e) => error(e),
        }
    }

    async fn user(session: &Session) -> Result<String, Response> {
        match session.get::<String>("user").await {
            Ok(Some(u)) => Ok(u),
            Ok(None) => Err(StatusCode::UNAUTHORIZED.into_response()),
            Err(e) => Err(error(e)),
        }
    }

    /// Scenario 1: the user's name from the session.
    pub async fn me(session: Session) -> Response {
        match user(&session).await {
            Ok(u) => u.into_response(),
            Err(r) => r,
        }
    }

    /// Scenario 4: the display name from the profile the session holds.
    pub async fn profile(session: Session) -> Response {
        match session.get::<Profile>("profile").await {
            Ok(Some(p)) => p.name.into_response(),
            Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
            Err(e) => error(e),
        }
    }

    async fn add(session: Session) -> Response {
        let r = async {
            let mut cart: Cart = session.get("cart").await?.unwrap_or_default();
            tokio::time::sleep(WRITE_WORK).await;
            cart.items.push(1);
            session.insert("cart", cart).await
        };
        match r.await {
            Ok(()) => "ok".into_response(),
            Err(e) => error(e),
        }
    }

    async fn items(session: Session) -> Response {
        match session.get::<Cart>("cart").await {
            Ok(c) => c
                .unwrap_or_default()
                .items
                .len()
                .to_string()
                .into_response(),
            Err(e) => error(e),
        }
    }

    async fn slow_write(session: Session) -> Response {
        if let Err(r) = user(&session).await {
            return r;
        }
        tokio::time::sleep(SLOW_WRITE).await;
        match session.insert("draft", "written late").await {
            Ok(()) => "ok".into_response(),
            Err(e) => error(e),
        }
    }

    async fn logout(session: Session) -> Response {
        match session.flush().await {
            Ok(()) => "bye".into_response(),
            Err(e) => error(e),
        }
    }

    async fn long(session: Session) -> Response {
        let u = match user(&session).await {
            Ok(u) => u,
            Err(r) => return r,
        };
        tokio::time::sleep(super::long_hold()).await;
        u.into_response()
    }
}

/// The locking reference session (see [`locking`]).
pub mod locking_app {
    use super::locking::{LockedSession, LockingStore};
    use super::*;

    pub fn app() -> Router {
        let store = LockingStore::default();
        Router::new()
            .route("/login/{user}", post(login))
            .route("/me", get(me))
            .route("/add", post(add))
            .route("/items", get(items))
            .route("/slow-write", post(slow_write))
            .route("/logout", post(logout))
            .route("/long", get(long))
            .layer(axum::middleware::from_fn_with_state(
                store,
                super::locking::middleware,
            ))
            .with_state(())
    }

    async fn login(session: LockedSession, Path(user): Path<String>) -> &'static str {
        session.create();
        session.insert("user", &user);
        session.insert("profile", Profile::of(&user));
        "ok"
    }

    /// Scenario 1: the user's name from the session.
    pub async fn me(session: LockedSession) -> Response {
        match session.get::<String>("user") {
            Some(u) => u.into_response(),
            None => StatusCode::UNAUTHORIZED.into_response(),
        }
    }

    async fn add(session: LockedSession) -> &'static str {
        let mut cart: Cart = session.get("cart").unwrap_or_default();
        tokio::time::sleep(WRITE_WORK).await;
        cart.items.push(1);
        session.insert("cart", cart);
        "ok"
    }

    async fn items(session: LockedSession) -> String {
        session
            .get::<Cart>("cart")
            .unwrap_or_default()
            .items
            .len()
            .to_string()
    }

    async fn slow_write(session: LockedSession) -> Response {
        if session.get::<String>("user").is_none() {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        tokio::time::sleep(SLOW_WRITE).await;
        session.insert("draft", "written late");
        "ok".into_response()
    }

    async fn logout(session: LockedSession) -> &'static str {
        session.destroy();
        "bye"
    }

    async fn long(session: LockedSession) -> Response {
        let Some(u) = session.get::<String>("user") else {
            return StatusCode::UNAUTHORIZED.into_response();
        };
        tokio::time::sleep(super::long_hold()).await;
        u.into_response()
    }
}

/// axum with no session layer: the floor.
pub mod bare_app {
    use super::*;

    pub fn app() -> Router {
        Router::new()
            .route("/login/{user}", post(|| async { "ok" }))
            .route("/me", get(me))
            .route("/profile", get(profile))
            .route(
                "/long",
                get(|| async {
                    tokio::time::sleep(super::long_hold()).await;
                    "ada"
                }),
            )
            .with_state(())
    }

    /// Scenario 1: a handler that returns a name it already has.
    pub async fn me() -> String {
        "ada".to_owned()
    }

    /// Scenario 4: a display name it already has.
    pub async fn profile() -> String {
        "User ada".to_owned()
    }

    /// The no-op layer: every request gets one shared value (an `Arc` in its extensions,
    /// as a session layer hands its state to the extractors) and nothing else.
    pub fn pass_layer() -> super::insert_layer::InsertLayer<impl Fn() -> std::sync::Arc<u64> + Clone>
    {
        super::insert_layer::InsertLayer(|| std::sync::Arc::new(0u64))
    }
}

/// The floor of a cookie-token check, with no layer and no framework of its own: the
/// handler splits the `Cookie` header, decodes the token (slates' own `Token::parse`),
/// hashes it (`Token::hash`, SHA-256) and looks the hash up in one `HashMap`. What no
/// token-checking system can skip; everything a system costs beyond it is its own.
pub mod floor_app {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, RwLock};

    use axum::extract::State;
    use http::HeaderMap;
    use slates::{Token, TokenHash};

    type Users = Arc<RwLock<HashMap<TokenHash, String>>>;

    pub fn app() -> Router {
        Router::new()
            .route("/login/{user}", post(login))
            .route("/me", get(me))
            .route("/long", get(long))
            .with_state(Users::default())
    }

    async fn login(State(users): State<Users>, Path(user): Path<String>) -> Response {
        let token = Token::generate().unwrap();
        users.write().unwrap().insert(token.hash(), user);
        let cookie = format!("floor={}", token.encode());
        ([(SET_COOKIE, cookie)], "ok").into_response()
    }

    /// The cookie's user, read from the request's headers in place (axum's `HeaderMap`
    /// extractor would clone them).
    pub struct FloorUser(String);

    impl axum::extract::FromRequestParts<Users> for FloorUser {
        type Rejection = StatusCode;

        async fn from_request_parts(
            parts: &mut http::request::Parts,
            users: &Users,
        ) -> Result<Self, StatusCode> {
            user(users, &parts.headers)
                .map(FloorUser)
                .ok_or(StatusCode::UNAUTHORIZED)
        }
    }

    fn user(users: &Users, headers: &HeaderMap) -> Option<String> {
        let header = headers.get(http::header::COOKIE)?.to_str().ok()?;
        let value = header
            .split(';')
            .find_map(|pair| pair.trim().strip_prefix("floor="))?;
        let hash = Token::parse(value)?.hash();
        users.read().unwrap().get(&hash).cloned()
    }

    /// The floor's routes behind a minimal token layer (an
    /// [`InsertLayer`](super::insert_layer::InsertLayer) of one `Arc<MinState>`, `Router::layer`).
    pub fn layered() -> Router {
        let users = Users::default();
        Router::new()
            .route("/login/{user}", post(login))
            .route("/me", get(me_layered))
            .route("/long", get(long_layered))
            .with_state(users.clone())
            .layer(super::insert_layer::InsertLayer(move || {
                Arc::new(MinState {
                    users: users.clone(),
                    user: Default::default(),
                })
            }))
    }

    /// What the minimal token layer hands a request: the table, and the user once checked.
    struct MinState {
        users: Users,
        user: std::sync::OnceLock<Option<String>>,
    }

    /// The cookie's user, checked once per request through the layer's state.
    pub struct MinUser(String);

    impl axum::extract::FromRequestParts<Users> for MinUser {
        type Rejection = StatusCode;

        async fn from_request_parts(
            parts: &mut http::request::Parts,
            _: &Users,
        ) -> Result<Self, StatusCode> {
            let state = parts
                .extensions
                .get::<Arc<MinState>>()
                .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
            state
                .user
                .get_or_init(|| user(&state.users, &parts.headers))
                .clone()
                .map(MinUser)
                .ok_or(StatusCode::UNAUTHORIZED)
        }
    }

    /// Scenario 1 behind the minimal layer.
    pub async fn me_layered(MinUser(user): MinUser) -> String {
        user
    }

    async fn long_layered(MinUser(user): MinUser) -> String {
        tokio::time::sleep(super::long_hold()).await;
        user
    }

    /// Scenario 1: the name of the cookie's user.
    pub async fn me(FloorUser(user): FloorUser) -> String {
        user
    }

    async fn long(FloorUser(user): FloorUser) -> String {
        tokio::time::sleep(super::long_hold()).await;
        user
    }
}

/// A nanoseconds figure for tables: `1234 ns`, `12.3 µs`.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 100_000.0 {
        format!("{:.0} µs", ns / 1_000.0)
    } else if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

/// A duration in milliseconds, 3 significant-ish digits.
pub fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1_000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

/// The `q`-quantile (0..=1) of `sorted` (nearest rank).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `xs` (which it sorts).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Where criterion keeps its results, for the overhead bench and for RESULTS.md.
pub fn criterion_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

/// Criterion's mean estimate (ns) for `group/id`, if the overhead bench has run.
pub fn criterion_mean_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}
