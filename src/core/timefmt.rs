//! Parsing and formatting the time strings the systems speak.

use jiff::{Timestamp, civil::DateTime, fmt::strtime, tz::TimeZone};
use serde::{Deserialize, Serialize};

use crate::clock::vn_tz;

/// How a source writes its times (descriptor `[dates] format`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateFormat {
    /// RFC 3339 / ISO 8601 with an offset or `Z` (fractional seconds allowed).
    Rfc3339,
    /// Milliseconds since the Unix epoch (a number or a numeric string).
    EpochMillis,
    /// Seconds since the Unix epoch.
    EpochSeconds,
    /// A `strftime` pattern (e.g. `%Y-%m-%d %H:%M:%S`); local time in the descriptor's time zone
    /// unless the pattern carries an offset.
    #[serde(untagged)]
    Pattern(String),
}

/// Parse one time value. `value` is the JSON value at the mapped path.
pub fn parse_time(value: &serde_json::Value, format: &DateFormat, tz: &TimeZone) -> Result<Timestamp, String> {
    match format {
        DateFormat::EpochMillis | DateFormat::EpochSeconds => {
            let n = match value {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| format!("expected an epoch number, found {value}"))?;
            let r = if *format == DateFormat::EpochMillis {
                Timestamp::from_millisecond(n)
            } else {
                Timestamp::from_second(n)
            };
            r.map_err(|e| format!("epoch value {n} out of range: {e}"))
        }
        DateFormat::Rfc3339 => {
            let s = value.as_str().ok_or_else(|| format!("expected a time string, found {value}"))?;
            s.trim().parse::<Timestamp>().map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
        }
        DateFormat::Pattern(p) => {
            let s = value.as_str().ok_or_else(|| format!("expected a time string, found {value}"))?;
            let tm = strtime::parse(p, s.trim()).map_err(|e| format!("{s:?} does not match {p:?}: {e}"))?;
            if tm.offset().is_some() {
                return tm.to_timestamp().map_err(|e| format!("{s:?}: {e}"));
            }
            let dt: DateTime = tm.to_datetime().map_err(|e| format!("{s:?} is not a valid date and time: {e}"))?;
            tz.to_ambiguous_timestamp(dt).compatible().map_err(|e| format!("{s:?} is not a valid local time: {e}"))
        }
    }
}

/// Format a time the way a source expects it in a query parameter.
pub fn format_time(t: Timestamp, format: &DateFormat, tz: &TimeZone) -> String {
    match format {
        DateFormat::Rfc3339 => t.to_string(),
        DateFormat::EpochMillis => t.as_millisecond().to_string(),
        DateFormat::EpochSeconds => t.as_second().to_string(),
        DateFormat::Pattern(p) => t.to_zoned_datetime(tz.clone()).strftime(p).to_string(),
    }
}

/// The portal's time format: `yyyyMMddHHmmss`, local time Asia/Ho_Chi_Minh.
pub fn portal_time(t: Timestamp) -> String {
    t.to_zoned_datetime(vn_tz()).strftime("%Y%m%d%H%M%S").to_string()
}

/// Parse the portal's `yyyyMMddHHmmss` back (read-back and tests).
pub fn parse_portal_time(s: &str) -> Result<Timestamp, String> {
    parse_time(&serde_json::Value::String(s.to_string()), &DateFormat::Pattern("%Y%m%d%H%M%S".into()), &vn_tz())
}

/// A time for people: local, to the minute's second.
pub fn display_time(t: Timestamp) -> String {
    t.to_zoned_datetime(vn_tz()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_each_dialect() {
        let tz = vn_tz();
        let want: Timestamp = "2026-03-09T01:15:00Z".parse().unwrap();
        assert_eq!(parse_time(&json!("2026-03-09T01:15:00.000Z"), &DateFormat::Rfc3339, &tz).unwrap(), want);
        let local = DateFormat::Pattern("%Y-%m-%d %H:%M:%S".into());
        assert_eq!(parse_time(&json!("2026-03-09 08:15:00"), &local, &tz).unwrap(), want);
        assert_eq!(parse_time(&json!(want.as_millisecond()), &DateFormat::EpochMillis, &tz).unwrap(), want);
        assert_eq!(parse_portal_time("20260309081500").unwrap(), want);
        assert_eq!(portal_time(want), "20260309081500");
        assert_eq!(format_time(want, &local, &tz), "2026-03-09 08:15:00");
    }

    #[test]
    fn rejects_impossible_dates_with_a_reason() {
        let tz = vn_tz();
        let local = DateFormat::Pattern("%Y-%m-%d %H:%M:%S".into());
        let err = parse_time(&json!("2026-02-31 10:00:00"), &local, &tz).unwrap_err();
        assert!(err.contains("2026-02-31"), "{err}");
        assert!(parse_time(&json!(12), &DateFormat::Rfc3339, &tz).is_err());
        assert!(parse_time(&json!("soon"), &DateFormat::Rfc3339, &tz).is_err());
    }
}
