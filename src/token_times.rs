//! [`TokenTimes`]: the configured durations every authenticated request checks its token
//! against (the absolute lifetime, the renewal threshold, the last-seen interval), in whole
//! milliseconds, the precision records keep: computed once when the engine is built, so a
//! request compares integers instead of doing `OffsetDateTime` and 128-bit arithmetic.

use time::OffsetDateTime;

use crate::clock::from_millis;
use crate::config::Config;
use crate::store::TokenBrief;

/// The token durations of a [`Config`], in milliseconds.
pub(crate) struct TokenTimes {
    /// The absolute lifetime.
    lifetime: i64,
    /// A token renews once less than this is left before it expires (`None`: sliding
    /// renewal is off, `renew_after >= 1`).
    renew_below: Option<f64>,
    /// The last-seen interval.
    last_seen: i64,
}

impl TokenTimes {
    pub fn new(config: &Config) -> Self {
        let millis = |d: time::Duration| i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX);
        let idle = config.idle_timeout.whole_milliseconds() as f64;
        TokenTimes {
            lifetime: millis(config.absolute_lifetime),
            renew_below: (config.renew_after < 1.0).then_some(idle * (1.0 - config.renew_after)),
            last_seen: millis(config.last_seen_interval),
        }
    }

    /// Whether the token's absolute lifetime is still running at `now` (in milliseconds):
    /// `now < created + lifetime`. An end past the last instant `time` represents (a
    /// `created` edited by hand far into the future) has ended at once, as in
    /// [`absolute_end`].
    pub fn within_lifetime(&self, token: &TokenBrief, now: i64) -> bool {
        running(token.created, self.lifetime, now)
    }

    /// Whether a request at `now` (in milliseconds) renews the token: never a rotated-out
    /// one; otherwise once more than the configured share of the idle timeout has passed
    /// (less than the rest remains).
    pub fn renewal_due(&self, token: &TokenBrief, now: i64) -> bool {
        match self.renew_below {
            Some(below) if !token.rotated => ((token.expires - now) as f64) < below,
            _ => false,
        }
    }

    /// Whether a request at `now` (in milliseconds) updates the device's last-seen time:
    /// the configured interval has passed since it, or the record has no device id yet.
    pub fn touch_due(&self, token: &TokenBrief, now: i64) -> bool {
        !token.has_device || now - token.last_seen >= self.last_seen
    }
}

/// The expiry a renewal at `now` gives: `now + idle_timeout` capped at the absolute
/// lifetime, if that moves it later.
pub(crate) fn renewed_expiry(
    config: &Config,
    token: &TokenBrief,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let new_expires = (now + config.idle_timeout).min(absolute_end(config, token));
    (new_expires > from_millis(token.expires)).then_some(new_expires)
}

/// When the token's absolute lifetime ends. A `created` so far ahead that the sum overflows
/// (a record edited by hand) ends at once: such a token is refused, not a panic.
fn absolute_end(config: &Config, token: &TokenBrief) -> OffsetDateTime {
    from_millis(token.created)
        .checked_add(config.absolute_lifetime)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The last millisecond an `OffsetDateTime` holds (the end of year 9999, or later with the
/// `time` crate's `large-dates` feature, which a dependency may enable).
const LAST_MILLI: i64 = time::PrimitiveDateTime::MAX.assume_utc().unix_timestamp() * 1_000 + 999;

/// `now < created + lifetime`, all in milliseconds; an end past [`LAST_MILLI`] has ended
/// at once.
fn running(created: i64, lifetime: i64, now: i64) -> bool {
    let end = created.saturating_add(lifetime);
    end <= LAST_MILLI && now < end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::to_millis;
    use proptest::prelude::*;

    #[test]
    fn last_milli_is_the_last_instant() {
        let last = time::PrimitiveDateTime::MAX.assume_utc();
        assert_eq!(to_millis(last), LAST_MILLI);
        assert_eq!(
            from_millis(LAST_MILLI),
            last.replace_nanosecond(999_000_000).unwrap()
        );
    }

    proptest! {
        /// The millisecond comparison decides as `now < created.checked_add(lifetime)`
        /// (an overflow ending the lifetime), for instants at millisecond precision from
        /// 1970 to the year 9999 and lifetimes up to 400 days, near the end especially.
        #[test]
        fn running_agrees_with_offset_date_time(
            created in prop_oneof![0..253_402_300_799_999i64, LAST_MILLI - 40_000_000_000..=LAST_MILLI],
            lifetime in 0..=34_560_000_000i64,
            offset in prop_oneof![-1i64..=1, -2_000i64..2_000, -40_000_000_000i64..40_000_000_000],
        ) {
            let created_t = from_millis(created);
            let lifetime_d = time::Duration::milliseconds(lifetime);
            let now = (created + lifetime + offset).clamp(0, LAST_MILLI);
            let expected = from_millis(now)
                < created_t
                    .checked_add(lifetime_d)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            prop_assert_eq!(running(created, lifetime, now), expected);
        }
    }
}
