//! [`Auth`]: login, logout, logout everywhere and rotation, from inside a handler.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use http::header::USER_AGENT;
use http::request::Parts;
use time::OffsetDateTime;

use crate::client_ip::truncated_ip;
use crate::cookie::CookieChange;
use crate::core::Core;
use crate::device_id::DeviceId;
use crate::device_ops::enforce_limit;
use crate::error::{Error, Result};
use crate::events::{AuthEvent, AuthEventKind};
use crate::names::Username;
use crate::rejection::MissingLayer;
use crate::request::{LiveToken, RequestState};
use crate::stats::bump;
use crate::store::{TokenRecord, TokenStore};
use crate::token::Token;
use crate::token::TokenHash;
use crate::user_agent::device_label;

/// Extractor that logs users in and out. Works on anonymous requests too (that is where
/// `login` happens). Extracting it costs no store operation; each operation says what it
/// reads and writes. Cookie changes are sent on this request's response.
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
///
/// A login is a new device ([`Devices`](crate::Devices)): its record keeps a random device
/// id, a label from this request's `User-Agent` and, if
/// [`record_client_ip`](crate::EngineBuilder::record_client_ip) is on, the client's network.
#[derive(Clone)]
pub struct Auth {
    state: Arc<RequestState>,
    /// The request's `User-Agent`, for the device label of a login.
    user_agent: Option<String>,
    /// The client address (axum's `ConnectInfo`), if the app serves with it.
    client_ip: Option<IpAddr>,
}

/// The device fields of a new token record.
struct DeviceFields {
    id: DeviceId,
    label: String,
    ip: Option<String>,
}

impl Auth {
    /// The user this request arrived logged in as, if any (a `login` in this handler does
    /// not change it). Checks the token (one token lookup) unless an extractor of this
    /// request did already.
    pub async fn username(&self) -> Result<Option<&str>> {
        Ok(self.state.resolve_parsed().await?.map(|i| i.user.as_str()))
    }

    /// The live token of the request: the one an earlier operation of this request left,
    /// else the one the request arrived with (checked against the store, once per request).
    async fn current(&self) -> Result<Option<LiveToken>> {
        if self.state.changed_login().is_none() {
            self.state.resolve_parsed().await?;
        }
        Ok(self.state.current())
    }

    /// The hash of the token to delete when the login ends: the one an earlier operation of
    /// this request left, else the cookie's, unchecked (deleting an unknown token is
    /// harmless, and costs no lookup).
    fn current_hash(&self) -> Option<TokenHash> {
        match self.state.changed_login() {
            Some(changed) => changed.map(|live| live.hash),
            None => self.state.cookie_hash(),
        }
    }

    /// Logs `username` in: a fresh random token (a token the client sent is never adopted),
    /// a new `_auth` record, and `Set-Cookie` on the response.
    ///
    /// The token this request carried (or issued earlier in this handler), if well-formed, is
    /// deleted **first** (without a lookup), so a planted or shared token never stays valid next to the new one. If that
    /// delete fails, nothing changed and the error is returned. If the insert of the new
    /// token then fails, the error is returned and the response removes the cookie (the old
    /// token is gone, no new one exists).
    pub async fn login(&self, username: &str) -> Result<()> {
        let user = Username::new(username)?;
        let _one_at_a_time = self.state.auth_ops().await;
        if let Some(old) = self.current_hash() {
            let step = self.store().delete_token(&old);
            self.deleting("login (delete previous token)", &old, step)
                .await?;
        }
        let now = self.core().config.clock.now();
        let device = self.device_fields()?;
        let hash = self
            .issue(user.clone(), now, device, AuthEventKind::Login)
            .await?;
        bump(&self.core().counters.logins);
        enforce_limit(self.core(), &user, &hash).await;
        Ok(())
    }

    /// Logs this browser out: deletes its token record (one delete, no lookup) and expires
    /// the cookie. Without a well-formed token cookie it only expires the cookie. If the
    /// delete fails, the error is returned and the cookie is left as it was (the token still
    /// works, so the user can retry).
    pub async fn logout(&self) -> Result<()> {
        let _one_at_a_time = self.state.auth_ops().await;
        if let Some(current) = self.current_hash() {
            // The user, if this request knows it without a lookup (it resolved its
            // identity, or an operation of it issued that token), read before the delete
            // records the logout.
            let live = self.state.current().filter(|live| live.hash == current);
            let user = live.map(|live| live.user);
            let step = self.store().delete_token(&current);
            if self.deleting("logout", &current, step).await? {
                bump(&self.core().counters.logouts);
                self.emit(AuthEventKind::Logout, user.as_ref(), None, &current);
            }
        }
        self.state.record(None, CookieChange::Remove);
        Ok(())
    }

    /// Logs the current user out on every device: deletes every token of the user (for
    /// example after a password change), in one store operation, and expires this browser's
    /// cookie. Returns how many tokens were deleted. [`Error::NotLoggedIn`] on an anonymous
    /// request. If the delete fails, the error is returned and the cookie is left as it was.
    pub async fn logout_everywhere(&self) -> Result<u64> {
        let _one_at_a_time = self.state.auth_ops().await;
        let current = self.current().await?.ok_or(Error::NotLoggedIn)?;
        let step = self.store().delete_user_tokens(&current.user);
        let n = self
            .deleting("logout everywhere", &current.hash, step)
            .await?;
        bump(&self.core().counters.logouts);
        let kind = AuthEventKind::LogoutEverywhere;
        self.emit(kind, Some(&current.user), None, &current.hash);
        Ok(n)
    }

    /// Replaces the current token with a new one (call it when privileges change).
    /// [`Error::NotLoggedIn`] on an anonymous request.
    ///
    /// The new token gets a new device id, with the old one's login time and a label (and
    /// address) from this request: the old token, in its grace, is no longer listed by
    /// [`Devices`](crate::Devices).
    ///
    /// The old token is retired **first**: marked as rotated out (never renewed again) with
    /// its expiry lowered to the configured rotation grace (default 10 s, so requests already
    /// in flight are not logged out), or deleted at once with a zero grace. If that fails,
    /// nothing changed and the error is returned. Then the new token is inserted; if that
    /// fails, the error is returned, no new cookie is sent, and the old token lives out its
    /// grace (with a zero grace, the response removes the cookie): the user logs in again.
    pub async fn rotate(&self) -> Result<()> {
        let _one_at_a_time = self.state.auth_ops().await;
        let old = self.current().await?.ok_or(Error::NotLoggedIn)?;
        let config = &self.core().config;
        let grace = config.rotation_grace;
        if grace.is_zero() {
            let step = self.store().delete_token(&old.hash);
            self.deleting("rotate (delete the old token)", &old.hash, step)
                .await?;
        } else {
            // The old token stays live for its grace whatever the outcome: no cookie change.
            let now = config.clock.now();
            self.store()
                .retire_token(&old.hash, now + grace, now)
                .await
                .inspect_err(|e| self.store_error("rotate (retire the old token)", e))?;
        }
        // The new token continues the same login: its absolute lifetime counts from it. It
        // is the same browser, so its label and address come from this request.
        let device = self.device_fields()?;
        let kind = AuthEventKind::Rotation;
        self.issue(old.user, old.created, device, kind).await?;
        Ok(())
    }

    /// Inserts a fresh token for `user`, logged in at `created`, on `device`, records it as
    /// the request's cookie change and emits `kind`. Returns its hash.
    async fn issue(
        &self,
        user: Username,
        created: OffsetDateTime,
        device: DeviceFields,
        kind: AuthEventKind,
    ) -> Result<TokenHash> {
        let config = &self.core().config;
        let now = config.clock.now();
        // Idle deadline, capped by the absolute lifetime of the login (a rotation late in
        // it gets what is left). `build` checked that the idle timeout is within the
        // absolute lifetime, so for a fresh login this is `now + idle`.
        let expires = (now + config.idle_timeout)
            .min(created.checked_add(config.absolute_lifetime).unwrap_or(now));
        // A collision of two 256-bit random tokens will not happen; the second try is there
        // so that even then the user gets a token rather than an error.
        let mut attempt = 0;
        let token = loop {
            let token = Token::generate()?;
            let record = TokenRecord {
                hash: token.hash(),
                user: user.clone(),
                created,
                expires,
                renewed: None,
                rotated: None,
                device: Some(device.id.clone()),
                last_seen: now,
                label: device.label.clone(),
                ip: device.ip.clone(),
            };
            match self.store().insert_token(&record).await {
                Ok(()) => break token,
                Err(Error::DuplicateKey) if attempt == 0 => attempt += 1,
                Err(e) => {
                    self.store_error("insert token", &e);
                    // The insert may have been applied with its reply lost: remove the record
                    // again, so that no live token remains whose cookie was never sent. If the
                    // store is down this fails too; nobody holds that token then, and it dies
                    // at its idle timeout.
                    if e.is_store_failure() {
                        let _ = self.store().delete_token(&record.hash).await;
                    }
                    return Err(e);
                }
            }
        };
        let hash = token.hash();
        self.emit(kind, Some(&user), Some(&device.id), &hash);
        let live = LiveToken {
            hash,
            user,
            created,
        };
        self.state
            .record(Some(live), CookieChange::Set(token, expires - now));
        Ok(hash)
    }

    /// A fresh device id, and the label and address of this request.
    fn device_fields(&self) -> Result<DeviceFields> {
        let ip = self
            .client_ip
            .filter(|_| self.core().config.record_client_ip);
        Ok(DeviceFields {
            id: DeviceId::generate()?,
            label: device_label(self.user_agent.as_deref()),
            ip: ip.map(truncated_ip),
        })
    }

    fn emit(
        &self,
        kind: AuthEventKind,
        user: Option<&Username>,
        device: Option<&DeviceId>,
        hash: &TokenHash,
    ) {
        let event = AuthEvent::new(kind, user, device, Some(hash), self.core().now());
        self.core().events.emit(event);
    }

    /// Runs a store `step` that deletes the request's current token `hash` (with others,
    /// for "log out everywhere"). Done: the response removes the cookie. Failed: the error
    /// is returned and, since the delete may have happened all the same, the response does
    /// not hand that token out ([`unknown_outcome`](Self::unknown_outcome)).
    async fn deleting<T>(
        &self,
        what: &str,
        hash: &TokenHash,
        step: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match step.await {
            Ok(done) => {
                self.state.record(None, CookieChange::Remove);
                Ok(done)
            }
            Err(e) => {
                self.store_error(what, &e);
                self.unknown_outcome(hash).await;
                Err(e)
            }
        }
    }

    /// After a failed delete of the request's current token `hash`, which may or may not
    /// have been applied: the response must not hand that token out. Issued by this request
    /// (the browser does not hold it yet): delete it again, best effort, and remove the
    /// cookie. The browser's own token: leave its cookie as it is (no renewal either).
    async fn unknown_outcome(&self, hash: &TokenHash) {
        if self.state.pending_set_of(hash) {
            let _ = self.store().delete_token(hash).await;
            self.state.record(None, CookieChange::Remove);
        } else {
            self.state.keep();
        }
    }

    fn core(&self) -> &Core {
        &self.state.core
    }

    /// The request state, for `login_carrying` (issue 14, `carry_over.rs`).
    pub(crate) fn request_state(&self) -> &Arc<RequestState> {
        &self.state
    }

    fn store(&self) -> &dyn TokenStore {
        &*self.core().tokens
    }

    fn store_error(&self, what: &str, e: &Error) {
        self.core().store_error(what, e);
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.state.resolved().map(|i| i.user.as_str()))
            .finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let state = RequestState::from_parts(parts)?;
        // Parse the cookie now (no store call): the operations need it and have no headers.
        state.cookie(&parts.headers);
        let user_agent = parts.headers.get(USER_AGENT);
        let client_ip = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        // The guest cookie too, for `login_carrying` (issue 14; no store call).
        let guest_cookie = &state.core.config.guest_cookie.name;
        state.guest().parse_cookie(&parts.headers, guest_cookie);
        Ok(Auth {
            state: Arc::clone(state),
            user_agent: user_agent.and_then(|v| v.to_str().ok()).map(str::to_owned),
            client_ip: client_ip.map(|c| c.0.ip()),
        })
    }
}
