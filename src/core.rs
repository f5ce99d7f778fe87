//! [`Core`]: what every part of a running engine shares (the stores, the settled
//! configuration, the counters). The bottom of the engine: it knows nothing of requests,
//! extractors or handles.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::config::Config;
use crate::error::Result;
use crate::events::Events;
use crate::roomy_extensions::RoomyExtensions;
use crate::stats::{bump, Counters};
use crate::store::{Cached, SlateStore, TokenStore};
use crate::token_times::TokenTimes;

/// The shared state of one engine, behind one `Arc`.
pub(crate) struct Core {
    pub tokens: Arc<dyn TokenStore>,
    pub slates: Arc<dyn SlateStore>,
    /// The cache in front of both stores, if any (for its statistics).
    pub cache: Option<Arc<Cached>>,
    pub config: Config,
    pub counters: Counters,
    /// Where lifecycle events go (`tracing`, and the app's subscriber).
    pub events: Events,
    /// The token durations of `config`, in milliseconds.
    pub times: TokenTimes,
    /// What the layer's state goes into on a request with no extensions.
    pub extensions: RoomyExtensions,
}

impl Core {
    /// The configured clock's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.config.clock.now()
    }

    /// Counts and logs a store failure; passes the result through.
    pub fn track<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.store_error("store operation", e);
        }
        result
    }

    /// Counts and logs `e` if it is a store failure (not the caller's input).
    pub fn store_error(&self, what: &str, e: &crate::error::Error) {
        if e.is_store_failure() {
            bump(&self.counters.store_errors);
            tracing::error!(error = %e, "slates {what} failed");
        }
    }
}
