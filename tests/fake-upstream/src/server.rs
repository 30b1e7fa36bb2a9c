//! The listener: plain HTTP or HTTPS (rustls with aws-lc-rs), HTTP/1.1 and HTTP/2. Each
//! connection carries a [`ConnectionKill`] in its requests' extensions so a fault can end
//! the TCP connection without a response, as a crashed proxy would.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::debug;

use crate::TlsFiles;

/// Ends the connection a request came on, without answering it.
#[derive(Clone, Debug, Default)]
pub struct ConnectionKill(CancellationToken);

impl ConnectionKill {
    /// Closes the connection (with a TCP reset) as soon as its task sees this.
    pub fn kill(&self) {
        self.0.cancel();
    }
}

/// Loads the PEM files into a rustls server configuration on the aws-lc-rs provider.
pub fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("certificate {}: {e}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("key {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish.
pub async fn run(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: CancellationToken,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let tracker = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let kill = ConnectionKill::default();
            let Some(acceptor) = acceptor else {
                let fd = reset_handle(&tcp);
                return serve_connection(tcp, fd, router, kill, shutdown).await;
            };
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let fd = reset_handle(tls.get_ref().0);
                    serve_connection(tls, fd, router, kill, shutdown).await
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// A second descriptor of the connection's socket, kept so that a fault can switch the
/// socket to zero linger (close sends a reset, not a FIN) after hyper and rustls own it.
/// Only a killed connection is armed: a reset on a normal close could discard a response
/// the client has not read yet.
fn reset_handle(tcp: &TcpStream) -> Option<OwnedFd> {
    tcp.as_fd().try_clone_to_owned().ok()
}

fn arm_reset(fd: Option<OwnedFd>) {
    let Some(fd) = fd else { return };
    let std = std::net::TcpStream::from(fd);
    if std.set_nonblocking(true).is_ok()
        && let Ok(dup) = TcpStream::from_std(std)
    {
        let _ = dup.set_zero_linger();
    }
}

async fn serve_connection<IO>(
    io: IO,
    reset_fd: Option<OwnedFd>,
    router: Router,
    kill: ConnectionKill,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let request_kill = kill.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(request_kill.clone());
            router.clone().oneshot(req)
        });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { debug!(error = %e, "connection ended with an error") },
        _ = kill.0.cancelled() => {
            arm_reset(reset_fd);
            // Dropping the connection drops the socket: with zero linger, a reset.
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}
