//! Rejections of the extractors: named types with a status and a body that names the fix.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// The slates layer is not installed on the route (500). Add `.layer(slates.layer())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingLayer;

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Missing slates request state. Is the slates layer installed on this route?",
        )
            .into_response()
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

impl IntoResponse for NotLoggedIn {
    fn into_response(self) -> Response {
        (StatusCode::UNAUTHORIZED, "Not logged in.").into_response()
    }
}

/// Rejection of [`CurrentUser`](crate::CurrentUser) and [`UserSlates`](crate::UserSlates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginRequired {
    /// Anonymous request: 401.
    NotLoggedIn(NotLoggedIn),
    /// Layer not installed: 500.
    MissingLayer(MissingLayer),
}

impl From<MissingLayer> for LoginRequired {
    fn from(m: MissingLayer) -> Self {
        LoginRequired::MissingLayer(m)
    }
}

impl IntoResponse for LoginRequired {
    fn into_response(self) -> Response {
        match self {
            LoginRequired::NotLoggedIn(r) => r.into_response(),
            LoginRequired::MissingLayer(r) => r.into_response(),
        }
    }
}
