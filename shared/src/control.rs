//! The control-stream state machine, without I/O.
//!
//! Feed it frames the peer sent ([`Control::handle_frame`]) and the passage of time
//! ([`Control::handle_timeout`]); take from it the frames to send ([`Control::poll_transmit`]),
//! what happened ([`Control::poll_event`]) and when to wake it next ([`Control::poll_timeout`]).
//! Time is always an argument, so tests drive it with a fake clock and nothing sleeps.
//!
//! The exchange:
//! ```text
//! connector                         runtime
//!   Hello{versions, id, tools} ──▶
//!                              ◀── HelloAck{version, heartbeat} | HelloReject{reason}
//!   Heartbeat ◀──────────────────▶ Heartbeat          (every interval, both ways)
//!   RenewRequest{csr} ──────────▶
//!                              ◀── RenewResponse{chain | error}
//!   Drain ──────────────────────▶                     (connector shutting down)
//!                              ◀── GoAway{reconnect_within}   (runtime shutting down)
//! ```
//! A peer silent for [`MISSED_HEARTBEATS`] intervals is lost.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use crate::policy::{AllowRule, RuleError, RuleSet};
use crate::version::{self, negotiate};
use crate::wire::{self, ControlFrame, RejectReason, control_frame::Kind};

/// Default interval between heartbeats.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// How many intervals of silence mean the peer is gone.
pub const MISSED_HEARTBEATS: u32 = 3;

/// How long the hello exchange may take.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits on what a hello may carry, so a peer cannot balloon the runtime's memory.
pub const MAX_TOOLS: usize = 1024;
/// Longest audit public key kept from a hello (an Ed25519 key is 52 characters).
pub const MAX_AUDIT_KEY_LEN: usize = 128;
/// Most tunnels one connector keeps at once (one per runtime replica it is configured
/// with); a hello naming a slot at or above it is refused.
pub const MAX_TUNNEL_SLOTS: u32 = 8;
/// Longest replica name kept from an ack.
pub const MAX_REPLICA_LEN: usize = 128;

/// Which end of the tunnel this machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The edge connector (dials out, sends hello).
    Connector,
    /// The cloud runtime (accepts, answers hello).
    Runtime,
}

/// Why the peer is considered gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// No hello / hello answer in time.
    HelloTimeout,
    /// No frame for [`MISSED_HEARTBEATS`] intervals.
    HeartbeatTimeout,
}

/// The connector's hello as the runtime accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerHello {
    /// Negotiated version.
    pub version: u32,
    /// Connector build version.
    pub build_version: String,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Tools the connector offers.
    pub tools: Vec<wire::ToolSpec>,
    /// The connector's local policy, which it enforces on every call.
    pub local_policy: RuleSet,
    /// The public half of the connector's audit key (`ed25519:<base64>`), empty when it
    /// sent none or an over-long one.
    pub audit_key: String,
    /// Which of the connector's concurrent tunnels this is (below [`MAX_TUNNEL_SLOTS`]).
    pub slot: u32,
}

/// Something the owner of the state machine must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Runtime side: the connector's hello was accepted.
    Accepted(PeerHello),
    /// Connector side: the runtime accepted our hello.
    Established {
        /// Negotiated version.
        version: u32,
        /// The runtime's wall clock at the ack, Unix milliseconds.
        server_time_unix_ms: u64,
        /// The replica that answered (empty from a runtime that does not say).
        replica: String,
    },
    /// The hello was refused (by us on the runtime, by the runtime on the connector); the
    /// connection should close once the transmit queue is flushed.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// For the operator.
        message: String,
    },
    /// Runtime side: the connector is draining; send it no new calls.
    PeerDraining,
    /// Connector side: the runtime is going away; reconnect within this window.
    GoAway {
        /// Upper bound of the reconnect delay.
        reconnect_within: Duration,
    },
    /// Runtime side: the connector asks for a renewed certificate.
    RenewalRequested {
        /// Echo in the answer.
        request_id: u64,
        /// The CSR.
        csr_der: Vec<u8>,
    },
    /// Connector side: the runtime answered a renewal.
    RenewalAnswered {
        /// Which request.
        request_id: u64,
        /// The PEM chain, or the runtime's reason.
        result: Result<String, String>,
    },
    /// The peer is gone.
    PeerLost(Lost),
}

/// The peer broke the protocol; close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame that is not allowed in the current state or for this role.
    #[error("unexpected {frame} frame in state {state}")]
    UnexpectedFrame {
        /// Frame kind.
        frame: &'static str,
        /// Our state.
        state: &'static str,
    },
    /// A frame with no kind set.
    #[error("control frame without a kind")]
    Empty,
    /// The runtime acknowledged a version we never offered.
    #[error("runtime chose protocol version {0}, which we did not offer")]
    BadVersion(u32),
    /// A hello beyond the limits.
    #[error("hello carries {0} tools, more than the limit of {MAX_TOOLS}")]
    TooManyTools(usize),
    /// A hello naming a tunnel slot beyond [`MAX_TUNNEL_SLOTS`].
    #[error("hello names tunnel slot {0}; slots go up to {max}", max = MAX_TUNNEL_SLOTS - 1)]
    BadSlot(u32),
    /// A hello whose local policy does not parse.
    #[error("hello carries a malformed local policy: {0}")]
    BadPolicy(#[from] RuleError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake { deadline: Instant },
    Established,
    Closed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Handshake { .. } => "handshake",
            State::Established => "established",
            State::Closed => "closed",
        }
    }
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Hello(_) => "hello",
        Kind::HelloAck(_) => "hello-ack",
        Kind::HelloReject(_) => "hello-reject",
        Kind::Heartbeat(_) => "heartbeat",
        Kind::Drain(_) => "drain",
        Kind::GoAway(_) => "go-away",
        Kind::RenewRequest(_) => "renew-request",
        Kind::RenewResponse(_) => "renew-response",
    }
}

/// Runtime-side settings for accepting hellos.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// The connector id the client certificate names; a hello naming another is refused.
    pub expected_connector_id: String,
    /// Versions the runtime speaks.
    pub versions: RangeInclusive<u32>,
    /// Heartbeat interval to impose.
    pub heartbeat_interval: Duration,
    /// The runtime's wall clock, Unix milliseconds, echoed in the ack.
    pub unix_time_ms: u64,
    /// This replica's name, sent in the ack.
    pub replica: String,
}

/// The control-stream state machine of one connection.
#[derive(Debug)]
pub struct Control {
    role: Role,
    state: State,
    runtime: Option<RuntimeSettings>,
    heartbeat_interval: Duration,
    last_rx: Instant,
    next_heartbeat: Instant,
    heartbeat_seq: u64,
    next_renewal_id: u64,
    pending_renewal: Option<u64>,
    transmit: VecDeque<ControlFrame>,
    events: VecDeque<Event>,
}

impl Control {
    /// The connector's side; queues `hello` for sending at once.
    pub fn connector(hello: wire::Hello, now: Instant) -> Self {
        let mut ctl = Self::new(Role::Connector, DEFAULT_HEARTBEAT_INTERVAL, now);
        ctl.push(Kind::Hello(hello));
        ctl
    }

    /// The runtime's side; waits for the connector's hello.
    pub fn runtime(settings: RuntimeSettings, now: Instant) -> Self {
        let mut ctl = Self::new(Role::Runtime, settings.heartbeat_interval, now);
        ctl.runtime = Some(settings);
        ctl
    }

    fn new(role: Role, heartbeat_interval: Duration, now: Instant) -> Self {
        Self {
            role,
            state: State::Handshake {
                deadline: now + HELLO_TIMEOUT,
            },
            runtime: None,
            heartbeat_interval,
            last_rx: now,
            next_heartbeat: now + heartbeat_interval,
            heartbeat_seq: 0,
            next_renewal_id: 1,
            pending_renewal: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether the hello exchange has completed and the peer is not lost.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the connection should be closed (after flushing [`Control::poll_transmit`]).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// When the peer last sent a frame. Both sides heartbeat every interval and drop a peer
    /// silent for [`MISSED_HEARTBEATS`] of them, so on an established connection a recent
    /// value means the control stream works both ways: a health report's "last round trip".
    pub fn last_heard(&self) -> Instant {
        self.last_rx
    }

    /// The heartbeat interval in force (the runtime's choice once established).
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    fn push(&mut self, kind: Kind) {
        self.transmit.push_back(ControlFrame { kind: Some(kind) });
    }

    fn unexpected(&self, kind: &Kind) -> ProtocolError {
        ProtocolError::UnexpectedFrame {
            frame: kind_name(kind),
            state: self.state.name(),
        }
    }

    /// Processes one frame from the peer.
    pub fn handle_frame(&mut self, frame: ControlFrame, now: Instant) -> Result<(), ProtocolError> {
        let kind = frame.kind.ok_or(ProtocolError::Empty)?;
        if self.state == State::Closed {
            return Err(self.unexpected(&kind));
        }
        self.last_rx = now;
        match (self.role, self.state, kind) {
            (Role::Runtime, State::Handshake { .. }, Kind::Hello(hello)) => {
                self.accept_hello(hello, now)
            }
            (Role::Connector, State::Handshake { .. }, Kind::HelloAck(ack)) => {
                if !version::SUPPORTED.contains(&ack.version) {
                    self.state = State::Closed;
                    return Err(ProtocolError::BadVersion(ack.version));
                }
                if ack.heartbeat_interval_ms > 0 {
                    self.heartbeat_interval = Duration::from_millis(ack.heartbeat_interval_ms)
                        .max(Duration::from_millis(100));
                }
                self.state = State::Established;
                self.next_heartbeat = now + self.heartbeat_interval;
                self.events.push_back(Event::Established {
                    version: ack.version,
                    server_time_unix_ms: ack.server_time_unix_ms,
                    replica: Some(ack.replica)
                        .filter(|r| r.len() <= MAX_REPLICA_LEN && !r.chars().any(char::is_control))
                        .unwrap_or_default(),
                });
                Ok(())
            }
            (Role::Connector, State::Handshake { .. }, Kind::HelloReject(rej)) => {
                self.state = State::Closed;
                let reason =
                    RejectReason::try_from(rej.reason).unwrap_or(RejectReason::Unspecified);
                let message = if reason == RejectReason::UpgradeRequired {
                    format!(
                        "{} (runtime speaks protocol versions {}..={}, this connector {}..={}): upgrade the edge-connector",
                        rej.message,
                        rej.min_version,
                        rej.max_version,
                        version::SUPPORTED.start(),
                        version::SUPPORTED.end()
                    )
                } else {
                    rej.message
                };
                self.events.push_back(Event::Rejected { reason, message });
                Ok(())
            }
            (_, State::Established, Kind::Heartbeat(_)) => Ok(()),
            (Role::Runtime, State::Established, Kind::Drain(_)) => {
                self.events.push_back(Event::PeerDraining);
                Ok(())
            }
            (Role::Connector, State::Established, Kind::GoAway(g)) => {
                self.events.push_back(Event::GoAway {
                    reconnect_within: Duration::from_millis(g.reconnect_within_ms.min(300_000)),
                });
                Ok(())
            }
            (Role::Runtime, State::Established, Kind::RenewRequest(r)) => {
                self.events.push_back(Event::RenewalRequested {
                    request_id: r.request_id,
                    csr_der: r.csr_der,
                });
                Ok(())
            }
            (Role::Connector, State::Established, Kind::RenewResponse(r))
                if self.pending_renewal == Some(r.request_id) =>
            {
                self.pending_renewal = None;
                let result = if r.error.is_empty() && !r.cert_chain_pem.is_empty() {
                    Ok(r.cert_chain_pem)
                } else if r.error.is_empty() {
                    Err("runtime returned an empty certificate chain".to_owned())
                } else {
                    Err(r.error)
                };
                self.events.push_back(Event::RenewalAnswered {
                    request_id: r.request_id,
                    result,
                });
                Ok(())
            }
            (_, _, kind) => {
                let err = self.unexpected(&kind);
                self.state = State::Closed;
                Err(err)
            }
        }
    }

    fn accept_hello(&mut self, hello: wire::Hello, now: Instant) -> Result<(), ProtocolError> {
        let Some(settings) = self.runtime.clone() else {
            return Err(ProtocolError::UnexpectedFrame {
                frame: "hello",
                state: "connector",
            });
        };
        let reject = |ctl: &mut Self, reason: RejectReason, message: String| {
            ctl.push(Kind::HelloReject(wire::HelloReject {
                reason: reason as i32,
                message: message.clone(),
                min_version: *settings.versions.start(),
                max_version: *settings.versions.end(),
            }));
            ctl.state = State::Closed;
            ctl.events.push_back(Event::Rejected { reason, message });
        };
        if hello.tools.len() > MAX_TOOLS || hello.local_policy.len() > MAX_TOOLS {
            let n = hello.tools.len().max(hello.local_policy.len());
            reject(
                self,
                RejectReason::Malformed,
                format!("too many tools or policy rules ({n})"),
            );
            return Err(ProtocolError::TooManyTools(n));
        }
        if hello.slot >= MAX_TUNNEL_SLOTS {
            reject(
                self,
                RejectReason::Malformed,
                format!("tunnel slot {} is out of range", hello.slot),
            );
            return Err(ProtocolError::BadSlot(hello.slot));
        }
        let local_policy = match hello
            .local_policy
            .iter()
            .map(AllowRule::from_wire)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(rules) => RuleSet(rules),
            Err(e) => {
                reject(self, RejectReason::Malformed, e.to_string());
                return Err(e.into());
            }
        };
        let version = match negotiate(
            settings.versions.clone(),
            hello.min_version,
            hello.max_version,
        ) {
            Ok(v) => v,
            Err(e) => {
                reject(self, RejectReason::UpgradeRequired, e.to_string());
                return Ok(());
            }
        };
        if hello.connector_id != settings.expected_connector_id {
            reject(
                self,
                RejectReason::IdentityMismatch,
                "hello names a different connector than the client certificate".to_owned(),
            );
            return Ok(());
        }
        self.push(Kind::HelloAck(wire::HelloAck {
            version,
            heartbeat_interval_ms: u64::try_from(self.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX),
            server_time_unix_ms: settings.unix_time_ms,
            replica: settings.replica.clone(),
        }));
        self.state = State::Established;
        self.next_heartbeat = now + self.heartbeat_interval;
        self.events.push_back(Event::Accepted(PeerHello {
            version,
            build_version: hello.build_version,
            capabilities: hello.capabilities,
            tools: hello.tools,
            local_policy,
            audit_key: Some(hello.audit_key)
                .filter(|k| k.len() <= MAX_AUDIT_KEY_LEN && !k.chars().any(char::is_control))
                .unwrap_or_default(),
            slot: hello.slot,
        }));
        Ok(())
    }

    /// Advances timers: sends heartbeats, notices a silent peer.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Handshake { deadline } if now >= deadline => {
                self.state = State::Closed;
                self.events.push_back(Event::PeerLost(Lost::HelloTimeout));
            }
            State::Established => {
                if now >= self.last_rx + self.heartbeat_interval * MISSED_HEARTBEATS {
                    self.state = State::Closed;
                    self.events
                        .push_back(Event::PeerLost(Lost::HeartbeatTimeout));
                    return;
                }
                if now >= self.next_heartbeat {
                    self.heartbeat_seq += 1;
                    self.push(Kind::Heartbeat(wire::Heartbeat {
                        seq: self.heartbeat_seq,
                    }));
                    self.next_heartbeat = now + self.heartbeat_interval;
                }
            }
            _ => {}
        }
    }

    /// When [`Control::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Handshake { deadline } => Some(deadline),
            State::Established => Some(
                self.next_heartbeat
                    .min(self.last_rx + self.heartbeat_interval * MISSED_HEARTBEATS),
            ),
            State::Closed => None,
        }
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<ControlFrame> {
        self.transmit.pop_front()
    }

    /// The next event to act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Connector: announce draining. Runtime: announce going away, asking for a reconnect
    /// spread over `reconnect_within`.
    pub fn drain(&mut self, reason: &str, reconnect_within: Duration) {
        if self.state != State::Established {
            return;
        }
        match self.role {
            Role::Connector => self.push(Kind::Drain(wire::Drain {
                reason: reason.to_owned(),
            })),
            Role::Runtime => self.push(Kind::GoAway(wire::GoAway {
                reason: reason.to_owned(),
                reconnect_within_ms: u64::try_from(reconnect_within.as_millis())
                    .unwrap_or(u64::MAX),
            })),
        }
    }

    /// Connector: asks for a certificate for `csr_der`. Returns the request id, or `None` if a
    /// renewal is already pending or the connection is not established.
    pub fn request_renewal(&mut self, csr_der: Vec<u8>) -> Option<u64> {
        if self.role != Role::Connector
            || self.state != State::Established
            || self.pending_renewal.is_some()
        {
            return None;
        }
        let request_id = self.next_renewal_id;
        self.next_renewal_id += 1;
        self.pending_renewal = Some(request_id);
        self.push(Kind::RenewRequest(wire::RenewRequest {
            request_id,
            csr_der,
        }));
        Some(request_id)
    }

    /// Runtime: answers a renewal request.
    pub fn answer_renewal(&mut self, request_id: u64, result: Result<String, String>) {
        if self.role != Role::Runtime || self.state != State::Established {
            return;
        }
        let (cert_chain_pem, error) = match result {
            Ok(chain) => (chain, String::new()),
            Err(e) => (String::new(), e),
        };
        self.push(Kind::RenewResponse(wire::RenewResponse {
            request_id,
            cert_chain_pem,
            error,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(min: u32, max: u32, id: &str) -> wire::Hello {
        wire::Hello {
            min_version: min,
            max_version: max,
            connector_id: id.into(),
            build_version: "0.1.0".into(),
            capabilities: vec![],
            tools: vec![],
            local_policy: vec![],
            audit_key: String::new(),
            slot: 0,
        }
    }

    fn runtime(now: Instant) -> Control {
        Control::runtime(
            RuntimeSettings {
                expected_connector_id: "c1".into(),
                versions: version::SUPPORTED,
                heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
                unix_time_ms: 42,
                replica: "rt-1".into(),
            },
            now,
        )
    }

    /// Moves every queued frame from `from` to `to`.
    fn pump(from: &mut Control, to: &mut Control, now: Instant) {
        while let Some(f) = from.poll_transmit() {
            to.handle_frame(f, now).unwrap();
        }
    }

    fn established(t0: Instant) -> (Control, Control) {
        let mut c = Control::connector(hello(1, 1, "c1"), t0);
        let mut r = runtime(t0);
        pump(&mut c, &mut r, t0);
        pump(&mut r, &mut c, t0);
        assert!(matches!(r.poll_event(), Some(Event::Accepted(_))));
        assert_eq!(
            c.poll_event(),
            Some(Event::Established {
                version: 1,
                server_time_unix_ms: 42,
                replica: "rt-1".into(),
            })
        );
        (c, r)
    }

    #[test]
    fn hello_exchange_establishes_both_sides() {
        let (c, r) = established(Instant::now());
        assert!(c.is_established() && r.is_established());
    }

    #[test]
    fn old_connector_is_told_to_upgrade() {
        let t0 = Instant::now();
        let mut c = Control::connector(hello(0, 0, "c1"), t0);
        let mut r = runtime(t0);
        pump(&mut c, &mut r, t0);
        assert!(r.is_closed());
        pump(&mut r, &mut c, t0);
        match c.poll_event() {
            Some(Event::Rejected { reason, message }) => {
                assert_eq!(reason, RejectReason::UpgradeRequired);
                assert!(message.contains("upgrade the edge-connector"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hello_naming_another_connector_is_refused() {
        let t0 = Instant::now();
        let mut c = Control::connector(hello(1, 1, "someone-else"), t0);
        let mut r = runtime(t0);
        pump(&mut c, &mut r, t0);
        assert!(matches!(
            r.poll_event(),
            Some(Event::Rejected {
                reason: RejectReason::IdentityMismatch,
                ..
            })
        ));
    }

    #[test]
    fn tunnel_slot_reaches_the_runtime_and_beyond_the_limit_is_refused() {
        let t0 = Instant::now();
        let mut c = Control::connector(
            wire::Hello {
                slot: 1,
                ..hello(1, 1, "c1")
            },
            t0,
        );
        let mut r = runtime(t0);
        pump(&mut c, &mut r, t0);
        assert!(matches!(
            r.poll_event(),
            Some(Event::Accepted(PeerHello { slot: 1, .. }))
        ));

        let far = wire::Hello {
            slot: MAX_TUNNEL_SLOTS,
            ..hello(1, 1, "c1")
        };
        let mut c = Control::connector(far, t0);
        let mut r = runtime(t0);
        let frame = c.poll_transmit().unwrap();
        assert!(matches!(
            r.handle_frame(frame, t0),
            Err(ProtocolError::BadSlot(s)) if s == MAX_TUNNEL_SLOTS
        ));
        assert!(matches!(
            r.poll_event(),
            Some(Event::Rejected {
                reason: RejectReason::Malformed,
                ..
            })
        ));
    }

    #[test]
    fn silent_peer_is_lost_after_missed_heartbeats() {
        let t0 = Instant::now();
        let (mut c, _r) = established(t0);
        c.handle_timeout(t0 + DEFAULT_HEARTBEAT_INTERVAL);
        assert!(matches!(
            c.poll_transmit().and_then(|f| f.kind),
            Some(Kind::Heartbeat(_))
        ));
        c.handle_timeout(t0 + DEFAULT_HEARTBEAT_INTERVAL * MISSED_HEARTBEATS);
        assert_eq!(
            c.poll_event(),
            Some(Event::PeerLost(Lost::HeartbeatTimeout))
        );
        assert!(c.is_closed());
    }

    #[test]
    fn heartbeats_keep_the_peer_alive() {
        let t0 = Instant::now();
        let (mut c, mut r) = established(t0);
        for i in 1..20u32 {
            let now = t0 + DEFAULT_HEARTBEAT_INTERVAL * i;
            c.handle_timeout(now);
            r.handle_timeout(now);
            pump(&mut c, &mut r, now);
            pump(&mut r, &mut c, now);
        }
        assert!(c.is_established() && r.is_established());
        assert_eq!(c.poll_event(), None);
    }

    #[test]
    fn last_heard_moves_with_each_frame_from_the_peer() {
        let t0 = Instant::now();
        let (mut c, mut r) = established(t0);
        assert_eq!(c.last_heard(), t0);
        let later = t0 + DEFAULT_HEARTBEAT_INTERVAL;
        r.handle_timeout(later);
        c.handle_timeout(later);
        assert_eq!(c.last_heard(), t0, "our own heartbeat is not an answer");
        pump(&mut r, &mut c, later);
        assert_eq!(c.last_heard(), later);
    }

    #[test]
    fn missing_hello_times_out() {
        let t0 = Instant::now();
        let mut r = runtime(t0);
        assert_eq!(r.poll_timeout(), Some(t0 + HELLO_TIMEOUT));
        r.handle_timeout(t0 + HELLO_TIMEOUT);
        assert_eq!(r.poll_event(), Some(Event::PeerLost(Lost::HelloTimeout)));
    }

    #[test]
    fn frames_out_of_order_are_protocol_errors() {
        let t0 = Instant::now();
        let mut r = runtime(t0);
        let hb = ControlFrame {
            kind: Some(Kind::Heartbeat(wire::Heartbeat { seq: 1 })),
        };
        assert!(matches!(
            r.handle_frame(hb, t0),
            Err(ProtocolError::UnexpectedFrame {
                frame: "heartbeat",
                ..
            })
        ));
        let (_c, mut r) = established(t0);
        assert_eq!(
            r.handle_frame(ControlFrame { kind: None }, t0),
            Err(ProtocolError::Empty)
        );
        let again = ControlFrame {
            kind: Some(Kind::Hello(hello(1, 1, "c1"))),
        };
        assert!(r.handle_frame(again, t0).is_err());
    }

    #[test]
    fn renewal_round_trip_and_unsolicited_answers() {
        let t0 = Instant::now();
        let (mut c, mut r) = established(t0);
        let id = c.request_renewal(vec![1, 2, 3]).unwrap();
        assert_eq!(c.request_renewal(vec![4]), None, "one renewal at a time");
        pump(&mut c, &mut r, t0);
        assert_eq!(
            r.poll_event(),
            Some(Event::RenewalRequested {
                request_id: id,
                csr_der: vec![1, 2, 3]
            })
        );
        r.answer_renewal(id, Ok("PEM".into()));
        pump(&mut r, &mut c, t0);
        assert_eq!(
            c.poll_event(),
            Some(Event::RenewalAnswered {
                request_id: id,
                result: Ok("PEM".into())
            })
        );
        // A second, unsolicited answer is a protocol violation.
        r.answer_renewal(id, Ok("PEM".into()));
        let f = r.poll_transmit().unwrap();
        assert!(c.handle_frame(f, t0).is_err());
    }

    #[test]
    fn drain_and_go_away_reach_the_other_side() {
        let t0 = Instant::now();
        let (mut c, mut r) = established(t0);
        c.drain("sigterm", Duration::ZERO);
        pump(&mut c, &mut r, t0);
        assert_eq!(r.poll_event(), Some(Event::PeerDraining));
        r.drain("restart", Duration::from_secs(10));
        pump(&mut r, &mut c, t0);
        assert_eq!(
            c.poll_event(),
            Some(Event::GoAway {
                reconnect_within: Duration::from_secs(10)
            })
        );
    }
}
