//! The slate queries: where a slate lives, the expiry filter, and the update documents.
//!
//! A slate document is the user's fields plus `_id`, `_v` (version, `i64`) and, if it
//! expires, `_expires`. "Live" means no `_expires` or `_expires > now`; every read and every
//! conditional write filters on it, so an expired document behaves as absent even before
//! the TTL monitor removes it.

use std::sync::Arc;

use bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use time::OffsetDateTime;

use super::{error, from_bson_date, to_bson_date, MongoStore};
use crate::error::{Error, Result};
use crate::names::Username;
use crate::store::memory::stored_size;
use crate::store::update::{add_numbers, check_ops, conflict};
use crate::store::{Layout, SlateDoc, SlateKey, UpdateOp, Updated, MAX_DOCUMENT_BYTES};

/// Attempts of the compare-and-swap fallback of `put` (servers without pipeline updates).
const PUT_ATTEMPTS: u32 = 64;

/// Where one slate lives: its collection and its `_id`.
struct Target {
    coll: Collection<Document>,
    id: Bson,
}

impl MongoStore {
    fn target(&self, key: &SlateKey) -> Result<Target> {
        let prepared = self.prepared()?;
        Ok(match prepared.options.layout {
            Layout::CollectionPerUser => Target {
                coll: self.db.collection(key.user.as_str()),
                id: Bson::String(key.slate.as_str().to_owned()),
            },
            // `Layout` is non-exhaustive only for other crates.
            Layout::SingleCollection => Target {
                coll: prepared.slates.clone(),
                id: Bson::Document(doc! {"u": key.user.as_str(), "s": key.slate.as_str()}),
            },
        })
    }

    /// One `find` on `_id` with the expiry filter.
    pub(super) async fn do_get_slate(
        &self,
        key: &SlateKey,
        now: OffsetDateTime,
    ) -> Result<Option<SlateDoc>> {
        let t = self.target(key)?;
        let found = self
            .bounded(t.coll.find_one(live(&t.id, now)))
            .await?
            .map_err(error::map)?;
        found.map(slate_from_doc).transpose()
    }

    /// Replaces the whole document and bumps `_v` from the live version (1 if absent or
    /// expired). With pipeline updates: one `findAndModify`. Without (FerretDB 1.x): a read
    /// of the version and a compare-and-swap replacement, retried on conflict.
    pub(super) async fn do_put_slate(
        &self,
        key: &SlateKey,
        doc: &Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<i64> {
        check_size(key, doc)?;
        let caps = self.prepared()?.caps;
        if !caps.pipeline_updates {
            return self.put_by_swapping(key, doc, expires, now).await;
        }
        let t = self.target(key)?;
        // The new document: the user's fields taken literally (a "$x" string stays a string),
        // then `_id` kept, `_v` bumped if the stored document is live, else 1, `_expires`.
        let live_now = doc! {"$or": [
            {"$eq": [{"$ifNull": ["$_expires", Bson::Null]}, Bson::Null]},
            {"$gt": ["$_expires", to_bson_date(now)]},
        ]};
        let reserved = doc! {
            "_id": "$_id",
            "_v": {"$cond": [live_now, {"$add": [{"$ifNull": ["$_v", 0_i64]}, 1_i64]}, 1_i64]},
            "_expires": expires.map_or(Bson::String("$$REMOVE".into()), |e| to_bson_date(e).into()),
        };
        let mut attempt = 0;
        loop {
            // Cloned per attempt because the driver takes the pipeline by value; the retry
            // happens only after a duplicate-key race, so the copy is rarely made twice.
            let pipeline = vec![doc! {"$replaceWith": {"$mergeObjects": [
                {"$literal": doc.clone()},
                reserved.clone(),
            ]}}];
            let mut call = t
                .coll
                .find_one_and_update(doc! {"_id": t.id.clone()}, pipeline)
                .upsert(true)
                .return_document(ReturnDocument::After);
            if caps.find_and_modify_projection {
                call = call.projection(doc! {"_id": 0, "_v": 1});
            }
            match self.bounded(call).await? {
                Ok(Some(d)) => return version_of(&d),
                Ok(None) => return Err(error::malformed("an upsert returned no document")),
                // Two upserts of an absent slate raced; the loser retries and now matches.
                Err(e) if attempt == 0 && error::is_duplicate_key(&e) => attempt += 1,
                Err(e) => return Err(error::map(e)),
            }
        }
    }

    /// `put` for servers without pipeline updates: read the live version, replace only if
    /// it is unchanged, retry otherwise. Same result as the one-command form, two commands.
    async fn put_by_swapping(
        &self,
        key: &SlateKey,
        doc: &Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<i64> {
        let t = self.target(key)?;
        for _ in 0..PUT_ATTEMPTS {
            let current = self
                .bounded(t.coll.find_one(live(&t.id, now)).projection(doc! {"_v": 1}))
                .await?
                .map_err(error::map)?;
            let expected = current.as_ref().map(version_of).transpose()?;
            if let Some(v) = self.swap(&t, expected, doc, expires, now).await? {
                return Ok(v);
            }
        }
        Err(Error::Conflict {
            slate: key.slate.to_string(),
            attempts: PUT_ATTEMPTS,
        })
    }

    /// One `findAndModify`: the operators, `$inc: {_v: 1}` and `_expires` if given, on the
    /// live document, upserted if there is none. The reply carries `_v` and the `returning`
    /// field (only those where the server supports a projection).
    ///
    /// An expired document still in the collection makes the upsert fail with a duplicate
    /// key (the filter skips it, the insert collides with it): it is then removed by a
    /// conditional `delete` (only if still expired) and the update retried once, which
    /// starts a fresh document, as the contract asks. The same retry covers two upserts of
    /// an absent slate racing each other.
    pub(super) async fn do_update_slate(
        &self,
        key: &SlateKey,
        ops: &[UpdateOp],
        expires: Option<OffsetDateTime>,
        returning: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Updated> {
        let t = self.target(key)?;
        let caps = self.prepared()?.caps;
        let update = build_update(key, ops, expires)?;
        let fields: Vec<&str> = ops.iter().map(UpdateOp::field).collect();
        let mut attempt = 0;
        loop {
            let mut call = t
                .coll
                // Cloned per attempt: the driver takes the update by value.
                .find_one_and_update(live(&t.id, now), update.clone())
                .upsert(true)
                .return_document(ReturnDocument::After);
            if caps.find_and_modify_projection {
                let mut projection = doc! {"_id": 0, "_v": 1};
                if let Some(field) = returning {
                    projection.insert(field, 1);
                }
                call = call.projection(projection);
            }
            match self.bounded(call).await? {
                Ok(Some(d)) => {
                    return Ok(Updated {
                        version: version_of(&d)?,
                        value: returning.and_then(|f| get_path(&d, f)).cloned(),
                    })
                }
                Ok(None) => return Err(error::malformed("an upsert returned no document")),
                Err(e) if attempt == 0 && error::is_duplicate_key(&e) => {
                    attempt += 1;
                    self.delete_expired(&t, now).await?;
                }
                Err(e) => return Err(error::map_update(e, &fields)),
            }
        }
    }

    /// Compare-and-swap, one `update` command with a replacement document.
    pub(super) async fn do_replace_slate_if(
        &self,
        key: &SlateKey,
        expected: Option<i64>,
        doc: &Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Option<i64>> {
        check_size(key, doc)?;
        let t = self.target(key)?;
        self.swap(&t, expected, doc, expires, now).await
    }

    /// `expected = Some(v)`: replace the live document whose `_v` is `v`, no upsert.
    /// `expected = None`: replace an expired document or insert (upsert on a filter that a
    /// live document never matches); a live document makes the insert collide, which is
    /// the "version did not match" answer.
    async fn swap(
        &self,
        t: &Target,
        expected: Option<i64>,
        doc: &Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Option<i64>> {
        let version = expected.unwrap_or(0) + 1;
        // The stored document is the caller's plus the reserved fields: a copy is needed.
        let mut replacement = doc.clone();
        replacement.insert("_v", version);
        if let Some(e) = expires {
            replacement.insert("_expires", to_bson_date(e));
        }
        let result = match expected {
            Some(v) => {
                let mut filter = live(&t.id, now);
                filter.insert("_v", v);
                self.bounded(t.coll.replace_one(filter, replacement))
                    .await?
            }
            None => {
                let filter = doc! {"_id": t.id.clone(), "_expires": {"$lte": to_bson_date(now)}};
                self.bounded(t.coll.replace_one(filter, replacement).upsert(true))
                    .await?
            }
        };
        match result {
            Ok(r) if r.matched_count == 1 || r.upserted_id.is_some() => Ok(Some(version)),
            Ok(_) => Ok(None),
            Err(e) if expected.is_none() && error::is_duplicate_key(&e) => Ok(None),
            Err(e) => Err(error::map(e)),
        }
    }

    /// One `delete` on `_id` with the expiry filter: reports whether a live slate was
    /// deleted. An expired document is left to the TTL index (single-collection layout) or
    /// to the next write of that slate, which replaces it.
    pub(super) async fn do_delete_slate(
        &self,
        key: &SlateKey,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let t = self.target(key)?;
        let result = self
            .bounded(t.coll.delete_one(live(&t.id, now)))
            .await?
            .map_err(error::map)?;
        Ok(result.deleted_count == 1)
    }

    /// Single collection: one `delete` of the `_id` range `{u: user, s: *}` (served by the
    /// `_id` index). Collection per user: one `drop`.
    pub(super) async fn do_delete_user_slates(&self, user: &Username) -> Result<()> {
        let prepared = self.prepared()?;
        match prepared.options.layout {
            Layout::CollectionPerUser => {
                let coll = self.db.collection::<Document>(user.as_str());
                self.bounded(coll.drop()).await?.map_err(error::map)?;
            }
            Layout::SingleCollection => {
                // `_id` documents compare field by field, and strings sort before documents:
                // {u} < {u, s: <any string>} < {u, s: {}}. The range uses the `_id` index;
                // the equality on `_id.u` keeps the filter exact whatever the server does.
                let filter = doc! {
                    "_id": {
                        "$gte": {"u": user.as_str()},
                        "$lt": {"u": user.as_str(), "s": {}},
                    },
                    "_id.u": user.as_str(),
                };
                self.bounded(prepared.slates.delete_many(filter))
                    .await?
                    .map_err(error::map)?;
            }
        }
        Ok(())
    }

    /// Removes the document of `t` only if it has expired.
    async fn delete_expired(&self, t: &Target, now: OffsetDateTime) -> Result<()> {
        let filter = doc! {"_id": t.id.clone(), "_expires": {"$lte": to_bson_date(now)}};
        self.bounded(t.coll.delete_one(filter))
            .await?
            .map_err(error::map)?;
        Ok(())
    }
}

/// `{_id, <live>}`: the document of `id`, if it has not expired.
fn live(id: &Bson, now: OffsetDateTime) -> Document {
    doc! {
        "_id": id.clone(),
        "$or": [{"_expires": Bson::Null}, {"_expires": {"$gt": to_bson_date(now)}}],
    }
}

fn version_of(doc: &Document) -> Result<i64> {
    match doc.get("_v") {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        _ => Err(error::malformed("a slate document has no integer `_v`")),
    }
}

fn slate_from_doc(mut doc: Document) -> Result<SlateDoc> {
    doc.remove("_id");
    let version = version_of(&doc)?;
    doc.remove("_v");
    let expires = match doc.remove("_expires") {
        None | Some(Bson::Null) => None,
        Some(Bson::DateTime(d)) => Some(from_bson_date(d)?),
        Some(_) => return Err(error::malformed("a slate's `_expires` is not a date")),
    };
    Ok(SlateDoc {
        doc: Arc::new(doc),
        version,
        expires,
    })
}

fn get_path<'d>(doc: &'d Document, path: &str) -> Option<&'d Bson> {
    let mut segments = path.split('.');
    let mut current = doc.get(segments.next()?)?;
    for seg in segments {
        current = current.as_document()?.get(seg)?;
    }
    Some(current)
}

/// Refuses a whole document over the limit before sending it, with the memory store's
/// accounting, so that both stores refuse the same documents.
fn check_size(key: &SlateKey, doc: &Document) -> Result<()> {
    let size = stored_size(key, doc);
    if size > MAX_DOCUMENT_BYTES {
        return Err(error::too_large(size));
    }
    Ok(())
}

/// What one field receives in an update; several operators of one kind on one field are
/// merged the way applying them in order would.
enum FieldUpdate {
    Set(Bson),
    Unset,
    Inc(Bson),
    Push(Vec<Bson>),
    AddToSet(Vec<Bson>),
}

/// The update document of `ops`: `$set`, `$unset`, `$inc`, `$push` and `$addToSet` (each
/// with `$each`, so a value is never read as a modifier), plus `$inc: {_v: 1}` and
/// `_expires`.
///
/// MongoDB refuses two operators on one field, or on a field and its parent, in one update
/// (`ConflictingUpdateOperators`); that is refused here as an invalid field, before sending.
/// Repeats of one operator on one field are merged (last `set` wins, `inc`s add up, pushes
/// append in order).
fn build_update(
    key: &SlateKey,
    ops: &[UpdateOp],
    expires: Option<OffsetDateTime>,
) -> Result<Document> {
    check_ops(ops)?;
    let mut fields: Vec<(&str, FieldUpdate)> = Vec::with_capacity(ops.len());
    let mut value_bytes = 0;
    for op in ops {
        let path = op.field();
        if let Some(value) = op_value(op) {
            value_bytes += stored_size(key, &doc! {path: value.clone()});
        }
        let same = fields.iter_mut().find(|(p, _)| *p == path);
        match (same, op) {
            (None, _) => fields.push((path, FieldUpdate::from_op(op))),
            (Some((_, FieldUpdate::Set(old))), UpdateOp::Set(_, v)) => *old = v.clone(),
            (Some((_, FieldUpdate::Unset)), UpdateOp::Unset(_)) => {}
            (Some((_, FieldUpdate::Inc(old))), UpdateOp::Inc(_, by)) => {
                *old = add_numbers(old, by).ok_or_else(|| Error::TypeMismatch {
                    field: path.to_owned(),
                    reason: "inc needs numbers on both sides and must not overflow",
                })?;
            }
            (Some((_, FieldUpdate::Push(items))), UpdateOp::Push(_, v))
            | (Some((_, FieldUpdate::AddToSet(items))), UpdateOp::AddToSet(_, v)) => {
                items.push(v.clone())
            }
            (Some(_), _) => return Err(conflict()),
        }
    }
    // The values alone already exceed the limit: refuse before sending. (Growth past the
    // limit through small updates is refused by the server.)
    if value_bytes > MAX_DOCUMENT_BYTES {
        return Err(error::too_large(value_bytes));
    }
    let (mut set, mut unset, mut inc, mut push, mut add_to_set) = Default::default();
    for (path, update) in fields {
        let (target, value): (&mut Document, Bson) = match update {
            FieldUpdate::Set(v) => (&mut set, v),
            FieldUpdate::Unset => (&mut unset, Bson::String(String::new())),
            FieldUpdate::Inc(by) => (&mut inc, by),
            FieldUpdate::Push(items) => (&mut push, doc! {"$each": items}.into()),
            FieldUpdate::AddToSet(items) => (&mut add_to_set, doc! {"$each": items}.into()),
        };
        target.insert(path, value);
    }
    if let Some(e) = expires {
        set.insert("_expires", to_bson_date(e));
    }
    inc.insert("_v", 1_i64);
    let mut update = Document::new();
    for (op, fields) in [
        ("$set", set),
        ("$unset", unset),
        ("$inc", inc),
        ("$push", push),
        ("$addToSet", add_to_set),
    ] {
        if !fields.is_empty() {
            update.insert(op, fields);
        }
    }
    Ok(update)
}

impl FieldUpdate {
    fn from_op(op: &UpdateOp) -> Self {
        match op {
            UpdateOp::Set(_, v) => FieldUpdate::Set(v.clone()),
            UpdateOp::Unset(_) => FieldUpdate::Unset,
            UpdateOp::Inc(_, by) => FieldUpdate::Inc(by.clone()),
            UpdateOp::Push(_, v) => FieldUpdate::Push(vec![v.clone()]),
            UpdateOp::AddToSet(_, v) => FieldUpdate::AddToSet(vec![v.clone()]),
            // `UpdateOp` is non-exhaustive only for other crates.
        }
    }
}

fn op_value(op: &UpdateOp) -> Option<&Bson> {
    match op {
        UpdateOp::Set(_, v) | UpdateOp::Push(_, v) | UpdateOp::AddToSet(_, v) => Some(v),
        UpdateOp::Unset(_) | UpdateOp::Inc(..) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::NameKind;
    use crate::names::SlateName;

    fn key() -> SlateKey {
        SlateKey::new(Username::new("ada").unwrap(), SlateName::new("w").unwrap())
    }

    #[test]
    fn update_document_shape() {
        let ops = [
            UpdateOp::Set("step".into(), Bson::from("review")),
            UpdateOp::Inc("hits".into(), Bson::Int64(1)),
            UpdateOp::Push("ids".into(), Bson::Int32(5)),
            UpdateOp::Push("ids".into(), Bson::Int32(6)),
            UpdateOp::Inc("hits".into(), Bson::Int64(2)),
            UpdateOp::Unset("old.x".into()),
        ];
        let u = build_update(&key(), &ops, None).unwrap();
        assert_eq!(
            u,
            doc! {
                "$set": {"step": "review"},
                "$unset": {"old.x": ""},
                "$inc": {"hits": 3_i64, "_v": 1_i64},
                "$push": {"ids": {"$each": [5, 6]}},
            }
        );
        let u = build_update(&key(), &[], None).unwrap();
        assert_eq!(u, doc! {"$inc": {"_v": 1_i64}});
    }

    #[test]
    fn conflicting_operators_are_refused_before_sending() {
        for ops in [
            vec![
                UpdateOp::Set("a".into(), Bson::Int32(1)),
                UpdateOp::Inc("a".into(), Bson::Int32(1)),
            ],
            vec![
                UpdateOp::Set("a".into(), Bson::Int32(1)),
                UpdateOp::Set("a.b".into(), Bson::Int32(1)),
            ],
        ] {
            assert!(matches!(
                build_update(&key(), &ops, None),
                Err(Error::InvalidName {
                    kind: NameKind::Field,
                    ..
                })
            ));
        }
    }

    #[test]
    fn oversized_values_are_refused_before_sending() {
        let big = "x".repeat(MAX_DOCUMENT_BYTES);
        let ops = [UpdateOp::Set("blob".into(), Bson::String(big))];
        assert!(matches!(
            build_update(&key(), &ops, None),
            Err(Error::DocumentTooLarge { .. })
        ));
    }
}
