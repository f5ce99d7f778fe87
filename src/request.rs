//! What the layer leaves in request extensions for the extractors.

use std::sync::{Arc, Mutex, MutexGuard};

use http::request::Parts;
use time::OffsetDateTime;

use crate::core::Core;
use crate::names::Username;
use crate::rejection::MissingLayer;
use crate::store::SlateDoc;
use crate::token::{Token, TokenHash};

/// The logged-in user of a request, as resolved by the layer.
pub(crate) struct Identity {
    pub user: Username,
    pub hash: TokenHash,
    /// The login time of the token (its record's `created`).
    pub created: OffsetDateTime,
    pub expires: OffsetDateTime,
    /// The profile (user slate) as loaded, or why the stored document could not be read (a
    /// malformed document must not turn every request of the user into an error: only a
    /// handler that asks for the profile sees it).
    pub profile: Result<Option<SlateDoc>, &'static str>,
}

/// A cookie change a handler asked for, applied by the service on the way out.
pub(crate) enum CookieChange {
    /// Send this token (login, rotation, renewal) with this max age.
    Set(Token, time::Duration),
    /// Make the browser drop the cookie.
    Remove,
    /// Send nothing, not even the layer's own change (a renewal).
    Keep,
}

/// A live token of the request: the one it came with, or one an `Auth` operation issued.
#[derive(Clone)]
pub(crate) struct LiveToken {
    pub hash: TokenHash,
    pub user: Username,
    /// When its login happened (a rotation keeps it: the absolute lifetime counts from it).
    pub created: OffsetDateTime,
}

/// Where the request's login stands after the `Auth` operations run so far.
struct AuthState {
    /// The live token the browser holds once this response is applied.
    current: Option<LiveToken>,
    /// The cookie change that gets it there (`None`: leave the cookie as the layer decided).
    change: Option<CookieChange>,
}

/// Per-request state shared by the service and the extractors (one `Arc` in extensions).
pub(crate) struct RequestState {
    pub core: Arc<Core>,
    pub identity: Option<Identity>,
    /// Short critical sections only (read or swap a value); never held across an `.await`.
    auth: Mutex<AuthState>,
    /// Serializes the `Auth` operations of this one request (a handler that runs two at once
    /// with `join!`), so that each sees the token the previous one left. Held across the
    /// store calls of one operation, by this request only: no other request waits on it.
    pub auth_ops: tokio::sync::Mutex<()>,
}

impl RequestState {
    pub fn new(core: Arc<Core>, identity: Option<Identity>) -> Self {
        let current = identity.as_ref().map(|i| LiveToken {
            hash: i.hash,
            user: i.user.clone(),
            created: i.created,
        });
        RequestState {
            core,
            identity,
            auth: Mutex::new(AuthState {
                current,
                change: None,
            }),
            auth_ops: tokio::sync::Mutex::new(()),
        }
    }

    pub fn from_parts(parts: &Parts) -> Result<&Arc<RequestState>, MissingLayer> {
        parts
            .extensions
            .get::<Arc<RequestState>>()
            .ok_or(MissingLayer)
    }

    fn auth(&self) -> MutexGuard<'_, AuthState> {
        self.auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live token the response will leave the browser with.
    pub fn current(&self) -> Option<LiveToken> {
        self.auth().current.clone()
    }

    /// Records that the browser's live token is now `current`, reached by `change`.
    pub fn record(&self, current: Option<LiveToken>, change: CookieChange) {
        let mut auth = self.auth();
        auth.current = current;
        auth.change = Some(change);
    }

    /// Whether the pending change hands out the token `hash` (issued by this request, not
    /// yet held by the browser).
    pub fn pending_set_of(&self, hash: &TokenHash) -> bool {
        matches!(&self.auth().change, Some(CookieChange::Set(t, _)) if t.hash() == *hash)
    }

    /// Leaves the browser's cookie as it is: no change, and none of the layer's either.
    pub fn keep(&self) {
        self.auth().change = Some(CookieChange::Keep);
    }

    pub fn take_cookie_change(&self) -> Option<CookieChange> {
        self.auth().change.take()
    }
}
