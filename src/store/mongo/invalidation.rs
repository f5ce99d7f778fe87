//! The invalidation channel of a `MongoStore`: a capped collection that every instance
//! appends its invalidations to and tails. No extra infrastructure: it works on a
//! standalone server, a replica set, and FerretDB.
//!
//! The tail reads a tailable `awaitData` cursor on MongoDB and polls a tailable cursor
//! without `awaitData` on FerretDB ([`TailMode`]), and confirms freshness only at replies
//! that prove it read everything published before they were asked for. Publications carry
//! their publisher's sequence numbers, so that a document sent again costs nothing and one
//! missing drops the cache ([`MongoChannel`]). On FerretDB each tail also deletes what it
//! read a few seconds ago (`prune.rs`). This file holds the channel and the tail loop,
//! `document.rs` the documents' format, `gaps.rs` what a tail has seen of each publisher's
//! sequence, `prune.rs` the pruning.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use mongodb::Database;
use tokio::sync::OnceCell;

use super::error;
use super::server::ServerKind;
use crate::error::{Error, Result};
use crate::store::invalidation::{Freshness, Invalidation, InvalidationChannel, InvalidationSink};
use crate::store::StoreFuture;

mod document;
mod gaps;
mod prune;

use document::{Parsed, Stamp};
use gaps::{Observed, Sequences};
use prune::Pruner;
pub use prune::{PRUNE_AGE, PRUNE_EVERY, TAIL_SILENCE};

/// The capped collection the invalidations go through.
pub const INVALIDATIONS_COLLECTION: &str = "_invalidations";
/// Its size: at most 1 MiB and [`CAPPED_DOCS`] invalidations ([`CAPPED_DOCS_FERRETDB`] on
/// FerretDB), as created by the first instance (later ones keep what they find). An
/// instance that falls further behind loses its cursor, reconnects and drops its whole
/// cache.
const CAPPED_BYTES: i64 = 1024 * 1024;
/// The most documents `_invalidations` keeps on MongoDB, which trims it at every insert.
const CAPPED_DOCS: i64 = 10_000;
/// The most documents `_invalidations` keeps on FerretDB, whose every poll of a tailable
/// cursor reads the collection from its start (about 8 ms per poll with 100 documents, 69 ms
/// with 1,000, 536 ms with 10,000, measured on a loaded 2-core machine). FerretDB 1.24 trims
/// a capped collection once a minute only; the tails' pruning ([`PRUNE_AGE`]) keeps it to a
/// few seconds of invalidations in between.
const CAPPED_DOCS_FERRETDB: i64 = 100;
/// [`TailMode::AwaitData`]: how long one `getMore` waits for new invalidations before it
/// returns empty: also how often an idle instance confirms that it is up to date.
pub const TAIL_AWAIT: Duration = Duration::from_millis(100);
/// [`TailMode::Poll`]: the pause after a `getMore` that found the collection drained,
/// before the next one: also how often an idle instance confirms that it is up to date.
pub const TAIL_POLL: Duration = Duration::from_millis(10);

/// The most invalidations one `getMore` of the tail returns. A full reply may have left
/// some behind, so it never confirms freshness (the next `getMore` reads on); which shorter
/// replies do depends on the [`TailMode`].
pub const TAIL_BATCH: usize = 100;
/// How long a tail waits for a publication missing from a publisher's sequence (two
/// concurrent publications of one instance may reach the server out of order) before it
/// takes it as lost and drops its whole cache. It confirms no freshness meanwhile.
pub const GAP_GRACE: Duration = Duration::from_millis(50);
/// Pause before reopening a failed tail.
const RETRY: Duration = Duration::from_millis(100);

/// How a `MongoStore`'s cache tails [`INVALIDATIONS_COLLECTION`]
/// ([`MongoStore::tail_mode`](super::MongoStore::tail_mode)).
///
/// Both modes read a tailable cursor with `getMore`s of at most [`TAIL_BATCH`] documents,
/// and confirm freshness (the cache serves only while it was confirmed at most the staleness
/// bound ago) at the instant a `getMore` was sent, once its reply proves that it read
/// everything published before then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TailMode {
    /// [`Poll`](Self::Poll) on FerretDB (its `buildInfo` carries `ferretdbVersion`),
    /// [`AwaitData`](Self::AwaitData) elsewhere. The default.
    #[default]
    Auto,
    /// A tailable `awaitData` cursor: each `getMore` waits up to [`TAIL_AWAIT`] for new
    /// documents, so an invalidation arrives as soon as it is inserted. A reply with fewer
    /// than [`TAIL_BATCH`] documents confirms. Sound on MongoDB, whose `awaitData` `getMore`
    /// reads the collection after it is sent and never skips a document. Not on FerretDB
    /// 1.x, whose wait re-runs the query every 10 ms and, when its deadline fires in the
    /// middle, drops documents it had read or sends old ones again.
    AwaitData,
    /// A tailable cursor without `awaitData`, polled: a `getMore` returns at once; after one
    /// that found the collection drained, the tail sleeps [`TAIL_POLL`]. A reply confirms
    /// only when it is empty, or shorter than [`TAIL_BATCH`] after a reply that was too: a
    /// FerretDB `getMore` first returns what is left of the previous query (possibly older
    /// than the `getMore`), and queries again only once that is used up. Costs one
    /// `getMore` per [`TAIL_POLL`] per instance when idle.
    Poll,
}

/// The tail mode in effect (never `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    Await,
    Poll,
}

impl Tail {
    /// Whether a `getMore` reply of `len` documents, after a reply of `previous` documents
    /// (the `find`'s first batch counts as full), read everything published before the
    /// `getMore` was sent.
    fn drained(self, previous: usize, len: usize) -> bool {
        match self {
            Tail::Await => len < TAIL_BATCH,
            // A short reply used up the cursor's query: the next `getMore` queries afresh
            // after it is sent. Only then does a short reply prove anything.
            Tail::Poll => len == 0 || (len < TAIL_BATCH && previous < TAIL_BATCH),
        }
    }
}

/// What a channel settled about its server, once.
#[derive(Debug, Clone, Copy)]
struct Server {
    tail: Tail,
    /// FerretDB: tails prune the collection (`prune.rs`) and keep to [`TAIL_SILENCE`].
    prunes: bool,
}

/// Publishes to and tails [`INVALIDATIONS_COLLECTION`].
///
/// Each invalidation is one document (see `document.rs`) stamped with this channel's random
/// publisher id and its count of publications. A subscriber opens a tailable cursor over
/// the whole collection (the first batch holds one document, so it is full, which FerretDB
/// needs to keep the cursor open: the collection always holds a seed document), reads it
/// up to the first reply that proves it drained (the catch-up), drops its whole cache
/// (anything before the cursor may have been missed) and confirms freshness; from then on
/// it applies each new document and confirms at every drained reply ([`TailMode`]).
///
/// What a subscriber has seen of each publisher's sequence (`gaps.rs`) makes delivery
/// exactly-once for the cache: a document seen again is ignored; a publication missing from
/// a sequence for [`GAP_GRACE`] (FerretDB 1.x gives a document its position before its
/// insert commits, so a cursor that has read a later one skips it for good; or a
/// publication failed) drops the whole cache, and freshness is not confirmed while one is
/// missing. Limit: a document FerretDB skipped is noticed only when its publisher
/// publishes again (MongoDB does not skip). An unreadable document drops the whole cache
/// too. A failure or a closed cursor
/// loses freshness (the cache stops serving) and the tail is reopened.
///
/// On FerretDB each tail deletes the documents it read [`PRUNE_AGE`] ago or earlier, but
/// the newest of them, once per [`PRUNE_EVERY`] (one `delete` by `_id`, sent beside the
/// tail's reads), and drops its whole cache when a drained reply comes more than
/// [`TAIL_SILENCE`] after its previous drained `getMore` was sent (it may have missed a
/// pruned document): see `prune.rs` for why no tail misses a pruned document unknowingly.
pub(super) struct MongoChannel {
    db: Database,
    mode: TailMode,
    /// What the server is, shared with the store (one `buildInfo` for both).
    server: Arc<ServerKind>,
    ready: OnceCell<Server>,
    /// This channel's publisher id.
    publisher: i64,
    /// Publications so far.
    published: AtomicU64,
}

impl MongoChannel {
    pub fn new(db: Database, mode: TailMode, server: Arc<ServerKind>) -> Self {
        MongoChannel {
            db,
            mode,
            server,
            ready: OnceCell::new(),
            publisher: rand::random(),
            published: AtomicU64::new(0),
        }
    }

    /// Learns what the server is (the store's one `buildInfo`), creates the capped collection
    /// and its seed document, and settles the tail mode, once per channel.
    async fn ensure(&self) -> Result<Server> {
        self.ready
            .get_or_try_init(|| async {
                let ferretdb = self.server.is_ferretdb(&self.db).await?;
                let create = doc! {
                    "create": INVALIDATIONS_COLLECTION,
                    "capped": true,
                    "size": CAPPED_BYTES,
                    "max": if ferretdb { CAPPED_DOCS_FERRETDB } else { CAPPED_DOCS },
                };
                match self.db.run_command(create).await {
                    Ok(_) => {}
                    // NamespaceExists: another instance (or an earlier run) created it.
                    Err(e) if error::code(&e) == Some(48) => {}
                    Err(e) => return Err(error::map(e)),
                }
                let coll = self.db.collection::<Document>(INVALIDATIONS_COLLECTION);
                if coll.find_one(doc! {}).await.map_err(error::map)?.is_none() {
                    coll.insert_one(document::seed())
                        .await
                        .map_err(error::map)?;
                }
                let tail = match self.mode {
                    TailMode::AwaitData => Tail::Await,
                    TailMode::Poll => Tail::Poll,
                    TailMode::Auto if ferretdb => Tail::Poll,
                    TailMode::Auto => Tail::Await,
                };
                tracing::debug!(mode = ?tail, "slates invalidation tail mode");
                Ok(Server {
                    tail,
                    prunes: ferretdb,
                })
            })
            .await
            .copied()
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
        let server = self.ensure().await?;
        let mode = server.tail;
        let mut session = self.db.client().start_session().await.map_err(error::map)?;
        let mut find = doc! {
            "find": INVALIDATIONS_COLLECTION,
            "filter": {},
            "tailable": true,
            "batchSize": 1,
        };
        if mode == Tail::Await {
            find.insert("awaitData", true);
        }
        let reply = self
            .db
            .run_command(find)
            .session(&mut session)
            .await
            .map_err(error::map)?;
        let (mut id, first) = cursor(&reply, "firstBatch")?;
        let mut reader = Reader {
            silence: server.prunes.then_some(TAIL_SILENCE),
            ..Reader::default()
        };
        let mut pruner = server.prunes.then(Pruner::default);
        let mut pruning: Option<tokio::task::JoinHandle<()>> = None;
        if let Some(sink) = sink.upgrade() {
            reader.apply(&*sink, first);
        }
        if let Some(pruner) = &mut pruner {
            pruner.record(first, Instant::now());
        }
        let await_ms = i64::try_from(TAIL_AWAIT.as_millis()).unwrap_or(100);
        let mut previous = TAIL_BATCH;
        while id != 0 {
            if sink.strong_count() == 0 {
                let kill = doc! {"killCursors": INVALIDATIONS_COLLECTION, "cursors": [id]};
                let _ = self.db.run_command(kill).session(&mut session).await;
                return Ok(());
            }
            let sent = Instant::now();
            let mut more = doc! {
                "getMore": id,
                "collection": INVALIDATIONS_COLLECTION,
                "batchSize": TAIL_BATCH as i64,
            };
            if mode == Tail::Await {
                more.insert("maxTimeMS", await_ms);
            }
            let reply = self
                .db
                .run_command(more)
                .session(&mut session)
                .await
                .map_err(error::map)?;
            let (next, batch) = cursor(&reply, "nextBatch")?;
            id = next;
            let drained = mode.drained(previous, batch.len());
            previous = batch.len();
            // The sink is not kept alive across a wait.
            if let Some(live) = sink.upgrade() {
                reader.apply(&*live, batch);
                if drained {
                    reader.drained(&*live, freshness, sent);
                }
            }
            if let Some(pruner) = &mut pruner {
                let now = Instant::now();
                pruner.record(batch, now);
                if pruning.as_ref().is_none_or(|p| p.is_finished()) {
                    if let Some(ids) = pruner.due(now) {
                        pruning = Some(tokio::spawn(prune(self.db.clone(), ids)));
                    }
                }
            }
            if drained && mode == Tail::Poll {
                tokio::time::sleep(TAIL_POLL).await;
            }
        }
        Err(Error::Unavailable(
            "the invalidation cursor was closed".into(),
        ))
    }
}

/// Deletes `ids` from the collection (`prune.rs`). A failure leaves them to the next
/// prune of another tail, or to the server's own trimming.
async fn prune(db: Database, ids: Vec<Bson>) {
    let n = ids.len();
    let command = prune::command(INVALIDATIONS_COLLECTION, ids);
    if let Err(e) = db.run_command(command).await {
        tracing::debug!(error = %e, documents = n, "slates invalidation prune failed");
    }
}

/// What one cursor has read.
struct Reader {
    /// Still reading what the collection held when the cursor opened.
    catching_up: bool,
    sequences: Sequences,
    /// Where tails prune: [`TAIL_SILENCE`] (a field, for the tests).
    silence: Option<Duration>,
    /// When the last drained `getMore` was sent.
    last_drained: Option<Instant>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            catching_up: true,
            sequences: Sequences::default(),
            silence: None,
            last_drained: None,
        }
    }
}

impl Reader {
    /// Applies a batch: each invalidation not seen before. A document that names nothing
    /// slates understands (edited by hand) could have been anything: everything is dropped.
    fn apply(&mut self, sink: &dyn InvalidationSink, batch: &[Bson]) {
        let now = Instant::now();
        for d in batch {
            match d.as_document().and_then(document::parse) {
                Some(Parsed::Seed) => {}
                Some(Parsed::Invalidation(invalidation, stamp)) => {
                    let new = stamp.is_none_or(|stamp| {
                        self.sequences.observe(stamp, self.catching_up, now) == Observed::New
                    });
                    if new {
                        sink.invalidate(&invalidation);
                    }
                }
                None => {
                    tracing::warn!("unreadable invalidation document: the whole cache is dropped");
                    sink.flush();
                }
            }
        }
    }

    /// A reply proved that everything published before `sent` was read: confirms `sent`,
    /// after the catch-up's flush, unless a publication is missing (for less than
    /// [`GAP_GRACE`]; after that, the cache is flushed). Where tails prune, a reply that
    /// comes more than the silence after the previous drained `getMore` was sent flushes
    /// first: a document published in between may have been pruned unread.
    fn drained(&mut self, sink: &dyn InvalidationSink, freshness: &Freshness, sent: Instant) {
        let now = Instant::now();
        let silent = self
            .silence
            .zip(self.last_drained)
            .filter(|&(limit, last)| now.saturating_duration_since(last) > limit);
        self.last_drained = Some(sent);
        if let Some((limit, _)) = silent {
            tracing::warn!(
                limit_ms = limit.as_millis() as u64,
                "slates invalidation tail: too long between two drained reads (invalidations \
                 may have been pruned unread): the whole cache is dropped"
            );
        }
        if self.catching_up || silent.is_some() {
            self.catching_up = false;
            self.sequences.close();
            sink.flush();
        } else if self.sequences.overdue(Instant::now(), GAP_GRACE) {
            let missing = self.sequences.close();
            tracing::warn!(
                missing,
                "slates invalidation tail: publications missing from the channel (lost by \
                 the server or never published): the whole cache is dropped"
            );
            sink.flush();
        } else if self.sequences.open() {
            return;
        }
        freshness.confirm(sent);
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

impl InvalidationChannel for Arc<MongoChannel> {
    /// Creates the capped collection and its seed document.
    fn prepare(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.ensure().await.map(drop) })
    }

    fn publish<'a>(&'a self, invalidation: &'a Invalidation) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.ensure().await?;
            // Taken even if the insert then fails: subscribers see the gap and flush, in
            // case the insert was applied after all, or the write it follows was.
            let stamp = Stamp {
                publisher: self.publisher,
                seq: self.published.fetch_add(1, Ordering::Relaxed) + 1,
            };
            self.db
                .collection::<Document>(INVALIDATIONS_COLLECTION)
                .insert_one(document::to_document(invalidation, stamp))
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
    use std::sync::Mutex;

    #[test]
    fn await_data_confirms_any_short_reply() {
        for previous in [0, 1, TAIL_BATCH] {
            assert!(Tail::Await.drained(previous, 0));
            assert!(Tail::Await.drained(previous, TAIL_BATCH - 1));
            assert!(!Tail::Await.drained(previous, TAIL_BATCH));
        }
    }

    #[test]
    fn polling_confirms_an_empty_reply_or_a_short_one_after_a_short_one() {
        for previous in [0, 1, TAIL_BATCH - 1, TAIL_BATCH] {
            assert!(Tail::Poll.drained(previous, 0));
            assert!(!Tail::Poll.drained(previous, TAIL_BATCH));
        }
        // What is left of an older query (after the find's first batch or a full reply)
        // proves nothing about the instant the `getMore` was sent.
        assert!(!Tail::Poll.drained(TAIL_BATCH, 1));
        assert!(!Tail::Poll.drained(TAIL_BATCH, TAIL_BATCH - 1));
        assert!(Tail::Poll.drained(0, 1));
        assert!(Tail::Poll.drained(TAIL_BATCH - 1, TAIL_BATCH - 1));
    }

    /// A sink that records what it is told.
    #[derive(Default)]
    struct Log(Mutex<Vec<Option<Invalidation>>>);

    impl InvalidationSink for Log {
        fn invalidate(&self, invalidation: &Invalidation) {
            self.0.lock().unwrap().push(Some(invalidation.clone()));
        }
        fn flush(&self) {
            self.0.lock().unwrap().push(None);
        }
    }

    impl Log {
        fn take(&self) -> Vec<Option<Invalidation>> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    fn published(user: &str, publisher: i64, seq: u64) -> (Invalidation, Bson) {
        let inv = Invalidation::Profile(crate::names::Username::new(user).unwrap());
        let d = document::to_document(&inv, Stamp { publisher, seq });
        (inv, Bson::Document(d))
    }

    #[test]
    fn where_tails_prune_a_drained_reply_after_the_silence_flushes() {
        let (sink, fresh) = (Log::default(), Freshness::new());
        let silence = Duration::from_millis(30);
        let mut r = Reader {
            silence: Some(silence),
            ..Reader::default()
        };
        r.drained(&sink, &fresh, Instant::now());
        assert_eq!(sink.take(), [None], "the catch-up flushes");
        // Drained again within the silence: confirmed, nothing dropped.
        r.drained(&sink, &fresh, Instant::now());
        assert_eq!(sink.take(), []);
        // The next drained reply comes more than the silence after the last drained
        // `getMore` was sent (however recent its own `getMore`): a document may have been
        // pruned unread.
        std::thread::sleep(silence + Duration::from_millis(10));
        r.drained(&sink, &fresh, Instant::now());
        assert_eq!(
            sink.take(),
            [None],
            "too long since the last drained getMore"
        );
        r.drained(&sink, &fresh, Instant::now());
        assert_eq!(sink.take(), [], "in step again");
        assert!(fresh.lag().is_some(), "confirmed after the flush");
        // Without pruning, no silence applies.
        let mut plain = Reader::default();
        plain.drained(&sink, &fresh, Instant::now());
        sink.take();
        std::thread::sleep(silence + Duration::from_millis(10));
        plain.drained(&sink, &fresh, Instant::now());
        assert_eq!(sink.take(), []);
    }

    #[test]
    fn a_reader_applies_news_once_flushes_on_gaps_and_confirms_soundly() {
        let (sink, fresh) = (Log::default(), Freshness::new());
        let mut r = Reader::default();
        let (a1, d1) = published("ada", 1, 1);
        // Catch-up: applied, then flushed at the first drained reply, which confirms.
        r.apply(&sink, &[Bson::Document(document::seed()), d1.clone()]);
        let t0 = Instant::now();
        r.drained(&sink, &fresh, t0);
        assert_eq!(sink.take(), [Some(a1), None]);
        assert!(fresh.lag().is_some());

        // Re-delivered: nothing.
        r.apply(&sink, std::slice::from_ref(&d1));
        assert_eq!(sink.take(), []);

        // A gap: applied, but no confirmation until the grace is over, then a flush.
        let (a3, d3) = published("bob", 1, 3);
        r.apply(&sink, &[d3]);
        assert_eq!(sink.take(), [Some(a3)]);
        let fresh = Freshness::new();
        r.drained(&sink, &fresh, Instant::now());
        assert_eq!(fresh.lag(), None, "confirmed with a publication missing");
        std::thread::sleep(GAP_GRACE);
        r.drained(&sink, &fresh, Instant::now());
        assert_eq!(sink.take(), [None], "a lost publication flushes");
        assert!(fresh.lag().is_some());
        // The late one is covered by the flush.
        let (_, d2) = published("eve", 1, 2);
        r.apply(&sink, &[d2]);
        assert_eq!(sink.take(), []);

        // An unreadable document flushes; an old unstamped one is applied.
        let old = Invalidation::UserTokens(crate::names::Username::new("ada").unwrap());
        r.apply(
            &sink,
            &[
                Bson::Document(doc! {"k": "u", "v": "ada"}),
                Bson::Document(doc! {"k": "?"}),
            ],
        );
        assert_eq!(sink.take(), [Some(old), None]);
    }
}
