//! The REST API over a ledger filled the way users fill it: `landfall ingest` of a real
//! repository, then CI reports; on SQLite and PostgreSQL.

use landfall_tests::git::{git, make_history};
use landfall_tests::{Server, TestDatabase, all_databases, run};
use serde_json::{Value, json};

const TOKEN: &str = "api-test-report-token";

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let response = reqwest::get(server.url(path)).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn report(server: &Server, kind: &str, body: Value) {
    let response = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/reports/{kind}")))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Ingests the standard history into `database` and starts a server on it.
fn prepare(database: &TestDatabase) -> (tempfile::TempDir, Server, String) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop-api");
    std::fs::create_dir(&repo).unwrap();
    make_history(&repo);
    let merge = git(&repo, &["rev-parse", "HEAD~3"]);
    let config = work.path().join("landfall.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\ndata_dir = \"{}\"\n[features]\nprojects = [\"SHOP\", \"PAY\"]\n\n[[repository]]\nname = \"shop-api\"\nurl = \"{}\"\n",
            database.url.expose(),
            work.path().join("data").display(),
            repo.display()
        ),
    )
    .unwrap();
    let output = run(work.path(), &["ingest", "--config", config.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let server =
        Server::start_with_env(&["--database-url", database.url.expose()], &[("LANDFALL_REPORT_TOKEN", TOKEN)]);
    (work, server, merge)
}

async fn story(backend: &str, database: TestDatabase) {
    let (_work, server, merge) = prepare(&database);
    assert!(git_subject_is_merge(&server, &merge).await, "{backend}: HEAD~3 is the merge of #12");

    let digest = format!("sha256:{}", "d".repeat(64));
    report(
        &server,
        "builds",
        json!({
            "image_repository": "ghcr.io/acme/shop", "tag": "2.0.0", "digest": digest,
            "source_repository": "shop-api", "commit_sha": merge, "branch": "main",
            "ci_system": "github-actions", "pipeline_run_id": "500", "built_at": "2024-01-02T12:00:00Z"
        }),
    )
    .await;
    report(&server, "pipelines", json!({
        "ci_system": "github-actions", "name": "pr-checks", "run_id": "499", "status": "success",
        "repository": "shop-api", "pull_request": 12, "steps": [{ "name": "unit", "kind": "test", "status": "success" }]
    }))
    .await;

    // Questions 1, 5 and 8: the feature, the pipelines and the images of pull request 12.
    let (status, card) = get(&server, "/api/v1/pull-requests/shop-api/12").await;
    assert_eq!(status, 200, "{backend}: {card}");
    let keys: Vec<&str> = card["features"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["SHOP-2"], "{backend}: {card}");
    assert_eq!(card["commits"][0]["sha"], merge.as_str(), "{backend}");
    assert_eq!(card["commits"][0]["subject"], "Merge pull request #12 from acme/SHOP-2-checkout");
    assert_eq!(card["commits"][0]["author"]["offset_minutes"], 90);
    assert_eq!(card["pipelines"][0]["run_id"], "499", "{backend}: {card}");
    assert_eq!(card["images"][0]["digest"], digest.as_str(), "{backend}: {card}");

    let (status, body) = get(&server, "/api/v1/pull-requests/shop-api/999").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("pull request shop-api#999 is not in the ledger")));
    let (status, body) = get(&server, "/api/v1/pull-requests/shop-api/twelve").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("`number`"), "{body}");

    // A commit by unique prefix.
    let (status, card) = get(&server, &format!("/api/v1/commits/shop-api/{}", &merge[..7])).await;
    assert_eq!(status, 200, "{backend}: {card}");
    assert_eq!(card["sha"], merge.as_str());
    assert_eq!(card["pull_request"]["number"], 12);
    assert_eq!(card["parents"].as_array().unwrap().len(), 2, "a merge has two parents");
    assert_eq!(card["images"][0]["tag"], "2.0.0");
    let (status, _) = get(&server, "/api/v1/commits/shop-api/not-hex").await;
    assert_eq!(status, 400);
    let (status, _) = get(&server, &format!("/api/v1/commits/shop-api/{}", "f".repeat(40))).await;
    assert_eq!(status, 404);

    // The feature card.
    let (status, card) = get(&server, "/api/v1/features/SHOP-2").await;
    assert_eq!(status, 200, "{backend}: {card}");
    assert_eq!(card["commits"].as_array().unwrap().len(), 2, "{backend}: the branch commit and the merge");
    assert_eq!(card["pull_requests"], json!([{ "repo": "shop-api", "number": 12, "title": null }]), "{backend}");
    assert_eq!(card["committers"], json!(["Bob Example <bob@example.com>"]));
    assert_eq!(card["images"][0]["digest"], digest.as_str());
    let (status, body) = get(&server, "/api/v1/features/NOPE-1").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("feature NOPE-1 is not in the ledger")));
}

async fn git_subject_is_merge(server: &Server, sha: &str) -> bool {
    let (_, card) = get(server, &format!("/api/v1/commits/shop-api/{sha}")).await;
    card["subject"].as_str().is_some_and(|s| s.starts_with("Merge pull request #12"))
}

#[tokio::test]
async fn the_api_answers_from_ingested_history_and_reports_on_every_backend() {
    for (backend, database) in all_databases().await {
        story(backend, database).await;
    }
}

#[tokio::test]
async fn the_openapi_document_lists_what_the_server_serves() {
    let server = Server::start(&[]);
    let (status, document) = get(&server, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."), "{document}");
    let mut paths: Vec<&str> = document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/v1/applications",
            "/api/v1/applications/{instance}",
            "/api/v1/applications/{instance}/form/check",
            "/api/v1/applications/{instance}/{name}",
            "/api/v1/applications/{instance}/{name}/form",
            "/api/v1/applications/{instance}/{name}/refresh",
            "/api/v1/applications/{instance}/{name}/rollback",
            "/api/v1/applications/{instance}/{name}/sync",
            "/api/v1/applications/{instance}/{name}/terminate",
            "/api/v1/argocd/{instance}/catalogue",
            "/api/v1/ask",
            "/api/v1/audit",
            "/api/v1/commits/{repo}/{sha}",
            "/api/v1/environments/compare",
            "/api/v1/environments/{env}/changes",
            "/api/v1/features/{key}",
            "/api/v1/manifests/commits",
            "/api/v1/pull-requests/{repo}/{number}",
            "/api/v1/reports/builds",
            "/api/v1/reports/pipelines",
            "/api/v1/rollback-plans",
            "/api/v1/rollback-plans/{id}/execute",
            "/api/v1/webhooks/github",
            "/api/v1/webhooks/gitlab",
            "/api/v1/webhooks/jira"
        ]
    );
    assert!(document["components"]["securitySchemes"]["bearer"].is_object(), "{document}");
    for report in ["builds", "pipelines"] {
        let responses = &document["paths"][format!("/api/v1/reports/{report}")]["post"]["responses"];
        for status in ["200", "400", "401", "422"] {
            assert!(responses[status].is_object(), "{report} documents no {status}: {responses}");
        }
    }
    for forge in ["github", "gitlab"] {
        let responses = &document["paths"][format!("/api/v1/webhooks/{forge}")]["post"]["responses"];
        for status in ["200", "202", "400", "401", "413"] {
            assert!(responses[status].is_object(), "{forge} webhooks document no {status}: {responses}");
        }
    }
    for schema in ["PullRequestCard", "CommitCard", "FeatureCard", "BuildReport", "PipelineReport", "ErrorBody"] {
        assert!(document["components"]["schemas"][schema].is_object(), "{schema} missing");
    }
    // Every documented GET path is served (an unknown key is a 404 with a JSON message,
    // not a missing route).
    for path in ["/api/v1/commits/x/abcd", "/api/v1/features/X-1", "/api/v1/pull-requests/x/1"] {
        let (status, body) = get(&server, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}
