//! Issue 14 test support: a small app with guest slates, flash messages and carry-over at
//! login, and a browser-like client that keeps both the auth and the guest cookie.

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use http::Request;
use serde::{Deserialize, Serialize};
use slates::{Auth, CarryOver, CurrentUser, Engine, Error, GuestSlates, VisitorSlates, Workflow};
use time::Duration;
use tower::ServiceExt;

use super::harness::{read, Reply};

/// The auth and guest cookie names with `.secure(false)`.
pub const AUTH: &str = "slates";
pub const GUEST: &str = "slates-guest";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Counter {
    #[serde(default)]
    pub hits: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Cart {
    #[serde(default)]
    pub items: Vec<String>,
}

pub const COUNTER: Workflow<Counter> = Workflow::new("counter");
pub const CART: Workflow<Cart> = Workflow::new("cart").expires_after(Duration::minutes(30));

/// What `/login` carries over: the hits are added, the cart appended. `notes` stays with
/// the guest.
pub const AT_LOGIN: [CarryOver; 2] = [
    CarryOver::add_counter(&COUNTER, "hits"),
    CarryOver::append(&CART, "items"),
];

async fn hits(s: VisitorSlates) -> Result<String, Error> {
    Ok(s.workflow(&COUNTER)
        .get()
        .await?
        .map_or(0, |c| c.hits)
        .to_string())
}

async fn hit(s: VisitorSlates) -> Result<String, Error> {
    Ok(s.workflow(&COUNTER).inc("hits", 1).await?.to_string())
}

async fn cart(s: VisitorSlates) -> Result<String, Error> {
    Ok(s.workflow(&CART)
        .get()
        .await?
        .unwrap_or_default()
        .items
        .join(","))
}

async fn add_to_cart(s: VisitorSlates, item: String) -> Result<(), Error> {
    s.workflow(&CART).push("items", item).await?;
    Ok(())
}

async fn guest_hits(g: GuestSlates) -> Result<String, Error> {
    Ok(g.workflow(&COUNTER)
        .get()
        .await?
        .map_or(0, |c| c.hits)
        .to_string())
}

/// When the visitor's counter expires (unix seconds), `none` if it does not exist.
async fn guest_expires(g: GuestSlates) -> Result<String, Error> {
    let doc = g.workflow(&COUNTER).get_doc().await?;
    Ok(doc
        .and_then(|d| d.expires)
        .map_or("none".into(), |e| e.unix_timestamp().to_string()))
}

async fn notes(g: GuestSlates) -> Result<String, Error> {
    Ok(g.raw_slate("notes")
        .get::<bson::Document>()
        .await?
        .map_or(String::new(), |d| {
            d.get_str("text").unwrap_or_default().to_owned()
        }))
}

async fn write_notes(g: GuestSlates, text: String) -> Result<(), Error> {
    g.raw_slate("notes").set("text", text).await?;
    Ok(())
}

async fn login(auth: Auth, username: String) -> Result<String, Error> {
    Ok(auth.login_carrying(&username, &AT_LOGIN).await?.to_string())
}

async fn login_discarding_cart(auth: Auth, username: String) -> Result<String, Error> {
    let rules = [CarryOver::discard(&CART)];
    Ok(auth.login_carrying(&username, &rules).await?.to_string())
}

async fn guest_exists(g: GuestSlates) -> Result<String, Error> {
    Ok(g.exists().await?.to_string())
}

async fn login_plain(auth: Auth, username: String) -> Result<(), Error> {
    auth.login(&username).await
}

async fn logout(auth: Auth) -> Result<(), Error> {
    auth.logout().await
}

async fn me(user: CurrentUser) -> String {
    user.username().to_owned()
}

async fn flash(s: VisitorSlates, message: String) -> Result<(), Error> {
    s.flash(&message).await
}

async fn flashes(s: VisitorSlates) -> Result<String, Error> {
    Ok(s.take_flashes().await?.join("|"))
}

async fn forget(g: GuestSlates) -> Result<(), Error> {
    g.delete_all().await
}

/// The app: `/hits`, `/cart` and `/flash` are the user's when logged in, the visitor's
/// otherwise; `/guest/hits` and `/notes` are always the visitor's.
pub fn app(engine: &Engine) -> Router {
    Router::new()
        .route("/hits", get(hits).post(hit))
        .route("/cart", get(cart).post(add_to_cart))
        .route("/guest/hits", get(guest_hits))
        .route("/guest/expires", get(guest_expires))
        .route("/notes", get(notes).post(write_notes))
        .route("/login", post(login))
        .route("/login-plain", post(login_plain))
        .route("/login-discarding-cart", post(login_discarding_cart))
        .route("/guest/exists", get(guest_exists))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/flash", get(flashes).post(flash))
        .route("/forget", post(forget))
        .route("/static", get(|| async { "static" }))
        .layer(engine.layer())
}

/// A browser: keeps the auth cookie and the guest cookie apart, like a cookie jar.
#[derive(Clone)]
pub struct Browser {
    pub app: Router,
    pub auth: Option<String>,
    pub guest: Option<String>,
}

impl Browser {
    pub fn new(app: impl super::harness::IntoApp) -> Self {
        Browser {
            app: app.into_app(),
            auth: None,
            guest: None,
        }
    }

    /// Sends a request with the cookies held, then applies the `Set-Cookie`s.
    pub async fn send(&mut self, method: &str, path: &str, body: &str) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send_request(req).await
    }

    /// Sends `req` with the cookies held, then applies the `Set-Cookie`s.
    pub async fn send_request(&mut self, mut req: Request<Body>) -> Reply {
        let mut pairs = Vec::new();
        if let Some(v) = &self.auth {
            pairs.push(format!("{AUTH}={v}"));
        }
        if let Some(v) = &self.guest {
            pairs.push(format!("{GUEST}={v}"));
        }
        if !pairs.is_empty() {
            req.headers_mut()
                .insert("cookie", pairs.join("; ").parse().unwrap());
        }
        let reply = read(self.app.clone().oneshot(req).await.unwrap()).await;
        for sc in reply.set_cookies() {
            let c = cookie::Cookie::parse(sc).unwrap();
            let removed = c.max_age() == Some(time::Duration::ZERO) || c.value().is_empty();
            let value = (!removed).then(|| c.value().to_owned());
            match c.name() {
                AUTH => self.auth = value,
                GUEST => self.guest = value,
                other => panic!("unexpected cookie {other}"),
            }
        }
        reply
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, "").await
    }

    pub async fn post(&mut self, path: &str, body: &str) -> Reply {
        self.send("POST", path, body).await
    }
}

/// The `Set-Cookie` of `reply` for cookie `name`, if any.
pub fn set_cookie_of(reply: &Reply, name: &str) -> Option<String> {
    reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
}
