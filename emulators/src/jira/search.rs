//! The search endpoints: authentication, faults, JQL, fields and pages.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{Flavor, Served, Shared, lock};

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/rest/api/3/search/jql", get(cloud).post(cloud))
        .route("/rest/api/2/search", get(data_center).post(data_center))
        .fallback(|| async { error(StatusCode::NOT_FOUND, &["Not found"]) })
        .with_state(shared)
}

pub(crate) fn is_key(text: &str) -> bool {
    let Some((project, number)) = text.split_once('-') else { return false };
    project.len() >= 2
        && project.starts_with(|c: char| c.is_ascii_uppercase())
        && project.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Jira's `ErrorCollection`.
fn error(status: StatusCode, messages: &[&str]) -> Response {
    (status, axum::Json(json!({ "errorMessages": messages, "errors": {} }))).into_response()
}

/// The request's parameters, from the query string (GET) or the JSON body (POST).
#[derive(Debug, Default)]
struct Params {
    jql: String,
    fields: Option<Vec<String>>,
    max_results: Option<usize>,
    start_at: usize,
    next_page_token: Option<String>,
    validate_query: Option<String>,
}

/// `Err` holds the message Jira answers a body it cannot read with.
fn params(method: &Method, query: Option<&str>, body: &[u8]) -> Result<Params, &'static str> {
    let mut params = Params::default();
    if *method == Method::POST {
        let value: Value = serde_json::from_slice(body).map_err(|_| "Unexpected character in the request body")?;
        params.jql = value.get("jql").and_then(Value::as_str).unwrap_or_default().to_string();
        params.fields = value
            .get("fields")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect());
        params.max_results = value.get("maxResults").and_then(Value::as_u64).map(|n| n as usize);
        params.start_at = value.get("startAt").and_then(Value::as_u64).unwrap_or(0) as usize;
        params.next_page_token = value.get("nextPageToken").and_then(Value::as_str).map(str::to_string);
        params.validate_query = value.get("validateQuery").and_then(Value::as_str).map(str::to_string);
    } else {
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "jql" => params.jql = value.into_owned(),
                "fields" => {
                    params.fields.get_or_insert_with(Vec::new).extend(value.split(',').map(|f| f.trim().to_string()))
                }
                "maxResults" => params.max_results = value.parse().ok(),
                "startAt" => params.start_at = value.parse().unwrap_or(0),
                "nextPageToken" => params.next_page_token = Some(value.into_owned()),
                "validateQuery" => params.validate_query = Some(value.into_owned()),
                _ => {}
            }
        }
    }
    Ok(params)
}

/// The keys `key in (A-1, "B-2")` or `key = A-1` names, with an optional `ORDER BY key`.
fn parse_jql(jql: &str) -> Result<Vec<String>, String> {
    let lower = jql.to_ascii_lowercase();
    let clause = match lower.find(" order by ") {
        Some(at) => {
            let order = lower[at + " order by ".len()..].trim();
            if !matches!(order, "key" | "key asc" | "key desc") {
                return Err(format!("Error in the JQL Query: ordering by '{order}' is not supported here."));
            }
            &jql[..at]
        }
        None => jql,
    }
    .trim();
    let rest = clause
        .strip_prefix("key")
        .or_else(|| clause.strip_prefix("issuekey"))
        .or_else(|| clause.strip_prefix("KEY"))
        .map(str::trim_start)
        .ok_or_else(|| format!("Error in the JQL Query: expecting 'key' but got '{clause}'."))?;
    let list = if let Some(single) = rest.strip_prefix('=') {
        single.trim().to_string()
    } else if let Some(list) = rest.strip_prefix("in").or_else(|| rest.strip_prefix("IN")) {
        let list = list.trim();
        list.strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| "Error in the JQL Query: expecting '(' and ')' around the list.".to_string())?
            .to_string()
    } else {
        return Err("Error in the JQL Query: expecting one of the operators '=', 'in'.".to_string());
    };
    let keys: Vec<String> = list
        .split(',')
        .map(|k| k.trim().trim_matches(['"', '\'']).to_ascii_uppercase())
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        return Err("Error in the JQL Query: the list of keys is empty.".to_string());
    }
    Ok(keys)
}

/// Only the requested fields: `*all` and `*navigable` give all, `id` (Cloud's default) none.
fn with_fields(issue: &Value, fields: &[String]) -> Value {
    let all = fields.iter().any(|f| f == "*all" || f == "*navigable");
    let source = issue.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
    let selected: Map<String, Value> =
        source.into_iter().filter(|(name, _)| all || fields.iter().any(|f| f == name)).collect();
    let mut out = json!({ "expand": "", "id": issue["id"], "self": issue["self"], "key": issue["key"] });
    if !selected.is_empty() {
        out["fields"] = Value::Object(selected);
    }
    out
}

async fn cloud(state: State<Shared>, method: Method, headers: HeaderMap, query: RawQuery, body: Bytes) -> Response {
    handle(Flavor::Cloud, "/rest/api/3/search/jql", state, method, headers, query, body)
}

async fn data_center(
    state: State<Shared>,
    method: Method,
    headers: HeaderMap,
    query: RawQuery,
    body: Bytes,
) -> Response {
    handle(Flavor::DataCenter, "/rest/api/2/search", state, method, headers, query, body)
}

fn handle(
    flavor: Flavor,
    path: &str,
    State(shared): State<Shared>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut st = lock(&shared);
    let parsed = params(&method, query.as_deref(), &body);
    let jql = parsed.as_ref().ok().map(|p| p.jql.clone());
    let response = answer(&mut st, flavor, &headers, parsed);
    st.served.push(Served {
        method: method.to_string(),
        path: path.to_string(),
        status: response.status().as_u16(),
        jql,
    });
    response
}

fn answer(st: &mut super::State, flavor: Flavor, headers: &HeaderMap, params: Result<Params, &str>) -> Response {
    if st.options.flavor != flavor {
        return error(StatusCode::NOT_FOUND, &["Not found"]);
    }
    if st.faults.outage {
        return error(StatusCode::SERVICE_UNAVAILABLE, &["Service unavailable (emulated outage)"]);
    }
    if st.faults.rate_limited > 0 {
        st.faults.rate_limited -= 1;
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, &["Rate limit exceeded."]);
        let seconds = st.faults.retry_after_seconds.to_string();
        response.headers_mut().insert(header::RETRY_AFTER, seconds.parse().expect("digits"));
        return response;
    }
    if st.faults.fail_next > 0 {
        st.faults.fail_next -= 1;
        return error(StatusCode::INTERNAL_SERVER_ERROR, &["Internal server error (emulated fault)"]);
    }
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let expected = match flavor {
        Flavor::Cloud => format!("Basic {}", base64(format!("{}:{}", st.options.email, st.options.token).as_bytes())),
        Flavor::DataCenter => format!("Bearer {}", st.options.token),
    };
    if presented != expected {
        return error(
            StatusCode::UNAUTHORIZED,
            &["You are not authenticated. Authentication required to perform this operation."],
        );
    }
    let params = match params {
        Ok(params) => params,
        Err(message) => return error(StatusCode::BAD_REQUEST, &[message]),
    };
    let keys = match parse_jql(&params.jql) {
        Ok(keys) => keys,
        Err(message) => return error(StatusCode::BAD_REQUEST, &[&message]),
    };
    let unknown: Vec<String> = keys
        .iter()
        .filter(|key| !st.issues.contains_key(*key))
        .map(|key| format!("An issue with key '{key}' does not exist for field 'key'."))
        .collect();
    let warn = flavor == Flavor::DataCenter && matches!(params.validate_query.as_deref(), Some("warn" | "false"));
    if !unknown.is_empty() && !warn {
        let messages: Vec<&str> = unknown.iter().map(String::as_str).collect();
        return error(StatusCode::BAD_REQUEST, &messages);
    }
    let mut matching: Vec<&Value> = keys.iter().filter_map(|key| st.issues.get(key)).collect();
    matching.sort_by_key(|issue| {
        let key = issue["key"].as_str().unwrap_or_default();
        let (project, number) = key.split_once('-').unwrap_or((key, "0"));
        (project.to_string(), number.parse::<u64>().unwrap_or(0))
    });
    matching.dedup_by_key(|issue| issue["key"].clone());
    let default_fields = match flavor {
        Flavor::Cloud => vec!["id".to_string()],
        Flavor::DataCenter => vec!["*navigable".to_string()],
    };
    let fields = params.fields.clone().filter(|f| !f.is_empty()).unwrap_or(default_fields);
    let page_size = params.max_results.unwrap_or(50).clamp(1, st.options.max_page_size.max(1));
    let start = match flavor {
        Flavor::Cloud => match params.next_page_token.as_deref() {
            None => 0,
            Some(token) => match token.strip_prefix("emulated-page-").and_then(|n| n.parse().ok()) {
                Some(start) => start,
                None => {
                    return error(StatusCode::BAD_REQUEST, &["The provided next page token is invalid or expired."]);
                }
            },
        },
        Flavor::DataCenter => params.start_at,
    };
    let total = matching.len();
    let page: Vec<Value> = matching.iter().skip(start).take(page_size).map(|i| with_fields(i, &fields)).collect();
    let end = start + page.len();
    let body = match flavor {
        Flavor::Cloud if end < total => {
            json!({ "issues": page, "nextPageToken": format!("emulated-page-{end}"), "isLast": false })
        }
        Flavor::Cloud => json!({ "issues": page, "isLast": true }),
        Flavor::DataCenter => {
            let mut body = json!({ "expand": "schema,names", "startAt": start, "maxResults": page_size, "total": total, "issues": page });
            if !unknown.is_empty() {
                body["warningMessages"] = json!(unknown);
            }
            body
        }
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Standard base64 with padding, for comparing basic-auth headers.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn jql_key_lists_are_read() {
        assert_eq!(parse_jql("key in (SHOP-1, \"shop-2\") ORDER BY key").unwrap(), ["SHOP-1", "SHOP-2"]);
        assert_eq!(parse_jql("key = SHOP-3").unwrap(), ["SHOP-3"]);
        assert!(parse_jql("project = SHOP").unwrap_err().contains("Error in the JQL Query"));
        assert!(parse_jql("key in ()").is_err());
    }
}
