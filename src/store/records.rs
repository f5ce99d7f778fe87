//! The records stores exchange with the engine: token records, slate keys and documents,
//! update operators, and the expiry rule of a write.

use bson::Bson;
use time::OffsetDateTime;

use super::SharedRawDocument;
use crate::clock::to_millis;
use crate::device_id::DeviceId;
use crate::names::{SlateName, Username};
use crate::token::TokenHash;

/// One token: the `_auth` document.
///
/// Its state is explicit: whether it may still be renewed is the absence of
/// [`rotated`](Self::rotated), never inferred from the configured timeouts, so a redeploy
/// with other timeouts reads every existing record the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 of the token (`_id`).
    pub hash: TokenHash,
    /// The user the token logs in.
    pub user: Username,
    /// When the token was issued (the login): the absolute lifetime counts from here.
    pub created: OffsetDateTime,
    /// When the token stops working (the idle deadline, or the end of a rotation grace).
    pub expires: OffsetDateTime,
    /// When the token was last renewed, if ever.
    pub renewed: Option<OffsetDateTime>,
    /// When the token was replaced by [`Auth::rotate`](crate::Auth::rotate), if it was: a
    /// rotated-out token lives out its grace period and is never renewed.
    pub rotated: Option<OffsetDateTime>,
    /// The public id of the device (the login), drawn at login
    /// ([`DeviceId::generate`]). `None` only on a record written before devices existed,
    /// until its first request gives it one ([`TokenStore::touch_token`](super::TokenStore::touch_token)).
    pub device: Option<DeviceId>,
    /// When the device was last seen (a request with this token), to the configured
    /// interval. A record written before devices existed reads as its last renewal, or its
    /// login.
    pub last_seen: OffsetDateTime,
    /// A short description of the device from its `User-Agent` ("Firefox on Linux"); empty
    /// on a record written before devices existed.
    pub label: String,
    /// The client address at login, truncated (IPv4 to /24, IPv6 to /48), when
    /// [`EngineBuilder::record_client_ip`](crate::EngineBuilder::record_client_ip) is on.
    pub ip: Option<String>,
}

/// What a request needs of a token record to log it in, renew it and keep its device's
/// last-seen time: the answer of [`TokenStore::find_token_ready`](super::TokenStore::find_token_ready).
/// Times are milliseconds since the Unix epoch (the precision records keep), so that a
/// warm request compares integers and builds no [`OffsetDateTime`] and no label `String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBrief {
    /// The user the token logs in.
    pub user: Username,
    /// [`TokenRecord::created`], in milliseconds since the epoch.
    pub created: i64,
    /// [`TokenRecord::expires`], in milliseconds since the epoch.
    pub expires: i64,
    /// [`TokenRecord::last_seen`], in milliseconds since the epoch.
    pub last_seen: i64,
    /// Whether the token was rotated out ([`TokenRecord::rotated`] is set).
    pub rotated: bool,
    /// Whether the record has a device id ([`TokenRecord::device`]; the id itself is not
    /// part of the brief, so that a store may keep it apart from what a token check reads).
    pub has_device: bool,
}

impl From<&TokenRecord> for TokenBrief {
    /// The brief of a record.
    ///
    /// ```
    /// use slates::store::{TokenBrief, TokenRecord};
    /// use time::{Duration, OffsetDateTime};
    /// let login = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    /// let record = TokenRecord {
    ///     hash: slates::Token::generate()?.hash(),
    ///     user: slates::Username::new("ada")?,
    ///     created: login,
    ///     expires: login + Duration::days(1) + Duration::microseconds(1_900),
    ///     renewed: None,
    ///     rotated: None,
    ///     device: None,
    ///     last_seen: login,
    ///     label: "Firefox on Linux".into(),
    ///     ip: None,
    /// };
    /// let brief = TokenBrief::from(&record);
    /// assert_eq!(brief.expires - brief.created, 86_400_001); // truncated to the millisecond
    /// assert!(!brief.rotated && !brief.has_device);
    /// # Ok::<(), slates::Error>(())
    /// ```
    fn from(record: &TokenRecord) -> Self {
        TokenBrief {
            user: record.user.clone(),
            created: to_millis(record.created),
            expires: to_millis(record.expires),
            last_seen: to_millis(record.last_seen),
            rotated: record.rotated.is_some(),
            has_device: record.device.is_some(),
        }
    }
}

/// What a slate write does to the slate's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Keep the stored expiry (a slate that did not exist, or had expired, gets none).
    /// Every write through a handle that does not mention expiry uses this.
    Keep,
    /// The slate expires at this time (a handle with
    /// an expiry, such as a [`Workflow`](crate::Workflow) declared with
    /// [`expires_after`](crate::Workflow::expires_after): sliding expiry).
    At(OffsetDateTime),
}

impl Expiry {
    /// The expiry a write leaves, given the live slate's current one.
    pub fn resolve(self, current: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
        match self {
            Expiry::Keep => current,
            Expiry::At(t) => Some(t),
        }
    }
}

/// Identifies one slate document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlateKey {
    /// Whose slate.
    pub user: Username,
    /// Which slate (`user` or a workflow name).
    pub slate: SlateName,
}

impl SlateKey {
    /// A key from validated parts.
    pub fn new(user: Username, slate: SlateName) -> Self {
        SlateKey { user, slate }
    }
}

/// A slate document as read from a store.
#[derive(Debug, Clone, PartialEq)]
pub struct SlateDoc {
    /// The user's fields, without `_id`, `_v` and `_expires`, as raw BSON. Shared so that
    /// handing the user slate to a handler costs no copy; a typed read deserializes straight
    /// from its bytes ([`SharedRawDocument::deserialize`]).
    pub doc: SharedRawDocument,
    /// The version: a fresh random 64-bit value on every write ([`fresh_version`](super::fresh_version)), so a
    /// version seen by a reader never matches a later write, nor a later incarnation of the
    /// slate after a delete or an expiry. Compare versions for equality only.
    pub version: i64,
    /// When the slate stops existing, if it expires.
    pub expires: Option<OffsetDateTime>,
}

/// One update operator, applied atomically with the others of the same
/// [`SlateStore::update_slate`](super::SlateStore::update_slate) call. Field paths may be dotted (`"a.b"`) and are validated by
/// [`validate_field`](crate::names::validate_field) before they reach a store.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum UpdateOp {
    /// `$set`: set a field.
    Set(String, Bson),
    /// `$unset`: remove a field.
    Unset(String),
    /// `$inc`: add a number (an absent field counts as 0).
    Inc(String, Bson),
    /// `$push`: append to an array (an absent field becomes a one-element array).
    Push(String, Bson),
    /// `$addToSet`: append to an array unless an equal element is there.
    AddToSet(String, Bson),
    /// `$push` with `$each`: append every value, in order (an absent field becomes an
    /// array of them, empty if there are none).
    PushAll(String, Vec<Bson>),
    /// `$addToSet` with `$each`: append each value unless an equal element is there.
    AddAllToSet(String, Vec<Bson>),
}

impl UpdateOp {
    /// The field path this operator touches.
    pub fn field(&self) -> &str {
        match self {
            UpdateOp::Set(f, _)
            | UpdateOp::Unset(f)
            | UpdateOp::Inc(f, _)
            | UpdateOp::Push(f, _)
            | UpdateOp::AddToSet(f, _)
            | UpdateOp::PushAll(f, _)
            | UpdateOp::AddAllToSet(f, _) => f,
        }
    }

    /// The MongoDB operator this is (`$push` for both [`Push`](Self::Push) and
    /// [`PushAll`](Self::PushAll)): one update may repeat an operator on a field, never mix
    /// two.
    pub fn operator(&self) -> &'static str {
        match self {
            UpdateOp::Set(..) => "$set",
            UpdateOp::Unset(..) => "$unset",
            UpdateOp::Inc(..) => "$inc",
            UpdateOp::Push(..) | UpdateOp::PushAll(..) => "$push",
            UpdateOp::AddToSet(..) | UpdateOp::AddAllToSet(..) => "$addToSet",
        }
    }
}

/// What [`SlateStore::update_slate`](super::SlateStore::update_slate) reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// The version after the update.
    pub version: i64,
    /// The value of the `counter` field after the update, if one was named.
    pub counter: Option<i64>,
}
