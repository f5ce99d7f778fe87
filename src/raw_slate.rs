//! [`RawSlate`]: one slate document of one user, untyped: every method one atomic store
//! operation, except the read-modify-write helpers, a compare-and-swap loop on the version.

use std::sync::Arc;

use bson::{Bson, Document};
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::core::Core;
use crate::error::{Error, NameKind, Result};
use crate::guest::GuestState;
use crate::modified::Modified;
use crate::names::{validate_field, SlateName, Username, RESERVED_FIELDS};
use crate::slate_update::{to_bson, SlateUpdate};
use crate::stats::bump;
use crate::store::{check_ops, Expiry, SlateDoc, SlateKey, UpdateOp, Updated};

/// One slate document of one user (or of a visitor: a guest slate), with any shape:
/// fields are read into any `Deserialize` type and written from any `Serialize` value. Get
/// one from [`UserSlates::raw_slate`](crate::UserSlates::raw_slate) or
/// [`GuestSlates::raw_slate`](crate::GuestSlates::raw_slate); for a workflow with a
/// document type of its own, prefer the typed [`Slate`](crate::Slate) of a
/// [`Workflow`](crate::Workflow).
///
/// Through a guest handle, reads of a visitor with no guest cookie answer "absent" with no
/// store call, the first write issues the guest token, and every write sets the slate to
/// expire at most [`guest_idle_timeout`](crate::EngineBuilder::guest_idle_timeout) after it.
///
/// Every method is one atomic store operation, except the `modify` family, a
/// compare-and-swap loop on the version.
///
/// ```no_run
/// # async fn f(slates: slates::UserSlates) -> slates::Result<()> {
/// use time::Duration;
/// let upload = slates.raw_slate("new_id_set").expires_in(Duration::minutes(30));
/// upload.set("name", "batch 7").await?;
/// upload.push_all("ids", [42, 43]).await?;
/// let hits = slates.raw_slate("counter").inc("hits", 1).await?;
/// upload.delete().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RawSlate {
    core: Arc<Core>,
    owner: Owner,
    slate: std::result::Result<SlateName, &'static str>,
    expires_in: Option<Duration>,
}

/// Whose slate a handle reaches.
#[derive(Clone)]
pub(crate) enum Owner {
    /// A user's.
    User(Username),
    /// The request's visitor's guest slate (issue 14): the guest is looked up on the first
    /// operation, and issued by the first write.
    Guest(Arc<GuestState>),
}

impl RawSlate {
    /// A handle to `user`'s slate `name`; an invalid name is reported by the first
    /// operation.
    pub(crate) fn new(core: Arc<Core>, user: Username, name: &str) -> Self {
        Self::of(core, Owner::User(user), name)
    }

    /// A handle to `owner`'s slate `name`; an invalid name is reported by the first
    /// operation.
    pub(crate) fn of(core: Arc<Core>, owner: Owner, name: &str) -> Self {
        let slate = SlateName::new(name).map_err(|e| match e {
            Error::InvalidName { reason, .. } => reason,
            _ => "invalid",
        });
        RawSlate {
            core,
            owner,
            slate,
            expires_in: None,
        }
    }

    /// A handle to `owner`'s slate of slates' own `slate` (`.flash`).
    pub(crate) fn reserved(core: Arc<Core>, owner: Owner, slate: SlateName) -> Self {
        RawSlate {
            core,
            owner,
            slate: Ok(slate),
            expires_in: None,
        }
    }

    /// From now on, every write through this handle sets the slate to expire `ttl` after
    /// the write (sliding expiry): an abandoned workflow disappears on its own. An expired
    /// slate reads as absent.
    ///
    /// **The expiry rule**, for every write (`set`, `unset`, `inc`, `push`, `push_all`,
    /// `add_to_set`, `add_all_to_set`, `update`, `put`, the `modify` family): through a
    /// handle with an expiry (this method, or a [`Workflow`](crate::Workflow) declared with
    /// [`expires_after`](crate::Workflow::expires_after)), the slate expires `ttl` after the
    /// write; through a handle without one, the write keeps the slate's current expiry (a
    /// slate that did not exist, or had expired, is created without one). No write makes an
    /// expiring slate permanent by omission. A `modify` that writes nothing does not slide
    /// the expiry.
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        self.expires_in = Some(ttl);
        self
    }

    pub(crate) fn with_expiry(mut self, ttl: Option<Duration>) -> Self {
        self.expires_in = ttl;
        self
    }

    /// The slate name, or `None` if the name given was invalid (every operation then
    /// fails with [`Error::InvalidName`]).
    pub fn name(&self) -> Option<&str> {
        self.slate.as_ref().ok().map(SlateName::as_str)
    }

    /// Reads the slate into `T`; `None` if absent or expired.
    pub async fn get<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.get_doc().await? {
            None => Ok(None),
            Some(s) => Ok(Some(s.doc.deserialize()?)),
        }
    }

    /// Reads the raw document with its version and expiry; `None` if absent or expired.
    pub async fn get_doc(&self) -> Result<Option<SlateDoc>> {
        let Some(key) = self.read_key().await? else {
            return Ok(None); // a visitor with no guest: nothing to read, no store call
        };
        let core = &self.core;
        bump(&core.counters.slate_reads);
        core.track(core.slates.get_slate(&key, core.now()).await)
    }

    /// Reads the slate into `T` and deletes it, in one atomic store operation: of two
    /// concurrent calls (two tabs), at most one gets it. `None` if absent or expired.
    pub async fn take<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.take_doc().await? {
            None => Ok(None),
            Some(s) => Ok(Some(s.doc.deserialize()?)),
        }
    }

    /// Like [`take`](Self::take), the raw document with its version and expiry.
    pub async fn take_doc(&self) -> Result<Option<SlateDoc>> {
        let Some(key) = self.read_key().await? else {
            return Ok(None);
        };
        let core = &self.core;
        bump(&core.counters.slate_writes);
        core.track(core.slates.take_slate(&key, core.now()).await)
    }

    /// Replaces the whole slate with `value` (upsert). Top-level fields `_id`, `_v` and
    /// `_expires` are reserved. The expiry follows the rule of
    /// [`expires_in`](Self::expires_in). Returns the new version.
    pub async fn put<T: Serialize + ?Sized>(&self, value: &T) -> Result<i64> {
        self.slate()?;
        let doc = to_document(value)?;
        let key = self.write_key().await?;
        let core = &self.core;
        bump(&core.counters.slate_writes);
        let now = core.now();
        let expiry = self.expiry(now);
        core.track(core.slates.put_slate(&key, &doc, expiry, now).await)
    }

    /// Sets one field (dotted paths reach into sub-documents and arrays). Returns the new
    /// version.
    pub async fn set(&self, field: &str, value: impl Serialize) -> Result<i64> {
        let op = UpdateOp::Set(field.to_owned(), to_bson(field, &value)?);
        Ok(self.apply(vec![op], None).await?.version)
    }

    /// Removes one field. Returns the new version.
    pub async fn unset(&self, field: &str) -> Result<i64> {
        let op = UpdateOp::Unset(field.to_owned());
        Ok(self.apply(vec![op], None).await?.version)
    }

    /// Adds `by` to the integer `field` (absent counts as 0) and returns the new value, in
    /// one atomic operation: concurrent increments are never lost. A field that holds
    /// anything but an integer (a double, a string, …) is [`Error::TypeMismatch`] and
    /// nothing is written.
    pub async fn inc(&self, field: &str, by: i64) -> Result<i64> {
        let op = UpdateOp::Inc(field.to_owned(), Bson::Int64(by));
        let updated = self.apply(vec![op], Some(field)).await?;
        updated.counter.ok_or_else(|| Error::TypeMismatch {
            field: field.to_owned(),
            reason: "inc returned no integer",
        })
    }

    /// Appends `value` to the array `field`. Returns the new version.
    pub async fn push(&self, field: &str, value: impl Serialize) -> Result<i64> {
        let op = UpdateOp::Push(field.to_owned(), to_bson(field, &value)?);
        Ok(self.apply(vec![op], None).await?.version)
    }

    /// Appends every one of `values`, in order, to the array `field` (one `$push` with
    /// `$each`); an absent field becomes an array of them. Returns the new version.
    pub async fn push_all<V: Serialize>(
        &self,
        field: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.update(SlateUpdate::new().push_all(field, values))
            .await
    }

    /// Appends `value` to the array `field` unless an equal element is there. Returns the
    /// new version.
    pub async fn add_to_set(&self, field: &str, value: impl Serialize) -> Result<i64> {
        let op = UpdateOp::AddToSet(field.to_owned(), to_bson(field, &value)?);
        Ok(self.apply(vec![op], None).await?.version)
    }

    /// Appends each of `values` to the array `field` unless an equal element is there (one
    /// `$addToSet` with `$each`). Returns the new version.
    pub async fn add_all_to_set<V: Serialize>(
        &self,
        field: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.update(SlateUpdate::new().add_all_to_set(field, values))
            .await
    }

    /// Applies several operators in one atomic operation. Returns the new version.
    pub async fn update(&self, update: SlateUpdate) -> Result<i64> {
        Ok(self.apply(update.into_ops()?, None).await?.version)
    }

    /// Read-modify-write of an existing slate, with compare-and-swap on the version: reads
    /// the slate into `T` and runs `f` on it.
    ///
    /// - No slate (absent or expired): `f` does not run, nothing is written:
    ///   [`Modified::Missing`]. Creating it is explicit:
    ///   [`modify_or_default`](Self::modify_or_default),
    ///   [`modify_or_insert_with`](Self::modify_or_insert_with).
    /// - `f` returns `None`: it declined, nothing is written: [`Modified::Declined`].
    /// - `f` left the document as it was: nothing is written (no new version, the expiry
    ///   does not slide): [`Modified::Unchanged`].
    /// - Otherwise the result is written only if nobody wrote in between (not even by
    ///   deleting and re-creating the slate: versions are never reused); if somebody did,
    ///   the slate is read again and `f` runs again, up to the configured attempts, then
    ///   [`Error::Conflict`]. So keep `f` free of side effects. [`Modified::Written`].
    ///   Before the second attempt the task yields; before each later one it sleeps a random
    ///   time, up to 1 ms before the third, doubling with each attempt up to 16 ms, so that
    ///   writers that keep colliding spread out instead of one of them losing every round.
    ///
    /// Fields of the stored document that `T` does not keep are dropped by a write. The
    /// expiry follows the rule of [`expires_in`](Self::expires_in).
    pub async fn modify<T, R>(&self, f: impl FnMut(&mut T) -> Option<R>) -> Result<Modified<R>>
    where
        T: Serialize + DeserializeOwned,
    {
        self.modify_inner(None::<fn() -> T>, f).await
    }

    /// Like [`modify`](Self::modify), but a missing slate starts as `T::default()` and is
    /// created (unless `f` declines).
    pub async fn modify_or_default<T, R>(
        &self,
        f: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<Modified<R>>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        self.modify_inner(Some(T::default), f).await
    }

    /// Like [`modify`](Self::modify), but a missing slate starts as `init()` and is created
    /// (unless `f` declines).
    pub async fn modify_or_insert_with<T, R>(
        &self,
        init: impl FnMut() -> T,
        f: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<Modified<R>>
    where
        T: Serialize + DeserializeOwned,
    {
        self.modify_inner(Some(init), f).await
    }

    async fn modify_inner<T, R>(
        &self,
        mut init: Option<impl FnMut() -> T>,
        mut f: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<Modified<R>>
    where
        T: Serialize + DeserializeOwned,
    {
        let slate = self.slate()?;
        let core = &self.core;
        let attempts = core.config.cas_attempts;
        for attempt in 0..attempts {
            if attempt > 0 {
                bump(&core.counters.cas_retries);
                retry_pause(attempt).await;
            }
            let (mut value, expected, old_expires) = match self.get_doc().await? {
                Some(s) => (s.doc.deserialize()?, Some(s.version), s.expires),
                None => match init.as_mut() {
                    Some(init) => (init(), None, None),
                    None => return Ok(Modified::Missing),
                },
            };
            // What the document was, as `T` writes it: `f` changed nothing if it is the same.
            // Compared as bytes: BSON equality says NaN != NaN.
            let before = match expected {
                Some(_) => Some(bson::to_vec(&to_document(&value)?)?),
                None => None,
            };
            let Some(out) = f(&mut value) else {
                return Ok(Modified::Declined);
            };
            let doc = to_document(&value)?;
            if before.is_some() && before == Some(bson::to_vec(&doc)?) {
                return Ok(Modified::Unchanged(out));
            }
            bump(&core.counters.slate_writes);
            let now = core.now();
            // The compare-and-swap makes sure the expiry read is still the stored one.
            let expires = self.expiry(now).resolve(old_expires);
            let key = self.write_key().await?;
            let written = core
                .slates
                .replace_slate_if(&key, expected, &doc, expires, now);
            if let Some(version) = core.track(written.await)? {
                return Ok(Modified::Written {
                    value: out,
                    version,
                });
            }
            bump(&core.counters.cas_conflicts);
        }
        Err(Error::Conflict {
            slate: slate.to_string(),
            attempts,
        })
    }

    /// Deletes the slate (the task is finished). Returns whether a live slate was deleted.
    pub async fn delete(&self) -> Result<bool> {
        let Some(key) = self.read_key().await? else {
            return Ok(false);
        };
        let core = &self.core;
        bump(&core.counters.slate_writes);
        core.track(core.slates.delete_slate(&key, core.now()).await)
    }

    async fn apply(&self, ops: Vec<UpdateOp>, counter: Option<&str>) -> Result<Updated> {
        self.slate()?;
        for op in &ops {
            validate_field(op.field())?;
        }
        check_ops(&ops)?;
        let key = self.write_key().await?;
        let core = &self.core;
        bump(&core.counters.slate_writes);
        let now = core.now();
        let expiry = self.expiry(now);
        let updated = core.slates.update_slate(&key, &ops, expiry, counter, now);
        core.track(updated.await)
    }

    fn slate(&self) -> Result<&SlateName> {
        self.slate
            .as_ref()
            .map_err(|reason| Error::invalid(NameKind::SlateName, reason))
    }

    /// The key to read: `None` for a visitor with no guest (decided with no store call
    /// when the request has no guest cookie).
    async fn read_key(&self) -> Result<Option<SlateKey>> {
        let slate = self.slate()?;
        let user = match &self.owner {
            Owner::User(user) => user.clone(),
            Owner::Guest(guest) => match guest.owner(&self.core).await? {
                Some(owner) => owner.user,
                None => return Ok(None),
            },
        };
        Ok(Some(SlateKey::new(user, slate.clone())))
    }

    /// The key to write: for a visitor with no guest yet, the first write issues one.
    async fn write_key(&self) -> Result<SlateKey> {
        let slate = self.slate()?;
        let user = match &self.owner {
            Owner::User(user) => user.clone(),
            Owner::Guest(guest) => guest.owner_for_write(&self.core).await?,
        };
        Ok(SlateKey::new(user, slate.clone()))
    }

    /// What a write at `now` does to the expiry (the rule of [`expires_in`](Self::expires_in)).
    /// A guest slate always expires: at the guest idle timeout after the write, or the
    /// handle's own expiry if shorter.
    fn expiry(&self, now: OffsetDateTime) -> Expiry {
        match self.owner {
            Owner::User(_) => self
                .expires_in
                .map_or(Expiry::Keep, |ttl| Expiry::At(now + ttl)),
            Owner::Guest(_) => {
                let idle = self.core.config.guest_idle_timeout;
                Expiry::At(now + self.expires_in.map_or(idle, |ttl| ttl.min(idle)))
            }
        }
    }
}

impl std::fmt::Debug for RawSlate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owner = match &self.owner {
            Owner::User(user) => user.as_str(),
            Owner::Guest(_) => "(guest)",
        };
        f.debug_struct("RawSlate")
            .field("owner", &owner)
            .field("slate", &self.slate)
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

/// The longest pause between two compare-and-swap attempts.
const MAX_RETRY_PAUSE_MICROS: u64 = 16_000;

/// The pause before attempt `attempt` (1 for the first retry) of a compare-and-swap: a
/// yield first (most conflicts are one write that has already finished), then a random sleep
/// up to 1 ms, doubling up to [`MAX_RETRY_PAUSE_MICROS`] ("full jitter"): writers that
/// collided draw different pauses, so the next round finds the slate quiet.
async fn retry_pause(attempt: u32) {
    if attempt <= 1 {
        tokio::task::yield_now().await;
        return;
    }
    let ceiling = (1_000u64 << (attempt - 2).min(4)).min(MAX_RETRY_PAUSE_MICROS);
    let micros = rand::random::<u64>() % (ceiling + 1);
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}
