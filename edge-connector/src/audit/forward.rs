//! Forwarding each record, once it is durably written, to the customer's syslog collector
//! over TLS ([`super::syslog`] makes the messages).
//!
//! It never holds up a call: the writer thread hands the lines of each written segment to a
//! bounded [`Queue`] and goes on. One task connects (with backoff), sends what is queued,
//! and takes records off the queue only once their bytes were written to the connection;
//! when the connection fails (or the collector closes it) the records not yet written stay
//! and are sent again after reconnecting. When the queue is full the **oldest** records are
//! dropped and counted: what the collector misses after a long outage is the start of it.
//! A lost collector is logged once per outage (warn), its return once (info, with the
//! number dropped so far).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tracing::{info, warn};

use super::syslog::{self, Header, SyslogConfig};
use crate::backoff::Backoff;

/// Most records written to the connection before it is flushed and they are taken off.
const MAX_BATCH: usize = 256;
/// Limit on connecting and on the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit on writing one batch: a collector that stops reading is treated as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why forwarding cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// A certificate or key file of `[audit.syslog]` cannot be used.
    #[error("[audit.syslog] {path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The TLS configuration cannot be built.
    #[error("[audit.syslog] TLS: {0}")]
    Tls(String),
    /// `address` is not `host:port`.
    #[error("[audit.syslog] address {0:?} is not host:port")]
    Address(String),
}

/// The records waiting for the collector.
#[derive(Debug, Default)]
struct Pending {
    lines: VecDeque<(u64, Arc<[u8]>)>,
    next_id: u64,
    dropped: u64,
    /// Whether dropping was logged since records last left the queue.
    warned: bool,
}

/// The bounded queue between the writer thread and the sending task.
#[derive(Debug)]
pub struct Queue {
    pending: Mutex<Pending>,
    bound: usize,
    more: Notify,
}

impl Queue {
    /// An empty queue that keeps at most `bound` records.
    pub fn new(bound: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            bound: bound.max(1),
            more: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues each line of `segment` (NDJSON), dropping the oldest records past the bound.
    pub fn offer(&self, segment: &[u8]) {
        let mut p = self.lock();
        for line in segment.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if p.lines.len() >= self.bound {
                p.lines.pop_front();
                p.dropped += 1;
                if !p.warned {
                    p.warned = true;
                    warn!(
                        bound = self.bound,
                        dropped = p.dropped,
                        "syslog forwarding queue full: dropping the oldest audit records until the collector takes them"
                    );
                }
            }
            let id = p.next_id;
            p.next_id += 1;
            p.lines.push_back((id, Arc::from(line)));
        }
        drop(p);
        self.more.notify_one();
    }

    /// Records dropped at the bound so far.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest records, at most `n`, left in the queue.
    fn peek(&self, n: usize) -> Vec<(u64, Arc<[u8]>)> {
        self.lock().lines.iter().take(n).cloned().collect()
    }

    /// Takes off every record up to `id` (those the writer dropped meanwhile are gone).
    fn sent(&self, id: u64) {
        let mut p = self.lock();
        while p.lines.front().is_some_and(|(i, _)| *i <= id) {
            p.lines.pop_front();
        }
        p.warned = false;
    }
}

/// Builds the TLS client of `config`: the system roots plus `ca_bundle`, and a client
/// certificate when one is configured.
fn tls_config(config: &SyslogConfig) -> Result<rustls::ClientConfig, ForwardError> {
    let file_err = |path: &std::path::Path, e: &dyn std::fmt::Display| ForwardError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are not fatal: the bundle may be all that is needed.
    let (system, _) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let bundle = CertificateDer::pem_file_iter(&config.ca_bundle)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_err(&config.ca_bundle, &e))?;
    if bundle.is_empty() {
        return Err(file_err(&config.ca_bundle, &"no certificate in the file"));
    }
    for cert in bundle {
        roots
            .add(cert)
            .map_err(|e| file_err(&config.ca_bundle, &e))?;
    }
    tracing::debug!(system, "syslog forwarding: roots loaded");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_err(cert, &e))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, &e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| ForwardError::Tls(e.to_string()))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Starts forwarding to the collector of `config` (on the current tokio runtime); returns
/// the queue the writer offers written segments to.
pub fn start(config: &SyslogConfig) -> Result<Arc<Queue>, ForwardError> {
    let (host, port) = config
        .host_port()
        .ok_or_else(|| ForwardError::Address(config.address.clone()))?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| ForwardError::Address(config.address.clone()))?;
    let connector = TlsConnector::from(Arc::new(tls_config(config)?));
    let queue = Arc::new(Queue::new(config.queue));
    let sender = Sender {
        address: config.address.clone(),
        host: host.to_owned(),
        port,
        name,
        connector,
        header: Header::local(config),
        queue: queue.clone(),
    };
    info!(collector = %config.address, queue = config.queue, "forwarding audit records to syslog");
    tokio::spawn(sender.run());
    Ok(queue)
}

/// The sending task's state.
struct Sender {
    address: String,
    host: String,
    port: u16,
    name: ServerName<'static>,
    connector: TlsConnector,
    header: Header,
    queue: Arc<Queue>,
}

type Stream = tokio_rustls::client::TlsStream<TcpStream>;

impl Sender {
    async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut down = false;
        loop {
            let why = match self.connect().await {
                Ok(stream) => {
                    backoff.reset();
                    if down {
                        info!(collector = %self.address, dropped = self.queue.dropped(), waiting = self.queue.len(),
                            "syslog collector reachable again: sending the queued audit records");
                        down = false;
                    } else {
                        info!(collector = %self.address, "syslog collector connected");
                    }
                    self.pump(stream).await
                }
                Err(e) => e,
            };
            if !down {
                warn!(collector = %self.address, error = %why, bound = self.queue.bound,
                    "syslog collector unreachable: audit records are queued until it returns (the oldest are dropped past the bound)");
                down = true;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn connect(&self) -> Result<Stream, String> {
        let attempt = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            self.connector
                .connect(self.name.clone(), tcp)
                .await
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(CONNECT_TIMEOUT, attempt)
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    /// Sends until the connection fails; returns why.
    async fn pump(&self, stream: Stream) -> String {
        let (mut rx, mut tx) = tokio::io::split(stream);
        let mut scratch = [0u8; 512];
        loop {
            let batch = self.queue.peek(MAX_BATCH);
            let Some((last, _)) = batch.last() else {
                // Idle: wait for records, and notice meanwhile a collector that hangs up
                // (it sends nothing else), so that no record is written into a dead socket.
                tokio::select! {
                    read = rx.read(&mut scratch) => match read {
                        Ok(0) => return "the collector closed the connection".to_owned(),
                        Ok(_) => continue,
                        Err(e) => return e.to_string(),
                    },
                    () = self.queue.more.notified() => continue,
                }
            };
            let mut bytes = Vec::new();
            for (_, line) in &batch {
                if let Some(msg) = syslog::message(&self.header, line) {
                    bytes.extend_from_slice(&syslog::frame(&msg));
                }
            }
            let write = async {
                tx.write_all(&bytes).await?;
                tx.flush().await
            };
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return e.to_string(),
                Err(_) => return "the collector stopped reading".to_owned(),
            }
            self.queue.sent(*last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_bound_the_oldest_records_are_dropped_and_counted() {
        let q = Queue::new(3);
        q.offer(b"a\nb\n");
        q.offer(b"c\nd\ne\n");
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 2);
        let kept: Vec<Vec<u8>> = q.peek(10).iter().map(|(_, l)| l.to_vec()).collect();
        assert_eq!(kept, vec![b"c".to_vec(), b"d".to_vec(), b"e".to_vec()]);
    }

    #[test]
    fn only_records_written_to_the_connection_leave_the_queue() {
        let q = Queue::new(10);
        q.offer(b"a\nb\nc\n");
        let batch = q.peek(2);
        // More arrive while the batch is in flight; the batch's end is taken off, no more.
        q.offer(b"d\n");
        q.sent(batch.last().unwrap().0);
        let left: Vec<Vec<u8>> = q.peek(10).iter().map(|(_, l)| l.to_vec()).collect();
        assert_eq!(left, vec![b"c".to_vec(), b"d".to_vec()]);
    }

    #[test]
    fn records_dropped_while_a_batch_is_in_flight_do_not_take_newer_ones_with_them() {
        let q = Queue::new(2);
        q.offer(b"a\nb\n");
        let batch = q.peek(2);
        q.offer(b"c\nd\n");
        q.sent(batch.last().unwrap().0);
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 2);
    }
}
