//! The protobuf messages of the tunnel, declared with `prost` derives (no `.proto` build step).
//!
//! Tags are the compatibility contract: never reuse or renumber one. A peer ignores fields it
//! does not know, so adding a field is backwards compatible; changing the meaning of one is a
//! new [`crate::version::PROTOCOL_VERSION`].

/// A frame on the control stream (the first bidirectional stream the connector opens).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlFrame {
    /// Which control message this is.
    #[prost(oneof = "control_frame::Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub kind: Option<control_frame::Kind>,
}

/// The variants of [`ControlFrame`].
pub mod control_frame {
    /// One control message.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// Connector → runtime, first frame: who I am and what I speak.
        #[prost(message, tag = "1")]
        Hello(super::Hello),
        /// Runtime → connector: hello accepted, with the negotiated version.
        #[prost(message, tag = "2")]
        HelloAck(super::HelloAck),
        /// Runtime → connector: hello refused; the connection closes after it.
        #[prost(message, tag = "3")]
        HelloReject(super::HelloReject),
        /// Either way: I am alive.
        #[prost(message, tag = "4")]
        Heartbeat(super::Heartbeat),
        /// Connector → runtime: I am shutting down; route no new calls to me.
        #[prost(message, tag = "5")]
        Drain(super::Drain),
        /// Runtime → connector: I am going away; reconnect after the given delay.
        #[prost(message, tag = "6")]
        GoAway(super::GoAway),
        /// Connector → runtime: please sign this CSR for my current identity.
        #[prost(message, tag = "7")]
        RenewRequest(super::RenewRequest),
        /// Runtime → connector: the renewed certificate chain, or why not.
        #[prost(message, tag = "8")]
        RenewResponse(super::RenewResponse),
    }
}

/// The connector's opening message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    /// Lowest protocol version the connector speaks.
    #[prost(uint32, tag = "1")]
    pub min_version: u32,
    /// Highest protocol version the connector speaks.
    #[prost(uint32, tag = "2")]
    pub max_version: u32,
    /// The connector id (must match the certificate; the certificate wins).
    #[prost(string, tag = "3")]
    pub connector_id: String,
    /// The connector's build version, shown in `connector list`.
    #[prost(string, tag = "4")]
    pub build_version: String,
    /// Optional features the connector supports.
    #[prost(string, repeated, tag = "5")]
    pub capabilities: Vec<String>,
    /// The tools this connector serves, after its local policy.
    #[prost(message, repeated, tag = "6")]
    pub tools: Vec<ToolSpec>,
    /// The connector's local policy (which the cloud cannot change), so the runtime can
    /// show and explain exactly what the connector will run. The connector enforces it on
    /// every call whatever the runtime decides.
    #[prost(message, repeated, tag = "7")]
    pub local_policy: Vec<PolicyRule>,
    /// The public half of the key the connector signs its own audit log with,
    /// `ed25519:<base64>` (empty from a connector without one), so that the runtime can
    /// check the connector's seals and receipts.
    #[prost(string, tag = "20")]
    pub audit_key: String,
    /// Which of the connector's concurrent tunnels this is (0 for the first; below
    /// [`crate::control::MAX_TUNNEL_SLOTS`]): a connector that keeps tunnels to several
    /// replicas numbers them, and a new tunnel replaces only an older one of its own slot.
    #[prost(uint32, tag = "21")]
    pub slot: u32,
}

/// One allow-rule of a policy (see [`crate::policy`]).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PolicyRule {
    /// Tool-name patterns.
    #[prost(string, repeated, tag = "1")]
    pub tools: Vec<String>,
    /// Repository patterns (`pattern` or `instance:pattern`); empty means any repository.
    #[prost(string, repeated, tag = "2")]
    pub repos: Vec<String>,
    /// The instance a rule without repository patterns is limited to; empty means any.
    #[prost(string, tag = "3")]
    pub instance: String,
}

/// A tool the connector offers, in the shape MCP's tools/list needs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ToolSpec {
    /// Tool name, unique within the connector.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Human-readable description.
    #[prost(string, tag = "2")]
    pub description: String,
    /// JSON Schema of the arguments, as JSON text.
    #[prost(string, tag = "3")]
    pub input_schema_json: String,
    /// JSON Schema of the structured output, as JSON text; empty when the tool has none.
    #[prost(string, tag = "4")]
    pub output_schema_json: String,
    /// The tool only reads.
    #[prost(bool, tag = "5")]
    pub read_only: bool,
    /// The tool may destroy data.
    #[prost(bool, tag = "6")]
    pub destructive: bool,
    /// Calling the tool twice with the same arguments has no further effect.
    #[prost(bool, tag = "7")]
    pub idempotent: bool,
    /// The tool may ask the MCP client questions mid-call (elicitation, sampling); the
    /// runtime then keeps the call stream open for the answers.
    #[prost(bool, tag = "8")]
    pub interactive: bool,
    /// The arguments naming the repository the tool acts on, joined with `/` (GitHub
    /// `owner`, `repo`; GitLab `project`); empty for tools that act on no single repository.
    /// Both sides read the call's target from them to apply repository rules.
    #[prost(string, repeated, tag = "9")]
    pub target_args: Vec<String>,
    /// Argument values that make a call of this tool need the user's confirmation although
    /// the tool is not destructive (an approval: `{"event": "APPROVE"}`), as a JSON object
    /// text; a call needs it when every key has that value. Empty: only `destructive` asks.
    #[prost(string, tag = "10")]
    pub confirm_when_json: String,
    /// The upstream instances (the connector's `[[provider]]` names) the tool can act on,
    /// chosen by its `instance` argument (optional when there is one); empty for tools that
    /// reach no upstream. Both sides read a call's instance from it to apply instance rules.
    #[prost(string, repeated, tag = "11")]
    pub instances: Vec<String>,
}

/// The runtime's acceptance of a hello.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloAck {
    /// The negotiated protocol version.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// How often each side sends a heartbeat, in milliseconds.
    #[prost(uint64, tag = "2")]
    pub heartbeat_interval_ms: u64,
    /// The runtime's wall clock (Unix milliseconds), so the connector can spot clock skew.
    #[prost(uint64, tag = "3")]
    pub server_time_unix_ms: u64,
    /// Which runtime replica answered (its `--replica-id`), so a connector that keeps
    /// tunnels to several replicas can tell when two of them reach the same one.
    #[prost(string, tag = "4")]
    pub replica: String,
}

/// Why a hello was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RejectReason {
    /// Not set (a peer bug).
    Unspecified = 0,
    /// No protocol version in common; the connector must be upgraded (or the runtime).
    UpgradeRequired = 1,
    /// The hello contradicts the certificate.
    IdentityMismatch = 2,
    /// The hello was malformed.
    Malformed = 3,
}

/// The runtime's refusal of a hello.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReject {
    /// Why.
    #[prost(enumeration = "RejectReason", tag = "1")]
    pub reason: i32,
    /// A sentence for the operator.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Lowest version the runtime speaks.
    #[prost(uint32, tag = "3")]
    pub min_version: u32,
    /// Highest version the runtime speaks.
    #[prost(uint32, tag = "4")]
    pub max_version: u32,
}

/// A liveness beat.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Heartbeat {
    /// Sender's sequence number.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
}

/// The connector is draining.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Drain {
    /// Why (for logs).
    #[prost(string, tag = "1")]
    pub reason: String,
}

/// The runtime is going away.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GoAway {
    /// Why (for logs).
    #[prost(string, tag = "1")]
    pub reason: String,
    /// Upper bound of the random delay before reconnecting, in milliseconds; spreading
    /// reconnects over it keeps a runtime restart from becoming a reconnect storm.
    #[prost(uint64, tag = "2")]
    pub reconnect_within_ms: u64,
}

/// A certificate renewal request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RenewRequest {
    /// Matches the response to the request.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// A DER-encoded PKCS#10 CSR for the same identity, with a fresh key.
    #[prost(bytes = "vec", tag = "2")]
    pub csr_der: Vec<u8>,
}

/// A certificate renewal answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RenewResponse {
    /// The request this answers.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// PEM chain (leaf first) on success; empty on failure.
    #[prost(string, tag = "2")]
    pub cert_chain_pem: String,
    /// Why the renewal failed; empty on success.
    #[prost(string, tag = "3")]
    pub error: String,
}

/// A frame on a call stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CallFrame {
    /// Which call message this is.
    #[prost(oneof = "call_frame::Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub kind: Option<call_frame::Kind>,
}

/// The variants of [`CallFrame`].
pub mod call_frame {
    /// One call message.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// Runtime → connector, first frame on the stream.
        #[prost(message, tag = "1")]
        Request(super::CallRequest),
        /// Connector → runtime, zero or more before the response.
        #[prost(message, tag = "2")]
        Progress(super::CallProgress),
        /// Connector → runtime, last frame on the stream.
        #[prost(message, tag = "3")]
        Response(super::CallResponse),
        /// Connector → runtime: a log message for the MCP client.
        #[prost(message, tag = "4")]
        Log(super::CallLog),
        /// Connector → runtime: a request the tool needs answered by the MCP client
        /// (elicitation, sampling), relayed by the runtime.
        #[prost(message, tag = "5")]
        PeerRequest(super::PeerRequest),
        /// Runtime → connector: the client's answer to a [`PeerRequest`](super::PeerRequest).
        #[prost(message, tag = "6")]
        PeerResponse(super::PeerResponse),
        /// Runtime → connector, first frame on the stream instead of a request: a user came
        /// back from the upstream's consent page; exchange the code. Answered with a
        /// [`CallResponse`](super::CallResponse).
        #[prost(message, tag = "7")]
        Authorize(super::AuthorizeCallback),
        /// Runtime → connector, first frame on the stream instead of a request: say what
        /// this call would do, without doing it (no write upstream), so the user can be
        /// asked to confirm exactly that. Answered with a [`CallResponse`](super::CallResponse) whose outcome is
        /// an [`Effect`](super::Effect) (or an error). A connector too old to know it answers `Malformed`.
        #[prost(message, tag = "8")]
        Preview(super::CallRequest),
        /// Connector → runtime, from a connector with the [`CALL_ACK`](crate::call::CALL_ACK)
        /// capability: the request passed its checks and the tool starts now. Until it
        /// arrives the runtime may take the call back (see [`CallAccepted`](super::CallAccepted)).
        #[prost(message, tag = "9")]
        Accepted(super::CallAccepted),
        /// Runtime → connector, first frame on the stream instead of a request: a tenant
        /// administrator lists the users' upstream connections this connector holds (their
        /// tokens in its vault), or revokes one. Answered with a
        /// [`CallResponse`](super::CallResponse) whose output's structured content is
        /// `{"connections": [...]}` ([`UpstreamConnection`](super::UpstreamConnection)'s
        /// fields) or `{"revoked": bool}`. A connector too old to know it answers
        /// `Malformed`.
        #[prost(message, tag = "10")]
        Connections(super::ConnectionsRequest),
    }
}

/// An administrator's look at the users' upstream connections a connector holds, or the
/// revocation of one (both `revoke_` fields set).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectionsRequest {
    /// Runtime-assigned id, for logs.
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    /// The administrator: the tenant (must be the connector's own), their name as `user`,
    /// and how they came in (`admin console`, `admin-token ID`) as `agent`.
    #[prost(message, optional, tag = "2")]
    pub caller: Option<Caller>,
    /// The provider instance of the connection to revoke; empty to list.
    #[prost(string, tag = "3")]
    pub revoke_provider: String,
    /// The user (as the connector keys their tokens) of the connection to revoke.
    #[prost(string, tag = "4")]
    pub revoke_user: String,
}

/// One user's connection to one upstream, as a connector lists it: never a token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamConnection {
    /// The provider instance (its name in the connector's configuration).
    pub provider: String,
    /// The user, as the connector keys their tokens (the runtime's user id, or the
    /// identity their provider proved).
    pub user: String,
    /// The upstream account, when known.
    pub account: Option<String>,
    /// `oauth` (the user connected) or `admin` (an operator stored a token).
    pub source: String,
    /// Whether a refresh token is kept too.
    pub refreshable: bool,
    /// When the access token expires, Unix ms, if it does.
    pub expires_at_ms: Option<i64>,
    /// When the connection was made, Unix ms.
    pub connected_at_ms: i64,
    /// When its tokens last changed, Unix ms.
    pub updated_at_ms: i64,
}

/// The upstream's authorization answer, relayed from the runtime's callback page. Only the
/// connector can use it: it alone holds the client secret and the PKCE verifier.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthorizeCallback {
    /// Runtime-assigned id, for logs.
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    /// The signed-in user the runtime verified in the browser (must be the user the
    /// connector made the request for).
    #[prost(message, optional, tag = "2")]
    pub caller: Option<Caller>,
    /// The `state` the upstream sent back.
    #[prost(string, tag = "3")]
    pub state: String,
    /// The authorization code.
    #[prost(string, tag = "4")]
    pub code: String,
    /// The user's proof, as in [`CallRequest::user_proof`]: the connector stores the
    /// upstream grant under the identity it proves.
    #[prost(string, tag = "5")]
    pub user_proof: String,
}

/// Who a call is made for: the human user and the agent application acting for them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Caller {
    /// Tenant of the call (must be the connector's own tenant).
    #[prost(string, tag = "1")]
    pub tenant: String,
    /// The user on whose behalf the call is made, by their stable id (`u-` and 32 hex
    /// digits; `local:uid=N` for an operator on the runtime's host), never by a name: the
    /// connector keys the user's upstream tokens by it, and names can pass to someone else.
    #[prost(string, tag = "2")]
    pub user: String,
    /// The agent (application) making the call.
    #[prost(string, tag = "3")]
    pub agent: String,
}

/// A tool call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CallRequest {
    /// Runtime-assigned call id, for logs and correlation.
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    /// Tool name.
    #[prost(string, tag = "2")]
    pub tool: String,
    /// Arguments as a JSON object text.
    #[prost(bytes = "vec", tag = "3")]
    pub arguments_json: Vec<u8>,
    /// Time budget in milliseconds, relative so that clock skew does not matter.
    #[prost(uint64, tag = "4")]
    pub timeout_ms: u64,
    /// W3C `traceparent` of the caller's span.
    #[prost(string, tag = "5")]
    pub traceparent: String,
    /// W3C `tracestate`.
    #[prost(string, tag = "6")]
    pub tracestate: String,
    /// On whose behalf.
    #[prost(message, optional, tag = "7")]
    pub caller: Option<Caller>,
    /// The runtime keeps its side of the stream open to relay answers to the tool's
    /// questions; when false it has already finished it, and the tool may not ask.
    #[prost(bool, tag = "8")]
    pub interactive: bool,
    /// The values the user approved after a preview ([`Effect::binding`], such as
    /// `head_sha`): the tool acts only while they still hold, and answers
    /// [`ErrorCode::Stale`] when they do not. Empty for a call nobody confirmed.
    #[prost(btree_map = "string, string", tag = "9")]
    pub binding: std::collections::BTreeMap<String, String>,
    /// The ID token the tenant's identity provider signed at the caller's most recent
    /// sign-in (compact JWS), or empty for a user the provider does not know (a local
    /// user). The connector verifies it against the provider's keys itself and takes the
    /// user from it, not from [`Caller::user`]: the runtime cannot forge one.
    #[prost(string, tag = "12")]
    pub user_proof: String,
    /// The user's approval of this exact call: an ID token of the tenant's identity provider
    /// from a sign-in made for it, whose `nonce` is the one an [`ApprovalChallenge`] of the
    /// connector named. Empty when the user approved nothing.
    #[prost(string, tag = "13")]
    pub approval: String,
}

/// A connector's acknowledgement of a [`CallRequest`]: sent once, before the tool makes any
/// upstream request. A call the runtime lost before this arrived had not started (or its
/// acknowledgement was lost with the tunnel), so one that is harmless to repeat may run
/// elsewhere; a call lost after it is reported as a retryable failure and never re-sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CallAccepted {
    /// The request's [`CallRequest::call_id`].
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
}

/// What a call would do, from a preview: the text the user is asked to confirm, and the
/// values it was computed from, which the confirmed call is then bound to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Effect {
    /// One or a few lines for a human: what changes where (pull request number and title,
    /// branches, head commit, merge method). Empty when the tool has no preview.
    #[prost(string, tag = "1")]
    pub text: String,
    /// The values the text shows that must still hold when the call runs.
    #[prost(btree_map = "string, string", tag = "2")]
    pub binding: std::collections::BTreeMap<String, String>,
}

/// Progress of a long call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CallProgress {
    /// Work done so far.
    #[prost(double, tag = "1")]
    pub progress: f64,
    /// Total work, when known.
    #[prost(double, optional, tag = "2")]
    pub total: Option<f64>,
    /// Human-readable note.
    #[prost(string, tag = "3")]
    pub message: String,
}

/// A log message emitted by a tool during a call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CallLog {
    /// MCP logging level name (`debug`, `info`, `notice`, `warning`, `error`, ...).
    #[prost(string, tag = "1")]
    pub level: String,
    /// Logger name, optional.
    #[prost(string, tag = "2")]
    pub logger: String,
    /// The message data, JSON text.
    #[prost(bytes = "vec", tag = "3")]
    pub data_json: Vec<u8>,
}

/// What a tool asks the MCP client, through the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PeerMethod {
    /// Not set (a peer bug).
    Unspecified = 0,
    /// `elicitation/create`: ask the user for input.
    Elicit = 1,
    /// `sampling/createMessage`: ask the client's model.
    Sample = 2,
}

/// A request from the tool to the MCP client.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerRequest {
    /// Matches the answer; unique within the call.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Which request.
    #[prost(enumeration = "PeerMethod", tag = "2")]
    pub method: i32,
    /// Its params, JSON text (as MCP defines them for the method).
    #[prost(bytes = "vec", tag = "3")]
    pub params_json: Vec<u8>,
}

/// The MCP client's answer to a [`PeerRequest`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerResponse {
    /// The request answered.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The result, JSON text; empty on error.
    #[prost(bytes = "vec", tag = "2")]
    pub result_json: Vec<u8>,
    /// Why it failed; empty on success.
    #[prost(string, tag = "3")]
    pub error: String,
}

/// Typed failure of a call (not a tool error: those are [`ToolOutput::is_error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ErrorCode {
    /// Not set (a peer bug).
    Unspecified = 0,
    /// The connector has no such tool.
    UnknownTool = 1,
    /// The arguments do not fit the tool's schema.
    InvalidArguments = 2,
    /// The deadline passed before the call finished.
    DeadlineExceeded = 3,
    /// The caller cancelled.
    Cancelled = 4,
    /// A policy refused the call.
    Denied = 5,
    /// The connector is draining and takes no new calls; retry on another.
    Draining = 6,
    /// The upstream could not be reached or failed; retryable.
    Unavailable = 7,
    /// The request was malformed at the protocol level.
    Malformed = 8,
    /// A bug or unexpected condition on the connector.
    Internal = 9,
    /// The upstream has no such thing (or hides it from this user).
    NotFound = 10,
    /// The upstream refused the user (their own permissions there).
    Forbidden = 11,
    /// The upstream's rate limit is exhausted; see `retry_after_ms`.
    RateLimited = 12,
    /// The user has not connected the upstream yet (or the grant was revoked); see
    /// [`CallError::authorization`].
    AuthorizationRequired = 13,
    /// The upstream refused the request as invalid or conflicting (exists already, not
    /// mergeable, validation failed); the message says why.
    Rejected = 14,
    /// What the user confirmed no longer holds (the pull request's head moved, the branch
    /// points elsewhere): nothing was done; the user must be asked again.
    Stale = 15,
    /// The connector needs a fresh proof of who the user is, signed by the tenant's
    /// identity provider (none was sent, or it is too old): the user signs in again.
    SignInRequired = 16,
    /// The connector's local policy wants the user's own approval of this call at the
    /// identity provider; see [`CallError::approval`].
    ApprovalRequired = 17,
}

/// What the user must do to connect an upstream account.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthorizationRequest {
    /// The provider instance (connector configuration name).
    #[prost(string, tag = "1")]
    pub provider: String,
    /// The upstream's consent URL (carrying the connector's `state`, never a secret).
    #[prost(string, tag = "2")]
    pub authorize_url: String,
    /// The `state` in that URL, so the runtime can match the callback to this request.
    #[prost(string, tag = "3")]
    pub state: String,
    /// How long the connector keeps the request open, in milliseconds.
    #[prost(uint64, tag = "4")]
    pub expires_in_ms: u64,
    /// Human name of the upstream, for the page the user sees ("GitHub Enterprise at ...").
    #[prost(string, tag = "5")]
    pub display_name: String,
}

/// A typed call failure.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CallError {
    /// What kind of failure.
    #[prost(enumeration = "ErrorCode", tag = "1")]
    pub code: i32,
    /// A sentence for the agent; never carries a credential.
    #[prost(string, tag = "2")]
    pub message: String,
    /// When retrying makes sense, after how long.
    #[prost(uint64, tag = "3")]
    pub retry_after_ms: u64,
    /// With [`ErrorCode::AuthorizationRequired`]: how the user connects.
    #[prost(message, optional, tag = "4")]
    pub authorization: Option<AuthorizationRequest>,
    /// With [`ErrorCode::ApprovalRequired`]: what the user approves, and how.
    #[prost(message, optional, tag = "5")]
    pub approval: Option<ApprovalChallenge>,
}

/// The connector asks the user to approve one call by signing in again at the tenant's
/// identity provider with `nonce`: a digest of the call (tool, target, arguments, the values
/// it is held to) and a secret challenge only the connector knows. The ID token that comes
/// back is the approval ([`CallRequest::approval`]); the runtime cannot make one without the
/// user's real sign-in, nor reuse it for another call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApprovalChallenge {
    /// The `nonce` the sign-in must carry.
    #[prost(string, tag = "1")]
    pub nonce: String,
    /// What the call will do, for the page the user approves on.
    #[prost(string, tag = "2")]
    pub summary: String,
    /// The identity provider the approval must come from.
    #[prost(string, tag = "3")]
    pub issuer: String,
    /// How long the connector keeps the challenge, in milliseconds.
    #[prost(uint64, tag = "4")]
    pub expires_in_ms: u64,
}

/// A tool's result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ToolOutput {
    /// Structured content as JSON text (empty when the tool has none).
    #[prost(bytes = "vec", tag = "1")]
    pub structured_json: Vec<u8>,
    /// A short text rendering for the model.
    #[prost(string, tag = "2")]
    pub text: String,
    /// The tool ran and reports failure (an MCP `isError` result).
    #[prost(bool, tag = "3")]
    pub is_error: bool,
    /// MCP content blocks (JSON array text) when the result is more than its text
    /// rendering (images, audio, embedded resources); empty means one text block of `text`.
    #[prost(bytes = "vec", tag = "4")]
    pub content_json: Vec<u8>,
}

/// The end of a call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CallResponse {
    /// The call this answers.
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    /// Output or error.
    #[prost(oneof = "call_response::Outcome", tags = "2, 3, 5")]
    pub outcome: Option<call_response::Outcome>,
    /// The upstream requests the call made, for the audit trail.
    #[prost(message, repeated, tag = "4")]
    pub actions: Vec<UpstreamAction>,
    /// The connector's signed receipt for the call: its record of the call is in the
    /// connector's own audit log at this place. Absent from connectors without a log.
    #[prost(message, optional, tag = "6")]
    pub receipt: Option<CallReceipt>,
}

/// Where a call's record is in the connector's own audit log (the `call` record written
/// before the tool ran, or its refusal; earlier builds named the outcome record),
/// signed with the connector's audit key ([`Hello::audit_key`]) ([`crate::receipt`]). The
/// runtime keeps it with its own record of the call, so either side's record can be checked
/// against the other's.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CallReceipt {
    /// The record's sequence number in the connector's chain.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// The record's SHA-256, hex.
    #[prost(string, tag = "2")]
    pub record_hash: String,
    /// Ed25519 signature, base64: over [`crate::receipt::message`] for a receipt signed
    /// alone, over [`crate::receipt::batch_message`] for one signed with others.
    #[prost(string, tag = "3")]
    pub signature: String,
    /// The inclusion path of this receipt's message in its batch, nearest sibling first
    /// (32 bytes each); empty when signed alone.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub path: Vec<Vec<u8>>,
    /// Its leaf's place in the batch.
    #[prost(uint32, tag = "5")]
    pub index: u32,
    /// How many receipts the batch signed (0 or 1 when signed alone).
    #[prost(uint32, tag = "6")]
    pub count: u32,
}

/// One HTTP request the connector made upstream for a call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpstreamAction {
    /// Provider instance.
    #[prost(string, tag = "1")]
    pub provider: String,
    /// HTTP method.
    #[prost(string, tag = "2")]
    pub method: String,
    /// The route template (`/repos/{owner}/{repo}/issues`), never the query string.
    #[prost(string, tag = "3")]
    pub route: String,
    /// HTTP status, 0 when no response arrived.
    #[prost(uint32, tag = "4")]
    pub status: u32,
    /// Time taken, microseconds.
    #[prost(uint64, tag = "5")]
    pub duration_us: u64,
    /// Attempt number, from 1 (retries of idempotent requests count up).
    #[prost(uint32, tag = "6")]
    pub attempt: u32,
}

/// The variants of [`CallResponse`].
pub mod call_response {
    /// How a call ended.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Outcome {
        /// The tool ran.
        #[prost(message, tag = "2")]
        Output(super::ToolOutput),
        /// The call failed before or instead of a tool result.
        #[prost(message, tag = "3")]
        Error(super::CallError),
        /// A preview's answer: what the call would do.
        #[prost(message, tag = "5")]
        Effect(super::Effect),
    }
}
