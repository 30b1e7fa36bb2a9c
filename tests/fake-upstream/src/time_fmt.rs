//! Timestamps as each API writes them: GitHub `2024-05-01T10:00:00Z`, GitLab
//! `2024-05-01T10:00:00.000Z`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, whole seconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp(OffsetDateTime::now_utc().unix_timestamp())
    }

    /// Parses RFC 3339 (`2024-05-01T10:00:00Z`, with or without fractions or an offset).
    pub fn parse(s: &str) -> Option<Timestamp> {
        OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .map(|t| Timestamp(t.unix_timestamp()))
    }

    /// Parses an ISO 8601 date or date-time as clients send in `since`/`updated_after`
    /// filters; a bare date means its midnight UTC.
    pub fn parse_filter(s: &str) -> Option<Timestamp> {
        Timestamp::parse(s).or_else(|| Timestamp::parse(&format!("{s}T00:00:00Z")))
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// GitHub's form: `2024-05-01T10:00:00Z`.
    pub fn github(self) -> String {
        let t = self.datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    /// GitLab's form: `2024-05-01T10:00:00.000Z`.
    pub fn gitlab(self) -> String {
        let s = self.github();
        format!("{}.000Z", s.trim_end_matches('Z'))
    }

    /// The time `secs` seconds later.
    pub fn plus(self, secs: i64) -> Timestamp {
        Timestamp(self.0 + secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let t = Timestamp::parse("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(t.github(), "2024-05-01T10:00:00Z");
        assert_eq!(t.gitlab(), "2024-05-01T10:00:00.000Z");
        assert_eq!(Timestamp::parse_filter("2024-05-01"), Some(t.plus(-36000)));
    }
}
