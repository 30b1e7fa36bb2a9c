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
    /// The runtime takes no more new tunnels this instant (a reconnect wave after a
    /// restart); the reason is [`busy_reason`], whose delay the connector waits before
    /// trying again.
    Busy = 9,
}

/// The close reason of [`CloseCode::Busy`]: `retry-after-ms=<ms> <words>`.
pub fn busy_reason(retry_after: std::time::Duration) -> String {
    format!(
        "retry-after-ms={} runtime busy with other connectors' handshakes",
        retry_after.as_millis()
    )
}

/// The delay a [`busy_reason`] asks for (capped at 10 minutes, so a runtime cannot park a
/// connector for long), or `None` if the reason has none.
pub fn retry_after(reason: &str) -> Option<std::time::Duration> {
    let ms: u64 = reason
        .split_whitespace()
        .next()?
        .strip_prefix("retry-after-ms=")?
        .parse()
        .ok()?;
    Some(std::time::Duration::from_millis(ms.min(600_000)))
}

impl CloseCode {
    /// All codes, for lookup.
    const ALL: [CloseCode; 10] = [
        CloseCode::Normal,
        CloseCode::Revoked,
        CloseCode::CertificateExpired,
        CloseCode::UnknownConnector,
        CloseCode::ProtocolError,
        CloseCode::UpgradeRequired,
        CloseCode::GoingAway,
        CloseCode::IdentityMismatch,
        CloseCode::Superseded,
        CloseCode::Busy,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_busy_reason_carries_its_delay_and_a_hostile_one_is_capped() {
        let r = busy_reason(Duration::from_millis(2500));
        assert_eq!(retry_after(&r), Some(Duration::from_millis(2500)));
        assert_eq!(
            retry_after("retry-after-ms=99999999999 x"),
            Some(Duration::from_secs(600))
        );
        for bad in [
            "",
            "busy",
            "retry-after-ms=",
            "retry-after-ms=-1",
            "retry-after-ms=1e9",
        ] {
            assert_eq!(retry_after(bad), None, "{bad:?}");
        }
        assert_eq!(CloseCode::from_code(9), Some(CloseCode::Busy));
        assert!(!CloseCode::Busy.is_fatal());
    }
}
