//! Presence by ancestry across a promotion, a rollback, a branch build and a force-push,
//! on a real repository ingested by `landfall ingest`; on SQLite and PostgreSQL.

use landfall_server::ledger::jira::IssueFact;
use landfall_server::ledger::presence::Target;
use landfall_server::ledger::questions::{ChangesPage, PlanError};
use landfall_server::ledger::{
    ApplicationFact, BuildFact, DeploymentFact, EnvironmentFact, ImageRef, Ledger, PipelineRunFact, PullRequestFact,
    ResourceFact,
};
use landfall_tests::git::{commit, git, make_history};
use landfall_tests::{Server, TestDatabase, all_databases, eventually, ingest_configured, ingest_shop_api, run};
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000;
const T: i64 = 1_800_000_000_000;

fn image(tag: &str) -> ImageRef {
    ImageRef { repository: "ghcr.io/acme/shop".into(), tag: tag.into() }
}

fn ingest(work: &std::path::Path, database: &TestDatabase, repo: &std::path::Path) {
    let sources = format!(
        "[features]\nprojects = [\"SHOP\", \"PAY\"]\n\n\
         [[repository]]\nname = \"shop-api\"\nurl = \"{}\"\nbranches = [\"main\", \"preview\"]\n\n\
         [[repository]]\nname = \"gitops\"\nurl = \"{}\"\nkind = \"manifests\"\n",
        repo.display(),
        work.join("gitops").display(),
    );
    ingest_configured(work, database, &sources);
}

async fn build(ledger: &Ledger, tag: &str, sha: &str) {
    let fact = BuildFact {
        image: image(tag),
        digest: format!("sha256:{}", format!("{tag:0>4}").repeat(16)),
        repository: "shop-api".into(),
        commit_sha: sha.into(),
        ci_system: Some("github-actions".into()),
        run_id: Some(format!("run-{tag}")),
        built_at: T,
        ..BuildFact::default()
    };
    ledger.record_build(&fact).await.unwrap();
}

async fn deploy(ledger: &Ledger, app: &str, history_id: i64, tags: (&str, &str), at: i64) {
    let fact = DeploymentFact {
        instance: "main".into(),
        namespace: "argocd".into(),
        application: app.into(),
        history_id,
        revision: format!("rev-{history_id}"),
        started_at: at - 60_000,
        finished_at: Some(at),
        phase: "Succeeded".into(),
        is_rollback: app == "shop-production" && history_id == 3,
        automated: history_id == 2,
        images_before: if tags.0.is_empty() { vec![] } else { vec![image(tags.0)] },
        images_after: vec![image(tags.1)],
        ..DeploymentFact::default()
    };
    ledger.record_deployment(&fact).await.unwrap();
}

fn keys(features: &[landfall_server::ledger::cards::FeatureRef]) -> Vec<&str> {
    features.iter().map(|f| f.key.as_str()).collect()
}

async fn present(ledger: &Ledger, key: &str) -> Vec<(String, bool, String)> {
    let presence = ledger.presence(&Target::Feature(key.into())).await.unwrap();
    presence.into_iter().map(|p| (p.application.name, p.present_now, p.first_deployed_at)).collect()
}

fn at(hours: i64) -> String {
    landfall_server::timefmt::format_rfc3339(T + hours * HOUR)
}

async fn story(backend: &str, database: TestDatabase) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop-api");
    std::fs::create_dir(&repo).unwrap();
    make_history(&repo);
    let c1 = git(&repo, &["rev-parse", "HEAD~4"]);
    let merge = git(&repo, &["rev-parse", "HEAD~3"]);
    let squash = git(&repo, &["rev-parse", "HEAD~2"]);
    // A preview build from a branch that was never merged.
    git(&repo, &["checkout", "--quiet", "-b", "preview", &merge]);
    let preview = commit(&repo, "preview.txt", b"SHOP-9 preview of the new basket\n");
    git(&repo, &["checkout", "--quiet", "main"]);
    // The GitOps repository: one change to each environment's folder.
    let gitops = work.path().join("gitops");
    std::fs::create_dir(&gitops).unwrap();
    git(&gitops, &["init", "--quiet", "--initial-branch=main"]);
    for environment in ["staging", "production"] {
        std::fs::create_dir_all(gitops.join("envs").join(environment)).unwrap();
        commit(&gitops, &format!("envs/{environment}/values.yaml"), format!("Bump {environment}\n").as_bytes());
    }
    ingest(work.path(), &database, &repo);

    let ledger = Ledger::open(&database.url).await.unwrap();
    for (name, rank) in [("staging", 30), ("production", 40)] {
        let fact = EnvironmentFact { name: name.into(), rank, match_rules: serde_json::json!({}) };
        ledger.upsert_environment(&fact).await.unwrap();
    }
    for (name, environment) in [("shop-staging", "staging"), ("shop-production", "production")] {
        let fact = ApplicationFact {
            instance: "main".into(),
            namespace: "argocd".into(),
            name: name.into(),
            project: "shop".into(),
            environment: Some(environment.into()),
            service: Some("shop".into()),
            automated_sync: environment == "staging",
            sources: serde_json::json!([{
                "repoURL": work.path().join("gitops").display().to_string(),
                "path": format!("envs/{environment}"),
            }]),
            observed_at: T,
            ..ApplicationFact::default()
        };
        ledger.upsert_application(&fact).await.unwrap();
        let deployment = ResourceFact {
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "shop-api".into(),
            images: vec![image("3")],
            ..ResourceFact::default()
        };
        let service = ResourceFact {
            kind: "Service".into(),
            namespace: "shop".into(),
            name: "shop-api".into(),
            ..ResourceFact::default()
        };
        ledger.replace_resources("main", "argocd", name, T, &[deployment, service]).await.unwrap();
    }
    build(&ledger, "1", &c1).await;
    build(&ledger, "2", &merge).await;
    // Image 3 is deployed before CI reports its build: the report fills it in later.
    deploy(&ledger, "shop-staging", 1, ("", "1"), T + HOUR).await;
    deploy(&ledger, "shop-production", 1, ("", "1"), T + 2 * HOUR).await;
    deploy(&ledger, "shop-staging", 2, ("1", "2"), T + 3 * HOUR).await;
    deploy(&ledger, "shop-staging", 3, ("2", "3"), T + 4 * HOUR).await;
    build(&ledger, "3", &squash).await;
    let pipeline = PipelineRunFact {
        ci_system: "github-actions".into(),
        run_id: "run-3".into(),
        name: "build".into(),
        status: "success".into(),
        repository: Some("shop-api".into()),
        commit_sha: Some(squash.clone()),
        pull_request_number: Some(13),
        ..PipelineRunFact::default()
    };
    ledger.record_pipeline_run(&pipeline).await.unwrap();
    // Promotion of 3 to production, then a rollback to 2.
    deploy(&ledger, "shop-production", 2, ("1", "3"), T + 5 * HOUR).await;
    deploy(&ledger, "shop-production", 3, ("3", "2"), T + 6 * HOUR).await;

    assert_eq!(
        present(&ledger, "SHOP-2").await,
        [("shop-staging".into(), true, at(3)), ("shop-production".into(), true, at(5))],
        "{backend}: SHOP-2 came with the merge and stayed through the rollback"
    );
    assert_eq!(
        present(&ledger, "SHOP-3").await,
        [("shop-staging".into(), true, at(4)), ("shop-production".into(), false, at(5))],
        "{backend}: the rollback took SHOP-3 out of production"
    );
    assert_eq!(present(&ledger, "SHOP-1").await.len(), 2, "{backend}");
    assert!(present(&ledger, "SHOP-4").await.is_empty(), "{backend}: never deployed");

    // What each deployment changed.
    let production = ledger.environment("Production").await.unwrap().expect("case-insensitive lookup");
    let staging = ledger.environment("staging").await.unwrap().unwrap();
    let changes = ledger.environment_changes(&production, T, T + 7 * HOUR, ChangesPage::default()).await.unwrap();
    let history: Vec<i64> = changes.deployments.iter().map(|d| d.history_id).collect();
    assert_eq!(history, [1, 2, 3], "{backend}");
    let flags: Vec<(bool, bool)> = changes.deployments.iter().map(|d| (d.automated, d.is_rollback)).collect();
    assert_eq!(flags, [(false, false), (true, false), (false, true)], "{backend}: automated, rollback");
    assert!(changes.deployments[0].changes.initial, "{backend}");
    let promotion = &changes.deployments[1].changes;
    assert_eq!(keys(&promotion.features_entered), ["SHOP-2", "SHOP-3"], "{backend}");
    let prs: Vec<i64> = promotion.pull_requests_entered.iter().map(|p| p.number).collect();
    assert_eq!(prs, [12, 13], "{backend}");
    assert_eq!(promotion.images[0].tag, "3", "{backend}");
    assert_eq!(promotion.images[0].previous_tag.as_deref(), Some("1"), "{backend}");
    assert_eq!(promotion.pipelines, ["github-actions run-3 (build)"], "{backend}");
    assert_eq!(promotion.resources, ["Deployment shop/shop-api"], "{backend}");
    assert_eq!(promotion.committers, ["Bob Example <bob@example.com>"], "{backend}");
    let rollback = &changes.deployments[2].changes;
    assert!(rollback.features_entered.is_empty(), "{backend}");
    assert_eq!(keys(&rollback.features_left), ["SHOP-3"], "{backend}");
    assert_eq!(keys(&changes.features_left), ["SHOP-3"], "{backend}");
    let window =
        ledger.environment_changes(&staging, T + 3 * HOUR, T + 4 * HOUR, ChangesPage::default()).await.unwrap();
    assert_eq!(keys(&window.features_entered), ["SHOP-2"], "{backend}: the window is half-open");
    // Staging's third deployment was stored before CI reported its image's build; the
    // report made that stored change set stale, and it is worked out again.
    let late = ledger.environment_changes(&staging, T + 4 * HOUR, T + 5 * HOUR, ChangesPage::default()).await.unwrap();
    assert_eq!(keys(&late.deployments[0].changes.features_entered), ["SHOP-3"], "{backend}: after the late report");

    // Staging is ahead of production by SHOP-3.
    let comparison = ledger.compare_environments(&staging, &production).await.unwrap();
    assert_eq!(keys(&comparison.only_in_from), ["SHOP-3"], "{backend}");
    assert!(comparison.only_in_to.is_empty(), "{backend}");

    // Rolling staging back to just before SHOP-2: return to history 1; SHOP-2 and SHOP-3 leave.
    let plan = ledger.rollback_plan(&staging, &Target::Feature("SHOP-2".into())).await.unwrap();
    let step = &plan.applications[0];
    assert_eq!((step.action.as_str(), step.return_to.as_ref().map(|d| d.history_id)), ("rollback", Some(1)));
    assert_eq!(keys(&step.features_leaving), ["SHOP-2", "SHOP-3"], "{backend}");
    assert!(step.automated_sync && step.reason.contains("automated sync"), "{backend}: {}", step.reason);
    let plan = ledger.rollback_plan(&production, &Target::Feature("SHOP-3".into())).await.unwrap();
    assert_eq!(plan.applications[0].action, "none", "{backend}: production no longer runs SHOP-3");
    assert_eq!(plan.applications[0].return_to, None, "{backend}: nothing to return to");
    let plan = ledger.rollback_plan(&staging, &Target::Feature("SHOP-1".into())).await.unwrap();
    assert_eq!(plan.applications[0].action, "impossible", "{backend}");
    let plan = ledger.rollback_plan(&staging, &Target::PullRequest { repo: "shop-api".into(), number: 13 }).await;
    assert_eq!(plan.unwrap().applications[0].return_to.as_ref().map(|d| d.history_id), Some(2), "{backend}");
    assert!(
        matches!(ledger.rollback_plan(&staging, &Target::Feature("SHOP-4".into())).await, Err(PlanError::NeverReached)),
        "{backend}"
    );

    // A preview build from an unmerged branch carries its own commit, not SHOP-3.
    build(&ledger, "9", &preview).await;
    deploy(&ledger, "shop-staging", 4, ("3", "9"), T + 7 * HOUR).await;
    assert_eq!(present(&ledger, "SHOP-9").await, [("shop-staging".into(), true, at(7))], "{backend}");
    let now: Vec<_> = present(&ledger, "SHOP-3").await.into_iter().map(|(app, now, _)| (app, now)).collect();
    assert_eq!(now, [("shop-staging".into(), false), ("shop-production".into(), false)], "{backend}");
    // Presence in one environment is presence kept to that environment, by either path
    // (landed commits, or a branch build's own commits such as SHOP-9's), for every kind
    // of target.
    let targets = [
        Target::Feature("SHOP-2".into()),
        Target::Feature("SHOP-3".into()),
        Target::Feature("SHOP-9".into()),
        Target::PullRequest { repo: "shop-api".into(), number: 13 },
        Target::Commit { repo: "shop-api".into(), sha: preview.clone() },
    ];
    for target in &targets {
        let everywhere = ledger.presence(target).await.unwrap();
        assert!(!everywhere.is_empty(), "{backend}: {target} runs somewhere");
        for environment in ["staging", "production", "nowhere"] {
            let expected: Vec<_> =
                everywhere.iter().filter(|p| p.environment.as_deref() == Some(environment)).cloned().collect();
            let only = ledger.presence_in(target, environment).await.unwrap();
            assert_eq!(only, expected, "{backend}: {target} in {environment}");
        }
    }
    let preview_changes =
        ledger.environment_changes(&staging, T + 7 * HOUR, T + 8 * HOUR, ChangesPage::default()).await.unwrap();
    let change = &preview_changes.deployments[0].changes;
    assert_eq!((keys(&change.features_entered), keys(&change.features_left)), (vec!["SHOP-9"], vec!["SHOP-3"]));

    // The commit card says where a commit runs now; the feature card per environment.
    let card = ledger.feature_card("SHOP-2").await.unwrap().unwrap();
    let environments: Vec<_> = card.environments.iter().map(|e| (e.environment.as_str(), e.present_now)).collect();
    assert_eq!(environments, [("staging", true), ("production", true)], "{backend}");
    assert_eq!(card.services, ["shop"], "{backend}");
    // Each application's Deployment and Service, ordered by application, kind, namespace, name.
    let resources: Vec<_> = card.resources.iter().map(|r| (&r.application, &r.kind, &r.namespace, &r.name)).collect();
    assert_eq!(resources.len(), 2 * environments.len(), "{backend}: {resources:?}");
    assert!(resources.windows(2).all(|pair| pair[0] < pair[1]), "{backend}: {resources:?}");
    assert!(card.resources.iter().any(|r| r.kind == "Service"), "{backend}");

    // Main is force-pushed: the tip commit (SHOP-4) is replaced by SHOP-6. Numbers are
    // recomputed; what runs keeps its features, the rewritten commit is not carried.
    git(&repo, &["reset", "--quiet", "--hard", "HEAD~1"]);
    let replacement = commit(&repo, "six.txt", b"SHOP-6 replaces the big one\n");
    ingest(work.path(), &database, &repo);
    build(&ledger, "6", &replacement).await;
    deploy(&ledger, "shop-production", 4, ("2", "6"), T + 8 * HOUR).await;
    let now: Vec<_> = present(&ledger, "SHOP-3").await.into_iter().map(|(app, now, _)| (app, now)).collect();
    assert_eq!(now, [("shop-staging".into(), false), ("shop-production".into(), true)], "{backend}");
    assert!(present(&ledger, "SHOP-4").await.is_empty(), "{backend}");
    assert_eq!(present(&ledger, "SHOP-6").await.len(), 1, "{backend}");
    // Stored change sets follow the renumbering: the promotion still brought SHOP-2 and
    // SHOP-3, and the new deployment brings SHOP-3 back with PAY-7 and the replacement.
    let renumbered = ledger.environment_changes(&production, T, T + 9 * HOUR, ChangesPage::default()).await.unwrap();
    let entered: Vec<Vec<&str>> = renumbered.deployments.iter().map(|d| keys(&d.changes.features_entered)).collect();
    assert_eq!(entered, [vec![], vec!["SHOP-2", "SHOP-3"], vec![], vec!["PAY-7", "SHOP-3", "SHOP-6"]], "{backend}");
    let card = ledger.commit_card("shop-api", &squash[..10]).await.unwrap();
    let landfall_server::ledger::cards::ShaMatch::One(card) = card else { panic!("{backend}: commit card") };
    let deployed: Vec<_> = card.deployed_now.iter().map(|p| p.application.name.as_str()).collect();
    assert_eq!(deployed, ["shop-production"], "{backend}");
    ledger.close().await;
    endpoints(backend, &database).await;
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let response = reqwest::get(server.url(path)).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

fn keys_of(features: &Value) -> Vec<&str> {
    features.as_array().unwrap().iter().filter_map(|f| f["key"].as_str()).collect()
}

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new().post(server.url(path)).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// The same answers over REST, and the errors a caller can make.
async fn endpoints(backend: &str, database: &TestDatabase) {
    let server = Server::start(&["--database-url", database.url.expose()]);
    let window = format!("since={}&until={}", at(0), at(7));
    let (status, body) = get(&server, &format!("/api/v1/environments/production/changes?{window}")).await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert_eq!(body["deployments"].as_array().unwrap().len(), 3, "{backend}");
    assert_eq!(body["features_left"][0]["key"], "SHOP-3", "{backend}");
    assert_eq!(body["deployments"][1]["changes"]["pull_requests_entered"][1]["number"], 13, "{backend}");
    assert_eq!(body["next"], Value::Null, "{backend}: one page holds the window");
    // Two pages of the same window: the second starts where the first's `next` says.
    let (status, first) = get(&server, &format!("/api/v1/environments/production/changes?{window}&limit=2")).await;
    assert_eq!(status, 200, "{backend}: {first}");
    let history = |page: &Value| -> Vec<i64> {
        page["deployments"].as_array().unwrap().iter().map(|d| d["history_id"].as_i64().unwrap()).collect()
    };
    assert_eq!(history(&first), [1, 2], "{backend}: {first}");
    assert_eq!(keys_of(&first["features_entered"]), ["SHOP-2", "SHOP-3"], "{backend}: this page's features");
    let next = first["next"].as_str().expect("a second page").to_string();
    let (status, second) =
        get(&server, &format!("/api/v1/environments/production/changes?{window}&limit=2&after={next}")).await;
    assert_eq!(status, 200, "{backend}: {second}");
    assert_eq!((history(&second), &second["next"]), (vec![3], &Value::Null), "{backend}: {second}");
    assert_eq!(keys_of(&second["features_left"]), ["SHOP-3"], "{backend}: {second}");
    for (parameter, value) in [("limit", "0"), ("limit", "501"), ("limit", "ten"), ("after", "yesterday")] {
        let (status, body) =
            get(&server, &format!("/api/v1/environments/production/changes?{window}&{parameter}={value}")).await;
        assert_eq!((status, body["field"].as_str()), (400, Some(parameter)), "{backend}: {parameter}={value}: {body}");
        assert!(body["error"].as_str().unwrap().contains(value), "{backend}: names what was wrong: {body}");
    }

    let (status, body) = get(&server, "/api/v1/environments/compare?from=staging&to=production").await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert_eq!(body["only_in_from"][0]["key"], "SHOP-9", "{backend}: staging runs the preview");
    let only_in_production: Vec<&str> =
        body["only_in_to"].as_array().unwrap().iter().filter_map(|f| f["key"].as_str()).collect();
    assert_eq!(only_in_production, ["PAY-7", "SHOP-3", "SHOP-6"], "{backend}: production runs the new main");

    let (status, body) = get(&server, "/api/v1/features/SHOP-3").await;
    assert_eq!(status, 200, "{backend}");
    assert_eq!(body["environments"][0]["environment"], "staging", "{backend}");
    assert_eq!(body["environments"][0]["present_now"], false, "{backend}");
    assert_eq!(body["environments"][1]["present_now"], true, "{backend}");

    let (status, body) =
        post(&server, "/api/v1/rollback-plans", json!({ "environment": "prod", "feature": "SHOP-3" })).await;
    assert_eq!(status, 404, "{backend}: {body}");
    assert!(body["error"].as_str().unwrap().contains("known environments: staging, production"), "{backend}: {body}");
    let (status, body) =
        post(&server, "/api/v1/rollback-plans", json!({ "environment": "production", "feature": "shop-3" })).await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert_eq!(body["applications"][0]["action"], "rollback", "{backend}: {body}");
    // Back to before SHOP-3 first shipped (history 2), though history 4 brought it again.
    assert_eq!(body["applications"][0]["return_to"]["history_id"], 1, "{backend}: {body}");
    assert_eq!(body["applications"][0]["features_leaving"][1]["key"], "SHOP-2", "{backend}: {body}");
    let pr = json!({ "environment": "staging", "pull_request": { "repo": "shop-api", "number": 13 } });
    let (status, body) = post(&server, "/api/v1/rollback-plans", pr).await;
    assert_eq!((status, body["applications"][0]["action"].as_str()), (200, Some("none")), "{backend}: {body}");
    let (status, body) =
        post(&server, "/api/v1/rollback-plans", json!({ "environment": "staging", "feature": "SHOP-4" })).await;
    assert_eq!(status, 404, "{backend}: {body}");
    assert!(body["error"].as_str().unwrap().contains("never reached staging"), "{backend}: {body}");
    // A target the ledger does not know is told apart from one that never reached.
    let (status, body) =
        post(&server, "/api/v1/rollback-plans", json!({ "environment": "staging", "feature": "SHOP-999" })).await;
    assert_eq!(status, 404, "{backend}: {body}");
    assert!(body["error"].as_str().unwrap().contains("SHOP-999 has no commits in the ledger"), "{backend}: {body}");
    let pr = json!({ "environment": "staging", "pull_request": { "repo": "shop-api", "number": 999 } });
    let (status, body) = post(&server, "/api/v1/rollback-plans", pr).await;
    assert_eq!(status, 404, "{backend}: {body}");
    assert!(body["error"].as_str().unwrap().contains("no merge or squash commit in the ledger"), "{backend}: {body}");
    // A commit by unique prefix: the squash of PR 13 (SHOP-3), which production runs again.
    let (_, pr) = get(&server, "/api/v1/pull-requests/shop-api/13").await;
    let prefix = pr["commits"][0]["sha"].as_str().unwrap()[..10].to_string();
    let by_commit = json!({ "environment": "production", "commit": { "repo": "shop-api", "sha": prefix } });
    let (status, body) = post(&server, "/api/v1/rollback-plans", by_commit).await;
    assert_eq!((status, body["applications"][0]["action"].as_str()), (200, Some("rollback")), "{backend}: {body}");
    let unknown = json!({ "environment": "production", "commit": { "repo": "shop-api", "sha": "0000000" } });
    assert_eq!(post(&server, "/api/v1/rollback-plans", unknown).await.0, 404, "{backend}");
    let (status, body) =
        get(&server, &format!("/api/v1/ask?q=Where%20is%20commit%20{prefix}%20deployed%20now%3F")).await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert_eq!(body["answer"]["data"][0]["application"]["name"], "shop-production", "{backend}: {body}");
    let both =
        json!({ "environment": "staging", "feature": "SHOP-2", "commit": { "repo": "shop-api", "sha": "abcd" } });
    assert_eq!(post(&server, "/api/v1/rollback-plans", both).await.0, 400, "{backend}");

    let (status, body) = get(&server, "/api/v1/environments/staging/changes?since=yesterday").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("since")), "{backend}: {body}");
    let (status, body) = get(&server, "/api/v1/environments/narnia/changes").await;
    assert_eq!(status, 404, "{backend}: {body}");
    let (status, body) = get(&server, "/api/v1/environments/compare?from=staging").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("to")), "{backend}: {body}");
    let (status, body) = get(&server, "/api/v1/manifests/commits?env=staging").await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert_eq!(body["commits"], json!([]), "{backend}: nothing changed in the last 7 days");
    let (status, body) =
        get(&server, "/api/v1/manifests/commits?env=production&since=2024-01-02&until=2024-01-03").await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert_eq!(body["people"], json!([{ "name": "Bob Example", "email": "bob@example.com", "commits": 1 }]));
    assert_eq!(body["commits"][0]["subject"], "Bump production", "{backend}: {body}");
    assert_eq!(body["commits"][0]["paths"], json!(["envs/production/values.yaml"]), "{backend}");
    assert_eq!(body["commits"][0]["applications"][0]["name"], "shop-production", "{backend}");
    assert_eq!(body["commits"].as_array().unwrap().len(), 1, "{backend}: staging's change is not production's");

    ask(backend, &server, database).await;
}

/// DESIGN.md's nine questions, in words, through `/api/v1/ask` and `landfall ask`.
async fn ask(backend: &str, server: &Server, database: &TestDatabase) {
    let questions = [
        ("Which feature was implemented by pull request 12?", "pull_requests", "Shop-api#12 implemented SHOP-2."),
        (
            "When was issue SHOP-2 deployed in our staging environment?",
            "presence",
            "SHOP-2 was first deployed to staging on 2027-01-15 at 11:00 UTC and is there now.",
        ),
        ("Is SHOP-3 deployed in prod now?", "presence", "Yes: SHOP-3 is in production now"),
        ("Roll the staging environment back to just before SHOP-2 shipped", "rollback_plan", "back to history 1"),
        ("Which pipelines handled PR #13?", "pull_requests", "Shop-api#13: build run-3 (success)."),
        (
            "Who pushed to production on 2024-01-02?",
            "manifest_changes",
            "Bob Example (1) changed production's manifests",
        ),
        ("Which features entered staging between 2027-01-15 and 2027-01-15?", "environment_changes", "SHOP-2"),
        (
            "Which container images were rebuilt as a result of merging pull request 13?",
            "pull_requests",
            "Shop-api#13 built ghcr.io/acme/shop:3.",
        ),
        (
            "Which Kubernetes services were affected by shop-2?",
            "feature",
            "affected the Kubernetes services shop/shop-api",
        ),
        ("What is in staging but not in production?", "comparison", "In staging but not in production: SHOP-9."),
    ];
    for (question, kind, expected) in questions {
        let path = format!("/api/v1/ask?q={}&tz=UTC", question.replace(' ', "%20").replace('#', "%23"));
        let (status, body) = get(server, &path).await;
        assert_eq!(status, 200, "{backend}: {question}: {body}");
        assert_eq!(body["answer"]["kind"], kind, "{backend}: {question}: {body}");
        let summary = body["summary"].as_str().unwrap();
        assert!(summary.contains(expected), "{backend}: {question}: {summary}");
        // The command line prints the same summary above its table.
        let dir = tempfile::tempdir().unwrap();
        let output = run(dir.path(), &["--database-url", database.url.expose(), "ask", "--tz", "UTC", question], &[]);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && text.contains(summary), "{backend}: landfall ask {question:?}: {text}");
    }

    let (status, body) = get(server, "/api/v1/ask?q=Is%20SHOP-2%20deployed%3F").await;
    assert_eq!(status, 200, "{backend}: {body}");
    assert!(body["not_understood"]["examples"].as_array().is_some_and(|e| !e.is_empty()), "{backend}: {body}");
    assert!(body["not_understood"]["understood"].to_string().contains("SHOP-2"), "{backend}: {body}");
    let (status, body) = get(server, "/api/v1/ask?q=Is%20SHOP-2%20in%20prod%3F&tz=Mars/Olympus").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("tz")), "{backend}: {body}");
    let (status, body) = get(server, "/api/v1/ask").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("q")), "{backend}: {body}");

    // The dashboard's search box reads a question the same way.
    let response = reqwest::Client::new()
        .post(server.url("/api/fn/search"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body("query=Is+SHOP-3+deployed+in+prod+now%3F")
        .send()
        .await
        .unwrap();
    let found: Value = response.json().await.unwrap();
    assert_eq!(found["answer"]["understood"], true, "{backend}: {found}");
    assert!(found["answer"]["summary"].as_str().unwrap().starts_with("Yes: SHOP-3 is in production now"), "{found}");

    // The command line prints the same answer as a table, or the API's JSON.
    let dir = tempfile::tempdir().unwrap();
    let question = "Is SHOP-3 deployed in production now?";
    let args = ["--database-url", database.url.expose(), "ask", "--tz", "UTC", question];
    let output = run(dir.path(), &args, &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{backend}: {}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("Yes: SHOP-3 is in production now"), "{backend}: {text}");
    assert!(text.contains("shop-production  production"), "{backend}: a table row: {text}");
    let output = run(dir.path(), &[&args[..], &["--json"]].concat(), &[]);
    let json: Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    let (_, api) = get(server, &format!("/api/v1/ask?q={}&tz=UTC", question.replace(' ', "%20"))).await;
    assert_eq!(json, api, "{backend}: the CLI and the API give the same answer");
}

#[tokio::test]
async fn presence_follows_ancestry_through_promotion_and_rollback() {
    for (backend, database) in all_databases().await {
        story(backend, database).await;
    }
}

/// Pages of every size through qa's seven deployments give them all, once each, in order.
async fn check_pages(
    backend: &str,
    ledger: &Ledger,
    qa: &landfall_server::ledger::questions::EnvironmentId,
) -> Vec<(String, i64, String)> {
    let page = |after, limit| ChangesPage { after, limit };
    let whole = ledger.environment_changes(qa, T, T + 4 * HOUR, page(None, 500)).await.unwrap();
    let seen = |changes: &landfall_server::ledger::questions::EnvironmentChanges| -> Vec<(String, i64, String)> {
        changes.deployments.iter().map(|d| (d.application.name.clone(), d.history_id, d.deployed_at.clone())).collect()
    };
    let all = seen(&whole);
    assert_eq!(all.len(), 7, "{backend}: {all:?}");
    assert_eq!(whole.next, None, "{backend}");
    let times: Vec<&String> = all.iter().map(|(_, _, at)| at).collect();
    assert!(times.is_sorted(), "{backend}: oldest first: {all:?}");
    for limit in 1..=7 {
        let (mut paged, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let changes = ledger.environment_changes(qa, T, T + 4 * HOUR, page(after, limit)).await.unwrap();
            assert!(changes.deployments.len() as i64 <= limit, "{backend}: limit {limit}");
            paged.extend(seen(&changes));
            pages += 1;
            assert!(pages <= 7, "{backend}: pages of {limit} never end: {paged:?}");
            match changes.next {
                Some(next) => after = Some(next.parse().expect("`next` reads back as `after`")),
                None => break,
            }
        }
        assert_eq!(paged, all, "{backend}: pages of {limit}");
        assert_eq!(pages, 7usize.div_ceil(limit as usize), "{backend}: pages of {limit}");
    }
    all
}

/// An environment's changes page by time and then ledger id, so that deployments at
/// the same moment are neither repeated nor skipped across pages, whatever the page size.
#[tokio::test]
async fn an_environments_changes_page_through_deployments_at_the_same_time() {
    for (backend, database) in all_databases().await {
        let ledger = Ledger::open(&database.url).await.unwrap();
        let fact = EnvironmentFact { name: "qa".into(), rank: 20, match_rules: json!({}) };
        ledger.upsert_environment(&fact).await.unwrap();
        // Four applications deployed at the same moment, then two of them again, once
        // more together with the first's third deployment.
        let deployments = [(4, 1, 1), (2, 1, 1), (3, 1, 1), (1, 1, 1), (1, 2, 2), (2, 2, 3), (1, 3, 3)];
        for (app, history_id, hours) in deployments {
            let name = format!("qa-{app}");
            let fact = ApplicationFact {
                instance: "main".into(),
                namespace: "argocd".into(),
                name: name.clone(),
                project: "shop".into(),
                environment: Some("qa".into()),
                observed_at: T,
                ..ApplicationFact::default()
            };
            ledger.upsert_application(&fact).await.unwrap();
            deploy(&ledger, &name, history_id, ("", &history_id.to_string()), T + hours * HOUR).await;
        }
        let qa = ledger.environment("qa").await.unwrap().unwrap();
        let by_time = check_pages(backend, &ledger, &qa).await;
        // With forty more applications elsewhere, qa holds few of them: SQLite then seeks
        // qa's applications one by one instead of walking every deployment by time.
        let fact = EnvironmentFact { name: "elsewhere".into(), rank: 30, match_rules: json!({}) };
        ledger.upsert_environment(&fact).await.unwrap();
        for n in 0..40 {
            let fact = ApplicationFact {
                instance: "main".into(),
                namespace: "argocd".into(),
                name: format!("elsewhere-{n}"),
                project: "shop".into(),
                environment: Some("elsewhere".into()),
                observed_at: T,
                ..ApplicationFact::default()
            };
            ledger.upsert_application(&fact).await.unwrap();
        }
        // A new handle, which counts afresh: a ledger counts an environment's applications
        // at most once a minute.
        ledger.close().await;
        let ledger = Ledger::open(&database.url).await.unwrap();
        assert_eq!(check_pages(backend, &ledger, &qa).await, by_time, "{backend}: either way, the same deployments");
        // A cursor is only read as it was written.
        for bad in ["", "12", "12.", ".3", "1.2.3", "-1.2", "a.b", "99999999999999999999.1"] {
            assert!(bad.parse::<landfall_server::ledger::questions::ChangesCursor>().is_err(), "{backend}: {bad:?}");
        }
    }
}

/// A GitOps repository with one change under each of these paths, ingested alone.
fn ingest_gitops(work: &std::path::Path, database: &TestDatabase, paths: &[&str]) -> std::path::PathBuf {
    let gitops = work.join("gitops");
    std::fs::create_dir(&gitops).unwrap();
    git(&gitops, &["init", "--quiet", "--initial-branch=main"]);
    for path in paths {
        std::fs::create_dir_all(gitops.join(path).parent().unwrap()).unwrap();
        commit(&gitops, path, format!("Change {path}\n").as_bytes());
    }
    let sources = format!("[[repository]]\nname = \"gitops\"\nurl = \"{}\"\nkind = \"manifests\"\n", gitops.display());
    ingest_configured(work, database, &sources);
    gitops
}

/// Each manifests commit's subject, with the applications it touched.
async fn manifest_changes(ledger: &Ledger, environment: &str) -> Vec<(String, Vec<String>)> {
    let environment = ledger.environment(environment).await.unwrap().unwrap();
    let changes = ledger.manifest_commits(&environment, 0, T).await.unwrap();
    let mut changes: Vec<(String, Vec<String>)> = changes
        .commits
        .into_iter()
        .map(|c| (c.commit.subject, c.applications.into_iter().map(|a| a.name).collect()))
        .collect();
    changes.sort();
    changes
}

#[tokio::test]
async fn the_manifests_answer_follows_where_applications_read() {
    for (backend, database) in all_databases().await {
        let work = tempfile::tempdir().unwrap();
        let gitops = ingest_gitops(
            work.path(),
            &database,
            &["envs/production/values.yaml", "envs/production-eu/values.yaml", "charts/shop/values.yaml", "README"],
        );
        let ledger = Ledger::open(&database.url).await.unwrap();
        let fact = EnvironmentFact { name: "production".into(), rank: 40, match_rules: json!({}) };
        ledger.upsert_environment(&fact).await.unwrap();
        // The repository's URL spelled differently from the configured path, folders with
        // slashes around them, and a second source elsewhere.
        let url = format!("file://{}.git/", gitops.display());
        let reads = |sources: Value| ApplicationFact {
            instance: "main".into(),
            namespace: "argocd".into(),
            name: "shop-production".into(),
            environment: Some("production".into()),
            sources,
            observed_at: T,
            ..ApplicationFact::default()
        };
        let sources = json!([
            { "repoURL": url, "path": "/envs/production/" },
            { "repoURL": "https://charts.example/shop", "chart": "shop" },
        ]);
        ledger.upsert_application(&reads(sources)).await.unwrap();
        let eu = ApplicationFact {
            name: "shop-production-eu".into(),
            sources: json!([{ "repoURL": url, "path": "envs/production-eu" }]),
            ..reads(json!([]))
        };
        ledger.upsert_application(&eu).await.unwrap();
        assert_eq!(
            manifest_changes(&ledger, "production").await,
            [
                ("Change envs/production-eu/values.yaml".to_string(), vec!["shop-production-eu".to_string()]),
                ("Change envs/production/values.yaml".to_string(), vec!["shop-production".to_string()]),
            ],
            "{backend}: each folder by whole segments"
        );

        // The application now reads a chart folder; then the whole repository.
        ledger.upsert_application(&reads(json!([{ "repoURL": url, "path": "charts/shop" }]))).await.unwrap();
        let changes = manifest_changes(&ledger, "production").await;
        assert_eq!(changes[0], ("Change charts/shop/values.yaml".to_string(), vec!["shop-production".to_string()]));
        assert_eq!(changes.len(), 2, "{backend}: {changes:?}");
        ledger.upsert_application(&reads(json!([{ "repoURL": url, "path": "." }]))).await.unwrap();
        let changes = manifest_changes(&ledger, "production").await;
        assert_eq!(changes.len(), 4, "{backend}: the root reads every change: {changes:?}");
        assert_eq!(changes[3], ("Change envs/production/values.yaml".to_string(), vec!["shop-production".to_string()]));
        assert_eq!(ledger.index_source_paths().await.unwrap(), 0, "{backend}: nothing left to catch up");
    }
}

/// A ledger written before Landfall kept where applications read manifests catches up
/// when `landfall serve` starts, and the manifests answer finds its applications.
#[tokio::test]
async fn an_older_ledger_learns_where_its_applications_read() {
    let database = TestDatabase::sqlite();
    let pool = database.sqlite_as_before(20261129000032).await;
    let work = tempfile::tempdir().unwrap();
    let sources = json!([{ "repoURL": work.path().join("gitops").display().to_string(), "path": "envs/production" }]);
    for statement in [
        "INSERT INTO environments (id, name, rank, match_rules) VALUES (1, 'production', 40, '{}')".to_string(),
        format!(
            "INSERT INTO applications (id, instance, namespace, name, project, environment_id, sources, updated_at)
             VALUES (1, 'main', 'argocd', 'shop-production', 'shop', 1, '{sources}', 1)"
        ),
    ] {
        sqlx::query(&statement).execute(&pool).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    pool.close().await;
    ingest_gitops(work.path(), &database, &["envs/production/values.yaml"]);

    let ledger = Ledger::open(&database.url).await.unwrap();
    assert_eq!(manifest_changes(&ledger, "production").await, [], "not caught up yet");
    let server = Server::start(&["--database-url", database.url.expose()]);
    let (status, body) = eventually("the start-up pass", || async {
        let (status, body) = get(&server, "/api/v1/manifests/commits?env=production&since=2024-01-01").await;
        (body["commits"].as_array().is_some_and(|c| !c.is_empty())).then_some((status, body))
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["commits"][0]["applications"][0]["name"], "shop-production", "{body}");
    assert_eq!(body["commits"][0]["paths"], json!(["envs/production/values.yaml"]), "{body}");
}

/// Every `SHOP-n` key and every `#n` number in the messages of `range`.
fn named_in(
    repo: &std::path::Path,
    range: &str,
) -> (std::collections::BTreeSet<String>, std::collections::BTreeSet<i64>) {
    let messages = git(repo, &["log", "--format=%B", range]);
    let digits = |text: &str| text.chars().take_while(char::is_ascii_digit).collect::<String>();
    let keys = messages.split("SHOP-").skip(1).map(|rest| format!("SHOP-{}", digits(rest))).collect();
    let numbers = messages.split('#').skip(1).filter_map(|rest| digits(rest).parse().ok()).collect();
    (keys, numbers)
}

/// A change set of 500 features and 1,249 pull requests is named in full, entering
/// and leaving, on both back ends: the lists are read whole, however long they are.
#[tokio::test]
async fn a_change_set_of_hundreds_of_features_is_named_in_full() {
    for (backend, database) in all_databases().await {
        let work = tempfile::tempdir().unwrap();
        let repo = work.path().join("shop-api.git");
        landfall_tests::git::generate_history(&repo, 1_500);
        ingest_shop_api(work.path(), &database, &repo);
        let root = git(&repo, &["rev-list", "--max-parents=0", "main"]);
        let head = git(&repo, &["rev-parse", "main"]);
        let (keys, numbers) = named_in(&repo, &format!("{root}..main"));
        assert!(keys.len() > 450 && numbers.len() > 1_200, "{backend}: {} keys, {} numbers", keys.len(), numbers.len());

        let ledger = Ledger::open(&database.url).await.unwrap();
        let issues: Vec<IssueFact> = keys
            .iter()
            .map(|key| IssueFact { key: key.clone(), summary: Some(format!("About {key}")), ..IssueFact::default() })
            .collect();
        ledger.record_jira_issues(&issues, T).await.unwrap();
        for number in &numbers {
            let fact = PullRequestFact {
                repository: "shop-api".into(),
                number: *number,
                title: Some(format!("Change {number}")),
                ..PullRequestFact::default()
            };
            ledger.upsert_pull_request(&fact).await.unwrap();
        }
        let fact = EnvironmentFact { name: "qa".into(), rank: 20, match_rules: json!({}) };
        ledger.upsert_environment(&fact).await.unwrap();
        let fact = ApplicationFact {
            instance: "main".into(),
            namespace: "argocd".into(),
            name: "shop-qa".into(),
            project: "shop".into(),
            environment: Some("qa".into()),
            observed_at: T,
            ..ApplicationFact::default()
        };
        ledger.upsert_application(&fact).await.unwrap();
        build(&ledger, "root", &root).await;
        build(&ledger, "head", &head).await;
        deploy(&ledger, "shop-qa", 1, ("", "root"), T + HOUR).await;
        deploy(&ledger, "shop-qa", 2, ("root", "head"), T + 2 * HOUR).await;
        deploy(&ledger, "shop-qa", 3, ("head", "root"), T + 3 * HOUR).await;

        let qa = ledger.environment("qa").await.unwrap().unwrap();
        let page = ChangesPage { after: None, limit: 500 };
        let changes = ledger.environment_changes(&qa, T, T + 4 * HOUR, page).await.unwrap();
        let [_, forward, back] = &changes.deployments[..] else { panic!("{backend}: {:?}", changes.deployments) };
        for (set, features, pull_requests, way) in [
            (&forward.changes, &forward.changes.features_entered, &forward.changes.pull_requests_entered, "entered"),
            (&back.changes, &back.changes.features_left, &back.changes.pull_requests_left, "left"),
        ] {
            assert!(!set.truncated, "{backend}: {way}");
            let named: std::collections::BTreeSet<String> = features
                .iter()
                .filter(|f| f.summary.as_deref() == Some(format!("About {}", f.key).as_str()))
                .map(|f| f.key.clone())
                .collect();
            assert_eq!(named, keys, "{backend}: every feature that {way}, with its summary");
            let titled: std::collections::BTreeSet<i64> = pull_requests
                .iter()
                .filter(|p| p.repo == "shop-api" && p.title == Some(format!("Change {}", p.number)))
                .map(|p| p.number)
                .collect();
            assert_eq!(titled, numbers, "{backend}: every pull request that {way}, with its title");
        }
    }
}
