//! [`CurrentUser`]: the logged-in user and the profile the layer loaded.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use bson::Document;
use http::request::Parts;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::names::{SlateName, Username};
use crate::redirect::login_required;
use crate::rejection::{LoginRequired, MissingLayer};
use crate::request::{Identity, RequestState};
use crate::store::SlateDoc;
use crate::user_slates::UserSlates;

/// Extractor for the logged-in user: the username and the profile (the user slate,
/// document `_id: "user"`), already loaded by the layer in the same pass as the token check.
///
/// Rejects an anonymous request ([`LoginRequired`]) as configured with
/// [`EngineBuilder::when_logged_out`](crate::EngineBuilder::when_logged_out): 401 by
/// default, or a redirect to the login page. Use `Option<CurrentUser>` where login is
/// optional.
///
/// ```no_run
/// use slates::CurrentUser;
/// #[derive(serde::Deserialize)]
/// struct Profile { name: String, timezone: String }
///
/// async fn page(user: CurrentUser) -> Result<String, slates::Error> {
///     let profile: Option<Profile> = user.profile()?;
///     Ok(format!("hello {} ({:?})", user.username(), profile.map(|p| p.timezone)))
/// }
/// ```
#[derive(Clone)]
pub struct CurrentUser {
    state: Arc<RequestState>,
}

impl CurrentUser {
    fn identity(&self) -> &Identity {
        // Constructed only when the identity is present.
        self.state
            .identity
            .as_ref()
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

    /// When the current token expires (after any renewal done by this request).
    pub fn token_expires(&self) -> OffsetDateTime {
        self.identity().expires
    }

    /// The profile as loaded at the start of the request, raw (`None` if the user has none
    /// yet, or if the stored document is malformed: see [`profile`](Self::profile)). No copy
    /// is made.
    pub fn raw_profile(&self) -> Option<&Document> {
        self.loaded().ok().flatten().map(|s| &*s.doc)
    }

    /// The profile's version as loaded.
    pub fn profile_version(&self) -> Option<i64> {
        self.loaded().ok().flatten().map(|s| s.version)
    }

    /// The profile as loaded at the start of the request, deserialized into `T` (`None` if
    /// the user has none yet). To write it, use
    /// [`UserSlates::profile_slate`](crate::UserSlates::profile_slate).
    ///
    /// A stored document that slates cannot read (its `_v` or `_expires` edited by hand to
    /// another type) is [`Error::MalformedDocument`](crate::Error::MalformedDocument), and
    /// fields that do not fit `T` are [`Error::Deserialize`](crate::Error::Deserialize):
    /// only this call fails, the request itself and handlers that do not read the profile
    /// proceed. A `put` of the profile repairs a malformed document.
    pub fn profile<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.loaded()? {
            None => Ok(None),
            Some(s) => Ok(Some(bson::from_document((*s.doc).clone())?)),
        }
    }

    fn loaded(&self) -> Result<Option<&SlateDoc>> {
        match &self.identity().profile {
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
        let state = RequestState::from_parts(parts)?;
        if state.identity.is_none() {
            return Err(login_required(&state.core.config.when_logged_out, parts));
        }
        Ok(CurrentUser {
            state: Arc::clone(state),
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentUser {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        let state = RequestState::from_parts(parts)?;
        Ok(state.identity.as_ref().map(|_| CurrentUser {
            state: Arc::clone(state),
        }))
    }
}
