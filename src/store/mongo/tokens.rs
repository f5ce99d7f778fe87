//! The `_auth` queries: one command each, filtered on the token hash (`_id`).

use bson::{doc, Bson, Document};
use time::OffsetDateTime;

use std::sync::Arc;

use super::invalidation::MongoChannel;
use super::{error, from_bson_date, to_bson_date, MongoStore};
use crate::device_id::DeviceId;
use crate::error::Result;
use crate::names::Username;
use crate::store::{InvalidationChannel, StoreFuture, StoreOptions, TokenRecord, TokenStore};
use crate::token::TokenHash;

impl TokenStore for MongoStore {
    fn prepare_tokens<'a>(&'a self, options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        Box::pin(self.prepare_token_collection(options))
    }

    fn insert_token<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let auth = self.auth()?;
            let mut doc = doc! {
                "_id": record.hash.to_hex(),
                "user": record.user.as_str(),
                "created": to_bson_date(record.created),
                "expires": to_bson_date(record.expires),
                "seen": to_bson_date(record.last_seen),
                "label": record.label.as_str(),
            };
            if let Some(device) = &record.device {
                doc.insert("device", device.as_str());
            }
            if let Some(ip) = &record.ip {
                doc.insert("ip", ip.as_str());
            }
            if let Some(renewed) = record.renewed {
                doc.insert("renewed", to_bson_date(renewed));
            }
            if let Some(rotated) = record.rotated {
                doc.insert("rotated", to_bson_date(rotated));
            }
            (auth.insert_one(doc)).await.map_err(error::map)?;
            Ok(())
        })
    }

    /// One `find` on `_id` alone (a point read by the `_id` index), then `expires > now` checked
    /// here: an expired token is refused at once, whatever the TTL monitor has done.
    fn find_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<TokenRecord>> {
        Box::pin(async move {
            let auth = self.auth()?;
            let found = limited!(self, auth.find_one(doc! {"_id": hash.to_hex()}))
                .await
                .map_err(error::map)?;
            let record = found.map(|d| token_from_doc(*hash, &d)).transpose()?;
            Ok(record.filter(|r| r.expires > now))
        })
    }

    /// One `update` filtered on `_id`, on the expiry the caller read and on "not rotated
    /// out"; never an upsert, so it cannot bring back a token that a logout deleted, nor
    /// undo a rotation.
    fn renew_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        previous: OffsetDateTime,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let auth = self.auth()?;
            let filter = doc! {
                "_id": hash.to_hex(),
                "expires": {"$eq": to_bson_date(previous), "$gt": to_bson_date(now)},
                "rotated": {"$exists": false},
            };
            let update =
                doc! {"$set": {"expires": to_bson_date(expires), "renewed": to_bson_date(now)}};
            let result = (auth.update_one(filter, update))
                .await
                .map_err(error::map)?;
            Ok(result.matched_count == 1)
        })
    }

    /// One `update`: `$min` lowers `expires` (never raises it) and `$set` marks the token
    /// rotated out; never an upsert.
    fn retire_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let auth = self.auth()?;
            let update = doc! {
                "$min": {"expires": to_bson_date(at)},
                "$set": {"rotated": to_bson_date(now)},
            };
            let result = (auth.update_one(doc! {"_id": hash.to_hex()}, update))
                .await
                .map_err(error::map)?;
            Ok(result.matched_count == 1)
        })
    }

    fn delete_token<'a>(&'a self, hash: &'a TokenHash) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let auth = self.auth()?;
            let result = (auth.delete_one(doc! {"_id": hash.to_hex()}))
                .await
                .map_err(error::map)?;
            Ok(result.deleted_count == 1)
        })
    }

    /// One `delete` of every token of `user` (served by the `{user: 1}` index).
    fn delete_user_tokens<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let auth = self.auth()?;
            let result = (auth.delete_many(doc! {"user": user.as_str()}))
                .await
                .map_err(error::map)?;
            Ok(result.deleted_count)
        })
    }

    /// One `find` on `user` (the `{user: 1}` index) and `expires > now`.
    fn user_tokens<'a>(
        &'a self,
        user: &'a Username,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<TokenRecord>> {
        Box::pin(async move {
            let auth = self.auth()?;
            let filter = doc! {"user": user.as_str(), "expires": {"$gt": to_bson_date(now)}};
            let mut cursor = limited!(self, auth.find(filter))
                .await
                .map_err(error::map)?;
            let mut records = Vec::new();
            while cursor.advance().await.map_err(error::map)? {
                let doc = cursor.deserialize_current().map_err(error::map)?;
                let hash = doc
                    .get_str("_id")
                    .ok()
                    .and_then(TokenHash::from_hex)
                    .ok_or_else(|| error::malformed("_auth", "an `_id` is not a token hash"))?;
                records.push(token_from_doc(hash, &doc)?);
            }
            Ok(records)
        })
    }

    /// One `update` filtered on `_id`, `expires > now` and either `seen <= not_after` or (to
    /// assign an id) no `device`; never an upsert, so it cannot bring back a deleted token.
    fn touch_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        assign: Option<&'a DeviceId>,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let auth = self.auth()?;
            let mut filter = doc! {"_id": hash.to_hex(), "expires": {"$gt": to_bson_date(now)}};
            let mut set = doc! {"seen": to_bson_date(now)};
            match assign {
                None => {
                    filter.insert("seen", doc! {"$lte": to_bson_date(not_after)});
                }
                Some(device) => {
                    filter.insert("device", doc! {"$exists": false});
                    set.insert("device", device.as_str());
                }
            }
            let result = (auth.update_one(filter, doc! {"$set": set}))
                .await
                .map_err(error::map)?;
            Ok(result.matched_count == 1)
        })
    }

    /// One `findAndModify` (remove) filtered on `user` and `device` together.
    fn delete_device<'a>(
        &'a self,
        user: &'a Username,
        device: &'a DeviceId,
    ) -> StoreFuture<'a, Option<TokenHash>> {
        Box::pin(async move {
            let auth = self.auth()?;
            let filter = doc! {"user": user.as_str(), "device": device.as_str()};
            // The whole (small) record comes back: FerretDB 1.x does not implement a
            // projection (`fields`) on findAndModify.
            let deleted = limited!(self, auth.find_one_and_delete(filter))
                .await
                .map_err(error::map)?;
            deleted
                .map(|d| {
                    d.get_str("_id")
                        .ok()
                        .and_then(TokenHash::from_hex)
                        .ok_or_else(|| error::malformed("_auth", "an `_id` is not a token hash"))
                })
                .transpose()
        })
    }

    /// One `delete` of every token of `user` but `keep` (served by the `{user: 1}` index).
    fn delete_user_tokens_except<'a>(
        &'a self,
        user: &'a Username,
        keep: &'a TokenHash,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let auth = self.auth()?;
            let filter = doc! {"user": user.as_str(), "_id": {"$ne": keep.to_hex()}};
            let result = (auth.delete_many(filter)).await.map_err(error::map)?;
            Ok(result.deleted_count)
        })
    }
    /// The capped collection [`INVALIDATIONS_COLLECTION`](crate::store::INVALIDATIONS_COLLECTION),
    /// tailed by every cache on this store.
    fn invalidation_channel(&self) -> Option<Arc<dyn InvalidationChannel>> {
        let channel = self.prepared.channel.get_or_init(|| {
            Arc::new(MongoChannel::new(
                self.db.clone(),
                self.tail_mode,
                Arc::clone(&self.prepared.server),
            ))
        });
        Some(Arc::new(Arc::clone(channel)))
    }
}

fn token_from_doc(hash: TokenHash, doc: &Document) -> Result<TokenRecord> {
    let bad = |reason| error::malformed("_auth", reason);
    let date = |field: &str| match doc.get(field) {
        Some(Bson::DateTime(d)) => from_bson_date(*d)
            .map(Some)
            .map_err(|_| bad("a date is out of range")),
        None | Some(Bson::Null) => Ok(None),
        Some(_) => Err(bad("a date field is not a date")),
    };
    let user = doc
        .get_str("user")
        .ok()
        .and_then(|u| Username::new(u).ok())
        .ok_or_else(|| bad("no valid `user`"))?;
    let text = |field: &str| match doc.get(field) {
        Some(Bson::String(s)) => Ok(Some(s.as_str())),
        None | Some(Bson::Null) => Ok(None),
        Some(_) => Err(bad("a device field is not a string")),
    };
    let created = date("created")?.ok_or_else(|| bad("no `created`"))?;
    let renewed = date("renewed")?;
    // Records written before devices existed have none of the device fields: they read
    // with defaults, and their first request gives them an id (`touch_token`).
    let device = match text("device")? {
        Some(id) => Some(DeviceId::parse(id).ok_or_else(|| bad("`device` is not a device id"))?),
        None => None,
    };
    Ok(TokenRecord {
        hash,
        user,
        created,
        expires: date("expires")?.ok_or_else(|| bad("no `expires`"))?,
        renewed,
        rotated: date("rotated")?,
        device,
        last_seen: date("seen")?.or(renewed).unwrap_or(created),
        label: text("label")?.unwrap_or_default().to_owned(),
        ip: text("ip")?.map(str::to_owned),
    })
}
