//! SSH channels as tunnel streams, and an SSH session as a [`Link`](super::Link).
//!
//! The connector opens two `session` channels once authenticated: the first is the control
//! stream, the second carries every call stream as an HTTP/2 stream ([`super::mux`]), the
//! runtime as client. A runtime that predates the mux refuses the second channel; then, as
//! before it, each call stream is a channel of its own that the runtime opens.
//!
//! A stream that is a whole channel has a task that moves what the peer sends into the
//! stream's reader and turns finish and reset into SSH's EOF and CLOSE, so the halves
//! behave like QUIC's: a reader sees the end only after the peer's EOF (a CLOSE without it
//! is a reset), and a writer's `stopped` resolves once the peer has closed the channel.
//! The channel is closed once both directions are done.
//!
//! The connection's application close travels as an SSH disconnect whose description is
//! `"<code> <reason>"` ([`disconnect_description`], [`parse_disconnect`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Mutex, mpsc, watch};

use super::mux::{MuxClient, MuxServer};
use super::{LinkError, RecvInner, RecvStream, SendInner, SendStream};
use crate::close::CloseCode;

/// A boxed future, as the [`Session`] trait returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Chunks a channel's reader may hold before the channel waits (SSH flow control then
/// holds the peer).
const READ_QUEUE: usize = 16;

/// What one side of an SSH session can do to it: open a channel, disconnect. Implemented
/// for russh's server and client handles.
pub trait Session: Send + Sync + 'static {
    /// Opens a new channel as a stream.
    fn open(&self) -> BoxFuture<'_, Result<(SendStream, RecvStream), LinkError>>;
    /// Sends a disconnect with `description`.
    fn disconnect(&self, description: String) -> BoxFuture<'_, ()>;
}

impl Session for russh::server::Handle {
    fn open(&self) -> BoxFuture<'_, Result<(SendStream, RecvStream), LinkError>> {
        Box::pin(async move { as_streams(self.channel_open_session().await) })
    }

    fn disconnect(&self, description: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = russh::server::Handle::disconnect(
                self,
                Disconnect::ByApplication,
                description,
                String::new(),
            )
            .await;
        })
    }
}

impl<H: russh::client::Handler + 'static> Session for russh::client::Handle<H> {
    fn open(&self) -> BoxFuture<'_, Result<(SendStream, RecvStream), LinkError>> {
        Box::pin(async move { as_streams(self.channel_open_session().await) })
    }

    fn disconnect(&self, description: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = russh::client::Handle::disconnect(
                self,
                Disconnect::ByApplication,
                &description,
                "",
            )
            .await;
        })
    }
}

/// A channel, as a stream pair of its own.
pub fn channel_streams<S>(channel: Channel<S>) -> (SendStream, RecvStream)
where
    S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    stream_pair(channel, None)
}

/// A channel we opened, as a stream pair.
fn as_streams<S>(
    opened: Result<Channel<S>, russh::Error>,
) -> Result<(SendStream, RecvStream), LinkError>
where
    S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    let channel =
        opened.map_err(|e| LinkError::Lost(format!("cannot open an SSH channel: {e}")))?;
    Ok(stream_pair(channel, None))
}

/// The disconnect description that carries `code` and `reason`.
pub fn disconnect_description(code: CloseCode, reason: &str) -> String {
    format!("{} {reason}", code.code())
}

/// Reads a disconnect description: `"<code> <reason>"` is an application close; anything
/// else is a lost connection with the peer's words.
pub fn parse_disconnect(description: &str) -> LinkError {
    let (code, reason) = description.split_once(' ').unwrap_or((description, ""));
    match code.parse::<u64>() {
        Ok(code) if code <= u64::from(u32::MAX) => LinkError::Closed {
            code,
            reason: reason.to_owned(),
        },
        _ => LinkError::Lost(format!("SSH disconnect: {description}")),
    }
}

/// How long a link whose stream mux ended waits for the session's own reason (a disconnect
/// with a close code usually arrives with it) before the mux's end becomes the link's.
const MUX_END_GRACE: Duration = Duration::from_secs(1);

/// What the session's handler and the link share: how the link ended, and the stream mux
/// once its channel is open.
#[derive(Debug)]
struct Shared {
    state: watch::Sender<Option<LinkError>>,
    mux_client: OnceLock<MuxClient>,
    mux_server: OnceLock<MuxServer>,
    /// Why the mux ended, once it has.
    mux_end: watch::Sender<Option<LinkError>>,
}

impl Shared {
    /// Records that the session ended (the first reason wins).
    fn mark_closed(&self, why: LinkError) {
        self.state.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(why);
                true
            } else {
                false
            }
        });
    }

    /// Reports the mux's end (once it comes) to the link, which ends with it.
    fn watch_mux(self: &Arc<Self>, ended: impl Future<Output = LinkError> + Send + 'static) {
        let shared = self.clone();
        tokio::spawn(async move {
            let why = ended.await;
            shared.mux_end.send_replace(Some(why));
        });
    }
}

/// Ends the link when its mux ends: the session's own reason wins when it comes within
/// [`MUX_END_GRACE`]; otherwise the peer is disconnected (a mux that failed under a live
/// session is a broken peer, and its calls could go nowhere).
async fn end_with_mux(shared: Arc<Shared>, link: std::sync::Weak<Inner>) {
    let mut state = shared.state.subscribe();
    let mut mux_end = shared.mux_end.subscribe();
    let why = tokio::select! {
        end = mux_end.wait_for(Option::is_some) => match end.ok().and_then(|e| e.clone()) {
            Some(why) => why,
            None => return,
        },
        _ = state.wait_for(Option::is_some) => return,
    };
    if tokio::time::timeout(MUX_END_GRACE, state.wait_for(Option::is_some))
        .await
        .is_ok()
    {
        return;
    }
    shared.mark_closed(why.clone());
    if let Some(inner) = link.upgrade() {
        inner
            .session
            .disconnect(format!("the call stream channel failed: {why}"))
            .await;
    }
}

/// The session handler's side of a link: where it delivers the streams the peer opens (up
/// to a number alive at once; beyond it the handler refuses the channel, as QUIC's stream
/// limit would), and where it starts the stream mux.
#[derive(Debug, Clone)]
pub struct Incoming {
    tx: mpsc::Sender<(SendStream, RecvStream)>,
    live: Arc<AtomicUsize>,
    max_live: usize,
    shared: Arc<Shared>,
}

/// The link's end of [`Incoming`].
#[derive(Debug)]
pub struct IncomingRx {
    rx: mpsc::Receiver<(SendStream, RecvStream)>,
    shared: Arc<Shared>,
}

/// A handler side and a link side for one session, allowing `max_live` peer-opened streams
/// alive at once.
pub fn incoming(max_live: usize) -> (Incoming, IncomingRx) {
    let (tx, rx) = mpsc::channel(max_live.clamp(1, 1024));
    let shared = Arc::new(Shared {
        state: watch::Sender::new(None),
        mux_client: OnceLock::new(),
        mux_server: OnceLock::new(),
        mux_end: watch::Sender::new(None),
    });
    (
        Incoming {
            tx,
            live: Arc::new(AtomicUsize::new(0)),
            max_live,
            shared: shared.clone(),
        },
        IncomingRx { rx, shared },
    )
}

impl Incoming {
    /// Whether a stream mux runs on this session already.
    pub fn has_mux(&self) -> bool {
        self.shared.mux_client.get().is_some() || self.shared.mux_server.get().is_some()
    }

    /// Opens call streams as HTTP/2 streams over `channel` (the runtime's side); false when
    /// a mux runs already.
    pub fn start_mux_client<S>(&self, channel: Channel<S>) -> bool
    where
        S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
    {
        if self.has_mux() {
            return false;
        }
        let client = MuxClient::start(channel.into_stream());
        let ended = client.clone();
        if self.shared.mux_client.set(client).is_err() {
            return false;
        }
        self.shared.watch_mux(async move { ended.ended().await });
        true
    }

    /// Accepts call streams as HTTP/2 streams over `channel`, `max_streams` at once (the
    /// connector's side); false when a mux runs already.
    pub fn serve_mux<S>(&self, channel: Channel<S>, max_streams: u32) -> bool
    where
        S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
    {
        if self.has_mux() {
            return false;
        }
        let tx = self.tx.clone();
        let server = MuxServer::start(channel.into_stream(), max_streams, move |pair| {
            match tx.try_send(pair) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full((mut send, _))) => {
                    send.reset(REFUSED);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        let watched = server.clone();
        if self.shared.mux_server.set(server).is_err() {
            return false;
        }
        self.shared.watch_mux(async move { watched.ended().await });
        true
    }

    /// Whether another peer-opened channel may be accepted now.
    pub fn has_room(&self) -> bool {
        self.live.load(Ordering::Acquire) < self.max_live && self.tx.capacity() > 0
    }

    /// Hands an accepted channel to the link; false (and the channel closed) if there is no
    /// room or nobody accepts any more.
    pub fn offer<S>(&self, channel: Channel<S>) -> bool
    where
        S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
    {
        if !self.has_room() {
            return false;
        }
        let pair = stream_pair(channel, Some(self.live.clone()));
        self.tx.try_send(pair).is_ok()
    }
}

/// An SSH session used as a tunnel connection.
#[derive(Clone)]
pub struct SshLink {
    inner: Arc<Inner>,
}

struct Inner {
    session: Box<dyn Session>,
    incoming: Mutex<mpsc::Receiver<(SendStream, RecvStream)>>,
    shared: Arc<Shared>,
    /// A stream opened before the link existed, which the first `open_bi` returns (the
    /// connector's control stream, opened before the mux channel).
    opened: std::sync::Mutex<Option<(SendStream, RecvStream)>>,
    remote: SocketAddr,
}

impl std::fmt::Debug for SshLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshLink")
            .field("remote", &self.inner.remote)
            .field("closed", &*self.inner.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

impl SshLink {
    /// A link over `session` with `remote` at the other end; `incoming` is where its handler
    /// delivers the channels the peer opens.
    pub fn new(session: impl Session, remote: SocketAddr, incoming: IncomingRx) -> Self {
        let inner = Arc::new(Inner {
            session: Box::new(session),
            incoming: Mutex::new(incoming.rx),
            shared: incoming.shared,
            opened: std::sync::Mutex::new(None),
            remote,
        });
        tokio::spawn(end_with_mux(inner.shared.clone(), Arc::downgrade(&inner)));
        Self { inner }
    }

    /// The same link, whose first `open_bi` returns `streams` (opened before the link was
    /// made).
    pub fn with_opened(self, streams: (SendStream, RecvStream)) -> Self {
        *self.inner.opened.lock().unwrap_or_else(|p| p.into_inner()) = Some(streams);
        self
    }

    /// Records that the session ended (the first reason wins).
    pub fn mark_closed(&self, why: LinkError) {
        self.inner.shared.mark_closed(why);
    }

    pub(super) fn remote_address(&self) -> SocketAddr {
        self.inner.remote
    }

    pub(super) async fn open_bi(&self) -> Result<(SendStream, RecvStream), LinkError> {
        if let Some(why) = self.close_reason() {
            return Err(why);
        }
        let opened = self
            .inner
            .opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(streams) = opened {
            return Ok(streams);
        }
        let open = async {
            match self.inner.shared.mux_client.get() {
                Some(mux) => mux.open_bi().await,
                None => self.inner.session.open().await,
            }
        };
        tokio::select! {
            r = open => r,
            why = self.closed() => Err(why),
        }
    }

    pub(super) async fn accept_bi(&self) -> Result<(SendStream, RecvStream), LinkError> {
        let mut incoming = self.inner.incoming.lock().await;
        tokio::select! {
            s = incoming.recv() => s.ok_or_else(|| LinkError::Lost("SSH session ended".into())),
            why = self.closed() => Err(why),
        }
    }

    pub(super) fn close(&self, code: CloseCode, reason: &str) {
        if self.close_reason().is_some() {
            return;
        }
        self.mark_closed(LinkError::LocallyClosed);
        let inner = self.inner.clone();
        let description = disconnect_description(code, reason);
        tokio::spawn(async move {
            // Answers already written go out before the disconnect that would drop them.
            if let Some(mux) = inner.shared.mux_server.get() {
                mux.flush_and_stop().await;
            }
            inner.session.disconnect(description).await;
        });
    }

    pub(super) async fn closed(&self) -> LinkError {
        let mut rx = self.inner.shared.state.subscribe();
        let why = match rx.wait_for(Option::is_some).await {
            Ok(s) => s.clone(),
            Err(_) => None,
        };
        why.unwrap_or_else(|| LinkError::Lost("SSH session ended".into()))
    }

    pub(super) fn close_reason(&self) -> Option<LinkError> {
        self.inner.shared.state.borrow().clone()
    }
}

/// What the writer asks of its channel's task.
#[derive(Debug)]
enum Ctl {
    Finish,
    Reset,
}

/// How the peer's direction of a channel ended.
const OPEN: u8 = 0;
const EOF: u8 = 1;
const RESET: u8 = 2;

/// The reset code of a mux stream refused because the link's queue of unaccepted streams
/// is full (HTTP/2's REFUSED_STREAM: the runtime may send it again).
const REFUSED: u32 = 0x7;

/// The sending half of an SSH channel.
pub(crate) struct SshSend {
    writer: Pin<Box<dyn AsyncWrite + Send>>,
    ctl: mpsc::UnboundedSender<Ctl>,
    done: bool,
    stopped: watch::Receiver<bool>,
}

impl std::fmt::Debug for SshSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSend")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl SshSend {
    pub(super) fn finish(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            let _ = self.ctl.send(Ctl::Finish);
        }
    }

    pub(super) fn reset(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            let _ = self.ctl.send(Ctl::Reset);
        }
    }

    pub(super) async fn stopped(&mut self) {
        let _ = self.stopped.wait_for(|s| *s).await;
    }
}

impl Drop for SshSend {
    fn drop(&mut self) {
        // As QUIC does, a stream dropped without finish or reset is finished.
        self.finish();
    }
}

impl AsyncWrite for SshSend {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.done {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.writer.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.finish();
        Poll::Ready(Ok(()))
    }
}

/// The receiving half of an SSH channel.
#[derive(Debug)]
pub(crate) struct SshRecv {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
    end: Arc<AtomicU8>,
}

impl AsyncRead for SshRecv {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.current.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => self.current = chunk,
                Poll::Ready(None) => {
                    return Poll::Ready(match self.end.load(Ordering::Acquire) {
                        EOF => Ok(()),
                        _ => Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            "the peer reset the stream",
                        )),
                    });
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = buf.remaining().min(self.current.len());
        let chunk = self.current.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

/// Turns an open channel into a stream pair, with the task that drives it. `live` counts
/// peer-opened channels until the task ends.
fn stream_pair<S>(channel: Channel<S>, live: Option<Arc<AtomicUsize>>) -> (SendStream, RecvStream)
where
    S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    let (read, write) = channel.split();
    let (data_tx, data_rx) = mpsc::channel(READ_QUEUE);
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let end = Arc::new(AtomicU8::new(OPEN));
    let send = SshSend {
        writer: Box::pin(write.make_writer()),
        ctl: ctl_tx,
        done: false,
        stopped: stopped_rx,
    };
    let recv = SshRecv {
        rx: data_rx,
        current: Bytes::new(),
        end: end.clone(),
    };
    if let Some(live) = &live {
        live.fetch_add(1, Ordering::AcqRel);
    }
    tokio::spawn(async move {
        drive(read, write, data_tx, ctl_rx, &end).await;
        let _ = stopped_tx.send(true);
        if let Some(live) = live {
            live.fetch_sub(1, Ordering::AcqRel);
        }
    });
    (
        SendStream(SendInner::Ssh(send)),
        RecvStream(RecvInner::Ssh(recv)),
    )
}

/// Moves one channel's data to its reader and its writer's finish/reset to the peer, until
/// the channel is closed.
async fn drive<S>(
    mut read: ChannelReadHalf,
    write: ChannelWriteHalf<S>,
    data: mpsc::Sender<Bytes>,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    end: &AtomicU8,
) where
    S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    let mut data = Some(data);
    let mut sent_eof = false;
    let mut ctl_open = true;
    loop {
        if sent_eof && data.is_none() {
            let _ = write.close().await;
            return;
        }
        let reader_gone = async {
            match &data {
                Some(tx) => tx.closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = read.wait() => match msg {
                Some(ChannelMsg::Data { data: bytes }) => {
                    if let Some(tx) = &data
                        && tx.send(bytes).await.is_err()
                    {
                        data = None;
                    }
                }
                Some(ChannelMsg::Eof) => {
                    end.store(EOF, Ordering::Release);
                    data = None;
                }
                Some(ChannelMsg::Close) | None => {
                    if end.load(Ordering::Acquire) != EOF {
                        end.store(RESET, Ordering::Release);
                    }
                    return;
                }
                Some(_) => {}
            },
            c = ctl.recv(), if ctl_open => match c {
                Some(Ctl::Finish) | None => {
                    ctl_open = false;
                    if !sent_eof {
                        let _ = write.eof().await;
                        sent_eof = true;
                    }
                }
                Some(Ctl::Reset) => {
                    let _ = write.close().await;
                    return;
                }
            },
            () = reader_gone => data = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnect_description_carries_the_close_code() {
        let d = disconnect_description(CloseCode::Revoked, "connector revoked");
        assert_eq!(d, "1 connector revoked");
        assert_eq!(
            parse_disconnect(&d).close_code(),
            Some((Some(CloseCode::Revoked), "connector revoked"))
        );
    }

    #[test]
    fn a_foreign_disconnect_is_a_lost_link_not_a_close_code() {
        for d in ["", "bye", "99999999999 too big", "-1 negative"] {
            assert!(
                matches!(parse_disconnect(d), LinkError::Lost(_)),
                "{d:?} must not parse as a close code"
            );
        }
    }
}
