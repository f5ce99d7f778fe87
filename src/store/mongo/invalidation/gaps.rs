//! Gap tracking: which publications of each publisher a tail has seen, so that one it
//! missed (a gap in a publisher's sequence) is noticed and one it sees again (a re-delivery)
//! costs nothing.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::document::Stamp;

/// What one tail has seen of every publisher's sequence.
#[derive(Debug, Default)]
pub(super) struct Sequences {
    publishers: HashMap<i64, Seen>,
    /// Since when some publication is missing (`None`: none is).
    open_since: Option<Instant>,
}

/// One publisher's publications seen: all up to `floor`, and those in `above`.
#[derive(Debug)]
struct Seen {
    floor: u64,
    /// Seen past `floor + 1`, which is missing (empty: no gap).
    above: BTreeSet<u64>,
}

/// Whether a stamped publication is news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Observed {
    /// Not seen before: apply it.
    New,
    /// Seen before (a re-delivery): ignore it.
    Again,
}

impl Sequences {
    /// Records `stamp`, seen at `now`.
    ///
    /// A publisher seen for the first time: while `catching_up` (reading what the collection
    /// held when the cursor opened, which the flush at the end of the catch-up covers) its
    /// earlier publications are taken as seen; afterwards publishers count from 1, so
    /// anything before `stamp` is missing.
    pub fn observe(&mut self, stamp: Stamp, catching_up: bool, now: Instant) -> Observed {
        let seen = self.publishers.entry(stamp.publisher).or_insert(Seen {
            floor: if catching_up { stamp.seq - 1 } else { 0 },
            above: BTreeSet::new(),
        });
        if stamp.seq <= seen.floor || !seen.above.insert(stamp.seq) {
            return Observed::Again;
        }
        // Absorb what is now contiguous.
        while seen.above.first() == Some(&(seen.floor + 1)) {
            seen.above.pop_first();
            seen.floor += 1;
        }
        if seen.above.is_empty() {
            if self.publishers.values().all(|s| s.above.is_empty()) {
                self.open_since = None;
            }
        } else {
            self.open_since.get_or_insert(now);
        }
        Observed::New
    }

    /// Whether some publication has been missing for `grace` or longer at `now`.
    pub fn overdue(&self, now: Instant, grace: Duration) -> bool {
        self.open_since
            .is_some_and(|since| now.saturating_duration_since(since) >= grace)
    }

    /// Whether some publication is missing.
    pub fn open(&self) -> bool {
        self.open_since.is_some()
    }

    /// Gives up on every missing publication (the caller drops its whole cache instead):
    /// one that shows up later counts as seen again. Returns how many were missing.
    pub fn close(&mut self) -> u64 {
        let mut missing = 0;
        for seen in self.publishers.values_mut() {
            if let Some(&last) = seen.above.last() {
                missing += last - seen.floor - seen.above.len() as u64;
                seen.floor = last;
                seen.above.clear();
            }
        }
        self.open_since = None;
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(publisher: i64, seq: u64) -> Stamp {
        Stamp { publisher, seq }
    }

    #[test]
    fn consecutive_publications_leave_no_gap_and_repeats_are_ignored() {
        let now = Instant::now();
        let mut s = Sequences::default();
        for seq in 1..=3 {
            assert_eq!(s.observe(stamp(9, seq), false, now), Observed::New);
        }
        assert_eq!(s.observe(stamp(9, 2), false, now), Observed::Again);
        assert_eq!(s.observe(stamp(9, 3), false, now), Observed::Again);
        assert_eq!(s.observe(stamp(4, 1), false, now), Observed::New);
        assert!(!s.open());
    }

    #[test]
    fn a_skipped_publication_opens_a_gap_until_it_shows_up() {
        let t0 = Instant::now();
        let grace = Duration::from_millis(50);
        let mut s = Sequences::default();
        assert_eq!(s.observe(stamp(9, 1), false, t0), Observed::New);
        assert_eq!(s.observe(stamp(9, 3), false, t0), Observed::New);
        assert!(s.open());
        assert!(!s.overdue(t0 + grace / 2, grace));
        assert!(s.overdue(t0 + grace, grace));
        assert_eq!(s.observe(stamp(9, 3), false, t0), Observed::Again);
        // Another publisher's news does not close it.
        assert_eq!(s.observe(stamp(5, 1), false, t0), Observed::New);
        assert!(s.open());
        // Out of order, not lost: the gap closes.
        assert_eq!(s.observe(stamp(9, 2), false, t0), Observed::New);
        assert!(!s.open());
        assert_eq!(s.observe(stamp(9, 4), false, t0), Observed::New);
        assert!(!s.open());
    }

    #[test]
    fn closing_gives_up_on_the_missing_ones() {
        let now = Instant::now();
        let mut s = Sequences::default();
        s.observe(stamp(9, 1), false, now);
        s.observe(stamp(9, 4), false, now);
        s.observe(stamp(9, 6), false, now);
        s.observe(stamp(8, 3), false, now);
        assert_eq!(s.close(), 3 + 2);
        assert!(!s.open());
        // A late one counts as seen (the flush covered it); the next is news.
        assert_eq!(s.observe(stamp(9, 2), false, now), Observed::Again);
        assert_eq!(s.observe(stamp(9, 7), false, now), Observed::New);
        assert!(!s.open());
    }

    #[test]
    fn a_new_publisher_starts_at_one_once_caught_up() {
        let now = Instant::now();
        let mut s = Sequences::default();
        // Caught up: the collection held its 41 first publications before, covered.
        assert_eq!(s.observe(stamp(1, 42), true, now), Observed::New);
        assert!(!s.open());
        assert_eq!(s.observe(stamp(1, 43), false, now), Observed::New);
        assert!(!s.open());
        // Afterwards, a publisher first seen at 2 had a first publication, missed.
        assert_eq!(s.observe(stamp(2, 2), false, now), Observed::New);
        assert!(s.open());
    }
}
