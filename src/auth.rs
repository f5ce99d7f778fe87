//! [`Auth`]: login, logout, logout everywhere and rotation, from inside a handler.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::error::{Error, Result};
use crate::names::Username;
use crate::rejection::MissingLayer;
use crate::request::{CookieChange, RequestState};
use crate::stats::bump;
use crate::store::TokenRecord;
use crate::token::Token;

/// Extractor that logs users in and out. Works on anonymous requests too (that is where
/// `login` happens). Cookie changes are sent on this request's response.
///
/// Checking the password is the app's job; `login` only issues the token:
///
/// ```no_run
/// use axum::{Form, http::StatusCode};
/// use slates::Auth;
/// #[derive(serde::Deserialize)]
/// struct Login { username: String, password: String }
///
/// async fn login(auth: Auth, Form(f): Form<Login>) -> Result<StatusCode, slates::Error> {
///     // check f.password here
///     auth.login(&f.username).await?;
///     Ok(StatusCode::NO_CONTENT)
/// }
/// ```
#[derive(Clone)]
pub struct Auth {
    state: Arc<RequestState>,
}

impl Auth {
    /// The logged-in user of this request, if any.
    pub fn username(&self) -> Option<&str> {
        self.state.identity.as_ref().map(|i| i.user.as_str())
    }

    /// Logs `username` in: a fresh random token (a token the client sent is never adopted),
    /// a new `_auth` record, and `Set-Cookie` on the response. The token this request came
    /// with, if any, is deleted (rotation on login).
    pub async fn login(&self, username: &str) -> Result<()> {
        let user = Username::new(username)?;
        self.issue(user).await?;
        if let Some(old) = &self.state.identity {
            // Logging in on top of a live token: the old one goes, so a planted or shared
            // token never stays valid next to the new one.
            if let Err(e) = self.shared().store.delete_token(&old.hash).await {
                self.store_error("delete previous token", &e);
            }
        }
        Ok(())
    }

    /// Logs this browser out: deletes its token record at once and expires the cookie.
    /// On an anonymous request it only expires the cookie.
    pub async fn logout(&self) -> Result<()> {
        if let Some(identity) = &self.state.identity {
            self.shared()
                .store
                .delete_token(&identity.hash)
                .await
                .inspect_err(|e| self.store_error("logout", e))?;
            bump(&self.shared().counters.logouts);
        }
        self.forget_issued(CookieChange::Remove).await;
        Ok(())
    }

    /// Logs the current user out on every device: deletes every token of the user (for
    /// example after a password change) and expires this browser's cookie. Returns how many
    /// tokens were deleted. [`Error::NotLoggedIn`] on an anonymous request.
    pub async fn logout_everywhere(&self) -> Result<u64> {
        let identity = self.state.identity.as_ref().ok_or(Error::NotLoggedIn)?;
        let n = self
            .shared()
            .store
            .delete_user_tokens(&identity.user)
            .await
            .inspect_err(|e| self.store_error("logout everywhere", e))?;
        bump(&self.shared().counters.logouts);
        self.forget_issued(CookieChange::Remove).await;
        Ok(n)
    }

    /// Replaces the current token with a new one (call it when privileges change). The old
    /// token keeps working for the configured rotation grace (default 10 s) so that requests
    /// already in flight are not logged out; with a zero grace it is deleted at once.
    /// [`Error::NotLoggedIn`] on an anonymous request.
    pub async fn rotate(&self) -> Result<()> {
        let identity = self.state.identity.as_ref().ok_or(Error::NotLoggedIn)?;
        self.issue(identity.user.clone()).await?;
        let shared = self.shared();
        let grace = shared.config.rotation_grace;
        let result = if grace.is_zero() {
            shared.store.delete_token(&identity.hash).await
        } else {
            let at = shared.config.clock.now() + grace;
            shared.store.expire_token_at(&identity.hash, at).await
        };
        result
            .map(drop)
            .inspect_err(|e| self.store_error("rotate", e))
    }

    async fn issue(&self, user: Username) -> Result<()> {
        let shared = self.shared();
        let now = shared.config.clock.now();
        let lifetime = shared.config.token_lifetime;
        // A collision of two 256-bit random tokens will not happen; the second try is there
        // so that even then the user gets a token rather than an error.
        let mut attempt = 0;
        let token = loop {
            let token = Token::generate()?;
            let record = TokenRecord {
                hash: token.hash(),
                user: user.clone(),
                created: now,
                expires: now + lifetime,
                renewed: None,
            };
            match shared.store.insert_token(&record).await {
                Ok(()) => break token,
                Err(Error::DuplicateKey) if attempt == 0 => attempt += 1,
                Err(e) => {
                    self.store_error("login", &e);
                    return Err(e);
                }
            }
        };
        bump(&shared.counters.logins);
        self.forget_issued(CookieChange::Set(token, lifetime)).await;
        Ok(())
    }

    /// Records the cookie change; if it replaces a token this same request issued earlier
    /// (login twice in one handler), that token is deleted so it does not linger unused.
    async fn forget_issued(&self, change: CookieChange) {
        if let Some(CookieChange::Set(previous, _)) = self.state.set_cookie_change(change) {
            if let Err(e) = self.shared().store.delete_token(&previous.hash()).await {
                self.store_error("delete superseded token", &e);
            }
        }
    }

    fn shared(&self) -> &crate::slates::Shared {
        &self.state.slates.shared
    }

    fn store_error(&self, what: &str, e: &Error) {
        if e.is_store_failure() {
            bump(&self.shared().counters.store_errors);
            tracing::error!(error = %e, "slates {what} failed");
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username())
            .finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Auth {
            state: Arc::clone(RequestState::from_parts(parts)?),
        })
    }
}
