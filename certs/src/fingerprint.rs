//! SHA-256 certificate fingerprints, written `sha256:<64 hex digits>`.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;

/// The SHA-256 digest of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// A fingerprint string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CA fingerprint must be sha256: followed by 64 hex digits (colons allowed)")]
pub struct BadFingerprint;

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let d = digest::digest(&digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Compares in constant time (the value is public, but habits matter).
    pub fn matches(&self, other: &Fingerprint) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .ok_or(BadFingerprint)?;
        let cleaned: String = hex_part.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&cleaned, &mut out).map_err(|_| BadFingerprint)?;
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints() {
        let fp = Fingerprint::of_der(b"certificate");
        let back: Fingerprint = fp.to_string().parse().unwrap();
        assert!(fp.matches(&back));
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "sha256:",
            "md5:abcd",
            "sha256:zz",
            &format!("sha256:{}", "a".repeat(62)),
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }
}
