//! The Jira connector against the emulator: the client on both flavours, the background
//! refresh inside `landfall serve` (with rate limits and an outage), the webhook's
//! security matrix, and feature cards and answers that show what Jira says.

use std::time::Duration;

use landfall_emulators::jira::{self as emulator, Fault, Flavor, Jira, Options, Signing};
use landfall_server::config::JiraFlavor;
use landfall_server::jira::JiraError;
use landfall_server::jira::client::{JiraClient, RetryPolicy};
use landfall_server::ledger::{CommitFact, EnvironmentFact, Ledger, PersonTime, RepositoryFact};
use landfall_tests::{Server, TestDatabase, all_databases, eventually};
use serde_json::{Value, json};

const EMAIL: &str = "bot@acme.com";
const TOKEN: &str = "jira-api-token-0123456789";
const SECRET: &str = "jira-webhook-secret-abcdef";

fn fast_retry() -> RetryPolicy {
    RetryPolicy { attempts: 3, backoff: Duration::from_millis(20), max_wait: Duration::from_secs(2) }
}

fn client_for(jira: &emulator::Handle, flavor: JiraFlavor, token: &str) -> JiraClient {
    let email = (flavor == JiraFlavor::Cloud).then_some(EMAIL);
    JiraClient::new(url::Url::parse(&jira.url()).unwrap(), flavor, email, token.into())
        .unwrap()
        .with_retry(fast_retry())
}

async fn emulator_with(flavor: Flavor, keys: &[&str]) -> emulator::Handle {
    let options = match flavor {
        Flavor::Cloud => Options::cloud(EMAIL, TOKEN),
        Flavor::DataCenter => Options::data_center(TOKEN),
    };
    let jira = Jira::start(Options { max_page_size: 2, ..options }).await.unwrap();
    for key in keys {
        jira.insert_issue(emulator::issue(key, &format!("Summary of {key}"), "In Progress", "indeterminate")).unwrap();
    }
    jira
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|k| k.to_string()).collect()
}

async fn client_calls(flavor: Flavor, client_flavor: JiraFlavor) {
    let jira = emulator_with(flavor, &["SHOP-1", "SHOP-2", "SHOP-3", "SHOP-10", "SHOP-11"]).await;
    let client = client_for(&jira, client_flavor, TOKEN).with_page_size(50);

    // Five keys over three pages (the emulator caps pages at two), two unknown keys
    // dropped from the query Jira refused, and facts in the right shape.
    let found = client
        .fetch(&keys(&["SHOP-1", "SHOP-2", "SHOP-404", "SHOP-3", "SHOP-10", "SHOP-11", "SHOP-405"]))
        .await
        .unwrap();
    let mut found_keys: Vec<&str> = found.issues.iter().map(|i| i.key.as_str()).collect();
    found_keys.sort();
    assert_eq!(found_keys, ["SHOP-1", "SHOP-10", "SHOP-11", "SHOP-2", "SHOP-3"], "{flavor:?}");
    assert_eq!(found.not_found, ["SHOP-404", "SHOP-405"], "{flavor:?}");
    let first = found.issues.iter().find(|i| i.key == "SHOP-1").unwrap();
    assert_eq!(first.summary.as_deref(), Some("Summary of SHOP-1"));
    assert_eq!(first.status_category.as_deref(), Some("indeterminate"));
    assert_eq!(first.assignee.as_deref(), Some("Mia Krystof"));
    assert_eq!(first.url.as_deref(), Some(format!("{}/browse/SHOP-1", jira.url()).as_str()));
    let served = jira.served();
    assert!(served.iter().filter(|s| s.status == 200).count() >= 3, "{flavor:?}: paged: {served:?}");
    assert!(served.iter().any(|s| s.status == 400), "{flavor:?}: the unknown keys failed a query first");
    let expected_path = if flavor == Flavor::Cloud { "/rest/api/3/search/jql" } else { "/rest/api/2/search" };
    assert!(served.iter().all(|s| s.path == expected_path && s.method == "POST"), "{served:?}");

    // 429 with Retry-After, then 500s: retried, and the answer still arrives.
    jira.set_fault(Fault::RateLimit { requests: 1, retry_after_seconds: 1 });
    let started = std::time::Instant::now();
    assert_eq!(client.fetch(&keys(&["SHOP-1"])).await.unwrap().issues.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After was honoured");
    jira.set_fault(Fault::FailNext(2));
    assert_eq!(client.fetch(&keys(&["SHOP-2"])).await.unwrap().issues.len(), 1);

    // An outage outlasts the retries; bad credentials are not retried at all.
    jira.set_fault(Fault::Outage);
    let error = client.fetch(&keys(&["SHOP-1"])).await.unwrap_err();
    assert!(matches!(error, JiraError::Unavailable { attempts: 3, .. }), "{error}");
    jira.clear_faults();
    let before = jira.served().len();
    let error = client_for(&jira, client_flavor, "wrong-token").fetch(&keys(&["SHOP-1"])).await.unwrap_err();
    assert!(matches!(error, JiraError::Unauthorized { status: 401 }), "{error}");
    assert!(!error.to_string().contains("wrong-token"), "{error}");
    assert_eq!(jira.served().len(), before + 1, "a 401 is not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_speaks_cloud_and_data_center() {
    client_calls(Flavor::Cloud, JiraFlavor::Cloud).await;
    client_calls(Flavor::DataCenter, JiraFlavor::Datacenter).await;
}

/// A ledger with a repository, a commit naming SHOP-1, SHOP-2 and SHOP-404, and an
/// environment, as Git ingestion would leave it.
async fn seeded(database: &TestDatabase) -> Ledger {
    let ledger = Ledger::open(&database.url).await.unwrap();
    let repository = RepositoryFact {
        name: "shop-api".into(),
        url: "https://git.example/shop-api.git".into(),
        kind: "source".into(),
    };
    ledger.upsert_repository(&repository).await.unwrap();
    let someone =
        PersonTime { name: "Ada".into(), email: "ada@example.com".into(), at: 1_700_000_000_000, offset_minutes: 0 };
    let commit = CommitFact {
        repository: "shop-api".into(),
        sha: "a".repeat(40),
        parents: vec![],
        author: someone.clone(),
        committer: someone,
        message: "SHOP-1 SHOP-2 SHOP-404: checkout".into(),
        pull_request_number: None,
        feature_keys: keys(&["SHOP-1", "SHOP-2", "SHOP-404"]),
    };
    ledger.record_commits(&[commit]).await.unwrap();
    let production = EnvironmentFact { name: "production".into(), rank: 40, match_rules: json!({}) };
    ledger.upsert_environment(&production).await.unwrap();
    ledger
}

fn config(dir: &std::path::Path, jira: &emulator::Handle, flavor: &str, extra: &str) -> std::path::PathBuf {
    let email = if flavor == "cloud" { format!("email = \"{EMAIL}\"\n") } else { String::new() };
    let path = dir.join("landfall.toml");
    std::fs::write(
        &path,
        format!(
            "[features]\nprojects = [\"SHOP\"]\n\n[jira]\nurl = \"{}\"\nflavor = \"{flavor}\"\n{email}\
             token_env = \"TEST_JIRA_TOKEN\"\nwebhook_secret_env = \"TEST_JIRA_SECRET\"\nrefresh_interval_seconds = 5\n{extra}",
            jira.url()
        ),
    )
    .unwrap();
    path
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let response = reqwest::get(server.url(path)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn refresh_and_cards(backend: &str, database: TestDatabase) {
    let ledger = seeded(&database).await;
    let jira = emulator_with(Flavor::Cloud, &["SHOP-1", "SHOP-2"]).await;
    jira.update_issue("SHOP-1", |issue| {
        issue["fields"]["summary"] = json!("Checkout with saved cards");
        issue["fields"]["labels"] = json!(["payments"]);
        issue["fields"]["components"] = json!([{"name": "checkout"}]);
        issue["fields"]["fixVersions"] = json!([{"name": "2024.05"}]);
        issue["fields"]["parent"] = json!({"key": "SHOP-2"});
    })
    .unwrap();
    // The first searches are rate limited, then Jira is down for a while.
    jira.set_fault(Fault::RateLimit { requests: 1, retry_after_seconds: 1 });
    let work = tempfile::tempdir().unwrap();
    let config = config(work.path(), &jira, "cloud", "");
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap(), "--database-url", database.url.expose()],
        &[("TEST_JIRA_TOKEN", TOKEN), ("TEST_JIRA_SECRET", SECRET)],
    );

    let card = eventually("SHOP-1's Jira details", || async {
        let (_, card) = get(&server, "/api/v1/features/SHOP-1").await;
        (card["summary"] == "Checkout with saved cards").then_some(card)
    })
    .await;
    assert_eq!(card["status"], "In Progress", "{backend}: {card}");
    assert_eq!(card["status_category"], "indeterminate", "{backend}");
    assert_eq!(card["priority"], "Medium", "{backend}");
    assert_eq!(card["reporter"], "Ada Lovelace", "{backend}");
    assert_eq!(card["assignee"], "Mia Krystof", "{backend}");
    assert_eq!(card["labels"], json!(["payments"]), "{backend}");
    assert_eq!(card["components"], json!(["checkout"]), "{backend}");
    assert_eq!(card["fix_versions"], json!(["2024.05"]), "{backend}");
    assert_eq!(card["parent"], "SHOP-2", "{backend}");
    assert_eq!(card["url"], format!("{}/browse/SHOP-1", jira.url()), "{backend}");
    assert_eq!((card["not_found"].clone(), card["deleted"].clone()), (json!(false), json!(false)), "{backend}");
    assert!(card["fetched_at"].is_string(), "{backend}: {card}");
    assert_eq!(card["commits"][0]["repo"], "shop-api", "{backend}: the ledger's own facts stay");
    let statuses: Vec<u16> = jira.served().iter().map(|s| s.status).collect();
    assert_eq!(statuses.first(), Some(&429), "{backend}: {statuses:?}");

    let (_, unknown) = get(&server, "/api/v1/features/SHOP-404").await;
    assert_eq!(unknown["not_found"], true, "{backend}: {unknown}");
    assert_eq!(unknown["summary"], Value::Null, "{backend}");

    // The answers name the feature as Jira does.
    let (_, answer) = get(&server, "/api/v1/ask?q=Is%20SHOP-1%20deployed%20in%20production%20now%3F").await;
    assert_eq!(answer["answer"]["data"]["summary"], "Checkout with saved cards", "{backend}: {answer}");
    assert_eq!(answer["answer"]["data"]["status"], "In Progress", "{backend}");
    let (_, answer) =
        get(&server, "/api/v1/ask?q=Which%20Kubernetes%20services%20were%20affected%20by%20SHOP-1%3F").await;
    assert!(
        answer["summary"].as_str().unwrap().contains("SHOP-1 “Checkout with saved cards” (In Progress)"),
        "{backend}: {answer}"
    );
    assert_eq!(answer["answer"]["data"]["status_category"], "indeterminate", "{backend}");

    // An outage: the refreshes fail and the ledger keeps what it had; once Jira is back
    // the next refresh brings the change made meanwhile.
    jira.set_fault(Fault::Outage);
    jira.update_issue("SHOP-2", |issue| {
        issue["fields"]["status"] = json!({"name": "Done", "statusCategory": {"key": "done"}})
    })
    .unwrap();
    eventually("a refresh to hit the outage", || async { jira.served().iter().any(|s| s.status == 503).then_some(()) })
        .await;
    let (_, during) = get(&server, "/api/v1/features/SHOP-2").await;
    assert_eq!(during["status"], "In Progress", "{backend}: kept through the outage");
    let failing = eventually("/readyz to report the outage", || async {
        let (status, ready) = get(&server, "/readyz").await;
        (status == 200 && ready["checks"]["jira"]["state"] == "failing").then_some(ready)
    })
    .await;
    assert!(failing["checks"]["jira"]["error"].as_str().unwrap().contains("unavailable"), "{backend}: {failing}");
    jira.clear_faults();
    eventually("the refresh after the outage", || async {
        let (_, card) = get(&server, "/api/v1/features/SHOP-2").await;
        (card["status"] == "Done").then_some(())
    })
    .await;
    let ready = eventually("/readyz to report the recovery", || async {
        let (_, ready) = get(&server, "/readyz").await;
        (ready["checks"]["jira"]["state"] == "ok").then_some(ready)
    })
    .await;
    let jira_check = &ready["checks"]["jira"];
    assert_eq!((jira_check["found"].as_u64(), jira_check["not_found"].as_u64()), (Some(2), Some(1)), "{backend}");
    drop(server);
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn features_carry_their_jira_details() {
    for (backend, database) in all_databases().await {
        refresh_and_cards(backend, database).await;
    }
}

/// Whether any webhook has written SHOP-1's details.
async fn stored(ledger: &Ledger) -> bool {
    ledger.feature_title("SHOP-1").await.unwrap().0.is_some()
}

async fn webhook_matrix(backend: &str, database: TestDatabase) {
    let ledger = seeded(&database).await;
    // Data Center flavour: the refresher finds nothing until the emulator is seeded, so
    // what the ledger holds comes from webhooks alone.
    let jira = emulator_with(Flavor::DataCenter, &[]).await;
    let work = tempfile::tempdir().unwrap();
    let config = config(work.path(), &jira, "datacenter", "");
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap(), "--database-url", database.url.expose()],
        &[("TEST_JIRA_TOKEN", TOKEN), ("TEST_JIRA_SECRET", SECRET)],
    );
    let hook = server.url("/api/v1/webhooks/jira");
    let issue = emulator::issue("SHOP-1", "From the webhook", "In Review", "indeterminate");
    let body = serde_json::to_vec(&emulator::issue_event("jira:issue_updated", &issue, 1_700_000_000_000)).unwrap();

    // Refused: no proof, a wrong secret, a signature over another body, a wrong query
    // secret. Nothing is stored.
    let cases: [(&[u8], Signing, &str); 4] = [
        (&body, Signing::Unsigned, "unsigned"),
        (&body, Signing::Hmac("not-the-secret"), "wrong HMAC secret"),
        (b"{\"webhookEvent\": \"jira:issue_updated\"}", Signing::Hmac(SECRET), "placeholder"),
        (&body, Signing::QuerySecret("not-the-secret"), "wrong query secret"),
    ];
    for (payload, signing, what) in cases {
        let (status, text) = if what == "placeholder" {
            // A correct signature of one body sent with another.
            let response = reqwest::Client::new()
                .post(&hook)
                .header("x-hub-signature", emulator::signature(SECRET, payload))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        } else {
            emulator::send_webhook(&hook, payload, signing, None).await.unwrap()
        };
        assert_eq!(status, 401, "{backend}: {what}: {text}");
        assert!(!text.contains(SECRET), "{backend}: {text}");
    }
    assert!(!stored(&ledger).await, "{backend}: nothing stored");

    // Verified but not for Landfall: other events, and issues that are no feature.
    let comment = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/jira/webhook.comment_created.cloud.json"
    ))
    .unwrap();
    let (status, text) = emulator::send_webhook(&hook, &comment, Signing::Hmac(SECRET), None).await.unwrap();
    assert_eq!(status, 202, "{backend}: {text}");
    let other = emulator::issue("OPS-1", "Not ours", "Open", "new");
    let other = serde_json::to_vec(&emulator::issue_event("jira:issue_created", &other, 1)).unwrap();
    let (status, text) = emulator::send_webhook(&hook, &other, Signing::Hmac(SECRET), None).await.unwrap();
    assert_eq!(status, 202, "{backend}: {text}");

    // Too large, or not JSON (after verification).
    let huge = vec![b' '; 1024 * 1024 + 1];
    let (status, _) = emulator::send_webhook(&hook, &huge, Signing::Hmac(SECRET), None).await.unwrap();
    assert_eq!(status, 413, "{backend}");
    let (status, text) =
        emulator::send_webhook(&hook, b"{\"webhookEvent\":", Signing::Hmac(SECRET), None).await.unwrap();
    assert_eq!(status, 400, "{backend}: {text}");

    // Applied once: a replay by identifier, then by key and timestamp, changes nothing.
    let (status, text) = emulator::send_webhook(&hook, &body, Signing::Hmac(SECRET), Some("delivery-1")).await.unwrap();
    assert_eq!((status, text.contains("recorded")), (200, true), "{backend}: {text}");
    assert!(stored(&ledger).await, "{backend}");
    let (_, card) = get(&server, "/api/v1/features/SHOP-1").await;
    assert_eq!((card["summary"].clone(), card["status"].clone()), (json!("From the webhook"), json!("In Review")));
    let (status, text) = emulator::send_webhook(&hook, &body, Signing::Hmac(SECRET), Some("delivery-1")).await.unwrap();
    assert_eq!((status, text.contains("duplicate")), (200, true), "{backend}: {text}");
    let (_, text) = emulator::send_webhook(&hook, &body, Signing::QuerySecret(SECRET), None).await.unwrap();
    assert!(text.contains("recorded"), "{backend}: first without an identifier: {text}");
    let (_, text) = emulator::send_webhook(&hook, &body, Signing::QuerySecret(SECRET), None).await.unwrap();
    assert!(text.contains("duplicate"), "{backend}: same key and timestamp: {text}");
    // An older delivery arriving late does not undo a newer one.
    let older = emulator::issue("SHOP-1", "Older words", "To Do", "new");
    let older = serde_json::to_vec(&emulator::issue_event("jira:issue_updated", &older, 1_600_000_000_000)).unwrap();
    let (_, text) = emulator::send_webhook(&hook, &older, Signing::Hmac(SECRET), Some("delivery-0")).await.unwrap();
    assert!(text.contains("stale"), "{backend}: {text}");
    let (_, card) = get(&server, "/api/v1/features/SHOP-1").await;
    assert_eq!(card["summary"], "From the webhook", "{backend}");

    // A delivery without fields makes Landfall fetch the issue.
    jira.insert_issue(emulator::issue("SHOP-2", "Fetched after the webhook", "Open", "new")).unwrap();
    let bare = serde_json::to_vec(&json!({
        "timestamp": 1_700_000_000_500i64, "webhookEvent": "jira:issue_created", "issue": {"id": "10001", "key": "SHOP-2"}
    }))
    .unwrap();
    let (status, _) = emulator::send_webhook(&hook, &bare, Signing::Hmac(SECRET), None).await.unwrap();
    assert_eq!(status, 200, "{backend}");
    eventually("the fetch a webhook asked for", || async {
        let (_, card) = get(&server, "/api/v1/features/SHOP-2").await;
        (card["summary"] == "Fetched after the webhook").then_some(())
    })
    .await;

    // Deleted in Jira: marked, never removed.
    let deleted = serde_json::to_vec(&emulator::issue_event("jira:issue_deleted", &issue, 1_700_000_001_000)).unwrap();
    let (status, _) = emulator::send_webhook(&hook, &deleted, Signing::Hmac(SECRET), Some("delivery-2")).await.unwrap();
    assert_eq!(status, 200, "{backend}");
    let (status, card) = get(&server, "/api/v1/features/SHOP-1").await;
    assert_eq!(status, 200, "{backend}");
    assert_eq!(card["deleted"], true, "{backend}: {card}");
    assert_eq!(card["summary"], "From the webhook", "{backend}: details kept");
    assert_eq!(card["commits"].as_array().unwrap().len(), 1, "{backend}: history kept");
    assert!(!ledger.jira_feature_keys().await.unwrap().contains(&"SHOP-1".to_string()), "not refreshed any more");

    // The endpoint is in the OpenAPI document.
    let (_, document) = get(&server, "/api/v1/openapi.json").await;
    assert!(document["paths"]["/api/v1/webhooks/jira"]["post"].is_object(), "{backend}");
    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["FeatureCard"]["allOf"][0]["$ref"], "#/components/schemas/JiraDetails", "{backend}");
    assert!(schemas["JiraDetails"]["properties"]["status_category"].is_object(), "{backend}");
    drop(server);
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_webhooks_are_verified_and_applied_once() {
    for (backend, database) in all_databases().await {
        webhook_matrix(backend, database).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_is_closed_without_a_secret() {
    let jira = emulator_with(Flavor::Cloud, &[]).await;
    let work = tempfile::tempdir().unwrap();
    let config = config(work.path(), &jira, "cloud", "");
    let server = Server::start_with_env(&["--config", config.to_str().unwrap()], &[("TEST_JIRA_TOKEN", TOKEN)]);
    let body = serde_json::to_vec(&emulator::issue_event("jira:issue_updated", &json!({"key": "SHOP-1"}), 1)).unwrap();
    let (status, text) =
        emulator::send_webhook(&server.url("/api/v1/webhooks/jira"), &body, Signing::Hmac(""), None).await.unwrap();
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("webhook_secret_env"), "{text}");
}

/// `[features] exclude_not_found`: a key Jira does not know leaves every list and card,
/// stays stored, and comes back once Jira knows it.
async fn not_found_keys_left_out(backend: &str, database: TestDatabase) {
    let ledger = seeded(&database).await;
    let jira = emulator_with(Flavor::DataCenter, &["SHOP-1", "SHOP-2"]).await;
    let work = tempfile::tempdir().unwrap();
    let config = config(work.path(), &jira, "datacenter", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[features]\n", "[features]\nexclude_not_found = true\n")).unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap(), "--database-url", database.url.expose()],
        &[("TEST_JIRA_TOKEN", TOKEN)],
    );

    let (status, body) = eventually("SHOP-404 to be left out", || async {
        let (status, body) = get(&server, "/api/v1/features/SHOP-404").await;
        (status == 404).then_some((status, body))
    })
    .await;
    assert!(body["error"].as_str().unwrap().contains("exclude_not_found"), "{backend}: {status} {body}");
    let (_, commit) = get(&server, &format!("/api/v1/commits/shop-api/{}", "a".repeat(40))).await;
    let listed: Vec<&str> = commit["features"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(listed, ["SHOP-1", "SHOP-2"], "{backend}: {commit}");
    let (_, answer) = get(&server, "/api/v1/ask?q=Is%20SHOP-404%20deployed%20in%20production%20now%3F").await;
    assert!(answer["summary"].as_str().unwrap().contains("left out"), "{backend}: {answer}");
    let page = reqwest::get(server.url("/features")).await.unwrap().text().await.unwrap();
    assert!(page.contains("SHOP-1") && !page.contains("SHOP-404"), "{backend}: the feature list");
    let overview = landfall_tests::overview(&server).await;
    assert_eq!(overview["counts"]["features"], 2, "{backend}: the overview counts {overview}");
    let ready = eventually("/readyz to report the refresh", || async {
        let (_, ready) = get(&server, "/readyz").await;
        (ready["checks"]["jira"]["state"] == "ok").then_some(ready)
    })
    .await;
    assert_eq!(ready["checks"]["jira"]["not_found"].as_u64(), Some(1), "{backend}: {ready}");
    assert!(ledger.feature_exists("SHOP-404").await.unwrap(), "{backend}: still stored");

    // Jira learns the key: the next refresh brings it back.
    jira.insert_issue(emulator::issue("SHOP-404", "Found after all", "To Do", "new")).unwrap();
    let card = eventually("SHOP-404 to come back", || async {
        let (status, card) = get(&server, "/api/v1/features/SHOP-404").await;
        (status == 200).then_some(card)
    })
    .await;
    assert_eq!(
        (card["summary"].as_str(), card["not_found"].as_bool()),
        (Some("Found after all"), Some(false)),
        "{backend}"
    );
    drop(server);
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_jira_does_not_know_can_be_left_out() {
    for (backend, database) in all_databases().await {
        not_found_keys_left_out(backend, database).await;
    }
}

/// Data Center keeps an issue's epic in a custom field: asked for only when configured.
#[tokio::test(flavor = "multi_thread")]
async fn data_center_epic_links_come_from_the_configured_field() {
    let jira = emulator_with(Flavor::DataCenter, &["SHOP-1"]).await;
    let mut story = emulator::issue("SHOP-7", "Pay by card", "To Do", "new");
    story["fields"]["customfield_10008"] = json!("SHOP-1");
    jira.insert_issue(story).unwrap();
    let plain = client_for(&jira, JiraFlavor::Datacenter, TOKEN).fetch(&keys(&["SHOP-7"])).await.unwrap();
    assert_eq!(plain.issues[0].parent_key, None, "not asked for, not read");
    let client =
        client_for(&jira, JiraFlavor::Datacenter, TOKEN).with_epic_link_field(Some("customfield_10008".into()));
    let found = client.fetch(&keys(&["SHOP-7"])).await.unwrap();
    assert_eq!(found.issues[0].parent_key.as_deref(), Some("SHOP-1"));
}

/// A delivery is remembered for a week, and forgotten by the next delivery after that
/// even when no refresher runs (no token configured).
#[tokio::test]
async fn jira_deliveries_are_forgotten_after_a_week() {
    use landfall_server::ledger::jira::{DeliveryOutcome, IssueChange, JIRA_DELIVERY_MEMORY_MS};
    for (backend, database) in all_databases().await {
        let ledger = seeded(&database).await;
        let touched = |key: &str| IssueChange::Touched { key: key.into() };
        let start = 1_700_000_000_000;
        let first = ledger.apply_jira_delivery("d-1", start, &touched("SHOP-1"), start).await.unwrap();
        assert_eq!(first, DeliveryOutcome::Applied, "{backend}");
        let again = ledger.apply_jira_delivery("d-1", start, &touched("SHOP-1"), start + 1000).await.unwrap();
        assert_eq!(again, DeliveryOutcome::Duplicate, "{backend}");
        let week = start + JIRA_DELIVERY_MEMORY_MS + 1;
        ledger.apply_jira_delivery("d-2", week, &touched("SHOP-2"), week).await.unwrap();
        let forgotten = ledger.apply_jira_delivery("d-1", week + 1, &touched("SHOP-1"), week + 1).await.unwrap();
        assert_eq!(forgotten, DeliveryOutcome::Applied, "{backend}: d-1 was forgotten when d-2 arrived");
        ledger.close().await;
    }
}
