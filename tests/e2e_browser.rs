//! End-to-end tests in a real browser: headless Chromium driven through WebDriver
//! (`fantoccini` talking to `chromedriver`), against the two examples served on a loopback
//! port. The harness starts `chromedriver` on a free loopback port (it starts Chromium with
//! the flags below and a fresh user-data dir), and stops both at the end of each test.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`bash .ci/install-browser`). When they
//! are missing the tests print one line, record the skip for the summary of `.ci/test`, and
//! pass; with `SLATES_REQUIRE_BROWSER=1` (CI) they fail instead. `SLATES_CHROMIUM` and `SLATES_CHROMEDRIVER` override the binaries' paths.
//!
//! Each test saves a screenshot of its last page as `target/e2e/<test>.png`.

#[allow(dead_code)]
#[path = "../examples/counter.rs"]
mod counter;
#[allow(dead_code)]
#[path = "../examples/upload_workflow/main.rs"]
mod upload_workflow;

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use slates::{Engine, MemoryStore, SlatesService, Username};
use tower::Service;

/// Exactly the flags of issue 6; the harness adds a fresh `--user-data-dir`.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// Longest a whole test may take before it is failed (the machine is small and shared).
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// Longest a wait for the page may take.
const WAIT: Duration = Duration::from_secs(30);

/// One browser test at a time: each starts its own Chromium, and the machine is small.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ------------------------------------------------------------------ harness

struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Tools {
    /// Finds Chromium and chromedriver. Missing: one clear line and `None` (the test
    /// passes), or a panic under `SLATES_REQUIRE_BROWSER=1`.
    fn find(test: &str) -> Option<Tools> {
        let chromium = tool("SLATES_CHROMIUM", &["chromium", "chromium-browser"]);
        let chromedriver = tool("SLATES_CHROMEDRIVER", &["chromedriver"]);
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Some(Tools {
                chromium,
                chromedriver,
            }),
            (chromium, chromedriver) => {
                let missing: Vec<&str> = [
                    chromium.is_none().then_some("chromium"),
                    chromedriver.is_none().then_some("chromedriver"),
                ]
                .into_iter()
                .flatten()
                .collect();
                let why = format!(
                    "{} not found (install with `bash .ci/install-browser`)",
                    missing.join(" and ")
                );
                if std::env::var("SLATES_REQUIRE_BROWSER").as_deref() == Ok("1") {
                    panic!("browser test {test} cannot run: {why}; SLATES_REQUIRE_BROWSER=1 requires it");
                }
                // Straight to stderr: libtest captures `eprintln!` of passing tests.
                let _ = writeln!(std::io::stderr(), "SKIPPED browser test {test}: {why}");
                record_skip(test, &why);
                None
            }
        }
    }
}

/// Records the skip for the summary of `.ci/test` (which fails CI on it): one line
/// `browser<TAB>test<TAB>reason` appended to `$SLATES_TEST_SKIPS_DIR/<pid>.log`, as
/// `common::record_skip` does for the other tests (this file does not use `tests/common`).
/// A record that cannot be written fails the test: a skip must not go uncounted.
fn record_skip(test: &str, why: &str) {
    let Some(dir) = std::env::var_os("SLATES_TEST_SKIPS_DIR").filter(|d| !d.is_empty()) else {
        return;
    };
    // The test's name as libtest knows it (its thread's name), else the harness's label.
    let test = match std::thread::current().name() {
        Some(name) if name != "main" && !name.starts_with("tokio-") => name.to_owned(),
        _ => test.to_owned(),
    };
    let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = format!("browser\te2e_browser::{test}\t{why}\n");
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
        panic!(
            "could not record the skip of {test} in {}: {e}",
            path.display()
        );
    }
}

/// `$env` if set, else the first of `names` found on `PATH`.
fn tool(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn e2e_dir() -> PathBuf {
    let dir = target_dir().join("e2e");
    std::fs::create_dir_all(&dir).expect("create target/e2e");
    dir
}

/// A chromedriver process and the fresh user-data dir of its Chromium; both are cleaned up
/// on drop (the process is killed by its id).
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    async fn start(tools: &Tools, test: &str) -> Driver {
        let profile = std::env::temp_dir().join(format!(
            "slates-e2e-{}-{test}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&profile).expect("create the user-data dir");
        let log = e2e_dir().join(format!("{test}-chromedriver.log"));
        // A free port can be taken between our probe and chromedriver's bind: retry.
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&tools.chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: port taken, try another
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Driver {
                        child,
                        port,
                        profile,
                    };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("chromedriver did not start; see {}", log.display());
    }

    /// A new WebDriver session: Chromium with the flags and the fresh profile.
    async fn session(&self, tools: &Tools) -> Client {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": args,
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("start a Chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free port")
        .port()
}

/// What the browser tests serve: an example's app (its router inside the slates layer),
/// possibly inside a test's own middleware.
trait App:
    Service<Request, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> App for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Serves `app` on a free loopback port, as the examples' `main` does; returns its base URL.
async fn serve(app: impl App) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::ServiceExt::<Request>::into_make_service(app);
    let server = tokio::spawn(async move {
        axum::serve(listener, app).into_future().await.unwrap();
    });
    (base, server)
}

async fn new_slates() -> Engine {
    Engine::builder(MemoryStore::new())
        .secure(false) // plain http on loopback
        .build()
        .await
        .unwrap()
}

/// The `upload_workflow` example on a fresh memory store, with `admin` as its admin.
async fn upload_app() -> SlatesService<Router> {
    let builder = Engine::builder(MemoryStore::new()).secure(false); // plain http on loopback
    let engine = upload_workflow::configure(builder).build().await.unwrap();
    upload_workflow::app(engine, Username::new("admin").unwrap())
}

/// Runs one browser test: the app on a loopback port, chromedriver + Chromium, the test
/// body (in its own task, so that a failed assertion still gets its screenshot), then a
/// screenshot of the last page, and everything stopped.
async fn e2e<F, Fut>(test: &'static str, app: impl App, body: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(tools) = Tools::find(test) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let (base, server) = serve(app).await;
    let driver = Driver::start(&tools, test).await;
    let client = driver.session(&tools).await;
    client
        .set_window_size(1100, 900)
        .await
        .expect("size the window");

    let outcome =
        tokio::time::timeout(TEST_TIMEOUT, tokio::spawn(body(client.clone(), base))).await;

    let shot = e2e_dir().join(format!("{test}.png"));
    match tokio::time::timeout(Duration::from_secs(20), client.screenshot()).await {
        Ok(Ok(png)) => {
            std::fs::write(&shot, png).expect("write the screenshot");
            eprintln!("screenshot of the last page: {}", shot.display());
        }
        Ok(Err(e)) => eprintln!("no screenshot for {test}: {e}"),
        Err(_) => eprintln!("no screenshot for {test}: timed out"),
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), client.close()).await;
    drop(driver);
    server.abort();

    match outcome {
        Err(_) => panic!(
            "{test} timed out after {TEST_TIMEOUT:?}; last page: {}",
            shot.display()
        ),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("{test}: {e}"),
        Ok(Ok(())) => {}
    }
}

// ------------------------------------------------------------------ page helpers

/// Saves a screenshot of the current page as `target/e2e/<name>.png`, for people to look at.
async fn snap(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(e2e_dir().join(format!("{name}.png")), png).unwrap();
}

async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

async fn text(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.unwrap()
}

/// Clicks and waits until the page that the click loads has replaced the current one.
async fn click_and_load(c: &Client, css: &str) {
    let old = &find(c, "html").await;
    find(c, css).await.click().await.unwrap();
    wait_until("the next page to load", move || async move {
        // The old page's element goes stale once the browser has navigated.
        old.tag_name().await.is_err()
    })
    .await;
    find(c, "body").await;
}

async fn wait_until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !ready().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The element's text with runs of whitespace (table cell gaps) as one space.
async fn words(c: &Client, css: &str) -> String {
    text(c, css)
        .await
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Like [`js`], for a page that may be navigating: `None` while no document answers.
async fn js_now(c: &Client, script: &str) -> Option<Value> {
    c.execute(script, vec![]).await.ok()
}

async fn path(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

// ------------------------------------------------------------------ upload workflow

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_workflow_in_a_browser() {
    let app = upload_app().await;
    let csv = e2e_dir().join("upload_workflow_ids.csv");
    std::fs::write(&csv, "id,label\n4,four\n5,five\n\"6\",six\n").unwrap();
    e2e("upload_workflow", app, move |c, base| async move {
        let c = &c;
        // Log in through the form.
        c.goto(&format!("{base}/")).await.unwrap();
        assert!(text(c, "main").await.contains("there is no password"));
        find(c, "#username").await.send_keys("ada").await.unwrap();
        click_and_load(c, "#login").await;
        assert_eq!(path(c).await, "/upload");

        // A first set, through the textarea, kept as is.
        find(c, "#name").await.send_keys("base").await.unwrap();
        find(c, "#ids").await.send_keys("1 2 3").await.unwrap();
        click_and_load(c, "#upload").await;
        assert_eq!(path(c).await, "/review");
        click_and_load(c, "#keep").await;
        assert!(text(c, "#sets").await.contains("base"));

        // The real upload: a list in the textarea and a CSV file through the file input.
        c.goto(&format!("{base}/upload")).await.unwrap();
        find(c, "#name").await.send_keys("batch 7").await.unwrap();
        find(c, "#ids")
            .await
            .send_keys("3, 4\n4 abc")
            .await
            .unwrap();
        find(c, "#file")
            .await
            .send_keys(&csv.display().to_string())
            .await
            .unwrap();
        snap(c, "upload_workflow-1-upload").await;
        click_and_load(c, "#upload").await;
        assert_eq!(path(c).await, "/review");
        snap(c, "upload_workflow-2-review").await;
        let review = text(c, "main").await;
        assert!(review.contains("Review “batch 7”"), "{review}");
        assert!(
            review.contains("upload_workflow_ids.csv: 3 values"),
            "{review}"
        );
        // Conflicts: 3 is in "base"; 4 is given three times; "abc" is not a valid id.
        assert_eq!(words(c, "#already-saved tr:nth-child(2)").await, "3 base");
        assert_eq!(words(c, "#duplicates tr:nth-child(2)").await, "4 3");
        assert_eq!(text(c, "#not-ids").await, "abc");
        assert!(review.contains("Not valid ids (1)"), "{review}");
        assert!(text(c, "#expires").await.ends_with(" UTC."));
        assert!(
            review.contains("Discard conflicts (save 3 ids)"),
            "{review}"
        );

        // Detour through other pages, by the navigation links.
        click_and_load(c, "nav a[href='/sets']").await;
        let sets = text(c, "#sets").await;
        assert!(sets.contains("base") && !sets.contains("batch 7"), "{sets}");
        click_and_load(c, "nav a[href='/profile']").await;
        assert_eq!(text(c, "#username").await, "ada");
        assert_eq!(text(c, "#timezone").await, "UTC (default)");
        let tz = find(c, "#tz").await;
        tz.clear().await.unwrap();
        tz.send_keys("Asia/Tokyo").await.unwrap();
        click_and_load(c, "#save-timezone").await;
        assert_eq!(path(c).await, "/profile");
        assert_eq!(text(c, "#saved").await, "Profile saved.", "a flash message");
        assert_eq!(text(c, "#timezone").await, "Asia/Tokyo");
        snap(c, "upload_workflow-3-profile").await;

        // Back to the review: the upload is still there, its expiry now in Tokyo time.
        click_and_load(c, "nav a[href='/review']").await;
        let again = text(c, "main").await;
        let expires = review.find("Unless you confirm it").unwrap();
        assert_eq!(again[..expires], review[..expires]);
        assert!(text(c, "#expires").await.ends_with(" JST."), "{again}");

        // Discard the conflicts: 3 dropped, 4 kept once, abc never saved.
        click_and_load(c, "#discard").await;
        assert_eq!(path(c).await, "/sets");
        assert_eq!(
            text(c, "#saved").await,
            "Saved “batch 7”.",
            "a flash message"
        );
        let row = words(c, "#sets tr:nth-child(3)").await;
        assert!(row.starts_with("batch 7 3 4, 5, 6"), "{row}");
        assert!(row.ends_with(" JST"), "saved at, in Tokyo time: {row}");
        snap(c, "upload_workflow-4-saved").await;

        // The workflow is gone: reloading the review page says so.
        c.goto(&format!("{base}/review")).await.unwrap();
        assert!(text(c, "#no-upload")
            .await
            .contains("no upload in progress"));
        c.refresh().await.unwrap();
        assert!(text(c, "#no-upload")
            .await
            .contains("no upload in progress"));
    })
    .await;
}

/// Issue 14: a visitor starts an upload before logging in (a guest slate, its HttpOnly
/// cookie), is sent to the login form by the review page, and finds the upload on the
/// review page after logging in, checked against their saved sets. Saving it says so once
/// (a flash message): reloading the page does not say it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_upload_found_after_login() {
    let app = upload_app().await;
    e2e("visitor_upload", app, |c, base| async move {
        let c = &c;
        // ada saves a set first, then logs out.
        log_in(c, &base, "ada").await;
        find(c, "#name").await.send_keys("base").await.unwrap();
        find(c, "#ids").await.send_keys("1 2 3").await.unwrap();
        click_and_load(c, "#upload").await;
        click_and_load(c, "#keep").await;
        click_and_load(c, "#logout").await;
        assert!(
            c.get_all_cookies().await.unwrap().is_empty(),
            "no cookie left"
        );

        // As a visitor: the login page offers an upload without logging in.
        click_and_load(c, "#upload-as-visitor").await;
        assert_eq!(path(c).await, "/upload");
        assert!(text(c, "#visitor").await.contains("not logged in"));
        assert!(
            c.get_all_cookies().await.unwrap().is_empty(),
            "reading costs no cookie"
        );
        find(c, "#name").await.send_keys("batch 8").await.unwrap();
        find(c, "#ids").await.send_keys("3 4 4").await.unwrap();
        click_and_load(c, "#upload").await;
        // The review page sends the visitor to the login form, which comes back to it.
        assert_eq!(path(c).await, "/?next=/review");
        let cookies = c.get_all_cookies().await.unwrap();
        let guest = cookies
            .iter()
            .find(|k| k.name() == "slates-guest")
            .unwrap_or_else(|| panic!("no guest cookie in {cookies:?}"));
        assert_eq!(guest.http_only(), Some(true));
        snap(c, "visitor_upload-1-login").await;
        find(c, "#username").await.send_keys("ada").await.unwrap();
        click_and_load(c, "#login").await;
        assert_eq!(path(c).await, "/review");
        let review = text(c, "main").await;
        assert!(review.contains("batch 8"), "{review}");
        assert!(
            review.contains("base"),
            "checked against ada's sets: {review}"
        );
        snap(c, "visitor_upload-2-review").await;
        click_and_load(c, "#discard").await;
        assert_eq!(path(c).await, "/sets");
        assert_eq!(text(c, "#saved").await, "Saved “batch 8”.");
        c.refresh().await.unwrap();
        find(c, "#sets").await;
        assert!(!text(c, "main").await.contains("Saved “"), "said once");
    })
    .await;
}

/// Logs in through the login form as `name`.
async fn log_in(c: &Client, base: &str, name: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    find(c, "#username").await.send_keys(name).await.unwrap();
    click_and_load(c, "#login").await;
    assert_eq!(path(c).await, "/upload");
}

/// Back after confirming an upload: Chromium brings the review page back from its
/// back/forward cache (although it is `no-store`); the page must reload itself and show
/// that no upload is in progress, not the review with live buttons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_after_confirm_shows_no_stale_review() {
    let app = upload_app().await;
    e2e("back_after_confirm", app, |c, base| async move {
        let c = &c;
        log_in(c, &base, "ada").await;
        find(c, "#name").await.send_keys("first").await.unwrap();
        find(c, "#ids").await.send_keys("1 2").await.unwrap();
        click_and_load(c, "#upload").await;
        assert_eq!(path(c).await, "/review");
        // A mark on this page's window: a page restored from the cache still has it.
        js(c, "window.reviewedHere = true; return null;").await;
        click_and_load(c, "#keep").await;
        assert_eq!(path(c).await, "/sets");

        c.back().await.unwrap();
        // [path, restored from the cache, live buttons, the "no upload" notice]
        let state = "return [location.pathname, window.reviewedHere === true,
                    document.querySelectorAll('#keep, #discard, #cancel').length,
                    !!document.getElementById('no-upload')];";
        let deadline = Instant::now() + WAIT;
        let seen = loop {
            // While the page reloads, no document may answer: ask again.
            let seen = js_now(c, state).await.unwrap_or(Value::Null);
            if seen[3] == json!(true) || Instant::now() > deadline {
                break seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        snap(c, "back_after_confirm-1-back").await;
        assert_eq!(
            seen,
            json!(["/review", false, 0, true]),
            "Back must reload the review page, not show the cached one with live buttons"
        );
        assert!(text(c, "#no-upload").await.contains("no upload in progress"));

        // Forward and Back again: the same.
        c.forward().await.unwrap();
        wait_until("Forward to the saved sets", || async {
            js_now(c, "return location.pathname;").await == Some(json!("/sets"))
        })
        .await;
        assert!(text(c, "#sets").await.contains("first"));
        c.back().await.unwrap();
        wait_until("Back to show no upload again", || async {
            js_now(c, "return !!document.getElementById('no-upload') && !document.getElementById('keep');")
                .await
                == Some(json!(true))
        })
        .await;
    })
    .await;
}

/// Back after a form post that failed: the error is shown by a GET page (post-redirect-get),
/// so Back from the next page lands on it, not on "Confirm Form Resubmission", and never
/// posts the form again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_after_an_error_lands_on_a_page() {
    let posts = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&posts);
    let count = axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            if req.method() == "POST" && req.uri().path() == "/upload" {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            next.run(req)
        },
    );
    let app = tower::Layer::layer(&count, upload_app().await);
    e2e("back_after_error", app, move |c, base| async move {
        let c = &c;
        log_in(c, &base, "ada").await;
        find(c, "#name").await.send_keys("a.b").await.unwrap();
        find(c, "#ids").await.send_keys("1 2").await.unwrap();
        click_and_load(c, "#upload").await;
        let error = text(c, "#error").await;
        assert!(error.contains("letters, digits"), "{error}");
        assert_eq!(posts.load(Ordering::SeqCst), 1);
        let error_page = path(c).await;
        snap(c, "back_after_error-1-error").await;

        // Elsewhere, then Back.
        c.goto(&format!("{base}/sets")).await.unwrap();
        find(c, "#no-sets").await;
        c.back().await.unwrap();
        wait_until("Back to show a page", || async {
            js_now(c, "return document.readyState === 'complete' && !!document.querySelector('main, #main-frame-error');")
                .await
                == Some(json!(true))
        })
        .await;
        snap(c, "back_after_error-2-back").await;
        let body = text(c, "body").await;
        assert!(
            !body.contains("Confirm Form Resubmission") && !body.contains("ERR_CACHE_MISS"),
            "Back landed on the answer to a form post: {body}"
        );
        assert_eq!(path(c).await, error_page);
        assert_eq!(error_page, "/upload?error=bad-set-name");
        assert!(text(c, "#error").await.contains("letters, digits"));
        find(c, "#upload").await;
        assert_eq!(posts.load(Ordering::SeqCst), 1, "Back posted nothing");

        // The form works from there.
        find(c, "#name").await.send_keys("ab").await.unwrap();
        find(c, "#ids").await.send_keys("1 2").await.unwrap();
        click_and_load(c, "#upload").await;
        assert_eq!(path(c).await, "/review");
        assert_eq!(posts.load(Ordering::SeqCst), 2);
    })
    .await;
}

// ------------------------------------------------------------------ two tabs

/// Two windows of the same login click the hit button concurrently: the final count is the
/// number of clicks, and every count from 1 to N was handed out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_count_every_click() {
    let app = counter::app(new_slates().await);
    e2e("two_tabs", app, |c, base| async move {
        let c = &c;
        const ROUNDS: usize = 15; // WebDriver clicks, alternating windows
        const BURST: usize = 60; // clicks per window, fired at the same instant in both
        c.goto(&format!("{base}/")).await.unwrap();
        find(c, "#username").await.send_keys("ada").await.unwrap();
        click_and_load(c, "#login-button").await;
        assert_eq!(text(c, "#who").await, "ada");
        let a = c.window().await.unwrap();
        let b = c.new_window(false).await.unwrap().handle;
        c.switch_to_window(b.clone()).await.unwrap();
        c.goto(&format!("{base}/")).await.unwrap();
        assert_eq!(
            text(c, "#who").await,
            "ada",
            "same login in the second window"
        );

        // Real clicks, alternating: each click's request is still in flight when the
        // other window clicks.
        for _ in 0..ROUNDS {
            for w in [&a, &b] {
                c.switch_to_window(w.clone()).await.unwrap();
                find(c, "#hit").await.click().await.unwrap();
            }
        }
        // Then a burst in both windows, scheduled for the same instant.
        let start_at = js(c, "return Date.now() + 1500;").await;
        for w in [&a, &b] {
            c.switch_to_window(w.clone()).await.unwrap();
            c.execute(
                "const [at, n] = arguments;
                 setTimeout(() => {
                   const button = document.getElementById('hit');
                   for (let i = 0; i < n; i++) button.click();
                 }, Math.max(0, at - Date.now()));",
                vec![start_at.clone(), json!(BURST)],
            )
            .await
            .unwrap();
        }

        // Wait until every request of both windows has been answered.
        let per_window = ROUNDS + BURST;
        let mut seen = Vec::new();
        for w in [&a, &b] {
            c.switch_to_window(w.clone()).await.unwrap();
            wait_until("every hit to be answered", move || async move {
                let v = js(
                    c,
                    "return [window.hitsSeen.length, window.hitsPending, window.hitsFailed];",
                )
                .await;
                assert_eq!(v[2], 0, "no hit failed");
                v[0] == json!(per_window) && v[1] == 0
            })
            .await;
            let v = js(c, "return window.hitsSeen;").await;
            seen.extend(v.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()));
        }
        let clicks = 2 * per_window;
        seen.sort_unstable();
        assert_eq!(
            seen,
            (1..=clicks as u64).collect::<Vec<_>>(),
            "every count handed out exactly once"
        );
        // The page, reloaded, shows the total.
        c.refresh().await.unwrap();
        assert_eq!(text(c, "#count").await, clicks.to_string());
        c.switch_to_window(a).await.unwrap();
        c.refresh().await.unwrap();
        assert_eq!(text(c, "#count").await, clicks.to_string());
    })
    .await;
}

// ------------------------------------------------------------------ cookies

/// The token cookie is HttpOnly (the browser holds it, `document.cookie` does not show it),
/// and logging out in one window logs the other out on its next request: that hit counts
/// as an anonymous visitor's (HttpOnly guest cookie), and is added to ada's at her next
/// login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_as_the_browser_sees_them() {
    let app = counter::app(new_slates().await);
    e2e("cookies", app, |c, base| async move {
        let c = &c;
        c.goto(&format!("{base}/")).await.unwrap();
        find(c, "#username").await.send_keys("ada").await.unwrap();
        click_and_load(c, "#login-button").await;
        assert_eq!(text(c, "#who").await, "ada");

        // The browser has the cookie, flagged HttpOnly and SameSite=Lax...
        let cookies = c.get_all_cookies().await.unwrap();
        let token = cookies
            .iter()
            .find(|k| k.name() == "slates")
            .unwrap_or_else(|| panic!("no slates cookie in {cookies:?}"));
        assert_eq!(token.http_only(), Some(true));
        assert_eq!(token.same_site(), Some(cookie::SameSite::Lax));
        let value = token.value().to_owned();
        assert!(value.len() >= 40, "a real token");
        // ...and page scripts cannot read it, although they can read their own cookies.
        let seen = js(
            c,
            "document.cookie = 'probe=visible; path=/'; return document.cookie;",
        )
        .await;
        let seen = seen.as_str().unwrap();
        assert!(seen.contains("probe=visible"), "{seen}");
        assert!(!seen.contains("slates") && !seen.contains(&value), "{seen}");
        // Yet the browser sends it: a script's fetch is authenticated.
        let me = c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch('/me').then(r => r.json()).then(j => done(j.username), e => done(String(e)));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(me, "ada");

        // A second window, same login.
        let a = c.window().await.unwrap();
        let b = c.new_window(false).await.unwrap().handle;
        c.switch_to_window(b.clone()).await.unwrap();
        c.goto(&format!("{base}/")).await.unwrap();
        assert_eq!(text(c, "#who").await, "ada");
        find(c, "#hit").await.click().await.unwrap();
        wait_until("the hit", move || async move { text(c, "#count").await == "1" }).await;

        // Log out in the first window.
        c.switch_to_window(a).await.unwrap();
        click_and_load(c, "#logout").await;
        assert!(find(c, "#login").await.is_displayed().await.unwrap());
        assert!(
            c.get_all_cookies()
                .await
                .unwrap()
                .iter()
                .all(|k| k.name() != "slates"),
            "the cookie was expired"
        );

        // The second window still shows the old page; its next request is no longer ada's:
        // it counts as the visitor's first hit (issue 14), and issues the guest cookie.
        c.switch_to_window(b).await.unwrap();
        find(c, "#hit").await.click().await.unwrap();
        wait_until("the visitor's hit", move || async move {
            js(c, "return window.hitsSeen;").await == json!([1, 1])
        })
        .await;
        assert_eq!(js(c, "return window.hitsFailed;").await, json!(0));
        let cookies = c.get_all_cookies().await.unwrap();
        assert!(cookies.iter().all(|k| k.name() != "slates"), "still logged out");
        let guest = cookies
            .iter()
            .find(|k| k.name() == "slates-guest")
            .unwrap_or_else(|| panic!("no guest cookie in {cookies:?}"));
        assert_eq!(guest.http_only(), Some(true));
        let seen = js(c, "return document.cookie;").await;
        assert!(!seen.as_str().unwrap().contains("slates"), "{seen}");
        c.refresh().await.unwrap();
        assert!(find(c, "#login").await.is_displayed().await.unwrap());
        assert!(text(c, "#guest-note").await.contains("not logged in"));
        assert_eq!(text(c, "#count").await, "1", "the visitor's count");
        // Logging in again adds the visitor's hit to ada's.
        find(c, "#username").await.send_keys("ada").await.unwrap();
        click_and_load(c, "#login-button").await;
        assert_eq!(text(c, "#who").await, "ada");
        assert_eq!(text(c, "#count").await, "2", "ada's hit and the visitor's");
    })
    .await;
}

// ------------------------------------------------------------------ devices

/// The Devices page with two browsers (two WebDriver sessions, each its own Chromium and
/// profile, so two cookie jars: two devices of one user): each lists both, marks itself;
/// ending the other device logs it out on its next page; "End all other devices" does the
/// same and keeps this one logged in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_page_with_two_browsers() {
    let app = upload_app().await;
    e2e("devices_two_browsers", app, |laptop, base| async move {
        let laptop = &laptop;
        let tools = Tools::find("devices_two_browsers_phone").expect("found for the first browser");
        let driver = Driver::start(&tools, "devices_two_browsers_phone").await;
        let phone = &driver.session(&tools).await;

        log_in(laptop, &base, "ada").await;
        log_in(phone, &base, "ada").await;
        // [rows, rows marked current, label of the current row]
        let rows = "var rows = document.querySelectorAll('tr.device');
            var current = document.querySelectorAll('tr.device[data-current=true]');
            return [rows.length, current.length,
                    current.length ? current[0].querySelector('.label').textContent : null];";
        for c in [laptop, phone] {
            c.goto(&format!("{base}/devices")).await.unwrap();
            find(c, "#devices").await;
            let seen = js(c, rows).await;
            assert_eq!(
                (seen[0].clone(), seen[1].clone()),
                (json!(2), json!(1)),
                "{seen}"
            );
            assert!(seen[2].as_str().unwrap().ends_with("on Linux"), "{seen}");
        }
        snap(laptop, "devices_two_browsers-1-list").await;

        // The laptop ends the phone.
        click_and_load(laptop, "tr.device[data-current=false] button.end").await;
        assert_eq!(path(laptop).await, "/devices?ended=1");
        assert_eq!(words(laptop, "#ended").await, "Ended 1 device.");
        assert_eq!(js(laptop, rows).await[0], json!(1));
        phone.goto(&format!("{base}/devices")).await.unwrap();
        find(phone, "#username").await;
        assert_eq!(
            path(phone).await,
            "/?next=/devices",
            "the phone is logged out"
        );

        // The phone logs in again; the laptop ends all the others.
        log_in(phone, &base, "ada").await;
        laptop.goto(&format!("{base}/devices")).await.unwrap();
        find(laptop, "#devices").await;
        assert_eq!(js(laptop, rows).await[0], json!(2));
        click_and_load(laptop, "#end-others").await;
        assert_eq!(words(laptop, "#ended").await, "Ended 1 device.");
        snap(laptop, "devices_two_browsers-2-ended-others").await;
        phone.goto(&format!("{base}/sets")).await.unwrap();
        find(phone, "#username").await;
        assert_eq!(path(phone).await, "/?next=/sets");
        laptop.goto(&format!("{base}/sets")).await.unwrap();
        find(laptop, "main h1").await;
        assert_eq!(path(laptop).await, "/sets", "the laptop stays logged in");

        let _ = phone.clone().close().await;
        drop(driver);
    })
    .await;
}
