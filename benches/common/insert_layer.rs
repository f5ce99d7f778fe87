//! [`InsertLayer`]: a baseline layer that inserts one value per request into the request's
//! extensions and does nothing else (its future is the inner service's), as a session or
//! token layer hands its per-request state to the extractors. Two baselines use it: the
//! no-op layer (one shared `Arc`) and the minimal token layer (the floor's table and one
//! `OnceLock`).

use http::Request;

/// Adds [`Insert`] around a service: `make` builds the value each request gets.
#[derive(Clone)]
pub struct InsertLayer<F>(pub F);

impl<S, F: Clone> tower::Layer<S> for InsertLayer<F> {
    type Service = Insert<S, F>;

    fn layer(&self, inner: S) -> Insert<S, F> {
        Insert(inner, self.0.clone())
    }
}

/// The service of [`InsertLayer`].
#[derive(Clone)]
pub struct Insert<S, F>(S, F);

impl<S, F, T, B> tower::Service<Request<B>> for Insert<S, F>
where
    S: tower::Service<Request<B>>,
    F: Fn() -> T,
    T: Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        req.extensions_mut().insert((self.1)());
        self.0.call(req)
    }
}
