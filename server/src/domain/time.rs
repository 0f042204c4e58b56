//! Time as the domain counts it: milliseconds since the Unix epoch.

use std::time::SystemTime;

/// Milliseconds since the Unix epoch.
pub type UnixMillis = u64;

pub fn now_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whole seconds from `now` until `at` (rounded up; 0 once past).
pub fn seconds_until(at: UnixMillis, now: UnixMillis) -> u64 {
    at.saturating_sub(now).div_ceil(1000)
}

/// RFC 3339 in UTC, as the API writes times.
pub fn rfc3339(at: UnixMillis) -> String {
    use time::{format_description::well_known::Rfc3339, OffsetDateTime};
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_and_seconds_round_up() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(seconds_until(2_001, 1_000), 2);
        assert_eq!(seconds_until(1_000, 2_000), 0);
    }
}
