//! [`ResponseFuture`]: the future returned by [`SlatesService`](crate::SlatesService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::response::Response;
use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::HeaderValue;
use pin_project_lite::pin_project;

use crate::request::RequestState;

pin_project! {
    /// The response future of [`SlatesService`](crate::SlatesService): the inner service's
    /// future, then the request's cookie changes applied to its response. Not boxed: the
    /// layer adds no allocation of its own around the inner future.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Arc<RequestState>,
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn new(inner: F, state: Arc<RequestState>) -> Self {
        ResponseFuture { inner, state }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        apply_cookie_changes(this.state, &mut response);
        Poll::Ready(Ok(response))
    }
}

/// Adds the `Set-Cookie` headers the request's extractors and `Auth` operations asked for:
/// the token cookie's, then the guest cookie's (issue 14).
fn apply_cookie_changes(state: &RequestState, response: &mut Response) {
    let config = &state.core.config;
    if let Some(value) = state
        .take_cookie_change()
        .and_then(|c| c.header(&config.cookie))
    {
        set_cookie(response, value);
    }
    let guest = state.take_guest_cookie_change();
    if let Some(value) = guest.and_then(|c| c.header(&config.guest_cookie)) {
        set_cookie(response, value);
    }
}

/// Adds one `Set-Cookie` header to `response`.
fn set_cookie(response: &mut Response, value: HeaderValue) {
    let headers = response.headers_mut();
    headers.append(SET_COOKIE, value);
    // A response that sets a token must never be stored by a shared cache.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}
