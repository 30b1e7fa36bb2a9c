//! MCP sessions (2025-06-18, 2025-11-25) across replicas, with no sticky load balancer: a
//! session lives in the replica that opened it, and its id says which
//! (`{instance}.{id}`, [`public_id`]). A request for it that lands on another replica is
//! carried there over NATS, whole, after the landing replica authenticated it; the owner
//! serves it as if it had arrived there, and its answer comes back piece by piece, so an
//! SSE stream (notifications, a tool's questions, resumption with `Last-Event-ID`) works
//! from any replica. A session whose replica is gone is unknown (404), which tells the
//! client to open a new one, as the specification says.

use std::time::Duration;

use async_nats::{Client, Message, StatusCode, Subscriber};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::messages::{Header, SessionDown, SessionHead, SessionRequest, session_down::Kind};
use super::relay::Calls;
use super::routes::{Route, Routes, deliver};

/// How often the owner says a quiet answer (an idle SSE stream) is still open.
const ALIVE: Duration = Duration::from_secs(1);

/// How long the landing replica waits for a word from the owner.
const SILENCE: Duration = Duration::from_secs(3);

/// Largest body piece per NATS message (the server's default limit is 1 MiB).
const PIECE: usize = 256 * 1024;

/// Headers that belong to one HTTP connection, not to the request.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
];

/// The session id clients see for the session `local` of replica `instance`.
pub fn public_id(instance: u64, local: &str) -> String {
    format!("{instance:016x}.{local}")
}

/// The replica instance and local id a public session id names; `None` if it names none.
pub fn split_id(id: &str) -> Option<(u64, &str)> {
    let (instance, local) = id.split_once('.')?;
    if instance.len() != 16 || local.is_empty() {
        return None;
    }
    Some((u64::from_str_radix(instance, 16).ok()?, local))
}

/// The subject replica `instance` takes forwarded session requests on.
pub fn request_subject(prefix: &str, instance: u64) -> String {
    format!("{prefix}.session.{instance:016x}")
}

/// The subject replica `instance` takes "the client went away" on.
pub fn cancel_subject(prefix: &str, instance: u64) -> String {
    format!("{prefix}.session-cancel.{instance:016x}")
}

fn headers_of(map: &axum::http::HeaderMap) -> Vec<Header> {
    map.iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: value.as_bytes().to_vec(),
        })
        .collect()
}

fn apply_headers(map: &mut axum::http::HeaderMap, headers: Vec<Header>) {
    for h in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) && !HOP_BY_HOP.contains(&name.as_str())
        {
            map.append(name, value);
        }
    }
}

fn down(kind: Kind) -> Bytes {
    SessionDown { kind: Some(kind) }.encode_to_vec().into()
}

fn unavailable(why: &str) -> Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [("retry-after", "1")],
        format!("{why}; retry"),
    )
        .into_response()
}

/// Tells the owner to stop writing the answer unless it ended (the client went away).
struct CancelOnDrop {
    client: Client,
    subject: String,
    key: String,
    ended: bool,
}

impl CancelOnDrop {
    /// The answer ended: nothing to cancel.
    fn end(&mut self) {
        self.ended = true;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let client = self.client.clone();
        let (subject, key) = (
            std::mem::take(&mut self.subject),
            std::mem::take(&mut self.key),
        );
        tokio::spawn(async move {
            let _ = client.publish(subject, Bytes::from(key)).await;
        });
    }
}

/// What one message from the owner says.
fn read(msg: &Message) -> Option<Kind> {
    if msg.status == Some(StatusCode::NO_RESPONDERS) {
        return None;
    }
    match SessionDown::decode(msg.payload.as_ref()) {
        Ok(SessionDown { kind: Some(kind) }) => Some(kind),
        Ok(_) | Err(_) => {
            warn!("malformed session answer dropped");
            Some(Kind::Alive(true))
        }
    }
}

/// Carries `req` (already authenticated here) to the replica `instance` that holds its
/// session, and its answer back.
pub async fn forward(
    calls: &Calls,
    prefix: &str,
    instance: u64,
    req: Request,
    max_body: usize,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, max_body).await else {
        return (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "request too large",
        )
            .into_response();
    };
    let mut request = SessionRequest {
        method: parts.method.as_str().to_owned(),
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: headers_of(&parts.headers),
        body: body.to_vec(),
    };
    // HTTP/2 names the host in the URI, not in a header: the owner checks it all the same.
    if !parts.headers.contains_key(axum::http::header::HOST)
        && let Some(authority) = parts.uri.authority()
    {
        request.headers.push(Header {
            name: "host".into(),
            value: authority.as_str().as_bytes().to_vec(),
        });
    }
    let (key, route, mut rx) = calls.open();
    let client = calls.client();
    if let Err(e) = client
        .publish_with_reply(
            request_subject(prefix, instance),
            key.clone(),
            request.encode_to_vec().into(),
        )
        .await
    {
        return unavailable(&format!("NATS publish failed: {e}"));
    }
    let mut guard = CancelOnDrop {
        client: client.clone(),
        subject: cancel_subject(prefix, instance),
        key,
        ended: false,
    };
    let head = loop {
        match tokio::time::timeout(SILENCE, rx.recv()).await {
            Ok(Some(msg)) => match read(&msg) {
                // The owner is gone, and its sessions with it.
                None => {
                    guard.end();
                    return (axum::http::StatusCode::NOT_FOUND, "no such session").into_response();
                }
                Some(Kind::Head(head)) => break head,
                Some(_) => {}
            },
            Ok(None) | Err(_) => {
                return unavailable("the replica holding this session did not answer");
            }
        }
    };
    let mut response = Response::builder()
        .status(u16::try_from(head.status).unwrap_or(502))
        .body(Body::empty())
        .unwrap_or_default();
    apply_headers(response.headers_mut(), head.headers);
    // The body follows as it comes; dropping it (the client left) cancels at the owner.
    let pieces = futures_util::stream::unfold(
        (rx, route, guard),
        |(mut rx, route, mut guard)| async move {
            loop {
                let msg = match tokio::time::timeout(SILENCE, rx.recv()).await {
                    Ok(Some(msg)) => msg,
                    Ok(None) | Err(_) => {
                        debug!("session answer cut off: the owner went silent");
                        return None;
                    }
                };
                match read(&msg) {
                    Some(Kind::Chunk(bytes)) => {
                        return Some((
                            Ok::<_, std::io::Error>(Bytes::from(bytes)),
                            (rx, route, guard),
                        ));
                    }
                    Some(Kind::End(_)) | None => {
                        guard.end();
                        return None;
                    }
                    Some(Kind::Alive(_) | Kind::Head(_)) => {}
                }
            }
        },
    );
    *response.body_mut() = Body::from_stream(pieces);
    response
}

/// Serves the session requests other replicas carry here, on `router`, until the
/// subscriptions end: `requests` on [`request_subject`], `cancels` on [`cancel_subject`].
pub async fn serve(
    client: Client,
    router: Router,
    mut requests: Subscriber,
    mut cancels: Subscriber,
    tasks: tokio_util::task::TaskTracker,
) {
    let routes: Routes<()> = Routes::default();
    loop {
        tokio::select! {
            msg = requests.next() => {
                let Some(msg) = msg else { return };
                let Some(reply) = msg.reply.clone() else { continue };
                match SessionRequest::decode(msg.payload.as_ref()) {
                    Ok(req) => {
                        let (route, cancelled) = Route::open(&routes, reply.to_string());
                        tasks.spawn(serve_one(client.clone(), router.clone(), reply.to_string(), req, route, cancelled));
                    }
                    Err(e) => warn!(error = %e, "malformed session request dropped"),
                }
            }
            msg = cancels.next() => {
                let Some(msg) = msg else { return };
                if let Ok(key) = std::str::from_utf8(&msg.payload) {
                    deliver(&routes, key, ());
                }
            }
        }
    }
}

/// The request a [`SessionRequest`] describes; only MCP endpoints are served this way.
fn request_of(req: SessionRequest) -> Option<Request> {
    let uri: Uri = req.uri.parse().ok()?;
    let path = uri.path();
    if !(path.starts_with("/t/") && path.ends_with("/mcp")) {
        return None;
    }
    let mut request = Request::builder()
        .method(Method::from_bytes(req.method.as_bytes()).ok()?)
        .uri(uri)
        .body(Body::from(req.body))
        .ok()?;
    apply_headers(request.headers_mut(), req.headers);
    Some(request)
}

async fn serve_one(
    client: Client,
    router: Router,
    reply: String,
    req: SessionRequest,
    _route: Route<()>,
    mut cancelled: mpsc::UnboundedReceiver<()>,
) {
    let send = |kind| {
        let (client, reply) = (client.clone(), reply.clone());
        async move {
            if let Err(e) = client.publish(reply, down(kind)).await {
                debug!(error = %e, "session answer not sent");
            }
        }
    };
    let Some(request) = request_of(req) else {
        send(Kind::Head(SessionHead {
            status: 404,
            headers: Vec::new(),
        }))
        .await;
        send(Kind::End(true)).await;
        return;
    };
    let response = match router.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    send(Kind::Head(SessionHead {
        status: u32::from(parts.status.as_u16()),
        headers: headers_of(&parts.headers),
    }))
    .await;
    let mut body = body.into_data_stream();
    let mut alive = tokio::time::interval_at(Instant::now() + ALIVE, ALIVE);
    loop {
        tokio::select! {
            piece = body.next() => match piece {
                Some(Ok(bytes)) => {
                    for part in bytes.chunks(PIECE) {
                        send(Kind::Chunk(part.to_vec())).await;
                    }
                    alive.reset();
                }
                Some(Err(e)) => {
                    debug!(error = %e, "session answer ended with an error");
                    break;
                }
                None => break,
            },
            _ = alive.tick() => send(Kind::Alive(true)).await,
            _ = cancelled.recv() => return,
        }
    }
    send(Kind::End(true)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_name_their_replica() {
        let id = public_id(0xabc, "9f1c-uuid");
        assert_eq!(id, "0000000000000abc.9f1c-uuid");
        assert_eq!(split_id(&id), Some((0xabc, "9f1c-uuid")));
        assert_eq!(split_id("9f1c-uuid"), None);
        assert_eq!(split_id("abc.9f1c"), None, "instance not 16 digits");
        assert_eq!(split_id("000000000000zzzz.x"), None, "not hex");
        assert_eq!(split_id("0000000000000abc."), None, "no local id");
    }

    #[test]
    fn only_mcp_endpoints_are_served_for_other_replicas() {
        let req = |uri: &str| SessionRequest {
            method: "POST".into(),
            uri: uri.into(),
            headers: vec![Header {
                name: "transfer-encoding".into(),
                value: b"chunked".to_vec(),
            }],
            body: Vec::new(),
        };
        let ok = request_of(req("/t/acme/g/eng/mcp")).expect("an MCP endpoint");
        assert!(ok.headers().get("transfer-encoding").is_none());
        assert!(request_of(req("/oauth/token")).is_none());
        assert!(request_of(req("/t/acme/g/eng/mcp/../../../admin")).is_none());
    }
}
