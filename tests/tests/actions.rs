//! Actions on Argo CD through Landfall's REST API, against the emulator: refused while
//! disabled, then sync, refresh, terminate, rollback under automated sync, create,
//! update and delete, and a rollback plan executed end to end; every attempt audited.
//! On SQLite and PostgreSQL.

use std::time::Duration;

use landfall_emulators::argocd::{ArgoCd, Handle, Options};
use landfall_server::ledger::{BuildFact, ImageRef, Ledger};
use landfall_tests::git::{commit, git};
use landfall_tests::{Server, TestDatabase, all_databases, eventually, ingest_shop_api};
use reqwest::Method;
use serde_json::{Value, json};

const TOKEN: &str = "header.payload.signature";

fn app(name: &str, env: &str, automated: bool) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "argocd", "labels": {"env": env}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/acme/gitops.git", "path": format!("envs/{env}"), "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": format!("shop-{env}")},
            "syncPolicy": if automated { json!({"automated": {"prune": true}}) } else { json!({}) }
        }
    })
}

async fn emulator(sync_duration: Duration) -> Handle {
    let options = Options { tokens: vec![(TOKEN.into(), "admin".into())], sync_duration, ..Options::default() };
    ArgoCd::start(options).await.unwrap()
}

/// `landfall serve` on `database`, watching and acting on the given instances.
fn serve(work: &std::path::Path, database: &TestDatabase, enabled: bool, instances: &[(&str, &Handle)]) -> Server {
    let mut config = format!("actions_enabled = {enabled}\n");
    for (name, handle) in instances {
        config.push_str(&format!(
            "[[argocd]]\nname = \"{name}\"\nurl = \"{}\"\ntoken_env = \"ARGOCD_TOKEN\"\nsilence_seconds = 5\n\n",
            handle.url()
        ));
    }
    config.push_str("[[environment]]\nname = \"production\"\nmatch = { labels = { env = \"prod\" } }\n");
    let path = work.join("serve.toml");
    std::fs::write(&path, config).unwrap();
    Server::start_with_env(
        &["--config", path.to_str().unwrap(), "--database-url", database.url.expose()],
        &[("ARGOCD_TOKEN", TOKEN)],
    )
}

async fn call(server: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, server.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn audit(server: &Server) -> Vec<Value> {
    let (status, log) = call(server, Method::GET, "/api/v1/audit?limit=100", None).await;
    assert_eq!(status, 200, "{log}");
    log["entries"].as_array().unwrap().clone()
}

fn history(argo: &Handle, name: &str) -> Vec<Value> {
    let app = argo.application(name).unwrap();
    app.pointer("/status/history").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn phase(argo: &Handle, name: &str) -> Option<String> {
    argo.application(name)?.pointer("/status/operationState/phase")?.as_str().map(String::from)
}

/// Waits until the application's history has `count` entries and returns the last.
async fn history_reaches(argo: &Handle, name: &str, count: usize) -> Value {
    eventually(&format!("{name}'s history entry {count}"), || async {
        let entries = history(argo, name);
        (entries.len() == count && phase(argo, name).as_deref() == Some("Succeeded"))
            .then(|| entries[count - 1].clone())
    })
    .await
}

async fn disabled(backend: &str, database: TestDatabase) {
    let argo = emulator(Duration::from_millis(200)).await;
    argo.insert_application(app("shop-prod", "prod", false)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = serve(work.path(), &database, false, &[("main", &argo)]);
    let (status, body) =
        call(&server, Method::POST, "/api/v1/applications/main/shop-prod/sync", Some(json!({"prune": true}))).await;
    assert_eq!(status, 403, "{backend}: {body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.starts_with("actions are disabled: set actions_enabled = true"), "{backend}: {message}");
    let (status, _) = call(&server, Method::DELETE, "/api/v1/applications/main/shop-prod", None).await;
    assert_eq!(status, 403, "{backend}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(history(&argo, "shop-prod").is_empty(), "{backend}: nothing reached Argo CD");
    assert!(argo.application("shop-prod").is_some(), "{backend}");
    // The application's page offers no actions while they are disabled.
    let page = eventually("shop-prod's page", || async {
        let page = reqwest::get(server.url("/applications/main/shop-prod")).await.unwrap().text().await.unwrap();
        page.contains("No deployments recorded yet.").then_some(page)
    })
    .await;
    assert!(!page.contains("aria-label=\"Actions\"") && !page.contains("Roll back"), "{backend}");

    let entries = audit(&server).await;
    let seen: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(seen, [("delete", "refused"), ("sync", "refused")], "{backend}: newest first");
    assert_eq!(entries[1]["parameters"]["prune"], true, "{backend}: {}", entries[1]);
    assert_eq!(entries[1]["actor"], "anonymous", "{backend}");
    assert_eq!(entries[1]["application"], "shop-prod", "{backend}");
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_are_refused_and_audited_while_disabled() {
    for (backend, database) in all_databases().await {
        disabled(backend, database).await;
    }
}

async fn actions(backend: &str, database: TestDatabase) {
    let argo = emulator(Duration::from_millis(200)).await;
    argo.insert_application(app("shop-prod", "prod", false)).unwrap();
    argo.insert_application(app("shop-auto", "prod", true)).unwrap();
    let slow = emulator(Duration::from_secs(60)).await;
    slow.insert_application(app("shop-slow", "prod", false)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = serve(work.path(), &database, true, &[("main", &argo), ("slow", &slow)]);
    let ledger = Ledger::open(&database.url).await.unwrap();
    eventually("the watch", || async { (ledger.applications().await.unwrap().len() == 3).then_some(()) }).await;

    // Unknown instance or application.
    let (status, body) = call(&server, Method::POST, "/api/v1/applications/nowhere/shop-prod/sync", None).await;
    assert_eq!(status, 404, "{backend}: {body}");
    assert!(body["error"].as_str().unwrap().contains("configured instances: main, slow"), "{backend}: {body}");
    let (status, body) = call(&server, Method::POST, "/api/v1/applications/main/nothing/sync", None).await;
    assert_eq!(status, 404, "{backend}: {body}");
    let (status, body) =
        call(&server, Method::POST, "/api/v1/applications/main/nothing/sync?namespace=argocd", None).await;
    assert_eq!(status, 404, "{backend}: {body}");

    // Another site's page cannot make a visitor's browser act (cross-site request forgery):
    // nothing reaches Argo CD. The dashboard's own pages and non-browser clients can.
    for (name, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
        let response = reqwest::Client::new()
            .post(server.url("/api/v1/applications/main/shop-prod/sync"))
            .header(name, value)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{backend}: {name}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("cross-site request refused"), "{backend}: {body}");
    }
    assert!(history(&argo, "shop-prod").is_empty() && phase(&argo, "shop-prod").is_none(), "{backend}: no sync");
    let own_page = reqwest::Client::new()
        .post(server.url("/api/v1/applications/main/shop-prod/refresh"))
        .header("origin", server.base_url.as_str())
        .header("sec-fetch-site", "same-origin")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(own_page.status(), 200, "{backend}: {}", own_page.text().await.unwrap());

    // Sync: a new history entry in Argo CD, a new deployment in the ledger.
    argo.set_images_for_revision("r1", ["ghcr.io/acme/shop:1"]);
    let sync = json!({"revision": "r1", "prune": true, "sync_options": ["CreateNamespace=true"]});
    let (status, body) = call(&server, Method::POST, "/api/v1/applications/main/shop-prod/sync", Some(sync)).await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert_eq!(body["application"]["operation"]["sync"]["revision"], "r1", "{backend}: {body}");
    assert_eq!(body["application"]["operation"]["sync"]["syncOptions"], json!(["CreateNamespace=true"]));
    let entry = history_reaches(&argo, "shop-prod", 1).await;
    assert_eq!(entry["revision"], "r1", "{backend}");
    let image = ImageRef::parse("ghcr.io/acme/shop:1").unwrap();
    eventually("the deployment in the ledger", || async {
        let recorded = ledger.recorded_deployments("main", "argocd", "shop-prod").await.unwrap();
        (recorded.get(&0) == Some(&vec![image.clone()])).then_some(())
    })
    .await;
    let (status, body) =
        call(&server, Method::POST, "/api/v1/applications/main/shop-prod/sync", Some(json!({"revison": "x"}))).await;
    assert_eq!(status, 422, "{backend}: a misspelt field is named: {body}");

    // Refresh.
    let (status, body) =
        call(&server, Method::POST, "/api/v1/applications/main/shop-prod/refresh", Some(json!({"hard": true}))).await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert_eq!(body["application"]["metadata"]["name"], "shop-prod", "{backend}: {body}");

    // Terminate a long sync; a second sync meanwhile is a conflict.
    let (status, body) = call(&server, Method::POST, "/api/v1/applications/slow/shop-slow/sync", None).await;
    assert_eq!(status, 200, "{backend}: {body}");
    eventually("the slow sync to run", || async {
        (phase(&slow, "shop-slow").as_deref() == Some("Running")).then_some(())
    })
    .await;
    let (status, body) = call(&server, Method::POST, "/api/v1/applications/slow/shop-slow/sync", None).await;
    assert_eq!(status, 409, "{backend}: {body}");
    assert!(body["error"].as_str().unwrap().contains("another operation is already in progress"), "{body}");
    let (status, body) = call(&server, Method::POST, "/api/v1/applications/slow/shop-slow/terminate", None).await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert_eq!(phase(&slow, "shop-slow").as_deref(), Some("Terminating"), "{backend}");

    // Rollback under automated sync: refused, then allowed once it is turned off.
    argo.push_revision("shop-auto", "a1").unwrap();
    history_reaches(&argo, "shop-auto", 1).await;
    argo.push_revision("shop-auto", "a2").unwrap();
    history_reaches(&argo, "shop-auto", 2).await;
    let path = "/api/v1/applications/main/shop-auto/rollback";
    let (status, body) = call(&server, Method::POST, path, Some(json!({"history_id": 0}))).await;
    assert_eq!(status, 409, "{backend}: {body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("automated sync") && message.contains("disable_automated_sync"), "{message}");
    assert!(argo.application("shop-auto").unwrap().pointer("/spec/syncPolicy/automated").is_some(), "{backend}");
    let (status, body) =
        call(&server, Method::POST, path, Some(json!({"history_id": 0, "disable_automated_sync": true}))).await;
    assert_eq!(status, 200, "{backend}: {body}");
    let after = argo.application("shop-auto").unwrap();
    assert!(after.pointer("/spec/syncPolicy/automated").is_none(), "{backend}: {after}");
    let rolled = history_reaches(&argo, "shop-auto", 3).await;
    assert_eq!(rolled["revision"], "a1", "{backend}");
    let operation = argo.application("shop-auto").unwrap()["status"]["operationState"]["operation"].clone();
    assert_eq!(operation["sync"]["syncStrategy"], json!({"apply": {}}), "{backend}: a rollback: {operation}");

    // An entry Argo CD has trimmed from its history is returned to by a sync to its
    // revision, when the caller names it; an empty one is refused first.
    argo.update_application("shop-auto", |app| app["spec"]["revisionHistoryLimit"] = json!(1)).unwrap();
    let sync = json!({"revision": "a3"});
    let (status, body) = call(&server, Method::POST, "/api/v1/applications/main/shop-auto/sync", Some(sync)).await;
    assert_eq!(status, 200, "{backend}: {body}");
    eventually("history trimmed to the newest entry", || async {
        let history = history(&argo, "shop-auto");
        (history.len() == 1 && history[0]["revision"] == "a3").then_some(())
    })
    .await;
    let (status, body) = call(&server, Method::POST, path, Some(json!({"history_id": 1, "revision": " "}))).await;
    assert_eq!(status, 422, "{backend}: {body}");
    assert!(body["error"].as_str().unwrap().contains("revision"), "{backend}: {body}");
    let (status, body) = call(&server, Method::POST, path, Some(json!({"history_id": 1, "revision": "a2"}))).await;
    assert_eq!(status, 200, "{backend}: {body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("no longer in Argo CD's history") && message.contains("a2"), "{backend}: {message}");
    let returned = eventually("the sync to the trimmed entry's revision", || async {
        let history = history(&argo, "shop-auto");
        (history.len() == 1 && history[0]["revision"] == "a2").then_some(history[0].clone())
    })
    .await;
    assert_eq!(returned["id"], 4, "{backend}: {returned}");
    let operation = argo.application("shop-auto").unwrap()["status"]["operationState"]["operation"].clone();
    assert_eq!(operation["sync"]["revision"], "a2", "{backend}: a sync, not a rollback: {operation}");
    assert_ne!(operation["sync"]["syncStrategy"], json!({"apply": {}}), "{backend}: {operation}");
    // One revision cannot restore an application of several sources.
    let mut several = app("shop-multi", "dev", false);
    let source = several["spec"]["source"].take();
    several["spec"]["sources"] =
        json!([source, {"repoURL": "https://charts.example", "chart": "redis", "targetRevision": "18.0.0"}]);
    several["spec"].as_object_mut().unwrap().remove("source");
    argo.insert_application(several).unwrap();
    let multi = "/api/v1/applications/main/shop-multi/rollback?namespace=argocd";
    let (status, body) = call(&server, Method::POST, multi, Some(json!({"history_id": 0, "revision": "m1"}))).await;
    assert_eq!(status, 409, "{backend}: {body}");
    assert!(body["error"].as_str().unwrap().contains("2 sources"), "{backend}: {body}");
    argo.remove_application("shop-multi").unwrap();

    // Create, update, delete.
    let (status, body) =
        call(&server, Method::POST, "/api/v1/applications/main?upsert=false", Some(app("shop-new", "dev", false)))
            .await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert!(argo.application("shop-new").is_some(), "{backend}");
    let mut changed = app("shop-new", "dev", false);
    changed["spec"]["source"]["targetRevision"] = json!("release");
    let (status, body) = call(&server, Method::PUT, "/api/v1/applications/main/shop-new", Some(changed)).await;
    assert_eq!(status, 200, "{backend}: {body}");
    let stored = argo.application("shop-new").unwrap();
    assert_eq!(stored["spec"]["source"]["targetRevision"], "release", "{backend}");
    let (status, body) =
        call(&server, Method::DELETE, "/api/v1/applications/main/shop-new?cascade=false&namespace=argocd", None).await;
    assert_eq!(status, 200, "{backend}: {body}");
    eventually("the deletion", || async { argo.application("shop-new").is_none().then_some(()) }).await;

    // The application's page offers the actions, and a return to each older entry,
    // trimmed ones included (shop-auto has five; the newest gets no button).
    let page = eventually("shop-auto's page with its history", || async {
        let page = reqwest::get(server.url("/applications/main/shop-auto")).await.unwrap().text().await.unwrap();
        (page.matches("Roll back here").count() == 4).then_some(page)
    })
    .await;
    assert!(page.contains("aria-label=\"Actions\"") && page.contains(">Sync</button>"), "{backend}");

    let entries = audit(&server).await;
    let seen: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(
        seen,
        [
            ("delete", "ok"),
            ("update", "ok"),
            ("create", "ok"),
            ("rollback", "refused"),
            ("sync", "ok"),
            ("rollback", "refused"),
            ("sync", "ok"),
            ("rollback", "ok"),
            ("disable_automated_sync", "ok"),
            ("rollback", "refused"),
            ("terminate", "ok"),
            ("sync", "failed"),
            ("sync", "ok"),
            ("refresh", "ok"),
            ("sync", "refused"),
            ("sync", "ok"),
            ("refresh", "ok"),
            ("sync", "refused"),
            ("sync", "refused"),
            ("sync", "refused"),
        ],
        "{backend}"
    );
    assert_eq!(entries[3]["namespace"], "argocd", "{backend}");
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_reach_argo_cd_and_are_audited() {
    for (backend, database) in all_databases().await {
        actions(backend, database).await;
    }
}

async fn build(ledger: &Ledger, tag: &str, sha: &str) {
    let fact = BuildFact {
        image: ImageRef { repository: "ghcr.io/acme/shop".into(), tag: tag.into() },
        digest: format!("sha256:{}", format!("{tag:0>4}").repeat(16)),
        repository: "shop-api".into(),
        commit_sha: sha.into(),
        built_at: 1_800_000_000_000,
        ..BuildFact::default()
    };
    ledger.record_build(&fact).await.unwrap();
}

async fn plan(backend: &str, database: TestDatabase) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop-api");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.join(".gitignore"), ".message\n").unwrap();
    git(&repo, &["add", ".gitignore"]);
    let c1 = commit(&repo, "cart.txt", b"SHOP-1: add the cart\n");
    let c2 = commit(&repo, "checkout.txt", b"SHOP-2: checkout form\n");
    ingest_shop_api(work.path(), &database, &repo);
    let ledger = Ledger::open(&database.url).await.unwrap();
    build(&ledger, "1", &c1).await;
    build(&ledger, "2", &c2).await;

    let argo = emulator(Duration::from_millis(200)).await;
    argo.insert_application(app("shop-prod", "prod", false)).unwrap();
    argo.set_images_for_revision("r1", ["ghcr.io/acme/shop:1"]);
    argo.set_images_for_revision("r2", ["ghcr.io/acme/shop:2"]);
    let server = serve(work.path(), &database, true, &[("main", &argo)]);
    eventually("the watch", || async { (!ledger.applications().await.unwrap().is_empty()).then_some(()) }).await;
    for (count, revision) in [(1, "r1"), (2, "r2")] {
        let sync = json!({"revision": revision});
        let (status, body) = call(&server, Method::POST, "/api/v1/applications/main/shop-prod/sync", Some(sync)).await;
        assert_eq!(status, 200, "{backend}: {body}");
        history_reaches(&argo, "shop-prod", count).await;
        eventually("the deployment in the ledger", || async {
            let recorded = ledger.recorded_deployments("main", "argocd", "shop-prod").await.unwrap();
            recorded.get(&(count as i64 - 1)).is_some_and(|images| !images.is_empty()).then_some(())
        })
        .await;
    }

    let request = json!({"environment": "production", "feature": "SHOP-2"});
    let (status, plan) = call(&server, Method::POST, "/api/v1/rollback-plans", Some(request)).await;
    assert_eq!(status, 200, "{backend}: {plan}");
    let id = plan["id"].as_i64().expect("the plan is stored");
    let step = &plan["applications"][0];
    assert_eq!(step["action"], "rollback", "{backend}: {plan}");
    assert_eq!(step["return_to"]["history_id"], 0, "{backend}: {plan}");
    assert_eq!(step["return_to"]["revision"], "r1", "{backend}: {plan}");

    let (status, body) = call(&server, Method::POST, "/api/v1/rollback-plans/999999/execute", None).await;
    assert_eq!(status, 404, "{backend}: {body}");
    let (status, done) = call(&server, Method::POST, &format!("/api/v1/rollback-plans/{id}/execute"), None).await;
    assert_eq!(status, 200, "{backend}: {done}");
    assert_eq!(done["applications"][0]["outcome"], "rolled_back", "{backend}: {done}");
    let rolled = history_reaches(&argo, "shop-prod", 3).await;
    assert_eq!(rolled["revision"], "r1", "{backend}");
    let operation = argo.application("shop-prod").unwrap()["status"]["operationState"]["operation"].clone();
    assert_eq!(operation["sync"]["syncStrategy"], json!({"apply": {}}), "{backend}: a rollback: {operation}");
    let entries = audit(&server).await;
    assert_eq!(entries[0]["action"], "rollback", "{backend}");
    assert_eq!(entries[0]["parameters"]["plan_id"], id, "{backend}: {}", entries[0]);

    // The application now has two sources and Argo CD has trimmed the entry the plan
    // returns to: one revision cannot restore it, so the step is refused, not synced.
    argo.update_application("shop-prod", |app| {
        let source = app["spec"]["source"].take();
        app["spec"]["sources"] =
            json!([source, {"repoURL": "https://charts.example", "chart": "redis", "targetRevision": "18.0.0"}]);
        app["spec"].as_object_mut().unwrap().remove("source");
        app["status"]["history"].as_array_mut().unwrap().retain(|entry| entry["id"] != 0);
    })
    .unwrap();
    let (status, done) = call(&server, Method::POST, &format!("/api/v1/rollback-plans/{id}/execute"), None).await;
    assert_eq!(status, 200, "{backend}: {done}");
    assert_eq!(done["applications"][0]["outcome"], "refused", "{backend}: {done}");
    let message = done["applications"][0]["message"].as_str().unwrap();
    assert!(message.contains("2 sources"), "{backend}: {done}");
    assert_eq!(history(&argo, "shop-prod").len(), 2, "{backend}: nothing synced");
    let entries = audit(&server).await;
    assert_eq!((entries[0]["action"].as_str(), entries[0]["outcome"].as_str()), (Some("rollback"), Some("refused")));
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_plan_is_executed() {
    for (backend, database) in all_databases().await {
        plan(backend, database).await;
    }
}
