//! Sending an anonymous page visit to the login page, and checking the `next` parameter
//! it comes back with.

use http::header::ACCEPT;
use http::request::Parts;
use http::Method;

use crate::rejection::{LoginRedirect, LoginRequired, NotLoggedIn, WhenLoggedOut};

/// `next` if it is a path on this site that is safe to redirect to after login, else
/// `None`.
///
/// Safe means: it starts with one `/` (not `//` or `/\`, which browsers read as another
/// host), holds no backslash, no control character and no whitespace, and is at most 2048
/// bytes. A login handler redirects to `safe_next(next).unwrap_or("/")`, so that a crafted
/// link (`/login?next=https://evil.example`) cannot send a user elsewhere (an open
/// redirect).
///
/// ```
/// use slates::safe_next;
/// assert_eq!(safe_next("/import/review?step=2"), Some("/import/review?step=2"));
/// assert_eq!(safe_next("https://evil.example/"), None);
/// assert_eq!(safe_next("//evil.example/"), None);
/// assert_eq!(safe_next("/\\evil.example/"), None);
/// assert_eq!(safe_next("/a\r\nSet-Cookie: x=1"), None);
/// ```
pub fn safe_next(next: &str) -> Option<&str> {
    let bytes = next.as_bytes();
    let ok = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && next.len() <= 2048
        && bytes.iter().all(|&b| b > b' ' && b < 0x7f && b != b'\\');
    ok.then_some(next)
}

/// The rejection of an anonymous request under `policy`.
pub(crate) fn login_required(policy: &WhenLoggedOut, parts: &Parts) -> LoginRequired {
    match policy {
        WhenLoggedOut::Redirect { login } if asks_for_html(parts) => {
            let location = if parts.method == Method::GET || parts.method == Method::HEAD {
                let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let separator = if login.contains('?') { '&' } else { '?' };
                format!("{login}{separator}next={}", percent_encode(next))
            } else {
                // A form post: after login, a GET of its URL could not redo it.
                login.clone()
            };
            LoginRequired::Redirect(LoginRedirect::new(location))
        }
        _ => LoginRequired::NotLoggedIn(NotLoggedIn),
    }
}

/// Whether the request asks for HTML: a browser visiting a page or posting a form.
fn asks_for_html(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("text/html")))
}

/// Percent-encodes everything but RFC 3986's unreserved characters and `/`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, uri: &str, accept: Option<&str>) -> Parts {
        let mut req = http::Request::builder().method(method).uri(uri);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn pages_are_redirected_apis_are_not() {
        let policy = WhenLoggedOut::redirect("/login");
        let html = "text/html,application/xhtml+xml";
        let page = parts(Method::GET, "/import/review?x=1&y=2", Some(html));
        match login_required(&policy, &page) {
            LoginRequired::Redirect(r) => {
                assert_eq!(r.location(), "/login?next=/import/review%3Fx%3D1%26y%3D2")
            }
            other => panic!("{other:?}"),
        }
        let api = parts(Method::GET, "/api/me", Some("application/json"));
        assert_eq!(
            login_required(&policy, &api),
            LoginRequired::NotLoggedIn(NotLoggedIn)
        );
        let post = parts(Method::POST, "/import", Some(html));
        match login_required(&policy, &post) {
            LoginRequired::Redirect(r) => assert_eq!(r.location(), "/login"),
            other => panic!("{other:?}"),
        }
        let api_post = parts(Method::POST, "/import", None);
        assert_eq!(login_required(&policy, &api_post).status(), 401);
        let page = parts(Method::GET, "/", Some(html));
        let with_query = WhenLoggedOut::redirect("/account?tab=login");
        assert_eq!(
            login_required(&with_query, &page).body_text(),
            "Not logged in. Log in at /account?tab=login&next=/"
        );
        assert_eq!(
            login_required(&WhenLoggedOut::Unauthorized, &page).status(),
            401
        );
    }
}
