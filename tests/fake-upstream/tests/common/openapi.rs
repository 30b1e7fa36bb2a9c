//! A checker for the subset of OpenAPI 3.0 schemas GitHub's description uses: `type`,
//! `properties`, `required`, `nullable`, `items`, `$ref`, `allOf`/`anyOf`/`oneOf`, `enum`.
//! (JSON Schema validators do not know 3.0's `nullable`, hence this small one.)

use serde_json::Value;

/// The committed subset of the GHES 3.19 description.
pub struct Spec(Value);

impl Spec {
    pub fn load() -> Spec {
        let text = include_str!("../../openapi/ghes-3.19-subset.json");
        Spec(serde_json::from_str(text).unwrap())
    }

    fn resolve<'a>(&'a self, r: &str) -> &'a Value {
        let mut node = &self.0;
        for part in r.trim_start_matches("#/").split('/') {
            node = &node[part];
        }
        node
    }

    /// The JSON response schema of `method path` for `status`.
    pub fn response_schema(&self, method: &str, path: &str, status: u16) -> &Value {
        let op = &self.0["paths"][path][method];
        assert!(op.is_object(), "{method} {path} not in the subset");
        let mut resp = &op["responses"][status.to_string()];
        if let Some(r) = resp.get("$ref").and_then(Value::as_str) {
            resp = self.resolve(r);
        }
        let content = &resp["content"];
        let schema = content["application/json"]["schema"].clone();
        let schema = if schema.is_null() {
            &content["application/vnd.github.object"]["schema"]
        } else {
            &content["application/json"]["schema"]
        };
        assert!(
            schema.is_object(),
            "{method} {path} {status}: no JSON schema"
        );
        schema
    }

    /// Errors found validating `v` against `schema` (empty: valid).
    pub fn validate(&self, schema: &Value, v: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, v, "$", &mut errors);
        errors
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return self.check(self.resolve(r), v, at, errors);
        }
        if v.is_null() {
            if schema.get("nullable") == Some(&Value::Bool(true))
                || schema.get("type").and_then(Value::as_str) == Some("null")
            {
                return;
            }
            // A union may allow null through one of its branches.
            if schema.get("anyOf").or(schema.get("oneOf")).is_none() && schema.get("type").is_some()
            {
                errors.push(format!("{at}: null not allowed"));
                return;
            }
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, v, at, errors);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let ok = options
                    .iter()
                    .any(|s| self.validate_at(s, v, at).is_empty());
                let null_ok = v.is_null() && schema.get("nullable") == Some(&Value::Bool(true));
                if !(ok || null_ok) {
                    let why: Vec<String> = options
                        .iter()
                        .flat_map(|s| self.validate_at(s, v, at))
                        .take(4)
                        .collect();
                    errors.push(format!(
                        "{at}: matches no {key} branch ({})",
                        why.join("; ")
                    ));
                }
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !v.is_null()
            && !values.contains(v)
        {
            errors.push(format!("{at}: {v} not in enum {values:?}"));
        }
        let Some(ty) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        let ok = match ty {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: expected {ty}, got {v}"));
            return;
        }
        if let (Some(props), Some(obj)) = (
            schema.get("properties").and_then(Value::as_object),
            v.as_object(),
        ) {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        errors.push(format!("{at}: missing required {r}"));
                    }
                }
            }
            for (k, val) in obj {
                if let Some(s) = props.get(k) {
                    self.check(s, val, &format!("{at}.{k}"), errors);
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                self.check(items, item, &format!("{at}[{i}]"), errors);
            }
        }
    }

    fn validate_at(&self, schema: &Value, v: &Value, at: &str) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, v, at, &mut errors);
        errors
    }
}
