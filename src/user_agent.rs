//! The device label: a short description of a browser ("Firefox on Linux") from its
//! `User-Agent` header, by the `woothee` parser.

/// Longest label kept, in characters.
const MAX_LABEL: usize = 60;

/// A short label for a `User-Agent` header: "Firefox on Linux", "Chrome on Android",
/// "Safari on iPhone", the browser or the system alone when only one is known, and
/// "Unknown device" when neither is (no header, an empty one, a script).
///
/// The label is built from the names woothee recognises, never from the header's free text;
/// it is at most 60 characters.
pub(crate) fn device_label(user_agent: Option<&str>) -> String {
    let parsed = user_agent.and_then(|ua| woothee::parser::Parser::new().parse(ua));
    let known =
        |s: &str| (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_owned());
    let (browser, os) = match &parsed {
        Some(r) => (known(r.name), known(r.os)),
        None => (None, None),
    };
    let label = match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b,
        (None, Some(o)) => format!("Unknown browser on {o}"),
        (None, None) => "Unknown device".to_owned(),
    };
    label
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::device_label;

    #[test]
    fn common_browsers() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(device_label(Some(firefox)), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
        assert_eq!(device_label(Some(chrome)), "Chrome on Windows 10");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
        assert_eq!(device_label(Some(iphone)), "Safari on iPhone");
        let headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36";
        assert!(device_label(Some(headless)).ends_with("on Linux"));
    }

    #[test]
    fn unknown_agents() {
        assert_eq!(device_label(None), "Unknown device");
        assert_eq!(device_label(Some("")), "Unknown device");
        assert_eq!(device_label(Some("\u{1b}[31m<script>")), "Unknown device");
        assert!(device_label(Some(&"x".repeat(10_000))).len() <= 60);
    }
}
