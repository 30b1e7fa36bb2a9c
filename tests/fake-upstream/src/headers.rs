//! Response headers the gate and both kinds' error answers set.

use axum::http::{HeaderMap, HeaderValue};

use crate::Kind;
use crate::ratelimit::Quota;

/// Sets a header, skipping values that are not valid header text.
pub fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The rate-limit headers each API sends on every authenticated response.
pub fn rate_headers(kind: Kind, h: &mut HeaderMap, q: &Quota) {
    match kind {
        Kind::Github => {
            set(h, "x-ratelimit-limit", &q.limit.to_string());
            set(h, "x-ratelimit-remaining", &q.remaining.to_string());
            set(h, "x-ratelimit-used", &q.used.to_string());
            set(h, "x-ratelimit-reset", &q.reset.to_string());
            set(h, "x-ratelimit-resource", q.resource.name());
        }
        Kind::Gitlab => {
            set(h, "ratelimit-limit", &q.limit.to_string());
            set(h, "ratelimit-observed", &q.used.to_string());
            set(h, "ratelimit-remaining", &q.remaining.to_string());
            set(h, "ratelimit-reset", &q.reset.to_string());
            let reset = time::OffsetDateTime::from_unix_timestamp(q.reset as i64)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc2822)
                        .ok()
                });
            if let Some(r) = reset {
                set(h, "ratelimit-resettime", &r);
            }
        }
    }
}
