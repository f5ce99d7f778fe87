//! [`SlatesLayer`]: the tower layer.

use tower_layer::Layer;

use crate::service::SlatesService;
use crate::slates::Slates;

/// Resolves the token cookie to a user on every request, loads the user slate, and leaves
/// what the extractors ([`CurrentUser`](crate::CurrentUser), [`UserSlates`](crate::UserSlates),
/// [`Auth`](crate::Auth), [`Slates`]) need in the request extensions; applies the cookie
/// changes they ask for on the response. Get one from [`Slates::layer`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SlatesLayer {
    slates: Slates,
}

impl SlatesLayer {
    pub(crate) fn new(slates: Slates) -> Self {
        SlatesLayer { slates }
    }
}

impl<S> Layer<S> for SlatesLayer {
    type Service = SlatesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SlatesService::new(inner, self.slates.clone())
    }
}
