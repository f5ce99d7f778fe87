//! Statistics: cheap counters on the hot path, a report only when asked.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::store::CacheStats;

const LATENCY_BUCKETS: usize = 32;
/// One token lookup in this many (per thread) is timed for the latency figures: two clock
/// reads and four shared counters are too dear for every request.
pub(crate) const LOOKUP_SAMPLE_EVERY: u32 = 16;

thread_local! {
    /// Lookups on this thread since the last timed one.
    static UNTIMED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

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
    lookup_sampled: AtomicU64,
    lookup_nanos: AtomicU64,
    lookup_max_nanos: AtomicU64,
    /// Bucket `i` counts lookups that took less than `2^i` microseconds.
    lookup_buckets: [AtomicU64; LATENCY_BUCKETS],
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    /// Starts a token lookup: `Some(now)` when this one is to be timed (one in
    /// [`LOOKUP_SAMPLE_EVERY`] on each thread), for [`lookup_done`](Self::lookup_done).
    pub(crate) fn lookup_started(&self) -> Option<Instant> {
        UNTIMED.with(|n| {
            let seen = n.get();
            if seen == 0 {
                n.set(LOOKUP_SAMPLE_EVERY - 1);
                Some(Instant::now())
            } else {
                n.set(seen - 1);
                None
            }
        })
    }

    /// Counts a token lookup, and its latency if it was timed.
    pub(crate) fn lookup_done(&self, started: Option<Instant>) {
        self.lookup_count.fetch_add(1, Relaxed);
        if let Some(started) = started {
            self.record_lookup(started.elapsed());
        }
    }

    fn record_lookup(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.lookup_sampled.fetch_add(1, Relaxed);
        self.lookup_nanos.fetch_add(nanos, Relaxed);
        self.lookup_max_nanos.fetch_max(nanos, Relaxed);
        let micros = nanos / 1_000;
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        self.lookup_buckets[bucket.min(LATENCY_BUCKETS - 1)].fetch_add(1, Relaxed);
    }

    /// The counters now, with the cache's (`None`: no cache).
    pub(crate) fn snapshot(&self, cache: Option<CacheStats>) -> Stats {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let sampled = get(&self.lookup_sampled);
        let buckets: Vec<u64> = self.lookup_buckets.iter().map(get).collect();
        let percentile = |p: f64| -> u64 {
            if sampled == 0 {
                return 0;
            }
            let rank = ((sampled as f64) * p).ceil() as u64;
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
                count: get(&self.lookup_count),
                sampled,
                mean_micros: if sampled == 0 {
                    0.0
                } else {
                    get(&self.lookup_nanos) as f64 / sampled as f64 / 1_000.0
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

/// Token lookups, and their latency measured on a sample: one lookup in 16 on each thread
/// is timed (the first of each thread included), so that the figures cost no clock read on
/// most requests. The latency fields describe the sampled lookups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LookupLatency {
    /// Token lookups, all of them.
    pub count: u64,
    /// Lookups timed (the sample the latency fields describe).
    pub sampled: u64,
    /// Mean, in microseconds.
    pub mean_micros: f64,
    /// Maximum, in microseconds.
    pub max_micros: f64,
    /// Upper bound of the median (power-of-two bucket), in microseconds.
    pub p50_micros_at_most: u64,
    /// Upper bound of the 99th percentile (power-of-two bucket), in microseconds.
    pub p99_micros_at_most: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lookup_is_counted_and_one_in_sixteen_timed() {
        let counters = Counters::default();
        // A fresh thread: its first lookup is timed, then one in 16.
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..40 {
                    let started = counters.lookup_started();
                    counters.lookup_done(started);
                }
            });
        });
        let lookup = counters.snapshot(None).lookup;
        assert_eq!(lookup.count, 40);
        assert_eq!(lookup.sampled, 3, "lookups 1, 17 and 33");
        assert!(lookup.p99_micros_at_most >= 1);
    }
}
