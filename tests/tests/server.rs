//! The real `landfall serve`, started on port 0, spoken to over HTTP.

use std::time::Duration;

use landfall_server::ledger::{ApplicationFact, DeploymentFact, EnvironmentFact, ImageRef, Ledger};
use landfall_tests::{Server, TestDatabase};
use serde_json::Value;

async fn get(server: &Server, path: &str) -> reqwest::Response {
    reqwest::get(server.url(path)).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Calls a server function the way the browser does (a URL-encoded POST).
async fn call(server: &Server, endpoint: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let body: String = form.iter().map(|(k, v)| format!("{k}={}", v.replace(' ', "+"))).collect::<Vec<_>>().join("&");
    reqwest::Client::new()
        .post(server.url(&format!("/api/fn/{endpoint}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn probes_answer() {
    let server = Server::start(&[]);
    let health = get(&server, "/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let ready = get(&server, "/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["backend"], "sqlite");
    assert_eq!(body["checks"]["database"]["migrations_applied"], body["checks"]["database"]["migrations_expected"]);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let server = Server::start(&[]);
    for _ in 0..3 {
        get(&server, "/healthz").await;
    }
    assert_eq!(get(&server, "/no/such/page").await.status(), 404);
    let response = get(&server, "/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains("landfall_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 3"),
        "{text}"
    );
    assert!(text.contains("status=\"404\"} 1"), "{text}");
    assert!(text.contains("# TYPE landfall_http_request_duration_seconds histogram"), "{text}");
    assert!(
        text.contains("landfall_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 3"),
        "{text}"
    );
    assert!(!text.contains("/no/such/page"), "raw paths never become labels: {text}");
}

#[tokio::test]
async fn an_empty_ledger_renders_the_setup_guide() {
    let server = Server::start(&[]);
    let response = get(&server, "/").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("<title>Overview · Landfall</title>"), "{html}");
    for section in ["Overview", "Features", "Timeline", "Environments", "Applications", "Search"] {
        assert!(html.contains(&format!(">{section}</a>")), "navigation lacks {section}");
    }
    assert!(html.contains("Nothing is connected yet"), "{html}");
    for step in ["Connect Argo CD", "Add Git repositories", "Connect Jira"] {
        assert!(html.contains(step), "setup guide lacks {step}");
    }
    assert!(html.contains("/pkg/landfall.js"), "hydration script is referenced");
}

#[tokio::test]
async fn unknown_pages_answer_404_inside_the_shell() {
    let server = Server::start(&[]);
    let response = get(&server, "/definitely-not-here").await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("Page not found"));
}

async fn seed(ledger: &Ledger) {
    let env = EnvironmentFact { name: "production".into(), rank: 40, match_rules: serde_json::json!({}) };
    ledger.upsert_environment(&env).await.unwrap();
    let app = ApplicationFact {
        instance: "main".into(),
        namespace: "argocd".into(),
        name: "checkout-prod".into(),
        project: "shop".into(),
        environment: Some("production".into()),
        sync_status: Some("Synced".into()),
        health_status: Some("Healthy".into()),
        observed_at: 1_700_000_000_000,
        ..ApplicationFact::default()
    };
    ledger.upsert_application(&app).await.unwrap();
    let deployment = DeploymentFact {
        instance: "main".into(),
        namespace: "argocd".into(),
        application: "checkout-prod".into(),
        history_id: 3,
        revision: "0123456789abcdef0123456789abcdef01234567".into(),
        started_at: 1_709_214_300_000,
        finished_at: Some(1_709_214_359_000),
        phase: "Succeeded".into(),
        images_after: vec![ImageRef::parse("ghcr.io/acme/checkout:2.0").unwrap()],
        ..DeploymentFact::default()
    };
    ledger.record_deployment(&deployment).await.unwrap();
}

#[tokio::test]
async fn pages_and_server_functions_read_the_ledger() {
    let server = Server::start(&[]);
    let ledger = Ledger::open(&server.sqlite_url()).await.unwrap();
    seed(&ledger).await;

    let response = call(&server, "overview", &[]).await;
    assert_eq!(response.status(), 200);
    let overview: Value = response.json().await.unwrap();
    assert_eq!(overview["counts"]["applications"], 1);
    assert_eq!(overview["counts"]["deployments"], 1);
    assert_eq!(overview["recent_deployments"][0]["application"], "checkout-prod");

    let html = get(&server, "/").await.text().await.unwrap();
    assert!(!html.contains("Nothing is connected yet"));
    assert!(
        html.contains("checkout-prod") && html.contains("01234567") && html.contains("2024-02-29 13:45 UTC"),
        "{html}"
    );

    let html = get(&server, "/applications").await.text().await.unwrap();
    assert!(html.contains("checkout-prod") && html.contains("pill-good"), "{html}");

    let found: Value = call(&server, "search", &[("query", "checkout")]).await.json().await.unwrap();
    assert_eq!(found["applications"][0]["name"], "checkout-prod");
}

#[tokio::test]
async fn server_functions_reject_bad_input_with_a_reason() {
    let server = Server::start(&[]);
    let long = "x".repeat(201);
    let response = call(&server, "search", &[("query", &long)]).await;
    assert_eq!(response.status(), 500, "server functions report errors with 500 and the error as JSON");
    let body = response.text().await.unwrap();
    assert!(body.contains("at most 200"), "{body}");
    let response = call(&server, "search", &[]).await;
    assert!(response.status().is_server_error() || response.status().is_client_error());
    assert!(response.text().await.unwrap().contains("query"));
}

#[tokio::test]
async fn text_from_the_ledger_is_escaped() {
    let server = Server::start(&[]);
    let ledger = Ledger::open(&server.sqlite_url()).await.unwrap();
    let env = EnvironmentFact { name: "<script>alert(1)</script>".into(), rank: 1, match_rules: serde_json::json!({}) };
    ledger.upsert_environment(&env).await.unwrap();
    let html = get(&server, "/environments").await.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
}

#[tokio::test]
async fn postgres_is_used_when_the_url_says_so() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("LANDFALL_TEST_DATABASE_URL is not set: skipping the PostgreSQL server test");
        return;
    };
    let server = Server::start(&["--database-url", database.url.expose()]);
    let body: Value = get(&server, "/readyz").await.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["backend"], "postgres");
    let ledger = Ledger::open(&database.url).await.unwrap();
    seed(&ledger).await;
    let overview: Value = call(&server, "overview", &[]).await.json().await.unwrap();
    assert_eq!(overview["counts"]["deployments"], 1);
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut server = Server::start(&[]);
    assert_eq!(get(&server, "/healthz").await.status(), 200);
    let status = std::process::Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = server.wait_for_exit(Duration::from_secs(30)).expect("landfall exits after SIGTERM");
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let workdir = tempfile::tempdir().unwrap();
    let data = workdir.path().join("data");
    let output = landfall_tests::run(
        workdir.path(),
        &["migrate", "--log-format", "json", "--log-level", "debug", "--data-dir", data.to_str().unwrap()],
        &[],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "debug logging produced nothing");
    for line in lines {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
    assert!(String::from_utf8(output.stdout).unwrap().contains("is up to date"));
}

#[test]
fn ask_on_a_new_data_directory_says_what_can_be_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let output = landfall_tests::run(
        dir.path(),
        &["--data-dir", data.to_str().unwrap(), "ask", "--tz", "Europe/Paris", "Is SHOP-1 in prod now?"],
        &[],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("SHOP-1 is not an issue of a feature project"), "{text}");
    assert!(text.contains("  Which feature was implemented by pull request 432?"), "{text}");

    let output =
        landfall_tests::run(dir.path(), &["--data-dir", data.to_str().unwrap(), "ask", "--tz", "Mars/Base", "hi"], &[]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("--tz") && error.contains("Europe/Paris"), "{error}");
}

#[tokio::test]
async fn a_cluster_that_cannot_be_configured_is_shown_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("landfall.toml");
    let missing = dir.path().join("no-such-kubeconfig");
    std::fs::write(
        &config,
        format!("[[cluster]]\nname = \"gke-eu\"\nkubeconfig = {:?}\n", missing.display().to_string()),
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let ready = get(&server, "/readyz").await;
        assert_eq!(ready.status(), 200, "a cluster never makes Landfall unready");
        let body: Value = ready.json().await.unwrap();
        if !body["checks"]["clusters"][0]["error"].is_null() {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "no cluster error in {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cluster = &body["checks"]["clusters"][0];
    assert_eq!(cluster["name"], "gke-eu");
    assert_eq!(cluster["reachable"], false);
    assert!(cluster["error"].as_str().unwrap().contains("cannot load the kubeconfig"), "{body}");
    assert_eq!(get(&server, "/healthz").await.status(), 200, "the server keeps serving");
}
