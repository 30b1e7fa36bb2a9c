//! Which certificate of a connector may open a tunnel, and which may renew.
//!
//! rustls only proves that a certificate was signed by our CA and has not expired. Every
//! certificate a connector ever renewed away is such a certificate until it expires, so a
//! copy of an old key (or a restored backup) would keep working beside the real connector.
//! The store therefore keeps, per connector, the serial of the current certificate and,
//! between a renewal and the first use of its result, the serial that renewal replaced:
//!
//! ```text
//!  enrolled with X      current X                      X connects (first use confirms X)
//!  X renews to Y        current Y, previous X          X and Y connect
//!  Y connects           current Y (confirmed)          only Y connects: X is superseded
//! ```
//!
//! Until the new certificate has been used the old one still connects: the renewal answer
//! may have been lost with the tunnel that carried it, and the connector then only has the
//! old certificate. Once the new one has been used, whoever presents the old one holds a copy
//! of the old key; the handshake is refused, audited and shown by `connector list`. Live
//! tunnels opened before that are retired by the registry (the newest tunnel of a connector
//! replaces the older ones after a short overlap, see [`super::registry`]).
//!
//! A certificate renews at most once (a copy cannot fork the chain of certificates) and not
//! before [`RENEWAL_EARLIEST_SHARE`] of its lifetime has passed (a confused or hostile
//! connector cannot make the CA sign in a loop). The chain being linear, that bounds the
//! renewals of one connector to a few per certificate lifetime.
//!
//! Pure functions: no store, no clock, no transport.

use time::OffsetDateTime;

use crate::store::certificates::Lineage;

/// The share of a certificate's lifetime that must pass before it may renew. Connectors
/// renew at two thirds; a quarter leaves room for a connector whose clock runs ahead.
pub const RENEWAL_EARLIEST_SHARE: f64 = 0.25;

/// What to do with a handshake presenting a given certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The current certificate, already in use.
    Current,
    /// The current certificate, presented for the first time: record that, which supersedes
    /// the previous one.
    FirstUse,
    /// The certificate a renewal replaced, before the renewed one was used.
    Previous,
    /// An older certificate (renewed away and superseded): refuse, a possible key copy.
    Superseded,
}

impl Admission {
    /// Whether the tunnel may proceed.
    pub fn admitted(self) -> bool {
        !matches!(self, Admission::Superseded)
    }
}

/// Decides a handshake presenting the certificate with serial `presented`.
pub fn admit(lineage: &Lineage, presented: &str) -> Admission {
    if presented == lineage.current {
        if lineage.confirmed {
            Admission::Current
        } else {
            Admission::FirstUse
        }
    } else if !lineage.confirmed && lineage.previous.as_deref() == Some(presented) {
        Admission::Previous
    } else {
        Admission::Superseded
    }
}

/// Why a certificate may not renew.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenewalRefusal {
    /// It is not the connector's current certificate: it has renewed already.
    #[error("this certificate has already been renewed; use the renewed certificate")]
    AlreadyRenewed,
    /// Too early in its lifetime.
    #[error("renewal is refused this early in the certificate's lifetime; retry later")]
    TooSoon {
        /// When it may renew.
        earliest: OffsetDateTime,
    },
}

/// The lifetime of the certificate presented on a tunnel, as renewal needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// The earliest time a certificate valid over `validity` may renew.
pub fn earliest_renewal(validity: Validity) -> OffsetDateTime {
    let lifetime = validity.not_after - validity.not_before;
    validity.not_before + lifetime * RENEWAL_EARLIEST_SHARE
}

/// Decides whether the certificate with serial `presented`, valid over `validity`, may renew
/// at `now`.
pub fn may_renew(
    lineage: &Lineage,
    presented: &str,
    validity: Validity,
    now: OffsetDateTime,
) -> Result<(), RenewalRefusal> {
    if presented != lineage.current {
        return Err(RenewalRefusal::AlreadyRenewed);
    }
    let earliest = earliest_renewal(validity);
    if now < earliest {
        return Err(RenewalRefusal::TooSoon { earliest });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn enrolled(serial: &str) -> Lineage {
        Lineage {
            current: serial.into(),
            previous: None,
            confirmed: false,
        }
    }

    /// The store's side of a renewal, as the store performs it.
    fn renewed(l: &Lineage, to: &str) -> Lineage {
        Lineage {
            current: to.into(),
            previous: Some(l.current.clone()),
            confirmed: false,
        }
    }

    fn used(l: &Lineage) -> Lineage {
        Lineage {
            confirmed: true,
            ..l.clone()
        }
    }

    #[test]
    fn an_enrolled_certificate_is_confirmed_by_its_first_use() {
        let l = enrolled("0a");
        assert_eq!(admit(&l, "0a"), Admission::FirstUse);
        assert_eq!(admit(&used(&l), "0a"), Admission::Current);
    }

    #[test]
    fn the_renewed_away_certificate_connects_until_the_renewed_one_is_used() {
        let x = used(&enrolled("0a"));
        let y = renewed(&x, "0b");
        // The renewal answer may have been lost: the connector still has only X.
        assert_eq!(admit(&y, "0a"), Admission::Previous);
        assert_eq!(admit(&y, "0b"), Admission::FirstUse);
        // The connector has used Y: only Y connects from now on.
        let y = used(&y);
        assert_eq!(admit(&y, "0b"), Admission::Current);
        assert_eq!(admit(&y, "0a"), Admission::Superseded);
        assert!(!admit(&y, "0a").admitted());
    }

    #[test]
    fn certificates_two_renewals_back_or_never_recorded_are_superseded() {
        let x = used(&enrolled("0a"));
        let z = renewed(&used(&renewed(&x, "0b")), "0c");
        // Z is unconfirmed, so Y (its predecessor) still connects, but X never does.
        assert_eq!(admit(&z, "0b"), Admission::Previous);
        assert_eq!(admit(&z, "0a"), Admission::Superseded);
        // A certificate the CA signed but the store never recorded is no better.
        assert_eq!(admit(&z, "ff"), Admission::Superseded);
    }

    fn validity(lifetime_s: u64) -> (Validity, OffsetDateTime) {
        let not_before = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        (
            Validity {
                not_before,
                not_after: not_before + Duration::from_secs(lifetime_s),
            },
            not_before,
        )
    }

    #[test]
    fn a_certificate_renews_once() {
        let (v, start) = validity(3600);
        let late = start + Duration::from_secs(2400);
        let x = used(&enrolled("0a"));
        assert_eq!(may_renew(&x, "0a", v, late), Ok(()));
        let y = renewed(&x, "0b");
        // A second renewal with X, before or after Y's first use, is refused.
        assert_eq!(
            may_renew(&y, "0a", v, late),
            Err(RenewalRefusal::AlreadyRenewed)
        );
        assert_eq!(
            may_renew(&used(&y), "0a", v, late),
            Err(RenewalRefusal::AlreadyRenewed)
        );
        assert_eq!(may_renew(&used(&y), "0b", v, late), Ok(()));
    }

    #[test]
    fn renewal_waits_for_a_quarter_of_the_lifetime() {
        let (v, start) = validity(3600);
        let x = used(&enrolled("0a"));
        let earliest = start + Duration::from_secs(900);
        assert_eq!(
            may_renew(&x, "0a", v, start + Duration::from_secs(1)),
            Err(RenewalRefusal::TooSoon { earliest })
        );
        assert_eq!(
            may_renew(&x, "0a", v, earliest - Duration::from_secs(1)),
            Err(RenewalRefusal::TooSoon { earliest })
        );
        assert_eq!(may_renew(&x, "0a", v, earliest), Ok(()));
    }
}
