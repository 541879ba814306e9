//! The Argo CD client, exactly as `landfall serve` uses it, against the emulator: every
//! endpoint it calls, both ways of signing in, both error shapes, and the watch stream's
//! events, keepalives and errors (before the first event and in the middle of a stream).

use std::time::Duration;

use landfall_emulators::argocd::{ArgoCd, Fault, Handle, Options};
use landfall_server::argocd::client::{ArgoError, Catalogue, Client, Credentials, Refresh, Tls};
use serde_json::{Value, json};

const TOKEN: &str = "header.payload.signature";

fn app(name: &str, automated: bool) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "argocd", "labels": {"env": "dev"}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/acme/gitops.git", "path": "envs/dev", "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop-dev"},
            "syncPolicy": if automated { json!({"automated": {}}) } else { json!({}) }
        }
    })
}

async fn emulator(keepalive: Duration) -> Handle {
    let options = Options {
        tokens: vec![(TOKEN.into(), "admin".into())],
        sync_duration: Duration::from_millis(100),
        delete_duration: Duration::from_millis(50),
        keepalive,
        ..Options::default()
    };
    ArgoCd::start(options).await.unwrap()
}

fn client(argo: &Handle, credentials: Credentials) -> Client {
    Client::new(&argo.url(), credentials, &Tls::default()).unwrap()
}

/// Waits up to 10 s for the emulator's application to satisfy `check`.
async fn until(argo: &Handle, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        if let Some(app) = argo.application(name)
            && check(&app)
        {
            return app;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name}: timed out waiting for {what}");
}

fn phase(app: &Value) -> Option<&str> {
    app.pointer("/status/operationState/phase").and_then(Value::as_str)
}

fn api_error(error: ArgoError) -> (u16, String) {
    match error {
        ArgoError::Api { status, message, .. } => (status, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_endpoint_answers_through_the_client() {
    let argo = emulator(Duration::from_secs(15)).await;
    argo.insert_application(app("manual", false)).unwrap();
    argo.insert_application(app("auto", true)).unwrap();
    let argocd = client(&argo, Credentials::Token(TOKEN.into()));

    // List, with the resourceVersion to watch from.
    let list = argocd.list_applications().await.unwrap();
    let names: Vec<&str> = list.items.iter().filter_map(|a| a.pointer("/metadata/name")?.as_str()).collect();
    assert_eq!(names, ["auto", "manual"]);
    assert!(list.metadata.resource_version.is_some());

    // Get, plain and with a refresh; a missing application is Argo CD's 403.
    let got = argocd.application("manual", "argocd", None).await.unwrap();
    assert_eq!(got["spec"]["source"]["path"], "envs/dev");
    let refreshed = argocd.application("manual", "argocd", Some(Refresh::Hard)).await.unwrap();
    assert_eq!(refreshed["metadata"]["name"], "manual");
    let (status, message) = api_error(argocd.application("ghost", "argocd", None).await.unwrap_err());
    assert_eq!((status, message.as_str()), (403, "permission denied"));

    // Resource tree.
    argo.set_resource_tree(
        "manual",
        json!({"nodes": [{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "shop-dev", "name": "api",
                          "uid": "u1", "resourceVersion": "1", "health": {"status": "Healthy"}}]}),
    );
    let tree = argocd.resource_tree("manual", "argocd").await.unwrap();
    assert_eq!(tree.nodes.len(), 1);
    assert_eq!(tree.nodes[0].kind, "Deployment");

    // Sync runs, then a rollback to the first entry; automated sync refuses rollbacks.
    argocd.sync("manual", "argocd", &json!({"revision": "aaaa111", "prune": true})).await.unwrap();
    until(&argo, "manual", "the first sync", |a| phase(a) == Some("Succeeded")).await;
    argocd.sync("manual", "argocd", &json!({"revision": "bbbb222"})).await.unwrap();
    let synced = until(&argo, "manual", "the second sync", |a| {
        a.pointer("/status/history").and_then(Value::as_array).is_some_and(|h| h.len() == 2)
    })
    .await;
    assert_eq!(synced["status"]["history"][1]["revision"], "bbbb222");
    until(&argo, "manual", "the second sync to finish", |a| phase(a) == Some("Succeeded")).await;
    argocd.rollback("manual", "argocd", 0, false, false).await.unwrap();
    let rolled = until(&argo, "manual", "the rollback", |a| {
        a.pointer("/status/history").and_then(Value::as_array).is_some_and(|h| h.len() == 3)
    })
    .await;
    assert_eq!(rolled["status"]["history"][2]["revision"], "aaaa111");
    let (status, message) = api_error(argocd.rollback("auto", "argocd", 0, false, false).await.unwrap_err());
    assert_eq!(status, 400);
    assert!(message.contains("auto-sync is enabled"), "{message}");

    // Terminate: nothing to stop, then a running sync.
    until(&argo, "manual", "the rollback to finish", |a| phase(a) == Some("Succeeded")).await;
    let (status, message) = api_error(argocd.terminate("manual", "argocd").await.unwrap_err());
    assert_eq!(status, 400);
    assert!(message.contains("No operation is in progress"), "{message}");

    // Create (and its validation error), update, delete.
    let created = argocd.create(&app("new", false), false, true).await.unwrap();
    assert_eq!(created["metadata"]["name"], "new");
    let mut duplicate = app("new", false);
    duplicate["spec"]["source"]["path"] = json!("envs/other");
    let (status, message) = api_error(argocd.create(&duplicate, false, true).await.unwrap_err());
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("existing application spec is different"), "{message}");
    let mut changed = argocd.application("new", "argocd", None).await.unwrap();
    changed["spec"]["source"]["path"] = json!("envs/qa");
    let updated = argocd.update(&changed, true).await.unwrap();
    assert_eq!(updated["spec"]["source"]["path"], "envs/qa");
    argocd.delete("new", "argocd", false).await.unwrap();
    for _ in 0..100 {
        if argo.application("new").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(argo.application("new").is_none(), "deleted");

    // The pickers of the application form.
    let projects = argocd.catalogue(Catalogue::Projects).await.unwrap();
    assert_eq!(projects["items"][0]["metadata"]["name"], "default");
    let clusters = argocd.catalogue(Catalogue::Clusters).await.unwrap();
    assert_eq!(clusters["items"][0]["server"], "https://kubernetes.default.svc");
    argo.insert_repository(json!({"repo": "https://git.example/acme/gitops.git", "type": "git"}));
    let repositories = argocd.catalogue(Catalogue::Repositories).await.unwrap();
    assert_eq!(repositories["items"][0]["repo"], "https://git.example/acme/gitops.git");
}

#[tokio::test]
async fn a_password_is_exchanged_for_a_session_and_bad_credentials_are_denied() {
    let argo = emulator(Duration::from_secs(15)).await;
    argo.insert_application(app("web", false)).unwrap();
    let password = Credentials::Password { username: "admin".into(), password: "password".into() };
    let list = client(&argo, password).list_applications().await.unwrap();
    assert_eq!(list.items.len(), 1);

    let wrong = Credentials::Password { username: "admin".into(), password: "nope".into() };
    let error = client(&argo, wrong).list_applications().await.unwrap_err();
    assert!(error.is_denied(), "{error:?}");
    let error = client(&argo, Credentials::Token("not-a-jwt".into())).list_applications().await.unwrap_err();
    assert!(error.is_denied(), "{error:?}");
    assert!(!error.to_string().contains("not-a-jwt"), "the token stays out of errors: {error}");
}

#[tokio::test]
async fn the_watch_reads_events_and_keepalives_and_reports_stream_errors() {
    let argo = emulator(Duration::from_millis(100)).await;
    argo.insert_application(app("web", false)).unwrap();
    let argocd = client(&argo, Credentials::Token(TOKEN.into()));
    let silence = Duration::from_secs(2);

    // Without a resourceVersion everything comes first as ADDED.
    let mut stream = argocd.watch(None).await.unwrap();
    let first = stream.next(silence).await.unwrap().unwrap();
    assert_eq!((first.kind.as_str(), &first.application["metadata"]["name"]), ("ADDED", &json!("web")));

    // From the list's resourceVersion only later changes come; keepalives (every 100 ms
    // here) keep a quiet stream alive well past the silence limit.
    let list = argocd.list_applications().await.unwrap();
    let mut stream = argocd.watch(list.metadata.resource_version.as_deref()).await.unwrap();
    let later = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        argo.insert_application(app("later", false)).unwrap();
    };
    let ((), event) = tokio::join!(later, stream.next(silence));
    let event = event.unwrap().unwrap();
    assert_eq!(event.application["metadata"]["name"], "later");

    // A stream error in the middle of a stream ends it with the error's status.
    argo.set_fault(Fault::StreamError { grpc_code: 14, message: "backend going away".into() });
    let error = loop {
        match stream.next(silence).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without its error"),
            Err(error) => break error,
        }
    };
    match error {
        ArgoError::Stream { status, message } => assert_eq!((status, message.as_str()), (503, "backend going away")),
        other => panic!("expected the stream error shape, got {other:?}"),
    }
    argo.clear_faults();

    // An expired resourceVersion fails before the first event: the SSE-framed error chunk
    // is read, not shown raw.
    let rv = argocd.list_applications().await.unwrap().metadata.resource_version;
    argo.set_fault(Fault::ExpireResourceVersions);
    let error = match argocd.watch(rv.as_deref()).await {
        Ok(_) => panic!("an expired resourceVersion is refused"),
        Err(error) => error,
    };
    let (status, message) = api_error(error);
    assert_eq!(status, 500);
    assert!(message.starts_with("too old resource version"), "{message}");
    argo.clear_faults();

    // A cut connection is a broken stream; silence past the limit is reported as such.
    let mut stream = argocd.watch(None).await.unwrap();
    stream.next(silence).await.unwrap().unwrap();
    argo.set_fault(Fault::CutStreams);
    let error = loop {
        match stream.next(silence).await {
            Ok(Some(_)) => continue,
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };
    assert!(matches!(error, None | Some(ArgoError::Broken(_))), "{error:?}");
    argo.clear_faults();
}

#[tokio::test]
async fn a_stream_with_no_keepalive_is_silent() {
    let argo = emulator(Duration::from_secs(3600)).await;
    let argocd = client(&argo, Credentials::Token(TOKEN.into()));
    let list = argocd.list_applications().await.unwrap();
    let mut stream = argocd.watch(list.metadata.resource_version.as_deref()).await.unwrap();
    let error = stream.next(Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(error, ArgoError::Silent(_)), "{error:?}");
}
