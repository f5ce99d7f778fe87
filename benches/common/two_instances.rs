//! Scenario 6 (issue 12, point 6): two app processes, one FerretDB. The `counter` example
//! runs as real processes on one database: instance A (cache on), instance B (cache on, the
//! default on MongoDB) and, for contrast, instance B' (`SLATES_NO_CACHE=1`); the bench talks
//! to them over HTTP and reads their `/stats`, as `tests/cache_mongo.rs::two_app_processes`
//! does (the process start below is a copy of that test's, a few lines: tests and benches
//! share no module).
//!
//! Reported, never asserted:
//! - 6a: store operations per warm `GET /me` on B with the cache and on B' without it, and
//!   the median latency of each over HTTP;
//! - 6b: the delay from A's answer to a logout until B refuses the cookie, and from A's
//!   answer to a login (which writes the user slate: `logins` + 1) until B's `GET /me`
//!   shows the new profile, over many trials, against the 100 ms bound of the issue.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::report::Table;

/// The bound of issue 12, point 6, for the p99 of both delays.
const BOUND: Duration = Duration::from_millis(100);

/// Scenario 6's tables (one "skipped" row when there is no server).
#[cfg(feature = "mongodb")]
pub fn tables(quick: bool) -> Vec<Table> {
    measure::run(quick)
}

/// Scenario 6's tables: one "skipped" row.
#[cfg(not(feature = "mongodb"))]
pub fn tables(_quick: bool) -> Vec<Table> {
    vec![skipped("built without the `mongodb` feature")]
}

fn skipped(why: &str) -> Table {
    let mut t = Table::new("Scenario 6: two app processes, one FerretDB", &["server"]);
    t.row(vec![format!("skipped: {why}")]);
    t
}

/// The `counter` example binary in release mode. `cargo bench` does not build examples, so
/// this runs `cargo build --release --example counter` (a no-op when it is up to date) and
/// takes the path cargo reports. Panics, saying why, when that fails.
fn counter_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    println!("\nscenario 6: cargo build --release --example counter");
    let mut cmd = Command::new(cargo);
    // Cargo gives the running bench the package's variables (`CARGO_MANIFEST_DIR`, ...).
    // Passed on, they would differ from a plain `cargo bench`'s environment, and build
    // scripts that watch them (ring's watches `CARGO_MANIFEST_DIR`) would rebuild half the
    // dependency tree here and again at the next `cargo bench`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&&*name)
        {
            cmd.env_remove(&*name);
        }
    }
    let out = cmd
        .args(["build", "--release", "--example", "counter"])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("scenario 6: could not run cargo to build the counter example");
    assert!(
        out.status.success(),
        "scenario 6: `cargo build --release --example counter` failed (its errors are above)"
    );
    let binary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "counter")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("scenario 6: cargo built the counter example but reported no executable");
    assert!(binary.is_file(), "{} is missing", binary.display());
    binary
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `counter` example process; killed on drop. (As `App` in `tests/cache_mongo.rs`, with
/// its log, warnings and up, kept in a file for a failure to point at.)
struct App {
    child: Child,
    base: String,
    log: PathBuf,
}

impl App {
    fn start(binary: &Path, uri: &str, name: &str, cache: bool) -> App {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("slates-bench-6-{}-{name}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("scenario 6: a log file");
        let mut cmd = Command::new(binary);
        cmd.env("SLATES_MONGODB_URI", uri)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file);
        if !cache {
            cmd.env("SLATES_NO_CACHE", "1");
        }
        let child = cmd.spawn().expect("scenario 6: start the counter example");
        App {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept when the bench fails: the panic names it.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// `uri` (a server's connection string) naming the database `db`.
fn with_database(uri: &str, db: &str) -> String {
    let (base, query) = match uri.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (uri, String::new()),
    };
    format!("{}/{db}{query}", base.trim_end_matches('/'))
}

#[cfg(feature = "mongodb")]
mod measure {
    use std::time::{Duration, Instant};

    use http::StatusCode;

    use super::{counter_binary, skipped, App, BOUND};
    use crate::common::mongo;
    use crate::common::report::Table;
    use crate::common::{fmt_ms, quantile};

    const DB: &str = "slates_bench_two_instances";
    /// Between two polls of B (each poll is one HTTP request, itself ~1 ms).
    const POLL: Duration = Duration::from_millis(1);
    /// Only a lost invalidation (a bug) takes this long: the bench stops, saying so.
    const GIVE_UP: Duration = Duration::from_secs(10);

    pub fn run(quick: bool) -> Vec<Table> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = match mongo::server().await {
                Ok(s) => s,
                Err(why) => return vec![skipped(&why)],
            };
            println!("scenario 6 against {} at {}", server.name, server.uri);
            let binary = counter_binary();
            let _ = mongo::database(&server, DB).await; // dropped: fresh
            let tables = Bench::start(&binary, &server.uri)
                .await
                .tables(quick, &server)
                .await;
            let _ = mongo::database(&server, DB).await; // dropped again: clean up
            tables
        })
    }

    struct Bench {
        http: reqwest::Client,
        a: App,
        b: App,
        /// B without the cache.
        b_off: App,
    }

    impl Bench {
        async fn start(binary: &std::path::Path, uri: &str) -> Bench {
            let uri = super::with_database(uri, DB);
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            // A first (its `build` creates the collections and `_invalidations`), then the
            // others: FerretDB's SQLite backend is touchy about concurrent creations.
            let mut a = App::start(binary, &uri, "a", true);
            up(&http, &mut a, true).await;
            let (mut b, mut b_off) = (
                App::start(binary, &uri, "b", true),
                App::start(binary, &uri, "b-off", false),
            );
            up(&http, &mut b, true).await;
            up(&http, &mut b_off, false).await;
            Bench { http, a, b, b_off }
        }

        async fn stats(&self, app: &App) -> serde_json::Value {
            stats(&self.http, app).await.expect("/stats")
        }

        async fn store_operations(&self, app: &App) -> u64 {
            self.stats(app).await["store_operations"].as_u64().unwrap()
        }

        /// Logs `user` in on A; the cookie (`name=value`).
        async fn login(&self, user: &str) -> String {
            let r = self
                .http
                .post(format!("{}/login", self.a.base))
                .form(&[("username", user)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "login on A");
            let cookie = r.headers()["set-cookie"].to_str().unwrap();
            cookie.split(';').next().unwrap().to_owned()
        }

        async fn logout(&self, cookie: &str) {
            let r = self
                .http
                .post(format!("{}/logout", self.a.base))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "logout on A");
        }

        /// `GET /me` on `app`: the status and the profile's `logins`.
        async fn me(&self, app: &App, cookie: &str) -> (StatusCode, Option<i64>) {
            let r = self
                .http
                .get(format!("{}/me", app.base))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            (status, body["user"]["logins"].as_i64())
        }

        /// Waits until B has received every invalidation A published: B's cache is then in
        /// step, and the only invalidation in flight is the one a trial measures.
        async fn settle(&self) {
            let a = self.stats(&self.a).await;
            let published = a["cache"]["invalidations_published"].as_u64().unwrap();
            let started = Instant::now();
            loop {
                let b = self.stats(&self.b).await;
                if b["cache"]["invalidations_received"].as_u64().unwrap() >= published {
                    return;
                }
                if started.elapsed() > GIVE_UP {
                    self.fail(&format!(
                        "B has not received A's invalidations after {GIVE_UP:?}: A's cache {}, \
                         B's cache {}",
                        a["cache"], b["cache"]
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }

        /// Stops the bench: what went wrong, and where the instances' logs are.
        fn fail(&self, what: &str) -> ! {
            panic!(
                "scenario 6: {what} (logs: {}, {})",
                self.a.log.display(),
                self.b.log.display()
            )
        }

        /// Warms B with `cookie` and reports whether a second warm `GET /me` cost B no store
        /// operation (served from its cache); returns that and the profile's `logins`.
        async fn warm(&self, cookie: &str) -> (bool, Option<i64>) {
            let (status, _) = self.me(&self.b, cookie).await;
            assert_eq!(status, StatusCode::OK, "GET /me on B");
            let before = self.store_operations(&self.b).await;
            let (status, logins) = self.me(&self.b, cookie).await;
            assert_eq!(status, StatusCode::OK, "GET /me on B");
            (self.store_operations(&self.b).await == before, logins)
        }

        /// Polls B until `done` holds for its `GET /me`; how long that took.
        async fn until_b(
            &self,
            cookie: &str,
            done: impl Fn(StatusCode, Option<i64>) -> bool,
        ) -> Duration {
            let started = Instant::now();
            loop {
                let (status, logins) = self.me(&self.b, cookie).await;
                if done(status, logins) {
                    return started.elapsed();
                }
                if started.elapsed() > GIVE_UP {
                    let b = self.stats(&self.b).await;
                    self.fail(&format!(
                        "B still answers {status} (logins {logins:?}) after {GIVE_UP:?}: an \
                         invalidation was lost; B's cache {}",
                        b["cache"]
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }

        async fn tables(&self, quick: bool, server: &mongo::Server) -> Vec<Table> {
            let (trials, timed) = if quick { (20, 200) } else { (200, 2_000) };
            let what = if server.ferretdb {
                "FerretDB"
            } else {
                "MongoDB"
            };

            // 6a: warm GET /me on B, with and without the cache.
            let ada = self.login("ada").await;
            self.settle().await;
            let mut t6a = Table::new(
                format!("Scenario 6a: two app processes, one {what}: a warm GET /me on instance B"),
                &[
                    "instance B",
                    "store operations, 20 warm GET /me",
                    "store operations per GET /me (timed requests)",
                    "median latency (HTTP)",
                    "x cache on",
                ],
            );
            let instances = [
                (&self.b, "cache on (default)"),
                (&self.b_off, "cache off (`SLATES_NO_CACHE=1`)"),
            ];
            let mut ops20 = Vec::new();
            for (app, _) in instances {
                for _ in 0..2 {
                    assert_eq!(self.me(app, &ada).await.0, StatusCode::OK, "warm-up");
                }
                let before = self.store_operations(app).await;
                for _ in 0..20 {
                    assert_eq!(self.me(app, &ada).await.0, StatusCode::OK);
                }
                ops20.push(self.store_operations(app).await - before);
            }
            // Timed: rounds alternate the two instances, so that load elsewhere on the
            // machine hits both.
            let rounds = 10;
            let mut samples = [Vec::new(), Vec::new()];
            let mut ops = [0, 0];
            for _ in 0..rounds {
                for (i, (app, _)) in instances.iter().enumerate() {
                    let before = self.store_operations(app).await;
                    for _ in 0..timed / rounds {
                        let started = Instant::now();
                        assert_eq!(self.me(app, &ada).await.0, StatusCode::OK);
                        samples[i].push(started.elapsed());
                    }
                    ops[i] += self.store_operations(app).await - before;
                }
            }
            let medians: Vec<Duration> = samples
                .iter_mut()
                .map(|s| {
                    s.sort();
                    quantile(s, 0.5)
                })
                .collect();
            for (i, (_, label)) in instances.iter().enumerate() {
                t6a.row(vec![
                    (*label).to_owned(),
                    ops20[i].to_string(),
                    format!("{:.2}", ops[i] as f64 / samples[i].len() as f64),
                    fmt_ms(medians[i]),
                    format!("{:.2}", medians[i].as_secs_f64() / medians[0].as_secs_f64()),
                ]);
            }
            t6a.note(format!(
                "Three `counter` example processes (release build) on one database of {server}: \
                 A and B with the cache (the default on MongoDB), B' with `SLATES_NO_CACHE=1`. \
                 One user logs in on A; the bench sends that cookie to B and B'. Store \
                 operations are the instance's own `/stats` `store_operations` before and \
                 after (reading `/stats` costs none; the cache's tail of `_invalidations` is \
                 not counted). Latency: {timed} timed `GET /me` per instance over HTTP on \
                 loopback (keep-alive), in {rounds} alternating rounds; the median.",
                server = server.name
            ));

            // 6b: a logout on A until B refuses; a user slate write on A until B shows it.
            let mut logouts = Vec::new();
            let mut logout_cached = 0;
            for _ in 0..trials {
                let cookie = self.login("ada").await;
                self.settle().await;
                logout_cached += usize::from(self.warm(&cookie).await.0);
                self.logout(&cookie).await;
                logouts.push(
                    self.until_b(&cookie, |s, _| s == StatusCode::UNAUTHORIZED)
                        .await,
                );
            }
            self.logout(&ada).await;
            let grace = self.login("grace").await;
            let mut writes = Vec::new();
            let mut write_cached = 0;
            for _ in 0..trials {
                self.settle().await;
                let (cached, logins) = self.warm(&grace).await;
                write_cached += usize::from(cached);
                let want = logins.expect("grace's profile counts logins") + 1;
                // The counter's login writes the profile (the user slate): `logins` + 1.
                let other = self.login("grace").await;
                writes.push(self.until_b(&grace, |_, l| l == Some(want)).await);
                self.logout(&other).await;
            }
            let mut t6b = Table::new(
                format!(
                    "Scenario 6b: two app processes, one {what}: from a write on instance A to instance B seeing it"
                ),
                &[
                    "write on A",
                    "seen on B as",
                    "trials",
                    "B served from its cache before",
                    "p50",
                    "p95",
                    "p99",
                    "max",
                    "p99 vs 100 ms",
                ],
            );
            for (write, seen, delays, cached) in [
                (
                    "`POST /logout`",
                    "`GET /me` answers 401",
                    &mut logouts,
                    logout_cached,
                ),
                (
                    "`POST /login` of the same user (profile `logins` + 1)",
                    "`GET /me` shows the new `logins`",
                    &mut writes,
                    write_cached,
                ),
            ] {
                delays.sort();
                let p99 = quantile(delays, 0.99);
                t6b.row(vec![
                    write.into(),
                    seen.into(),
                    delays.len().to_string(),
                    format!("{cached} of {}", delays.len()),
                    fmt_ms(quantile(delays, 0.5)),
                    fmt_ms(quantile(delays, 0.95)),
                    fmt_ms(p99),
                    fmt_ms(*delays.last().unwrap()),
                    if p99 <= BOUND { "within" } else { "over" }.into(),
                ]);
            }
            t6b.note(format!(
                "Each trial waits until B has received every invalidation A published, warms \
                 B with the cookie (\"served from its cache\": a second warm `GET /me` cost B no \
                 store operation), then times from A's answer to the write until B's first \
                 answer that shows it, polling B's `GET /me` every {poll} ms (one request \
                 takes about a millisecond: the resolution is a few ms). The logout trials log \
                 in a new token each time; the profile trials keep one cookie on B and log the \
                 same user in again on A, which the counter's login does with one update of \
                 the profile (`$inc` `logins`), then log that new token out. The bound is \
                 issue 12's (100 ms p99); the tail's `getMore` waits at most 100 ms when idle.",
                poll = POLL.as_millis()
            ));
            if server.ferretdb {
                t6b.note(format!(
                    "{}: FerretDB 1.x with its SQLite backend translates every command to SQL; \
                     its latencies (and how soon its tailable cursor returns a new document) \
                     say nothing about MongoDB's. Set `SLATES_BENCH_MONGODB_URI` to a MongoDB \
                     server for representative figures.",
                    server.name
                ));
            }
            vec![t6a, t6b]
        }
    }

    /// `/stats` of `app`, or `None` while it is not up.
    async fn stats(http: &reqwest::Client, app: &App) -> Option<serde_json::Value> {
        let r = http.get(format!("{}/stats", app.base)).send().await.ok()?;
        serde_json::from_str(&r.text().await.ok()?).ok()
    }

    /// Waits (at most 60 s) until `app` answers `/stats`, with its cache serving if `cache`.
    async fn up(http: &reqwest::Client, app: &mut App, cache: bool) {
        let started = Instant::now();
        loop {
            if let Some(s) = stats(http, app).await {
                let serving = s["cache"]["serving"] == true;
                assert_eq!(
                    s["cache"].is_null(),
                    !cache,
                    "{}: cache on is {cache}",
                    app.base
                );
                if serving || !cache {
                    return;
                }
            }
            if let Ok(Some(status)) = app.child.try_wait() {
                panic!(
                    "scenario 6: the counter example at {} exited: {status}",
                    app.base
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "scenario 6: {} did not serve within 60 s",
                app.base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
