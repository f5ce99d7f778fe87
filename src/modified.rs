//! [`Modified`]: what a read-modify-write did.

/// What [`Slate::modify`](crate::Slate::modify) (and its relatives) did. Nothing is written
/// unless the answer is [`Written`](Self::Written).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a modify may have written nothing: check what it did"]
pub enum Modified<R> {
    /// The closure's changes were written, with this new version. `value` is what the
    /// closure returned on the attempt that was written.
    Written {
        /// What the closure returned.
        value: R,
        /// The slate's new version.
        version: i64,
    },
    /// The closure left the document as it was: nothing was written (no new version, and
    /// the expiry did not slide).
    Unchanged(R),
    /// The closure declined (returned `None`): nothing was written.
    Declined,
    /// There was no slate (absent or expired): the closure did not run and nothing was
    /// written. Use `modify_or_default` or `modify_or_insert_with` to create it.
    Missing,
}

impl<R> Modified<R> {
    /// What the closure returned, if it ran and did not decline.
    pub fn value(self) -> Option<R> {
        match self {
            Modified::Written { value, .. } | Modified::Unchanged(value) => Some(value),
            Modified::Declined | Modified::Missing => None,
        }
    }

    /// Whether something was written.
    pub fn is_written(&self) -> bool {
        matches!(self, Modified::Written { .. })
    }

    /// The new version, if something was written.
    pub fn version(&self) -> Option<i64> {
        match self {
            Modified::Written { version, .. } => Some(*version),
            _ => None,
        }
    }
}
