//! Searching a tenant's audit records: the admin API's and the command line's one
//! implementation. A search is parsed from `name=value` pairs, bounded (a time range of at
//! most [`MAX_RANGE`], a page of at most [`MAX_LIMIT`]), and read from the search index
//! ([`super::index`]) newest first, a page at a time after an opaque cursor.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::store::audit_index::{After, AuditFilter, FoundRecord};
use crate::store::{Store, StoreError};

/// The widest time range one search may cover.
pub const MAX_RANGE: Duration = Duration::from_secs(366 * 24 * 3600);
/// The range searched when none is given: the last day.
pub const DEFAULT_RANGE: Duration = Duration::from_secs(24 * 3600);
/// The most records in one page.
pub const MAX_LIMIT: u32 = 500;
/// Records per page when the search does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The longest value a filter may have.
const MAX_VALUE: usize = 256;
/// The filters a search takes, each matching one field exactly.
pub const FILTERS: [&str; 9] = [
    "user",
    "agent",
    "tool",
    "connector",
    "kind",
    "decision",
    "layer",
    "outcome",
    "trace_id",
];

/// Why a search was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// A parameter the search does not know (a typo would otherwise widen the search).
    #[error("unknown search parameter {0:?}; known: from, to, limit, cursor, {filters}", filters = FILTERS.join(", "))]
    UnknownParameter(String),
    /// A time that is not RFC 3339.
    #[error("{param} must be an RFC 3339 time such as 2026-12-07T10:00:00Z, not {value:?}")]
    BadTime {
        /// `from` or `to`.
        param: &'static str,
        /// What was sent (shortened).
        value: String,
    },
    /// `from` after `to`.
    #[error("from is after to")]
    Inverted,
    /// A range wider than [`MAX_RANGE`].
    #[error(
        "the time range spans {days} days; a search covers at most 366 (page through narrower ranges)"
    )]
    RangeTooWide {
        /// Its width in days.
        days: i64,
    },
    /// A limit out of 1..=[`MAX_LIMIT`].
    #[error("limit must be a whole number from 1 to 500")]
    BadLimit,
    /// A cursor this runtime did not hand out.
    #[error("malformed cursor: pass back the next_cursor of a previous page unchanged")]
    BadCursor,
    /// A filter value out of its set, too long, or with control characters.
    #[error("{param}: {reason}")]
    BadValue {
        /// The filter.
        param: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A page of records, and where the next starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The records, newest first.
    pub records: Vec<FoundRecord>,
    /// The cursor of the next page, if there may be one.
    pub next_cursor: Option<String>,
}

/// Parses a search of `tenant` from its parameters; `now_ms` ends the default range.
pub fn parse(
    tenant: &str,
    params: &BTreeMap<String, String>,
    now_ms: i64,
) -> Result<AuditFilter, SearchError> {
    let mut filter = AuditFilter {
        tenant: tenant.to_owned(),
        limit: DEFAULT_LIMIT,
        ..AuditFilter::default()
    };
    for name in params.keys() {
        if !matches!(name.as_str(), "from" | "to" | "limit" | "cursor")
            && !FILTERS.contains(&name.as_str())
        {
            return Err(SearchError::UnknownParameter(
                name.chars().take(64).collect(),
            ));
        }
    }
    let time = |param: &'static str| -> Result<Option<i64>, SearchError> {
        params.get(param).map(|v| parse_time(param, v)).transpose()
    };
    let range = i64::try_from(DEFAULT_RANGE.as_millis()).unwrap_or(i64::MAX);
    let (from, to) = match (time("from")?, time("to")?) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, now_ms),
        (None, Some(t)) => (t.saturating_sub(range), t),
        (None, None) => (now_ms.saturating_sub(range), now_ms),
    };
    if from > to {
        return Err(SearchError::Inverted);
    }
    let width = to.saturating_sub(from);
    if width > i64::try_from(MAX_RANGE.as_millis()).unwrap_or(i64::MAX) {
        return Err(SearchError::RangeTooWide {
            days: width / 86_400_000,
        });
    }
    (filter.from_ms, filter.to_ms) = (from, to);
    if let Some(limit) = params.get("limit") {
        filter.limit = limit
            .parse()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or(SearchError::BadLimit)?;
    }
    if let Some(cursor) = params.get("cursor") {
        filter.after = Some(decode_cursor(cursor)?);
    }
    for param in FILTERS {
        let Some(value) = params.get(param) else {
            continue;
        };
        check_value(param, value)?;
        let slot = match param {
            "user" => &mut filter.user,
            "agent" => &mut filter.agent,
            "tool" => &mut filter.tool,
            "connector" => &mut filter.connector,
            "kind" => &mut filter.kind,
            "decision" => &mut filter.decision,
            "layer" => &mut filter.layer,
            "outcome" => &mut filter.outcome,
            _ => &mut filter.trace_id,
        };
        *slot = Some(value.clone());
    }
    Ok(filter)
}

fn check_value(param: &'static str, value: &str) -> Result<(), SearchError> {
    let bad = |reason| SearchError::BadValue { param, reason };
    if value.is_empty() || value.len() > MAX_VALUE {
        return Err(bad("must be 1 to 256 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("must not contain control characters"));
    }
    let known: &[&str] = match param {
        "decision" => &["allow", "deny"],
        "kind" => &[
            "decision",
            "upstream",
            "outcome",
            "authorization",
            "certificate",
            "admin",
        ],
        "layer" => &["gateway", "agent", "user", "connector", "hook"],
        _ => return Ok(()),
    };
    if known.contains(&value) {
        Ok(())
    } else {
        Err(bad(match param {
            "decision" => "must be allow or deny",
            "kind" => "must be decision, upstream, outcome, authorization, certificate or admin",
            _ => "must be gateway, agent, user, connector or hook",
        }))
    }
}

fn parse_time(param: &'static str, value: &str) -> Result<i64, SearchError> {
    let bad = || SearchError::BadTime {
        param,
        value: value.chars().take(64).collect(),
    };
    let t = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

/// The cursor that continues after `r`.
pub fn encode_cursor(r: &FoundRecord) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", r.at_ms, r.seq, r.chain))
}

/// The position a cursor of [`encode_cursor`] continues after.
pub fn decode_cursor(cursor: &str) -> Result<After, SearchError> {
    if cursor.len() > 512 {
        return Err(SearchError::BadCursor);
    }
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(SearchError::BadCursor)?;
    let mut parts = text.splitn(3, ':');
    let (Some(at), Some(seq), Some(chain)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SearchError::BadCursor);
    };
    let at_ms = at.parse().map_err(|_| SearchError::BadCursor)?;
    let seq = seq
        .parse::<u64>()
        .ok()
        .filter(|s| i64::try_from(*s).is_ok())
        .ok_or(SearchError::BadCursor)?;
    if chain.is_empty() || chain.chars().any(char::is_control) {
        return Err(SearchError::BadCursor);
    }
    Ok(After {
        at_ms,
        chain: chain.to_owned(),
        seq,
    })
}

/// Runs `filter`: one page, and the cursor of the next when the page is full.
pub async fn search(store: &Store, filter: &AuditFilter) -> Result<Page, StoreError> {
    let records = store.search_audit(filter).await?;
    let full = records.len() == filter.limit as usize;
    let next_cursor = records.last().filter(|_| full).map(encode_cursor);
    Ok(Page {
        records,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const NOW: i64 = 1_796_000_000_000;

    #[test]
    fn a_search_defaults_to_the_last_day_and_fifty_records() {
        let f = parse("acme", &params(&[]), NOW).unwrap();
        assert_eq!((f.from_ms, f.to_ms, f.limit), (NOW - 86_400_000, NOW, 50));
        let f = parse(
            "acme",
            &params(&[
                ("from", "2026-12-01T00:00:00Z"),
                ("to", "2026-12-07T00:00:00.5+01:00"),
                ("decision", "deny"),
                ("user", "<script>alice</script>"),
                ("limit", "500"),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(f.decision.as_deref(), Some("deny"));
        assert_eq!(f.user.as_deref(), Some("<script>alice</script>"));
        assert_eq!(f.to_ms - f.from_ms, 6 * 86_400_000 - 3_600_000 + 500);
    }

    #[test]
    fn bad_searches_get_their_own_errors() {
        let err = |pairs: &[(&str, &str)]| parse("acme", &params(pairs), NOW).unwrap_err();
        assert!(matches!(err(&[("usr", "a")]), SearchError::UnknownParameter(p) if p == "usr"));
        assert!(matches!(
            err(&[("from", "yesterday")]),
            SearchError::BadTime { param: "from", .. }
        ));
        assert_eq!(
            err(&[
                ("from", "2026-12-07T00:00:00Z"),
                ("to", "2026-12-06T00:00:00Z")
            ]),
            SearchError::Inverted
        );
        assert!(matches!(
            err(&[("from", "0001-01-01T00:00:00Z"), ("to", "9999-12-31T23:59:59Z")]),
            SearchError::RangeTooWide { days } if days > 3_000_000
        ));
        for limit in ["0", "501", "-1", "ten", ""] {
            assert_eq!(err(&[("limit", limit)]), SearchError::BadLimit, "{limit}");
        }
        for cursor in ["", "%%%", "bm9wZQ", &"A".repeat(600)] {
            assert_eq!(
                err(&[("cursor", cursor)]),
                SearchError::BadCursor,
                "{cursor}"
            );
        }
        assert!(matches!(
            err(&[("decision", "maybe")]),
            SearchError::BadValue {
                param: "decision",
                ..
            }
        ));
        assert!(matches!(
            err(&[("tool", &"x".repeat(257))]),
            SearchError::BadValue { param: "tool", .. }
        ));
        assert!(matches!(
            err(&[("user", "a\nb")]),
            SearchError::BadValue { param: "user", .. }
        ));
    }

    #[test]
    fn a_cursor_round_trips() {
        let r = FoundRecord {
            chain: "replica:1".into(),
            seq: 42,
            at_ms: NOW,
            line: String::new(),
        };
        let f = parse("acme", &params(&[("cursor", &encode_cursor(&r))]), NOW).unwrap();
        assert_eq!(
            f.after,
            Some(After {
                at_ms: NOW,
                chain: "replica:1".into(),
                seq: 42
            })
        );
    }
}
