//! The authorization page both kinds show at their authorize endpoint: a sign-in form with
//! a username field, the request's parameters in hidden fields, and Authorize / Deny
//! buttons. Its POST carries `username` and `decision` (`authorize` or `deny`).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The sign-in form posting to `action` with `hidden` fields; `notice` shows above it.
pub fn form(
    title: &str,
    app_name: &str,
    action: &str,
    hidden: &[(&str, &str)],
    notice: Option<&str>,
) -> Response {
    let fields: String = hidden
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let notice = notice
        .map(|n| format!("<p class=\"flash-error\">{}</p>\n", escape(n)))
        .unwrap_or_default();
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head><body>\n\
         <h1>{t}</h1>\n<p><strong>{app}</strong> wants to access your account.</p>\n{notice}\
         <form method=\"post\" action=\"{action}\">\n{fields}\
         <label for=\"username\">Username</label>\n<input type=\"text\" id=\"username\" name=\"username\" autofocus>\n\
         <button type=\"submit\" name=\"decision\" value=\"authorize\">Authorize</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>\n</body></html>\n",
        t = escape(title),
        app = escape(app_name),
        action = escape(action),
    );
    Html(body).into_response()
}

/// An error page (never a redirect: the redirect URI is not trusted yet).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Error</title></head><body>\n\
         <h1>An error has occurred</h1>\n<p id=\"error\">{}</p>\n</body></html>\n",
        escape(message)
    );
    (status, Html(body)).into_response()
}

/// A 302 to `location`, as both hosts redirect back to the client.
pub fn found(location: &str) -> Response {
    (StatusCode::FOUND, [("location", location.to_owned())]).into_response()
}
