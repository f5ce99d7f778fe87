//! Run with `cargo run --example upload_workflow` (memory store; set `SLATES_MONGODB_URI`
//! to use MongoDB, `PORT` to change the port, `SLATES_ADMIN` to name the admin), then open
//! <http://127.0.0.1:3000/>.
//!
//! The multi-step upload of the design brief, as server-rendered HTML pages:
//!
//! 1. `/` — log in (a username only: there is no password in this demo).
//! 2. `/upload` — name a new set of ids and give them in a textarea and/or a CSV file
//!    (multipart). The parsed upload, with its conflicts, goes into the user's
//!    `new_id_set` **workflow slate** ([`NEW_ID_SET`]), which expires 30 minutes after the
//!    last write. A visitor who has not logged in may upload too: the upload goes into the
//!    visitor's **guest slate** of that workflow (the first write sets the guest cookie);
//!    the review page then asks them to log in, and the login carries the upload over to
//!    the user ([`AT_LOGIN`]), checked again against the user's saved sets.
//! 3. `/review` — lists the conflicts: ids already in one of the user's saved sets,
//!    duplicates within the upload, values that are not valid ids. "Discard conflicts" or
//!    "Keep all" saves the set (one atomic `$set` on the `sets` slate) and deletes the
//!    workflow slate; the saved-sets page then says so once (a **flash message**).
//! 4. `/sets` and `/profile` — other pages of the site. They work at any time, in between
//!    too, without touching the workflow slate. The profile shows the name and timezone from
//!    the **profile** (the user slate, read once per request on first use) and changes
//!    the timezone (confirmed once by a flash message); every page shows times in that
//!    timezone.
//! 5. `/devices` — where the user is logged in (browser and system, login time, last
//!    seen), with a button to end one device and one to end all the others
//!    ([`slates::Devices`]).
//! 6. `/stats` — the engine's statistics as JSON, for the admin only: the user named by
//!    `SLATES_ADMIN` (default `admin`). Other users get 403; anonymous visitors are sent to
//!    the login form like on any page. The statistics describe the site's traffic: never
//!    serve them publicly. (With no passwords, anybody can log in as the admin here: the
//!    check only shows where a real app's authorization goes.)
//!
//! How the site behaves, for browsers and other clients:
//!
//! - **Not logged in**: a browser (a request asking for `text/html`) is redirected (303) to
//!   the login form by the engine's [`WhenLoggedOut::redirect`] policy ([`configure`]): a
//!   page visit to `/?next=<page>`, after which the user lands on that page (`next` is
//!   checked with [`slates::safe_next`]); a form post to `/`. Any other anonymous request (a
//!   script asking for JSON, curl) gets 401.
//! - **Post-redirect-get**: every form post is answered with a 303, to the next page when
//!   it worked, and back to the form's page with `?error=<code>` when it did not (the page
//!   then shows the problem). Back and reload never land on "Confirm Form Resubmission".
//! - **Fresh pages**: pages are `Cache-Control: no-store` and reload themselves when the
//!   browser restores them from its back/forward cache, so Back after saving an upload
//!   shows that no upload is in progress, not the review with live buttons.

pub mod csv;
pub mod devices;
pub mod id_sets;
pub mod limits;
pub mod pages;
pub mod problem;
pub mod timezone;
pub mod upload;

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Form, Multipart, Query, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use slates::{
    Auth, CarryOver, CurrentUser, Engine, EngineBuilder, Slate, SlateUpdate, SlatesService,
    UserSlates, Username, VisitorSlates, WhenLoggedOut, Workflow,
};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use self::id_sets::{check_set_name, review_upload, NewIdSet, SavedSet, SavedSets};
use self::limits::MAX_BODY_BYTES;
use self::pages::PageError;
use self::problem::{query_value, see_other, Problem};
use self::timezone::{check_timezone, LocalTime};
use self::upload::read_upload_form;

/// The upload awaiting review: one per user, gone 30 minutes after its last write.
pub const NEW_ID_SET: Workflow<NewIdSet> =
    Workflow::new("new_id_set").expires_after(Duration::minutes(30));
/// The user's saved sets, as a map `sets.<name>`. Declared like a workflow, without an
/// expiry: saved sets stay.
pub const SAVED_SETS: Workflow<SavedSets> = Workflow::new("sets");
/// What a login does to the visitor's guest slates: an upload started before logging in
/// becomes the user's upload in progress (replacing an older one of the user).
pub const AT_LOGIN: [CarryOver; 1] = [CarryOver::replace(&NEW_ID_SET)];
/// Where anonymous page visits are sent (with `?next=`): the login form.
const LOGIN_PAGE: &str = "/";

/// The fields of the profile (the user slate) this site uses.
#[derive(Debug, Default, Deserialize)]
struct Profile {
    name: Option<String>,
    timezone: Option<String>,
}

/// The engine settings this site needs: anonymous page visits go to the login form.
/// [`app`] refuses an engine built without them.
pub fn configure(builder: EngineBuilder) -> EngineBuilder {
    builder.when_logged_out(WhenLoggedOut::redirect(LOGIN_PAGE))
}

/// The app: the example's router inside the slates layer. `engine` must be built through
/// [`configure`]; `admin` is the one user who may see `/stats`.
pub fn app(engine: Engine, admin: Username) -> SlatesService<Router> {
    assert_eq!(
        engine.config().when_logged_out,
        WhenLoggedOut::redirect(LOGIN_PAGE),
        "build the engine with upload_workflow's `configure`: its pages send anonymous visitors to the login form"
    );
    let router = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/upload", get(upload_form).post(upload))
        .route("/review", get(review))
        .route("/review/confirm", post(confirm))
        .route("/review/cancel", post(cancel))
        .route("/sets", get(saved_sets))
        .route("/profile", get(profile).post(set_timezone))
        .route("/devices", get(devices::devices_page))
        .route("/devices/{id}/end", post(devices::end_device))
        .route("/devices/end-others", post(devices::end_others))
        .route("/stats", get(stats).with_state(Admin(admin)))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Refuse cross-site form posts before any handler runs.
        .layer(middleware::from_fn(slates::same_origin_only));
    // Around the whole router (faster than `Router::layer`).
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
    let admin = std::env::var("SLATES_ADMIN").unwrap_or_else(|_| "admin".into());
    let admin = Username::new(&admin)?;
    let uri = std::env::var("SLATES_MONGODB_URI").ok();
    // MongoDB when SLATES_MONGODB_URI is set, else the in-memory store. (The URI may
    // carry a password: log only which store is used.)
    tracing::info!(mongodb = uri.is_some(), "opening the store");
    let store = slates::store::open(uri.as_deref()).await?;
    let engine = configure(Engine::builder_shared(store))
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
    tracing::info!(
        admin = admin.as_str(),
        "upload_workflow listening on http://{addr}/"
    );
    axum::serve(listener, app(engine, admin).into_make_service()).await?;
    Ok(())
}

// ------------------------------------------------------------------ handlers

/// The query parameters the pages read: the problem of a failed form post, the page to go
/// to after login, a set name to fill in, a confirmation.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    error: Option<String>,
    next: Option<String>,
    name: Option<String>,
}

impl PageQuery {
    fn problem(&self) -> Option<Problem> {
        self.error.as_deref().and_then(Problem::from_code)
    }
}

async fn home(
    user: Option<CurrentUser>,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    let Some(user) = user else {
        let next = q.next.as_deref().and_then(slates::safe_next);
        return Ok(pages::login_page(q.problem(), next));
    };
    let profile: Profile = user.profile().await?.unwrap_or_default();
    let name = profile.name.as_deref().unwrap_or(user.username());
    Ok(pages::home_page(user.username(), name, q.problem()))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    next: Option<String>,
}

async fn login(auth: Auth, engine: Engine, Form(form): Form<LoginForm>) -> Response {
    let next = form.next.as_deref().and_then(slates::safe_next);
    match log_in(&auth, &engine, form.username.trim()).await {
        Ok(()) => see_other(next.unwrap_or("/upload")),
        Err(problem) => match next {
            Some(next) => problem.redirect_to(&format!("{LOGIN_PAGE}?next={}", query_value(next))),
            None => problem.redirect_to(LOGIN_PAGE),
        },
    }
}

async fn log_in(auth: &Auth, engine: &Engine, username: &str) -> Result<(), Problem> {
    // No password in this demo: a real app checks it here, before `login`. A fresh auth
    // token (never the guest token), then an upload started as a visitor carried over.
    let carried = auth.login_carrying(username, &AT_LOGIN).await?;
    let slates = engine.user_slates(username)?;
    if carried > 0 {
        recheck_upload(&slates).await?;
    }
    // The profile is written rarely: here, at login, and when the timezone changes.
    let update = SlateUpdate::new().set("name", username).inc("logins", 1);
    slates.profile_slate::<Profile>().update(update).await?;
    Ok(())
}

/// Checks an upload made as a visitor again, now against the user's saved sets.
async fn recheck_upload(slates: &UserSlates) -> Result<(), Problem> {
    let saved = slates
        .workflow(&SAVED_SETS)
        .get()
        .await?
        .unwrap_or_default();
    let import = slates.workflow(&NEW_ID_SET);
    // Compare-and-swap: an upload replaced meanwhile (another tab) is checked as it is;
    // one deleted meanwhile (`Missing`) needs no check.
    let _checked = import
        .modify(|upload| {
            let values = upload.ids.iter().map(i64::to_string);
            let values = values.chain(upload.not_ids.iter().cloned()).collect();
            let sources = std::mem::take(&mut upload.sources);
            *upload = review_upload(&upload.name, values, sources, &saved);
            Some(())
        })
        .await?;
    Ok(())
}

async fn logout(auth: Auth) -> Response {
    match auth.logout().await {
        Ok(()) => see_other(LOGIN_PAGE),
        Err(e) => Problem::from(e).redirect_to(LOGIN_PAGE),
    }
}

/// The upload form, for users and visitors alike.
async fn upload_form(user: Option<CurrentUser>, Query(q): Query<PageQuery>) -> Response {
    let name = q.name.as_deref().and_then(|n| check_set_name(n).ok());
    let user = user.as_ref().map(CurrentUser::username);
    pages::upload_page(user, q.problem(), name.unwrap_or(""))
}

/// An upload goes into the user's workflow slate, or a visitor's guest slate.
async fn upload(
    slates: VisitorSlates,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let form = match read_upload_form(multipart).await {
        Ok(form) => form,
        Err(problem) => return problem.redirect_to("/upload"),
    };
    let name = match check_set_name(form.name.as_deref().unwrap_or("")) {
        Ok(name) => name,
        Err(problem) => return problem.redirect_to("/upload"),
    };
    match start_review(&slates, name, form.values, form.sources).await {
        Ok(()) => see_other("/review"),
        // Back to the form, with the set name filled in again.
        Err(problem) => problem.redirect_to(&format!("/upload?name={}", query_value(name))),
    }
}

/// Checks the upload against the saved sets and puts it in the workflow slate, for review.
async fn start_review(
    slates: &VisitorSlates,
    name: &str,
    values: Vec<String>,
    sources: Vec<String>,
) -> Result<(), Problem> {
    if values.is_empty() {
        return Err(Problem::NoIds);
    }
    let saved = slates
        .workflow(&SAVED_SETS)
        .get()
        .await?
        .unwrap_or_default();
    let upload = review_upload(name, values, sources, &saved);
    // One whole-document write; the workflow's declaration makes the slate expire 30
    // minutes after it.
    slates.workflow(&NEW_ID_SET).put(&upload).await?;
    Ok(())
}

/// Reads the upload in progress with its version (to refuse confirming a page that shows
/// an older upload) and its expiry.
async fn upload_in_progress(
    import: &Slate<NewIdSet>,
) -> slates::Result<Option<(NewIdSet, i64, Option<OffsetDateTime>)>> {
    let Some(doc) = import.get_doc().await? else {
        return Ok(None);
    };
    let upload = doc.doc.deserialize()?;
    Ok(Some((upload, doc.version, doc.expires)))
}

/// How this user's pages show times: in the profile's timezone.
async fn local_time(user: &CurrentUser) -> slates::Result<LocalTime> {
    let profile: Option<Profile> = user.profile().await?;
    Ok(LocalTime::new(profile.and_then(|p| p.timezone).as_deref()))
}

async fn review(user: CurrentUser, Query(q): Query<PageQuery>) -> Result<Response, PageError> {
    let import = user.slates().workflow(&NEW_ID_SET);
    let Some((upload, version, expires)) = upload_in_progress(&import).await? else {
        return Ok(pages::no_upload_page(user.username()));
    };
    let local = local_time(&user).await?;
    Ok(pages::review_page(
        user.username(),
        &upload,
        version,
        expires,
        local,
        q.problem(),
    ))
}

#[derive(Deserialize)]
struct ConfirmForm {
    choice: String,
    version: Option<i64>,
}

async fn confirm(user: CurrentUser, engine: Engine, Form(form): Form<ConfirmForm>) -> Response {
    let slates = user.slates();
    match save_upload(&slates, &engine, &form).await {
        Ok(Some(name)) => {
            // Said once, by the next page that shows messages (the saved sets page).
            if let Err(e) = slates.flash(&format!("Saved “{name}”.")).await {
                tracing::warn!(error = %e, "flash message not written");
            }
            see_other("/sets")
        }
        // No upload (saved, cancelled or expired): the review page says so.
        Ok(None) => see_other("/review"),
        Err(problem) => problem.redirect_to("/review"),
    }
}

/// Saves the upload in progress as the form chose, if it is still the one the page showed,
/// and ends the workflow. Returns the saved set's name; `None` if there is no upload.
async fn save_upload(
    slates: &UserSlates,
    engine: &Engine,
    form: &ConfirmForm,
) -> Result<Option<String>, Problem> {
    let import = slates.workflow(&NEW_ID_SET);
    let Some((upload, version, _)) = upload_in_progress(&import).await? else {
        return Ok(None);
    };
    if form.version.is_some_and(|v| v != version) {
        return Err(Problem::Changed);
    }
    let ids = match form.choice.as_str() {
        "discard" => upload.without_conflicts(),
        "keep" => upload.ids,
        _ => return Err(Problem::BadChoice),
    };
    let set = SavedSet {
        ids,
        saved_at: engine.now().format(&Rfc3339).unwrap_or_default(),
    };
    // One atomic `$set` of one field: saving never rewrites the other saved sets. The name
    // was checked at upload (no `.` or `$`), so it is a safe field path.
    slates
        .workflow(&SAVED_SETS)
        .set(&format!("sets.{}", upload.name), &set)
        .await?;
    // The task is finished: its workflow slate goes.
    import.delete().await?;
    Ok(Some(upload.name))
}

async fn cancel(user: CurrentUser) -> Response {
    match user.slates().workflow(&NEW_ID_SET).delete().await {
        Ok(_) => see_other("/upload"),
        Err(e) => Problem::from(e).redirect_to("/review"),
    }
}

async fn saved_sets(user: CurrentUser) -> Result<Response, PageError> {
    let message = user.slates().take_flashes().await?.join(" ");
    let saved = user
        .slates()
        .workflow(&SAVED_SETS)
        .get()
        .await?
        .unwrap_or_default();
    let local = local_time(&user).await?;
    Ok(pages::sets_page(
        user.username(),
        &saved,
        Some(message.as_str()).filter(|m| !m.is_empty()),
        local,
    ))
}

async fn profile(user: CurrentUser, Query(q): Query<PageQuery>) -> Result<Response, PageError> {
    let p: Profile = user.profile().await?.unwrap_or_default();
    let message = user.slates().take_flashes().await?.join(" ");
    Ok(pages::profile_page(
        user.username(),
        p.name.as_deref().unwrap_or(user.username()),
        p.timezone.as_deref(),
        Some(message.as_str()).filter(|m| !m.is_empty()),
        q.problem(),
    ))
}

#[derive(Deserialize)]
struct TimezoneForm {
    timezone: String,
}

async fn set_timezone(user: CurrentUser, Form(form): Form<TimezoneForm>) -> Response {
    let tz = match check_timezone(&form.timezone) {
        Ok(tz) => tz,
        Err(problem) => return problem.redirect_to("/profile"),
    };
    // A rare write to the profile: one `$set`.
    let slates = user.slates();
    match slates.profile_slate::<Profile>().set("timezone", tz).await {
        Ok(_) => {
            if let Err(e) = slates.flash("Profile saved.").await {
                tracing::warn!(error = %e, "flash message not written");
            }
            see_other("/profile")
        }
        Err(e) => Problem::from(e).redirect_to("/profile"),
    }
}

/// The one user who may see `/stats`.
#[derive(Clone)]
struct Admin(Username);

/// The engine's statistics as JSON, for the admin only.
async fn stats(State(Admin(admin)): State<Admin>, user: CurrentUser, engine: Engine) -> Response {
    if *user.user() != admin {
        return pages::admins_only_page(user.username());
    }
    slates::stats_handler(engine).await.into_response()
}
