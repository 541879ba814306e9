//! Shared helpers for the integration tests: start the real `landfall` binary on port 0
//! with its own data directory, run it with bad settings, and give each test a fresh
//! ledger on SQLite or (when `LANDFALL_TEST_DATABASE_URL` is set) PostgreSQL.

pub mod git;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use landfall_server::config::DatabaseUrl;
use landfall_server::serve::LISTENING_BANNER;

/// The variable naming the PostgreSQL server the suite may create schemas in.
pub const POSTGRES_VARIABLE: &str = "LANDFALL_TEST_DATABASE_URL";

/// The `landfall` binary of this build: `LANDFALL_BIN`, or the one beside the test
/// executable's `deps/` folder. `cargo test` does not rebuild it: run
/// `cargo build --workspace --all-targets` first (`.ci/test` does).
pub fn landfall_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("LANDFALL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = profile_dir.join(format!("landfall{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build --workspace --all-targets` (or set LANDFALL_BIN)",
        bin.display()
    );
    bin
}

/// A `landfall` command with a clean environment: no `LANDFALL_` variables leak in from
/// the caller, and no `landfall.toml` is picked up from the working directory.
pub fn landfall(workdir: &Path) -> Command {
    let mut command = Command::new(landfall_bin());
    command.current_dir(workdir);
    for (name, _) in std::env::vars() {
        if name.starts_with("LANDFALL_") {
            command.env_remove(name);
        }
    }
    command.env("NO_COLOR", "1");
    command
}

/// Runs `landfall` to completion with the given arguments and extra environment.
pub fn run(workdir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = landfall(workdir);
    command.args(args).envs(env.iter().copied()).stdin(Stdio::null());
    command.output().expect("run landfall")
}

/// Runs `landfall ingest` in `work` once, into `database`, over the sources that `toml`
/// configures (`[features]` and `[[repository]]` tables), and checks that it succeeded.
pub fn ingest_configured(work: &Path, database: &TestDatabase, toml: &str) {
    let config = work.join("ingest.toml");
    let settings =
        format!("database_url = \"{}\"\ndata_dir = \"{}\"\n", database.url.expose(), work.join("data").display());
    std::fs::write(&config, settings + toml).unwrap();
    let output = run(work, &["ingest", "--config", config.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Ingests the Git repository at `repo` into `database` as `shop-api`, with `SHOP-n` keys
/// for features, by `landfall ingest` run in `work` with a configuration written there.
pub fn ingest_shop_api(work: &Path, database: &TestDatabase, repo: &Path) {
    let sources = format!(
        "[features]\nprojects = [\"SHOP\"]\n\n[[repository]]\nname = \"shop-api\"\nurl = \"{}\"\n",
        repo.display()
    );
    ingest_configured(work, database, &sources);
}

/// A running `landfall serve`; stopped when dropped.
pub struct Server {
    child: Child,
    pub base_url: String,
    pub data_dir: PathBuf,
    _workdir: tempfile::TempDir,
}

impl Server {
    /// Starts `landfall serve` on 127.0.0.1:0 with a fresh data directory (so the
    /// embedded SQLite ledger is new) plus `args`.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let workdir = tempfile::tempdir().expect("temporary directory");
        let data_dir = workdir.path().join("data");
        let mut command = landfall(workdir.path());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start landfall serve");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(LISTENING_BANNER) {
                    let _ = sender.send(url.trim().to_string());
                }
            }
        });
        let base_url = match receiver.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("landfall serve did not report its address (exit: {status:?})");
            }
        };
        Server { child, base_url, data_dir, _workdir: workdir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The embedded ledger this server uses.
    pub fn sqlite_url(&self) -> DatabaseUrl {
        DatabaseUrl::sqlite_file(&self.data_dir.join("landfall.db"))
    }

    /// Waits for the process to exit on its own (after a signal, say).
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database for one test. SQLite lives in a temporary directory; PostgreSQL gets a
/// schema of its own on the server named by `LANDFALL_TEST_DATABASE_URL`.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = DatabaseUrl::sqlite_file(&dir.path().join("ledger.db"));
        TestDatabase { url, _dir: Some(dir) }
    }

    /// An SQLite ledger at `path`, kept after the run (a benchmark's, to ask it again).
    pub fn sqlite_at(path: &std::path::Path) -> TestDatabase {
        TestDatabase { url: DatabaseUrl::sqlite_file(path), _dir: None }
    }

    /// Connection options for this SQLite ledger, for a test that reads or shapes its
    /// tables directly (the file is created if missing). Panics for PostgreSQL.
    pub fn sqlite_options(&self) -> sqlx::sqlite::SqliteConnectOptions {
        use std::str::FromStr;
        sqlx::sqlite::SqliteConnectOptions::from_str(self.url.expose())
            .expect("a SQLite ledger's URL")
            .create_if_missing(true)
            .foreign_keys(true)
    }

    /// A pool on this SQLite ledger with only the migrations older than `version` run:
    /// the ledger as an earlier Landfall left it, for a test of what a later migration
    /// or start-up does to one.
    pub async fn sqlite_as_before(&self, version: i64) -> sqlx::SqlitePool {
        static ALL: sqlx::migrate::Migrator = sqlx::migrate!("../server/migrations/sqlite");
        let before = sqlx::migrate::Migrator {
            migrations: ALL.migrations.iter().filter(|m| m.version < version).cloned().collect(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        let pool = sqlx::SqlitePool::connect_with(self.sqlite_options()).await.expect("the SQLite ledger opens");
        before.run(&pool).await.expect("the older migrations run");
        pool
    }

    /// `None` when no PostgreSQL server is configured for the suite.
    pub async fn postgres() -> Option<TestDatabase> {
        let base = std::env::var(POSTGRES_VARIABLE).ok().filter(|url| !url.is_empty())?;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let schema =
            format!("t_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos % 1_000_000_000);
        let pool = sqlx::PgPool::connect(&base)
            .await
            .unwrap_or_else(|error| panic!("{POSTGRES_VARIABLE} is set but the server does not answer: {error}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&pool).await.expect("create test schema");
        pool.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        Some(TestDatabase { url: url.parse().expect("test database URL"), _dir: None })
    }
}

/// Every back end this run can test: SQLite always, PostgreSQL when configured.
pub async fn all_databases() -> Vec<(&'static str, TestDatabase)> {
    let mut databases = vec![("sqlite", TestDatabase::sqlite())];
    match TestDatabase::postgres().await {
        Some(postgres) => databases.push(("postgres", postgres)),
        None if std::env::var_os("CI").is_some() => {
            panic!("{POSTGRES_VARIABLE} must be set in CI: the PostgreSQL back end is tested on every run")
        }
        None => eprintln!("{POSTGRES_VARIABLE} is not set: the PostgreSQL back end is not tested in this run"),
    }
    databases
}

/// The value after `--NAME` on a benchmark's command line (`cargo bench … -- --NAME VALUE`).
pub fn bench_option(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let flag = format!("--{name}");
    args.iter().position(|a| *a == flag).and_then(|i| args.get(i + 1)).cloned()
}

/// Polls `check` every 100 ms until it returns `Some`, for up to 30 s; then fails naming `what`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Overview page's data, read through its server function as the browser does.
pub async fn overview(server: &Server) -> serde_json::Value {
    reqwest::Client::new()
        .post(server.url("/api/fn/overview"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("the overview server function answers")
        .json()
        .await
        .expect("the overview is JSON")
}
