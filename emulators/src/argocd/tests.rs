//! End-to-end tests of the emulator over HTTP with reqwest, plus the swagger checks.

use std::time::Duration;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

use super::swagger::Swagger;
use super::{ArgoCd, Fault, Handle, Options};

const JSON: &str = "application/json";

/// An edit applied to a valid create body to make it invalid.
type Change = Box<dyn Fn(&mut Value)>;

struct Emu {
    handle: Handle,
    client: Client,
    token: String,
}

impl Emu {
    async fn start() -> Self {
        Self::with(Options { sync_duration: Duration::from_millis(300), ..Options::default() }).await
    }

    async fn with(options: Options) -> Self {
        let handle = ArgoCd::start(options).await.unwrap();
        let token = handle.issue_token("admin");
        Self { handle, client: Client::new(), token }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.handle.url())).bearer_auth(&self.token)
    }

    async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.unwrap()
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.req(method, path).json(&body).send().await.unwrap()
    }

    async fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path).header("Content-Type", JSON).send().await.unwrap()
    }

    async fn app(&self, name: &str) -> Value {
        let r = self.get(&format!("/api/v1/applications/{name}")).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Polls until the app's operation phase is `phase`.
    async fn wait_phase(&self, name: &str, phase: &str) -> Value {
        for _ in 0..1000 {
            let app = self.app(name).await;
            if app.pointer("/status/operationState/phase").and_then(Value::as_str) == Some(phase) {
                return app;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} never reached phase {phase}");
    }
}

fn app_json(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "argocd", "labels": {"team": "sre"}},
        "spec": {
            "project": "default",
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"},
            "source": {"repoURL": "https://github.com/example/demo.git", "path": "deploy", "targetRevision": "main"},
        },
        "status": {
            "sync": {"status": "Synced", "revision": "aaa"},
            "health": {"status": "Healthy"},
            "summary": {},
            "resources": [{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "demo",
                           "name": "web", "status": "Synced", "health": {"status": "Healthy"}}],
        },
    })
}

async fn error_of(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap())
}

fn assert_error(body: &Value, code: i64, message: &str) {
    assert_eq!(body, &json!({"error": message, "code": code, "message": message}));
}

#[tokio::test]
async fn login_tokens_and_version() {
    let emu = Emu::start().await;
    let url = emu.handle.url();
    let anon = Client::new();
    let login = |body: Value| anon.post(format!("{url}/api/v1/session")).json(&body).send();

    let (status, body) = error_of(login(json!({"username": "admin", "password": "nope"})).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_error(&body, 16, "Invalid username or password");
    let (status, body) = error_of(login(json!({"username": "admin"})).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_error(&body, 16, "no credentials supplied");
    let (status, _) = error_of(login(json!({"username": "a".repeat(33), "password": "x"})).await.unwrap()).await;
    assert_eq!(status, 400);

    let r = login(json!({"username": "admin", "password": "password"})).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3);
    assert!(cookie.starts_with(&format!("argocd.token={token}; path=/")));

    let list = format!("{url}/api/v1/applications");
    assert_eq!(anon.get(&list).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(anon.get(&list).header("Cookie", format!("argocd.token={token}")).send().await.unwrap().status(), 200);
    let (status, body) = error_of(anon.get(&list).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_error(&body, 16, "no session information");
    let (_, body) = error_of(anon.get(&list).bearer_auth("not-a-jwt").send().await.unwrap()).await;
    assert_error(&body, 16, "no session information");
    let (status, body) = error_of(anon.get(&list).bearer_auth("a.b.c").send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(body["message"].as_str().unwrap().starts_with("invalid session: "));

    let v: Value = anon.get(format!("{url}/api/version")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({"Version": "v3.6.0+37ee009"}));
    let v: Value = emu.get("/api/version").await.json().await.unwrap();
    assert!(v["BuildDate"].is_string() && v["KubectlVersion"].is_string());

    let info: Value = emu.get("/api/v1/session/userinfo").await.json().await.unwrap();
    assert_eq!(info, json!({"loggedIn": true, "username": "admin", "iss": "argocd"}));
    let info: Value = anon.get(format!("{url}/api/v1/session/userinfo")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info, json!({}));

    let r = anon
        .delete(format!("{url}/api/v1/session"))
        .bearer_auth(&token)
        .header("Content-Type", JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"token": ""}));
    assert_eq!(anon.get(&list).bearer_auth(&token).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn transport_rules_415_404_405() {
    let emu = Emu::start().await;
    emu.handle.insert_application(app_json("web")).unwrap();

    let r = emu.req(Method::DELETE, "/api/v1/applications/web").send().await.unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.text().await.unwrap().trim_end(), "Invalid content type");
    let r = emu
        .req(Method::POST, "/api/v1/applications/web/sync")
        .header("Content-Type", "application/json; charset=utf-8")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = emu
        .req(Method::POST, "/api/v1/applications/web/sync")
        .header("Content-Type", "Application/JSON")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the content type is compared case-insensitively");
    assert!(emu.handle.application("web").unwrap().get("operation").is_some());

    let r = emu.get("/api/v1/nothing-here").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap().trim_end(), "Not Found");
    let r = emu.send(Method::POST, "/api/v1/applications/web", json!({})).await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.text().await.unwrap().trim_end(), "Method Not Allowed");
    // Still present, and still untouched by the refused calls.
    assert_eq!(emu.app("web").await["metadata"]["name"], "web");
}

#[tokio::test]
async fn missing_apps_are_403_without_project_and_404_with_it() {
    let emu = Emu::start().await;
    emu.handle.insert_application(app_json("web")).unwrap();
    let (status, body) = error_of(emu.get("/api/v1/applications/ghost").await).await;
    assert_eq!(status, 403);
    assert_error(&body, 7, "permission denied");
    let (status, body) = error_of(emu.get("/api/v1/applications/ghost?project=default").await).await;
    assert_eq!(status, 404);
    assert_error(&body, 5, "applications.argoproj.io \"ghost\" not found");
    let (status, _) = error_of(emu.get("/api/v1/applications/web?project=other").await).await;
    assert_eq!(status, 404);
    let (status, _) = error_of(emu.get("/api/v1/applications/web?projects=a&projects=b").await).await;
    assert_eq!(status, 400);
    for path in ["/api/v1/applications/ghost/resource-tree", "/api/v1/applications/ghost/managed-resources"] {
        assert_eq!(emu.get(path).await.status(), 403);
    }
    assert_eq!(emu.delete("/api/v1/applications/ghost").await.status(), 403);
    assert_eq!(emu.send(Method::POST, "/api/v1/applications/ghost/sync", json!({})).await.status(), 403);
    let r = emu.send(Method::POST, "/api/v1/applications/ghost/sync", json!({"project": "default"})).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn list_filters_sorting_and_fields() {
    let emu = Emu::start().await;
    for (name, project, env) in [("zeta", "default", "prod"), ("alpha", "default", "dev"), ("mid", "team", "prod")] {
        let mut app = app_json(name);
        app["spec"]["project"] = json!(project);
        app["metadata"]["labels"]["env"] = json!(env);
        emu.handle.insert_application(app).unwrap();
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|a| a["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    let all: Value = emu.get("/api/v1/applications").await.json().await.unwrap();
    assert_eq!(names(&all), ["alpha", "mid", "zeta"]);
    assert_eq!(all["metadata"]["resourceVersion"], emu.handle.resource_version().to_string());
    let emu = &emu;
    let q = |query: &'static str| async move {
        emu.get(&format!("/api/v1/applications?{query}")).await.json::<Value>().await.unwrap()
    };
    assert_eq!(names(&q("projects=team").await), ["mid"]);
    assert_eq!(names(&q("projects=team&project=default").await), ["alpha", "zeta"]);
    assert_eq!(names(&q("selector=env%3Dprod").await), ["mid", "zeta"]);
    assert_eq!(names(&q("selector=env%20notin%20(prod)").await), ["alpha"]);
    assert_eq!(names(&q("name=zeta").await), ["zeta"]);
    assert_eq!(names(&q("repo=https://github.com/example/demo.git").await).len(), 3);
    assert_eq!(names(&q("repo=https://elsewhere").await).len(), 0);
    assert_eq!(q("appNamespace=other").await["items"], json!([]));
    let slim = q("fields=metadata.resourceVersion,items.metadata.name,items.status.sync.status").await;
    assert_eq!(slim["items"][0], json!({"metadata": {"name": "alpha"}, "status": {"sync": {"status": "Synced"}}}));
    assert!(slim["metadata"]["resourceVersion"].is_string());
    let (status, body) = error_of(emu.get("/api/v1/applications?selector=env%20in%20prod").await).await;
    assert_eq!((status, body["code"].as_i64()), (StatusCode::INTERNAL_SERVER_ERROR, Some(2)));
}

#[tokio::test]
async fn create_validates_and_upserts() {
    let emu = Emu::start().await;
    let mut body = app_json("new-app");
    body["spec"]["project"] = json!("");
    body["operation"] = json!({"sync": {"revision": "x"}});
    body.as_object_mut().unwrap().remove("status");
    let r = emu.send(Method::POST, "/api/v1/applications", body.clone()).await;
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["spec"]["project"], "default");
    assert!(created.get("operation").is_none(), "operation in a create body is dropped");
    assert!(created["metadata"]["uid"].is_string() && created["metadata"]["resourceVersion"].is_string());

    let r = emu.send(Method::POST, "/api/v1/applications", body.clone()).await;
    assert_eq!(r.status(), 200, "an identical create returns the existing app");
    let mut changed = body.clone();
    changed["spec"]["source"]["path"] = json!("other");
    let (status, err) = error_of(emu.send(Method::POST, "/api/v1/applications", changed.clone()).await).await;
    assert_eq!(status, 400);
    assert_error(&err, 3, "existing application spec is different, use upsert flag to force update");
    let r = emu.send(Method::POST, "/api/v1/applications?upsert=true", changed).await;
    assert_eq!(r.json::<Value>().await.unwrap()["spec"]["source"]["path"], "other");

    let cases: Vec<(Change, u16, &str)> = vec![
        (Box::new(|a| a["metadata"]["name"] = json!("")), 500, "resource name may not be empty"),
        (
            Box::new(|a| a["metadata"]["name"] = json!("Bad_Name")),
            400,
            "Application.argoproj.io \"Bad_Name\" is invalid",
        ),
        (
            Box::new(|a| a["spec"]["project"] = json!("nope")),
            400,
            "app is not allowed in project \"nope\", or the project does not exist",
        ),
        (
            Box::new(|a| a["spec"]["destination"]["name"] = json!("in-cluster")),
            400,
            "application destination spec for new-app is invalid: application destination can't have both name and server defined",
        ),
        (
            Box::new(|a| a["spec"]["destination"] = json!({"name": "nowhere"})),
            400,
            "application destination spec for new-app is invalid: there are no clusters with this name: nowhere",
        ),
        (
            Box::new(|a| a["spec"]["source"] = json!({"repoURL": "https://x"})),
            400,
            "application spec for new-app is invalid: InvalidSpecError: spec.source.repoURL and either spec.source.path or spec.source.chart are required",
        ),
        (
            Box::new(|a| a["spec"]["source"] = json!({"repoURL": "https://x", "chart": "c"})),
            400,
            "application spec for new-app is invalid: InvalidSpecError: spec.source.targetRevision is required if the manifest source is a helm chart",
        ),
        (
            Box::new(|a| {
                a["spec"]["source"]["helm"] = json!({});
                a["spec"]["source"]["kustomize"] = json!({});
            }),
            500,
            "multiple application sources defined: Helm,Kustomize",
        ),
    ];
    for (change, status, message) in cases {
        let mut b = body.clone();
        change(&mut b);
        let (got, err) = error_of(emu.send(Method::POST, "/api/v1/applications?upsert=true", b).await).await;
        assert_eq!(got.as_u16(), status, "{message}");
        assert!(err["message"].as_str().unwrap().starts_with(message), "{err} vs {message}");
    }
    let mut two_tools = body.clone();
    two_tools["metadata"]["name"] = json!("no-validate");
    two_tools["spec"]["source"]["helm"] = json!({});
    two_tools["spec"]["source"]["kustomize"] = json!({});
    assert_eq!(emu.send(Method::POST, "/api/v1/applications?validate=false", two_tools).await.status(), 200);

    // Restricted project: repo and destination must be permitted.
    emu.handle
        .insert_project(json!({"metadata": {"name": "locked"}, "spec": {
            "sourceRepos": ["https://github.com/allowed/*"],
            "destinations": [{"server": "https://kubernetes.default.svc", "namespace": "team-*"}]}}))
        .unwrap();
    let mut locked = body.clone();
    locked["spec"]["project"] = json!("locked");
    let (status, err) = error_of(emu.send(Method::POST, "/api/v1/applications?upsert=true", locked).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        err["message"],
        "application spec for new-app is invalid: InvalidSpecError: application repo https://github.com/example/demo.git is not permitted in project 'locked';InvalidSpecError: application destination server 'https://kubernetes.default.svc' and namespace 'demo' do not match any of the allowed destinations in project 'locked'"
    );
}

#[tokio::test]
async fn update_copies_only_user_fields() {
    let emu = Emu::start().await;
    let seeded = emu.handle.insert_application(app_json("web")).unwrap();
    let mut body = seeded.clone();
    body["spec"]["source"]["path"] = json!("v2");
    body["metadata"]["labels"] = json!({"new": "label"});
    body["status"] = json!({"health": {"status": "Degraded"}});
    body["metadata"]["resourceVersion"] = json!("1");
    let r = emu.send(Method::PUT, "/api/v1/applications/web", body).await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["spec"]["source"]["path"], "v2");
    assert_eq!(updated["metadata"]["labels"], json!({"new": "label"}));
    assert_eq!(updated["status"]["health"]["status"], "Healthy", "status in an update body is ignored");
    assert_eq!(updated["metadata"]["generation"], 1);

    let mut spec = updated["spec"].clone();
    spec["source"]["path"] = json!("v3");
    let r = emu.send(Method::PUT, "/api/v1/applications/web/spec", spec.clone()).await;
    assert_eq!(r.json::<Value>().await.unwrap(), spec);

    let patch = json!({"patch": "{\"spec\":{\"source\":{\"path\":\"v4\"}}}", "patchType": "merge"});
    let r = emu.send(Method::PATCH, "/api/v1/applications/web", patch).await;
    assert_eq!(r.json::<Value>().await.unwrap()["spec"]["source"]["path"], "v4");
    let patch =
        json!({"patch": "[{\"op\":\"replace\",\"path\":\"/spec/source/path\",\"value\":\"v5\"}]", "patchType": "json"});
    let r = emu.send(Method::PATCH, "/api/v1/applications/web", patch).await;
    assert_eq!(r.json::<Value>().await.unwrap()["spec"]["source"]["path"], "v5");
    let r = emu.send(Method::PATCH, "/api/v1/applications/web", json!({"patch": "{}", "patchType": "strategic"})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(emu.send(Method::PUT, "/api/v1/applications/ghost", app_json("ghost")).await.status(), 403);
}

#[tokio::test]
async fn delete_cascade_and_policies() {
    let emu = Emu::with(Options { delete_duration: Duration::from_millis(1000), ..Options::default() }).await;
    emu.handle.insert_application(app_json("a")).unwrap();
    emu.handle.insert_application(app_json("b")).unwrap();
    let (status, err) =
        error_of(emu.delete("/api/v1/applications/a?cascade=false&propagationPolicy=background").await).await;
    assert_eq!(status, 400);
    assert_error(&err, 3, "cannot set propagation policy when cascading is disabled");
    let (status, _) = error_of(emu.delete("/api/v1/applications/a?propagationPolicy=sideways").await).await;
    assert_eq!(status, 400);

    let r = emu.delete("/api/v1/applications/a?propagationPolicy=background").await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
    let app = emu.handle.application("a").expect("cascade keeps the app until the controller is done");
    assert!(app["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(app["metadata"]["finalizers"], json!(["resources-finalizer.argocd.argoproj.io/background"]));
    let r = emu.send(Method::POST, "/api/v1/applications/a/sync", json!({})).await;
    assert_eq!(error_of(r).await.1["message"], "application is deleting");
    for _ in 0..300 {
        if emu.handle.application("a").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(emu.handle.application("a").is_none(), "the controller removes the app after its resources");

    assert_eq!(emu.delete("/api/v1/applications/b?cascade=false").await.status(), 200);
    assert!(emu.handle.application("b").is_none(), "without cascade the app goes at once");
}

#[tokio::test]
async fn sync_runs_then_succeeds_and_records_history() {
    // Long enough that a loaded machine still sees the operation running.
    let emu = Emu::with(Options { sync_duration: Duration::from_millis(1000), ..Options::default() }).await;
    let mut app = app_json("web");
    app["spec"]["revisionHistoryLimit"] = json!(2);
    app["status"]["history"] = json!([
        {"id": 7, "revision": "r7", "deployedAt": "2024-03-04T22:00:06Z", "source": app["spec"]["source"]},
        {"id": 8, "revision": "r8", "deployedAt": "2024-03-04T23:00:06Z", "source": app["spec"]["source"]},
    ]);
    emu.handle.insert_application(app).unwrap();
    emu.handle.set_images_for_revision("abc123", ["registry/web:1.2.3"]);

    let body = json!({"revision": "abc123", "prune": true, "strategy": {"hook": {"force": true}},
                      "syncOptions": {"items": ["CreateNamespace=true"]}, "infos": [{"name": "why", "value": "test"}]});
    let r = emu.send(Method::POST, "/api/v1/applications/web/sync", body).await;
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["operation"]["sync"]["revision"], "abc123");
    assert_eq!(started["operation"]["sync"]["syncOptions"], json!(["CreateNamespace=true"]));
    assert_eq!(started["operation"]["sync"]["syncStrategy"], json!({"hook": {"force": true}}));
    assert_eq!(started["operation"]["initiatedBy"], json!({"username": "admin"}));
    assert!(started["status"].get("operationState").is_none());

    let running = emu.wait_phase("web", "Running").await;
    assert!(running["status"]["operationState"]["startedAt"].is_string());
    let (status, err) = error_of(emu.send(Method::POST, "/api/v1/applications/web/sync", json!({})).await).await;
    assert_eq!(status, 400);
    assert_error(&err, 9, "another operation is already in progress");

    let done = emu.wait_phase("web", "Succeeded").await;
    assert!(done.get("operation").is_none());
    let history = done["status"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "trimmed to revisionHistoryLimit");
    assert_eq!(history[0]["id"], 8);
    let last = &history[1];
    assert_eq!(last["id"], 9);
    assert_eq!(last["revision"], "abc123");
    assert_eq!(last["initiatedBy"], json!({"username": "admin"}));
    assert_eq!(last["source"]["path"], "deploy");
    assert!(last["deployedAt"].is_string() && last["deployStartedAt"].is_string());
    assert_eq!(done["status"]["sync"]["status"], "Synced");
    assert_eq!(done["status"]["sync"]["revision"], "abc123");
    assert_eq!(done["status"]["summary"]["images"], json!(["registry/web:1.2.3"]));
    assert_eq!(done["status"]["operationState"]["syncResult"]["revision"], "abc123");
    assert_eq!(done["status"]["operationState"]["message"], "successfully synced (all tasks run)");

    // A failing revision: Failed, and no history entry.
    emu.send(Method::POST, "/api/v1/applications/web/sync", json!({"revision": "fail-1"})).await;
    let failed = emu.wait_phase("web", "Failed").await;
    assert_eq!(failed["status"]["history"].as_array().unwrap().len(), 2);
    assert_eq!(failed["status"]["history"][1]["id"], 9);
    assert_eq!(failed["status"]["sync"]["revision"], "abc123");

    // Dry run: Succeeded without history.
    emu.send(Method::POST, "/api/v1/applications/web/sync", json!({"revision": "def", "dryRun": true})).await;
    let dry = emu.wait_phase("web", "Succeeded").await;
    assert_eq!(dry["status"]["history"][1]["id"], 9);
}

#[tokio::test]
async fn history_limit_zero_and_default_ten() {
    let emu = Emu::with(Options { sync_duration: Duration::from_millis(5), ..Options::default() }).await;
    let mut zero = app_json("zero");
    zero["spec"]["revisionHistoryLimit"] = json!(0);
    emu.handle.insert_application(zero).unwrap();
    emu.handle.insert_application(app_json("ten")).unwrap();
    emu.send(Method::POST, "/api/v1/applications/zero/sync", json!({})).await;
    assert_eq!(emu.wait_phase("zero", "Succeeded").await["status"]["history"], json!([]));
    for i in 0..12 {
        let r = emu.send(Method::POST, "/api/v1/applications/ten/sync", json!({"revision": format!("r{i}")})).await;
        assert_eq!(r.status(), 200);
        emu.wait_phase("ten", "Succeeded").await;
    }
    let history = emu.app("ten").await["status"]["history"].as_array().unwrap().clone();
    assert_eq!(history.len(), 10);
    assert_eq!((history[0]["id"].as_i64(), history[9]["id"].as_i64()), (Some(2), Some(11)));
    assert_eq!(history[9]["revision"], "r11");
}

#[tokio::test]
async fn rollback_refused_with_auto_sync_and_otherwise_redeploys() {
    let emu = Emu::with(Options { sync_duration: Duration::from_millis(50), ..Options::default() }).await;
    let mut app = app_json("web");
    app["status"]["history"] = json!([{"id": 3, "revision": "old", "deployedAt": "2024-03-04T22:00:06Z",
                                       "source": app["spec"]["source"]}]);
    app["spec"]["syncPolicy"] = json!({"automated": {"prune": true}});
    emu.handle.insert_application(app).unwrap();

    let (status, err) =
        error_of(emu.send(Method::POST, "/api/v1/applications/web/rollback", json!({"id": 3})).await).await;
    assert_eq!(status, 400);
    assert_error(&err, 9, "rollback cannot be initiated when auto-sync is enabled");
    let (status, err) =
        error_of(emu.send(Method::POST, "/api/v1/applications/web/sync", json!({"revision": "other"})).await).await;
    assert_eq!(status, 400);
    assert_error(&err, 9, "Cannot sync to other: auto-sync currently set to main");

    emu.handle.update_application("web", |a| a["spec"]["syncPolicy"]["automated"]["enabled"] = json!(false)).unwrap();
    let (status, err) =
        error_of(emu.send(Method::POST, "/api/v1/applications/web/rollback", json!({"id": 99})).await).await;
    assert_eq!(status, 400);
    assert_error(&err, 3, "application argocd/web does not have deployment with id 99");
    let (status, _) = error_of(emu.send(Method::POST, "/api/v1/applications/web/rollback", json!({})).await).await;
    assert_eq!(status, 500, "a missing required id fails in the gateway");

    let r = emu.send(Method::POST, "/api/v1/applications/web/rollback", json!({"id": 3, "prune": true})).await;
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["operation"]["sync"]["revision"], "old");
    assert_eq!(started["operation"]["sync"]["syncStrategy"], json!({"apply": {}}));
    assert_eq!(started["operation"]["sync"]["prune"], true);
    let done = emu.wait_phase("web", "Succeeded").await;
    assert_eq!(done["status"]["history"][1]["revision"], "old");
    assert_eq!(done["status"]["history"][1]["id"], 4);
}

#[tokio::test]
async fn terminate_operation() {
    let emu = Emu::with(Options { sync_duration: Duration::from_millis(1500), ..Options::default() }).await;
    emu.handle.insert_application(app_json("web")).unwrap();
    let (status, err) = error_of(emu.delete("/api/v1/applications/web/operation").await).await;
    assert_eq!(status, 400);
    assert_error(&err, 9, "Unable to terminate operation. No operation is in progress");
    emu.send(Method::POST, "/api/v1/applications/web/sync", json!({})).await;
    emu.wait_phase("web", "Running").await;
    let r = emu.delete("/api/v1/applications/web/operation").await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
    assert_eq!(emu.app("web").await["status"]["operationState"]["phase"], "Terminating");
    let done = emu.wait_phase("web", "Failed").await;
    assert_eq!(done["status"]["operationState"]["message"], "Operation terminated");
}

#[tokio::test]
async fn automated_sync_follows_pushed_revisions() {
    let emu = Emu::with(Options { sync_duration: Duration::from_millis(50), ..Options::default() }).await;
    let mut app = app_json("auto");
    app["spec"]["syncPolicy"] =
        json!({"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["ServerSideApply=true"]});
    emu.handle.insert_application(app).unwrap();
    emu.handle.insert_application(app_json("manual")).unwrap();
    emu.handle.set_images_for_revision("c0ffee", ["registry/web:2.0.0"]);

    emu.handle.push_revision("manual", "c0ffee").unwrap();
    let manual = emu.app("manual").await;
    assert_eq!(manual["status"]["sync"], json!({"status": "OutOfSync", "revision": "c0ffee"}));
    assert!(manual.get("operation").is_none());

    emu.handle.push_revision("auto", "c0ffee").unwrap();
    let done = emu.wait_phase("auto", "Succeeded").await;
    let entry = &done["status"]["history"][0];
    assert_eq!(entry["revision"], "c0ffee");
    assert_eq!(entry["initiatedBy"], json!({"automated": true}));
    assert_eq!(done["status"]["operationState"]["operation"]["sync"]["syncOptions"], json!(["ServerSideApply=true"]));
    assert_eq!(done["status"]["summary"]["images"], json!(["registry/web:2.0.0"]));

    // A sync without a revision goes to the pushed head of the tracked branch.
    emu.handle.push_revision("manual", "beef").unwrap();
    emu.send(Method::POST, "/api/v1/applications/manual/sync", json!({})).await;
    assert_eq!(emu.wait_phase("manual", "Succeeded").await["status"]["sync"]["revision"], "beef");
}

#[tokio::test]
async fn refresh_reconciles_before_answering() {
    let emu = Emu::start().await;
    emu.handle.insert_application(app_json("web")).unwrap();
    let before = emu.handle.resource_version();
    let app = emu.app("web?refresh=hard").await;
    let rv: u64 = app["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert_eq!(rv, before + 2);
    assert!(app["metadata"]["annotations"].get("argocd.argoproj.io/refresh").is_none());
    assert!(app["status"]["reconciledAt"].is_string());
}

#[tokio::test]
async fn resource_tree_managed_resources_and_catalogues() {
    let emu = Emu::start().await;
    emu.handle.insert_application(app_json("web")).unwrap();
    let tree: Value = emu.get("/api/v1/applications/web/resource-tree").await.json().await.unwrap();
    let node = &tree["nodes"][0];
    assert_eq!(
        (node["group"].as_str(), node["kind"].as_str(), node["name"].as_str()),
        (Some("apps"), Some("Deployment"), Some("web"))
    );
    assert_eq!(node["health"]["status"], "Healthy");
    emu.handle
        .set_resource_tree("web", json!({"nodes": [{"kind": "Pod", "name": "p", "uid": "u", "images": ["i:1"]}]}));
    let tree: Value = emu.get("/api/v1/applications/web/resource-tree").await.json().await.unwrap();
    assert_eq!(tree["nodes"][0]["images"], json!(["i:1"]));

    let managed: Value = emu.get("/api/v1/applications/web/managed-resources").await.json().await.unwrap();
    let live: Value = serde_json::from_str(managed["items"][0]["liveState"].as_str().unwrap()).unwrap();
    assert_eq!(live["apiVersion"], "apps/v1");
    let none: Value = emu.get("/api/v1/applications/web/managed-resources?kind=Service").await.json().await.unwrap();
    assert_eq!(none, json!({}), "items is omitted when empty");
    let some: Value =
        emu.get("/api/v1/applications/web/managed-resources?kind=Deployment&name=web").await.json().await.unwrap();
    assert_eq!(some["items"].as_array().unwrap().len(), 1);

    let projects: Value = emu.get("/api/v1/projects").await.json().await.unwrap();
    assert_eq!(projects["items"][0]["metadata"]["name"], "default");
    assert_eq!(emu.get("/api/v1/projects/default").await.status(), 200);
    assert_eq!(emu.get("/api/v1/projects/nope").await.status(), 404);
    let clusters: Value = emu.get("/api/v1/clusters").await.json().await.unwrap();
    assert_eq!(clusters["items"][0]["server"], "https://kubernetes.default.svc");
    let clusters: Value = emu.get("/api/v1/clusters?id.type=name&id.value=missing").await.json().await.unwrap();
    assert_eq!(clusters["items"], json!([]));
    emu.handle.insert_repository(
        json!({"repo": "https://github.com/b/b.git", "type": "git", "connectionState": {"status": "Successful"}}),
    );
    emu.handle.insert_repository(
        json!({"repo": "https://github.com/a/a.git", "type": "git", "connectionState": {"status": "Successful"}}),
    );
    let repos: Value = emu.get("/api/v1/repositories").await.json().await.unwrap();
    assert_eq!(repos["items"][0]["repo"], "https://github.com/a/a.git");
    let can: Value = emu.get("/api/v1/account/can-i/applications/sync/default%2Fweb").await.json().await.unwrap();
    assert_eq!(can, json!({"value": "yes"}));
    let (status, err) = error_of(emu.get("/api/v1/applications/web/revisions/main/metadata").await).await;
    assert_eq!(status, 500);
    assert_error(&err, 2, "revision main must be resolved");
    emu.handle.set_revision_metadata(
        "abc1234",
        json!({"author": "A <a@b.c>", "date": "2024-03-04T22:00:06Z", "message": "fix"}),
    );
    let meta: Value = emu.get("/api/v1/applications/web/revisions/abc1234/metadata").await.json().await.unwrap();
    assert_eq!(meta["message"], "fix");
    let windows: Value = emu.get("/api/v1/applications/web/syncwindows").await.json().await.unwrap();
    assert_eq!(windows["canSync"], true);
    emu.handle.set_events("web", vec![
        json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Application", "name": "web"}, "reason": "OperationStarted"}),
        json!({"metadata": {"name": "e2"}, "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "demo"}, "reason": "ScalingReplicaSet"}),
    ]);
    let own: Value = emu.get("/api/v1/applications/web/events").await.json().await.unwrap();
    assert_eq!(own["items"].as_array().unwrap().len(), 1);
    let of_node: Value = emu
        .get("/api/v1/applications/web/events?resourceName=p&resourceNamespace=&resourceUID=u")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(of_node["items"], json!([]));
    let (status, err) = error_of(emu.get("/api/v1/applications/web/events?resourceName=nope").await).await;
    assert_eq!(status, 400);
    assert_error(&err, 3, "nope not found as part of application web");
    let settings: Value = emu.get("/api/v1/settings").await.json().await.unwrap();
    assert_eq!(settings["syncWithReplaceAllowed"], true);
}

#[tokio::test]
async fn velero_fixture_round_trips() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/argocd/application-velero-test.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let emu = Emu::start().await;
    emu.handle.insert_application(fixture.clone()).unwrap();
    assert_eq!(emu.get("/api/v1/applications/velero-test").await.status(), 403, "it lives in argo-cd, not argocd");
    let served = emu.app("velero-test?appNamespace=argo-cd").await;
    assert_eq!(served, fixture);
    let list: Value = emu.get("/api/v1/applications").await.json().await.unwrap();
    assert_eq!(list["items"][0], fixture);
    assert_eq!(list["metadata"]["resourceVersion"], "722811357");
    assert_eq!(emu.handle.applications(), vec![fixture.clone()]);
    let history = served["status"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 10);

    // A rollback to its oldest entry: refused while in project "sre" (no such project) is not
    // checked by rollback, so it runs and appends id 24.
    let first_id = history[0]["id"].as_i64().unwrap();
    let r = emu
        .send(
            Method::POST,
            "/api/v1/applications/velero-test/rollback",
            json!({"id": first_id, "appNamespace": "argo-cd"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let done = loop {
        let app = emu.app("velero-test?appNamespace=argo-cd").await;
        if app["status"]["operationState"]["phase"] == "Succeeded" && app.get("operation").is_none() {
            break app;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let history = done["status"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 10);
    assert_eq!(history[9]["id"], 24);
    assert_eq!(history[9]["revision"], fixture["status"]["history"][0]["revision"]);
}

#[tokio::test]
async fn responses_match_the_swagger() {
    let swagger = Swagger::load();
    let emu = Emu::with(Options { sync_duration: Duration::from_millis(20), ..Options::default() }).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/argocd/application-velero-test.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    emu.handle.insert_application(fixture).unwrap();
    emu.handle.insert_application(app_json("web")).unwrap();
    emu.handle.insert_repository(json!({"repo": "https://github.com/a/a.git", "type": "git", "connectionState": {"status": "Successful", "message": "", "attemptedAt": "2024-03-04T22:00:06Z"}}));
    emu.send(
        Method::POST,
        "/api/v1/applications/web/sync",
        json!({"strategy": {"hook": {"force": true}}, "revision": "abc"}),
    )
    .await;
    emu.wait_phase("web", "Succeeded").await;

    let check = |def: &str, value: &Value| {
        let errors = swagger.check_definition(def, value);
        assert!(errors.is_empty(), "{def}: {errors:#?}");
    };
    let check_schema = |what: &str, schema: &Value, value: &Value| {
        let errors = swagger.check(schema, value);
        assert!(errors.is_empty(), "{what}: {errors:#?}");
    };
    let list: Value = emu.get("/api/v1/applications").await.json().await.unwrap();
    check_schema("list", &swagger.response("/api/v1/applications", "get", "200"), &list);
    check("v1alpha1ApplicationList", &list);
    let app = emu.app("web").await;
    check_schema("get", &swagger.response("/api/v1/applications/{name}", "get", "200"), &app);
    for entry in app["status"]["history"].as_array().unwrap() {
        check("v1alpha1RevisionHistory", entry);
    }
    let tree: Value = emu.get("/api/v1/applications/web/resource-tree").await.json().await.unwrap();
    check_schema(
        "tree",
        &swagger.response("/api/v1/applications/{applicationName}/resource-tree", "get", "200"),
        &tree,
    );
    let managed: Value = emu.get("/api/v1/applications/web/managed-resources").await.json().await.unwrap();
    check_schema(
        "managed",
        &swagger.response("/api/v1/applications/{applicationName}/managed-resources", "get", "200"),
        &managed,
    );
    for (path, def) in [
        ("/api/v1/projects", "v1alpha1AppProjectList"),
        ("/api/v1/clusters", "v1alpha1ClusterList"),
        ("/api/v1/repositories", "v1alpha1RepositoryList"),
        ("/api/version", "versionVersionMessage"),
        ("/api/v1/session/userinfo", "sessionGetUserInfoResponse"),
    ] {
        let body: Value = emu.get(path).await.json().await.unwrap();
        check(def, &body);
    }
    let meta: Value = emu.get("/api/v1/applications/web/revisions/abcdef0/metadata").await.json().await.unwrap();
    check("v1alpha1RevisionMetadata", &meta);
    let windows: Value = emu.get("/api/v1/applications/web/syncwindows").await.json().await.unwrap();
    check("applicationApplicationSyncWindowsResponse", &windows);
    let events: Value = emu.get("/api/v1/applications/web/events").await.json().await.unwrap();
    check_schema("events", &swagger.response("/api/v1/applications/{name}/events", "get", "200"), &events);
    let login: Value = emu
        .send(Method::POST, "/api/v1/session", json!({"username": "admin", "password": "password"}))
        .await
        .json()
        .await
        .unwrap();
    check("sessionSessionResponse", &login);
    let r = emu.send(Method::POST, "/api/v1/applications/web/rollback", json!({"id": 0})).await;
    check("v1alpha1Application", &r.json::<Value>().await.unwrap());
    let err: Value = emu.get("/api/v1/applications/ghost").await.json().await.unwrap();
    check("runtimeError", &err);
    let err: Value = emu.delete("/api/v1/applications/web/operation?project=x").await.json().await.unwrap();
    check("runtimeError", &err);

    // One stream chunk and one stream error.
    let stream_schema = swagger.response("/api/v1/stream/applications", "get", "200");
    let mut r = emu.get("/api/v1/stream/applications?name=web").await;
    let chunk = r.chunk().await.unwrap().unwrap();
    let event: Value = serde_json::from_slice(&chunk).unwrap();
    check_schema("stream event", &stream_schema, &event);
    let anon = Client::new().get(format!("{}/api/v1/stream/applications", emu.handle.url())).send().await.unwrap();
    let error: Value = anon.json().await.unwrap();
    check_schema("stream error", &stream_schema, &error);
}

/// Reads SSE frames, skipping keepalives; `None` when the stream ends or breaks.
struct Sse {
    response: Response,
    buffer: String,
}

impl Sse {
    async fn open(emu: &Emu, query: &str) -> Self {
        let response = emu
            .req(Method::GET, &format!("/api/v1/stream/applications{query}"))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        Self { response, buffer: String::new() }
    }

    async fn next(&mut self) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            while let Some(rest) = self.buffer.strip_prefix(":\n") {
                self.buffer = rest.to_string();
            }
            if let Some(end) = self.buffer.find(" \n\n\n") {
                let frame = self.buffer[..end].to_string();
                self.buffer = self.buffer[end + 4..].to_string();
                let json = frame.strip_prefix("data: ").expect("SSE data frame");
                return Some(serde_json::from_str(json).unwrap());
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await.expect("no frame within 5 s") {
                Ok(Some(bytes)) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

#[tokio::test]
async fn sse_stream_lists_then_watches() {
    let emu = Emu::start().await;
    emu.handle.insert_application(app_json("b")).unwrap();
    emu.handle.insert_application(app_json("a")).unwrap();
    let mut sse = Sse::open(&emu, "").await;
    assert_eq!(sse.response.status(), 200);
    assert_eq!(sse.response.headers()["content-type"], "text/event-stream");
    let first = sse.next().await.unwrap();
    assert_eq!(first["result"]["type"], "ADDED");
    assert_eq!(first["result"]["application"]["metadata"]["name"], "a");
    assert_eq!(sse.next().await.unwrap()["result"]["application"]["metadata"]["name"], "b");

    emu.handle.update_application("a", |a| a["status"]["health"]["status"] = json!("Degraded")).unwrap();
    let modified = sse.next().await.unwrap();
    assert_eq!(modified["result"]["type"], "MODIFIED");
    assert_eq!(modified["result"]["application"]["status"]["health"]["status"], "Degraded");

    // Byte-identical payloads are dropped: a commit only bumps the resourceVersion, so filter
    // it out with `fields` to see the de-duplication.
    let mut slim =
        Sse::open(&emu, "?fields=result.type,result.application.metadata.name,result.application.status.health").await;
    assert_eq!(
        slim.next().await.unwrap(),
        json!({"result": {"type": "ADDED", "application": {"metadata": {"name": "a"}, "status": {"health": {"status": "Degraded"}}}}})
    );
    slim.next().await.unwrap();
    // The first no-op differs from the ADDED chunk by its type; the second is a duplicate.
    emu.handle.update_application("a", |_| {}).unwrap();
    emu.handle.update_application("a", |_| {}).unwrap();
    emu.handle.update_application("a", |a| a["status"]["health"]["status"] = json!("Healthy")).unwrap();
    let next = slim.next().await.unwrap();
    assert_eq!(next["result"]["type"], "MODIFIED");
    assert_eq!(next["result"]["application"]["status"]["health"]["status"], "Degraded");
    let next = slim.next().await.unwrap();
    assert_eq!(next["result"]["application"]["status"]["health"]["status"], "Healthy");
    assert_eq!(next["result"]["type"], "MODIFIED");

    emu.send(Method::POST, "/api/v1/applications/b/sync", json!({})).await;
    emu.delete("/api/v1/applications/b?cascade=false").await;
    let mut kinds = Vec::new();
    while let Some(event) = sse.next().await {
        kinds.push(event["result"]["type"].as_str().unwrap().to_string());
        if kinds.last().unwrap() == "DELETED" {
            break;
        }
    }
    assert!(kinds.starts_with(&["MODIFIED".to_string()]) && kinds.ends_with(&["DELETED".to_string()]), "{kinds:?}");

    emu.handle.set_fault(Fault::CutStreams);
    assert!(sse.next().await.is_none(), "a cut ends the stream");
    // The slim stream still holds b's events from before the cut, then ends.
    let mut left = 0;
    while slim.next().await.is_some() {
        left += 1;
        assert!(left < 10, "the slim stream was not cut");
    }
}

#[tokio::test]
async fn stream_resume_keepalive_and_errors() {
    let emu = Emu::with(Options { keepalive: Duration::from_millis(50), ..Options::default() }).await;
    emu.handle.insert_application(app_json("a")).unwrap();
    emu.handle.insert_application(app_json("b")).unwrap();
    let rv = emu.handle.resource_version();

    // Resume: no initial burst; events at or above the RV pass.
    let mut resumed = Sse::open(&emu, &format!("?resourceVersion={}", rv + 1)).await;
    let r = resumed.response.chunk().await.unwrap().unwrap();
    assert_eq!(&r[..], b":\n", "only a keepalive while nothing changes");
    emu.handle.update_application("b", |_| {}).unwrap();
    let event = resumed.next().await.unwrap();
    assert_eq!(
        (event["result"]["type"].as_str(), event["result"]["application"]["metadata"]["name"].as_str()),
        (Some("MODIFIED"), Some("b"))
    );

    // Single-app watch always starts with that app, even with a resourceVersion.
    let mut single = Sse::open(&emu, "?name=a&resourceVersion=1").await;
    assert_eq!(single.next().await.unwrap()["result"]["application"]["metadata"]["name"], "a");

    // NDJSON without the exact SSE Accept header.
    let mut nd = emu.get("/api/v1/stream/applications?name=b").await;
    assert_eq!(nd.headers()["content-type"], JSON);
    let line = nd.chunk().await.unwrap().unwrap();
    assert!(line.ends_with(b"}\n") && !line.starts_with(b"data:"));

    // Stream errors: before any event the status is the error's, in the stream shape.
    let anon = Client::new()
        .get(format!("{}/api/v1/stream/applications", emu.handle.url()))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let text = anon.text().await.unwrap();
    let body: Value = serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap();
    assert_eq!(
        body,
        json!({"error": {"grpc_code": 16, "http_code": 401, "message": "no session information", "http_status": "Unauthorized"}})
    );

    emu.handle.set_fault(Fault::ExpireResourceVersions);
    let expired = emu.get(&format!("/api/v1/stream/applications?resourceVersion={rv}")).await;
    assert_eq!(expired.status(), 500);
    let body: Value = expired.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().starts_with(&format!("too old resource version: {rv}")));
    emu.handle.clear_faults();

    emu.handle.set_fault(Fault::StreamError { grpc_code: 14, message: "backend going away".into() });
    let error = loop {
        match resumed.next().await {
            Some(v) if v.get("error").is_some() => break v,
            Some(_) => continue,
            None => panic!("stream ended without the error chunk"),
        }
    };
    assert_eq!(error["error"]["http_code"], 503);
    assert!(resumed.next().await.is_none(), "the error chunk ends the stream");
}

#[tokio::test]
async fn resource_tree_stream_resends_on_change() {
    let emu = Emu::start().await;
    emu.handle.insert_application(app_json("web")).unwrap();
    let mut r = emu.get("/api/v1/stream/applications/web/resource-tree").await;
    let mut next = async || -> Value { serde_json::from_slice(&r.chunk().await.unwrap().unwrap()).unwrap() };
    assert_eq!(next().await["result"]["nodes"][0]["kind"], "Deployment");
    // An app change that leaves the tree alone sends nothing; a tree change does.
    emu.handle.update_application("web", |a| a["metadata"]["labels"]["x"] = json!("y")).unwrap();
    emu.handle.set_resource_tree("web", json!({"nodes": [{"kind": "Pod", "name": "p", "uid": "u"}]}));
    assert_eq!(next().await, json!({"result": {"nodes": [{"kind": "Pod", "name": "p", "uid": "u"}]}}));
    emu.handle
        .update_application("web", |a| a["status"]["resources"][0]["health"]["status"] = json!("Degraded"))
        .unwrap();
    emu.handle.set_resource_tree("web", json!({}));
    assert_eq!(next().await, json!({"result": {}}));
    assert_eq!(emu.get("/api/v1/stream/applications/ghost/resource-tree").await.status(), 403);
}

#[tokio::test]
async fn faults_fail_delay_and_restart() {
    let emu = Emu::start().await;
    emu.handle.insert_application(app_json("web")).unwrap();
    emu.handle.set_fault(Fault::FailNext(2));
    for _ in 0..2 {
        let (status, body) = error_of(emu.get("/api/v1/applications").await).await;
        assert_eq!(status, 500);
        assert_eq!(body["code"], 13);
    }
    assert_eq!(emu.get("/api/v1/applications").await.status(), 200);

    emu.handle.set_fault(Fault::Delay(Duration::from_millis(200)));
    let started = std::time::Instant::now();
    assert_eq!(emu.get("/api/v1/applications").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    emu.handle.clear_faults();

    let mut sse = Sse::open(&emu, "").await;
    sse.next().await.unwrap();
    let url = emu.handle.url();
    emu.handle.set_fault(Fault::Restart);
    assert!(sse.next().await.is_none(), "a restart drops open streams");
    assert_eq!(emu.handle.url(), url);
    assert_eq!(emu.app("web").await["metadata"]["name"], "web", "state and tokens survive a restart");
}
