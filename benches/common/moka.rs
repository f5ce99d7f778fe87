//! A moka cache in front of tower-sessions 0.15's `MemoryStore`, for scenarios 1 and 4: what
//! `CachingSessionStore<MokaStore, MemoryStore>` is in tower-sessions' documentation.
//!
//! `tower-sessions-moka-store` 0.15.0 is built on `tower-sessions-core` 0.14, so its
//! `MokaStore` does not implement 0.15's `SessionStore` and cannot be put in front of a 0.15
//! store (the compiler says so). This is the same store, the same lines as that crate's
//! (a `moka::future::Cache<Id, Record>` with a per-record expiry), against 0.15.

use std::time::{Duration as StdDuration, Instant as StdInstant};

use async_trait::async_trait;
use moka::future::Cache;
use moka::Expiry;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{CachingSessionStore, MemoryStore};

/// The cache's capacity in sessions: the figure of `tower-sessions-moka-store`'s own
/// example (`MokaStore::new(Some(2_000))`).
pub const CAPACITY: u64 = 2_000;

/// tower-sessions' memory store behind the moka cache.
pub type CachedMemoryStore = CachingSessionStore<MokaStore, MemoryStore>;

/// A fresh cached store: a moka cache of [`CAPACITY`] sessions over a `MemoryStore`.
pub fn cached_memory_store() -> CachedMemoryStore {
    CachingSessionStore::new(MokaStore::new(Some(CAPACITY)), MemoryStore::default())
}

/// `tower_sessions_moka_store::MokaStore`, against tower-sessions 0.15.
#[derive(Debug, Clone)]
pub struct MokaStore {
    cache: Cache<Id, Record>,
}

impl MokaStore {
    /// A cache of at most `max_capacity` sessions, each expiring with its record.
    pub fn new(max_capacity: Option<u64>) -> Self {
        let builder = match max_capacity {
            Some(capacity) => Cache::builder().max_capacity(capacity),
            None => Cache::builder(),
        };
        MokaStore {
            cache: builder.expire_after(SessionExpiry).build(),
        }
    }
}

#[async_trait]
impl SessionStore for MokaStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while self.cache.contains_key(&record.id) {
            record.id = Id::default();
        }
        self.cache.insert(record.id, record.clone()).await;
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.cache.insert(record.id, record.clone()).await;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.cache.get(session_id).await)
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.cache.invalidate(session_id).await;
        Ok(())
    }
}

/// Each cached record expires at its session's expiry date.
struct SessionExpiry;

fn until_expiry(record: &Record) -> StdDuration {
    let now = OffsetDateTime::now_utc();
    if record.expiry_date > now {
        (record.expiry_date - now).unsigned_abs()
    } else {
        StdDuration::default()
    }
}

impl Expiry<Id, Record> for SessionExpiry {
    fn expire_after_create(&self, _: &Id, record: &Record, _: StdInstant) -> Option<StdDuration> {
        Some(until_expiry(record))
    }

    fn expire_after_update(
        &self,
        _: &Id,
        record: &Record,
        _: StdInstant,
        _: Option<StdDuration>,
    ) -> Option<StdDuration> {
        Some(until_expiry(record))
    }
}
