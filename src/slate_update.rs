//! [`SlateUpdate`]: several update operators applied to one slate in one atomic operation.

use bson::Bson;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::UpdateOp;

/// Several update operators applied to one slate in one atomic operation
/// ([`RawSlate::update`](crate::RawSlate::update), [`Slate::update`](crate::Slate::update)).
/// Values are anything `Serialize`, as for the single-operator methods; a value that does
/// not serialize to BSON (a `u64` over `i64::MAX`, a map with non-string keys) makes the
/// update fail with [`Error::Unserializable`] naming the field, and nothing is written.
///
/// ```
/// use slates::SlateUpdate;
/// #[derive(serde::Serialize)]
/// struct Contact { id: i64, name: String }
/// let contacts = vec![Contact { id: 7, name: "Ada".into() }];
/// let update = SlateUpdate::new()
///     .set("step", "review")
///     .set("contacts", &contacts) // a Vec of structs, in the same atomic update
///     .inc("visits", 1)
///     .push_all("log", ["uploaded", "reviewed"]); // one `$push` with `$each`
/// assert_eq!(update.ops().len(), 4);
/// ```
#[derive(Debug, Default)]
#[must_use = "pass it to update()"]
pub struct SlateUpdate {
    ops: Vec<UpdateOp>,
    /// The first value that did not serialize.
    failed: Option<Error>,
}

impl SlateUpdate {
    /// No operators yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `$set` `field` to `value`.
    pub fn set(self, field: impl Into<String>, value: impl Serialize) -> Self {
        self.with_value(field.into(), &value, UpdateOp::Set)
    }

    /// `$unset` `field`.
    pub fn unset(mut self, field: impl Into<String>) -> Self {
        self.ops.push(UpdateOp::Unset(field.into()));
        self
    }

    /// `$inc` `field` by `by` (an integer or a float).
    pub fn inc(self, field: impl Into<String>, by: impl Serialize) -> Self {
        self.with_value(field.into(), &by, UpdateOp::Inc)
    }

    /// `$push` `value` onto the array `field`.
    pub fn push(self, field: impl Into<String>, value: impl Serialize) -> Self {
        self.with_value(field.into(), &value, UpdateOp::Push)
    }

    /// `$push` every one of `values`, in order, onto the array `field` (`$each`); an absent
    /// field becomes an array of them.
    pub fn push_all<V: Serialize>(
        self,
        field: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        self.with_values(field.into(), values, UpdateOp::PushAll)
    }

    /// `$addToSet` `value` into the array `field`.
    pub fn add_to_set(self, field: impl Into<String>, value: impl Serialize) -> Self {
        self.with_value(field.into(), &value, UpdateOp::AddToSet)
    }

    /// `$addToSet` each of `values` into the array `field` (`$each`).
    pub fn add_all_to_set<V: Serialize>(
        self,
        field: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        self.with_values(field.into(), values, UpdateOp::AddAllToSet)
    }

    /// The operators, in order.
    pub fn ops(&self) -> &[UpdateOp] {
        &self.ops
    }

    /// The operators, or the first value that did not serialize.
    pub(crate) fn into_ops(self) -> Result<Vec<UpdateOp>> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.ops),
        }
    }

    fn with_value<V: Serialize + ?Sized>(
        mut self,
        field: String,
        value: &V,
        op: fn(String, Bson) -> UpdateOp,
    ) -> Self {
        match to_bson(&field, value) {
            Ok(v) => self.ops.push(op(field, v)),
            Err(e) => {
                self.failed.get_or_insert(e);
            }
        }
        self
    }

    fn with_values<V: Serialize>(
        mut self,
        field: String,
        values: impl IntoIterator<Item = V>,
        op: fn(String, Vec<Bson>) -> UpdateOp,
    ) -> Self {
        match values.into_iter().map(|v| to_bson(&field, &v)).collect() {
            Ok(vs) => self.ops.push(op(field, vs)),
            Err(e) => {
                self.failed.get_or_insert(e);
            }
        }
        self
    }
}

/// `value` as BSON, or [`Error::Unserializable`] naming `field`.
pub(crate) fn to_bson<V: Serialize + ?Sized>(field: &str, value: &V) -> Result<Bson> {
    bson::to_bson(value).map_err(|e| Error::Unserializable {
        field: field.to_owned(),
        reason: e.to_string(),
    })
}
