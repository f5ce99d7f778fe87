//! `MemoryStore`: the embedded store, for examples, tests and running with no database.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::future::ready;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bson::Document;
use time::OffsetDateTime;

use super::interpreter::{apply_update, integer_at};
use super::size::{check_size, check_values};
use super::update::{check_counter, merge};
use super::{
    fresh_version, Expiry, SlateDoc, SlateKey, SlateStore, StoreFuture, StoreOptions, TokenRecord,
    TokenStore, UpdateOp, Updated,
};
use crate::device_id::DeviceId;
use crate::error::{Error, Result};
use crate::names::{SlateName, Username};
use crate::sync::lock;
use crate::token::TokenHash;

const SHARDS: usize = 64;
/// Every this many token inserts, the shard written to is swept of expired tokens, so a
/// long-running process does not keep tokens nobody will present again.
const SWEEP_EVERY: u64 = 256;

/// An in-memory [`Store`](super::Store) with the same semantics as `MongoStore`: atomic single-slate
/// operations, versioned compare-and-swap, expiry filtered at read time and the 16 MiB limit.
/// Updates are applied as MongoDB applies them (types, dotted paths through arrays,
/// `$addToSet` equality, field order), by the update interpreter (`interpreter.rs`).
///
/// Data is split into 64 shards, each behind its own short `std::sync::Mutex`; no lock is
/// held across an `.await` (every operation completes synchronously). Clones share the data.
///
/// To simulate an outage in tests, wrap it with the [`Faults`](super::Faults) decorator.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> slates::Result<()> {
/// use slates::{Engine, MemoryStore};
/// let engine = Engine::builder(MemoryStore::new()).build().await?;
/// let n = engine.user_slates("ada")?.raw_slate("counter").inc("hits", 1).await?;
/// assert_eq!(n, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tokens: Shards<TokenHash, TokenRecord, BuildHasherDefault<TokenHasher>>,
    user_tokens: Shards<Username, HashSet<TokenHash>>,
    slates: Shards<Username, HashMap<SlateName, Entry>>,
    inserts: AtomicU64,
}

#[derive(Clone)]
struct Entry {
    doc: Arc<Document>,
    version: i64,
    expires: Option<OffsetDateTime>,
}

impl Entry {
    fn live(&self, now: OffsetDateTime) -> bool {
        self.expires.is_none_or(|e| e > now)
    }

    fn to_slate_doc(&self) -> SlateDoc {
        SlateDoc {
            // Cheap: an Arc clone, not a copy of the document.
            doc: Arc::clone(&self.doc),
            version: self.version,
            expires: self.expires,
        }
    }
}

/// One shard of the token records.
type TokenMap = HashMap<TokenHash, TokenRecord, BuildHasherDefault<TokenHasher>>;

/// `SHARDS` maps, each behind its own mutex; `S` hashes keys inside a map.
struct Shards<K, V, S = RandomState> {
    /// Picks the shard of keys that need a keyed hash (see [`ShardKey`]).
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<K, V, S>>]>,
}

impl<K, V, S: Default> Default for Shards<K, V, S> {
    fn default() -> Self {
        Shards {
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
        }
    }
}

/// How a key picks its shard.
trait ShardKey: Hash + Eq {
    fn shard(&self, hasher: &RandomState) -> usize;
}

impl ShardKey for Username {
    fn shard(&self, hasher: &RandomState) -> usize {
        (hasher.hash_one(self) as usize) % SHARDS
    }
}

impl ShardKey for TokenHash {
    /// A SHA-256 is uniform already: its last byte picks the shard (`SHARDS` divides 256).
    fn shard(&self, _: &RandomState) -> usize {
        self.as_bytes()[31] as usize % SHARDS
    }
}

impl<K: ShardKey, V, S: BuildHasher> Shards<K, V, S> {
    fn shard(&self, key: &K) -> &Mutex<HashMap<K, V, S>> {
        &self.shards[key.shard(&self.hasher)]
    }

    fn lock(&self, key: &K) -> MutexGuard<'_, HashMap<K, V, S>> {
        lock(self.shard(key))
    }
}

/// Hashes a [`TokenHash`] inside the token maps by folding its bytes, instead of running
/// SipHash over them on every request. A SHA-256 is uniform already, and only tokens the
/// server generated are ever inserted, so no one can choose keys that pile into one bucket:
/// a keyed hash would buy nothing here.
#[derive(Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(23) ^ u64::from_le_bytes(word);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of token records held, expired ones not yet swept included.
    pub fn token_count(&self) -> usize {
        self.inner.tokens.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Removes expired tokens and expired slates. Reads never return them anyway; this only
    /// frees memory (the memory store's stand-in for MongoDB's TTL monitor).
    pub fn purge_expired(&self, now: OffsetDateTime) -> usize {
        let mut removed = 0;
        for shard in self.inner.tokens.shards.iter() {
            removed += self.sweep_token_shard(shard, now);
        }
        for shard in self.inner.slates.shards.iter() {
            let mut map = lock(shard);
            for slates in map.values_mut() {
                let before = slates.len();
                slates.retain(|_, e| e.live(now));
                removed += before - slates.len();
            }
            map.retain(|_, slates| !slates.is_empty());
        }
        removed
    }

    /// Raw access for tests and tools: every token record (including expired ones).
    pub fn dump_tokens(&self) -> Vec<TokenRecord> {
        self.inner
            .tokens
            .shards
            .iter()
            .flat_map(|s| lock(s).values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Raw access for tests and tools: every slate of every user, as
    /// `(user, slate, document)`, expired ones included.
    pub fn dump_slates(&self) -> Vec<(Username, SlateName, Arc<Document>)> {
        let mut out = Vec::new();
        for shard in self.inner.slates.shards.iter() {
            for (user, slates) in lock(shard).iter() {
                for (name, e) in slates {
                    out.push((user.clone(), name.clone(), Arc::clone(&e.doc)));
                }
            }
        }
        out
    }

    fn unindex_token(&self, user: &Username, hash: &TokenHash) {
        let mut index = self.inner.user_tokens.lock(user);
        if let Some(set) = index.get_mut(user) {
            set.remove(hash);
            if set.is_empty() {
                index.remove(user);
            }
        }
    }

    /// Removes the expired tokens of one shard and their user-index entries; returns how
    /// many.
    fn sweep_token_shard(&self, shard: &Mutex<TokenMap>, now: OffsetDateTime) -> usize {
        let expired: Vec<TokenRecord> = {
            let mut map = lock(shard);
            let gone: Vec<TokenHash> = map
                .iter()
                .filter(|(_, r)| r.expires <= now)
                .map(|(h, _)| *h)
                .collect();
            gone.iter().filter_map(|h| map.remove(h)).collect()
        };
        for record in &expired {
            self.unindex_token(&record.user, &record.hash);
        }
        expired.len()
    }

    /// Runs `f` on the live entry of `key` (or `None`) under the user's shard lock.
    fn with_slate<T>(
        &self,
        key: &SlateKey,
        f: impl FnOnce(&mut HashMap<SlateName, Entry>) -> Result<T>,
    ) -> Result<T> {
        let mut shard = self.inner.slates.lock(&key.user);
        let slates = shard.entry(key.user.clone()).or_default();
        let out = f(slates);
        if slates.is_empty() {
            shard.remove(&key.user);
        }
        out
    }
}

/// Stores `doc` as the slate of `key` with a fresh version; returns the version.
fn store(
    slates: &mut HashMap<SlateName, Entry>,
    key: &SlateKey,
    doc: Document,
    expires: Option<OffsetDateTime>,
) -> i64 {
    let version = fresh_version();
    let entry = Entry {
        doc: Arc::new(doc),
        version,
        expires,
    };
    slates.insert(key.slate.clone(), entry);
    version
}

fn live_version(
    slates: &HashMap<SlateName, Entry>,
    slate: &SlateName,
    now: OffsetDateTime,
) -> Option<i64> {
    slates.get(slate).filter(|e| e.live(now)).map(|e| e.version)
}

impl TokenStore for MemoryStore {
    fn prepare_tokens<'a>(&'a self, _options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        Box::pin(ready(Ok(())))
    }

    fn insert_token<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            {
                let mut map = self.inner.tokens.lock(&record.hash);
                if map.contains_key(&record.hash) {
                    return Err(Error::DuplicateKey);
                }
                map.insert(record.hash, record.clone());
            }
            self.inner
                .user_tokens
                .lock(&record.user)
                .entry(record.user.clone())
                .or_default()
                .insert(record.hash);
            if self.inner.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                self.sweep_token_shard(self.inner.tokens.shard(&record.hash), record.created);
            }
            Ok(())
        })
    }

    fn find_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<TokenRecord>> {
        Box::pin(async move {
            let map = self.inner.tokens.lock(hash);
            Ok(map.get(hash).filter(|r| r.expires > now).cloned())
        })
    }

    fn renew_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        previous: OffsetDateTime,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut map = self.inner.tokens.lock(hash);
            match map.get_mut(hash) {
                Some(r) if r.expires > now && r.expires == previous && r.rotated.is_none() => {
                    r.expires = expires;
                    r.renewed = Some(now);
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    fn retire_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut map = self.inner.tokens.lock(hash);
            match map.get_mut(hash) {
                Some(r) => {
                    r.expires = r.expires.min(at);
                    r.rotated = Some(now);
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn delete_token<'a>(&'a self, hash: &'a TokenHash) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let removed = self.inner.tokens.lock(hash).remove(hash);
            match removed {
                Some(record) => {
                    self.unindex_token(&record.user, hash);
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn delete_user_tokens<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let hashes = self
                .inner
                .user_tokens
                .lock(user)
                .remove(user)
                .unwrap_or_default();
            let mut n = 0;
            for hash in hashes {
                if self.inner.tokens.lock(&hash).remove(&hash).is_some() {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    fn user_tokens<'a>(
        &'a self,
        user: &'a Username,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<TokenRecord>> {
        Box::pin(async move {
            // A copy of the user's index, so that no two locks are held at once here.
            let hashes: Vec<TokenHash> = {
                let index = self.inner.user_tokens.lock(user);
                index.get(user).into_iter().flatten().copied().collect()
            };
            Ok(hashes
                .iter()
                .filter_map(|hash| {
                    let map = self.inner.tokens.lock(hash);
                    map.get(hash)
                        .filter(|r| r.expires > now && r.user == *user)
                        .cloned()
                })
                .collect())
        })
    }

    fn touch_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        assign: Option<&'a DeviceId>,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // Checked and written under the shard lock: one atomic step, never an insert.
            let mut map = self.inner.tokens.lock(hash);
            let Some(r) = map.get_mut(hash).filter(|r| r.expires > now) else {
                return Ok(false);
            };
            match assign {
                None if r.last_seen <= not_after => {}
                Some(id) if r.device.is_none() => r.device = Some(id.clone()),
                _ => return Ok(false),
            }
            r.last_seen = now;
            Ok(true)
        })
    }

    fn delete_device<'a>(
        &'a self,
        user: &'a Username,
        device: &'a DeviceId,
    ) -> StoreFuture<'a, Option<TokenHash>> {
        Box::pin(async move {
            // The user's index stays locked for the whole search and delete, so the match on
            // (user, device) and the delete are one step. Lock order: the user index, then a
            // token shard; no other method holds a token shard while locking an index.
            let mut index = self.inner.user_tokens.lock(user);
            let Some(set) = index.get_mut(user) else {
                return Ok(None);
            };
            let found = set.iter().copied().find(|hash| {
                let mut map = self.inner.tokens.lock(hash);
                let mine = map
                    .get(hash)
                    .is_some_and(|r| r.user == *user && r.device.as_ref() == Some(device));
                mine && map.remove(hash).is_some()
            });
            if let Some(hash) = &found {
                set.remove(hash);
                if set.is_empty() {
                    index.remove(user);
                }
            }
            Ok(found)
        })
    }

    fn delete_user_tokens_except<'a>(
        &'a self,
        user: &'a Username,
        keep: &'a TokenHash,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let hashes: Vec<TokenHash> = {
                let mut index = self.inner.user_tokens.lock(user);
                let Some(set) = index.get_mut(user) else {
                    return Ok(0);
                };
                let others = set.iter().copied().filter(|h| h != keep).collect();
                set.retain(|h| h == keep);
                if set.is_empty() {
                    index.remove(user);
                }
                others
            };
            let mut n = 0;
            for hash in hashes {
                if self.inner.tokens.lock(&hash).remove(&hash).is_some() {
                    n += 1;
                }
            }
            Ok(n)
        })
    }
}

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
            let shard = self.inner.slates.lock(&key.user);
            Ok(shard
                .get(&key.user)
                .and_then(|slates| slates.get(&key.slate))
                .filter(|e| e.live(now))
                .map(Entry::to_slate_doc))
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
            check_size(key, doc)?;
            self.with_slate(key, |slates| {
                let current = slates.get(&key.slate).filter(|e| e.live(now));
                let expires = expiry.resolve(current.and_then(|e| e.expires));
                Ok(store(slates, key, doc.clone(), expires))
            })
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
            self.with_slate(key, |slates| {
                // Applied to a copy: any refusal below leaves the stored slate as it was.
                let (mut doc, old_expires) = match slates.get(&key.slate) {
                    Some(e) if e.live(now) => ((*e.doc).clone(), e.expires),
                    _ => (Document::new(), None),
                };
                apply_update(&mut doc, ops)?;
                check_size(key, &doc)?;
                let counter = match counter {
                    None => None,
                    Some(field) => Some(integer_at(&doc, field)?),
                };
                let version = store(slates, key, doc, expiry.resolve(old_expires));
                Ok(Updated { version, counter })
            })
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
            check_size(key, doc)?;
            self.with_slate(key, |slates| {
                let current = live_version(slates, &key.slate, now);
                if current != expected {
                    return Ok(None);
                }
                Ok(Some(store(slates, key, doc.clone(), expires)))
            })
        })
    }

    fn delete_slate<'a>(&'a self, key: &'a SlateKey, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.with_slate(key, |slates| {
                Ok(slates.remove(&key.slate).is_some_and(|e| e.live(now)))
            })
        })
    }

    fn delete_user_slates<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.inner.slates.lock(user).remove(user);
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
            self.with_slate(key, |slates| {
                match slates.get(&key.slate) {
                    Some(e) if e.live(now) => {}
                    // Absent, or expired: left to `purge_expired`, like a read leaves it.
                    _ => return Ok(None),
                }
                Ok(slates.remove(&key.slate).map(|e| e.to_slate_doc()))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[tokio::test]
    async fn purge_and_sweep_remove_only_expired_records() {
        use crate::names::{SlateName, Username};
        use crate::token::Token;
        use time::Duration;

        let store = MemoryStore::new();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let ada = Username::new("ada").unwrap();
        let record = |expires| TokenRecord {
            hash: Token::generate().unwrap().hash(),
            user: ada.clone(),
            created: now,
            expires,
            renewed: None,
            rotated: None,
            device: Some(DeviceId::generate().unwrap()),
            last_seen: now,
            label: String::new(),
            ip: None,
        };
        let live = record(now + Duration::hours(1));
        let dead = record(now + Duration::minutes(1));
        store.insert_token(&live).await.unwrap();
        store.insert_token(&dead).await.unwrap();
        let key = |s: &str| SlateKey::new(ada.clone(), SlateName::new(s).unwrap());
        store
            .put_slate(&key("keep"), &doc! {"a": 1}, Expiry::Keep, now)
            .await
            .unwrap();
        store
            .put_slate(
                &key("gone"),
                &doc! {"a": 1},
                Expiry::At(now + Duration::minutes(1)),
                now,
            )
            .await
            .unwrap();

        let later = now + Duration::minutes(2);
        assert_eq!(store.purge_expired(later), 2);
        assert_eq!(store.token_count(), 1);
        assert!(store.find_token(&live.hash, later).await.unwrap().is_some());
        assert_eq!(store.dump_slates().len(), 1);
        // The user index lost the purged token: logging out everywhere counts one.
        assert_eq!(store.delete_user_tokens(&ada).await.unwrap(), 1);

        // The amortised sweep on insert uses the same shard sweep.
        let stale = record(now + Duration::minutes(1));
        store.insert_token(&stale).await.unwrap();
        let shard = store.inner.tokens.shard(&stale.hash);
        assert_eq!(store.sweep_token_shard(shard, later), 1);
        assert_eq!(store.token_count(), 0);
    }
}
