//! [`RoomyExtensions`]: request extensions with room for what the router adds after the
//! layer, so that none of its inserts grows the map.
//!
//! A request from the server reaches the layer with no extensions. The layer's state is the
//! first; axum's router then adds its `OriginalUri`, `UrlParams` and `MatchedPath`. The
//! first insert allocates a table for three entries, so the fourth moved the table into a
//! larger one on every request (callgrind, scenario 1b: one table growth, about 400
//! instructions of an authenticated `GET /me`). Starting from a copy of an empty table
//! that holds seven avoids it.

use http::Extensions;

/// An empty extensions map with room for seven entries, copied for each request.
pub(crate) struct RoomyExtensions(Extensions);

impl RoomyExtensions {
    pub fn new() -> Self {
        #[derive(Clone)]
        struct Room<const N: usize>;
        let mut e = Extensions::new();
        // Four entries grow the table to eight buckets (seven entries); removing them
        // keeps the table.
        e.insert(Room::<0>);
        e.insert(Room::<1>);
        e.insert(Room::<2>);
        e.insert(Room::<3>);
        e.clear();
        RoomyExtensions(e)
    }

    /// Inserts `value` into `extensions`, into a copy of the roomy empty map when they are
    /// empty (a request as the server hands it over).
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, extensions: &mut Extensions, value: T) {
        if extensions.is_empty() {
            *extensions = self.0.clone();
        }
        extensions.insert(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_the_request_had() {
        let roomy = RoomyExtensions::new();
        let mut had = Extensions::new();
        had.insert(7u8);
        roomy.insert(&mut had, "state");
        assert_eq!(
            (had.get::<u8>(), had.get::<&str>()),
            (Some(&7), Some(&"state"))
        );
        let mut empty = Extensions::new();
        roomy.insert(&mut empty, 1u32);
        assert_eq!((empty.len(), empty.get::<u32>()), (1, Some(&1)));
    }
}
