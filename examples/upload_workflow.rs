//! Run with `cargo run --example upload_workflow` (memory store; set `SLATES_MONGODB_URI`
//! to use MongoDB, `PORT` to change the port), then open <http://127.0.0.1:3000/>.
//!
//! The multi-step upload of the design brief, as server-rendered HTML pages:
//!
//! 1. `/` — log in (a username only: there is no password in this demo).
//! 2. `/upload` — name a new set of ids and give them in a textarea and/or a CSV file
//!    (multipart). The parsed upload, with its conflicts, goes into the user's
//!    `new_id_set` **workflow slate**, which expires 30 minutes after the last write.
//! 3. `/review` — lists the conflicts: ids already in one of the user's saved sets,
//!    duplicates within the upload, values that are not numbers. "Discard conflicts" or
//!    "Keep all" saves the set (one atomic `$set` on the `sets` slate) and deletes the
//!    workflow slate.
//! 4. `/sets` and `/profile` — other pages of the site. They work at any time, in between
//!    too, without touching the workflow slate. The profile shows the name and timezone from
//!    the **user slate** (loaded by the layer with the token check) and changes the timezone.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Form, FromRequestParts, Multipart, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use slates::{Auth, CurrentUser, Engine, SlateUpdate, UserSlates};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// The workflow slate of an upload awaiting confirmation.
const UPLOAD_SLATE: &str = "new_id_set";
/// The slate holding the user's saved sets, as a map `sets.<name>`.
const SETS_SLATE: &str = "sets";
/// An upload left alone this long after its last write disappears on its own.
const UPLOAD_TTL: Duration = Duration::minutes(30);
/// Largest request body (the upload form with its file included).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Most values one upload may hold (textarea and file together).
pub const MAX_VALUES: usize = 10_000;
/// Most text boxes and files one upload may hold (a form has one of each).
const MAX_PARTS: usize = 8;
/// Longest set name, in characters.
const MAX_SET_NAME: usize = 40;
/// Longest value shown back on the review page.
const MAX_SHOWN_VALUE: usize = 40;

/// The router of the example, behind the slates layer.
pub fn app(slates: Engine) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/upload", get(upload_form).post(upload))
        .route("/review", get(review))
        .route("/review/confirm", post(confirm))
        .route("/review/cancel", post(cancel))
        .route("/sets", get(saved_sets))
        .route("/profile", get(profile).post(set_timezone))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(slates.layer())
        // Outermost: refuse cross-site form posts before anything else runs.
        .layer(middleware::from_fn(slates::same_origin_only))
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
    let slates = Engine::builder_shared(store)
        // The demo is plain http on localhost; a real deployment keeps the Secure default.
        .secure(false)
        .build()
        .await?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse()?,
        Err(_) => 3000,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("upload_workflow listening on http://{addr}/");
    axum::serve(listener, app(slates)).await?;
    Ok(())
}

// ------------------------------------------------------------------ data

/// The workflow slate: one upload awaiting review. Written once by `/upload` (a whole
/// document `put`), read by `/review`, deleted by confirm or cancel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewIdSet {
    /// The name the set will be saved under.
    pub name: String,
    /// Every numeric value, in upload order, duplicates included.
    pub ids: Vec<i64>,
    /// Values that are not ids (shortened for display).
    pub not_numbers: Vec<String>,
    /// Ids given more than once, with how often.
    pub duplicates: Vec<Duplicate>,
    /// Ids already in another saved set of the user.
    pub already_saved: Vec<AlreadySaved>,
    /// Where the values came from, for the review page.
    pub sources: Vec<String>,
    /// Whether a saved set of the same name exists (confirming replaces it).
    pub replaces: bool,
}

/// An id given more than once in one upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    /// The id.
    pub id: i64,
    /// How many times it was given.
    pub count: u32,
}

/// An id already in one or more of the user's saved sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlreadySaved {
    /// The id.
    pub id: i64,
    /// The saved sets holding it.
    pub sets: Vec<String>,
}

/// One saved set, stored at `sets.<name>` in the `sets` slate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSet {
    /// The ids, in order.
    pub ids: Vec<i64>,
    /// When it was saved (RFC 3339).
    pub saved_at: String,
}

/// The `sets` slate.
#[derive(Debug, Default, Deserialize)]
pub struct SavedSets {
    /// Saved sets by name (sorted).
    #[serde(default)]
    pub sets: BTreeMap<String, SavedSet>,
}

/// The fields of the user slate this site uses.
#[derive(Debug, Default, Deserialize)]
struct Profile {
    name: Option<String>,
    timezone: Option<String>,
}

impl NewIdSet {
    /// The ids saved by "discard conflicts": ids already saved in another set dropped, each
    /// duplicate kept once. Values that are not numbers are never saved.
    pub fn without_conflicts(&self) -> Vec<i64> {
        let saved: std::collections::HashSet<i64> =
            self.already_saved.iter().map(|a| a.id).collect();
        let mut seen = std::collections::HashSet::new();
        self.ids
            .iter()
            .copied()
            .filter(|id| !saved.contains(id) && seen.insert(*id))
            .collect()
    }

    /// Whether there is anything to decide.
    pub fn has_conflicts(&self) -> bool {
        !(self.not_numbers.is_empty()
            && self.duplicates.is_empty()
            && self.already_saved.is_empty())
    }
}

// ------------------------------------------------------------------ parsing

/// Splits a free-form list: values separated by commas, semicolons, newlines or spaces.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .map(|v| unquote(v.trim()))
        .filter(|v| !v.is_empty())
        .collect()
}

/// Parses a CSV file, with or without a header row. A first row with no numeric cell is a
/// header: then the values are the `id` (or `ids`) column if there is one, else the first
/// column. Without a header, every cell is a value. Returns the values and the header.
pub fn parse_csv(text: &str) -> (Vec<String>, Option<Vec<String>>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = text
        .lines()
        .map(csv_cells)
        .filter(|cells| cells.iter().any(|c| !c.is_empty()));
    let Some(first) = rows.next() else {
        return (Vec::new(), None);
    };
    if first.iter().any(|c| parse_id(c).is_some()) {
        let values = std::iter::once(first)
            .chain(rows)
            .flatten()
            .filter(|c| !c.is_empty())
            .collect();
        return (values, None);
    }
    let column = first
        .iter()
        .position(|c| c.eq_ignore_ascii_case("id") || c.eq_ignore_ascii_case("ids"))
        .unwrap_or(0);
    let values = rows
        .filter_map(|mut row| (column < row.len()).then(|| row.swap_remove(column)))
        .filter(|c| !c.is_empty())
        .collect();
    (values, Some(first))
}

/// The cells of one CSV line: commas (or semicolons) outside double quotes separate; `""`
/// inside quotes is a quote.
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',' | ';', false) => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            (c, _) => cell.push(c),
        }
    }
    cells.push(cell.trim().to_owned());
    cells
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .trim()
        .to_owned()
}

/// An id is a whole number from 0 to 2^63 - 1, written with ASCII digits only.
pub fn parse_id(v: &str) -> Option<i64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Checks a set name: 1 to 40 letters, digits, spaces, `-` or `_`, starting with a letter
/// or digit. (The name becomes a field path in the `sets` slate, so `.` and `$` are out.)
pub fn check_set_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("Give the set a name.".into());
    }
    if name.chars().count() > MAX_SET_NAME {
        return Err(format!(
            "The set name is too long: at most {MAX_SET_NAME} characters."
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_'))
    {
        return Err("A set name may hold letters, digits, spaces, '-' and '_', and starts with a letter or digit.".into());
    }
    Ok(name)
}

/// Checks a timezone name such as `Europe/Paris` or `UTC`.
fn check_timezone(tz: &str) -> Result<&str, String> {
    let tz = tz.trim();
    let ok = !tz.is_empty()
        && tz.len() <= 64
        && tz.starts_with(|c: char| c.is_ascii_alphabetic())
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-'));
    if ok {
        Ok(tz)
    } else {
        Err("A timezone looks like Europe/Paris or UTC (letters, digits, '/', '_', '+', '-'; at most 64).".into())
    }
}

/// Builds the workflow slate from the raw values: numbers, non-numbers, duplicates, and ids
/// already in another saved set of the user.
pub fn review_upload(
    name: &str,
    values: Vec<String>,
    sources: Vec<String>,
    saved: &SavedSets,
) -> NewIdSet {
    let mut ids = Vec::new();
    let mut not_numbers = Vec::new();
    for v in values {
        match parse_id(&v) {
            Some(id) => ids.push(id),
            None => not_numbers.push(shorten(&v)),
        }
    }
    let mut counts: HashMap<i64, u32> = HashMap::new();
    for id in &ids {
        *counts.entry(*id).or_default() += 1;
    }
    let mut in_sets: HashMap<i64, Vec<String>> = HashMap::new();
    for (set_name, set) in &saved.sets {
        // The set of the same name is replaced by this upload: no conflict with itself.
        if set_name == name {
            continue;
        }
        for id in &set.ids {
            if counts.contains_key(id) {
                let sets = in_sets.entry(*id).or_default();
                if sets.last() != Some(set_name) {
                    sets.push(set_name.clone());
                }
            }
        }
    }
    let mut duplicates = Vec::new();
    let mut already_saved = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for id in &ids {
        if !seen.insert(*id) {
            continue;
        }
        if counts[id] > 1 {
            duplicates.push(Duplicate {
                id: *id,
                count: counts[id],
            });
        }
        if let Some(sets) = in_sets.remove(id) {
            already_saved.push(AlreadySaved { id: *id, sets });
        }
    }
    NewIdSet {
        name: name.to_owned(),
        ids,
        not_numbers,
        duplicates,
        already_saved,
        sources,
        replaces: saved.sets.contains_key(name),
    }
}

fn shorten(v: &str) -> String {
    if v.chars().count() <= MAX_SHOWN_VALUE {
        v.to_owned()
    } else {
        let mut s: String = v.chars().take(MAX_SHOWN_VALUE).collect();
        s.push('…');
        s
    }
}

// ------------------------------------------------------------------ handlers

/// A logged-in user; anonymous requests are sent to the login page.
struct LoggedIn(CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Option::<CurrentUser>::from_request_parts(parts, state).await {
            Ok(Some(user)) => Ok(LoggedIn(user)),
            Ok(None) => Err(Redirect::to("/").into_response()),
            Err(missing_layer) => Err(missing_layer.into_response()),
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
}

async fn home(user: Option<CurrentUser>) -> Response {
    let Some(user) = user else {
        return page(
            "Log in",
            None,
            r#"<h1>Log in</h1>
<p class="note">This is a demo: <strong>there is no password</strong>. Any username logs you in
(a real app checks a password before calling <code>Auth::login</code>).</p>
<form method="post" action="/login">
  <label for="username">Username</label>
  <input id="username" name="username" required maxlength="120" autocomplete="username" autofocus>
  <button type="submit" id="login">Log in</button>
</form>"#,
        );
    };
    page(
        "Home",
        Some(user.username()),
        &format!(
            r#"<h1>Welcome, {name}</h1>
<p>Upload a named set of ids, review the conflicts, and save it. You can leave an upload
half-way, visit other pages, and come back to it: it waits for you for 30 minutes.</p>
<ul class="links">
  <li><a href="/upload">Upload a new set</a></li>
  <li><a href="/review">Review the upload in progress</a></li>
  <li><a href="/sets">Saved sets</a></li>
  <li><a href="/profile">Profile</a></li>
</ul>"#,
            name = esc(user.username())
        ),
    )
}

async fn login(auth: Auth, slates: Engine, Form(form): Form<LoginForm>) -> Response {
    let username = form.username.trim();
    // No password in this demo: a real app checks it here, before `login`.
    if let Err(e) = auth.login(username).await {
        return PageError::from(e).into_response();
    }
    // The user slate is written rarely: here, at login, and when the timezone changes.
    let update = SlateUpdate::new().set("name", username).inc("logins", 1);
    let written = match slates.user_slates(username) {
        Ok(user) => user.raw_slate("user").update(update).await,
        Err(e) => Err(e),
    };
    match written {
        Ok(_) => Redirect::to("/upload").into_response(),
        Err(e) => PageError::from(e).into_response(),
    }
}

async fn logout(auth: Auth) -> Response {
    match auth.logout().await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => PageError::from(e).into_response(),
    }
}

async fn upload_form(LoggedIn(user): LoggedIn) -> Response {
    page("Upload", Some(user.username()), &upload_form_html("", ""))
}

fn upload_form_html(name: &str, ids: &str) -> String {
    format!(
        r#"<h1>Upload a new set</h1>
<form method="post" action="/upload" enctype="multipart/form-data">
  <label for="name">Set name</label>
  <input id="name" name="name" required maxlength="{MAX_SET_NAME}" value="{name}"
         placeholder="e.g. batch 7">
  <label for="ids">Ids <span class="hint">separated by commas, spaces or new lines</span></label>
  <textarea id="ids" name="ids" rows="6" placeholder="101, 102, 103">{ids}</textarea>
  <label for="file">and/or a CSV file <span class="hint">with or without a header row; the
  <code>id</code> column is used if there is one</span></label>
  <input id="file" name="file" type="file" accept=".csv,text/csv,text/plain">
  <p class="hint">At most {MAX_VALUES} values and {mib} MiB per upload.</p>
  <button type="submit" id="upload">Upload and review</button>
</form>"#,
        name = esc(name),
        ids = esc(ids),
        mib = MAX_BODY_BYTES / (1024 * 1024),
    )
}

async fn upload(
    LoggedIn(user): LoggedIn,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let username = user.username().to_owned();
    match read_upload(user, multipart).await {
        Ok(()) => Redirect::to("/review").into_response(),
        Err(e) => e.with_user(username).into_response(),
    }
}

async fn read_upload(
    user: CurrentUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(), PageError> {
    let mut multipart = multipart
        .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, "Bad upload", e.body_text()))?;
    let mut name = None;
    let mut values = Vec::new();
    let mut sources = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("name") => name = Some(field.text().await.map_err(multipart_error)?),
            Some("ids") => {
                let list = split_list(&field.text().await.map_err(multipart_error)?);
                if !list.is_empty() {
                    sources.push(format!("text box: {} values", list.len()));
                    values.extend(list);
                }
            }
            Some("file") => {
                let file_name = field.file_name().unwrap_or("").to_owned();
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.is_empty() {
                    continue; // no file chosen
                }
                let text = std::str::from_utf8(&bytes).map_err(|_| {
                    PageError::new(
                        StatusCode::BAD_REQUEST,
                        "Not a text file",
                        "The file is not UTF-8 text. Upload a CSV file.".into(),
                    )
                })?;
                let (list, header) = parse_csv(text);
                let mut source = format!("file {}: {} values", shorten(&file_name), list.len());
                if let Some(header) = header {
                    source.push_str(&format!(
                        " (header row skipped: {})",
                        shorten(&header.join(", "))
                    ));
                }
                sources.push(source);
                values.extend(list);
            }
            _ => {} // unknown fields are ignored (and bounded by the body limit)
        }
        if sources.len() > MAX_PARTS {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Too many parts",
                format!("An upload has one text box and at most {MAX_PARTS} files."),
            ));
        }
        if values.len() > MAX_VALUES {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Too many values",
                format!("An upload holds at most {MAX_VALUES} values; split it into several sets."),
            ));
        }
    }
    let name = check_set_name(name.as_deref().unwrap_or(""))
        .map_err(|m| PageError::new(StatusCode::BAD_REQUEST, "Bad set name", m))?;
    if values.is_empty() {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "No ids",
            "Give at least one id, in the text box or in a CSV file.".into(),
        ));
    }
    let slates = user.slates();
    let saved: SavedSets = slates
        .raw_slate(SETS_SLATE)
        .get()
        .await?
        .unwrap_or_default();
    let upload = review_upload(name, values, sources, &saved);
    // One whole-document write; every write through this handle restarts the 30 minutes.
    slates
        .raw_slate(UPLOAD_SLATE)
        .expires_in(UPLOAD_TTL)
        .put(&upload)
        .await?;
    Ok(())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> PageError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        PageError::new(
            status,
            "Upload too large",
            format!(
                "An upload is at most {} MiB. Split the file into several sets.",
                MAX_BODY_BYTES / (1024 * 1024)
            ),
        )
    } else {
        PageError::new(status, "Bad upload", e.body_text())
    }
}

/// Reads the upload in progress with its version and expiry.
async fn upload_in_progress(
    slates: &UserSlates,
) -> Result<Option<(NewIdSet, i64, Option<OffsetDateTime>)>, slates::Error> {
    let Some(doc) = slates.raw_slate(UPLOAD_SLATE).get_doc().await? else {
        return Ok(None);
    };
    let upload = slates::bson::from_document((*doc.doc).clone())?;
    Ok(Some((upload, doc.version, doc.expires)))
}

async fn review(LoggedIn(user): LoggedIn) -> Result<Response, PageError> {
    let name = user.username().to_owned();
    let Some((upload, version, expires)) = upload_in_progress(&user.slates()).await? else {
        return Ok(no_upload(&name));
    };
    let mut body = format!(
        "<h1>Review “{}”</h1>\n<p>{} values: {} ids, {} distinct.</p>\n<ul class=\"sources\">",
        esc(&upload.name),
        upload.ids.len() + upload.not_numbers.len(),
        upload.ids.len(),
        upload
            .ids
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
    );
    for s in &upload.sources {
        body.push_str(&format!("<li>{}</li>", esc(s)));
    }
    body.push_str("</ul>");
    if upload.replaces {
        body.push_str(&format!(
            "<p class=\"note\">You already have a saved set named “{}”: saving replaces it.</p>",
            esc(&upload.name)
        ));
    }
    if !upload.has_conflicts() {
        body.push_str("<p class=\"ok\" id=\"no-conflicts\">No conflicts.</p>");
    }
    if !upload.already_saved.is_empty() {
        body.push_str(&format!(
            "<h2>Already in a saved set ({})</h2><table id=\"already-saved\"><tr><th>id</th><th>saved in</th></tr>",
            upload.already_saved.len()
        ));
        for a in &upload.already_saved {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                a.id,
                esc(&a.sets.join(", "))
            ));
        }
        body.push_str("</table>");
    }
    if !upload.duplicates.is_empty() {
        body.push_str(&format!(
            "<h2>Duplicates in this upload ({})</h2><table id=\"duplicates\"><tr><th>id</th><th>times</th></tr>",
            upload.duplicates.len()
        ));
        for d in &upload.duplicates {
            body.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", d.id, d.count));
        }
        body.push_str("</table>");
    }
    if !upload.not_numbers.is_empty() {
        body.push_str(&format!(
            "<h2>Not numbers ({})</h2><p class=\"hint\">These are never saved.</p><ul id=\"not-numbers\">",
            upload.not_numbers.len()
        ));
        for v in &upload.not_numbers {
            body.push_str(&format!("<li><code>{}</code></li>", esc(v)));
        }
        body.push_str("</ul>");
    }
    let discard = upload.without_conflicts().len();
    body.push_str(&format!(
        r#"<form method="post" action="/review/confirm" class="choices">
  <input type="hidden" name="version" value="{version}">
  <button type="submit" name="choice" value="discard" id="discard">Discard conflicts (save {discard} ids)</button>
  <button type="submit" name="choice" value="keep" id="keep" class="secondary">Keep all (save {keep} ids)</button>
</form>
<form method="post" action="/review/cancel" class="cancel"><button type="submit" id="cancel" class="link">Cancel this upload</button></form>
<p class="hint">“Discard conflicts” drops ids already saved in another set and keeps each duplicate once;
“Keep all” saves every id as uploaded. Values that are not numbers are never saved.</p>"#,
        keep = upload.ids.len(),
    ));
    if let Some(t) = expires {
        body.push_str(&format!(
            "<p class=\"hint\" id=\"expires\">Unless you confirm it, this upload expires at {} UTC.</p>",
            hh_mm(t)
        ));
    }
    Ok(page("Review", Some(&name), &body))
}

fn no_upload(user: &str) -> Response {
    let mut res = page(
        "No upload",
        Some(user),
        r#"<h1>No upload in progress</h1>
<p id="no-upload">There is no upload in progress: it was saved, cancelled, or it expired.</p>
<p><a href="/upload">Upload a new set</a> · <a href="/sets">Saved sets</a></p>"#,
    );
    *res.status_mut() = StatusCode::NOT_FOUND;
    res
}

#[derive(Deserialize)]
struct ConfirmForm {
    choice: String,
    version: Option<i64>,
}

async fn confirm(
    LoggedIn(user): LoggedIn,
    clock: Engine,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, PageError> {
    let name = user.username().to_owned();
    let slates = user.slates();
    let Some((upload, version, _)) = upload_in_progress(&slates).await? else {
        return Ok(no_upload(&name));
    };
    if form.version.is_some_and(|v| v != version) {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            "The upload changed",
            "The upload changed since you reviewed it (another tab?). Review it again.".into(),
        )
        .with_user(name));
    }
    let ids = match form.choice.as_str() {
        "discard" => upload.without_conflicts(),
        "keep" => upload.ids.clone(),
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Bad choice",
                "Choose “Discard conflicts” or “Keep all”.".into(),
            )
            .with_user(name))
        }
    };
    let set = SavedSet {
        ids,
        saved_at: clock.now().format(&Rfc3339).unwrap_or_default(),
    };
    // One atomic `$set` of one field: saving never rewrites the other saved sets. The name
    // was checked at upload (no `.` or `$`), so it is a safe field path.
    slates
        .raw_slate(SETS_SLATE)
        .set(&format!("sets.{}", upload.name), &set)
        .await
        .map_err(|e| PageError::from(e).with_user(name.clone()))?;
    // The task is finished: its workflow slate goes.
    slates.raw_slate(UPLOAD_SLATE).delete().await?;
    let target = format!("/sets?saved={}", upload.name.replace(' ', "%20"));
    Ok(Redirect::to(&target).into_response())
}

async fn cancel(LoggedIn(user): LoggedIn) -> Result<Response, PageError> {
    user.slates().raw_slate(UPLOAD_SLATE).delete().await?;
    Ok(Redirect::to("/upload").into_response())
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

async fn saved_sets(
    LoggedIn(user): LoggedIn,
    Query(q): Query<SavedQuery>,
) -> Result<Response, PageError> {
    let saved: SavedSets = user
        .slates()
        .raw_slate(SETS_SLATE)
        .get()
        .await?
        .unwrap_or_default();
    let mut body = String::from("<h1>Saved sets</h1>");
    if let Some(name) = q.saved.filter(|n| saved.sets.contains_key(n)) {
        body.push_str(&format!(
            "<p class=\"ok\" id=\"saved\">Saved “{}”.</p>",
            esc(&name)
        ));
    }
    if saved.sets.is_empty() {
        body.push_str(
            "<p id=\"no-sets\">No saved sets yet. <a href=\"/upload\">Upload one</a>.</p>",
        );
    } else {
        body.push_str(
            "<table id=\"sets\"><tr><th>name</th><th>ids</th><th>first ids</th><th>saved</th></tr>",
        );
        for (name, set) in &saved.sets {
            let first: Vec<String> = set.ids.iter().take(8).map(i64::to_string).collect();
            let more = if set.ids.len() > 8 { ", …" } else { "" };
            body.push_str(&format!(
                "<tr><td class=\"name\">{}</td><td>{}</td><td class=\"ids\">{}{}</td><td>{}</td></tr>",
                esc(name),
                set.ids.len(),
                first.join(", "),
                more,
                esc(set.saved_at.get(..16).unwrap_or(&set.saved_at)).replace('T', " "),
            ));
        }
        body.push_str("</table>");
    }
    Ok(page("Saved sets", Some(user.username()), &body))
}

async fn profile(LoggedIn(user): LoggedIn) -> Result<Response, PageError> {
    // The user slate was loaded by the layer with the token check: no extra read here.
    let p: Profile = user.profile()?.unwrap_or_default();
    let timezone = p.timezone.as_deref().unwrap_or("UTC");
    let default_note = if p.timezone.is_none() {
        " (default)"
    } else {
        ""
    };
    let body = format!(
        r#"<h1>Profile</h1>
<dl>
  <dt>Username</dt><dd id="username">{username}</dd>
  <dt>Name</dt><dd id="name">{name}</dd>
  <dt>Timezone</dt><dd id="timezone">{tz}{default_note}</dd>
</dl>
<form method="post" action="/profile">
  <label for="tz">Change timezone</label>
  <input id="tz" name="timezone" value="{tz}" list="zones" maxlength="64" required>
  <datalist id="zones"><option value="UTC"><option value="Europe/London"><option value="Europe/Paris">
  <option value="America/New_York"><option value="America/Los_Angeles"><option value="Asia/Tokyo"></datalist>
  <button type="submit" id="save-timezone">Save</button>
</form>"#,
        username = esc(user.username()),
        name = esc(p.name.as_deref().unwrap_or(user.username())),
        tz = esc(timezone),
    );
    Ok(page("Profile", Some(user.username()), &body))
}

#[derive(Deserialize)]
struct TimezoneForm {
    timezone: String,
}

async fn set_timezone(
    LoggedIn(user): LoggedIn,
    Form(form): Form<TimezoneForm>,
) -> Result<Response, PageError> {
    let tz = check_timezone(&form.timezone).map_err(|m| {
        PageError::new(StatusCode::BAD_REQUEST, "Bad timezone", m).with_user(user.username().into())
    })?;
    // A rare write to the user slate: one `$set`.
    user.slates().raw_slate("user").set("timezone", tz).await?;
    Ok(Redirect::to("/profile").into_response())
}

fn hh_mm(t: OffsetDateTime) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

// ------------------------------------------------------------------ pages and errors

/// An error shown as a page: a status, a title and a message for people. Store failures
/// are logged and shown as a generic message.
#[derive(Debug)]
struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
    user: Option<String>,
}

impl PageError {
    fn new(status: StatusCode, title: &'static str, message: String) -> Self {
        PageError {
            status,
            title,
            message,
            user: None,
        }
    }

    fn with_user(mut self, user: String) -> Self {
        self.user = Some(user);
        self
    }
}

impl From<slates::Error> for PageError {
    fn from(e: slates::Error) -> Self {
        use slates::Error;
        match &e {
            Error::InvalidName { .. } => {
                PageError::new(StatusCode::BAD_REQUEST, "Invalid name", e.to_string())
            }
            Error::DocumentTooLarge { .. } => PageError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too much data",
                "Your saved sets have grown past the 16 MiB a slate may hold.".into(),
            ),
            Error::Conflict { .. } => PageError::new(
                StatusCode::CONFLICT,
                "Please retry",
                "The data changed while saving; please retry.".into(),
            ),
            Error::NotLoggedIn => PageError::new(
                StatusCode::UNAUTHORIZED,
                "Not logged in",
                "Log in first.".into(),
            ),
            _ => {
                // The cause stays in the log; the page says no more than this.
                tracing::error!(error = %e, "upload_workflow request failed");
                let status = if e.is_unavailable() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                PageError::new(
                    status,
                    "Something went wrong",
                    "Please try again in a moment.".into(),
                )
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = format!(
            "<h1>{}</h1>\n<p class=\"error\" id=\"error\">{}</p>\n<p><a href=\"javascript:history.back()\">Back</a> · <a href=\"/\">Home</a></p>",
            esc(self.title),
            esc(&self.message)
        );
        let mut res = page(self.title, self.user.as_deref(), &body);
        *res.status_mut() = self.status;
        res
    }
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
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

/// A whole page: `body` is trusted HTML (callers escape what they interpolate).
fn page(title: &str, user: Option<&str>, body: &str) -> Response {
    let nav = match user {
        Some(name) => format!(
            r#"<nav><a href="/" class="brand">slates · ids</a>
<a href="/upload">Upload</a><a href="/review">Review</a><a href="/sets">Saved sets</a><a href="/profile">Profile</a>
<span class="spacer"></span><span class="who">{}</span>
<form method="post" action="/logout"><button type="submit" id="logout" class="link">Log out</button></form></nav>"#,
            esc(name)
        ),
        None => r#"<nav><a href="/" class="brand">slates · ids</a></nav>"#.to_owned(),
    };
    let mut res = Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · slates upload demo</title>
<style>{CSS}</style></head>
<body>{nav}<main>{body}</main></body></html>"#,
        title = esc(title),
    ))
    .into_response();
    // Pages show per-user data: never cache them.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f4f5f7;color:#1f2933;margin:0;line-height:1.45}
nav{display:flex;align-items:center;gap:1.1rem;background:#1f2933;padding:.7rem 1.5rem}
nav a{color:#e4e7eb;text-decoration:none}nav a:hover{color:#fff;text-decoration:underline}
nav .brand{font-weight:600;color:#fff;margin-right:.8rem}
nav .spacer{flex:1}nav .who{color:#9aa5b1}
nav form{margin:0}nav button.link{color:#e4e7eb}
main{max-width:46rem;margin:2rem auto;background:#fff;padding:1.8rem 2.3rem;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{margin-top:0;font-size:1.55rem}h2{font-size:1.1rem;margin-top:1.6rem}
label{display:block;margin:1rem 0 .3rem;font-weight:600}
input,textarea{display:block;padding:.5rem;font-size:1rem;width:100%;box-sizing:border-box;border:1px solid #cbd2d9;border-radius:6px;font-family:inherit}
input[type=file]{border:1px dashed #9aa5b1;background:#f9fafb}
button{font-size:1rem;padding:.55rem 1.2rem;border:0;border-radius:6px;background:#2f6fdb;color:#fff;cursor:pointer;margin-top:1rem}
button.secondary{background:#e4e7eb;color:#1f2933}
button.link{background:none;color:#2f6fdb;padding:0;margin:0;text-decoration:underline}
.choices{display:flex;gap:.8rem;flex-wrap:wrap;margin-top:1.5rem}
.cancel{margin-top:.9rem}
.hint{font-weight:400;color:#616e7c;font-size:.9rem}
.note{background:#fff8e6;border-left:4px solid #f0b429;padding:.6rem .9rem;border-radius:4px}
.ok{background:#e3f9e5;border-left:4px solid #31b237;padding:.6rem .9rem;border-radius:4px}
.error{background:#ffe3e3;border-left:4px solid #e12d39;padding:.6rem .9rem;border-radius:4px}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e4e7eb}
th{color:#616e7c;font-weight:600;font-size:.9rem}
dl{display:grid;grid-template-columns:8rem 1fr;gap:.4rem}dt{color:#616e7c}dd{margin:0;font-weight:600}
ul.links li{margin:.35rem 0}
code{background:#f0f2f5;padding:0 .25rem;border-radius:3px}
";
