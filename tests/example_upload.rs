//! The `upload_workflow` example through its own `app()`: the whole workflow with a detour
//! through other pages, CSV upload through multipart, conflicts, discard vs keep, expiry
//! with a moved clock, the limits, and one run over a real listener with a cookie client.
mod common;

#[allow(dead_code)]
#[path = "../examples/upload_workflow.rs"]
mod upload_workflow;

use std::future::IntoFuture;

use axum::body::Body;
use common::harness::{Client, Reply};
use common::Backend;
use http::{Request, StatusCode};
#[cfg(feature = "mongodb")]
use slates::Layout;
use slates::{Engine, ManualClock, MemoryStore};
use time::Duration;
use upload_workflow::{app, check_set_name, parse_csv, parse_id, split_list, SavedSets};

const BOUNDARY: &str = "----slates-test-boundary-7MA4YWxkTrZu0gW";

/// The app on `backend` with a manual clock; `None` when the backend is not available here
/// (the MongoDB tests then say so, or fail under `SLATES_REQUIRE_MONGO=1`).
async fn app_on(backend: Backend, test: &str, clock: &ManualClock) -> Option<(Engine, Client)> {
    let slates = backend.slates(test, clock).await?;
    let client = Client::new(app(slates.clone()));
    Some((slates, client))
}

async fn new_app(clock: &ManualClock) -> (Engine, Client) {
    let slates = Engine::builder(MemoryStore::new())
        .clock(clock.clone())
        .secure(false)
        .build()
        .await
        .unwrap();
    let client = Client::new(app(slates.clone()));
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

    // Anonymous: the login page, and the workflow pages send you there.
    let r = client.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("no password"), "{}", r.body);
    let r = client.get("/upload").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/");

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
    let r = client.get("/profile").await;
    assert!(
        r.body.contains(r#"<dd id="timezone">Europe/Paris</dd>"#),
        "{}",
        r.body
    );
    let r = client.get("/").await;
    assert!(r.body.contains("Welcome, ada"));
    assert_eq!(
        upload_version(&slates, "ada").await,
        Some(version),
        "the detour did not write the workflow slate"
    );

    // Back to the review: still there, unchanged.
    let r = client.get("/review").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, review);

    // Discard conflicts: 3 dropped (saved in base), 4 and 5 once, "abc" never saved.
    let r = client
        .post_form(
            "/review/confirm",
            &format!("choice=discard&version={version}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/sets?saved=batch%207");
    let sets = saved(&slates, "ada").await;
    assert_eq!(sets.sets["batch 7"].ids, [4, 5, 6, 7]);
    assert_eq!(sets.sets["base"].ids, [1, 2, 3], "other sets untouched");
    let r = client.get("/sets?saved=batch%207").await;
    assert!(r.body.contains("Saved “batch 7”"), "{}", r.body);
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
        StatusCode::NOT_FOUND,
        "a second confirm saves nothing"
    );
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
    assert_eq!(r.status, StatusCode::NOT_FOUND);
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
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(saved(&slates, "ada").await.sets.is_empty());
    let r = client.post_form("/review/confirm", "choice=maybe").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = client.post("/review/cancel").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(upload_version(&slates, "ada").await, None);
    assert!(saved(&slates, "ada").await.sets.is_empty());
}

#[tokio::test]
async fn invalid_input_gets_clear_pages_not_panics() {
    let clock = ManualClock::new();
    let (slates, mut client) = new_app(&clock).await;

    // Bad usernames (slates' name rules) on the login form.
    for bad in ["", "_admin", "a%24b"] {
        let r = client.post_form("/login", &format!("username={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert!(r.body.contains(r#"id="error""#));
        assert!(client.cookie.is_none());
    }
    login(&mut client, "ada").await;

    // (form fields, expected status, expected text)
    type Case = (Vec<(&'static str, String)>, StatusCode, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec![("name", "".into()), ("ids", "1".into())],
            StatusCode::BAD_REQUEST,
            "Give the set a name",
        ),
        (
            vec![("name", "a.b".into()), ("ids", "1".into())],
            StatusCode::BAD_REQUEST,
            "letters, digits",
        ),
        (
            vec![("name", "$set".into()), ("ids", "1".into())],
            StatusCode::BAD_REQUEST,
            "letters, digits",
        ),
        (
            vec![("name", "x".repeat(41)), ("ids", "1".into())],
            StatusCode::BAD_REQUEST,
            "too long",
        ),
        (
            vec![("name", "ok".into()), ("ids", " , ".into())],
            StatusCode::BAD_REQUEST,
            "at least one id",
        ),
        (
            vec![("name", "ok".into()), ("ids", "1 ".repeat(10_001))],
            StatusCode::BAD_REQUEST,
            "at most 10000 values",
        ),
    ];
    for (fields, status, text) in cases {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = upload(&mut client, &fields, None).await;
        assert_eq!(r.status, status, "{fields:?}: {}", r.body);
        assert!(r.body.contains(text), "{fields:?}: {}", r.body);
    }

    // A crafted form with many text boxes.
    let many: Vec<(&str, &str)> = std::iter::once(("name", "ok"))
        .chain(std::iter::repeat_n(("ids", "1"), 9))
        .collect();
    let r = upload(&mut client, &many, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("at most 8 files"), "{}", r.body);

    // Oversize: past the 2 MiB body limit, a 413 page.
    let big = vec![b'1'; 3 * 1024 * 1024];
    let r = upload(&mut client, &[("name", "big")], Some(("big.csv", &big))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert!(r.body.contains("Upload too large"), "{}", r.body);

    // A binary file, a request that is not multipart, a bad timezone.
    let r = upload(
        &mut client,
        &[("name", "bin")],
        Some(("x.csv", &[0xff, 0xfe, 0x00])),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("not UTF-8"), "{}", r.body);
    let r = client.post_form("/upload", "name=x&ids=1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = client.post_form("/profile", "timezone=%3Cscript%3E").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.body.contains("<script>"));

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
    let (_slates, client) = new_app(&clock).await;
    let mut client = client;
    login(&mut client, "ada").await;
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
    let slates = Engine::builder(MemoryStore::new())
        .secure(false)
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, app(slates.clone())).into_future());

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

    // Log out: the client's cookie is expired and the pages send it to the login form.
    let r = http.post(format!("{base}/logout")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{base}/sets")).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("there is no password"));
    server.abort();
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
