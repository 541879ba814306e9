//! Jira's JSON in, [`IssueFact`]s out: issues (REST v2 and v3, search results and webhook
//! payloads share the issue shape), both search envelopes, and the error collection.
//!
//! Issues are read leniently from `serde_json::Value`: which fields an issue carries
//! depends on the request's `fields`, the instance's configuration and the API version
//! (v3 descriptions are ADF documents, v2 ones plain text; Cloud users have `accountId`,
//! Server users `name`), and a missing field is not an error.

use serde::Deserialize;
use serde_json::Value;

use crate::ledger::jira::IssueFact;

/// The fields Landfall asks a search for.
pub const FIELDS: [&str; 11] = [
    "summary",
    "issuetype",
    "status",
    "priority",
    "assignee",
    "reporter",
    "labels",
    "components",
    "fixVersions",
    "parent",
    "updated",
];

/// A page of `/rest/api/3/search/jql` (schema `SearchAndReconcileResults`).
#[derive(Debug, Deserialize)]
pub struct JqlPage {
    #[serde(default)]
    pub issues: Vec<Value>,
    /// Absent (or null) on the last page.
    #[serde(default, rename = "nextPageToken")]
    pub next_page_token: Option<String>,
    #[serde(default, rename = "isLast")]
    pub is_last: Option<bool>,
}

/// A page of `/rest/api/2/search` (and the deprecated `/rest/api/3/search`, schema
/// `SearchResults`).
#[derive(Debug, Deserialize)]
pub struct OffsetPage {
    #[serde(default)]
    pub issues: Vec<Value>,
    #[serde(default, rename = "startAt")]
    pub start_at: i64,
    #[serde(default, rename = "maxResults")]
    pub max_results: i64,
    #[serde(default)]
    pub total: i64,
    /// With `validateQuery=warn`, what strict validation would have refused, such as
    /// unknown keys.
    #[serde(default, rename = "warningMessages")]
    pub warning_messages: Vec<String>,
}

/// Jira's error body (`ErrorCollection`): `{"errorMessages": [...], "errors": {...}}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorCollection {
    #[serde(default, rename = "errorMessages")]
    pub error_messages: Vec<String>,
    #[serde(default)]
    pub errors: serde_json::Map<String, Value>,
    #[serde(default, rename = "warningMessages")]
    pub warning_messages: Vec<String>,
}

impl ErrorCollection {
    /// Every message, for logs and error text.
    pub fn messages(&self) -> Vec<String> {
        let field_errors = self.errors.iter().map(|(field, message)| match message.as_str() {
            Some(text) => format!("{field}: {text}"),
            None => format!("{field}: {message}"),
        });
        self.error_messages.iter().cloned().chain(field_errors).chain(self.warning_messages.iter().cloned()).collect()
    }
}

/// Whether `text` is an issue key (`PROJ-123`, DESIGN.md's correlation rule), so that it
/// can go into JQL and a URL path as it is.
pub fn is_issue_key(text: &str) -> bool {
    let Some((project, number)) = text.split_once('-') else { return false };
    let mut chars = project.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && project.len() >= 2
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !number.is_empty()
        && number.len() <= 18
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The requested keys a message names in quotes, as Jira's JQL validation does:
/// "An issue with key 'SHOP-9' does not exist for field 'key'." (strict, a 400) or the
/// same words as a warning (`validateQuery=warn`).
pub fn keys_named<'a>(messages: &[String], requested: &'a [String]) -> Vec<&'a String> {
    let mut named: Vec<&String> = requested
        .iter()
        .filter(|key| {
            messages.iter().any(|message| {
                message.split(['\'', '"']).skip(1).step_by(2).any(|quoted| quoted.eq_ignore_ascii_case(key))
            })
        })
        .collect();
    named.dedup();
    named
}

/// `{url}/browse/{KEY}`, keeping a Data Center context path; `None` for a key that is
/// not one.
pub fn browse_url(base: &url::Url, key: &str) -> Option<String> {
    if !is_issue_key(key) {
        return None;
    }
    let mut url = base.clone();
    url.path_segments_mut().ok()?.pop_if_empty().push("browse").push(key);
    Some(url.to_string())
}

/// Whether `field` names a Jira custom field: `customfield_` and digits.
pub fn is_custom_field(field: &str) -> bool {
    field.strip_prefix("customfield_").is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// [`issue_fact`], with the epic read from Data Center's *Epic Link* custom field when
/// the issue has no `parent` (Cloud reports epics as parents).
pub fn issue_fact_with_epic(issue: &Value, base: &url::Url, epic_link_field: Option<&str>) -> Option<IssueFact> {
    let mut fact = issue_fact(issue, base)?;
    if fact.parent_key.is_none() {
        fact.parent_key = epic_link_field
            .and_then(|field| issue.get("fields")?.get(field)?.as_str())
            .filter(|key| is_issue_key(key))
            .map(str::to_string);
    }
    Some(fact)
}

/// An issue object (from a search, `GET issue`, or a webhook's `issue`) as a fact.
pub fn issue_fact(issue: &Value, base: &url::Url) -> Option<IssueFact> {
    let key = issue.get("key")?.as_str()?;
    if !is_issue_key(key) {
        return None;
    }
    let fields = issue.get("fields").unwrap_or(&Value::Null);
    let text = |value: &Value| value.as_str().map(str::to_string).filter(|text| !text.is_empty());
    let name_of = |field: &str| fields.get(field).and_then(|value| value.get("name")).and_then(text);
    let person = |field: &str| {
        let user = fields.get(field)?;
        user.get("displayName").and_then(text).or_else(|| user.get("name").and_then(text))
    };
    let names = |field: &str| -> Vec<String> {
        fields
            .get(field)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(|item| item.get("name").and_then(text)).collect())
            .unwrap_or_default()
    };
    Some(IssueFact {
        key: key.to_string(),
        summary: fields.get("summary").and_then(text),
        issue_type: name_of("issuetype"),
        status: name_of("status"),
        status_category: fields
            .get("status")
            .and_then(|status| status.get("statusCategory"))
            .and_then(|category| category.get("key"))
            .and_then(text),
        priority: name_of("priority"),
        assignee: person("assignee"),
        reporter: person("reporter"),
        labels: fields
            .get("labels")
            .and_then(Value::as_array)
            .map(|labels| labels.iter().filter_map(text).collect())
            .unwrap_or_default(),
        components: names("components"),
        fix_versions: names("fixVersions"),
        parent_key: fields
            .get("parent")
            .and_then(|parent| parent.get("key"))
            .and_then(Value::as_str)
            .filter(|key| is_issue_key(key))
            .map(str::to_string),
        url: browse_url(base, key),
        updated_at: fields.get("updated").and_then(Value::as_str).and_then(parse_jira_time),
    })
}

/// Jira's times, `2016-01-14T23:06:37.032+0000` (no colon in the offset), or RFC 3339.
pub fn parse_jira_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let n = bytes.len();
    if n > 5 && matches!(bytes[n - 5], b'+' | b'-') && bytes[n - 4..].iter().all(u8::is_ascii_digit) {
        let with_colon = format!("{}:{}", &text[..n - 2], &text[n - 2..]);
        return crate::timefmt::parse_rfc3339(&with_colon);
    }
    crate::timefmt::parse_rfc3339(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../../shared/fixtures/jira/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
    }

    fn base(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[test]
    fn the_server_issue_gives_every_fact() {
        let fact = issue_fact(&fixture("issue.v2.get.server.json"), &base("http://localhost:2990/jira")).unwrap();
        assert_eq!(
            fact,
            IssueFact {
                key: "TEST-136".into(),
                summary: Some("summary content".into()),
                issue_type: Some("Task".into()),
                status: Some("To Do".into()),
                status_category: Some("new".into()),
                priority: Some("Medium".into()),
                assignee: None,
                reporter: Some("admin".into()),
                labels: vec!["testlabel".into()],
                components: vec![],
                fix_versions: vec![],
                parent_key: None,
                url: Some("http://localhost:2990/jira/browse/TEST-136".into()),
                updated_at: parse_jira_time("2015-12-26T12:00:38.891+0000"),
            }
        );
        assert_eq!(fact.updated_at, Some(1_451_131_238_891));
    }

    #[test]
    fn the_cloud_spec_examples_parse_without_the_fields_they_lack() {
        // Atlassian's examples carry no summary, status or type, and `updated` is a
        // number: the key and URL are still read, and nothing is invented.
        let site = base("https://acme.atlassian.net/");
        let issue = issue_fact(&fixture("issue.v3.get.spec-example.json"), &site).unwrap();
        assert_eq!(issue.key, "ED-1");
        assert_eq!(issue.url.as_deref(), Some("https://acme.atlassian.net/browse/ED-1"));
        assert_eq!((issue.summary, issue.status, issue.updated_at), (None, None, None));

        let page: JqlPage = serde_json::from_value(fixture("search-jql.v3.spec-example.json")).unwrap();
        assert_eq!(page.is_last, Some(true));
        assert_eq!(page.next_page_token, None, "the last page has no token");
        let keys: Vec<String> = page.issues.iter().filter_map(|i| issue_fact(i, &site)).map(|f| f.key).collect();
        assert_eq!(keys, ["ED-1"]);

        let page: OffsetPage = serde_json::from_value(fixture("search-legacy.v3.spec-example.json")).unwrap();
        assert_eq!((page.start_at, page.max_results, page.total), (0, 50, 1));
        assert_eq!(page.warning_messages, ["The value 'bar' does not exist for the field 'foo'."]);
        assert_eq!(issue_fact(&page.issues[0], &site).unwrap().key, "ED-1");
    }

    #[test]
    fn webhook_issues_parse_like_search_results() {
        let site = base("http://localhost:2990/jira/");
        let fields_changed = fixture("webhook.jira-issue_updated.fields-changed.server.json");
        let fact = issue_fact(&fields_changed["issue"], &site).unwrap();
        assert_eq!(fact.key, "TEST-11");
        assert_eq!(fact.summary.as_deref(), Some("summary updated"));
        assert_eq!(fact.priority.as_deref(), Some("Blocker"));
        assert_eq!(fact.assignee.as_deref(), Some("admin"));
        assert_eq!((fact.status.as_deref(), fact.status_category.as_deref()), (Some("To Do"), Some("new")));

        let status_changed = fixture("webhook.jira-issue_updated.status-changed.server.json");
        let fact = issue_fact(&status_changed["issue"], &site).unwrap();
        assert_eq!((fact.status.as_deref(), fact.status_category.as_deref()), (Some("Done"), Some("done")));
        assert_eq!(fact.updated_at, parse_jira_time("2016-01-14T23:06:37.032+0000"));

        let comment = fixture("webhook.comment_created.cloud.json");
        let fact = issue_fact(&comment["issue"], &base("https://jira-trigger-plugin.atlassian.net")).unwrap();
        assert_eq!(fact.key, "TEST-24");
        assert_eq!(fact.summary.as_deref(), Some("test"));
        assert_eq!(fact.issue_type.as_deref(), Some("Task"));
    }

    #[test]
    fn cloud_people_versions_and_parents_are_read() {
        let issue = serde_json::json!({
            "key": "SHOP-7",
            "fields": {
                "assignee": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof"},
                "reporter": {"accountId": "x", "displayName": ""},
                "components": [{"name": "checkout"}, {"id": "3"}],
                "fixVersions": [{"name": "2024.05"}],
                "parent": {"key": "SHOP-1", "fields": {"summary": "Checkout epic"}},
                "updated": "2024-05-01T12:00:00.000+0200"
            }
        });
        let fact = issue_fact(&issue, &base("https://acme.atlassian.net")).unwrap();
        assert_eq!(fact.assignee.as_deref(), Some("Mia Krystof"));
        assert_eq!(fact.reporter, None, "an empty name is no name");
        assert_eq!(fact.components, ["checkout"]);
        assert_eq!(fact.fix_versions, ["2024.05"]);
        assert_eq!(fact.parent_key.as_deref(), Some("SHOP-1"));
        assert_eq!(fact.updated_at, crate::timefmt::parse_rfc3339("2024-05-01T10:00:00Z"));
    }

    #[test]
    fn keys_and_urls_are_checked() {
        assert!(is_issue_key("SHOP-12") && is_issue_key("PAY_2-1"));
        for bad in ["shop-1", "S-1", "SHOP-", "SHOP-1 OR 1=1", "SHOP-1)", "../SHOP-1", "SHOP-1/x"] {
            assert!(!is_issue_key(bad), "{bad}");
        }
        assert!(issue_fact(&serde_json::json!({"key": "x) OR (1"}), &base("https://a.b")).is_none());
    }

    #[test]
    fn data_center_epic_links_are_read_when_configured() {
        let site = base("https://jira.example.com");
        let story = serde_json::json!({"key": "SHOP-7", "fields": {"summary": "Pay", "customfield_10008": "SHOP-1"}});
        assert_eq!(issue_fact_with_epic(&story, &site, None).unwrap().parent_key, None);
        let fact = issue_fact_with_epic(&story, &site, Some("customfield_10008")).unwrap();
        assert_eq!(fact.parent_key.as_deref(), Some("SHOP-1"));
        // A parent wins; a value that is not a key is ignored.
        let sub = serde_json::json!({"key": "SHOP-8", "fields": {"parent": {"key": "SHOP-7"}, "customfield_10008": "SHOP-1"}});
        assert_eq!(
            issue_fact_with_epic(&sub, &site, Some("customfield_10008")).unwrap().parent_key.as_deref(),
            Some("SHOP-7")
        );
        let odd = serde_json::json!({"key": "SHOP-9", "fields": {"customfield_10008": "not a key"}});
        assert_eq!(issue_fact_with_epic(&odd, &site, Some("customfield_10008")).unwrap().parent_key, None);
        assert!(is_custom_field("customfield_10008"));
        assert!(!is_custom_field("customfield_") && !is_custom_field("summary") && !is_custom_field("customfield_1x"));
        assert_eq!(browse_url(&base("https://a.b/jira/"), "SHOP-1").as_deref(), Some("https://a.b/jira/browse/SHOP-1"));
        assert_eq!(browse_url(&base("https://a.b"), "SHOP-1/../x"), None);
    }

    #[test]
    fn unknown_keys_are_read_from_jira_messages() {
        let body = r#"{"errorMessages":["An issue with key 'SHOP-9' does not exist for field 'key'.",
                       "The issue key 'shop-10' for field 'key' is invalid."],"errors":{}}"#;
        let errors: ErrorCollection = serde_json::from_str(body).unwrap();
        let requested: Vec<String> = ["SHOP-1", "SHOP-9", "SHOP-10", "SHOP-99"].map(String::from).into();
        assert_eq!(keys_named(&errors.messages(), &requested), [&requested[1], &requested[2]]);
        assert!(keys_named(&["Error in the JQL Query".into()], &requested).is_empty());
    }

    #[test]
    fn jira_times_parse() {
        assert_eq!(parse_jira_time("1970-01-01T00:00:01.000+0000"), Some(1000));
        assert_eq!(parse_jira_time("1970-01-01T01:00:01.000+0100"), Some(1000));
        assert_eq!(parse_jira_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_jira_time("yesterday"), None);
    }
}
