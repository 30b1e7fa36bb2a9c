//! Building request paths from tool arguments, safely: every argument becomes escaped path
//! segments, and nothing an agent sends can walk the URL to another API endpoint.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

/// What may stay unescaped in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment, escaped. Empty, `.` and `..` are refused: URL resolution would turn
/// them (escaped or not) into a walk to another API endpoint, past the policy's check of
/// the call's repository.
pub fn seg(s: &str) -> Result<String, CallFailure> {
    if s.is_empty() || s == "." || s == ".." {
        return Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            format!("{s:?} is not a valid name here"),
        ));
    }
    Ok(utf8_percent_encode(s, SEGMENT).to_string())
}

/// A multi-segment path (a file path, a ref), `/` kept between escaped segments.
pub fn file_path(p: &str) -> Result<String, CallFailure> {
    Ok(p.trim_matches('/')
        .split('/')
        .map(seg)
        .collect::<Result<Vec<_>, _>>()?
        .join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_per_segment_and_cannot_walk() {
        assert_eq!(seg("wid gets").unwrap(), "wid%20gets");
        assert_eq!(file_path("/src/a b/c.rs").unwrap(), "src/a%20b/c.rs");
        assert_eq!(seg("feature/x").unwrap(), "feature%2Fx");
        assert!(file_path("src/../../../user").is_err());
        assert!(file_path("a//b").is_err());
        assert!(seg("..").is_err());
        // Whatever passes, URL resolution keeps it under the repository.
        let base = url::Url::parse("https://h/api/v3/").unwrap();
        let p = format!("repos/acme/w/contents/{}", file_path("%2e%2e/x").unwrap());
        assert!(
            base.join(&p)
                .unwrap()
                .path()
                .starts_with("/api/v3/repos/acme/w/contents/")
        );
    }
}
