//! Devices: every login (one `_auth` record) is a device its user can see and end.
//! [`Devices`] is the current user's view (an extractor), [`Device`] one entry; the
//! functions below are what the layer, [`Auth`](crate::Auth) and
//! [`Engine`](crate::Engine) call.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use time::OffsetDateTime;

use crate::core::Core;
use crate::device_id::DeviceId;
use crate::error::{Error, Result};
use crate::events::{AuthEvent, AuthEventKind};
use crate::names::Username;
use crate::redirect::login_required;
use crate::rejection::LoginRequired;
use crate::request::{CookieChange, RequestState};
use crate::store::TokenRecord;
use crate::token::TokenHash;

/// One device of a user: one live login.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Device {
    /// The public id ([`DeviceId`]): what [`Devices::end`] takes.
    pub id: DeviceId,
    /// Whether this is the device making the request.
    pub current: bool,
    /// When it logged in.
    pub created: OffsetDateTime,
    /// When it was last seen, to the
    /// [`last_seen_interval`](crate::EngineBuilder::last_seen_interval).
    pub last_seen: OffsetDateTime,
    /// Browser and system from its `User-Agent` at login ("Firefox on Linux"); empty for a
    /// login made before devices existed.
    pub label: String,
    /// Its network at login (IPv4 /24, IPv6 /48), when
    /// [`record_client_ip`](crate::EngineBuilder::record_client_ip) is on.
    pub ip: Option<String>,
}

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
        let _one_at_a_time = self.state.auth_ops.lock().await;
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
        let _one_at_a_time = self.state.auth_ops.lock().await;
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
        let state = RequestState::from_parts(parts)?;
        if state.identity.is_none() {
            return Err(login_required(&state.core.config.when_logged_out, parts));
        }
        Ok(Devices {
            state: Arc::clone(state),
        })
    }
}

/// The devices of `user`, `current` marked; sorted as [`Devices::list`] says.
pub(crate) async fn user_devices(
    core: &Core,
    user: &Username,
    current: Option<&TokenHash>,
) -> Result<Vec<Device>> {
    let now = core.now();
    let records = core.track(core.tokens.user_tokens(user, now).await)?;
    let mut devices: Vec<Device> = records
        .into_iter()
        .filter(|r| r.rotated.is_none())
        .filter_map(|r| {
            Some(Device {
                current: Some(&r.hash) == current,
                id: r.device?,
                created: r.created,
                last_seen: r.last_seen,
                label: r.label,
                ip: r.ip,
            })
        })
        .collect();
    devices.sort_by_key(|d| std::cmp::Reverse((d.current, d.last_seen)));
    Ok(devices)
}

/// Ends the device `id` of `user` (one atomic delete matching both); the deleted token's
/// hash, or `None` when `id` is not one of `user`'s devices.
pub(crate) async fn end_device(
    core: &Core,
    user: &Username,
    id: &str,
) -> Result<Option<TokenHash>> {
    let Some(id) = DeviceId::parse(id) else {
        return Ok(None);
    };
    let ended = core.track(core.tokens.delete_device(user, &id).await)?;
    if let Some(hash) = &ended {
        let kind = AuthEventKind::DeviceEnded;
        let event = AuthEvent::new(kind, Some(user), Some(&id), Some(hash), core.now());
        core.events.emit(event);
    }
    Ok(ended)
}

/// Writes the device's last-seen time when the configured interval has passed since the
/// last write (or gives a record from before devices existed its id). One conditional
/// update that never creates a record; a failure is logged and the request goes on (the
/// next request retries).
pub(crate) async fn touch_if_due(core: &Core, record: &TokenRecord, now: OffsetDateTime) {
    let interval = core.config.last_seen_interval;
    let assign = match &record.device {
        Some(_) if now - record.last_seen < interval => return,
        Some(_) => None,
        None => match DeviceId::generate() {
            Ok(id) => Some(id),
            Err(_) => return,
        },
    };
    let touch = core
        .tokens
        .touch_token(&record.hash, assign.as_ref(), now - interval, now);
    if let Err(e) = touch.await {
        core.store_error("last-seen update", &e);
    }
}

/// After a login of `user` whose new token is `keep`: when the user now has more devices
/// than [`max_devices`](crate::EngineBuilder::max_devices), ends the least recently seen
/// others. Best effort: a store failure is logged and the login stands.
pub(crate) async fn enforce_limit(core: &Core, user: &Username, keep: &TokenHash) {
    let Some(max) = core.config.max_devices else {
        return;
    };
    let now = core.now();
    let records = match core.tokens.user_tokens(user, now).await {
        Ok(records) => records,
        Err(e) => return core.store_error("device limit (list)", &e),
    };
    let mut others: Vec<TokenRecord> = records
        .into_iter()
        .filter(|r| r.rotated.is_none() && r.hash != *keep)
        .collect();
    let excess = (others.len() + 1).saturating_sub(max as usize);
    // Least recently seen first; the earlier login first among equals.
    others.sort_by_key(|r| (r.last_seen, r.created));
    for record in others.iter().take(excess) {
        match core.tokens.delete_token(&record.hash).await {
            Ok(true) => {
                let kind = AuthEventKind::DeviceLimit;
                let device = record.device.as_ref();
                let event = AuthEvent::new(kind, Some(user), device, Some(&record.hash), now);
                core.events.emit(event);
            }
            Ok(false) => {}
            Err(e) => core.store_error("device limit (end)", &e),
        }
    }
}
