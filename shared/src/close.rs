//! Application close codes of the tunnel connection, so the connector can tell "reconnect"
//! from "stop and call a human".

/// Why a tunnel connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// Orderly close (drain finished, shutdown).
    Normal = 0,
    /// The connector was revoked; reconnecting is pointless until it is re-enrolled.
    Revoked = 1,
    /// The connector's certificate expired; it must renew (or re-enroll).
    CertificateExpired = 2,
    /// The certificate names a connector the runtime does not know.
    UnknownConnector = 3,
    /// The peer broke the protocol.
    ProtocolError = 4,
    /// No common protocol version; one side must be upgraded.
    UpgradeRequired = 5,
    /// The runtime is shutting down; reconnect later.
    GoingAway = 6,
    /// The hello named another connector than the certificate.
    IdentityMismatch = 7,
    /// The certificate was replaced by a renewal that the connector has since used: whoever
    /// still presents it holds a copy of an old key (or a restored backup), so a human must
    /// look before the connector is re-enrolled.
    Superseded = 8,
}

impl CloseCode {
    /// All codes, for lookup.
    const ALL: [CloseCode; 9] = [
        CloseCode::Normal,
        CloseCode::Revoked,
        CloseCode::CertificateExpired,
        CloseCode::UnknownConnector,
        CloseCode::ProtocolError,
        CloseCode::UpgradeRequired,
        CloseCode::GoingAway,
        CloseCode::IdentityMismatch,
        CloseCode::Superseded,
    ];

    /// The numeric code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Looks a numeric code up.
    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|c| u64::from(c.code()) == code)
    }

    /// Whether the connector should stop rather than reconnect.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            CloseCode::Revoked
                | CloseCode::UnknownConnector
                | CloseCode::UpgradeRequired
                | CloseCode::IdentityMismatch
                | CloseCode::Superseded
        )
    }
}
