//! The forge connector against the GitHub and GitLab emulators: every client call, the
//! pull-request details filled in after a sync (through a rate limit and an outage),
//! and both webhook endpoints with their security matrix, on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use landfall_emulators::github::{self, GitHub};
use landfall_emulators::gitlab::{self, GitLab};
use landfall_emulators::{ForgeFault, Seen};
use landfall_server::config::{ForgeConfig, ForgeKind};
use landfall_server::forge::{Forge, ForgeError, Retry};
use landfall_server::ledger::{Ledger, TakenWork};
use landfall_tests::git::make_history;
use landfall_tests::{Server, TestDatabase, all_databases, eventually};
use serde_json::{Value, json};

const GITHUB_TOKEN: &str = "ghp_emulated_token";
const GITHUB_SECRET: &str = "github webhook secret";
const GITLAB_TOKEN: &str = "glpat-emulated";
const GITLAB_SECRET: &str = "gitlab webhook token";

fn quick() -> Retry {
    Retry { attempts: 4, backoff: Duration::from_millis(50), max_wait: Duration::from_secs(5), ..Retry::default() }
}

fn forge(kind: ForgeKind, url: String, token: Option<&str>, retry: Retry) -> Forge {
    let config = ForgeConfig {
        name: kind.as_str().into(),
        kind,
        url: Some(url),
        token_env: Some("TOKEN".into()),
        webhook_secret_env: None,
    };
    let token = token.map(str::to_string);
    Forge::new(&config, move |_| token.clone(), retry)
}

fn statuses(seen: &[Seen]) -> Vec<u16> {
    seen.iter().map(|s| s.status).collect()
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let response = reqwest::get(server.url(path)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn github_client_calls_against_the_emulator() {
    let emulator =
        GitHub::start(github::Options { tokens: vec![GITHUB_TOKEN.into()], require_token: true, ..Default::default() })
            .await
            .unwrap();
    let merged = github::PullRequest {
        number: 12,
        title: "SHOP-2 checkout".into(),
        body: Some("Adds the checkout form".into()),
        author: "alice".into(),
        head_branch: "SHOP-2-checkout".into(),
        merged_at: Some("2024-05-01T12:00:00Z".into()),
        merge_commit_sha: Some("a".repeat(40)),
    };
    emulator.insert_pull_request("acme/shop-api", &merged);
    // 120 pull requests hold one commit: two pages of 100.
    for number in 100..220 {
        let pull =
            github::PullRequest { number, title: format!("PR {number}"), author: "bob".into(), ..merged.clone() };
        emulator.insert_pull_request("acme/shop-api", &pull);
        emulator.link_commit("acme/shop-api", &"c".repeat(40), number);
    }
    emulator.insert_run_jobs(
        "acme/shop-api",
        555,
        vec![github::job(1, "build", "success", &["Checkout", "Compile"]), github::job(2, "test", "failure", &[])],
    );

    for url in [emulator.url(), emulator.enterprise_url()] {
        let client = forge(ForgeKind::Github, url.clone(), Some(GITHUB_TOKEN), quick());
        let details = client.api.github_pull_request("acme/shop-api", 12).await.unwrap().expect("known");
        assert_eq!(details.title.as_deref(), Some("SHOP-2 checkout"), "{url}");
        assert_eq!(details.author.as_deref(), Some("alice"));
        assert_eq!(details.merge_commit_sha, Some("a".repeat(40)));
        assert!(client.api.github_pull_request("acme/shop-api", 99).await.unwrap().is_none(), "404 is none");
        let pulls = client.api.github_pulls_for_commit("acme/shop-api", &"c".repeat(40)).await.unwrap();
        assert_eq!(pulls.len(), 120, "{url}: every page");
        let steps = client.api.github_run_jobs("acme/shop-api", 555).await.unwrap();
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["build", "build / Checkout", "build / Compile", "test"], "{url}");
    }
    let pages: Vec<Seen> = emulator.requests().into_iter().filter(|s| s.path.ends_with("/pulls")).collect();
    assert!(pages.iter().any(|s| s.query.as_deref().is_some_and(|q| q.contains("page=2"))), "{pages:?}");
    assert!(emulator.requests().iter().all(|s| s.authenticated), "the token is sent on every request");

    // A wrong token is named as such; no token at all is refused by this "private" forge.
    let wrong = forge(ForgeKind::Github, emulator.url(), Some("ghp_wrong"), quick());
    let error = wrong.api.github_pull_request("acme/shop-api", 12).await.unwrap_err();
    assert!(matches!(error, ForgeError::Unauthorized { .. }), "{error}");
    assert!(!error.to_string().contains("ghp_wrong"), "{error}");

    // Rate limits (primary and secondary) and an outage are waited out.
    let client = forge(ForgeKind::Github, emulator.url(), Some(GITHUB_TOKEN), quick());
    let before = emulator.requests().len();
    emulator.set_fault(ForgeFault::RateLimitNext(1));
    assert!(client.api.github_pull_request("acme/shop-api", 12).await.unwrap().is_some());
    emulator.set_fault(ForgeFault::SecondaryRateLimitNext(1));
    emulator.set_fault(ForgeFault::FailNext(2));
    assert!(client.api.github_pull_request("acme/shop-api", 12).await.unwrap().is_some());
    assert_eq!(statuses(&emulator.requests()[before..]), [403, 200, 502, 502, 403, 200]);

    // A longer outage than the retries, or a longer wait than allowed, is an error.
    emulator.set_fault(ForgeFault::FailNext(10));
    let error = client.api.github_pull_request("acme/shop-api", 12).await.unwrap_err();
    assert!(matches!(error, ForgeError::Status { status: 502, .. }), "{error}");
    emulator.clear_faults();
    let impatient =
        forge(ForgeKind::Github, emulator.url(), Some(GITHUB_TOKEN), Retry { max_wait: Duration::ZERO, ..quick() });
    emulator.set_fault(ForgeFault::RateLimitNext(1));
    let error = impatient.api.github_pull_request("acme/shop-api", 12).await.unwrap_err();
    assert!(matches!(error, ForgeError::RateLimited { .. }), "{error}");
}

#[tokio::test]
async fn gitlab_client_calls_against_the_emulator() {
    let emulator =
        GitLab::start(gitlab::Options { tokens: vec![GITLAB_TOKEN.into()], require_token: true }).await.unwrap();
    emulator.insert_project(42, "group/sub/shop-api");
    let merged = gitlab::MergeRequest {
        iid: 12,
        title: "SHOP-2 checkout".into(),
        description: "Closes SHOP-2".into(),
        author: "bob".into(),
        source_branch: "SHOP-2-checkout".into(),
        merged_at: Some("2024-05-01T12:00:00.000Z".into()),
        merge_commit_sha: Some("b".repeat(40)),
    };
    emulator.insert_merge_request(42, &merged);
    for iid in 100..150 {
        emulator.insert_merge_request(42, &gitlab::MergeRequest { iid, ..merged.clone() });
        emulator.link_commit(42, &"d".repeat(40), iid);
    }
    let client = forge(ForgeKind::Gitlab, emulator.url(), Some(GITLAB_TOKEN), quick());
    for project in ["group/sub/shop-api", "42"] {
        let details = client.api.gitlab_merge_request(project, 12).await.unwrap().expect("known");
        assert_eq!((details.title.as_deref(), details.author.as_deref()), (Some("SHOP-2 checkout"), Some("bob")));
        assert_eq!(details.merge_commit_sha, Some("b".repeat(40)), "{project}");
    }
    assert!(client.api.gitlab_merge_request("group/sub/shop-api", 99).await.unwrap().is_none());
    // The API URL may be given with /api/v4 too.
    let explicit = forge(ForgeKind::Gitlab, format!("{}/api/v4", emulator.url()), Some(GITLAB_TOKEN), quick());
    let requests = explicit.api.gitlab_merge_requests_for_commit("group/sub/shop-api", &"d".repeat(40)).await.unwrap();
    assert_eq!(requests.len(), 50);
    assert!(emulator.requests().iter().all(|s| s.path.starts_with("/api/v4/projects/")), "{:?}", emulator.requests());

    let wrong = forge(ForgeKind::Gitlab, emulator.url(), Some("glpat-wrong"), quick());
    assert!(matches!(wrong.api.gitlab_merge_request("42", 12).await, Err(ForgeError::Unauthorized { .. })));
    let before = emulator.requests().len();
    emulator.set_fault(ForgeFault::RateLimitNext(1));
    emulator.set_fault(ForgeFault::FailNext(1));
    assert!(client.api.gitlab_merge_request("42", 12).await.unwrap().is_some());
    assert_eq!(statuses(&emulator.requests()[before..]), [502, 429, 200]);
}

/// A repository with merge (#12) and squash (#13) commits, placed on a forge.
fn repository_config(repo: &std::path::Path, forge: &str, project: &str) -> String {
    format!(
        "sync_interval_seconds = 3600\n[features]\nprojects = [\"SHOP\", \"PAY\"]\n\n\
         [[repository]]\nname = \"shop-api\"\nurl = \"{}\"\nforge = \"{forge}\"\nforge_project = \"{project}\"\n",
        repo.display()
    )
}

async fn github_webhooks(backend: &str, database: TestDatabase) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop-api");
    std::fs::create_dir(&repo).unwrap();
    let head = make_history(&repo);
    let emulator =
        GitHub::start(github::Options { tokens: vec![GITHUB_TOKEN.into()], ..Default::default() }).await.unwrap();
    for (number, title, author) in [(12, "SHOP-2 checkout form", "alice"), (13, "Show totals", "bob")] {
        let pull = github::PullRequest {
            number,
            title: title.into(),
            author: author.into(),
            head_branch: format!("branch-{number}"),
            merged_at: Some("2024-01-02T09:00:00Z".into()),
            ..Default::default()
        };
        emulator.insert_pull_request("acme/shop-api", &pull);
    }
    emulator.insert_run_jobs("acme/shop-api", 555, vec![github::job(1, "docker build", "success", &["Build image"])]);
    // The first description after the sync meets a rate limit and an outage.
    emulator.set_fault(ForgeFault::RateLimitNext(1));
    emulator.set_fault(ForgeFault::FailNext(2));

    let config = work.path().join("landfall.toml");
    let text = format!(
        "{}\n[[forge]]\nname = \"github\"\nkind = \"github\"\nurl = \"{}\"\ntoken_env = \"GITHUB_TOKEN\"\nwebhook_secret_env = \"GITHUB_WEBHOOK_SECRET\"\n",
        repository_config(&repo, "github", "acme/shop-api"),
        emulator.url()
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap(), "--database-url", database.url.expose()],
        &[("GITHUB_TOKEN", GITHUB_TOKEN), ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
    );
    let ledger = Ledger::open(&database.url).await.unwrap();

    // After the first sync, the pull requests the commits name carry the forge's titles.
    let card = eventually("pull request #12 described", || async {
        let (status, card) = get(&server, "/api/v1/pull-requests/shop-api/12").await;
        (status == 200 && card["title"].is_string()).then_some(card)
    })
    .await;
    assert_eq!(card["title"], "SHOP-2 checkout form", "{backend}: {card}");
    assert_eq!(card["author"], "alice", "{backend}");
    let (_, card) = get(&server, "/api/v1/pull-requests/shop-api/13").await;
    assert_eq!((card["title"].as_str(), card["author"].as_str()), (Some("Show totals"), Some("bob")), "{backend}");
    let seen = statuses(&emulator.requests());
    assert!(seen.contains(&403) && seen.contains(&502), "{backend}: the faults were met: {seen:?}");
    let (_, answer) =
        get(&server, "/api/v1/ask?q=Which%20feature%20was%20implemented%20by%20pull%20request%2012%3F").await;
    let summary = answer["summary"].as_str().unwrap();
    assert!(summary.contains("SHOP-2 checkout form") && summary.contains("alice"), "{backend}: {summary}");
    assert_eq!(answer["answer"]["data"][0]["author"], "alice", "{backend}: {answer}");

    // The security matrix: nothing is stored without a valid signature.
    let merged = github::PullRequest {
        number: 77,
        title: "SHOP-7 saved carts".into(),
        body: Some("Also touches SHOP-8".into()),
        author: "carol".into(),
        head_branch: "SHOP-7-saved-carts".into(),
        merged_at: Some("2024-05-01T12:00:00Z".into()),
        merge_commit_sha: Some(head.clone()),
    };
    let event = merged.to_closed_event("acme/shop-api");
    let body = serde_json::to_vec(&event).unwrap();
    let base = |extra: Vec<(&'static str, String)>| {
        let mut headers =
            vec![("x-github-event", "pull_request".to_string()), ("x-github-delivery", "d-77".to_string())];
        headers.extend(extra);
        headers
    };
    let unsigned = github::deliver_raw(&server.base_url, &base(vec![]), body.clone()).await.unwrap();
    assert_eq!(unsigned.status, 401, "{backend}: {:?}", unsigned.body);
    let wrong = github::signature("another secret", &body);
    let forged =
        github::deliver_raw(&server.base_url, &base(vec![("x-hub-signature-256", wrong)]), body.clone()).await.unwrap();
    assert_eq!(forged.status, 401, "{backend}");
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let signature = github::signature(GITHUB_SECRET, &body);
    let changed =
        github::deliver_raw(&server.base_url, &base(vec![("x-hub-signature-256", signature)]), tampered).await.unwrap();
    assert_eq!(changed.status, 401, "{backend}: the signature covers the raw body");
    assert_eq!(ledger.deliveries_remembered("github").await.unwrap(), 0, "{backend}");
    let (status, _) = get(&server, "/api/v1/pull-requests/shop-api/77").await;
    assert_eq!(status, 404, "{backend}: nothing stored");

    let huge = vec![b' '; 6 * 1024 * 1024];
    let signature = github::signature(GITHUB_SECRET, &huge);
    let oversized =
        github::deliver_raw(&server.base_url, &base(vec![("x-hub-signature-256", signature)]), huge).await.unwrap();
    assert_eq!(oversized.status, 413, "{backend}: {:?}", oversized.body);
    let malformed = b"{\"action\": \"closed\", ".to_vec();
    let signature = github::signature(GITHUB_SECRET, &malformed);
    let broken = github::deliver_raw(&server.base_url, &base(vec![("x-hub-signature-256", signature)]), malformed)
        .await
        .unwrap();
    assert_eq!(broken.status, 400, "{backend}: {:?}", broken.body);
    let deployment: Value =
        serde_json::from_str(include_str!("../../../shared/fixtures/github/webhook.deployment_status.created.json"))
            .unwrap();
    let ignored =
        github::deliver(&server.base_url, GITHUB_SECRET, "deployment_status", "d-1", &deployment).await.unwrap();
    assert_eq!((ignored.status, ignored.body["status"].as_str()), (202, Some("ignored")), "{backend}");
    let pong = github::deliver(&server.base_url, GITHUB_SECRET, "ping", "d-2", &json!({"zen": "Keep it simple."}))
        .await
        .unwrap();
    assert_eq!(pong.status, 200, "{backend}");
    let elsewhere = merged.to_closed_event("acme/not-configured");
    let unknown = github::deliver(&server.base_url, GITHUB_SECRET, "pull_request", "d-3", &elsewhere).await.unwrap();
    assert_eq!((unknown.status, unknown.body["status"].as_str()), (202, Some("ignored")), "{backend}");

    // A merged pull request: answered at once, recorded, and processed once when replayed.
    let started = Instant::now();
    let queued = github::deliver(&server.base_url, GITHUB_SECRET, "pull_request", "d-77", &event).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "{backend}: answered within a second");
    assert_eq!((queued.status, queued.body["status"].as_str()), (202, Some("queued")), "{backend}: {:?}", queued.body);
    let replay = github::deliver(&server.base_url, GITHUB_SECRET, "pull_request", "d-77", &event).await.unwrap();
    assert_eq!((replay.status, replay.body["status"].as_str()), (200, Some("duplicate")), "{backend}");
    let card = eventually("pull request #77 from the webhook", || async {
        let (status, card) = get(&server, "/api/v1/pull-requests/shop-api/77").await;
        (status == 200).then_some(card)
    })
    .await;
    assert_eq!(
        (card["title"].as_str(), card["author"].as_str()),
        (Some("SHOP-7 saved carts"), Some("carol")),
        "{backend}"
    );
    let keys: Vec<&str> = card["features"].as_array().unwrap().iter().filter_map(|f| f["key"].as_str()).collect();
    assert_eq!(keys, ["SHOP-7", "SHOP-8"], "{backend}: keys in title, body and branch");

    // A push fetches the repository: a new commit arrives without waiting for the interval.
    let new_head = landfall_tests::git::commit(&repo, "push.txt", b"SHOP-9 pushed (#14)\n");
    let pushed = github::deliver(
        &server.base_url,
        GITHUB_SECRET,
        "push",
        "d-push",
        &github::push_event("acme/shop-api", "refs/heads/main", &new_head),
    )
    .await
    .unwrap();
    assert_eq!(pushed.status, 202, "{backend}: {:?}", pushed.body);
    eventually("the pushed commit", || async {
        let (status, _) = get(&server, &format!("/api/v1/commits/shop-api/{new_head}")).await;
        (status == 200).then_some(())
    })
    .await;

    // A workflow run becomes a pipeline of pull request #12, with its jobs from the API.
    let run = github::workflow_run_event("acme/shop-api", 555, &head, Some(12), "success");
    let delivered = github::deliver(&server.base_url, GITHUB_SECRET, "workflow_run", "d-run", &run).await.unwrap();
    assert_eq!(delivered.status, 202, "{backend}: {:?}", delivered.body);
    let card = eventually("the workflow run", || async {
        let (_, card) = get(&server, "/api/v1/pull-requests/shop-api/12").await;
        (!card["pipelines"].as_array()?.is_empty()).then_some(card)
    })
    .await;
    let pipeline = &card["pipelines"][0];
    assert_eq!(
        (pipeline["run_id"].as_str(), pipeline["status"].as_str()),
        (Some("555"), Some("success")),
        "{backend}: {card}"
    );
    let steps: Vec<String> = sqlx_steps(&ledger, "555").await;
    assert_eq!(steps, ["docker build", "docker build / Build image"], "{backend}");
    assert_eq!(ledger.deliveries_remembered("github").await.unwrap(), 3, "{backend}: the three queued ones");
    ledger.close().await;
}

async fn sqlx_steps(ledger: &Ledger, run_id: &str) -> Vec<String> {
    let steps = ledger.pipeline_steps("github-actions", run_id).await.unwrap();
    steps.into_iter().map(|s| s.name).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn github_webhooks_and_details_reach_the_ledger() {
    for (backend, database) in all_databases().await {
        github_webhooks(backend, database).await;
    }
}

async fn gitlab_webhooks(backend: &str, database: TestDatabase) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop-api");
    std::fs::create_dir(&repo).unwrap();
    let head = make_history(&repo);
    let emulator =
        GitLab::start(gitlab::Options { tokens: vec![GITLAB_TOKEN.into()], require_token: true }).await.unwrap();
    emulator.insert_project(42, "group/shop-api");
    let request = |iid: i64, title: &str, author: &str| gitlab::MergeRequest {
        iid,
        title: title.into(),
        description: String::new(),
        author: author.into(),
        source_branch: format!("branch-{iid}"),
        merged_at: Some("2024-01-02T09:00:00.000Z".into()),
        merge_commit_sha: None,
    };
    emulator.insert_merge_request(42, &request(12, "SHOP-2 checkout form", "alice"));
    emulator.insert_merge_request(42, &request(20, "SHOP-20 wish list", "dave"));
    emulator.set_fault(ForgeFault::RateLimitNext(1));

    let config = work.path().join("landfall.toml");
    let text = format!(
        "{}\n[[forge]]\nname = \"gitlab\"\nkind = \"gitlab\"\nurl = \"{}\"\ntoken_env = \"GITLAB_TOKEN\"\nwebhook_secret_env = \"GITLAB_WEBHOOK_SECRET\"\n",
        repository_config(&repo, "gitlab", "group/shop-api"),
        emulator.url()
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap(), "--database-url", database.url.expose()],
        &[("GITLAB_TOKEN", GITLAB_TOKEN), ("GITLAB_WEBHOOK_SECRET", GITLAB_SECRET)],
    );
    let ledger = Ledger::open(&database.url).await.unwrap();
    let card = eventually("merge request !12 described", || async {
        let (status, card) = get(&server, "/api/v1/pull-requests/shop-api/12").await;
        (status == 200 && card["title"].is_string()).then_some(card)
    })
    .await;
    assert_eq!(
        (card["title"].as_str(), card["author"].as_str()),
        (Some("SHOP-2 checkout form"), Some("alice")),
        "{backend}"
    );

    // The security matrix.
    let merge = request(20, "SHOP-20 wish list", "ignored-the-hook-has-no-author").to_event(42, "group/shop-api");
    let body = serde_json::to_vec(&merge).unwrap();
    let headers = |token: Option<&str>| {
        let mut headers =
            vec![("x-gitlab-event", "Merge Request Hook".to_string()), ("idempotency-key", "k-20".to_string())];
        headers.extend(token.map(|t| ("x-gitlab-token", t.to_string())));
        headers
    };
    for token in [None, Some("wrong"), Some("gitlab webhook toke"), Some("")] {
        let refused = gitlab::deliver_raw(&server.base_url, &headers(token), body.clone()).await.unwrap();
        assert_eq!(refused.status, 401, "{backend}: {token:?}");
    }
    assert_eq!(ledger.deliveries_remembered("gitlab").await.unwrap(), 0, "{backend}");
    let broken = gitlab::deliver_raw(&server.base_url, &headers(Some(GITLAB_SECRET)), b"[1,".to_vec()).await.unwrap();
    assert_eq!(broken.status, 400, "{backend}");
    let huge = gitlab::deliver_raw(&server.base_url, &headers(Some(GITLAB_SECRET)), vec![b' '; 6 * 1024 * 1024])
        .await
        .unwrap();
    assert_eq!(huge.status, 413, "{backend}");
    let note = gitlab::deliver(&server.base_url, GITLAB_SECRET, "Note Hook", "u-note", &json!({"object_kind": "note"}))
        .await
        .unwrap();
    assert_eq!((note.status, note.body["status"].as_str()), (202, Some("ignored")), "{backend}");

    // A merge: the author comes from the API, the replay is processed once.
    let queued = gitlab::deliver(&server.base_url, GITLAB_SECRET, "Merge Request Hook", "k-20", &merge).await.unwrap();
    assert_eq!((queued.status, queued.body["status"].as_str()), (202, Some("queued")), "{backend}: {:?}", queued.body);
    let replay = gitlab::deliver(&server.base_url, GITLAB_SECRET, "Merge Request Hook", "k-20", &merge).await.unwrap();
    assert_eq!(replay.status, 200, "{backend}");
    let card = eventually("merge request !20 from the webhook", || async {
        let (status, card) = get(&server, "/api/v1/pull-requests/shop-api/20").await;
        (status == 200 && card["author"].is_string()).then_some(card)
    })
    .await;
    assert_eq!(
        (card["title"].as_str(), card["author"].as_str()),
        (Some("SHOP-20 wish list"), Some("dave")),
        "{backend}"
    );

    // A push by its numeric project id, and a pipeline with its jobs.
    let push = gitlab::push_event(42, "GROUP/shop-api", "refs/heads/main", &head, &"0".repeat(40));
    let pushed = gitlab::deliver(&server.base_url, GITLAB_SECRET, "Push Hook", "u-push", &push).await.unwrap();
    assert_eq!(pushed.status, 202, "{backend}: {:?}", pushed.body);
    let pipeline = gitlab::pipeline_event(42, "group/shop-api", 900, &head, Some(12));
    let delivered =
        gitlab::deliver(&server.base_url, GITLAB_SECRET, "Pipeline Hook", "u-900", &pipeline).await.unwrap();
    assert_eq!(delivered.status, 202, "{backend}: {:?}", delivered.body);
    let card = eventually("the pipeline", || async {
        let (_, card) = get(&server, "/api/v1/pull-requests/shop-api/12").await;
        (!card["pipelines"].as_array()?.is_empty()).then_some(card)
    })
    .await;
    assert_eq!(card["pipelines"][0]["run_id"], "900", "{backend}: {card}");
    let steps = ledger.pipeline_steps("gitlab-ci", "900").await.unwrap();
    assert_eq!(steps.len(), 5, "{backend}: the hook's builds");
    assert_eq!(ledger.deliveries_remembered("gitlab").await.unwrap(), 3, "{backend}");
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_webhooks_and_details_reach_the_ledger() {
    for (backend, database) in all_databases().await {
        gitlab_webhooks(backend, database).await;
    }
}

/// Deliveries are remembered in the ledger (so across restarts and replicas) for a week,
/// each with its work, and the queue refuses more than it holds.
#[tokio::test]
async fn deliveries_are_remembered_for_at_least_72_hours() {
    use landfall_server::forge::webhook::DELIVERY_MEMORY_MS;
    use landfall_server::ledger::Acceptance::{Duplicate, Full, Queued};
    const HOUR: i64 = 3600 * 1000;
    for (backend, database) in all_databases().await {
        let ledger = Ledger::open(&database.url).await.unwrap();
        let start = 1_700_000_000_000;
        let accept = |ledger: &Ledger, forge: &'static str, at: i64, capacity: i64| {
            let ledger = ledger.clone();
            async move { ledger.accept_delivery(forge, "d-1", at, DELIVERY_MEMORY_MS, "{}", capacity).await.unwrap() }
        };
        assert_eq!(accept(&ledger, "github", start, 10).await, Queued, "{backend}");
        assert_eq!(accept(&ledger, "github", start + HOUR, 10).await, Duplicate, "{backend}");
        assert_eq!(accept(&ledger, "gitlab", start, 1).await, Full, "{backend}: one piece of work waits already");
        assert_eq!(accept(&ledger, "gitlab", start, 10).await, Queued, "{backend}: per forge");
        let reopened = Ledger::open(&database.url).await.unwrap();
        assert_eq!(reopened.queued_forge_work().await.unwrap(), 2, "{backend}: the work outlives the process");
        let later = start + 72 * HOUR + 1;
        assert_eq!(accept(&reopened, "github", later, 10).await, Duplicate, "{backend}");
        let much_later = start + 8 * 24 * HOUR;
        assert_eq!(accept(&reopened, "github", much_later, 10).await, Queued, "{backend}: forgotten after a week");
        assert_eq!(reopened.deliveries_remembered("github").await.unwrap(), 1, "{backend}: pruned");
        let taken = reopened.take_forge_work(10, 3).await.unwrap();
        let ids: Vec<i64> = taken.work.iter().map(|(id, _)| *id).collect();
        assert_eq!((ids.len(), taken.abandoned.len()), (3, 0), "{backend}: {taken:?}");
        reopened.finish_forge_work(&ids).await.unwrap();
        assert_eq!(reopened.queued_forge_work().await.unwrap(), 0, "{backend}");
        ledger.close().await;
        reopened.close().await;
    }
}

/// Work that stops the process while it is handled (taken, never finished) is taken
/// alone after that, so it holds nothing else back, and is given up after three takes.
#[tokio::test]
async fn work_that_never_finishes_is_isolated_then_given_up() {
    use landfall_server::forge::webhook::DELIVERY_MEMORY_MS;
    for (backend, database) in all_databases().await {
        let ledger = Ledger::open(&database.url).await.unwrap();
        let start = 1_700_000_000_000;
        for (n, work) in ["poison", "fine-1", "fine-2"].into_iter().enumerate() {
            let delivery = format!("d-{n}");
            let accepted = ledger.accept_delivery("github", &delivery, start, DELIVERY_MEMORY_MS, work, 10);
            assert_eq!(accepted.await.unwrap(), landfall_server::ledger::Acceptance::Queued, "{backend}");
        }
        let works = |taken: &TakenWork| taken.work.iter().map(|(_, w)| w.clone()).collect::<Vec<_>>();
        // A first take gets the whole batch; the process then "crashes" (finishes nothing).
        let first = ledger.take_forge_work(10, 3).await.unwrap();
        assert_eq!(works(&first), ["poison", "fine-1", "fine-2"], "{backend}");
        // After the crash, attempted work comes one piece at a time, the oldest first.
        let second = ledger.take_forge_work(10, 3).await.unwrap();
        assert_eq!(works(&second), ["poison"], "{backend}");
        let third = ledger.take_forge_work(10, 3).await.unwrap();
        assert_eq!(works(&third), ["poison"], "{backend}: it crashed again");
        // Three takes and never finished: given up, and the rest is handled.
        let fourth = ledger.take_forge_work(10, 3).await.unwrap();
        let abandoned: Vec<&str> = fourth.abandoned.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(abandoned, ["poison"], "{backend}");
        assert_eq!(works(&fourth), ["fine-1"], "{backend}");
        ledger.finish_forge_work(&[fourth.work[0].0]).await.unwrap();
        let fifth = ledger.take_forge_work(10, 3).await.unwrap();
        assert_eq!((works(&fifth), fifth.abandoned.len()), (vec!["fine-2".to_string()], 0), "{backend}");
        ledger.finish_forge_work(&[fifth.work[0].0]).await.unwrap();
        assert_eq!(ledger.queued_forge_work().await.unwrap(), 0, "{backend}");
        assert!(ledger.take_forge_work(10, 3).await.unwrap().work.is_empty(), "{backend}");
        ledger.close().await;
    }
}

/// A delivery answered 202 by a process that stopped before handling it: its work is in
/// the ledger, and the next `landfall serve` does it.
#[tokio::test(flavor = "multi_thread")]
async fn work_queued_before_a_stop_is_done_after_the_next_start() {
    use landfall_server::forge::PullRequestDetails;
    use landfall_server::forge::webhook::DELIVERY_MEMORY_MS;
    use landfall_server::forge::worker::{Job, Work};
    for (backend, database) in all_databases().await {
        let work = tempfile::tempdir().unwrap();
        let repo = work.path().join("shop-api");
        std::fs::create_dir(&repo).unwrap();
        make_history(&repo);
        let ledger = Ledger::open(&database.url).await.unwrap();
        let queued = Work {
            forge: "github".into(),
            repository: "shop-api".into(),
            project: "acme/shop-api".into(),
            job: Job::Merged {
                details: PullRequestDetails {
                    number: 88,
                    title: Some("SHOP-12 gift cards".into()),
                    author: Some("dana".into()),
                    merged_at: Some(1_714_560_000_000),
                    ..PullRequestDetails::default()
                },
                refresh: false,
            },
        };
        let text = serde_json::to_string(&queued).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        ledger.accept_delivery("github", "d-88", now, DELIVERY_MEMORY_MS, &text, 10).await.unwrap();

        let config = work.path().join("landfall.toml");
        let text = format!(
            "{}\n[[forge]]\nname = \"github\"\nkind = \"github\"\nurl = \"https://github.invalid\"\n",
            repository_config(&repo, "github", "acme/shop-api")
        );
        std::fs::write(&config, text).unwrap();
        let server = Server::start(&["--config", config.to_str().unwrap(), "--database-url", database.url.expose()]);
        let card = eventually("the queued pull request", || async {
            let (status, card) = get(&server, "/api/v1/pull-requests/shop-api/88").await;
            (status == 200 && card["title"].is_string()).then_some(card)
        })
        .await;
        assert_eq!((card["title"].as_str(), card["author"].as_str()), (Some("SHOP-12 gift cards"), Some("dana")));
        eventually("the queue emptied", || async { (ledger.queued_forge_work().await.unwrap() == 0).then_some(()) })
            .await;
        drop(server);
        ledger.close().await;
        eprintln!("{backend}: queued work done after a restart");
    }
}

/// `landfall ingest` describes the pull requests the commits name, as `serve` does after
/// a sync, and says so per repository.
#[tokio::test(flavor = "multi_thread")]
async fn ingest_describes_pull_requests_from_the_forge() {
    let emulator =
        GitHub::start(github::Options { tokens: vec![GITHUB_TOKEN.into()], ..Default::default() }).await.unwrap();
    for (number, title) in [(12, "SHOP-2 checkout form"), (13, "Show totals")] {
        let pull = github::PullRequest {
            number,
            title: title.into(),
            author: "alice".into(),
            merged_at: Some("2024-01-02T09:00:00Z".into()),
            ..Default::default()
        };
        emulator.insert_pull_request("acme/shop-api", &pull);
    }
    for (backend, database) in all_databases().await {
        let work = tempfile::tempdir().unwrap();
        let repo = work.path().join("shop-api");
        std::fs::create_dir(&repo).unwrap();
        make_history(&repo);
        let config = work.path().join("landfall.toml");
        let text = format!(
            "{}\n[[forge]]\nname = \"github\"\nkind = \"github\"\nurl = \"{}\"\ntoken_env = \"GITHUB_TOKEN\"\n",
            repository_config(&repo, "github", "acme/shop-api"),
            emulator.url()
        );
        std::fs::write(&config, text).unwrap();
        let args = ["ingest", "--config", config.to_str().unwrap(), "--database-url", database.url.expose()];
        let output = landfall_tests::run(work.path(), &args, &[("GITHUB_TOKEN", GITHUB_TOKEN)]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{backend}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("shop-api: 2 pull requests described by github"), "{backend}: {stdout}");
        let ledger = Ledger::open(&database.url).await.unwrap();
        let card = ledger.pull_request_card("shop-api", 12).await.unwrap().expect("pull request 12");
        assert_eq!(card.title.as_deref(), Some("SHOP-2 checkout form"), "{backend}");
        ledger.close().await;

        let output = landfall_tests::landfall(work.path()).args(args).env_remove("GITHUB_TOKEN").output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{backend}");
        assert!(stdout.contains("pull requests not described: forge `github` has no token"), "{backend}: {stdout}");
    }
}
