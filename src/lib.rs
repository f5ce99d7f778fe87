//! # slates: atomic per-workflow state for axum/tower apps, instead of sessions
//!
//! Classic sessions keep three kinds of data in one bag under one lock: the auth token
//! (read on every request, short-lived), user info (read on most requests, rarely written,
//! lives as long as the account) and workflow state (a multi-page task; lives for minutes).
//! Locking sessions serialize a user's requests for their whole length; non-locking ones lose
//! updates (last writer wins); and expiry takes user data with it.
//!
//! slates splits the bag:
//! - an `_auth` collection maps the SHA-256 of a random token to a username, with its own
//!   expiry (tokens expire; user data never does);
//! - each user has a **profile** (the user slate, `_id: "user"`), read on the first profile
//!   read of a request;
//! - each multi-step task has its own **workflow slate**, read and written only by the pages
//!   of that task, each write one atomic operation on one small document. A
//!   [`Workflow`] declares it once: name, document type, expiry.
//!
//! The names: the [`Engine`] is the configured system (stores, settings, counters) and
//! makes the [`SlatesLayer`]; in a handler, [`CurrentUser`] is who is logged in, with the
//! profile, [`UserSlates`] hands out that user's slates, [`Slate<T>`](Slate) is a
//! typed handle to one of them ([`RawSlate`] an untyped one), [`Auth`] logs in and out,
//! and [`Devices`] lists the user's devices (one per login) and ends them.
//!
//! Nothing is read until a handler asks: a route that extracts none of these costs no store
//! operation, one that needs only the username costs the token lookup.
//!
//! A visitor who has not logged in has **guest slates** ([`GuestSlates`], or
//! [`VisitorSlates`]: the user's slates when logged in, the visitor's otherwise), kept under
//! a guest token of their own cookie that the first guest write issues; a visitor who never
//! writes costs no store call and gets no cookie. At login the app carries chosen guest
//! slates over to the user ([`Auth::login_carrying`], [`CarryOver`]). Flash messages
//! ([`UserSlates::flash`], [`GuestSlates::flash`]) are read once, atomically.
//!
//! No lock is held while a handler runs: two tabs of the same user run side by side, and
//! concurrent increments, pushes and compare-and-swap updates are never lost.
//!
//! ## Usage with axum
//!
//! ```
//! use axum::{routing::post, Form, Router};
//! use slates::{Auth, CurrentUser, Engine, MemoryStore, UserSlates, Workflow};
//!
//! #[derive(serde::Deserialize)]
//! struct Login { username: String }
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Visits { hits: i64 }
//! const VISITS: Workflow<Visits> = Workflow::new("visits");
//!
//! async fn login(auth: Auth, Form(f): Form<Login>) -> Result<&'static str, slates::Error> {
//!     // Check the password here: that is the app's job.
//!     auth.login(&f.username).await?;
//!     Ok("welcome")
//! }
//!
//! async fn hits(user: CurrentUser, slates: UserSlates) -> Result<String, slates::Error> {
//!     let n = slates.workflow(&VISITS).inc("hits", 1).await?; // one atomic $inc
//!     Ok(format!("{} has {n} hits", user.username()))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::builder(MemoryStore::new())
//!     .secure(false) // plain http in development only
//!     .build()
//!     .await?;
//! let router = Router::new()
//!     .route("/login", post(login))
//!     .route("/hits", post(hits));
//! // The layer around the whole router (`Router::layer(engine.layer())` works too, at a
//! // cost per request: see `Engine::wrap`). Serve it with
//! // `axum::serve(listener, app.into_make_service())`.
//! let app = engine.wrap(router);
//!
//! // Drive it without a server:
//! use tower::ServiceExt;
//! let res = app.clone().oneshot(
//!     http::Request::post("/login")
//!         .header("content-type", "application/x-www-form-urlencoded")
//!         .body(axum::body::Body::from("username=ada"))?,
//! ).await?;
//! let cookie = res.headers()["set-cookie"].to_str()?.split(';').next().unwrap().to_owned();
//! let res = app.oneshot(
//!     http::Request::post("/hits").header("cookie", cookie).body(axum::body::Body::empty())?,
//! ).await?;
//! assert_eq!(res.status(), 200);
//! # Ok(()) }
//! ```
//!
//! ## Data races
//!
//! Every [`Slate`] method is one atomic store operation (`$set`, `$inc`, `$push`,
//! `$addToSet`, whole-document `put`, `delete`), except the `modify` family
//! ([`Slate::modify`]), which reads, applies a closure and writes back only if the version
//! (`_v`) is unchanged, retrying otherwise (and writes nothing when the closure declines or
//! changes nothing). Versions are random 64-bit values, fresh on every write, so a version read
//! before a slate was deleted (or expired) and written again never matches the new slate.
//! Nothing is saved "at the end of the request", so there is no last-writer-wins.
//!
//! ## Life cycle
//!
//! 1. The layer leaves the request's state in its extensions and makes no store call.
//! 2. The first question about who the user is (extracting [`CurrentUser`] or
//!    [`UserSlates`], calling [`Auth::username`], ...) parses the `Cookie` headers. No
//!    token, or a malformed one: anonymous, no store call.
//! 3. It looks up SHA-256(token) in `_auth` (answered at once by the memory store, or by
//!    the cache on a hit) and checks `expires > now` and the absolute lifetime. Unknown or
//!    expired: anonymous, and the cookie is removed. It renews the token if more than the
//!    configured share of the idle timeout has passed (one update that never resurrects a
//!    deleted or rotated-out token, and never goes past the absolute lifetime), and writes
//!    the device's last-seen time when the configured interval has passed (one conditional
//!    update that never resurrects a token either). Later questions in the same request get
//!    the same answer with no store call.
//! 4. The profile is read on its first access ([`CurrentUser::profile`]), once per request.
//! 5. The handler runs with no lock held; [`Auth`] can log in, log out, log out everywhere
//!    or rotate the token.
//! 6. On the way out, the layer applies the cookie change (`Set-Cookie`).
//!
//! If the store fails during the lookup, the extractor that asked answers 503 and the cause
//! is logged; the request is never served as anonymous or as someone else (a handler taking
//! `Option<CurrentUser>` gets the 503 too, not `None`). The next question asks the store
//! again.
//!
//! ## Stores
//!
//! [`MemoryStore`] is embedded: examples and your own unit tests run with no database.
//! `MongoStore` (feature `mongodb`, on by default) is the production backend. Both pass the
//! same behavioural suite. Tokens and slates are separate concerns ([`store::TokenStore`],
//! [`store::SlateStore`]) and may live in different stores
//! ([`Engine::builder_split`]).

mod auth;
mod builder;
mod carry_over;
mod client_ip;
mod clock;
mod config;
mod cookie;
mod core;
mod current_user;
mod device_id;
mod device_ops;
mod devices;
mod engine;
mod error;
mod events;
mod flash;
mod future;
mod guest;
mod layer;
mod modified;
pub mod names;
mod raw_slate;
mod redirect;
mod rejection;
mod request;
mod resolve;
mod roomy_extensions;
mod same_origin;
mod service;
mod slate;
mod slate_update;
mod stats;
pub mod store;
mod sync;
mod token;
mod token_times;
mod user_agent;
mod user_slates;
mod visitor;
mod workflow;

pub use crate::auth::Auth;
pub use crate::builder::{EngineBuilder, DEFAULT_GUEST_IDLE};
pub use crate::carry_over::CarryOver;
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::config::{Config, MAX_DURATION};
pub use crate::cookie::{token_from_headers, CookieSettings, CookieToken};
pub use crate::current_user::CurrentUser;
pub use crate::device_id::DeviceId;
pub use crate::device_ops::Device;
pub use crate::devices::Devices;
pub use crate::engine::{stats_handler, Engine};
pub use crate::error::{Error, NameKind, Result};
pub use crate::events::{AuthEvent, AuthEventKind, AuthEventSubscriber};
pub use crate::flash::FLASH_TTL;
pub use crate::future::ResponseFuture;
pub use crate::layer::SlatesLayer;
pub use crate::modified::Modified;
pub use crate::names::{SlateName, Username};
pub use crate::raw_slate::RawSlate;
pub use crate::redirect::safe_next;
pub use crate::rejection::{
    LoginRedirect, LoginRequired, MissingLayer, NotLoggedIn, Unavailable, Unresolved, WhenLoggedOut,
};
pub use crate::same_origin::{is_cross_origin, same_origin_only};
pub use crate::service::SlatesService;
pub use crate::slate::Slate;
pub use crate::slate_update::SlateUpdate;
pub use crate::stats::{LookupLatency, Stats};
#[cfg(feature = "mongodb")]
pub use crate::store::MongoStore;
pub use crate::store::{Layout, MemoryStore, SharedRawDocument, SlateDoc, Store};
pub use crate::token::{Token, TokenHash};
pub use crate::user_slates::UserSlates;
pub use crate::visitor::{GuestSlates, VisitorSlates};
pub use crate::workflow::Workflow;

pub use bson;
#[cfg(feature = "mongodb")]
pub use mongodb;
pub use time;

/// The README's Rust examples, run as doctests so that the API tour always compiles.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
