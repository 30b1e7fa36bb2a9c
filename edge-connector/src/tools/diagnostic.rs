//! Built-in diagnostic tools, so the tunnel can be tested end to end before (and beside)
//! the source-control tools: `diag.ping` answers who and when; `diag.echo` returns its input,
//! optionally after a delay (for deadline, cancellation and drain tests).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use shared::call::{Call, CallFailure, CallOutcome};
use shared::wire::{self, ErrorCode};

use super::{ToolContext, output};

/// `diag.ping`.
pub const PING: &str = "diag.ping";
/// `diag.echo`.
pub const ECHO: &str = "diag.echo";

/// Largest echo message.
const MAX_MESSAGE: usize = 64 * 1024;
/// Longest echo delay.
const MAX_DELAY_MS: u64 = 600_000;

/// Arguments of `diag.ping` (none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingArgs {}

/// Arguments of `diag.echo`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoArgs {
    /// Text to send back.
    pub message: String,
    /// Milliseconds to wait first.
    #[serde(default)]
    pub delay_ms: u64,
}

/// The specs of the diagnostic tools.
pub fn specs() -> Vec<wire::ToolSpec> {
    vec![
        wire::ToolSpec {
            name: PING.into(),
            description: "Check the tunnel: returns the connector's id, tenant, version and clock.".into(),
            input_schema_json: r#"{"type":"object","properties":{},"additionalProperties":false}"#.into(),
            output_schema_json: r#"{"type":"object","properties":{"connector_id":{"type":"string"},"tenant":{"type":"string"},"version":{"type":"string"},"unix_time_ms":{"type":"integer"},"caller":{"type":"object","properties":{"user":{"type":"string"},"agent":{"type":"string"}}}},"required":["connector_id","tenant","version","unix_time_ms","caller"]}"#.into(),
            read_only: true,
            destructive: false,
            idempotent: true,
            interactive: false,
            target_args: vec![],
            confirm_when_json: String::new(),
            instances: vec![],
        },
        wire::ToolSpec {
            name: ECHO.into(),
            description: "Return the given message, optionally after a delay in milliseconds.".into(),
            input_schema_json: r#"{"type":"object","properties":{"message":{"type":"string","maxLength":65536},"delay_ms":{"type":"integer","minimum":0,"maximum":600000}},"required":["message"],"additionalProperties":false}"#.into(),
            output_schema_json: r#"{"type":"object","properties":{"message":{"type":"string"},"connector_id":{"type":"string"}},"required":["message","connector_id"]}"#.into(),
            read_only: true,
            destructive: false,
            idempotent: true,
            interactive: false,
            target_args: vec![],
            confirm_when_json: String::new(),
            instances: vec![],
        },
    ]
}

/// `diag.ping`: also says on whose behalf it ran, so the identity chain can be checked end to
/// end.
pub async fn ping(ctx: &ToolContext, call: &Call, _args: PingArgs) -> CallOutcome {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    output(
        &serde_json::json!({
            "connector_id": ctx.identity.connector.as_str(),
            "tenant": ctx.identity.tenant.as_str(),
            "version": ctx.version,
            "unix_time_ms": now,
            "caller": { "user": call.caller.user, "agent": call.caller.agent },
        }),
        format!(
            "pong from connector {} (tenant {})",
            ctx.identity.connector, ctx.identity.tenant
        ),
    )
}

/// `diag.echo`.
pub async fn echo(ctx: &ToolContext, args: EchoArgs) -> CallOutcome {
    if args.message.len() > MAX_MESSAGE {
        return Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            format!("message is longer than {MAX_MESSAGE} bytes"),
        ));
    }
    if args.delay_ms > MAX_DELAY_MS {
        return Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            format!("delay_ms is above {MAX_DELAY_MS}"),
        ));
    }
    if args.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(args.delay_ms)).await;
    }
    let text = args.message.clone();
    output(
        &serde_json::json!({ "message": args.message, "connector_id": ctx.identity.connector.as_str() }),
        text,
    )
}
