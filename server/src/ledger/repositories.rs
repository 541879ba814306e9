//! What the Git connector keeps between syncs: each repository's branch tips, and which
//! commits are still reachable; and the history tables' indexes a first ingest defers.

use super::{BeginWrite, Ledger, LedgerError, Pool, is_listed, json_list, on_pool};

/// The secondary indexes of the history tables. Kept up to date row by row, they took a
/// third of a first ingest; built once after it, a tenth (BENCHMARKS.md). The unique
/// indexes stay: the ingest's upserts need them.
const HISTORY_INDEXES: [&str; 10] = [
    "commits_sha",
    "commits_repo_committed_at",
    "commits_pull_request",
    "commit_parents_parent",
    "pull_requests_merge_commit",
    "pull_requests_unfetched",
    "commit_features_feature",
    "pull_request_features_feature",
    "commit_landings_position",
    "commit_landings_sha",
];

impl Ledger {
    /// The branch tips recorded by the last sync, as `(ref name, sha)`.
    pub async fn repository_tips(&self, repository: &str) -> Result<Vec<(String, String)>, LedgerError> {
        let sql = "SELECT r.ref_name, r.sha FROM repository_refs r
                   JOIN repositories p ON p.id = r.repository_id
                   WHERE p.name = $1 ORDER BY r.ref_name";
        let rows = on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(repository).fetch_all(p).await?);
        Ok(rows)
    }

    /// Replaces the recorded tips and stamps the sync time, together.
    pub async fn set_repository_tips(
        &self,
        repository: &str,
        tips: &[(String, String)],
        synced_at: i64,
    ) -> Result<(), LedgerError> {
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let id: i64 = sqlx::query_scalar("UPDATE repositories SET synced_at = $1 WHERE name = $2 RETURNING id")
                .bind(synced_at)
                .bind(repository)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| LedgerError::Invalid(format!("repository `{repository}` is not in the ledger")))?;
            sqlx::query("DELETE FROM repository_refs WHERE repository_id = $1").bind(id).execute(&mut *tx).await?;
            for (name, sha) in tips {
                sqlx::query("INSERT INTO repository_refs (repository_id, ref_name, sha) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(name)
                    .bind(sha)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Shas of the repository's commits currently marked reachable.
    pub async fn reachable_commits(&self, repository: &str) -> Result<Vec<String>, LedgerError> {
        let sql = "SELECT c.sha FROM commits c JOIN repositories p ON p.id = c.repository_id
                   WHERE p.name = $1 AND c.reachable";
        let rows = on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(repository).fetch_all(p).await?);
        Ok(rows)
    }

    /// Marks commits a force-push left behind. They stay in the ledger: deployments may
    /// have run them.
    pub async fn mark_unreachable(&self, repository: &str, shas: &[String]) -> Result<u64, LedgerError> {
        let sql = "UPDATE commits SET reachable = FALSE
                   WHERE sha = $1 AND reachable
                     AND repository_id = (SELECT id FROM repositories WHERE name = $2)";
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let mut marked = 0;
            for sha in shas {
                marked += sqlx::query(sql).bind(sha).bind(repository).execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(marked)
        })
    }

    /// Before the first history of an empty ledger is stored: drops the history tables'
    /// secondary indexes and notes their definitions, for
    /// [`Ledger::restore_deferred_indexes`] to build once the history is in. Returns
    /// whether it did. A ledger that holds commits keeps its indexes: its readers need them.
    pub async fn defer_history_indexes(&self) -> Result<bool, LedgerError> {
        let catalog = match self.pool() {
            Pool::Sqlite(_) => format!(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND {}",
                is_listed(self.pool(), "name", 1, "text")
            ),
            Pool::Postgres(_) => format!(
                "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND {}",
                is_listed(self.pool(), "indexname::text", 1, "text")
            ),
        };
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let holds_commits: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM commits)").fetch_one(&mut *tx).await?;
            if holds_commits {
                return Ok(false);
            }
            let indexes: Vec<(String, String)> =
                sqlx::query_as(&catalog).bind(json_list(&HISTORY_INDEXES)).fetch_all(&mut *tx).await?;
            for (name, definition) in &indexes {
                sqlx::query("INSERT INTO deferred_indexes (name, definition) VALUES ($1, $2)")
                    .bind(name)
                    .bind(definition)
                    .execute(&mut *tx)
                    .await?;
                // The name is one of `HISTORY_INDEXES`, as the catalog spells it.
                sqlx::query(&format!("DROP INDEX {name}")).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(!indexes.is_empty())
        })
    }

    /// Builds the indexes [`Ledger::defer_history_indexes`] dropped, in the transaction
    /// that forgets them; returns how many. Run after a first ingest, and at every start
    /// in case a process stopped between the two.
    pub async fn restore_deferred_indexes(&self) -> Result<usize, LedgerError> {
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let deferred: Vec<(String, String)> =
                sqlx::query_as("SELECT name, definition FROM deferred_indexes ORDER BY name")
                    .fetch_all(&mut *tx)
                    .await?;
            for (name, definition) in &deferred {
                sqlx::query(definition).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM deferred_indexes WHERE name = $1").bind(name).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(deferred.len())
        })
    }
}
