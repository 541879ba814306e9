//! What actions leave behind: the audit log of every attempt to change Argo CD, and the
//! rollback plans users asked for, stored so that executing one does what was shown.

use serde::Serialize;
use utoipa::ToSchema;

use super::presence::ApplicationRef;
use super::questions::{DeploymentRef, RollbackPlan};
use super::{Ledger, LedgerError, Pool, on_pool};
use crate::timefmt::format_rfc3339;

/// The most audit entries one answer lists.
pub const AUDIT_LIMIT: i64 = 1000;

/// One attempt to act on Argo CD, as it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub instance: Option<String>,
    pub namespace: Option<String>,
    pub application: Option<String>,
    /// What was asked; never a secret.
    pub parameters: serde_json::Value,
    /// `ok`, `refused` (by Landfall, nothing sent) or `failed` (Argo CD refused or could
    /// not be reached).
    pub outcome: &'static str,
    pub message: String,
}

/// `GET /api/v1/audit`: one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub actor: String,
    pub action: String,
    pub instance: Option<String>,
    pub namespace: Option<String>,
    pub application: Option<String>,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// `ok`, `refused` (Landfall sent nothing) or `failed` (Argo CD refused or was unreachable).
    pub outcome: String,
    pub message: String,
}

/// A stored rollback plan: the plan as answered, as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub id: i64,
    pub plan: String,
    pub executed_at: Option<i64>,
}

type AuditRow = (i64, i64, String, String, Option<String>, Option<String>, Option<String>, String, String, String);

impl Ledger {
    /// Writes one audit entry and returns its id.
    pub async fn record_audit(&self, record: &AuditRecord) -> Result<i64, LedgerError> {
        let sql =
            "INSERT INTO audit_log (at, actor, action, instance, namespace, application, parameters, outcome, message)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
        let parameters = record.parameters.to_string();
        let id = on_pool!(self.pool(), |p| sqlx::query_scalar(sql)
            .bind(record.at)
            .bind(&record.actor)
            .bind(&record.action)
            .bind(&record.instance)
            .bind(&record.namespace)
            .bind(&record.application)
            .bind(&parameters)
            .bind(record.outcome)
            .bind(&record.message)
            .fetch_one(p)
            .await?);
        Ok(id)
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, LedgerError> {
        let sql = "SELECT id, at, actor, action, instance, namespace, application, parameters, outcome, message
                   FROM audit_log ORDER BY at DESC, id DESC LIMIT $1";
        let limit = limit.clamp(1, AUDIT_LIMIT);
        let rows: Vec<AuditRow> = on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(limit).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|(id, at, actor, action, instance, namespace, application, parameters, outcome, message)| AuditEntry {
                id,
                at: format_rfc3339(at),
                actor,
                action,
                instance,
                namespace,
                application,
                parameters: serde_json::from_str(&parameters).unwrap_or(serde_json::Value::String(parameters)),
                outcome,
                message,
            })
            .collect())
    }

    /// Keeps what executing a rollback plan needs (which application returns to which
    /// deployment) and returns the plan's id. What would leave is the preview's: it can
    /// be thousands of features and pull requests, and is not kept.
    pub async fn store_rollback_plan(&self, plan: &RollbackPlan, at: i64) -> Result<i64, LedgerError> {
        let executable = ExecutablePlan {
            environment: &plan.environment,
            target: &plan.target,
            applications: plan
                .applications
                .iter()
                .map(|step| ExecutableStep {
                    application: &step.application,
                    action: &step.action,
                    return_to: step.return_to.as_ref(),
                })
                .collect(),
        };
        let json = serde_json::to_string(&executable).map_err(|e| LedgerError::Invalid(e.to_string()))?;
        let sql = match self.pool() {
            Pool::Sqlite(_) => {
                "INSERT INTO rollback_plans (created_at, environment, target, plan) VALUES ($1, $2, $3, $4) RETURNING id"
            }
            // A preview need not wait for the disk: committed without waiting for the
            // WAL flush (`synchronous_commit` off for this one statement's transaction), as
            // SQLite's plans file commits too. A crash may lose the last plans shown; they
            // are previewed again. Each plan's commit had waited for an fsync: 0.2-1.5 ms,
            // and more when the disk is busy.
            Pool::Postgres(_) => {
                "INSERT INTO rollback_plans (created_at, environment, target, plan)
                 SELECT $1, $2, $3, $4 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous
                 RETURNING id"
            }
        };
        let id = on_pool!(self.pool(), |p| sqlx::query_scalar(sql)
            .bind(at)
            .bind(&plan.environment)
            .bind(&plan.target)
            .bind(&json)
            .fetch_one(p)
            .await?);
        Ok(id)
    }

    pub async fn stored_rollback_plan(&self, id: i64) -> Result<Option<StoredPlan>, LedgerError> {
        let sql = "SELECT id, plan, executed_at FROM rollback_plans WHERE id = $1";
        let row: Option<(i64, String, Option<i64>)> =
            on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(id).fetch_optional(p).await?);
        Ok(row.map(|(id, plan, executed_at)| StoredPlan { id, plan, executed_at }))
    }

    pub async fn mark_rollback_plan_executed(&self, id: i64, at: i64) -> Result<(), LedgerError> {
        let sql = "UPDATE rollback_plans SET executed_at = $2 WHERE id = $1";
        on_pool!(self.pool(), |p| sqlx::query(sql).bind(id).bind(at).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// The namespaces in which an instance has a live application of this name.
    pub async fn application_namespaces(&self, instance: &str, name: &str) -> Result<Vec<String>, LedgerError> {
        let sql = "SELECT namespace FROM applications WHERE instance = $1 AND name = $2 AND deleted_at IS NULL
                   ORDER BY namespace";
        let rows = on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(instance).bind(name).fetch_all(p).await?);
        Ok(rows)
    }
}

/// The part of a [`RollbackPlan`] that is kept for executing it.
#[derive(Serialize)]
struct ExecutablePlan<'a> {
    environment: &'a str,
    target: &'a str,
    applications: Vec<ExecutableStep<'a>>,
}

#[derive(Serialize)]
struct ExecutableStep<'a> {
    application: &'a ApplicationRef,
    action: &'a str,
    return_to: Option<&'a DeploymentRef>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::cards::FeatureRef;
    use crate::ledger::questions::RollbackStep;

    #[tokio::test]
    async fn audit_entries_come_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::DatabaseUrl::sqlite_file(&dir.path().join("l.db"));
        let ledger = Ledger::open(&url).await.unwrap();
        for (at, outcome) in [(1_000, "ok"), (3_000, "refused"), (2_000, "failed")] {
            let record = AuditRecord {
                at,
                actor: "anonymous".into(),
                action: "sync".into(),
                instance: Some("main".into()),
                namespace: Some("argocd".into()),
                application: Some("shop".into()),
                parameters: serde_json::json!({"prune": true}),
                outcome,
                message: String::new(),
            };
            ledger.record_audit(&record).await.unwrap();
        }
        let entries = ledger.audit_entries(2).await.unwrap();
        let outcomes: Vec<&str> = entries.iter().map(|e| e.outcome.as_str()).collect();
        assert_eq!(outcomes, ["refused", "failed"]);
        assert_eq!(entries[0].parameters, serde_json::json!({"prune": true}));
        let shop = ApplicationRef { instance: "main".into(), namespace: "argocd".into(), name: "shop".into() };
        let step = RollbackStep {
            application: shop.clone(),
            action: "rollback".into(),
            reason: "return to history 1".into(),
            first_carrying: DeploymentRef { history_id: 2, revision: "b".into(), deployed_at: "then".into() },
            return_to: Some(DeploymentRef { history_id: 1, revision: "a".into(), deployed_at: "before".into() }),
            automated_sync: false,
            features_leaving: vec![FeatureRef { key: "SHOP-1".into(), summary: None, status: None }],
            pull_requests_leaving: Vec::new(),
            truncated: false,
        };
        let plan = RollbackPlan { environment: "production".into(), target: "SHOP-1".into(), applications: vec![step] };
        let id = ledger.store_rollback_plan(&plan, 5).await.unwrap();
        ledger.mark_rollback_plan_executed(id, 6).await.unwrap();
        let stored = ledger.stored_rollback_plan(id).await.unwrap().unwrap();
        assert_eq!(stored.executed_at, Some(6));
        let kept: serde_json::Value = serde_json::from_str(&stored.plan).unwrap();
        let expected = serde_json::json!({
            "environment": "production",
            "target": "SHOP-1",
            "applications": [{
                "application": shop,
                "action": "rollback",
                "return_to": { "history_id": 1, "revision": "a", "deployed_at": "before" },
            }],
        });
        assert_eq!(kept, expected, "what executing needs, not what would leave");
        assert!(ledger.stored_rollback_plan(id + 1).await.unwrap().is_none());
    }
}
