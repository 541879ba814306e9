//! A small Swagger 2.0 checker for the tests: `$ref`, `allOf`, `type`, `properties`,
//! `additionalProperties`, `items` and the formats swagger.json uses. Extra keys are errors
//! except where API.md documents that the real wire format differs from the swagger.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// `(definition, key)` pairs the real server sends although the swagger lacks them (API.md §0
/// and §2): inline `TypeMeta`, the flattened hook strategy and kustomize patch target.
const DOCUMENTED_EXTRAS: &[(&str, &str)] = &[
    ("v1alpha1Application", "apiVersion"),
    ("v1alpha1Application", "kind"),
    ("v1alpha1SyncStrategyHook", "force"),
    ("v1alpha1KustomizeSelector", "group"),
    ("v1alpha1KustomizeSelector", "version"),
    ("v1alpha1KustomizeSelector", "kind"),
    ("v1alpha1KustomizeSelector", "name"),
    ("v1alpha1KustomizeSelector", "namespace"),
];

pub(crate) struct Swagger {
    doc: Value,
}

impl Swagger {
    /// `shared/` is a sibling of every worktree, so the path holds from any checkout.
    pub fn load() -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/argocd/swagger.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Self { doc: serde_json::from_str(&text).expect("swagger.json is JSON") }
    }

    /// The schema of a response, e.g. `("/api/v1/applications", "get", "200")`.
    pub fn response(&self, path: &str, method: &str, status: &str) -> Value {
        self.doc["paths"][path][method]["responses"][status]["schema"].clone()
    }

    /// Errors found when checking `value` against definition `name` (empty when valid).
    pub fn check_definition(&self, name: &str, value: &Value) -> Vec<String> {
        self.check(&serde_json::json!({"$ref": format!("#/definitions/{name}")}), value)
    }

    pub fn check(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.walk(schema, None, value, "$", &mut errors);
        errors
    }

    fn definition<'a>(&'a self, reference: &'a str) -> (&'a str, &'a Value) {
        let name = reference.strip_prefix("#/definitions/").unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        let def = self.doc["definitions"].get(name).unwrap_or_else(|| panic!("unknown definition {name}"));
        (name, def)
    }

    /// Properties of a schema including those its `allOf` parts contribute.
    fn properties<'a>(&'a self, schema: &'a Value, into: &mut Map<String, Value>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            into.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => self.definition(r).1,
                None => part,
            };
            self.properties(part, into);
        }
    }

    fn walk(&self, schema: &Value, def: Option<&str>, value: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let (name, resolved) = self.definition(reference);
            return self.walk(resolved, Some(name), value, at, errors);
        }
        let format = schema.get("format").and_then(Value::as_str);
        let ty = schema.get("type").and_then(Value::as_str).or_else(|| schema.get("allOf").map(|_| "object"));
        let ok = match (ty, value) {
            (_, Value::Null) => format == Some("date-time"),
            (Some("string"), Value::String(s)) => format != Some("date-time") || is_rfc3339(s),
            // Go encoding/json writes int64 as numbers, not proto3-JSON strings (API.md §0).
            (Some("string"), Value::Number(n)) => format == Some("int64") && (n.is_i64() || n.is_u64()),
            (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Some("number"), Value::Number(_)) => true,
            (Some("boolean"), Value::Bool(_)) => true,
            (Some("array"), Value::Array(items)) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item_schema, None, item, &format!("{at}[{i}]"), errors);
                    }
                }
                true
            }
            (Some("object") | None, Value::Object(map)) => {
                let mut props = Map::new();
                self.properties(schema, &mut props);
                let extra = schema.get("additionalProperties");
                for (key, child) in map {
                    let child_at = format!("{at}.{key}");
                    match (props.get(key), extra) {
                        (Some(s), _) => self.walk(s, None, child, &child_at, errors),
                        (None, Some(s)) if s.is_object() => self.walk(s, None, child, &child_at, errors),
                        (None, _) if props.is_empty() && extra.is_none() => {}
                        (None, _) => {
                            let documented = def.is_some_and(|d| DOCUMENTED_EXTRAS.contains(&(d, key.as_str())));
                            if !documented {
                                errors.push(format!("{child_at}: key not in {}", def.unwrap_or("inline schema")));
                            }
                        }
                    }
                }
                true
            }
            _ => false,
        };
        if !ok {
            errors.push(format!("{at}: expected {} ({}), got {value}", ty.unwrap_or("?"), format.unwrap_or("-")));
        }
    }
}

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s[19..].contains(['+', '-']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checker_catches_type_and_key_errors() {
        let s = Swagger::load();
        assert!(s.check_definition("runtimeError", &json!({"error": "x", "code": 7, "message": "x"})).is_empty());
        assert_eq!(s.check_definition("runtimeError", &json!({"code": "7"})).len(), 1);
        assert_eq!(s.check_definition("runtimeError", &json!({"bogus": 1})).len(), 1);
        // allOf ResourceRef: the flattened keys are the swagger's own.
        assert!(
            s.check_definition("v1alpha1ResourceNode", &json!({"kind": "Pod", "name": "p", "uid": "u"})).is_empty()
        );
        assert!(!s.check_definition("v1alpha1RevisionHistory", &json!({"deployedAt": "yesterday"})).is_empty());
    }
}
