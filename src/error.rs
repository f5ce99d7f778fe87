//! The crate's error type.

use std::fmt;

/// What kind of name failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// A username (becomes a collection name or a key part).
    Username,
    /// A slate name (becomes a document `_id` or a key part).
    SlateName,
    /// A field path inside a slate document.
    Field,
    /// A collection name given in the configuration.
    Collection,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Username => "username",
            NameKind::SlateName => "slate name",
            NameKind::Field => "field name",
            NameKind::Collection => "collection name",
        })
    }
}

/// Every error slates returns.
///
/// Store errors keep their cause for logging, but their text is never put in a response
/// body: see the [`IntoResponse`](axum::response::IntoResponse) impl, which answers with a
/// short generic text and logs the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A username, slate name, field name or collection name broke the naming rules.
    /// Nothing was sent to the store.
    #[error("invalid {kind}: {reason}")]
    InvalidName {
        /// Which kind of name.
        kind: NameKind,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The document would exceed the 16 MiB BSON limit. The stored document is unchanged.
    #[error("document too large: {size} bytes, the limit is {limit}")]
    DocumentTooLarge {
        /// Size the document would have had, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// An update operator met a field of the wrong type (for example `inc` on a string, or
    /// `push` on a non-array). The stored document is unchanged.
    #[error("type mismatch on field `{field}`: {reason}")]
    TypeMismatch {
        /// The field path.
        field: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// One update applies different operators to one field, or operators to a field and to
    /// its parent or child (MongoDB's `ConflictingUpdateOperators`). Nothing was sent to the
    /// store.
    #[error("conflicting update operators on field `{field}`: one update must not apply different operators to a field, or to a field and its parent")]
    ConflictingOperators {
        /// One of the fields involved.
        field: String,
    },
    /// A stored document does not have the shape slates writes (for example a slate whose
    /// `_v` or `_expires` was edited by hand to another type). Reported to the handler that
    /// reads it; other requests of the same user are not affected. Writing the whole slate
    /// again with `put` repairs it (an update operator repairs a bad `_v` too).
    #[error("malformed stored document ({what}): {reason}")]
    MalformedDocument {
        /// Which document: `_auth` or the slate name.
        what: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A compare-and-swap helper gave up after this many attempts because other writers kept
    /// changing the slate.
    #[error("slate `{slate}` kept changing: gave up after {attempts} attempts")]
    Conflict {
        /// The slate name.
        slate: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// A document with this key already exists (for example a token hash collision).
    #[error("duplicate key")]
    DuplicateKey,
    /// The operation needs a logged-in user and the request is anonymous.
    #[error("not logged in")]
    NotLoggedIn,
    /// A value could not be converted to BSON.
    #[error("could not serialize to BSON: {0}")]
    Serialize(#[from] bson::ser::Error),
    /// A value given for a field does not serialize to BSON (for example a `u64` over
    /// `i64::MAX`, or a map with non-string keys). Nothing was written.
    #[error("the value for field `{field}` does not serialize to BSON: {reason}")]
    Unserializable {
        /// The field path.
        field: String,
        /// What the serializer said.
        reason: String,
    },
    /// A stored document could not be converted to the requested type.
    #[error("could not deserialize from BSON: {0}")]
    Deserialize(#[from] bson::de::Error),
    /// The store could not be reached or timed out. Retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Any other store failure.
    #[error("store error: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The configuration given to the builder is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn invalid(kind: NameKind, reason: &'static str) -> Self {
        Error::InvalidName { kind, reason }
    }

    /// Whether this error means the store is unreachable (the layer answers 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// Whether this error came from the store itself rather than from the caller's input.
    pub fn is_store_failure(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Store(_))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl axum::response::IntoResponse for Error {
    /// A short status and text for handlers that return `Result<_, slates::Error>`:
    /// invalid names, conflicting operators and type mismatches 400, oversize 413, conflicts
    /// 409, not logged in 401, an unavailable store 503 with `Retry-After`, other store
    /// failures 500. Store error text is logged, never sent.
    fn into_response(self) -> axum::response::Response {
        use http::StatusCode;
        if let Error::Unavailable(_) = &self {
            tracing::error!(error = %self, "slates store unavailable");
            return crate::rejection::Unavailable.into_response();
        }
        let (status, body) = match &self {
            Error::InvalidName { .. }
            | Error::TypeMismatch { .. }
            | Error::ConflictingOperators { .. } => (StatusCode::BAD_REQUEST, self.to_string()),
            Error::DocumentTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, self.to_string()),
            Error::Conflict { .. } => (
                StatusCode::CONFLICT,
                "The data changed while saving; please retry.".to_owned(),
            ),
            Error::NotLoggedIn => (StatusCode::UNAUTHORIZED, "Not logged in.".to_owned()),
            _ => {
                tracing::error!(error = %self, "slates internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error.".to_owned(),
                )
            }
        };
        (status, body).into_response()
    }
}
