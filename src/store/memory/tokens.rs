//! The memory store's token records: [`StoredToken`], a [`TokenRecord`] in the form the
//! token table keeps inline, and the [`TokenStore`] methods.

use std::collections::HashSet;
use std::future::ready;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::brief_line::{BriefLine, Times};
use super::hashing::{token_hash, token_shard};
use super::stamp::Stamp;
use super::users::{push, remove};
use super::{MemoryStore, SWEEP_EVERY};
use crate::clock::{from_millis, to_millis};
use crate::device_id::DeviceId;
use crate::error::{Error, Result};
use crate::names::Username;
use crate::store::{StoreFuture, StoreOptions, TokenBrief, TokenRecord, TokenStore};
use crate::sync::lock;
use crate::token::TokenHash;

/// A [`TokenRecord`] as the token table keeps it: 128 bytes on two cache lines of their own.
/// The first holds the hash and what a token check reads ([`BriefLine`]: the username, the
/// times to the millisecond, the rotated and device flags), so that a lookup reads that
/// line alone; the second the rest: the renewal and rotation times, the device id, the
/// label and address (shared with every token that has the same ones: [`Clients`]), and the
/// exact name and times of a token whose line could not hold them ([`Spill`]).
#[repr(C, align(64))]
pub(super) struct StoredToken {
    pub hash: TokenHash,
    line: BriefLine,
    renewed: Option<Stamp>,
    rotated: Option<Stamp>,
    device: Option<DeviceId>,
    client: Option<Arc<Client>>,
    /// Set exactly when the line is spilled.
    spill: Option<Box<Spill>>,
}

/// The name and times of a token whose [`BriefLine`] cannot hold them (a username over 15
/// bytes, times far from today or from each other).
struct Spill {
    user: Username,
    times: Times,
}

impl StoredToken {
    fn new(record: &TokenRecord, user: Username, client: Option<Arc<Client>>) -> Self {
        let times = Times {
            created: to_millis(record.created),
            expires: to_millis(record.expires),
            last_seen: to_millis(record.last_seen),
        };
        let (rotated, device) = (record.rotated.is_some(), record.device.is_some());
        let (line, spill) = match BriefLine::new(user.as_str(), times, rotated, device) {
            Some(line) => (line, None),
            None => (
                BriefLine::spilled(rotated, device),
                Some(Box::new(Spill { user, times })),
            ),
        };
        StoredToken {
            hash: record.hash,
            line,
            renewed: record.renewed.map(Stamp::new),
            rotated: record.rotated.map(Stamp::new),
            device: record.device.clone(),
            client,
            spill,
        }
    }

    /// The spilled name and times, if the line does not hold them.
    fn spilled(&self) -> Option<&Spill> {
        match self.line.is_spilled() {
            true => self.spill.as_deref(),
            false => None,
        }
    }

    /// The user's name (a copy of the line's, or a clone of `UserEntry::name`).
    pub fn user(&self) -> Username {
        match self.spilled() {
            Some(spill) => spill.user.clone(),
            None => self.line.user(),
        }
    }

    /// Whether the token is `user`'s.
    pub fn is_user(&self, user: &Username) -> bool {
        match self.spilled() {
            Some(spill) => spill.user == *user,
            None => self.line.is_user(user),
        }
    }

    fn times(&self) -> Times {
        match self.spilled() {
            Some(spill) => spill.times,
            None => self.line.times(),
        }
    }

    /// Sets the times: in the line if they fit, else spilled (with the name).
    fn set_times(&mut self, times: Times) {
        if let Some(spill) = &mut self.spill {
            spill.times = times;
        } else if !self.line.set_times(times) {
            let user = self.line.user();
            self.line = BriefLine::spilled(self.line.rotated(), self.line.has_device());
            self.spill = Some(Box::new(Spill { user, times }));
        }
    }

    pub fn to_record(&self) -> TokenRecord {
        let client = self.client.as_deref();
        let times = self.times();
        TokenRecord {
            hash: self.hash,
            user: self.user(),
            created: from_millis(times.created),
            expires: from_millis(times.expires),
            renewed: self.renewed.map(Stamp::get),
            rotated: self.rotated.map(Stamp::get),
            device: self.device.clone(),
            last_seen: from_millis(times.last_seen),
            label: client.map_or_else(String::new, |c| c.label.to_string()),
            ip: client.and_then(|c| c.ip.as_deref().map(str::to_owned)),
        }
    }

    /// What a request needs of the record ([`TokenBrief`]), read from the first line alone
    /// (unless spilled).
    pub fn brief(&self) -> TokenBrief {
        let times = self.times();
        TokenBrief {
            user: self.user(),
            created: times.created,
            expires: times.expires,
            last_seen: times.last_seen,
            rotated: self.line.rotated(),
            has_device: self.line.has_device(),
        }
    }

    pub fn live(&self, now: OffsetDateTime) -> bool {
        self.live_at(to_millis(now))
    }

    fn live_at(&self, now: i64) -> bool {
        self.times().expires > now
    }
}

/// What a token record says of the client at login: its device label ("Firefox on Linux")
/// and its network, if recorded.
#[derive(PartialEq, Eq, Hash)]
pub(super) struct Client {
    label: Box<str>,
    ip: Option<Box<str>>,
}

/// One allocation per distinct [`Client`]: a label names a browser and a system, so a
/// million tokens share a few dozen (a few thousand with networks recorded). Bounded: past
/// [`MAX_CLIENTS`] distinct ones, or for a label or network longer than
/// [`MAX_CLIENT_LEN`], a token gets an allocation of its own.
#[derive(Default)]
pub(super) struct Clients(Mutex<HashSet<Arc<Client>>>);

const MAX_CLIENTS: usize = 4096;
const MAX_CLIENT_LEN: usize = 64;

impl Clients {
    fn intern(&self, label: &str, ip: Option<&str>) -> Option<Arc<Client>> {
        if label.is_empty() && ip.is_none() {
            return None;
        }
        let client = Client {
            label: label.into(),
            ip: ip.map(Box::from),
        };
        if label.len() + ip.map_or(0, str::len) > MAX_CLIENT_LEN {
            return Some(Arc::new(client));
        }
        let mut known = lock(&self.0);
        if let Some(shared) = known.get(&client) {
            return Some(Arc::clone(shared));
        }
        let shared = Arc::new(client);
        if known.len() < MAX_CLIENTS {
            known.insert(Arc::clone(&shared));
        }
        Some(shared)
    }
}

impl MemoryStore {
    /// `read` of the live record of `hash` at `now` (in milliseconds), if any.
    fn live_token<T>(
        &self,
        hash: &TokenHash,
        now: i64,
        read: impl FnOnce(&StoredToken) -> T,
    ) -> Option<T> {
        let shard = self.inner.token_shard(hash);
        shard
            .find(token_hash(hash), |t| t.hash == *hash)
            .filter(|t| t.live_at(now))
            .map(read)
    }

    /// Removes `hash` from the entry of `user`.
    fn unindex_token(&self, user: &Username, hash: &TokenHash) {
        let keys = &self.inner.keys;
        let user_hash = keys.user(user);
        let mut shard = self.inner.user_shard(user_hash);
        if let Some(entry) = shard.user_mut(user_hash, user) {
            remove(&mut entry.tokens, hash);
        }
        shard.prune(user_hash, user);
    }

    /// Removes the expired tokens of token shard `shard` and their user-entry references;
    /// returns how many.
    pub(super) fn sweep_token_shard(&self, shard: usize, now: OffsetDateTime) -> usize {
        let expired: Vec<StoredToken> = lock(&self.inner.tokens[shard])
            .extract_if(|t| !t.live(now))
            .collect();
        for token in &expired {
            self.unindex_token(&token.user(), &token.hash);
        }
        expired.len()
    }

    /// Removes the tokens `hashes` from their tables; returns how many were there.
    fn delete_tokens(&self, hashes: impl IntoIterator<Item = TokenHash>) -> u64 {
        let mut n = 0;
        for hash in hashes {
            let mut shard = self.inner.token_shard(&hash);
            if let Ok(found) = shard.find_entry(token_hash(&hash), |t| t.hash == hash) {
                found.remove();
                n += 1;
            }
        }
        n
    }

    /// A copy of the token hashes of `user`.
    fn user_token_hashes(&self, user: &Username) -> Vec<TokenHash> {
        let user_hash = self.inner.keys.user(user);
        let mut shard = self.inner.user_shard(user_hash);
        shard
            .user_mut(user_hash, user)
            .map(|e| e.tokens.to_vec())
            .unwrap_or_default()
    }
}

impl TokenStore for MemoryStore {
    fn prepare_tokens<'a>(&'a self, _options: &'a StoreOptions) -> StoreFuture<'a, ()> {
        Box::pin(ready(Ok(())))
    }

    fn insert_token<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let inner = &self.inner;
            let client = inner.clients.intern(&record.label, record.ip.as_deref());
            let user_hash = inner.keys.user(&record.user);
            {
                // Lock order: the user shard, then the token shard (as `delete_device`).
                let mut users = inner.user_shard(user_hash);
                let mut tokens = inner.token_shard(&record.hash);
                let hash = token_hash(&record.hash);
                if tokens.find(hash, |t| t.hash == record.hash).is_some() {
                    return Err(Error::DuplicateKey);
                }
                let entry = users.user_entry(&inner.keys, user_hash, &record.user);
                push(&mut entry.tokens, record.hash);
                let stored = StoredToken::new(record, entry.name.clone(), client);
                tokens.insert_unique(hash, stored, |t| token_hash(&t.hash));
            }
            if inner.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                self.sweep_token_shard(token_shard(&record.hash), record.created);
            }
            Ok(())
        })
    }

    fn find_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<TokenRecord>> {
        Box::pin(async move { Ok(self.live_token(hash, to_millis(now), StoredToken::to_record)) })
    }

    /// Always at hand: the same lookup as `find_token`, with no future.
    fn find_token_ready(&self, hash: &TokenHash, now: i64) -> Option<Result<Option<TokenBrief>>> {
        Some(Ok(self.live_token(hash, now, StoredToken::brief)))
    }

    fn renew_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        previous: OffsetDateTime,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut shard = self.inner.token_shard(hash);
            match shard.find_mut(token_hash(hash), |t| t.hash == *hash) {
                Some(t)
                    if t.live(now)
                        && t.times().expires == to_millis(previous)
                        && t.rotated.is_none() =>
                {
                    let times = t.times();
                    t.set_times(Times {
                        expires: to_millis(expires),
                        ..times
                    });
                    t.renewed = Some(Stamp::new(now));
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    fn retire_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut shard = self.inner.token_shard(hash);
            match shard.find_mut(token_hash(hash), |t| t.hash == *hash) {
                Some(t) => {
                    let times = t.times();
                    t.set_times(Times {
                        expires: times.expires.min(to_millis(at)),
                        ..times
                    });
                    t.rotated = Some(Stamp::new(now));
                    t.line.set_rotated();
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn delete_token<'a>(&'a self, hash: &'a TokenHash) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let removed = {
                let mut shard = self.inner.token_shard(hash);
                match shard.find_entry(token_hash(hash), |t| t.hash == *hash) {
                    Ok(found) => Some(found.remove().0),
                    Err(_) => None,
                }
            };
            match removed {
                Some(token) => {
                    self.unindex_token(&token.user(), hash);
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn delete_user_tokens<'a>(&'a self, user: &'a Username) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let hashes = {
                let user_hash = self.inner.keys.user(user);
                let mut shard = self.inner.user_shard(user_hash);
                let hashes = match shard.user_mut(user_hash, user) {
                    Some(entry) => std::mem::take(&mut entry.tokens),
                    None => Box::default(),
                };
                shard.prune(user_hash, user);
                hashes
            };
            Ok(self.delete_tokens(hashes))
        })
    }

    fn user_tokens<'a>(
        &'a self,
        user: &'a Username,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<TokenRecord>> {
        Box::pin(async move {
            // A copy of the user's hashes, so that no two locks are held at once here.
            let hashes = self.user_token_hashes(user);
            Ok(hashes
                .iter()
                .filter_map(|hash| {
                    let shard = self.inner.token_shard(hash);
                    shard
                        .find(token_hash(hash), |t| t.hash == *hash)
                        .filter(|t| t.live(now) && t.is_user(user))
                        .map(StoredToken::to_record)
                })
                .collect())
        })
    }

    fn touch_token<'a>(
        &'a self,
        hash: &'a TokenHash,
        assign: Option<&'a DeviceId>,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // Checked and written under the shard lock: one atomic step, never an insert.
            let mut shard = self.inner.token_shard(hash);
            let found = shard.find_mut(token_hash(hash), |t| t.hash == *hash);
            let Some(t) = found.filter(|t| t.live(now)) else {
                return Ok(false);
            };
            let times = t.times();
            match assign {
                None if times.last_seen <= to_millis(not_after) => {}
                Some(id) if t.device.is_none() => {
                    t.device = Some(id.clone());
                    t.line.set_device();
                }
                _ => return Ok(false),
            }
            t.set_times(Times {
                last_seen: to_millis(now),
                ..times
            });
            Ok(true)
        })
    }

    fn delete_device<'a>(
        &'a self,
        user: &'a Username,
        device: &'a DeviceId,
    ) -> StoreFuture<'a, Option<TokenHash>> {
        Box::pin(async move {
            // The user's shard stays locked for the whole search and delete, so the match on
            // (user, device) and the delete are one step. Lock order: a user shard, then a
            // token shard; no method holds a token shard while locking a user shard.
            let user_hash = self.inner.keys.user(user);
            let mut users = self.inner.user_shard(user_hash);
            let Some(entry) = users.user_mut(user_hash, user) else {
                return Ok(None);
            };
            let found = entry.tokens.iter().copied().find(|hash| {
                let mut tokens = self.inner.token_shard(hash);
                let Ok(mine) = tokens.find_entry(token_hash(hash), |t| {
                    t.hash == *hash && t.is_user(user) && t.device.as_ref() == Some(device)
                }) else {
                    return false;
                };
                mine.remove();
                true
            });
            if let Some(hash) = &found {
                remove(&mut entry.tokens, hash);
                users.prune(user_hash, user);
            }
            Ok(found)
        })
    }

    fn delete_user_tokens_except<'a>(
        &'a self,
        user: &'a Username,
        keep: &'a TokenHash,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let others: Vec<TokenHash> = {
                let user_hash = self.inner.keys.user(user);
                let mut shard = self.inner.user_shard(user_hash);
                let Some(entry) = shard.user_mut(user_hash, user) else {
                    return Ok(0);
                };
                let (kept, others): (Vec<TokenHash>, Vec<TokenHash>) =
                    entry.tokens.iter().partition(|h| *h == keep);
                entry.tokens = kept.into_boxed_slice();
                shard.prune(user_hash, user);
                others
            };
            Ok(self.delete_tokens(others))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_check_reads_is_in_the_first_cache_line() {
        // `find_token_ready` reads the hash and the brief line, and nothing else of an
        // unspilled token: both must lie in its first 64 bytes, and the entry must start a
        // line (issue 12: one miss per token check).
        let end = std::mem::offset_of!(StoredToken, line) + std::mem::size_of::<BriefLine>();
        assert_eq!(std::mem::offset_of!(StoredToken, hash), 0);
        assert!(end <= 64, "{end}");
        assert_eq!(std::mem::align_of::<StoredToken>(), 64);
    }
}
