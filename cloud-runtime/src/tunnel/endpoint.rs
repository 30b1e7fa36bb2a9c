//! The QUIC endpoint's configuration that must survive a restart.
//!
//! After a crash, connectors still hold connections to the old process. The first packet
//! each sends to the restarted runtime should be answered with a stateless reset, which ends
//! the connection at once, instead of leaving the connector to notice the silence after
//! [`shared::control::MISSED_HEARTBEATS`] heartbeats. That takes two things to stay the same
//! across restarts, both derived from the data directory's persisted reset secret: the
//! reset key (the reset token of a connection id), and the key that recognizes our own
//! connection ids: quinn drops a packet whose connection id it does not recognize without
//! a reset, and its default key is random per process. And the resets must keep up with a
//! fleet ([`MIN_RESET_INTERVAL`]).

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use quinn_proto::HashedConnectionIdGenerator;

/// Domain separation for the connection-id key derived from the reset secret.
const CID_KEY_LABEL: &[u8] = b"quic connection id validation key v1";

/// The shortest interval between two stateless resets: none. quinn's default (20 ms) is
/// measured against one clock reading per pass over the socket, so it allows one reset per
/// pass; after a restart, with a fleet's packets arriving together, most went unanswered
/// and some connectors found out only by missed heartbeats. What keeps resets from being
/// abused is elsewhere: a reset is smaller than the packet that caused it (no
/// amplification), and only packets whose connection id passes the keyed check get one
/// (random garbage passes with a chance of one in 2^32).
pub const MIN_RESET_INTERVAL: Duration = Duration::ZERO;

/// The endpoint configuration: reset key and connection-id generator from `reset_secret`,
/// resets at up to one per [`MIN_RESET_INTERVAL`].
pub fn endpoint_config(reset_secret: &[u8]) -> quinn::EndpointConfig {
    let reset_key = hmac::Key::new(hmac::HMAC_SHA256, reset_secret);
    let cid_key = cid_key(reset_secret);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset_key));
    config
        .cid_generator(move || Box::new(HashedConnectionIdGenerator::from_key(cid_key)))
        .min_reset_interval(MIN_RESET_INTERVAL);
    config
}

/// The connection-id key: the first 8 bytes of HMAC-SHA256(reset secret, label).
fn cid_key(reset_secret: &[u8]) -> u64 {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, reset_secret),
        CID_KEY_LABEL,
    );
    let mut first = [0u8; 8];
    first.copy_from_slice(tag.as_ref().get(..8).unwrap_or(&[0u8; 8]));
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use quinn_proto::ConnectionIdGenerator;

    use super::*;

    fn generator(secret: &[u8]) -> HashedConnectionIdGenerator {
        HashedConnectionIdGenerator::from_key(cid_key(secret))
    }

    #[test]
    fn a_restarted_runtime_recognizes_the_connection_ids_of_the_one_before() {
        let before = generator(b"the persisted secret").generate_cid();
        assert!(generator(b"the persisted secret").validate(&before).is_ok());
        // Another key, as quinn's default random one per process, does not: it would drop
        // the packet without the stateless reset.
        assert!(generator(b"another secret").validate(&before).is_err());
    }
}
