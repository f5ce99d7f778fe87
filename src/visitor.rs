//! [`GuestSlates`] and [`VisitorSlates`] (issue 14): the slates of a visitor who has not
//! logged in, and the extractor that hands out the user's slates or the visitor's.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::core::Core;
use crate::error::Result;
use crate::guest::GuestState;
use crate::names::SlateName;
use crate::raw_slate::{Owner, RawSlate};
use crate::rejection::{MissingLayer, Unresolved};
use crate::request::{resolve_parts, RequestState};
use crate::slate::Slate;
use crate::user_slates::UserSlates;
use crate::workflow::Workflow;

/// Extractor: the slates of this browser's visitor, **guest slates**, whether or not
/// someone is logged in. They are workflow slates like a user's (the same operations,
/// versions and expiry), owned by a guest token kept in a cookie of its own.
///
/// Extracting it costs nothing. The guest is looked up on the first operation: with no
/// guest cookie (a visitor who never wrote), reads answer "absent" with no store call and
/// no cookie is set. The first write issues the guest token (256 random bits; the store
/// keeps only its SHA-256) and sets its cookie (`HttpOnly`, `Secure`, `SameSite=Lax`,
/// `__Host-slates-guest` by default). A guest slate expires
/// [`guest_idle_timeout`](crate::EngineBuilder::guest_idle_timeout) (default 1 day) after
/// its last write, or earlier if its workflow says so; the guest token that long after it
/// was issued or last renewed (a guest write renews it once half of that has passed).
///
/// The guest token is never an auth token: logging in issues a fresh auth token and leaves
/// the guest cookie as it is, and logging out never touches guest slates. At login the app
/// carries chosen guest slates over to the user: [`Auth::login_carrying`](crate::Auth::login_carrying).
///
/// ```no_run
/// use slates::{GuestSlates, Workflow};
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Cart { items: Vec<String> }
/// const CART: Workflow<Cart> = Workflow::new("cart");
///
/// async fn add(guest: GuestSlates, item: String) -> Result<String, slates::Error> {
///     guest.workflow(&CART).push("items", &item).await?; // first write: guest cookie
///     Ok("added".into())
/// }
/// ```
#[derive(Clone)]
pub struct GuestSlates {
    core: Arc<Core>,
    guest: Arc<GuestState>,
}

impl GuestSlates {
    pub(crate) fn new(state: &RequestState, headers: &http::HeaderMap) -> Self {
        // Parse the guest cookie now (no store call): the handles have no headers.
        state
            .guest()
            .parse_cookie(headers, &state.core.config.guest_cookie.name);
        Self::from_state(state)
    }

    /// The guest slates of a request whose guest cookie was parsed already (an unparsed
    /// cookie counts as absent).
    pub(crate) fn from_state(state: &RequestState) -> Self {
        GuestSlates {
            core: Arc::clone(&state.core),
            guest: Arc::clone(state.guest()),
        }
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The typed handle to the visitor's slate of `workflow`, with the workflow's expiry
    /// (capped at the guest idle timeout).
    pub fn workflow<T>(&self, workflow: &Workflow<T>) -> Slate<T> {
        let raw = self.raw_slate(workflow.name()).with_expiry(workflow.ttl());
        Slate::new(raw)
    }

    /// An untyped handle to the visitor's slate `name`. An invalid name is reported by the
    /// first operation, without touching the store.
    pub fn raw_slate(&self, name: &str) -> RawSlate {
        RawSlate::of(Arc::clone(&self.core), self.owner(), name)
    }

    /// Whether the visitor has a guest: a guest cookie whose guest exists (one read of the
    /// guest record, once per request; no store call without a guest cookie). Nothing is
    /// issued.
    pub async fn exists(&self) -> Result<bool> {
        Ok(self.guest.owner(&self.core).await?.is_some())
    }

    /// Deletes every guest slate of the visitor and the guest itself, and removes the
    /// guest cookie: "forget me on this browser". Logging out does not do this.
    pub async fn delete_all(&self) -> Result<()> {
        if let Some(owner) = self.guest.owner(&self.core).await? {
            let core = &self.core;
            core.track(core.slates.delete_user_slates(&owner.user).await)?;
        }
        self.guest.forget().await;
        Ok(())
    }

    pub(crate) fn owner(&self) -> Owner {
        Owner::Guest(Arc::clone(&self.guest))
    }

    pub(crate) fn guest_state(&self) -> &GuestState {
        &self.guest
    }

    pub(crate) fn reserved_slate(&self, slate: SlateName) -> RawSlate {
        RawSlate::reserved(Arc::clone(&self.core), self.owner(), slate)
    }
}

impl std::fmt::Debug for GuestSlates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestSlates").finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for GuestSlates {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let state = RequestState::from_parts(parts)?;
        Ok(GuestSlates::new(state, &parts.headers))
    }
}

/// Extractor for pages that work logged in or not: the user's slates when someone is
/// logged in ([`UserSlates`]), the visitor's guest slates otherwise ([`GuestSlates`]).
///
/// Extracting it checks the auth token (one token lookup, the first time in the request;
/// none without an auth cookie); it never rejects an anonymous request. A token store
/// failure is 503 ([`Unavailable`](crate::Unavailable)).
///
/// ```no_run
/// use slates::{VisitorSlates, Workflow};
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Counter { hits: i64 }
/// const COUNTER: Workflow<Counter> = Workflow::new("counter");
///
/// async fn hit(slates: VisitorSlates) -> Result<String, slates::Error> {
///     Ok(slates.workflow(&COUNTER).inc("hits", 1).await?.to_string())
/// }
/// ```
#[derive(Clone, Debug)]
pub enum VisitorSlates {
    /// Someone is logged in: their slates.
    User(UserSlates),
    /// Nobody is logged in: the visitor's guest slates.
    Guest(GuestSlates),
}

impl VisitorSlates {
    /// The logged-in user's name, `None` for a guest.
    pub fn username(&self) -> Option<&str> {
        match self {
            VisitorSlates::User(user) => Some(user.username()),
            VisitorSlates::Guest(_) => None,
        }
    }

    /// The typed handle to the slate of `workflow`: the user's or the guest's.
    pub fn workflow<T>(&self, workflow: &Workflow<T>) -> Slate<T> {
        match self {
            VisitorSlates::User(user) => user.workflow(workflow),
            VisitorSlates::Guest(guest) => guest.workflow(workflow),
        }
    }

    /// An untyped handle to the slate `name`: the user's or the guest's.
    pub fn raw_slate(&self, name: &str) -> RawSlate {
        match self {
            VisitorSlates::User(user) => user.raw_slate(name),
            VisitorSlates::Guest(guest) => guest.raw_slate(name),
        }
    }

    /// Adds a flash message for the user or the visitor.
    pub async fn flash(&self, message: &str) -> Result<()> {
        match self {
            VisitorSlates::User(user) => user.flash(message).await,
            VisitorSlates::Guest(guest) => guest.flash(message).await,
        }
    }

    /// Takes the flash messages of the user or the visitor (read once, atomically).
    pub async fn take_flashes(&self) -> Result<Vec<String>> {
        match self {
            VisitorSlates::User(user) => user.take_flashes().await,
            VisitorSlates::Guest(guest) => guest.take_flashes().await,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VisitorSlates {
    type Rejection = Unresolved;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let (state, identity) = resolve_parts(parts).await?;
        Ok(match identity {
            Some(identity) => VisitorSlates::User(UserSlates::new(
                Arc::clone(&state.core),
                identity.user.clone(),
            )),
            None => VisitorSlates::Guest(GuestSlates::new(state, &parts.headers)),
        })
    }
}
