//! `MemoryStore`: the embedded store, for examples, tests and running with no database.
//!
//! Laid out so that a request costs the same with a thousand users or a million (issue 12):
//! two tables, each split into [`SHARDS`] shards behind short `std` mutexes. The token
//! table holds each token record inline (`tokens.rs`); a user shard holds the users' entries
//! and every slate of those users in one flat table keyed by (user, slate), each slate's
//! document as raw BSON in the slate's entry when it is at most 198 bytes, else in one
//! allocation (`users.rs`). A username of up to 23 bytes is kept inline in every entry that
//! holds it (a longer one is one allocation they share); a token's first cache line holds a
//! copy of a name of up to 15 bytes (`brief_line.rs`). A token check reads that one line of
//! the token's entry; a profile read then the slate's entry (its document with it, when
//! small), and computes one keyed hash.

mod brief_line;
mod hashing;
mod slates;
mod stamp;
mod tokens;
mod users;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashTable;
use time::OffsetDateTime;

use self::hashing::{token_shard, Keys, UserHash, SHARDS};
use self::tokens::{Clients, StoredToken};
use self::users::UserShard;
use super::{SharedRawDocument, TokenRecord};
use crate::names::{SlateName, Username};
use crate::sync::lock;
use crate::token::TokenHash;

/// Every this many token inserts, the shard written to is swept of expired tokens, so a
/// long-running process does not keep tokens nobody will present again.
const SWEEP_EVERY: u64 = 256;

/// An in-memory [`Store`](super::Store) with the same semantics as `MongoStore`: atomic single-slate
/// operations, versioned compare-and-swap, expiry filtered at read time and the 16 MiB limit.
/// Updates are applied as MongoDB applies them (types, dotted paths through arrays,
/// `$addToSet` equality, field order), by the update interpreter (`interpreter.rs`).
///
/// Data is split into 64 shards, each behind its own short `std::sync::Mutex`; no lock is
/// held across an `.await` (every operation completes synchronously). Clones share the data.
/// A slate is kept as raw BSON: a document of up to 198 bytes in the slate's own entry, which
/// a read copies out (one allocation and a copy of the bytes), a larger one in one shared
/// allocation ([`SharedRawDocument`]), which a read hands out without a copy. Times (in
/// token records, slate expiries) are kept to the millisecond, in UTC, as MongoDB keeps
/// them.
///
/// To simulate an outage in tests, wrap it with the [`Faults`](super::Faults) decorator.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> slates::Result<()> {
/// use slates::{Engine, MemoryStore};
/// let engine = Engine::builder(MemoryStore::new()).build().await?;
/// let n = engine.user_slates("ada")?.raw_slate("counter").inc("hits", 1).await?;
/// assert_eq!(n, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

/// Lock order: a user shard, then a token shard; never a user shard while a token shard is
/// held, never two shards of one table.
struct Inner {
    /// Token records, sharded by their hash ([`token_shard`]).
    tokens: Box<[Mutex<HashTable<StoredToken>>]>,
    /// Users and their slates, sharded by username ([`UserHash::shard`]).
    users: Box<[Mutex<UserShard>]>,
    keys: Keys,
    clients: Clients,
    inserts: AtomicU64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            tokens: (0..SHARDS).map(|_| Mutex::default()).collect(),
            users: (0..SHARDS).map(|_| Mutex::default()).collect(),
            keys: Keys::default(),
            clients: Clients::default(),
            inserts: AtomicU64::new(0),
        }
    }
}

impl Inner {
    fn token_shard(&self, hash: &TokenHash) -> MutexGuard<'_, HashTable<StoredToken>> {
        lock(&self.tokens[token_shard(hash)])
    }

    fn user_shard(&self, hash: UserHash) -> MutexGuard<'_, UserShard> {
        lock(&self.users[hash.shard()])
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of token records held, expired ones not yet swept included.
    pub fn token_count(&self) -> usize {
        self.inner.tokens.iter().map(|s| lock(s).len()).sum()
    }

    /// Removes expired tokens and expired slates. Reads never return them anyway; this only
    /// frees memory (the memory store's stand-in for MongoDB's TTL monitor).
    pub fn purge_expired(&self, now: OffsetDateTime) -> usize {
        let tokens: usize = (0..SHARDS)
            .map(|shard| self.sweep_token_shard(shard, now))
            .sum();
        let slates: usize = self
            .inner
            .users
            .iter()
            .map(|shard| lock(shard).purge_expired(&self.inner.keys, now))
            .sum();
        tokens + slates
    }

    /// Raw access for tests and tools: every token record (including expired ones).
    pub fn dump_tokens(&self) -> Vec<TokenRecord> {
        self.inner
            .tokens
            .iter()
            .flat_map(|s| {
                lock(s)
                    .iter()
                    .map(StoredToken::to_record)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Raw access for tests and tools: every slate of every user, as
    /// `(user, slate, document)`, expired ones included.
    pub fn dump_slates(&self) -> Vec<(Username, SlateName, SharedRawDocument)> {
        let mut out = Vec::new();
        for shard in self.inner.users.iter() {
            for s in lock(shard).slates.iter() {
                out.push((s.user.clone(), s.slate.clone(), s.doc()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::to_millis;
    use crate::device_id::DeviceId;
    use crate::store::{Expiry, SlateKey, SlateStore, TokenBrief, TokenStore, UpdateOp};
    use bson::doc;

    #[test]
    fn entries_fill_whole_cache_lines() {
        // A token lookup reads the first of its two lines, a slate lookup its first and the
        // document on the three after it (issue 12: misses per request).
        assert_eq!(std::mem::size_of::<StoredToken>(), 128);
        assert_eq!(std::mem::size_of::<users::StoredSlate>(), 256);
    }

    #[tokio::test]
    async fn small_documents_are_kept_in_the_entry_larger_ones_shared() {
        use time::Duration;

        let store = MemoryStore::new();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let key = SlateKey::new(Username::new("ada").unwrap(), SlateName::user());
        // BSON of {"s": <string of n bytes>}: 4 (length) + 1 (type) + 2 ("s\0") + 4 (string
        // length) + n + 1 (its 0) + 1 (the document's 0) = n + 13 bytes.
        let of_size = |bytes: usize| doc! {"s": "x".repeat(bytes - 13)};
        let read = || async { store.get_slate(&key, now).await.unwrap().unwrap().doc };
        for (bytes, shared) in [(198, false), (199, true), (198, false), (4_000, true)] {
            let doc = of_size(bytes);
            store
                .put_slate(&key, &doc, Expiry::Keep, now)
                .await
                .unwrap();
            let (a, b) = (read().await, read().await);
            assert_eq!(a.as_bytes().len(), bytes);
            assert_eq!(
                (a.to_document().unwrap(), b.to_document().unwrap()),
                (doc.clone(), doc)
            );
            // A small document is copied out of the entry on every read, a larger one is
            // handed out where it is.
            let same = a.as_bytes().as_ptr() == b.as_bytes().as_ptr();
            assert_eq!(same, shared, "{bytes} bytes");
        }
        // An update reads the document where it is kept and may move it in or out.
        let grow = [UpdateOp::Set("t".into(), "y".repeat(300).into())];
        let small = doc! {"s": "x"};
        store
            .put_slate(&key, &small, Expiry::Keep, now)
            .await
            .unwrap();
        store
            .update_slate(&key, &grow, Expiry::Keep, None, now)
            .await
            .unwrap();
        let grown = read().await.to_document().unwrap();
        assert_eq!(grown, doc! {"s": "x", "t": "y".repeat(300)});
    }

    #[tokio::test]
    async fn long_names_share_one_allocation_times_to_the_millisecond() {
        use crate::token::Token;
        use time::{Duration, UtcOffset};

        const LONG: &str = "ada.lovelace.of.the.analytical.engine";
        let store = MemoryStore::new();
        let now =
            OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::nanoseconds(1_234_567);
        let paris = now.to_offset(UtcOffset::from_hms(1, 0, 0).unwrap());
        let ms = now - Duration::nanoseconds(234_567);
        let record = TokenRecord {
            hash: Token::generate().unwrap().hash(),
            // Longer than a name kept inline (23 bytes).
            user: Username::new(LONG).unwrap(),
            created: paris,
            expires: now + Duration::hours(1),
            renewed: None,
            rotated: None,
            device: None,
            last_seen: now,
            label: "Firefox on Linux".into(),
            ip: None,
        };
        store.insert_token(&record).await.unwrap();
        // Another `Username` of the same name: the store keeps the one it has.
        let key = SlateKey::new(Username::new(LONG).unwrap(), SlateName::user());
        store
            .put_slate(
                &key,
                &doc! {"a": 1},
                Expiry::At(now + Duration::hours(2)),
                now,
            )
            .await
            .unwrap();
        let found = store.find_token(&record.hash, now).await.unwrap().unwrap();
        let (user, _, _) = store.dump_slates().pop().unwrap();
        assert_eq!(found.user.as_str().as_ptr(), user.as_str().as_ptr());
        assert_eq!(found.label, "Firefox on Linux");
        // To the millisecond, in UTC.
        assert_eq!((found.created, found.last_seen), (ms, ms));
        assert_eq!(found.created.offset(), UtcOffset::UTC);
        let a = store.get_slate(&key, now).await.unwrap().unwrap();
        assert_eq!(a.expires, Some(ms + Duration::hours(2)));
        assert_eq!(a.doc.to_document().unwrap(), doc! {"a": 1});
    }

    #[tokio::test]
    async fn names_in_another_allocation_find_the_same_records() {
        use crate::token::Token;
        use time::Duration;

        // Slate names are compared by pointer first; a key built from other allocations of
        // the same names must still find what was stored.
        let store = MemoryStore::new();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let ada = || Username::new("ada").unwrap();
        let key = |user: Username| SlateKey::new(user, SlateName::new("cart").unwrap());
        store
            .put_slate(&key(ada()), &doc! {"a": 1}, Expiry::Keep, now)
            .await
            .unwrap();
        let device = DeviceId::generate().unwrap();
        let record = TokenRecord {
            hash: Token::generate().unwrap().hash(),
            user: ada(),
            created: now,
            expires: now + Duration::hours(1),
            renewed: None,
            rotated: None,
            device: Some(device.clone()),
            last_seen: now,
            label: String::new(),
            ip: None,
        };
        store.insert_token(&record).await.unwrap();

        assert!(store.get_slate(&key(ada()), now).await.unwrap().is_some());
        let other = Username::new("bob").unwrap();
        assert!(store
            .get_slate(&key(other.clone()), now)
            .await
            .unwrap()
            .is_none());
        assert_eq!(store.user_tokens(&ada(), now).await.unwrap().len(), 1);
        assert!(store.user_tokens(&other, now).await.unwrap().is_empty());
        assert_eq!(store.delete_device(&other, &device).await.unwrap(), None);
        assert_eq!(
            store.delete_device(&ada(), &device).await.unwrap(),
            Some(record.hash)
        );
        assert!(store.take_slate(&key(ada()), now).await.unwrap().is_some());
        // Nothing left: the user's entry went with its last record.
        assert!(store.dump_slates().is_empty() && store.dump_tokens().is_empty());
    }

    #[tokio::test]
    async fn tokens_out_of_the_packed_bounds_keep_their_records_exactly() {
        use crate::token::Token;
        use time::Duration;

        // A token's first cache line packs its name (up to 15 bytes) and times (within some
        // four years of each other); outside that, they are kept apart. Either way, records
        // and briefs read back exactly, through inserts, renewals, rotations and touches.
        let store = MemoryStore::new();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::milliseconds(7);
        let far = now + Duration::days(5 * 365);
        for (name, created, expires) in [
            ("ada", now, now + Duration::hours(1)),
            ("ada.lovelace.16b", now, now + Duration::hours(1)),
            ("bob", OffsetDateTime::UNIX_EPOCH, far),
            (
                "eve",
                now.replace_year(9999).unwrap(),
                now.replace_year(9999).unwrap(),
            ),
        ] {
            let record = TokenRecord {
                hash: Token::generate().unwrap().hash(),
                user: Username::new(name).unwrap(),
                created,
                expires,
                renewed: None,
                rotated: None,
                device: None,
                last_seen: created,
                label: String::new(),
                ip: None,
            };
            store.insert_token(&record).await.unwrap();
            let at = created.min(now);
            let read = || async { store.find_token(&record.hash, at).await.unwrap().unwrap() };
            assert_eq!(read().await, record, "{name} {created}");
            let brief = store.find_token_ready(&record.hash, to_millis(at));
            let brief = brief.unwrap().unwrap().unwrap();
            assert_eq!(brief, TokenBrief::from(&record));
            // A renewal five years on leaves the line's bounds (or stays out of them).
            let renewed_to = expires.max(far) + Duration::days(1);
            assert!(store
                .renew_token(&record.hash, expires, renewed_to, at)
                .await
                .unwrap());
            let device = DeviceId::generate().unwrap();
            let touched = at + Duration::milliseconds(3);
            let hash = &record.hash;
            assert!(store
                .touch_token(hash, Some(&device), touched, touched)
                .await
                .unwrap());
            let got = read().await;
            assert_eq!(
                (got.user.as_str(), got.created, got.expires, got.last_seen),
                (name, created, renewed_to, touched)
            );
            assert_eq!(
                (got.renewed, got.device.as_ref()),
                (Some(at), Some(&device))
            );
            let brief = store
                .find_token_ready(hash, to_millis(at))
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(brief, TokenBrief::from(&got));
            assert!(brief.has_device && !brief.rotated);
            assert!(store.retire_token(hash, touched, touched).await.unwrap());
            let got = store.find_token(hash, at).await.unwrap().unwrap();
            assert_eq!((got.expires, got.rotated), (touched, Some(touched)));
            let brief = store
                .find_token_ready(hash, to_millis(at))
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(brief.rotated && brief.expires == to_millis(touched));
            assert_eq!(store.user_tokens(&got.user, at).await.unwrap(), vec![got]);
        }
    }

    #[tokio::test]
    async fn purge_and_sweep_remove_only_expired_records() {
        use crate::names::{SlateName, Username};
        use crate::token::Token;
        use time::Duration;

        let store = MemoryStore::new();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let ada = Username::new("ada").unwrap();
        let record = |expires| TokenRecord {
            hash: Token::generate().unwrap().hash(),
            user: ada.clone(),
            created: now,
            expires,
            renewed: None,
            rotated: None,
            device: Some(DeviceId::generate().unwrap()),
            last_seen: now,
            label: String::new(),
            ip: None,
        };
        let live = record(now + Duration::hours(1));
        let dead = record(now + Duration::minutes(1));
        store.insert_token(&live).await.unwrap();
        store.insert_token(&dead).await.unwrap();
        let key = |s: &str| SlateKey::new(ada.clone(), SlateName::new(s).unwrap());
        store
            .put_slate(&key("keep"), &doc! {"a": 1}, Expiry::Keep, now)
            .await
            .unwrap();
        store
            .put_slate(
                &key("gone"),
                &doc! {"a": 1},
                Expiry::At(now + Duration::minutes(1)),
                now,
            )
            .await
            .unwrap();

        let later = now + Duration::minutes(2);
        assert_eq!(store.purge_expired(later), 2);
        assert_eq!(store.token_count(), 1);
        assert!(store.find_token(&live.hash, later).await.unwrap().is_some());
        assert_eq!(store.dump_slates().len(), 1);
        // The user index lost the purged token: logging out everywhere counts one.
        assert_eq!(store.delete_user_tokens(&ada).await.unwrap(), 1);

        // The amortised sweep on insert uses the same shard sweep.
        let stale = record(now + Duration::minutes(1));
        store.insert_token(&stale).await.unwrap();
        assert_eq!(store.sweep_token_shard(token_shard(&stale.hash), later), 1);
        assert_eq!(store.token_count(), 0);
    }
}
