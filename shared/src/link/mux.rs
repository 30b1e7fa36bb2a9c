//! Many tunnel streams over one long-lived SSH channel, as HTTP/2 streams (`h2`).
//!
//! One SSH channel per call would cost a channel open round trip and six SSH messages per
//! call, and russh keeps the message sender of every channel whose CLOSE it sent first, so
//! a tunnel with a channel per call grows by a few kilobytes per call for as long as it
//! lives. HTTP/2 on one channel gives what a QUIC stream gives: opening without a round
//! trip, per-stream flow control, half-close (END_STREAM) and reset at any time
//! (RST_STREAM with a code), and a limit on concurrent streams that the accepting side
//! sets.
//!
//! The runtime, which opens call streams, is the HTTP/2 client; the connector, which
//! accepts them, is the server. Each stream is a `POST` whose request body carries what
//! the runtime writes and whose response body carries the connector's answer; nothing
//! else about HTTP is used.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, RecvStream as H2Recv, SendStream as H2Send, client, server};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use super::{LinkError, RecvInner, RecvStream, SendInner, SendStream};

/// Per-stream flow-control window: a call's request and answer are rarely larger, so
/// neither side waits for a window update mid-call.
const STREAM_WINDOW: u32 = 1 << 20;
/// The whole channel's window, shared by every stream on it.
const CONNECTION_WINDOW: u32 = 16 << 20;
/// Header lists are a fixed `POST` on one side and a bare `200` on the other.
const MAX_HEADER_LIST: u32 = 4 << 10;
/// How long a closing connector gives answers already written to reach the runtime.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(2);

/// The URI of every stream; the runtime's HTTP/2 client requires an absolute one.
const STREAM_URI: &str = "http://tunnel/";

/// The runtime's side of a mux: opens streams. Clones share the connection.
#[derive(Clone)]
pub struct MuxClient {
    state: watch::Receiver<ClientState>,
}

#[derive(Clone)]
enum ClientState {
    Starting,
    /// One handle for every opener: h2 tracks the stream it queued beyond the peer's limit
    /// per handle, and makes that handle's next opener wait for it.
    Ready(Arc<Mutex<client::SendRequest<Bytes>>>),
    Ended(LinkError),
}

impl std::fmt::Debug for MuxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.state.borrow() {
            ClientState::Starting => "starting",
            ClientState::Ready(_) => "ready",
            ClientState::Ended(_) => "ended",
        };
        f.debug_struct("MuxClient").field("state", &state).finish()
    }
}

impl MuxClient {
    /// Starts the HTTP/2 client on `io` (the mux channel) in a task; streams can be opened
    /// at once and wait for the handshake.
    pub fn start<T>(io: T) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = watch::channel(ClientState::Starting);
        tokio::spawn(async move {
            let handshake = client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .max_header_list_size(MAX_HEADER_LIST)
                .enable_push(false)
                .handshake::<_, Bytes>(io)
                .await;
            let connection = match handshake {
                Ok((send, connection)) => {
                    let _ = tx.send(ClientState::Ready(Arc::new(Mutex::new(send))));
                    connection
                }
                Err(e) => {
                    let _ = tx.send(ClientState::Ended(mux_lost(&e)));
                    return;
                }
            };
            let why = match connection.await {
                Ok(()) => LinkError::Lost("the stream channel closed".into()),
                Err(e) => mux_lost(&e),
            };
            let _ = tx.send(ClientState::Ended(why));
        });
        Self { state: rx }
    }

    /// Resolves when the mux connection has ended, with why.
    pub async fn ended(&self) -> LinkError {
        let mut state = self.state.clone();
        match state
            .wait_for(|s| matches!(s, ClientState::Ended(_)))
            .await
            .map(|s| s.clone())
        {
            Ok(ClientState::Ended(why)) => why,
            _ => LinkError::Lost("the stream channel closed".into()),
        }
    }

    /// Opens a stream; waits while the peer's concurrent-stream limit is reached.
    pub(super) async fn open_bi(&self) -> Result<(SendStream, RecvStream), LinkError> {
        let mut state = self.state.clone();
        let send = match state
            .wait_for(|s| !matches!(s, ClientState::Starting))
            .await
            .map(|s| s.clone())
        {
            Ok(ClientState::Ready(send)) => send,
            Ok(ClientState::Ended(why)) => return Err(why),
            _ => return Err(LinkError::Lost("the stream channel closed".into())),
        };
        let request = http::Request::post(STREAM_URI)
            .body(())
            .map_err(|e| LinkError::Lost(format!("stream request: {e}")))?;
        let mut send = send.lock().await;
        std::future::poll_fn(|cx| send.poll_ready(cx))
            .await
            .map_err(|e| mux_lost(&e))?;
        let (response, stream) = send
            .send_request(request, false)
            .map_err(|e| mux_lost(&e))?;
        // Beyond the peer's stream limit h2 queues the stream, and a queued stream is never
        // given send capacity once it opens: wait here until it is open, as QUIC's open does.
        std::future::poll_fn(|cx| send.poll_ready(cx))
            .await
            .map_err(|e| mux_lost(&e))?;
        drop(send);
        Ok((
            SendStream(SendInner::Mux(MuxSend::new(stream))),
            RecvStream(RecvInner::Mux(MuxRecv {
                state: RecvState::Waiting(response),
            })),
        ))
    }
}

/// The connector's side of a mux: a task accepting streams, which it hands to `deliver`.
/// Clones share the task.
#[derive(Debug, Clone)]
pub struct MuxServer {
    stop: CancellationToken,
    done: watch::Receiver<Option<LinkError>>,
}

impl MuxServer {
    /// Serves HTTP/2 on `io` (the mux channel) in a task, allowing `max_streams` at once;
    /// each accepted stream goes to `deliver` (false: nobody accepts any more, and the
    /// stream is refused).
    pub fn start<T, F>(io: T, max_streams: u32, deliver: F) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: Fn((SendStream, RecvStream)) -> bool + Send + 'static,
    {
        let stop = CancellationToken::new();
        let (done_tx, done) = watch::channel(None);
        let stopping = stop.clone();
        tokio::spawn(async move {
            let why = serve(io, max_streams, deliver, stopping).await;
            let _ = done_tx.send(Some(why));
        });
        Self { stop, done }
    }

    /// Resolves when the mux connection has ended, with why.
    pub async fn ended(&self) -> LinkError {
        let mut done = self.done.clone();
        match done.wait_for(Option::is_some).await.map(|s| s.clone()) {
            Ok(Some(why)) => why,
            _ => LinkError::Lost("the stream channel closed".into()),
        }
    }

    /// Stops accepting and waits (briefly) until what streams already wrote has been sent,
    /// so that closing the connection right after loses no answer.
    pub async fn flush_and_stop(&self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(FLUSH_ON_CLOSE, self.ended()).await;
    }
}

async fn serve<T, F>(io: T, max_streams: u32, deliver: F, stop: CancellationToken) -> LinkError
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn((SendStream, RecvStream)) -> bool,
{
    let handshake = server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_concurrent_streams(max_streams)
        .handshake::<_, Bytes>(io);
    let mut connection = tokio::select! {
        c = handshake => match c {
            Ok(c) => c,
            Err(e) => return mux_lost(&e),
        },
        () = stop.cancelled() => return LinkError::LocallyClosed,
    };
    let mut stopping = false;
    loop {
        let next = tokio::select! {
            next = connection.accept() => next,
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                connection.graceful_shutdown();
                continue;
            }
        };
        match next {
            Some(Ok((request, mut respond))) => {
                // An error here is the runtime resetting the stream before the answer's
                // headers: nothing to serve.
                if let Ok(send) = respond.send_response(http::Response::new(()), false) {
                    let pair = (
                        SendStream(SendInner::Mux(MuxSend::new(send))),
                        RecvStream(RecvInner::Mux(MuxRecv {
                            state: RecvState::Body(request.into_body(), Bytes::new()),
                        })),
                    );
                    if !deliver(pair) {
                        connection.graceful_shutdown();
                    }
                }
            }
            Some(Err(e)) => return mux_lost(&e),
            None if stopping => return LinkError::LocallyClosed,
            None => return LinkError::Lost("the stream channel closed".into()),
        }
    }
}

fn mux_lost(e: &h2::Error) -> LinkError {
    if let Some(Reason::NO_ERROR) = e.reason()
        && e.is_go_away()
    {
        return LinkError::Lost("the peer closed the stream channel".into());
    }
    LinkError::Lost(format!("stream channel: {e}"))
}

/// The sending half of an HTTP/2 stream.
pub(crate) struct MuxSend {
    stream: H2Send<Bytes>,
    done: bool,
}

impl std::fmt::Debug for MuxSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxSend")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl MuxSend {
    fn new(stream: H2Send<Bytes>) -> Self {
        Self {
            stream,
            done: false,
        }
    }

    pub(super) fn finish(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            let _ = self.stream.send_data(Bytes::new(), true);
        }
    }

    pub(super) fn reset(&mut self, code: u32) {
        if !std::mem::replace(&mut self.done, true) {
            self.stream.send_reset(Reason::from(code));
        }
    }

    /// Resolves when the peer reset the stream or the connection ended. HTTP/2 does not
    /// tell when the peer has read a finished stream, so a finished stream counts as
    /// stopped at once; [`MuxServer::flush_and_stop`] keeps a close from overtaking it.
    pub(super) async fn stopped(&mut self) {
        if self.done {
            return;
        }
        let _ = std::future::poll_fn(|cx| self.stream.poll_reset(cx)).await;
    }
}

impl Drop for MuxSend {
    fn drop(&mut self) {
        // As QUIC does, a stream dropped without finish or reset is finished.
        self.finish();
    }
}

impl AsyncWrite for MuxSend {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.done {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.stream.reserve_capacity(buf.len());
        let granted = match ready!(self.stream.poll_capacity(cx)) {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Poll::Ready(Err(stream_error(e))),
            None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        };
        let n = granted.min(buf.len());
        let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
        self.stream.send_data(chunk, false).map_err(stream_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Data handed to h2 is queued on the connection, which writes it out.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.finish();
        Poll::Ready(Ok(()))
    }
}

/// The receiving half of an HTTP/2 stream.
#[derive(Debug)]
pub(crate) struct MuxRecv {
    state: RecvState,
}

#[derive(Debug)]
enum RecvState {
    /// The runtime's side until the connector's response headers arrive.
    Waiting(client::ResponseFuture),
    /// The body being read, and the rest of the last chunk.
    Body(H2Recv, Bytes),
    /// Handed to a drain task on drop.
    Dropped,
}

impl Drop for MuxRecv {
    /// A reader dropped before the peer's END_STREAM (the runtime stops at the answer, the
    /// END_STREAM is a frame behind) would make h2 reset the stream, and h2 closes a
    /// connection after 1,024 such resets of its own. So the rest is read in the
    /// background, within bounds; past them the stream is reset after all.
    fn drop(&mut self) {
        let RecvState::Body(body, _) = std::mem::replace(&mut self.state, RecvState::Dropped)
        else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

/// How long, and how much, a dropped reader still reads to reach the peer's END_STREAM.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
const DRAIN_BYTES: usize = 64 << 10;

async fn drain(mut body: H2Recv) {
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                return;
            }
        }
    })
    .await;
}

impl AsyncRead for MuxRecv {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                RecvState::Waiting(response) => {
                    let response = ready!(Pin::new(response).poll(cx)).map_err(stream_error)?;
                    self.state = RecvState::Body(response.into_body(), Bytes::new());
                }
                RecvState::Body(body, current) => {
                    if !current.is_empty() {
                        let n = buf.remaining().min(current.len());
                        buf.put_slice(&current.split_to(n));
                        return Poll::Ready(Ok(()));
                    }
                    match ready!(body.poll_data(cx)) {
                        Some(Ok(chunk)) => {
                            // Credit the peer as soon as the bytes are ours: the reader's own
                            // buffer, not the window, bounds what is held.
                            let _ = body.flow_control().release_capacity(chunk.len());
                            *current = chunk;
                        }
                        Some(Err(e)) => return Poll::Ready(Err(stream_error(e))),
                        None => return Poll::Ready(Ok(())),
                    }
                }
                RecvState::Dropped => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// A stream's failure as an I/O error: a reset by the peer reads as one.
fn stream_error(e: h2::Error) -> io::Error {
    if e.is_reset() {
        io::Error::new(io::ErrorKind::ConnectionReset, "the peer reset the stream")
    } else {
        io::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    use super::*;

    /// A client and a server over an in-memory pipe, with the server's accepted streams.
    fn pair(
        max_streams: u32,
    ) -> (
        MuxClient,
        MuxServer,
        mpsc::Receiver<(SendStream, RecvStream)>,
    ) {
        let (a, b) = tokio::io::duplex(64 << 10);
        let (tx, rx) = mpsc::channel(64);
        let server = MuxServer::start(b, max_streams, move |s| tx.try_send(s).is_ok());
        (MuxClient::start(a), server, rx)
    }

    #[tokio::test]
    async fn streams_carry_both_directions_and_end_where_the_writer_finished() {
        let (client, _server, mut accepted) = pair(16);
        let mut opened = Vec::new();
        for i in 0..10u8 {
            let (mut send, recv) = client.open_bi().await.unwrap();
            send.write_all(&[i; 100_000]).await.unwrap();
            send.finish();
            opened.push((send, recv));
        }
        for _ in 0..10 {
            let (mut send, mut recv) = accepted.recv().await.unwrap();
            let mut got = Vec::new();
            recv.read_to_end(&mut got).await.unwrap();
            assert_eq!(got.len(), 100_000);
            let i = got[0];
            assert!(got.iter().all(|b| *b == i));
            send.write_all(&[i + 1; 3]).await.unwrap();
            send.finish();
        }
        for (i, (_, mut recv)) in opened.into_iter().enumerate() {
            let mut got = Vec::new();
            recv.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, vec![u8::try_from(i).unwrap() + 1; 3]);
        }
    }

    #[tokio::test]
    async fn a_reset_reaches_the_reader_and_stops_the_peer_s_writer() {
        let (client, _server, mut accepted) = pair(16);
        let (mut send, _recv) = client.open_bi().await.unwrap();
        send.write_all(b"half a request").await.unwrap();
        let (mut their_send, mut their_recv) = accepted.recv().await.unwrap();
        let mut buf = [0u8; 14];
        their_recv.read_exact(&mut buf).await.unwrap();
        send.reset(0x10);
        let err = their_recv.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        tokio::time::timeout(Duration::from_secs(5), their_send.stopped())
            .await
            .expect("the writer learns that nobody reads");
    }

    #[tokio::test]
    async fn dropping_both_halves_of_an_unfinished_stream_stops_the_peer() {
        let (client, _server, mut accepted) = pair(16);
        let (mut send, recv) = client.open_bi().await.unwrap();
        send.write_all(b"x").await.unwrap();
        let (mut their_send, _their_recv) = accepted.recv().await.unwrap();
        drop(recv);
        send.reset(0x8);
        drop(send);
        tokio::time::timeout(Duration::from_secs(5), their_send.stopped())
            .await
            .expect("the connector's writer is told the call was abandoned");
    }

    #[tokio::test]
    async fn the_servers_stream_limit_holds_new_streams_until_one_ends() {
        let (client, _server, mut accepted) = pair(2);
        let mut held = Vec::new();
        for _ in 0..2 {
            let (mut send, recv) = client.open_bi().await.unwrap();
            send.write_all(b"a").await.unwrap();
            held.push((send, recv));
        }
        let first = accepted.recv().await.unwrap();
        let _second = accepted.recv().await.unwrap();
        let third = tokio::spawn({
            let client = client.clone();
            async move {
                let (mut send, recv) = client.open_bi().await.unwrap();
                send.write_all(b"c").await.unwrap();
                (send, recv)
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            accepted.try_recv().is_err(),
            "no third stream reaches the server"
        );
        assert!(!third.is_finished(), "a third opener waits for a free slot");
        // End the first stream in both directions.
        let (mut their_send, _) = first;
        their_send.finish();
        let (mut send, mut recv) = held.remove(0);
        send.finish();
        let mut rest = Vec::new();
        recv.read_to_end(&mut rest).await.unwrap();
        let (_, mut their_third) = tokio::time::timeout(Duration::from_secs(5), accepted.recv())
            .await
            .expect("the third stream reaches the server once one ended")
            .unwrap();
        let byte = tokio::time::timeout(Duration::from_secs(5), their_third.read_u8()).await;
        assert_eq!(byte.expect("its data follows").unwrap(), b'c');
        third.await.unwrap();
    }

    #[tokio::test]
    async fn a_closing_server_sends_what_was_written_before_it_stops() {
        let (client, server, mut accepted) = pair(16);
        let (mut send, mut recv) = client.open_bi().await.unwrap();
        send.finish();
        let (mut their_send, _) = accepted.recv().await.unwrap();
        their_send.write_all(&[7; 200_000]).await.unwrap();
        their_send.finish();
        drop(their_send);
        server.flush_and_stop().await;
        let mut got = Vec::new();
        recv.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 200_000);
        assert!(matches!(client.ended().await, LinkError::Lost(_)));
    }

    #[tokio::test]
    async fn garbage_instead_of_http2_ends_the_mux_with_an_error() {
        let (mut a, b) = tokio::io::duplex(1024);
        let server = MuxServer::start(b, 4, |_| true);
        a.write_all(b"not the HTTP/2 preface at all, just bytes\r\n\r\n")
            .await
            .unwrap();
        let why = tokio::time::timeout(Duration::from_secs(5), server.ended())
            .await
            .expect("the server gives up");
        assert!(matches!(why, LinkError::Lost(_)), "{why:?}");
    }

    #[tokio::test]
    async fn garbage_from_the_connector_ends_the_runtime_s_mux_and_fails_its_opens() {
        let (a, mut b) = tokio::io::duplex(1024);
        let client = MuxClient::start(a);
        b.write_all(&[0xff; 64]).await.unwrap();
        let why = tokio::time::timeout(Duration::from_secs(5), client.ended())
            .await
            .expect("the client gives up");
        assert!(matches!(why, LinkError::Lost(_)), "{why:?}");
        assert!(client.open_bi().await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixty_four_callers_dropping_their_readers_at_the_answer_keep_the_mux_serving() {
        // 1,600 streams, each reader dropped at the answer, often before END_STREAM.
        let (client, _server, mut accepted) = pair(64);
        tokio::spawn(async move {
            while let Some((mut send, _recv)) = accepted.recv().await {
                tokio::spawn(async move {
                    send.write_all(b"answer").await.unwrap();
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    send.finish();
                });
            }
        });
        let callers: Vec<_> = (0..64)
            .map(|caller| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        let (mut send, mut recv) = client
                            .open_bi()
                            .await
                            .unwrap_or_else(|e| panic!("caller {caller}, stream {i}: {e}"));
                        send.finish();
                        let mut answer = [0u8; 6];
                        recv.read_exact(&mut answer).await.unwrap();
                        assert_eq!(&answer, b"answer");
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        assert!(client.open_bi().await.is_ok());
    }
}
