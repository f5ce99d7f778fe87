//! Invalidations: the messages that keep every instance's [`Cached`](super::Cached) store
//! honest, the [`InvalidationChannel`] that carries them between instances, and
//! [`LocalChannel`], the in-process one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::StoreFuture;
use crate::names::Username;
use crate::sync::lock;
use crate::token::TokenHash;

/// What changed, so that every instance drops what it cached of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// The token record with this hash changed or is gone (logout, renewal, rotation,
    /// a device ended).
    Token(TokenHash),
    /// Every token of this user changed or is gone (log out everywhere).
    UserTokens(Username),
    /// This user's profile (user slate) changed or is gone.
    Profile(Username),
}

/// Receives the invalidations a channel delivers: a [`Cached`](super::Cached) store.
pub trait InvalidationSink: Send + Sync + 'static {
    /// Drops what `invalidation` names.
    fn invalidate(&self, invalidation: &Invalidation);
    /// Drops everything: the channel may have missed invalidations (it reconnected).
    fn flush(&self);
}

/// Carries invalidations between the instances of an app.
///
/// The contract a cache relies on:
/// - [`publish`](Self::publish) returns `Ok` only once the invalidation is durably
///   published: every subscription whose freshness is confirmed at a later instant has
///   delivered it;
/// - a subscription [`confirm`](Freshness::confirm)s an instant `t` only when every
///   invalidation published before `t` has been delivered to its sink;
/// - a subscription that may have missed invalidations (a reconnection) calls
///   [`InvalidationSink::flush`] before confirming again.
///
/// Implemented by [`LocalChannel`] (one process) and, with the `mongodb` feature, by the
/// channel a `MongoStore` offers (a capped collection tailed by every instance).
pub trait InvalidationChannel: Send + Sync + 'static {
    /// Creates what the channel needs in the store (idempotently). Called by
    /// [`EngineBuilder::build`](crate::EngineBuilder::build) before subscribing. Default:
    /// nothing.
    fn prepare(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Publishes `invalidation` to every subscriber, this instance's included.
    fn publish<'a>(&'a self, invalidation: &'a Invalidation) -> StoreFuture<'a, ()>;

    /// Starts delivering invalidations to `sink` until it is dropped. Returns the
    /// subscription's freshness.
    fn subscribe(&self, sink: Weak<dyn InvalidationSink>) -> Arc<Freshness>;
}

/// How up to date a subscription is: the latest instant up to which every published
/// invalidation was delivered. Lock-free to read.
#[derive(Debug)]
pub struct Freshness {
    /// Origin of the stored offsets.
    origin: Instant,
    /// Nanoseconds from `origin` of the latest confirmed instant, plus one (0: never).
    confirmed: AtomicU64,
    /// Always fresh (an in-process channel delivers synchronously).
    always: bool,
}

impl Freshness {
    /// A subscription not yet confirmed (not fresh).
    pub fn new() -> Self {
        Freshness {
            origin: Instant::now(),
            confirmed: AtomicU64::new(0),
            always: false,
        }
    }

    /// A subscription that is always fresh: publishing delivers synchronously.
    pub fn always() -> Self {
        Freshness {
            always: true,
            ..Freshness::new()
        }
    }

    /// Records that every invalidation published before `at` has been delivered.
    pub fn confirm(&self, at: Instant) {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        let value = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.confirmed.fetch_max(value, Ordering::AcqRel);
    }

    /// Forgets every confirmation (the channel is down): not fresh until confirmed again.
    pub fn lose(&self) {
        self.confirmed.store(0, Ordering::Release);
    }

    /// How far behind the subscription may be now: the time since the latest confirmed
    /// instant. `None`: never confirmed (or lost).
    pub fn lag(&self) -> Option<Duration> {
        if self.always {
            return Some(Duration::ZERO);
        }
        match self.confirmed.load(Ordering::Acquire) {
            0 => None,
            v => {
                let at = self.origin + Duration::from_nanos(v - 1);
                Some(Instant::now().saturating_duration_since(at))
            }
        }
    }
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness::new()
    }
}

/// The in-process channel: publishing delivers to every subscriber synchronously, so its
/// subscriptions are always fresh. For apps on one instance that cache (a store shared by
/// several engines in one process) and for tests; clones share the subscribers.
#[derive(Clone, Default)]
pub struct LocalChannel {
    sinks: Arc<Mutex<Vec<Weak<dyn InvalidationSink>>>>,
}

impl LocalChannel {
    /// A channel with no subscriber yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for LocalChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChannel").finish_non_exhaustive()
    }
}

impl InvalidationChannel for LocalChannel {
    fn publish<'a>(&'a self, invalidation: &'a Invalidation) -> StoreFuture<'a, ()> {
        let sinks: Vec<_> = {
            let mut sinks = lock(&self.sinks);
            sinks.retain(|s| s.strong_count() > 0);
            sinks.iter().filter_map(Weak::upgrade).collect()
        };
        for sink in sinks {
            sink.invalidate(invalidation);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn subscribe(&self, sink: Weak<dyn InvalidationSink>) -> Arc<Freshness> {
        lock(&self.sinks).push(sink);
        static ALWAYS: OnceLock<Arc<Freshness>> = OnceLock::new();
        Arc::clone(ALWAYS.get_or_init(|| Arc::new(Freshness::always())))
    }
}
