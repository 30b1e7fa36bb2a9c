//! The runtime's HTML pages (sign-in, consent, connect): one helper, so every page carries
//! the same protective headers.
//!
//! The pages hold no script, style or image, and must never be framed (a framed consent
//! page invites clickjacking), cached (they carry one-time state) or leak their URL, which
//! may carry one-time state too, to another site in a `Referer`.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The pages' Content-Security-Policy: nothing loads, forms post only to the runtime, and
/// no other site may frame the page.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; form-action 'self'; frame-ancestors 'none'";

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page titled `title` (escaped here) whose body is `body_html` (already escaped by the
/// caller), with `status` and the full header set: `text/html; charset=utf-8`, the
/// [`CONTENT_SECURITY_POLICY`], `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
/// `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`.
pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1>{body_html}</body></html>",
        t = escape(title)
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(html),
    )
        .into_response()
}

/// A page whose body is one paragraph of plain `text` (escaped here).
pub fn text_page(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, title, &format!("<p>{}</p>", escape(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_carries_the_full_header_set() {
        for resp in [
            page(StatusCode::OK, "t", "<p>b</p>"),
            text_page(StatusCode::FORBIDDEN, "t", "b"),
        ] {
            let h = resp.headers();
            for (name, want) in [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::CACHE_CONTROL, "no-store"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ] {
                assert_eq!(
                    h.get(&name).and_then(|v| v.to_str().ok()),
                    Some(want),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn markup_in_titles_and_text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
