//! [`BriefLine`]: what a token check reads of a stored token, packed into the 32 bytes its
//! cache line has beside the token's hash, so that a lookup reads that one line and no other
//! (issue 12: cache misses per request).
//!
//! It holds the username when it is at most 15 bytes, the login, expiry and last-seen times
//! to the millisecond when they lie within some four thousand years of 2020 and within four
//! years of each other, and two flags (rotated out, has a device). A token outside those
//! bounds is *spilled*: the flag says so, and its name and times are kept exactly elsewhere
//! (`tokens.rs`), so the store loses nothing; only its lookups read a second line.

use crate::names::Username;

/// A token's times in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Times {
    pub created: i64,
    pub expires: i64,
    pub last_seen: i64,
}

/// The username (up to 15 bytes, its length in the last byte) and the packed times and flags.
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct BriefLine {
    name: [u8; NAME_BYTES],
    bits: u128,
}

/// Bytes of the name field: 15 of name, one of length.
const NAME_BYTES: usize = 16;
/// 2020-01-01T00:00:00Z in milliseconds: the origin of the login time.
const ORIGIN_MS: i64 = 1_577_836_800_000;
/// Bits of the login time, signed, from [`ORIGIN_MS`] (±4,460 years).
const CREATED_BITS: u32 = 48;
/// Bits of the expiry and of the last-seen time, signed, from the login time (±4.3 years).
const DELTA_BITS: u32 = 38;

const SPILLED: u128 = 1;
const ROTATED: u128 = 1 << 1;
const DEVICE: u128 = 1 << 2;
const CREATED_AT: u32 = 3;
const EXPIRES_AT: u32 = CREATED_AT + CREATED_BITS;
const LAST_SEEN_AT: u32 = EXPIRES_AT + DELTA_BITS;
const _: () = assert!(LAST_SEEN_AT + DELTA_BITS <= 128);

impl BriefLine {
    /// The line of a token of `user` with `times` and flags, or `None` when the name or the
    /// times do not fit (the token is then kept spilled: [`spilled`](Self::spilled)).
    pub fn new(user: &str, times: Times, rotated: bool, device: bool) -> Option<Self> {
        let name = inline_name(user)?;
        let mut line = BriefLine {
            name,
            bits: flags(rotated, device),
        };
        line.set_times(times).then_some(line)
    }

    /// The line of a spilled token: the flags only.
    pub fn spilled(rotated: bool, device: bool) -> Self {
        BriefLine {
            name: [0; NAME_BYTES],
            bits: SPILLED | flags(rotated, device),
        }
    }

    /// Whether the name and times are kept elsewhere.
    pub fn is_spilled(&self) -> bool {
        self.bits & SPILLED != 0
    }

    pub fn rotated(&self) -> bool {
        self.bits & ROTATED != 0
    }

    pub fn has_device(&self) -> bool {
        self.bits & DEVICE != 0
    }

    pub fn set_rotated(&mut self) {
        self.bits |= ROTATED;
    }

    pub fn set_device(&mut self) {
        self.bits |= DEVICE;
    }

    /// The username of an unspilled line.
    pub fn user(&self) -> Username {
        let len = usize::from(self.name[NAME_BYTES - 1]);
        let name = std::str::from_utf8(&self.name[..len]).expect("a line holds a whole name");
        Username::copy_of(name)
    }

    /// Whether an unspilled line's username is `user`.
    pub fn is_user(&self, user: &Username) -> bool {
        inline_name(user.as_str()).is_some_and(|name| name == self.name)
    }

    /// The times of an unspilled line.
    pub fn times(&self) -> Times {
        let created = ORIGIN_MS + field(self.bits, CREATED_AT, CREATED_BITS);
        Times {
            created,
            expires: created + field(self.bits, EXPIRES_AT, DELTA_BITS),
            last_seen: created + field(self.bits, LAST_SEEN_AT, DELTA_BITS),
        }
    }

    /// Packs `times` into an unspilled line; `false` (the line unchanged) when they do not fit.
    pub fn set_times(&mut self, times: Times) -> bool {
        let packed = (|| {
            let created = times.created.checked_sub(ORIGIN_MS)?;
            let expires = times.expires.checked_sub(times.created)?;
            let last_seen = times.last_seen.checked_sub(times.created)?;
            Some(
                packed(created, CREATED_AT, CREATED_BITS)?
                    | packed(expires, EXPIRES_AT, DELTA_BITS)?
                    | packed(last_seen, LAST_SEEN_AT, DELTA_BITS)?,
            )
        })();
        let Some(packed) = packed else {
            return false;
        };
        self.bits = (self.bits & (SPILLED | ROTATED | DEVICE)) | packed;
        true
    }
}

/// The flag bits of a token rotated out or not, with a device or not.
fn flags(rotated: bool, device: bool) -> u128 {
    (if rotated { ROTATED } else { 0 }) | (if device { DEVICE } else { 0 })
}

/// `name` in the line's name field, if it is at most 15 bytes.
fn inline_name(name: &str) -> Option<[u8; NAME_BYTES]> {
    let bytes = name.as_bytes();
    let len = u8::try_from(bytes.len()).ok().filter(|&n| n < 16)?;
    let mut field = [0u8; NAME_BYTES];
    field[..bytes.len()].copy_from_slice(bytes);
    field[NAME_BYTES - 1] = len;
    Some(field)
}

/// `value` in `bits` bits (two's complement) at bit `at`, if it fits.
fn packed(value: i64, at: u32, bits: u32) -> Option<u128> {
    let limit = 1i64 << (bits - 1);
    (-limit..limit)
        .contains(&value)
        .then(|| (u128::from(value as u64) & ((1u128 << bits) - 1)) << at)
}

/// The signed `bits`-bit field at bit `at`.
fn field(packed: u128, at: u32, bits: u32) -> i64 {
    let raw = ((packed >> at) & ((1u128 << bits) - 1)) as u64;
    ((raw << (64 - bits)) as i64) >> (64 - bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Username {
        Username::new(s).unwrap()
    }

    #[test]
    fn keeps_names_times_and_flags_exactly_within_its_bounds() {
        let now = 1_765_000_000_123;
        let times = Times {
            created: now,
            expires: now + 400 * 86_400_000,
            last_seen: now - 5_000,
        };
        let line = BriefLine::new("ada.lovelace.15", times, false, true).unwrap();
        assert!(!line.is_spilled() && !line.rotated() && line.has_device());
        assert_eq!(line.user(), name("ada.lovelace.15"));
        assert!(line.is_user(&name("ada.lovelace.15")));
        assert!(!line.is_user(&name("ada.lovelace.1")));
        assert_eq!(line.times(), times);
        let mut line = line;
        line.set_rotated();
        let later = Times {
            last_seen: now + 1,
            ..times
        };
        assert!(line.set_times(later));
        assert_eq!(
            (line.times(), line.rotated(), line.has_device()),
            (later, true, true)
        );
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let now = 1_765_000_000_123;
        let ok = Times {
            created: now,
            expires: now + 1,
            last_seen: now,
        };
        assert!(BriefLine::new("sixteen.bytes.xx", ok, false, false).is_none());
        let delta = 1i64 << (DELTA_BITS - 1);
        for bad in [
            Times {
                expires: now + delta,
                ..ok
            },
            Times {
                last_seen: now - delta - 1,
                ..ok
            },
            Times {
                created: ORIGIN_MS - (1 << (CREATED_BITS - 1)) - 1,
                expires: 0,
                last_seen: 0,
            },
            Times {
                created: i64::MIN,
                ..ok
            },
        ] {
            assert!(
                BriefLine::new("ada", bad, false, false).is_none(),
                "{bad:?}"
            );
        }
        // The extremes that fit read back exactly.
        let edge = Times {
            created: ORIGIN_MS - (1 << (CREATED_BITS - 1)),
            expires: ORIGIN_MS - (1 << (CREATED_BITS - 1)) + delta - 1,
            last_seen: ORIGIN_MS - (1 << (CREATED_BITS - 1)) - delta,
        };
        assert_eq!(
            BriefLine::new("ada", edge, true, false).unwrap().times(),
            edge
        );
        let spilled = BriefLine::spilled(true, false);
        assert!(spilled.is_spilled() && spilled.rotated() && !spilled.has_device());
    }
}
