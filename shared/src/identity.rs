//! Identifiers that cross the trust boundary, validated once at parse time.
//!
//! A connector's identity lives in its client certificate as a SPIFFE-style URI SAN,
//! `spiffe://<trust-domain>/tenant/<tenant>/connector/<connector>`. The runtime derives the
//! tenant of every tunnel from that certificate alone, never from anything the connector says,
//! which is what keeps one tenant's connector from claiming another tenant.

use std::fmt;
use std::str::FromStr;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The identifier is empty or longer than its limit.
    #[error("{kind} must be 1 to {max} characters long, got {len}")]
    Length {
        /// Which identifier.
        kind: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The identifier contains a character outside `[a-z0-9-]` or starts with `-`.
    #[error(
        "{kind} may contain only lowercase letters, digits and '-', and must not start with '-'"
    )]
    Charset {
        /// Which identifier.
        kind: &'static str,
    },
    /// The URI is not of the form `spiffe://<td>/tenant/<t>/connector/<c>`.
    #[error(
        "not a connector identity URI (expected spiffe://<trust-domain>/tenant/<tenant>/connector/<id>)"
    )]
    NotConnectorUri,
    /// The string is not of the form `u-` and 32 lowercase hex digits.
    #[error("not a user id (expected u- and 32 lowercase hex digits)")]
    NotUserId,
}

fn check_label(kind: &'static str, s: &str, max: usize) -> Result<(), IdentityError> {
    if s.is_empty() || s.len() > max {
        return Err(IdentityError::Length {
            kind,
            len: s.len(),
            max,
        });
    }
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Charset { kind })
    }
}

macro_rules! label_newtype {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdentityError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                check_label($kind, s, $max)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdentityError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                check_label($kind, &s, $max)?;
                Ok(Self(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_newtype!(
    /// A tenant's name: the unit of isolation in the runtime.
    TenantId,
    "tenant name",
    63
);
label_newtype!(
    /// A connector's id, assigned by the runtime when the join token is made.
    ConnectorId,
    "connector id",
    63
);
label_newtype!(
    /// A user's stable id: `u-` and 32 hex digits, never reused. Names change hands (a
    /// removed user's name can be given to someone else); this id does not, so everything
    /// that must follow one person (grants, sessions, the connector's vault entries of
    /// their upstream tokens) is keyed by it, and names are for display only.
    UserId,
    "user id",
    34
);

impl UserId {
    /// The prefix of every user id.
    pub const PREFIX: &'static str = "u-";

    /// The id made of 16 bytes: random for a local user, a digest of issuer and subject for
    /// a user of an identity provider (see the runtime).
    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(34);
        s.push_str(Self::PREFIX);
        for b in bytes {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
        }
        Self(s)
    }

    /// Parses an id and checks it has the shape [`UserId::from_bytes`] gives.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let well_formed = s
            .strip_prefix(Self::PREFIX)
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| HEX.contains(&b)));
        if well_formed {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdentityError::NotUserId)
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The SPIFFE trust domain of a runtime's CA: a DNS-like name of dot-separated labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// The trust domain as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TrustDomain {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 253 {
            return Err(IdentityError::Length {
                kind: "trust domain",
                len: s.len(),
                max: 253,
            });
        }
        s.split('.')
            .try_for_each(|l| check_label("trust domain", l, 63))?;
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identity a connector certificate carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectorIdentity {
    /// The CA's trust domain.
    pub trust_domain: TrustDomain,
    /// The tenant the connector belongs to.
    pub tenant: TenantId,
    /// The connector's id within the runtime.
    pub connector: ConnectorId,
}

impl ConnectorIdentity {
    /// The URI SAN form, `spiffe://<td>/tenant/<t>/connector/<c>`.
    pub fn to_uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ConnectorIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/tenant/{}/connector/{}",
            self.trust_domain, self.tenant, self.connector
        )
    }
}

impl FromStr for ConnectorIdentity {
    type Err = IdentityError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or(IdentityError::NotConnectorUri)?;
        let mut parts = rest.split('/');
        let (Some(td), Some("tenant"), Some(t), Some("connector"), Some(c), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(IdentityError::NotConnectorUri);
        };
        Ok(Self {
            trust_domain: td.parse()?,
            tenant: t.parse()?,
            connector: c.parse()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_have_one_shape() {
        let id = UserId::from_bytes(&[0xab; 16]);
        assert_eq!(id.as_str(), format!("u-{}", "ab".repeat(16)));
        assert_eq!(UserId::parse(id.as_str()), Ok(id));
        for bad in [
            "",
            "alice",
            "u-",
            "u-ABABABABABABABABABABABABABABABAB",
            "u-abab",
            "x-abababababababababababababababab",
        ] {
            assert_eq!(UserId::parse(bad), Err(IdentityError::NotUserId), "{bad}");
        }
    }

    #[test]
    fn round_trips_the_uri() {
        let id: ConnectorIdentity = "spiffe://runtime.example/tenant/acme/connector/c-1f2e"
            .parse()
            .unwrap();
        assert_eq!(id.tenant.as_str(), "acme");
        assert_eq!(id.connector.as_str(), "c-1f2e");
        assert_eq!(
            id.to_uri(),
            "spiffe://runtime.example/tenant/acme/connector/c-1f2e"
        );
    }

    #[test]
    fn refuses_path_tricks_and_bad_labels() {
        for bad in [
            "spiffe://td/tenant/acme/connector/c1/extra",
            "spiffe://td/tenant/../connector/c1",
            "spiffe://td/tenant/ACME/connector/c1",
            "spiffe://td/tenant//connector/c1",
            "spiffe://td/connector/c1/tenant/acme",
            "https://td/tenant/acme/connector/c1",
            "spiffe:///tenant/acme/connector/c1",
            "spiffe://td/tenant/-x/connector/c1",
        ] {
            assert!(bad.parse::<ConnectorIdentity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_names_are_bounded() {
        assert!("a".repeat(63).parse::<TenantId>().is_ok());
        assert!(matches!(
            "a".repeat(64).parse::<TenantId>(),
            Err(IdentityError::Length { len: 64, .. })
        ));
        assert!("".parse::<TenantId>().is_err());
        assert!("acme corp".parse::<TenantId>().is_err());
    }
}
