//! The CI report API and `landfall report`, against the real server.

use landfall_server::ledger::{Ledger, RepositoryFact};
use landfall_tests::{Server, landfall};
use serde_json::{Value, json};

const TOKEN: &str = "test-report-token-0123456789";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn build(digest: &str) -> Value {
    json!({
        "image_repository": "ghcr.io/acme/shop",
        "tag": "1.4.2",
        "digest": digest,
        "source_repository": "shop-api",
        "commit_sha": "a".repeat(40),
        "branch": "main",
        "pull_request": 156,
        "ci_system": "github-actions",
        "pipeline_run_id": "991",
        "pipeline_url": "https://github.com/acme/shop/actions/runs/991",
        "built_at": "2024-05-01T12:00:00Z"
    })
}

async fn server_with_repository() -> (Server, Ledger) {
    let server = Server::start_with_env(&[], &[("LANDFALL_REPORT_TOKEN", TOKEN)]);
    let ledger = Ledger::open(&server.sqlite_url()).await.unwrap();
    let repository = RepositoryFact {
        name: "shop-api".into(),
        url: "https://git.example/shop-api.git".into(),
        kind: "source".into(),
    };
    ledger.upsert_repository(&repository).await.unwrap();
    (server, ledger)
}

async fn post(server: &Server, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().post(server.url(path)).header("content-type", "application/json").body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A direct connection to the server's SQLite ledger, for what the API does not show.
async fn connect(server: &Server) -> sqlx::SqliteConnection {
    <sqlx::SqliteConnection as sqlx::Connection>::connect(server.sqlite_url().expose()).await.unwrap()
}

async fn builds_stored(server: &Server) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM builds").fetch_one(&mut connect(server).await).await.unwrap()
}

#[tokio::test]
async fn reports_without_the_token_are_refused_and_store_nothing() {
    let (server, _ledger) = server_with_repository().await;
    let body = build(&digest('1')).to_string();
    for token in [None, Some("wrong"), Some("test-report-token-012345678"), Some("")] {
        let (status, answer) = post(&server, "/api/v1/reports/builds", token, &body).await;
        assert_eq!(status, 401, "{token:?}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("token"), "{answer}");
    }
    assert_eq!(builds_stored(&server).await, 0);

    // A server with no token configured refuses everyone.
    let closed = Server::start(&[]);
    let (status, answer) = post(&closed, "/api/v1/reports/builds", Some(TOKEN), &body).await;
    assert_eq!(status, 401);
    assert!(answer["error"].as_str().unwrap().contains("disabled"), "{answer}");
}

#[tokio::test]
async fn builds_are_recorded_once_per_digest() {
    let (server, _ledger) = server_with_repository().await;
    let body = build(&digest('2')).to_string();
    for _ in 0..2 {
        let (status, answer) = post(&server, "/api/v1/reports/builds", Some(TOKEN), &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["digest"], digest('2'));
    }
    assert_eq!(builds_stored(&server).await, 1, "idempotent on the digest");
}

#[tokio::test]
async fn bad_reports_name_the_field_and_what_is_accepted() {
    let (server, _ledger) = server_with_repository().await;
    let cases = [
        ("digest", json!("sha256:abc"), "64 hexadecimal"),
        ("commit_sha", json!("HEAD"), "40 or 64"),
        ("built_at", json!("last tuesday"), "RFC 3339"),
        ("source_repository", json!("nope"), "known: shop-api"),
        ("pipeline_url", json!("javascript:alert(1)"), "https://"),
        ("pull_request", json!(-4), "positive"),
    ];
    for (field, value, hint) in cases {
        let mut body = build(&digest('3'));
        body[field] = value;
        let (status, answer) = post(&server, "/api/v1/reports/builds", Some(TOKEN), &body.to_string()).await;
        assert_eq!(status, 422, "{field}: {answer}");
        assert_eq!(answer["field"], field, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(hint), "{field}: {answer}");
    }
    let mut body = build(&digest('3'));
    body["pull_request"] = json!("one five six");
    let (status, answer) = post(&server, "/api/v1/reports/builds", Some(TOKEN), &body.to_string()).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("pull_request"), "{answer}");
    let (status, answer) = post(&server, "/api/v1/reports/builds", Some(TOKEN), "{\"image_repository\": ").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("not valid JSON"), "{answer}");
    assert_eq!(builds_stored(&server).await, 0, "nothing half-written");
}

#[tokio::test]
async fn pipelines_are_recorded_with_their_steps() {
    let (server, ledger) = server_with_repository().await;
    let mut pipeline = json!({
        "ci_system": "gitlab-ci",
        "name": "build",
        "run_id": "42",
        "url": "https://gitlab.example/shop/-/pipelines/42",
        "status": "success",
        "repository": "shop-api",
        "commit_sha": "b".repeat(40),
        "pull_request": 12,
        "started_at": "2024-05-01T12:00:00Z",
        "finished_at": "2024-05-01T12:10:00Z",
        "steps": [
            { "name": "compile", "kind": "build", "status": "success" },
            { "name": "unit", "kind": "test", "status": "success" }
        ]
    });
    for _ in 0..2 {
        let (status, answer) = post(&server, "/api/v1/reports/pipelines", Some(TOKEN), &pipeline.to_string()).await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(ledger.counts().await.unwrap().pipeline_runs, 1);

    pipeline["run_id"] = json!("43");
    pipeline["steps"][1]["kind"] = json!("lint");
    let (status, answer) = post(&server, "/api/v1/reports/pipelines", Some(TOKEN), &pipeline.to_string()).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("steps[1].kind")), "{answer}");
    pipeline["steps"][1]["kind"] = json!("test");
    pipeline["finished_at"] = json!("2024-05-01T11:00:00Z");
    let (status, answer) = post(&server, "/api/v1/reports/pipelines", Some(TOKEN), &pipeline.to_string()).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("finished_at")), "{answer}");
    assert_eq!(ledger.counts().await.unwrap().pipeline_runs, 1);
}

#[tokio::test]
async fn a_ci_step_reports_in_one_line() {
    let (server, ledger) = server_with_repository().await;
    let work = tempfile::tempdir().unwrap();
    // What GitHub Actions puts in a job's environment.
    let github = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_SHA", "cccccccccccccccccccccccccccccccccccccccc"),
        ("GITHUB_REF", "refs/pull/156/merge"),
        ("GITHUB_HEAD_REF", "SHOP-1-cart"),
        ("GITHUB_RUN_ID", "991"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "acme/shop"),
        ("LANDFALL_REPORT_TOKEN", TOKEN),
    ];
    let output = landfall(work.path())
        .args(["report", "build", "--server", &server.base_url, "--image", "ghcr.io/acme/shop:1.5.0"])
        .args(["--digest", &digest('4'), "--repository", "shop-api"])
        .envs(github)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Recorded build"));
    let mut connection = connect(&server).await;
    let row: (String, Option<i64>, Option<String>, Option<String>) =
        sqlx::query_as("SELECT commit_sha, pull_request_number, run_id, run_url FROM builds")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert_eq!(row.0, "c".repeat(40));
    assert_eq!(row.1, Some(156));
    assert_eq!(row.2.as_deref(), Some("991"));
    assert_eq!(row.3.as_deref(), Some("https://github.com/acme/shop/actions/runs/991"));

    let output = landfall(work.path())
        .args(["report", "pipeline", "--server", &server.base_url, "--name", "ci", "--status", "success"])
        .args(["--repository", "shop-api", "--step", "compile:build:success", "--step", "unit tests:test:failure"])
        .envs(github)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(ledger.counts().await.unwrap().pipeline_runs, 1);

    // A refused report fails the CI step with the server's reason.
    let output = landfall(work.path())
        .args(["report", "build", "--server", &server.base_url, "--image", "ghcr.io/acme/shop:1.5.1"])
        .args(["--digest", "sha256:short", "--repository", "shop-api"])
        .envs(github)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("`digest`"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
