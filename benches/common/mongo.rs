//! The MongoDB-wire server for scenarios 4 and 5: `SLATES_BENCH_MONGODB_URI`, else a
//! `mongod` or `ferretdb` binary (in `target/tools/bin`, then on `PATH`) started on a free
//! loopback port in a temporary directory and stopped when the bench ends.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slates::mongodb::event::command::CommandEvent;
use slates::mongodb::event::EventHandler;
use slates::mongodb::options::ClientOptions;
use slates::mongodb::{bson::doc, Client, Database};
use slates::MongoStore;

/// A server to bench against.
pub struct Server {
    /// Connection string, no database.
    pub uri: String,
    /// What it is, for the tables: `MongoDB 7.0.x` or `FerretDB v1.24.0 (SQLite)`.
    pub name: String,
    /// Whether it is FerretDB (whose figures are no guide to MongoDB's speed).
    pub ferretdb: bool,
    process: Option<(Child, PathBuf)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((mut child, dir)) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin");
    let local = tools.join(name);
    if local.is_file() {
        return Some(local);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The server, or why there is none.
pub async fn server() -> Result<Server, String> {
    let (uri, process) = match std::env::var("SLATES_BENCH_MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => (uri, None),
        _ => {
            let binary = which("mongod")
                .or_else(|| which("ferretdb"))
                .ok_or("no server: set SLATES_BENCH_MONGODB_URI or put mongod/ferretdb on PATH or in target/tools/bin (bash .ci/install-ferretdb)")?;
            let (child, dir, port) = start(&binary)?;
            (format!("mongodb://127.0.0.1:{port}/"), Some((child, dir)))
        }
    };
    let mut server = Server {
        uri,
        name: String::new(),
        ferretdb: false,
        process,
    };
    let client = Client::with_uri_str(&server.uri)
        .await
        .map_err(|e| e.to_string())?;
    let info = client
        .database("admin")
        .run_command(doc! {"buildInfo": 1})
        .await
        .map_err(|e| format!("no server: {e}"))?;
    let version = info.get_str("version").unwrap_or("?").to_owned();
    match info.get_str("ferretdbVersion") {
        Ok(f) => {
            server.ferretdb = true;
            server.name = format!("FerretDB {f} (SQLite backend)");
        }
        Err(_) => server.name = format!("MongoDB {version}"),
    }
    Ok(server)
}

fn start(binary: &Path) -> Result<(Child, PathBuf, u16), String> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let dir = std::env::temp_dir().join(format!("slates-bench-{}-{port}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    let mongod = binary
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("mongod"));
    let mut cmd = Command::new(binary);
    if mongod {
        cmd.arg("--port")
            .arg(port.to_string())
            .args(["--bind_ip", "127.0.0.1", "--quiet", "--dbpath"])
            .arg(&data);
    } else {
        cmd.args(["--handler=sqlite", "--telemetry=disable", "--debug-addr=-"])
            .arg("--log-level=error")
            .arg(format!("--listen-addr=127.0.0.1:{port}"))
            .arg(format!("--sqlite-url=file:{}/", data.display()))
            .arg(format!("--state-dir={}", dir.display()))
            .env("DO_NOT_TRACK", "1");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("start {}: {e}", binary.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{} exited: {status}", binary.display()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("{} did not listen within 60 s", binary.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, dir, port))
}

/// Counts the commands a client sends (driver command monitoring), by name.
#[derive(Clone, Default)]
pub struct CommandCounter {
    total: Arc<AtomicU64>,
    names: Arc<Mutex<Vec<String>>>,
}

impl CommandCounter {
    /// Commands started so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    /// Names of the commands started since the last call, emptied.
    pub fn take_names(&self) -> Vec<String> {
        std::mem::take(&mut *self.names.lock().unwrap())
    }
}

/// A fresh (dropped) database `name` on a client that reports every command to the counter.
pub async fn database(server: &Server, name: &str) -> (Database, CommandCounter) {
    let counter = CommandCounter::default();
    let mut options = ClientOptions::parse(&server.uri).await.unwrap();
    let c = counter.clone();
    options.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| {
        if let CommandEvent::Started(s) = ev {
            c.total.fetch_add(1, Ordering::SeqCst);
            c.names.lock().unwrap().push(s.command_name);
        }
    }));
    let client = Client::with_options(options).unwrap();
    let db = client.database(name);
    db.drop().await.unwrap();
    (db, counter)
}

/// A store on a fresh (dropped) database `name`, built as an application builds it
/// ([`MongoStore::connect_with_options`]: slates' server-selection, connect and heartbeat
/// defaults, `maxTimeMS`), on a client that reports every command to the counter.
pub async fn store(server: &Server, name: &str) -> (MongoStore, CommandCounter) {
    let counter = CommandCounter::default();
    let mut options = ClientOptions::parse(&server.uri).await.unwrap();
    options.default_database = Some(name.to_owned());
    let c = counter.clone();
    options.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| {
        if let CommandEvent::Started(s) = ev {
            c.total.fetch_add(1, Ordering::SeqCst);
            c.names.lock().unwrap().push(s.command_name);
        }
    }));
    let store = MongoStore::connect_with_options(options).unwrap();
    store.database().drop().await.unwrap();
    (store, counter)
}
