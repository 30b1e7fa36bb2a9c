//! The runtime's HTML pages (sign-in, consent, connect): one helper, so every page carries
//! the same protective headers.
//!
//! The pages hold no script, style or image, and must never be framed (a framed consent
//! page invites clickjacking), cached (they carry one-time state) or leak their URL, which
//! may carry one-time state too, to another site in a `Referer`.

use axum::http::{HeaderValue, StatusCode, header};
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
    page_answering_to(status, title, body_html, None)
}

/// Like [`page`], for a page whose form is answered by a redirect to the MCP client's
/// `redirect_uri` (sign-in and consent in the OAuth flow): browsers apply `form-action` to
/// that redirect too, so the CSP names its origin (or, for a native app's own scheme, the
/// scheme) beside `'self'`.
pub fn page_answering_to(
    status: StatusCode,
    title: &str,
    body_html: &str,
    redirect_uri: Option<&str>,
) -> Response {
    let csp = match redirect_uri.and_then(redirect_source) {
        Some(source) => {
            format!("default-src 'none'; form-action 'self' {source}; frame-ancestors 'none'")
        }
        None => CONTENT_SECURITY_POLICY.to_owned(),
    };
    let Ok(csp) = HeaderValue::from_str(&csp) else {
        return text_page(StatusCode::INTERNAL_SERVER_ERROR, "Error", "Try again.");
    };
    let mut resp = render(status, title, body_html);
    resp.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, csp);
    resp
}

/// The CSP source a redirect to `uri` needs: its origin for http(s), its scheme for an
/// app's own (`com.example.app:`); `None` for anything else, or a source that would not
/// be one token of the policy.
pub fn redirect_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    let source = match (url.scheme(), url.host()) {
        // CSP has no syntax for an IPv6 literal host: its scheme is as narrow as it gets.
        ("http" | "https", Some(url::Host::Ipv6(_))) => format!("{}:", url.scheme()),
        ("http" | "https", Some(_)) => url.origin().ascii_serialization(),
        ("http" | "https", None) => return None,
        (scheme, _) => format!("{scheme}:"),
    };
    source
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".:/-+".contains(&b))
        .then_some(source)
}

fn render(status: StatusCode, title: &str, body_html: &str) -> Response {
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
    fn a_form_answered_by_a_redirect_may_send_the_browser_there() {
        for (uri, want) in [
            (
                "https://client.example:8443/cb?x=1",
                Some("https://client.example:8443"),
            ),
            ("http://127.0.0.1:9/callback", Some("http://127.0.0.1:9")),
            ("http://[::1]:9/callback", Some("http:")),
            ("com.example.app:/oauth", Some("com.example.app:")),
            ("not a url", None),
        ] {
            assert_eq!(redirect_source(uri).as_deref(), want, "{uri}");
        }
        let resp = page_answering_to(StatusCode::OK, "t", "", Some("https://c.example/cb"));
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok()),
            Some(
                "default-src 'none'; form-action 'self' https://c.example; frame-ancestors 'none'"
            )
        );
    }

    #[test]
    fn markup_in_titles_and_text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
