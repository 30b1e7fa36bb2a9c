//! Which replica of the runtime this process is. Replicas share one store; each connector's
//! row names the replica holding its tunnel, so a replica that starts again clears only the
//! tunnels it held itself (its own were all cut), not those its peers hold.

use std::fmt;
use std::str::FromStr;

/// A replica's name: 1 to 63 letters, digits, `.`, `_` or `-`, not starting with `-`
/// (a host or pod name fits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaId(String);

/// Why a replica name was refused.
#[derive(Debug, thiserror::Error)]
#[error("replica id {0:?}: use 1 to 63 letters, digits, '.', '_' or '-', not starting with '-'")]
pub struct BadReplicaId(String);

impl FromStr for ReplicaId {
    type Err = BadReplicaId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=63).contains(&s.len())
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadReplicaId(s.chars().take(80).collect()))
        }
    }
}

impl ReplicaId {
    /// This machine's host name (a pod's name under Kubernetes), or `runtime` if it has
    /// none that fits: the default, so one process per host needs no flag.
    pub fn of_this_host() -> Self {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .and_then(|h| h.trim().parse().ok())
            .unwrap_or_else(|| Self("runtime".to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_plain() {
        for good in ["a", "rt-1", "runtime-7d9f8b6c5-x2x4z", "eu.west_1"] {
            assert_eq!(good.parse::<ReplicaId>().unwrap().as_str(), good);
        }
        for bad in ["", "-a", "a b", "a/b", "é", &"a".repeat(64)] {
            assert!(bad.parse::<ReplicaId>().is_err(), "{bad:?}");
        }
        assert!(!ReplicaId::of_this_host().as_str().is_empty());
    }
}
