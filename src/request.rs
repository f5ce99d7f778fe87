//! What the layer leaves in request extensions for the extractors: the request's state,
//! resolved lazily. Nothing is read from a store until an extractor asks: the token lookup
//! on the first identity question, the profile on the first profile question, each at most
//! once per request.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use http::request::Parts;
use http::HeaderMap;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::clock::from_millis;
use crate::cookie::CookieChange;
use crate::cookie::{configured_token, CookieToken};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::guest::GuestState;
use crate::names::Username;
use crate::rejection::{MissingLayer, Unavailable, Unresolved};
use crate::resolve::{load_profile, resolve, start, Identity, LoadedProfile, Resolution, Start};
use crate::sync::lock;
use crate::token::TokenHash;

/// A live token of the request: the one it came with, or one an `Auth` operation issued.
#[derive(Clone)]
pub(crate) struct LiveToken {
    pub hash: TokenHash,
    pub user: Username,
    /// When its login happened (a rotation keeps it: the absolute lifetime counts from it).
    pub created: OffsetDateTime,
}

/// Where the request's login stands after the `Auth` operations run so far.
#[derive(Default)]
struct AuthState {
    /// Set once an `Auth` operation changed the login: the live token the browser holds
    /// once this response is applied (`Some(None)`: none).
    current: Option<Option<LiveToken>>,
    /// The cookie change an `Auth` operation asked for (`None`: leave the cookie as the
    /// resolution decided).
    change: Option<CookieChange>,
    /// The cookie change the resolution wants (removal of a refused cookie, a renewal).
    resolution_change: Option<CookieChange>,
}

/// Per-request state shared by the service and the extractors (one `Arc` in extensions).
///
/// Small, because every request allocates, fills and drops one: what a warm read uses (the
/// identity, the profile) is here; what few requests use is in [`Rare`], allocated on
/// first use.
pub(crate) struct RequestState {
    pub core: Arc<Core>,
    /// The identity, resolved by the first extractor that asks (one token lookup). Set
    /// without waiting when the store answers at once (a warm request); otherwise by the
    /// resolution that holds [`Rare::resolving`].
    identity: OnceLock<Option<Identity>>,
    /// The profile, loaded by the first profile read (one slate read).
    profile: OnceCell<LoadedProfile>,
    /// The rest, made by the first request of this request for any of it.
    rare: OnceLock<Box<Rare>>,
}

/// The parts of a request's state that most requests never use.
#[derive(Default)]
struct Rare {
    /// The token cookie, parsed by an extractor that keeps the state (`Auth`: its operations
    /// have no headers). A resolution from the headers parses the cookie for itself when
    /// the cell is empty: one cell set, not two, on a warm request.
    cookie: OnceLock<CookieToken>,
    /// Made by the first resolution that has to wait for the store (most requests make
    /// none): held across its store calls, so that another resolution of this request
    /// waits for its answer (and the cookie change it wants) instead of making its own.
    resolving: OnceLock<tokio::sync::Mutex<()>>,
    /// Made by the first write (most requests make none, and apply their response without
    /// taking a lock). Short critical sections only (read or swap a value); never held
    /// across an `.await`.
    auth: OnceLock<Mutex<AuthState>>,
    /// Serializes the `Auth` operations of this one request (a handler that runs two at once
    /// with `join!`), so that each sees the token the previous one left. Held across the
    /// store calls of one operation, by this request only: no other request waits on it.
    /// Made by the first operation ([`auth_ops`](RequestState::auth_ops)): most requests
    /// run none.
    auth_ops: OnceLock<tokio::sync::Mutex<()>>,
    /// The visitor's guest (issue 14), made on first use (a request that never uses guest
    /// slates allocates nothing for them): looked up on first use, issued by the first
    /// guest write; its cookie change is applied by the service.
    guest: OnceLock<Arc<GuestState>>,
}

impl RequestState {
    pub fn new(core: Arc<Core>) -> Self {
        RequestState {
            core,
            identity: OnceLock::new(),
            profile: OnceCell::new(),
            rare: OnceLock::new(),
        }
    }

    /// The rare parts, made on first use.
    fn rare(&self) -> &Rare {
        self.rare.get_or_init(Default::default)
    }

    /// The token cookie, if an extractor parsed it into the state.
    fn parsed_cookie(&self) -> Option<&CookieToken> {
        self.rare_made()?.cookie.get()
    }

    /// The rare parts, if made already.
    fn rare_made(&self) -> Option<&Rare> {
        self.rare.get().map(|r| &**r)
    }

    pub fn from_parts(parts: &Parts) -> std::result::Result<&Arc<RequestState>, MissingLayer> {
        parts
            .extensions
            .get::<Arc<RequestState>>()
            .ok_or(MissingLayer)
    }

    /// The token cookie of the request, parsed once (no store call).
    pub fn cookie(&self, headers: &HeaderMap) -> &CookieToken {
        self.rare()
            .cookie
            .get_or_init(|| configured_token(headers, &self.core.config.cookie.name))
    }

    /// The identity the request arrived with: resolved on the first call (one token lookup,
    /// and a renewal when due), the same answer afterwards. A store failure is an error and
    /// is not remembered (a later call asks again).
    ///
    /// A resolution settled without waiting (no cookie, or a lookup the store answered at
    /// once with nothing to write: a warm request) is kept with no future; any other runs
    /// once, later calls waiting for it.
    pub async fn resolve(&self, headers: &HeaderMap) -> Result<Option<&Identity>> {
        if let Some(identity) = self.identity.get() {
            return Ok(identity.as_ref());
        }
        let started = match self.parsed_cookie() {
            Some(cookie) => start(&self.core, cookie),
            None => {
                let cookie = configured_token(headers, &self.core.config.cookie.name);
                match start(&self.core, &cookie) {
                    // A warm request: nothing to wait for, nothing in flight.
                    Start::Settled(resolution) if !self.resolution_in_flight() => {
                        return self.keep_resolution(resolution);
                    }
                    started => started,
                }
            }
        };
        self.settle(started).await
    }

    /// [`resolve`](Self::resolve) once the cookie was parsed (an extractor that keeps the
    /// state, such as `Auth`, parses it when it is extracted); a cookie never parsed counts
    /// as absent.
    pub async fn resolve_parsed(&self) -> Result<Option<&Identity>> {
        if let Some(identity) = self.identity.get() {
            return Ok(identity.as_ref());
        }
        let cookie = self.parsed_cookie().unwrap_or(&CookieToken::Absent);
        self.settle(start(&self.core, cookie)).await
    }

    /// Keeps a settled resolution, by the resolution that holds the lock or, settled at once,
    /// with none in flight (nothing was awaited since that was checked), unless one was kept
    /// already. A failure is not kept: the next call asks again.
    fn keep_resolution(&self, resolution: Result<Resolution, Error>) -> Result<Option<&Identity>> {
        let (identity, change) = resolution?;
        if self.identity.set(identity).is_ok() {
            self.keep_resolution_change(change);
        }
        Ok(self.resolved())
    }

    /// Ends a resolution begun by [`start`], under the lock when it has to wait or another
    /// one is in flight.
    async fn settle(&self, started: Start) -> Result<Option<&Identity>> {
        // A resolution of this request that waits for the store (it may renew the token)
        // holds the lock: its answer, and its cookie change, are the request's. Any other
        // resolution begun meanwhile waits for it, a settled one too (so that it never
        // overrides the answer in flight).
        let waits = matches!(started, Start::Pending(_)) || self.resolution_in_flight();
        let _resolving = match waits {
            true => Some(
                self.rare()
                    .resolving
                    .get_or_init(Default::default)
                    .lock()
                    .await,
            ),
            false => None,
        };
        if let Some(identity) = self.identity.get() {
            return Ok(identity.as_ref());
        }
        let resolution = match started {
            Start::Settled(resolution) => resolution,
            // Boxed: a store call to wait for costs far more than the allocation, and the
            // future of every extractor that asks stays small (it is moved as it is built).
            Start::Pending(pending) => Box::pin(resolve(&self.core, pending)).await,
        };
        // Unset: the lock is held (or, settled, nothing awaited since it was checked).
        self.keep_resolution(resolution)
    }

    /// Whether a resolution of this request waits for the store (or did).
    fn resolution_in_flight(&self) -> bool {
        self.rare_made()
            .is_some_and(|r| r.resolving.get().is_some())
    }

    /// Keeps the cookie change the resolution wants, if any.
    fn keep_resolution_change(&self, change: Option<CookieChange>) {
        if change.is_some() {
            self.auth_write().resolution_change = change;
        }
    }

    /// The hash of the token the request's cookie holds, if it holds a well-formed one (not
    /// checked against the store). `None` if the cookie was never parsed.
    pub fn cookie_hash(&self) -> Option<TokenHash> {
        match self.parsed_cookie()? {
            CookieToken::Present(token) => Some(token.hash()),
            CookieToken::Absent | CookieToken::Malformed => None,
        }
    }

    /// The identity, if the request was resolved already and is logged in.
    pub fn resolved(&self) -> Option<&Identity> {
        self.identity.get().and_then(Option::as_ref)
    }

    /// The profile of `identity`, loaded on the first call (one slate read).
    pub async fn profile(&self, identity: &Identity) -> Result<&LoadedProfile> {
        self.profile
            .get_or_try_init(|| load_profile(&self.core, &identity.user))
            .await
    }

    /// Waits for the `Auth` operations of this request that run now, and keeps the next
    /// ones waiting until the guard is dropped.
    pub async fn auth_ops(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.rare()
            .auth_ops
            .get_or_init(Default::default)
            .lock()
            .await
    }

    /// The login state, if anything was written to it (`None`: nothing was).
    fn auth(&self) -> Option<MutexGuard<'_, AuthState>> {
        self.rare_made()?.auth.get().map(|m| lock(m))
    }

    /// The login state, to change it.
    fn auth_write(&self) -> MutexGuard<'_, AuthState> {
        lock(self.rare().auth.get_or_init(Default::default))
    }

    /// The live token the response will leave the browser with, if an `Auth` operation
    /// changed it (`None`: no operation did; `Some(None)`: logged out).
    pub fn changed_login(&self) -> Option<Option<LiveToken>> {
        self.auth()?.current.clone()
    }

    /// The live token of the request without any lookup: the one an `Auth` operation left,
    /// else the identity it resolved to (`None`: anonymous, or not resolved yet).
    pub fn current(&self) -> Option<LiveToken> {
        match self.changed_login() {
            Some(changed) => changed,
            None => self.resolved().map(|i| LiveToken {
                hash: i.hash,
                user: i.user.clone(),
                created: from_millis(i.created),
            }),
        }
    }

    /// The visitor's guest state, made on first use.
    pub fn guest(&self) -> &Arc<GuestState> {
        self.rare()
            .guest
            .get_or_init(|| Arc::new(GuestState::new()))
    }

    /// The guest cookie change to apply, if the request used its guest state.
    pub fn take_guest_cookie_change(&self) -> Option<CookieChange> {
        self.rare_made()?.guest.get()?.take_cookie_change()
    }

    /// Records that the browser's live token is now `current`, reached by `change`.
    pub fn record(&self, current: Option<LiveToken>, change: CookieChange) {
        let mut auth = self.auth_write();
        auth.current = Some(current);
        auth.change = Some(change);
    }

    /// Whether the pending change hands out the token `hash` (issued by this request, not
    /// yet held by the browser).
    pub fn pending_set_of(&self, hash: &TokenHash) -> bool {
        let Some(auth) = self.auth() else {
            return false;
        };
        matches!(&auth.change, Some(CookieChange::Set(t, _)) if t.hash() == *hash)
    }

    /// Leaves the browser's cookie as it is: no change, and none of the resolution's either.
    pub fn keep(&self) {
        self.auth_write().change = Some(CookieChange::Keep);
    }

    /// The cookie change to apply: an `Auth` operation's, else the resolution's.
    pub fn take_cookie_change(&self) -> Option<CookieChange> {
        let mut auth = self.auth()?;
        auth.change.take().or_else(|| auth.resolution_change.take())
    }
}

/// Resolves the request's identity for an extractor: the state, and whether someone is
/// logged in. A store failure is [`Unavailable`].
pub(crate) async fn resolve_parts(
    parts: &Parts,
) -> std::result::Result<(&Arc<RequestState>, Option<&Identity>), Unresolved> {
    let state = RequestState::from_parts(parts)?;
    match state.resolve(&parts.headers).await {
        Ok(identity) => Ok((state, identity)),
        Err(_) => Err(Unresolved::Unavailable(Unavailable)),
    }
}
