//! One user shard of the memory store: the entries of its users (their names, token hashes
//! and slate names) and every slate of those users, in one flat table keyed by (user,
//! slate), a document of up to 198 bytes of BSON in the slate's entry itself.

use bson::{Document, RawDocument};
use hashbrown::HashTable;
use time::OffsetDateTime;

use super::hashing::{Keys, SlateHash, UserHash};
use super::stamp::Stamp;
use crate::names::{SlateName, Username};
use crate::store::{fresh_version, SharedRawDocument, SlateDoc, SlateKey};
use crate::token::TokenHash;

/// The users of one shard and their slates, behind one mutex: a slate write and the update
/// of its user's entry are one locked step.
#[derive(Default)]
pub(super) struct UserShard {
    users: HashTable<UserEntry>,
    pub slates: HashTable<StoredSlate>,
}

/// What the store keeps about one user besides the records themselves.
pub(super) struct UserEntry {
    /// The username every token record and slate of the user holds a clone of (inline up
    /// to 23 bytes; a longer one is one allocation they share).
    pub name: Username,
    /// The user's token hashes (live or not yet swept): "log out everywhere", devices.
    pub tokens: Box<[TokenHash]>,
    /// The names of the user's slates in [`UserShard::slates`].
    pub slates: Box<[SlateName]>,
}

/// One slate: its key, its version and its expiry (to the millisecond, like MongoDB's) on
/// its first cache line, and its document as raw BSON on the next three when it fits there
/// ([`StoredDoc`]).
#[repr(align(64))]
pub(super) struct StoredSlate {
    pub user: Username,
    pub slate: SlateName,
    pub version: i64,
    expires: Option<Stamp>,
    doc: StoredDoc,
}

/// The most bytes of BSON a slate's entry holds itself: what is left of its four cache lines.
const INLINE: usize = 198;

/// A slate's document as its entry keeps it. A small one is in the entry itself, so that a
/// read takes it from the lines after the key's (at a million users and more, another
/// allocation is another page that is not in the TLB: the dearest step of a read); a larger
/// one is one shared allocation.
enum StoredDoc {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(SharedRawDocument),
}

impl StoredDoc {
    fn new(doc: SharedRawDocument) -> Self {
        let raw = doc.as_bytes();
        match u8::try_from(raw.len()) {
            Ok(len) if raw.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..raw.len()].copy_from_slice(raw);
                StoredDoc::Inline { len, bytes }
            }
            _ => StoredDoc::Shared(doc),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            StoredDoc::Inline { len, bytes } => &bytes[..usize::from(*len)],
            StoredDoc::Shared(doc) => doc.as_bytes(),
        }
    }

    fn get(&self) -> SharedRawDocument {
        match self {
            StoredDoc::Inline { .. } => {
                let raw = RawDocument::from_bytes(self.bytes())
                    .expect("kept from a framed document, byte for byte");
                SharedRawDocument::from(raw)
            }
            // A reference count, not a copy of the document.
            StoredDoc::Shared(doc) => doc.clone(),
        }
    }
}

impl StoredSlate {
    pub fn live(&self, now: OffsetDateTime) -> bool {
        self.expires.is_none_or(|e| e.after(now))
    }

    pub fn expires(&self) -> Option<OffsetDateTime> {
        self.expires.map(Stamp::get)
    }

    pub fn is(&self, key: &SlateKey) -> bool {
        // Reads no other cache line: a username up to 23 bytes is inline, and slate names
        // compare by pointer first (the user slate's name is one static string).
        self.user == key.user && self.slate == key.slate
    }

    /// The document (a copy of a small one, the shared allocation of a larger one).
    pub fn doc(&self) -> SharedRawDocument {
        self.doc.get()
    }

    /// The document as a [`Document`], parsed from where it is kept.
    pub fn to_document(&self) -> crate::error::Result<Document> {
        Ok(bson::from_slice(self.doc.bytes())?)
    }

    pub fn to_slate_doc(&self) -> SlateDoc {
        SlateDoc {
            doc: self.doc(),
            version: self.version,
            expires: self.expires(),
        }
    }
}

impl UserShard {
    /// The entry of `user`, if there is one.
    pub fn user_mut(&mut self, hash: UserHash, user: &Username) -> Option<&mut UserEntry> {
        self.users.find_mut(hash.get(), |e| e.name == *user)
    }

    /// The entry of `user`, made if absent.
    pub fn user_entry(&mut self, keys: &Keys, hash: UserHash, user: &Username) -> &mut UserEntry {
        self.users
            .entry(
                hash.get(),
                |e| e.name == *user,
                |e| keys.user(&e.name).get(),
            )
            .or_insert_with(|| UserEntry {
                name: user.clone(),
                tokens: Box::default(),
                slates: Box::default(),
            })
            .into_mut()
    }

    /// Drops the entry of `user` if it has neither tokens nor slates any more.
    pub fn prune(&mut self, hash: UserHash, user: &Username) {
        if let Ok(entry) = self.users.find_entry(hash.get(), |e| e.name == *user) {
            if entry.get().tokens.is_empty() && entry.get().slates.is_empty() {
                entry.remove();
            }
        }
    }

    /// The slate of `key`, live or not.
    pub fn slate(&self, hash: SlateHash, key: &SlateKey) -> Option<&StoredSlate> {
        self.slates.find(hash.slate, |s| s.is(key))
    }

    /// Stores `doc` as the slate of `key` with a fresh version; returns the version.
    pub fn store(
        &mut self,
        keys: &Keys,
        hash: SlateHash,
        key: &SlateKey,
        doc: SharedRawDocument,
        expires: Option<OffsetDateTime>,
    ) -> i64 {
        let version = fresh_version();
        let expires = expires.map(Stamp::new);
        if let Some(slate) = self.slates.find_mut(hash.slate, |s| s.is(key)) {
            slate.doc = StoredDoc::new(doc);
            slate.version = version;
            slate.expires = expires;
            return version;
        }
        let user = self.user_entry(keys, hash.user, &key.user);
        push(&mut user.slates, key.slate.clone());
        let slate = StoredSlate {
            user: user.name.clone(),
            slate: key.slate.clone(),
            doc: StoredDoc::new(doc),
            version,
            expires,
        };
        let rehash = |s: &StoredSlate| keys.slate(&s.user, &s.slate).slate;
        self.slates.insert_unique(hash.slate, slate, rehash);
        version
    }

    /// Removes the slate of `key`, live or not.
    pub fn remove(&mut self, hash: SlateHash, key: &SlateKey) -> Option<StoredSlate> {
        let (slate, _) = self
            .slates
            .find_entry(hash.slate, |s| s.is(key))
            .ok()?
            .remove();
        if let Some(user) = self.user_mut(hash.user, &key.user) {
            remove(&mut user.slates, &key.slate);
        }
        self.prune(hash.user, &key.user);
        Some(slate)
    }

    /// Removes every slate of `user`.
    pub fn remove_user_slates(&mut self, keys: &Keys, hash: UserHash, user: &Username) {
        let Some(entry) = self.user_mut(hash, user) else {
            return;
        };
        let names = std::mem::take(&mut entry.slates);
        for slate in names.iter() {
            let key = SlateKey::new(user.clone(), slate.clone());
            let hash = keys.slate(user, slate).slate;
            if let Ok(found) = self.slates.find_entry(hash, |s| s.is(&key)) {
                found.remove();
            }
        }
        self.prune(hash, user);
    }

    /// Removes the slates that expired by `now`; returns how many.
    pub fn purge_expired(&mut self, keys: &Keys, now: OffsetDateTime) -> usize {
        let expired: Vec<StoredSlate> = self.slates.extract_if(|s| !s.live(now)).collect();
        for slate in &expired {
            let hash = keys.user(&slate.user);
            if let Some(user) = self.user_mut(hash, &slate.user) {
                remove(&mut user.slates, &slate.slate);
            }
            self.prune(hash, &slate.user);
        }
        expired.len()
    }
}

/// Appends `item` to a boxed slice. A user has a few tokens and slates: an exact allocation
/// beats a vector's spare capacity, a million users over.
pub(super) fn push<T>(items: &mut Box<[T]>, item: T) {
    let mut list = Vec::from(std::mem::take(items));
    list.reserve_exact(1);
    list.push(item);
    *items = list.into_boxed_slice();
}

/// Removes `item` from a boxed slice; returns whether it was there.
pub(super) fn remove<T: PartialEq>(items: &mut Box<[T]>, item: &T) -> bool {
    if !items.contains(item) {
        return false;
    }
    let mut list = Vec::from(std::mem::take(items));
    list.retain(|i| i != item);
    *items = list.into_boxed_slice();
    true
}
