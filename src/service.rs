//! [`SlatesService`]: the request flow of the layer.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::response::Response;
use axum::routing::IntoMakeService;
use http::Request;
use tower_service::Service;

use crate::core::Core;
use crate::future::ResponseFuture;
use crate::request::RequestState;
use crate::stats::bump;

/// The service built by [`SlatesLayer`](crate::SlatesLayer).
#[derive(Clone)]
pub struct SlatesService<S> {
    inner: S,
    core: Arc<Core>,
}

impl<S> SlatesService<S> {
    pub(crate) fn new(inner: S, core: Arc<Core>) -> Self {
        SlatesService { inner, core }
    }

    /// The service as `axum::serve` takes it, one clone per connection (axum's
    /// [`ServiceExt::into_make_service`](axum::ServiceExt::into_make_service), without the
    /// turbofish it needs on a generic service).
    pub fn into_make_service(self) -> IntoMakeService<Self>
    where
        Self: Service<Request<Body>>,
    {
        axum::ServiceExt::<Request<Body>>::into_make_service(self)
    }

    /// Like [`into_make_service`](Self::into_make_service), with the connection's
    /// [`ConnectInfo`](axum::extract::ConnectInfo): with `C = SocketAddr`, the client address
    /// that [`record_client_ip`](crate::EngineBuilder::record_client_ip) keeps.
    pub fn into_make_service_with_connect_info<C>(self) -> IntoMakeServiceWithConnectInfo<Self, C>
    where
        Self: Service<Request<Body>>,
    {
        axum::ServiceExt::<Request<Body>>::into_make_service_with_connect_info(self)
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for SlatesService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlatesService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for SlatesService<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let state = Arc::new(RequestState::new(Arc::clone(&self.core)));
        bump(&state.core.counters.requests);
        let extensions = req.extensions_mut();
        self.core.extensions.insert(extensions, Arc::clone(&state));
        // Nothing is resolved here: the extractors ask when they need to, so a route that
        // never asks who the user is costs no store operation. No lock of any kind is held
        // while the handler runs. The response future applies the cookie changes.
        ResponseFuture::new(self.inner.call(req), state)
    }
}
