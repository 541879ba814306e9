//! What the forge connector keeps besides facts: which webhook deliveries were already
//! accepted, and which pull requests still lack the forge's details.

use super::{BeginWrite, Ledger, LedgerError, PipelineStepFact, on_pool};

/// What became of a webhook delivery offered to [`Ledger::accept_delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Recorded, with its work queued for the worker.
    Queued,
    /// Accepted before (a replay); nothing was queued.
    Duplicate,
    /// As much work as the queue holds is waiting; nothing was recorded.
    Full,
}

/// What [`Ledger::take_forge_work`] took: `(id, work)` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakenWork {
    /// To handle now.
    pub work: Vec<(i64, String)>,
    /// Taken too often without being finished: removed from the queue, not to be handled.
    pub abandoned: Vec<(i64, String)>,
}

impl Ledger {
    /// Records a webhook delivery as accepted and queues its `work` (JSON), in one
    /// transaction: a delivery is either remembered with its work, or not at all.
    /// Deliveries received more than `keep_ms` before `now` are forgotten meanwhile.
    pub async fn accept_delivery(
        &self,
        forge: &str,
        delivery_id: &str,
        now: i64,
        keep_ms: i64,
        work: &str,
        capacity: i64,
    ) -> Result<Acceptance, LedgerError> {
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            sqlx::query("DELETE FROM forge_deliveries WHERE received_at < $1")
                .bind(now - keep_ms)
                .execute(&mut *tx)
                .await?;
            let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM forge_work").fetch_one(&mut *tx).await?;
            if waiting >= capacity {
                tx.commit().await?;
                return Ok(Acceptance::Full);
            }
            let inserted = sqlx::query(
                "INSERT INTO forge_deliveries (forge, delivery_id, received_at) VALUES ($1, $2, $3)
                 ON CONFLICT (forge, delivery_id) DO NOTHING",
            )
            .bind(forge)
            .bind(delivery_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.commit().await?;
                return Ok(Acceptance::Duplicate);
            }
            sqlx::query("INSERT INTO forge_work (forge, delivery_id, work, received_at) VALUES ($1, $2, $3, $4)")
                .bind(forge)
                .bind(delivery_id)
                .bind(work)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Acceptance::Queued)
        })
    }

    /// Takes queued webhook work for handling, oldest first, counting an attempt on
    /// each piece before it is handled; the work stays queued until
    /// [`Ledger::finish_forge_work`]. A piece taken before and never finished (the
    /// process stopped, or crashed, while handling it) is taken alone, so that one piece
    /// that crashes the process holds no other back; a piece taken `max_attempts` times
    /// is removed from the queue and returned in [`TakenWork::abandoned`].
    pub async fn take_forge_work(&self, limit: i64, max_attempts: i64) -> Result<TakenWork, LedgerError> {
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let abandoned: Vec<(i64, String)> =
                sqlx::query_as("DELETE FROM forge_work WHERE attempts >= $1 RETURNING id, work")
                    .bind(max_attempts)
                    .fetch_all(&mut *tx)
                    .await?;
            let mut work: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, work FROM forge_work WHERE attempts > 0 ORDER BY id LIMIT 1")
                    .fetch_all(&mut *tx)
                    .await?;
            if work.is_empty() {
                work = sqlx::query_as("SELECT id, work FROM forge_work ORDER BY id LIMIT $1")
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
            }
            for (id, _) in &work {
                sqlx::query("UPDATE forge_work SET attempts = attempts + 1 WHERE id = $1")
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(TakenWork { work, abandoned })
        })
    }

    /// How many pieces of webhook work are queued; for tests and diagnostics.
    pub async fn queued_forge_work(&self) -> Result<i64, LedgerError> {
        let sql = "SELECT COUNT(*) FROM forge_work";
        Ok(on_pool!(self.pool(), |p| sqlx::query_scalar(sql).fetch_one(p).await?))
    }

    /// Removes handled work from the queue.
    pub async fn finish_forge_work(&self, ids: &[i64]) -> Result<(), LedgerError> {
        let sql = "DELETE FROM forge_work WHERE id = $1";
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            for id in ids {
                sqlx::query(sql).bind(*id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// How many deliveries of `forge` are remembered; for tests and diagnostics.
    pub async fn deliveries_remembered(&self, forge: &str) -> Result<i64, LedgerError> {
        let sql = "SELECT COUNT(*) FROM forge_deliveries WHERE forge = $1";
        Ok(on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(forge).fetch_one(p).await?))
    }

    /// Up to `limit` pull requests of `repository` that no forge has described yet
    /// (known only from commit messages), lowest number first.
    pub async fn pull_requests_without_details(&self, repository: &str, limit: i64) -> Result<Vec<i64>, LedgerError> {
        let sql = "SELECT pr.number FROM pull_requests pr JOIN repositories r ON r.id = pr.repository_id
                   WHERE r.name = $1 AND pr.fetched_at IS NULL ORDER BY pr.number LIMIT $2";
        Ok(on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(repository).bind(limit).fetch_all(p).await?))
    }

    /// Marks a pull request as looked up at `at` even though the forge did not know it,
    /// so it is not asked for again.
    pub async fn mark_pull_request_fetched(&self, repository: &str, number: i64, at: i64) -> Result<(), LedgerError> {
        let sql = "UPDATE pull_requests SET fetched_at = $1
                   WHERE number = $2 AND repository_id = (SELECT id FROM repositories WHERE name = $3)";
        on_pool!(self.pool(), |p| sqlx::query(sql)
            .bind(at)
            .bind(number)
            .bind(repository)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// The steps stored for a CI run, in order.
    pub async fn pipeline_steps(&self, ci_system: &str, run_id: &str) -> Result<Vec<PipelineStepFact>, LedgerError> {
        let sql = "SELECT s.name, s.kind, s.status, s.started_at, s.finished_at FROM pipeline_steps s
                   JOIN pipeline_runs r ON r.id = s.pipeline_run_id
                   WHERE r.ci_system = $1 AND r.run_id = $2 ORDER BY s.position";
        type Row = (String, String, String, Option<i64>, Option<i64>);
        let rows: Vec<Row> =
            on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(ci_system).bind(run_id).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|(name, kind, status, started_at, finished_at)| PipelineStepFact {
                name,
                kind,
                status,
                started_at,
                finished_at,
            })
            .collect())
    }
}
