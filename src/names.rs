//! Validated names: usernames, slate names and field paths.
//!
//! Usernames become collection names (per-user layout) or key parts, slate names become
//! document ids, so both are checked before anything reaches a store. A bad name is a typed
//! [`Error::InvalidName`], never a panic and never a query.

use arcstr::ArcStr;
use smol_str::SmolStr;
use std::borrow::Borrow;
use std::fmt;

use crate::error::{Error, NameKind, Result};

/// Longest accepted username or slate name, in bytes.
pub const MAX_NAME_BYTES: usize = 120;

/// Field names that slates keeps for itself at the top of every slate document.
pub const RESERVED_FIELDS: [&str; 3] = ["_id", "_v", "_expires"];

fn check_common(name: &str, kind: NameKind) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(kind, "must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(kind, "must be at most 120 bytes"));
    }
    if name.contains('\0') {
        return Err(Error::invalid(kind, "must not contain NUL"));
    }
    if name.contains('$') {
        return Err(Error::invalid(kind, "must not contain `$`"));
    }
    Ok(())
}

/// A validated username: non-empty, at most 120 bytes, no NUL, no `$`, not starting with `_`
/// (reserved for slates' own collections such as `_auth`), `system.` or `.` (which MongoDB
/// refuses as a collection name).
///
/// Cloning is cheap: a name of up to 23 bytes is kept inline (a copy of 24 bytes, no
/// allocation, no reference count), a longer one in one shared allocation.
///
/// ```
/// use slates::Username;
/// assert!(Username::new("admin").is_ok());
/// assert!(Username::new("_auth").is_err());
/// assert!(Username::new("system.users").is_err());
/// assert!(Username::new("a$b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(SmolStr);

impl Username {
    /// Validates `name` as a username.
    pub fn new(name: &str) -> Result<Self> {
        Self::validate(name)?;
        Ok(Username(SmolStr::new(name)))
    }

    /// Checks `name` against the username rules without allocating.
    pub fn validate(name: &str) -> Result<()> {
        let kind = NameKind::Username;
        check_common(name, kind)?;
        if name.starts_with('_') {
            return Err(Error::invalid(kind, "must not start with `_` (reserved)"));
        }
        if name.starts_with("system.") {
            return Err(Error::invalid(kind, "must not start with `system.`"));
        }
        if name.starts_with('.') {
            // MongoDB and FerretDB refuse such collection names (per-user layout).
            return Err(Error::invalid(kind, "must not start with `.`"));
        }
        Ok(())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    // ---- guest owners (issue 14) ----

    /// The internal owner of the guest slates of the guest token whose SHA-256 is `hash`:
    /// `_g.<hex>`. Crate-private: a username never starts with `_` ([`validate`](Self::validate)),
    /// so no user input can build one, and no user can collide with a guest.
    pub(crate) fn guest(hash: &crate::token::TokenHash) -> Self {
        Username(SmolStr::from(format!("{GUEST_PREFIX}{}", hash.to_hex())))
    }

    /// Whether this is the internal owner of a visitor's guest slates rather than a user
    /// (stores route guest slates to a collection of their own). Never true for a name
    /// that passed [`new`](Self::new).
    pub fn is_guest(&self) -> bool {
        self.0.starts_with(GUEST_PREFIX)
    }

    /// A username or a guest owner from its stored form (what [`as_str`](Self::as_str)
    /// gave): a valid username, or `_g.` and a token hash in hex. For the stores' own
    /// records (invalidations); user input goes through [`new`](Self::new).
    #[cfg_attr(not(feature = "mongodb"), allow(dead_code))] // read by MongoStore's channel
    pub(crate) fn from_stored(name: &str) -> Option<Self> {
        match name.strip_prefix(GUEST_PREFIX) {
            Some(hex) => crate::token::TokenHash::from_hex(hex).map(|h| Username::guest(&h)),
            None => Username::new(name).ok(),
        }
    }

    /// A copy of a name that was a `Username` (a store's own packed copy of one), not
    /// validated again.
    pub(crate) fn copy_of(name: &str) -> Self {
        // A short name (a packed line's are at most 15 bytes) is copied inline directly,
        // without the runs of spaces and newlines `SmolStr::new` looks for first.
        match name.len() <= INLINE_BYTES {
            true => Username(SmolStr::new_inline(name)),
            false => Username(SmolStr::new(name)),
        }
    }

    /// For a guest owner, the hex SHA-256 of its guest token (the part after `_g.`).
    pub fn guest_hash(&self) -> Option<&str> {
        self.0.strip_prefix(GUEST_PREFIX)
    }
}

/// The longest string a `SmolStr` keeps inline.
const INLINE_BYTES: usize = 23;

/// The prefix of guest owners: `_g.` then the hex SHA-256 of the guest token.
const GUEST_PREFIX: &str = "_g.";

/// A validated slate name: non-empty, at most 120 bytes, no NUL, no `$`, no `.`.
///
/// ```
/// use slates::SlateName;
/// assert!(SlateName::new("new_id_set").is_ok());
/// assert!(SlateName::new("a.b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlateName(ArcStr);

impl SlateName {
    /// The name of the user slate, read near the start of most requests.
    pub const USER: &'static str = "user";

    /// Validates `name` as a slate name. `"user"` is [`user`](Self::user), a static string.
    pub fn new(name: &str) -> Result<Self> {
        Self::validate(name)?;
        if name == Self::USER {
            return Ok(Self::user());
        }
        Ok(SlateName(ArcStr::from(name)))
    }

    /// Checks `name` against the slate name rules without allocating.
    pub fn validate(name: &str) -> Result<()> {
        let kind = NameKind::SlateName;
        check_common(name, kind)?;
        if name.contains('.') {
            return Err(Error::invalid(kind, "must not contain `.`"));
        }
        Ok(())
    }

    /// The user slate's name, read near the start of most requests: a static string, so a
    /// clone is a pointer copy (no reference count, no allocation).
    pub fn user() -> Self {
        SlateName(arcstr::literal!("user"))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A slate name of slates' own (`.guest`, `.flash`): it holds a `.`, which
    /// [`validate`](Self::validate) refuses, so no app slate can have it.
    pub(crate) fn reserved(name: &'static str) -> Self {
        debug_assert!(name.starts_with('.'));
        SlateName(ArcStr::from(name))
    }
}

/// Checks a field path given to an update operator (`"hits"`, `"profile.tz"`): dot-separated
/// non-empty segments, none starting with `$`, no NUL, and not one of the [`RESERVED_FIELDS`]
/// at the top level.
pub fn validate_field(path: &str) -> Result<()> {
    let kind = NameKind::Field;
    if path.is_empty() {
        return Err(Error::invalid(kind, "must not be empty"));
    }
    if path.contains('\0') {
        return Err(Error::invalid(kind, "must not contain NUL"));
    }
    for segment in path.split('.') {
        if segment.is_empty() {
            return Err(Error::invalid(kind, "must not have an empty path segment"));
        }
        if segment.starts_with('$') {
            return Err(Error::invalid(kind, "segments must not start with `$`"));
        }
    }
    let top = path.split('.').next().unwrap_or(path);
    if RESERVED_FIELDS.contains(&top) {
        return Err(Error::invalid(
            kind,
            "`_id`, `_v` and `_expires` are reserved",
        ));
    }
    Ok(())
}

macro_rules! name_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<&str> for $t {
            type Error = Error;
            fn try_from(name: &str) -> Result<Self> {
                <$t>::new(name)
            }
        }
    };
}
name_impls!(Username);
name_impls!(SlateName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_the_name_inline_when_it_fits() {
        for len in 1..=40 {
            let name = "é".repeat(len / 2) + &"a".repeat(len % 2);
            let copy = Username::copy_of(&name);
            assert_eq!(copy.as_str(), name);
            assert_eq!(
                copy.0.is_heap_allocated(),
                name.len() > INLINE_BYTES,
                "{name}"
            );
        }
    }

    #[test]
    fn usernames() {
        for ok in [
            "admin",
            "a",
            "Zoë",
            "名前",
            "user.name",
            "a b",
            &"x".repeat(120),
        ] {
            assert!(Username::new(ok).is_ok(), "{ok:?} should be accepted");
        }
        for bad in [
            "",
            "_auth",
            "_x",
            "system.users",
            "a$b",
            "$",
            "a\0b",
            &"x".repeat(121),
        ] {
            assert!(
                matches!(
                    Username::new(bad),
                    Err(Error::InvalidName {
                        kind: NameKind::Username,
                        ..
                    })
                ),
                "{bad:?} should be refused"
            );
        }
        // 120 bytes, not 120 characters.
        assert!(Username::new(&"é".repeat(61)).is_err());
        assert!(Username::new(&"é".repeat(60)).is_ok());
    }

    #[test]
    fn short_usernames_inline_user_slate_name_static() {
        // What the memory store's layout counts on (issue 12, point 8): a token check reads
        // a short username where the record is, and a user-slate key clone counts nothing.
        assert_eq!(std::mem::size_of::<Username>(), 24);
        assert!(!Username::new(&"a".repeat(23))
            .unwrap()
            .0
            .is_heap_allocated());
        assert!(Username::new(&"a".repeat(24))
            .unwrap()
            .0
            .is_heap_allocated());
        assert_eq!(std::mem::size_of::<SlateName>(), 8);
        assert!(ArcStr::is_static(&SlateName::new("user").unwrap().0));
        assert!(!ArcStr::is_static(&SlateName::new("cart").unwrap().0));
    }

    #[test]
    fn slate_names() {
        for ok in ["user", "new_id_set", "_private", "system", "x-y"] {
            assert!(SlateName::new(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a.b", "a$", "\0", &"s".repeat(121)] {
            assert!(SlateName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fields() {
        for ok in ["hits", "profile.tz", "a_b", "_own"] {
            assert!(validate_field(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", "_id", "_v", "_expires", "_v.x", "$set", "a.$b", "a..b", ".a", "a\0",
        ] {
            assert!(validate_field(bad).is_err(), "{bad:?}");
        }
    }
}
