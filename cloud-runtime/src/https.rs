//! The HTTPS listener: TLS termination and HTTP serving for an axum router (and, for the
//! loopback-only development mode, the same router over plain HTTP).
//!
//! Limits against slow or greedy clients: a TLS handshake must finish within
//! [`HANDSHAKE_TIMEOUT`], HTTP/1.1 request headers within [`HEADER_TIMEOUT`]; a connection
//! with no request in flight is closed after the idle timeout (HTTP/1.1 keep-alive and
//! HTTP/2 alike, pings or not); at most [`admission::Limits::max`] connections are open at
//! once (more wait in the accept queue), and each client (an IPv4 address, an IPv6 /64)
//! gets a fair share of them that shrinks as the listener fills: past it, new connections
//! are answered 503 with `Retry-After` ([`admission`]). Behind a load balancer, the client
//! is the address a trusted proxy forwards for ([`client_addr`], [`proxy_protocol`]).
//! Early answers read a small unread request body first, so the stream ends normally
//! ([`drain`]).

pub mod admission;
pub mod client_addr;
pub mod drain;
pub mod idle;
pub mod proxy_protocol;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::debug;

use self::admission::{Admission, Clients, Limits};
use self::client_addr::TrustedProxies;
use self::idle::{Activity, Tracked};

/// Time allowed for a TLS handshake (and a trusted proxy's PROXY header).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for an HTTP/1.1 request's headers to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle HTTP/2 connection is pinged, and how long the answer may take.
const H2_KEEPALIVE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(10));
/// How long a closing connection may take to finish what is in flight.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// What a shed connection tells its client to wait, in seconds.
const SHED_RETRY_AFTER: &str = "10";

/// How the listener treats connections.
#[derive(Debug, Clone)]
pub struct HttpsOptions {
    /// Connections open at once, and per client.
    pub limits: Limits,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Peers believed about the client they forward for.
    pub trusted_proxies: TrustedProxies,
}

impl Default for HttpsOptions {
    fn default() -> Self {
        Self {
            limits: Limits {
                max: 4096,
                per_client: 256,
            },
            idle_timeout: Duration::from_secs(60),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// What a connection gets.
#[derive(Clone)]
enum Mode {
    /// The router.
    Serve(Router),
    /// 503 with `Retry-After` to its first request, then closed.
    Shed,
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish; over TLS
/// when `tls` is given, plain HTTP otherwise.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    options: HttpsOptions,
    shutdown: CancellationToken,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(options.limits.max));
    let clients = Clients::new(options.limits);
    let options = Arc::new(options);
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let (mut tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // Small request/response exchanges: without this, Nagle and delayed ACKs add 40 ms.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let clients = clients.clone();
        let options = options.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let trusted = &options.trusted_proxies;
            let client = if trusted.trusts(peer.ip()) {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, proxy_protocol::read(&mut tcp)).await
                {
                    Ok(Ok(forwarded)) => forwarded.unwrap_or(peer),
                    Ok(Err(e)) => return debug!(%peer, error = %e, "PROXY header refused"),
                    Err(_) => return debug!(%peer, "PROXY header timed out"),
                }
            } else {
                peer
            };
            // A trusted proxy speaks for many clients: they are told apart per request.
            let key =
                (!trusted.trusts(client.ip())).then(|| crate::rate_limit::client_key(client.ip()));
            let (admission, slot) = clients.admit(key);
            let Some(_slot) = slot else {
                return debug!(%client, "connection refused: this client holds too many");
            };
            let mode = match admission {
                Admission::Shed => {
                    debug!(%client, "connection shed: past this client's share");
                    Mode::Shed
                }
                _ => Mode::Serve(router),
            };
            let conn = Conn {
                client,
                mode,
                options,
                activity: Activity::new(),
                close: CancellationToken::new(),
            };
            let Some(acceptor) = acceptor else {
                return conn.serve(tcp, shutdown).await;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => conn.serve(tls, shutdown).await,
                Ok(Err(e)) => debug!(%client, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%client, "TLS handshake timed out"),
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// One connection being served.
struct Conn {
    /// The client (the TCP peer, or the address a trusted proxy's PROXY header gave).
    client: SocketAddr,
    mode: Mode,
    options: Arc<HttpsOptions>,
    activity: Arc<Activity>,
    /// Cancelled to close the connection once what is in flight is done.
    close: CancellationToken,
}

impl Conn {
    async fn serve<IO>(self, io: IO, shutdown: CancellationToken)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(H2_KEEPALIVE.0))
            .keep_alive_timeout(H2_KEEPALIVE.1);
        let client = self.client;
        let idle_timeout = self.options.idle_timeout;
        let this = Arc::new(self);
        let service = {
            let this = this.clone();
            hyper::service::service_fn(move |req| this.clone().handle(req))
        };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let why = tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(%client, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled() => "shutting down",
            _ = this.activity.idle_for(idle_timeout) => "idle",
            _ = this.close.cancelled() => "shed",
        };
        debug!(%client, why, "closing the HTTP connection");
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
    }

    /// One request: the router's answer (or 503 on a shed connection), after draining a
    /// small body the handler left unread.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Tracked<Body>>, Infallible> {
        let in_flight = self.activity.begin();
        let ip = self
            .options
            .trusted_proxies
            .client(self.client.ip(), req.headers());
        // Handlers and rate limits see the client's address as axum's `ConnectInfo`; the
        // port is known only when the address is the connection's own.
        let port = if ip == self.client.ip() {
            self.client.port()
        } else {
            0
        };
        let version = req.version();
        let (parts, body) = req.into_parts();
        let (body, leftover) = drain::wrap(body);
        let mut req = Request::from_parts(parts, body);
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::new(ip, port)));
        let mut resp = match &self.mode {
            Mode::Serve(router) => match router.clone().oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            },
            Mode::Shed => {
                drop(req);
                self.close.cancel();
                shed_response(version)
            }
        };
        if !leftover.drain().await && version < Version::HTTP_2 {
            // HTTP/1.1 cannot skip the rest of a body: the connection ends with this answer.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(resp.map(|b| Tracked::new(b, in_flight)))
    }
}

/// The answer on a shed connection.
fn shed_response(version: Version) -> Response<Body> {
    let mut resp = Response::new(Body::from(
        "the server is busy, or this client holds too many connections: retry later\n",
    ));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = resp.headers_mut();
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(SHED_RETRY_AFTER),
    );
    if version < Version::HTTP_2 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
