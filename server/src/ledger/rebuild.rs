//! Schema changes SQLite's `ALTER TABLE` cannot make, done the way SQLite documents
//! ("Making other kinds of table schema changes"): with foreign keys off, a new table
//! is filled from the old one in a single transaction, the old one dropped and the new
//! one renamed into its place, its indexes made again, and the foreign keys checked
//! before the commit.
//!
//! sqlx runs every SQLite migration inside a transaction, where SQLite ignores
//! `PRAGMA foreign_keys = OFF`; with foreign keys on, dropping `deployments` would
//! cascade to every table that refers to it. So this runs after the migrations, on a
//! connection of its own that never goes back to the pool.

use sqlx::{Connection, SqliteConnection, SqlitePool};

use super::LedgerError;

/// The constraint migration `20261129000012` replaced with a unique index that also
/// holds the application's incarnation.
const OLD_DEPLOYMENT_KEY: &str = "UNIQUE (application_id, history_id)";

/// Removes `deployments`' old `UNIQUE (application_id, history_id)` if the table still
/// has it; does nothing (one catalogue read) once it is gone.
pub(super) async fn drop_old_deployment_key(pool: &SqlitePool) -> Result<(), LedgerError> {
    let table: Option<String> =
        sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'deployments'")
            .fetch_optional(pool)
            .await?;
    let Some(table) = table else { return Ok(()) };
    let Some(rebuilt) = without_constraint(&table, OLD_DEPLOYMENT_KEY) else { return Ok(()) };
    let rebuilt = rebuilt.replacen("CREATE TABLE deployments", "CREATE TABLE deployments_rebuilt", 1);
    if !rebuilt.starts_with("CREATE TABLE deployments_rebuilt") {
        return Err(LedgerError::Invalid(format!("unexpected definition of table deployments: {table}")));
    }
    let mut connection = pool.acquire().await?.detach();
    let result = rebuild(&mut connection, &rebuilt).await;
    // The connection ran with foreign keys off; it is closed rather than reused.
    let closed = connection.close().await;
    result?;
    closed?;
    Ok(())
}

async fn rebuild(connection: &mut SqliteConnection, create: &str) -> Result<(), LedgerError> {
    sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *connection).await?;
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'deployments' AND sql IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(create).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO deployments_rebuilt SELECT * FROM deployments").execute(&mut *tx).await?;
    sqlx::query("DROP TABLE deployments").execute(&mut *tx).await?;
    sqlx::query("ALTER TABLE deployments_rebuilt RENAME TO deployments").execute(&mut *tx).await?;
    for index in &indexes {
        sqlx::query(index).execute(&mut *tx).await?;
    }
    // Its first column names the table holding a reference that points nowhere.
    let mut broken: Vec<String> = sqlx::query_scalar("PRAGMA foreign_key_check").fetch_all(&mut *tx).await?;
    if !broken.is_empty() {
        broken.dedup();
        return Err(LedgerError::Invalid(format!(
            "rebuilding table deployments would break references from {}; nothing was changed",
            broken.join(", ")
        )));
    }
    tx.commit().await?;
    Ok(())
}

/// `create` without the table constraint `constraint` and the comma before it; `None`
/// when it does not hold it.
fn without_constraint(create: &str, constraint: &str) -> Option<String> {
    let at = create.find(constraint)?;
    let comma = create[..at].trim_end().strip_suffix(',')?.len();
    Some(format!("{}{}", &create[..comma], &create[at + constraint.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constraint_and_its_comma_are_cut_and_later_columns_kept() {
        let create = "CREATE TABLE deployments (\n    id INTEGER PRIMARY KEY,\n    phase TEXT,\n    \
                      UNIQUE (application_id, history_id)\n, sources_version INTEGER NOT NULL DEFAULT 0)";
        assert_eq!(
            without_constraint(create, OLD_DEPLOYMENT_KEY).as_deref(),
            Some(
                "CREATE TABLE deployments (\n    id INTEGER PRIMARY KEY,\n    phase TEXT\n, sources_version INTEGER NOT NULL DEFAULT 0)"
            )
        );
        assert_eq!(without_constraint("CREATE TABLE deployments (id INTEGER)", OLD_DEPLOYMENT_KEY), None);
    }
}
