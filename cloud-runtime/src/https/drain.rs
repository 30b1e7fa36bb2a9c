//! Early answers that every HTTP client can read. A handler may answer (401, 403, 404, 413,
//! 429, 400) without reading the request body; over HTTP/2 the server then resets the
//! stream once the response is sent, and many clients (libcurl among them) drop the answer
//! with the reset. So a body the handler left unread is read and discarded before the
//! answer goes out, up to [`DRAIN_MAX`] bytes in all (declared or read) and for at most
//! [`DRAIN_TIMEOUT`]: past either, the stream is reset as before, which is the right end
//! for an upload nobody will read.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The most body bytes (declared, or already read and still to come) drained.
pub const DRAIN_MAX: u64 = 64 * 1024;
/// The longest a body is drained for.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body left unread, with how much of it was read.
#[derive(Debug)]
struct Unread {
    body: Incoming,
    read: u64,
}

/// The request body handed to the router: the connection's body, which goes back to the
/// edge if the handler drops it before its end.
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    read: u64,
    done: bool,
    unread: Arc<Mutex<Option<Unread>>>,
}

/// Where a body the handler dropped unread ends up.
#[derive(Debug)]
pub struct Leftover(Arc<Mutex<Option<Unread>>>);

/// Splits a request body into what the router reads and what is left of it afterwards.
pub fn wrap(body: Incoming) -> (RequestBody, Leftover) {
    let unread = Arc::new(Mutex::new(None));
    (
        RequestBody {
            inner: Some(body),
            read: 0,
            done: false,
            unread: unread.clone(),
        },
        Leftover(unread),
    )
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read = this.read.saturating_add(data.len() as u64);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.done = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take()
            && !self.done
            && !body.is_end_stream()
        {
            let mut unread = self.unread.lock().unwrap_or_else(|e| e.into_inner());
            *unread = Some(Unread {
                body,
                read: self.read,
            });
        }
    }
}

impl Leftover {
    /// Reads and discards what the handler left of the body, within the bounds; returns
    /// whether the body was read to its end (or there was nothing left).
    pub async fn drain(self) -> bool {
        let unread = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(Unread { mut body, mut read }) = unread else {
            return true;
        };
        if read.saturating_add(body.size_hint().lower()) > DRAIN_MAX {
            return false;
        }
        let drained = async {
            loop {
                match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                    None => return true,
                    Some(Err(_)) => return false,
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            read = read.saturating_add(data.len() as u64);
                            if read > DRAIN_MAX {
                                return false;
                            }
                        }
                    }
                }
            }
        };
        tokio::time::timeout(DRAIN_TIMEOUT, drained)
            .await
            .unwrap_or(false)
    }
}
