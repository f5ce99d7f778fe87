//! The user's timezone: checked against the tz database when the profile sets it, and used
//! by the pages to show times.

use chrono_tz::Tz;
use time::OffsetDateTime;

use super::problem::Problem;

/// Checks a timezone name of the tz database (`Europe/Paris`, `America/New_York`, `UTC`)
/// and returns its canonical spelling.
pub fn check_timezone(name: &str) -> Result<&'static str, Problem> {
    name.trim()
        .parse::<Tz>()
        .map(|tz| tz.name())
        .map_err(|_| Problem::BadTimezone)
}

/// How pages show times: in the profile's timezone, or in UTC when the profile has none
/// (or one the tz database does not know).
#[derive(Debug, Clone, Copy)]
pub struct LocalTime {
    tz: Tz,
}

impl LocalTime {
    /// Times in `timezone` (a tz database name), UTC if `None` or unknown.
    pub fn new(timezone: Option<&str>) -> Self {
        let tz = timezone.and_then(|name| name.parse().ok());
        LocalTime {
            tz: tz.unwrap_or(Tz::UTC),
        }
    }

    /// The timezone's name, such as `Europe/Paris`.
    pub fn zone(&self) -> &'static str {
        self.tz.name()
    }

    /// The time of day with the zone's abbreviation: `14:03 CEST`.
    pub fn time(&self, t: OffsetDateTime) -> String {
        self.format(t, "%H:%M %Z")
    }

    /// The date and time with the zone's abbreviation: `2024-05-01 14:03 CEST`.
    pub fn date_time(&self, t: OffsetDateTime) -> String {
        self.format(t, "%Y-%m-%d %H:%M %Z")
    }

    fn format(&self, t: OffsetDateTime, format: &str) -> String {
        match chrono::DateTime::from_timestamp(t.unix_timestamp(), 0) {
            Some(utc) => utc.with_timezone(&self.tz).format(format).to_string(),
            None => t.to_string(), // outside chrono's range: never for a real clock
        }
    }
}
