//! Slate versions: a fresh random 64-bit value on every write.
//!
//! A counter that restarts when a slate is deleted or expires would let a compare-and-swap
//! that read the old slate succeed against the new one (a silent lost update). A random
//! version is never reused in practice: a stale reader's version matches a later write with
//! probability 2⁻⁶⁴ per write, and both stores write it the same way (MongoDB: `$set` of a
//! value chosen by the client, which also needs no read of the old one).

/// A fresh slate version: 64 random bits from the thread's CSPRNG, never 0.
pub fn fresh_version() -> i64 {
    loop {
        let v: i64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_differ() {
        let a: std::collections::HashSet<i64> = (0..10_000).map(|_| fresh_version()).collect();
        assert_eq!(a.len(), 10_000);
        assert!(!a.contains(&0));
    }
}
