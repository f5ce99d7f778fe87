//! Driving a router through the real layer with `oneshot`, keeping cookies like a browser.

use axum::body::Body;
use axum::response::Response;
use axum::Router;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A minimal cookie-keeping client over `oneshot`: remembers the `slates` cookie from
/// `Set-Cookie` and sends it back.
#[derive(Clone)]
pub struct Client {
    pub app: Router,
    pub cookie_name: String,
    /// The cookie value the client will send (None: no cookie).
    pub cookie: Option<String>,
}

/// What a request returned, body read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Every `Set-Cookie` header value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

pub async fn read(res: Response) -> Reply {
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// What a test drives: a `Router` (with `Router::layer`), or an example's app, a router
/// inside the layer ([`slates::Engine::wrap`]), held as the fallback of an empty router
/// (which passes every request to it unchanged).
pub trait IntoApp {
    fn into_app(self) -> Router;
}

impl IntoApp for Router {
    fn into_app(self) -> Router {
        self
    }
}

impl IntoApp for slates::SlatesService<Router> {
    fn into_app(self) -> Router {
        Router::new().fallback_service(self)
    }
}

impl Client {
    pub fn new(app: impl IntoApp) -> Self {
        Client {
            app: app.into_app(),
            cookie_name: "slates".into(),
            cookie: None,
        }
    }

    /// Sends `req` with the current cookie, then applies any `Set-Cookie` for our name.
    pub async fn send(&mut self, mut req: Request<Body>) -> Reply {
        if let Some(c) = &self.cookie {
            req.headers_mut().append(
                "cookie",
                format!("{}={}", self.cookie_name, c).parse().unwrap(),
            );
        }
        let reply = read(self.app.clone().oneshot(req).await.unwrap()).await;
        for sc in reply.set_cookies() {
            let c = cookie::Cookie::parse(sc).unwrap();
            if c.name() == self.cookie_name {
                let removed = c.max_age() == Some(time::Duration::ZERO) || c.value().is_empty();
                self.cookie = if removed {
                    None
                } else {
                    Some(c.value().to_owned())
                };
            }
        }
        reply
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post(&mut self, path: &str) -> Reply {
        self.send(Request::post(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post_form(&mut self, path: &str, form: &str) -> Reply {
        self.send(
            Request::post(path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form.to_owned()))
                .unwrap(),
        )
        .await
    }
}
