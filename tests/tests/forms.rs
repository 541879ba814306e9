//! The application form's back end against the Argo CD emulator: the pickers' catalogue
//! (with nothing secret in it), an Application read as a form losslessly, the dry-run
//! check with the catalogue's rules, and saving refused before Argo CD sees a bad form.

use std::time::Duration;

use landfall_emulators::argocd::{ArgoCd, Options};
use landfall_tests::{Server, all_databases};
use serde_json::{Value, json};

const TOKEN: &str = "header.payload.signature";

fn velero() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/argocd/application-velero-test.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_form_reads_checks_and_guards_applications() {
    for (backend, database) in all_databases().await {
        let argocd = ArgoCd::start(Options { tokens: vec![(TOKEN.into(), "admin".into())], ..Options::default() })
            .await
            .unwrap();
        argocd.insert_application(velero()).unwrap();
        argocd.insert_cluster(json!({"name": "gke-alpha-01-europe-west1", "server": "https://10.0.0.1"}));
        argocd
            .insert_project(json!({"metadata": {"name": "sre", "namespace": "argocd"},
                                   "spec": {"sourceRepos": ["*"], "destinations": [{"name": "*", "namespace": "*"}]}}))
            .unwrap();
        argocd.insert_repository(json!({"repo": "https://github.com/foo/manifests-velero.git", "type": "git",
                                        "password": "hunter2-do-not-leak"}));
        let work = tempfile::tempdir().unwrap();
        let config = work.path().join("landfall.toml");
        std::fs::write(
            &config,
            format!(
                "actions_enabled = true\n[[argocd]]\nname = \"main\"\nurl = \"{}\"\ntoken_env = \"ARGOCD_TOKEN\"\n",
                argocd.url()
            ),
        )
        .unwrap();
        let server = Server::start_with_env(
            &["--config", config.to_str().unwrap(), "--database-url", database.url.expose()],
            &[("ARGOCD_TOKEN", TOKEN)],
        );
        let http = reqwest::Client::new();

        let (status, catalogue) = send(http.get(server.url("/api/v1/argocd/main/catalogue"))).await;
        assert_eq!(status, 200, "{backend}: {catalogue}");
        assert!(catalogue["projects"].as_array().unwrap().iter().any(|p| p["name"] == "default"), "{catalogue}");
        assert_eq!(catalogue["clusters"].as_array().unwrap().len(), 2, "{backend}: {catalogue}");
        assert_eq!(catalogue["repositories"][0]["type"], "git", "{backend}");
        assert!(!catalogue.to_string().contains("hunter2"), "{backend}: no secret reaches the browser");
        let (status, _) = send(http.get(server.url("/api/v1/argocd/elsewhere/catalogue"))).await;
        assert_eq!(status, 404, "{backend}");

        // Read as a form: every field kept, YAML beside it.
        let (status, form) =
            send(http.get(server.url("/api/v1/applications/main/velero-test/form?namespace=argo-cd"))).await;
        assert_eq!(status, 200, "{backend}: {form}");
        let live = argocd.applications().into_iter().find(|a| a["metadata"]["name"] == "velero-test").unwrap();
        assert_eq!(form["application"], live, "{backend}: the form loses nothing");
        assert!(form["yaml"].as_str().unwrap().contains("name: velero-test"), "{backend}");
        assert_eq!(form["valid"], true, "{backend}: {}", form["errors"]);
        let (status, _) = send(http.get(server.url("/api/v1/applications/main/nothing/form"))).await;
        assert_eq!(status, 404, "{backend}");

        // The dry run: the form's rules and the catalogue's.
        let mut good = form["application"].clone();
        let (status, checked) =
            send(http.post(server.url("/api/v1/applications/main/form/check")).json(&json!({"application": good})))
                .await;
        assert_eq!((status, checked["valid"].as_bool()), (200, Some(true)), "{backend}: {}", checked["errors"]);
        let bad_yaml = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: Shop_API\n\
                        spec:\n  project: shop\n  destination:\n    name: gke-nowhere\n    namespace: shop\n\
                        \x20 source:\n    repoURL: https://git.example/acme/gitops.git\n    path: shop\n\
                        \x20   helm: {releaseName: shop}\n    kustomize: {namePrefix: shop-}\n";
        let (status, checked) =
            send(http.post(server.url("/api/v1/applications/main/form/check")).json(&json!({"yaml": bad_yaml}))).await;
        assert_eq!(status, 200, "{backend}: {checked}");
        assert_eq!(checked["valid"], false, "{backend}");
        let fields: Vec<&str> =
            checked["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        for expected in ["metadata.name", "spec.source", "spec.project", "spec.destination.name"] {
            assert!(fields.iter().any(|f| f.starts_with(expected)), "{backend}: {expected} in {fields:?}");
        }
        assert!(
            checked["warnings"].as_array().unwrap().iter().any(|w| w["field"] == "spec.source.repoURL"),
            "{checked}"
        );
        let (status, error) = send(
            http.post(server.url("/api/v1/applications/main/form/check"))
                .json(&json!({"yaml": "a: [", "application": {}})),
        )
        .await;
        assert_eq!(status, 400, "{backend}: {error}");

        // Saving a bad form is refused before Argo CD sees it.
        good["spec"]["source"]["repoURL"] = json!("");
        let (status, error) =
            send(http.put(server.url("/api/v1/applications/main/velero-test?namespace=argo-cd")).json(&good)).await;
        assert_eq!(status, 422, "{backend}: {error}");
        assert_eq!(error["field"], "spec.source.repoURL", "{backend}: {error}");
        let after = argocd.applications().into_iter().find(|a| a["metadata"]["name"] == "velero-test").unwrap();
        assert_eq!(after["spec"], live["spec"], "{backend}: nothing was sent");
        drop(server);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
