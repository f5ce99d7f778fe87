//! Shared test support: backends, an HTTP harness, and the behavioural suite that runs
//! unchanged against every store (`slates_suite!`, one line per backend).
#![allow(dead_code, unused_macros, unused_imports)]

/// Like `eprintln!`, but not captured by libtest: a note that a test was skipped or weakened
/// (no server, a FerretDB gap) must show in a passing run too.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod harness;
pub mod hooked;
#[cfg(feature = "mongodb")]
pub mod mongo;
pub mod suite;

use slates::{ManualClock, MemoryStore, Slates, SlatesBuilder};

/// A store the suite runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// The embedded memory store.
    Memory,
    /// MongoDB (or FerretDB) with the given layout; tests are skipped (loudly) when no
    /// server can be found, and fail under `SLATES_REQUIRE_MONGO=1`.
    #[cfg(feature = "mongodb")]
    Mongo(slates::Layout),
}

impl Backend {
    /// A builder on a fresh, empty store of this backend, with a manual clock and
    /// plain-http cookies. `test` names the test (each Mongo test gets its own database).
    /// `None`: backend not available here, skip the test.
    pub async fn builder(self, test: &str, clock: &ManualClock) -> Option<SlatesBuilder> {
        #[cfg(not(feature = "mongodb"))]
        let _ = test;
        let builder = match self {
            Backend::Memory => Slates::builder(MemoryStore::new()),
            #[cfg(feature = "mongodb")]
            Backend::Mongo(layout) => mongo::builder(test).await?.layout(layout),
        };
        Some(builder.clock(clock.clone()).secure(false))
    }

    /// A fresh, empty store of this backend (not yet prepared: `build` prepares it), for
    /// tests that wrap it in a decorator such as [`hooked::Hooked`]. `None`: backend not
    /// available here, skip the test.
    pub async fn store(self, test: &str) -> Option<std::sync::Arc<dyn slates::Store>> {
        #[cfg(not(feature = "mongodb"))]
        let _ = test;
        Some(match self {
            Backend::Memory => std::sync::Arc::new(MemoryStore::new()),
            #[cfg(feature = "mongodb")]
            Backend::Mongo(_) => std::sync::Arc::new(mongo::store(test).await?),
        })
    }

    /// The layout to build with (the memory store accepts any).
    pub fn layout(self) -> slates::Layout {
        match self {
            Backend::Memory => slates::Layout::default(),
            #[cfg(feature = "mongodb")]
            Backend::Mongo(layout) => layout,
        }
    }

    /// Every backend: memory, and both MongoDB layouts when the feature is on.
    pub fn all() -> Vec<Backend> {
        vec![
            Backend::Memory,
            #[cfg(feature = "mongodb")]
            Backend::Mongo(slates::Layout::SingleCollection),
            #[cfg(feature = "mongodb")]
            Backend::Mongo(slates::Layout::CollectionPerUser),
        ]
    }

    /// `builder` with defaults, built.
    pub async fn slates(self, test: &str, clock: &ManualClock) -> Option<Slates> {
        Some(
            self.builder(test, clock)
                .await?
                .build()
                .await
                .expect("build slates"),
        )
    }
}
