//! [`SlatesLayer`]: the tower layer.

use tower_layer::Layer;

use crate::service::SlatesService;
use crate::slates::Slates;

/// Resolves the token cookie to a user on every request, loads the user slate and hands
/// the handlers a [`RequestState`](crate::CurrentUser) through request extensions. Get one
/// from [`Slates::layer`]. Cheap to clone.
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
