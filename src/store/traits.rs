//! The two storage traits, one per concern: [`TokenStore`] (the `_auth` records) and
//! [`SlateStore`] (the slate documents), and [`Store`], a store that is both.
//!
//! They are separate so that an app can keep tokens and slates in different places and so
//! that decorators (a cache, fault injection: see [`Intercepted`](super::Intercepted))
//! wrap exactly the concern they change. `Arc<S>` of any store is a store too, so a shared
//! store (`Arc<dyn Store>`) can be decorated.

use std::sync::Arc;

use bson::Document;
use time::OffsetDateTime;

use super::{
    Expiry, InvalidationChannel, SlateDoc, SlateKey, StoreFuture, StoreOptions, TokenBrief,
    TokenRecord, UpdateOp, Updated,
};
use crate::device_id::DeviceId;
use crate::error::Result;
use crate::names::Username;
use crate::token::TokenHash;

/// Storage for token records (`_auth`). Implemented by [`MemoryStore`](super::MemoryStore)
/// and `MongoStore`; an app can bring its own.
///
/// Contract, checked by the shared behavioural suite (`tests/common/suite.rs`):
/// - every method is one atomic operation on one record and holds no lock across an
///   `.await`;
/// - reads filter on expiry: a record with `expires <= now` reads as absent, whatever
///   garbage collection has done;
/// - names arrive validated; stores may rely on it.
pub trait TokenStore: Send + Sync + 'static {
    /// Creates the token collection's indexes, idempotently. Called once by
    /// [`EngineBuilder::build`](crate::EngineBuilder::build).
    fn prepare_tokens<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()>;

    /// Inserts a new token record. A record with the same hash already there is
    /// [`Error::DuplicateKey`](crate::Error::DuplicateKey).
    fn insert_token<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()>;

    /// The token record for `hash`, if it exists and `expires > now`. A record without the
    /// shape slates writes is [`Error::MalformedDocument`](crate::Error::MalformedDocument).
    fn find_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<TokenRecord>>;

    /// [`find_token`](Self::find_token)'s answer at once, in brief ([`TokenBrief`]: what
    /// a request needs of the record), when the store has it at hand without waiting (an
    /// in-process map, a cache hit), so that a warm request resolves with no future to
    /// allocate and no full record to build. `now` is in milliseconds since the epoch
    /// ([`Clock::now_millis`](crate::Clock::now_millis)), as the brief's times are. `None`
    /// (the default): ask `find_token`. A store that answers here answers as `find_token`
    /// would at that millisecond.
    fn find_token_ready(&self, hash: &TokenHash, now: i64) -> Option<Result<Option<TokenBrief>>> {
        let _ = (hash, now);
        None
    }

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

    /// Every live token record of `user` (`expires > now`), in no particular order: the
    /// user's devices.
    fn user_tokens<'a>(
        &'a self,
        user: &'a Username,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<TokenRecord>>;

    /// Sets `last_seen = now` on the record for `hash`, in one conditional update that is
    /// never an upsert (a touch racing a logout cannot bring the token back), only if the
    /// record is live (`expires > now`) and:
    /// - `assign` is `None`: it was last seen at or before `not_after` (so a device is
    ///   written at most once per interval, however many requests it makes);
    /// - `assign` is `Some(id)`: it has no device id yet (a record written before devices
    ///   existed); the id is set with `last_seen`, and of two concurrent touches only one
    ///   assigns an id.
    ///
    /// Returns whether a record was updated.
    fn touch_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        assign: Option<&'a DeviceId>,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;

    /// Deletes the record of `user` whose device id is `device`, in one atomic operation
    /// that matches on both (a device of another user is never deleted, and answers like an
    /// id that does not exist). Returns the deleted record's token hash, if one was deleted.
    fn delete_device<'a>(
        &'a self,
        user: &'a Username,
        device: &'a DeviceId,
    ) -> StoreFuture<'a, Option<TokenHash>>;

    /// Deletes every token of `user` except `keep` ("log out my other devices"). Returns
    /// how many.
    fn delete_user_tokens_except<'a>(
        &'a self,
        user: &'a Username,
        keep: &'a TokenHash,
    ) -> StoreFuture<'a, u64>;
    /// The channel that keeps the caches of every instance in step, if this store offers
    /// one: `MongoStore` does (a capped collection every instance tails), so an engine on it
    /// caches by default (see [`EngineBuilder::cache`](crate::EngineBuilder::cache)).
    /// Default: none, and no cache unless one is configured.
    fn invalidation_channel(&self) -> Option<Arc<dyn InvalidationChannel>> {
        None
    }
}

/// Storage for slate documents, keyed by (username, slate name). Implemented by
/// [`MemoryStore`](super::MemoryStore) and `MongoStore`; an app can bring its own.
///
/// Contract, checked by the shared behavioural suite (`tests/common/suite.rs`):
/// - every method is one atomic operation on one document (except
///   [`delete_user_slates`](Self::delete_user_slates)) and holds no lock across an `.await`;
/// - reads filter on expiry: a slate with `expires <= now` reads as absent;
/// - writes refuse documents over [`MAX_DOCUMENT_BYTES`](super::MAX_DOCUMENT_BYTES) with
///   [`Error::DocumentTooLarge`](crate::Error::DocumentTooLarge), leaving the stored
///   document unchanged;
/// - every write stores a fresh version ([`fresh_version`](super::fresh_version));
/// - names arrive validated; stores may rely on it.
pub trait SlateStore: Send + Sync + 'static {
    /// Creates the slate collections' indexes, idempotently. Called once by
    /// [`EngineBuilder::build`](crate::EngineBuilder::build).
    fn prepare_slates<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()>;

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
    /// [`RawSlate::inc`](crate::RawSlate::inc) promises): if it would not (it holds a
    /// double, a decimal or another type), nothing is written and the answer is
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

    /// Deletes every slate of `user` (the user's profile included). Tokens are not touched.
    /// `user` may be a guest owner ([`Username::is_guest`]).
    fn delete_user_slates<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, ()>;

    /// Reads and deletes a slate in one atomic operation (MongoDB `findOneAndDelete`):
    /// of two concurrent calls, at most one gets the slate. `None` if absent or expired
    /// (an expired document is left to garbage collection). Flash messages and the
    /// carry-over of guest slates at login use it.
    fn take_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>>;
}

/// A store that keeps both tokens and slates ([`MemoryStore`](super::MemoryStore),
/// `MongoStore`): what [`Engine::builder`](crate::Engine::builder) takes. Implemented for
/// every type that is both a [`TokenStore`] and a [`SlateStore`].
pub trait Store: TokenStore + SlateStore {}

impl<T: TokenStore + SlateStore + ?Sized> Store for T {}

/// A shared token store is a token store.
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn prepare_tokens<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        (**self).prepare_tokens(options)
    }
    fn insert_token<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()> {
        (**self).insert_token(record)
    }
    fn find_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<TokenRecord>> {
        (**self).find_token(hash, now)
    }
    fn find_token_ready(&self, hash: &TokenHash, now: i64) -> Option<Result<Option<TokenBrief>>> {
        (**self).find_token_ready(hash, now)
    }
    fn renew_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        previous: OffsetDateTime,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        (**self).renew_token(hash, previous, expires, now)
    }
    fn retire_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        (**self).retire_token(hash, at, now)
    }
    fn delete_token<'a>(&'a self, hash: &'a TokenHash) -> StoreFuture<'a, bool> {
        (**self).delete_token(hash)
    }
    fn delete_user_tokens<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, u64> {
        (**self).delete_user_tokens(user)
    }
    fn user_tokens<'a>(
        &'a self,
        user: &'a Username,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<TokenRecord>> {
        (**self).user_tokens(user, now)
    }
    fn touch_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        assign: Option<&'a DeviceId>,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        (**self).touch_token(hash, assign, not_after, now)
    }
    fn delete_device<'a>(
        &'a self,
        user: &'a Username,
        device: &'a DeviceId,
    ) -> StoreFuture<'a, Option<TokenHash>> {
        (**self).delete_device(user, device)
    }
    fn delete_user_tokens_except<'a>(
        &'a self,
        user: &'a Username,
        keep: &'a TokenHash,
    ) -> StoreFuture<'a, u64> {
        (**self).delete_user_tokens_except(user, keep)
    }
    fn invalidation_channel(&self) -> Option<Arc<dyn InvalidationChannel>> {
        (**self).invalidation_channel()
    }
}

/// A shared slate store is a slate store.
impl<T: SlateStore + ?Sized> SlateStore for Arc<T> {
    fn prepare_slates<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        (**self).prepare_slates(options)
    }
    fn get_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        (**self).get_slate(key, now)
    }
    fn put_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        doc: &'a Document,
        expiry: Expiry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, i64> {
        (**self).put_slate(key, doc, expiry, now)
    }
    fn update_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        ops: &'a [UpdateOp],
        expiry: Expiry,
        counter: Option<&'a str>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Updated> {
        (**self).update_slate(key, ops, expiry, counter, now)
    }
    fn replace_slate_if<'a>(
        &'a self,
        key: &'a SlateKey,
        expected: Option<i64>,
        doc: &'a Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<i64>> {
        (**self).replace_slate_if(key, expected, doc, expires, now)
    }
    fn delete_slate<'a>(&'a self, key: &'a SlateKey, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        (**self).delete_slate(key, now)
    }
    fn delete_user_slates<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, ()> {
        (**self).delete_user_slates(user)
    }
    fn take_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        (**self).take_slate(key, now)
    }
}
