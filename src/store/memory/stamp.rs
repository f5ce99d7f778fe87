//! [`Stamp`]: a time as the memory store keeps it, to the millisecond like MongoDB.

use std::num::NonZeroI64;

use time::OffsetDateTime;

use crate::clock::{from_millis, to_millis};

/// A time kept to the millisecond, as MongoDB keeps a date (the memory store stands for
/// MongoDB in tests, so it must not be more precise), in 8 bytes where an `OffsetDateTime`
/// takes 16; an absent time (`Option<Stamp>`) takes none more. A time reads back as its
/// millisecond (`clock::to_millis`), in UTC.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp(NonZeroI64);

impl Stamp {
    pub fn new(t: OffsetDateTime) -> Self {
        // Stored with the sign bit flipped, so that 0 (the niche `Option` uses) stands for
        // `i64::MIN` milliseconds, some 292 million years before any `OffsetDateTime`.
        Stamp(NonZeroI64::new(to_millis(t) ^ i64::MIN).expect("a time within ±292 million years"))
    }

    pub fn get(self) -> OffsetDateTime {
        from_millis(self.millis())
    }

    /// Milliseconds since the epoch (`clock::to_millis` of the time kept).
    pub fn millis(self) -> i64 {
        self.0.get() ^ i64::MIN
    }

    /// Whether the time kept is later than `t` (compared to the millisecond, as MongoDB
    /// compares dates; `t` below a millisecond counts as its millisecond: times reach the
    /// stores truncated).
    pub fn after(self, t: OffsetDateTime) -> bool {
        self.after_millis(to_millis(t))
    }

    /// [`after`](Self::after), `t` in milliseconds since the epoch.
    pub fn after_millis(self, t: i64) -> bool {
        self.millis() > t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn keeps_the_millisecond_in_eight_bytes() {
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 8);
        let t =
            OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::nanoseconds(1_234_567);
        assert_eq!(Stamp::new(t).get(), t - Duration::nanoseconds(234_567));
        for t in [OffsetDateTime::UNIX_EPOCH, t.replace_year(9999).unwrap()] {
            let ms = t - Duration::nanoseconds(i64::from(t.nanosecond() % 1_000_000));
            assert_eq!(Stamp::new(t).get(), ms);
        }
    }
}
