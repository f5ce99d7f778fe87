//! [`Slate<T>`]: a typed handle to one slate document of one user.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::modified::Modified;
use crate::raw_slate::RawSlate;
use crate::slate_update::SlateUpdate;
use crate::store::SlateDoc;

/// A typed handle to one slate of one user (or of a visitor: a guest slate), whose document
/// is a `T`: a workflow's slate ([`UserSlates::workflow`](crate::UserSlates::workflow),
/// [`GuestSlates::workflow`](crate::GuestSlates::workflow)) or the profile
/// ([`UserSlates::profile_slate`](crate::UserSlates::profile_slate)). Cheap; nothing is
/// read until you ask.
///
/// Whole-document methods (`get`, `put`, the `modify` family) take and give `T`; the update
/// operators (`set`, `inc`, `push`, …) write single fields atomically, with no read. The
/// expiry comes from the declaration: see [`RawSlate::expires_in`] for the rule every write
/// follows. [`raw`](Self::raw) gives the untyped handle.
///
/// ```no_run
/// use slates::{Modified, UserSlates, Workflow};
/// use time::Duration;
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Import { ids: Vec<i64>, confirmed: bool }
/// const IMPORT: Workflow<Import> =
///     Workflow::new("import_contacts").expires_after(Duration::minutes(20));
///
/// # async fn f(slates: UserSlates) -> slates::Result<()> {
/// let import = slates.workflow(&IMPORT);
/// import.put(&Import { ids: vec![3, 1, 2], confirmed: false }).await?;
/// import.push("ids", 4).await?; // one atomic $push
/// // Confirm once: a second confirmation declines and writes nothing.
/// let confirmed = import
///     .modify(|i| (!i.confirmed).then(|| { i.confirmed = true; i.ids.len() }))
///     .await?;
/// assert!(matches!(confirmed, Modified::Written { value: 4, .. }));
/// import.delete().await?;
/// # Ok(()) }
/// ```
pub struct Slate<T> {
    raw: RawSlate,
    document: PhantomData<fn() -> T>,
}

impl<T> Slate<T> {
    pub(crate) fn new(raw: RawSlate) -> Self {
        Slate {
            raw,
            document: PhantomData,
        }
    }

    /// The untyped handle to the same slate, with the same expiry.
    pub fn raw(&self) -> &RawSlate {
        &self.raw
    }

    /// The slate name (`None` if invalid: every operation then fails).
    pub fn name(&self) -> Option<&str> {
        self.raw.name()
    }

    /// Reads the raw document with its version and expiry; `None` if absent or expired.
    pub async fn get_doc(&self) -> Result<Option<SlateDoc>> {
        self.raw.get_doc().await
    }

    /// Sets one field. Returns the new version. See [`RawSlate::set`].
    pub async fn set(&self, field: &str, value: impl Serialize) -> Result<i64> {
        self.raw.set(field, value).await
    }

    /// Removes one field. Returns the new version.
    pub async fn unset(&self, field: &str) -> Result<i64> {
        self.raw.unset(field).await
    }

    /// Adds `by` to the integer `field` and returns the new value. See [`RawSlate::inc`].
    pub async fn inc(&self, field: &str, by: i64) -> Result<i64> {
        self.raw.inc(field, by).await
    }

    /// Appends `value` to the array `field`. Returns the new version.
    pub async fn push(&self, field: &str, value: impl Serialize) -> Result<i64> {
        self.raw.push(field, value).await
    }

    /// Appends every one of `values` to the array `field` (`$push` with `$each`).
    pub async fn push_all<V: Serialize>(
        &self,
        field: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.raw.push_all(field, values).await
    }

    /// Appends `value` to the array `field` unless an equal element is there.
    pub async fn add_to_set(&self, field: &str, value: impl Serialize) -> Result<i64> {
        self.raw.add_to_set(field, value).await
    }

    /// Appends each of `values` unless an equal element is there (`$addToSet` with
    /// `$each`).
    pub async fn add_all_to_set<V: Serialize>(
        &self,
        field: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.raw.add_all_to_set(field, values).await
    }

    /// Applies several operators in one atomic operation. Returns the new version.
    pub async fn update(&self, update: SlateUpdate) -> Result<i64> {
        self.raw.update(update).await
    }

    /// Deletes the slate. Returns whether a live slate was deleted.
    pub async fn delete(&self) -> Result<bool> {
        self.raw.delete().await
    }
}

impl<T: Serialize + DeserializeOwned> Slate<T> {
    /// Reads the slate; `None` if absent or expired.
    pub async fn get(&self) -> Result<Option<T>> {
        self.raw.get().await
    }

    /// Replaces the whole slate with `value` (upsert). Returns the new version.
    pub async fn put(&self, value: &T) -> Result<i64> {
        self.raw.put(value).await
    }

    /// Reads the slate and deletes it in one atomic store operation; `None` if absent or
    /// expired. Of two concurrent calls, at most one gets it. See [`RawSlate::take`].
    pub async fn take(&self) -> Result<Option<T>> {
        self.raw.take().await
    }

    /// Read-modify-write of an existing slate. See [`RawSlate::modify`]: nothing is written
    /// when the slate is missing, when `f` returns `None`, or when `f` changed nothing.
    pub async fn modify<R>(&self, f: impl FnMut(&mut T) -> Option<R>) -> Result<Modified<R>> {
        self.raw.modify(f).await
    }

    /// Like [`modify`](Self::modify), creating a missing slate from `init()`.
    pub async fn modify_or_insert_with<R>(
        &self,
        init: impl FnMut() -> T,
        f: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<Modified<R>> {
        self.raw.modify_or_insert_with(init, f).await
    }
}

impl<T: Serialize + DeserializeOwned + Default> Slate<T> {
    /// Like [`modify`](Self::modify), creating a missing slate from `T::default()`.
    pub async fn modify_or_default<R>(
        &self,
        f: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<Modified<R>> {
        self.raw.modify_or_default(f).await
    }
}

impl<T> Clone for Slate<T> {
    fn clone(&self) -> Self {
        Slate::new(self.raw.clone())
    }
}

impl<T> std::fmt::Debug for Slate<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slate")
            .field("raw", &self.raw)
            .field("document", &std::any::type_name::<T>())
            .finish()
    }
}
