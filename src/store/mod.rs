//! Storage: the traits [`TokenStore`] and [`SlateStore`] (a [`Store`] is both), the
//! embedded [`MemoryStore`], `MongoStore` (feature `mongodb`), the [`Intercepted`]
//! decorator, and the [`Cached`] decorator with its [`InvalidationChannel`]s.
//!
//! A token store keeps `_auth` token records, keyed by the SHA-256 of the token; a slate
//! store keeps slate documents, keyed by (username, slate name). Every method is one atomic
//! operation on one record; none holds a lock across an `.await`. Both stores pass the same
//! behavioural suite (`tests/common/suite.rs`).
//!
//! Stores receive the current time from the caller (`now`), never read a clock themselves, so
//! that tests can move time with a [`ManualClock`](crate::ManualClock).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Result;

mod cache;
mod faults;
mod intercept;
mod interpreter;
mod invalidation;
mod memory;
#[cfg(feature = "mongodb")]
mod mongo;
mod options;
mod records;
mod shared_document;
mod size;
mod traits;
mod update;
mod version;

pub use cache::{CacheSettings, CacheStats, Cached};
pub use faults::Faults;
pub use intercept::{Call, CallKind, Intercept, Intercepted};
pub use interpreter::get_path;
pub use invalidation::{
    Freshness, Invalidation, InvalidationChannel, InvalidationSink, LocalChannel,
};
pub use memory::MemoryStore;
#[cfg(feature = "mongodb")]
pub use mongo::{
    MongoStore, TailMode, DEFAULT_DATABASE, DEFAULT_HEARTBEAT, DEFAULT_MAX_TIME,
    DEFAULT_SERVER_TIMEOUT, GAP_GRACE, INVALIDATIONS_COLLECTION, PRUNE_AGE, PRUNE_EVERY,
    TAIL_AWAIT, TAIL_BATCH, TAIL_POLL, TAIL_SILENCE,
};
pub use options::{Layout, StoreOptions};
pub use records::{Expiry, SlateDoc, SlateKey, TokenBrief, TokenRecord, UpdateOp, Updated};
pub use shared_document::SharedRawDocument;
pub use traits::{SlateStore, Store, TokenStore};
pub use update::check_ops;
pub use version::fresh_version;

/// The store named by a connection string: `MongoStore` for a `mongodb://` or
/// `mongodb+srv://` URI, [`MemoryStore`] when `uri` is `None` or empty. Handy for apps
/// and examples that run on MongoDB in production and in memory on a laptop; hand it to
/// [`Engine::builder_shared`](crate::Engine::builder_shared):
///
/// ```no_run
/// # async fn f() -> slates::Result<()> {
/// let uri = std::env::var("SLATES_MONGODB_URI").ok();
/// let store = slates::store::open(uri.as_deref()).await?;
/// let engine = slates::Engine::builder_shared(store).build().await?;
/// # Ok(()) }
/// ```
///
/// A URI given to a build without the `mongodb` feature is [`Error::Config`](crate::Error::Config).
pub async fn open(uri: Option<&str>) -> Result<Arc<dyn Store>> {
    match uri.filter(|u| !u.is_empty()) {
        None => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "mongodb")]
        Some(uri) => Ok(Arc::new(MongoStore::connect(uri).await?)),
        #[cfg(not(feature = "mongodb"))]
        Some(_) => Err(crate::Error::Config(
            "a MongoDB URI was given but slates was built without the `mongodb` feature".into(),
        )),
    }
}

/// MongoDB's document size limit, which both stores enforce: 16 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The future every store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;
