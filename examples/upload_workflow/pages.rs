//! The HTML pages. Every function returns a whole page; text from users is escaped with
//! [`esc`] where it is interpolated.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::id_sets::{NewIdSet, SavedSets};
use super::limits::{MAX_BODY_BYTES, MAX_SET_NAME, MAX_VALUES};
use super::problem::Problem;
use super::timezone::LocalTime;

/// The login form, with the page to go to afterwards (already checked with
/// `slates::safe_next`).
pub fn login_page(problem: Option<Problem>, next: Option<&str>) -> Response {
    let next = next.map_or(String::new(), |next| {
        format!(
            r#"
  <input type="hidden" name="next" value="{}">"#,
            esc(next)
        )
    });
    page(
        "Log in",
        None,
        &format!(
            r#"<h1>Log in</h1>{problem}
<p class="note">This is a demo: <strong>there is no password</strong>. Any username logs you in
(a real app checks a password before calling <code>Auth::login</code>).</p>
<form method="post" action="/login">
  <label for="username">Username</label>
  <input id="username" name="username" required maxlength="120" autocomplete="username" autofocus>{next}
  <button type="submit" id="login">Log in</button>
</form>
<p><a href="/upload" id="upload-as-visitor">Start an upload without logging in</a>: it waits
for you when you log in.</p>"#,
            problem = problem_html(problem),
        ),
    )
}

/// The home page of a logged-in user.
pub fn home_page(user: &str, display_name: &str, problem: Option<Problem>) -> Response {
    page(
        "Home",
        Some(user),
        &format!(
            r#"<h1>Welcome, {name}</h1>{problem}
<p>Upload a named set of ids, review the conflicts, and save it. You can leave an upload
half-way, visit other pages, and come back to it: it waits for you for 30 minutes.</p>
<ul class="links">
  <li><a href="/upload">Upload a new set</a></li>
  <li><a href="/review">Review the upload in progress</a></li>
  <li><a href="/sets">Saved sets</a></li>
  <li><a href="/profile">Profile</a></li>
</ul>"#,
            name = esc(display_name),
            problem = problem_html(problem),
        ),
    )
}

/// The upload form, with the problem of the last try and its set name; `user` is `None`
/// for a visitor who has not logged in.
pub fn upload_page(user: Option<&str>, problem: Option<Problem>, name: &str) -> Response {
    let visitor = if user.is_none() {
        "\n<p class=\"note\" id=\"visitor\">You are not logged in: you can upload now, and log \
         in to review and save it.</p>"
    } else {
        ""
    };
    page(
        "Upload",
        user,
        &format!(
            r#"<h1>Upload a new set</h1>{visitor}{problem}
<form method="post" action="/upload" enctype="multipart/form-data">
  <label for="name">Set name</label>
  <input id="name" name="name" required maxlength="{MAX_SET_NAME}" value="{name}"
         placeholder="e.g. batch 7">
  <label for="ids">Ids <span class="hint">separated by commas, spaces or new lines</span></label>
  <textarea id="ids" name="ids" rows="6" placeholder="101, 102, 103"></textarea>
  <label for="file">and/or a CSV file <span class="hint">with or without a header row; the
  <code>id</code> column is used if there is one</span></label>
  <input id="file" name="file" type="file" accept=".csv,text/csv,text/plain">
  <p class="hint">At most {MAX_VALUES} values and {mib} MiB per upload.</p>
  <button type="submit" id="upload">Upload and review</button>
</form>"#,
            problem = problem_html(problem),
            name = esc(name),
            mib = MAX_BODY_BYTES / (1024 * 1024),
        ),
    )
}

/// The review of the upload in progress, at `version`, with its conflicts and the two ways
/// to save it.
pub fn review_page(
    user: &str,
    upload: &NewIdSet,
    version: i64,
    expires: Option<OffsetDateTime>,
    local: LocalTime,
    problem: Option<Problem>,
) -> Response {
    let mut body = format!(
        "<h1>Review “{}”</h1>{}\n<p>{}: {}, {} distinct.</p>\n<ul class=\"sources\">",
        esc(&upload.name),
        problem_html(problem),
        count(upload.ids.len() + upload.not_ids.len(), "value", "values"),
        count(upload.ids.len(), "valid id", "valid ids"),
        upload.distinct_ids(),
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
    if !upload.not_ids.is_empty() {
        body.push_str(&format!(
            "<h2>Not valid ids ({})</h2><p class=\"hint\">An id is a whole number from 0 to {}, in digits only. These values are never saved.</p><ul id=\"not-ids\">",
            upload.not_ids.len(),
            i64::MAX,
        ));
        for v in &upload.not_ids {
            body.push_str(&format!("<li><code>{}</code></li>", esc(v)));
        }
        body.push_str("</ul>");
    }
    body.push_str(&format!(
        r#"<form method="post" action="/review/confirm" class="choices">
  <input type="hidden" name="version" value="{version}">
  <button type="submit" name="choice" value="discard" id="discard">Discard conflicts (save {discard})</button>
  <button type="submit" name="choice" value="keep" id="keep" class="secondary">Keep all (save {keep})</button>
</form>
<form method="post" action="/review/cancel" class="cancel"><button type="submit" id="cancel" class="link">Cancel this upload</button></form>
<p class="hint">“Discard conflicts” drops ids already saved in another set and keeps each duplicate once;
“Keep all” saves every valid id as uploaded. Values that are not valid ids are never saved.</p>"#,
        discard = count(upload.without_conflicts().len(), "id", "ids"),
        keep = count(upload.ids.len(), "id", "ids"),
    ));
    if let Some(t) = expires {
        body.push_str(&format!(
            "<p class=\"hint\" id=\"expires\">Unless you confirm it, this upload expires at {}.</p>",
            local.time(t)
        ));
    }
    page("Review", Some(user), &body)
}

/// What `/review` shows when there is no upload (404).
pub fn no_upload_page(user: &str) -> Response {
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

/// The saved sets, with the flash `message` (a confirmation), if any.
pub fn sets_page(
    user: &str,
    saved: &SavedSets,
    message: Option<&str>,
    local: LocalTime,
) -> Response {
    let mut body = String::from("<h1>Saved sets</h1>");
    if let Some(message) = message {
        body.push_str(&format!(
            "<p class=\"ok\" id=\"saved\">{}</p>",
            esc(message)
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
            let when = match OffsetDateTime::parse(&set.saved_at, &Rfc3339) {
                Ok(t) => local.date_time(t),
                Err(_) => set.saved_at.clone(),
            };
            body.push_str(&format!(
                "<tr><td class=\"name\">{}</td><td>{}</td><td class=\"ids\">{}{}</td><td class=\"when\">{}</td></tr>",
                esc(name),
                set.ids.len(),
                first.join(", "),
                more,
                esc(&when),
            ));
        }
        body.push_str("</table>");
    }
    page("Saved sets", Some(user), &body)
}

/// The profile: name and timezone, and the form that changes the timezone.
pub fn profile_page(
    user: &str,
    name: &str,
    timezone: Option<&str>,
    message: Option<&str>,
    problem: Option<Problem>,
) -> Response {
    let shown = match timezone {
        None => "UTC (default)".to_owned(),
        Some(tz) if LocalTime::new(Some(tz)).zone() == tz => tz.to_owned(),
        Some(tz) => format!("{tz} (unknown: times are shown in UTC)"),
    };
    let saved = message.map_or(String::new(), |m| {
        format!("\n<p class=\"ok\" id=\"saved\">{}</p>", esc(m))
    });
    let body = format!(
        r#"<h1>Profile</h1>{saved}{problem}
<dl>
  <dt>Username</dt><dd id="username">{username}</dd>
  <dt>Name</dt><dd id="name">{name}</dd>
  <dt>Timezone</dt><dd id="timezone">{shown}</dd>
</dl>
<form method="post" action="/profile">
  <label for="tz">Change timezone <span class="hint">times on these pages are shown in it</span></label>
  <input id="tz" name="timezone" value="{tz}" list="zones" maxlength="64" required>
  <datalist id="zones"><option value="UTC"><option value="Europe/London"><option value="Europe/Paris">
  <option value="America/New_York"><option value="America/Los_Angeles"><option value="Asia/Tokyo"></datalist>
  <button type="submit" id="save-timezone">Save</button>
</form>"#,
        problem = problem_html(problem),
        username = esc(user),
        name = esc(name),
        shown = esc(&shown),
        tz = esc(timezone.unwrap_or("UTC")),
    );
    page("Profile", Some(user), &body)
}

/// A page (a GET) that could not be shown: answered directly with the problem's status and
/// message (a GET may be answered with an error: reloading it is harmless).
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    problem: Problem,
}

impl From<slates::Error> for PageError {
    fn from(e: slates::Error) -> Self {
        let internal = !e.is_unavailable();
        let problem = Problem::from(e);
        let status = match problem {
            Problem::Unavailable if internal => StatusCode::INTERNAL_SERVER_ERROR,
            p => p.status(),
        };
        PageError { status, problem }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut res = error_page(self.problem);
        *res.status_mut() = self.status;
        res
    }
}

/// `/stats` for a user who is not the admin (403).
pub fn admins_only_page(user: &str) -> Response {
    let mut res = page(
        "Admins only",
        Some(user),
        r#"<h1>Admins only</h1>
<p class="error" id="error">The statistics are for the site's admin only.</p>"#,
    );
    *res.status_mut() = StatusCode::FORBIDDEN;
    res
}

/// A page that could not be shown (the caller sets the status).
fn error_page(problem: Problem) -> Response {
    page(
        problem.title(),
        None,
        &format!(
            "<h1>{}</h1>\n<p class=\"error\" id=\"error\">{}</p>\n<p><a href=\"/\">Home</a></p>",
            esc(problem.title()),
            esc(&problem.message())
        ),
    )
}

/// The problem of a form post, shown above the form.
pub fn problem_html(problem: Option<Problem>) -> String {
    problem.map_or(String::new(), |p| {
        format!(
            "\n<p class=\"error\" id=\"error\"><strong>{}.</strong> {}</p>",
            esc(p.title()),
            esc(&p.message())
        )
    })
}

/// `n` and the noun in the right number: `1 id`, `3 ids`, `0 ids`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
///
/// Pages show per-user, changing state (the upload in progress, who is logged in), so they
/// are never cached (`no-store`), and a page that the browser brings back from its
/// back/forward cache (which Chromium does despite `no-store`) reloads itself: Back after
/// saving an upload shows that there is no upload any more, not the review with live
/// buttons; Back after logging out shows the login form.
pub fn page(title: &str, user: Option<&str>, body: &str) -> Response {
    let nav = match user {
        Some(name) => format!(
            r#"<nav><a href="/" class="brand">slates · ids</a>
<a href="/upload">Upload</a><a href="/review">Review</a><a href="/sets">Saved sets</a><a href="/profile">Profile</a><a href="/devices">Devices</a>
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
<script>{RELOAD_FROM_BFCACHE}</script>
<style>{CSS}</style></head>
<body>{nav}<main>{body}</main></body></html>"#,
        title = esc(title),
    ))
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Reloads a page restored from the back/forward cache (`persisted`), so that it shows the
/// current state rather than a snapshot.
const RELOAD_FROM_BFCACHE: &str =
    "addEventListener('pageshow', function (e) { if (e.persisted) location.reload(); });";

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
