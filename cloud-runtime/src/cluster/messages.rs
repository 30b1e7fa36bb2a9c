//! What replicas say to each other over NATS, as protobuf (the tunnel's own call frames
//! travel inside, unchanged).
//!
//! Replicas trust each other as much as they trust the shared store: NATS must be reachable
//! by the replicas only (credentials, TLS), and every message is still decoded as untrusted
//! input: a malformed one is dropped with a warning.

use shared::wire;

/// Which process sent a directory message, and where its list of tunnels stands.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Origin {
    /// The replica's name (`serve --replica-id`), for logs.
    #[prost(string, tag = "1")]
    pub replica: String,
    /// Random per process start: a replica that restarted is a new instance.
    #[prost(uint64, tag = "2")]
    pub instance: u64,
    /// Bumped by every change to the sender's list; a receiver that sees a gap asks for a
    /// [`Snapshot`].
    #[prost(uint64, tag = "3")]
    pub generation: u64,
}

/// A tunnel a replica holds, with what routing a call to it needs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tunnel {
    /// Tenant.
    #[prost(string, tag = "1")]
    pub tenant: String,
    /// Connector id.
    #[prost(string, tag = "2")]
    pub connector: String,
    /// The tunnel's session id (unique per tunnel).
    #[prost(string, tag = "3")]
    pub session_id: String,
    /// The tools the connector offers.
    #[prost(message, repeated, tag = "4")]
    pub tools: Vec<wire::ToolSpec>,
    /// The connector's local policy.
    #[prost(message, repeated, tag = "5")]
    pub local_policy: Vec<wire::PolicyRule>,
}

/// A change to a replica's tunnels, or its heartbeat.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DirectoryMessage {
    /// Who sent it, at which generation.
    #[prost(message, optional, tag = "1")]
    pub origin: Option<Origin>,
    /// What changed.
    #[prost(oneof = "directory_message::Kind", tags = "2, 3, 4")]
    pub kind: Option<directory_message::Kind>,
}

/// The variants of [`DirectoryMessage`].
pub mod directory_message {
    /// One change, or none.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// A tunnel came up.
        #[prost(message, tag = "2")]
        Up(super::Tunnel),
        /// The tunnel with this session id went down.
        #[prost(string, tag = "3")]
        Down(String),
        /// Nothing changed; the sender is alive at this generation.
        #[prost(bool, tag = "4")]
        Beat(bool),
    }
}

/// Every tunnel a replica holds, at one generation: the answer to a snapshot request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Snapshot {
    /// Who holds them, at which generation.
    #[prost(message, optional, tag = "1")]
    pub origin: Option<Origin>,
    /// The tunnels (of this page).
    #[prost(message, repeated, tag = "2")]
    pub tunnels: Vec<Tunnel>,
    /// How many pages the whole snapshot takes, each within one NATS message (0 from a
    /// sender that does not page: one).
    #[prost(uint32, tag = "3")]
    pub pages: u32,
}

/// A request for one page of a replica's [`Snapshot`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotRequest {
    /// Which page, from 0.
    #[prost(uint32, tag = "1")]
    pub page: u32,
}

/// The start of a relayed call: which tunnel, and the call stream's first frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RelayStart {
    /// Tenant.
    #[prost(string, tag = "1")]
    pub tenant: String,
    /// The connector to run it on.
    #[prost(string, tag = "2")]
    pub connector: String,
    /// A call request, a preview or an authorization callback.
    #[prost(message, optional, tag = "3")]
    pub frame: Option<wire::CallFrame>,
}

/// From the replica that took the MCP request to the one holding the tunnel.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RelayUp {
    /// With an answer or a cancellation: the call's key, the reply subject its start named.
    #[prost(string, tag = "10")]
    pub key: String,
    /// Which message.
    #[prost(oneof = "relay_up::Kind", tags = "1, 2, 3")]
    pub kind: Option<relay_up::Kind>,
}

/// The variants of [`RelayUp`].
pub mod relay_up {
    /// One message.
    // Built, encoded and dropped at once: never held in bulk, so the size gap is moot.
    #[allow(clippy::large_enum_variant)]
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// Run this.
        #[prost(message, tag = "1")]
        Start(super::RelayStart),
        /// The MCP client's answer to a question the tool asked.
        #[prost(message, tag = "2")]
        Answer(shared::wire::PeerResponse),
        /// The client cancelled (or went away): stop the call.
        #[prost(bool, tag = "3")]
        Cancel(bool),
    }
}

/// From the replica holding the tunnel back to the one that took the MCP request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RelayDown {
    /// Which message.
    #[prost(oneof = "relay_down::Kind", tags = "1, 2, 3")]
    pub kind: Option<relay_down::Kind>,
}

/// The variants of [`RelayDown`].
pub mod relay_down {
    /// One message.
    // Built, encoded and dropped at once: never held in bulk, so the size gap is moot.
    #[allow(clippy::large_enum_variant)]
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// A frame of the call stream from the connector (progress, log, question), or its
        /// end ([`Response`](shared::wire::call_frame::Kind::Response)). For a preview,
        /// a response with no outcome means the connector is too old to preview.
        #[prost(message, tag = "1")]
        Frame(shared::wire::CallFrame),
        /// The call is still running here (sent at once and then every second).
        #[prost(bool, tag = "2")]
        Alive(bool),
        /// No tunnel here takes it any more: it did not run; try another.
        #[prost(string, tag = "3")]
        NotHere(String),
    }
}

/// One HTTP header.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value, as sent.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// An MCP request for a session another replica holds, as it arrived.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionRequest {
    /// HTTP method.
    #[prost(string, tag = "1")]
    pub method: String,
    /// Path and query.
    #[prost(string, tag = "2")]
    pub uri: String,
    /// Headers (hop-by-hop ones left out).
    #[prost(message, repeated, tag = "3")]
    pub headers: Vec<Header>,
    /// The body.
    #[prost(bytes = "vec", tag = "4")]
    pub body: Vec<u8>,
}

/// The start of the answer to a [`SessionRequest`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionHead {
    /// HTTP status.
    #[prost(uint32, tag = "1")]
    pub status: u32,
    /// Headers.
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<Header>,
}

/// The answer to a [`SessionRequest`], piece by piece (an SSE stream may last the session).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionDown {
    /// Which piece.
    #[prost(oneof = "session_down::Kind", tags = "1, 2, 3, 4")]
    pub kind: Option<session_down::Kind>,
}

/// The variants of [`SessionDown`].
pub mod session_down {
    /// One piece.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// Status and headers, first.
        #[prost(message, tag = "1")]
        Head(super::SessionHead),
        /// Body bytes.
        #[prost(bytes = "vec", tag = "2")]
        Chunk(Vec<u8>),
        /// The body ended.
        #[prost(bool, tag = "3")]
        End(bool),
        /// The answer is still being written (every second while it is quiet).
        #[prost(bool, tag = "4")]
        Alive(bool),
    }
}
