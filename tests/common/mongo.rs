//! The MongoDB-wire server the tests run against, found or started once per test process.
//!
//! Order (issue 3, point 8):
//! 1. `SLATES_TEST_MONGODB_URI`, if set;
//! 2. a `mongod` or `ferretdb` binary on `PATH` or in `target/tools/bin`, started once on a
//!    free 127.0.0.1 port in a temporary directory (FerretDB: SQLite backend, telemetry
//!    off) and killed by a watchdog when this test process exits;
//! 3. if `go` is on `PATH`: `.ci/install-ferretdb` builds FerretDB into `target/tools/bin`
//!    first (a minute or two, once), so plain `cargo test` on a fresh machine does the set-up;
//! 4. else `SLATES_REQUIRE_MONGO=1` fails the test, and without it one loud line says the
//!    MongoDB tests were skipped. Either way the message says why there is no server (no Go,
//!    the install script failed, or it left no binary), and each skipped test is recorded
//!    for the summary of `.ci/test` (`super::record_skip`), as is each test weakened on
//!    FerretDB.
//!
//! Every test gets its own database, named after the test and dropped first, so tests run
//! in parallel and a reused server starts clean.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use slates::mongodb::bson::doc;
use slates::mongodb::options::ClientOptions;
use slates::mongodb::{Client, Database};
use slates::{Engine, EngineBuilder, MongoStore};
use tokio::sync::OnceCell;

/// Where the tests' server is, and what it is.
#[derive(Debug)]
pub struct TestServer {
    /// Connection string without a database.
    pub uri: String,
    /// How it was found, for the log line.
    pub origin: String,
}

/// The server, or why there is none (found once per test process).
static SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();
static SKIP_NOTICE: Once = Once::new();

/// The test server, found or started on first use; `None` if there is none (the caller
/// skips, and the skip is recorded; under `SLATES_REQUIRE_MONGO=1` this panics instead).
pub fn server() -> Option<&'static TestServer> {
    let why = match SERVER.get_or_init(find_or_start) {
        Ok(server) => return Some(server),
        Err(why) => why,
    };
    if std::env::var("SLATES_REQUIRE_MONGO").as_deref() == Ok("1") {
        panic!(
            "SLATES_REQUIRE_MONGO=1 but no MongoDB-wire server: {why}. Set \
             SLATES_TEST_MONGODB_URI, put `mongod` or `ferretdb` on PATH, or let \
             .ci/install-ferretdb build FerretDB into target/tools/bin (it needs Go)"
        );
    }
    SKIP_NOTICE.call_once(|| {
        crate::say!(
            "\n!!!!! MongoDB tests SKIPPED: {why} (run `docker compose up -d` and set \
             SLATES_TEST_MONGODB_URI=mongodb://localhost:27017, or bash .ci/install-ferretdb) \
             !!!!!\n"
        );
    });
    super::record_skip("mongodb", &super::current_test("?"), why);
    None
}

/// A [`EngineBuilder`] on a fresh database named after `test`.
pub async fn builder(test: &str) -> Option<EngineBuilder> {
    Some(Engine::builder(store(test).await?))
}

/// A `MongoStore` on a fresh database named after `test`.
pub async fn store(test: &str) -> Option<MongoStore> {
    let db = database(test, client_options().await?).await;
    Some(MongoStore::from_database(db))
}

/// Driver options for the test server, with the short timeouts `MongoStore::connect` uses.
pub async fn client_options() -> Option<ClientOptions> {
    let server = server()?;
    let mut options = ClientOptions::parse(&server.uri)
        .await
        .expect("parse the test server URI");
    options
        .server_selection_timeout
        .get_or_insert(slates::store::DEFAULT_SERVER_TIMEOUT);
    options
        .connect_timeout
        .get_or_insert(slates::store::DEFAULT_SERVER_TIMEOUT);
    Some(options)
}

/// A fresh (dropped) database named after `test`, on a client built from `options`.
pub async fn database(test: &str, options: ClientOptions) -> Database {
    let client = Client::with_options(options).expect("test client");
    let db = client.database(&database_name(test));
    db.drop().await.expect("drop the test database");
    db
}

/// A MongoDB database name for a test: at most 63 bytes, none of `/\. "$` (nor anything
/// else outside `[A-Za-z0-9_-]`); long names keep their end and a hash of the whole.
pub fn database_name(test: &str) -> String {
    let clean: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= 63 {
        return clean;
    }
    // FNV-1a: stable across runs, unlike std's RandomState.
    let hash = test.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let tail = &clean[clean.len() - 46..];
    format!("{hash:016x}_{tail}")
}

/// What the server says it is (`buildInfo`), asked once.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `version` (FerretDB reports the MongoDB version it emulates).
    pub version: String,
    /// `ferretdbVersion`, if the server is FerretDB.
    pub ferretdb: Option<String>,
}

static INFO: OnceCell<ServerInfo> = OnceCell::const_new();

/// The server's `buildInfo` (cached). Panics if there is no server: call after `server()`.
pub async fn server_info() -> ServerInfo {
    INFO.get_or_init(|| async {
        let options = client_options().await.expect("a test server");
        // A client of its own: it lives and dies with this call's runtime.
        let client = Client::with_options(options).expect("client");
        let info = client
            .database("admin")
            .run_command(doc! {"buildInfo": 1})
            .await
            .expect("buildInfo");
        ServerInfo {
            version: info.get_str("version").unwrap_or("?").to_owned(),
            ferretdb: info.get_str("ferretdbVersion").ok().map(str::to_owned),
        }
    })
    .await
    .clone()
}

/// Whether the server is FerretDB.
pub async fn is_ferretdb() -> bool {
    server_info().await.ferretdb.is_some()
}

/// Whether concurrent updates of one document are atomic on this server: true on MongoDB,
/// false on FerretDB 1.x, whose updates are a read and a write in its backend (the suite
/// then skips its concurrency tests, loudly; the calling test is recorded as weakened).
pub async fn server_updates_are_atomic() -> bool {
    let atomic = !is_ferretdb().await;
    if !atomic {
        super::record_skip(
            "weakened",
            &super::current_test("?"),
            "concurrency test skipped on FerretDB, whose updates are not atomic (runs in full \
             on MongoDB and on the memory store)",
        );
    }
    atomic
}

/// Prints a note that a test is weaker, or skipped in part, on FerretDB, and records the
/// test as weakened.
pub fn ferretdb_note(test: &str, what: &str) {
    crate::say!("NOTE: {test}: on FerretDB: {what}");
    super::record_skip("weakened", &super::current_test(test), what);
}

// ------------------------------------------------------------------ finding and starting

/// The server, or why there is none: no Go to build FerretDB with, the install script
/// failed, or it succeeded but left no binary.
fn find_or_start() -> Result<TestServer, String> {
    if let Ok(uri) = std::env::var("SLATES_TEST_MONGODB_URI") {
        if !uri.is_empty() {
            return Ok(TestServer {
                origin: "SLATES_TEST_MONGODB_URI".into(),
                uri,
            });
        }
    }
    let binary = match server_binary() {
        Some(binary) => binary,
        None if which("go").is_none() => {
            return Err(
                "no SLATES_TEST_MONGODB_URI, no mongod or ferretdb binary (on PATH or in \
                 target/tools/bin), and no `go` on PATH to build FerretDB with \
                 .ci/install-ferretdb"
                    .into(),
            );
        }
        None => {
            install_ferretdb()?;
            server_binary().ok_or_else(|| {
                format!(
                    "no SLATES_TEST_MONGODB_URI and no mongod or ferretdb binary; \
                     .ci/install-ferretdb succeeded but {} is still missing",
                    tools_dir().join("ferretdb").display()
                )
            })?
        }
    };
    let dir = temp_dir("shared");
    let process = ServerProcess::start(&binary, free_port(), &dir);
    let uri = process.uri();
    crate::say!(
        "slates tests: started {} at {uri} (data in {}, stopped when the tests end)",
        binary.display(),
        dir.display()
    );
    let origin = format!("{} started by the tests", binary.display());
    // Kept for the life of the process; the watchdog kills the server after it.
    SHARED_PROCESS.get_or_init(|| Mutex::new(process));
    Ok(TestServer { uri, origin })
}

static SHARED_PROCESS: OnceLock<Mutex<ServerProcess>> = OnceLock::new();

/// `mongod` if there is one (on `PATH` or in `target/tools/bin`), else `ferretdb` (same
/// places): the real server is preferred to the stand-in.
pub fn server_binary() -> Option<PathBuf> {
    let tools = tools_dir();
    ["mongod", "ferretdb"]
        .into_iter()
        .find_map(|name| which(name).or_else(|| Some(tools.join(name)).filter(|p| p.is_file())))
}

/// Where `.ci/install-ferretdb` puts FerretDB.
fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `.ci/install-ferretdb`; `Err` says how it failed (its own error is printed above).
fn install_ferretdb() -> Result<(), String> {
    let root = env!("CARGO_MANIFEST_DIR");
    crate::say!("slates tests: no MongoDB-wire server found; building FerretDB with .ci/install-ferretdb (once, a minute or two)");
    let status = Command::new("bash")
        .arg(Path::new(root).join(".ci/install-ferretdb"))
        .current_dir(root)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status();
    let why = match status {
        Ok(s) if s.success() => return Ok(()),
        Ok(s) => format!(
            "no SLATES_TEST_MONGODB_URI and no mongod or ferretdb binary, and \
             .ci/install-ferretdb, run to build FerretDB, failed ({s}; its ERROR line is above)"
        ),
        Err(e) => format!(
            "no SLATES_TEST_MONGODB_URI and no mongod or ferretdb binary, and \
             `bash .ci/install-ferretdb` could not be run: {e}"
        ),
    };
    crate::say!("slates tests: {why}");
    Err(why)
}

/// A `mongod`/`ferretdb` binary for a dedicated server, or `None` (skipped loudly, or a
/// failure under `SLATES_REQUIRE_MONGO=1`).
pub fn dedicated_binary(test: &str) -> Option<std::path::PathBuf> {
    // Finds or builds the shared server's binary first (same order as every Mongo test).
    server()?;
    let binary = server_binary();
    if binary.is_none() {
        let msg = format!(
            "{test}: needs a mongod or ferretdb binary to kill and restart (the server of \
             SLATES_TEST_MONGODB_URI is not ours to kill)"
        );
        if std::env::var("SLATES_REQUIRE_MONGO").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        super::record_skip("mongodb", test, &msg);
        crate::say!("!!!!! SKIPPED {msg} !!!!!");
    }
    binary
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A fresh temporary directory for a server's data.
pub fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "slates-test-{what}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// A `mongod` or `ferretdb` process on a loopback port with its data in a directory, which
/// a watchdog kills if this test process dies first (statics are never dropped).
pub struct ServerProcess {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts the server and waits until it accepts connections.
    pub fn start(binary: &Path, port: u16, dir: &Path) -> Self {
        let mut p = ServerProcess {
            binary: binary.to_owned(),
            port,
            dir: dir.to_owned(),
            child: None,
        };
        p.restart();
        p
    }

    /// The connection string (no database).
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`, …) to the server process: SIGSTOP makes it stall
    /// with its connections open, as a server frozen by the host would.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server is running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Kills the server at once (SIGKILL: an outage, not a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let is_mongod = self
            .binary
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("mongod"));
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).expect("data directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("server log");
        let mut cmd = Command::new(&self.binary);
        if is_mongod {
            cmd.arg("--port")
                .arg(self.port.to_string())
                .args(["--bind_ip", "127.0.0.1", "--quiet", "--dbpath"])
                .arg(&data);
        } else {
            cmd.args(["--handler=sqlite", "--telemetry=disable", "--debug-addr=-"])
                .args(["--log-level=error"])
                .arg(format!("--listen-addr=127.0.0.1:{}", self.port))
                .arg(format!("--sqlite-url=file:{}/", data.display()))
                .arg(format!("--state-dir={}", self.dir.display()))
                .env("DO_NOT_TRACK", "1");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        watchdog(child.id(), &self.dir);
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} exited ({status}); see {}",
                    self.binary.display(),
                    self.dir.join("server.log").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on port {} within 60 s",
                self.binary.display(),
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills `child` and removes `dir` once this test process has exited (checked every
/// second), so a server started by the tests never outlives them.
fn watchdog(child: u32, dir: &Path) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
         kill -9 {child} 2>/dev/null; rm -rf '{dir}'",
        parent = std::process::id(),
        dir = dir.display(),
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
