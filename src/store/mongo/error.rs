//! Mapping driver errors to the crate's typed [`Error`].
//!
//! Server text stays inside the boxed source (for logs); nothing here puts it in a response.

use mongodb::error::{ErrorKind, WriteFailure};

use crate::error::{Error, NameKind};
use crate::store::size::too_large;
use crate::store::MAX_DOCUMENT_BYTES;

/// Server error codes that mean "a document with this key exists".
const DUPLICATE_KEY: [i32; 3] = [11000, 11001, 12582];
/// Server error codes that mean "the document would exceed 16 MiB": `BSONObjectTooLarge`
/// and the two "resulting document after update/upsert is larger than" codes.
const TOO_LARGE: [i32; 3] = [10334, 17419, 17420];
/// `InvalidNamespace`.
const INVALID_NAMESPACE: i32 = 73;
/// Codes that mean "not now, try again": the server is stepping down, shutting down,
/// unreachable, or a time limit ran out.
const UNAVAILABLE: [i32; 14] = [
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
    64,    // WriteConcernFailed (write concern timed out)
];
/// Codes an update operator returns when it meets a field of the wrong type:
/// `BadValue` (`$push` on a non-array, `$inc` overflow), `TypeMismatch` (`$inc` on a
/// non-number) and `PathNotViable` (`$set: {"a.b": ..}` where `a` is not a document).
const TYPE_MISMATCH: [i32; 3] = [2, 14, 28];
/// `NotImplemented`: what FerretDB answers for a feature it lacks.
pub(super) const NOT_IMPLEMENTED: i32 = 238;

/// The server error code, if the error carries one.
pub(super) fn code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    }
}

/// Whether `e` is a duplicate-key error.
pub(super) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    code(e).is_some_and(|c| DUPLICATE_KEY.contains(&c))
}

/// Maps a driver error to the crate's error.
pub(super) fn map(e: mongodb::error::Error) -> Error {
    if let Some(c) = code(&e) {
        if DUPLICATE_KEY.contains(&c) {
            return Error::DuplicateKey;
        }
        if TOO_LARGE.contains(&c) {
            // The server does not say by how much: report the first size over the limit.
            return too_large(MAX_DOCUMENT_BYTES + 1);
        }
        if c == INVALID_NAMESPACE {
            return Error::InvalidName {
                kind: NameKind::Collection,
                reason: "the server refused the collection name",
            };
        }
        if UNAVAILABLE.contains(&c) {
            return Error::Unavailable(Box::new(e));
        }
        return Error::Store(Box::new(e));
    }
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => Error::Unavailable(Box::new(e)),
        // The driver checks a document's size before sending an insert.
        ErrorKind::InvalidArgument { message, .. } if message.contains("must be within") => {
            too_large(MAX_DOCUMENT_BYTES + 1)
        }
        _ => Error::Store(Box::new(e)),
    }
}

/// Maps the error of an update that applied operators to `fields`: a type error becomes
/// [`Error::TypeMismatch`] on the field the server names (or the first one).
pub(super) fn map_update(e: mongodb::error::Error, fields: &[&str]) -> Error {
    let Some(c) = code(&e).filter(|c| TYPE_MISMATCH.contains(c)) else {
        return map(e);
    };
    let message = match e.kind.as_ref() {
        ErrorKind::Command(c) => c.message.as_str(),
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.message.as_str(),
        _ => "",
    };
    // Server messages quote the field ('hits'); the last path segment is what they quote.
    let field = fields
        .iter()
        .find(|f| {
            let last = f.rsplit('.').next().unwrap_or(f);
            message.contains(&format!("'{last}'")) || message.contains(&format!("'{f}'"))
        })
        .or(fields.first())
        .copied()
        .unwrap_or_default();
    Error::TypeMismatch {
        field: field.to_owned(),
        reason: match c {
            2 => "push and add_to_set need an array; inc must not overflow",
            14 => "inc needs numbers on both sides",
            _ => "a parent of the field is not a document",
        },
    }
}

/// An error for a stored document (`what`: `_auth` or the slate name) that does not have
/// the shape slates writes.
pub(super) fn malformed(what: &str, reason: &'static str) -> Error {
    Error::MalformedDocument {
        what: what.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bson::doc;
    use mongodb::error::{CommandError, WriteError};

    use super::*;

    fn command(code: i32, message: &str) -> mongodb::error::Error {
        let e: CommandError =
            bson::from_document(doc! {"code": code, "codeName": "X", "errmsg": message}).unwrap();
        ErrorKind::Command(e).into()
    }

    fn write(code: i32, message: &str) -> mongodb::error::Error {
        let e: WriteError = bson::from_document(doc! {"code": code, "errmsg": message}).unwrap();
        ErrorKind::Write(WriteFailure::WriteError(e)).into()
    }

    #[test]
    fn server_codes() {
        for e in [command(11000, "dup"), write(11000, "dup")] {
            assert!(is_duplicate_key(&e));
            assert!(matches!(map(e), Error::DuplicateKey));
        }
        for c in TOO_LARGE {
            assert!(matches!(
                map(command(c, "too big")),
                Error::DocumentTooLarge { .. }
            ));
        }
        assert!(matches!(
            map(command(73, "bad ns")),
            Error::InvalidName {
                kind: NameKind::Collection,
                ..
            }
        ));
        for c in UNAVAILABLE {
            assert!(map(command(c, "later")).is_unavailable(), "{c}");
        }
        assert!(matches!(map(command(8000, "other")), Error::Store(_)));
        // A type error outside an update is a plain store error.
        assert!(matches!(map(write(14, "x")), Error::Store(_)));
    }

    #[test]
    fn network_errors_are_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let e: mongodb::error::Error = ErrorKind::Io(Arc::new(io)).into();
        assert!(map(e).is_unavailable());
    }

    #[test]
    fn update_type_errors_name_the_field() {
        let e = write(2, "The field 'ids' must be an array but is of type string");
        match map_update(e, &["step", "ids"]) {
            Error::TypeMismatch { field, .. } => assert_eq!(field, "ids"),
            other => panic!("{other:?}"),
        }
        let e = write(14, "Cannot apply $inc to a value of non-numeric type");
        match map_update(e, &["a.hits"]) {
            Error::TypeMismatch { field, .. } => assert_eq!(field, "a.hits"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            map_update(write(11000, "dup"), &["x"]),
            Error::DuplicateKey
        ));
    }
}
