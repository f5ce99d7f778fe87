//! How the memory store finds a shard and a bucket: a token by bits of its SHA-256, a user
//! and a slate by a keyed hash of their names, computed once per operation.

use std::hash::{BuildHasher, Hash, Hasher};

use crate::names::{SlateName, Username};
use crate::token::TokenHash;

/// Shards of each table, each behind its own mutex.
pub(super) const SHARDS: usize = 64;

/// The hash of a token in its table: 8 bytes of its SHA-256. A SHA-256 is uniform already,
/// and only tokens the server generated are ever inserted, so no one can choose keys that
/// pile into one bucket: a keyed hash would buy nothing here.
pub(super) fn token_hash(hash: &TokenHash) -> u64 {
    let bytes = hash.as_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// The shard of a token: its SHA-256's last byte (`SHARDS` divides 256), bits the table's
/// hash does not use.
pub(super) fn token_shard(hash: &TokenHash) -> usize {
    usize::from(hash.as_bytes()[31]) % SHARDS
}

/// Keyed hashes of usernames and slate names.
///
/// Usernames are chosen by clients (at signup), so the hash is keyed with random keys drawn
/// for each store: no one can compute names that pile into one bucket (hash flooding).
/// [aHash](https://docs.rs/ahash) rather than std's SipHash: keyed the same way, several
/// times faster on short keys, and designed to resist such attacks; foldhash (hashbrown's
/// default) explicitly does not claim to resist an attacker who can observe timings.
#[derive(Default)]
pub(super) struct Keys(ahash::RandomState);

/// The hash of one username: it picks the user's shard (where the user's entry and every
/// slate of the user live, under one lock) and the user's bucket.
#[derive(Clone, Copy)]
pub(super) struct UserHash(u64);

/// The hashes of one slate key: its user's, and the slate's bucket.
#[derive(Clone, Copy)]
pub(super) struct SlateHash {
    pub user: UserHash,
    pub slate: u64,
}

impl Keys {
    pub fn user(&self, user: &Username) -> UserHash {
        UserHash(self.0.hash_one(user.as_str()))
    }

    /// Both hashes in one pass over the names.
    pub fn slate(&self, user: &Username, slate: &SlateName) -> SlateHash {
        let mut hasher = self.0.build_hasher();
        user.as_str().hash(&mut hasher);
        let user = UserHash(hasher.finish());
        slate.as_str().hash(&mut hasher);
        SlateHash {
            user,
            slate: hasher.finish(),
        }
    }
}

impl UserHash {
    /// Bits 40 to 45: the tables inside a shard use the low bits (the bucket) and the top 7
    /// (the tag), which must stay independent of the shard.
    pub fn shard(self) -> usize {
        (self.0 >> 40) as usize % SHARDS
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_gives_the_user_hash_too() {
        let keys = Keys::default();
        let ada = Username::new("ada").unwrap();
        let both = keys.slate(&ada, &SlateName::user());
        assert_eq!(both.user.get(), keys.user(&ada).get());
        assert_ne!(both.slate, both.user.get());
        // Another store draws other keys.
        assert_ne!(Keys::default().user(&ada).get(), keys.user(&ada).get());
    }
}
