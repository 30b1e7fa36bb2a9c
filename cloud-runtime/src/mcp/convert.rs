//! From the tunnel's tool specs and results to MCP's types (failures: [`super::refusal`]).

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, MetaObject, Tool, ToolAnnotations};
use shared::wire;

/// The `_meta` key listing the upstream instances (the connector's `[[provider]]` names) a
/// tool can act on, chosen by its `instance` argument.
pub const INSTANCES_META: &str = "mcp-edge/instances";

/// An MCP tool from a connector's spec; `None` if the spec's schemas are not JSON objects.
/// A tool that reaches upstreams names their instances in `_meta` ([`INSTANCES_META`]).
pub fn tool(spec: &wire::ToolSpec) -> Option<Tool> {
    let input: JsonObject = serde_json::from_str(&spec.input_schema_json).ok()?;
    let mut tool = Tool::new(spec.name.clone(), spec.description.clone(), Arc::new(input))
        .with_annotations(
            ToolAnnotations::new()
                .read_only(spec.read_only)
                .destructive(spec.destructive)
                .idempotent(spec.idempotent)
                .open_world(false),
        );
    if !spec.output_schema_json.is_empty() {
        let output: JsonObject = serde_json::from_str(&spec.output_schema_json).ok()?;
        tool = tool.with_raw_output_schema(Arc::new(output));
    }
    if !spec.instances.is_empty() {
        let mut meta = JsonObject::new();
        meta.insert(INSTANCES_META.into(), spec.instances.clone().into());
        tool = tool.with_meta(MetaObject(meta));
    }
    Some(tool)
}

/// An MCP result from a tool's output.
pub fn result(out: wire::ToolOutput) -> CallToolResult {
    let content: Vec<ContentBlock> = if out.content_json.is_empty() {
        vec![ContentBlock::text(out.text)]
    } else {
        match serde_json::from_slice(&out.content_json) {
            Ok(c) => c,
            Err(e) => {
                return CallToolResult::error(vec![ContentBlock::text(format!(
                    "connector returned malformed content: {e}"
                ))]);
            }
        }
    };
    let mut result = if out.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    if !out.structured_json.is_empty() {
        result.structured_content = serde_json::from_slice(&out.structured_json).ok();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> wire::ToolSpec {
        wire::ToolSpec {
            name: "diag.ping".into(),
            description: "ping".into(),
            input_schema_json: r#"{"type":"object"}"#.into(),
            output_schema_json: r#"{"type":"object","properties":{"a":{"type":"string"}}}"#.into(),
            read_only: true,
            destructive: false,
            idempotent: true,
            interactive: false,
            target_args: vec![],
            confirm_when_json: String::new(),
            instances: vec![],
        }
    }

    #[test]
    fn specs_become_tools_with_annotations_and_output_schema() {
        let t = tool(&spec()).unwrap();
        assert!(t.output_schema.is_some());
        let a = t.annotations.unwrap();
        assert_eq!(a.read_only_hint, Some(true));
        assert_eq!(a.destructive_hint, Some(false));
        let mut bad = spec();
        bad.input_schema_json = "[1]".into();
        assert!(tool(&bad).is_none());
        assert!(t.meta.is_none());
    }

    #[test]
    fn tools_name_the_instances_they_act_on_in_meta() {
        let mut s = spec();
        s.instances = vec!["ghes-prod".into(), "ghes-sandbox".into()];
        let t = tool(&s).unwrap();
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json["_meta"][INSTANCES_META],
            serde_json::json!(["ghes-prod", "ghes-sandbox"])
        );
    }

    #[test]
    fn outputs_keep_structure_and_error_flag() {
        let r = result(wire::ToolOutput {
            structured_json: br#"{"a":"b"}"#.to_vec(),
            text: "b".into(),
            is_error: false,
            content_json: vec![],
        });
        assert_eq!(r.structured_content, Some(serde_json::json!({"a":"b"})));
        assert_eq!(r.is_error, Some(false));
        let r = result(wire::ToolOutput {
            structured_json: vec![],
            text: String::new(),
            is_error: false,
            content_json: b"not json".to_vec(),
        });
        assert_eq!(r.is_error, Some(true));
    }
}
