//! [`SlatesLayer`]: the tower layer.

use std::sync::Arc;

use tower_layer::Layer;

use crate::core::Core;
use crate::service::SlatesService;

/// Leaves what the extractors ([`CurrentUser`](crate::CurrentUser),
/// [`UserSlates`](crate::UserSlates), [`Auth`](crate::Auth), [`Engine`](crate::Engine))
/// need in the request extensions, and applies the cookie changes they ask for on the
/// response. It reads nothing itself: the token is checked when an extractor first asks who
/// the user is, the profile when a handler first reads it, each at most once per request.
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
