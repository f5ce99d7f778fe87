//! The 16 MiB rule: how large a slate document is once stored, counted the same way by
//! every store so that they refuse the same documents and the same updates.

use bson::{doc, Document};

use super::{SlateKey, UpdateOp, MAX_DOCUMENT_BYTES};
use crate::error::{Error, Result};

/// Size the stored document would have, counting what the Mongo store adds (`_id` with
/// both key parts, `_v`, `_expires`).
pub(crate) fn stored_size(key: &SlateKey, doc: &Document) -> usize {
    const OVERHEAD: usize = 64;
    bson::to_vec(doc).map(|v| v.len()).unwrap_or(usize::MAX)
        + key.user.len()
        + key.slate.len()
        + OVERHEAD
}

/// Refuses a whole document that would be over [`MAX_DOCUMENT_BYTES`] once stored, before
/// it is applied or sent.
pub(crate) fn check_size(key: &SlateKey, doc: &Document) -> Result<()> {
    check(stored_size(key, doc))
}

/// Refuses an update whose values (`set`, `push`, `add_to_set`, each counted as a stored
/// document of its own) add up to over [`MAX_DOCUMENT_BYTES`], before it is applied or
/// sent, whatever it would do to the document.
pub(crate) fn check_values(key: &SlateKey, ops: &[UpdateOp]) -> Result<()> {
    let size = ops
        .iter()
        .filter_map(|op| match op {
            UpdateOp::Set(p, v) | UpdateOp::Push(p, v) | UpdateOp::AddToSet(p, v) => {
                Some(stored_size(key, &doc! {p.as_str(): v.clone()}))
            }
            UpdateOp::PushAll(p, vs) | UpdateOp::AddAllToSet(p, vs) => {
                Some(stored_size(key, &doc! {p.as_str(): vs.clone()}))
            }
            UpdateOp::Unset(_) | UpdateOp::Inc(..) => None,
        })
        .sum();
    check(size)
}

/// [`Error::DocumentTooLarge`] for a document of `size` bytes.
pub(crate) fn too_large(size: usize) -> Error {
    Error::DocumentTooLarge {
        size,
        limit: MAX_DOCUMENT_BYTES,
    }
}

fn check(size: usize) -> Result<()> {
    if size > MAX_DOCUMENT_BYTES {
        return Err(too_large(size));
    }
    Ok(())
}
