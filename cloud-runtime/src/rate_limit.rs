//! Per-address rate limits for the endpoints anyone can reach before authenticating
//! (enrollment, client registration, authorization, sign-in, token). Each distinct client
//! address gets a token bucket; past it, requests get 429 with `Retry-After`, so a flood from
//! one address cannot fill the store with registrations or grind at sign-in.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A keyed limiter.
#[derive(Debug)]
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl RateLimit {
    /// `per_minute` requests per address, in bursts of up to `burst`.
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Arc<Self> {
        Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            clock: DefaultClock::default(),
        })
    }

    /// Forgets addresses whose buckets are full again (keeps memory bounded).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}

/// Middleware: refuses a request over its address's budget.
pub async fn limit(State(rl): State<Arc<RateLimit>>, req: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    match rl.limiter.check_key(&peer.ip()) {
        Ok(()) => next.run(req).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(rl.clock.now()).as_secs().max(1);
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from this address",
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}
