//! The console's page frame: the tenant's navigation, the sign-out form, and the headers
//! every page carries. Pages are `maud` templates, which escape every value they insert,
//! so a name with markup in it shows as text wherever it appears.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::ConsoleAdmin;
use crate::admin_api::problem::Problem;

/// The console's Content-Security-Policy: its own stylesheet and nothing else loads; no
/// script at all; forms post only here; no other site may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The sections of the console, in the navigation's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The overview.
    Overview,
    /// Connectors and enrollment.
    Connectors,
    /// The policy.
    Policy,
    /// The audit trail.
    Audit,
    /// Calls as they happen.
    Live,
    /// Users and agents.
    People,
    /// OAuth clients.
    Clients,
    /// Gateways.
    Gateways,
}

impl Section {
    const ALL: [Section; 8] = [
        Section::Overview,
        Section::Connectors,
        Section::Policy,
        Section::Audit,
        Section::Live,
        Section::People,
        Section::Clients,
        Section::Gateways,
    ];

    fn id(self) -> &'static str {
        match self {
            Section::Overview => "overview",
            Section::Connectors => "connectors",
            Section::Policy => "policy",
            Section::Audit => "audit",
            Section::Live => "live",
            Section::People => "people",
            Section::Clients => "clients",
            Section::Gateways => "gateways",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Connectors => "Connectors",
            Section::Policy => "Policy",
            Section::Audit => "Audit",
            Section::Live => "Live",
            Section::People => "Users & agents",
            Section::Clients => "OAuth clients",
            Section::Gateways => "Gateways",
        }
    }

    fn path(self, tenant: &str) -> String {
        match self {
            Section::Overview => format!("/admin/t/{tenant}/"),
            other => format!("/admin/t/{tenant}/{}", other.id()),
        }
    }
}

/// A console page of `admin`'s tenant in `section`, titled `title`, with `body`.
pub fn page(
    status: StatusCode,
    admin: &ConsoleAdmin,
    section: Section,
    title: &str,
    body: Markup,
) -> Response {
    respond(status, frame(admin, section, title, body, None))
}

/// Like [`page`], with the console's script at `script` (a path under `/admin/static/`),
/// which this page's CSP alone allows, with its connections back to this runtime.
pub fn page_with_script(
    status: StatusCode,
    admin: &ConsoleAdmin,
    section: Section,
    title: &str,
    body: Markup,
    script: &str,
) -> Response {
    let mut resp = respond(status, frame(admin, section, title, body, Some(script)));
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SCRIPTED_CONTENT_SECURITY_POLICY),
    );
    resp
}

/// [`CONTENT_SECURITY_POLICY`] with the console's own scripts and their connections back
/// here (the live view); still no inline script.
pub const SCRIPTED_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn frame(
    admin: &ConsoleAdmin,
    section: Section,
    title: &str,
    body: Markup,
    script: Option<&str>,
) -> Markup {
    let tenant = admin.admin.tenant.as_str();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // For scripts that call the admin API as this signed-in admin.
                meta name="csrf-token" content=(admin.csrf);
                title { (title) " · " (tenant) " · admin" }
                link rel="stylesheet" href="/admin/static/console.css";
                @if let Some(src) = script { script src=(src) defer {} }
            }
            body {
                header {
                    span.brand { "mcp-edge admin · " (tenant) }
                    nav {
                        @for s in Section::ALL {
                            a id=(format!("nav-{}", s.id())) href=(s.path(tenant))
                                aria-current=[(s == section).then_some("page")] { (s.label()) }
                        }
                    }
                    form #sign-out method="post" action=(format!("/admin/t/{tenant}/sign-out")) {
                        input type="hidden" name="csrf" value=(admin.csrf);
                        span.muted { (admin.admin.name) " " }
                        button.secondary type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The page for an act the admin API's function refused, with its status and why.
pub fn refused(admin: &ConsoleAdmin, section: Section, title: &str, problem: &Problem) -> Response {
    page(
        problem.status,
        admin,
        section,
        title,
        html! { p.error { (problem.message) } },
    )
}

/// `markup` with the console's headers.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut resp = (status, markup).into_response();
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// The hidden field that carries the CSRF token in a form of `admin`'s.
pub fn csrf_field(admin: &ConsoleAdmin) -> Markup {
    html! { input type="hidden" name="csrf" value=(admin.csrf); }
}

/// A Unix-ms time as RFC 3339 (UTC, seconds).
pub fn time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin_api::auth::Admin;

    #[tokio::test]
    async fn every_page_carries_the_security_headers_and_escapes_what_it_shows() {
        let admin = ConsoleAdmin {
            admin: Admin {
                tenant: "acme".parse().unwrap(),
                via: "admin console".into(),
                name: "<script>alert(1)</script>".into(),
                scopes: Vec::new(),
            },
            csrf: "\"><b>".into(),
        };
        let resp = page(
            StatusCode::OK,
            &admin,
            Section::Audit,
            "<i>title</i>",
            html! { p { ("<img src=x onerror=alert(1)>") } },
        );
        let h = resp.headers();
        for (name, want) in [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ] {
            assert_eq!(h.get(&name).and_then(|v| v.to_str().ok()), Some(want));
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(!body.contains("<script>") && !body.contains("<img") && !body.contains("<i>"));
        assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(body.contains("value=\"&quot;&gt;&lt;b&gt;\""), "{body}");
        assert!(body.contains("aria-current=\"page\""));
    }
}
