//! Validated call requests and typed call failures.
//!
//! [`wire::CallRequest`] is what arrives from the network; [`Call`] is what the connector acts
//! on, with every field checked once here so tools never see an unbounded or malformed value.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::frame::DecodeError;
use crate::identity::TenantId;
use crate::wire::{self, ErrorCode, call_response::Outcome};

/// The longest call a runtime may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest tool name accepted.
pub const MAX_TOOL_NAME: usize = 128;

/// Longest user or agent id accepted.
pub const MAX_PRINCIPAL: usize = 256;

/// Most values a confirmed call may be bound to ([`wire::CallRequest::binding`]).
pub const MAX_BINDING: usize = 16;

/// Longest name or value of a binding.
pub const MAX_BINDING_LEN: usize = 256;

/// The [`wire::Hello::capabilities`] entry of a connector that acknowledges each call
/// ([`wire::CallAccepted`]) before its tool starts.
pub const CALL_ACK: &str = "call-ack";

/// Whether running a call of `spec` twice does no harm: the tool only reads, or it is
/// idempotent and destroys nothing. Only such a call may be retried on another tunnel when
/// it is not known whether the first one ran.
pub fn harmless_to_repeat(spec: &wire::ToolSpec) -> bool {
    spec.read_only || (spec.idempotent && !spec.destructive)
}

/// A tool name: `[A-Za-z0-9_.-]{1,128}`, the alphabet MCP clients accept everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolName(String);

impl ToolName {
    /// Validates a tool name.
    pub fn parse(s: &str) -> Result<Self, DecodeError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_TOOL_NAME
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DecodeError::Malformed(format!(
                "tool name must match [A-Za-z0-9_.-]{{1,{MAX_TOOL_NAME}}}"
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// On whose behalf a call runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant.
    pub tenant: TenantId,
    /// The human user's stable id (see [`wire::Caller::user`]).
    pub user: String,
    /// The agent application.
    pub agent: String,
}

/// A W3C trace context, kept only when `traceparent` is well formed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent`, `00-<32 hex>-<16 hex>-<2 hex>`.
    pub traceparent: Option<String>,
    /// `tracestate`, bounded to 512 bytes.
    pub tracestate: Option<String>,
}

fn valid_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(parts.as_slice(), [v, t, p, f] if hex(v, 2) && hex(t, 32) && hex(p, 16) && hex(f, 2))
}

/// A validated tool call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Runtime-assigned id.
    pub id: u64,
    /// Which tool.
    pub tool: ToolName,
    /// Arguments, JSON text (validated as JSON by the tool layer).
    pub arguments_json: Vec<u8>,
    /// Time budget, at most [`MAX_TIMEOUT`].
    pub timeout: Duration,
    /// Trace context to continue.
    pub trace: TraceContext,
    /// On whose behalf.
    pub caller: Caller,
    /// Whether the tool may ask the caller questions during the call.
    pub interactive: bool,
    /// The values the user confirmed (from a preview); the tool refuses with
    /// [`ErrorCode::Stale`] when one no longer holds.
    pub binding: BTreeMap<String, String>,
    /// The identity provider's proof of who the user is (see
    /// [`wire::CallRequest::user_proof`]); empty for a local user.
    pub user_proof: UserProof,
    /// The user's approval of this call (see [`wire::CallRequest::approval`]); empty when
    /// there is none.
    pub approval: UserProof,
}

/// An ID token proving who a call's user is. Never printed: it is a bearer credential at
/// its audience.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserProof(String);

impl UserProof {
    /// Wraps a token (empty: none).
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token, to verify it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for UserProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "UserProof(none)"
        } else {
            "UserProof(..)"
        })
    }
}

/// Checks a binding: a few short printable names and values.
fn valid_binding(b: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, DecodeError> {
    let printable = |s: &String| {
        !s.is_empty() && s.len() <= MAX_BINDING_LEN && !s.chars().any(char::is_control)
    };
    if b.len() > MAX_BINDING || !b.iter().all(|(k, v)| printable(k) && printable(v)) {
        return Err(DecodeError::Malformed(format!(
            "binding must be at most {MAX_BINDING} names and values of 1 to {MAX_BINDING_LEN} printable characters"
        )));
    }
    Ok(b)
}

impl TryFrom<wire::CallRequest> for Call {
    type Error = DecodeError;

    fn try_from(req: wire::CallRequest) -> Result<Self, Self::Error> {
        let caller = req.caller.ok_or(DecodeError::Missing("caller"))?;
        let principal = |s: String, what: &'static str| {
            if s.is_empty() || s.len() > MAX_PRINCIPAL || s.chars().any(char::is_control) {
                Err(DecodeError::Malformed(format!(
                    "{what} must be 1 to {MAX_PRINCIPAL} printable characters"
                )))
            } else {
                Ok(s)
            }
        };
        if req.timeout_ms == 0 {
            return Err(DecodeError::Missing("timeout"));
        }
        let trace = TraceContext {
            traceparent: Some(req.traceparent).filter(|t| valid_traceparent(t)),
            tracestate: Some(req.tracestate).filter(|t| !t.is_empty() && t.len() <= 512),
        };
        Ok(Self {
            id: req.call_id,
            tool: ToolName::parse(&req.tool)?,
            arguments_json: req.arguments_json,
            timeout: Duration::from_millis(req.timeout_ms).min(MAX_TIMEOUT),
            trace,
            interactive: req.interactive,
            binding: valid_binding(req.binding)?,
            user_proof: UserProof::new(req.user_proof),
            approval: UserProof::new(req.approval),
            caller: Caller {
                tenant: caller
                    .tenant
                    .parse()
                    .map_err(|e| DecodeError::Malformed(format!("caller tenant: {e}")))?,
                user: principal(caller.user, "caller user")?,
                agent: principal(caller.agent, "caller agent")?,
            },
        })
    }
}

/// A typed call failure, as either side reports it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct CallFailure {
    /// What kind.
    pub code: ErrorCode,
    /// A sentence for the agent; never a credential.
    pub message: String,
    /// When a retry makes sense.
    pub retry_after: Option<Duration>,
    /// With [`ErrorCode::AuthorizationRequired`]: how the user connects the upstream
    /// (boxed: rare, and it would triple the size of every `Result` carrying a failure).
    pub authorization: Option<Box<wire::AuthorizationRequest>>,
    /// With [`ErrorCode::ApprovalRequired`]: what the user must approve, and how.
    pub approval: Option<Box<wire::ApprovalChallenge>>,
}

impl CallFailure {
    /// A failure without a retry hint.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            authorization: None,
            approval: None,
        }
    }

    /// The same failure with a retry hint.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Whether another attempt (elsewhere or later) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::Draining
                | ErrorCode::Unavailable
                | ErrorCode::DeadlineExceeded
                | ErrorCode::RateLimited
        )
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::CallError {
        wire::CallError {
            code: self.code as i32,
            message: self.message.clone(),
            retry_after_ms: self
                .retry_after
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            authorization: self.authorization.as_deref().cloned(),
            approval: self.approval.as_deref().cloned(),
        }
    }

    /// From the wire form; an unknown code from a newer peer reads as `Unspecified`.
    pub fn from_wire(e: wire::CallError) -> Self {
        Self {
            code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified),
            message: e.message,
            retry_after: (e.retry_after_ms > 0).then(|| Duration::from_millis(e.retry_after_ms)),
            authorization: e.authorization.map(Box::new),
            approval: e.approval.map(Box::new),
        }
    }
}

/// The outcome of a call as the runtime sees it.
pub type CallOutcome = Result<wire::ToolOutput, CallFailure>;

/// Turns a response's outcome into [`CallOutcome`].
pub fn outcome_from_wire(resp: wire::CallResponse) -> CallOutcome {
    match resp.outcome {
        Some(Outcome::Output(out)) => Ok(out),
        Some(Outcome::Error(e)) => Err(CallFailure::from_wire(e)),
        Some(Outcome::Effect(_)) => Err(CallFailure::new(
            ErrorCode::Malformed,
            "connector answered a call with a preview",
        )),
        None => Err(CallFailure::new(
            ErrorCode::Malformed,
            "connector sent a response with neither output nor error",
        )),
    }
}

/// The outcome of a preview: what the call would do.
pub type PreviewOutcome = Result<wire::Effect, CallFailure>;

/// Turns a preview's response into [`PreviewOutcome`].
pub fn effect_from_wire(resp: wire::CallResponse) -> PreviewOutcome {
    match resp.outcome {
        Some(Outcome::Effect(e)) => Ok(e),
        Some(Outcome::Error(e)) => Err(CallFailure::from_wire(e)),
        _ => Err(CallFailure::new(
            ErrorCode::Malformed,
            "connector answered a preview without an effect",
        )),
    }
}

/// Builds the response frame of a preview (small by construction: no size check needed
/// beyond the frame limit the writer enforces).
pub fn preview_frame(
    call_id: u64,
    outcome: PreviewOutcome,
    actions: Vec<wire::UpstreamAction>,
) -> wire::CallFrame {
    let outcome = match outcome {
        Ok(e) => Outcome::Effect(e),
        Err(e) => Outcome::Error(e.to_wire()),
    };
    wire::CallFrame {
        kind: Some(wire::call_frame::Kind::Response(wire::CallResponse {
            call_id,
            outcome: Some(outcome),
            actions,
            receipt: None,
        })),
    }
}

/// Builds the response frame for an outcome, the upstream requests made for it and the
/// connector's receipt. An output too large for one frame becomes a typed error the agent
/// can act on (ask for less), never a stream that ends without an answer.
pub fn response_frame(
    call_id: u64,
    outcome: CallOutcome,
    actions: Vec<wire::UpstreamAction>,
    receipt: Option<wire::CallReceipt>,
) -> wire::CallFrame {
    let frame = |outcome: CallOutcome, actions| {
        let outcome = match outcome {
            Ok(out) => Outcome::Output(out),
            Err(e) => Outcome::Error(e.to_wire()),
        };
        wire::CallFrame {
            kind: Some(wire::call_frame::Kind::Response(wire::CallResponse {
                call_id,
                outcome: Some(outcome),
                actions,
                receipt: receipt.clone(),
            })),
        }
    };
    let full = frame(outcome, actions);
    let len = prost::Message::encoded_len(&full);
    if len <= crate::frame::MAX_FRAME_LEN {
        return full;
    }
    let actions = match full.kind {
        Some(wire::call_frame::Kind::Response(r)) => r.actions,
        _ => Vec::new(),
    };
    frame(
        Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            format!(
                "the result is {len} bytes, more than one response carries ({} bytes); ask for less (fewer lines, a smaller size limit, fewer items or fields)",
                crate::frame::MAX_FRAME_LEN
            ),
        )),
        actions,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> wire::CallRequest {
        wire::CallRequest {
            call_id: 9,
            tool: "diag.ping".into(),
            arguments_json: b"{}".to_vec(),
            timeout_ms: 5_000,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: String::new(),
            caller: Some(wire::Caller {
                tenant: "acme".into(),
                user: "alice".into(),
                agent: "triage-bot".into(),
            }),
            interactive: false,
            binding: BTreeMap::new(),
            user_proof: String::new(),
            approval: String::new(),
        }
    }

    #[test]
    fn only_reads_and_harmless_idempotent_tools_may_run_twice() {
        let spec = |read_only, idempotent, destructive| wire::ToolSpec {
            read_only,
            idempotent,
            destructive,
            ..Default::default()
        };
        assert!(harmless_to_repeat(&spec(true, true, false)));
        assert!(
            harmless_to_repeat(&spec(false, true, false)),
            "setting a label"
        );
        assert!(!harmless_to_repeat(&spec(false, false, false)), "a comment");
        assert!(!harmless_to_repeat(&spec(false, true, true)), "a delete");
    }

    #[test]
    fn accepts_a_well_formed_request() {
        let call = Call::try_from(request()).unwrap();
        assert_eq!(call.tool.as_str(), "diag.ping");
        assert!(call.trace.traceparent.is_some());
        assert_eq!(call.timeout, Duration::from_secs(5));
    }

    #[test]
    fn refuses_bad_fields() {
        let mut r = request();
        r.caller = None;
        assert_eq!(
            Call::try_from(r).unwrap_err(),
            DecodeError::Missing("caller")
        );
        let mut r = request();
        r.tool = "rm -rf".into();
        assert!(Call::try_from(r).is_err());
        let mut r = request();
        r.timeout_ms = 0;
        assert!(Call::try_from(r).is_err());
        let mut r = request();
        r.caller.as_mut().unwrap().tenant = "../other".into();
        assert!(Call::try_from(r).is_err());
        let mut r = request();
        r.caller.as_mut().unwrap().user = "a\nb".into();
        assert!(Call::try_from(r).is_err());
        let mut r = request();
        r.binding.insert("head_sha".into(), "a\nb".into());
        assert!(Call::try_from(r).is_err());
        let mut r = request();
        r.binding = (0..=MAX_BINDING)
            .map(|i| (i.to_string(), "x".into()))
            .collect();
        assert!(Call::try_from(r).is_err());
        let mut r = request();
        r.binding.insert("head_sha".into(), "abc".into());
        assert_eq!(Call::try_from(r).unwrap().binding["head_sha"], "abc");
    }

    #[test]
    fn clamps_the_timeout_and_drops_a_bad_traceparent() {
        let mut r = request();
        r.timeout_ms = u64::MAX;
        r.traceparent = "garbage".into();
        let call = Call::try_from(r).unwrap();
        assert_eq!(call.timeout, MAX_TIMEOUT);
        assert_eq!(call.trace.traceparent, None);
    }

    #[test]
    fn an_output_too_large_for_a_frame_becomes_a_typed_error() {
        let out = wire::ToolOutput {
            text: "x".repeat(crate::frame::MAX_FRAME_LEN + 1),
            ..Default::default()
        };
        let action = wire::UpstreamAction {
            provider: "ghes".into(),
            ..Default::default()
        };
        let frame = response_frame(7, Ok(out), vec![action.clone()], None);
        let mut buf = bytes::BytesMut::new();
        assert!(crate::frame::encode(&frame, &mut buf).is_ok());
        let Some(wire::call_frame::Kind::Response(resp)) = frame.kind else {
            panic!("not a response");
        };
        assert_eq!(resp.call_id, 7);
        assert_eq!(resp.actions, vec![action]);
        let failure = outcome_from_wire(resp).unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidArguments);
        assert!(
            failure.message.contains("ask for less"),
            "{}",
            failure.message
        );
    }
}
