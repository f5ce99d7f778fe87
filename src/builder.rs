//! [`EngineBuilder`]: every setting of an [`Engine`], checked at start-up by
//! [`build`](EngineBuilder::build).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use cookie::SameSite;
use time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, MAX_DURATION};
use crate::cookie::{check_headers, is_cookie_name, CookieSettings};
use crate::core::Core;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::events::{AuthEventSubscriber, Events};
use crate::redirect::safe_next;
use crate::rejection::WhenLoggedOut;
use crate::roomy_extensions::RoomyExtensions;
use crate::stats::Counters;
use crate::store::{
    CacheSettings, Cached, Call, Intercept, Intercepted, InvalidationChannel, Layout, SlateStore,
    Store, StoreFuture, StoreOptions, TokenStore,
};
use crate::token_times::TokenTimes;

/// Builds an [`Engine`]. Setters consume and return the builder; every check happens in
/// [`build`](Self::build), so a bad configuration fails at start-up, not at the first request.
///
/// Defaults follow OWASP's session management advice
/// (<https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html>):
/// cookie `__Host-slates`, `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`; 256-bit tokens;
/// an idle timeout of 7 days (renewed by activity once half of it has passed) and an
/// absolute lifetime of 30 days from login.
///
/// Why these timeouts: OWASP's figures (minutes of idle time, hours of absolute lifetime)
/// are for high-value applications such as banking, where a user logs in for one task. The
/// defaults here suit the common "stay logged in on my own device" web app: a user seen
/// at least once a week stays in for up to a month, then logs in again; a token stolen from
/// a device that is no longer used dies within a week. Apps with more at stake set
/// [`idle_timeout`](Self::idle_timeout) and [`absolute_lifetime`](Self::absolute_lifetime)
/// to OWASP's values.
#[must_use = "call .build().await to get an Engine"]
pub struct EngineBuilder {
    tokens: Arc<dyn TokenStore>,
    slates: Arc<dyn SlateStore>,
    config: Config,
    /// The cookie name, if set; the default depends on the other cookie settings.
    cookie_name: Option<String>,
    /// Who gets the lifecycle events, and the length of their queue.
    subscriber: Option<Arc<dyn AuthEventSubscriber>>,
    event_queue: usize,
    /// The guest cookie name, if set (issue 14).
    guest_cookie_name: Option<String>,
    /// Whether and how to cache (see [`cache`](Self::cache)).
    cache: CacheChoice,
}

/// The cache configuration of a builder.
enum CacheChoice {
    /// On with the default settings if the token store offers a channel.
    Default,
    Off,
    On(CacheSettings, Option<Arc<dyn InvalidationChannel>>),
}

impl Engine {
    /// Starts configuring an engine on `store` ([`MemoryStore`](crate::MemoryStore) or
    /// `MongoStore`), which keeps both tokens and slates.
    pub fn builder(store: impl Store) -> EngineBuilder {
        let store = Arc::new(store);
        EngineBuilder::new(store.clone(), store)
    }

    /// Like [`builder`](Self::builder), for a store already behind an `Arc` (such as the
    /// one [`store::open`](crate::store::open) returns).
    pub fn builder_shared(store: Arc<dyn Store>) -> EngineBuilder {
        EngineBuilder::new(store.clone(), store)
    }

    /// Starts configuring an engine that keeps tokens in one store and slates in another
    /// (for example tokens in a store of their own, or each wrapped in a decorator of its
    /// own).
    pub fn builder_split(
        tokens: Arc<dyn TokenStore>,
        slates: Arc<dyn SlateStore>,
    ) -> EngineBuilder {
        EngineBuilder::new(tokens, slates)
    }
}

impl EngineBuilder {
    fn new(tokens: Arc<dyn TokenStore>, slates: Arc<dyn SlateStore>) -> Self {
        EngineBuilder {
            tokens,
            slates,
            cookie_name: None,
            cache: CacheChoice::Default,
            subscriber: None,
            event_queue: 1024,
            guest_cookie_name: None,
            config: Config {
                cookie: CookieSettings {
                    name: String::new(),
                    domain: None,
                    path: "/".into(),
                    secure: true,
                    same_site: SameSite::Lax,
                },
                when_logged_out: WhenLoggedOut::default(),
                idle_timeout: Duration::days(7),
                absolute_lifetime: Duration::days(30),
                renew_after: 0.5,
                rotation_grace: Duration::seconds(10),
                cas_attempts: 64,
                last_seen_interval: Duration::minutes(10),
                max_devices: None,
                record_client_ip: false,
                store: StoreOptions::default(),
                clock: Arc::new(SystemClock),
                // Settled by `build` from the token cookie's attributes.
                guest_cookie: CookieSettings {
                    name: String::new(),
                    domain: None,
                    path: "/".into(),
                    secure: true,
                    same_site: SameSite::Lax,
                },
                guest_idle_timeout: DEFAULT_GUEST_IDLE,
            },
        }
    }

    /// The cookie name. Default: `__Host-slates` when the cookie is `Secure`, has no
    /// `Domain` and `Path=/` (the defaults), else `slates`.
    ///
    /// A name starting with `__Host-` makes the browser refuse the cookie unless it is
    /// `Secure`, has `Path=/` and no `Domain`, which stops a sibling subdomain (or a man in
    /// the middle on plain http) from planting one next to the real one: a second cookie of
    /// the same name makes the request ambiguous, and slates then treats it as anonymous.
    /// The trade-off: such a cookie cannot be shared with subdomains, and needs https
    /// (browsers treat `http://localhost` as secure, other plain-http hosts need
    /// [`secure(false)`](Self::secure), which falls back to `slates`). `build` checks that
    /// the configuration agrees with the prefix.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// The cookie `Domain` (default: none, host-only).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.cookie.domain = Some(domain.into());
        self
    }

    /// The cookie `Path` (default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.config.cookie.path = path.into();
        self
    }

    /// Whether the cookie is `Secure` (default `true`). Switch off only for plain-http
    /// development.
    pub fn secure(mut self, secure: bool) -> Self {
        self.config.cookie.secure = secure;
        self
    }

    /// The cookie `SameSite` attribute (default `Lax`).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.config.cookie.same_site = same_site;
        self
    }

    /// Idle timeout (default 7 days): a token unused for this long stops working; a request
    /// renews it (see [`renew_after`](Self::renew_after)) up to the absolute lifetime. Whole
    /// milliseconds from 1 second to [`MAX_DURATION`], at most the absolute lifetime.
    ///
    /// After a redeploy with a *shorter* idle timeout, an existing token keeps the expiry it
    /// was given until it is renewed (the absolute lifetime, by contrast, applies at once).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Absolute lifetime (default 30 days): a token stops working this long after its
    /// login, however active; neither renewal nor rotation extends it. Whole milliseconds
    /// from 1 second to [`MAX_DURATION`].
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.absolute_lifetime = lifetime;
        self
    }

    /// Share of the idle timeout after which a request renews the token (default `0.5`):
    /// one atomic update of `expires` and a fresh cookie. `1.0` switches renewal off.
    pub fn renew_after(mut self, share: f64) -> Self {
        self.config.renew_after = share;
        self
    }

    /// How long the old token keeps working after [`Auth::rotate`](crate::Auth::rotate)
    /// (default 10 s), so requests already in flight are not logged out. Zero deletes it.
    /// At most the idle timeout.
    pub fn rotation_grace(mut self, grace: Duration) -> Self {
        self.config.rotation_grace = grace;
        self
    }

    /// Attempts the compare-and-swap helper [`RawSlate::modify`](crate::RawSlate::modify) makes
    /// before giving up with [`Error::Conflict`] (default 64). Between attempts it pauses a
    /// random time of at most 16 ms on the Tokio timer (enabled by `#[tokio::main]` and
    /// `#[tokio::test]`), so 64 attempts give up after at most about one second.
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

    /// The prefix of the per-user collections of [`Layout::CollectionPerUser`] (default
    /// `slates.user.`): user `ada`'s slates live in `slates.user.ada`, never in a collection
    /// of the app's. Must be non-empty and should be a prefix the app does not use.
    pub fn user_collection_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.store.user_collection_prefix = prefix.into();
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

    /// What [`CurrentUser`](crate::CurrentUser) answers on a request nobody is logged in
    /// to: [`WhenLoggedOut::Unauthorized`] (401, the default, for APIs) or
    /// [`WhenLoggedOut::redirect`] to a login page (for HTML apps). The login URL must be a
    /// path on this site (`/login`, `/account/login?x=1`).
    pub fn when_logged_out(mut self, policy: WhenLoggedOut) -> Self {
        self.config.when_logged_out = policy;
        self
    }

    /// Caches what requests need of token records and profiles in process with
    /// `settings`, kept in step across instances by the token store's invalidation channel
    /// ([`TokenStore::invalidation_channel`]), or the one set with
    /// [`cache_channel`](Self::cache_channel). See [`Cached`] for what is cached and when
    /// it serves.
    ///
    /// Default: on, with [`CacheSettings::default`], when the token store offers a channel
    /// (`MongoStore` does: a capped collection every instance tails); off otherwise (the
    /// [`MemoryStore`](crate::MemoryStore) is in process already). [`build`](Self::build)
    /// fails with [`Error::Config`] when the cache is asked for and there is no channel.
    pub fn cache(mut self, settings: CacheSettings) -> Self {
        let channel = match self.cache {
            CacheChoice::On(_, channel) => channel,
            _ => None,
        };
        self.cache = CacheChoice::On(settings, channel);
        self
    }

    /// Caches (with the settings given to [`cache`](Self::cache), else the defaults) and
    /// keeps the caches in step through `channel`, for example a
    /// [`LocalChannel`](crate::store::LocalChannel) shared by the engines of one process.
    pub fn cache_channel(mut self, channel: Arc<dyn InvalidationChannel>) -> Self {
        let settings = match self.cache {
            CacheChoice::On(settings, _) => settings,
            _ => CacheSettings::default(),
        };
        self.cache = CacheChoice::On(settings, Some(channel));
        self
    }

    /// No cache: every token check and profile read goes to the store.
    pub fn no_cache(mut self) -> Self {
        self.cache = CacheChoice::Off;
        self
    }

    /// How often a device's last-seen time is written (default 10 minutes): a request writes
    /// it (one conditional update, never an upsert) only once this long has passed since the
    /// last write. Whole milliseconds from zero (every request) to [`MAX_DURATION`].
    pub fn last_seen_interval(mut self, interval: Duration) -> Self {
        self.config.last_seen_interval = interval;
        self
    }

    /// The most devices (live logins) a user may have at once (default: no limit), as OWASP
    /// suggests for apps that want to limit simultaneous sessions. A login that would go
    /// beyond it ends the user's least recently seen devices (their next request is
    /// anonymous) and emits [`AuthEventKind::DeviceLimit`](crate::AuthEventKind::DeviceLimit)
    /// for each. At least 1. Two logins of one user at the same instant may each count
    /// before the other's record exists, and leave one device too many until the next login.
    pub fn max_devices(mut self, max: u32) -> Self {
        self.config.max_devices = Some(max);
        self
    }

    /// Whether each device keeps the client address it logged in from, truncated to its
    /// network (IPv4 /24, IPv6 /48) (default `false`). Even truncated, an address is
    /// personal data (GDPR): switch this on only with a purpose, and say so in your privacy
    /// notice. The address is axum's `ConnectInfo<SocketAddr>` request extension (serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`); behind a reverse proxy, that
    /// is the proxy's address unless a middleware of yours puts the client's address there.
    /// Without the extension, nothing is kept.
    pub fn record_client_ip(mut self, record: bool) -> Self {
        self.config.record_client_ip = record;
        self
    }

    /// The app's receiver of lifecycle [`AuthEvent`](crate::AuthEvent)s (logins, logouts,
    /// ended devices, rotations, renewals, refused tokens): a type implementing
    /// [`AuthEventSubscriber`], or a closure `Fn(&AuthEvent)`. Events are delivered in
    /// order on a thread of their own through a queue (see
    /// [`auth_event_queue`](Self::auth_event_queue)); a request never waits for the
    /// subscriber, and a panic in it is caught and logged. Every event is also a `tracing`
    /// event (target `slates::events`), with or without a subscriber.
    pub fn auth_events(mut self, subscriber: impl AuthEventSubscriber) -> Self {
        self.subscriber = Some(Arc::new(subscriber));
        self
    }

    /// How many events wait for the subscriber at most (default 1024). When the queue is
    /// full, new events are dropped and counted in
    /// [`Stats::events_dropped`](crate::Stats::events_dropped). At least 1.
    pub fn auth_event_queue(mut self, capacity: usize) -> Self {
        self.event_queue = capacity;
        self
    }

    // ---- guests (issue 14) ----

    /// The guest cookie's name (default `__Host-slates-guest` when the token cookie is
    /// `Secure`, host-only and on `Path=/`, else `slates-guest`). The guest cookie has the
    /// token cookie's other attributes (`HttpOnly`, `Secure`, `SameSite`, `Path`,
    /// `Domain`); `build` checks the name as it checks the token cookie's (the `__Host-`
    /// rules included) and refuses the token cookie's name.
    pub fn guest_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.guest_cookie_name = Some(name.into());
        self
    }

    /// Guest idle expiry (default 1 day, [`DEFAULT_GUEST_IDLE`]). A guest slate expires this
    /// long after its last write (a workflow declared with a shorter expiry keeps its own).
    /// The guest token (its record and cookie) expires this long after it was issued or
    /// last renewed, and a guest write renews it once half of that has passed (reads never
    /// do): a visitor who writes at least every half of it keeps their guest, one who stops
    /// loses it between half of it and all of it after their last guest write, and every
    /// guest slate then reads as absent. Whole milliseconds from 1 second to
    /// [`MAX_DURATION`].
    ///
    /// Why a day: guest state is what a visitor does before logging in (an OAuth round
    /// trip, a cart, a sign-up wizard), which is minutes to hours; a visitor who comes back
    /// the next day still finds it, while the slates of the many visitors who never come
    /// back (and of bots) are collected within a day. It is shorter than the token's idle
    /// timeout (7 days) because anyone using the device can read guest state.
    pub fn guest_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.guest_idle_timeout = timeout;
        self
    }

    /// The collection of every visitor's guest slates in MongoDB, in both layouts (default
    /// `_guests`). Must start with `_` and differ from the token and slates collections.
    pub fn guest_collection(mut self, name: impl Into<String>) -> Self {
        self.config.store.guest_collection = name.into();
        self
    }

    /// Checks the configuration, prepares the stores (creates indexes) and returns the
    /// [`Engine`].
    pub async fn build(mut self) -> Result<Engine> {
        let c = &mut self.config.cookie;
        c.name = self.cookie_name.unwrap_or_else(|| {
            let host_only = c.secure && c.domain.is_none() && c.path == "/";
            if host_only { "__Host-slates" } else { "slates" }.to_owned()
        });
        validate(&self.config)?;
        if self.event_queue == 0 {
            return Err(Error::Config(
                "the auth event queue needs room for 1 event".to_owned(),
            ));
        }
        settle_guests(&mut self.config, self.guest_cookie_name.take())?;
        self.tokens.prepare_tokens(&self.config.store).await?;
        self.slates.prepare_slates(&self.config.store).await?;
        let counters = Counters::default();
        // Every call that reaches the stores is counted (`Stats::store_operations`); a
        // cache sits above the count, so what it serves costs nothing.
        let count = CountOperations(Arc::clone(&counters.store_operations));
        let tokens: Arc<dyn TokenStore> = Arc::new(Intercepted::new(self.tokens, count.clone()));
        let slates: Arc<dyn SlateStore> = Arc::new(Intercepted::new(self.slates, count));
        let channel = match self.cache {
            CacheChoice::Off => None,
            CacheChoice::Default => tokens
                .invalidation_channel()
                .map(|c| (CacheSettings::default(), c)),
            CacheChoice::On(settings, channel) => match channel.or_else(|| tokens.invalidation_channel()) {
                Some(c) => Some((settings, c)),
                None => {
                    return Err(Error::Config(
                        "a cache needs an invalidation channel: the token store offers none, set one with cache_channel".into(),
                    ))
                }
            },
        };
        let (tokens, slates, cache) = match channel {
            None => (tokens, slates, None),
            Some((settings, channel)) => {
                channel.prepare().await?;
                let cached = Arc::new(Cached::new(tokens, slates, channel, settings));
                (
                    cached.clone() as Arc<dyn TokenStore>,
                    cached.clone() as Arc<dyn SlateStore>,
                    Some(cached),
                )
            }
        };
        Ok(Engine::from_core(Core {
            tokens,
            slates,
            cache,
            times: TokenTimes::new(&self.config),
            config: self.config,
            counters,
            events: Events::new(self.subscriber, self.event_queue),
            extensions: RoomyExtensions::new(),
        }))
    }
}

/// The default guest idle expiry: 1 day (see [`EngineBuilder::guest_idle_timeout`]).
pub const DEFAULT_GUEST_IDLE: Duration = Duration::days(1);

/// Settles and checks the guest settings (issue 14): the guest cookie takes the token
/// cookie's attributes under its own name, checked by the same rules as the token cookie.
fn settle_guests(c: &mut Config, name: Option<String>) -> Result<()> {
    let mut guest = c.cookie.clone();
    guest.name = name.unwrap_or_else(|| {
        let host_only = guest.secure && guest.domain.is_none() && guest.path == "/";
        if host_only {
            "__Host-slates-guest"
        } else {
            "slates-guest"
        }
        .to_owned()
    });
    let bad = |msg: &str| Err(Error::Config(msg.to_owned()));
    if guest.name == c.cookie.name {
        return bad("the guest cookie name must differ from the token cookie name");
    }
    // The token cookie's rules, applied to the guest cookie.
    let mut as_token = c.clone();
    as_token.cookie = guest.clone();
    validate(&as_token).map_err(|e| match e {
        Error::Config(msg) => Error::Config(format!("guest cookie: {msg}")),
        other => other,
    })?;
    if !whole_ms_in_range(c.guest_idle_timeout) {
        return bad("the guest idle timeout must be whole milliseconds from 1 second to 400 days");
    }
    let coll = &c.store.guest_collection;
    if !coll.starts_with('_') || coll.len() > 120 || coll.contains(['$', '\0']) {
        return bad("the guest collection name must start with `_`, be at most 120 bytes, without `$` or NUL");
    }
    if coll == &c.store.auth_collection || coll == &c.store.slates_collection {
        return bad("the guest collection must differ from the auth and slates collections");
    }
    c.guest_cookie = guest;
    Ok(())
}

fn validate(c: &Config) -> Result<()> {
    let bad = |msg: &str| Err(Error::Config(msg.to_owned()));
    let cookie = &c.cookie;
    let name = &cookie.name;
    if !is_cookie_name(name) {
        return bad("cookie name must be a non-empty RFC 6265 token");
    }
    if name.starts_with("__Host-") {
        if !cookie.secure {
            return bad("a `__Host-` cookie must be Secure");
        }
        if cookie.domain.is_some() {
            return bad("a `__Host-` cookie must not set a Domain");
        }
        if cookie.path != "/" {
            return bad("a `__Host-` cookie must have Path=/");
        }
    }
    if name.starts_with("__Secure-") && !cookie.secure {
        return bad("a `__Secure-` cookie must be Secure");
    }
    if !cookie.path.starts_with('/')
        || !cookie
            .path
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b';')
    {
        return bad("cookie path must start with `/` and hold only printable ASCII without `;`");
    }
    if let Some(domain) = &cookie.domain {
        if !valid_domain(domain) {
            return bad("cookie domain must be a host name: letters, digits, `-` and `.` labels");
        }
    }
    if !whole_ms_in_range(c.idle_timeout) || !whole_ms_in_range(c.absolute_lifetime) {
        return bad(
            "idle timeout and absolute lifetime must be whole milliseconds from 1 second to \
             400 days",
        );
    }
    if c.idle_timeout > c.absolute_lifetime {
        return bad("the idle timeout must not exceed the absolute lifetime");
    }
    if !(c.renew_after > 0.0 && c.renew_after <= 1.0) {
        return bad("renew_after must be in (0, 1]");
    }
    if c.rotation_grace < Duration::ZERO
        || c.rotation_grace > c.idle_timeout
        || !whole_ms(c.rotation_grace)
    {
        return bad("rotation grace must be whole milliseconds between zero and the idle timeout");
    }
    if cookie.same_site == SameSite::None && !cookie.secure {
        return bad("a SameSite=None cookie must be Secure (browsers refuse it otherwise)");
    }
    let interval = c.last_seen_interval;
    if interval < Duration::ZERO || interval > MAX_DURATION || !whole_ms(interval) {
        return bad("the last-seen interval must be whole milliseconds from zero to 400 days");
    }
    if c.max_devices == Some(0) {
        return bad("max_devices must be at least 1");
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
    let prefix = &c.store.user_collection_prefix;
    if prefix.is_empty()
        || prefix.len() > 64
        || prefix.contains(['$', '\0'])
        || prefix.starts_with("system.")
        || prefix.starts_with('.')
    {
        return bad(
            "the user collection prefix must be 1-64 bytes without `$` or NUL, not \
                    starting with `.` or `system.`",
        );
    }
    if !c.store.auth_collection.starts_with('_') {
        return bad("the auth collection name must start with `_`");
    }
    if c.store.auth_collection == c.store.slates_collection {
        return bad("the auth and slates collections must differ");
    }
    // Last, the cookie the layer will send must be a valid header: whatever slipped through
    // the checks above fails here, at start-up, not as an empty `Set-Cookie` later.
    if let WhenLoggedOut::Redirect { login } = &c.when_logged_out {
        if safe_next(login).is_none() || login.contains('#') {
            return bad(
                "the login URL of `when_logged_out` must be a path on this site, such as `/login`",
            );
        }
    }
    if check_headers(cookie).is_err() {
        return bad("the cookie settings do not make a valid Set-Cookie header");
    }
    Ok(())
}

/// A cookie `Domain`: an optional leading dot, then dot-separated labels of 1-63 letters,
/// digits and hyphens (not at either end of a label), 253 bytes at most.
fn valid_domain(domain: &str) -> bool {
    let host = domain.strip_prefix('.').unwrap_or(domain);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Counts the calls that reach the stores.
#[derive(Clone)]
struct CountOperations(Arc<AtomicU64>);

impl Intercept for CountOperations {
    fn around<'a, T, F>(&'a self, call: Call<'a>, op: F) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    {
        if !matches!(call, Call::PrepareTokens(_) | Call::PrepareSlates(_)) {
            self.0.fetch_add(1, Relaxed);
        }
        op()
    }

    /// An answer at once reached the store too: counted when there is one.
    fn around_ready<'a, T>(
        &'a self,
        _call: Call<'a>,
        op: impl FnOnce() -> Option<crate::error::Result<T>>,
    ) -> Option<crate::error::Result<T>> {
        let answer = op();
        if answer.is_some() {
            self.0.fetch_add(1, Relaxed);
        }
        answer
    }
}

/// Whole milliseconds: stores keep times to the millisecond, and a finer part would make the
/// memory store and MongoDB disagree at the edge.
fn whole_ms(d: Duration) -> bool {
    d.subsec_nanoseconds() % 1_000_000 == 0
}

/// A cookie lifetime: whole milliseconds from 1 second (a cookie's `Max-Age` counts whole
/// seconds, and 0 would make the browser drop it at once) to [`MAX_DURATION`].
fn whole_ms_in_range(d: Duration) -> bool {
    d >= Duration::SECOND && d <= MAX_DURATION && whole_ms(d)
}
