//! What preparing a `MongoStore` does: the indexes of the token and slate collections,
//! the collections settled for later calls, and what the server is (`server.rs`).

use std::sync::OnceLock;
use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::server::ServerKind;
use super::{error, MongoStore};
use crate::error::{Error, Result};
use crate::store::{Layout, StoreOptions};

/// What the prepare methods settled, shared by the store's clones.
#[derive(Default)]
pub(super) struct Prepared {
    pub tokens: OnceLock<Settled>,
    pub slates: OnceLock<Settled>,
    /// What the server is (asked once per store, by the first prepare or the channel).
    pub server: std::sync::Arc<ServerKind>,
    /// The invalidation channel, made on first request (one tail per subscribed cache).
    pub channel: OnceLock<std::sync::Arc<super::invalidation::MongoChannel>>,
}

/// The options one concern was prepared with, and its collection.
pub(super) struct Settled {
    pub options: StoreOptions,
    /// `_auth` for tokens; the slates collection of the single-collection layout for slates.
    pub coll: Collection<Document>,
}

impl MongoStore {
    /// The token collection, once prepared.
    pub(super) fn auth(&self) -> Result<&Collection<Document>> {
        Ok(&settled(&self.prepared.tokens)?.coll)
    }

    /// The slate settings and collection, once prepared.
    pub(super) fn slate_settings(&self) -> Result<&Settled> {
        settled(&self.prepared.slates)
    }

    /// `_auth`: `{user: 1}` (log out everywhere) and the TTL index `{expires: 1}`.
    pub(super) async fn prepare_token_collection(&self, options: &StoreOptions) -> Result<()> {
        if let Some(done) = self.prepared.tokens.get() {
            return same_options(&done.options, options);
        }
        let auth = self.db.collection::<Document>(&options.auth_collection);
        self.create_index(&auth, doc! {"user": 1}, None).await?;
        let ttl = (self.create_index(&auth, doc! {"expires": 1}, Some(Duration::ZERO))).await?;
        if !ttl {
            warn_no_ttl("tokens");
        }
        self.prepared.server.is_ferretdb(&self.db).await?;
        settle(&self.prepared.tokens, options, auth)
    }

    /// Single collection: the TTL index `{_expires: 1}`. Collection per user: nothing
    /// (each user's collection is created by its first write). Both: the TTL index
    /// `{_expires: 1}` of the guest collection.
    pub(super) async fn prepare_slate_collections(&self, options: &StoreOptions) -> Result<()> {
        if let Some(done) = self.prepared.slates.get() {
            return same_options(&done.options, options);
        }
        let slates = self.db.collection::<Document>(&options.slates_collection);
        if options.layout == Layout::SingleCollection {
            let ttl =
                (self.create_index(&slates, doc! {"_expires": 1}, Some(Duration::ZERO))).await?;
            if !ttl {
                warn_no_ttl("slates");
            }
        }
        // Guest slates (issue 14) always carry an `_expires`: the TTL index collects them
        // once their visitor is gone. FerretDB 1.x has no TTL indexes (warned below): there
        // expired guest slates read as absent but stay until deleted.
        let guests = self.db.collection::<Document>(&options.guest_collection);
        let ttl = (self.create_index(&guests, doc! {"_expires": 1}, Some(Duration::ZERO))).await?;
        if !ttl {
            warn_no_ttl("guest slates");
        }
        self.prepared.server.is_ferretdb(&self.db).await?;
        settle(&self.prepared.slates, options, slates)
    }

    /// Creates an index (a TTL index if `ttl` is given). `Ok(false)` if the server does not
    /// implement the option.
    async fn create_index(
        &self,
        coll: &Collection<Document>,
        keys: Document,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let options = IndexOptions::builder().expire_after(ttl).build();
        let model = IndexModel::builder().keys(keys).options(options).build();
        match coll.create_index(model).await {
            Ok(_) => Ok(true),
            Err(e) if ttl.is_some() && error::code(&e) == Some(error::NOT_IMPLEMENTED) => Ok(false),
            Err(e) => Err(error::map(e)),
        }
    }
}

fn settled(cell: &OnceLock<Settled>) -> Result<&Settled> {
    cell.get().ok_or_else(|| {
        Error::Config(
            "MongoStore used before it was prepared: build it with Engine::builder(store).build()"
                .to_owned(),
        )
    })
}

fn settle(
    cell: &OnceLock<Settled>,
    options: &StoreOptions,
    coll: Collection<Document>,
) -> Result<()> {
    tracing::debug!(collection = coll.name(), "slates MongoStore prepared");
    let settled = Settled {
        options: options.clone(),
        coll,
    };
    match cell.set(settled) {
        Ok(()) => Ok(()),
        // A concurrent prepare won; it must have used the same options.
        Err(_) => same_options(&self::settled(cell)?.options, options),
    }
}

fn same_options(prepared: &StoreOptions, asked: &StoreOptions) -> Result<()> {
    if prepared == asked {
        Ok(())
    } else {
        Err(Error::Config(
            "this MongoStore was already prepared with other options (layout or collection \
             names); use one store per configuration"
                .to_owned(),
        ))
    }
}

fn warn_no_ttl(what: &str) {
    tracing::warn!(
        "the MongoDB server does not support TTL indexes (FerretDB 1.x?): expired {what} are \
         refused at read time but not garbage-collected"
    );
}
