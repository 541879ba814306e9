//! The ledger: Landfall's permanent record of facts, on SQLite (the embedded default) or
//! PostgreSQL (chosen by the URL's scheme).
//!
//! Queries are written once and run on either back end: the SQL sticks to what both
//! accept (`$N` parameters, `ON CONFLICT … DO UPDATE`, `RETURNING`), times are integer
//! milliseconds, and [`on_pool!`] instantiates each query for the pool in use. Facts
//! that belong together are written in one transaction.

mod ancestry;
pub mod application_views;
mod applications;
pub mod audit;
pub mod cards;
mod changes;
mod facts;
mod forge;
pub mod jira;
pub mod presence;
pub mod questions;
mod reads;
mod rebuild;
mod repositories;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::config::{DatabaseKind, DatabaseUrl};

pub use applications::ClusterApplication;
pub use facts::{
    ApplicationFact, BuildFact, CommitFact, DeploymentFact, EnvironmentFact, FeatureFact, ImageRef, PersonTime,
    PipelineRunFact, PipelineStepFact, PullRequestFact, RepositoryFact, ResourceFact, STEP_KINDS,
};
pub use forge::{Acceptance, TakenWork};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How much of the SQLite ledger file readers map into memory instead of copying pages
/// in with `read` (<https://www.sqlite.org/mmap.html>). Address space, not memory: the
/// pages are the OS's file cache, shared by every connection.
const SQLITE_MMAP_BYTES: &str = "1073741824";

/// Rollback plans, kept on SQLite in a database file of their own (the ledger's path
/// with `-plans` appended), attached to every connection as `plans`. A plan is written
/// with every preview, and on SQLite a write makes every other connection throw away
/// what it has read of that file (its page cache and its memory mapping): with the
/// plans beside the facts, each preview slowed the next reads of every connection.
/// Statements name the table without a schema; SQLite finds it in `plans`, as `main`
/// has none (migration 20261203000035 moved it). Created here rather than in a
/// migration, so that a ledger copied without this file still takes previews.
const SQLITE_PLANS_SCHEMA: &str = "PRAGMA plans.journal_mode = WAL;
PRAGMA plans.synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS plans.rollback_plans (
    id          INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    environment TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    plan        TEXT    NOT NULL,
    executed_at INTEGER
);";

/// Attaches the rollback plans' database to a new SQLite connection as `plans`.
async fn attach_plans(connection: &mut sqlx::SqliteConnection, file: String) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    connection.execute(sqlx::query("ATTACH DATABASE $1 AS plans").bind(file)).await?;
    connection.execute(SQLITE_PLANS_SCHEMA).await.map(drop)
}

/// The file of a SQLite ledger's rollback plans (see [`SQLITE_PLANS_SCHEMA`]): beside
/// the ledger, or for a ledger in memory, in memory too and shared by the pool.
fn sqlite_plans_file(options: &SqliteConnectOptions, url: &DatabaseUrl) -> String {
    let ledger = options.get_filename().to_string_lossy();
    let in_memory = ledger.starts_with("file:sqlx-in-memory-") || url.expose().contains("mode=memory");
    match ledger.strip_prefix("file:") {
        Some(name) if in_memory => format!("file:{name}-plans?mode=memory&cache=shared"),
        _ => format!("{ledger}-plans"),
    }
}

/// How long start-up waits for the database before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled PostgreSQL connection idle this long is pinged before it is handed out, so
/// that one the server dropped meanwhile (a restart, an idle timeout) is replaced rather
/// than failing a request. One used more recently is not: sqlx would otherwise ping before
/// every statement, a round trip each, a dozen in a rollback plan. (sqlx also pings every
/// connection given back, and closes one that fails.)
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot open the database {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("cannot apply the database migrations to {url}: {reason}")]
    Migration { url: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same expression against whichever pool the ledger holds; `$p` is bound to
/// the concrete pool in each arm, so each query is type-checked for both back ends.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            $crate::ledger::Pool::Sqlite($p) => $body,
            $crate::ledger::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Decodes the rows of a SQLite read that asked for them as one JSON array
/// (`SELECT json_group_array(json_array(…))`). SQLite's driver hands each result row
/// from its worker thread to the runtime separately, a thread wake-up per row: for a
/// hundred rows that was two thirds of the query's time; one row costs one wake-up.
pub(crate) fn rows_from_json<T: serde::de::DeserializeOwned>(array: &str) -> Result<Vec<T>, LedgerError> {
    serde_json::from_str(array).map_err(|error| LedgerError::Database(sqlx::Error::Decode(Box::new(error))))
}

/// The SQLite statement that returns the rows of `{with} SELECT {columns} {from}`
/// (ordered by `order`, when not empty) as one JSON array, for [`rows_from_json`].
pub(crate) fn json_rows_sql(with: &str, columns: &str, from: &str, order: &str) -> String {
    format!("{with} SELECT json_group_array(json_array({columns}){}) {from}", order_by(order))
}

/// The same rows as [`json_rows_sql`], one row each.
pub(crate) fn plain_rows_sql(with: &str, columns: &str, from: &str, order: &str) -> String {
    format!("{with} SELECT {columns} {from}{}", order_by(order))
}

/// A `SELECT` of the rows of a list bound as one parameter, `$param`, holding a JSON
/// array ([`json_list`]): `columns` name each column and give its PostgreSQL type
/// (`bigint` or `text`). One column reads an array of values, several an array of arrays.
/// Unlike one parameter per item, the statement's text is the same whatever the list's
/// length, so each pooled connection prepares it once rather than once per length, and
/// no list runs into a back end's bound on parameters.
pub(crate) fn listed(pool: &Pool, param: usize, columns: &[(&str, &str)]) -> String {
    let one = columns.len() == 1;
    let picked: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, pg_type))| match pool {
            Pool::Sqlite(_) if one => format!("value AS {name}"),
            Pool::Sqlite(_) => format!("value ->> {i} AS {name}"),
            Pool::Postgres(_) if one => format!("(e #>> '{{}}')::{pg_type} AS {name}"),
            Pool::Postgres(_) => format!("(e ->> {i})::{pg_type} AS {name}"),
        })
        .collect();
    match pool {
        Pool::Sqlite(_) => format!("SELECT {} FROM json_each(${param})", picked.join(", ")),
        Pool::Postgres(_) => format!("SELECT {} FROM jsonb_array_elements(${param}::jsonb) AS e", picked.join(", ")),
    }
}

/// `column` is one of the items of a list bound as one JSON array, `$param` (see
/// [`listed`]), of PostgreSQL type `pg_type`. PostgreSQL plans `IN (SELECT … FROM
/// jsonb_array_elements(…))` as a hash join against a scan of the whole table, as it
/// cannot know the list is short; `= ANY(ARRAY(…))` it answers with index lookups.
pub(crate) fn is_listed(pool: &Pool, column: &str, param: usize, pg_type: &str) -> String {
    match pool {
        Pool::Sqlite(_) => format!("{column} IN (SELECT value FROM json_each(${param}))"),
        Pool::Postgres(_) => {
            format!("{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(${param}::jsonb)::{pg_type}))")
        }
    }
}

/// Items as one JSON array: the parameter [`listed`] reads, and how lists are stored.
pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("ids, keys and names serialise to JSON")
}

fn order_by(order: &str) -> String {
    if order.is_empty() { String::new() } else { format!(" ORDER BY {order}") }
}

/// Reads the rows of `{with} SELECT {columns} {from} ORDER BY {order}` (any of `with`
/// and `order` may be empty) into a `Vec` of tuples, the query's parameters bound by
/// `$bind` on the query `$q`: on SQLite as one JSON array ([`rows_from_json`]), on
/// PostgreSQL, which streams rows over its socket, row by row. Columns must decode
/// alike from both, so booleans are read as `CAST(… AS INTEGER)`, into `i32`.
macro_rules! read_rows {
    ($ledger:expr, $with:expr, $columns:expr, $from:expr, $order:expr, |$q:ident| $bind:expr) => {
        match $ledger.pool() {
            $crate::ledger::Pool::Sqlite(p) => {
                let sql = $crate::ledger::json_rows_sql($with, $columns, $from, $order);
                let $q = sqlx::query_scalar(&sql);
                let array: String = $bind.fetch_one(p).await?;
                $crate::ledger::rows_from_json(&array)?
            }
            $crate::ledger::Pool::Postgres(p) => {
                let sql = $crate::ledger::plain_rows_sql($with, $columns, $from, $order);
                let $q = sqlx::query_as(&sql);
                $bind.fetch_all(p).await?
            }
        }
    };
}
pub(crate) use read_rows;

/// Starts a transaction that will write. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), so that a second writer (two Argo CD watches, a sync and a
/// report) waits for the busy timeout instead of failing with "database is locked" when
/// its read snapshot went stale mid-transaction.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// Which back end a transaction runs on, for the few statements whose shape differs
/// between SQLite and PostgreSQL inside code written once for both (`on_pool!`).
pub(crate) trait Backend: sqlx::Database {
    const SQLITE: bool;
}

impl Backend for sqlx::Sqlite {
    const SQLITE: bool = true;
}

impl Backend for sqlx::Postgres {
    const SQLITE: bool = false;
}

pub(crate) fn is_sqlite<DB: Backend>(_: &sqlx::Transaction<'_, DB>) -> bool {
    DB::SQLITE
}

/// A handle to the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
    url: DatabaseUrl,
    /// `[features] exclude_not_found`: keys Jira does not know are left out of reads.
    exclude_not_found: bool,
    /// Per environment, whether it held many of the applications when last counted, and
    /// when: SQLite's plan for question 7 depends on it (see `environment_changes`).
    application_shares: Arc<Mutex<HashMap<i64, (Instant, bool)>>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("url", &self.url).finish_non_exhaustive()
    }
}

/// What `/readyz` reports about the ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    pub backend: &'static str,
    pub reachable: bool,
    pub migrations_expected: i64,
    pub migrations_applied: i64,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.reachable && self.migrations_applied >= self.migrations_expected
    }
}

impl Ledger {
    /// Connects (creating a SQLite file if missing) and checks the database answers.
    /// Does not migrate: see [`Ledger::migrate`].
    pub async fn connect(url: &DatabaseUrl) -> Result<Ledger, LedgerError> {
        let unreachable =
            |error: sqlx::Error| LedgerError::Unreachable { url: url.redacted(), reason: describe_sqlx(&error) };
        let pool = match url.kind() {
            DatabaseKind::Sqlite => {
                let options = SqliteConnectOptions::from_str(url.expose())
                    .map_err(unreachable)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
                    // Each pooled connection has its own small page cache, and requests
                    // hop between connections, so without a mapping most page reads were
                    // `pread` copies from the OS cache (a sixth of a card's time).
                    .pragma("mmap_size", SQLITE_MMAP_BYTES);
                let plans = sqlite_plans_file(&options, url);
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    // A connection to a local file is not lost while idle, and a ping is a
                    // hand-off to the connection's worker thread and back per statement.
                    .test_before_acquire(false)
                    .after_connect(move |connection, _| Box::pin(attach_plans(connection, plans.clone())))
                    .connect_with(options)
                    .await
                    .map_err(unreachable)?;
                Pool::Sqlite(pool)
            }
            DatabaseKind::Postgres => {
                let options = PgConnectOptions::from_str(url.expose()).map_err(unreachable)?;
                // One direct attempt first: a pool retries until its timeout and then only
                // says it timed out, hiding the cause (refused, bad password, no database).
                let probe = sqlx::PgConnection::connect_with(&options).await.map_err(unreachable)?;
                probe.close().await.map_err(unreachable)?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .test_before_acquire(false)
                    // A connection that fails its ping is closed and another opened.
                    .before_acquire(|connection, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PING_AFTER_IDLE {
                                connection.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(unreachable)?;
                Pool::Postgres(pool)
            }
        };
        Ok(Ledger { pool, url: url.clone(), exclude_not_found: false, application_shares: Arc::default() })
    }

    /// Connects and brings the schema up to date: what `landfall serve` does at start-up.
    pub async fn open(url: &DatabaseUrl) -> Result<Ledger, LedgerError> {
        let ledger = Ledger::connect(url).await?;
        ledger.migrate().await?;
        Ok(ledger)
    }

    /// Leaves keys Jira has answered "not found" for out of every feature list, card,
    /// presence and answer (`[features] exclude_not_found`). What is stored is unchanged,
    /// so turning it off brings them back.
    pub fn excluding_not_found(mut self, exclude: bool) -> Ledger {
        self.exclude_not_found = exclude;
        self
    }

    /// A condition to append to a query over `features f` that leaves out the keys this
    /// ledger hides; empty when it hides none.
    pub(crate) fn listed_features(&self) -> &'static str {
        if self.exclude_not_found { " AND NOT f.not_found" } else { "" }
    }

    pub async fn migrate(&self) -> Result<(), LedgerError> {
        let failed = |error: sqlx::migrate::MigrateError| LedgerError::Migration {
            url: self.url.redacted(),
            reason: error.to_string(),
        };
        let upkeep_failed =
            |error: LedgerError| LedgerError::Migration { url: self.url.redacted(), reason: error.to_string() };
        match &self.pool {
            Pool::Sqlite(pool) => {
                SQLITE_MIGRATIONS.run(pool).await.map_err(failed)?;
                rebuild::drop_old_deployment_key(pool).await.map_err(upkeep_failed)?;
            }
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await.map_err(failed)?,
        }
        // Indexes a first ingest dropped and did not build again: it was stopped half-way.
        self.restore_deferred_indexes().await.map(drop).map_err(upkeep_failed)
    }

    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Whether a SQLite ledger holds planner statistics (someone ran `ANALYZE` on it).
    /// Landfall never writes them: with them, the bundled SQLite (built with STAT4)
    /// prepares a statement again whenever a bound value it compares to an index changes,
    /// about 1 ms more per card (BENCHMARKS.md). PostgreSQL's are autovacuum's: `false`.
    pub async fn has_sqlite_statistics(&self) -> Result<bool, LedgerError> {
        let Pool::Sqlite(pool) = &self.pool else { return Ok(false) };
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('sqlite_stat1', 'sqlite_stat4')",
        )
        .fetch_one(pool)
        .await?;
        Ok(tables > 0)
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether the database answers and every migration this build knows is applied.
    pub async fn readiness(&self) -> Readiness {
        let expected = match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .count() as i64;
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let applied: Result<i64, sqlx::Error> = on_pool!(&self.pool, |p| sqlx::query_scalar(sql).fetch_one(p).await);
        let reachable = match &applied {
            Ok(_) => true,
            // The migrations table is missing but the database answered.
            Err(sqlx::Error::Database(_)) => true,
            Err(_) => false,
        };
        Readiness {
            backend: self.backend(),
            reachable,
            migrations_expected: expected,
            migrations_applied: applied.unwrap_or(0),
        }
    }

    pub async fn close(&self) {
        on_pool!(&self.pool, |p| p.close().await)
    }
}

/// Connection errors without the URL (sqlx never adds it, but be explicit about what
/// is shown) and with the underlying cause.
fn describe_sqlx(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::PoolTimedOut => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_read_as_one_json_array_equal_the_rows_read_one_by_one() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        // Text that JSON must escape, integers beyond a double's exact range, NULL.
        // A boolean read as the macro asks, `CAST(… AS INTEGER)`.
        let with = "WITH flags (n, flag) AS (VALUES (1, TRUE), (-3, FALSE))";
        let from = "FROM (SELECT 1 AS n, 'plain' AS t, NULL AS o
                          UNION ALL SELECT 9007199254740993, 'quote ' || char(34) || ' back' || char(92)
                                    || ' line' || char(10) || ' tab' || char(9) || ' ünï 😀', 'x'
                          UNION ALL SELECT -3, '', '{\"not\": \"json\"}') v LEFT JOIN flags f ON f.n = v.n";
        let columns = "v.n, t, o, CAST(f.flag AS INTEGER)";
        type Row = (i64, String, Option<String>, Option<i32>);
        let one_by_one: Vec<Row> =
            sqlx::query_as(&plain_rows_sql(with, columns, from, "v.n DESC")).fetch_all(&pool).await.unwrap();
        let array: String =
            sqlx::query_scalar(&json_rows_sql(with, columns, from, "v.n DESC")).fetch_one(&pool).await.unwrap();
        assert_eq!(rows_from_json::<Row>(&array).unwrap(), one_by_one);
        assert_eq!(
            one_by_one.iter().map(|row| (row.0, row.3)).collect::<Vec<_>>(),
            [(9007199254740993, None), (1, Some(1)), (-3, Some(0))]
        );

        let none: String = sqlx::query_scalar(&json_rows_sql(with, "v.n", &format!("{from} WHERE v.n = 0"), ""))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows_from_json::<(i64,)>(&none).unwrap(), vec![]);
    }

    /// A ledger in memory keeps its plans in memory too, seen by every pooled connection.
    #[tokio::test]
    async fn a_ledger_in_memory_shares_its_plans_between_connections() {
        let ledger = Ledger::open(&"sqlite::memory:".parse().unwrap()).await.unwrap();
        let plan = questions::RollbackPlan { environment: "dev".into(), target: "SHOP-1".into(), applications: vec![] };
        let id = ledger.store_rollback_plan(&plan, 1000).await.unwrap();
        let Pool::Sqlite(pool) = ledger.pool() else { unreachable!("a SQLite URL") };
        let (mut first, mut second) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
        for connection in [&mut first, &mut second] {
            let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollback_plans WHERE id = $1")
                .bind(id)
                .fetch_one(&mut **connection)
                .await
                .unwrap();
            assert_eq!(found, 1);
        }
    }
}
