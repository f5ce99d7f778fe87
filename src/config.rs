//! Configuration: [`SlatesBuilder`] and the settled [`Config`] it produces.

use std::sync::Arc;

use cookie::SameSite;
use time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::slates::Slates;
use crate::stats::Counters;
use crate::store::{Layout, Store, StoreOptions};

/// Settled configuration, readable through [`Slates::config`].
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Cookie name (default `slates`).
    pub cookie_name: String,
    /// Cookie `Domain`, if any (not allowed with the `__Host-` prefix).
    pub cookie_domain: Option<String>,
    /// Cookie `Path` (default `/`).
    pub cookie_path: String,
    /// Whether the cookie is `Secure` (default `true`).
    pub secure: bool,
    /// Cookie `SameSite` (default `Lax`).
    pub same_site: SameSite,
    /// Absolute token lifetime (default 14 days).
    pub token_lifetime: Duration,
    /// Share of the lifetime after which a token is renewed (default 0.5). `1.0` disables
    /// sliding renewal.
    pub renew_after: f64,
    /// How long the old token keeps working after [`Auth::rotate`](crate::Auth::rotate)
    /// (default 10 seconds).
    pub rotation_grace: Duration,
    /// Attempts a compare-and-swap helper makes before [`Error::Conflict`] (default 64).
    pub cas_attempts: u32,
    /// What the store was prepared with.
    pub store: StoreOptions,
    /// The time source.
    pub clock: Arc<dyn Clock>,
}

/// Builds a [`Slates`]. Setters consume and return the builder; every check happens in
/// [`build`](Self::build), so a bad configuration fails at start-up, not at the first request.
///
/// Defaults follow OWASP's session management advice
/// (<https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html>):
/// cookie `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`; 256-bit tokens; 14-day absolute
/// lifetime with sliding renewal after half of it.
#[must_use = "call .build().await to get a Slates"]
pub struct SlatesBuilder {
    store: Arc<dyn Store>,
    config: Config,
}

impl SlatesBuilder {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        SlatesBuilder {
            store,
            config: Config {
                cookie_name: "slates".into(),
                cookie_domain: None,
                cookie_path: "/".into(),
                secure: true,
                same_site: SameSite::Lax,
                token_lifetime: Duration::days(14),
                renew_after: 0.5,
                rotation_grace: Duration::seconds(10),
                cas_attempts: 64,
                store: StoreOptions::default(),
                clock: Arc::new(SystemClock),
            },
        }
    }

    /// The cookie name (default `slates`). A name starting with `__Host-` makes the browser
    /// refuse the cookie unless it is `Secure`, has `Path=/` and no `Domain`, which stops a
    /// sibling subdomain from planting one; `build` checks that the configuration agrees.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config.cookie_name = name.into();
        self
    }

    /// The cookie `Domain` (default: none, host-only).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.cookie_domain = Some(domain.into());
        self
    }

    /// The cookie `Path` (default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.config.cookie_path = path.into();
        self
    }

    /// Whether the cookie is `Secure` (default `true`). Switch off only for plain-http
    /// development.
    pub fn secure(mut self, secure: bool) -> Self {
        self.config.secure = secure;
        self
    }

    /// The cookie `SameSite` attribute (default `Lax`).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.config.same_site = same_site;
        self
    }

    /// Absolute token lifetime (default 14 days).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.token_lifetime = lifetime;
        self
    }

    /// Share of the lifetime after which a request renews the token (default `0.5`): one
    /// atomic update of `expires` and a fresh cookie. `1.0` switches renewal off.
    pub fn renew_after(mut self, share: f64) -> Self {
        self.config.renew_after = share;
        self
    }

    /// How long the old token keeps working after [`Auth::rotate`](crate::Auth::rotate)
    /// (default 10 s), so requests already in flight are not logged out. Zero deletes it.
    pub fn rotation_grace(mut self, grace: Duration) -> Self {
        self.config.rotation_grace = grace;
        self
    }

    /// Attempts the compare-and-swap helper [`Slate::modify`](crate::Slate::modify) makes
    /// before giving up with [`Error::Conflict`] (default 64).
    pub fn cas_attempts(mut self, attempts: u32) -> Self {
        self.config.cas_attempts = attempts;
        self
    }

    /// The slate layout in MongoDB (default [`Layout::SingleCollection`]).
    pub fn layout(mut self, layout: Layout) -> Self {
        self.config.store.layout = layout;
        self
    }

    /// The token collection (default `_auth`). Must start with `_`, which usernames cannot,
    /// so it never collides with a per-user collection.
    pub fn auth_collection(mut self, name: impl Into<String>) -> Self {
        self.config.store.auth_collection = name.into();
        self
    }

    /// The slates collection of [`Layout::SingleCollection`] (default `slates`).
    pub fn slates_collection(mut self, name: impl Into<String>) -> Self {
        self.config.store.slates_collection = name.into();
        self
    }

    /// The time source (default the system clock). Tests pass a
    /// [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }

    /// Checks the configuration, prepares the store (creates indexes) and returns the
    /// [`Slates`] handle.
    pub async fn build(self) -> Result<Slates> {
        validate(&self.config)?;
        self.store.prepare(&self.config.store).await?;
        Ok(Slates::from_parts(
            self.store,
            Arc::new(self.config),
            Arc::new(Counters::default()),
        ))
    }
}

fn validate(c: &Config) -> Result<()> {
    let bad = |msg: &str| Err(Error::Config(msg.to_owned()));
    let name = &c.cookie_name;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return bad("cookie name must be a non-empty RFC 6265 token");
    }
    if name.starts_with("__Host-") {
        if !c.secure {
            return bad("a `__Host-` cookie must be Secure");
        }
        if c.cookie_domain.is_some() {
            return bad("a `__Host-` cookie must not set a Domain");
        }
        if c.cookie_path != "/" {
            return bad("a `__Host-` cookie must have Path=/");
        }
    }
    if name.starts_with("__Secure-") && !c.secure {
        return bad("a `__Secure-` cookie must be Secure");
    }
    if !c.cookie_path.starts_with('/') || c.cookie_path.contains(';') {
        return bad("cookie path must start with `/` and hold no `;`");
    }
    if c.token_lifetime <= Duration::ZERO {
        return bad("token lifetime must be positive");
    }
    if !(c.renew_after > 0.0 && c.renew_after <= 1.0) {
        return bad("renew_after must be in (0, 1]");
    }
    if c.rotation_grace < Duration::ZERO {
        return bad("rotation grace must not be negative");
    }
    if c.cas_attempts == 0 {
        return bad("cas_attempts must be at least 1");
    }
    for coll in [&c.store.auth_collection, &c.store.slates_collection] {
        if coll.is_empty() || coll.len() > 120 || coll.contains(['$', '\0']) {
            return bad("collection names must be 1-120 bytes without `$` or NUL");
        }
        if coll.starts_with("system.") {
            return bad("collection names must not start with `system.`");
        }
    }
    if !c.store.auth_collection.starts_with('_') {
        return bad("the auth collection name must start with `_`");
    }
    if c.store.auth_collection == c.store.slates_collection {
        return bad("the auth and slates collections must differ");
    }
    Ok(())
}
