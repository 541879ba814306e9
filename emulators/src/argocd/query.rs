//! Query strings, label selectors and `fields` filters, as grpc-gateway and Argo CD read them.

use serde_json::{Map, Value};

use super::wire::ApiError;

/// Decoded query parameters in order; repeated keys are kept (`projects=a&projects=b`).
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect())
    }

    /// The first non-empty value of `key`; grpc-gateway treats `key=` like an absent key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.as_str()).collect()
    }

    /// A bool as Go's `strconv.ParseBool` reads it; anything else is InvalidArgument.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        let Some(raw) = self.get(key) else { return Ok(None) };
        match raw {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
            other => Err(ApiError::invalid(format!(
                "type mismatch, parameter: {key}, error: strconv.ParseBool: parsing \"{other}\": invalid syntax"
            ))),
        }
    }

    /// `projects`, unless the legacy `project` is present, which wins (API.md §2.1).
    pub fn projects(&self) -> Vec<&str> {
        let legacy = self.all("project");
        if legacy.is_empty() { self.all("projects") } else { legacy }
    }

    /// The single project a per-app call may name; more than one is refused (API.md §2.2).
    pub fn single_project(&self) -> Result<Option<&str>, ApiError> {
        let projects = self.projects();
        match projects.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(ApiError::invalid(format!(
                "multiple projects specified - the api only allows specifying one project: {}",
                projects.join(",")
            ))),
        }
    }
}

/// A Kubernetes label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
/// `k notin (a,b)`, comma-separated requirements that must all hold).
#[derive(Debug, Default)]
pub(crate) struct Selector(Vec<Requirement>);

#[derive(Debug)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Selector {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_outside_parens(raw) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(Self(requirements))
    }

    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v),
            Requirement::NotEquals(k, v) => label(k) != Some(v),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
        })
    }
}

fn split_outside_parens(raw: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&raw[start..]);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let bad = || format!("unable to parse requirement: invalid label selector {part:?}");
    let key = |k: &str| if valid_key(k.trim()) { Ok(k.trim().to_string()) } else { Err(bad()) };
    if let Some(k) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(key(k)?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(key(k)?, v.trim().into()));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(key(k)?, v.trim().into()));
    }
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(bad)?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    if let Some((k, rest)) = part.split_once(" notin ") {
        return Ok(Requirement::NotIn(key(k)?, set(rest)?));
    }
    if let Some((k, rest)) = part.split_once(" in ") {
        return Ok(Requirement::In(key(k)?, set(rest)?));
    }
    Ok(Requirement::Exists(key(part)?))
}

/// A `fields` parameter: a comma list of dotted paths, excluded instead if it starts with `-`.
#[derive(Debug)]
pub(crate) struct Fields {
    exclude: bool,
    paths: Vec<Vec<String>>,
}

/// The item fields `GET /api/v1/applications` honours (`forwarder_overwrite.go` `appFields`).
const LIST_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.annotations",
    "metadata.labels",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "spec",
    "spec.destination",
    "spec.project",
    "spec.source",
    "spec.sources",
    "spec.sourceHydrator",
    "spec.syncPolicy",
    "status.sourceHydrator",
    "status.summary",
    "status.health",
    "status.resources",
    "status.sync.status",
    "status.sync.revision",
    "status.operationState.startedAt",
    "status.operationState.finishedAt",
    "status.operationState.phase",
    "status.operationState.operation.sync",
    "operation.sync",
];

impl Fields {
    fn from_query(query: &Query) -> Option<(bool, Vec<String>)> {
        let joined = query.all("fields").join(",");
        if joined.is_empty() {
            return None;
        }
        let (exclude, list) = match joined.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, joined.as_str()),
        };
        Some((exclude, list.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect()))
    }

    /// The list's item filter; unknown paths are ignored and `metadata` is always kept.
    pub fn for_list(query: &Query) -> Option<Self> {
        let (exclude, list) = Self::from_query(query)?;
        let paths = list
            .iter()
            .filter_map(|f| f.strip_prefix("items."))
            .filter(|f| LIST_FIELDS.contains(f))
            .map(|f| {
                // The one list field that Argo CD maps onto a different key.
                let f =
                    if f == "status.operationState.operation.sync" { "status.operationState.syncResult" } else { f };
                f.split('.').map(String::from).collect()
            })
            .collect();
        Some(Self { exclude, paths })
    }

    /// The stream's generic filter over the whole chunk (`result.` prefixed paths).
    pub fn for_stream(query: &Query) -> Option<Self> {
        let (exclude, list) = Self::from_query(query)?;
        Some(Self { exclude, paths: list.iter().map(|f| f.split('.').map(String::from).collect()).collect() })
    }

    pub fn apply(&self, value: &Value) -> Value {
        if self.exclude {
            let mut out = value.clone();
            for path in &self.paths {
                remove_path(&mut out, path);
            }
            out
        } else {
            let mut out = Value::Object(Map::new());
            for path in &self.paths {
                copy_path(value, &mut out, path);
            }
            out
        }
    }
}

fn copy_path(src: &Value, dst: &mut Value, path: &[String]) {
    let Some((head, rest)) = path.split_first() else { return };
    match (src, dst) {
        (Value::Object(s), Value::Object(d)) => {
            let Some(child) = s.get(head) else { return };
            if rest.is_empty() {
                d.insert(head.clone(), child.clone());
                return;
            }
            let slot = d.entry(head.clone()).or_insert_with(|| match child {
                Value::Array(a) => Value::Array(vec![Value::Object(Map::new()); a.len()]),
                _ => Value::Object(Map::new()),
            });
            copy_path(child, slot, rest);
        }
        (Value::Array(s), Value::Array(d)) => {
            for (s, d) in s.iter().zip(d.iter_mut()) {
                copy_path(s, d, path);
            }
        }
        _ => {}
    }
}

fn remove_path(value: &mut Value, path: &[String]) {
    let Some((head, rest)) = path.split_first() else { return };
    match value {
        Value::Object(m) if rest.is_empty() => {
            m.remove(head);
        }
        Value::Object(m) => {
            if let Some(child) = m.get_mut(head) {
                remove_path(child, rest);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| remove_path(v, path)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeated_keys_and_legacy_project_wins() {
        let q = Query::parse(Some("projects=a&projects=b&name=x%20y"));
        assert_eq!(q.projects(), ["a", "b"]);
        assert_eq!(q.get("name"), Some("x y"));
        let q = Query::parse(Some("projects=a&project=legacy"));
        assert_eq!(q.projects(), ["legacy"]);
        assert!(Query::parse(Some("upsert=yes")).bool("upsert").is_err());
    }

    #[test]
    fn selectors() {
        let labels = json!({"env": "prod", "team": "sre"});
        let labels = labels.as_object();
        let m = |s: &str| Selector::parse(s).unwrap().matches(labels);
        assert!(m("env=prod"));
        assert!(m("env==prod,team"));
        assert!(!m("env!=prod"));
        assert!(m("env in (dev, prod),!missing"));
        assert!(!m("team notin (sre)"));
        assert!(Selector::parse("env in prod").is_err());
    }

    #[test]
    fn field_filters_keep_or_drop_paths() {
        let item = json!({"metadata": {"name": "a", "uid": "u"}, "status": {"sync": {"status": "Synced", "x": 1}}});
        let q = Query::parse(Some("fields=items.metadata.name,items.status.sync.status,items.status.bogus"));
        let f = Fields::for_list(&q).unwrap();
        assert_eq!(f.apply(&item), json!({"metadata": {"name": "a"}, "status": {"sync": {"status": "Synced"}}}));
        let q = Query::parse(Some("fields=-result.application.status"));
        let f = Fields::for_stream(&q).unwrap();
        let chunk = json!({"result": {"type": "ADDED", "application": item}});
        assert_eq!(
            f.apply(&chunk),
            json!({"result": {"type": "ADDED", "application": {"metadata": {"name": "a", "uid": "u"}}}})
        );
    }
}
