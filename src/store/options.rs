//! [`StoreOptions`] and [`Layout`]: where a store keeps tokens and slates, settled by the
//! [`EngineBuilder`](crate::EngineBuilder) and handed to the stores' `prepare` methods.

/// How slate documents are laid out in MongoDB (the memory store accepts both and behaves
/// the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Layout {
    /// One collection (default `slates`) with `_id: "<username>$<slate>"`.
    /// Scales to millions of users and can be sharded on the user.
    #[default]
    SingleCollection,
    /// One collection per user, named `<prefix><username>` (prefix `slates.user.` by
    /// default, [`StoreOptions::user_collection_prefix`]), holding `{ _id: "user", .. }` and
    /// `{ _id: "<workflow>", .. }`. The prefix keeps users out of the app's own collections:
    /// a user named `orders` never touches an `orders` collection. Good for tens to a few
    /// thousand users.
    CollectionPerUser,
}

/// Settings the [`EngineBuilder`](crate::EngineBuilder) hands to
/// [`TokenStore::prepare_tokens`](super::TokenStore::prepare_tokens) and
/// [`SlateStore::prepare_slates`](super::SlateStore::prepare_slates).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Name of the token collection (default `_auth`; always starts with `_`).
    pub auth_collection: String,
    /// Name of the slates collection in [`Layout::SingleCollection`] (default `slates`).
    pub slates_collection: String,
    /// The slate layout.
    pub layout: Layout,
    /// Prefix of the per-user collections of [`Layout::CollectionPerUser`] (default
    /// `slates.user.`): slates only ever writes to, and drops, collections with this prefix.
    pub user_collection_prefix: String,
    /// Name of the collection of every visitor's guest slates, in both layouts (default
    /// `_guests`; always starts with `_`), with `_id: "<hex SHA-256 of the guest
    /// token>$<slate>"`: guests never get a collection each.
    pub guest_collection: String,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            auth_collection: "_auth".into(),
            slates_collection: "slates".into(),
            layout: Layout::default(),
            user_collection_prefix: "slates.user.".into(),
            guest_collection: "_guests".into(),
        }
    }
}
