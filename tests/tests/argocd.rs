//! The Argo CD connector against the emulator: two instances at once, the real velero
//! Application with its ten history entries, a live automated sync, and recovery after
//! the stream is cut while an application is deleted.

use std::time::Duration;

use landfall_emulators::argocd::{ArgoCd, Fault, Handle, Options};
use landfall_server::ledger::{ImageRef, Ledger};
use landfall_tests::{Server, TestDatabase, all_databases, eventually};
use serde_json::{Value, json};

const TOKEN: &str = "header.payload.signature";

fn velero() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/argocd/application-velero-test.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn shop(name: &str, env: &str, automated: bool) -> Value {
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

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON text message of the live websocket, within 30 s.
async fn next_message(socket: &mut Socket) -> Value {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a live message within 30 s")
            .expect("the socket is open")
            .expect("a websocket frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

fn cursor_number_of(cursor: &str) -> u64 {
    cursor.split_once(':').map_or(0, |(_, n)| n.parse().unwrap())
}

fn cursor_number(message: &Value) -> u64 {
    cursor_number_of(message["cursor"].as_str().expect("every event has a cursor"))
}

fn image(reference: &str) -> ImageRef {
    ImageRef::parse(reference).unwrap()
}

async fn watch(backend: &str, database: TestDatabase) {
    let main =
        ArgoCd::start(Options { tokens: vec![(TOKEN.into(), "admin".into())], ..Options::default() }).await.unwrap();
    main.insert_application(velero()).unwrap();
    main.insert_application(shop("shop-api-prod", "prod", true)).unwrap();
    let second = ArgoCd::start(Options::default()).await.unwrap();
    second.insert_application(shop("shop-api-staging", "staging", false)).unwrap();

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("landfall.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[argocd]]
name = "main"
url = "{}"
token_env = "ARGOCD_MAIN_TOKEN"
silence_seconds = 5

[[argocd]]
name = "second"
url = "{}"
username = "admin"
password_env = "ARGOCD_SECOND_PASSWORD"

[[environment]]
name = "staging"
rank = 30
match = {{ labels = {{ env = "staging" }} }}

[[environment]]
name = "production"
rank = 40
aliases = ["prod"]
match = {{ labels = {{ env = "prod" }} }}
"#,
            main.url(),
            second.url()
        ),
    )
    .unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap(), "--database-url", database.url.expose()],
        &[("ARGOCD_MAIN_TOKEN", TOKEN), ("ARGOCD_SECOND_PASSWORD", "password")],
    );
    let ledger = Ledger::open(&database.url).await.unwrap();

    // The real Application arrives with its ten history entries; the latest runs what
    // status.summary.images lists.
    let recorded = eventually("velero's history", || async {
        let recorded = ledger.recorded_deployments("main", "argo-cd", "velero-test").await.unwrap();
        (recorded.len() == 10).then_some(recorded)
    })
    .await;
    assert_eq!(recorded.keys().copied().collect::<Vec<_>>(), (14..=23).collect::<Vec<_>>(), "{backend}");
    assert_eq!(recorded[&23], [image("nginx:latest")], "{backend}");
    assert!(recorded[&22].is_empty(), "{backend}: older entries' images are not known");

    // Both instances, each application in its environment.
    let applications = eventually("both instances", || async {
        let apps = ledger.applications().await.unwrap();
        (apps.len() == 3).then_some(apps)
    })
    .await;
    let placed: Vec<(&str, &str, Option<&str>)> =
        applications.iter().map(|a| (a.instance.as_str(), a.name.as_str(), a.environment.as_deref())).collect();
    assert!(placed.contains(&("main", "shop-api-prod", Some("production"))), "{backend}: {placed:?}");
    assert!(placed.contains(&("second", "shop-api-staging", Some("staging"))), "{backend}: {placed:?}");
    assert!(placed.contains(&("main", "velero-test", None)), "{backend}: {placed:?}");
    // The status turns connected just after the list is recorded.
    let ready: Value = eventually("both instances connected", || async {
        let ready: Value = reqwest::get(server.url("/readyz")).await.unwrap().json().await.unwrap();
        let instances = ready["checks"]["argocd"].as_array().unwrap();
        (instances.len() == 2 && instances.iter().all(|i| i["connected"] == true && i["error"].is_null()))
            .then_some(ready.clone())
    })
    .await;
    assert_eq!(ready["checks"]["argocd"][0]["applications"], 2, "{backend}: {ready}");

    // The REST API lists and shows them.
    let get = |path: &str| {
        let url = server.url(path);
        async move {
            let response = reqwest::get(url).await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = get("/api/v1/applications?environment=Production").await;
    assert_eq!(status, 200, "{backend}: {page}");
    assert_eq!(page["total"], 1, "{backend}: {page}");
    assert_eq!(page["applications"][0]["name"], "shop-api-prod", "{backend}");
    assert_eq!(page["applications"][0]["automated_sync"], true, "{backend}");
    let (_, page) = get("/api/v1/applications?text=VELERO&limit=1").await;
    assert_eq!(
        (page["total"].as_i64(), page["applications"].as_array().map(Vec::len)),
        (Some(1), Some(1)),
        "{backend}"
    );
    let (_, page) = get("/api/v1/applications?instance=second&sync=unknown").await;
    assert_eq!(page["total"], 0, "{backend}: the emulated staging app has a sync status: {page}");
    for (query, field) in [("limit=ten", "limit"), ("limit=501", "limit"), ("deployments=0", "deployments")] {
        let path = if field == "limit" { "/api/v1/applications" } else { "/api/v1/applications/main/velero-test" };
        let (status, error) = get(&format!("{path}?{query}")).await;
        assert_eq!((status, error["field"].as_str()), (400, Some(field)), "{backend}: {query}: {error}");
    }
    let (status, error) = get("/api/v1/applications?health=fine").await;
    assert_eq!((status, error["field"].as_str()), (400, Some("health")), "{backend}: {error}");
    assert!(error["error"].as_str().unwrap().contains("Degraded"), "{backend}: lists what is accepted: {error}");
    let (status, velero) = get("/api/v1/applications/main/velero-test").await;
    assert_eq!(status, 200, "{backend}: {velero}");
    assert_eq!(velero["deployments_total"], 10, "{backend}");
    let ids: Vec<i64> =
        velero["deployments"].as_array().unwrap().iter().map(|d| d["history_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (14..=23).rev().collect::<Vec<_>>(), "{backend}: newest first");
    assert_eq!(velero["deployments"][0]["images"], json!(["nginx:latest"]), "{backend}");
    assert_eq!(velero["destination"]["name"], "gke-alpha-01-europe-west1", "{backend}");
    assert_eq!(velero["current"]["history_id"], 23, "{backend}");
    let (_, few) = get("/api/v1/applications/main/velero-test?namespace=argo-cd&deployments=3").await;
    assert_eq!(few["deployments"].as_array().unwrap().len(), 3, "{backend}");
    // The dashboard's page for it, rendered on the server, and its server function.
    let page = reqwest::get(server.url("/applications/main/velero-test")).await.unwrap().text().await.unwrap();
    assert!(page.contains("velero-test") && page.contains("nginx:latest"), "{backend}: the history is on the page");
    assert!(page.contains("aria-label=\"Deployments\""), "{backend}");
    let list = reqwest::get(server.url("/applications")).await.unwrap().text().await.unwrap();
    assert!(list.contains("href=\"/applications/main/velero-test\""), "{backend}: the list links to it");
    let missing_page = reqwest::get(server.url("/applications/main/nothing-here")).await.unwrap().text().await.unwrap();
    assert!(missing_page.contains("Application not found"), "{backend}");
    let history: Value = reqwest::Client::new()
        .post(server.url("/api/fn/application"))
        .form(&[("instance", "main"), ("name", "velero-test")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["deployments_total"], 10, "{backend}: {history}");
    assert_eq!(history["deployments"][0]["history_id"], 23, "{backend}");
    let (status, missing) = get("/api/v1/applications/main/nothing-here").await;
    assert_eq!(status, 404, "{backend}: {missing}");
    let (status, _) = get("/api/v1/applications/main/velero-test?namespace=elsewhere").await;
    assert_eq!(status, 404, "{backend}");

    // A browser follows the live updates from here.
    let live_url = server.url("/api/v1/live").replacen("http://", "ws://", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(live_url.as_str()).await.unwrap();
    let hello = next_message(&mut socket).await;
    assert_eq!(hello["type"], "hello", "{backend}: {hello}");

    // An automated sync in Argo CD becomes a deployment with the images it rolled out.
    main.set_images_for_revision("v2", ["ghcr.io/acme/shop:2"]);
    main.push_revision("shop-api-prod", "v2").unwrap();
    let deployed = |revision_images: Vec<ImageRef>| {
        let ledger = &ledger;
        async move {
            let recorded = ledger.recorded_deployments("main", "argocd", "shop-api-prod").await.unwrap();
            recorded.values().any(|images| *images == revision_images).then_some(recorded)
        }
    };
    eventually("the automated sync", || deployed(vec![image("ghcr.io/acme/shop:2")])).await;
    // The browser saw the operation run and the deployment land, in order.
    let mut seen = Vec::new();
    let mut last_cursor = String::new();
    while !seen.iter().any(|m: &Value| m["type"] == "deployment") {
        let message = next_message(&mut socket).await;
        assert!(cursor_number(&message) > cursor_number_of(&last_cursor), "{backend}: cursors increase");
        last_cursor = message["cursor"].as_str().unwrap().to_string();
        seen.push(message);
    }
    let deployment = seen.last().unwrap();
    assert_eq!((deployment["name"].as_str(), deployment["phase"].as_str()), (Some("shop-api-prod"), Some("Succeeded")));
    assert!(
        seen.iter().any(|m| m["type"] == "application" && m["operation_phase"] == "Running"),
        "{backend}: the running sync was pushed: {seen:?}"
    );
    drop(socket);

    // The stream is cut; meanwhile velero is deleted and another revision rolls out.
    // After the reconnect and relist, the ledger has both.
    main.set_fault(Fault::CutStreams);
    main.remove_application("velero-test").unwrap();
    main.set_images_for_revision("v3", ["ghcr.io/acme/shop:3"]);
    main.push_revision("shop-api-prod", "v3").unwrap();
    let recorded = eventually("the sync during the cut", || deployed(vec![image("ghcr.io/acme/shop:3")])).await;
    assert_eq!(recorded.len(), 2, "{backend}: no duplicate deployments: {recorded:?}");
    eventually("velero's deletion", || async {
        let live = ledger.live_applications("main").await.unwrap();
        (!live.iter().any(|(_, name)| name == "velero-test")).then_some(())
    })
    .await;
    // Reconnecting with the last cursor brings exactly what happened meanwhile: the rest
    // of the first sync, the cut, the deletion and the second sync, with no duplicate.
    let resume_url = format!("{live_url}?cursor={last_cursor}");
    let (mut socket, _) = tokio_tungstenite::connect_async(resume_url.as_str()).await.unwrap();
    assert_eq!(next_message(&mut socket).await["type"], "hello", "{backend}");
    let mut cursors = vec![cursor_number_of(&last_cursor)];
    let mut missed = Vec::new();
    let deleted = |m: &Value| m["type"] == "application" && m["name"] == "velero-test" && m["deleted"] == true;
    while !(missed.iter().any(|m: &Value| m["type"] == "deployment" && m["revision"] == "v3")
        && missed.iter().any(deleted))
    {
        let message = next_message(&mut socket).await;
        cursors.push(cursor_number(&message));
        missed.push(message);
    }
    assert!(cursors.windows(2).all(|w| w[1] == w[0] + 1), "{backend}: no gap, no duplicate: {cursors:?}");
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{live_url}?cursor=1:1").as_str()).await.unwrap();
    let reset = next_message(&mut socket).await;
    assert_eq!(reset["type"], "reset", "{backend}: a cursor from another server process: {reset}");
    drop(socket);

    let kept = ledger.recorded_deployments("main", "argo-cd", "velero-test").await.unwrap();
    assert_eq!(kept.len(), 10, "{backend}: a deleted application keeps its history");
    let (_, page) = get("/api/v1/applications?instance=main").await;
    assert_eq!(page["total"], 1, "{backend}: deleted applications are not listed by default");
    let (_, page) = get("/api/v1/applications?instance=main&include_deleted=true").await;
    assert_eq!(page["total"], 2, "{backend}");
    let (_, velero) = get("/api/v1/applications/main/velero-test").await;
    assert!(velero["deleted_at"].is_string(), "{backend}: {}", velero["deleted_at"]);
    let (_, shop) = get("/api/v1/applications/main/shop-api-prod").await;
    let latest = &shop["deployments"][0];
    assert_eq!(latest["images"], json!(["ghcr.io/acme/shop:3"]), "{backend}: {latest}");
    assert_eq!(latest["changes"]["images"][0]["previous_tag"], "2", "{backend}: {latest}");
    assert_eq!(latest["initiated_by"], "automated", "{backend}");

    // shop-api-prod is deleted and created again under its name through Argo CD's API: a
    // new uid, and history ids from 0 again. The first life's deployments stay.
    main.remove_application("shop-api-prod").unwrap();
    eventually("shop-api-prod's deletion", || async {
        let live = ledger.live_applications("main").await.unwrap();
        (!live.iter().any(|(_, name)| name == "shop-api-prod")).then_some(())
    })
    .await;
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/applications", main.url()))
        .bearer_auth(TOKEN)
        .json(&crate::shop("shop-api-prod", "prod", true))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200, "{backend}: {}", created.text().await.unwrap());
    main.set_images_for_revision("v4", ["ghcr.io/acme/shop:4"]);
    main.push_revision("shop-api-prod", "v4").unwrap();
    let again = eventually("the second life's deployment", || async {
        let (_, again) = get("/api/v1/applications/main/shop-api-prod").await;
        (again["deployments"][0]["revision"] == "v4").then_some(again)
    })
    .await;
    let lives: Vec<(i64, i64, &str)> = again["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (d["incarnation"].as_i64().unwrap(), d["history_id"].as_i64().unwrap(), d["revision"].as_str().unwrap())
        })
        .collect();
    let (second, first) = lives.split_at(lives.len() - 2);
    assert_eq!(first, [(0, 1, "v3"), (0, 0, "v2")], "{backend}: the first life is kept: {lives:?}");
    assert!(second.iter().all(|(life, ..)| *life == 1), "{backend}: {lives:?}");
    assert_eq!(second.last().map(|(_, id, _)| *id), Some(0), "{backend}: counted from 0 again: {lives:?}");
    assert!(again["deleted_at"].is_null(), "{backend}");
    assert_eq!(again["incarnation"], 1, "{backend}: its second life");
    let current = ledger.recorded_deployments("main", "argocd", "shop-api-prod").await.unwrap();
    assert_eq!(current.len(), second.len(), "{backend}: the watch compares with the second life only");
    ledger.close().await;
    drop(server);
    drop::<Handle>(main);
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_watch_keeps_the_ledger_current() {
    for (backend, database) in all_databases().await {
        watch(backend, database).await;
    }
}

/// A refused token is not only in the log: `/readyz` and the overview page say which
/// instance fails and why, while the healthy one shows connected.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_is_shown_on_the_overview() {
    let good =
        ArgoCd::start(Options { tokens: vec![(TOKEN.into(), "admin".into())], ..Options::default() }).await.unwrap();
    let refusing =
        ArgoCd::start(Options { tokens: vec![(TOKEN.into(), "admin".into())], ..Options::default() }).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("landfall.toml");
    std::fs::write(
        &config,
        format!(
            "[[argocd]]\nname = \"main\"\nurl = \"{}\"\ntoken_env = \"ARGOCD_GOOD\"\n\n\
             [[argocd]]\nname = \"backup\"\nurl = \"{}\"\ntoken_env = \"ARGOCD_EXPIRED\"\n",
            good.url(),
            refusing.url()
        ),
    )
    .unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[("ARGOCD_GOOD", TOKEN), ("ARGOCD_EXPIRED", "expired.token.value")],
    );
    let failing = eventually("the refused instance's error", || async {
        let ready: Value = reqwest::get(server.url("/readyz")).await.unwrap().json().await.unwrap();
        let instances = ready["checks"]["argocd"].as_array().cloned().unwrap_or_default();
        let main_up = instances.iter().any(|i| i["name"] == "main" && i["connected"] == true);
        let backup = instances.iter().find(|i| i["name"] == "backup" && i["error"].is_string()).cloned();
        backup.filter(|_| main_up)
    })
    .await;
    let error = failing["error"].as_str().unwrap().to_string();
    assert!(!error.contains("expired.token.value"), "the token never shows: {error}");

    let page = reqwest::get(server.url("/")).await.unwrap().text().await.unwrap();
    assert!(page.contains("1 of 2 connections is not working"), "{page}");
    assert!(page.contains("Argo CD backup") && page.contains("Failing"), "{page}");
    assert!(page.contains("Argo CD main") && page.contains("Connected"), "{page}");
    let escaped = error.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    assert!(page.contains(&error) || page.contains(&escaped), "the reason is shown: {error}");
}
