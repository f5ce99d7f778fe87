//! [`SlatesService`]: the request flow of the layer.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::response::Response;
use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderValue, Request};
use time::OffsetDateTime;
use tower_service::Service;

use crate::config::Config;
use crate::cookie::{removal_cookie, set_cookie, token_from_headers, CookieToken};
use crate::error::{service_unavailable, Error};
use crate::future::ResponseFuture;
use crate::names::SlateName;
use crate::request::{CookieChange, Identity, RequestState};
use crate::slates::Slates;
use crate::stats::bump;
use crate::store::{SlateKey, TokenRecord};
use crate::token::TokenHash;

/// The service built by [`SlatesLayer`](crate::SlatesLayer).
#[derive(Clone, Debug)]
pub struct SlatesService<S> {
    inner: S,
    slates: Slates,
}

impl<S> SlatesService<S> {
    pub(crate) fn new(inner: S, slates: Slates) -> Self {
        SlatesService { inner, slates }
    }
}

impl<S, B> Service<Request<B>> for SlatesService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness and leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let slates = self.slates.clone();
        ResponseFuture {
            inner: Box::pin(async move {
                // Read the cookie before any await: the request body need not be `Sync`.
                let cookie = token_from_headers(req.headers(), &slates.shared.config.cookie_name);
                let (identity, layer_change) = match resolve(&slates, cookie).await {
                    Ok(resolved) => resolved,
                    // Any store failure is answered this way, never by treating the user as
                    // anonymous (which would drop the cookie on a mere hiccup) or as someone
                    // else.
                    Err(_) => return Ok(service_unavailable()),
                };
                let state = Arc::new(RequestState::new(slates, identity));
                req.extensions_mut().insert(Arc::clone(&state));
                // No lock of any kind is held while the handler runs.
                let mut response = inner.call(req).await?;
                let config = &state.slates.shared.config;
                let change = state.take_cookie_change().or(layer_change);
                if let Some(change) = change {
                    let value = match change {
                        CookieChange::Set(token, max_age) => set_cookie(config, &token, max_age),
                        CookieChange::Remove => removal_cookie(config),
                        CookieChange::Keep => return Ok(response),
                    };
                    let headers = response.headers_mut();
                    headers.append(SET_COOKIE, value);
                    // A response that sets the token must never be stored by a shared cache.
                    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                Ok(response)
            }),
        }
    }
}

/// Token cookie to identity: at most one token lookup, one user slate read and, when due, one
/// renewal. Returns the cookie change the layer itself wants (removal of a bad cookie or a
/// renewed one), which a handler's own change overrides.
async fn resolve(
    slates: &Slates,
    cookie: CookieToken,
) -> Result<(Option<Identity>, Option<CookieChange>), Error> {
    let shared = &slates.shared;
    let counters = &shared.counters;
    let config = &shared.config;
    bump(&counters.requests);
    let token = match cookie {
        CookieToken::Absent => {
            bump(&counters.anonymous);
            return Ok((None, None));
        }
        CookieToken::Malformed => {
            bump(&counters.malformed_tokens);
            bump(&counters.anonymous);
            tracing::debug!("malformed slates cookie: treated as anonymous");
            return Ok((None, Some(CookieChange::Remove)));
        }
        CookieToken::Present(token) => token,
    };
    let hash = token.hash();
    let now = config.clock.now();
    let started = Instant::now();
    let record = find_token(slates, &hash, now).await?;
    counters.record_lookup(started.elapsed());
    // The absolute lifetime counts from login with the configuration in force now, so a
    // redeploy that shortens it applies to existing tokens too.
    let Some(record) = record.filter(|r| now < absolute_end(config, r)) else {
        return Ok(refused(slates, &hash));
    };
    let key = SlateKey::new(record.user.clone(), SlateName::user());
    let user_slate = match shared.store.get_slate(&key, now).await {
        Ok(slate) => Ok(slate),
        Err(Error::MalformedDocument { reason, .. }) => {
            tracing::warn!(user = %record.user, reason, "malformed user slate: the request proceeds without it");
            Err(reason)
        }
        Err(e) => {
            store_failed(slates, "user slate load", &hash.short(), &e);
            return Err(e);
        }
    };
    bump(&counters.user_slate_loads);

    let mut expires = record.expires;
    let mut change = None;
    if let Some(new_expires) = renewal(config, &record, now) {
        match shared
            .store
            .renew_token(&hash, record.expires, new_expires, now)
            .await
        {
            Ok(true) => {
                bump(&counters.renewals);
                expires = new_expires;
                change = Some(CookieChange::Set(token, new_expires - now));
            }
            Ok(false) => {
                // The record changed between lookup and renewal. Read it again: after a
                // concurrent renewal or a rotation the token is still alive, so serve the
                // request and leave the cookie alone (treating it as anonymous would drop
                // the browser's cookie, and a logout losing this race would delete nothing);
                // after a logout it is gone, and the logout wins.
                match find_token(slates, &hash, now).await? {
                    Some(current) => expires = current.expires,
                    None => return Ok(refused(slates, &hash)),
                }
            }
            Err(e) => {
                // Renewal is an optimisation: the token is still valid, so serve the request
                // and renew on a later one.
                store_failed(slates, "renewal", &hash.short(), &e);
            }
        }
    }
    bump(&counters.authenticated);
    Ok((
        Some(Identity {
            user: record.user,
            hash,
            created: record.created,
            expires,
            user_slate,
        }),
        change,
    ))
}

/// One token lookup. A store failure is an error (the layer answers 503); a malformed
/// `_auth` record (edited by hand) is refused like an unknown token, so that it cannot turn
/// every request into an error: the user logs in again and gets a fresh record.
async fn find_token(
    slates: &Slates,
    hash: &TokenHash,
    now: OffsetDateTime,
) -> Result<Option<TokenRecord>, Error> {
    match slates.shared.store.find_token(hash, now).await {
        Ok(record) => Ok(record),
        Err(Error::MalformedDocument { reason, .. }) => {
            tracing::warn!(token = %hash.short(), reason, "malformed _auth record: token refused");
            Ok(None)
        }
        Err(e) => {
            store_failed(slates, "token lookup", &hash.short(), &e);
            Err(e)
        }
    }
}

/// The answer to an unknown, expired or malformed token: anonymous, and the cookie removed.
fn refused(slates: &Slates, hash: &TokenHash) -> (Option<Identity>, Option<CookieChange>) {
    let counters = &slates.shared.counters;
    bump(&counters.unknown_tokens);
    bump(&counters.anonymous);
    tracing::debug!(token = %hash.short(), "unknown or expired token: treated as anonymous");
    (None, Some(CookieChange::Remove))
}

/// The new expiry if this request should renew the token, from the record's explicit state
/// and the configuration in force now: a rotated-out token never; otherwise once more than
/// the configured share of the idle timeout has passed (less than the rest remains), to
/// `now + idle_timeout` capped at the absolute lifetime, and only if that moves it later.
fn renewal(config: &Config, record: &TokenRecord, now: OffsetDateTime) -> Option<OffsetDateTime> {
    if record.rotated.is_some() || config.renew_after >= 1.0 {
        return None;
    }
    let idle = config.idle_timeout;
    if record.expires - now >= idle * (1.0 - config.renew_after) {
        return None;
    }
    let new_expires = (now + idle).min(absolute_end(config, record));
    (new_expires > record.expires).then_some(new_expires)
}

/// When the token's absolute lifetime ends. A `created` so far ahead that the sum overflows
/// (a record edited by hand) ends at once: such a token is refused, not a panic.
fn absolute_end(config: &Config, record: &TokenRecord) -> OffsetDateTime {
    record
        .created
        .checked_add(config.absolute_lifetime)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn store_failed(slates: &Slates, what: &str, token: &str, err: &Error) {
    bump(&slates.shared.counters.store_errors);
    tracing::error!(error = %err, token, "slates {what} failed");
}
