//! What the Git connector keeps between syncs: each repository's branch tips, and which
//! commits are still reachable.

use super::{BeginWrite, Ledger, LedgerError, on_pool};

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
}
