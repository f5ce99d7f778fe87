//! Rejections of the extractors, shaped like axum's own: named types with
//! [`status`](LoginRequired::status) and [`body_text`](LoginRequired::body_text), logged at
//! trace level (target `slates::rejection`) when turned into a response; and
//! [`WhenLoggedOut`], the policy that picks the answer to an anonymous request.

use axum::response::{IntoResponse, Response};
use http::header::{LOCATION, RETRY_AFTER};
use http::{HeaderValue, StatusCode};

/// The body of every 503 slates sends.
const SERVICE_UNAVAILABLE_BODY: &str =
    "Service temporarily unavailable. Please try again shortly.\n";

/// The `Retry-After` of every 503 slates sends, in seconds.
const RETRY_AFTER_SECONDS: &str = "5";

/// What [`CurrentUser`](crate::CurrentUser) and [`UserSlates`](crate::UserSlates) answer
/// when nobody is logged in. Set with
/// [`EngineBuilder::when_logged_out`](crate::EngineBuilder::when_logged_out).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenLoggedOut {
    /// 401 Unauthorized, always (the default: right for APIs).
    #[default]
    Unauthorized,
    /// For HTML apps: a request whose `Accept` header asks for `text/html` (a browser) is
    /// redirected (303) to `login`: a page visit (`GET` or `HEAD`) with the page's path and
    /// query as a `next` parameter (`/login?next=/import/review`), a form post without one
    /// (a `GET` of its URL after login could not redo the post). Other requests (an API
    /// call, `fetch` asking for JSON) still get 401. The login handler should validate
    /// `next` with [`safe_next`](crate::safe_next) before redirecting to it.
    Redirect {
        /// The login page: a path on this site (`/login`), checked at build.
        login: String,
    },
}

impl WhenLoggedOut {
    /// [`WhenLoggedOut::Redirect`] to `login`.
    pub fn redirect(login: impl Into<String>) -> Self {
        WhenLoggedOut::Redirect {
            login: login.into(),
        }
    }
}

/// The slates layer is not installed on the route (500). Serve the router inside it:
/// [`Engine::wrap`](crate::Engine::wrap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingLayer;

impl MissingLayer {
    /// 500 Internal Server Error.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The response body.
    pub fn body_text(&self) -> String {
        "Missing slates request state. Is the slates layer installed on this route?".to_owned()
    }
}

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        respond(self.status(), self.body_text())
    }
}

impl std::fmt::Display for MissingLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the slates layer is not installed on this route")
    }
}

impl std::error::Error for MissingLayer {}

/// The request has no valid login (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLoggedIn;

impl NotLoggedIn {
    /// 401 Unauthorized.
    pub fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    /// The response body.
    pub fn body_text(&self) -> String {
        "Not logged in.".to_owned()
    }
}

impl IntoResponse for NotLoggedIn {
    fn into_response(self) -> Response {
        respond(self.status(), self.body_text())
    }
}

/// A page visit with no valid login, sent to the login page (303 See Other), under
/// [`WhenLoggedOut::Redirect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRedirect {
    location: String,
}

impl LoginRedirect {
    pub(crate) fn new(location: String) -> Self {
        LoginRedirect { location }
    }

    /// Where the browser is sent: the login page with the `next` parameter.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// 303 See Other.
    pub fn status(&self) -> StatusCode {
        StatusCode::SEE_OTHER
    }

    /// The response body.
    pub fn body_text(&self) -> String {
        format!("Not logged in. Log in at {}", self.location)
    }
}

impl IntoResponse for LoginRedirect {
    fn into_response(self) -> Response {
        let mut response = respond(self.status(), self.body_text());
        // The location was built from a checked login path and a percent-encoded `next`:
        // always a valid header value; should it not be, the answer is still a 303 page.
        if let Ok(value) = HeaderValue::try_from(self.location) {
            response.headers_mut().insert(LOCATION, value);
        }
        response
    }
}

/// A store failed (503 Service Unavailable, a short generic text and `Retry-After: 5`, so
/// clients and proxies know to come back): the answer of an extractor whose token check
/// failed, and of a handler returning a store [`Error`](crate::Error). A request whose token
/// cannot be checked is neither treated as anonymous (that would drop the browser's cookie
/// on a mere hiccup) nor as anyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

impl Unavailable {
    /// 503 Service Unavailable.
    pub fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// The response body.
    pub fn body_text(&self) -> String {
        SERVICE_UNAVAILABLE_BODY.to_owned()
    }
}

impl IntoResponse for Unavailable {
    fn into_response(self) -> Response {
        let mut response = respond(self.status(), self.body_text());
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        response
    }
}

/// Rejection of `Option<CurrentUser>`: only the failures, never the absence of a login.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unresolved {
    /// Layer not installed: 500.
    MissingLayer(MissingLayer),
    /// The token could not be checked: 503.
    Unavailable(Unavailable),
}

impl Unresolved {
    /// The status of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            Unresolved::MissingLayer(r) => r.status(),
            Unresolved::Unavailable(r) => r.status(),
        }
    }

    /// The body of the response.
    pub fn body_text(&self) -> String {
        match self {
            Unresolved::MissingLayer(r) => r.body_text(),
            Unresolved::Unavailable(r) => r.body_text(),
        }
    }
}

impl From<MissingLayer> for Unresolved {
    fn from(m: MissingLayer) -> Self {
        Unresolved::MissingLayer(m)
    }
}

impl IntoResponse for Unresolved {
    fn into_response(self) -> Response {
        match self {
            Unresolved::MissingLayer(r) => r.into_response(),
            Unresolved::Unavailable(r) => r.into_response(),
        }
    }
}

/// Rejection of [`CurrentUser`](crate::CurrentUser) and [`UserSlates`](crate::UserSlates).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginRequired {
    /// Anonymous request: 401.
    NotLoggedIn(NotLoggedIn),
    /// Anonymous page visit under [`WhenLoggedOut::Redirect`]: 303 to the login page.
    Redirect(LoginRedirect),
    /// Layer not installed: 500.
    MissingLayer(MissingLayer),
    /// The token could not be checked: 503.
    Unavailable(Unavailable),
}

impl LoginRequired {
    /// The status of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            LoginRequired::NotLoggedIn(r) => r.status(),
            LoginRequired::Redirect(r) => r.status(),
            LoginRequired::MissingLayer(r) => r.status(),
            LoginRequired::Unavailable(r) => r.status(),
        }
    }

    /// The body of the response.
    pub fn body_text(&self) -> String {
        match self {
            LoginRequired::NotLoggedIn(r) => r.body_text(),
            LoginRequired::Redirect(r) => r.body_text(),
            LoginRequired::MissingLayer(r) => r.body_text(),
            LoginRequired::Unavailable(r) => r.body_text(),
        }
    }
}

impl From<MissingLayer> for LoginRequired {
    fn from(m: MissingLayer) -> Self {
        LoginRequired::MissingLayer(m)
    }
}

impl From<Unresolved> for LoginRequired {
    fn from(u: Unresolved) -> Self {
        match u {
            Unresolved::MissingLayer(m) => LoginRequired::MissingLayer(m),
            Unresolved::Unavailable(u) => LoginRequired::Unavailable(u),
        }
    }
}

impl IntoResponse for LoginRequired {
    fn into_response(self) -> Response {
        match self {
            LoginRequired::NotLoggedIn(r) => r.into_response(),
            LoginRequired::Redirect(r) => r.into_response(),
            LoginRequired::MissingLayer(r) => r.into_response(),
            LoginRequired::Unavailable(r) => r.into_response(),
        }
    }
}

/// A plain-text response, logged at trace level as axum logs its rejections.
fn respond(status: StatusCode, body: String) -> Response {
    tracing::trace!(
        target: "slates::rejection",
        status = status.as_u16(),
        body = body.as_str(),
        "rejecting request"
    );
    (status, body).into_response()
}
