//! The behavioural suite on `MongoStore`, once per layout, against the test server of
//! `tests/common/mongo.rs` (MongoDB or FerretDB; skipped loudly when there is none).
mod common;

mod single_collection {
    crate::slates_suite!(crate::common::Backend::Mongo(
        slates::Layout::SingleCollection
    ));
}

mod collection_per_user {
    crate::slates_suite!(crate::common::Backend::Mongo(
        slates::Layout::CollectionPerUser
    ));
}
