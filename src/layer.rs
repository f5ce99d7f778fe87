//! [`SlatesLayer`]: the tower layer.

use std::sync::Arc;

use tower_layer::Layer;

use crate::core::Core;
use crate::service::SlatesService;

/// Resolves the token cookie to a user on every request, loads the user's profile, and
/// leaves what the extractors ([`CurrentUser`](crate::CurrentUser),
/// [`UserSlates`](crate::UserSlates), [`Auth`](crate::Auth), [`Engine`](crate::Engine))
/// need in the request extensions; applies the cookie changes they ask for on the response.
/// Get one from [`Engine::layer`](crate::Engine::layer). Cheap to clone.
#[derive(Clone)]
pub struct SlatesLayer {
    core: Arc<Core>,
}

impl SlatesLayer {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        SlatesLayer { core }
    }
}

impl<S> Layer<S> for SlatesLayer {
    type Service = SlatesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SlatesService::new(inner, Arc::clone(&self.core))
    }
}

impl std::fmt::Debug for SlatesLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlatesLayer").finish_non_exhaustive()
    }
}
