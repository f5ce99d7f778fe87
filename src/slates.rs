//! [`Slates`]: the configured handle shared by the layer, the extractors and the app.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use time::OffsetDateTime;

use crate::config::{Config, SlatesBuilder};
use crate::error::Result;
use crate::layer::SlatesLayer;
use crate::names::Username;
use crate::rejection::MissingLayer;
use crate::request::RequestState;
use crate::stats::{Counters, Stats};
use crate::store::Store;
use crate::workflow_slate::UserSlates;

/// The configured slates system: a store, the configuration and the statistics.
///
/// Cheap to clone (one `Arc`). Build one with [`Slates::builder`], install
/// [`layer`](Self::layer) on the router, and use the extractors in handlers. It is also an
/// extractor itself (behind the layer), for handlers that need the configuration or stats.
#[derive(Clone)]
pub struct Slates {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub counters: Arc<Counters>,
}

impl Slates {
    /// Starts configuring slates on `store` ([`MemoryStore`](crate::MemoryStore) or
    /// `MongoStore`).
    pub fn builder(store: impl Store) -> SlatesBuilder {
        SlatesBuilder::new(Arc::new(store))
    }

    /// Like [`builder`](Self::builder), for a store already behind an `Arc`.
    pub fn builder_shared(store: Arc<dyn Store>) -> SlatesBuilder {
        SlatesBuilder::new(store)
    }

    pub(crate) fn from_parts(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        counters: Arc<Counters>,
    ) -> Self {
        Slates {
            shared: Arc::new(Shared {
                store,
                config,
                counters,
            }),
        }
    }

    /// The tower layer to put on the router.
    pub fn layer(&self) -> SlatesLayer {
        SlatesLayer::new(self.clone())
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// The settled configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The store, for tools and tests.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The configured clock's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.shared.config.clock.now()
    }

    /// The slates of `username`, outside any request: for background jobs, admin tools and
    /// tests. Fails with [`Error::InvalidName`](crate::Error::InvalidName) on a bad name.
    pub fn user_slates(&self, username: &str) -> Result<UserSlates> {
        Ok(UserSlates::new(self.clone(), Username::new(username)?))
    }

    /// Deletes every token of `username` (log out everywhere, e.g. after a password reset
    /// done by an admin). Returns how many tokens were deleted.
    pub async fn logout_user(&self, username: &str) -> Result<u64> {
        let user = Username::new(username)?;
        let n = self.shared.store.delete_user_tokens(&user).await?;
        crate::stats::bump(&self.shared.counters.logouts);
        Ok(n)
    }
}

impl std::fmt::Debug for Slates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slates")
            .field("cookie_name", &self.shared.config.cookie_name)
            .field("layout", &self.shared.config.store.layout)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Slates {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestState::from_parts(parts)?.slates.clone())
    }
}
