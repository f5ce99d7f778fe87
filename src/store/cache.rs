//! [`Cached`]: a store decorator that keeps token briefs and profiles (user slates) in
//! process, bounded, and serves them only while its [`InvalidationChannel`] is fresh.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bson::Document;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::invalidation::{Freshness, Invalidation, InvalidationChannel, InvalidationSink};
use super::{
    Expiry, SlateDoc, SlateKey, SlateStore, StoreFuture, StoreOptions, TokenBrief, TokenRecord,
    TokenStore, UpdateOp, Updated,
};
use crate::device_id::DeviceId;
use crate::error::Result;
use crate::names::{SlateName, Username};
use crate::sync::lock;
use crate::token::TokenHash;

/// The bounds and the safety margin of a [`Cached`] store. Set on the engine with
/// [`EngineBuilder::cache`](crate::EngineBuilder::cache).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Most entries kept (token briefs and profiles together). Default 100,000.
    pub max_entries: usize,
    /// Most bytes kept, as estimated from the entries' BSON size. Default 64 MiB.
    pub max_bytes: usize,
    /// The cache serves only while its channel has confirmed delivery of every invalidation
    /// published up to at most this long ago; beyond it every read goes to the store. It
    /// bounds how long a logged-out token or an overwritten profile can still be served
    /// when the channel fails or falls behind. Default 1 s (MongoDB's channel confirms every
    /// 100 ms when idle, `store::TAIL_AWAIT`, and on FerretDB about every 10 ms plus a poll,
    /// `store::TAIL_POLL`); keep it well above the channel's confirmation interval, or the
    /// cache rarely serves.
    pub staleness_bound: Duration,
    /// An entry older than this is read again from the store, even with a fresh channel: the
    /// backstop for an instance that wrote but could not publish (it reported the write as
    /// failed) and was never retried. Default 60 s.
    pub max_age: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_entries: 100_000,
            max_bytes: 64 * 1024 * 1024,
            staleness_bound: Duration::from_secs(1),
            max_age: Duration::from_secs(60),
        }
    }
}

impl CacheSettings {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`max_entries`](Self::max_entries).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets [`staleness_bound`](Self::staleness_bound).
    pub fn staleness_bound(mut self, d: Duration) -> Self {
        self.staleness_bound = d;
        self
    }

    /// Sets [`max_age`](Self::max_age).
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }
}

/// A snapshot of a cache's counters, part of [`Stats`](crate::Stats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads sent to the store because the entry was not cached (or too old).
    pub misses: u64,
    /// `hits / (hits + misses + bypassed)`, 0 before any read.
    pub hit_ratio: f64,
    /// Reads sent to the store because the channel was not fresh enough to serve.
    pub bypassed: u64,
    /// Invalidations received from the channel (this instance's own included).
    pub invalidations_received: u64,
    /// Invalidations this instance published.
    pub invalidations_published: u64,
    /// Times the whole cache was dropped because the channel may have missed
    /// invalidations: it reconnected, or (`MongoStore`'s channel) a publication was missing
    /// from an instance's sequence or an unreadable document arrived.
    pub flushes: u64,
    /// Whether the cache serves now (the channel is within the staleness bound).
    pub serving: bool,
    /// How far behind the channel may be now, in milliseconds (`None`: not connected).
    pub invalidation_lag_ms: Option<f64>,
    /// Entries kept now.
    pub entries: u64,
    /// Estimated bytes kept now.
    pub bytes: u64,
}

/// A store decorator that caches what a request needs of token records
/// ([`TokenStore::find_token_ready`] answers from it; [`TokenStore::find_token`], which
/// answers the full record, reads the store and fills it) and profiles
/// ([`SlateStore::get_slate`] of the user slate) in process, and forwards everything else.
///
/// - **Invalidation**: every write that changes a cached item (a token's renewal, rotation
///   or deletion, log out everywhere, any write to a profile) drops it here and is
///   published on the [`InvalidationChannel`], which every instance's cache receives. A
///   write whose publication fails is reported as failed, like a write whose reply was lost.
/// - **Safe when the channel fails**: entries are served only while the channel has
///   confirmed delivery up to at most [`staleness_bound`](CacheSettings::staleness_bound)
///   ago; otherwise reads go to the store. A channel that reconnects drops every entry.
/// - **No stale refill**: a read that started before an invalidation arrived does not fill
///   the cache with what it read.
/// - **Bounded** in entries and estimated bytes.
pub struct Cached {
    tokens: Arc<dyn TokenStore>,
    slates: Arc<dyn SlateStore>,
    channel: Arc<dyn InvalidationChannel>,
    state: Arc<State>,
    freshness: Arc<Freshness>,
    settings: CacheSettings,
}

struct Entry<T> {
    value: T,
    at: Instant,
    bytes: usize,
}

#[derive(Default)]
struct Maps {
    /// Bumped by every invalidation: a read that started at another generation does not
    /// fill the cache.
    generation: u64,
    tokens: HashMap<TokenHash, Entry<TokenBrief>>,
    profiles: HashMap<Username, Entry<Option<SlateDoc>>>,
    bytes: usize,
}

#[derive(Default)]
struct State {
    maps: Mutex<Maps>,
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
    received: AtomicU64,
    published: AtomicU64,
    flushes: AtomicU64,
}

impl State {
    fn maps(&self) -> MutexGuard<'_, Maps> {
        lock(&self.maps)
    }

    fn drop_item(&self, invalidation: &Invalidation) {
        let mut maps = self.maps();
        let maps = &mut *maps;
        maps.generation += 1;
        match invalidation {
            Invalidation::Token(hash) => {
                if let Some(e) = maps.tokens.remove(hash) {
                    maps.bytes -= e.bytes;
                }
            }
            Invalidation::UserTokens(user) => {
                let bytes = &mut maps.bytes;
                maps.tokens.retain(|_, e| {
                    let keep = e.value.user != *user;
                    if !keep {
                        *bytes -= e.bytes;
                    }
                    keep
                });
            }
            Invalidation::Profile(user) => {
                if let Some(e) = maps.profiles.remove(user) {
                    maps.bytes -= e.bytes;
                }
            }
        }
    }
}

impl InvalidationSink for State {
    fn invalidate(&self, invalidation: &Invalidation) {
        self.received.fetch_add(1, Relaxed);
        self.drop_item(invalidation);
    }

    fn flush(&self) {
        self.flushes.fetch_add(1, Relaxed);
        let mut maps = self.maps();
        let generation = maps.generation + 1;
        *maps = Maps {
            generation,
            ..Maps::default()
        };
    }
}

impl Cached {
    /// Caches `tokens` and `slates`, kept honest by `channel` (subscribed now).
    pub fn new(
        tokens: Arc<dyn TokenStore>,
        slates: Arc<dyn SlateStore>,
        channel: Arc<dyn InvalidationChannel>,
        settings: CacheSettings,
    ) -> Self {
        let state = Arc::new(State::default());
        let sink: Arc<dyn InvalidationSink> = state.clone();
        let weak: Weak<dyn InvalidationSink> = Arc::downgrade(&sink);
        let freshness = channel.subscribe(weak);
        Cached {
            tokens,
            slates,
            channel,
            state,
            freshness,
            settings,
        }
    }

    /// The counters and the channel's state now.
    pub fn stats(&self) -> CacheStats {
        let s = &self.state;
        let (hits, misses, bypassed) = (
            s.hits.load(Relaxed),
            s.misses.load(Relaxed),
            s.bypassed.load(Relaxed),
        );
        let reads = hits + misses + bypassed;
        let (entries, bytes) = {
            let maps = s.maps();
            (maps.tokens.len() + maps.profiles.len(), maps.bytes)
        };
        let lag = self.freshness.lag();
        CacheStats {
            hits,
            misses,
            hit_ratio: if reads == 0 {
                0.0
            } else {
                hits as f64 / reads as f64
            },
            bypassed,
            invalidations_received: s.received.load(Relaxed),
            invalidations_published: s.published.load(Relaxed),
            flushes: s.flushes.load(Relaxed),
            serving: self.serving(),
            invalidation_lag_ms: lag.map(|d| d.as_secs_f64() * 1000.0),
            entries: entries as u64,
            bytes: bytes as u64,
        }
    }

    /// Whether entries may be served now.
    fn serving(&self) -> bool {
        self.freshness
            .lag()
            .is_some_and(|lag| lag <= self.settings.staleness_bound)
    }

    /// A live entry, counted as a hit; or the generation a miss starts at (`None`: the
    /// cache does not serve now, and will not be filled), counted as a miss (a bypass).
    fn lookup<K: Eq + Hash, T: Clone>(
        &self,
        map: impl Fn(&Maps) -> &HashMap<K, Entry<T>>,
        key: &K,
        live: impl Fn(&T) -> bool,
    ) -> std::result::Result<T, Option<u64>> {
        self.probe(map, key, live)
            .inspect_err(|started| self.count_miss(*started))
    }

    /// [`lookup`](Self::lookup) with the miss not counted yet.
    fn probe<K: Eq + Hash, T: Clone>(
        &self,
        map: impl Fn(&Maps) -> &HashMap<K, Entry<T>>,
        key: &K,
        live: impl Fn(&T) -> bool,
    ) -> std::result::Result<T, Option<u64>> {
        if !self.serving() {
            return Err(None);
        }
        let maps = self.state.maps();
        match map(&maps).get(key) {
            Some(e) if e.at.elapsed() < self.settings.max_age && live(&e.value) => {
                self.state.hits.fetch_add(1, Relaxed);
                Ok(e.value.clone())
            }
            _ => Err(Some(maps.generation)),
        }
    }

    /// Counts a miss that started at `started` (`None`: the cache did not serve).
    fn count_miss(&self, started: Option<u64>) {
        let counter = match started {
            Some(_) => &self.state.misses,
            None => &self.state.bypassed,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Keeps what a miss read, unless an invalidation arrived since it started (or the
    /// channel stopped being fresh); evicts to stay within bounds.
    fn fill<K: Eq + Hash, T>(
        &self,
        map: impl Fn(&mut Maps) -> &mut HashMap<K, Entry<T>>,
        started: u64,
        key: K,
        value: T,
        bytes: usize,
    ) {
        if !self.serving() {
            return;
        }
        let mut maps = self.state.maps();
        if maps.generation != started {
            return;
        }
        let entry = Entry {
            value,
            at: Instant::now(),
            bytes,
        };
        maps.bytes += bytes;
        if let Some(old) = map(&mut maps).insert(key, entry) {
            maps.bytes -= old.bytes;
        }
        while maps.tokens.len() + maps.profiles.len() > self.settings.max_entries
            || maps.bytes > self.settings.max_bytes
        {
            if !evict_one(&mut maps) {
                break;
            }
        }
    }

    /// Keeps the brief a token miss that started at `started` read.
    fn fill_token(&self, started: Option<u64>, hash: &TokenHash, brief: Option<TokenBrief>) {
        if let (Some(started), Some(b)) = (started, brief) {
            let bytes = token_bytes(&b);
            self.fill(|m| &mut m.tokens, started, *hash, b, bytes);
        }
    }

    /// The generation a read that does not consult the cache starts at (`None`: the cache
    /// does not serve now), counted as a miss (a bypass).
    fn miss(&self) -> Option<u64> {
        let started = self.serving().then(|| self.state.maps().generation);
        self.count_miss(started);
        started
    }

    /// Drops `invalidation` here, then publishes it. The operation's error wins; then a
    /// failed publication is the error (the write happened, other instances may not know).
    async fn invalidating<T>(&self, invalidation: Invalidation, result: Result<T>) -> Result<T> {
        self.state.drop_item(&invalidation);
        let published = self.channel.publish(&invalidation).await;
        if published.is_ok() {
            self.state.published.fetch_add(1, Relaxed);
        }
        let value = result?;
        published?;
        Ok(value)
    }
}

/// Evicts one entry from the larger map. Returns whether one was evicted.
fn evict_one(maps: &mut Maps) -> bool {
    let freed = if maps.tokens.len() >= maps.profiles.len() {
        let key = maps.tokens.keys().next().copied();
        key.and_then(|k| maps.tokens.remove(&k)).map(|e| e.bytes)
    } else {
        let key = maps.profiles.keys().next().cloned();
        key.and_then(|k| maps.profiles.remove(&k)).map(|e| e.bytes)
    };
    match freed {
        Some(bytes) => {
            maps.bytes -= bytes;
            true
        }
        None => false,
    }
}

fn token_bytes(brief: &TokenBrief) -> usize {
    std::mem::size_of::<Entry<TokenBrief>>() + 32 + brief.user.as_str().len()
}

fn is_profile(key: &SlateKey) -> bool {
    key.slate.as_str() == SlateName::USER
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenStore for Cached {
    fn prepare_tokens<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        self.tokens.prepare_tokens(options)
    }

    fn insert_token<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()> {
        // A fresh random token: no instance can have it cached.
        self.tokens.insert_token(record)
    }

    /// The full record from the store (the cache keeps briefs), counted as a miss; fills
    /// the cache.
    fn find_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<TokenRecord>> {
        Box::pin(async move {
            let started = self.miss();
            let record = self.tokens.find_token(hash, now).await?;
            let brief = record.as_ref().map(TokenBrief::from);
            self.fill_token(started, hash, brief);
            Ok(record)
        })
    }

    /// A hit at once; on a miss, the answer of the store below if it has one at hand
    /// (nothing is counted when it has none: `find_token` comes next and counts).
    fn find_token_ready(&self, hash: &TokenHash, now: i64) -> Option<Result<Option<TokenBrief>>> {
        let started = match self.probe(|m| &m.tokens, hash, |b| b.expires > now) {
            Ok(brief) => return Some(Ok(Some(brief))),
            Err(started) => started,
        };
        let answer = self.tokens.find_token_ready(hash, now)?;
        self.count_miss(started);
        if let Ok(brief) = &answer {
            self.fill_token(started, hash, brief.clone());
        }
        Some(answer)
    }

    fn renew_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        previous: OffsetDateTime,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let result = self.tokens.renew_token(hash, previous, expires, now).await;
            self.invalidating(Invalidation::Token(*hash), result).await
        })
    }

    fn retire_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let result = self.tokens.retire_token(hash, at, now).await;
            self.invalidating(Invalidation::Token(*hash), result).await
        })
    }

    fn delete_token<'a>(&'a self, hash: &'a TokenHash) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let result = self.tokens.delete_token(hash).await;
            self.invalidating(Invalidation::Token(*hash), result).await
        })
    }

    fn delete_user_tokens<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let result = self.tokens.delete_user_tokens(user).await;
            let invalidation = Invalidation::UserTokens(user.clone());
            self.invalidating(invalidation, result).await
        })
    }

    /// Not cached: the devices page reads the store.
    fn user_tokens<'a>(
        &'a self,
        user: &'a Username,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<TokenRecord>> {
        self.tokens.user_tokens(user, now)
    }

    /// Drops the record here whatever the outcome (its last-seen time, or its device id,
    /// changed here or on another instance), without publishing: a stale last-seen time
    /// elsewhere only makes that instance try its own conditional touch, which fails and
    /// drops its entry in turn. Once per interval per device, not per request.
    fn touch_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        assign: Option<&'a DeviceId>,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let result = self.tokens.touch_token(hash, assign, not_after, now).await;
            self.state.drop_item(&Invalidation::Token(*hash));
            result
        })
    }

    fn delete_device<'a>(
        &'a self,
        user: &'a Username,
        device: &'a DeviceId,
    ) -> StoreFuture<'a, Option<TokenHash>> {
        Box::pin(async move {
            let result = self.tokens.delete_device(user, device).await;
            match result {
                Ok(None) => Ok(None), // nothing was deleted
                Ok(Some(hash)) => {
                    self.invalidating(Invalidation::Token(hash), Ok(Some(hash)))
                        .await
                }
                // Deleted or not, which token is unknown: every token of the user.
                Err(e) => {
                    let invalidation = Invalidation::UserTokens(user.clone());
                    self.invalidating(invalidation, Err(e)).await
                }
            }
        })
    }

    fn delete_user_tokens_except<'a>(
        &'a self,
        user: &'a Username,
        keep: &'a TokenHash,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let result = self.tokens.delete_user_tokens_except(user, keep).await;
            let invalidation = Invalidation::UserTokens(user.clone());
            self.invalidating(invalidation, result).await
        })
    }
}

impl Cached {
    /// A write to the slate `key`: invalidated and published if it is a profile.
    fn slate_write<'a, T: Send + 'a>(
        &'a self,
        key: &'a SlateKey,
        write: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        if !is_profile(key) {
            return write;
        }
        Box::pin(async move {
            let result = write.await;
            let invalidation = Invalidation::Profile(key.user.clone());
            self.invalidating(invalidation, result).await
        })
    }
}

impl SlateStore for Cached {
    fn prepare_slates<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        self.slates.prepare_slates(options)
    }

    fn get_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        if !is_profile(key) {
            return self.slates.get_slate(key, now);
        }
        Box::pin(async move {
            let live =
                |s: &Option<SlateDoc>| s.as_ref().is_none_or(|s| s.expires.is_none_or(|e| e > now));
            let started = match self.lookup(|m| &m.profiles, &key.user, live) {
                Ok(slate) => return Ok(slate),
                Err(started) => started,
            };
            let slate = self.slates.get_slate(key, now).await?;
            if let Some(started) = started {
                let bytes = std::mem::size_of::<Entry<Option<SlateDoc>>>()
                    + key.user.as_str().len()
                    + slate.as_ref().map_or(0, |s| s.doc.as_bytes().len());
                let user = key.user.clone();
                self.fill(|m| &mut m.profiles, started, user, slate.clone(), bytes);
            }
            Ok(slate)
        })
    }

    fn put_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        doc: &'a Document,
        expiry: Expiry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, i64> {
        self.slate_write(key, self.slates.put_slate(key, doc, expiry, now))
    }

    fn update_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        ops: &'a [UpdateOp],
        expiry: Expiry,
        counter: Option<&'a str>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Updated> {
        let write = self.slates.update_slate(key, ops, expiry, counter, now);
        self.slate_write(key, write)
    }

    fn replace_slate_if<'a>(
        &'a self,
        key: &'a SlateKey,
        expected: Option<i64>,
        doc: &'a Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<i64>> {
        let write = self
            .slates
            .replace_slate_if(key, expected, doc, expires, now);
        self.slate_write(key, write)
    }

    fn delete_slate<'a>(&'a self, key: &'a SlateKey, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        self.slate_write(key, self.slates.delete_slate(key, now))
    }

    fn take_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        self.slate_write(key, self.slates.take_slate(key, now))
    }

    fn delete_user_slates<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let result = self.slates.delete_user_slates(user).await;
            self.invalidating(Invalidation::Profile(user.clone()), result)
                .await
        })
    }
}
