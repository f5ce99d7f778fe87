//! The `_auth` queries: one command each, filtered on the token hash (`_id`).

use bson::{doc, Bson, Document};
use time::OffsetDateTime;

use super::{error, from_bson_date, to_bson_date, MongoStore};
use crate::error::Result;
use crate::names::Username;
use crate::store::TokenRecord;
use crate::token::TokenHash;

impl MongoStore {
    pub(super) async fn do_insert_token(&self, record: &TokenRecord) -> Result<()> {
        let auth = &self.prepared()?.auth;
        let mut doc = doc! {
            "_id": record.hash.to_hex(),
            "user": record.user.as_str(),
            "created": to_bson_date(record.created),
            "expires": to_bson_date(record.expires),
        };
        if let Some(renewed) = record.renewed {
            doc.insert("renewed", to_bson_date(renewed));
        }
        self.bounded(auth.insert_one(doc))
            .await?
            .map_err(error::map)?;
        Ok(())
    }

    /// One `find` on `_id` with `expires > now`: an expired token is refused at once,
    /// whatever the TTL monitor has done.
    pub(super) async fn do_find_token(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>> {
        let auth = &self.prepared()?.auth;
        let filter = doc! {"_id": hash.to_hex(), "expires": {"$gt": to_bson_date(now)}};
        let found = self
            .bounded(auth.find_one(filter))
            .await?
            .map_err(error::map)?;
        found.map(|d| token_from_doc(*hash, &d)).transpose()
    }

    /// One `update` filtered on `_id` and on the expiry the caller read; never an upsert,
    /// so it cannot bring back a token that a logout deleted, nor undo a rotation's grace.
    pub(super) async fn do_renew_token(
        &self,
        hash: &TokenHash,
        previous: OffsetDateTime,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let auth = &self.prepared()?.auth;
        let filter = doc! {
            "_id": hash.to_hex(),
            "expires": {"$eq": to_bson_date(previous), "$gt": to_bson_date(now)},
        };
        let update =
            doc! {"$set": {"expires": to_bson_date(expires), "renewed": to_bson_date(now)}};
        let result = self
            .bounded(auth.update_one(filter, update))
            .await?
            .map_err(error::map)?;
        Ok(result.matched_count == 1)
    }

    /// One `update` with `$min`: lowers `expires`, never raises it, never creates.
    pub(super) async fn do_expire_token_at(
        &self,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let auth = &self.prepared()?.auth;
        let update = doc! {"$min": {"expires": to_bson_date(at)}};
        let result = self
            .bounded(auth.update_one(doc! {"_id": hash.to_hex()}, update))
            .await?
            .map_err(error::map)?;
        Ok(result.matched_count == 1)
    }

    pub(super) async fn do_delete_token(&self, hash: &TokenHash) -> Result<bool> {
        let auth = &self.prepared()?.auth;
        let result = self
            .bounded(auth.delete_one(doc! {"_id": hash.to_hex()}))
            .await?
            .map_err(error::map)?;
        Ok(result.deleted_count == 1)
    }

    /// One `delete` of every token of `user` (served by the `{user: 1}` index).
    pub(super) async fn do_delete_user_tokens(&self, user: &Username) -> Result<u64> {
        let auth = &self.prepared()?.auth;
        let result = self
            .bounded(auth.delete_many(doc! {"user": user.as_str()}))
            .await?
            .map_err(error::map)?;
        Ok(result.deleted_count)
    }
}

fn token_from_doc(hash: TokenHash, doc: &Document) -> Result<TokenRecord> {
    let date = |field: &str| match doc.get(field) {
        Some(Bson::DateTime(d)) => from_bson_date(*d).map(Some),
        None | Some(Bson::Null) => Ok(None),
        Some(_) => Err(error::malformed("an _auth date field is not a date")),
    };
    let user = doc
        .get_str("user")
        .ok()
        .and_then(|u| Username::new(u).ok())
        .ok_or_else(|| error::malformed("an _auth document has no valid `user`"))?;
    Ok(TokenRecord {
        hash,
        user,
        created: date("created")?.ok_or_else(|| error::malformed("_auth without `created`"))?,
        expires: date("expires")?.ok_or_else(|| error::malformed("_auth without `expires`"))?,
        renewed: date("renewed")?,
    })
}
