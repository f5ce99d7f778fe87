//! The invalidation channel of a `MongoStore`: a capped collection that every instance
//! appends its invalidations to and tails with a tailable `awaitData` cursor. No extra
//! infrastructure: it works on a standalone server, a replica set, and FerretDB.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use mongodb::Database;
use tokio::sync::OnceCell;

use super::error;
use crate::error::{Error, Result};
use crate::names::Username;
use crate::store::invalidation::{Freshness, Invalidation, InvalidationChannel, InvalidationSink};
use crate::store::StoreFuture;
use crate::token::TokenHash;

/// The capped collection the invalidations go through.
pub const INVALIDATIONS_COLLECTION: &str = "_invalidations";
/// Its size: 1 MiB, about 10,000 invalidations. An instance that falls further behind
/// loses its cursor, reconnects and drops its whole cache.
const CAPPED_BYTES: i64 = 1024 * 1024;
const CAPPED_DOCS: i64 = 10_000;
/// How long one `getMore` waits for new invalidations before it returns empty: also how
/// often an idle instance confirms that it is up to date.
pub const TAIL_AWAIT: Duration = Duration::from_millis(100);

/// The most invalidations one `getMore` of the tail returns. A reply with fewer drained the
/// cursor when it ran, so it confirms freshness; a full one may have left some behind, so
/// it confirms nothing (the next `getMore` reads on).
pub const TAIL_BATCH: usize = 100;
/// Pause before reopening a failed tail.
const RETRY: Duration = Duration::from_millis(100);

/// Publishes to and tails [`INVALIDATIONS_COLLECTION`].
///
/// Each invalidation is one document `{k: "t" | "u" | "p", v: <token hash hex or
/// username>}`. A subscriber opens a tailable `awaitData` cursor over the whole collection
/// (the first batch holds one document, so it is full, which FerretDB needs to keep the
/// cursor open: the collection always holds a seed document), drops its whole cache
/// (anything before the cursor may have been missed), then applies every document the
/// cursor returns. Each `getMore` that succeeds confirms freshness up to the instant it was
/// sent: every invalidation acknowledged before then is in its batch or an earlier one.
/// A failure or a closed cursor loses freshness (the cache stops serving) and the tail is
/// reopened.
pub(super) struct MongoChannel {
    db: Database,
    ready: OnceCell<()>,
}

impl MongoChannel {
    pub fn new(db: Database) -> Self {
        MongoChannel {
            db,
            ready: OnceCell::new(),
        }
    }

    /// Creates the capped collection and its seed document, once per channel.
    async fn ensure(&self) -> Result<()> {
        self.ready
            .get_or_try_init(|| async {
                let create = doc! {
                    "create": INVALIDATIONS_COLLECTION,
                    "capped": true,
                    "size": CAPPED_BYTES,
                    "max": CAPPED_DOCS,
                };
                match self.db.run_command(create).await {
                    Ok(_) => {}
                    // NamespaceExists: another instance (or an earlier run) created it.
                    Err(e) if error::code(&e) == Some(48) => {}
                    Err(e) => return Err(error::map(e)),
                }
                let coll = self.db.collection::<Document>(INVALIDATIONS_COLLECTION);
                if coll.find_one(doc! {}).await.map_err(error::map)?.is_none() {
                    coll.insert_one(doc! {"k": "seed"})
                        .await
                        .map_err(error::map)?;
                }
                Ok(())
            })
            .await
            .map(drop)
    }

    async fn tail(self: Arc<Self>, sink: Weak<dyn InvalidationSink>, freshness: Arc<Freshness>) {
        loop {
            if sink.strong_count() == 0 {
                return;
            }
            if let Err(e) = self.tail_once(&sink, &freshness).await {
                tracing::warn!(error = %e, "slates invalidation tail failed: the cache stops serving until it is back");
            }
            freshness.lose();
            tokio::time::sleep(RETRY).await;
        }
    }

    /// One cursor, from opening to failure (or the sink's end).
    async fn tail_once(
        &self,
        sink: &Weak<dyn InvalidationSink>,
        freshness: &Freshness,
    ) -> Result<()> {
        self.ensure().await?;
        let mut session = self.db.client().start_session().await.map_err(error::map)?;
        let find = doc! {
            "find": INVALIDATIONS_COLLECTION,
            "filter": {},
            "tailable": true,
            "awaitData": true,
            "batchSize": 1,
        };
        let reply = self
            .db
            .run_command(find)
            .session(&mut session)
            .await
            .map_err(error::map)?;
        let (mut id, first) = cursor(&reply, "firstBatch")?;
        {
            let Some(sink) = sink.upgrade() else {
                return Ok(());
            };
            sink.flush();
            apply(&*sink, first);
        }
        let await_ms = i64::try_from(TAIL_AWAIT.as_millis()).unwrap_or(100);
        while id != 0 {
            if sink.strong_count() == 0 {
                let kill = doc! {"killCursors": INVALIDATIONS_COLLECTION, "cursors": [id]};
                let _ = self.db.run_command(kill).session(&mut session).await;
                return Ok(());
            }
            let sent = Instant::now();
            let more = doc! {
                "getMore": id,
                "collection": INVALIDATIONS_COLLECTION,
                "batchSize": TAIL_BATCH as i64,
                "maxTimeMS": await_ms,
            };
            let reply = self
                .db
                .run_command(more)
                .session(&mut session)
                .await
                .map_err(error::map)?;
            let (next, batch) = cursor(&reply, "nextBatch")?;
            let drained = batch.len() < TAIL_BATCH;
            if let Some(sink) = sink.upgrade() {
                apply(&*sink, batch);
            }
            if drained {
                freshness.confirm(sent);
            }
            id = next;
        }
        Err(Error::Unavailable(
            "the invalidation cursor was closed".into(),
        ))
    }
}

/// The cursor id and batch of a `find` or `getMore` reply.
fn cursor<'r>(reply: &'r Document, batch: &str) -> Result<(i64, &'r [Bson])> {
    let malformed = || error::malformed("invalidation cursor", "unexpected reply shape");
    let cursor = reply.get_document("cursor").map_err(|_| malformed())?;
    let id = cursor.get_i64("id").map_err(|_| malformed())?;
    let docs = cursor.get_array(batch).map_err(|_| malformed())?;
    Ok((id, docs))
}

/// Applies a batch. A document that names nothing slates understands (edited by hand)
/// could have been anything: everything is dropped.
fn apply(sink: &dyn InvalidationSink, batch: &[Bson]) {
    for d in batch {
        match d.as_document().map(parse) {
            Some(Some(Some(invalidation))) => sink.invalidate(&invalidation),
            Some(Some(None)) => {} // the seed
            _ => {
                tracing::warn!("unreadable invalidation document: the whole cache is dropped");
                sink.flush();
            }
        }
    }
}

/// `Some(Some(_))`: an invalidation; `Some(None)`: the seed; `None`: unreadable.
fn parse(d: &Document) -> Option<Option<Invalidation>> {
    let kind = d.get_str("k").ok()?;
    if kind == "seed" {
        return Some(None);
    }
    let value = d.get_str("v").ok()?;
    let invalidation = match kind {
        "t" => Invalidation::Token(TokenHash::from_hex(value)?),
        "u" => Invalidation::UserTokens(Username::from_stored(value)?),
        "p" => Invalidation::Profile(Username::from_stored(value)?),
        _ => return None,
    };
    Some(Some(invalidation))
}

fn to_document(invalidation: &Invalidation) -> Document {
    let (k, v) = match invalidation {
        Invalidation::Token(hash) => ("t", hash.to_hex()),
        Invalidation::UserTokens(user) => ("u", user.as_str().to_owned()),
        Invalidation::Profile(user) => ("p", user.as_str().to_owned()),
    };
    doc! {"k": k, "v": v}
}

impl InvalidationChannel for Arc<MongoChannel> {
    /// Creates the capped collection and its seed document.
    fn prepare(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.ensure())
    }

    fn publish<'a>(&'a self, invalidation: &'a Invalidation) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.ensure().await?;
            self.db
                .collection::<Document>(INVALIDATIONS_COLLECTION)
                .insert_one(to_document(invalidation))
                .await
                .map_err(error::map)?;
            Ok(())
        })
    }

    fn subscribe(&self, sink: Weak<dyn InvalidationSink>) -> Arc<Freshness> {
        let freshness = Arc::new(Freshness::new());
        tokio::spawn(Arc::clone(self).tail(sink, Arc::clone(&freshness)));
        freshness
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip() {
        let hash = crate::token::Token::generate().unwrap().hash();
        let user = Username::new("ada").unwrap();
        for inv in [
            Invalidation::Token(hash),
            Invalidation::UserTokens(user.clone()),
            Invalidation::Profile(user),
        ] {
            assert_eq!(parse(&to_document(&inv)), Some(Some(inv)));
        }
        assert_eq!(parse(&doc! {"k": "seed"}), Some(None));
        assert_eq!(parse(&doc! {"k": "t", "v": "zz"}), None);
        assert_eq!(parse(&doc! {"k": "x", "v": "ada"}), None);
        assert_eq!(parse(&doc! {"k": "p", "v": "_auth"}), None);
        let guest = Username::guest(&hash);
        let inv = Invalidation::Profile(guest);
        assert_eq!(parse(&to_document(&inv)), Some(Some(inv)));
    }
}
