//! The `upload_workflow` example through its own `app()`: the whole workflow with a detour
//! through other pages, CSV upload through multipart, conflicts, discard vs keep, expiry
//! with a moved clock, the limits, post-redirect-get of every form, login with `next`,
//! times in the user's timezone, the admin-only `/stats`, and one run over a real listener
//! with a cookie client.
mod common;

#[allow(dead_code)]
#[path = "../examples/upload_workflow/main.rs"]
mod upload_workflow;

use std::future::IntoFuture;

use axum::body::Body;
use common::harness::{Client, Reply};
use common::Backend;
use http::{Request, StatusCode};
#[cfg(feature = "mongodb")]
use slates::Layout;
use slates::{Engine, ManualClock, MemoryStore, Username};
use time::{Duration, OffsetDateTime};
use upload_workflow::csv::{parse_csv, parse_id, split_list};
use upload_workflow::id_sets::{check_set_name, SavedSets};
use upload_workflow::problem::Problem;
use upload_workflow::timezone::check_timezone;
use upload_workflow::{app, configure};

const BOUNDARY: &str = "----slates-test-boundary-7MA4YWxkTrZu0gW";

/// Browsers ask for HTML when they visit a page.
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The admin the tests run the app with.
fn admin() -> Username {
    Username::new("admin").unwrap()
}

/// The app on `backend` with a manual clock; `None` when the backend is not available here
/// (the MongoDB tests then say so, or fail under `SLATES_REQUIRE_MONGO=1`).
async fn app_on(backend: Backend, test: &str, clock: &ManualClock) -> Option<(Engine, Client)> {
    let builder = backend.builder(test, clock).await?;
    let slates = configure(builder).build().await.expect("build slates");
    let client = Client::new(app(slates.clone(), admin()));
    Some((slates, client))
}

async fn new_app(clock: &ManualClock) -> (Engine, Client) {
    let builder = Engine::builder(MemoryStore::new())
        .clock(clock.clone())
        .secure(false);
    let slates = configure(builder).build().await.unwrap();
    let client = Client::new(app(slates.clone(), admin()));
    (slates, client)
}

/// A multipart body: text fields, then optionally one file field `file`.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(
    client: &mut Client,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> Reply {
    client
        .send(
            Request::post("/upload")
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(Body::from(multipart(fields, file)))
                .unwrap(),
        )
        .await
}

fn location(reply: &Reply) -> &str {
    reply.headers["location"].to_str().unwrap()
}

/// A page visit, as a browser makes it (`Accept: text/html`).
async fn visit(client: &mut Client, path: &str) -> Reply {
    client
        .send(
            Request::get(path)
                .header("accept", HTML)
                .body(Body::empty())
                .unwrap(),
        )
        .await
}

/// Checks that `reply` is the post-redirect-get answer to a form post that failed: a 303
/// back to `page` with the problem's code. Follows it and returns the page shown.
async fn failed_post(client: &mut Client, reply: Reply, page: &str, problem: Problem) -> Reply {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(reply.body.is_empty(), "a redirect, not an error page");
    let to = location(&reply).to_owned();
    let separator = if page.contains('?') { '&' } else { '?' };
    assert_eq!(to, format!("{page}{separator}error={}", problem.code()));
    let shown = visit(client, &to).await;
    assert!(
        shown.body.contains(r#"id="error""#) && shown.body.contains(problem.title()),
        "{to}: {}",
        shown.body
    );
    shown
}

async fn login(client: &mut Client, name: &str) {
    let r = client
        .post_form("/login", &format!("username={name}"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/upload");
    assert!(client.cookie.is_some(), "login sets the cookie");
}

/// The saved sets of `user`, read from the store directly.
async fn saved(slates: &Engine, user: &str) -> SavedSets {
    slates
        .user_slates(user)
        .unwrap()
        .raw_slate("sets")
        .get()
        .await
        .unwrap()
        .unwrap_or_default()
}

/// The version of the upload workflow slate, `None` when there is none.
async fn upload_version(slates: &Engine, user: &str) -> Option<i64> {
    slates
        .user_slates(user)
        .unwrap()
        .raw_slate("new_id_set")
        .get_doc()
        .await
        .unwrap()
        .map(|d| d.version)
}

/// Uploads `ids` under `name` and confirms with `choice`.
async fn save_set(client: &mut Client, name: &str, ids: &str, choice: &str) {
    let r = upload(client, &[("name", name), ("ids", ids)], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = client
        .post_form("/review/confirm", &format!("choice={choice}"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[tokio::test]
async fn full_workflow_with_detour_discarding_conflicts() {
    full_workflow(Backend::Memory, "full_workflow_memory").await;
}

/// The same workflow on the production store (a MongoDB-wire server).
#[cfg(feature = "mongodb")]
#[tokio::test]
async fn full_workflow_on_mongo() {
    full_workflow(
        Backend::Mongo(Layout::SingleCollection),
        "example_upload_full_workflow",
    )
    .await;
}

async fn full_workflow(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some((slates, mut client)) = app_on(backend, test, &clock).await else {
        return;
    };

    // Anonymous: the login page, and the workflow pages send a browser there (a client
    // that does not ask for HTML gets 401).
    let r = client.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("no password"), "{}", r.body);
    let r = visit(&mut client, "/review").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/?next=/review");
    let r = client.get("/review").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The upload form is open to visitors (issue 14), and costs them no cookie.
    let r = visit(&mut client, "/upload").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(r#"id="visitor""#), "{}", r.body);
    assert!(r.set_cookies().is_empty());

    login(&mut client, "ada").await;
    let r = client.get("/upload").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(r#"type="file""#) && r.body.contains("<textarea"));

    // A first set, so that the next upload has ids that are already saved.
    save_set(&mut client, "base", "1 2 3", "keep").await;
    assert_eq!(saved(&slates, "ada").await.sets["base"].ids, [1, 2, 3]);

    // The upload: a textarea and a CSV file with a header row, through multipart.
    let csv = b"id,label\r\n5,five\r\n6,six\r\n\"7\",seven\r\n";
    let r = upload(
        &mut client,
        &[("name", "batch 7"), ("ids", "3, 4\n4 abc;5")],
        Some(("batch.csv", csv)),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/review");
    let version = upload_version(&slates, "ada").await.expect("upload stored");

    let r = client.get("/review").await;
    assert_eq!(r.status, StatusCode::OK);
    let review = r.body;
    // Conflicts: 3 is in "base", 4 and 5 are given twice, "abc" is not a number.
    assert!(
        review.contains("<tr><td>3</td><td>base</td></tr>"),
        "{review}"
    );
    assert!(review.contains("<tr><td>4</td><td>2</td></tr>"), "{review}");
    assert!(review.contains("<tr><td>5</td><td>2</td></tr>"), "{review}");
    assert!(review.contains("<code>abc</code>"), "{review}");
    assert!(review.contains("Not valid ids (1)"), "{review}");
    assert!(review.contains("header row skipped: id, label"), "{review}");
    assert!(
        review.contains("Discard conflicts (save 4 ids)"),
        "{review}"
    );
    assert!(review.contains("Keep all (save 7 ids)"), "{review}");
    assert!(review.contains(r#"id="expires""#), "{review}");

    // Detour: other pages work and leave the workflow slate alone.
    let r = client.get("/sets").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("<td class=\"name\">base</td>"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("batch 7"), "not saved yet");
    let r = client.get("/profile").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains(r#"<dd id="username">ada</dd>"#),
        "{}",
        r.body
    );
    assert!(r.body.contains("UTC (default)"), "{}", r.body);
    let r = client
        .post_form("/profile", "timezone=Europe%2FParis")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/profile");
    let r = client.get("/profile").await;
    assert!(
        r.body.contains(r#"<dd id="timezone">Europe/Paris</dd>"#),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("Profile saved."),
        "a flash message: {}",
        r.body
    );
    let r = client.get("/").await;
    assert!(r.body.contains("Welcome, ada"));
    assert_eq!(
        upload_version(&slates, "ada").await,
        Some(version),
        "the detour did not write the workflow slate"
    );

    // Back to the review: still there, unchanged (but for the time, now shown in Paris
    // time).
    let r = client.get("/review").await;
    assert_eq!(r.status, StatusCode::OK);
    let utc = review.find(r#"id="expires""#).unwrap();
    assert_eq!(r.body[..utc], review[..utc]);
    assert!(r.body[utc..].contains(" CE"), "CET or CEST: {}", r.body);

    // Discard conflicts: 3 dropped (saved in base), 4 and 5 once, "abc" never saved.
    let r = client
        .post_form(
            "/review/confirm",
            &format!("choice=discard&version={version}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/sets");
    let sets = saved(&slates, "ada").await;
    assert_eq!(sets.sets["batch 7"].ids, [4, 5, 6, 7]);
    assert_eq!(sets.sets["base"].ids, [1, 2, 3], "other sets untouched");
    let r = client.get("/sets").await;
    assert!(r.body.contains("Saved “batch 7”"), "{}", r.body);
    let again = client.get("/sets").await;
    assert!(
        !again.body.contains("Saved “"),
        "a flash is shown once: {}",
        again.body
    );
    assert!(
        r.body.contains("<td class=\"ids\">4, 5, 6, 7</td>"),
        "{}",
        r.body
    );

    // The workflow is finished: its slate is gone, the review page says so.
    assert_eq!(upload_version(&slates, "ada").await, None);
    let r = client.get("/review").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("No upload in progress"), "{}", r.body);
    let r = client.post_form("/review/confirm", "choice=keep").await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "a second confirm saves nothing"
    );
    assert_eq!(location(&r), "/review", "which says there is no upload");
    assert_eq!(saved(&slates, "ada").await.sets.len(), 2);

    // The user slate kept what the profile page wrote.
    let user: bson::Document = slates
        .user_slates("ada")
        .unwrap()
        .raw_slate("user")
        .get()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.get_str("timezone").unwrap(), "Europe/Paris");
    assert_eq!(user.get_str("name").unwrap(), "ada");
}

#[tokio::test]
async fn keep_all_saves_everything_numeric_as_uploaded() {
    let clock = ManualClock::new();
    let (slates, mut client) = new_app(&clock).await;
    login(&mut client, "bob").await;
    save_set(&mut client, "old", "10", "keep").await;
    let r = upload(
        &mut client,
        &[("name", "new"), ("ids", "10 11 11 x12 12")],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = client.post_form("/review/confirm", "choice=keep").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        saved(&slates, "bob").await.sets["new"].ids,
        [10, 11, 11, 12]
    );
    assert_eq!(upload_version(&slates, "bob").await, None);
}

#[tokio::test]
async fn conflicts_only_against_the_users_own_other_sets() {
    let clock = ManualClock::new();
    let (slates, mut ada) = new_app(&clock).await;
    let mut bob = Client::new(ada.app.clone());
    login(&mut ada, "ada").await;
    login(&mut bob, "bob").await;
    save_set(&mut bob, "bobs", "1 2", "keep").await;
    save_set(&mut ada, "mine", "2 3", "keep").await;
    // Re-uploading under the same name replaces the set: no conflict with itself.
    let r = upload(&mut ada, &[("name", "mine"), ("ids", "1 2 3")], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = ada.get("/review").await;
    assert!(r.body.contains(r#"id="no-conflicts""#), "{}", r.body);
    assert!(r.body.contains("saving replaces it"), "{}", r.body);
    let r = ada.post_form("/review/confirm", "choice=discard").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(saved(&slates, "ada").await.sets["mine"].ids, [1, 2, 3]);
    assert_eq!(saved(&slates, "bob").await.sets["bobs"].ids, [1, 2]);
}

#[tokio::test]
async fn csv_without_header_and_with_quotes() {
    let clock = ManualClock::new();
    let (slates, mut client) = new_app(&clock).await;
    login(&mut client, "ada").await;
    let csv = "\u{feff}101,102\n\n103;\"104\"\n".as_bytes();
    let r = upload(
        &mut client,
        &[("name", "plain"), ("ids", "")],
        Some(("x.csv", csv)),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = client.get("/review").await;
    assert!(r.body.contains("file x.csv: 4 values"), "{}", r.body);
    assert!(!r.body.contains("header row"), "{}", r.body);
    let r = client.post_form("/review/confirm", "choice=discard").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        saved(&slates, "ada").await.sets["plain"].ids,
        [101, 102, 103, 104]
    );
}

#[tokio::test]
async fn abandoned_upload_expires_on_its_own() {
    upload_expiry(Backend::Memory, "upload_expiry_memory").await;
}

#[cfg(feature = "mongodb")]
#[tokio::test]
async fn abandoned_upload_expires_on_mongo() {
    upload_expiry(
        Backend::Mongo(Layout::CollectionPerUser),
        "example_upload_expiry",
    )
    .await;
}

async fn upload_expiry(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some((slates, mut client)) = app_on(backend, test, &clock).await else {
        return;
    };
    login(&mut client, "ada").await;
    let r = upload(&mut client, &[("name", "later"), ("ids", "1 2")], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    clock.advance(Duration::minutes(29));
    let r = client.get("/review").await;
    assert_eq!(r.status, StatusCode::OK, "still there after 29 minutes");
    assert!(r.body.contains("Review “later”"));
    clock.advance(Duration::minutes(2));
    let r = client.get("/review").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "gone after 31 minutes");
    assert!(r.body.contains("No upload in progress"));
    let r = client.post_form("/review/confirm", "choice=keep").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/review");
    assert!(saved(&slates, "ada").await.sets.is_empty());
    // The login outlives the upload: token expiry and workflow expiry are separate.
    let r = client.get("/profile").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn cancel_and_stale_confirm() {
    let clock = ManualClock::new();
    let (slates, mut client) = new_app(&clock).await;
    login(&mut client, "ada").await;
    let r = upload(&mut client, &[("name", "a"), ("ids", "1")], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let first = upload_version(&slates, "ada").await.unwrap();
    // Another tab uploads again: confirming the page reviewed before is refused.
    let r = upload(&mut client, &[("name", "b"), ("ids", "2")], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = client
        .post_form("/review/confirm", &format!("choice=keep&version={first}"))
        .await;
    // Back to the review of the newer upload, which says why.
    let shown = failed_post(&mut client, r, "/review", Problem::Changed).await;
    assert!(shown.body.contains("Review it again"), "{}", shown.body);
    assert!(shown.body.contains("Review “b”"), "{}", shown.body);
    assert!(saved(&slates, "ada").await.sets.is_empty());
    let r = client.post_form("/review/confirm", "choice=maybe").await;
    failed_post(&mut client, r, "/review", Problem::BadChoice).await;
    let r = client.post("/review/cancel").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(upload_version(&slates, "ada").await, None);
    assert!(saved(&slates, "ada").await.sets.is_empty());
}

/// Every failed form post is answered with a 303 back to the form's page, which shows the
/// problem (post-redirect-get: Back and reload never resubmit the form).
#[tokio::test]
async fn invalid_input_redirects_to_a_page_that_says_why() {
    let clock = ManualClock::new();
    let (slates, mut client) = new_app(&clock).await;

    // Bad usernames (slates' name rules) on the login form: back to the login form.
    for bad in ["", "_admin", "a%24b"] {
        let r = client.post_form("/login", &format!("username={bad}")).await;
        let shown = failed_post(&mut client, r, "/", Problem::BadUsername).await;
        assert!(shown.body.contains(r#"id="login""#), "{}", shown.body);
        assert!(client.cookie.is_none());
    }
    login(&mut client, "ada").await;

    // (form fields, problem, expected text)
    type Case = (Vec<(&'static str, String)>, Problem, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec![("name", "".into()), ("ids", "1".into())],
            Problem::NoSetName,
            "Give the set a name",
        ),
        (
            vec![("name", "a.b".into()), ("ids", "1".into())],
            Problem::BadSetName,
            "letters, digits",
        ),
        (
            vec![("name", "$set".into()), ("ids", "1".into())],
            Problem::BadSetName,
            "letters, digits",
        ),
        (
            vec![("name", "x".repeat(41)), ("ids", "1".into())],
            Problem::SetNameTooLong,
            "too long",
        ),
        (
            vec![("name", "ok".into()), ("ids", "1 ".repeat(10_001))],
            Problem::TooManyValues,
            "at most 10000 values",
        ),
    ];
    for (fields, problem, text) in cases {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = upload(&mut client, &fields, None).await;
        let shown = failed_post(&mut client, r, "/upload", problem).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert!(shown.body.contains(text), "{fields:?}: {}", shown.body);
        assert!(shown.body.contains(r#"id="upload""#), "the form again");
    }

    // No ids: back to the form with the (valid) set name filled in again.
    let r = upload(&mut client, &[("name", "my set"), ("ids", " , ")], None).await;
    let shown = failed_post(&mut client, r, "/upload?name=my%20set", Problem::NoIds).await;
    assert!(shown.body.contains("at least one id"), "{}", shown.body);
    assert!(shown.body.contains(r#"value="my set""#), "{}", shown.body);

    // A crafted form with many text boxes.
    let many: Vec<(&str, &str)> = std::iter::once(("name", "ok"))
        .chain(std::iter::repeat_n(("ids", "1"), 9))
        .collect();
    let r = upload(&mut client, &many, None).await;
    let shown = failed_post(&mut client, r, "/upload", Problem::TooManyParts).await;
    assert!(shown.body.contains("at most 8 files"), "{}", shown.body);

    // Oversize: past the 2 MiB body limit.
    let big = vec![b'1'; 3 * 1024 * 1024];
    let r = upload(&mut client, &[("name", "big")], Some(("big.csv", &big))).await;
    let shown = failed_post(&mut client, r, "/upload", Problem::TooLarge).await;
    assert!(shown.body.contains("at most 2 MiB"), "{}", shown.body);

    // A binary file, a request that is not multipart, a bad timezone.
    let r = upload(
        &mut client,
        &[("name", "bin")],
        Some(("x.csv", &[0xff, 0xfe, 0x00])),
    )
    .await;
    let shown = failed_post(&mut client, r, "/upload", Problem::NotText).await;
    assert!(shown.body.contains("not UTF-8"), "{}", shown.body);
    let r = client.post_form("/upload", "name=x&ids=1").await;
    failed_post(&mut client, r, "/upload", Problem::BadUpload).await;
    for bad in [
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "Mars%2FOlympus",
        "europe%2Fparis",
        "",
    ] {
        let r = client
            .post_form("/profile", &format!("timezone={bad}"))
            .await;
        let shown = failed_post(&mut client, r, "/profile", Problem::BadTimezone).await;
        assert!(!shown.body.contains("alert(1)"), "never echoed");
        assert!(!shown.body.contains("Profile saved"), "{}", shown.body);
    }
    let r = client.get("/profile").await;
    assert!(
        r.body.contains("UTC (default)"),
        "nothing saved: {}",
        r.body
    );

    // An unknown code shows no problem; a known one shows only its fixed message.
    let r = client.get("/upload?error=%3Cb%3Ehi").await;
    assert!(!r.body.contains(r#"id="error""#) && !r.body.contains("<b>hi"));

    // None of it left an upload behind.
    assert_eq!(upload_version(&slates, "ada").await, None);
}

#[tokio::test]
async fn output_is_escaped() {
    let clock = ManualClock::new();
    let (_slates, mut client) = new_app(&clock).await;
    // `<` and `"` are allowed in usernames: they must come back escaped.
    let r = client.post_form("/login", "username=%3Cb%3Eeve%22").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = upload(
        &mut client,
        &[("name", "x"), ("ids", "<script>alert(1)</script> 1")],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = client.get("/review").await;
    assert!(!r.body.contains("<script>alert"), "{}", r.body);
    assert!(
        r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        r.body
    );
    assert!(r.body.contains("&lt;b&gt;eve&quot;"), "{}", r.body);
    let r = client.get("/profile").await;
    assert!(!r.body.contains("<b>eve"), "{}", r.body);
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let clock = ManualClock::new();
    let (slates, client) = new_app(&clock).await;
    let mut client = client;
    login(&mut client, "ada").await;
    let before = slates.stats().store_operations;
    let r = client
        .send(
            Request::post("/review/cancel")
                .header("host", "127.0.0.1:3000")
                .header("origin", "http://evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = client
        .send(
            Request::post("/logout")
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(client.cookie.is_some(), "still logged in");
    assert_eq!(
        slates.stats().store_operations,
        before,
        "a refused cross-site post reaches no store, though the check runs inside the slates layer"
    );
    // Same origin goes through.
    let r = client
        .send(
            Request::post("/logout")
                .header("host", "127.0.0.1:3000")
                .header("origin", "http://127.0.0.1:3000")
                .header("sec-fetch-site", "same-origin")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(client.cookie.is_none(), "logged out");
}

/// The whole workflow over a real socket, with a cookie-keeping HTTP client and a real
/// multipart file upload.
#[tokio::test]
async fn real_listener_with_cookie_client() {
    let slates = configure(Engine::builder(MemoryStore::new()).secure(false))
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        axum::serve(listener, app(slates.clone(), admin()).into_make_service()).into_future(),
    );

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = http
        .post(format!("{base}/login"))
        .form(&[("username", "ada")])
        .send()
        .await
        .unwrap();
    // Redirects are followed: login lands on the upload form.
    assert_eq!(r.status(), 200);
    assert!(r.url().path().ends_with("/upload"));
    assert!(r.text().await.unwrap().contains("Upload a new set"));

    let form = reqwest::multipart::Form::new()
        .text("name", "from file")
        .text("ids", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"ids\n1\n2\n2\nnope\n".to_vec())
                .file_name("ids.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let r = http
        .post(format!("{base}/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), "/review");
    let body = r.text().await.unwrap();
    assert!(body.contains("<tr><td>2</td><td>2</td></tr>"), "{body}");
    assert!(body.contains("<code>nope</code>"), "{body}");

    let r = http.get(format!("{base}/sets")).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("No saved sets yet"));

    let r = http
        .post(format!("{base}/review/confirm"))
        .form(&[("choice", "discard")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), "/sets");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<td class=\"ids\">1, 2</td>"));
    let r = http.get(format!("{base}/review")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Log out: the client's cookie is expired and the pages send it to the login form,
    // which sends it back to the page after login.
    let r = http.post(format!("{base}/logout")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{base}/sets"))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/");
    assert_eq!(r.url().query(), Some("next=/sets"));
    let body = r.text().await.unwrap();
    assert!(body.contains("there is no password"), "{body}");
    assert!(
        body.contains(r#"<input type="hidden" name="next" value="/sets">"#),
        "{body}"
    );
    let r = http
        .post(format!("{base}/login"))
        .form(&[("username", "ada"), ("next", "/sets")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/sets");
    assert!(r.text().await.unwrap().contains("from file"));
    // A client that does not ask for HTML gets 401, not a login form.
    http.post(format!("{base}/logout")).send().await.unwrap();
    let r = http.get(format!("{base}/sets")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    server.abort();
}

#[tokio::test]
async fn login_sends_back_to_the_page_asked_for() {
    let clock = ManualClock::new();
    let (_slates, mut client) = new_app(&clock).await;
    let r = visit(&mut client, "/review?x=1&y=2").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let to = location(&r).to_owned();
    assert_eq!(to, "/?next=/review%3Fx%3D1%26y%3D2");
    let r = visit(&mut client, &to).await;
    assert!(
        r.body
            .contains(r#"<input type="hidden" name="next" value="/review?x=1&amp;y=2">"#),
        "{}",
        r.body
    );

    // A bad username keeps the page to go to.
    let r = client
        .post_form("/login", "username=_x&next=%2Freview%3Fx%3D1")
        .await;
    let shown = failed_post(
        &mut client,
        r,
        "/?next=/review%3Fx%3D1",
        Problem::BadUsername,
    )
    .await;
    assert!(
        shown.body.contains(r#"name="next" value="/review?x=1""#),
        "{}",
        shown.body
    );

    // Login goes to `next` when it is a path on this site...
    let r = client
        .post_form("/login", "username=ada&next=%2Freview%3Fx%3D1%26y%3D2")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/review?x=1&y=2");
    // ...and to the upload form otherwise (no open redirect).
    for evil in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example%2F",
        "%2F%5Cevil.example",
        "%2Fa%0D%0ASet-Cookie%3A%20x%3D1",
        "",
    ] {
        let mut other = Client::new(client.app.clone());
        let r = other
            .post_form("/login", &format!("username=bob&next={evil}"))
            .await;
        assert_eq!(location(&r), "/upload", "{evil}");
        let r = visit(&mut other, "/").await;
        assert!(!r.body.contains("evil"), "{}", r.body);
    }
    let r = visit(
        &mut Client::new(client.app.clone()),
        "/?next=%2F%2Fevil.example",
    )
    .await;
    assert!(!r.body.contains(r#"name="next""#), "{}", r.body);
}

/// The review and the saved sets show times in the profile's timezone (UTC by default),
/// with daylight saving time; saving the profile says so.
#[tokio::test]
async fn times_in_the_users_timezone() {
    let july = OffsetDateTime::from_unix_timestamp(1_719_828_000).unwrap(); // 2024-07-01 10:00 UTC
    let clock = ManualClock::at(july);
    let (_slates, mut client) = new_app(&clock).await;
    login(&mut client, "ada").await;
    let r = upload(&mut client, &[("name", "t"), ("ids", "1")], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = client.get("/review").await;
    assert!(r.body.contains("expires at 10:30 UTC."), "{}", r.body);

    let r = client.post_form("/profile", "timezone=Asia%2FTokyo").await;
    assert_eq!(location(&r), "/profile");
    let r = client.get(location(&r)).await;
    assert!(
        r.body
            .contains(r#"<p class="ok" id="saved">Profile saved.</p>"#),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(r#"<dd id="timezone">Asia/Tokyo</dd>"#),
        "{}",
        r.body
    );
    let r = client.get("/profile").await;
    assert!(!r.body.contains("Profile saved"), "only right after saving");
    let r = client.get("/review").await;
    assert!(r.body.contains("expires at 19:30 JST."), "{}", r.body);
    let r = client.post_form("/review/confirm", "choice=keep").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = client.get("/sets").await;
    assert!(
        r.body
            .contains(r#"<td class="when">2024-07-01 19:00 JST</td>"#),
        "{}",
        r.body
    );

    // Paris: summer time in July, winter time in January.
    let r = client
        .post_form("/profile", "timezone=+Europe%2FParis+")
        .await;
    assert_eq!(location(&r), "/profile");
    let r = client.get("/sets").await;
    assert!(
        r.body
            .contains(r#"<td class="when">2024-07-01 12:00 CEST</td>"#),
        "{}",
        r.body
    );
    clock.set(OffsetDateTime::from_unix_timestamp(1_705_312_800).unwrap()); // 2024-01-15 10:00 UTC
    upload(&mut client, &[("name", "w"), ("ids", "2")], None).await;
    let r = client.get("/review").await;
    assert!(r.body.contains("expires at 11:30 CET."), "{}", r.body);
    assert!(check_timezone("America/New_York").is_ok());
    assert_eq!(check_timezone(" UTC ").unwrap(), "UTC");
}

/// The review page counts in words that agree with the number, and calls values that are
/// not ids "not valid ids" (negative and decimal numbers included).
#[tokio::test]
async fn review_wording() {
    let clock = ManualClock::new();
    let (_slates, mut client) = new_app(&clock).await;
    login(&mut client, "ada").await;
    let r = upload(&mut client, &[("name", "one"), ("ids", "7")], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let review = client.get("/review").await.body;
    assert!(
        review.contains("1 value: 1 valid id, 1 distinct."),
        "{review}"
    );
    assert!(review.contains("text box: 1 value<"), "{review}");
    assert!(review.contains("Discard conflicts (save 1 id)"), "{review}");
    assert!(review.contains("Keep all (save 1 id)"), "{review}");
    assert!(
        !review.contains("1 ids") && !review.contains("1 values"),
        "{review}"
    );

    let r = upload(
        &mut client,
        &[("name", "mixed"), ("ids", "-5 3.5 7 7")],
        Some(("x.csv", b"x\n")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let review = client.get("/review").await.body;
    assert!(
        review.contains("4 values: 2 valid ids, 1 distinct."),
        "{review}"
    );
    assert!(review.contains("Not valid ids (2)"), "{review}");
    assert!(
        review
            .contains("<ul id=\"not-ids\"><li><code>-5</code></li><li><code>3.5</code></li></ul>"),
        "{review}"
    );
    assert!(!review.contains("Not numbers"), "{review}");
    assert!(review.contains("file x.csv: 0 values"), "{review}");
    assert!(review.contains("Discard conflicts (save 1 id)"), "{review}");
    assert!(review.contains("Keep all (save 2 ids)"), "{review}");
}

/// Every page is `no-store` and reloads itself when the browser restores it from the
/// back/forward cache (the browser test checks that the reload happens).
#[tokio::test]
async fn pages_are_never_served_stale() {
    let clock = ManualClock::new();
    let (_slates, mut client) = new_app(&clock).await;
    let reload = "if (e.persisted) location.reload();";
    let r = client.get("/").await;
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(r.body.contains(reload), "{}", r.body);
    login(&mut client, "ada").await;
    upload(&mut client, &[("name", "a"), ("ids", "1")], None).await;
    for path in ["/", "/upload", "/review", "/sets", "/profile", "/stats"] {
        let r = client.get(path).await;
        assert_eq!(r.headers["cache-control"], "no-store", "{path}");
        assert!(r.body.contains(reload), "{path}: {}", r.body);
    }
    client.post_form("/review/confirm", "choice=keep").await;
    let r = client.get("/review").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains(reload), "{}", r.body);
}

/// `/stats` is the admin's: anonymous visitors go to the login form (401 for other
/// clients), other users get 403.
#[tokio::test]
async fn stats_are_for_the_admin_only() {
    let clock = ManualClock::new();
    let (slates, mut client) = new_app(&clock).await;
    let r = visit(&mut client, "/stats").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/?next=/stats");
    let r = client.get("/stats").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    login(&mut client, "ada").await;
    let r = client.get("/stats").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("admin only"), "{}", r.body);
    assert!(!r.body.contains("requests"), "{}", r.body);

    let mut admin_client = Client::new(client.app.clone());
    login(&mut admin_client, "admin").await;
    let r = admin_client.get("/stats").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    let stats: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(stats["requests"].as_u64().unwrap() >= 5, "{stats}");
    assert_eq!(stats["logins"], 2);

    // Another admin name: "admin" is then an ordinary user.
    let mut root = Client::new(app(slates, Username::new("root").unwrap()));
    login(&mut root, "admin").await;
    assert_eq!(root.get("/stats").await.status, StatusCode::FORBIDDEN);
    login(&mut root, "root").await;
    assert_eq!(root.get("/stats").await.status, StatusCode::OK);
}

#[tokio::test]
async fn devices_page_lists_ends_one_and_ends_the_others() {
    devices_page(Backend::Memory, "upload_devices_memory").await;
}

#[cfg(feature = "mongodb")]
#[tokio::test]
async fn devices_page_on_mongo() {
    devices_page(
        Backend::Mongo(Layout::SingleCollection),
        "example_upload_devices",
    )
    .await;
}

/// The rows of the devices page: `(id, current)`.
fn device_rows(page: &Reply) -> Vec<(String, bool)> {
    page.body
        .split("<tr class=\"device\" data-id=\"")
        .skip(1)
        .map(|row| {
            let (id, rest) = row.split_once('"').unwrap();
            (id.to_owned(), rest.starts_with(" data-current=\"true\""))
        })
        .collect()
}

async fn devices_page(backend: Backend, test: &str) {
    let clock = ManualClock::new();
    let Some((_, mut laptop)) = app_on(backend, test, &clock).await else {
        return;
    };
    let mut phone = Client::new(laptop.app.clone());
    let mut tablet = Client::new(laptop.app.clone());
    let mut bob = Client::new(laptop.app.clone());
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    for (c, name) in [
        (&mut laptop, "ada"),
        (&mut phone, "ada"),
        (&mut tablet, "ada"),
        (&mut bob, "bob"),
    ] {
        let req = Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", firefox)
            .body(Body::from(format!("username={name}")))
            .unwrap();
        assert_eq!(c.send(req).await.status, StatusCode::SEE_OTHER);
    }
    let page = visit(&mut laptop, "/devices").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Firefox on Linux"), "{}", page.body);
    assert!(
        page.body.contains(r#"href="/devices""#),
        "in the navigation"
    );
    let rows = device_rows(&page);
    assert_eq!(rows.len(), 3, "ada's devices only");
    assert_eq!(rows.iter().filter(|r| r.1).count(), 1);
    let phone_id = device_rows(&visit(&mut phone, "/devices").await)
        .into_iter()
        .find(|r| r.1)
        .unwrap()
        .0;
    let bob_id = device_rows(&visit(&mut bob, "/devices").await)[0].0.clone();

    // Bob's device from ada's page: "no such device", bob stays logged in.
    let r = laptop.post(&format!("/devices/{bob_id}/end")).await;
    failed_post(&mut laptop, r, "/devices", Problem::NoDevice).await;
    assert_eq!(visit(&mut bob, "/devices").await.status, StatusCode::OK);

    // End the phone: back to the page, which says so; the phone is logged out.
    let r = laptop.post(&format!("/devices/{phone_id}/end")).await;
    assert_eq!(
        (r.status, location(&r)),
        (StatusCode::SEE_OTHER, "/devices?ended=1")
    );
    assert!(visit(&mut laptop, "/devices?ended=1")
        .await
        .body
        .contains("Ended 1 device."));
    let r = visit(&mut phone, "/devices").await;
    assert_eq!(
        (r.status, location(&r)),
        (StatusCode::SEE_OTHER, "/?next=/devices")
    );

    // End all the others: the tablet goes, the laptop stays.
    let r = laptop.post("/devices/end-others").await;
    assert_eq!(
        (r.status, location(&r)),
        (StatusCode::SEE_OTHER, "/devices?ended=1")
    );
    // Logged out (`/upload` is open to visitors since issue 14: ask a page that needs a
    // login).
    assert_eq!(
        visit(&mut tablet, "/devices").await.status,
        StatusCode::SEE_OTHER
    );
    let page = visit(&mut laptop, "/devices").await;
    assert_eq!(device_rows(&page).len(), 1);
    assert!(
        !page.body.contains("end-others"),
        "no other device: no button"
    );
    assert_eq!(visit(&mut bob, "/devices").await.status, StatusCode::OK);
}

/// An engine built without `configure` would answer anonymous page visits with 401: `app`
/// refuses it rather than serve the site that way.
#[tokio::test]
#[should_panic(expected = "configure")]
async fn app_refuses_an_engine_without_the_login_redirect() {
    let engine = Engine::builder(MemoryStore::new())
        .secure(false)
        .build()
        .await
        .unwrap();
    let _ = app(engine, admin());
}

// ------------------------------------------------------------------ parsing

#[test]
fn split_list_accepts_commas_semicolons_and_whitespace() {
    assert_eq!(
        split_list(" 1,2 ;3\n4\t5,,\"6\" "),
        ["1", "2", "3", "4", "5", "6"]
    );
    assert!(split_list(" ,\n ").is_empty());
}

#[test]
fn csv_header_detection_and_id_column() {
    let (v, h) = parse_csv("name,id\nx,1\ny,2\nz\n");
    assert_eq!(v, ["1", "2"], "the id column; short rows skipped");
    assert_eq!(h.unwrap(), ["name", "id"]);
    let (v, h) = parse_csv("label\n1\n2\n");
    assert_eq!(
        (v, h.is_some()),
        (vec!["1".to_owned(), "2".to_owned()], true)
    );
    let (v, h) = parse_csv("1,2\r\n3,\"4\"\r\n");
    assert_eq!(
        (v, h),
        (vec!["1".into(), "2".into(), "3".into(), "4".into()], None)
    );
    let (v, _) = parse_csv("id,note\n1,\"a, \"\"quoted\"\" note\"\n");
    assert_eq!(v, ["1"]);
    let (v, h) = parse_csv("");
    assert!(v.is_empty() && h.is_none());
}

#[test]
fn ids_are_plain_non_negative_integers() {
    assert_eq!(parse_id("0"), Some(0));
    assert_eq!(parse_id("007"), Some(7));
    assert_eq!(parse_id("9223372036854775807"), Some(i64::MAX));
    for bad in ["", "-1", "+1", "1.5", "1e3", "9223372036854775808", "١٢"] {
        assert_eq!(parse_id(bad), None, "{bad}");
    }
}

#[test]
fn set_names() {
    assert_eq!(check_set_name("  batch 7 ").unwrap(), "batch 7");
    assert!(check_set_name("a-b_c").is_ok());
    for bad in ["", " ", "_x", "a.b", "$x", "a/b", "é"] {
        assert!(check_set_name(bad).is_err(), "{bad}");
    }
}
