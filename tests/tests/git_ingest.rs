//! `landfall ingest` over real Git repositories made by the test: merges, squashes, a
//! force-push, a message that is not UTF-8, a 1 MB message, an empty repository and a
//! folder that is not a repository; on SQLite and PostgreSQL.

use std::path::Path;
use std::process::Command;

use landfall_server::ledger::Ledger;
use landfall_tests::{TestDatabase, all_databases, run};

/// Runs git in `dir` with a fixed identity and clock, failing the test on error.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Alice Example")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "Bob Example")
        .env("GIT_COMMITTER_EMAIL", "bob@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-02T10:00:00+0130")
        .env("GIT_COMMITTER_DATE", "2024-01-02T11:00:00+0130")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn commit(dir: &Path, file: &str, message: &[u8]) -> String {
    std::fs::write(dir.join(file), format!("{}\n", message.len())).unwrap();
    git(dir, &["add", file]);
    std::fs::write(dir.join(".message"), message).unwrap();
    git(dir, &["commit", "--quiet", "--cleanup=verbatim", "-F", ".message"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A commit whose message is Latin-1 bytes with no encoding header: `git commit` would
/// repair it, so the object is written directly, as old tools and imports do.
fn commit_raw(dir: &Path, message: &[u8]) -> String {
    let tree = git(dir, &["rev-parse", "HEAD^{tree}"]);
    let parent = git(dir, &["rev-parse", "HEAD"]);
    let mut object = format!(
        "tree {tree}\nparent {parent}\nauthor Alice Example <alice@example.com> 1704189600 +0130\n\
         committer Bob Example <bob@example.com> 1704189600 +0130\n\n"
    )
    .into_bytes();
    object.extend_from_slice(message);
    let file = dir.join(".object");
    std::fs::write(&file, object).unwrap();
    let sha = git(dir, &["hash-object", "-t", "commit", "-w", "--literally", ".object"]);
    git(dir, &["update-ref", "refs/heads/main", &sha]);
    sha
}

/// main: SHOP-1 → (branch SHOP-2, merged as PR #12) → squash of PR #13 (SHOP-3).
fn make_history(dir: &Path) -> String {
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(dir.join(".gitignore"), ".message\n.object\n").unwrap();
    git(dir, &["add", ".gitignore"]);
    commit(dir, "cart.txt", b"SHOP-1: add the cart\n\nUses UTF-8 and SHA-256, which are not features.\n");
    git(dir, &["checkout", "--quiet", "-b", "SHOP-2-checkout"]);
    commit(dir, "checkout.txt", b"Checkout form for SHOP-2\n");
    git(dir, &["checkout", "--quiet", "main"]);
    git(
        dir,
        &["merge", "--quiet", "--no-ff", "-m", "Merge pull request #12 from acme/SHOP-2-checkout", "SHOP-2-checkout"],
    );
    commit(dir, "totals.txt", b"Show totals (#13)\n\n* SHOP-3 totals\n");
    commit_raw(dir, b"Caf\xe9 cr\xe8me for PAY-7\n");
    let big = format!("Huge message for SHOP-4\n\n{}\n", "x".repeat(1024 * 1024));
    commit(dir, "big.txt", big.as_bytes())
}

fn config(dir: &Path, database: &TestDatabase, repositories: &[(&str, &Path)]) -> std::path::PathBuf {
    let mut text = format!(
        "database_url = \"{}\"\ndata_dir = \"{}\"\n\n[features]\nprojects = [\"SHOP\", \"PAY\"]\n",
        database.url.expose(),
        dir.join("data").display()
    );
    for (name, path) in repositories {
        text.push_str(&format!("\n[[repository]]\nname = \"{name}\"\nurl = \"{}\"\n", path.display()));
    }
    let file = dir.join("landfall.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn ingest(dir: &Path, config: &Path) -> (bool, String) {
    let output = run(dir, &["ingest", "--config", config.to_str().unwrap()], &[]);
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn story(backend: &str, database: TestDatabase) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop-api");
    std::fs::create_dir(&repo).unwrap();
    let head = make_history(&repo);
    let config = config(work.path(), &database, &[("shop-api", &repo)]);

    let (ok, text) = ingest(work.path(), &config);
    assert!(ok, "{backend}: {text}");
    // 6 commits on main, counting the merged branch's commit and the merge itself.
    assert!(text.contains("shop-api: 6 new commits, 5 features, 2 pull requests"), "{backend}: {text}");

    let ledger = Ledger::open(&database.url).await.unwrap();
    let counts = ledger.counts().await.unwrap();
    assert_eq!((counts.commits, counts.features, counts.pull_requests), (6, 5, 2), "{backend}");
    let features: Vec<_> = ledger.features().await.unwrap().into_iter().map(|f| (f.key, f.commits)).collect();
    assert_eq!(
        features,
        [("PAY-7".into(), 1), ("SHOP-1".into(), 1), ("SHOP-2".into(), 2), ("SHOP-3".into(), 1), ("SHOP-4".into(), 1)],
        "{backend}: the merge commit's subject names SHOP-2 too"
    );

    // A second pass walks nothing.
    let (ok, text) = ingest(work.path(), &config);
    assert!(ok && text.contains("shop-api: 0 new commits"), "{backend}: {text}");

    // One more commit: only it is walked.
    commit(&repo, "more.txt", b"SHOP-5 follow-up\n");
    let (_, text) = ingest(work.path(), &config);
    assert!(text.contains("shop-api: 1 new commits, 1 features"), "{backend}: {text}");

    // A force-push replaces the last two commits: they are marked, not deleted.
    git(&repo, &["reset", "--quiet", "--hard", &format!("{head}~1")]);
    commit(&repo, "rewritten.txt", b"SHOP-6 rewritten history\n");
    let (_, text) = ingest(work.path(), &config);
    assert!(text.contains("1 new commits") && text.contains("(2 commits no longer reachable)"), "{backend}: {text}");
    assert_eq!(ledger.counts().await.unwrap().commits, 8, "{backend}: nothing deleted");
    let reachable = ledger.reachable_commits("shop-api").await.unwrap();
    assert_eq!(reachable.len(), 6, "{backend}");
    assert!(!reachable.contains(&head), "{backend}: the rewritten head is unreachable");

    // An empty repository and a folder that is not one sit beside it: the first syncs
    // with nothing, the second fails by name, and shop-api still syncs.
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    git(&empty, &["init", "--quiet"]);
    let plain = work.path().join("plain-folder");
    std::fs::create_dir(&plain).unwrap();
    let config =
        self::config(work.path(), &database, &[("empty", &empty), ("not-a-repo", &plain), ("shop-api", &repo)]);
    commit(&repo, "last.txt", b"SHOP-7 last\n");
    let (ok, text) = ingest(work.path(), &config);
    assert!(!ok, "{backend}: a failing source makes ingest exit non-zero");
    assert!(text.contains("empty: 0 new commits"), "{backend}: {text}");
    assert!(
        text.contains("not-a-repo: failed:") && text.contains("plain-folder is not a Git repository"),
        "{backend}: {text}"
    );
    assert!(text.contains("shop-api: 1 new commits"), "{backend}: {text}");
    assert!(text.contains("1 of 3 sources failed"), "{backend}: {text}");
    ledger.close().await;
}

#[tokio::test]
async fn ingest_walks_new_commits_and_survives_force_pushes_on_every_backend() {
    for (backend, database) in all_databases().await {
        story(backend, database).await;
    }
}

#[tokio::test]
async fn commit_details_are_kept_exactly() {
    let database = TestDatabase::sqlite();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop-api");
    std::fs::create_dir(&repo).unwrap();
    make_history(&repo);
    let config = config(work.path(), &database, &[("shop-api", &repo)]);
    assert!(ingest(work.path(), &config).0);

    let path = database.url.expose().trim_start_matches("sqlite://").to_string();
    let mut connection =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{path}")).await.unwrap();
    let rows: Vec<(String, String, i64, i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT author_name, committer_email, authored_at, author_offset_minutes, message, pull_request_number
         FROM commits ORDER BY committed_at, id",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let (author, committer, authored_at, offset, _, _) = &rows[0];
    assert_eq!((author.as_str(), committer.as_str()), ("Alice Example", "bob@example.com"));
    assert_eq!((*authored_at, *offset), (1_704_184_200_000, 90), "2024-01-02T10:00:00+01:30");
    let latin1 = rows.iter().find(|r| r.4.starts_with("Caf")).expect("the Latin-1 commit");
    assert_eq!(latin1.4, "Caf\u{fffd} cr\u{fffd}me for PAY-7", "invalid bytes are replaced, the rest kept");
    let big = rows.iter().find(|r| r.4.starts_with("Huge")).expect("the 1 MB commit");
    assert!(big.4.len() > 1024 * 1024);
    let merge = rows.iter().find(|r| r.4.starts_with("Merge pull request")).unwrap();
    assert_eq!(merge.5, Some(12));
    let squash = rows.iter().find(|r| r.4.starts_with("Show totals")).unwrap();
    assert_eq!(squash.5, Some(13));
}

#[tokio::test]
async fn urls_are_cloned_into_the_data_directory_and_fetched() {
    let database = TestDatabase::sqlite();
    let work = tempfile::tempdir().unwrap();
    let origin = work.path().join("origin");
    std::fs::create_dir(&origin).unwrap();
    let head = make_history(&origin);
    let url = format!("file://{}", origin.display());
    let config_file = work.path().join("landfall.toml");
    let data = work.path().join("data");
    std::fs::write(
        &config_file,
        format!(
            "database_url = \"{}\"\ndata_dir = \"{}\"\n[features]\nprojects = [\"SHOP\"]\n\n[[repository]]\nname = \"shop-api\"\nurl = \"{url}\"\n",
            database.url.expose(),
            data.display()
        ),
    )
    .unwrap();

    let (ok, text) = ingest(work.path(), &config_file);
    assert!(ok && text.contains("shop-api: 6 new commits"), "{text}");
    assert!(data.join("repositories/shop-api.git/HEAD").is_file(), "a bare clone in the data directory");

    // The origin is force-pushed; the next sync fetches it and marks what was dropped.
    git(&origin, &["reset", "--quiet", "--hard", &format!("{head}~1")]);
    commit(&origin, "again.txt", b"SHOP-8 after the force-push\n");
    let (ok, text) = ingest(work.path(), &config_file);
    assert!(ok && text.contains("1 new commits") && text.contains("(1 commits no longer reachable)"), "{text}");

    // The repository is stored without the path's credentials or anything else secret.
    let ledger = Ledger::open(&database.url).await.unwrap();
    assert_eq!(ledger.repository_names().await.unwrap(), ["shop-api"]);
}

#[tokio::test]
async fn a_missing_token_variable_is_reported_by_name() {
    let database = TestDatabase::sqlite();
    let work = tempfile::tempdir().unwrap();
    let config_file = work.path().join("landfall.toml");
    std::fs::write(
        &config_file,
        format!(
            "database_url = \"{}\"\ndata_dir = \"{}\"\n\n[[repository]]\nname = \"private\"\nurl = \"https://git.invalid/private.git\"\ntoken_env = \"PRIVATE_REPO_TOKEN_UNSET\"\n",
            database.url.expose(),
            work.path().join("data").display()
        ),
    )
    .unwrap();
    let (ok, text) = ingest(work.path(), &config_file);
    assert!(!ok);
    assert!(text.contains("private: failed: environment variable PRIVATE_REPO_TOKEN_UNSET"), "{text}");
}

#[tokio::test]
async fn serve_syncs_repositories_in_the_background() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop-api");
    std::fs::create_dir(&repo).unwrap();
    make_history(&repo);
    let config_file = work.path().join("landfall.toml");
    std::fs::write(
        &config_file,
        format!(
            "[features]\nprojects = [\"SHOP\"]\n\n[[repository]]\nname = \"shop-api\"\nurl = \"{}\"\n",
            repo.display()
        ),
    )
    .unwrap();
    let server = landfall_tests::Server::start(&["--config", config_file.to_str().unwrap()]);
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let overview: serde_json::Value = client
            .post(server.url("/api/fn/overview"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if overview["counts"]["commits"] == 6 {
            assert_eq!(overview["counts"]["features"], 4, "{overview}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no background sync within a minute: {overview}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
