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
//!   shows the new profile, each with and without a pause before the write, over many
//!   trials, against the 100 ms bound of the issue.
//!
//! FerretDB 1.x misbehaves under two tails (its `awaitData` tailable cursor sends documents
//! again and drops some, which is why the tail polls there; its `getMore` has failed now and
//! then, and a command sometimes fails with "database is locked"): the
//! bench retries a failed request for a while, then skips the trial, and counts all of it in
//! the table's notes rather than stopping.

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
/// this runs `cargo build --release --example counter` into the bench's own target directory
/// (a no-op when it is up to date) and takes the path cargo reports. Panics, saying why,
/// when that fails.
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
    // Into the target directory this bench was built in (`<dir>/release/deps/<bench>`),
    // whatever the environment says: never a second target directory.
    let exe = std::env::current_exe().expect("scenario 6: the bench's own path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("scenario 6: the target directory");
    let out = cmd
        .args(["build", "--release", "--example", "counter", "--target-dir"])
        .arg(target)
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
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    use http::StatusCode;

    use super::{counter_binary, skipped, App, BOUND};
    use crate::common::mongo;
    use crate::common::report::Table;
    use crate::common::{fmt_ms, quantile};

    const DB: &str = "slates_bench_two_instances";
    /// Between two polls of B (each poll is one HTTP request, itself ~1 ms).
    const POLL: Duration = Duration::from_millis(1);
    /// A write B has not shown after this long is counted as not seen (3 times the cache's
    /// default staleness bound): the trial stops waiting and its delay is "> 3 s".
    const CAP: Duration = Duration::from_secs(3);
    /// A delay beyond [`CAP`], in the sorted delays.
    const NOT_SEEN: Duration = Duration::MAX;

    /// The pause before trial `i`'s write when `pause`: spread evenly over 0-199 ms (37
    /// and 200 are coprime), so that writes fall anywhere in the tails' polling or `getMore`
    /// cycle. Without it, a write follows the previous trial's delivery by a few ms.
    fn idle(i: usize, pause: bool) -> Duration {
        Duration::from_millis(if pause { (i as u64 * 37) % 200 } else { 0 })
    }

    fn fmt_delay(d: Duration) -> String {
        if d == NOT_SEEN {
            format!("> {} s", CAP.as_secs())
        } else {
            fmt_ms(d)
        }
    }

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
            let bench = Bench::start(&binary, &server.uri).await;
            let tables = bench.tables(quick, &server).await;
            drop(bench);
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
        /// Unexpected answers, each followed by a retry: errors (5xx: the store failed),
        /// and 401s to a cookie that is live (the store did not find a token it holds).
        errors: Cell<u64>,
        refusals: Cell<u64>,
    }

    /// One kind of trial's results.
    #[derive(Default)]
    struct Trials {
        /// Delays, [`NOT_SEEN`] for a write B did not show within [`CAP`].
        delays: Vec<Duration>,
        /// Trials in which B served the cookie from its cache just before the write.
        cached: usize,
        /// Trials not run: a login, the warm-up on B or the write itself kept failing.
        skipped: usize,
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
            Bench {
                http,
                a,
                b,
                b_off,
                errors: Cell::new(0),
                refusals: Cell::new(0),
            }
        }

        async fn stats(&self, app: &App) -> serde_json::Value {
            stats(&self.http, app).await.expect("/stats")
        }

        async fn cache_stat(&self, app: &App, name: &str) -> u64 {
            self.stats(app).await["cache"][name].as_u64().unwrap()
        }

        async fn store_operations(&self, app: &App) -> u64 {
            self.stats(app).await["store_operations"].as_u64().unwrap()
        }

        /// Sends the request `make` builds until it is answered `want`, at most 40 times
        /// (2 s), counting the unexpected answers; the answer, or `None` when the bench
        /// gives up (the trial is then skipped and counted).
        async fn until_ok(
            &self,
            make: impl Fn() -> reqwest::RequestBuilder,
            want: StatusCode,
        ) -> Option<reqwest::Response> {
            for _ in 0..40 {
                let r = make().send().await.unwrap();
                match r.status() {
                    s if s == want => return Some(r),
                    s if s.is_server_error() => self.errors.set(self.errors.get() + 1),
                    StatusCode::UNAUTHORIZED => self.refusals.set(self.refusals.get() + 1),
                    s => panic!("scenario 6: answered {s} instead of {want}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None
        }

        /// Logs `user` in on A; the cookie (`name=value`).
        async fn login(&self, user: &str) -> Option<String> {
            let url = format!("{}/login", self.a.base);
            let form = [("username", user)];
            let post = || self.http.post(&url).form(&form);
            let r = self.until_ok(post, StatusCode::NO_CONTENT).await?;
            let cookie = r.headers()["set-cookie"].to_str().unwrap();
            Some(cookie.split(';').next().unwrap().to_owned())
        }

        async fn logout(&self, cookie: &str) -> Option<()> {
            let url = format!("{}/logout", self.a.base);
            let post = || self.http.post(&url).header("cookie", cookie);
            self.until_ok(post, StatusCode::NO_CONTENT).await.map(drop)
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

        /// Waits until B's tail has been quiet (no invalidation received) for 300 ms, at
        /// most 5 s: then nothing published earlier is still on its way to B.
        async fn quiet(&self) {
            let started = Instant::now();
            let mut last = (
                self.cache_stat(&self.b, "invalidations_received").await,
                Instant::now(),
            );
            while last.1.elapsed() < Duration::from_millis(300)
                && started.elapsed() < Duration::from_secs(5)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let received = self.cache_stat(&self.b, "invalidations_received").await;
                if received != last.0 {
                    last = (received, Instant::now());
                }
            }
        }

        /// Warms B with `cookie` (`None` when B does not accept it) and reports whether a
        /// second warm `GET /me` cost B no store operation (served from its cache); returns
        /// that and the profile's `logins`.
        async fn warm(&self, cookie: &str) -> Option<(bool, Option<i64>)> {
            let get = || {
                self.http
                    .get(format!("{}/me", self.b.base))
                    .header("cookie", cookie)
            };
            self.until_ok(get, StatusCode::OK).await?;
            let before = self.store_operations(&self.b).await;
            let (status, logins) = self.me(&self.b, cookie).await;
            let cached = status == StatusCode::OK && self.store_operations(&self.b).await == before;
            Some((cached, logins))
        }

        /// Polls B until `done` holds for its `GET /me`: how long that took, or
        /// [`NOT_SEEN`] after [`CAP`].
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
                if started.elapsed() > CAP {
                    return NOT_SEEN;
                }
                tokio::time::sleep(POLL).await;
            }
        }

        /// One logout trial: a logout on A (after `pause`) until B refuses the cookie.
        async fn logout_trial(&self, cookie: Option<&String>, pause: Duration, t: &mut Trials) {
            let Some(cookie) = cookie else {
                t.skipped += 1; // its login failed
                return;
            };
            let Some((cached, _)) = self.warm(cookie).await else {
                t.skipped += 1;
                return;
            };
            tokio::time::sleep(pause).await;
            if self.logout(cookie).await.is_none() {
                t.skipped += 1;
                return;
            }
            t.cached += usize::from(cached);
            let refused = |s, _| s == StatusCode::UNAUTHORIZED;
            t.delays.push(self.until_b(cookie, refused).await);
        }

        /// One profile trial: a profile write on A (after `pause`; the counter's login of
        /// `user` writes the user slate: `logins` + 1) until B's `GET /me` with `cookie`,
        /// an older cookie of the same user, shows it. The login's new token stays (its
        /// logout would publish too).
        async fn profile_trial(
            &self,
            user: &str,
            cookie: Option<&String>,
            pause: Duration,
            t: &mut Trials,
        ) {
            let Some(cookie) = cookie else {
                t.skipped += 1; // the first login failed
                return;
            };
            let Some((cached, Some(before))) = self.warm(cookie).await else {
                t.skipped += 1;
                return;
            };
            tokio::time::sleep(pause).await;
            if self.login(user).await.is_none() {
                t.skipped += 1;
                return;
            }
            t.cached += usize::from(cached);
            let newer = |_, l: Option<i64>| l.is_some_and(|l| l > before);
            t.delays.push(self.until_b(cookie, newer).await);
        }

        /// The trials of 6b, in rounds of one of each kind (so that whatever changes over
        /// the run, such as the length of `_invalidations`, weighs on every kind alike):
        /// logouts and profile writes, each with no pause and with a 0-199 ms pause before
        /// the write. The logout trials' tokens are issued first (each login writes the
        /// profile, which publishes), so that during the trials a write's invalidation is
        /// the only one in flight.
        async fn trials(&self, trials: usize) -> [Trials; 4] {
            let mut ada = Vec::new();
            for _ in 0..2 * trials {
                ada.push(self.login("ada").await);
            }
            let (grace, hopper) = (self.login("grace").await, self.login("hopper").await);
            self.quiet().await;
            let mut t: [Trials; 4] = Default::default();
            for i in 0..trials {
                if i % 50 == 0 {
                    println!("scenario 6b: round {} of {trials}", i + 1);
                }
                let [a, b, c, d] = &mut t;
                self.logout_trial(ada[2 * i].as_ref(), idle(i, false), a)
                    .await;
                self.logout_trial(ada[2 * i + 1].as_ref(), idle(i, true), b)
                    .await;
                self.profile_trial("grace", grace.as_ref(), idle(i, false), c)
                    .await;
                self.profile_trial("hopper", hopper.as_ref(), idle(i, true), d)
                    .await;
            }
            for cookie in [grace, hopper].iter().flatten() {
                let url = format!("{}/logout-everywhere", self.a.base);
                let post = || self.http.post(&url).header("cookie", cookie.as_str());
                self.until_ok(post, StatusCode::NO_CONTENT).await;
            }
            t
        }

        async fn tables(&self, quick: bool, server: &mongo::Server) -> Vec<Table> {
            let (trials, timed) = if quick { (20, 200) } else { (200, 2_000) };
            let what = if server.ferretdb {
                "FerretDB"
            } else {
                "MongoDB"
            };

            // 6a: warm GET /me on B, with and without the cache.
            let ada = self
                .login("ada")
                .await
                .expect("scenario 6: A never logged ada in");
            self.quiet().await;
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
            // Answers other than 200 (store errors), per instance: counted, not retried.
            let mut failed = [0, 0];
            let mut ops20 = Vec::new();
            for (i, (app, _)) in instances.iter().enumerate() {
                for _ in 0..2 {
                    failed[i] += usize::from(self.me(app, &ada).await.0 != StatusCode::OK);
                }
                let before = self.store_operations(app).await;
                for _ in 0..20 {
                    failed[i] += usize::from(self.me(app, &ada).await.0 != StatusCode::OK);
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
                        let ok = self.me(app, &ada).await.0 == StatusCode::OK;
                        samples[i].push(started.elapsed());
                        failed[i] += usize::from(!ok);
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
                 loopback (keep-alive), in {rounds} alternating rounds; the median. Answers \
                 other than 200 (store errors) among these requests: B {}, B' {}.",
                failed[0],
                failed[1],
                server = server.name
            ));
            let _ = self.logout(&ada).await;

            // 6b: a logout on A until B refuses; a user slate write on A until B shows it.
            let (none, spread) = ("none", "0-199 ms");
            let (logout, refused) = ("`POST /logout`", "`GET /me` answers 401");
            let (login, newer) = (
                "`POST /login` of the same user (profile `logins` + 1)",
                "`GET /me` shows the new `logins`",
            );
            let [t1, t2, t3, t4] = self.trials(trials).await;
            let rows = [
                (logout, none, refused, t1),
                (logout, spread, refused, t2),
                (login, none, newer, t3),
                (login, spread, newer, t4),
            ];
            let mut t6b = Table::new(
                format!(
                    "Scenario 6b: two app processes, one {what}: from a write on instance A to \
                     instance B seeing it"
                ),
                &[
                    "write on A",
                    "pause before it",
                    "seen on B as",
                    "trials",
                    "skipped",
                    "B served from its cache before",
                    "not seen within 3 s",
                    "p50",
                    "p95",
                    "p99",
                    "max",
                    "p99 vs 100 ms",
                ],
            );
            for (write, pause, seen, mut t) in rows {
                t.delays.sort();
                let n = t.delays.len();
                let mut row = vec![
                    write.into(),
                    pause.into(),
                    seen.into(),
                    n.to_string(),
                    t.skipped.to_string(),
                    format!("{} of {n}", t.cached),
                    t.delays
                        .iter()
                        .filter(|d| **d == NOT_SEEN)
                        .count()
                        .to_string(),
                ];
                if let Some(max) = t.delays.last() {
                    let p99 = quantile(&t.delays, 0.99);
                    row.extend([
                        fmt_delay(quantile(&t.delays, 0.5)),
                        fmt_delay(quantile(&t.delays, 0.95)),
                        fmt_delay(p99),
                        fmt_delay(*max),
                        if p99 <= BOUND { "within" } else { "over" }.into(),
                    ]);
                } else {
                    row.extend(["–".into(), "–".into(), "–".into(), "–".into(), "–".into()]);
                }
                t6b.row(row);
            }
            // The trials end with two log out everywhere on A: let them arrive first.
            self.quiet().await;
            let published = self.cache_stat(&self.a, "invalidations_published").await;
            let a_received = self.cache_stat(&self.a, "invalidations_received").await;
            let b_received = self.cache_stat(&self.b, "invalidations_received").await;
            let flushes = self.cache_stat(&self.b, "flushes").await;
            t6b.note(format!(
                "Each trial warms B with the cookie (\"served from its cache\": a second warm \
                 `GET /me` cost B no store operation), pauses (none: the write then follows \
                 the previous trial's delivery to B by a few ms, as in \
                 `tests/cache_mongo.rs`; or 0-199 ms, spread evenly, so that the write falls \
                 anywhere in the tails' polling (FerretDB: 10 ms) or `awaitData` (100 ms) \
                 cycle, as unrelated traffic does), \
                 writes on A, and times from A's answer until B's first answer that shows \
                 the write, polling \
                 B's `GET /me` every {poll} ms (a request takes about a millisecond: the \
                 resolution is a few ms); after 3 s it stops waiting (\"not seen\"). The four \
                 kinds run in {trials} rounds of one trial each, so that whatever changes \
                 over the run (such as the length of `_invalidations`) weighs on all alike. \
                 The logout trials' tokens are issued first, then B's tail is left to go \
                 quiet, so that each write's invalidation is the only one in flight. Profile \
                 trials: B keeps one cookie of the user and A logs the same user in again, \
                 which the counter's login does with one update of the profile (`$inc` \
                 `logins`). The bound is issue 12's (100 ms p99).",
                poll = POLL.as_millis()
            ));
            t6b.note(format!(
                "Over the whole run A published {published} invalidations into \
                 `_invalidations`; B's tail applied {b_received} and A's own tail \
                 {a_received} (B publishes none: it only reads; a document a tail is sent \
                 again is ignored and not counted, but a reopened tail reads the whole \
                 collection again and counts it). B dropped its whole cache {flushes} times \
                 (once when its tail first opened, then at each reopening and at each \
                 publication missing from A's sequence; its log says which). Unexpected answers during the trials, each retried (up to 2 s, \
                 then the trial is skipped): {errors} errors (5xx: a store command failed) \
                 and {refusals} refusals (401) of a cookie the store holds. An invalidation a \
                 tail does not receive leaves that instance serving the entry until it is \
                 `CacheSettings::max_age` (60 s) old.",
                errors = self.errors.get(),
                refusals = self.refusals.get()
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
                    "scenario 6: the counter example at {} exited: {status} (its log: {})",
                    app.base,
                    app.log.display()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "scenario 6: {} did not serve within 60 s (its log: {})",
                app.base,
                app.log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
