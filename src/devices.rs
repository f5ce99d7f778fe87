//! [`Devices`]: the current user's view of their devices (an extractor). What listing,
//! ending, touching and limiting devices do to the token store is in `device_ops.rs`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::cookie::CookieChange;
use crate::device_ops::{end_device, user_devices, Device};
use crate::error::{Error, Result};
use crate::events::{AuthEvent, AuthEventKind};
use crate::names::Username;
use crate::redirect::login_required;
use crate::rejection::LoginRequired;
use crate::request::{resolve_parts, RequestState};
use crate::token::TokenHash;

/// Extractor: the logged-in user's devices (where they are logged in), to list them and
/// end one or all the others. Rejects an anonymous request like
/// [`CurrentUser`](crate::CurrentUser) does. Admin tools use
/// [`Engine::user_devices`](crate::Engine::user_devices) and
/// [`Engine::end_device`](crate::Engine::end_device).
///
/// ```no_run
/// use axum::{extract::Path, http::StatusCode};
/// use slates::Devices;
///
/// async fn end(devices: Devices, Path(id): Path<String>) -> Result<StatusCode, slates::Error> {
///     Ok(if devices.end(&id).await? { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND })
/// }
/// ```
#[derive(Clone)]
pub struct Devices {
    state: Arc<RequestState>,
}

impl Devices {
    /// The user whose devices these are, and the request's current token (after any
    /// [`Auth`](crate::Auth) operation of this request).
    fn current(&self) -> Result<(Username, TokenHash)> {
        let live = self.state.current().ok_or(Error::NotLoggedIn)?;
        Ok((live.user, live.hash))
    }

    /// The user's devices, this one first (`current: true`), then the most recently seen
    /// first. A token in its rotation grace is not listed (the browser already holds its
    /// successor), nor one from before devices existed that has not made a request since.
    pub async fn list(&self) -> Result<Vec<Device>> {
        let (user, hash) = self.current()?;
        user_devices(&self.state.core, &user, Some(&hash)).await
    }

    /// Ends the device `id` of this user: its token is deleted, and its next request is
    /// anonymous. Returns `false`, changing nothing, when `id` is not one of this user's
    /// devices, whether it is another user's, unknown, or not an id at all: the answer
    /// never tells them apart. Ending the current device also removes its cookie.
    pub async fn end(&self, id: &str) -> Result<bool> {
        let _one_at_a_time = self.state.auth_ops().await;
        let (user, current) = self.current()?;
        let ended = end_device(&self.state.core, &user, id).await?;
        if ended == Some(current) {
            self.state.record(None, CookieChange::Remove);
        }
        Ok(ended.is_some())
    }

    /// Ends every other device of this user (after a lost phone, say), in one store
    /// operation; this one stays logged in. Returns how many were ended.
    pub async fn end_others(&self) -> Result<u64> {
        let _one_at_a_time = self.state.auth_ops().await;
        let (user, current) = self.current()?;
        let core = &self.state.core;
        let step = core.tokens.delete_user_tokens_except(&user, &current);
        let n = core.track(step.await)?;
        let kind = AuthEventKind::OthersEnded;
        let event = AuthEvent::new(kind, Some(&user), None, Some(&current), core.now());
        core.events.emit(event);
        Ok(n)
    }
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices").finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Devices {
    type Rejection = LoginRequired;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match resolve_parts(parts).await? {
            (state, Some(_)) => Ok(Devices {
                state: Arc::clone(state),
            }),
            (state, None) => Err(login_required(&state.core.config.when_logged_out, parts)),
        }
    }
}
