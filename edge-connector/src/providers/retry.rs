//! The rate-limit and retry decisions of [`super::http`], as pure functions of what the
//! upstream said (status, headers), which attempt this was, and the time (`now` on the wall
//! clock for the upstream's reset times, `now` on the monotonic clock against the call's
//! deadline). Nothing here sleeps, sends or reads a clock, so every rule is tested on
//! explicit times.
//!
//! - Before an attempt: a bucket known to be empty, or a passed deadline, stops the call
//!   ([`before_attempt`]).
//! - After a response: a rate limit is waited out only when the wait is short, fits the
//!   deadline, and the request may be repeated; a `5xx` is retried with backoff only when
//!   repeating is harmless ([`after_response`]).
//! - After no response: retried only when the request provably never left, or repeating is
//!   harmless ([`after_loss`]).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Longest server-requested wait that is waited out rather than reported.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// The longest wait an upstream's headers are believed (a reset or retry-after beyond it is
/// a broken or hostile server, and is read as this).
pub const MAX_ADVISED_WAIT_SECS: u64 = 24 * 3600;
/// The wait assumed when a rate-limited response does not say how long.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// A rate-limit bucket's known state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Requests left until the reset.
    pub remaining: u64,
    /// When the bucket fills again.
    pub reset_at: SystemTime,
}

/// Where a request stands in its retries.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// This attempt's number, from 1.
    pub number: u32,
    /// How many more attempts the instance allows after the first.
    pub max_retries: u32,
    /// Whether repeating the request is harmless.
    pub idempotent: bool,
}

impl Attempt {
    fn retries_left(self) -> bool {
        self.number <= self.max_retries
    }
}

/// How an attempt got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    /// No answer in time.
    pub timed_out: bool,
    /// The connection could not be made, so the request provably never left.
    pub never_sent: bool,
}

impl Loss {
    /// How the failure says it.
    pub fn says(self) -> &'static str {
        if self.timed_out {
            "timed out"
        } else if self.never_sent {
            "could not be reached"
        } else {
            "dropped the connection"
        }
    }
}

/// Why a request is not sent, or not sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The user's bucket is known to be empty until it resets in `resets_in`.
    BucketEmpty {
        /// Until the reset.
        resets_in: Duration,
    },
    /// The call's deadline passed.
    DeadlinePassed,
    /// The upstream is rate limiting the user; they may try again after `retry_after`.
    RateLimited {
        /// The wait the upstream asked for (or [`DEFAULT_WAIT`]).
        retry_after: Duration,
    },
    /// A server error that is not retried; `maybe_applied` when the request was a write
    /// that may have taken effect.
    ServerError {
        /// Whether a write may have been applied.
        maybe_applied: bool,
    },
    /// No response, and no retry; `maybe_applied` as above.
    Lost {
        /// How it was lost.
        loss: Loss,
        /// Whether a write may have been applied.
        maybe_applied: bool,
    },
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Hand the response to the caller, whatever its status.
    Proceed,
    /// Try again after the next backoff delay (bounded by the deadline).
    Backoff,
    /// Try again after the wait the upstream asked for.
    Wait(Duration),
    /// Stop.
    GiveUp(GiveUp),
}

fn secs_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Whether the next attempt may go out: not when `bucket` is known to be empty until a
/// reset still ahead of `wall`, nor once `now` has reached `deadline`. Returns the time
/// left for the attempt.
pub fn before_attempt(
    bucket: Option<Bucket>,
    wall: SystemTime,
    now: Instant,
    deadline: Instant,
) -> Result<Duration, GiveUp> {
    if let Some(b) = bucket
        && b.remaining == 0
        && let Ok(resets_in) = b.reset_at.duration_since(wall)
    {
        return Err(GiveUp::BucketEmpty { resets_in });
    }
    deadline
        .checked_duration_since(now)
        .filter(|d| !d.is_zero())
        .ok_or(GiveUp::DeadlinePassed)
}

/// The bucket a response's `x-ratelimit-*` (GitHub) or `RateLimit-*` (GitLab) headers
/// describe, and its name (`search` when GitHub says so, else `default`); `None` without
/// them. A reset further than [`MAX_ADVISED_WAIT_SECS`] past `wall` is read as that.
pub fn read_bucket(
    headers: &HeaderMap,
    default: &'static str,
    wall: SystemTime,
) -> Option<(&'static str, Bucket)> {
    let get = |names: &[&str]| names.iter().find_map(|n| header_u64(headers, n));
    let remaining = get(&["x-ratelimit-remaining", "ratelimit-remaining"])?;
    let reset = get(&["x-ratelimit-reset", "ratelimit-reset"])?;
    let name = match headers
        .get("x-ratelimit-resource")
        .and_then(|v| v.to_str().ok())
    {
        Some("search") => "search",
        _ => default,
    };
    let reset = reset.min(secs_since_epoch(wall).saturating_add(MAX_ADVISED_WAIT_SECS));
    Some((
        name,
        Bucket {
            remaining,
            reset_at: UNIX_EPOCH + Duration::from_secs(reset),
        },
    ))
}

/// Whether a response is the upstream pushing back (rate limit, abuse detection): a `429`,
/// or a `403` with `retry-after`, an exhausted GitHub bucket, or a message saying so
/// (`message` is asked only then).
pub fn is_rate_limited(
    status: StatusCode,
    headers: &HeaderMap,
    message: impl FnOnce() -> Option<String>,
) -> bool {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return true;
    }
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    status == StatusCode::FORBIDDEN
        && (header("retry-after").is_some()
            || header("x-ratelimit-remaining") == Some("0")
            || message().is_some_and(|m| m.to_ascii_lowercase().contains("rate limit")))
}

/// How long the server asks us to wait, if it does: `retry-after`, or an exhausted
/// bucket's reset (counted from `wall`), capped at [`MAX_ADVISED_WAIT_SECS`].
pub fn requested_wait(
    status: StatusCode,
    headers: &HeaderMap,
    wall: SystemTime,
) -> Option<Duration> {
    if let Some(secs) = header_u64(headers, "retry-after") {
        return Some(Duration::from_secs(secs.min(MAX_ADVISED_WAIT_SECS)));
    }
    let exhausted = header_u64(headers, "x-ratelimit-remaining")
        .or_else(|| header_u64(headers, "ratelimit-remaining"))
        == Some(0);
    if status == StatusCode::TOO_MANY_REQUESTS || (status == StatusCode::FORBIDDEN && exhausted) {
        let reset = header_u64(headers, "x-ratelimit-reset")
            .or_else(|| header_u64(headers, "ratelimit-reset"));
        return Some(
            reset
                .map(|r| {
                    Duration::from_secs(
                        r.saturating_sub(secs_since_epoch(wall))
                            .min(MAX_ADVISED_WAIT_SECS),
                    )
                })
                .unwrap_or(DEFAULT_WAIT),
        );
    }
    None
}

/// What to do with a response: wait out a short rate limit that fits the deadline, retry
/// a server error with backoff, when the request may be repeated; otherwise give up with
/// the reason, or hand the response over. `message` is the upstream's error message, asked
/// only for a `403`.
pub fn after_response(
    status: StatusCode,
    headers: &HeaderMap,
    message: impl FnOnce() -> Option<String>,
    attempt: Attempt,
    wall: SystemTime,
    now: Instant,
    deadline: Instant,
) -> Decision {
    if is_rate_limited(status, headers, message) {
        let wait = requested_wait(status, headers, wall).unwrap_or(DEFAULT_WAIT);
        let fits = now.checked_add(wait).is_some_and(|t| t < deadline);
        if attempt.retries_left() && attempt.idempotent && wait <= MAX_WAIT && fits {
            return Decision::Wait(wait);
        }
        return Decision::GiveUp(GiveUp::RateLimited { retry_after: wait });
    }
    if status.is_server_error() {
        if attempt.retries_left() && attempt.idempotent {
            return Decision::Backoff;
        }
        return Decision::GiveUp(GiveUp::ServerError {
            maybe_applied: !attempt.idempotent,
        });
    }
    Decision::Proceed
}

/// What to do when an attempt got no response: retry with backoff when attempts are left
/// and the request never left or may be repeated; otherwise give up.
pub fn after_loss(loss: Loss, attempt: Attempt) -> Decision {
    if attempt.retries_left() && (loss.never_sent || attempt.idempotent) {
        return Decision::Backoff;
    }
    Decision::GiveUp(GiveUp::Lost {
        loss,
        maybe_applied: !attempt.idempotent && !loss.never_sent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fake wall clock: a fixed second since the epoch.
    const WALL_SECS: u64 = 1_700_000_000;

    fn wall() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(WALL_SECS)
    }

    /// Response headers as a table row gives them.
    type Headers = Vec<(&'static str, String)>;
    /// Case, status, headers, message, attempt, deadline, decision.
    type ResponseRow = (
        &'static str,
        u16,
        Headers,
        Option<&'static str>,
        Attempt,
        Instant,
        Decision,
    );
    /// Case, headers, bucket read.
    type BucketRow = (&'static str, Headers, Option<(&'static str, Bucket)>);

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn reset_in(secs: u64) -> String {
        (WALL_SECS + secs).to_string()
    }

    fn read(max_retries: u32, number: u32) -> Attempt {
        Attempt {
            number,
            max_retries,
            idempotent: true,
        }
    }

    fn write(max_retries: u32, number: u32) -> Attempt {
        Attempt {
            idempotent: false,
            ..read(max_retries, number)
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn responses_are_waited_out_retried_or_given_up_as_the_rules_say() {
        let now = Instant::now();
        let far = now + S(120);
        let rate_limited = |secs| {
            Decision::GiveUp(GiveUp::RateLimited {
                retry_after: S(secs),
            })
        };
        #[rustfmt::skip]
        let table: Vec<ResponseRow> = vec![
            ("success", 200, vec![], None, read(2, 1), far, Decision::Proceed),
            ("not found", 404, vec![], None, read(2, 1), far, Decision::Proceed),
            ("a plain 403 is a refusal, not a limit", 403, vec![], Some("Must have admin rights"), read(2, 1), far, Decision::Proceed),
            ("GitHub primary limit, short reset", 403,
                vec![("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", reset_in(5))],
                None, read(2, 1), far, Decision::Wait(S(5))),
            ("GitHub primary limit, long reset", 403,
                vec![("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", reset_in(1800))],
                None, read(2, 1), far, rate_limited(1800)),
            ("GitHub primary limit, reset in the past", 403,
                vec![("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", (WALL_SECS - 10).to_string())],
                None, read(2, 1), far, Decision::Wait(S(0))),
            ("GitHub secondary limit (retry-after)", 403, vec![("retry-after", "3".into())], None, read(2, 1), far, Decision::Wait(S(3))),
            ("GitHub secondary limit said only in the message", 403, vec![],
                Some("You have exceeded a secondary rate limit"), read(2, 1), far, rate_limited(60)),
            ("429 with retry-after", 429, vec![("retry-after", "2".into())], None, read(2, 1), far, Decision::Wait(S(2))),
            ("429 saying nothing", 429, vec![], None, read(2, 1), far, rate_limited(60)),
            ("an absurd retry-after is capped", 429, vec![("retry-after", "999999999".into())], None, read(2, 1), far,
                rate_limited(MAX_ADVISED_WAIT_SECS)),
            ("GitLab RateLimit-* on a 429", 429,
                vec![("ratelimit-remaining", "0".into()), ("ratelimit-reset", reset_in(4))],
                None, read(2, 1), far, Decision::Wait(S(4))),
            ("GitLab Retry-After wins over the reset", 429,
                vec![("retry-after", "1".into()), ("ratelimit-reset", reset_in(9))],
                None, read(2, 1), far, Decision::Wait(S(1))),
            ("a wait the deadline cannot hold", 429, vec![("retry-after", "5".into())], None, read(2, 1), now + S(3), rate_limited(5)),
            ("a wait ending at the deadline", 429, vec![("retry-after", "5".into())], None, read(2, 1), now + S(5), rate_limited(5)),
            ("a write is not repeated after a limit", 429, vec![("retry-after", "1".into())], None, write(2, 1), far, rate_limited(1)),
            ("no attempts left after a limit", 429, vec![("retry-after", "1".into())], None, read(2, 3), far, rate_limited(1)),
            ("5xx on a read: backoff", 502, vec![], None, read(2, 1), far, Decision::Backoff),
            ("5xx on the last retry: backoff", 503, vec![], None, read(2, 2), far, Decision::Backoff),
            ("5xx with no attempts left", 500, vec![], None, read(2, 3), far,
                Decision::GiveUp(GiveUp::ServerError { maybe_applied: false })),
            ("5xx on a write", 500, vec![], None, write(2, 1), far,
                Decision::GiveUp(GiveUp::ServerError { maybe_applied: true })),
            ("no retries configured", 502, vec![], None, read(0, 1), far,
                Decision::GiveUp(GiveUp::ServerError { maybe_applied: false })),
        ];
        for (name, status, hs, message, attempt, deadline, want) in table {
            let status = StatusCode::from_u16(status).unwrap();
            let got = after_response(
                status,
                &headers(&hs),
                || message.map(str::to_owned),
                attempt,
                wall(),
                now,
                deadline,
            );
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_message_is_read_only_for_a_403() {
        let mut asked = false;
        let d = after_response(
            StatusCode::OK,
            &HeaderMap::new(),
            || {
                asked = true;
                None
            },
            read(2, 1),
            wall(),
            Instant::now(),
            Instant::now() + S(60),
        );
        assert_eq!(d, Decision::Proceed);
        assert!(!asked);
    }

    #[test]
    fn lost_responses_are_retried_only_when_repeating_is_harmless() {
        const DROPPED: Loss = Loss {
            timed_out: false,
            never_sent: false,
        };
        const TIMED_OUT: Loss = Loss {
            timed_out: true,
            never_sent: false,
        };
        const UNREACHABLE: Loss = Loss {
            timed_out: false,
            never_sent: true,
        };
        const CONNECT_TIMED_OUT: Loss = Loss {
            timed_out: true,
            never_sent: true,
        };
        let lost = |loss, maybe_applied| {
            Decision::GiveUp(GiveUp::Lost {
                loss,
                maybe_applied,
            })
        };
        let table = [
            ("read, dropped", DROPPED, read(2, 1), Decision::Backoff),
            ("read, timed out", TIMED_OUT, read(2, 2), Decision::Backoff),
            (
                "write never sent",
                UNREACHABLE,
                write(2, 1),
                Decision::Backoff,
            ),
            (
                "write whose connect timed out",
                CONNECT_TIMED_OUT,
                write(2, 1),
                Decision::Backoff,
            ),
            (
                "write timed out",
                TIMED_OUT,
                write(2, 1),
                lost(TIMED_OUT, true),
            ),
            ("write dropped", DROPPED, write(2, 1), lost(DROPPED, true)),
            (
                "read, no attempts left",
                DROPPED,
                read(2, 3),
                lost(DROPPED, false),
            ),
            (
                "write never sent, no attempts left",
                UNREACHABLE,
                write(2, 3),
                lost(UNREACHABLE, false),
            ),
        ];
        for (name, loss, attempt, want) in table {
            assert_eq!(after_loss(loss, attempt), want, "{name}");
        }
        assert_eq!(CONNECT_TIMED_OUT.says(), "timed out");
        assert_eq!(UNREACHABLE.says(), "could not be reached");
        assert_eq!(DROPPED.says(), "dropped the connection");
    }

    #[test]
    fn an_empty_bucket_or_a_passed_deadline_stops_the_next_attempt() {
        let now = Instant::now();
        let bucket = |remaining, reset_secs: u64| Bucket {
            remaining,
            reset_at: UNIX_EPOCH + S(reset_secs),
        };
        let table = [
            ("no bucket known", None, now + S(30), Ok(S(30))),
            (
                "bucket with requests left",
                Some(bucket(5, WALL_SECS + 60)),
                now + S(30),
                Ok(S(30)),
            ),
            (
                "empty bucket, reset ahead",
                Some(bucket(0, WALL_SECS + 60)),
                now + S(30),
                Err(GiveUp::BucketEmpty { resets_in: S(60) }),
            ),
            (
                "empty bucket, reset now",
                Some(bucket(0, WALL_SECS)),
                now + S(30),
                Err(GiveUp::BucketEmpty { resets_in: S(0) }),
            ),
            (
                "empty bucket, reset passed",
                Some(bucket(0, WALL_SECS - 1)),
                now + S(30),
                Ok(S(30)),
            ),
            ("deadline reached", None, now, Err(GiveUp::DeadlinePassed)),
            (
                "deadline passed",
                None,
                now.checked_sub(S(1)).unwrap_or(now),
                Err(GiveUp::DeadlinePassed),
            ),
        ];
        for (name, bucket, deadline, want) in table {
            assert_eq!(
                before_attempt(bucket, wall(), now, deadline),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn buckets_are_read_from_either_providers_headers() {
        let at = |secs| UNIX_EPOCH + S(secs);
        let table: Vec<BucketRow> = vec![
            ("no headers", vec![], None),
            (
                "GitHub core",
                vec![
                    ("x-ratelimit-remaining", "41".into()),
                    ("x-ratelimit-reset", reset_in(600)),
                ],
                Some((
                    "core",
                    Bucket {
                        remaining: 41,
                        reset_at: at(WALL_SECS + 600),
                    },
                )),
            ),
            (
                "GitHub search",
                vec![
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset", reset_in(30)),
                    ("x-ratelimit-resource", "search".into()),
                ],
                Some((
                    "search",
                    Bucket {
                        remaining: 0,
                        reset_at: at(WALL_SECS + 30),
                    },
                )),
            ),
            (
                "GitLab",
                vec![
                    ("ratelimit-remaining", "7".into()),
                    ("ratelimit-reset", reset_in(60)),
                ],
                Some((
                    "core",
                    Bucket {
                        remaining: 7,
                        reset_at: at(WALL_SECS + 60),
                    },
                )),
            ),
            (
                "a reset too far ahead is capped",
                vec![
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset", u64::MAX.to_string()),
                ],
                Some((
                    "core",
                    Bucket {
                        remaining: 0,
                        reset_at: at(WALL_SECS + MAX_ADVISED_WAIT_SECS),
                    },
                )),
            ),
            (
                "remaining without a reset",
                vec![("x-ratelimit-remaining", "0".into())],
                None,
            ),
        ];
        for (name, hs, want) in table {
            assert_eq!(read_bucket(&headers(&hs), "core", wall()), want, "{name}");
        }
    }
}
