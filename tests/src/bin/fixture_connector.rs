//! A test connector: the real edge-connector library (enrollment state, tunnel, session,
//! drain) serving the MCP conformance suite's reference fixture tools instead of the
//! source-control tools, so the suite exercises client → runtime → tunnel → connector,
//! including server-to-client requests (elicitation, sampling) that cross the runtime.
//!
//! Usage: `fixture_connector --state-dir DIR` (enroll with `edge-connector enroll` first).

use std::sync::Arc;
use std::time::Duration;

use edge_connector::config::Transport;
use edge_connector::tools::{BoxFuture, CallContext, ToolSet, args, unknown_tool};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::call::{Call, CallFailure, CallOutcome};
use shared::wire::{self, ErrorCode, PeerMethod};

/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
/// An empty 8 kHz mono WAV.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=";

struct Fixtures;

fn spec(name: &str, description: &str, input: Value) -> wire::ToolSpec {
    wire::ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema_json: input.to_string(),
        output_schema_json: String::new(),
        read_only: true,
        destructive: false,
        idempotent: true,
        interactive: false,
        target_args: vec![],
        confirm_when_json: String::new(),
        instances: vec![],
    }
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn content(blocks: Value, is_error: bool) -> CallOutcome {
    Ok(wire::ToolOutput {
        structured_json: Vec::new(),
        text: String::new(),
        is_error,
        content_json: blocks.to_string().into_bytes(),
    })
}

fn text(t: &str) -> CallOutcome {
    content(json!([{"type": "text", "text": t}]), false)
}

#[derive(Deserialize)]
struct Prompt {
    prompt: String,
}

#[derive(Deserialize)]
struct Message {
    message: String,
}

impl Fixtures {
    async fn run(&self, call: &Call, ctx: &CallContext) -> CallOutcome {
        match call.tool.as_str() {
            "test_simple_text" => text("This is a simple text response for testing."),
            "test_image_content" => content(
                json!([{"type": "image", "data": PNG, "mimeType": "image/png"}]),
                false,
            ),
            "test_audio_content" => content(
                json!([{"type": "audio", "data": WAV, "mimeType": "audio/wav"}]),
                false,
            ),
            "test_embedded_resource" => content(
                json!([{"type": "resource", "resource": {"uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}}]),
                false,
            ),
            "test_multiple_content_types" => content(
                json!([
                    {"type": "text", "text": "Multiple content types test:"},
                    {"type": "image", "data": PNG, "mimeType": "image/png"},
                    {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"}}
                ]),
                false,
            ),
            "test_tool_with_logging" => {
                for (i, msg) in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ]
                .iter()
                .enumerate()
                {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    ctx.log("info", "fixture", json!(msg)).await;
                }
                text("Tool with logging executed successfully")
            }
            "test_error_handling" => content(
                json!([{"type": "text", "text": "This tool intentionally returns an error for testing"}]),
                true,
            ),
            "test_tool_with_progress" => {
                for (i, p) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    ctx.progress(p, Some(100.0), &format!("Progress {p}%"))
                        .await;
                }
                text("Tool with progress executed successfully")
            }
            "test_sampling" => {
                let a: Prompt = args(call)?;
                let r = ctx
                    .request(
                        PeerMethod::Sample,
                        &json!({"messages": [{"role": "user", "content": {"type": "text", "text": a.prompt}}], "maxTokens": 100}),
                    )
                    .await?;
                let reply = r
                    .pointer("/content/text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                text(&format!("LLM response: {reply}"))
            }
            "test_elicitation" => {
                let a: Message = args(call)?;
                let r = ctx
                    .request(
                        PeerMethod::Elicit,
                        &json!({"message": a.message, "requestedSchema": {"type": "object", "properties": {
                            "username": {"type": "string", "description": "User's response"},
                            "email": {"type": "string", "description": "User's email address"}
                        }, "required": ["username", "email"]}}),
                    )
                    .await?;
                text(&format!("User response: {r}"))
            }
            "test_elicitation_sep1034_defaults" => {
                let r = ctx
                    .request(
                        PeerMethod::Elicit,
                        &json!({"message": "Please review and update the form fields with defaults", "requestedSchema": {"type": "object", "properties": {
                            "name": {"type": "string", "description": "User name", "default": "John Doe"},
                            "age": {"type": "integer", "description": "User age", "default": 30},
                            "score": {"type": "number", "description": "User score", "default": 95.5},
                            "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                            "verified": {"type": "boolean", "description": "Verification status", "default": true}
                        }}}),
                    )
                    .await?;
                text(&format!("Elicitation completed: {r}"))
            }
            "test_elicitation_sep1330_enums" => {
                let r = ctx
                    .request(
                        PeerMethod::Elicit,
                        &json!({"message": "Please select options from the enum fields", "requestedSchema": {"type": "object", "properties": {
                            "untitledSingle": {"type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"]},
                            "titledSingle": {"type": "string", "description": "Select one option with titles", "oneOf": [
                                {"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"}, {"const": "value3", "title": "Third Option"}]},
                            "legacyEnum": {"type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
                            "untitledMulti": {"type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3,
                                "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                            "titledMulti": {"type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3,
                                "items": {"anyOf": [{"const": "value1", "title": "First Choice"}, {"const": "value2", "title": "Second Choice"}, {"const": "value3", "title": "Third Choice"}]}}
                        }}}),
                    )
                    .await?;
                text(&format!("Elicitation completed: {r}"))
            }
            "json_schema_2020_12_tool" => text(&format!(
                "received: {}",
                String::from_utf8_lossy(&call.arguments_json)
            )),
            other => Err(unknown_tool(other)),
        }
    }
}

impl ToolSet for Fixtures {
    fn specs(&self) -> Vec<wire::ToolSpec> {
        let mut specs = vec![
            spec(
                "test_simple_text",
                "Tests simple text content response",
                no_args(),
            ),
            spec(
                "test_image_content",
                "Tests image content response",
                no_args(),
            ),
            spec(
                "test_audio_content",
                "Tests audio content response",
                no_args(),
            ),
            spec(
                "test_embedded_resource",
                "Tests embedded resource content response",
                no_args(),
            ),
            spec(
                "test_multiple_content_types",
                "Tests response with multiple content types",
                no_args(),
            ),
            spec(
                "test_tool_with_logging",
                "Tests tool that emits log messages during execution",
                no_args(),
            ),
            spec(
                "test_error_handling",
                "Tests error response handling",
                no_args(),
            ),
            spec(
                "test_tool_with_progress",
                "Tests tool that reports progress notifications",
                no_args(),
            ),
            spec(
                "test_sampling",
                "Tests server-initiated sampling (LLM completion request)",
                json!({"type": "object", "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}}, "required": ["prompt"]}),
            ),
            spec(
                "test_elicitation",
                "Tests server-initiated elicitation (user input request)",
                json!({"type": "object", "properties": {"message": {"type": "string", "description": "The message to show the user"}}, "required": ["message"]}),
            ),
            spec(
                "test_elicitation_sep1034_defaults",
                "Tests elicitation with default values per SEP-1034",
                no_args(),
            ),
            spec(
                "test_elicitation_sep1330_enums",
                "Tests elicitation with enum schema improvements per SEP-1330",
                no_args(),
            ),
            spec(
                "json_schema_2020_12_tool",
                "Tool with JSON Schema 2020-12 features",
                json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
                    "additionalProperties": false
                }),
            ),
        ];
        for s in &mut specs {
            s.idempotent = false;
            s.interactive =
                s.name.starts_with("test_sampling") || s.name.starts_with("test_elicitation");
        }
        specs
    }

    fn call<'a>(&'a self, call: &'a Call, ctx: &'a CallContext) -> BoxFuture<'a, CallOutcome> {
        Box::pin(async move {
            self.run(call, ctx).await.map_err(|e| {
                if e.code == ErrorCode::Unspecified {
                    CallFailure::new(ErrorCode::Internal, e.message)
                } else {
                    e
                }
            })
        })
    }
}

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let state_dir = match (argv.next().as_deref(), argv.next()) {
        (Some("--state-dir"), Some(dir)) => dir,
        _ => anyhow::bail!("usage: fixture_connector --state-dir DIR"),
    };
    // Tests pick the transport: quic, tcp, or (unset) auto.
    let transport = match std::env::var("FIXTURE_TRANSPORT").as_deref() {
        Ok("tcp") => Transport::Tcp,
        Ok("quic") => Transport::Quic,
        _ => Transport::Auto,
    };
    e2e::library_connector::run(
        &state_dir,
        "fixture-connector",
        Arc::new(Fixtures),
        None,
        transport,
    )
}
