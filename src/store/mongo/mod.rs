//! `MongoStore`: the production backend, on the official `mongodb` driver.
//!
//! Every store method is one command on one document (see the table on [`MongoStore`]).
//! This file holds the connection and its options; `indexes.rs` what `prepare` creates,
//! `tokens.rs` the `_auth` queries ([`TokenStore`](super::TokenStore)), `slates.rs` the
//! slate queries and update documents ([`SlateStore`](super::SlateStore)), `error.rs` the
//! mapping of driver errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mongodb::options::{
    ClientOptions, DatabaseOptions, ReadConcern, ReadPreference, SelectionCriteria, WriteConcern,
};
use mongodb::{Client, Database};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Applies the store's server-side time limit (`maxTimeMS`), if any, to a driver action
/// that can carry one (`find`, `findAndModify`). The driver's insert, update and delete
/// actions take none; those are point writes on `_id`.
macro_rules! limited {
    ($store:expr, $action:expr) => {{
        let action = $action;
        match $store.max_time {
            Some(limit) => action.max_time(limit),
            None => action,
        }
    }};
}

mod error;
mod indexes;
mod invalidation;
mod server;
mod slates;
mod tokens;

pub use invalidation::{
    TailMode, GAP_GRACE, INVALIDATIONS_COLLECTION, PRUNE_AGE, PRUNE_EVERY, TAIL_AWAIT, TAIL_BATCH,
    TAIL_POLL, TAIL_SILENCE,
};

use indexes::Prepared;

/// Database used when the connection string names none.
pub const DEFAULT_DATABASE: &str = "slates";
/// Default server selection and connect timeout: how long a request waits for an
/// unreachable server before the layer answers 503.
pub const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(3);
/// Default interval of the driver's server monitoring (`heartbeatFrequencyMS`): with the
/// connect timeout it bounds how long a request waits on a server that stopped answering.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);
/// Default server-side limit on one command (`maxTimeMS`).
pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(5);

/// The production [`Store`](super::Store): MongoDB (or a MongoDB-wire server) through the official driver.
///
/// The data model is DESIGN.md §3: an `_auth` collection of
/// `{ _id: <hex SHA-256 of the token>, user, created, expires, renewed?, rotated? }`, and
/// slate documents carrying `_v` (the version: a fresh random `i64` on every write) and, for
/// expiring workflow slates, `_expires`.
/// [`Layout::SingleCollection`](crate::Layout::SingleCollection) keeps every slate in one
/// collection under `_id: "<user>$<slate>"`;
/// [`Layout::CollectionPerUser`](crate::Layout::CollectionPerUser) gives each user a
/// collection `slates.user.<user>`, with `_id: "<slate>"`. Guest slates (a visitor's, see
/// [`GuestSlates`](crate::GuestSlates)) live in one collection, `_guests` by default, in
/// both layouts, with `_id: "<hex SHA-256 of the guest token>$<slate>"`.
///
/// Each operation is one command on one document, so MongoDB's single-document atomicity
/// is the only concurrency control; nothing is locked across a request. The same command
/// forms run on every server:
///
/// | operation | command |
/// |---|---|
/// | token lookup, slate read | `find` on `_id` alone; the expiry is checked after the read |
/// | login / renewal / rotation | `insert` / `update` on `_id`, the expiry read and "not rotated", never an upsert / `update` with `$min` and `$set: {rotated}` |
/// | logout / log out everywhere | `delete` on `_id` / `delete` (many) on `user` |
/// | `set`, `push`, … | `update` with the operators and `$set: {_v: <fresh>}`, upsert |
/// | `inc` | `findAndModify` likewise, filtered on an absent or integer counter, returning the document |
/// | `put` | `findAndModify` with a replacement document, upsert |
/// | compare-and-swap | `update` (replacement) filtered on `{_id, _v}` |
/// | slate delete | `delete` on `_id` |
/// | take (read and delete) | `findAndModify` with `remove: true` on the live document |
///
/// When an upsert collides with a stored document (an *expired* one the TTL monitor has not
/// removed yet, two writers creating one slate, a counter of the wrong type, or, for a `put`
/// that keeps the expiry, a slate that has one), the document is read by `_id` and the
/// collision resolved: an expired document is removed with a conditional `delete`, a race is
/// retried, a wrong counter is an error, an expiry is carried over by compare-and-swap. The
/// loop is bounded.
///
/// Preparing it (done by [`EngineBuilder::build`](crate::EngineBuilder::build)) creates the
/// indexes, idempotently: `_auth` `{user: 1}` and the TTL index `{expires: 1}` with
/// `expireAfterSeconds: 0`, plus, in the single-collection layout, a TTL index on the
/// slates' `_expires`, and in both layouts one on the guest collection's `_expires`. Reads still check expiry, whatever the TTL monitor has
/// done. It also asks `buildInfo` and logs a loud warning when the server is FerretDB, whose
/// updates are not atomic under concurrency.
///
/// Errors map to [`Error`]: duplicate key, document too large (checked before sending, and
/// mapped from the server), invalid namespace, and [`Error::Unavailable`] for an unreachable
/// server, a timeout or a primary stepping down (the layer answers 503; requests succeed again
/// as soon as the driver reconnects).
///
/// Cloning is cheap: the driver's handles are `Arc`s inside.
///
/// ```no_run
/// use slates::{Engine, Layout, MongoStore};
/// use slates::mongodb::options::{Acknowledgment, WriteConcern};
///
/// # async fn f() -> slates::Result<()> {
/// let store = MongoStore::connect("mongodb://localhost:27017/slates")
///     .await?
///     .write_concern(WriteConcern::builder().w(Acknowledgment::Majority).build());
/// let engine = Engine::builder(store)
///     .layout(Layout::SingleCollection)
///     .build() // creates the indexes
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    max_time: Option<Duration>,
    tail_mode: TailMode,
    prepared: Arc<Prepared>,
}

impl MongoStore {
    /// Connects with a connection string. The database is the one named in the string's
    /// path (`mongodb://host/mydb`), else [`DEFAULT_DATABASE`]. Server selection and connect
    /// timeouts default to [`DEFAULT_SERVER_TIMEOUT`] unless the string sets them
    /// (`serverSelectionTimeoutMS`, `connectTimeoutMS`), so that an outage turns into 503s
    /// quickly.
    ///
    /// No command is sent yet: an app can start while the server is down.
    pub async fn connect(uri: &str) -> Result<Self> {
        let options = ClientOptions::parse(uri).await.map_err(|e| match *e.kind {
            mongodb::error::ErrorKind::InvalidArgument { .. } => {
                Error::Config(format!("invalid MongoDB connection string: {e}"))
            }
            _ => error::map(e),
        })?;
        Self::connect_with_options(options)
    }

    /// Connects with parsed driver options (for settings a connection string cannot carry,
    /// such as command monitoring). Defaults as in [`connect`](Self::connect).
    pub fn connect_with_options(mut options: ClientOptions) -> Result<Self> {
        options
            .server_selection_timeout
            .get_or_insert(DEFAULT_SERVER_TIMEOUT);
        options
            .connect_timeout
            .get_or_insert(DEFAULT_SERVER_TIMEOUT);
        options.heartbeat_freq.get_or_insert(DEFAULT_HEARTBEAT);
        options.app_name.get_or_insert_with(|| "slates".to_owned());
        let client = Client::with_options(options).map_err(error::map)?;
        let db = client
            .default_database()
            .unwrap_or_else(|| client.database(DEFAULT_DATABASE));
        Ok(Self::from_database(db))
    }

    /// A store on an existing database handle, keeping its client's settings and the
    /// handle's read and write concerns.
    pub fn from_database(db: Database) -> Self {
        MongoStore {
            db,
            max_time: Some(DEFAULT_MAX_TIME),
            tail_mode: TailMode::Auto,
            prepared: Arc::default(),
        }
    }

    /// The write concern of every write (default: the client's, which for MongoDB 5.0 and
    /// later is the server's implicit default, `w: "majority"` on a replica set; keep
    /// majority so that a login survives a failover).
    pub fn write_concern(self, write_concern: WriteConcern) -> Self {
        let options = DatabaseOptions::builder()
            .write_concern(write_concern)
            .read_concern(self.db.read_concern().cloned())
            .selection_criteria(self.db.selection_criteria().cloned())
            .build();
        self.with_database_options(options)
    }

    /// The read concern of every read (default: the client's).
    pub fn read_concern(self, read_concern: ReadConcern) -> Self {
        let options = DatabaseOptions::builder()
            .write_concern(self.db.write_concern().cloned())
            .read_concern(read_concern)
            .selection_criteria(self.db.selection_criteria().cloned())
            .build();
        self.with_database_options(options)
    }

    /// Which members serve reads (default: the primary). Keep the primary: a request that
    /// reads its token from a secondary that has not replicated the login yet finds no
    /// token, and the layer then removes the cookie, as for any unknown token.
    pub fn selection_criteria(self, criteria: SelectionCriteria) -> Self {
        let options = DatabaseOptions::builder()
            .write_concern(self.db.write_concern().cloned())
            .read_concern(self.db.read_concern().cloned())
            .selection_criteria(criteria)
            .build();
        self.with_database_options(options)
    }

    /// Shorthand for [`selection_criteria`](Self::selection_criteria) with a read preference.
    pub fn read_preference(self, preference: ReadPreference) -> Self {
        self.selection_criteria(SelectionCriteria::ReadPreference(preference))
    }

    /// The server-side time limit (`maxTimeMS`) of every command that can carry one (default
    /// [`DEFAULT_MAX_TIME`]; `None`: no limit). Past it the server aborts the command and
    /// the operation fails with [`Error::Unavailable`]: nothing was written.
    ///
    /// slates never abandons a command it sent (the driver documents that dropping an
    /// operation's future is unsafe: the command may still run later). A request waits for
    /// the reply; when the server stops answering, the driver's monitoring notices within
    /// about the heartbeat interval plus the connect timeout ([`DEFAULT_HEARTBEAT`] and
    /// [`DEFAULT_SERVER_TIMEOUT`]: 5 s), closes the connections in use, and the request
    /// fails with [`Error::Unavailable`] (the layer answers 503). A write that fails that
    /// way was either not applied or applied once (possibly when a frozen server resumes,
    /// after the failure was reported), never twice: slates does not resend it.
    pub fn max_time(mut self, limit: Option<Duration>) -> Self {
        self.max_time = limit;
        self
    }

    /// How the cache's invalidation channel reads `_invalidations` (default
    /// [`TailMode::Auto`]: polling on FerretDB, `awaitData` elsewhere). For tests and
    /// servers that misreport what they are; see [`TailMode`] for what each mode costs and
    /// proves.
    pub fn tail_mode(mut self, mode: TailMode) -> Self {
        self.tail_mode = mode;
        // A channel made earlier carries the old mode: prepare again.
        self.prepared = Arc::default();
        self
    }

    /// The database handle the store uses.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn with_database_options(mut self, options: DatabaseOptions) -> Self {
        self.db = self
            .db
            .client()
            .database_with_options(self.db.name(), options);
        // The collections of an earlier `prepare` carry the old options: prepare again.
        self.prepared = Arc::default();
        self
    }
}

/// A time as a BSON date (millisecond precision, like the [`ManualClock`](crate::ManualClock)).
fn to_bson_date(t: OffsetDateTime) -> bson::DateTime {
    let millis = t.unix_timestamp_nanos().div_euclid(1_000_000);
    bson::DateTime::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

/// A BSON date as a time; `Err(())` when it is outside the range `time` represents.
fn from_bson_date(d: bson::DateTime) -> std::result::Result<OffsetDateTime, ()> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(d.timestamp_millis()) * 1_000_000)
        .map_err(drop)
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("database", &self.db.name())
            .field("max_time", &self.max_time)
            .field("tail_mode", &self.tail_mode)
            .field("tokens", &self.prepared.tokens.get().map(|p| &p.options))
            .field("slates", &self.prepared.slates.get().map(|p| &p.options))
            .finish()
    }
}
