//! Token cookie to identity (the token lookup and the renewal), and the profile load: what
//! an extractor's first question about the request costs.

use std::time::Instant;

use crate::clock::{from_millis, to_millis};
use crate::cookie::{CookieChange, CookieToken};
use crate::core::Core;
use crate::error::Error;
use crate::events::AuthEventKind;
use crate::names::{SlateName, Username};
use crate::stats::bump;
use crate::store::{SlateDoc, SlateKey, TokenBrief};
use crate::token::{Token, TokenHash};
use crate::token_times::renewed_expiry;

/// The logged-in user of a request, as resolved from its token.
pub(crate) struct Identity {
    pub user: Username,
    pub hash: TokenHash,
    /// The login time of the token (its record's `created`), in milliseconds since the
    /// epoch (the precision records keep).
    pub created: i64,
    /// When the token expires (after any renewal by this request), in milliseconds.
    pub expires: i64,
}

/// The profile (user slate) as loaded, or why the stored document could not be read (a
/// malformed document must not turn every request of the user into an error: only a
/// handler that asks for the profile sees it).
pub(crate) type LoadedProfile = std::result::Result<Option<SlateDoc>, &'static str>;

/// What a resolution gives: the identity, and the cookie change it wants (removal of a bad
/// cookie or a renewed one), which a handler's own change overrides.
pub(crate) type Resolution = (Option<Identity>, Option<CookieChange>);

/// A resolution begun by [`start`]: the token, and what is known of it so far.
pub(crate) struct Pending {
    token: Token,
    hash: TokenHash,
    /// When the resolution started, in milliseconds since the epoch.
    now_ms: i64,
    /// When the lookup started, if this one is timed (`Counters::lookup_started`).
    started: Option<Instant>,
    /// What the lookup answered, when it was answered at once and only writes remain (a
    /// renewal, a last-seen update); `None`: the lookup is still to be made.
    record: Option<TokenBrief>,
}

/// How far a resolution got without waiting.
pub(crate) enum Start {
    /// Settled: no cookie, a malformed one, or a lookup answered at once
    /// ([`TokenStore::find_token_ready`](crate::store::TokenStore::find_token_ready)) with
    /// nothing to write: a warm request ends here, with no future.
    Settled(Result<Resolution, Error>),
    /// A store call to wait for: [`resolve`].
    Pending(Pending),
}

/// Token cookie to identity, as far as it goes without waiting: the token's SHA-256, and
/// its lookup when the store answers at once.
pub(crate) fn start(core: &Core, cookie: &CookieToken) -> Start {
    let counters = &core.counters;
    let token = match cookie {
        CookieToken::Absent => {
            bump(&counters.anonymous);
            return Start::Settled(Ok((None, None)));
        }
        CookieToken::Malformed => {
            bump(&counters.malformed_tokens);
            bump(&counters.anonymous);
            tracing::debug!("malformed slates cookie: treated as anonymous");
            return Start::Settled(Ok((None, Some(CookieChange::Remove))));
        }
        CookieToken::Present(token) => token,
    };
    let hash = token.hash();
    let now_ms = core.config.clock.now_millis();
    let started = counters.lookup_started();
    let Some(found) = core.tokens.find_token_ready(&hash, now_ms) else {
        return Start::Pending(Pending {
            token: token.clone(),
            hash,
            now_ms,
            started,
            record: None,
        });
    };
    let record = match looked_up(core, &hash, found, started, now_ms) {
        Ok(Some(record)) => record,
        Ok(None) => return Start::Settled(Ok(REFUSED)),
        Err(e) => return Start::Settled(Err(e)),
    };
    let times = &core.times;
    if times.renewal_due(&record, now_ms) || times.touch_due(&record, now_ms) {
        return Start::Pending(Pending {
            token: token.clone(),
            hash,
            now_ms,
            started: None,
            record: Some(record),
        });
    }
    let expires = record.expires;
    Start::Settled(Ok(authenticated(core, record, hash, expires, None)))
}

/// What [`start`] left to do: at most one token lookup and, when due, one renewal (and a
/// last-seen update).
pub(crate) async fn resolve(core: &Core, pending: Pending) -> Result<Resolution, Error> {
    let Pending {
        token,
        hash,
        now_ms,
        started,
        record,
    } = pending;
    let counters = &core.counters;
    let now = from_millis(now_ms);
    let record = match record {
        Some(record) => record,
        None => {
            let found = core.tokens.find_token(&hash, now).await;
            let found = found.map(|r| r.as_ref().map(TokenBrief::from));
            match looked_up(core, &hash, found, started, now_ms)? {
                Some(record) => record,
                None => return Ok(REFUSED),
            }
        }
    };
    let mut expires = record.expires;
    let mut change = None;
    let renewal = match core.times.renewal_due(&record, now_ms) {
        true => renewed_expiry(&core.config, &record, now),
        false => None,
    };
    if let Some(new_expires) = renewal {
        match core
            .tokens
            .renew_token(&hash, from_millis(record.expires), new_expires, now)
            .await
        {
            Ok(true) => {
                bump(&counters.renewals);
                core.events
                    .emit_about(AuthEventKind::Renewal, Some(&record), &hash, now);
                expires = to_millis(new_expires);
                change = Some(CookieChange::Set(token, new_expires - now));
            }
            Ok(false) => {
                // The record changed between lookup and renewal. Read it again: after a
                // concurrent renewal or a rotation the token is still alive, so serve the
                // request and leave the cookie alone (treating it as anonymous would drop
                // the browser's cookie, and a logout losing this race would delete nothing);
                // after a logout it is gone, and the logout wins.
                let again = core.tokens.find_token(&hash, now).await;
                match checked(core, &hash, again)? {
                    Some(current) => expires = to_millis(current.expires),
                    None => {
                        refuse(core, &hash, None);
                        return Ok(REFUSED);
                    }
                }
            }
            Err(e) => {
                // Renewal is an optimisation: the token is still valid, so serve the request
                // and renew on a later one.
                core.store_error("renewal", &e);
            }
        }
    }
    crate::device_ops::touch_if_due(core, &record, &hash, now).await;
    Ok(authenticated(core, record, hash, expires, change))
}

/// A token lookup's answer, taken once whichever way it came (at once, or awaited): a
/// failure is an error, the lookup is counted (and timed from `started` when sampled), and
/// the record is kept if its token may log in at `now` (in milliseconds); `None`: refused.
fn looked_up(
    core: &Core,
    hash: &TokenHash,
    found: Result<Option<TokenBrief>, Error>,
    started: Option<Instant>,
    now: i64,
) -> Result<Option<TokenBrief>, Error> {
    let found = checked(core, hash, found)?;
    core.counters.lookup_done(started);
    Ok(live(core, hash, found, now))
}

/// The record if its token may log in at `now` (in milliseconds): found (live) and within
/// its absolute lifetime, which counts from login with the configuration in force now (a
/// redeploy that shortens it applies to existing tokens too); else `None`, the refusal
/// counted and logged (naming the user when the record was read).
#[inline]
fn live(core: &Core, hash: &TokenHash, record: Option<TokenBrief>, now: i64) -> Option<TokenBrief> {
    match record {
        Some(r) if core.times.within_lifetime(&r, now) => Some(r),
        past => {
            refuse(core, hash, past.as_ref());
            None
        }
    }
}

/// The logged-in resolution of `record`'s token, counted.
#[inline]
fn authenticated(
    core: &Core,
    record: TokenBrief,
    hash: TokenHash,
    expires: i64,
    change: Option<CookieChange>,
) -> Resolution {
    bump(&core.counters.authenticated);
    let identity = Identity {
        user: record.user,
        hash,
        created: record.created,
        expires,
    };
    (Some(identity), change)
}

/// Loads the profile (user slate) of `user`: one slate read. A malformed stored document is
/// not an error here (only a handler that reads the profile sees it); a store failure is.
pub(crate) async fn load_profile(core: &Core, user: &Username) -> Result<LoadedProfile, Error> {
    let key = SlateKey::new(user.clone(), SlateName::user());
    let profile = match core.slates.get_slate(&key, core.now()).await {
        Ok(slate) => Ok(slate),
        Err(Error::MalformedDocument { reason, .. }) => {
            tracing::warn!(user = %user, reason, "malformed profile (user slate): the request proceeds without it");
            Err(reason)
        }
        Err(e) => {
            core.store_error("profile load", &e);
            return Err(e);
        }
    };
    bump(&core.counters.user_slate_loads);
    Ok(profile)
}

/// A token lookup's answer. A store failure is an error (the layer answers 503); a
/// malformed `_auth` record (edited by hand) is refused like an unknown token, so that it
/// cannot turn every request into an error: the user logs in again and gets a fresh record.
#[inline]
fn checked<T>(
    core: &Core,
    hash: &TokenHash,
    found: Result<Option<T>, Error>,
) -> Result<Option<T>, Error> {
    match found {
        Ok(record) => Ok(record),
        Err(Error::MalformedDocument { reason, .. }) => {
            tracing::warn!(token = %hash.short(), reason, "malformed _auth record: token refused");
            Ok(None)
        }
        Err(e) => {
            core.store_error("token lookup", &e);
            Err(e)
        }
    }
}

/// The answer to an unknown, expired or malformed token: anonymous, and the cookie removed.
const REFUSED: Resolution = (None, Some(CookieChange::Remove));

/// Counts and logs the refusal of a token (`record` when it was read).
fn refuse(core: &Core, hash: &TokenHash, record: Option<&TokenBrief>) {
    core.events
        .emit_about(AuthEventKind::Refused, record, hash, core.now());
    let counters = &core.counters;
    bump(&counters.unknown_tokens);
    bump(&counters.anonymous);
    tracing::debug!(token = %hash.short(), "unknown or expired token: treated as anonymous");
}
