//! Redirect URI rules: `https` anywhere, `http` only to a loopback host (native apps listening
//! on a local port), never a fragment or user info. Matching at authorization is exact.

use url::{Host, Url};

/// Why a redirect URI is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redirect URI {uri:?} refused: {reason}")]
pub struct BadRedirect {
    /// The URI.
    pub uri: String,
    /// Why.
    pub reason: &'static str,
}

/// Checks a redirect URI for registration.
pub fn check(uri: &str) -> Result<(), BadRedirect> {
    let bad = |reason| BadRedirect {
        uri: uri.to_owned(),
        reason,
    };
    let url = Url::parse(uri).map_err(|_| bad("not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain user information"));
    }
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(Host::Domain("localhost"))) => Ok(()),
        ("http", Some(Host::Ipv4(ip))) if ip.is_loopback() => Ok(()),
        ("http", Some(Host::Ipv6(ip))) if ip.is_loopback() => Ok(()),
        ("http", _) => Err(bad("http is allowed only on a loopback host")),
        _ => Err(bad("must be https, or http on a loopback host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_https_and_loopback_http_only() {
        for ok in [
            "https://app.example/callback",
            "http://localhost:33418/callback",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/callback",
            "https://app.example/cb#frag",
            "https://user:pw@app.example/cb",
            "javascript:alert(1)",
            "cursor://callback",
            "/relative",
            "http://localhost.evil.example/cb",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
