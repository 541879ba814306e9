//! The emulator against the shapes in `shared/fixtures/jira`.

use serde_json::{Value, json};

use super::*;

const EMAIL: &str = "bot@acme.com";
const TOKEN: &str = "api-token-0123";

async fn cloud_with(keys: &[&str]) -> Handle {
    let jira = Jira::start(Options { max_page_size: 2, ..Options::cloud(EMAIL, TOKEN) }).await.unwrap();
    for key in keys {
        jira.insert_issue(issue(key, &format!("Summary of {key}"), "In Progress", "indeterminate")).unwrap();
    }
    jira
}

async fn post(jira: &Handle, path: &str, auth: Option<(&str, &str)>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("{}{path}", jira.url())).json(&body);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn cloud_pages_with_next_page_tokens_and_returns_only_requested_fields() {
    let jira = cloud_with(&["SHOP-1", "SHOP-2", "SHOP-10"]).await;
    let path = "/rest/api/3/search/jql";
    let query =
        json!({"jql": "key in (SHOP-10, SHOP-2, SHOP-1) ORDER BY key", "fields": ["summary"], "maxResults": 50});
    let (status, first) = post(&jira, path, Some((EMAIL, TOKEN)), query.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["isLast"], false);
    let keys: Vec<&str> = first["issues"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["SHOP-1", "SHOP-2"], "numeric key order, capped page");
    assert_eq!(first["issues"][0]["fields"], json!({"summary": "Summary of SHOP-1"}));
    let mut next = query.clone();
    next["nextPageToken"] = first["nextPageToken"].clone();
    let (_, last) = post(&jira, path, Some((EMAIL, TOKEN)), next).await;
    assert_eq!(last["isLast"], true);
    assert!(last.get("nextPageToken").is_none(), "the last page has no token, as in the spec example");
    assert_eq!(last["issues"][0]["key"], "SHOP-10");

    let (_, bare) = post(&jira, path, Some((EMAIL, TOKEN)), json!({"jql": "key = SHOP-1"})).await;
    assert!(bare["issues"][0].get("fields").is_none(), "Cloud's default is `id` only: {bare}");
    let (status, _) = post(&jira, path, Some((EMAIL, "wrong")), query.clone()).await;
    assert_eq!(status, 401);
    let (status, _) = post(&jira, "/rest/api/2/search", Some((EMAIL, TOKEN)), query).await;
    assert_eq!(status, 404, "a Cloud emulator does not serve Data Center's endpoint");
}

#[tokio::test]
async fn unknown_keys_fail_the_query_unless_warned() {
    let jira = Jira::start(Options::data_center("pat")).await.unwrap();
    jira.insert_issue(issue("OPS-1", "Known", "Done", "done")).unwrap();
    let client = reqwest::Client::new();
    let search =
        |body: Value| client.post(format!("{}/rest/api/2/search", jira.url())).bearer_auth("pat").json(&body).send();
    let response = search(json!({"jql": "key in (OPS-1, OPS-404)"})).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorMessages"], json!(["An issue with key 'OPS-404' does not exist for field 'key'."]));
    let body: Value =
        search(json!({"jql": "key in (OPS-1, OPS-404)", "validateQuery": "warn"})).await.unwrap().json().await.unwrap();
    assert_eq!((body["total"].clone(), body["startAt"].clone()), (json!(1), json!(0)));
    assert_eq!(body["issues"][0]["fields"]["summary"], "Known", "Data Center returns every field by default");
    assert_eq!(body["warningMessages"][0], "An issue with key 'OPS-404' does not exist for field 'key'.");
    let response = client.get(format!("{}/rest/api/2/search?jql=key%3DOPS-1", jira.url())).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401, "no token");
}

#[tokio::test]
async fn faults_answer_429_500_and_503() {
    let jira = cloud_with(&["SHOP-1"]).await;
    let body = json!({"jql": "key = SHOP-1"});
    jira.set_fault(Fault::RateLimit { requests: 1, retry_after_seconds: 7 });
    let response = reqwest::Client::new()
        .post(format!("{}/rest/api/3/search/jql", jira.url()))
        .basic_auth(EMAIL, Some(TOKEN))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    jira.set_fault(Fault::FailNext(1));
    assert_eq!(post(&jira, "/rest/api/3/search/jql", Some((EMAIL, TOKEN)), body.clone()).await.0, 500);
    jira.set_fault(Fault::Outage);
    assert_eq!(post(&jira, "/rest/api/3/search/jql", Some((EMAIL, TOKEN)), body.clone()).await.0, 503);
    assert_eq!(post(&jira, "/rest/api/3/search/jql", Some((EMAIL, TOKEN)), body.clone()).await.0, 503);
    jira.clear_faults();
    assert_eq!(post(&jira, "/rest/api/3/search/jql", Some((EMAIL, TOKEN)), body).await.0, 200);
    let statuses: Vec<u16> = jira.served().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [429, 500, 503, 503, 200]);
}

#[tokio::test]
async fn fixtures_seed_and_webhooks_are_signed() {
    let jira = Jira::start(Options::data_center("pat")).await.unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/jira/issue.v2.get.server.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jira.insert_issue(fixture.clone()).unwrap();
    assert_eq!(jira.issue("TEST-136").unwrap()["self"], fixture["self"], "seeded as given");
    assert!(jira.insert_issue(json!({"key": "nope"})).is_err());
    // GitHub's documented HMAC-SHA256 vector; Jira Cloud signs the same way.
    assert_eq!(
        signature("It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let event = issue_event("jira:issue_updated", &fixture, 1_700_000_000_000);
    assert_eq!(event["webhookEvent"], "jira:issue_updated");
    assert_eq!(event["issue"]["key"], "TEST-136");
}
