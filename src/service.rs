//! [`SlatesService`]: the request flow of the layer.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderValue, Request};
use tower_service::Service;

use crate::cookie::{removal_cookie, set_cookie, token_from_headers};
use crate::core::Core;
use crate::error::service_unavailable;
use crate::future::ResponseFuture;
use crate::request::{CookieChange, RequestState};
use crate::resolve::resolve;

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
        let core = Arc::clone(&self.core);
        ResponseFuture {
            inner: Box::pin(async move {
                // Read the cookie before any await: the request body need not be `Sync`.
                let cookie = token_from_headers(req.headers(), &core.config.cookie.name);
                let (identity, layer_change) = match resolve(&core, cookie).await {
                    Ok(resolved) => resolved,
                    // Any store failure is answered this way, never by treating the user as
                    // anonymous (which would drop the cookie on a mere hiccup) or as someone
                    // else.
                    Err(_) => return Ok(service_unavailable()),
                };
                let state = Arc::new(RequestState::new(core, identity));
                req.extensions_mut().insert(Arc::clone(&state));
                // No lock of any kind is held while the handler runs.
                let mut response = inner.call(req).await?;
                let cookie = &state.core.config.cookie;
                let change = state.take_cookie_change().or(layer_change);
                if let Some(change) = change {
                    let value = match change {
                        CookieChange::Set(token, max_age) => set_cookie(cookie, &token, max_age),
                        CookieChange::Remove => removal_cookie(cookie),
                        CookieChange::Keep => return Ok(response),
                    };
                    let headers = response.headers_mut();
                    headers.append(SET_COOKIE, value);
                    // A response that sets the token must never be stored by a shared cache.
                    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                Ok(response)
            }),
        }
    }
}
