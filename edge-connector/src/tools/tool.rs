//! The shape every intent-level tool shares: typed arguments and output (their JSON Schemas
//! are derived from the types, so the schema a client sees is the one the code parses), a
//! short text rendering beside the structured result, annotations, the arguments naming the
//! repository it acts on, and field selection.
//!
//! A tool implements [`Tool`]; [`erase`] turns it into a [`DynTool`] the toolbox can hold
//! and dispatch by name. Field selection is generic: a tool that allows it gets a `fields`
//! argument (names of fields to keep in each item, or in the result), applied to its
//! structured output after it ran.

use std::future::Future;
use std::time::Instant;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::call::{Call, CallFailure, CallOutcome, PreviewOutcome};
use shared::wire::{self, ErrorCode};

use crate::call_context::CallContext;
use crate::providers::http::{Request, Response};
use crate::providers::trail::Scope;
use crate::providers::{Instance, Providers};
use crate::toolset::BoxFuture;

/// What a tool's annotations say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    /// Only reads.
    pub read_only: bool,
    /// May destroy data (merge, delete): the runtime asks the user first.
    pub destructive: bool,
    /// Repeating it with the same arguments changes nothing more.
    pub idempotent: bool,
}

/// A read.
pub const READ: Hints = Hints {
    read_only: true,
    destructive: false,
    idempotent: true,
};
/// A write that adds something (a comment, an issue).
pub const CREATE: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
};
/// A write that sets a state (labels, assignees, an approval).
pub const UPDATE: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: true,
};
/// A write that cannot be undone.
pub const DESTRUCTIVE: Hints = Hints {
    read_only: false,
    destructive: true,
    idempotent: false,
};

/// What a tool gets to work with.
pub struct ToolCall<'a> {
    /// The call (its caller is the user the tool acts for).
    pub call: &'a Call,
    /// Progress, logs, questions, upstream actions, spans.
    pub ctx: &'a CallContext,
    /// The upstream instances.
    pub providers: &'a Providers,
    /// When the call must be over.
    pub deadline: Instant,
}

impl ToolCall<'_> {
    /// The user the call is for.
    pub fn user(&self) -> &str {
        &self.call.caller.user
    }

    /// What the call's upstream requests need: its deadline and its trail.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            deadline: self.deadline,
            trail: self.ctx.trail(),
        }
    }

    /// Sends `req` to `inst` as the calling user; the response, whatever its status.
    pub async fn send(&self, inst: &Instance, req: &Request) -> Result<Response, CallFailure> {
        inst.send_as(self.scope(), self.user(), req).await
    }

    /// Sends `req` to `inst` as the calling user; a non-success is its typed failure.
    pub async fn ok(&self, inst: &Instance, req: &Request) -> Result<Response, CallFailure> {
        inst.ok_as(self.scope(), self.user(), req).await
    }

    /// The account the calling user's token acts as at `inst`, read as `T`.
    pub async fn whoami<T: DeserializeOwned>(&self, inst: &Instance) -> Result<T, CallFailure> {
        inst.whoami(self.scope(), self.user()).await
    }

    /// The value `name` the user confirmed, if the call was confirmed with a preview.
    pub fn bound(&self, name: &str) -> Option<&str> {
        self.call.binding.get(name).map(String::as_str)
    }

    /// The head commit the user approved, checked against the one the agent named: a call
    /// whose agent names another commit than the user saw is refused, not silently
    /// retargeted. `None` when the call was not confirmed with a preview.
    pub fn approved_head(&self, agent_named: Option<&str>) -> Result<Option<&str>, CallFailure> {
        let Some(bound) = self.bound("head_sha") else {
            return Ok(None);
        };
        match agent_named {
            Some(named) if named != bound => Err(CallFailure::new(
                ErrorCode::Rejected,
                format!(
                    "the agent named commit {named}, but the user approved head commit {bound}; nothing was done"
                ),
            )),
            _ => Ok(Some(bound)),
        }
    }
}

/// A tool's result: structured content and its short text rendering.
#[derive(Debug)]
pub struct Rendered<O> {
    /// Structured content.
    pub output: O,
    /// Text for the model.
    pub text: String,
}

/// An intent-level tool.
pub trait Tool: Send + Sync + 'static {
    /// Arguments.
    type Args: DeserializeOwned + JsonSchema + Send;
    /// Structured result.
    type Output: Serialize + JsonSchema + Send;
    /// Name (`github_list_issues`).
    const NAME: &'static str;
    /// What the tool is for, for the model choosing it.
    const DESCRIPTION: &'static str;
    /// Annotations.
    const HINTS: Hints;
    /// Arguments naming the repository, joined with `/` (empty: none).
    const TARGET: &'static [&'static str];
    /// Whether a `fields` argument selects the fields returned.
    const SELECTABLE: bool = false;
    /// Argument values that make a call need the user's confirmation although the tool is
    /// not destructive (an approval): `(name, JSON value text)`, all of which must match.
    const CONFIRM_WHEN: &'static [(&'static str, &'static str)] = &[];
    /// Runs the tool (implemented as an `async fn`).
    fn run(
        &self,
        cx: &ToolCall<'_>,
        args: Self::Args,
    ) -> impl Future<Output = Result<Rendered<Self::Output>, CallFailure>> + Send;
    /// What a call would do, read from the upstream with nothing written, for the user to
    /// confirm: a text and the values [`Tool::run`] then holds the call to (through
    /// [`ToolCall::bound`]). The default says nothing beyond the tool's name.
    fn preview(
        &self,
        cx: &ToolCall<'_>,
        args: Self::Args,
    ) -> impl Future<Output = PreviewOutcome> + Send {
        let _ = (cx, args);
        async { Ok(wire::Effect::default()) }
    }
}

/// An effect to confirm: `text` and the values it binds the call to.
pub fn effect<const N: usize>(text: String, binding: [(&str, &str); N]) -> wire::Effect {
    wire::Effect {
        text,
        binding: binding
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// Longest piece of upstream text (a title, a branch name) quoted in an effect.
const MAX_QUOTED: usize = 120;

/// Upstream text (a title anyone may have written) as an effect quotes it: on one line,
/// clipped, in quotes, so it cannot pose as the confirmation's own words.
pub fn quoted(s: &str) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("\u{201c}{}\u{201d}", clip(line.trim(), MAX_QUOTED).0)
}

/// The failure of a confirmed call whose confirmed facts no longer hold.
pub fn stale(what: &str) -> CallFailure {
    CallFailure::new(
        ErrorCode::Stale,
        format!(
            "{what} changed after the user approved it, so nothing was done; call again to ask the user anew"
        ),
    )
}

/// A tool behind a uniform interface.
pub trait DynTool: Send + Sync {
    /// Its spec.
    fn spec(&self) -> wire::ToolSpec;
    /// Its name.
    fn name(&self) -> &'static str;
    /// Runs it on raw JSON arguments.
    fn call<'a>(&'a self, cx: &'a ToolCall<'a>) -> BoxFuture<'a, CallOutcome>;
    /// Previews it on raw JSON arguments.
    fn preview<'a>(&'a self, cx: &'a ToolCall<'a>) -> BoxFuture<'a, PreviewOutcome>;
}

struct Erased<T>(T);

/// `tool` behind the uniform interface.
pub fn erase<T: Tool>(tool: T) -> Box<dyn DynTool> {
    Box::new(Erased(tool))
}

fn schema_of<S: JsonSchema>() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut v = generator.into_root_schema_for::<S>().to_value();
    if let Some(o) = v.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
    }
    v
}

/// Removes `required` everywhere: with field selection, any field may be left out.
fn without_required(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            o.remove("required");
            o.values_mut().for_each(without_required);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(without_required),
        _ => {}
    }
}

/// Keeps only `fields` of each object in `items` (or of the result itself when it has no
/// `items`); pagination fields stay.
pub fn select_fields(v: &mut serde_json::Value, fields: &[String]) {
    let keep = |o: &mut serde_json::Map<String, serde_json::Value>| {
        o.retain(|k, _| fields.iter().any(|f| f == k));
    };
    let Some(top) = v.as_object_mut() else {
        return;
    };
    match top.get_mut("items").and_then(|i| i.as_array_mut()) {
        Some(items) => items
            .iter_mut()
            .filter_map(|i| i.as_object_mut())
            .for_each(keep),
        None => {
            let meta: Vec<(String, serde_json::Value)> = top
                .iter()
                .filter(|(k, _)| k.as_str() == "next_cursor")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            keep(top);
            top.extend(meta);
        }
    }
}

/// [`Tool::CONFIRM_WHEN`] as the JSON object text of [`wire::ToolSpec::confirm_when_json`].
fn confirm_when(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| {
            let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::json!(v));
            ((*k).to_owned(), value)
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// Truncates `s` to at most `max` characters, marking the cut.
pub fn clip(s: &str, max: usize) -> (String, bool) {
    if s.chars().count() <= max {
        return (s.to_owned(), false);
    }
    let mut out: String = s.chars().take(max).collect();
    out.push_str("…[truncated]");
    (out, true)
}

fn invalid(tool: &str, e: impl std::fmt::Display) -> CallFailure {
    CallFailure::new(
        ErrorCode::InvalidArguments,
        format!("invalid arguments for {tool}: {e}"),
    )
}

/// A call's arguments as `T` takes them, and the fields it selected.
fn parse_args<T: Tool>(call: &Call) -> Result<(T::Args, Option<Vec<String>>), CallFailure> {
    let raw = if call.arguments_json.is_empty() {
        b"{}".as_slice()
    } else {
        &call.arguments_json
    };
    let mut args: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(raw).map_err(|e| invalid(T::NAME, e))?;
    let fields: Option<Vec<String>> = match args.remove("fields") {
        Some(f) if T::SELECTABLE => {
            Some(serde_json::from_value(f).map_err(|e| invalid(T::NAME, format!("fields: {e}")))?)
        }
        Some(_) => return Err(invalid(T::NAME, "this tool takes no \"fields\"")),
        None => None,
    };
    let args: T::Args =
        serde_json::from_value(serde_json::Value::Object(args)).map_err(|e| invalid(T::NAME, e))?;
    Ok((args, fields))
}

/// Longest effect text a preview sends (a few lines).
const MAX_EFFECT_TEXT: usize = 1000;

impl<T: Tool> DynTool for Erased<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn spec(&self) -> wire::ToolSpec {
        let mut input = schema_of::<T::Args>();
        if T::SELECTABLE
            && let Some(props) = input
                .as_object_mut()
                .and_then(|o| o.get_mut("properties"))
                .and_then(|p| p.as_object_mut())
        {
            props.insert(
                "fields".into(),
                serde_json::json!({
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Return only these fields (of each item, for lists); default: all fields of the output schema",
                }),
            );
        }
        let mut output = schema_of::<T::Output>();
        if T::SELECTABLE {
            without_required(&mut output);
        }
        wire::ToolSpec {
            name: T::NAME.to_owned(),
            description: T::DESCRIPTION.to_owned(),
            input_schema_json: input.to_string(),
            output_schema_json: output.to_string(),
            read_only: T::HINTS.read_only,
            destructive: T::HINTS.destructive,
            idempotent: T::HINTS.idempotent,
            interactive: false,
            target_args: T::TARGET.iter().map(|s| (*s).to_owned()).collect(),
            confirm_when_json: confirm_when(T::CONFIRM_WHEN),
            // The toolbox fills in the configured instances of the tool's kind.
            instances: Vec::new(),
        }
    }

    fn call<'a>(&'a self, cx: &'a ToolCall<'a>) -> BoxFuture<'a, CallOutcome> {
        Box::pin(async move {
            let (args, fields) = parse_args::<T>(cx.call)?;
            let rendered = self.0.run(cx, args).await?;
            let mut structured = serde_json::to_value(&rendered.output)
                .map_err(|e| CallFailure::new(ErrorCode::Internal, e.to_string()))?;
            if let Some(f) = fields.filter(|f| !f.is_empty()) {
                select_fields(&mut structured, &f);
            }
            super::output(&structured, rendered.text)
        })
    }

    fn preview<'a>(&'a self, cx: &'a ToolCall<'a>) -> BoxFuture<'a, PreviewOutcome> {
        Box::pin(async move {
            let (args, _) = parse_args::<T>(cx.call)?;
            let mut effect = self.0.preview(cx, args).await?;
            effect.text = clip(&effect.text, MAX_EFFECT_TEXT).0;
            Ok(effect)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_conditions_become_a_json_object() {
        assert_eq!(confirm_when(&[]), "");
        assert_eq!(
            confirm_when(&[("event", "\"APPROVE\""), ("approve", "true")]),
            r#"{"approve":true,"event":"APPROVE"}"#
        );
    }

    #[test]
    fn quoted_upstream_text_stays_on_one_clipped_line() {
        assert_eq!(
            quoted("Fix\nAllow it? yes"),
            "\u{201c}Fix Allow it? yes\u{201d}"
        );
        assert!(quoted(&"x".repeat(500)).chars().count() < 140);
    }

    #[test]
    fn field_selection_keeps_the_named_fields_and_pagination() {
        let mut v =
            serde_json::json!({"items": [{"a": 1, "b": 2}, {"a": 3, "c": 4}], "next_cursor": "2"});
        select_fields(&mut v, &["a".into()]);
        assert_eq!(
            v,
            serde_json::json!({"items": [{"a": 1}, {"a": 3}], "next_cursor": "2"})
        );
        let mut v = serde_json::json!({"a": 1, "b": 2});
        select_fields(&mut v, &["b".into()]);
        assert_eq!(v, serde_json::json!({"b": 2}));
    }
}
