//! [`Engine`]: the configured slates system, the public face of the engine's shared state.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::Json;
use http::request::Parts;
use time::OffsetDateTime;
use tower_layer::Layer as _;

use crate::config::Config;
use crate::core::Core;
use crate::device_ops::{end_device, user_devices, Device};
use crate::error::Result;
use crate::events::{AuthEvent, AuthEventKind};
use crate::layer::SlatesLayer;
use crate::names::Username;
use crate::rejection::MissingLayer;
use crate::request::RequestState;
use crate::service::SlatesService;
use crate::stats::{bump, Stats};
use crate::store::{SlateStore, TokenStore};
use crate::user_slates::UserSlates;

/// The configured slates engine: the stores, the configuration and the statistics.
///
/// Cheap to clone (one `Arc`). Build one with [`Engine::builder`], install
/// [`layer`](Self::layer) on the router, and use the extractors in handlers. It is also an
/// extractor itself (behind the layer), for handlers that need the configuration, the
/// statistics or another user's slates (an admin page).
#[derive(Clone)]
pub struct Engine {
    core: Arc<Core>,
}

impl Engine {
    pub(crate) fn from_core(core: Core) -> Self {
        Engine {
            core: Arc::new(core),
        }
    }

    /// The tower layer, for [`Router::layer`](axum::Router::layer) or a
    /// `ServiceBuilder`. To serve a whole router, [`wrap`](Self::wrap) is faster.
    pub fn layer(&self) -> SlatesLayer {
        SlatesLayer::new(Arc::clone(&self.core))
    }

    /// The layer around a whole service, typically the app's finished `Router`: the same
    /// as `engine.layer().layer(router)`, the recommended way to serve an app.
    ///
    /// [`Router::layer`](axum::Router::layer) wraps every route in its own copy of the
    /// layer, boxed, and clones it for each request; around the router the layer is one
    /// service, called once per request (README, Benchmarks, scenario 1: an authenticated
    /// `GET /me` costs 1.22x the floor this way and 1.35x with `Router::layer`). Each
    /// request then passes through the layer whichever route it takes, the router's
    /// fallback included; that costs no store operation, as nothing is resolved until an
    /// extractor asks.
    ///
    /// ```no_run
    /// # async fn serve(engine: slates::Engine) -> std::io::Result<()> {
    /// use axum::{routing::get, Router};
    ///
    /// let router = Router::new().route("/me", get(|user: slates::CurrentUser| async move {
    ///     user.username().to_string()
    /// }));
    /// let app = engine.wrap(router);
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, app.into_make_service()).await
    /// # }
    /// ```
    pub fn wrap<S>(&self, service: S) -> SlatesService<S> {
        self.layer().layer(service)
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        let mut stats = self
            .core
            .counters
            .snapshot(self.core.cache.as_ref().map(|c| c.stats()));
        stats.events_dropped = self.core.events.dropped();
        stats
    }

    /// The settled configuration.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// The token store, for tools and tests.
    pub fn token_store(&self) -> &Arc<dyn TokenStore> {
        &self.core.tokens
    }

    /// The slate store, for tools and tests.
    pub fn slate_store(&self) -> &Arc<dyn SlateStore> {
        &self.core.slates
    }

    /// The configured clock's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.core.now()
    }

    /// The slates of `username`, outside any request: for background jobs, admin tools and
    /// tests. Fails with [`Error::InvalidName`](crate::Error::InvalidName) on a bad name.
    pub fn user_slates(&self, username: &str) -> Result<UserSlates> {
        Ok(UserSlates::new(
            Arc::clone(&self.core),
            Username::new(username)?,
        ))
    }

    /// Deletes every token of `username` (log out everywhere, e.g. after a password reset
    /// done by an admin). Returns how many tokens were deleted.
    pub async fn logout_user(&self, username: &str) -> Result<u64> {
        let user = Username::new(username)?;
        let n = self
            .core
            .track(self.core.tokens.delete_user_tokens(&user).await)?;
        bump(&self.core.counters.logouts);
        let kind = AuthEventKind::LogoutEverywhere;
        let event = AuthEvent::new(kind, Some(&user), None, None, self.now());
        self.core.events.emit(event);
        Ok(n)
    }

    /// The devices of `username` (where they are logged in), for admin tools: like
    /// [`Devices::list`](crate::Devices::list), with no device marked current. Check that
    /// the caller may see them first: slates does not know who is an admin.
    pub async fn user_devices(&self, username: &str) -> Result<Vec<Device>> {
        user_devices(&self.core, &Username::new(username)?, None).await
    }

    /// Ends the device `id` of `username`, for admin tools: its next request is anonymous.
    /// Returns `false`, changing nothing, when `id` is not one of that user's devices
    /// (another user's device is never ended).
    pub async fn end_device(&self, username: &str, id: &str) -> Result<bool> {
        let user = Username::new(username)?;
        Ok(end_device(&self.core, &user, id).await?.is_some())
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cookie_name", &self.core.config.cookie.name)
            .field("layout", &self.core.config.store.layout)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Engine {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Engine {
            core: Arc::clone(&RequestState::from_parts(parts)?.core),
        })
    }
}

/// A ready handler that serves [`Stats`] as JSON. Mount it behind the layer and behind your
/// own access control (the counters describe your traffic: do not serve them publicly):
///
/// ```
/// use axum::{routing::get, Router};
/// let app: Router = Router::new().route("/stats", get(slates::stats_handler));
/// ```
pub async fn stats_handler(engine: Engine) -> Json<Stats> {
    Json(engine.stats())
}
