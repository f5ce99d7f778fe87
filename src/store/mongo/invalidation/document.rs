//! The documents of `_invalidations`: what [`MongoChannel`](super::MongoChannel) inserts and
//! how a tail reads them back.
//!
//! One invalidation is `{k: "t" | "u" | "p", v: <token hash hex or username>, p: <publisher>,
//! s: <sequence>}`: `p` is the publishing channel's random id (an `i64`), `s` its count of
//! publications (`1, 2, 3, …` as an `i64`), so that a subscriber notices one it missed. The
//! collection also holds a seed, `{k: "seed"}` (a tailable cursor needs a document to open
//! on), and may hold documents from versions that did not stamp theirs (no `p`, no `s`).

use bson::{doc, Document};

use crate::names::Username;
use crate::store::invalidation::Invalidation;
use crate::token::TokenHash;

/// Who published an invalidation, and its place among that publisher's publications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    /// The publishing channel's random id.
    pub publisher: i64,
    /// 1 for its first publication, then consecutive.
    pub seq: u64,
}

/// A readable document of the collection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// The seed document: nothing to do.
    Seed,
    /// An invalidation, stamped unless an older version published it.
    Invalidation(Invalidation, Option<Stamp>),
}

/// The document that publishes `invalidation` as `stamp`.
pub(super) fn to_document(invalidation: &Invalidation, stamp: Stamp) -> Document {
    let (k, v) = match invalidation {
        Invalidation::Token(hash) => ("t", hash.to_hex()),
        Invalidation::UserTokens(user) => ("u", user.as_str().to_owned()),
        Invalidation::Profile(user) => ("p", user.as_str().to_owned()),
    };
    // A sequence past i64::MAX would take 2^63 publications: saturate rather than wrap.
    let s = i64::try_from(stamp.seq).unwrap_or(i64::MAX);
    doc! {"k": k, "v": v, "p": stamp.publisher, "s": s}
}

/// The seed document.
pub(super) fn seed() -> Document {
    doc! {"k": "seed"}
}

/// What `d` says; `None`: unreadable (edited by hand, or from an unknown version), so it
/// could have named anything.
pub(super) fn parse(d: &Document) -> Option<Parsed> {
    let kind = d.get_str("k").ok()?;
    if kind == "seed" {
        return Some(Parsed::Seed);
    }
    let value = d.get_str("v").ok()?;
    let invalidation = match kind {
        "t" => Invalidation::Token(TokenHash::from_hex(value)?),
        "u" => Invalidation::UserTokens(Username::from_stored(value)?),
        "p" => Invalidation::Profile(Username::from_stored(value)?),
        _ => return None,
    };
    let stamp = match (d.get("p"), d.get("s")) {
        (None, None) => None,
        _ => Some(Stamp {
            publisher: d.get_i64("p").ok()?,
            seq: u64::try_from(d.get_i64("s").ok()?)
                .ok()
                .filter(|&s| s > 0)?,
        }),
    };
    Some(Parsed::Invalidation(invalidation, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip() {
        let hash = crate::token::Token::generate().unwrap().hash();
        let user = Username::new("ada").unwrap();
        let stamp = Stamp {
            publisher: -7,
            seq: 42,
        };
        for inv in [
            Invalidation::Token(hash),
            Invalidation::UserTokens(user.clone()),
            Invalidation::Profile(user),
            Invalidation::Profile(Username::guest(&hash)),
        ] {
            let d = to_document(&inv, stamp);
            assert_eq!(d.get_i64("p"), Ok(-7));
            assert_eq!(d.get_i64("s"), Ok(42));
            assert_eq!(parse(&d), Some(Parsed::Invalidation(inv, Some(stamp))));
        }
        assert_eq!(parse(&seed()), Some(Parsed::Seed));
    }

    #[test]
    fn unstamped_documents_of_older_versions_still_read() {
        assert_eq!(
            parse(&doc! {"k": "u", "v": "ada"}),
            Some(Parsed::Invalidation(
                Invalidation::UserTokens(Username::new("ada").unwrap()),
                None
            ))
        );
    }

    #[test]
    fn unreadable_documents() {
        for d in [
            doc! {"k": "t", "v": "zz"},
            doc! {"k": "x", "v": "ada"},
            doc! {"k": "p", "v": "_auth"},
            doc! {"v": "ada"},
            doc! {"k": "p"},
            // A half or mistyped stamp: it was meant to be tracked and cannot be.
            doc! {"k": "p", "v": "ada", "p": 1_i64},
            doc! {"k": "p", "v": "ada", "s": 1_i64},
            doc! {"k": "p", "v": "ada", "p": 1_i64, "s": "1"},
            doc! {"k": "p", "v": "ada", "p": 1_i32, "s": 1_i64},
            doc! {"k": "p", "v": "ada", "p": 1_i64, "s": 0_i64},
            doc! {"k": "p", "v": "ada", "p": 1_i64, "s": -3_i64},
        ] {
            assert_eq!(parse(&d), None, "{d}");
        }
    }
}
