//! [`Workflow`]: a workflow declared once: its slate name, document type and expiry.

use std::marker::PhantomData;

use time::Duration;

use crate::names::MAX_NAME_BYTES;

/// A multi-step task's slate, declared once: a name, a document type `T` and an expiry.
/// Handlers get a typed [`Slate<T>`](crate::Slate) with
/// [`UserSlates::workflow`](crate::UserSlates::workflow), so no handler can forget the
/// expiry (and make an abandoned workflow permanent) or read the document as another type.
///
/// Declare it as a `const`: the name is then checked at compile time (1-120 bytes, no `.`,
/// `$` or NUL, and not `user`, the profile's name), as is the expiry (whole milliseconds, at
/// least a second, at most [`MAX_DURATION`](crate::MAX_DURATION)).
///
/// ```
/// use slates::Workflow;
/// use time::Duration;
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Import { ids: Vec<i64>, confirmed: bool }
///
/// const IMPORT: Workflow<Import> =
///     Workflow::new("import_contacts").expires_after(Duration::minutes(20));
/// assert_eq!(IMPORT.name(), "import_contacts");
/// assert_eq!(IMPORT.ttl(), Some(Duration::minutes(20)));
/// ```
///
/// A bad name does not compile:
///
/// ```compile_fail
/// const BAD: slates::Workflow<()> = slates::Workflow::new("a.b");
/// ```
pub struct Workflow<T> {
    name: &'static str,
    ttl: Option<Duration>,
    document: PhantomData<fn() -> T>,
}

impl<T> Workflow<T> {
    /// A workflow named `name` whose slate never expires (add
    /// [`expires_after`](Self::expires_after) for one that does). Panics on an invalid name:
    /// at compile time in a `const`.
    pub const fn new(name: &'static str) -> Self {
        check_name(name);
        Workflow {
            name,
            ttl: None,
            document: PhantomData,
        }
    }

    /// Every write to the slate sets it to expire `ttl` after the write (sliding expiry):
    /// an abandoned workflow disappears on its own. Panics on an expiry under a second,
    /// over [`MAX_DURATION`](crate::MAX_DURATION) or not in whole milliseconds: at compile
    /// time in a `const`.
    pub const fn expires_after(mut self, ttl: Duration) -> Self {
        let max_seconds = crate::config::MAX_DURATION.whole_seconds();
        if ttl.whole_seconds() < 1 || ttl.whole_seconds() > max_seconds {
            panic!("a workflow's expiry must be between 1 second and 400 days");
        }
        if ttl.subsec_nanoseconds() % 1_000_000 != 0 {
            panic!("a workflow's expiry must be whole milliseconds");
        }
        self.ttl = Some(ttl);
        self
    }

    /// The slate name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The expiry of the slate after each write, if it expires.
    pub const fn ttl(&self) -> Option<Duration> {
        self.ttl
    }
}

impl<T> Clone for Workflow<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Workflow<T> {}

impl<T> std::fmt::Debug for Workflow<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("document", &std::any::type_name::<T>())
            .finish()
    }
}

/// The slate name rules of [`SlateName`](crate::SlateName), in a `const fn`, plus: not the
/// profile's name.
const fn check_name(name: &str) {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_BYTES {
        panic!("a workflow name must be 1-120 bytes");
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'.' || bytes[i] == b'$' || bytes[i] == 0 {
            panic!("a workflow name must not contain `.`, `$` or NUL");
        }
        i += 1;
    }
    if bytes.len() == 4
        && bytes[0] == b'u'
        && bytes[1] == b's'
        && bytes[2] == b'e'
        && bytes[3] == b'r'
    {
        panic!("`user` is the profile's slate name, not a workflow name");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::SlateName;

    #[test]
    fn const_rules_agree_with_slate_names() {
        for name in ["import", "a-b_c", "x".repeat(120).leak()] {
            let _ = Workflow::<()>::new(name);
            assert!(SlateName::new(name).is_ok());
        }
        for name in ["", "a.b", "a$b", "a\0b", "x".repeat(121).leak(), "user"] {
            let panicked = std::panic::catch_unwind(|| Workflow::<()>::new(name)).is_err();
            assert!(panicked, "{name:?} was accepted");
        }
        let bad = [
            Duration::ZERO,
            Duration::milliseconds(999),
            Duration::days(401),
        ];
        for ttl in bad
            .into_iter()
            .chain([Duration::nanoseconds(1_000_000_001)])
        {
            let w = Workflow::<()>::new("w");
            assert!(
                std::panic::catch_unwind(|| w.expires_after(ttl)).is_err(),
                "{ttl}"
            );
        }
    }
}
