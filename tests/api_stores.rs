//! Issue 11, structure point 8, through the public API: one store trait per concern (tokens
//! and slates in different stores, each touched only by its own concern), and decorators
//! that compose (`Intercepted` with `Faults` on any store, on an `Arc<dyn Store>`, one
//! around another, one per concern).
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::Router;
use bson::doc;
use common::harness::Client;
use common::Backend;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use slates::store::{Call, CallKind, Faults, Intercept, Intercepted, StoreFuture};
use slates::store::{SlateStore as _, TokenStore as _};
use slates::{
    CurrentUser, Engine, Error, ManualClock, MemoryStore, Store, TokenHash, UserSlates, Workflow,
};
use time::Duration;

// ---------------------------------------------------------------- the app

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Import {
    ids: Vec<i64>,
}

const IMPORT: Workflow<Import> = Workflow::new("import").expires_after(Duration::minutes(20));

async fn h_me(user: CurrentUser) -> Result<String, Error> {
    let name = user.profile::<Profile>().await?.map(|p| p.name);
    Ok(format!("{} {}", user.username(), name.unwrap_or_default()))
}

async fn h_name(slates: UserSlates, body: String) -> Result<StatusCode, Error> {
    slates
        .profile_slate::<Profile>()
        .put(&Profile { name: body })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn h_add(slates: UserSlates, body: String) -> Result<String, Error> {
    let import = slates.workflow(&IMPORT);
    import.push("ids", body.parse::<i64>().unwrap()).await?;
    Ok(format!("{:?}", import.get().await?.unwrap_or_default().ids))
}

/// Login, logout and friends from the shared suite, plus a profile and a workflow.
fn app(engine: &Engine) -> Router {
    common::suite::test_app(engine).merge(
        Router::new()
            .route("/whoami", get(h_me))
            .route("/name", post(h_name))
            .route("/import", post(h_add))
            .layer(engine.layer()),
    )
}

fn client(engine: &Engine) -> Client {
    let mut c = Client::new(app(engine));
    c.cookie_name = engine.config().cookie.name.clone();
    c
}

async fn post_body(c: &mut Client, path: &str, body: &str) -> common::harness::Reply {
    c.send(
        http::Request::post(path)
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap(),
    )
    .await
}

/// Logs `user` in, names them, adds two ids to the import workflow, and checks what the
/// pages say.
async fn login_profile_workflow(c: &mut Client, user: &str) {
    let r = c.post_form("/login", &format!("username={user}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(post_body(c, "/name", "Ada L.").await.status, 204);
    assert_eq!(post_body(c, "/import", "3").await.body, "[3]");
    assert_eq!(post_body(c, "/import", "4").await.body, "[3, 4]");
    let r = c.get("/whoami").await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::OK, format!("{user} Ada L."))
    );
}

// ---------------------------------------------------------------- split stores

/// Tokens in one memory store, slates in another: each store holds only its concern, the
/// whole flow works, and the admin operations touch only the store they are about.
#[tokio::test]
async fn split_stores_keep_to_their_concern() {
    let tokens = Arc::new(MemoryStore::new());
    let slates = Arc::new(MemoryStore::new());
    let engine = Engine::builder_split(tokens.clone(), slates.clone())
        .secure(false)
        .build()
        .await
        .unwrap();
    let mut c = client(&engine);
    login_profile_workflow(&mut c, "ada").await;
    let mut other = client(&engine);
    login_profile_workflow(&mut other, "bob").await;

    let users = |dump: Vec<(slates::Username, slates::SlateName, _)>| {
        let mut names: Vec<String> = dump
            .into_iter()
            .map(|(u, s, _)| format!("{}/{}", u.as_str(), s.as_str()))
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        tokens.dump_tokens().len(),
        2,
        "both logins in the token store"
    );
    assert_eq!(
        users(tokens.dump_slates()),
        Vec::<String>::new(),
        "no slate there"
    );
    assert_eq!(slates.dump_tokens(), [], "no token in the slate store");
    assert_eq!(
        users(slates.dump_slates()),
        ["ada/import", "ada/user", "bob/import", "bob/user"]
    );
    // Log out everywhere: the token store only; the user's data stays.
    assert_eq!(engine.logout_user("ada").await.unwrap(), 1);
    assert_eq!(tokens.dump_tokens().len(), 1);
    assert_eq!(slates.dump_slates().len(), 4);
    assert_eq!(c.get("/whoami").await.status, StatusCode::UNAUTHORIZED);
    // Delete the user's slates: the slate store only; bob is still logged in.
    engine
        .user_slates("bob")
        .unwrap()
        .delete_all()
        .await
        .unwrap();
    assert_eq!(users(slates.dump_slates()), ["ada/import", "ada/user"]);
    assert_eq!(tokens.dump_tokens().len(), 1);
    assert_eq!(other.get("/whoami").await.body, "bob ");
}

/// Tokens in memory, slates on each backend (both MongoDB layouts): the flow works, and the
/// slate store, itself a full store, never saw a token.
async fn split_tokens_in_memory_slates_on_backend(backend: Backend, test: &str) {
    let Some(slate_store) = backend.store(test).await else {
        return;
    };
    let tokens = Arc::new(MemoryStore::new());
    let clock = ManualClock::new();
    let engine = Engine::builder_split(tokens.clone(), slate_store.clone())
        .layout(backend.layout())
        .clock(clock.clone())
        .secure(false)
        .build()
        .await
        .unwrap();
    let mut c = client(&engine);
    login_profile_workflow(&mut c, "ada").await;
    let issued = tokens.dump_tokens();
    assert_eq!(issued.len(), 1);
    let now = engine.now();
    // The engine prepared only the slate side of this store: prepare the token side to ask
    // it (an unprepared `MongoStore` refuses token calls).
    let options = &engine.config().store;
    slate_store.prepare_tokens(options).await.unwrap();
    for record in &issued {
        let hash: &TokenHash = &record.hash;
        let found = slate_store.find_token(hash, now).await.unwrap();
        assert_eq!(found, None, "the slate store holds no token");
    }
    let key = slates::store::SlateKey::new(
        slates::Username::new("ada").unwrap(),
        slates::SlateName::new("import").unwrap(),
    );
    let import = slate_store.get_slate(&key, now).await.unwrap().unwrap();
    assert_eq!(import.expires, Some(now + Duration::minutes(20)));
}

per_backend!(split_tokens_in_memory_slates_on_backend);

/// A decorator on one concern only: an outage of the token store fails what needs a token
/// (503 on a request with a cookie) while slates still work outside requests; an outage of
/// the slate store fails what needs a slate, and login still works.
#[tokio::test]
async fn a_decorator_per_concern() {
    let token_faults = Faults::new();
    let slate_faults = Faults::new();
    let tokens = Arc::new(MemoryStore::new());
    let slates = Arc::new(MemoryStore::new());
    let engine = Engine::builder_split(
        Arc::new(Intercepted::new(tokens.clone(), token_faults.clone())),
        Arc::new(Intercepted::new(slates.clone(), slate_faults.clone())),
    )
    .secure(false)
    .build()
    .await
    .unwrap();
    assert_eq!(
        (token_faults.calls(), slate_faults.calls()),
        (1, 1),
        "one prepare each"
    );
    let mut c = client(&engine);
    login_profile_workflow(&mut c, "ada").await;
    let (t, s) = (token_faults.calls(), slate_faults.calls());
    // A logged-in page: one token lookup, one profile read.
    assert_eq!(c.get("/whoami").await.status, StatusCode::OK);
    assert_eq!((token_faults.calls() - t, slate_faults.calls() - s), (1, 1));

    token_faults.set_available(false);
    let r = c.get("/whoami").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(c.cookie.is_some(), "an outage never drops the cookie");
    let ada = engine.user_slates("ada").unwrap();
    ada.workflow(&IMPORT).push("ids", 5).await.unwrap();
    token_faults.set_available(true);

    slate_faults.set_available(false);
    let tokens_before = tokens.dump_tokens().len();
    let mut fresh = client(&engine);
    let r = fresh.post_form("/login", "username=cy").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "login needs no slate");
    assert_eq!(tokens.dump_tokens().len(), tokens_before + 1);
    assert_eq!(
        c.get("/whoami").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let err = ada.workflow(&IMPORT).push("ids", 6).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    slate_faults.set_available(true);
    let import = ada.workflow(&IMPORT).get().await.unwrap().unwrap();
    assert_eq!(import.ids, [3, 4, 5], "the refused push changed nothing");
}

// ---------------------------------------------------------------- Faults

/// `set_available(false)`: every request that reaches the store answers 503 and the store
/// is untouched (a refused call never reaches it); `fail_next(n)` fails exactly the next n
/// calls; `calls()` counts every call seen, refused ones included, and a request that needs
/// no store costs none.
#[tokio::test]
async fn faults_refuse_without_touching_the_store() {
    let faults = Faults::new();
    let memory = Arc::new(MemoryStore::new());
    let engine = Engine::builder(Intercepted::new(memory.clone(), faults.clone()))
        .secure(false)
        .build()
        .await
        .unwrap();
    assert_eq!(faults.calls(), 2, "the two prepares");
    let mut c = client(&engine);
    login_profile_workflow(&mut c, "ada").await;
    let snapshot = || (memory.dump_tokens(), memory.dump_slates());
    let before = snapshot();

    // Anonymous requests and malformed cookies cost no store call.
    let calls = faults.calls();
    let mut anon = client(&engine);
    assert_eq!(anon.get("/maybe").await.body, "anonymous");
    anon.cookie = Some("not-a-token".into());
    assert_eq!(anon.get("/maybe").await.body, "anonymous");
    assert_eq!(faults.calls(), calls);

    faults.set_available(false);
    for (what, r) in [
        ("page", c.get("/whoami").await),
        ("optional page", c.get("/maybe").await),
        ("workflow write", post_body(&mut c, "/import", "9").await),
        ("profile write", post_body(&mut c, "/name", "Mallory").await),
        ("login", anon.post_form("/login", "username=eve").await),
        ("logout", c.post("/logout").await),
    ] {
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {}",
            r.body
        );
        assert_eq!(r.headers["retry-after"], "5", "{what}");
        assert!(
            !r.body.contains("simulated"),
            "{what}: no store text in the body"
        );
    }
    assert!(faults.calls() >= calls + 6, "refused calls are counted");
    assert_eq!(snapshot(), before, "the store is untouched");
    faults.set_available(true);
    assert_eq!(
        c.get("/whoami").await.body,
        "ada Ada L.",
        "back, still logged in"
    );

    // fail_next: exactly n calls fail, then all pass.
    let s = engine.user_slates("ada").unwrap().raw_slate("n");
    faults.fail_next(2);
    let calls = faults.calls();
    assert!(s.inc("n", 1).await.unwrap_err().is_unavailable());
    assert!(s.get_doc().await.unwrap_err().is_unavailable());
    assert_eq!(
        s.inc("n", 1).await.unwrap(),
        1,
        "the refused inc wrote nothing"
    );
    assert_eq!(s.inc("n", 1).await.unwrap(), 2);
    assert_eq!(faults.calls(), calls + 4);
    assert!(engine.stats().store_errors >= 2);
}

// ---------------------------------------------------------------- composition

/// Records every call it sees, by kind.
#[derive(Clone, Default)]
struct Record(Arc<Mutex<Vec<CallKind>>>);

impl Record {
    fn take(&self) -> Vec<CallKind> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Record {
    fn around<'a, T, F>(&'a self, call: Call<'a>, op: F) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    {
        self.0.lock().unwrap().push(call.kind());
        op()
    }
}

/// Counts the calls that come back successfully (the inner store answered).
#[derive(Clone, Default)]
struct Answered(Arc<AtomicU64>);

impl Intercept for Answered {
    fn around<'a, T, F>(&'a self, _call: Call<'a>, op: F) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    {
        Box::pin(async move {
            let out = op().await?;
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(out)
        })
    }
}

fn is_store<S: Store>(_: &S) {}
fn is_slate_store<S: slates::store::SlateStore>(_: &S) {}

/// An `Arc<dyn Store>` (what `store::open` returns) is a store, can be wrapped by
/// `Intercepted`, and two intercepts compose: the outer one runs first and a call it
/// refuses never reaches the inner one (nor the store).
#[tokio::test]
async fn intercepts_compose_over_a_shared_store() {
    let memory = Arc::new(MemoryStore::new());
    let inner = Faults::new();
    let shared: Arc<dyn Store> = Arc::new(Intercepted::new(memory.clone(), inner.clone()));
    is_store(&shared);
    let outer = Faults::new();
    let record = Record::default();
    let answered = Answered::default();
    let store = Intercepted::new(
        Intercepted::new(shared.clone(), outer.clone()),
        record.clone(),
    );
    let store = Intercepted::new(store, answered.clone());
    is_store(&store);
    is_slate_store(&store);
    let engine = Engine::builder(store).build().await.unwrap();
    assert_eq!((inner.calls(), outer.calls()), (2, 2));
    let s = engine.user_slates("ada").unwrap().raw_slate("n");
    record.take();

    assert_eq!(s.inc("n", 1).await.unwrap(), 1);
    assert_eq!(record.take(), [CallKind::UpdateSlate]);
    assert_eq!((inner.calls(), outer.calls()), (3, 3));
    let answers = answered.0.load(Ordering::SeqCst);

    outer.set_available(false);
    assert!(s.inc("n", 1).await.unwrap_err().is_unavailable());
    assert_eq!((inner.calls(), outer.calls()), (3, 4), "refused outside");
    outer.set_available(true);
    inner.set_available(false);
    assert!(s.inc("n", 1).await.unwrap_err().is_unavailable());
    assert_eq!((inner.calls(), outer.calls()), (4, 5), "refused inside");
    inner.set_available(true);
    assert_eq!(
        answered.0.load(Ordering::SeqCst),
        answers,
        "no answer for either"
    );
    assert_eq!(s.inc("n", 1).await.unwrap(), 2, "neither refusal wrote");
    let (_, _, doc) = memory.dump_slates().pop().unwrap();
    assert_eq!(doc, doc! {"n": 2_i64}, "two increments, no more");

    // `store::open` gives a shared store that decorators wrap the same way.
    let opened = slates::store::open(None).await.unwrap();
    let faults = Faults::new();
    let engine = Engine::builder_shared(Arc::new(Intercepted::new(opened, faults.clone())))
        .build()
        .await
        .unwrap();
    faults.set_available(false);
    let err = engine
        .user_slates("ada")
        .unwrap()
        .raw_slate("x")
        .set("a", 1)
        .await
        .unwrap_err();
    assert!(err.is_unavailable());
    assert_eq!(faults.calls(), 3);
}

// ---------------------------------------------------------------- answers at once

/// Records which path each token lookup took: [`Intercept::around`] (a future) or
/// [`Intercept::around_ready`] (answered at once), letting ready answers through.
#[derive(Clone, Default)]
struct Paths {
    around: Record,
    ready: Arc<Mutex<Vec<CallKind>>>,
}

impl Intercept for Paths {
    fn around<'a, T, F>(&'a self, call: Call<'a>, op: F) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    {
        self.around.around(call, op)
    }

    fn around_ready<'a, T>(
        &'a self,
        call: Call<'a>,
        op: impl FnOnce() -> Option<slates::Result<T>>,
    ) -> Option<slates::Result<T>> {
        let answer = op();
        if answer.is_some() {
            self.ready.lock().unwrap().push(call.kind());
        }
        answer
    }
}

/// Logs `ada` in through `engine`'s app and sends `n` requests that ask for the username
/// only; returns the client.
async fn warm_requests(engine: &Engine, n: usize) -> Client {
    let mut c = client(engine);
    let r = c.post_form("/login", "username=ada").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    for _ in 0..n {
        let r = c.get("/maybe").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ada"));
    }
    c
}

/// Logs `c` out, then sends its old cookie again: refused at once.
async fn old_cookie_refused_after_logout(c: &mut Client) {
    let old = c.cookie.clone();
    assert_eq!(c.post("/logout").await.status, StatusCode::NO_CONTENT);
    c.cookie = old;
    assert_eq!(c.get("/maybe").await.body, "anonymous");
}

/// The memory store answers a token lookup at once (`TokenStore::find_token_ready`): a warm
/// request resolves without the lookup's future, through `Intercept::around_ready`, and the
/// lookup still counts as a store operation. An intercept that does not let ready answers
/// through (the default `around_ready`) sees every lookup in `around`, so that one that
/// pauses or fails calls misses none; and a logout is seen at once on either path.
#[tokio::test]
async fn a_warm_lookup_is_answered_at_once_unless_an_intercept_wants_every_call() {
    let paths = Paths::default();
    let store = Intercepted::new(MemoryStore::new(), paths.clone());
    let engine = Engine::builder(store).secure(false).build().await.unwrap();
    paths.around.take();
    let mut c = warm_requests(&engine, 5).await;
    assert_eq!(
        *paths.ready.lock().unwrap(),
        [CallKind::FindToken; 5],
        "every lookup answered at once"
    );
    assert!(
        !paths.around.take().contains(&CallKind::FindToken),
        "no lookup future"
    );
    let before = engine.stats().store_operations;
    assert_eq!(c.get("/maybe").await.body, "ada");
    assert_eq!(engine.stats().store_operations, before + 1, "counted");
    old_cookie_refused_after_logout(&mut c).await;

    let record = Record::default();
    let store = Intercepted::new(MemoryStore::new(), record.clone());
    let engine = Engine::builder(store).secure(false).build().await.unwrap();
    record.take();
    let mut c = warm_requests(&engine, 5).await;
    let lookups = record.take();
    let lookups = lookups.iter().filter(|k| **k == CallKind::FindToken);
    assert_eq!(lookups.count(), 5, "every lookup through `around`");
    old_cookie_refused_after_logout(&mut c).await;
}

/// One token lookup in 16 per thread is timed (`Stats::lookup`), whichever way the lookup
/// is answered: 32 lookups on one thread (a current-thread runtime) time exactly 2, on a
/// store that answers at once (the memory store) and on one whose lookups are awaited (an
/// intercept that wants every call), and every lookup is counted.
#[tokio::test]
async fn one_lookup_in_sixteen_is_timed_on_either_path() {
    let ready = Engine::builder(MemoryStore::new()).secure(false);
    let awaited = Intercepted::new(MemoryStore::new(), Record::default());
    let awaited = Engine::builder(awaited).secure(false);
    for (path, builder) in [("at once", ready), ("awaited", awaited)] {
        let engine = builder.build().await.unwrap();
        let mut c = warm_requests(&engine, 0).await;
        let before = engine.stats().lookup;
        for _ in 0..32 {
            assert_eq!(c.get("/maybe").await.body, "ada");
        }
        let after = engine.stats().lookup;
        assert_eq!(
            after.count - before.count,
            32,
            "{path}: every lookup counted"
        );
        assert_eq!(after.sampled - before.sampled, 2, "{path}: 2 timed");
    }
}
