//! The slate queries: where a slate lives, the expiry filter, and the update documents.
//!
//! A slate document is the user's fields plus `_id`, `_v` (version, `i64`) and, if it
//! expires, `_expires`. "Live" means no `_expires` or `_expires > now`; every read and every
//! conditional write filters on it, so an expired document behaves as absent even before
//! the TTL monitor removes it.

use bson::{doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use time::OffsetDateTime;

use super::{error, from_bson_date, to_bson_date, MongoStore};
use crate::error::{Error, Result};
use crate::names::Username;
use crate::store::interpreter::{apply_update, integer_at, integer_or_absent};
use crate::store::size::{check_size, check_values};
use crate::store::update::{check_counter, check_ops, merge, FieldUpdate};
use crate::store::{
    fresh_version, Expiry, Layout, SharedRawDocument, SlateDoc, SlateKey, SlateStore, StoreFuture,
    StoreOptions, UpdateOp, Updated,
};

/// Attempts of an operation whose upsert keeps colliding with another writer or with an
/// expired document (each collision is resolved before the next attempt, so two or three
/// suffice in practice; the bound only stops a pathological loop).
const WRITE_ATTEMPTS: u32 = 16;

/// Where one slate lives: its collection and its `_id`.
struct Target {
    coll: Collection<Document>,
    id: Bson,
}

/// A stored slate document read with a point read, as the server sent it (raw BSON: the
/// user's fields are copied out as bytes, never parsed into a `Document`), before the
/// expiry check.
struct Stored {
    doc: RawDocumentBuf,
}

impl Stored {
    /// The document as a slate, if it has not expired; malformed reserved fields are
    /// [`Error::MalformedDocument`].
    fn live(self, key: &SlateKey, now: OffsetDateTime) -> Result<Option<SlateDoc>> {
        let slate = slate_from_raw(key, &self.doc)?;
        Ok(slate.expires.is_none_or(|e| e > now).then_some(slate))
    }
}

impl MongoStore {
    /// The collection of `user`'s slates in the per-user layout: `<prefix><username>`.
    fn user_collection(&self, options: &StoreOptions, user: &Username) -> Collection<Document> {
        self.db
            .collection(&format!("{}{}", options.user_collection_prefix, user))
    }

    /// The collection of every visitor's guest slates (issue 14), in both layouts.
    fn guest_collection(&self, options: &StoreOptions) -> Collection<Document> {
        self.db.collection(&options.guest_collection)
    }

    fn target(&self, key: &SlateKey) -> Result<Target> {
        let prepared = self.slate_settings()?;
        if let Some(hash) = key.user.guest_hash() {
            // Guest slates, in both layouts: one collection for every visitor.
            return Ok(Target {
                coll: self.guest_collection(&prepared.options),
                id: Bson::String(format!("{hash}${}", key.slate)),
            });
        }
        Ok(match prepared.options.layout {
            Layout::CollectionPerUser => Target {
                coll: self.user_collection(&prepared.options, &key.user),
                id: Bson::String(key.slate.as_str().to_owned()),
            },
            // `Layout` is non-exhaustive only for other crates.
            Layout::SingleCollection => Target {
                coll: prepared.coll.clone(),
                id: Bson::String(single_collection_id(key)),
            },
        })
    }

    /// One `find` on `_id` alone (a point read); the expiry is checked here, so an expired
    /// document reads as absent whatever the TTL monitor has done.
    async fn read(&self, t: &Target) -> Result<Option<Stored>> {
        let coll = t.coll.clone_with_type::<RawDocumentBuf>();
        let found = limited!(self, coll.find_one(doc! {"_id": t.id.clone()}))
            .await
            .map_err(error::map)?;
        Ok(found.map(|doc| Stored { doc }))
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
        let version = fresh_version();
        let replacement = stored_doc(doc, version, expires);
        let result = match expected {
            Some(v) => {
                let mut filter = live(&t.id, now);
                filter.insert("_v", v);
                (t.coll.replace_one(filter, replacement)).await
            }
            None => {
                let filter = doc! {"_id": t.id.clone(), "_expires": {"$lte": to_bson_date(now)}};
                (t.coll.replace_one(filter, replacement).upsert(true)).await
            }
        };
        match result {
            Ok(r) if r.matched_count == 1 || r.upserted_id.is_some() => Ok(Some(version)),
            Ok(_) => Ok(None),
            Err(e) if expected.is_none() && error::is_duplicate_key(&e) => Ok(None),
            Err(e) => Err(error::map(e)),
        }
    }

    /// Removes the document of `t` only if it has expired.
    async fn delete_expired(&self, t: &Target, now: OffsetDateTime) -> Result<()> {
        let filter = doc! {"_id": t.id.clone(), "_expires": {"$lte": to_bson_date(now)}};
        (t.coll.delete_one(filter)).await.map_err(error::map)?;
        Ok(())
    }
}

impl SlateStore for MongoStore {
    fn prepare_slates<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        Box::pin(self.prepare_slate_collections(options))
    }

    fn get_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        Box::pin(async move {
            let t = self.target(key)?;
            match self.read(&t).await? {
                None => Ok(None),
                Some(stored) => stored.live(key, now),
            }
        })
    }

    /// Replaces the whole document with a fresh version.
    ///
    /// With an expiry: one `findAndModify` with a replacement document on `_id`, upsert.
    /// Keeping the expiry: the same command filtered on "has no `_expires`", which serves a
    /// permanent or absent slate in one command; an expiring slate makes the upsert collide,
    /// and is then replaced by compare-and-swap carrying its expiry (or, if it had expired,
    /// removed and written fresh).
    fn put_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        doc: &'a Document,
        expiry: Expiry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            check_size(key, doc)?;
            let t = self.target(key)?;
            for _ in 0..WRITE_ATTEMPTS {
                let version = fresh_version();
                let (filter, expires) = match expiry {
                    Expiry::At(at) => (doc! {"_id": t.id.clone()}, Some(at)),
                    Expiry::Keep => (
                        doc! {"_id": t.id.clone(), "_expires": {"$exists": false}},
                        None,
                    ),
                };
                let call = t
                    .coll
                    .find_one_and_replace(filter, stored_doc(doc, version, expires))
                    .upsert(true);
                match limited!(self, call).await {
                    Ok(_) => return Ok(version),
                    Err(e) if error::is_duplicate_key(&e) => {}
                    Err(e) => return Err(error::map(e)),
                }
                // Collision: two upserts of an absent slate raced, or (keeping the expiry) the
                // slate has an `_expires`.
                match self.read(&t).await? {
                    None => continue,
                    Some(stored) => match stored.live(key, now) {
                        Ok(None) => self.delete_expired(&t, now).await?,
                        Ok(Some(current)) if expiry == Expiry::Keep => {
                            let expected = Some(current.version);
                            if let Some(v) =
                                self.swap(&t, expected, doc, current.expires, now).await?
                            {
                                return Ok(v);
                            }
                        }
                        Ok(Some(_)) => {}
                        // Edited by hand into a shape slates cannot read: a `put` replaces the
                        // whole document anyway, so it repairs it (its odd expiry is not kept).
                        Err(Error::MalformedDocument { .. }) => {
                            let replacement = stored_doc(doc, version, expires);
                            (t.coll.replace_one(doc! {"_id": t.id.clone()}, replacement))
                                .await
                                .map_err(error::map)?;
                            return Ok(version);
                        }
                        Err(e) => return Err(e),
                    },
                }
            }
            Err(collided(key))
        })
    }

    /// One command: the operators, `$set: {_v: <fresh>}` and `_expires` if given, on the
    /// live document, upserted if there is none. Without a counter it is an `update` (no
    /// document comes back); with one, a `findAndModify` returning the document after the
    /// update, and filtered so that it matches only if the counter field is absent or an
    /// integer: an `inc` that would leave a non-integer writes nothing.
    ///
    /// An upsert that collides (an expired document still in the collection, two upserts
    /// racing, or a counter of the wrong type) is resolved by reading the document: an
    /// expired one is removed by a conditional `delete` and the update retried, a race is
    /// retried, a wrong counter is [`Error::TypeMismatch`]. The loop is bounded.
    fn update_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        ops: &'a [UpdateOp],
        expiry: Expiry,
        counter: Option<&'a str>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Updated> {
        Box::pin(async move {
            let t = self.target(key)?;
            let fields: Vec<&str> = ops.iter().map(UpdateOp::field).collect();
            let mut filter = live(&t.id, now);
            if let Some(field) = counter {
                check_counter(&merge(ops)?, field)?;
                // Positive form: FerretDB 1.x knows no `decimal` type alias, and this also keeps
                // strings and other types out before `$inc` would refuse them.
                let integer = doc! {"$or": [
                    {field: {"$exists": false}},
                    {field: {"$type": ["int", "long"]}},
                ]};
                filter.insert("$and", vec![integer]);
            }
            for _ in 0..WRITE_ATTEMPTS {
                let version = fresh_version();
                let update = build_update(key, ops, expiry, version)?;
                let result = match counter {
                    None => (t.coll.update_one(filter.clone(), update).upsert(true))
                        .await
                        .map(|_| None),
                    Some(_) => {
                        let call = t
                            .coll
                            .find_one_and_update(filter.clone(), update)
                            .upsert(true)
                            .return_document(ReturnDocument::After);
                        limited!(self, call).await
                    }
                };
                match result {
                    Ok(after) => {
                        let counter = match (counter, after) {
                            (None, _) => None,
                            (Some(field), Some(d)) => Some(integer_at(&d, field)?),
                            (Some(_), None) => {
                                return Err(error::malformed(
                                    key.slate.as_str(),
                                    "an upsert returned no document",
                                ))
                            }
                        };
                        return Ok(Updated { version, counter });
                    }
                    Err(e) if error::is_duplicate_key(&e) => {}
                    Err(e) => return Err(error::map_update(e, &fields)),
                }
                match self.read(&t).await? {
                    None => continue,
                    Some(stored) => match stored.live(key, now)? {
                        None => self.delete_expired(&t, now).await?,
                        Some(current) => {
                            if let Some(field) = counter {
                                let mut probe = current.doc.to_document()?;
                                integer_or_absent(&probe, field)?;
                                // The filter reads a path through an array as the elements'
                                // fields, the update refuses it: what would the update do?
                                apply_update(&mut probe, ops)?;
                            }
                        }
                    },
                }
            }
            Err(collided(key))
        })
    }

    /// Compare-and-swap, one `update` command with a replacement document.
    fn replace_slate_if<'a>(
        &'a self,
        key: &'a SlateKey,
        expected: Option<i64>,
        doc: &'a Document,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<i64>> {
        Box::pin(async move {
            check_size(key, doc)?;
            let t = self.target(key)?;
            self.swap(&t, expected, doc, expires, now).await
        })
    }

    /// One `delete` on `_id` with the expiry filter: reports whether a live slate was
    /// deleted. An expired document is left to the TTL index (single-collection layout) or
    /// to the next write of that slate, which replaces it.
    fn delete_slate<'a>(&'a self, key: &'a SlateKey, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let t = self.target(key)?;
            let result = (t.coll.delete_one(live(&t.id, now)))
                .await
                .map_err(error::map)?;
            Ok(result.deleted_count == 1)
        })
    }

    /// Single collection: one `delete` of the user's `_id` range (served by the
    /// `_id` index). Collection per user: one `drop`.
    fn delete_user_slates<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let prepared = self.slate_settings()?;
            if let Some(hash) = user.guest_hash() {
                // A guest's slates: its `_id` range in the guest collection (never a drop).
                let filter = doc! {"_id": {"$gte": format!("{hash}$"), "$lt": format!("{hash}%")}};
                let coll = self.guest_collection(&prepared.options);
                (coll.delete_many(filter)).await.map_err(error::map)?;
                return Ok(());
            }
            match prepared.options.layout {
                Layout::CollectionPerUser => {
                    // Only ever a collection of slates' own prefix: never one of the app's.
                    let coll = self.user_collection(&prepared.options, user);
                    (coll.drop()).await.map_err(error::map)?;
                }
                Layout::SingleCollection => {
                    // A user's `_id`s are exactly the strings from "<user>$" (inclusive) to
                    // "<user>%" (exclusive): neither part holds a `$`, and `%` follows `$` in
                    // byte order. The range uses the `_id` index.
                    let filter = doc! {
                        "_id": {"$gte": format!("{user}$"), "$lt": format!("{user}%")},
                    };
                    (prepared.coll.delete_many(filter))
                        .await
                        .map_err(error::map)?;
                }
            }
            Ok(())
        })
    }

    /// One `findAndModify` with `remove: true` (`findOneAndDelete`) on the live document:
    /// the server reads and deletes it in one step, so two takes never both get it.
    fn take_slate<'a>(
        &'a self,
        key: &'a SlateKey,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SlateDoc>> {
        Box::pin(async move {
            let t = self.target(key)?;
            let coll = t.coll.clone_with_type::<RawDocumentBuf>();
            let taken = limited!(self, coll.find_one_and_delete(live(&t.id, now)))
                .await
                .map_err(error::map)?;
            match taken {
                None => Ok(None),
                Some(doc) => Stored { doc }.live(key, now),
            }
        })
    }
}

/// The `_id` of a slate in [`Layout::SingleCollection`]: `"<user>$<slate>"`. A string, so
/// that reading a slate is a lookup by the `_id` index on every server (FerretDB 1.x pushes
/// down only a filter that is exactly `{_id: <string>}`; a document `_id` is filtered by
/// reading the whole collection). Unambiguous, because neither usernames nor
/// slate names may contain `$`; a user's slates are one contiguous `_id` range, so the
/// collection can be sharded on `{_id: 1}` with a user's slates together.
pub(super) fn single_collection_id(key: &SlateKey) -> String {
    format!("{}${}", key.user, key.slate)
}

/// The error when every attempt of a write collided with another writer.
fn collided(key: &SlateKey) -> Error {
    Error::Conflict {
        slate: key.slate.to_string(),
        attempts: WRITE_ATTEMPTS,
    }
}

/// The stored form of a slate: the user's fields, `_v` and `_expires` if it expires.
fn stored_doc(doc: &Document, version: i64, expires: Option<OffsetDateTime>) -> Document {
    // The stored document is the caller's plus the reserved fields: a copy is needed.
    let mut stored = doc.clone();
    stored.insert("_v", version);
    if let Some(e) = expires {
        stored.insert("_expires", to_bson_date(e));
    }
    stored
}

/// `{_id, <live>}`: the document of `id`, if it has not expired.
fn live(id: &Bson, now: OffsetDateTime) -> Document {
    doc! {
        "_id": id.clone(),
        "$or": [{"_expires": Bson::Null}, {"_expires": {"$gt": to_bson_date(now)}}],
    }
}

/// A stored `_v`: an integer, or a double with an integral value (what `$inc: {_v: 1}` typed
/// in the mongo shell leaves). `None` for anything else.
fn version_of(value: RawBsonRef<'_>) -> Option<i64> {
    match value {
        RawBsonRef::Int64(v) => Some(v),
        RawBsonRef::Int32(v) => Some(i64::from(v)),
        RawBsonRef::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Some(d as i64),
        _ => None,
    }
}

/// The slate in a stored document: the user's fields (copied as bytes, in order), `_v` and
/// `_expires`; `_id` is left out.
fn slate_from_raw(key: &SlateKey, stored: &RawDocument) -> Result<SlateDoc> {
    let bad = |reason| error::malformed(key.slate.as_str(), reason);
    let mut doc = RawDocumentBuf::new();
    let (mut version, mut expires) = (None, None);
    for element in stored {
        let (name, value) = element.map_err(|_| bad("the stored document is not valid BSON"))?;
        match name {
            "_id" => {}
            "_v" => version = Some(value),
            "_expires" => expires = Some(value),
            _ => doc.append_ref(name, value),
        }
    }
    let version = version
        .and_then(version_of)
        .ok_or_else(|| bad("`_v` is missing or not an integer"))?;
    let expires = match expires {
        None | Some(RawBsonRef::Null) => None,
        Some(RawBsonRef::DateTime(d)) => {
            Some(from_bson_date(d).map_err(|_| bad("`_expires` is out of range"))?)
        }
        Some(_) => return Err(bad("`_expires` is not a date")),
    };
    Ok(SlateDoc {
        doc: SharedRawDocument::from(doc),
        version,
        expires,
    })
}

/// The update document of `ops`: `$set`, `$unset`, `$inc`, `$push` and `$addToSet` (each
/// with `$each`, so a value is never read as a modifier), plus `$set` of the fresh version
/// `_v` and of `_expires` when the expiry is set.
///
/// MongoDB refuses two operators on one field, or on a field and its parent, in one update
/// (`ConflictingUpdateOperators`); that is refused here, before sending.
/// Repeats of one operator on one field are merged (last `set` wins, `inc`s add up, pushes
/// append in order).
fn build_update(
    key: &SlateKey,
    ops: &[UpdateOp],
    expiry: Expiry,
    version: i64,
) -> Result<Document> {
    check_ops(ops)?;
    let fields = merge(ops)?;
    // The values alone already exceed the limit: refuse before sending. (Growth past the
    // limit through small updates is refused by the server.)
    check_values(key, ops)?;
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
    if let Expiry::At(e) = expiry {
        set.insert("_expires", to_bson_date(e));
    }
    set.insert("_v", version);
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let u = build_update(&key(), &ops, Expiry::Keep, 77).unwrap();
        assert_eq!(
            u,
            doc! {
                "$set": {"step": "review", "_v": 77_i64},
                "$unset": {"old.x": ""},
                "$inc": {"hits": 3_i64},
                "$push": {"ids": {"$each": [5, 6]}},
            }
        );
        let u = build_update(&key(), &[], Expiry::Keep, 5).unwrap();
        assert_eq!(u, doc! {"$set": {"_v": 5_i64}});
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
                build_update(&key(), &ops, Expiry::Keep, 1),
                Err(Error::ConflictingOperators { .. })
            ));
        }
    }

    #[test]
    fn oversized_values_are_refused_before_sending() {
        let big = "x".repeat(crate::store::MAX_DOCUMENT_BYTES);
        let ops = [UpdateOp::Set("blob".into(), Bson::String(big))];
        assert!(matches!(
            build_update(&key(), &ops, Expiry::Keep, 1),
            Err(Error::DocumentTooLarge { .. })
        ));
    }
}
