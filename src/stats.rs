//! Statistics: cheap counters on the hot path, a report only when asked.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::CacheStats;

const LATENCY_BUCKETS: usize = 32;

/// The live counters. One relaxed atomic add per event; nothing is locked.
#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub authenticated: AtomicU64,
    pub anonymous: AtomicU64,
    pub malformed_tokens: AtomicU64,
    pub unknown_tokens: AtomicU64,
    pub renewals: AtomicU64,
    pub logins: AtomicU64,
    pub logouts: AtomicU64,
    pub user_slate_loads: AtomicU64,
    pub slate_reads: AtomicU64,
    pub slate_writes: AtomicU64,
    pub cas_conflicts: AtomicU64,
    pub cas_retries: AtomicU64,
    pub store_errors: AtomicU64,
    /// Calls that reached the stores (shared with the counting decorator).
    pub store_operations: Arc<AtomicU64>,
    lookup_count: AtomicU64,
    lookup_nanos: AtomicU64,
    lookup_max_nanos: AtomicU64,
    /// Bucket `i` counts lookups that took less than `2^i` microseconds.
    lookup_buckets: [AtomicU64; LATENCY_BUCKETS],
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    pub(crate) fn record_lookup(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.lookup_count.fetch_add(1, Relaxed);
        self.lookup_nanos.fetch_add(nanos, Relaxed);
        self.lookup_max_nanos.fetch_max(nanos, Relaxed);
        let micros = nanos / 1_000;
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        self.lookup_buckets[bucket.min(LATENCY_BUCKETS - 1)].fetch_add(1, Relaxed);
    }

    /// The counters now, with the cache's (`None`: no cache).
    pub(crate) fn snapshot(&self, cache: Option<CacheStats>) -> Stats {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let count = get(&self.lookup_count);
        let buckets: Vec<u64> = self.lookup_buckets.iter().map(get).collect();
        let percentile = |p: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            let rank = ((count as f64) * p).ceil() as u64;
            let mut seen = 0;
            for (i, n) in buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return 1u64 << i;
                }
            }
            1u64 << (LATENCY_BUCKETS - 1)
        };
        let requests = get(&self.requests);
        // Round trips: the calls that reached the stores, and the invalidations published.
        let store_operations =
            get(&self.store_operations) + cache.as_ref().map_or(0, |c| c.invalidations_published);
        let authenticated = get(&self.authenticated);
        let slate_reads = get(&self.slate_reads);
        let slate_writes = get(&self.slate_writes);
        Stats {
            requests,
            authenticated,
            anonymous: get(&self.anonymous),
            malformed_tokens: get(&self.malformed_tokens),
            unknown_tokens: get(&self.unknown_tokens),
            renewals: get(&self.renewals),
            logins: get(&self.logins),
            logouts: get(&self.logouts),
            user_slate_loads: get(&self.user_slate_loads),
            slate_reads,
            slate_writes,
            cas_conflicts: get(&self.cas_conflicts),
            cas_retries: get(&self.cas_retries),
            store_errors: get(&self.store_errors),
            events_dropped: 0,
            lookup: LookupLatency {
                count,
                mean_micros: if count == 0 {
                    0.0
                } else {
                    get(&self.lookup_nanos) as f64 / count as f64 / 1_000.0
                },
                max_micros: get(&self.lookup_max_nanos) as f64 / 1_000.0,
                p50_micros_at_most: percentile(0.5),
                p99_micros_at_most: percentile(0.99),
            },
            store_operations,
            store_operations_per_request: if requests == 0 {
                0.0
            } else {
                store_operations as f64 / requests as f64
            },
            cache,
        }
    }
}

/// A snapshot of the counters since start-up, serializable to JSON.
///
/// Read it with [`Engine::stats`](crate::Engine::stats), or mount
/// [`stats_handler`](crate::stats_handler).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Requests that went through the layer.
    pub requests: u64,
    /// Requests whose token was checked (an extractor asked who the user is) and valid.
    pub authenticated: u64,
    /// Requests whose identity was asked for and that had no valid token (no cookie,
    /// malformed, unknown or expired). A request that never asks is neither authenticated
    /// nor anonymous.
    pub anonymous: u64,
    /// Cookies refused before any store call (wrong length or alphabet, ambiguous).
    pub malformed_tokens: u64,
    /// Well-formed tokens the store did not know, or that had expired.
    pub unknown_tokens: u64,
    /// Sliding renewals performed.
    pub renewals: u64,
    /// Logins (tokens issued by `login` and `rotate`).
    pub logins: u64,
    /// Logouts (single and everywhere).
    pub logouts: u64,
    /// Profiles (user slates) read: at most one per request, on the first profile read.
    pub user_slate_loads: u64,
    /// Slate reads by handlers.
    pub slate_reads: u64,
    /// Slate writes by handlers (put, operators, compare-and-swap, delete).
    pub slate_writes: u64,
    /// Compare-and-swap attempts that found the version changed.
    pub cas_conflicts: u64,
    /// Compare-and-swap attempts after the first.
    pub cas_retries: u64,
    /// Store operations that failed.
    pub store_errors: u64,
    /// Lifecycle events the subscriber did not get because its queue was full (see
    /// [`EngineBuilder::auth_events`](crate::EngineBuilder::auth_events)).
    pub events_dropped: u64,
    /// Latency of the token lookup.
    pub lookup: LookupLatency,
    /// Round trips to the stores since start: every store call that was not answered by the
    /// cache (token lookups, renewals, profile and slate reads and writes, logins,
    /// logouts), plus the invalidations published. The cache's own tail of the channel is
    /// not counted (it runs in the background, not per request).
    pub store_operations: u64,
    /// [`store_operations`](Self::store_operations) divided by requests.
    pub store_operations_per_request: f64,
    /// The cache's counters (`None`: no cache): hits, misses, hit ratio, invalidations
    /// received, invalidation lag.
    pub cache: Option<CacheStats>,
}

/// Token lookup latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LookupLatency {
    /// Lookups measured.
    pub count: u64,
    /// Mean, in microseconds.
    pub mean_micros: f64,
    /// Maximum, in microseconds.
    pub max_micros: f64,
    /// Upper bound of the median (power-of-two bucket), in microseconds.
    pub p50_micros_at_most: u64,
    /// Upper bound of the 99th percentile (power-of-two bucket), in microseconds.
    pub p99_micros_at_most: u64,
}
