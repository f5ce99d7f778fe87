//! Time, injectable so that tests can move it.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

/// A source of the current time. The layer and the stores ask it for "now" so that token
/// expiry, renewal and workflow slate expiry can be tested by moving a [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current time (UTC).
    fn now(&self) -> OffsetDateTime;

    /// The current time in whole milliseconds since the Unix epoch (floored), the precision
    /// token records keep: what a token check compares. The default truncates
    /// [`now`](Self::now); [`SystemClock`] and [`ManualClock`] read it without building an
    /// `OffsetDateTime`.
    ///
    /// ```
    /// use slates::{Clock, ManualClock};
    /// use time::macros::datetime;
    /// let clock = ManualClock::at(datetime!(2026-12-06 18:40:00.123456 UTC));
    /// assert_eq!(clock.now_millis(), 1_796_582_400_123);
    /// ```
    fn now_millis(&self) -> i64 {
        to_millis(self.now())
    }
}

/// The system clock.
///
/// [`now`](Clock::now) is the precise real-time clock. [`now_millis`](Clock::now_millis),
/// what a token check compares, reads on Linux the kernel's coarse real-time clock
/// (`CLOCK_REALTIME_COARSE`, through the C library): the time the kernel recorded at its
/// last timer tick, read without the hardware counter the precise clock reads on every
/// call. It lags the precise clock by a few milliseconds (less than two kernel ticks, as its
/// test checks; a tick is 4 ms on the bench machine), so a token may be accepted that long
/// after it expires. Other systems read the precise clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn now_millis(&self) -> i64 {
        system_millis()
    }
}

/// The coarse real-time clock in whole milliseconds (floored).
#[cfg(target_os = "linux")]
fn system_millis() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    // `tv_nsec` is in 0..1e9, also before 1970: the sum is floored.
    t.tv_sec * 1_000 + t.tv_nsec / 1_000_000
}

/// The real-time clock in whole milliseconds (floored).
#[cfg(not(target_os = "linux"))]
fn system_millis() -> i64 {
    use std::time::SystemTime;
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i64,
        // Before 1970: floored, as `to_millis` floors.
        Err(before) => -(before.duration().as_nanos().div_ceil(1_000_000) as i64),
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use slates::{Clock, ManualClock};
/// use time::Duration;
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::days(15));
/// assert_eq!(clock.now() - t0, Duration::days(15));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    // Milliseconds since the Unix epoch: the precision BSON dates keep.
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock set to the current system time, truncated to milliseconds.
    pub fn new() -> Self {
        Self::at(OffsetDateTime::now_utc())
    }

    /// A clock set to `t`, truncated to milliseconds.
    pub fn at(t: OffsetDateTime) -> Self {
        ManualClock {
            millis: Arc::new(AtomicI64::new(to_millis(t))),
        }
    }

    /// Moves the clock by `d` (which may be negative).
    pub fn advance(&self, d: Duration) {
        self.millis
            .fetch_add(d.whole_milliseconds() as i64, Ordering::SeqCst);
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: OffsetDateTime) {
        self.millis.store(to_millis(t), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        from_millis(self.millis.load(Ordering::SeqCst))
    }

    fn now_millis(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
    }
}

pub(crate) fn to_millis(t: OffsetDateTime) -> i64 {
    // Whole seconds (floored) and the millisecond within: no 128-bit division.
    t.unix_timestamp() * 1_000 + i64::from(t.millisecond())
}

pub(crate) fn from_millis(ms: i64) -> OffsetDateTime {
    // Whole seconds and the millisecond within, as `to_millis` splits them: no 128-bit
    // arithmetic (the memory store turns several stored times into instants per lookup).
    let milli = ms.rem_euclid(1_000) as u16;
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1_000))
        .and_then(|t| t.replace_millisecond(milli))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The system clock's milliseconds never run ahead of its precise `now()`, and lag it
    /// by less than two ticks of the coarse clock (plus a millisecond of truncation): read
    /// between two readings of `now()`, they are at most the second, and most are within
    /// two ticks of the first. Readings spread over some fifteen ticks. A clock of another
    /// kind (monotonic, or off by a zone) fails at once; so does one lagging by 8 ms more.
    #[test]
    fn system_millis_follow_now() {
        let tick = coarse_tick_millis();
        let mut lags = Vec::new();
        for _ in 0..200 {
            let before = to_millis(SystemClock.now());
            let millis = SystemClock.now_millis();
            let after = to_millis(SystemClock.now());
            assert!(millis <= after, "{millis} ahead of {after}");
            lags.push(before - millis);
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
        lags.sort();
        // A reading preempted between two calls only lags less; a tick the kernel runs late
        // (a loaded machine) lags more: the 90th percentile must be within bounds.
        let p90 = lags[lags.len() * 9 / 10];
        assert!(p90 <= 2 * tick + 1, "lags {lags:?} ms, tick {tick} ms");
    }

    /// The coarse clock's tick, in whole milliseconds rounded up (0 where the precise clock is
    /// read).
    fn coarse_tick_millis() -> i64 {
        #[cfg(target_os = "linux")]
        {
            let res = rustix::time::clock_getres(rustix::time::ClockId::RealtimeCoarse);
            (res.tv_sec * 1_000_000_000 + res.tv_nsec + 999_999) / 1_000_000
        }
        #[cfg(not(target_os = "linux"))]
        0
    }

    proptest! {
        /// `from_millis` is the instant `ms` milliseconds from the epoch, as the 128-bit
        /// nanosecond computation gives it, before 1970 too; `to_millis` undoes it.
        #[test]
        fn millis_round_trip(ms in prop_oneof![
            -62_135_596_800_000i64..253_402_300_800_000,
            -2_000i64..2_000,
        ]) {
            let t = from_millis(ms);
            let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            prop_assert_eq!(t, expected);
            prop_assert_eq!(to_millis(t), ms);
        }
    }
}
