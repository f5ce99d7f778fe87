//! Issue 12, points 2-5, on the memory store: two engines ("instances") share one store and
//! one invalidation channel, each behind its own `Hooked` decorator that records the store
//! calls it makes. A warm request costs no store call; every write that changes a cached
//! item reaches the other instance; a read racing an invalidation never refills the cache
//! with what it read; a channel that is down (or a publication that fails) never lets a
//! logged-out token through; the cache is bounded.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration as StdDuration, Instant};

use common::harness::Client;
use common::hooked::{injected, Call, Hooked, Phase};
use http::StatusCode;
use slates::store::{
    CacheSettings, Freshness, Invalidation, InvalidationChannel, InvalidationSink, LocalChannel,
    StoreFuture,
};
use slates::{Engine, ManualClock, MemoryStore, Store};
use tokio::sync::Notify;

/// A channel a test can break: while down, publications are lost (as on a partition) and
/// freshness is lost; coming back reconnects (flush) and confirms. Publishing can be made
/// to fail.
#[derive(Clone, Default)]
struct TestChannel {
    inner: LocalChannel,
    state: Arc<TestState>,
}

#[derive(Default)]
struct TestState {
    down: AtomicBool,
    fail_publish: AtomicBool,
    subs: Mutex<Vec<Subscription>>,
}

/// A subscriber and its freshness.
type Subscription = (Weak<dyn InvalidationSink>, Arc<Freshness>);

impl TestChannel {
    fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
        for (sink, freshness) in self.state.subs.lock().unwrap().iter() {
            if down {
                freshness.lose();
            } else {
                if let Some(sink) = sink.upgrade() {
                    sink.flush();
                }
                freshness.confirm(Instant::now());
            }
        }
    }

    /// Confirms freshness now (a live channel does this continually).
    fn tick(&self) {
        if !self.state.down.load(Ordering::SeqCst) {
            for (_, freshness) in self.state.subs.lock().unwrap().iter() {
                freshness.confirm(Instant::now());
            }
        }
    }
}

impl InvalidationChannel for TestChannel {
    fn publish<'a>(&'a self, invalidation: &'a Invalidation) -> StoreFuture<'a, ()> {
        if self.state.fail_publish.load(Ordering::SeqCst) {
            return Box::pin(async { Err(injected()) });
        }
        if self.state.down.load(Ordering::SeqCst) {
            return Box::pin(async { Ok(()) }); // lost on the way
        }
        self.inner.publish(invalidation)
    }

    fn subscribe(&self, sink: Weak<dyn InvalidationSink>) -> Arc<Freshness> {
        self.inner.subscribe(sink.clone());
        let freshness = Arc::new(Freshness::new());
        freshness.confirm(Instant::now());
        self.state
            .subs
            .lock()
            .unwrap()
            .push((sink, Arc::clone(&freshness)));
        freshness
    }
}

/// One instance: an engine with a cache on `channel`, over the shared `store`, behind its
/// own `Hooked` (the calls this instance makes).
async fn instance(
    store: &Arc<dyn Store>,
    channel: Arc<dyn InvalidationChannel>,
    clock: &ManualClock,
    settings: CacheSettings,
) -> (Engine, Hooked, Client) {
    let hooked = Hooked::new(Arc::clone(store));
    let engine = Engine::builder_shared(hooked.store())
        .cache(settings)
        .cache_channel(channel)
        .clock(clock.clone())
        .secure(false)
        .build()
        .await
        .unwrap();
    hooked.clear_calls();
    let client = Client::new(common::suite::test_app(&engine));
    (engine, hooked, client)
}

fn long_bound() -> CacheSettings {
    // The test channel confirms only when told: a long bound keeps it fresh between ticks.
    CacheSettings::new().staleness_bound(StdDuration::from_secs(3600))
}

struct Two {
    a: (Engine, Hooked, Client),
    b: (Engine, Hooked, Client),
    channel: TestChannel,
    clock: ManualClock,
}

async fn two(settings: CacheSettings) -> Two {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let channel = TestChannel::default();
    let clock = ManualClock::new();
    let a = instance(&store, Arc::new(channel.clone()), &clock, settings.clone()).await;
    let b = instance(&store, Arc::new(channel.clone()), &clock, settings).await;
    Two {
        a,
        b,
        channel,
        clock,
    }
}

/// Logs `name` in on A and gives B the same cookie (the browser's next request lands on B).
async fn login_on_a(t: &mut Two, name: &str) {
    let r = t.a.2.post_form("/login", &format!("username={name}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    t.b.2.cookie = t.a.2.cookie.clone();
}

/// Two instances on the memory store; B's cold lookup takes the path of every call.
#[tokio::test]
async fn warm_requests_cost_nothing_and_writes_reach_the_other_instance() {
    warm_requests_and_writes(false).await;
}

/// The same with B's store answering lookups at once (`TokenStore::find_token_ready`, the
/// memory store's path in production): the cold lookup fills the cache as well.
#[tokio::test]
async fn warm_requests_cost_nothing_with_lookups_answered_at_once() {
    warm_requests_and_writes(true).await;
}

async fn warm_requests_and_writes(ready: bool) {
    let mut t = two(long_bound()).await;
    t.b.1.allow_ready(ready);
    login_on_a(&mut t, "ada").await;
    t.a.0
        .user_slates("ada")
        .unwrap()
        .raw_slate("user")
        .set("tz", "Europe/Paris")
        .await
        .unwrap();
    // Cold on B: one token lookup, one profile read. Then 20 warm requests: nothing.
    assert_eq!(t.b.2.get("/me").await.body, "ada Europe/Paris");
    assert_eq!(t.b.1.calls(), [Call::FindToken, Call::GetSlate]);
    t.b.1.clear_calls();
    let before = t.b.0.stats().store_operations;
    for _ in 0..20 {
        assert_eq!(t.b.2.get("/me").await.body, "ada Europe/Paris");
    }
    assert_eq!(t.b.1.calls(), [], "20 warm requests");
    assert_eq!(t.b.0.stats().store_operations, before);
    let cache = t.b.0.stats().cache.unwrap();
    assert_eq!(cache.hits, 40, "{cache:?}");
    assert_eq!(cache.misses, 2);
    assert!((cache.hit_ratio - 40.0 / 42.0).abs() < 1e-9);

    // A profile write on A: B reads the new profile on its next request.
    t.a.0
        .user_slates("ada")
        .unwrap()
        .raw_slate("user")
        .set("tz", "Asia/Tokyo")
        .await
        .unwrap();
    assert_eq!(t.b.2.get("/me").await.body, "ada Asia/Tokyo");
    assert_eq!(t.b.1.calls(), [Call::GetSlate]);
    t.b.1.clear_calls();

    // A logout on A: B refuses the cookie on its next request.
    let r = t.a.2.post("/logout").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.b.2.get("/maybe").await.body, "anonymous");
    assert!(t.b.0.stats().cache.unwrap().invalidations_received >= 2);
    assert!(t.a.0.stats().cache.unwrap().invalidations_published >= 2);
}

#[tokio::test]
async fn every_token_write_reaches_the_other_instance() {
    // Log out everywhere.
    let mut t = two(long_bound()).await;
    login_on_a(&mut t, "ada").await;
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert_eq!(t.b.2.get("/maybe").await.body, "ada"); // cached now
    let mut other = t.a.2.clone();
    other.cookie = None;
    assert_eq!(
        other.post_form("/login", "username=ada").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        other.post("/logout-everywhere").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.b.2.get("/maybe").await.body, "anonymous");

    // Rotation with zero grace: the old token is deleted; B refuses it.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let channel: Arc<dyn InvalidationChannel> = Arc::new(LocalChannel::new());
    let clock = ManualClock::new();
    let hooked = Hooked::new(Arc::clone(&store));
    let a = Engine::builder_shared(hooked.store())
        .cache_channel(Arc::clone(&channel))
        .rotation_grace(time::Duration::ZERO)
        .clock(clock.clone())
        .secure(false)
        .build()
        .await
        .unwrap();
    let (b, _, mut cb) = instance(&store, channel, &clock, CacheSettings::new()).await;
    let mut ca = Client::new(common::suite::test_app(&a));
    ca.post_form("/login", "username=ada").await;
    cb.cookie = ca.cookie.clone();
    assert_eq!(cb.get("/maybe").await.body, "ada");
    assert_eq!(cb.get("/maybe").await.body, "ada");
    assert!(b.stats().cache.unwrap().hits >= 1);
    assert_eq!(ca.post("/rotate").await.status, StatusCode::NO_CONTENT);
    assert_eq!(cb.get("/maybe").await.body, "anonymous", "the old token");
    cb.cookie = ca.cookie.clone();
    assert_eq!(cb.get("/maybe").await.body, "ada", "the new token");

    // Renewal on A: B's cached record is dropped and read again (the new expiry).
    let mut t = two(long_bound()).await;
    login_on_a(&mut t, "ada").await;
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    t.clock.advance(time::Duration::days(4));
    t.b.1.clear_calls();
    let r = t.a.2.get("/maybe").await;
    assert_eq!(r.set_cookies().len(), 1, "A renewed");
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert_eq!(
        t.b.1.calls(),
        [Call::FindToken],
        "B read the renewed record"
    );
}

#[tokio::test]
async fn a_read_racing_an_invalidation_does_not_refill_the_cache() {
    let mut t = two(long_bound()).await;
    login_on_a(&mut t, "ada").await;
    // B's token lookup is paused after the store answered (the record still exists).
    let (reached, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (r2, l2) = (reached.clone(), release.clone());
    t.b.1.set_hook(Arc::new(move |call, phase, _| {
        let pause = call == Call::FindToken && phase == Phase::After;
        let (r, l) = (r2.clone(), l2.clone());
        Box::pin(async move {
            if pause {
                r.notify_one();
                l.notified().await;
            }
            Ok(())
        })
    }));
    let mut b = t.b.2.clone();
    let slow = tokio::spawn(async move { b.get("/maybe").await });
    reached.notified().await;
    // Meanwhile A logs out: deleted, published, received by B.
    assert_eq!(t.a.2.post("/logout").await.status, StatusCode::NO_CONTENT);
    t.b.1.set_hook(common::hooked::pass());
    release.notify_one();
    // The paused request answers with what it read (it started before the logout)...
    assert_eq!(slow.await.unwrap().body, "ada");
    // ...but did not cache it: the next request reads the store and is refused.
    t.b.1.clear_calls();
    assert_eq!(t.b.2.get("/maybe").await.body, "anonymous");
    assert_eq!(t.b.1.calls(), [Call::FindToken]);
}

#[tokio::test]
async fn a_channel_that_is_down_stops_the_cache_and_resumes() {
    let mut t = two(CacheSettings::new().staleness_bound(StdDuration::from_millis(200))).await;
    login_on_a(&mut t, "ada").await;
    t.channel.tick();
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    t.b.1.clear_calls();
    t.channel.tick();
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert_eq!(t.b.1.calls(), [], "served from the cache");

    // The channel goes down: B stops serving from its cache at once (freshness lost)...
    t.channel.set_down(true);
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert_eq!(t.b.1.calls(), [Call::FindToken], "read from the store");
    // ...so a logout on A whose invalidation is lost is still seen by B.
    assert_eq!(t.a.2.post("/logout").await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.b.2.get("/maybe").await.body, "anonymous");
    assert!(!t.b.0.stats().cache.unwrap().serving);
    assert!(t.b.0.stats().cache.unwrap().bypassed >= 2);

    // Behind by more than the bound (no confirmation for longer): not served either.
    t.channel.set_down(false);
    login_on_a(&mut t, "ada").await;
    t.channel.tick();
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    t.b.1.clear_calls();
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert_eq!(
        t.b.1.calls(),
        [Call::FindToken],
        "lagging: read from the store"
    );

    // Confirmed again: B serves from its cache (the entry it filled while fresh; the
    // lagging read did not fill it).
    t.b.1.clear_calls();
    t.channel.tick();
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert_eq!(t.b.1.calls(), [], "served from the cache again");
    // A reconnection drops everything: one read, then cached again.
    t.channel.set_down(true);
    t.channel.set_down(false);
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    t.channel.tick();
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert_eq!(t.b.1.calls(), [Call::FindToken], "one read, then cached");
    assert!(t.b.0.stats().cache.unwrap().flushes >= 2);
    assert!(t.b.0.stats().cache.unwrap().serving);
}

#[tokio::test]
async fn a_failed_publication_fails_the_write() {
    let mut t = two(long_bound()).await;
    login_on_a(&mut t, "ada").await;
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    // The delete succeeds but the invalidation cannot be published: the logout reports a
    // failure and keeps the cookie, so the user retries.
    t.channel.state.fail_publish.store(true, Ordering::SeqCst);
    let r = t.a.2.post("/logout").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.set_cookies().is_empty(), "the cookie stays for the retry");
    t.channel.state.fail_publish.store(false, Ordering::SeqCst);
    assert_eq!(t.a.2.post("/logout").await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.b.2.get("/maybe").await.body, "anonymous");
}

#[tokio::test]
async fn bounded_in_entries_bytes_and_age() {
    let settings = long_bound().max_entries(3);
    let mut t = two(settings).await;
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        login_on_a(&mut t, name).await;
        assert_eq!(t.b.2.get("/me").await.status, StatusCode::OK);
    }
    let cache = t.b.0.stats().cache.unwrap();
    assert!(cache.entries <= 3, "{cache:?}");

    let mut t = two(long_bound().max_bytes(2_000)).await;
    let big = "x".repeat(10_000);
    login_on_a(&mut t, "ada").await;
    t.a.0
        .user_slates("ada")
        .unwrap()
        .raw_slate("user")
        .set("tz", big.as_str())
        .await
        .unwrap();
    assert_eq!(t.b.2.get("/me").await.status, StatusCode::OK);
    let cache = t.b.0.stats().cache.unwrap();
    assert!(cache.bytes <= 2_000, "{cache:?}");

    let mut t = two(long_bound().max_age(StdDuration::from_millis(50))).await;
    login_on_a(&mut t, "ada").await;
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    t.b.1.clear_calls();
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert_eq!(t.b.1.calls(), [Call::FindToken], "too old: read again");
}

#[test]
fn default_settings() {
    let d = CacheSettings::default();
    assert_eq!(d.max_entries, 100_000);
    assert_eq!(d.max_bytes, 64 * 1024 * 1024);
    assert_eq!(d.staleness_bound, StdDuration::from_secs(1));
    assert_eq!(d.max_age, StdDuration::from_secs(60));
}

#[tokio::test]
async fn memory_store_has_no_cache_by_default_and_a_cache_needs_a_channel() {
    let engine = Engine::builder(MemoryStore::new()).build().await.unwrap();
    assert!(engine.stats().cache.is_none());
    let err = Engine::builder(MemoryStore::new())
        .cache(CacheSettings::new())
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalidation channel"), "{err}");
}

#[tokio::test]
async fn ending_a_device_reaches_the_other_instance() {
    let mut t = two(long_bound()).await;
    login_on_a(&mut t, "ada").await;
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert_eq!(t.b.2.get("/maybe").await.body, "ada");
    assert!(
        t.b.0.stats().cache.unwrap().hits >= 1,
        "B serves it from its cache"
    );
    // An admin on A ends the device: B refuses the cookie on its next request.
    let devices = t.a.0.user_devices("ada").await.unwrap();
    assert_eq!(devices.len(), 1);
    let id = devices[0].id.to_string();
    assert!(t.a.0.end_device("ada", &id).await.unwrap());
    assert_eq!(t.b.2.get("/maybe").await.body, "anonymous");
}
