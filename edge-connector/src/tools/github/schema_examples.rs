//! The tools' response types against GitHub's own description of GHES 3.19: every
//! example of every operation the tools call (`components/examples`) deserialises, as
//! written and in its sparsest legal form (every `nullable` field `null`, every field
//! outside `required` left out), into the type the tool reads it with.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{account, actions, branches, code, diff, issues, pulls, repos, reviews};
use crate::providers::github::api;

/// The subset of the official description the fake serves (see its `extract.py`).
const SPEC: &str = include_str!("../../../../tests/fake-upstream/openapi/ghes-3.19-subset.json");

type Decode = fn(&Value) -> Result<(), String>;

fn decodes<T: DeserializeOwned>(v: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(v.clone())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Each operation the tools call, with every type a tool reads its answer into.
fn readers() -> Vec<(&'static str, &'static str, Vec<Decode>)> {
    vec![
        (
            "get",
            "/user",
            vec![decodes::<account::RawUser>, decodes::<issues::RawLogin>],
        ),
        ("get", "/user/repos", vec![decodes::<Vec<repos::RawRepo>>]),
        (
            "get",
            "/search/repositories",
            vec![decodes::<repos::FoundRepos>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}",
            vec![decodes::<pulls::RawDefaultBranch>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/contents/{path}",
            vec![decodes::<code::RawContents>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/branches",
            vec![decodes::<Vec<branches::RawBranch>>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/git/ref/{ref}",
            vec![decodes::<branches::RawRef>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/commits",
            vec![
                decodes::<Vec<branches::RawCommit>>,
                decodes::<Vec<branches::RawSha>>,
            ],
        ),
        ("get", "/search/code", vec![decodes::<code::FoundCode>]),
        (
            "get",
            "/repos/{owner}/{repo}/issues",
            vec![decodes::<Vec<api::RawIssue>>],
        ),
        (
            "post",
            "/repos/{owner}/{repo}/issues",
            vec![decodes::<api::RawIssue>],
        ),
        ("get", "/issues", vec![decodes::<Vec<api::RawIssue>>]),
        (
            "get",
            "/search/issues",
            vec![decodes::<issues::FoundIssues>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/issues/{issue_number}",
            vec![decodes::<api::RawIssue>],
        ),
        (
            "patch",
            "/repos/{owner}/{repo}/issues/{issue_number}",
            vec![decodes::<api::RawIssue>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            vec![decodes::<Vec<issues::RawComment>>],
        ),
        (
            "post",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            vec![decodes::<issues::RawNewComment>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/pulls",
            vec![decodes::<Vec<pulls::RawPull>>],
        ),
        (
            "post",
            "/repos/{owner}/{repo}/pulls",
            vec![decodes::<pulls::RawPull>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/pulls/{pull_number}",
            vec![decodes::<pulls::RawPull>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/pulls/{pull_number}/files",
            vec![
                decodes::<Vec<pulls::RawFile>>,
                decodes::<Vec<diff::RawFile>>,
            ],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
            vec![decodes::<Vec<pulls::RawReview>>],
        ),
        (
            "post",
            "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
            vec![decodes::<reviews::RawReviewResult>],
        ),
        (
            "put",
            "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
            vec![decodes::<reviews::RawMergeResult>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/commits/{ref}/check-runs",
            vec![decodes::<pulls::RunsBody>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/commits/{ref}/status",
            vec![decodes::<pulls::StatusBody>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/actions/runs",
            vec![decodes::<actions::RunsPage>],
        ),
        (
            "get",
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
            vec![decodes::<actions::JobsPage>],
        ),
    ]
}

/// Follows a `#/components/...` reference.
fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .trim_start_matches("#/")
                .split('/')
                .fold(spec, |n, part| &n[part]);
            resolve(spec, target)
        }
        None => node,
    }
}

/// An object schema's properties and required names, `allOf` parts merged.
fn object_parts(spec: &Value, schema: &Value) -> (Map<String, Value>, Vec<String>) {
    let schema = resolve(spec, schema);
    let mut props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = object_parts(spec, part);
        props.extend(p);
        required.extend(r);
    }
    (props, required)
}

/// `v` with every field the schema lets be `null` set to `null` and every field it does
/// not require removed, recursively (a `oneOf` is left as written: which branch applies
/// is not known).
fn sparsest(spec: &Value, schema: &Value, v: &Value) -> Value {
    let schema = resolve(spec, schema);
    match v {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| sparsest(spec, &schema["items"], i))
                .collect(),
        ),
        Value::Object(fields) if schema.get("oneOf").is_none() => {
            let (props, required) = object_parts(spec, schema);
            let mut out = Map::new();
            for (k, field) in fields {
                let Some(prop) = props.get(k) else {
                    out.insert(k.clone(), field.clone());
                    continue;
                };
                let prop = resolve(spec, prop);
                if prop["nullable"] == Value::Bool(true) {
                    out.insert(k.clone(), Value::Null);
                } else if required.contains(k) {
                    out.insert(k.clone(), sparsest(spec, prop, field));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The 2xx JSON examples of an operation, each with its response schema.
fn examples<'a>(spec: &'a Value, method: &str, path: &str) -> Vec<(String, &'a Value, &'a Value)> {
    let op = &spec["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the description");
    let mut out = Vec::new();
    for (status, resp) in op["responses"].as_object().into_iter().flatten() {
        if !status.starts_with('2') {
            continue;
        }
        let media = &resolve(spec, resp)["content"]["application/json"];
        for (name, ex) in media["examples"].as_object().into_iter().flatten() {
            let ex = resolve(spec, ex);
            let value = resolve(spec, &ex["value"]);
            let value = value.get("value").unwrap_or(value);
            out.push((
                format!("{method} {path} {status} {name}"),
                &media["schema"],
                value,
            ));
        }
    }
    out
}

/// Whether an example abbreviates part of itself as `"..."`.
fn has_placeholder(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "...",
        Value::Array(items) => items.iter().any(has_placeholder),
        Value::Object(fields) => fields.values().any(has_placeholder),
        _ => false,
    }
}

#[test]
fn the_schemas_own_examples_decode_into_the_tools_types() {
    let spec: Value = serde_json::from_str(SPEC).expect("the subset is JSON");
    let mut failures = Vec::new();
    for (method, path, readers) in readers() {
        let found = examples(&spec, method, path);
        assert!(!found.is_empty(), "{method} {path} has no example");
        for (name, schema, value) in found {
            if has_placeholder(value) {
                // An illustration ("items": ["..."]), not a response.
                continue;
            }
            let sparse = sparsest(&spec, schema, value);
            for (form, v) in [("as written", value), ("sparsest", &sparse)] {
                for (i, read) in readers.iter().enumerate() {
                    if let Err(e) = read(v) {
                        failures.push(format!("{name} ({form}), reader {i}: {e}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_sparsest_form_nulls_nullable_fields_and_drops_optional_ones() {
    let spec = serde_json::json!({"components": {"schemas": {"u": {
        "type": "object",
        "properties": {"login": {"type": "string"}, "name": {"type": "string", "nullable": true}, "bio": {"type": "string"}},
        "required": ["login", "name"],
    }}}});
    let schema = serde_json::json!({"type": "array", "items": {"$ref": "#/components/schemas/u"}});
    let v = serde_json::json!([{"login": "a", "name": "A", "bio": "b", "extra": 1}]);
    assert_eq!(
        sparsest(&spec, &schema, &v),
        serde_json::json!([{"login": "a", "name": null, "extra": 1}])
    );
}
