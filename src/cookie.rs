//! Reading the token cookie from request headers and writing `Set-Cookie` values.

use cookie::{Cookie, Expiration};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use time::{Duration, OffsetDateTime};

use crate::token::Token;

/// The token cookie's attributes: what the cookie code needs of the configuration, settled
/// by [`EngineBuilder::build`](crate::EngineBuilder::build) and readable through
/// [`Config::cookie`](crate::Config::cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CookieSettings {
    /// Cookie name: `__Host-slates` by default when the cookie is `Secure`, host-only and on
    /// `Path=/` (so that a sibling subdomain cannot plant one), else `slates`.
    pub name: String,
    /// Cookie `Domain`, if any (not allowed with the `__Host-` prefix).
    pub domain: Option<String>,
    /// Cookie `Path` (default `/`).
    pub path: String,
    /// Whether the cookie is `Secure` (default `true`).
    pub secure: bool,
    /// Cookie `SameSite` (default `Lax`).
    pub same_site: cookie::SameSite,
}

/// What the `Cookie` headers say about the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieToken {
    /// No cookie of that name.
    Absent,
    /// A cookie of that name whose value is not a well-formed token, or several such
    /// cookies with different values (ambiguous: possibly planted by a sibling subdomain).
    /// The request is anonymous and no store is asked.
    Malformed,
    /// A well-formed token, not yet checked against the store.
    Present(Token),
}

/// A cookie change (of the token cookie or the guest cookie), applied by the service on
/// the way out.
pub(crate) enum CookieChange {
    /// Send this token (login, rotation, renewal, a guest issued) with this max age.
    Set(Token, time::Duration),
    /// Make the browser drop the cookie.
    Remove,
    /// Send nothing, not even the resolution's own change (a renewal).
    Keep,
}

impl CookieChange {
    /// The `Set-Cookie` value of this change for the cookie `settings` (`None`: send none).
    pub(crate) fn header(&self, settings: &CookieSettings) -> Option<HeaderValue> {
        match self {
            CookieChange::Set(token, max_age) => Some(set_cookie(settings, token, *max_age)),
            CookieChange::Remove => Some(removal_cookie(settings)),
            CookieChange::Keep => None,
        }
    }
}

/// Finds the token cookie `name` in every `Cookie` header of `headers`.
///
/// Deterministic on any input: headers that are not UTF-8 are read lossily (a replaced byte
/// makes a token malformed, other cookies are unaffected); pairs without `=` are skipped;
/// the same token sent twice counts once; two different values are [`CookieToken::Malformed`].
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use slates::{token_from_headers, CookieToken};
/// let mut h = HeaderMap::new();
/// h.insert("cookie", HeaderValue::from_static("theme=dark; slates=nope"));
/// assert_eq!(token_from_headers(&h, "slates"), CookieToken::Malformed);
/// assert_eq!(token_from_headers(&h, "other"), CookieToken::Absent);
/// ```
pub fn token_from_headers(headers: &HeaderMap, name: &str) -> CookieToken {
    match is_cookie_name(name) {
        true => read_token::<true>(headers, name.as_bytes()),
        false => read_token::<false>(headers, name.as_bytes()),
    }
}

/// [`token_from_headers`] of a configured cookie name: one that passed
/// [`is_cookie_name`] when [`EngineBuilder::build`](crate::EngineBuilder::build) checked it,
/// not looked at again.
pub(crate) fn configured_token(headers: &HeaderMap, name: &str) -> CookieToken {
    read_token::<true>(headers, name.as_bytes())
}

/// Whether `name` is a cookie name: a non-empty RFC 6265 token (no `=`, no whitespace, no
/// separator).
pub(crate) fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// [`token_from_headers`]; `PLAIN`: `name` is a cookie name ([`is_cookie_name`]).
fn read_token<const PLAIN: bool>(headers: &HeaderMap, name: &[u8]) -> CookieToken {
    let mut found: Option<&[u8]> = None;
    let mut lossy_values = Vec::new();
    for header in headers.get_all(COOKIE) {
        // A header that is UTF-8 (ASCII, nearly always: the cheaper test, made first) is
        // read in place; any other is read lossily, below.
        let bytes = header.as_bytes();
        if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
            if !all_agree(&mut found, values_named::<PLAIN>(bytes, name)) {
                return CookieToken::Malformed;
            }
        } else {
            lossy_values.push(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    for s in &lossy_values {
        if !all_agree(&mut found, values_named::<PLAIN>(s.as_bytes(), name)) {
            return CookieToken::Malformed;
        }
    }
    match found {
        None => CookieToken::Absent,
        Some(value) => Token::parse_bytes(value)
            .map(CookieToken::Present)
            .unwrap_or(CookieToken::Malformed),
    }
}

/// Records `values` in `found` (the first value seen), and says whether every one equals
/// it: two different values of the token cookie are ambiguous.
fn all_agree<'a>(found: &mut Option<&'a [u8]>, values: impl Iterator<Item = &'a [u8]>) -> bool {
    for value in values {
        match *found {
            None => *found = Some(value),
            Some(prev) if prev == value => {}
            Some(_) => return false,
        }
    }
    true
}

/// The values of the pairs named `name` in one `Cookie` header (UTF-8), split as the cookie
/// crate's `Cookie::split_parse` splits them (pairs without `=` and pairs with an empty name
/// are skipped; names and values are trimmed), without building a `Cookie` for every pair.
/// `;` and `=` are ASCII, so splitting at their bytes never cuts a character: every piece
/// is UTF-8 too. `PLAIN`: `name` is a cookie name ([`is_cookie_name`]: no `=`, no
/// whitespace), which allows the quick match of a pair below.
fn values_named<'a, const PLAIN: bool>(
    header: &'a [u8],
    name: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = header;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
            let pair = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or_default();
            // The usual pair, a cookie name then `=` after spaces or tabs, needs no search
            // for `=`: that `=` is the first, and the name is what is trimmed before it.
            let lead = pair
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            let quick = match PLAIN {
                true => pair[lead..].strip_prefix(name),
                false => None,
            };
            let value = match quick {
                Some([b'=', value @ ..]) => value,
                _ => {
                    let Some(eq) = memchr::memchr(b'=', pair) else {
                        continue;
                    };
                    if trim(&pair[..eq]) != name {
                        continue;
                    }
                    &pair[eq + 1..]
                }
            };
            let v = trim(value);
            // RFC 6265 allows a value in double quotes.
            return Some(
                v.strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(v),
            );
        }
        None
    })
}

/// `str::trim` of a UTF-8 piece, with no work when both ends are ASCII and not whitespace
/// (nearly always; `is_ascii_whitespace` leaves out the vertical tab that `str::trim`
/// removes). A piece that is not UTF-8 (none is: see [`values_named`]) is kept whole.
fn trim(s: &[u8]) -> &[u8] {
    let kept =
        |b: Option<&u8>| b.is_some_and(|b| b.is_ascii() && !b.is_ascii_whitespace() && *b != 0x0b);
    if kept(s.first()) && kept(s.last()) {
        s
    } else {
        std::str::from_utf8(s).map_or(s, |s| s.trim().as_bytes())
    }
}

fn base<'c>(settings: &CookieSettings, value: String) -> Cookie<'c> {
    let mut c = Cookie::new(settings.name.clone(), value);
    c.set_http_only(true);
    c.set_secure(settings.secure);
    c.set_same_site(settings.same_site);
    c.set_path(settings.path.clone());
    if let Some(domain) = &settings.domain {
        c.set_domain(domain.clone());
    }
    c
}

/// The `Set-Cookie` value that hands `token` to the browser for `max_age`.
pub(crate) fn set_cookie(
    settings: &CookieSettings,
    token: &Token,
    max_age: Duration,
) -> HeaderValue {
    let mut c = base(settings, token.encode());
    c.set_max_age(max_age.max(Duration::ZERO));
    header_value(&c)
}

/// The `Set-Cookie` value that makes the browser drop the cookie. It is the same bytes
/// every time, whatever the reason (logout, unknown, expired or malformed token), so the
/// response says nothing about which it was.
pub(crate) fn removal_cookie(settings: &CookieSettings) -> HeaderValue {
    let mut c = base(settings, String::new());
    c.set_max_age(Duration::ZERO);
    c.set_expires(Expiration::DateTime(OffsetDateTime::UNIX_EPOCH));
    header_value(&c)
}

fn header_value(c: &Cookie<'_>) -> HeaderValue {
    // `build` checked with `check_headers` that these settings make valid headers, and the
    // value is base64url or empty, so the fallback is never taken.
    try_header_value(c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn try_header_value(c: &Cookie<'_>) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    HeaderValue::try_from(c.to_string())
}

/// Whether the configured cookie makes valid `Set-Cookie` headers, both the one that hands
/// out a token and the one that removes it. Called by `build`.
pub(crate) fn check_headers(
    settings: &CookieSettings,
) -> Result<(), http::header::InvalidHeaderValue> {
    let token = base(settings, "A".repeat(crate::token::TOKEN_LEN));
    try_header_value(&token)?;
    let mut removal = base(settings, String::new());
    removal.set_expires(Expiration::DateTime(OffsetDateTime::UNIX_EPOCH));
    try_header_value(&removal).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    proptest::proptest! {
        /// The splitter finds the same values as the cookie crate's parser, on headers
        /// built from names, separators, spaces and quotes.
        #[test]
        fn values_named_agrees_with_the_cookie_crate(header in "([ a-c=;\"\t\x0b\x0c\u{a0}\u{2003}]{0,4}(slates|a|b)?[ =]{0,2}[a-z\"]{0,3}){0,6}") {
            let reference: Vec<&str> = Cookie::split_parse(header.as_str())
                .filter_map(|pair| {
                    let c = pair.ok()?;
                    (c.name_raw()? == "slates").then(|| {
                        let v = c.value_raw().unwrap_or("");
                        v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
                    })
                })
                .collect();
            let ours: Vec<&str> = values_named::<true>(header.as_bytes(), b"slates")
                .map(|v| std::str::from_utf8(v).unwrap())
                .collect();
            proptest::prop_assert_eq!(ours, reference);
        }

        /// The same for names that are not cookie names (with `=` or spaces), with the quick
        /// match on or off as the public function decides: found as the cookie crate finds
        /// them (never, with `=`).
        #[test]
        fn odd_names_agree_with_the_cookie_crate(
            name in proptest::prop_oneof!["a=b", "a ", " a", "a b", "a", "=a"],
            header in "([ ;]{0,2}(a|b| |=){0,4}[ =]{0,2}[a-c]{0,2}){0,5}",
        ) {
            let mut reference = Vec::new();
            for pair in Cookie::split_parse(header.as_str()).flatten() {
                if pair.name_raw() == Some(name.as_str()) {
                    let v = pair.value_raw().unwrap_or("");
                    reference.push(v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v));
                }
            }
            let values: Vec<&[u8]> = match is_cookie_name(&name) {
                true => values_named::<true>(header.as_bytes(), name.as_bytes()).collect(),
                false => values_named::<false>(header.as_bytes(), name.as_bytes()).collect(),
            };
            let ours: Vec<&str> = values.into_iter().map(|v| std::str::from_utf8(v).unwrap()).collect();
            proptest::prop_assert_eq!(ours, reference);
        }

        /// The quick trim is `str::trim`, ASCII and Unicode whitespace at either end.
        #[test]
        fn trim_is_str_trim(s in "[ a\t\n\r\x0b\x0c\x1f\u{85}\u{a0}\u{2003}\u{e9}]{0,6}") {
            proptest::prop_assert_eq!(trim(s.as_bytes()), s.trim().as_bytes());
        }
    }

    #[test]
    fn decisions() {
        let t = Token::generate().unwrap();
        let good = format!("slates={}", t.encode());
        let other = format!("slates={}", Token::generate().unwrap().encode());
        let present = CookieToken::Present(t.clone());
        assert_eq!(
            token_from_headers(&headers(&[]), "slates"),
            CookieToken::Absent
        );
        assert_eq!(
            token_from_headers(&headers(&[good.as_bytes()]), "slates"),
            present
        );
        let quoted = format!("slates=\"{}\"", t.encode());
        assert_eq!(
            token_from_headers(&headers(&[quoted.as_bytes()]), "slates"),
            present
        );
        let spaced = format!("a=1;  {good} ; b=2");
        assert_eq!(
            token_from_headers(&headers(&[spaced.as_bytes()]), "slates"),
            present
        );
        // Same value twice is fine; two values are ambiguous.
        assert_eq!(
            token_from_headers(&headers(&[good.as_bytes(), good.as_bytes()]), "slates"),
            present
        );
        let two = format!("{good}; {other}");
        assert_eq!(
            token_from_headers(&headers(&[two.as_bytes()]), "slates"),
            CookieToken::Malformed
        );
        assert_eq!(
            token_from_headers(&headers(&[b"slates="]), "slates"),
            CookieToken::Malformed
        );
        assert_eq!(
            token_from_headers(&headers(&[b"slates=\xff\xfe"]), "slates"),
            CookieToken::Malformed
        );
        let mut bytes = good.clone().into_bytes();
        bytes.extend_from_slice(b"; junk=\xff");
        assert_eq!(token_from_headers(&headers(&[&bytes]), "slates"), present);
        // Prefix matches do not count.
        assert_eq!(
            token_from_headers(&headers(&[b"xslates=1; slatesx=2"]), "slates"),
            CookieToken::Absent
        );
    }
}
