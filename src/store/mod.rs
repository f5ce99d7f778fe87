//! The storage contract shared by [`MemoryStore`] and `MongoStore`.
//!
//! A store keeps two things: `_auth` token records, keyed by the SHA-256 of the token, and
//! slate documents, keyed by (username, slate name). Every method is one atomic operation on
//! one record; none holds a lock across an `.await`. Both stores pass the same behavioural
//! suite (`tests/common`).
//!
//! Stores receive the current time from the caller (`now`), never read a clock themselves, so
//! that tests can move time with a [`ManualClock`](crate::ManualClock).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bson::{Bson, Document};
use time::OffsetDateTime;

use crate::error::Result;
use crate::names::{SlateName, Username};
use crate::token::TokenHash;

mod interpreter;
mod memory;
#[cfg(feature = "mongodb")]
mod mongo;
mod update;
mod version;

pub use memory::MemoryStore;
#[cfg(feature = "mongodb")]
pub use mongo::{
    MongoStore, DEFAULT_DATABASE, DEFAULT_HEARTBEAT, DEFAULT_MAX_TIME, DEFAULT_SERVER_TIMEOUT,
};
pub use update::check_ops;
pub use version::fresh_version;

/// The store named by a connection string: `MongoStore` for a `mongodb://` or
/// `mongodb+srv://` URI, [`MemoryStore`] when `uri` is `None` or empty. Handy for apps
/// and examples that run on MongoDB in production and in memory on a laptop:
///
/// ```no_run
/// # async fn f() -> slates::Result<()> {
/// let uri = std::env::var("SLATES_MONGODB_URI").ok();
/// let store = slates::store::open(uri.as_deref()).await?;
/// let slates = slates::Slates::builder_shared(store).build().await?;
/// # Ok(()) }
/// ```
///
/// A URI given to a build without the `mongodb` feature is [`Error::Config`](crate::Error::Config).
pub async fn open(uri: Option<&str>) -> Result<Arc<dyn Store>> {
    match uri.filter(|u| !u.is_empty()) {
        None => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "mongodb")]
        Some(uri) => Ok(Arc::new(MongoStore::connect(uri).await?)),
        #[cfg(not(feature = "mongodb"))]
        Some(_) => Err(crate::Error::Config(
            "a MongoDB URI was given but slates was built without the `mongodb` feature".into(),
        )),
    }
}

/// MongoDB's document size limit, which both stores enforce: 16 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The future every [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// How slate documents are laid out in MongoDB (the memory store accepts both and behaves
/// the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Layout {
    /// One collection (default `slates`) with `_id: "<username>$<slate>"`.
    /// Scales to millions of users and can be sharded on the user.
    #[default]
    SingleCollection,
    /// One collection per user, named `<prefix><username>` (prefix `slates.user.` by
    /// default, [`StoreOptions::user_collection_prefix`]), holding `{ _id: "user", .. }` and
    /// `{ _id: "<workflow>", .. }`. The prefix keeps users out of the app's own collections:
    /// a user named `orders` never touches an `orders` collection. Good for tens to a few
    /// thousand users.
    CollectionPerUser,
}

/// Settings the [`SlatesBuilder`](crate::SlatesBuilder) hands to [`Store::prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Name of the token collection (default `_auth`; always starts with `_`).
    pub auth_collection: String,
    /// Name of the slates collection in [`Layout::SingleCollection`] (default `slates`).
    pub slates_collection: String,
    /// The slate layout.
    pub layout: Layout,
    /// Prefix of the per-user collections of [`Layout::CollectionPerUser`] (default
    /// `slates.user.`): slates only ever writes to, and drops, collections with this prefix.
    pub user_collection_prefix: String,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            auth_collection: "_auth".into(),
            slates_collection: "slates".into(),
            layout: Layout::default(),
            user_collection_prefix: "slates.user.".into(),
        }
    }
}

/// One token: the `_auth` document.
///
/// Its state is explicit: whether it may still be renewed is the absence of
/// [`rotated`](Self::rotated), never inferred from the configured timeouts, so a redeploy
/// with other timeouts reads every existing record the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 of the token (`_id`).
    pub hash: TokenHash,
    /// The user the token logs in.
    pub user: Username,
    /// When the token was issued (the login): the absolute lifetime counts from here.
    pub created: OffsetDateTime,
    /// When the token stops working (the idle deadline, or the end of a rotation grace).
    pub expires: OffsetDateTime,
    /// When the token was last renewed, if ever.
    pub renewed: Option<OffsetDateTime>,
    /// When the token was replaced by [`Auth::rotate`](crate::Auth::rotate), if it was: a
    /// rotated-out token lives out its grace period and is never renewed.
    pub rotated: Option<OffsetDateTime>,
}

/// What a slate write does to the slate's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Keep the stored expiry (a slate that did not exist, or had expired, gets none).
    /// Every write through a handle that does not mention expiry uses this.
    Keep,
    /// The slate expires at this time (a handle with
    /// [`expires_in`](crate::Slate::expires_in): sliding expiry).
    At(OffsetDateTime),
}

impl Expiry {
    /// The expiry a write leaves, given the live slate's current one.
    pub fn resolve(self, current: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
        match self {
            Expiry::Keep => current,
            Expiry::At(t) => Some(t),
        }
    }
}

/// Identifies one slate document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlateKey {
    /// Whose slate.
    pub user: Username,
    /// Which slate (`user` or a workflow name).
    pub slate: SlateName,
}

impl SlateKey {
    /// A key from validated parts.
    pub fn new(user: Username, slate: SlateName) -> Self {
        SlateKey { user, slate }
    }
}

/// A slate document as read from a store.
#[derive(Debug, Clone, PartialEq)]
pub struct SlateDoc {
    /// The user's fields, without `_id`, `_v` and `_expires`. Shared so that handing the user
    /// slate to a handler costs no copy.
    pub doc: Arc<Document>,
    /// The version: a fresh random 64-bit value on every write ([`fresh_version`]), so a
    /// version seen by a reader never matches a later write, nor a later incarnation of the
    /// slate after a delete or an expiry. Compare versions for equality only.
    pub version: i64,
    /// When the slate stops existing, if it expires.
    pub expires: Option<OffsetDateTime>,
}

/// One update operator, applied atomically with the others of the same
/// [`Store::update_slate`] call. Field paths may be dotted (`"a.b"`) and are validated by
/// [`validate_field`](crate::names::validate_field) before they reach a store.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum UpdateOp {
    /// `$set`: set a field.
    Set(String, Bson),
    /// `$unset`: remove a field.
    Unset(String),
    /// `$inc`: add a number (an absent field counts as 0).
    Inc(String, Bson),
    /// `$push`: append to an array (an absent field becomes a one-element array).
    Push(String, Bson),
    /// `$addToSet`: append to an array unless an equal element is there.
    AddToSet(String, Bson),
}

impl UpdateOp {
    /// The field path this operator touches.
    pub fn field(&self) -> &str {
        match self {
            UpdateOp::Set(f, _)
            | UpdateOp::Unset(f)
            | UpdateOp::Inc(f, _)
            | UpdateOp::Push(f, _)
            | UpdateOp::AddToSet(f, _) => f,
        }
    }
}

/// What [`Store::update_slate`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// The version after the update.
    pub version: i64,
    /// The value of the `counter` field after the update, if one was named.
    pub counter: Option<i64>,
}

/// Storage for tokens and slates. Implemented by [`MemoryStore`] and `MongoStore`; an app
/// can bring its own.
///
/// Contract, checked by the shared behavioural suite:
/// - every method is one atomic operation on one record (a token or a slate) and holds no
///   lock across an `.await`;
/// - reads filter on expiry: a token with `expires <= now` and a slate with
///   `expires <= now` read as absent, whatever garbage collection has done;
/// - writes refuse documents over [`MAX_DOCUMENT_BYTES`] with
///   [`Error::DocumentTooLarge`](crate::Error::DocumentTooLarge), leaving the stored document
///   unchanged;
/// - names arrive validated; stores may rely on it.
pub trait Store: Send + Sync + 'static {
    /// Creates collections and indexes, idempotently. Called once by
    /// [`SlatesBuilder::build`](crate::SlatesBuilder::build).
    fn prepare<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()>;

    /// Inserts a new token record. A record with the same hash already there is
    /// [`Error::DuplicateKey`](crate::Error::DuplicateKey).
    fn insert_token<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()>;

    /// The token record for `hash`, if it exists and `expires > now`.
    fn find_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<TokenRecord>>;

    /// Sets `expires` and `renewed = now` on the record for `hash`, only if it still exists,
    /// has not been rotated out, and its `expires` still equals `previous` (the value the
    /// caller read, which is later than `now`): never an upsert, so a renewal racing a logout
    /// cannot bring the token back, and a renewal racing a rotation cannot undo the rotation.
    /// Returns whether a record was updated.
    fn renew_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        previous: OffsetDateTime,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;

    /// Marks the record for `hash` as rotated out (`rotated = now`, never renewed again) and
    /// lowers its `expires` to `at` if that is earlier (the rotation grace). Never creates a
    /// record. Returns whether a record was found.
    fn retire_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;

    /// Deletes the record for `hash`. Returns whether one was deleted.
    fn delete_token<'a>(&'a self, hash: &'a TokenHash) -> StoreFuture<'a, bool>;

    /// Deletes every token of `user` ("log out everywhere"). Returns how many.
    fn delete_user_tokens<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, u64>;

    /// Reads a slate, or `None` if absent or expired. A stored document without the shape
    /// slates writes (for example edited by hand) is
    /// [`Error::MalformedDocument`](crate::Error::MalformedDocument).
    fn get_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>>;

    /// Replaces the whole slate (upsert) with a fresh version. `doc` holds no reserved field.
    /// The expiry follows `expiry` ([`Expiry::Keep`] keeps the live slate's). Returns the
    /// new version.
    fn put_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        doc: &'a Document,
        expiry: Expiry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, i64>;

    /// Applies `ops` atomically with a fresh version, creating the slate if absent (an
    /// expired slate is replaced by a fresh one). The expiry follows `expiry`.
    ///
    /// `counter` names a field that must hold an integer after the update (what
    /// [`Slate::inc`](crate::Slate::inc) promises): if it would not (it holds a double, a
    /// decimal or another type), nothing is written and the answer is
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch). Its value is reported.
    fn update_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        ops: &'a [UpdateOp],
        expiry: Expiry,
        counter: Option<&'a str>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Updated>;

    /// Compare-and-swap: replaces the whole slate with `doc`, a fresh version and exactly
    /// the expiry `expires`, only if its version is `expected` (`None`: only if the slate is
    /// absent or expired). Returns the new version, or `None` when the version did not
    /// match (nothing written).
    fn replace_slate_if<'a>(
        &'a self,
        key: &'a SlateKey,
        expected: Option<i64>,
        doc: &'a Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<i64>>;

    /// Deletes a slate. Returns whether a live (unexpired) slate was deleted.
    fn delete_slate<'a>(&'a self, key: &'a SlateKey, now: OffsetDateTime) -> StoreFuture<'a, bool>;

    /// Deletes every slate of `user` (the user slate included). Tokens are not touched.
    fn delete_user_slates<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, ()>;
}
