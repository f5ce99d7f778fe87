//! Guarantees (issue 9), point 3 and point 9.
//!
//! Point 3: `login`, `rotate`, `logout` and `logout_everywhere` succeed whole or fail whole.
//! Every scenario is run once without a fault, which gives the K store calls its request
//! makes (the layer's own lookup included); then, on a fresh store each time, each of those
//! K calls is failed in turn, once before the store saw it (nothing applied) and once after
//! it applied it (a lost reply), and every run is checked against the same rules:
//!
//! - the response is the 503 of the layer (a failed lookup), the 503 of the handler (any
//!   other failed step), or a success when only the layer's optional renewal failed;
//! - every `Set-Cookie` that hands out a token hands out a token that is live right after;
//! - no extra live token: every live token is held by a browser, except, after a rotation
//!   with a grace, the old token, marked rotated and dying within the grace;
//! - the browser is coherent: a cookie for a dead token only when no token of the request
//!   lives; a live cookie logs in the user it was for; a request with it says so;
//! - bystanders (another user, another device of the same user) keep their tokens, except
//!   for the devices `logout_everywhere` is there to log out.
//!
//! Point 9: the default cookie name with `Secure` is `__Host-slates`, which a sibling
//! subdomain cannot plant; a planted `slates` cookie next to it changes nothing, where with
//! the old default name it makes the request ambiguous and logs the user out.
//!
//! The store is wrapped in `Hooked` (tests/common/hooked.rs); `fixture_before_means_not_applied`
//! checks that its two phases really differ on every backend (a failure `Before` applies
//! nothing, a failure `After` is a lost reply), or the two runs of each step would be one.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Form;
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use serde::Deserialize;
use slates::store::TokenRecord;
use slates::store::TokenStore as _;
use slates::{
    Auth, Clock, CurrentUser, Engine, EngineBuilder, Error, ManualClock, MemoryStore, Store, Token,
    TokenHash, Username,
};
use time::Duration;

use common::harness::{Client, Reply};
use common::hooked::{self, Call, Hooked, Phase};
use common::Backend;

per_backend!(
    fixture_before_means_not_applied,
    p3_login_anonymous,
    p3_login_over_own_token,
    p3_login_over_other_users_token,
    p3_login_twice_anonymous,
    p3_login_twice_over_live_token,
    p3_rotate_with_grace,
    p3_rotate_zero_grace,
    p3_logout,
    p3_logout_everywhere,
    p3_login_then_logout,
    p3_login_then_rotate,
    p3_renewed_login_over_own_token,
    p3_renewed_rotate_with_grace,
    p3_renewed_rotate_zero_grace,
    p3_renewed_logout,
    p3_renewed_logout_everywhere,
    p9_host_prefix_resists_planted_cookie,
    p9_plain_name_is_logged_out_by_planted_cookie,
);

const GRACE: Duration = Duration::seconds(10);

// ---------------------------------------------------------------- the store under test

/// Raw access to what the store holds, bypassing the hook.
enum Raw {
    Memory(MemoryStore),
    #[cfg(feature = "mongodb")]
    Mongo(slates::mongodb::Database),
}

/// One test function's access to its backend: the memory store, or one driver client for
/// every fresh database the test makes.
struct Ctx {
    backend: Backend,
    /// Names the MongoDB databases.
    #[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
    test: String,
    #[cfg(feature = "mongodb")]
    client: Option<slates::mongodb::Client>,
}

impl Ctx {
    /// `None`: the backend is not available here (the harness has said so loudly).
    async fn new(backend: Backend, test: &str) -> Option<Ctx> {
        #[cfg(feature = "mongodb")]
        let client = match backend {
            Backend::Memory => None,
            Backend::Mongo(_) => {
                let options = common::mongo::client_options().await?;
                Some(slates::mongodb::Client::with_options(options).expect("a test client"))
            }
        };
        Some(Ctx {
            backend,
            test: test.to_owned(),
            #[cfg(feature = "mongodb")]
            client,
        })
    }

    /// A fresh, empty, unprepared store (its own database for MongoDB, named after the test
    /// and `run`), wrapped in `Hooked`, built with a manual clock, plain-http
    /// cookies, this backend's layout and then `configure`.
    async fn fx(
        &self,
        run: &str,
        configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Result<Fx, Error> {
        let (inner, raw): (Arc<dyn Store>, Raw) = match self.backend {
            Backend::Memory => {
                let m = MemoryStore::new();
                (Arc::new(m.clone()), Raw::Memory(m))
            }
            #[cfg(feature = "mongodb")]
            Backend::Mongo(_) => {
                let client = self.client.as_ref().expect("a client for MongoDB");
                let name = common::mongo::database_name(&format!("{}::{run}", self.test));
                let db = client.database(&name);
                db.drop().await.expect("drop the test database");
                (
                    Arc::new(slates::MongoStore::from_database(db.clone())),
                    Raw::Mongo(db),
                )
            }
        };
        let _ = run;
        let hooked = Hooked::new(Arc::clone(&inner));
        let clock = ManualClock::new();
        let builder = Engine::builder_shared(hooked.store())
            .layout(self.backend.layout())
            .clock(clock.clone())
            .secure(false);
        let slates = configure(builder).build().await?;
        Ok(Fx {
            slates,
            clock,
            hooked,
            inner,
            raw,
        })
    }
}

/// One built slates system on a fresh store.
struct Fx {
    slates: Engine,
    clock: ManualClock,
    hooked: Hooked,
    /// The store itself, under the hook: what the checks read.
    inner: Arc<dyn Store>,
    raw: Raw,
}

impl Fx {
    fn cookie_name(&self) -> String {
        self.slates.config().cookie.name.clone()
    }

    fn client(&self) -> Client {
        let mut c = Client::new(app(&self.slates));
        c.cookie_name = self.cookie_name();
        c
    }

    async fn logged_in(&self, name: &str) -> Client {
        let mut c = self.client();
        let r = c.post_form("/login", &format!("username={name}")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "login {name}: {}", r.body);
        assert!(c.cookie.is_some(), "login {name} set no cookie");
        c
    }

    /// Drops this run's database (MongoDB): a scenario makes one per run, which would pile
    /// up on a reused server. A failed run leaves its database for inspection.
    async fn clean_up(&self) {
        #[cfg(feature = "mongodb")]
        if let Raw::Mongo(db) = &self.raw {
            db.drop().await.expect("drop the run's database");
        }
    }

    /// Every token record the store holds, expired ones included, by hex hash.
    async fn all_hashes(&self) -> Vec<TokenHash> {
        match &self.raw {
            Raw::Memory(m) => m.dump_tokens().into_iter().map(|t| t.hash).collect(),
            #[cfg(feature = "mongodb")]
            Raw::Mongo(db) => {
                let auth = &self.slates.config().store.auth_collection;
                let mut cursor = db
                    .collection::<bson::Document>(auth)
                    .find(bson::doc! {})
                    .await
                    .expect("read _auth");
                let mut out = Vec::new();
                while cursor.advance().await.expect("read _auth") {
                    let doc = cursor.deserialize_current().expect("an _auth document");
                    let id = doc.get_str("_id").expect("a string _id");
                    out.push(TokenHash::from_hex(id).expect("a hex _id"));
                }
                out
            }
        }
    }

    /// The record of `hash` if it is live now, read from the store itself (not the hook).
    async fn live_record(&self, hash: &TokenHash) -> Option<TokenRecord> {
        self.inner
            .find_token(hash, self.clock.now())
            .await
            .expect("read the store")
    }

    /// Every live token, by hex hash.
    async fn live(&self) -> BTreeMap<String, TokenRecord> {
        let mut out = BTreeMap::new();
        for h in self.all_hashes().await {
            if let Some(r) = self.live_record(&h).await {
                out.insert(h.to_hex(), r);
            }
        }
        out
    }
}

fn hash_of(cookie: &str) -> TokenHash {
    Token::parse(cookie).expect("a well-formed token").hash()
}

fn hex_of(cookie: &Option<String>) -> Option<String> {
    cookie.as_deref().map(|c| hash_of(c).to_hex())
}

fn short(hex: &str) -> &str {
    &hex[..8]
}

/// The `Set-Cookie` values of `reply` for `name`, parsed.
fn cookies_named(reply: &Reply, name: &str) -> Vec<cookie::Cookie<'static>> {
    reply
        .set_cookies()
        .into_iter()
        .map(|s| cookie::Cookie::parse(s).expect("a parsable Set-Cookie"))
        .filter(|c| c.name() == name)
        .collect()
}

/// The token values `reply` hands out for `name` (removal cookies left out).
fn handed_out(reply: &Reply, name: &str) -> Vec<String> {
    cookies_named(reply, name)
        .into_iter()
        .filter(|c| !c.value().is_empty() && c.max_age() != Some(Duration::ZERO))
        .map(|c| c.value().to_owned())
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

/// Two logins in one handler: the second must delete the token the first issued.
async fn login_twice(auth: Auth, Form(f): Form<LoginForm>) -> Result<StatusCode, Error> {
    auth.login(&f.username).await?;
    auth.login(&f.username).await?;
    Ok(StatusCode::NO_CONTENT)
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

async fn login_then_logout(auth: Auth, Form(f): Form<LoginForm>) -> Result<StatusCode, Error> {
    auth.login(&f.username).await?;
    auth.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn login_then_rotate(auth: Auth, Form(f): Form<LoginForm>) -> Result<StatusCode, Error> {
    auth.login(&f.username).await?;
    auth.rotate().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn app(slates: &Engine) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/login-twice", post(login_twice))
        .route("/maybe", get(maybe))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/rotate", post(rotate))
        .route("/login-then-logout", post(login_then_logout))
        .route("/login-then-rotate", post(login_then_rotate))
        .layer(slates.layer())
}

// ---------------------------------------------------------------- point 3: the runner

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `login("ada")` on an anonymous request.
    LoginAnonymous,
    /// `login("ada")` on a request logged in as ada.
    LoginOverOwn,
    /// `login("bob")` on a request logged in as ada.
    LoginOverOther,
    /// `login("ada")` twice in one handler, on an anonymous request.
    LoginTwiceAnonymous,
    /// `login("ada")` twice in one handler, on a request logged in as ada.
    LoginTwiceOverLive,
    /// `rotate()` with the default 10 s grace.
    RotateGrace,
    /// `rotate()` with a zero grace (the old token is deleted).
    RotateZero,
    Logout,
    LogoutEverywhere,
    /// `login("ada")` then `logout()` in one handler, on an anonymous request.
    LoginThenLogout,
    /// `login("ada")` then `rotate()` (default grace) in one handler, on an anonymous request.
    LoginThenRotate,
}

impl Op {
    fn logged_in(self) -> bool {
        !matches!(
            self,
            Op::LoginAnonymous
                | Op::LoginTwiceAnonymous
                | Op::LoginThenLogout
                | Op::LoginThenRotate
        )
    }

    /// Whether the operation retires a token with a grace (it may then stay live, rotated,
    /// held by no browser, until the grace ends).
    fn retires(self) -> bool {
        matches!(self, Op::RotateGrace | Op::LoginThenRotate)
    }

    /// The users the browser may be logged in as after the operation, whole or failed.
    fn users(self) -> &'static [&'static str] {
        if self == Op::LoginOverOther {
            &["ada", "bob"]
        } else {
            &["ada"]
        }
    }

    fn grace(self) -> Duration {
        if self == Op::RotateZero {
            Duration::ZERO
        } else {
            GRACE
        }
    }

    /// The user a successful operation leaves the browser logged in as.
    fn target(self) -> Option<&'static str> {
        match self {
            Op::LoginOverOther => Some("bob"),
            Op::Logout | Op::LogoutEverywhere | Op::LoginThenLogout => None,
            _ => Some("ada"),
        }
    }

    async fn send(self, c: &mut Client) -> Reply {
        match self {
            Op::LoginAnonymous | Op::LoginOverOwn => c.post_form("/login", "username=ada").await,
            Op::LoginOverOther => c.post_form("/login", "username=bob").await,
            Op::LoginTwiceAnonymous | Op::LoginTwiceOverLive => {
                c.post_form("/login-twice", "username=ada").await
            }
            Op::RotateGrace | Op::RotateZero => c.post("/rotate").await,
            Op::Logout => c.post("/logout").await,
            Op::LogoutEverywhere => c.post("/logout-everywhere").await,
            Op::LoginThenLogout => c.post_form("/login-then-logout", "username=ada").await,
            Op::LoginThenRotate => c.post_form("/login-then-rotate", "username=ada").await,
        }
    }
}

/// What a run's response must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The operation did what it says (no fault, or only the optional renewal failed).
    Success,
    /// The layer's token lookup or user slate load failed: its 503, the handler never ran.
    LayerUnavailable,
    /// A step of the operation failed: the handler's 503.
    HandlerUnavailable,
}

/// Runs `op` (after the layer renewed the token, with `renewed`) once without a fault, then
/// once per (step, phase) with exactly that store call failed, each on a fresh store.
async fn fault_every_step(backend: Backend, test: &str, op: Op, renewed: bool) {
    let Some(ctx) = Ctx::new(backend, test).await else {
        return;
    };
    let ctx = Arc::new(ctx);
    let calls = run(&ctx, op, renewed, None).await;
    assert!(!calls.is_empty(), "{op:?}: the request made no store call");
    let k = calls.len() as u64;
    // Every (step, phase) runs even after one broke the guarantee, so that a failure lists
    // all the broken runs at once.
    let mut broken = Vec::new();
    for step in 0..k {
        for phase in [Phase::Before, Phase::After] {
            let (c, base) = (Arc::clone(&ctx), calls.clone());
            let fault = Some((step, phase, calls[step as usize]));
            let one = tokio::spawn(async move {
                let faulted = run(&c, op, renewed, fault).await;
                assert_eq!(
                    faulted.get(..=step as usize),
                    base.get(..=step as usize),
                    "{op:?}: the faulted run made other calls up to the failed one"
                );
            });
            if let Err(e) = one.await {
                let e = e.into_panic();
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                broken.push(msg.lines().next().unwrap_or_default().to_owned());
            }
        }
    }
    let what = format!("{op:?}{}", if renewed { " (renewed)" } else { "" });
    crate::say!(
        "{test}: {what}: K = {k} store calls {calls:?}; {} faulted runs, {} broken",
        2 * k,
        broken.len()
    );
    assert!(
        broken.is_empty(),
        "{what}: {} of {} faulted runs broke the guarantee:\n  {}",
        broken.len(),
        2 * k,
        broken.join("\n  ")
    );
}

/// One run on a fresh store: ada on a second device and bob are logged in as bystanders;
/// the browser under test is logged in as ada unless the operation starts anonymous. Returns
/// the store calls the request made.
async fn run(ctx: &Ctx, op: Op, renewed: bool, fault: Option<(u64, Phase, Call)>) -> Vec<Call> {
    let tag = match fault {
        None => "nofault".to_owned(),
        Some((n, p, _)) => format!("{n}{p:?}"),
    };
    let what = format!(
        "{op:?}{} with {}",
        if renewed { " (renewed)" } else { "" },
        match fault {
            None => "no fault".to_owned(),
            Some((n, p, c)) => format!("call {n} ({c:?}) failed {p:?}"),
        }
    );
    let fx = ctx
        .fx(&tag, |b| b.rotation_grace(op.grace()))
        .await
        .expect("build slates");
    let name = fx.cookie_name();
    let mut phone = fx.logged_in("ada").await;
    let mut bob = fx.logged_in("bob").await;
    let mut me = if op.logged_in() {
        fx.logged_in("ada").await
    } else {
        fx.client()
    };
    if renewed {
        // Past half the idle timeout: the layer renews the token on this request, so its
        // own cookie change (a renewed `Set-Cookie`) is pending when the operation runs.
        fx.clock.advance(Duration::days(4));
    }
    let original = hex_of(&me.cookie);
    let before = fx.live().await;
    assert_eq!(
        before.len(),
        2 + usize::from(op.logged_in()),
        "{what}: set-up"
    );

    fx.hooked.clear_calls();
    if let Some((n, p, _)) = fault {
        fx.hooked.fail_call(n, p);
    }
    let reply = op.send(&mut me).await;
    fx.hooked.set_hook(hooked::pass());
    let calls = fx.hooked.calls();
    let now = fx.clock.now();

    if let Some((n, _, c)) = fault {
        assert_eq!(
            calls.get(n as usize),
            Some(&c),
            "{what}: the failed call was not made: {calls:?}"
        );
    }
    let expect = match fault {
        None => Expect::Success,
        // Best-effort steps of the layer: a failed renewal or last-seen write serves the
        // request all the same.
        Some((_, _, Call::RenewToken | Call::TouchToken)) => Expect::Success,
        Some((_, _, Call::FindToken | Call::GetSlate)) => Expect::LayerUnavailable,
        Some(_) => Expect::HandlerUnavailable,
    };

    // Every token handed out is live right after.
    let handed = handed_out(&reply, &name);
    assert!(handed.len() <= 1, "{what}: several tokens: {handed:?}");
    for value in &handed {
        let hex = hash_of(value).to_hex();
        assert!(
            fx.live_record(&hash_of(value)).await.is_some(),
            "{what}: Set-Cookie hands out token {} which is not live",
            short(&hex)
        );
    }

    // No extra live token.
    let after = fx.live().await;
    let held: Vec<Option<String>> = vec![
        hex_of(&me.cookie),
        hex_of(&phone.cookie),
        hex_of(&bob.cookie),
    ];
    for (hex, record) in &after {
        if held.iter().any(|h| h.as_deref() == Some(hex)) {
            continue;
        }
        let of_request = Some(hex) == original.as_ref() || !before.contains_key(hex);
        let retired_in_grace =
            of_request && op.retires() && record.rotated.is_some() && record.expires <= now + GRACE;
        assert!(
            retired_in_grace,
            "{what}: live token {} of {} is held by no browser ({record:?}); before: {:?}, \
             after: {:?}, browser: {:?}",
            short(hex),
            record.user,
            before.keys().map(|h| short(h)).collect::<Vec<_>>(),
            after.keys().map(|h| short(h)).collect::<Vec<_>>(),
            me.cookie
                .as_deref()
                .map(|c| short_owned(&hash_of(c).to_hex())),
        );
    }

    // Bystanders.
    let bob_hex = hex_of(&bob.cookie).unwrap();
    assert!(after.contains_key(&bob_hex), "{what}: bob's token died");
    let phone_hex = hex_of(&phone.cookie).unwrap();
    if op == Op::LogoutEverywhere {
        // One store operation: ada's tokens all live or all gone.
        let original = original.clone().unwrap();
        assert_eq!(
            after.contains_key(&phone_hex),
            after.contains_key(&original),
            "{what}: logout everywhere was applied to some of ada's tokens only"
        );
    } else {
        assert!(
            after.contains_key(&phone_hex),
            "{what}: ada's phone token died"
        );
    }

    // The browser under test is coherent.
    let mine = hex_of(&me.cookie);
    let new: Vec<&String> = after.keys().filter(|h| !before.contains_key(*h)).collect();
    match &mine {
        Some(hex) if after.contains_key(hex) => {
            let user = after[hex].user.as_str();
            assert!(
                op.users().contains(&user),
                "{what}: the browser holds a live token of {user}"
            );
        }
        Some(hex) => {
            // A dead cookie: acceptable only if no token of this request lives.
            assert!(
                new.is_empty() && original.as_ref().is_none_or(|o| !after.contains_key(o)),
                "{what}: the browser holds dead token {} while a token of the request lives \
                 (new: {:?})",
                short(hex),
                new.iter().map(|h| short(h)).collect::<Vec<_>>()
            );
        }
        None => {}
    }

    // The response (checked after the state, so that a broken guarantee is reported as
    // such rather than as a mere status).
    match expect {
        Expect::Success => {
            let ok = if op == Op::LogoutEverywhere {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            };
            assert_eq!(
                reply.status, ok,
                "{what}: the operation failed: {}",
                reply.body
            );
        }
        Expect::LayerUnavailable | Expect::HandlerUnavailable => {
            assert_eq!(
                reply.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{what}: a store step failed, yet the handler got no error: {}",
                reply.body
            );
            assert!(
                reply.headers.contains_key("retry-after"),
                "{what}: a 503 without Retry-After"
            );
        }
    }
    if expect == Expect::LayerUnavailable {
        assert!(
            reply.set_cookies().is_empty(),
            "{what}: the layer's 503 changed the cookie: {:?}",
            reply.set_cookies()
        );
    }

    // What the operation did.
    if expect == Expect::Success {
        check_success(
            &fx,
            op,
            &what,
            &reply,
            &me,
            original.as_deref(),
            &before,
            &after,
        )
        .await;
    } else if expect == Expect::LayerUnavailable {
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "{what}: tokens changed although the handler never ran"
        );
        assert_eq!(
            hex_of(&me.cookie),
            original,
            "{what}: the browser's cookie changed"
        );
    }

    // A follow-up request (no fault) sees what the store says.
    let expected_user = match &mine {
        Some(hex) => after
            .get(hex)
            .map(|r| r.user.as_str().to_owned())
            .unwrap_or_else(|| "anonymous".into()),
        None => "anonymous".into(),
    };
    let r = me.get("/maybe").await;
    assert_eq!(r.status, StatusCode::OK, "{what}: follow-up");
    assert_eq!(r.body, expected_user, "{what}: follow-up");
    // The bystanders' own requests still work as expected.
    let r = bob.get("/maybe").await;
    assert_eq!(r.body, "bob", "{what}: bob after");
    let r = phone.get("/maybe").await;
    let phone_user = if after.contains_key(&phone_hex) {
        "ada"
    } else {
        "anonymous"
    };
    assert_eq!(r.body, phone_user, "{what}: ada's phone after");

    if op.retires() {
        // A retired token dies when its grace ends.
        fx.clock.advance(GRACE);
        for (hex, r) in after.iter().filter(|(_, r)| r.rotated.is_some()) {
            let record = fx.live_record(&TokenHash::from_hex(hex).unwrap()).await;
            assert!(
                record.is_none(),
                "{what}: retired token outlived its grace: {r:?}"
            );
        }
    }
    fx.clean_up().await;
    calls
}

fn short_owned(hex: &str) -> String {
    hex[..8].to_owned()
}

/// The operation did what it says.
#[allow(clippy::too_many_arguments)]
async fn check_success(
    fx: &Fx,
    op: Op,
    what: &str,
    reply: &Reply,
    me: &Client,
    original: Option<&str>,
    before: &BTreeMap<String, TokenRecord>,
    after: &BTreeMap<String, TokenRecord>,
) {
    let now = fx.clock.now();
    let mine = hex_of(&me.cookie);
    let new: Vec<&String> = after.keys().filter(|h| !before.contains_key(*h)).collect();
    let gone: Vec<&String> = before.keys().filter(|h| !after.contains_key(*h)).collect();
    match op.target() {
        Some(user) => {
            // A new token, live, of the target user, held by the browser; the only new one.
            let mine = mine.unwrap_or_else(|| panic!("{what}: no cookie after success"));
            let (retired, new): (Vec<&String>, Vec<&String>) =
                new.into_iter().partition(|h| after[*h].rotated.is_some());
            assert_eq!(
                new,
                vec![&mine],
                "{what}: exactly the browser's new token is new"
            );
            if op == Op::LoginThenRotate {
                // The token the login issued, retired by the rotation, in its grace.
                assert_eq!(retired.len(), 1, "{what}: the login's token, retired");
                assert_eq!(after[retired[0]].expires, now + GRACE, "{what}");
            } else {
                assert!(retired.is_empty(), "{what}: a new token is retired");
            }
            assert_ne!(
                Some(mine.as_str()),
                original,
                "{what}: the token was not replaced"
            );
            let record = &after[&mine];
            assert_eq!(record.user.as_str(), user, "{what}");
            assert_eq!(record.rotated, None, "{what}");
            // A login starts a new login; a rotation continues the one it replaces (its
            // absolute lifetime still counts from that login).
            let created = match (op, original) {
                (Op::RotateGrace | Op::RotateZero, Some(o)) => before[o].created,
                _ => now,
            };
            assert_eq!(record.created, created, "{what}: created");
            let config = fx.slates.config();
            let expires = (now + config.idle_timeout).min(created + config.absolute_lifetime);
            assert_eq!(record.expires, expires, "{what}: expires");
            let set = cookies_named(reply, &fx.cookie_name());
            assert_eq!(set.len(), 1, "{what}: one Set-Cookie");
            assert_eq!(set[0].max_age(), Some(expires - now), "{what}: Max-Age");
            match (op, original) {
                (Op::RotateGrace, Some(o)) => {
                    assert!(
                        gone.is_empty(),
                        "{what}: the old token must live out its grace"
                    );
                    let old = &after[o];
                    assert_eq!(old.rotated, Some(now), "{what}: old token marked rotated");
                    assert_eq!(old.expires, now + GRACE, "{what}: old token's grace");
                }
                (_, Some(o)) => {
                    assert_eq!(
                        gone,
                        vec![o],
                        "{what}: the previous token, and only it, is gone"
                    );
                }
                (_, None) => assert!(gone.is_empty(), "{what}: a token died"),
            }
        }
        None => {
            assert!(me.cookie.is_none(), "{what}: still a cookie");
            let set = cookies_named(reply, &fx.cookie_name());
            assert!(
                set.len() == 1 && set[0].value().is_empty(),
                "{what}: a removal cookie: {set:?}"
            );
            assert!(new.is_empty(), "{what}: new tokens");
            if op == Op::LoginThenLogout {
                assert!(gone.is_empty(), "{what}: a token died");
                return;
            }
            let o = original.expect("logged in");
            if op == Op::Logout {
                assert_eq!(gone, vec![o], "{what}");
            } else {
                // ada's browser and phone; bob's token stays.
                assert_eq!(gone.len(), 2, "{what}");
                assert!(
                    gone.iter().all(|h| before[*h].user.as_str() == "ada"),
                    "{what}"
                );
                assert_eq!(reply.body, "2", "{what}: deleted count");
            }
        }
    }
}

// ---------------------------------------------------------------- point 3: the scenarios

async fn p3_login_anonymous(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LoginAnonymous, false).await;
}

async fn p3_login_over_own_token(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LoginOverOwn, false).await;
}

async fn p3_login_over_other_users_token(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LoginOverOther, false).await;
}

async fn p3_login_twice_anonymous(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LoginTwiceAnonymous, false).await;
}

async fn p3_login_twice_over_live_token(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LoginTwiceOverLive, false).await;
}

async fn p3_rotate_with_grace(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::RotateGrace, false).await;
}

async fn p3_rotate_zero_grace(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::RotateZero, false).await;
}

async fn p3_logout(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::Logout, false).await;
}

async fn p3_logout_everywhere(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LogoutEverywhere, false).await;
}

async fn p3_login_then_logout(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LoginThenLogout, false).await;
}

async fn p3_login_then_rotate(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LoginThenRotate, false).await;
}

// The same operations on a request whose token the layer renews first: the layer's renewed
// `Set-Cookie` is pending when the operation runs, and a failed operation must not let it
// hand out a token the operation may have deleted.

async fn p3_renewed_login_over_own_token(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LoginOverOwn, true).await;
}

async fn p3_renewed_rotate_with_grace(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::RotateGrace, true).await;
}

async fn p3_renewed_rotate_zero_grace(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::RotateZero, true).await;
}

async fn p3_renewed_logout(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::Logout, true).await;
}

async fn p3_renewed_logout_everywhere(backend: Backend, test: &str) {
    fault_every_step(backend, test, Op::LogoutEverywhere, true).await;
}

/// The fixture itself: through `Hooked`, a call failed `Before` is not applied and a call
/// failed `After` is (a lost reply), on every backend (the memory store works when a method
/// is called, not when its future is polled). Without this the two phases of the runs above
/// could be the same run twice.
async fn fixture_before_means_not_applied(backend: Backend, test: &str) {
    let Some(ctx) = Ctx::new(backend, test).await else {
        return;
    };
    let fx = ctx.fx("fixture", |b| b).await.expect("build slates");
    let now = fx.clock.now();
    for (phase, applied) in [(Phase::Before, false), (Phase::After, true)] {
        let token = Token::generate().unwrap();
        let record = TokenRecord {
            hash: token.hash(),
            user: Username::new("ada").unwrap(),
            created: now,
            expires: now + Duration::hours(1),
            renewed: None,
            rotated: None,
            device: Some(slates::DeviceId::generate().unwrap()),
            last_seen: now,
            label: String::new(),
            ip: None,
        };
        fx.hooked.clear_calls();
        fx.hooked.fail_call(0, phase);
        let hooked = fx.hooked.store();
        let r = hooked.insert_token(&record).await;
        assert!(matches!(r, Err(Error::Unavailable(_))), "{phase:?}: {r:?}");
        fx.hooked.set_hook(hooked::pass());
        assert_eq!(
            fx.live_record(&token.hash()).await.is_some(),
            applied,
            "{phase:?}: insert applied?"
        );
        fx.hooked.fail_call(0, phase);
        let r = hooked.delete_token(&token.hash()).await;
        assert!(matches!(r, Err(Error::Unavailable(_))), "{phase:?}: {r:?}");
        fx.hooked.set_hook(hooked::pass());
        if applied {
            assert!(
                fx.live_record(&token.hash()).await.is_none(),
                "After: delete applied"
            );
        }
    }
}

// ---------------------------------------------------------------- point 9: planted cookies

/// A request to `/maybe` with exactly this `Cookie` header.
async fn maybe_with(fx: &Fx, cookie_header: &str) -> Reply {
    let req = http::Request::get("/maybe")
        .header("cookie", cookie_header)
        .body(axum::body::Body::empty())
        .unwrap();
    use tower::ServiceExt as _;
    common::harness::read(app(&fx.slates).oneshot(req).await.unwrap()).await
}

/// Point 9: with `Secure` on (the default), the cookie is `__Host-slates`: `Secure`,
/// `Path=/`, no `Domain`. A sibling subdomain can set `slates` with `Domain=<parent>` (the
/// browser then sends it to this host too) but not `__Host-slates`, which the browser
/// refuses with a `Domain`; so the planted cookie is another name, ignored: the user stays
/// logged in, and the attacker's own live token is not adopted.
async fn p9_host_prefix_resists_planted_cookie(backend: Backend, test: &str) {
    let Some(ctx) = Ctx::new(backend, test).await else {
        return;
    };
    let fx = ctx
        .fx("host", |b| b.secure(true))
        .await
        .expect("build slates");
    let mut ada = fx.client();
    let login = ada.post_form("/login", "username=ada").await;
    assert_eq!(login.status, StatusCode::NO_CONTENT, "{}", login.body);
    let real = ada.cookie.clone().expect("a cookie");

    // What the browser sends once a sibling subdomain has planted `slates`: the real token
    // under `__Host-slates`, and the planted value. The planted value is the attacker's own
    // live token, or a well-formed token nobody was issued.
    let mallory = fx.logged_in("mallory").await.cookie.unwrap();
    let random = Token::generate().unwrap().encode();
    for planted in [&mallory, &random] {
        for header in [
            format!("__Host-slates={real}; slates={planted}"),
            format!("slates={planted}; __Host-slates={real}"),
        ] {
            let r = maybe_with(&fx, &header).await;
            assert_eq!(r.status, StatusCode::OK, "{header}");
            assert_eq!(
                r.body, "ada",
                "a planted `slates` cookie changed the user: {header}"
            );
            assert!(
                r.set_cookies().is_empty(),
                "a planted cookie made the response touch the real one: {:?}",
                r.set_cookies()
            );
        }
        // Alone, a planted `slates` cookie logs nobody in.
        let r = maybe_with(&fx, &format!("slates={planted}")).await;
        assert_eq!(r.body, "anonymous", "a planted `slates` cookie was adopted");
    }

    // The default name and the attributes the browser requires of it.
    assert_eq!(fx.cookie_name(), "__Host-slates");
    let set = cookies_named(&login, "__Host-slates");
    assert_eq!(set.len(), 1, "{:?}", login.set_cookies());
    let c = &set[0];
    assert_eq!(c.secure(), Some(true), "Secure: {c}");
    assert_eq!(c.path(), Some("/"), "Path=/: {c}");
    assert_eq!(c.domain(), None, "no Domain: {c}");
    assert_eq!(c.http_only(), Some(true), "HttpOnly: {c}");
    // The real cookie still works on its own afterwards.
    assert_eq!(ada.get("/maybe").await.body, "ada");
}

/// The contrast (point 9): with the old default name `slates`, the same planted second
/// value makes the request ambiguous: it is served anonymous and the response removes the
/// cookie, which logs the user out. (`Secure` is on here too: it does not help.)
async fn p9_plain_name_is_logged_out_by_planted_cookie(backend: Backend, test: &str) {
    let Some(ctx) = Ctx::new(backend, test).await else {
        return;
    };
    let fx = ctx
        .fx("plain", |b| b.secure(true).cookie_name("slates"))
        .await
        .expect("build slates");
    assert_eq!(fx.cookie_name(), "slates");
    let mut ada = fx.logged_in("ada").await;
    let real = ada.cookie.clone().unwrap();
    let mallory = fx.logged_in("mallory").await.cookie.unwrap();
    let random = Token::generate().unwrap().encode();
    assert_eq!(maybe_with(&fx, &format!("slates={real}")).await.body, "ada");
    for planted in [&mallory, &random] {
        for header in [
            format!("slates={real}; slates={planted}"),
            format!("slates={planted}; slates={real}"),
        ] {
            let r = maybe_with(&fx, &header).await;
            assert_eq!(r.body, "anonymous", "{header}");
            let set = cookies_named(&r, "slates");
            assert!(
                set.len() == 1 && set[0].value().is_empty(),
                "the response removes the cookie: {set:?}"
            );
        }
    }
    // ada's token itself is still live: it is the ambiguity that logs her out.
    assert_eq!(ada.get("/maybe").await.body, "ada");
}

/// `build` refuses a `__Host-` cookie the browser would reject (with a `Domain`, with a
/// `Path` other than `/`, or without `Secure`), and the default name falls back to
/// `slates` whenever `__Host-` is not possible.
#[tokio::test]
async fn p9_build_checks_the_host_prefix() {
    let build = |f: fn(EngineBuilder) -> EngineBuilder| async move {
        f(Engine::builder(MemoryStore::new()).clock(ManualClock::new()))
            .build()
            .await
    };
    for (what, f) in [
        (
            "with a Domain",
            (|b| b.cookie_name("__Host-slates").cookie_domain("example.com"))
                as fn(EngineBuilder) -> EngineBuilder,
        ),
        ("with Path=/app", |b| {
            b.cookie_name("__Host-slates").cookie_path("/app")
        }),
        ("without Secure", |b| {
            b.cookie_name("__Host-slates").secure(false)
        }),
        ("custom __Host- name with a Domain", |b| {
            b.cookie_name("__Host-app").cookie_domain("example.com")
        }),
    ] {
        let r = build(f).await;
        assert!(matches!(r, Err(Error::Config(_))), "{what}: {:?}", r.err());
    }
    for (f, name) in [
        (
            (|b| b) as fn(EngineBuilder) -> EngineBuilder,
            "__Host-slates",
        ),
        (|b| b.secure(false), "slates"),
        (|b| b.cookie_domain("example.com"), "slates"),
        (|b| b.cookie_path("/app"), "slates"),
        (|b| b.cookie_name("__Host-slates"), "__Host-slates"),
    ] {
        let slates = build(f).await.expect("build");
        assert_eq!(slates.config().cookie.name, name);
    }
}
