//! [`same_origin_only`]: a CSRF check for state-changing requests.
//!
//! `SameSite=Lax` cookies are defence in depth, not a CSRF defence: they do not stop a
//! sibling subdomain (same site) and older browsers ignore them. Put this middleware in front
//! of routes that change state.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Method, StatusCode};

/// Refuses (403) a state-changing request (anything but `GET`, `HEAD`, `OPTIONS`) that a
/// browser marks as cross-origin: `Sec-Fetch-Site: cross-site` or `same-site` (Fetch
/// Metadata), or, for browsers that do not send it, an `Origin` whose host differs from the
/// `Host` header. Requests without either header (curl, server-to-server) pass.
///
/// ```
/// use axum::{middleware, routing::post, Router};
/// # async fn handler() {}
/// # async fn f(engine: slates::Engine) {
/// let routes: Router = Router::new()
///     .route("/transfer", post(handler))
///     .layer(middleware::from_fn(slates::same_origin_only));
/// let app = engine.wrap(routes); // serve with `app.into_make_service()`
/// # }
/// ```
pub async fn same_origin_only(req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && is_cross_origin(req.headers())
    {
        return (StatusCode::FORBIDDEN, "Cross-site request refused.").into_response();
    }
    next.run(req).await
}

/// Whether the headers mark the request as cross-origin (see [`same_origin_only`]).
pub fn is_cross_origin(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site" | "same-site")) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (headers.get(header::ORIGIN), host) {
        (Some(origin), Some(host)) => origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_none_or(|(_, o)| o != host),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn decisions() {
        assert!(!is_cross_origin(&h(&[])));
        assert!(!is_cross_origin(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(!is_cross_origin(&h(&[("sec-fetch-site", "none")])));
        assert!(is_cross_origin(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(is_cross_origin(&h(&[("sec-fetch-site", "same-site")])));
        assert!(!is_cross_origin(&h(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ])));
        assert!(is_cross_origin(&h(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:3000")
        ])));
        assert!(is_cross_origin(&h(&[("origin", "null"), ("host", "a")])));
        assert!(is_cross_origin(&h(&[("origin", "https://a")])));
    }
}
