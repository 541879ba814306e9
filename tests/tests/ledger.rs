//! The storage story: the same sequence of writes and reads on every back end
//! (SQLite always, PostgreSQL when `LANDFALL_TEST_DATABASE_URL` is set).

use landfall_server::ledger::application_views::Lookup;
use landfall_server::ledger::{
    ApplicationFact, CommitFact, DeploymentFact, EnvironmentFact, FeatureFact, ImageRef, Ledger, PersonTime,
    PipelineRunFact, PipelineStepFact, PullRequestFact, RepositoryFact, ResourceFact,
};
use landfall_tests::all_databases;

const SHA_A: &str = "1111111111111111111111111111111111111111";
const SHA_B: &str = "2222222222222222222222222222222222222222";

fn image(reference: &str) -> ImageRef {
    ImageRef::parse(reference).unwrap()
}

fn application(name: &str, environment: &str, sync: &str, at: i64) -> ApplicationFact {
    ApplicationFact {
        instance: "main".into(),
        namespace: "argocd".into(),
        name: name.into(),
        project: "shop".into(),
        environment: Some(environment.into()),
        service: Some("shop-api".into()),
        sources: serde_json::json!([{ "repoURL": "https://git.example/gitops.git", "path": "apps/shop" }]),
        dest_namespace: Some("shop".into()),
        sync_status: Some(sync.into()),
        health_status: Some("Healthy".into()),
        observed_at: at,
        ..ApplicationFact::default()
    }
}

fn deployment(app: &str, history_id: i64, revision: &str, before: &[&str], after: &[&str], at: i64) -> DeploymentFact {
    DeploymentFact {
        instance: "main".into(),
        namespace: "argocd".into(),
        application: app.into(),
        history_id,
        revision: revision.into(),
        revisions: vec![revision.into()],
        started_at: at - 30_000,
        finished_at: Some(at),
        phase: "Succeeded".into(),
        initiated_by: Some("alice".into()),
        images_before: before.iter().map(|r| image(r)).collect(),
        images_after: after.iter().map(|r| image(r)).collect(),
        ..DeploymentFact::default()
    }
}

fn commit(sha: &str, parents: &[&str], message: &str, features: &[&str]) -> CommitFact {
    let person =
        PersonTime { name: "Bob".into(), email: "bob@example.com".into(), at: 1_700_000_000_000, offset_minutes: 60 };
    CommitFact {
        repository: "shop-api".into(),
        sha: sha.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
        author: person.clone(),
        committer: person,
        message: message.into(),
        pull_request_number: Some(42),
        feature_keys: features.iter().map(|f| f.to_string()).collect(),
    }
}

async fn story(backend: &str, ledger: &Ledger) {
    // A fresh ledger is empty, migrated and ready.
    let readiness = ledger.readiness().await;
    assert!(readiness.is_ready(), "{backend}: {readiness:?}");
    assert_eq!(readiness.backend, backend);
    assert!(ledger.overview().await.unwrap().is_empty(), "{backend}: new ledger is empty");

    // Environments and applications, idempotently.
    for (name, rank) in [("production", 40), ("staging", 30), ("production", 40)] {
        let fact =
            EnvironmentFact { name: name.into(), rank, match_rules: serde_json::json!({ "labels": { "env": name } }) };
        ledger.upsert_environment(&fact).await.unwrap();
    }
    let first = ledger.upsert_application(&application("shop-prod", "production", "Synced", 1_000)).await.unwrap();
    let again = ledger.upsert_application(&application("shop-prod", "production", "OutOfSync", 2_000)).await.unwrap();
    assert_eq!(first, again, "{backend}: same natural key, same row");
    ledger.upsert_application(&application("shop-staging", "staging", "Synced", 1_000)).await.unwrap();

    // An application in an environment nobody declared is refused, and names it.
    let error = ledger.upsert_application(&application("ghost", "qa", "Synced", 1)).await.unwrap_err();
    assert!(error.to_string().contains("environment `qa`"), "{backend}: {error}");

    // Deployments with their images; recording one twice changes nothing.
    let d1 = deployment("shop-prod", 1, SHA_A, &[], &["ghcr.io/acme/shop:1.0"], 10_000);
    let d2 = deployment("shop-prod", 2, SHA_B, &["ghcr.io/acme/shop:1.0"], &["ghcr.io/acme/shop:1.1"], 20_000);
    let id1 = ledger.record_deployment(&d1).await.unwrap();
    assert_eq!(ledger.record_deployment(&d1).await.unwrap(), id1, "{backend}: idempotent");
    ledger.record_deployment(&d2).await.unwrap();
    ledger
        .record_deployment(&deployment("shop-staging", 7, SHA_B, &[], &["ghcr.io/acme/shop:1.1"], 15_000))
        .await
        .unwrap();

    // A deployment of an unknown application writes nothing at all, not even its images.
    let before = ledger.counts().await.unwrap();
    let orphan = deployment("missing-app", 1, SHA_A, &[], &["ghcr.io/acme/never-stored:9.9"], 30_000);
    let error = ledger.record_deployment(&orphan).await.unwrap_err();
    assert!(error.to_string().contains("main/argocd/missing-app"), "{backend}: {error}");
    assert_eq!(ledger.counts().await.unwrap(), before, "{backend}: nothing half-written");

    // Git facts: a commit with its features; a pull request; Jira details for a feature.
    ledger
        .upsert_repository(&RepositoryFact {
            name: "shop-api".into(),
            url: "https://git.example/shop-api.git".into(),
            kind: "source".into(),
        })
        .await
        .unwrap();
    let bad_kind = RepositoryFact { name: "x".into(), url: "file:///x".into(), kind: "docs".into() };
    let error = ledger.upsert_repository(&bad_kind).await.unwrap_err();
    assert!(error.to_string().contains("accepted: source, manifests"), "{backend}: {error}");
    ledger.record_commit(&commit(SHA_A, &[], "SHOP-1: add cart", &["SHOP-1"])).await.unwrap();
    ledger.record_commit(&commit(SHA_B, &[SHA_A], "SHOP-2 and SHOP-1: checkout", &["SHOP-2", "SHOP-1"])).await.unwrap();
    ledger.record_commit(&commit(SHA_B, &[SHA_A], "SHOP-2 and SHOP-1: checkout", &["SHOP-2", "SHOP-1"])).await.unwrap();
    // A batch may name the same commit twice; it is stored once, and both get its id.
    let twice =
        [commit(SHA_A, &[], "SHOP-1: add cart", &["SHOP-1"]), commit(SHA_A, &[], "SHOP-1: add cart", &["SHOP-1"])];
    let ids = ledger.record_commits(&twice).await.unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "{backend}");
    let error = ledger.record_commit(&commit("abc", &[], "short", &[])).await.unwrap_err();
    assert!(error.to_string().contains("40 or 64"), "{backend}: {error}");
    ledger
        .upsert_pull_request(&PullRequestFact {
            repository: "shop-api".into(),
            number: 42,
            title: Some("Checkout".into()),
            merge_commit_sha: Some(SHA_B.into()),
            feature_keys: vec!["SHOP-2".into()],
            ..PullRequestFact::default()
        })
        .await
        .unwrap();
    ledger
        .upsert_feature(&FeatureFact {
            key: "SHOP-2".into(),
            summary: Some("Checkout with saved cards".into()),
            status: Some("Done".into()),
            ..FeatureFact::default()
        })
        .await
        .unwrap();

    // A pipeline run and its steps; a bad step kind is refused before anything is written.
    let mut run = PipelineRunFact {
        ci_system: "github-actions".into(),
        run_id: "991".into(),
        name: "build".into(),
        status: "success".into(),
        repository: Some("shop-api".into()),
        commit_sha: Some(SHA_B.into()),
        pull_request_number: Some(42),
        steps: vec![
            PipelineStepFact {
                name: "compile".into(),
                kind: "build".into(),
                status: "success".into(),
                ..Default::default()
            },
            PipelineStepFact {
                name: "unit".into(),
                kind: "test".into(),
                status: "success".into(),
                ..Default::default()
            },
        ],
        ..PipelineRunFact::default()
    };
    ledger.record_pipeline_run(&run).await.unwrap();
    ledger.record_pipeline_run(&run).await.unwrap();
    run.run_id = "992".into();
    run.steps[1].kind = "lint".into();
    let error = ledger.record_pipeline_run(&run).await.unwrap_err();
    assert!(
        error.to_string().contains("steps[1].kind") && error.to_string().contains("pre-sync"),
        "{backend}: {error}"
    );

    // What the pages read.
    let overview = ledger.overview().await.unwrap();
    let counts = overview.counts;
    assert_eq!(
        (
            counts.environments,
            counts.applications,
            counts.deployments,
            counts.commits,
            counts.pull_requests,
            counts.features,
            counts.pipeline_runs
        ),
        (2, 2, 3, 2, 1, 2, 1),
        "{backend}: {counts:?}"
    );
    let names: Vec<_> =
        overview.environments.iter().map(|e| (e.name.as_str(), e.applications, e.last_deployed_at)).collect();
    assert_eq!(names, [("staging", 1, Some(15_000)), ("production", 1, Some(20_000))], "{backend}: promotion order");
    let recent: Vec<_> = overview.recent_deployments.iter().map(|d| (d.application.as_str(), d.history_id)).collect();
    assert_eq!(recent, [("shop-prod", 2), ("shop-staging", 7), ("shop-prod", 1)], "{backend}: newest first");

    let features = ledger.features().await.unwrap();
    let features: Vec<_> = features.iter().map(|f| (f.key.as_str(), f.commits, f.summary.as_deref())).collect();
    assert_eq!(features, [("SHOP-1", 2, None), ("SHOP-2", 1, Some("Checkout with saved cards"))], "{backend}");

    let found = ledger.search("saved CARDS").await.unwrap();
    assert_eq!(found.features.len(), 1, "{backend}: summary search is case-insensitive");
    let found = ledger.search("shop-st").await.unwrap();
    assert_eq!(found.applications.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["shop-staging"], "{backend}");
    let found = ledger.search("%").await.unwrap();
    assert!(found.features.is_empty() && found.applications.is_empty(), "{backend}: % is literal");

    let apps = ledger.applications().await.unwrap();
    assert_eq!(apps[0].sync_status.as_deref(), Some("OutOfSync"), "{backend}: latest state wins");

    // Migrating again is a no-op.
    ledger.migrate().await.unwrap();
    assert!(ledger.readiness().await.is_ready());
}

#[tokio::test]
async fn the_storage_story_holds_on_every_backend() {
    for (backend, database) in all_databases().await {
        let ledger = Ledger::open(&database.url).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
        story(backend, &ledger).await;
        ledger.close().await;
    }
}

/// What a direct reading of a cluster may write: health and images of recorded objects,
/// where Argo CD's tree left them empty, refreshed until a new tree replaces them.
#[tokio::test]
async fn live_cluster_facts_only_fill_recorded_resources_on_every_backend() {
    for (backend, database) in all_databases().await {
        let ledger = Ledger::open(&database.url).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
        let fact = ApplicationFact {
            dest_name: Some("gke-eu".into()),
            environment: None,
            ..application("shop-prod", "production", "Synced", 1)
        };
        ledger.upsert_application(&fact).await.unwrap();
        let resource = |kind: &str, name: &str, health: Option<&str>, images: &[&str]| ResourceFact {
            group: if kind == "Service" { String::new() } else { "apps".into() },
            kind: kind.into(),
            namespace: "shop".into(),
            name: name.into(),
            health: health.map(Into::into),
            images: images.iter().map(|i| image(i)).collect(),
        };
        let tree = [resource("Deployment", "api", Some("Healthy"), &[]), resource("Service", "api", None, &[])];
        ledger.replace_resources("main", "argocd", "shop-prod", 1, &tree).await.unwrap();

        let on_cluster = ledger.applications_on_cluster("gke-eu", &["Deployment"]).await.unwrap();
        assert_eq!(on_cluster.len(), 1, "{backend}");
        assert_eq!(
            (on_cluster[0].name.as_str(), on_cluster[0].namespaces.as_slice()),
            ("shop-prod", &["shop".to_string()][..])
        );
        assert!(ledger.applications_on_cluster("gke-us", &["Deployment"]).await.unwrap().is_empty(), "{backend}");
        assert!(ledger.applications_on_cluster("gke-eu", &["CronJob"]).await.unwrap().is_empty(), "{backend}");

        let live = [
            resource("Deployment", "api", Some("Progressing"), &["ghcr.io/acme/shop:2"]),
            resource("Service", "api", Some("Healthy"), &[]),
            resource("Deployment", "not-recorded", Some("Healthy"), &["ghcr.io/acme/other:1"]),
        ];
        assert_eq!(ledger.enrich_resources("main", "argocd", "shop-prod", 2, &live).await.unwrap(), 2, "{backend}");
        assert_eq!(ledger.enrich_resources("main", "argocd", "shop-prod", 3, &live).await.unwrap(), 0, "{backend}");
        let newer = [resource("Service", "api", Some("Degraded"), &[])];
        assert_eq!(ledger.enrich_resources("main", "argocd", "shop-prod", 4, &newer).await.unwrap(), 1, "{backend}");
        let Lookup::Found(detail) = ledger.application_detail("main", Some("argocd"), "shop-prod", 10).await.unwrap()
        else {
            panic!("{backend}: shop-prod not found")
        };
        let shown: Vec<(&str, Option<&str>, Vec<String>)> =
            detail.resources.iter().map(|r| (r.kind.as_str(), r.health.as_deref(), r.images.clone())).collect();
        assert_eq!(
            shown,
            [
                ("Deployment", Some("Healthy"), vec!["ghcr.io/acme/shop:2".to_string()]),
                ("Service", Some("Degraded"), vec![]),
            ],
            "{backend}: Argo CD's health kept, the rest filled, nothing added"
        );
        ledger.close().await;
    }
}

#[tokio::test]
async fn sqlite_ledgers_use_write_ahead_logging_and_survive_reopening() {
    let database = landfall_tests::TestDatabase::sqlite();
    let ledger = Ledger::open(&database.url).await.unwrap();
    let fact = EnvironmentFact { name: "qa".into(), rank: 20, match_rules: serde_json::json!({}) };
    ledger.upsert_environment(&fact).await.unwrap();
    ledger.close().await;

    let path = database.url.expose().trim_start_matches("sqlite://").to_string();
    let mut connection =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{path}")).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut connection).await.unwrap();
    assert_eq!(mode, "wal");

    let reopened = Ledger::open(&database.url).await.unwrap();
    assert_eq!(reopened.counts().await.unwrap().environments, 1);
}
