//! Placeholder until MongoStore lands: no Mongo server support yet.
use slates::SlatesBuilder;

pub async fn builder(_test: &str) -> Option<SlatesBuilder> {
    None
}

pub async fn server_updates_are_atomic() -> bool {
    false
}
