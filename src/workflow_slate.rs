//! [`UserSlates`] and [`Slate`]: a user's workflow slates (and writes to the user slate),
//! each write one atomic store operation.

use axum::extract::FromRequestParts;
use bson::{Bson, Document};
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::error::{Error, NameKind, Result};
use crate::names::{validate_field, SlateName, Username, RESERVED_FIELDS};
use crate::rejection::{LoginRequired, NotLoggedIn};
use crate::request::RequestState;
use crate::slates::Slates;
use crate::stats::bump;
use crate::store::{check_ops, Expiry, SlateDoc, SlateKey, UpdateOp, Updated};

/// Extractor: handle to the logged-in user's slates. 401 ([`LoginRequired`]) when anonymous.
///
/// Outside a request, get one from [`Slates::user_slates`].
#[derive(Clone)]
pub struct UserSlates {
    slates: Slates,
    user: Username,
}

impl UserSlates {
    pub(crate) fn new(slates: Slates, user: Username) -> Self {
        UserSlates { slates, user }
    }

    /// Whose slates these are.
    pub fn username(&self) -> &str {
        self.user.as_str()
    }

    /// A handle to the workflow slate `name`. Cheap; nothing is read until you ask. An
    /// invalid name is reported by the first operation as [`Error::InvalidName`], without
    /// touching the store.
    pub fn slate(&self, name: &str) -> Slate {
        let key = SlateName::new(name)
            .map(|slate| SlateKey::new(self.user.clone(), slate))
            .map_err(|e| match e {
                Error::InvalidName { reason, .. } => reason,
                _ => "invalid",
            });
        Slate {
            slates: self.slates.clone(),
            key,
            expires_in: None,
        }
    }

    /// A handle to the user slate (`_id: "user"`), for the rare writes to it. Reads within a
    /// request are cheaper through [`CurrentUser`](crate::CurrentUser), which the layer has
    /// already loaded.
    pub fn user_slate(&self) -> Slate {
        self.slate(SlateName::USER)
    }

    /// Deletes every slate of this user, the user slate included (the user's tokens stay).
    pub async fn delete_all(&self) -> Result<()> {
        let shared = &self.slates.shared;
        bump(&shared.counters.slate_writes);
        track(
            &self.slates,
            shared.store.delete_user_slates(&self.user).await,
        )
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
        let state = RequestState::from_parts(parts)?;
        let identity = state
            .identity
            .as_ref()
            .ok_or(LoginRequired::NotLoggedIn(NotLoggedIn))?;
        Ok(UserSlates::new(state.slates.clone(), identity.user.clone()))
    }
}

/// One slate document of one user. Every method is one atomic store operation, except
/// [`modify`](Self::modify), a compare-and-swap loop on the version.
///
/// ```no_run
/// # async fn f(slates: slates::UserSlates) -> slates::Result<()> {
/// use time::Duration;
/// let upload = slates.slate("new_id_set").expires_in(Duration::minutes(30));
/// upload.set("name", "batch 7").await?;
/// upload.push("ids", 42).await?;
/// let hits = slates.slate("counter").inc("hits", 1).await?;
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct NewIdSet { name: String, ids: Vec<i64> }
/// upload.modify(|s: &mut NewIdSet| s.ids.retain(|id| *id > 0)).await?;
/// upload.delete().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Slate {
    slates: Slates,
    key: std::result::Result<SlateKey, &'static str>,
    expires_in: Option<Duration>,
}

/// Several update operators applied to one slate in one atomic operation
/// ([`Slate::update`]).
///
/// ```
/// use slates::SlateUpdate;
/// let update = SlateUpdate::new().set("step", "review").inc("visits", 1).push("log", "reviewed");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use = "pass it to Slate::update"]
pub struct SlateUpdate {
    ops: Vec<UpdateOp>,
}

impl SlateUpdate {
    /// No operators yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `$set` `field` to `value`.
    pub fn set(mut self, field: impl Into<String>, value: impl Into<Bson>) -> Self {
        self.ops.push(UpdateOp::Set(field.into(), value.into()));
        self
    }

    /// `$unset` `field`.
    pub fn unset(mut self, field: impl Into<String>) -> Self {
        self.ops.push(UpdateOp::Unset(field.into()));
        self
    }

    /// `$inc` `field` by `by`.
    pub fn inc(mut self, field: impl Into<String>, by: impl Into<Bson>) -> Self {
        self.ops.push(UpdateOp::Inc(field.into(), by.into()));
        self
    }

    /// `$push` `value` onto the array `field`.
    pub fn push(mut self, field: impl Into<String>, value: impl Into<Bson>) -> Self {
        self.ops.push(UpdateOp::Push(field.into(), value.into()));
        self
    }

    /// `$addToSet` `value` into the array `field`.
    pub fn add_to_set(mut self, field: impl Into<String>, value: impl Into<Bson>) -> Self {
        self.ops
            .push(UpdateOp::AddToSet(field.into(), value.into()));
        self
    }

    /// The operators, in order.
    pub fn ops(&self) -> &[UpdateOp] {
        &self.ops
    }
}

impl Slate {
    /// From now on, every write through this handle sets the slate to expire `ttl` after
    /// the write (sliding expiry): an abandoned workflow disappears on its own. An expired
    /// slate reads as absent.
    ///
    /// **The expiry rule**, for every write (`set`, `unset`, `inc`, `push`, `add_to_set`,
    /// `update`, `put`, `modify`): through a handle with `expires_in`, the slate expires
    /// `ttl` after the write; through a handle without it, the write keeps the slate's
    /// current expiry (a slate that did not exist, or had expired, is created without
    /// one). No write makes an expiring slate permanent by omission.
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        self.expires_in = Some(ttl);
        self
    }

    /// The slate name, or `None` if the name given to
    /// [`UserSlates::slate`] was invalid (every operation then fails with
    /// [`Error::InvalidName`]).
    pub fn name(&self) -> Option<&str> {
        self.key.as_ref().ok().map(|k| k.slate.as_str())
    }

    /// Reads the slate into `T`; `None` if absent or expired.
    pub async fn get<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.get_doc().await? {
            None => Ok(None),
            Some(s) => Ok(Some(bson::from_document(std::sync::Arc::unwrap_or_clone(
                s.doc,
            ))?)),
        }
    }

    /// Reads the raw document with its version and expiry; `None` if absent or expired.
    pub async fn get_doc(&self) -> Result<Option<SlateDoc>> {
        let key = self.key()?;
        let shared = &self.slates.shared;
        bump(&shared.counters.slate_reads);
        let now = shared.config.clock.now();
        track(&self.slates, shared.store.get_slate(key, now).await)
    }

    /// Replaces the whole slate with `value` (upsert). Top-level fields `_id`, `_v` and
    /// `_expires` are reserved. The expiry follows the rule of
    /// [`expires_in`](Self::expires_in). Returns the new version.
    pub async fn put<T: Serialize + ?Sized>(&self, value: &T) -> Result<i64> {
        let key = self.key()?;
        let doc = to_document(value)?;
        let shared = &self.slates.shared;
        bump(&shared.counters.slate_writes);
        let now = shared.config.clock.now();
        track(
            &self.slates,
            shared
                .store
                .put_slate(key, &doc, self.expiry(now), now)
                .await,
        )
    }

    /// Sets one field (dotted paths reach into sub-documents). Returns the new version.
    pub async fn set<T: Serialize>(&self, field: &str, value: T) -> Result<i64> {
        let value = bson::to_bson(&value)?;
        Ok(self
            .apply(&[UpdateOp::Set(field.to_owned(), value)], None)
            .await?
            .version)
    }

    /// Removes one field. Returns the new version.
    pub async fn unset(&self, field: &str) -> Result<i64> {
        Ok(self
            .apply(&[UpdateOp::Unset(field.to_owned())], None)
            .await?
            .version)
    }

    /// Adds `by` to the integer `field` (absent counts as 0) and returns the new value, in
    /// one atomic operation: concurrent increments are never lost. A field that holds
    /// anything but an integer (a double, a string, …) is [`Error::TypeMismatch`] and
    /// nothing is written.
    pub async fn inc(&self, field: &str, by: i64) -> Result<i64> {
        let updated = self
            .apply(
                &[UpdateOp::Inc(field.to_owned(), Bson::Int64(by))],
                Some(field),
            )
            .await?;
        updated.counter.ok_or_else(|| Error::TypeMismatch {
            field: field.to_owned(),
            reason: "inc returned no integer",
        })
    }

    /// Appends `value` to the array `field`. Returns the new version.
    pub async fn push<T: Serialize>(&self, field: &str, value: T) -> Result<i64> {
        let value = bson::to_bson(&value)?;
        Ok(self
            .apply(&[UpdateOp::Push(field.to_owned(), value)], None)
            .await?
            .version)
    }

    /// Appends `value` to the array `field` unless an equal element is there. Returns the
    /// new version.
    pub async fn add_to_set<T: Serialize>(&self, field: &str, value: T) -> Result<i64> {
        let value = bson::to_bson(&value)?;
        Ok(self
            .apply(&[UpdateOp::AddToSet(field.to_owned(), value)], None)
            .await?
            .version)
    }

    /// Applies several operators in one atomic operation. Returns the new version.
    pub async fn update(&self, update: SlateUpdate) -> Result<i64> {
        Ok(self.apply(&update.ops, None).await?.version)
    }

    /// Read-modify-write with compare-and-swap on the version: reads the slate into `T`
    /// (`T::default()` if absent), runs `f`, and writes the result only if nobody wrote in
    /// between (not even by deleting and re-creating the slate: versions are never reused);
    /// otherwise reads again and retries (up to the configured attempts, then
    /// [`Error::Conflict`]). `f` may run several times, so keep it free of side effects.
    /// The expiry follows the rule of [`expires_in`](Self::expires_in). Returns what `f`
    /// returned on the attempt that was written.
    pub async fn modify<T, R, F>(&self, mut f: F) -> Result<R>
    where
        T: Serialize + DeserializeOwned + Default,
        F: FnMut(&mut T) -> R,
    {
        let key = self.key()?;
        let shared = &self.slates.shared;
        let attempts = shared.config.cas_attempts;
        for attempt in 0..attempts {
            if attempt > 0 {
                bump(&shared.counters.cas_retries);
                tokio::task::yield_now().await;
            }
            let current = self.get_doc().await?;
            let (mut value, expected, old_expires) = match current {
                None => (T::default(), None, None),
                Some(s) => (
                    bson::from_document(std::sync::Arc::unwrap_or_clone(s.doc))?,
                    Some(s.version),
                    s.expires,
                ),
            };
            let out = f(&mut value);
            let doc = to_document(&value)?;
            bump(&shared.counters.slate_writes);
            let now = shared.config.clock.now();
            // The compare-and-swap makes sure the expiry read is still the stored one.
            let expires = self.expiry(now).resolve(old_expires);
            let written = track(
                &self.slates,
                shared
                    .store
                    .replace_slate_if(key, expected, &doc, expires, now)
                    .await,
            )?;
            if written.is_some() {
                return Ok(out);
            }
            bump(&shared.counters.cas_conflicts);
        }
        Err(Error::Conflict {
            slate: key.slate.to_string(),
            attempts,
        })
    }

    /// Deletes the slate (the task is finished). Returns whether a live slate was deleted.
    pub async fn delete(&self) -> Result<bool> {
        let key = self.key()?;
        let shared = &self.slates.shared;
        bump(&shared.counters.slate_writes);
        let now = shared.config.clock.now();
        track(&self.slates, shared.store.delete_slate(key, now).await)
    }

    async fn apply(&self, ops: &[UpdateOp], counter: Option<&str>) -> Result<Updated> {
        let key = self.key()?;
        for op in ops {
            validate_field(op.field())?;
        }
        check_ops(ops)?;
        let shared = &self.slates.shared;
        bump(&shared.counters.slate_writes);
        let now = shared.config.clock.now();
        track(
            &self.slates,
            shared
                .store
                .update_slate(key, ops, self.expiry(now), counter, now)
                .await,
        )
    }

    fn key(&self) -> Result<&SlateKey> {
        self.key
            .as_ref()
            .map_err(|reason| Error::invalid(NameKind::SlateName, reason))
    }

    /// What a write at `now` does to the expiry (the rule of [`expires_in`](Self::expires_in)).
    fn expiry(&self, now: OffsetDateTime) -> Expiry {
        self.expires_in
            .map_or(Expiry::Keep, |ttl| Expiry::At(now + ttl))
    }
}

impl std::fmt::Debug for Slate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slate")
            .field("key", &self.key)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

fn to_document<T: Serialize + ?Sized>(value: &T) -> Result<Document> {
    let Bson::Document(doc) = bson::to_bson(value)? else {
        return Err(Error::TypeMismatch {
            field: String::new(),
            reason: "a slate must serialize to a document (a struct or a map)",
        });
    };
    if RESERVED_FIELDS.iter().any(|f| doc.contains_key(f)) {
        return Err(Error::invalid(
            NameKind::Field,
            "`_id`, `_v` and `_expires` are reserved",
        ));
    }
    Ok(doc)
}

/// Counts store failures and logs them; passes the result through.
fn track<T>(slates: &Slates, result: Result<T>) -> Result<T> {
    if let Err(e) = &result {
        if e.is_store_failure() {
            bump(&slates.shared.counters.store_errors);
            tracing::error!(error = %e, "slates store operation failed");
        }
    }
    result
}
