//! What went wrong, for people, and how form posts are answered: a [`Problem`] travels from
//! a failed form post to the page that shows it (post-redirect-get, [`see_other`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::limits::{MAX_BODY_BYTES, MAX_PARTS, MAX_SET_NAME, MAX_VALUES};

/// A problem with a form. A form post that fails is answered with a 303 to the GET page of
/// the form with `?error=<code>` ([`redirect_to`](Self::redirect_to)), never with an error
/// page: Back and reload then work as on any page, with no "Confirm Form Resubmission".
/// The code names a fixed message, so a crafted link can show nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Login: the username breaks the naming rules.
    BadUsername,
    /// Upload: no set name.
    NoSetName,
    /// Upload: the set name is too long.
    SetNameTooLong,
    /// Upload: the set name holds characters that are not allowed.
    BadSetName,
    /// Upload: no value at all.
    NoIds,
    /// Upload: more values than an upload may hold.
    TooManyValues,
    /// Upload: more text boxes or files than the form has.
    TooManyParts,
    /// Upload: past the body limit.
    TooLarge,
    /// Upload: the file is not UTF-8 text.
    NotText,
    /// Upload: not a multipart form, or a malformed one.
    BadUpload,
    /// Review: the upload changed since the page showed it.
    Changed,
    /// Review: neither "discard" nor "keep".
    BadChoice,
    /// Review: the saved sets outgrew a slate.
    TooMuchData,
    /// Profile: not a timezone of the tz database.
    BadTimezone,
    /// Devices: the device is not one of the user's (or has ended already).
    NoDevice,
    /// A compare-and-swap gave up: retry.
    Retry,
    /// The store failed (logged): try again later.
    Unavailable,
}

impl Problem {
    const ALL: [Problem; 17] = [
        Problem::BadUsername,
        Problem::NoSetName,
        Problem::SetNameTooLong,
        Problem::BadSetName,
        Problem::NoIds,
        Problem::TooManyValues,
        Problem::TooManyParts,
        Problem::TooLarge,
        Problem::NotText,
        Problem::BadUpload,
        Problem::Changed,
        Problem::BadChoice,
        Problem::TooMuchData,
        Problem::BadTimezone,
        Problem::NoDevice,
        Problem::Retry,
        Problem::Unavailable,
    ];

    /// The code in the URL.
    pub fn code(self) -> &'static str {
        match self {
            Problem::BadUsername => "bad-username",
            Problem::NoSetName => "no-set-name",
            Problem::SetNameTooLong => "set-name-too-long",
            Problem::BadSetName => "bad-set-name",
            Problem::NoIds => "no-ids",
            Problem::TooManyValues => "too-many-values",
            Problem::TooManyParts => "too-many-parts",
            Problem::TooLarge => "too-large",
            Problem::NotText => "not-text",
            Problem::BadUpload => "bad-upload",
            Problem::Changed => "changed",
            Problem::BadChoice => "bad-choice",
            Problem::TooMuchData => "too-much-data",
            Problem::BadTimezone => "bad-timezone",
            Problem::NoDevice => "no-device",
            Problem::Retry => "retry",
            Problem::Unavailable => "unavailable",
        }
    }

    /// The problem of a code; `None` for an unknown code (the page then shows none).
    pub fn from_code(code: &str) -> Option<Problem> {
        Problem::ALL.into_iter().find(|p| p.code() == code)
    }

    /// A short title.
    pub fn title(self) -> &'static str {
        match self {
            Problem::BadUsername => "Invalid username",
            Problem::NoSetName | Problem::SetNameTooLong | Problem::BadSetName => "Bad set name",
            Problem::NoIds => "No ids",
            Problem::TooManyValues => "Too many values",
            Problem::TooManyParts => "Too many parts",
            Problem::TooLarge => "Upload too large",
            Problem::NotText => "Not a text file",
            Problem::BadUpload => "Bad upload",
            Problem::Changed => "The upload changed",
            Problem::BadChoice => "Bad choice",
            Problem::TooMuchData => "Too much data",
            Problem::BadTimezone => "Bad timezone",
            Problem::NoDevice => "No such device",
            Problem::Retry => "Please retry",
            Problem::Unavailable => "Something went wrong",
        }
    }

    /// What to do about it.
    pub fn message(self) -> String {
        match self {
            Problem::BadUsername => "That username cannot be used: 1 to 120 bytes, no `$`, not starting with `_`, `.` or `system.`.".into(),
            Problem::NoSetName => "Give the set a name.".into(),
            Problem::SetNameTooLong => {
                format!("The set name is too long: at most {MAX_SET_NAME} characters.")
            }
            Problem::BadSetName => "A set name may hold letters, digits, spaces, '-' and '_', and starts with a letter or digit.".into(),
            Problem::NoIds => "Give at least one id, in the text box or in a CSV file.".into(),
            Problem::TooManyValues => {
                format!("An upload holds at most {MAX_VALUES} values; split it into several sets.")
            }
            Problem::TooManyParts => {
                format!("An upload has one text box and at most {MAX_PARTS} files.")
            }
            Problem::TooLarge => format!(
                "An upload is at most {} MiB. Split the file into several sets.",
                MAX_BODY_BYTES / (1024 * 1024)
            ),
            Problem::NotText => "The file is not UTF-8 text. Upload a CSV file.".into(),
            Problem::BadUpload => "The upload could not be read. Send it with the form below.".into(),
            Problem::Changed => "The upload changed since you reviewed it (another tab?). Review it again.".into(),
            Problem::BadChoice => "Choose “Discard conflicts” or “Keep all”.".into(),
            Problem::TooMuchData => "Your saved sets have grown past the 16 MiB a slate may hold.".into(),
            Problem::BadTimezone => "Unknown timezone. Use a name of the tz database, such as Europe/Paris, America/New_York or UTC.".into(),
            Problem::NoDevice => "That device is not logged in any more (or it was never yours).".into(),
            Problem::Retry => "The data changed while saving; please retry.".into(),
            Problem::Unavailable => "Please try again in a moment.".into(),
        }
    }

    /// The answer to a form post that failed: 303 to the GET `page` (a path, maybe with a
    /// query), which shows the problem.
    pub fn redirect_to(self, page: &str) -> Response {
        let separator = if page.contains('?') { '&' } else { '?' };
        see_other(&format!("{page}{separator}error={}", self.code()))
    }

    /// The status of a page that could not be shown for this problem.
    pub fn status(self) -> StatusCode {
        match self {
            Problem::TooMuchData => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::Retry | Problem::Changed => StatusCode::CONFLICT,
            Problem::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<slates::Error> for Problem {
    fn from(e: slates::Error) -> Self {
        use slates::{Error, NameKind};
        match &e {
            Error::InvalidName {
                kind: NameKind::Username,
                ..
            } => Problem::BadUsername,
            Error::DocumentTooLarge { .. } => Problem::TooMuchData,
            Error::Conflict { .. } => Problem::Retry,
            _ => {
                // The cause stays in the log; the page says no more than "try again".
                tracing::error!(error = %e, "upload_workflow request failed");
                Problem::Unavailable
            }
        }
    }
}

/// A 303 See Other to `location`: the answer to every form post that worked, and (through
/// [`Problem::redirect_to`]) to every one that did not.
pub fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// Percent-encodes `value` for a URL query: everything but RFC 3986's unreserved
/// characters and `/`.
pub fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
