//! The visitor's guest identity (issue 14): the guest cookie, the guest record, and the
//! guest token issued on the first guest write.
//!
//! A guest token is 256 random bits ([`Token::generate`]), sent in a cookie of its own and
//! never stored: its SHA-256 names the guest's owner (`_g.<hex>`, which no username can
//! be) and its record, the slate `.guest` of that owner (a name no app slate can have).
//! The record is what makes a guest cookie valid: a well-formed guest token the server did
//! not issue (or whose guest expired) finds no record and is refused, like an unknown auth
//! token: the request reads no guest slates and the cookie is removed. So a token chosen
//! by a client is never adopted.
//!
//! Nothing happens until a guest slate is used: a read with no guest cookie costs no
//! store call; the first write issues the token (one insert of the record) and sets the
//! cookie. The record and the cookie expire [`Config::guest_idle_timeout`] after they were
//! issued or last renewed (a write renews them once half of it has passed; a read never
//! does), and every guest slate expires that long after its own last write at the latest.
//!
//! [`Config::guest_idle_timeout`]: crate::Config::guest_idle_timeout

use std::sync::{Mutex, OnceLock};

use bson::doc;
use http::HeaderMap;
use time::OffsetDateTime;

use crate::clock::to_millis;
use crate::cookie::{configured_token, CookieChange, CookieToken};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::names::{SlateName, Username};
use crate::store::{SharedRawDocument, SlateKey};
use crate::sync::lock;
use crate::token::Token;

/// The slate name of a guest's record.
const RECORD: &str = ".guest";

/// A guest that exists in the store (its record was found or inserted).
#[derive(Clone)]
pub(crate) struct GuestOwner {
    /// `_g.<hex SHA-256 of the token>`.
    pub user: Username,
    /// The record's version and expiry as last read or written.
    version: i64,
    expires: OffsetDateTime,
    record: SharedRawDocument,
}

/// What the request knows about its guest.
enum Slot {
    /// Not asked yet.
    Unresolved,
    /// Asked: the guest, or none (no cookie, a refused one, or forgotten).
    Resolved(Option<GuestOwner>),
}

/// The per-request guest state, kept by the request state (one `Arc` shared by the guest
/// handles of the request).
pub(crate) struct GuestState {
    /// The guest cookie, parsed by the first extractor that needs it (no store call).
    cookie: OnceLock<CookieToken>,
    /// Held across the store calls of one resolution, issue or renewal, by this request
    /// only (a handler that writes two guest slates at once with `join!` issues one guest).
    slot: tokio::sync::Mutex<Slot>,
    /// Short critical sections only; never held across an `.await`.
    change: Mutex<Option<CookieChange>>,
}

impl GuestState {
    pub fn new() -> Self {
        GuestState {
            cookie: OnceLock::new(),
            slot: tokio::sync::Mutex::new(Slot::Unresolved),
            change: Mutex::new(None),
        }
    }

    /// Parses the guest cookie of the request once (no store call); `name` is the configured
    /// guest cookie name. Hostile values (malformed, oversized, two different values) are
    /// [`CookieToken::Malformed`].
    pub fn parse_cookie(&self, headers: &HeaderMap, name: &str) {
        self.cookie.get_or_init(|| configured_token(headers, name));
    }

    /// The guest, for a read: `None` when there is none, at no store cost when the request
    /// has no well-formed guest cookie; else one read of the guest record, once per
    /// request. A store failure is an error, not remembered.
    pub async fn owner(&self, core: &Core) -> Result<Option<GuestOwner>> {
        let mut slot = self.slot.lock().await;
        self.resolve(core, &mut slot).await
    }

    /// The guest, for a write: the request's guest, renewed when half its idle time has
    /// passed; issued (a fresh token, its record, the cookie) when there is none.
    pub async fn owner_for_write(&self, core: &Core) -> Result<Username> {
        let mut slot = self.slot.lock().await;
        let owner = match self.resolve(core, &mut slot).await? {
            Some(owner) => self.renewed(core, owner).await,
            None => self.issue(core).await?,
        };
        let user = owner.user.clone();
        *slot = Slot::Resolved(Some(owner));
        Ok(user)
    }

    /// Forgets the guest for the rest of the request and removes the guest cookie.
    pub async fn forget(&self) {
        *self.slot.lock().await = Slot::Resolved(None);
        self.set_change(CookieChange::Remove);
    }

    /// The guest cookie change to apply to the response, if any.
    pub fn take_cookie_change(&self) -> Option<CookieChange> {
        lock(&self.change).take()
    }

    fn set_change(&self, change: CookieChange) {
        *lock(&self.change) = Some(change);
    }

    async fn resolve(&self, core: &Core, slot: &mut Slot) -> Result<Option<GuestOwner>> {
        if let Slot::Resolved(owner) = slot {
            return Ok(owner.clone());
        }
        let token = match self.cookie.get() {
            None | Some(CookieToken::Absent) => None,
            Some(CookieToken::Malformed) => {
                tracing::debug!("malformed guest cookie: no guest");
                self.set_change(CookieChange::Remove);
                None
            }
            Some(CookieToken::Present(token)) => Some(token),
        };
        let owner = match token {
            None => None,
            Some(token) => {
                let user = Username::guest(&token.hash());
                let key = record_key(&user);
                let found = core.track(core.slates.get_slate(&key, core.now()).await);
                match found {
                    Ok(Some(record)) => Some(GuestOwner {
                        user,
                        version: record.version,
                        // A record always expires; one without (edited by hand) is renewed.
                        expires: record.expires.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                        record: record.doc,
                    }),
                    Ok(None) | Err(Error::MalformedDocument { .. }) => {
                        tracing::debug!(guest = %token.hash().short(), "unknown or expired guest token: no guest");
                        self.set_change(CookieChange::Remove);
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        *slot = Slot::Resolved(owner.clone());
        Ok(owner)
    }

    /// A fresh guest: a new token and its record (an insert that never replaces a live
    /// record), and the cookie.
    async fn issue(&self, core: &Core) -> Result<GuestOwner> {
        let idle = core.config.guest_idle_timeout;
        // A collision of two 256-bit random tokens will not happen; the second try is
        // there so that even then the visitor gets a guest rather than an error.
        for _ in 0..2 {
            let token = Token::generate()?;
            let user = Username::guest(&token.hash());
            let key = record_key(&user);
            let now = core.now();
            let record = doc! {"created": bson::DateTime::from_millis(to_millis(now))};
            let expires = now + idle;
            let inserted = core
                .slates
                .replace_slate_if(&key, None, &record, Some(expires), now);
            match core.track(inserted.await) {
                Ok(Some(version)) => {
                    self.set_change(CookieChange::Set(token, idle));
                    return Ok(GuestOwner {
                        user,
                        version,
                        expires,
                        record: SharedRawDocument::from_document(&record)?,
                    });
                }
                Ok(None) => continue,
                Err(e) => {
                    // The insert may have been applied with its reply lost: remove it again
                    // (nobody holds that token). If this fails too, it expires on its own.
                    if e.is_store_failure() {
                        let _ = core.slates.delete_slate(&key, now).await;
                    }
                    return Err(e);
                }
            }
        }
        Err(Error::DuplicateKey)
    }

    /// `owner`, its record and cookie renewed to the full idle time if less than half of
    /// it is left: a compare-and-swap on the record's version, so it never brings back a
    /// record deleted in between (a forgotten guest stays forgotten). A failed renewal is
    /// not an error: a later write renews.
    async fn renewed(&self, core: &Core, mut owner: GuestOwner) -> GuestOwner {
        let idle = core.config.guest_idle_timeout;
        let now = core.now();
        if owner.expires - now >= idle / 2 {
            return owner;
        }
        let Some(CookieToken::Present(token)) = self.cookie.get() else {
            return owner; // issued by this request: fresh
        };
        let key = record_key(&owner.user);
        let expires = now + idle;
        let Ok(record) = owner.record.to_document() else {
            return owner; // a record edited by hand: a later write renews, or it expires
        };
        let swap =
            core.slates
                .replace_slate_if(&key, Some(owner.version), &record, Some(expires), now);
        match core.track(swap.await) {
            Ok(Some(version)) => {
                owner.version = version;
                owner.expires = expires;
                self.set_change(CookieChange::Set(token.clone(), idle));
            }
            Ok(None) => {}
            Err(_) => {} // logged by `track`
        }
        owner
    }
}

/// The key of the record of guest `user`.
pub(crate) fn record_key(user: &Username) -> SlateKey {
    SlateKey::new(user.clone(), SlateName::reserved(RECORD))
}
