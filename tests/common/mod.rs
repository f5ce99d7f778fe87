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

/// Expands each named test, an `async fn(Backend, &str)`, to one `#[tokio::test]` per store:
/// the memory store and, with the `mongodb` feature, MongoDB in both layouts (skipped when
/// no server is found, like the behavioural suite).
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    super::$name($crate::common::Backend::Memory, test).await;
                }
            )*
        }
        #[cfg(feature = "mongodb")]
        mod mongo_single {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    let backend =
                        $crate::common::Backend::Mongo(slates::Layout::SingleCollection);
                    super::$name(backend, test).await;
                }
            )*
        }
        #[cfg(feature = "mongodb")]
        mod mongo_per_user {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    let backend =
                        $crate::common::Backend::Mongo(slates::Layout::CollectionPerUser);
                    super::$name(backend, test).await;
                }
            )*
        }
    };
}

pub mod cache;
pub mod guest_app;
pub mod harness;
pub mod hooked;
pub mod logs;
#[cfg(feature = "mongodb")]
pub mod mongo;
pub mod suite;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use slates::{Engine, EngineBuilder, ManualClock, MemoryStore};

// ------------------------------------------------------------------ skip records

/// Records that `test` skipped (`kind` "mongodb"; e2e_browser.rs has its own copy for
/// "browser") or ran weakened (`kind` "weakened": a documented FerretDB gap) because of
/// `reason`, so that `.ci/test` can count it in the summary it prints after `cargo test`
/// (a skip fails CI there; a weakened test is only listed).
///
/// One line `kind<TAB>test<TAB>reason` is appended to `$SLATES_TEST_SKIPS_DIR/<pid>.log`
/// (nothing is written when `.ci/test` did not set that variable). A record that cannot
/// be written fails the test: a skip must not go uncounted. The same line is written once
/// per test process.
pub fn record_skip(kind: &str, test: &str, reason: &str) {
    static WRITTEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let Some(dir) = std::env::var_os("SLATES_TEST_SKIPS_DIR").filter(|d| !d.is_empty()) else {
        return;
    };
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = format!("{kind}\t{}\t{}\n", one_line(test), one_line(reason));
    let mut written = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    if written.contains(&line) {
        return;
    }
    let path = PathBuf::from(dir).join(format!("{}.log", std::process::id()));
    let result = std::fs::create_dir_all(path.parent().expect("a directory"))
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
        })
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = result {
        panic!("could not record {kind} {test} in {}: {e}", path.display());
    }
    written.insert(line);
}

/// The running test's name as libtest knows it (the name of its thread), prefixed with this
/// test binary's name; `fallback` when called off a test thread.
pub fn current_test(fallback: &str) -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" && !name.starts_with("tokio-") => {
            format!("{}::{name}", env!("CARGO_CRATE_NAME"))
        }
        _ => fallback.to_owned(),
    }
}

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
    pub async fn builder(self, test: &str, clock: &ManualClock) -> Option<EngineBuilder> {
        #[cfg(not(feature = "mongodb"))]
        let _ = test;
        let builder = match self {
            Backend::Memory => Engine::builder(MemoryStore::new()),
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
    pub async fn slates(self, test: &str, clock: &ManualClock) -> Option<Engine> {
        Some(
            self.builder(test, clock)
                .await?
                .build()
                .await
                .expect("build slates"),
        )
    }
}
