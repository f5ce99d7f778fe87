//! The 16 MiB rule: how large a slate document is once stored, counted the same way by
//! every store so that they refuse the same documents and the same updates.

use bson::{doc, Document};

use super::{SharedRawDocument, SlateKey, UpdateOp, MAX_DOCUMENT_BYTES};
use crate::error::{Error, Result};

/// Size the stored document would have, counting what the Mongo store adds (`_id` with
/// both key parts, `_v`, `_expires`), for user fields of `len` bytes of BSON.
fn stored_len(key: &SlateKey, len: usize) -> usize {
    const OVERHEAD: usize = 64;
    len.saturating_add(key.user.len() + key.slate.len() + OVERHEAD)
}

/// Size the stored document would have (see [`stored_len`]); a document that cannot be
/// serialized counts as too large.
pub(crate) fn stored_size(key: &SlateKey, doc: &Document) -> usize {
    stored_len(key, bson::to_vec(doc).map_or(usize::MAX, |v| v.len()))
}

/// Refuses a whole document that would be over [`MAX_DOCUMENT_BYTES`] once stored, before
/// it is applied or sent.
#[cfg_attr(not(feature = "mongodb"), allow(dead_code))] // the memory store uses `to_raw_checked`
pub(crate) fn check_size(key: &SlateKey, doc: &Document) -> Result<()> {
    check(stored_size(key, doc))
}

/// `doc` as raw BSON, refused like [`check_size`] refuses it (one serialization for both).
pub(crate) fn to_raw_checked(key: &SlateKey, doc: &Document) -> Result<SharedRawDocument> {
    let Ok(bytes) = bson::to_vec(doc) else {
        return Err(too_large(usize::MAX));
    };
    check(stored_len(key, bytes.len()))?;
    SharedRawDocument::from_bytes(bytes)
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
