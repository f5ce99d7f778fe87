//! The memory store's [`SlateStore`] methods: each one locked step on the user's shard.
//! Reads hand out the stored raw document (a copy of a small one, a reference count to a
//! larger one); writes parse it, apply the update as MongoDB would (`interpreter.rs`) and
//! serialize it back.

use std::future::ready;

use bson::Document;
use time::OffsetDateTime;

use super::users::StoredSlate;
use super::MemoryStore;
use crate::names::Username;
use crate::store::interpreter::{apply_update, integer_at};
use crate::store::size::{check_values, to_raw_checked};
use crate::store::update::{check_counter, merge};
use crate::store::{
    Expiry, SlateDoc, SlateKey, SlateStore, StoreFuture, StoreOptions, UpdateOp, Updated,
};

impl SlateStore for MemoryStore {
    fn prepare_slates<'a>(&'a self, _options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        Box::pin(ready(Ok(())))
    }

    fn get_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        Box::pin(async move {
            let hash = self.inner.keys.slate(&key.user, &key.slate);
            let shard = self.inner.user_shard(hash.user);
            let found = shard.slate(hash, key).filter(|s| s.live(now));
            Ok(found.map(StoredSlate::to_slate_doc))
        })
    }

    fn put_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        doc: &'a Document,
        expiry: Expiry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            // Serialized before the lock is taken.
            let doc = to_raw_checked(key, doc)?;
            let hash = self.inner.keys.slate(&key.user, &key.slate);
            let mut shard = self.inner.user_shard(hash.user);
            let current = shard.slate(hash, key).filter(|s| s.live(now));
            let expires = expiry.resolve(current.and_then(StoredSlate::expires));
            Ok(shard.store(&self.inner.keys, hash, key, doc, expires))
        })
    }

    fn update_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        ops: &'a [UpdateOp],
        expiry: Expiry,
        counter: Option<&'a str>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Updated> {
        Box::pin(async move {
            // What the Mongo store refuses before sending: values that alone exceed the limit.
            check_values(key, ops)?;
            if let Some(field) = counter {
                check_counter(&merge(ops)?, field)?;
            }
            let hash = self.inner.keys.slate(&key.user, &key.slate);
            let mut shard = self.inner.user_shard(hash.user);
            // Applied to a copy: any refusal below leaves the stored slate as it was.
            let (mut doc, old_expires) = match shard.slate(hash, key).filter(|s| s.live(now)) {
                Some(s) => (s.to_document()?, s.expires()),
                None => (Document::new(), None),
            };
            apply_update(&mut doc, ops)?;
            let raw = to_raw_checked(key, &doc)?;
            let counter = match counter {
                None => None,
                Some(field) => Some(integer_at(&doc, field)?),
            };
            let expires = expiry.resolve(old_expires);
            let version = shard.store(&self.inner.keys, hash, key, raw, expires);
            Ok(Updated { version, counter })
        })
    }

    fn replace_slate_if<'a>(
        &'a self,
        key: &'a SlateKey,
        expected: Option<i64>,
        doc: &'a Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<i64>> {
        Box::pin(async move {
            let doc = to_raw_checked(key, doc)?;
            let hash = self.inner.keys.slate(&key.user, &key.slate);
            let mut shard = self.inner.user_shard(hash.user);
            let current = shard.slate(hash, key).filter(|s| s.live(now));
            if current.map(|s| s.version) != expected {
                return Ok(None);
            }
            Ok(Some(shard.store(&self.inner.keys, hash, key, doc, expires)))
        })
    }

    fn delete_slate<'a>(&'a self, key: &'a SlateKey, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let hash = self.inner.keys.slate(&key.user, &key.slate);
            let removed = self.inner.user_shard(hash.user).remove(hash, key);
            Ok(removed.is_some_and(|s| s.live(now)))
        })
    }

    fn delete_user_slates<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let keys = &self.inner.keys;
            let hash = keys.user(user);
            let mut shard = self.inner.user_shard(hash);
            shard.remove_user_slates(keys, hash, user);
            Ok(())
        })
    }

    /// Removes the entry under the user's shard lock: one locked step, so of two
    /// concurrent takes exactly one gets a live slate.
    fn take_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        Box::pin(async move {
            let hash = self.inner.keys.slate(&key.user, &key.slate);
            let mut shard = self.inner.user_shard(hash.user);
            let taken = match shard.slate(hash, key) {
                Some(s) if s.live(now) => shard.remove(hash, key),
                // Absent, or expired: left to `purge_expired`, like a read leaves it.
                _ => None,
            };
            Ok(taken.map(|s| s.to_slate_doc()))
        })
    }
}
