//! Run with `cargo run --example counter` (memory store; set `SLATES_MONGODB_URI` to use
//! MongoDB, `PORT` to change the port), then open <http://127.0.0.1:3000/> in two tabs.
//! On MongoDB the engine caches token records and profiles (the default);
//! `SLATES_NO_CACHE=1` turns the cache off, so that every request goes to the store (the
//! benchmark's scenario 6 compares the two).
//!
//! The classic "two tabs" hit counter, done without a lock: every hit is one atomic `$inc`
//! on the user's `counter` workflow slate, so two tabs clicking at once never lose a hit and
//! never wait for each other.
//!
//! Visitors who have not logged in count too, on their own **guest** `counter` slate
//! ([`VisitorSlates`]): the first hit issues the guest cookie, and logging in adds the
//! visitor's hits to the user's counter ([`CarryOver::add_counter`]), atomically, once.
//!
//! HTTP contract (what the tests check):
//!
//! | request | answer |
//! |---|---|
//! | `POST /login`, form field `username` (no password in this demo) | 204 + `Set-Cookie`; the visitor's guest hits are added to the user's and the guest's counter is gone |
//! | `GET /me` | 200 JSON `{"username": .., "user": {..}}`, or 401 (no cookie set) |
//! | `POST /hits` | 200, the new count as plain text: the user's, or when anonymous the visitor's (the first one sets the guest cookie) |
//! | `GET /hits` | 200, the current count as plain text: the user's, or the visitor's (`0` and no cookie for a visitor who never hit) |
//! | `POST /logout` | 204 + an expired cookie |
//! | `POST /logout-everywhere` | 204 (every token of the user deleted), 401 when anonymous |
//! | `GET /devices` | 200 JSON array of `{"id", "current", "created", "last_seen", "label"}` (times in RFC 3339), exactly one `current: true`; 401 when anonymous |
//! | `POST /devices/{id}/end` | 204 when `id` is one of the caller's devices (its cookie is refused from then on), else 404; 401 when anonymous |
//! | `POST /logout-others` | 204: every other device of the caller ends, this one stays; 401 when anonymous |
//! | `GET /stats` | 200 JSON statistics (open: see below) |
//! | `GET /` | an HTML page with a hit button, and a login form when anonymous (no cookie set) |
//!
//! The page works with plain HTML forms: when a form (a request that accepts `text/html`)
//! posts to `/login`, `/hits`, `/logout` or `/logout-everywhere`, the answer is a 303
//! redirect back to `/` instead of the API answer above. With JavaScript on, the hit button
//! uses `fetch` and updates the count in place.
//!
//! `/stats` is open to anyone because this demo listens on loopback only and outside
//! clients read it as part of the contract above. The statistics describe a site's traffic:
//! a real site puts them behind an admin check (the `upload_workflow` example does).

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::{Form, Path};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use slates::{
    Auth, CarryOver, CurrentUser, Devices, Engine, SlateUpdate, SlatesService, VisitorSlates,
    Workflow,
};
use time::format_description::well_known::Rfc3339;

/// The slate holding the user's count. It never expires: the count outlives every login.
/// A visitor's (guest) counter expires a day after its last hit (the guest idle timeout).
const COUNTER: Workflow<Counter> = Workflow::new("counter");

/// At login, the visitor's hits are added to the user's counter (one atomic `$inc`, after
/// the guest's counter was taken atomically: two logins never both add them).
const AT_LOGIN: [CarryOver; 1] = [CarryOver::add_counter(&COUNTER, "hits")];

/// The `counter` slate.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    #[serde(default)]
    hits: i64,
}

/// The profile (the user slate) of this site, as `/me` shows it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_login: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logins: Option<i64>,
}

/// The app: the example's router inside the slates layer, which wraps the whole router
/// ([`Engine::wrap`], faster than `Router::layer`).
pub fn app(engine: Engine) -> SlatesService<Router> {
    let router = Router::new()
        .route("/", get(page))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/hits", get(hits).post(hit))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/devices", get(devices))
        .route("/devices/{id}/end", post(end_device))
        .route("/logout-others", post(logout_others))
        .route("/stats", get(slates::stats_handler))
        // Refuse cross-site form posts before any handler runs.
        .layer(middleware::from_fn(slates::same_origin_only));
    engine.wrap(router)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,slates=debug".into()),
        )
        .init();
    let uri = std::env::var("SLATES_MONGODB_URI").ok();
    // MongoDB when SLATES_MONGODB_URI is set, else the in-memory store. (The URI may
    // carry a password: log only which store is used.)
    tracing::info!(mongodb = uri.is_some(), "opening the store");
    let store = slates::store::open(uri.as_deref()).await?;
    // The demo is plain http on localhost; a real deployment keeps the Secure default.
    let mut builder = Engine::builder_shared(store).secure(false);
    if std::env::var("SLATES_NO_CACHE").as_deref() == Ok("1") {
        builder = builder.no_cache();
    }
    let engine = builder.build().await?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse()?,
        Err(_) => 3000,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("counter listening on http://{addr}/");
    axum::serve(listener, app(engine).into_make_service()).await?;
    Ok(())
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
}

/// Whether the request comes from a plain HTML form (a browser navigation), which wants a
/// page back rather than the API answer.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// The API answer, or a redirect back to the page for a plain form.
fn done(headers: &HeaderMap, api: Response) -> Response {
    if wants_html(headers) {
        Redirect::to("/").into_response()
    } else {
        api
    }
}

async fn login(
    auth: Auth,
    engine: Engine,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, slates::Error> {
    let username = form.username.trim();
    // No password in this demo: a real app checks it here, before `login`. A fresh auth
    // token (the guest token is never promoted), then the visitor's hits carried over.
    auth.login_carrying(username, &AT_LOGIN).await?;
    // The profile: written rarely (here, at login), read by the layer on every request.
    let now = engine
        .now()
        .format(&time::format_description::well_known::Rfc3339);
    engine
        .user_slates(username)?
        .profile_slate::<Profile>()
        .update(
            SlateUpdate::new()
                .set("name", username)
                .set("last_login", now.unwrap_or_default())
                .inc("logins", 1),
        )
        .await?;
    Ok(done(&headers, StatusCode::NO_CONTENT.into_response()))
}

async fn me(user: CurrentUser) -> Result<Json<serde_json::Value>, slates::Error> {
    // The profile as the layer loaded it with the token check: no extra read.
    let profile: Profile = user.profile().await?.unwrap_or_default();
    Ok(Json(
        serde_json::json!({ "username": user.username(), "user": profile }),
    ))
}

async fn current_hits(slates: &VisitorSlates) -> Result<i64, slates::Error> {
    // A visitor who never hit has no guest cookie: no store call at all.
    let counter = slates.workflow(&COUNTER).get().await?;
    Ok(counter.map_or(0, |c| c.hits))
}

async fn hits(slates: VisitorSlates) -> Result<String, slates::Error> {
    Ok(current_hits(&slates).await?.to_string())
}

async fn hit(slates: VisitorSlates, headers: HeaderMap) -> Result<Response, slates::Error> {
    // One atomic increment: no lock, no lost update, whatever the other tabs do.
    let n = slates.workflow(&COUNTER).inc("hits", 1).await?;
    Ok(done(&headers, n.to_string().into_response()))
}

async fn logout(auth: Auth, headers: HeaderMap) -> Result<Response, slates::Error> {
    auth.logout().await?;
    Ok(done(&headers, StatusCode::NO_CONTENT.into_response()))
}

async fn logout_everywhere(auth: Auth, headers: HeaderMap) -> Result<Response, slates::Error> {
    auth.logout_everywhere().await?;
    Ok(done(&headers, StatusCode::NO_CONTENT.into_response()))
}

/// One entry of `GET /devices`.
#[derive(Serialize)]
struct DeviceJson {
    id: String,
    current: bool,
    created: String,
    last_seen: String,
    label: String,
}

async fn devices(devices: Devices) -> Result<Json<Vec<DeviceJson>>, slates::Error> {
    let rfc3339 = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let list = devices.list().await?;
    Ok(Json(
        list.into_iter()
            .map(|d| DeviceJson {
                id: d.id.to_string(),
                current: d.current,
                created: rfc3339(d.created),
                last_seen: rfc3339(d.last_seen),
                label: d.label,
            })
            .collect(),
    ))
}

async fn end_device(devices: Devices, Path(id): Path<String>) -> Result<StatusCode, slates::Error> {
    // Another user's id, an unknown one and a malformed one all answer 404.
    Ok(match devices.end(&id).await? {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_FOUND,
    })
}

async fn logout_others(devices: Devices) -> Result<StatusCode, slates::Error> {
    devices.end_others().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn page(user: Option<CurrentUser>, slates: VisitorSlates) -> Result<Response, slates::Error> {
    let body = match user {
        None => {
            let n = current_hits(&slates).await?;
            format!(
                r#"<h1>Hit counter</h1>
<p id="guest-note">You are not logged in: your hits count as a visitor's, and logging in adds them
to your account. There is no password in this demo.</p>
<form method="post" action="/hits" id="hit-form">
  <p class="count">Hits: <output id="count">{n}</output></p>
  <button type="submit" id="hit">Hit</button>
</form>
<p id="status" role="status"></p>
<form method="post" action="/login" id="login">
  <label>Username <input name="username" id="username" required maxlength="120" autofocus></label>
  <button type="submit" id="login-button">Log in</button>
</form>"#
            )
        }
        Some(user) => {
            let n = current_hits(&slates).await?;
            format!(
                r#"<h1>Hit counter</h1>
<p>Logged in as <strong id="who">{name}</strong>. Open this page in a second tab and click in both:
no hit is lost, and no tab waits for the other.</p>
<form method="post" action="/hits" id="hit-form">
  <p class="count">Hits: <output id="count">{n}</output></p>
  <button type="submit" id="hit">Hit</button>
</form>
<p id="status" role="status"></p>
<div class="row">
  <form method="post" action="/logout"><button type="submit" id="logout" class="secondary">Log out</button></form>
  <form method="post" action="/logout-everywhere"><button type="submit" id="logout-everywhere" class="secondary">Log out everywhere</button></form>
</div>
<p class="small"><a href="/me">/me</a> · <a href="/stats">/stats</a></p>"#,
                name = esc(user.username()),
            )
        }
    };
    let mut res = Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>slates · hit counter</title>
<style>{CSS}</style></head>
<body><main>{body}</main>
<script>{SCRIPT}</script></body></html>"#
    ))
    .into_response();
    // The count on the page is per user: never serve it from a cache.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f4f5f7;color:#1f2933;margin:0}
main{max-width:36rem;margin:3rem auto;background:#fff;padding:2rem 2.5rem;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{margin-top:0;font-size:1.6rem}
label{display:block;margin:.5rem 0 1rem}
input{display:block;margin-top:.3rem;padding:.5rem;font-size:1rem;width:100%;box-sizing:border-box;border:1px solid #cbd2d9;border-radius:6px}
button{font-size:1rem;padding:.55rem 1.2rem;border:0;border-radius:6px;background:#2f6fdb;color:#fff;cursor:pointer}
button.secondary{background:#e4e7eb;color:#1f2933}
.count{font-size:2.2rem;margin:.5rem 0 1rem}
.row{display:flex;gap:.75rem;margin-top:1.5rem}
.small{font-size:.85rem;color:#616e7c}
#status{min-height:1.2em;color:#b44d12}
";

/// Progressive enhancement: with JavaScript, the hit button posts with `fetch` and updates
/// the count in place. `window.hitsSeen` keeps every count the server returned and
/// `window.hitsPending` the requests in flight (the browser test reads both).
const SCRIPT: &str = r#"
// A page restored from the back/forward cache shows an old count, or a login that has
// ended since: reload it.
window.addEventListener('pageshow', function (e) { if (e.persisted) location.reload(); });
(function () {
  var form = document.getElementById('hit-form');
  if (!form || !window.fetch) return;
  var count = document.getElementById('count');
  var status = document.getElementById('status');
  window.hitsSeen = [];
  window.hitsPending = 0;
  window.hitsFailed = 0;
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    window.hitsPending++;
    fetch('/hits', { method: 'POST', credentials: 'same-origin' })
      .then(function (res) {
        if (res.status === 401) {
          window.hitsFailed++;
          status.textContent = 'You are logged out. Reload the page to log in again.';
          return null;
        }
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.text();
      })
      .then(function (text) {
        if (text === null) return;
        var n = parseInt(text, 10);
        window.hitsSeen.push(n);
        if (n > parseInt(count.textContent, 10)) count.textContent = String(n);
      })
      .catch(function (e) { window.hitsFailed++; status.textContent = 'Hit failed: ' + e.message; })
      .finally(function () { window.hitsPending--; });
  });
})();
"#;
