//! The storage story: the same sequence of writes and reads on every back end
//! (SQLite always, PostgreSQL when `LANDFALL_TEST_DATABASE_URL` is set).

use landfall_server::ledger::application_views::Lookup;
use landfall_server::ledger::questions::RollbackPlan;
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
    let first = ledger.record_commit(&commit(SHA_A, &[], "SHOP-1: add cart", &["SHOP-1"])).await.unwrap();
    ledger.record_commit(&commit(SHA_B, &[SHA_A], "SHOP-2 and SHOP-1: checkout", &["SHOP-2", "SHOP-1"])).await.unwrap();
    ledger.record_commit(&commit(SHA_B, &[SHA_A], "SHOP-2 and SHOP-1: checkout", &["SHOP-2", "SHOP-1"])).await.unwrap();
    // A batch may name the same commit twice; it is stored once, and both get its id.
    let twice =
        [commit(SHA_A, &[], "SHOP-1: add cart", &["SHOP-1"]), commit(SHA_A, &[], "SHOP-1: add cart", &["SHOP-1"])];
    let ids = ledger.record_commits(&twice).await.unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "{backend}");
    assert_eq!(ids[0], first, "{backend}: a commit stored again keeps its id");
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

    let mut connection =
        <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&database.sqlite_options()).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut connection).await.unwrap();
    assert_eq!(mode, "wal");

    let reopened = Ledger::open(&database.url).await.unwrap();
    assert_eq!(reopened.counts().await.unwrap().environments, 1);
}

/// On SQLite, rollback plans are written to a file of their own (the ledger's path with
/// `-plans` appended), so previewing one leaves the ledger's file untouched: a write
/// there makes every connection drop what it has read of it. A ledger written before
/// keeps its plans, ids included; one copied without the plans file still takes plans.
#[tokio::test]
async fn sqlite_keeps_rollback_plans_in_a_file_of_their_own() {
    use sqlx::Connection;
    let database = landfall_tests::TestDatabase::sqlite();
    let pool = database.sqlite_as_before(20261203000035).await;
    let older = r#"{"environment":"production","target":"SHOP-1","applications":[]}"#;
    sqlx::query("INSERT INTO rollback_plans (id, created_at, environment, target, plan) VALUES (7, 1000, 'production', 'SHOP-1', $1)")
        .bind(older)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let ledger = Ledger::open(&database.url).await.unwrap();
    let kept = ledger.stored_rollback_plan(7).await.unwrap().expect("the older plan is kept");
    assert_eq!((kept.plan.as_str(), kept.executed_at), (older, None));
    let mut watcher = sqlx::SqliteConnection::connect_with(&database.sqlite_options()).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'rollback_plans'")
        .fetch_all(&mut watcher)
        .await
        .unwrap();
    assert_eq!(tables, Vec::<String>::new(), "the ledger's file still holds plans");
    let data_version = "PRAGMA data_version";
    let version: i64 = sqlx::query_scalar(data_version).fetch_one(&mut watcher).await.unwrap();
    let plan = RollbackPlan { environment: "production".into(), target: "SHOP-2".into(), applications: vec![] };
    let id = ledger.store_rollback_plan(&plan, 2000).await.unwrap();
    assert!(id > 7, "new plans are numbered after the kept ones: {id}");
    ledger.mark_rollback_plan_executed(id, 3000).await.unwrap();
    assert_eq!(ledger.stored_rollback_plan(id).await.unwrap().unwrap().executed_at, Some(3000));
    let unchanged: i64 = sqlx::query_scalar(data_version).fetch_one(&mut watcher).await.unwrap();
    assert_eq!(unchanged, version, "storing a plan wrote to the ledger's file");
    // A write to the ledger's own file is seen, so the check above can fail.
    ledger
        .upsert_environment(&EnvironmentFact { name: "qa".into(), rank: 20, match_rules: serde_json::json!({}) })
        .await
        .unwrap();
    let changed: i64 = sqlx::query_scalar(data_version).fetch_one(&mut watcher).await.unwrap();
    assert_ne!(changed, version, "a write to the ledger went unseen");
    watcher.close().await.unwrap();
    ledger.close().await;

    let ledger_file = database.sqlite_options().get_filename().to_path_buf();
    for suffix in ["-plans", "-plans-wal", "-plans-shm"] {
        let mut file = ledger_file.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    let copied = Ledger::open(&database.url).await.unwrap();
    assert!(copied.stored_rollback_plan(7).await.unwrap().is_none(), "the plans went with their file");
    let id = copied.store_rollback_plan(&plan, 4000).await.unwrap();
    assert_eq!(copied.stored_rollback_plan(id).await.unwrap().unwrap().id, id);
    assert_eq!(copied.counts().await.unwrap().environments, 1, "the ledger itself is whole");
}

/// Landfall never analyses a SQLite ledger (statistics slow every answer), and notices
/// when someone else did, so `serve` can say how to undo it.
#[tokio::test]
async fn a_ledger_without_planner_statistics_stays_without() {
    for (backend, database) in all_databases().await {
        let ledger = Ledger::open(&database.url).await.unwrap();
        story(backend, &ledger).await;
        assert!(!ledger.has_sqlite_statistics().await.unwrap(), "{backend}: statistics after writes");
        if backend == "sqlite" {
            let mut connection =
                <sqlx::SqliteConnection as sqlx::Connection>::connect(database.url.expose()).await.unwrap();
            sqlx::query("ANALYZE").execute(&mut connection).await.unwrap();
            assert!(ledger.has_sqlite_statistics().await.unwrap(), "sqlite: ANALYZE not noticed");
        }
    }
}

/// An application deleted in Argo CD and created again under its old name starts its
/// history ids at 0 again; its new deployments are kept beside the old ones, never over
/// them, and the watch's view of what is recorded covers only the new life.
#[tokio::test]
async fn a_recreated_application_keeps_its_old_history_on_every_backend() {
    for (backend, database) in all_databases().await {
        let ledger = Ledger::open(&database.url).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
        let env = EnvironmentFact { name: "production".into(), rank: 40, match_rules: serde_json::json!({}) };
        ledger.upsert_environment(&env).await.unwrap();
        let first_life =
            ApplicationFact { uid: Some("uid-1".into()), ..application("shop-prod", "production", "Synced", 1) };
        ledger.upsert_application(&first_life).await.unwrap();
        let shop = |tag: &str| format!("ghcr.io/acme/shop:{tag}");
        ledger.record_deployment(&deployment("shop-prod", 0, "r1", &[], &[&shop("1")], 100_000)).await.unwrap();
        ledger.record_deployment(&deployment("shop-prod", 1, "r2", &[], &[&shop("2")], 200_000)).await.unwrap();
        assert!(ledger.mark_application_deleted("main", "argocd", "shop-prod", 300_000).await.unwrap());

        let second_life =
            ApplicationFact { uid: Some("uid-2".into()), ..application("shop-prod", "production", "Synced", 400_000) };
        ledger.upsert_application(&second_life).await.unwrap();
        let again = deployment("shop-prod", 0, "r3", &[], &[&shop("3")], 500_000);
        ledger.record_deployment(&again).await.unwrap();
        // The watch relists: the same uid is the same life, the same entry the same row.
        ledger.upsert_application(&second_life).await.unwrap();
        ledger.record_deployment(&again).await.unwrap();

        let recorded = ledger.recorded_deployments("main", "argocd", "shop-prod").await.unwrap();
        assert_eq!(recorded.keys().copied().collect::<Vec<_>>(), [0], "{backend}: only the current life");
        assert_eq!(recorded[&0], [image(&shop("3"))], "{backend}");
        let Lookup::Found(detail) = ledger.application_detail("main", Some("argocd"), "shop-prod", 10).await.unwrap()
        else {
            panic!("{backend}: shop-prod not found")
        };
        let history: Vec<(i64, i64, &str, Vec<String>)> = detail
            .deployments
            .iter()
            .map(|d| (d.incarnation, d.history_id, d.revision.as_str(), d.images.clone()))
            .collect();
        assert_eq!(
            history,
            [(1, 0, "r3", vec![shop("3")]), (0, 1, "r2", vec![shop("2")]), (0, 0, "r1", vec![shop("1")])],
            "{backend}: both lives, newest first"
        );
        assert_eq!(detail.deployments_total, 3, "{backend}");
        assert!(detail.application.deleted_at.is_none(), "{backend}: it runs again");
        assert_eq!(detail.application.incarnation, 1, "{backend}");
        let changed = &detail.deployments[0].changes.as_ref().expect("a succeeded deployment has a change set").images;
        assert_eq!(changed.len(), 1, "{backend}: {changed:?}");
        assert_eq!(changed[0].previous_tag.as_deref(), Some("2"), "{backend}: compared with the old life's last");

        // Without uids (an older Argo CD, a seeded object) a deletion is what tells.
        ledger.upsert_application(&application("cart-prod", "production", "Synced", 1)).await.unwrap();
        ledger.record_deployment(&deployment("cart-prod", 0, "c1", &[], &[], 100_000)).await.unwrap();
        ledger.upsert_application(&application("cart-prod", "production", "Synced", 2)).await.unwrap();
        ledger.record_deployment(&deployment("cart-prod", 0, "c1", &[], &[], 100_000)).await.unwrap();
        assert!(ledger.mark_application_deleted("main", "argocd", "cart-prod", 300_000).await.unwrap());
        ledger.upsert_application(&application("cart-prod", "production", "Synced", 3)).await.unwrap();
        ledger.record_deployment(&deployment("cart-prod", 0, "c2", &[], &[], 400_000)).await.unwrap();
        let Lookup::Found(cart) = ledger.application_detail("main", Some("argocd"), "cart-prod", 10).await.unwrap()
        else {
            panic!("{backend}: cart-prod not found")
        };
        let lives: Vec<(i64, &str)> = cart.deployments.iter().map(|d| (d.incarnation, d.revision.as_str())).collect();
        assert_eq!(lives, [(1, "c2"), (0, "c1")], "{backend}");
        ledger.close().await;
    }
}

/// A SQLite ledger written before incarnations existed has `UNIQUE (application_id,
/// history_id)` in its `deployments` table; opening it with this build rebuilds the
/// table without that constraint and loses nothing that refers to a deployment.
#[tokio::test]
async fn an_older_sqlite_ledger_keeps_every_deployment_through_the_rebuild() {
    let database = landfall_tests::TestDatabase::sqlite();
    let pool = database.sqlite_as_before(20261129000012).await;
    for statement in [
        "INSERT INTO environments (id, name, rank, match_rules) VALUES (1, 'production', 40, '{}')",
        "INSERT INTO applications (id, instance, namespace, name, project, environment_id, sources, updated_at)
         VALUES (1, 'main', 'argocd', 'shop-prod', 'shop', 1, '[]', 1)",
        "INSERT INTO images (id, repository, tag) VALUES (1, 'ghcr.io/acme/shop', '1'), (2, 'ghcr.io/acme/shop', '2')",
        "INSERT INTO deployments (id, application_id, history_id, revision, started_at, finished_at, phase)
         VALUES (1, 1, 0, 'r1', 1000, 1000, 'Succeeded'), (2, 1, 1, 'r2', 2000, 2000, 'Succeeded')",
        "INSERT INTO deployment_images (deployment_id, image_id, side) VALUES (1, 1, 'after'), (2, 1, 'before'), (2, 2, 'after')",
        "UPDATE applications SET current_deployment_id = 2 WHERE id = 1",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    pool.close().await;

    let ledger = Ledger::open(&database.url).await.unwrap();
    assert!(ledger.readiness().await.is_ready());
    let recorded = ledger.recorded_deployments("main", "argocd", "shop-prod").await.unwrap();
    assert_eq!(recorded.keys().copied().collect::<Vec<_>>(), [0, 1], "both deployments kept");
    assert_eq!(recorded[&1], [image("ghcr.io/acme/shop:2")], "and what they ran");
    // The watch's first sight after the upgrade records the uid; then the application is
    // deleted and created again while Landfall is down: a new uid, history id 0 again,
    // stored beside the old 0.
    let first_sight =
        ApplicationFact { uid: Some("uid-1".into()), ..application("shop-prod", "production", "Synced", 2500) };
    ledger.upsert_application(&first_sight).await.unwrap();
    let second_life =
        ApplicationFact { uid: Some("uid-2".into()), ..application("shop-prod", "production", "Synced", 3000) };
    ledger.upsert_application(&second_life).await.unwrap();
    ledger.record_deployment(&deployment("shop-prod", 0, "r3", &[], &["ghcr.io/acme/shop:3"], 4000)).await.unwrap();
    let Lookup::Found(detail) = ledger.application_detail("main", Some("argocd"), "shop-prod", 10).await.unwrap()
    else {
        panic!("shop-prod not found")
    };
    assert_eq!(detail.deployments_total, 3);
    ledger.close().await;

    let mut connection =
        <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&database.sqlite_options()).await.unwrap();
    let table: String = sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = 'deployments'")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert!(!table.contains("UNIQUE (application_id, history_id)"), "{table}");
    let kept: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM deployment_images").fetch_one(&mut connection).await.unwrap();
    assert_eq!(kept, 4, "the images of the old deployments and of the new one");
    let broken: Vec<String> = sqlx::query_scalar("PRAGMA foreign_key_check").fetch_all(&mut connection).await.unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'deployments' AND sql IS NOT NULL ORDER BY name")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert_eq!(
        indexes,
        [
            "deployments_app_finished_at",
            "deployments_app_history",
            "deployments_app_time",
            "deployments_finished_at",
            "deployments_incarnation_history",
            "deployments_succeeded_time",
        ]
    );
}

/// A pooled PostgreSQL connection that the server dropped while it sat idle (a restart,
/// an idle timeout) is found and replaced before use, not handed to a request: sqlx's
/// ping before every use is turned off, so the ledger pings only connections idle for
/// a second or more.
#[tokio::test]
async fn a_postgres_ledger_replaces_connections_the_server_dropped() {
    let Some(database) = landfall_tests::TestDatabase::postgres().await else {
        eprintln!("no PostgreSQL server configured: skipped");
        return;
    };
    // A name of its own, so that only this ledger's connections are dropped.
    let name = format!("landfall-dropped-{}", std::process::id());
    let url: landfall_server::config::DatabaseUrl =
        format!("{}&application_name={name}", database.url.expose()).parse().unwrap();
    let ledger = Ledger::open(&url).await.unwrap();
    let fact = EnvironmentFact { name: "qa".into(), rank: 20, match_rules: serde_json::json!({}) };
    ledger.upsert_environment(&fact).await.unwrap();

    let admin = sqlx::PgPool::connect(database.url.expose()).await.unwrap();
    let dropped: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .fetch_all(&admin)
            .await
            .unwrap();
    assert!(!dropped.is_empty() && dropped.iter().all(|done| *done), "the ledger's connections were dropped");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    for _ in 0..20 {
        let qa = ledger.environment("qa").await.expect("a dropped connection is replaced, not used");
        assert_eq!(qa.map(|e| e.name), Some("qa".to_string()));
    }
    ledger.close().await;
    admin.close().await;
}
