//! `landfall ingest` over real Git repositories made by the test: merges, squashes, a
//! force-push, a message that is not UTF-8, a 1 MB message, an empty repository and a
//! folder that is not a repository; on SQLite and PostgreSQL.

use std::path::{Path, PathBuf};

use landfall_server::ledger::Ledger;
use landfall_tests::git::{commit, git, make_history};
use landfall_tests::{TestDatabase, all_databases, run};

fn config(dir: &Path, database: &TestDatabase, repositories: &[(&str, &Path)]) -> PathBuf {
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

/// A work folder holding the story's `shop-api` repository (see `make_history`) and a
/// configuration that reads it into `database`: (folder, repository, its head, configuration).
fn shop_api(database: &TestDatabase) -> (tempfile::TempDir, PathBuf, String, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop-api");
    std::fs::create_dir(&repo).unwrap();
    let head = make_history(&repo);
    let config = config(work.path(), database, &[("shop-api", &repo)]);
    (work, repo, head, config)
}

fn ingest(dir: &Path, config: &Path) -> (bool, String) {
    let output = run(dir, &["ingest", "--config", config.to_str().unwrap()], &[]);
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn story(backend: &str, database: TestDatabase) {
    let (work, repo, head, config) = shop_api(&database);

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

/// The history tables' indexes as the database's catalog has them: name, definition and
/// (on PostgreSQL, where building an index again gives it a new one) object id.
async fn history_indexes(backend: &str, database: &TestDatabase) -> Vec<(String, String, i64)> {
    use sqlx::Connection;
    let tables = "('commits', 'commit_parents', 'commit_features', 'pull_requests', 'pull_request_features',
                   'commit_landings')";
    if backend == "sqlite" {
        let mut connection = sqlx::SqliteConnection::connect_with(&database.sqlite_options()).await.unwrap();
        let sql = format!(
            "SELECT name, sql, 0 FROM sqlite_master
             WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN {tables} ORDER BY name"
        );
        sqlx::query_as(&sql).fetch_all(&mut connection).await.unwrap()
    } else {
        let mut connection = sqlx::PgConnection::connect(database.url.expose()).await.unwrap();
        let sql = format!(
            "SELECT indexname::text, indexdef, indexname::regclass::oid::bigint FROM pg_indexes
             WHERE schemaname = current_schema() AND tablename IN {tables} AND indexname NOT LIKE '%_pkey'
               AND indexname NOT LIKE '%_key'
             ORDER BY 1"
        );
        sqlx::query_as(&sql).fetch_all(&mut connection).await.unwrap()
    }
}

fn definitions(indexes: &[(String, String, i64)]) -> Vec<(&str, &str)> {
    indexes.iter().map(|(name, definition, _)| (name.as_str(), definition.as_str())).collect()
}

/// A first ingest into an empty ledger stores the history without its secondary indexes
/// and builds them once it is in: afterwards each is as the migrations wrote it. A
/// process stopped in between leaves their definitions behind, and the next start builds
/// them. A ledger that holds commits keeps its indexes.
#[tokio::test]
async fn a_first_ingest_builds_the_indexes_it_deferred_on_every_backend() {
    for (backend, database) in all_databases().await {
        let ledger = Ledger::open(&database.url).await.unwrap();
        let migrated = history_indexes(backend, &database).await;
        let names: Vec<&str> = migrated.iter().map(|(name, ..)| name.as_str()).collect();
        assert!(names.contains(&"commits_sha") && names.contains(&"commit_features_feature"), "{backend}: {names:?}");

        assert!(ledger.defer_history_indexes().await.unwrap(), "{backend}: an empty ledger defers them");
        let deferred = history_indexes(backend, &database).await;
        assert!(definitions(&deferred).is_empty(), "{backend}: {:?}", definitions(&deferred));
        ledger.close().await;
        let ledger = Ledger::open(&database.url).await.unwrap();
        let restarted = history_indexes(backend, &database).await;
        assert_eq!(definitions(&restarted), definitions(&migrated), "{backend}: the next start built them");

        let (work, _, _, config) = shop_api(&database);
        let (ok, text) = ingest(work.path(), &config);
        assert!(ok, "{backend}: {text}");
        let ingested = history_indexes(backend, &database).await;
        assert_eq!(definitions(&ingested), definitions(&migrated), "{backend}: the ingest built them");
        if backend == "postgres" {
            for (before, after) in restarted.iter().zip(&ingested) {
                assert_ne!(before.2, after.2, "{backend}: {} was built again by the ingest", before.0);
            }
        }

        assert!(!ledger.defer_history_indexes().await.unwrap(), "{backend}: a ledger with commits keeps them");
        assert_eq!(history_indexes(backend, &database).await, ingested, "{backend}");
        let counts = ledger.counts().await.unwrap();
        assert_eq!((counts.commits, counts.features, counts.pull_requests), (6, 5, 2), "{backend}");
        ledger.close().await;
    }
}

#[tokio::test]
async fn commit_details_are_kept_exactly() {
    let database = TestDatabase::sqlite();
    let (work, _, _, config) = shop_api(&database);
    assert!(ingest(work.path(), &config).0);

    let mut connection =
        <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&database.sqlite_options()).await.unwrap();
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
async fn a_repository_s_own_pull_request_patterns_are_read() {
    let database = TestDatabase::sqlite();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("billing");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    commit(&repo, "a.txt", b"Merged PR 4312: SHOP-8 invoices in euros\n");
    let file = config(work.path(), &database, &[("billing", &repo)]);
    let text = std::fs::read_to_string(&file).unwrap() + "pull_request_patterns = [\"Merged PR {number}:\"]\n";
    std::fs::write(&file, text).unwrap();
    let (ok, text) = ingest(work.path(), &file);
    assert!(ok && text.contains("1 new commits, 1 features, 1 pull requests"), "{text}");
    let ledger = Ledger::open(&database.url).await.unwrap();
    let card = ledger.pull_request_card("billing", 4312).await.unwrap().expect("PR 4312 from the pattern");
    assert_eq!(card.features[0].key, "SHOP-8");
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
async fn a_history_git_cannot_read_fails_by_name_and_is_walked_again_once_mended() {
    let database = TestDatabase::sqlite();
    let (work, repo, _, config_file) = shop_api(&database);
    assert!(ingest(work.path(), &config_file).0);

    // Two new commits, the older of which git can no longer read (its object is gone).
    commit(&repo, "a.txt", b"SHOP-8 first\n");
    let lost = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    commit(&repo, "b.txt", b"SHOP-9 second\n");
    let object = repo.join(".git/objects").join(&lost[..2]).join(&lost[2..]);
    let aside = work.path().join("object");
    std::fs::rename(&object, &aside).unwrap();
    let (ok, text) = ingest(work.path(), &config_file);
    assert!(!ok, "{text}");
    assert!(text.contains("shop-api: failed: `git log` failed:"), "{text}");
    let ledger = Ledger::open(&database.url).await.unwrap();
    assert_eq!(ledger.counts().await.unwrap().commits, 6, "nothing half-read is stored");

    // Mended, the next pass walks both from the tip it kept.
    std::fs::rename(&aside, &object).unwrap();
    let (ok, text) = ingest(work.path(), &config_file);
    assert!(ok && text.contains("shop-api: 2 new commits, 2 features"), "{text}");
    assert_eq!(ledger.counts().await.unwrap().commits, 8);
    ledger.close().await;
}

#[tokio::test]
async fn a_missing_branch_names_the_branches_there_are() {
    let database = TestDatabase::sqlite();
    let (work, repo, _, config_file) = shop_api(&database);
    // HEAD names a branch with no commits, as in a bare repository filled by an import.
    git(&repo, &["symbolic-ref", "HEAD", "refs/heads/master"]);
    let (ok, text) = ingest(work.path(), &config_file);
    assert!(!ok);
    assert!(text.contains("branch `master` does not exist") && text.contains("SHOP-2-checkout, main"), "{text}");
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let overview = landfall_tests::overview(&server).await;
        if overview["counts"]["commits"] == 6 {
            assert_eq!(overview["counts"]["features"], 4, "{overview}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no background sync within a minute: {overview}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
