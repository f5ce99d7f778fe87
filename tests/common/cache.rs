//! Waiting on an engine's cache: the tests that run with the cache on wait for a state of
//! its [`CacheStats`] (serving, an invalidation received) rather than for a fixed time.

use std::time::{Duration, Instant};

use slates::store::CacheStats;
use slates::Engine;

/// Waits (at most 10 s, polling every 5 ms) until `check` holds of `engine`'s cache stats;
/// fails the test, naming `what` and the last stats, if it never does.
pub async fn until_cache(engine: &Engine, what: &str, check: impl Fn(&CacheStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = engine.stats().cache.expect("cache on");
        if check(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: never; now {stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
