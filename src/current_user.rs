//! [`CurrentUser`]: the logged-in user, and the profile loaded on first read.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use bson::RawDocument;
use http::request::Parts;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::clock::from_millis;
use crate::error::{Error, Result};
use crate::names::{SlateName, Username};
use crate::redirect::login_required;
use crate::rejection::{LoginRequired, Unresolved};
use crate::request::{resolve_parts, RequestState};
use crate::resolve::Identity;
use crate::store::SlateDoc;
use crate::user_slates::UserSlates;

/// Extractor for the logged-in user: the username, and the profile (the user slate,
/// document `_id: "user"`).
///
/// Extracting it checks the request's token (one token lookup, the first time in the
/// request); the profile is read on the first call to [`profile`](Self::profile) or
/// [`raw_profile`](Self::raw_profile) and kept for the rest of the request. A route that
/// extracts neither `CurrentUser` nor [`UserSlates`] nor calls an [`Auth`](crate::Auth)
/// operation costs no store operation at all.
///
/// Rejects an anonymous request ([`LoginRequired`]) as configured with
/// [`EngineBuilder::when_logged_out`](crate::EngineBuilder::when_logged_out): 401 by
/// default, or a redirect to the login page; a token store failure is 503
/// ([`Unavailable`](crate::Unavailable)). Use `Option<CurrentUser>` where login is
/// optional.
///
/// ```no_run
/// use slates::CurrentUser;
/// #[derive(serde::Deserialize)]
/// struct Profile { name: String, timezone: String }
///
/// async fn page(user: CurrentUser) -> Result<String, slates::Error> {
///     let profile: Option<Profile> = user.profile().await?;
///     Ok(format!("hello {} ({:?})", user.username(), profile.map(|p| p.timezone)))
/// }
/// ```
#[derive(Clone)]
pub struct CurrentUser {
    state: Arc<RequestState>,
}

impl CurrentUser {
    fn identity(&self) -> &Identity {
        // Constructed only once the request resolved to a logged-in user.
        self.state
            .resolved()
            .expect("CurrentUser is only built for authenticated requests")
    }

    /// The username.
    pub fn username(&self) -> &str {
        self.identity().user.as_str()
    }

    /// The validated username.
    pub fn user(&self) -> &Username {
        &self.identity().user
    }

    /// When the current token expires (after any renewal done by this request), to the
    /// millisecond (the precision `_auth` records keep).
    pub fn token_expires(&self) -> OffsetDateTime {
        from_millis(self.identity().expires)
    }

    /// The profile as raw BSON: read from the store on the first profile read of the
    /// request, then kept (`None` if the user has none yet). No copy is made; read fields with
    /// [`RawDocument`]'s getters (`get_str`, `get_i64`, ...), or convert it with
    /// `bson::Document::try_from`.
    ///
    /// A stored document that slates cannot read (its `_v` or `_expires` edited by hand to
    /// another type) is [`Error::MalformedDocument`](crate::Error::MalformedDocument): only
    /// this call fails, the request itself and handlers that do not read the profile
    /// proceed. A store failure is an error too (503 when returned from a handler).
    pub async fn raw_profile(&self) -> Result<Option<&RawDocument>> {
        Ok(self.loaded().await?.map(|s| s.doc.as_raw()))
    }

    /// The profile's version (`None` if the user has none), read like
    /// [`raw_profile`](Self::raw_profile).
    pub async fn profile_version(&self) -> Result<Option<i64>> {
        Ok(self.loaded().await?.map(|s| s.version))
    }

    /// The profile, deserialized into `T` (`None` if the user has none yet), read like
    /// [`raw_profile`](Self::raw_profile), straight from its bytes. Fields that do not fit `T` are
    /// [`Error::Deserialize`](crate::Error::Deserialize). To write it, use
    /// [`UserSlates::profile_slate`](crate::UserSlates::profile_slate); a `put` of the
    /// profile repairs a malformed document.
    pub async fn profile<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.loaded().await? {
            None => Ok(None),
            Some(s) => Ok(Some(s.doc.deserialize()?)),
        }
    }

    async fn loaded(&self) -> Result<Option<&SlateDoc>> {
        match self.state.profile(self.identity()).await? {
            Ok(slate) => Ok(slate.as_ref()),
            Err(reason) => Err(Error::MalformedDocument {
                what: SlateName::USER.to_owned(),
                reason,
            }),
        }
    }

    /// This user's slates (workflows, writes to the profile).
    pub fn slates(&self) -> UserSlates {
        UserSlates::new(Arc::clone(&self.state.core), self.identity().user.clone())
    }
}

impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("username", &self.username())
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = LoginRequired;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match resolve_parts(parts).await? {
            (state, Some(_)) => Ok(CurrentUser {
                state: Arc::clone(state),
            }),
            (state, None) => Err(login_required(&state.core.config.when_logged_out, parts)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentUser {
    type Rejection = Unresolved;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        let (state, identity) = resolve_parts(parts).await?;
        Ok(identity.map(|_| CurrentUser {
            state: Arc::clone(state),
        }))
    }
}
