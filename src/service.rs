//! [`SlatesService`]: the request flow of the layer.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderValue, Request};
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
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness and leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = Arc::new(RequestState::new(Arc::clone(&self.core)));
        bump(&state.core.counters.requests);
        req.extensions_mut().insert(Arc::clone(&state));
        ResponseFuture {
            inner: Box::pin(async move {
                // Nothing is resolved here: the extractors ask when they need to, so a route
                // that never asks who the user is costs no store operation. No lock of any
                // kind is held while the handler runs.
                let mut response = inner.call(req).await?;
                let config = &state.core.config;
                let auth = state.take_cookie_change();
                let auth_value = auth.and_then(|c| c.header(&config.cookie));
                // The guest cookie (issue 14): its own `Set-Cookie` header.
                let guest = state.take_guest_cookie_change();
                let guest_value = guest.and_then(|c| c.header(&config.guest_cookie));
                for value in [auth_value, guest_value].into_iter().flatten() {
                    let headers = response.headers_mut();
                    headers.append(SET_COOKIE, value);
                    // A response that sets a token must never be stored by a shared cache.
                    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                Ok(response)
            }),
        }
    }
}
