//! What the server is: asked once per store with `buildInfo`, for the warning about
//! FerretDB (announced here, once) and for the invalidation channel's choices.

use bson::doc;
use mongodb::Database;
use tokio::sync::OnceCell;

use super::error;
use crate::error::Result;

/// Whether the server is FerretDB, once known; shared by a store's clones and its
/// invalidation channel, so that one `buildInfo` answers both.
#[derive(Default)]
pub(super) struct ServerKind {
    ferretdb: OnceCell<bool>,
}

impl ServerKind {
    /// Whether the server is FerretDB (its `buildInfo` carries `ferretdbVersion`). The first
    /// answer is kept; a failed `buildInfo` is asked again by the next call. Logs one loud
    /// warning when it is: FerretDB 1.x applies an update as a read and a write in its
    /// backend, so concurrent updates of one slate can be lost there, and slates'
    /// concurrency guarantees do not hold.
    pub async fn is_ferretdb(&self, db: &Database) -> Result<bool> {
        let ferretdb = self
            .ferretdb
            .get_or_try_init(|| async {
                let info = (db.run_command(doc! {"buildInfo": 1}).await).map_err(error::map)?;
                let version = info.get_str("ferretdbVersion").ok();
                if let Some(version) = version {
                    tracing::warn!(
                        ferretdb = version,
                        "slates: this server is FerretDB, whose updates are not atomic under \
                         concurrency: concurrent writes to one slate CAN BE LOST here. Use it \
                         for development and tests only; run production on MongoDB"
                    );
                }
                Ok::<_, crate::Error>(version.is_some())
            })
            .await?;
        Ok(*ferretdb)
    }
}
