//! [`SlatesService`]: the request flow of the layer.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Request, StatusCode};
use time::OffsetDateTime;
use tower_service::Service;

use crate::cookie::{removal_cookie, set_cookie, token_from_headers, CookieToken};
use crate::error::Error;
use crate::future::ResponseFuture;
use crate::names::SlateName;
use crate::request::{CookieChange, Identity, RequestState};
use crate::slates::Slates;
use crate::stats::bump;
use crate::store::SlateKey;

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
                    Err(_) => return Ok(unavailable()),
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
    let record = shared
        .store
        .find_token(&hash, now)
        .await
        .inspect_err(|e| store_failed(slates, "token lookup", &hash.short(), e))?;
    counters.record_lookup(started.elapsed());
    let Some(record) = record else {
        bump(&counters.unknown_tokens);
        bump(&counters.anonymous);
        tracing::debug!(token = %hash.short(), "unknown or expired token: treated as anonymous");
        return Ok((None, Some(CookieChange::Remove)));
    };
    let key = SlateKey::new(record.user.clone(), SlateName::user());
    let user_slate = shared
        .store
        .get_slate(&key, now)
        .await
        .inspect_err(|e| store_failed(slates, "user slate load", &hash.short(), e))?;
    bump(&counters.user_slate_loads);

    let mut expires = record.expires;
    let mut change = None;
    if renewal_due(slates, record.created, record.renewed, record.expires, now) {
        let new_expires = now + config.token_lifetime;
        match shared
            .store
            .renew_token(&hash, record.expires, new_expires, now)
            .await
        {
            Ok(true) => {
                bump(&counters.renewals);
                expires = new_expires;
                change = Some(CookieChange::Set(token, config.token_lifetime));
            }
            Ok(false) => {
                // The record changed between lookup and renewal. Read it again: after a
                // concurrent renewal or a rotation the token is still alive, so serve the
                // request and leave the cookie alone (treating it as anonymous would drop
                // the browser's cookie, and a logout losing this race would delete nothing);
                // after a logout it is gone, and the logout wins.
                let current = shared
                    .store
                    .find_token(&hash, now)
                    .await
                    .inspect_err(|e| store_failed(slates, "token lookup", &hash.short(), e))?;
                match current {
                    Some(current) => expires = current.expires,
                    None => {
                        bump(&counters.unknown_tokens);
                        bump(&counters.anonymous);
                        return Ok((None, Some(CookieChange::Remove)));
                    }
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
            expires,
            user_slate,
        }),
        change,
    ))
}

/// Whether the token has used more than the configured share of its lifetime. A token whose
/// expiry was shortened by a rotation (its lifetime is less than the configured one) is
/// never renewed: it is meant to die at the end of its grace period.
fn renewal_due(
    slates: &Slates,
    created: OffsetDateTime,
    renewed: Option<OffsetDateTime>,
    expires: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    let config = &slates.shared.config;
    if config.renew_after >= 1.0 {
        return false;
    }
    let since = renewed.unwrap_or(created);
    if expires - since < config.token_lifetime {
        return false;
    }
    now - since > config.token_lifetime * config.renew_after
}

fn store_failed(slates: &Slates, what: &str, token: &str, err: &Error) {
    bump(&slates.shared.counters.store_errors);
    tracing::error!(error = %err, token, "slates {what} failed");
}

/// The 503 answer to a store failure during the lookup: short, generic, retryable. Any store
/// failure is answered this way, never by treating the user as anonymous (which would drop
/// the cookie on a mere hiccup) or as someone else.
fn unavailable() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "Service temporarily unavailable. Please try again shortly.\n",
    )
        .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    response
}
