//! The settled [`Config`] of an engine, as [`EngineBuilder`](crate::EngineBuilder) leaves it.

use std::sync::Arc;

use time::Duration;

use crate::clock::Clock;
use crate::cookie::CookieSettings;
use crate::rejection::WhenLoggedOut;
use crate::store::StoreOptions;

/// Settled configuration, readable through [`Engine::config`](crate::Engine::config).
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The token cookie's attributes.
    pub cookie: CookieSettings,
    /// What [`CurrentUser`](crate::CurrentUser) answers when nobody is logged in (default
    /// 401).
    pub when_logged_out: WhenLoggedOut,
    /// Idle timeout (default 7 days): a token not used for this long stops working. Each
    /// renewal moves the deadline to `now + idle_timeout`.
    pub idle_timeout: Duration,
    /// Absolute lifetime (default 30 days), counted from login: no renewal extends a token
    /// past `created + absolute_lifetime`.
    pub absolute_lifetime: Duration,
    /// Share of the idle timeout that must have passed before a request renews the token
    /// (default 0.5). `1.0` disables sliding renewal.
    pub renew_after: f64,
    /// How long the old token keeps working after [`Auth::rotate`](crate::Auth::rotate)
    /// (default 10 seconds).
    pub rotation_grace: Duration,
    /// Attempts a compare-and-swap helper makes before
    /// [`Error::Conflict`](crate::Error::Conflict) (default 64).
    pub cas_attempts: u32,
    /// How often a device's `last_seen` is written (default 10 minutes): a request writes it
    /// only when at least this long has passed since the last write, so a busy device costs
    /// one conditional update per interval, and `last_seen` is exact to this interval.
    pub last_seen_interval: Duration,
    /// The most devices (live logins) a user may have (default `None`: no limit). A login
    /// beyond it ends the least recently seen device.
    pub max_devices: Option<u32>,
    /// Whether the client address is kept with each device, truncated (default `false`).
    pub record_client_ip: bool,
    /// What the store was prepared with.
    pub store: StoreOptions,
    /// The time source.
    pub clock: Arc<dyn Clock>,

    // ---- guests (issue 14) ----
    /// The guest cookie's attributes: those of the token cookie, under another name
    /// (default `__Host-slates-guest` when the token cookie is host-only, else
    /// `slates-guest`).
    pub guest_cookie: CookieSettings,
    /// Guest idle expiry (default 1 day): how long a guest slate lives after its last write
    /// (a workflow with a shorter expiry keeps it), and a guest token after it was issued
    /// or last renewed. See [`EngineBuilder::guest_idle_timeout`](crate::EngineBuilder::guest_idle_timeout).
    pub guest_idle_timeout: Duration,
}

/// Longest accepted duration setting: 400 days, the longest `Max-Age` browsers honour
/// (RFC 6265bis), and far from any arithmetic overflow.
pub const MAX_DURATION: Duration = Duration::days(400);
