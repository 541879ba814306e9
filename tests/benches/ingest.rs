//! Ingest benchmark (issue 3): a full ingest of a large generated history against
//! `git log --format=%H%n%B` over the same repository in the same run, then the
//! incremental ingest of one new commit. Prints figures; asserts nothing.
//!
//! ```text
//! cargo bench -p landfall-tests --bench ingest                  # 100,000 commits, SQLite
//! cargo bench -p landfall-tests --bench ingest -- --commits 20000
//! LANDFALL_TEST_DATABASE_URL=postgres://... cargo bench -p landfall-tests --bench ingest   # PostgreSQL too
//! ```

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use landfall_server::config::RepositoryConfig;
use landfall_server::correlate::FeatureProjects;
use landfall_server::ledger::Ledger;
use landfall_tests::TestDatabase;
use landfall_tests::git::generate_history;

fn git_log(path: &Path) -> (Duration, usize) {
    let started = Instant::now();
    let output = Command::new("git").arg("-C").arg(path).args(["log", "--format=%H%n%B", "main"]).output().unwrap();
    let elapsed = started.elapsed();
    assert!(output.status.success());
    (elapsed, output.stdout.len())
}

fn add_commit(path: &Path, n: usize) {
    let tip =
        String::from_utf8(Command::new("git").arg("-C").arg(path).args(["rev-parse", "main"]).output().unwrap().stdout)
            .unwrap();
    let tree = String::from_utf8(
        Command::new("git").arg("-C").arg(path).args(["rev-parse", "main^{tree}"]).output().unwrap().stdout,
    )
    .unwrap();
    let output = Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["commit-tree", tree.trim(), "-p", tip.trim(), "-m", &format!("SHOP-{n} one more (#{n})")])
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .unwrap();
    let sha = String::from_utf8(output.stdout).unwrap();
    let status = Command::new("git").arg("-C").arg(path).args(["update-ref", "refs/heads/main", sha.trim()]).status();
    assert!(status.unwrap().success());
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn run(backend: &str, database: TestDatabase, repo: &Path, data: &Path) {
    let ledger = Ledger::open(&database.url).await.unwrap();
    let config = RepositoryConfig {
        name: "big".into(),
        url: repo.display().to_string(),
        kind: Default::default(),
        branches: vec![],
        token_env: None,
        ssh_key: None,
        pull_request_patterns: vec![],
        forge: None,
        forge_project: None,
    };
    let projects = FeatureProjects::new(["SHOP"]);

    let (log, bytes) = git_log(repo);
    let started = Instant::now();
    let report = landfall_server::git::sync(&ledger, &config, data, &projects).await.unwrap();
    let ingest = started.elapsed();
    let (log_after, _) = git_log(repo);
    let log = log.min(log_after);
    println!(
        "{backend}: full ingest of {} commits ({} features, {} pull requests): {:.0} ms; \
         git log --format=%H%n%B: {:.0} ms ({bytes} bytes); ratio {:.1}x",
        report.new_commits,
        report.features,
        report.pull_requests,
        millis(ingest),
        millis(log),
        ingest.as_secs_f64() / log.as_secs_f64()
    );

    let mut incremental = Vec::new();
    for n in 0..20 {
        add_commit(repo, 900_000 + n);
        let started = Instant::now();
        let report = landfall_server::git::sync(&ledger, &config, data, &projects).await.unwrap();
        incremental.push(started.elapsed());
        assert_eq!(report.new_commits, 1);
    }
    incremental.sort();
    println!(
        "{backend}: incremental ingest of 1 new commit (20 runs): p50 {:.1} ms, max {:.1} ms",
        millis(incremental[incremental.len() / 2]),
        millis(*incremental.last().unwrap())
    );
    ledger.close().await;
}

fn main() {
    let commits =
        landfall_tests::bench_option("commits").map_or(100_000, |n| n.parse().expect("--commits takes a number"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    generate_history(&work.path().join("big.git"), commits);
    println!("generated {commits} commits with git fast-import in {:.0} ms", millis(started.elapsed()));
    runtime.block_on(async {
        let mut databases = vec![("sqlite", TestDatabase::sqlite())];
        if let Some(postgres) = TestDatabase::postgres().await {
            databases.push(("postgres", postgres));
        }
        for (index, (backend, database)) in databases.into_iter().enumerate() {
            // Each back end ingests its own copy, so both start from the same history.
            let copy = work.path().join(format!("copy-{index}.git"));
            let status = Command::new("cp").arg("-a").arg(work.path().join("big.git")).arg(&copy).status();
            assert!(status.unwrap().success());
            run(backend, database, &copy, &work.path().join(format!("data-{index}"))).await;
        }
    });
}
