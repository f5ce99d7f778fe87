//! Devices: every login (one `_auth` record) is a device its user can see and end.
//! [`Device`] is one entry; the functions below are what the current user's
//! [`Devices`](crate::Devices), [`Auth`](crate::Auth), the token check and
//! [`Engine`](crate::Engine) call.

use time::OffsetDateTime;

use crate::clock::to_millis;
use crate::core::Core;
use crate::device_id::DeviceId;
use crate::error::Result;
use crate::events::{AuthEvent, AuthEventKind};
use crate::names::Username;
use crate::store::{TokenBrief, TokenRecord};
use crate::token::TokenHash;

/// One device of a user: one live login.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Device {
    /// The public id ([`DeviceId`]): what [`Devices::end`](crate::Devices::end) takes.
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

/// The devices of `user`, `current` marked; sorted as [`Devices::list`](crate::Devices::list) says.
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
pub(crate) async fn touch_if_due(
    core: &Core,
    token: &TokenBrief,
    hash: &TokenHash,
    now: OffsetDateTime,
) {
    if !core.times.touch_due(token, to_millis(now)) {
        return;
    }
    let interval = core.config.last_seen_interval;
    let assign = match token.has_device {
        true => None,
        false => match DeviceId::generate() {
            Ok(id) => Some(id),
            Err(_) => return,
        },
    };
    let touch = core
        .tokens
        .touch_token(hash, assign.as_ref(), now - interval, now);
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
