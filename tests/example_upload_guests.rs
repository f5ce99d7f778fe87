//! Issue 14 in the `upload_workflow` example: a visitor starts an upload before logging in,
//! the review page sends them to the login form, and after login the upload is on the
//! review page, checked against the user's saved sets; saving it is confirmed once by a
//! flash message. On the memory store and the MongoDB-wire server.
mod common;

#[allow(dead_code)]
#[path = "../examples/upload_workflow/main.rs"]
mod upload_workflow;

use axum::body::Body;
use common::guest_app::{set_cookie_of, Browser, GUEST};
use common::Backend;
use http::{Request, StatusCode};
use slates::{ManualClock, Username};
use upload_workflow::{app, configure};

const HTML: &str = "text/html,application/xhtml+xml";
const BOUNDARY: &str = "XyZ-slates-guest";

fn upload_request(name: &str, ids: &str) -> Request<Body> {
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"ids\"\r\n\r\n{ids}\r\n\
         --{BOUNDARY}--\r\n"
    );
    Request::post("/upload")
        .header("accept", HTML)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .unwrap()
}

fn form(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("accept", HTML)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn visit(path: &str) -> Request<Body> {
    Request::get(path)
        .header("accept", HTML)
        .body(Body::empty())
        .unwrap()
}

fn location(r: &common::harness::Reply) -> &str {
    r.headers["location"].to_str().unwrap()
}

async fn visitor_upload_then_login(backend: Backend, test: &str) {
    let Some(builder) = backend.builder(test, &ManualClock::new()).await else {
        return;
    };
    let engine = configure(builder).build().await.unwrap();
    let app = app(engine.clone(), Username::new("admin").unwrap());

    // ada has a saved set "base" with 1 2 3.
    let mut ada = Browser::new(app.clone());
    let r = ada.send_request(form("/login", "username=ada")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    ada.send_request(upload_request("base", "1 2 3")).await;
    let r = ada
        .send_request(form("/review/confirm", "choice=keep"))
        .await;
    assert_eq!(location(&r), "/sets");
    // The flash message: shown by the next page, once.
    let r = ada.send_request(visit("/sets")).await;
    assert!(
        r.body.contains(r#"id="saved">Saved “base”.</p>"#),
        "{}",
        r.body
    );
    let r = ada.send_request(visit("/sets")).await;
    assert!(!r.body.contains(r#"id="saved""#), "once: {}", r.body);

    // A visitor: the upload form costs no cookie; the upload goes into a guest slate.
    let mut visitor = Browser::new(app.clone());
    let r = visitor.send_request(visit("/upload")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookies().is_empty());
    let r = visitor
        .send_request(upload_request("batch 8", "3 4 4"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/review");
    assert!(
        set_cookie_of(&r, GUEST).is_some(),
        "the first write: guest cookie"
    );
    assert!(visitor.auth.is_none());
    // The review needs a login: to the login form, and back to the review after it.
    let r = visitor.send_request(visit("/review")).await;
    assert_eq!(location(&r), "/?next=/review");
    let r = visitor
        .send_request(form("/login", "username=ada&next=%2Freview"))
        .await;
    assert_eq!(location(&r), "/review");
    assert!(visitor.auth.is_some());
    let r = visitor.send_request(visit("/review")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("batch 8"), "{}", r.body);
    // Checked again against ada's saved sets: 3 is in "base"; 4 is given twice.
    assert!(
        r.body.contains("<tr><td>3</td><td>base</td></tr>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<tr><td>4</td><td>2</td></tr>"),
        "{}",
        r.body
    );
    // ada's other browser sees the same upload in progress.
    let r = ada.send_request(visit("/review")).await;
    assert!(r.body.contains("batch 8"), "{}", r.body);
    // The visitor's guest slate is gone: bob logging in with the guest cookie gets none.
    let mut guest_only = Browser::new(app.clone());
    guest_only.guest = visitor.guest.clone();
    guest_only
        .send_request(form("/login", "username=bob"))
        .await;
    let r = guest_only.send_request(visit("/review")).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "no upload in progress: {}",
        r.body
    );
    // Saving it: one flash message on the saved sets page.
    let r = visitor
        .send_request(form("/review/confirm", "choice=discard"))
        .await;
    assert_eq!(location(&r), "/sets");
    let r = visitor.send_request(visit("/sets")).await;
    assert!(r.body.contains("Saved “batch 8”."), "{}", r.body);
    assert!(r.body.contains("<td class=\"ids\">4</td>"), "{}", r.body);
}

#[tokio::test]
async fn visitor_upload_then_login_memory() {
    visitor_upload_then_login(Backend::Memory, "upload_guests_memory").await;
}

#[cfg(feature = "mongodb")]
#[tokio::test]
async fn visitor_upload_then_login_mongo() {
    for layout in [
        slates::Layout::SingleCollection,
        slates::Layout::CollectionPerUser,
    ] {
        let test = format!("upload_guests_{layout:?}");
        visitor_upload_then_login(Backend::Mongo(layout), &test).await;
    }
}
