//! What the layer leaves in request extensions for the extractors.

use std::sync::{Arc, Mutex};

use http::request::Parts;
use time::OffsetDateTime;

use crate::names::Username;
use crate::rejection::MissingLayer;
use crate::slates::Slates;
use crate::store::SlateDoc;
use crate::token::{Token, TokenHash};

/// The logged-in user of a request, as resolved by the layer.
pub(crate) struct Identity {
    pub user: Username,
    pub hash: TokenHash,
    pub expires: OffsetDateTime,
    pub user_slate: Option<SlateDoc>,
}

/// A cookie change a handler asked for, applied by the service on the way out.
pub(crate) enum CookieChange {
    /// Send this token (login, rotation, renewal) with this max age.
    Set(Token, time::Duration),
    /// Make the browser drop the cookie.
    Remove,
}

/// Per-request state shared by the service and the extractors (one `Arc` in extensions).
pub(crate) struct RequestState {
    pub slates: Slates,
    pub identity: Option<Identity>,
    /// Short critical sections only (swap a value); never held across an `.await`.
    cookie_change: Mutex<Option<CookieChange>>,
}

impl RequestState {
    pub fn new(slates: Slates, identity: Option<Identity>) -> Self {
        RequestState {
            slates,
            identity,
            cookie_change: Mutex::new(None),
        }
    }

    pub fn from_parts(parts: &Parts) -> Result<&Arc<RequestState>, MissingLayer> {
        parts
            .extensions
            .get::<Arc<RequestState>>()
            .ok_or(MissingLayer)
    }

    /// Records a cookie change and returns the one it replaced.
    pub fn set_cookie_change(&self, change: CookieChange) -> Option<CookieChange> {
        let mut slot = self
            .cookie_change
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.replace(change)
    }

    pub fn take_cookie_change(&self) -> Option<CookieChange> {
        self.cookie_change
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}
