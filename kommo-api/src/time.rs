//! Kommo timestamps: Unix seconds, numeric strings, `"YYYY-MM-DD HH:MM:SS"` (webhooks), RFC 3339 (dates written
//! by the PHP library).

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Parses a Kommo time to Unix seconds: `"1539782664"`, `"2020-09-28 00:26:51"`, `"2020-09-28"` or RFC 3339.
///
/// Formatted values carry no zone and Kommo does not document one (it is most likely the account's timezone);
/// they are read as UTC. Use the Unix fields (`created_at`, `updated_at`) where both are sent.
#[must_use]
pub fn parse_kommo_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(dt.and_utc().timestamp());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|dt| dt.and_utc().timestamp());
    }
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
        && f.abs() < 1e15
    {
        #[allow(clippy::cast_possible_truncation)]
        return Some(f.trunc() as i64);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_kommo_time;

    #[test]
    fn parses_every_form() {
        assert_eq!(parse_kommo_time("1539782664"), Some(1_539_782_664));
        assert_eq!(parse_kommo_time("2020-09-28 00:26:51"), Some(1_601_252_811));
        assert_eq!(parse_kommo_time("2021-09-06T10:00:00+03:00"), Some(1_630_911_600));
        assert_eq!(parse_kommo_time("2020-09-28"), Some(1_601_251_200));
        assert_eq!(parse_kommo_time(""), None);
        assert_eq!(parse_kommo_time("yesterday"), None);
    }
}
