//! [`UserSlates`]: one user's slates: workflows, the profile, raw slates.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::core::Core;
use crate::error::Result;
use crate::names::{SlateName, Username};
use crate::raw_slate::{Owner, RawSlate};
use crate::redirect::login_required;
use crate::rejection::LoginRequired;
use crate::request::resolve_parts;
use crate::slate::Slate;
use crate::stats::bump;
use crate::workflow::Workflow;

/// Extractor: one user's slates, as handles (nothing is read until a handle is asked).
/// Extracting it checks the request's token (one token lookup, the first time in the
/// request) but does not read the profile. Rejects an anonymous request like
/// [`CurrentUser`](crate::CurrentUser) does.
///
/// Outside a request, get one from [`Engine::user_slates`](crate::Engine::user_slates).
#[derive(Clone)]
pub struct UserSlates {
    core: Arc<Core>,
    user: Username,
}

impl UserSlates {
    pub(crate) fn new(core: Arc<Core>, user: Username) -> Self {
        UserSlates { core, user }
    }

    /// Whose slates these are.
    pub fn username(&self) -> &str {
        self.user.as_str()
    }

    /// The typed handle to this user's slate of `workflow`, with the workflow's expiry.
    pub fn workflow<T>(&self, workflow: &Workflow<T>) -> Slate<T> {
        let raw = self.raw_slate(workflow.name()).with_expiry(workflow.ttl());
        Slate::new(raw)
    }

    /// The typed handle to this user's profile (the user slate, `_id: "user"`), which never
    /// expires, for the rare writes to it. Within a request, read it through
    /// [`CurrentUser::profile`](crate::CurrentUser::profile), which reads it once per
    /// request.
    pub fn profile_slate<T>(&self) -> Slate<T> {
        Slate::new(self.raw_slate(SlateName::USER))
    }

    /// An untyped handle to the slate `name`, for raw BSON. An invalid name is reported by
    /// the first operation as [`Error::InvalidName`](crate::Error::InvalidName), without
    /// touching the store.
    pub fn raw_slate(&self, name: &str) -> RawSlate {
        RawSlate::new(Arc::clone(&self.core), self.user.clone(), name)
    }

    /// A handle to this user's slate of slates' own `slate` (flash messages).
    pub(crate) fn reserved_slate(&self, slate: SlateName) -> RawSlate {
        RawSlate::reserved(
            Arc::clone(&self.core),
            Owner::User(self.user.clone()),
            slate,
        )
    }

    /// Deletes every slate of this user, the profile included (the user's tokens stay).
    pub async fn delete_all(&self) -> Result<()> {
        let core = &self.core;
        bump(&core.counters.slate_writes);
        core.track(core.slates.delete_user_slates(&self.user).await)
    }
}

impl std::fmt::Debug for UserSlates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSlates")
            .field("user", &self.user)
            .finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UserSlates {
    type Rejection = LoginRequired;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match resolve_parts(parts).await? {
            (state, Some(identity)) => Ok(UserSlates::new(
                Arc::clone(&state.core),
                identity.user.clone(),
            )),
            (state, None) => Err(login_required(&state.core.config.when_logged_out, parts)),
        }
    }
}
