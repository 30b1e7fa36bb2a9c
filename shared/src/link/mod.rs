//! One tunnel connection, over either transport: QUIC (quinn) or SSH channels over TCP
//! (russh).
//!
//! Everything above this module (the control protocol, call streams, deadlines,
//! cancellation) sees a [`Link`] that opens and accepts bidirectional streams and closes with
//! a [`CloseCode`]; it never knows which transport carries it. Over SSH the control stream
//! is one channel and the call streams are HTTP/2 streams on a second, long-lived channel
//! ([`mux`]); the connection's application close is an SSH disconnect whose description
//! carries the code ([`ssh`]).

pub mod mux;
pub mod ssh;

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::close::CloseCode;

/// Which transport carries a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// QUIC over UDP.
    Quic,
    /// SSH over TCP (directly or through an HTTP CONNECT proxy).
    Tcp,
}

impl Via {
    /// The name `connector list` and logs show: `quic` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Quic => "quic",
            Via::Tcp => "tcp",
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a link (or a stream on it) is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The peer closed the connection with an application code.
    #[error("closed by the peer (code {code}): {reason}")]
    Closed {
        /// The numeric [`CloseCode`].
        code: u64,
        /// The peer's words.
        reason: String,
    },
    /// We closed it.
    #[error("closed locally")]
    LocallyClosed,
    /// The transport failed (timeout, reset, protocol error).
    #[error("{0}")]
    Lost(String),
}

impl LinkError {
    /// The peer's close code and reason, when it closed with one.
    pub fn close_code(&self) -> Option<(Option<CloseCode>, &str)> {
        match self {
            LinkError::Closed { code, reason } => Some((CloseCode::from_code(*code), reason)),
            _ => None,
        }
    }
}

impl From<quinn::ConnectionError> for LinkError {
    fn from(e: quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::ApplicationClosed(c) => LinkError::Closed {
                code: c.error_code.into_inner(),
                reason: String::from_utf8_lossy(&c.reason).into_owned(),
            },
            quinn::ConnectionError::LocallyClosed => LinkError::LocallyClosed,
            other => LinkError::Lost(other.to_string()),
        }
    }
}

/// A tunnel connection.
#[derive(Debug, Clone)]
pub enum Link {
    /// A QUIC connection.
    Quic(quinn::Connection),
    /// An SSH session over TCP.
    Ssh(ssh::SshLink),
}

impl Link {
    /// The transport.
    pub fn via(&self) -> Via {
        match self {
            Link::Quic(_) => Via::Quic,
            Link::Ssh(_) => Via::Tcp,
        }
    }

    /// The peer's address (for SSH through a proxy: the proxy's).
    pub fn remote_address(&self) -> SocketAddr {
        match self {
            Link::Quic(c) => c.remote_address(),
            Link::Ssh(s) => s.remote_address(),
        }
    }

    /// Opens a bidirectional stream.
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), LinkError> {
        match self {
            Link::Quic(c) => {
                let (s, r) = c.open_bi().await?;
                Ok((
                    SendStream(SendInner::Quic(s)),
                    RecvStream(RecvInner::Quic(r)),
                ))
            }
            Link::Ssh(s) => s.open_bi().await,
        }
    }

    /// Waits for the peer to open a bidirectional stream.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), LinkError> {
        match self {
            Link::Quic(c) => {
                let (s, r) = c.accept_bi().await?;
                Ok((
                    SendStream(SendInner::Quic(s)),
                    RecvStream(RecvInner::Quic(r)),
                ))
            }
            Link::Ssh(s) => s.accept_bi().await,
        }
    }

    /// Closes the connection, telling the peer `code` and `reason`.
    pub fn close(&self, code: CloseCode, reason: &str) {
        match self {
            Link::Quic(c) => c.close(quinn::VarInt::from_u32(code.code()), reason.as_bytes()),
            Link::Ssh(s) => s.close(code, reason),
        }
    }

    /// Resolves when the connection is closed, with why.
    pub async fn closed(&self) -> LinkError {
        match self {
            Link::Quic(c) => c.closed().await.into(),
            Link::Ssh(s) => s.closed().await,
        }
    }

    /// Why the connection is closed, if it is.
    pub fn close_reason(&self) -> Option<LinkError> {
        match self {
            Link::Quic(c) => c.close_reason().map(Into::into),
            Link::Ssh(s) => s.close_reason(),
        }
    }
}

/// The sending half of a stream.
#[derive(Debug)]
pub struct SendStream(pub(crate) SendInner);

#[derive(Debug)]
pub(crate) enum SendInner {
    Quic(quinn::SendStream),
    Ssh(ssh::SshSend),
    Mux(mux::MuxSend),
}

impl SendStream {
    /// Ends the stream: the peer reads the end after everything written.
    pub fn finish(&mut self) {
        match &mut self.0 {
            SendInner::Quic(s) => {
                let _ = s.finish();
            }
            SendInner::Ssh(s) => s.finish(),
            SendInner::Mux(s) => s.finish(),
        }
    }

    /// Abandons the stream: the peer's reads fail and unsent data is discarded.
    pub fn reset(&mut self, code: u32) {
        match &mut self.0 {
            SendInner::Quic(s) => {
                let _ = s.reset(quinn::VarInt::from_u32(code));
            }
            SendInner::Ssh(s) => s.reset(),
            SendInner::Mux(s) => s.reset(code),
        }
    }

    /// Resolves when the peer no longer reads this stream (it reset or stopped it, or the
    /// connection ended).
    pub async fn stopped(&mut self) {
        match &mut self.0 {
            SendInner::Quic(s) => {
                let _ = s.stopped().await;
            }
            SendInner::Ssh(s) => s.stopped().await,
            SendInner::Mux(s) => s.stopped().await,
        }
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().0 {
            SendInner::Quic(s) => Pin::new(s).poll_write(cx, buf).map_err(Into::into),
            SendInner::Ssh(s) => Pin::new(s).poll_write(cx, buf),
            SendInner::Mux(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            SendInner::Quic(s) => Pin::new(s).poll_flush(cx),
            SendInner::Ssh(s) => Pin::new(s).poll_flush(cx),
            SendInner::Mux(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            SendInner::Quic(s) => Pin::new(s).poll_shutdown(cx),
            SendInner::Ssh(s) => Pin::new(s).poll_shutdown(cx),
            SendInner::Mux(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The receiving half of a stream.
#[derive(Debug)]
pub struct RecvStream(pub(crate) RecvInner);

#[derive(Debug)]
pub(crate) enum RecvInner {
    Quic(quinn::RecvStream),
    Ssh(ssh::SshRecv),
    Mux(mux::MuxRecv),
}

impl AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            RecvInner::Quic(r) => Pin::new(r).poll_read(cx, buf),
            RecvInner::Ssh(r) => Pin::new(r).poll_read(cx, buf),
            RecvInner::Mux(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}
