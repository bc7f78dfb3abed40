use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A point in ledger time: milliseconds since the Unix epoch, UTC.
///
/// Kept as a plain integer so the encoding is compact and exact; convert with
/// [`Timestamp::to_datetime`] for display.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
#[schemars(description = "UTC milliseconds since the Unix epoch")]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The timestamp of a chrono UTC time, truncated to the millisecond.
    pub fn from_datetime(at: DateTime<Utc>) -> Timestamp {
        Timestamp(at.timestamp_millis())
    }

    /// This timestamp as a chrono UTC time; `None` when out of chrono's range.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::<Utc>::from_timestamp_millis(self.0)
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// This time plus `duration_ms`, saturating instead of overflowing.
    pub fn plus_ms(self, duration_ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_ms))
    }

    /// Parses RFC 3339 (`2026-01-01T00:00:00Z`) or integer milliseconds.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        if let Ok(ms) = text.parse::<i64>() {
            return Ok(Timestamp(ms));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|at| Timestamp::from_datetime(at.with_timezone(&Utc)))
            .map_err(|error| {
                format!("`{text}` is not an RFC 3339 time nor integer milliseconds: {error}")
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(at) => f.write_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => write!(f, "{}ms", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_millis_and_names_bad_input() {
        let at = Timestamp::parse("2026-01-01T00:00:01.500Z").unwrap();
        assert_eq!(at, Timestamp(1_767_225_601_500));
        assert_eq!(Timestamp::parse("1767225601500").unwrap(), at);
        assert_eq!(at.to_string(), "2026-01-01T00:00:01.500Z");
        let error = Timestamp::parse("yesterday").unwrap_err();
        assert!(error.contains("`yesterday`"), "{error}");
    }
}
