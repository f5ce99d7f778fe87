//! Pruning `_invalidations` on FerretDB, whose every poll reads the collection from its
//! start and which trims a capped collection only once a minute: each tail deletes the
//! documents it read [`PRUNE_AGE`] ago or earlier, so that a poll reads a few seconds of
//! invalidations, not a minute's.
//!
//! Why no tail misses a pruned document: a tail reads every document visible when it sends
//! a `getMore` whose reply drains the collection; a document is deleted at least
//! [`PRUNE_AGE`] after it was visible (a tail read it that long ago), so a tail whose drained
//! replies come at most [`TAIL_SILENCE`] (shorter) after its previous drained `getMore` was
//! sent has read it, and one whose reply comes later drops its whole cache instead
//! (`Reader::drained`). The newest document read [`PRUNE_AGE`] ago is kept: a FerretDB
//! cursor whose last document is deleted fails, and every tail within [`TAIL_SILENCE`] has
//! read past the older ones.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};

use super::document::{self, Parsed};

/// A document this tail read at least this long ago may be deleted (if a later one was
/// read that long ago too).
pub const PRUNE_AGE: Duration = Duration::from_secs(5);
/// How often a tail deletes what has aged.
pub const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// On a server where tails prune: the longest a tail may go from sending one drained
/// `getMore` to receiving the next drained reply without dropping its whole cache (a
/// document published meanwhile may have been pruned unread). Shorter than [`PRUNE_AGE`].
pub const TAIL_SILENCE: Duration = Duration::from_secs(2);
/// The most documents one `delete` names.
const PRUNE_MAX: usize = 1000;

/// The documents one tail read and has not deleted yet, oldest first.
#[derive(Debug, Default)]
pub(super) struct Pruner {
    read: VecDeque<(Instant, Bson)>,
    last: Option<Instant>,
}

impl Pruner {
    /// Records the `_id`s of `batch`'s documents, read at `now` (the seed is never deleted).
    pub fn record(&mut self, batch: &[Bson], now: Instant) {
        for d in batch.iter().filter_map(Bson::as_document) {
            if document::parse(d) == Some(Parsed::Seed) {
                continue;
            }
            if let Some(id) = d.get("_id") {
                self.read.push_back((now, id.clone()));
            }
        }
    }

    /// The `_id`s to delete now, at most once per [`PRUNE_EVERY`]: those read at least
    /// [`PRUNE_AGE`] before `now` but the newest of them (at most [`PRUNE_MAX`], the oldest
    /// first). `None`: nothing is due.
    pub fn due(&mut self, now: Instant) -> Option<Vec<Bson>> {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < PRUNE_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        let aged = self
            .read
            .iter()
            .take_while(|(at, _)| now.saturating_duration_since(*at) >= PRUNE_AGE)
            .count();
        let n = aged.saturating_sub(1).min(PRUNE_MAX);
        (n > 0).then(|| self.read.drain(..n).map(|(_, id)| id).collect())
    }
}

/// The `delete` of `ids` from the collection.
pub(super) fn command(collection: &str, ids: Vec<Bson>) -> Document {
    doc! {
        "delete": collection,
        "deletes": [{"q": {"_id": {"$in": ids}}, "limit": 0}],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: &[i32]) -> Vec<Bson> {
        ids.iter()
            .map(|&i| Bson::Document(doc! {"_id": i, "k": "p", "v": "ada", "p": 1_i64, "s": 1_i64}))
            .collect()
    }

    #[test]
    fn deletes_what_aged_but_the_newest_of_it_once_per_period() {
        let t0 = Instant::now();
        let mut p = Pruner::default();
        let mut first = vec![Bson::Document(document::seed())];
        first.extend(batch(&[1, 2]));
        p.record(&first, t0);
        p.record(&batch(&[3]), t0 + Duration::from_secs(1));
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Nothing has aged: nothing is due (and the period starts).
        assert_eq!(p.due(at(2000)), None);
        // Within the period: nothing.
        assert_eq!(p.due(at(2500)), None);
        // 1 and 2 aged, 2 is the newest of them: 1 only (never the seed).
        assert_eq!(p.due(at(5000)), Some(vec![Bson::Int32(1)]));
        // 3 has aged too: 2 goes, 3 stays.
        assert_eq!(p.due(at(6000)), Some(vec![Bson::Int32(2)]));
        assert_eq!(p.due(at(20_000)), None, "the newest aged stays");
        assert_eq!(PRUNE_AGE, Duration::from_secs(5));
        assert_eq!(PRUNE_EVERY, Duration::from_secs(1));
        assert!(TAIL_SILENCE < PRUNE_AGE);
    }

    #[test]
    fn one_delete_names_at_most_prune_max_documents() {
        let t0 = Instant::now();
        let mut p = Pruner::default();
        let ids: Vec<i32> = (0..2500).collect();
        p.record(&batch(&ids), t0);
        let now = t0 + PRUNE_AGE;
        assert_eq!(p.due(now).unwrap().len(), PRUNE_MAX);
        assert_eq!(p.due(now + PRUNE_EVERY).unwrap().len(), PRUNE_MAX);
        assert_eq!(
            p.due(now + PRUNE_EVERY * 2).unwrap().len(),
            2500 - 2 * PRUNE_MAX - 1
        );
        let cmd = command("_invalidations", vec![Bson::Int32(7)]);
        assert_eq!(
            cmd,
            doc! {"delete": "_invalidations", "deletes": [{"q": {"_id": {"$in": [7]}}, "limit": 0}]}
        );
    }
}
