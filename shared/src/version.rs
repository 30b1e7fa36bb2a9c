//! Protocol versions and their negotiation.
//!
//! The connector announces the range it speaks in its hello; the runtime picks the highest
//! version both speak or refuses with [`crate::wire::RejectReason::UpgradeRequired`] and its own
//! range, so an operator reads exactly which side to upgrade.

use std::ops::RangeInclusive;

/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The versions this build speaks.
pub const SUPPORTED: RangeInclusive<u32> = 1..=PROTOCOL_VERSION;

/// The two sides share no protocol version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no common protocol version: peer speaks {peer_min}..={peer_max}, we speak {our_min}..={our_max}; {}",
    if peer_max < our_min { "the connector must be upgraded" } else { "the runtime must be upgraded" }
)]
pub struct NoCommonVersion {
    /// Peer's lowest version.
    pub peer_min: u32,
    /// Peer's highest version.
    pub peer_max: u32,
    /// Our lowest version.
    pub our_min: u32,
    /// Our highest version.
    pub our_max: u32,
}

/// The highest version in both `ours` and `peer_min..=peer_max`.
pub fn negotiate(
    ours: RangeInclusive<u32>,
    peer_min: u32,
    peer_max: u32,
) -> Result<u32, NoCommonVersion> {
    let high = (*ours.end()).min(peer_max);
    let low = (*ours.start()).max(peer_min);
    if peer_min <= peer_max && low <= high {
        Ok(high)
    } else {
        Err(NoCommonVersion {
            peer_min,
            peer_max,
            our_min: *ours.start(),
            our_max: *ours.end(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        assert_eq!(negotiate(1..=3, 2, 5), Ok(3));
        assert_eq!(negotiate(1..=3, 1, 1), Ok(1));
    }

    #[test]
    fn says_which_side_must_upgrade() {
        let old_connector = negotiate(3..=4, 1, 2).unwrap_err();
        assert!(
            old_connector
                .to_string()
                .contains("connector must be upgraded")
        );
        let old_runtime = negotiate(1..=2, 5, 6).unwrap_err();
        assert!(old_runtime.to_string().contains("runtime must be upgraded"));
        assert!(negotiate(1..=2, 2, 1).is_err(), "inverted range");
    }
}
