//! OAuth Client ID Metadata Documents, the registration the MCP authorization specification
//! prefers: the client's `client_id` is an HTTPS URL, and the document there names the
//! client and its redirect URIs. The runtime fetches it at authorization time.
//!
//! Fetching a URL a stranger chose is a server-side request forgery risk, so the fetch is
//! fenced: HTTPS only, no redirects, a short timeout and a small body, and the host must
//! resolve only to public addresses — the connection then goes to the address that was
//! checked (no second lookup for a rebinding DNS server to answer differently). Loopback
//! may be allowed for development and tests, never private networks.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::{Host, Url};

use super::redirect;
use crate::store::oauth::ClientRow;

/// Largest document accepted.
const MAX_DOCUMENT: usize = 16 * 1024;
/// Time allowed for the fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Most redirect URIs a document may name.
const MAX_REDIRECT_URIS: usize = 10;

/// Why a client's metadata document was refused. The text goes to the user's browser.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The client id is not a URL we fetch.
    #[error("client_id must be an https URL with a path")]
    NotAUrl,
    /// The host resolves to an address we do not connect to.
    #[error("the client's metadata host resolves to a non-public address")]
    PrivateAddress,
    /// The document could not be fetched.
    #[error("the client's metadata document could not be fetched: {0}")]
    Fetch(String),
    /// The document is not acceptable.
    #[error("the client's metadata document is invalid: {0}")]
    Invalid(String),
}

/// Why the extra trusted CA for metadata documents could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtraCaError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The CA file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a PEM certificate bundle.
    #[error("{} is not a PEM certificate bundle: {source}", path.display())]
    NotPem {
        /// The CA file.
        path: PathBuf,
        /// The cause.
        source: reqwest::Error,
    },
}

#[derive(Debug, Deserialize)]
struct Document {
    client_id: String,
    client_name: Option<String>,
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
}

/// Whether `client_id` is a metadata document URL (as opposed to a registered id).
pub fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
            };
            // Prefixes that carry an IPv4 address (and reach it through a translator or a
            // relay) are as public as that address; the rest of these ranges never are.
            if s[0] == 0x0064 && s[1] == 0xff9b {
                // NAT64: 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
                return s[2] == 0 && s[3..6] == [0, 0, 0] && embedded(s[6], s[7]);
            }
            if s[0] == 0x2002 {
                return embedded(s[1], s[2]); // 6to4
            }
            // Only global unicast (2000::/3) is public: that leaves out loopback, the
            // IPv4-compatible ::/96, unique-local, link- and site-local and multicast.
            (s[0] & 0xe000) == 0x2000
                && !(s[0] == 0x2001 && s[1] == 0x0000) // Teredo
                && !(s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

/// Fetches client metadata documents.
#[derive(Debug, Clone)]
pub struct MetadataFetcher {
    extra_roots: Vec<reqwest::Certificate>,
    allow_loopback: bool,
}

impl MetadataFetcher {
    /// A fetcher trusting the system's roots and, for development, `extra_ca` (a PEM file);
    /// `allow_loopback` lets documents be served from this machine.
    pub fn new(extra_ca: Option<&Path>, allow_loopback: bool) -> Result<Self, ExtraCaError> {
        let extra_roots = match extra_ca {
            None => Vec::new(),
            Some(p) => {
                let pem = std::fs::read(p).map_err(|source| ExtraCaError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                    ExtraCaError::NotPem {
                        path: p.to_owned(),
                        source,
                    }
                })?
            }
        };
        Ok(Self {
            extra_roots,
            allow_loopback,
        })
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        public(ip) || (self.allow_loopback && ip.is_loopback())
    }

    /// Fetches and checks the document at `client_id`.
    pub async fn fetch(&self, client_id: &str) -> Result<ClientRow, MetadataError> {
        let url = Url::parse(client_id).map_err(|_| MetadataError::NotAUrl)?;
        if url.scheme() != "https"
            || !url.username().is_empty()
            || url.password().is_some()
            || url.fragment().is_some()
            || url.path() == "/"
            || client_id.len() > 2048
        {
            return Err(MetadataError::NotAUrl);
        }
        let host = url.host().ok_or(MetadataError::NotAUrl)?;
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match host {
            Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Host::Domain(d) => {
                tokio::time::timeout(FETCH_TIMEOUT, tokio::net::lookup_host((d, port)))
                    .await
                    .map_err(|_| MetadataError::Fetch("DNS lookup timed out".into()))?
                    .map_err(|e| MetadataError::Fetch(format!("DNS lookup: {e}")))?
                    .collect()
            }
        };
        // Every address must be acceptable: a name that also points inward is refused.
        if addrs.is_empty() || !addrs.iter().all(|a| self.allowed(a.ip())) {
            return Err(MetadataError::PrivateAddress);
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .no_proxy()
            .tls_certs_merge(self.extra_roots.clone());
        if let Host::Domain(d) = host {
            // Connect to the checked addresses, not to a second lookup's answer.
            builder = builder.resolve_to_addrs(d, &addrs);
        }
        let client = builder
            .build()
            .map_err(|e| MetadataError::Fetch(e.to_string()))?;
        let mut resp = client
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| MetadataError::Fetch(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(MetadataError::Fetch(format!("HTTP {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| MetadataError::Fetch(e.to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT {
                return Err(MetadataError::Invalid(format!(
                    "larger than {MAX_DOCUMENT} bytes"
                )));
            }
        }
        let doc: Document =
            serde_json::from_slice(&body).map_err(|e| MetadataError::Invalid(e.to_string()))?;
        check(client_id, doc)
    }
}

fn check(client_id: &str, doc: Document) -> Result<ClientRow, MetadataError> {
    let invalid = |s: &str| MetadataError::Invalid(s.to_owned());
    if doc.client_id != client_id {
        return Err(invalid("its client_id is not the URL it was fetched from"));
    }
    if doc.redirect_uris.is_empty() || doc.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(invalid("it must name 1 to 10 redirect_uris"));
    }
    if let Some(e) = doc
        .redirect_uris
        .iter()
        .find_map(|u| redirect::check(u).err())
    {
        return Err(MetadataError::Invalid(e.to_string()));
    }
    if doc
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != "none")
    {
        return Err(invalid(
            "only public clients (token_endpoint_auth_method none) are supported",
        ));
    }
    if doc
        .grant_types
        .iter()
        .flatten()
        .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return Err(invalid(
            "grant_types may name authorization_code and refresh_token only",
        ));
    }
    if doc.response_types.iter().flatten().any(|r| r != "code") {
        return Err(invalid("response_types may name code only"));
    }
    Ok(ClientRow {
        client_id: doc.client_id,
        client_name: doc.client_name.map(|n| n.chars().take(200).collect()),
        redirect_uris: doc.redirect_uris,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_ca_that_is_missing_or_not_pem_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        assert!(matches!(
            MetadataFetcher::new(Some(&missing), false),
            Err(ExtraCaError::Read { .. })
        ));
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(matches!(
            MetadataFetcher::new(Some(&junk), false),
            Err(ExtraCaError::NotPem { .. })
        ));
        assert!(MetadataFetcher::new(None, true).is_ok());
    }

    #[test]
    fn only_public_addresses_pass() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:5",
            "64:ff9b:1::a00:5",
            "2002:a00:5::1",
            "2001:0:4136:e378::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(public(ip.parse().unwrap()), "{ip}");
        }
    }

    fn doc(id: &str) -> Document {
        Document {
            client_id: id.into(),
            client_name: Some("c".into()),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            token_endpoint_auth_method: None,
            grant_types: None,
            response_types: None,
        }
    }

    #[test]
    fn documents_must_name_themselves_and_good_redirects() {
        let id = "https://client.example/meta.json";
        assert!(check(id, doc(id)).is_ok());
        assert!(check(id, doc("https://other.example/meta.json")).is_err());
        let mut d = doc(id);
        d.redirect_uris = vec!["http://evil.example/cb".into()];
        assert!(check(id, d).is_err());
        let mut d = doc(id);
        d.token_endpoint_auth_method = Some("client_secret_basic".into());
        assert!(check(id, d).is_err());
    }

    #[tokio::test]
    async fn urls_that_are_not_https_documents_or_point_inward_are_refused() {
        let f = MetadataFetcher::new(None, false).unwrap();
        assert!(matches!(
            f.fetch("http://client.example/m.json").await,
            Err(MetadataError::NotAUrl)
        ));
        assert!(matches!(
            f.fetch("https://client.example/").await,
            Err(MetadataError::NotAUrl)
        ));
        assert!(matches!(
            f.fetch("https://10.1.2.3/m.json").await,
            Err(MetadataError::PrivateAddress)
        ));
        assert!(matches!(
            f.fetch("https://127.0.0.1/m.json").await,
            Err(MetadataError::PrivateAddress)
        ));
        assert!(matches!(
            f.fetch("https://localhost/m.json").await,
            Err(MetadataError::PrivateAddress)
        ));
    }
}
