//! What Jira says of features: details from searches and webhooks, keys Jira does not
//! know, issues deleted in Jira, and the webhook deliveries already applied.
//!
//! Every write is guarded by time so that the order things arrive in does not matter: a
//! search result older than what a webhook already stored (by the issue's `updated`) and
//! a webhook older than the last one applied (by its `timestamp`) change nothing.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{BeginWrite, Ledger, LedgerError, json_list, on_pool};
use crate::timefmt::format_rfc3339;

/// One issue as Jira describes it, ready to store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueFact {
    pub key: String,
    pub summary: Option<String>,
    pub issue_type: Option<String>,
    pub status: Option<String>,
    /// The status category's key: `new`, `indeterminate` or `done`.
    pub status_category: Option<String>,
    pub priority: Option<String>,
    /// Display names.
    pub assignee: Option<String>,
    pub reporter: Option<String>,
    pub labels: Vec<String>,
    pub components: Vec<String>,
    pub fix_versions: Vec<String>,
    /// The parent issue (an epic, or the story of a sub-task).
    pub parent_key: Option<String>,
    /// The browse URL, `{jira url}/browse/{key}`.
    pub url: Option<String>,
    /// Jira's `updated`, in epoch milliseconds.
    pub updated_at: Option<i64>,
}

/// What applying a webhook delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Applied,
    /// This delivery was applied before.
    Duplicate,
    /// A newer delivery for the issue was applied already; nothing changed.
    Stale,
}

/// How long a Jira webhook delivery is remembered for de-duplication (a week).
pub const JIRA_DELIVERY_MEMORY_MS: i64 = 7 * 24 * 3600 * 1000;

/// A change a webhook reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueChange {
    Upsert(Box<IssueFact>),
    Deleted {
        key: String,
    },
    /// The delivery named the issue without its fields: only its time is recorded, and
    /// the details are fetched.
    Touched {
        key: String,
    },
}

/// The Jira details on a feature card; flattened into it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct JiraDetails {
    /// `new`, `indeterminate` or `done`, when Jira said.
    pub status_category: Option<String>,
    pub priority: Option<String>,
    pub reporter: Option<String>,
    pub labels: Vec<String>,
    pub components: Vec<String>,
    pub fix_versions: Vec<String>,
    /// The parent issue's key: an epic, or the story of a sub-task.
    pub parent: Option<String>,
    /// When Landfall last asked Jira about this key (RFC 3339); `null` before the first time.
    pub fetched_at: Option<String>,
    /// Jira did not know this key when last asked.
    pub not_found: bool,
    /// The issue was deleted in Jira; the feature keeps its history.
    pub deleted: bool,
    pub deleted_at: Option<String>,
}

const UPSERT: &str = "INSERT INTO features (key, summary, issue_type, status, status_category, priority, assignee,
         reporter, labels, components, fix_versions, parent_key, url, jira_updated_at, not_found)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, FALSE)
     ON CONFLICT (key) DO UPDATE SET summary = excluded.summary, issue_type = excluded.issue_type,
         status = excluded.status, status_category = excluded.status_category, priority = excluded.priority,
         assignee = excluded.assignee, reporter = excluded.reporter, labels = excluded.labels,
         components = excluded.components, fix_versions = excluded.fix_versions, parent_key = excluded.parent_key,
         url = excluded.url, jira_updated_at = excluded.jira_updated_at, not_found = FALSE
     WHERE features.jira_updated_at IS NULL OR excluded.jira_updated_at IS NULL
         OR excluded.jira_updated_at >= features.jira_updated_at";

/// Binds an [`IssueFact`] to [`UPSERT`].
macro_rules! bind_issue {
    ($query:expr, $fact:expr) => {{
        let fact: &IssueFact = $fact;
        $query
            .bind(&fact.key)
            .bind(&fact.summary)
            .bind(&fact.issue_type)
            .bind(&fact.status)
            .bind(&fact.status_category)
            .bind(&fact.priority)
            .bind(&fact.assignee)
            .bind(&fact.reporter)
            .bind(json_list(&fact.labels))
            .bind(json_list(&fact.components))
            .bind(json_list(&fact.fix_versions))
            .bind(&fact.parent_key)
            .bind(&fact.url)
            .bind(fact.updated_at)
    }};
}

fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Ledger {
    /// The keys to ask Jira about: every feature not deleted in Jira.
    pub async fn jira_feature_keys(&self) -> Result<Vec<String>, LedgerError> {
        let sql = "SELECT key FROM features WHERE deleted_at IS NULL ORDER BY key";
        Ok(on_pool!(self.pool(), |p| sqlx::query_scalar(sql).fetch_all(p).await?))
    }

    /// Stores what a search found, in one transaction, and when it was asked.
    pub async fn record_jira_issues(&self, issues: &[IssueFact], fetched_at: i64) -> Result<(), LedgerError> {
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            for issue in issues {
                bind_issue!(sqlx::query(UPSERT), issue).execute(&mut *tx).await?;
                sqlx::query("UPDATE features SET fetched_at = $1, not_found = FALSE WHERE key = $2")
                    .bind(fetched_at)
                    .bind(&issue.key)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Flags keys Jira does not know; their other details are kept.
    pub async fn mark_jira_not_found(&self, keys: &[String], fetched_at: i64) -> Result<(), LedgerError> {
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            for key in keys {
                sqlx::query("UPDATE features SET not_found = TRUE, fetched_at = $1 WHERE key = $2")
                    .bind(fetched_at)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Applies one webhook delivery at most once: `delivery` identifies it, `timestamp`
    /// (the event's, in milliseconds) orders it against the others for the same issue.
    pub async fn apply_jira_delivery(
        &self,
        delivery: &str,
        timestamp: i64,
        change: &IssueChange,
        received_at: i64,
    ) -> Result<DeliveryOutcome, LedgerError> {
        let key = match change {
            IssueChange::Upsert(fact) => &fact.key,
            IssueChange::Deleted { key } | IssueChange::Touched { key } => key,
        };
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            // Jira retries a delivery for minutes, not days: older ones are forgotten
            // here, so the table stays small with or without the refresher.
            sqlx::query("DELETE FROM jira_webhook_deliveries WHERE received_at < $1")
                .bind(received_at - JIRA_DELIVERY_MEMORY_MS)
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO jira_webhook_deliveries (delivery, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(delivery)
            .bind(received_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(DeliveryOutcome::Duplicate);
            }
            let newest: Option<Option<i64>> = sqlx::query_scalar("SELECT webhook_at FROM features WHERE key = $1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if newest.flatten().is_some_and(|newest| newest > timestamp) {
                tx.commit().await?;
                return Ok(DeliveryOutcome::Stale);
            }
            match change {
                IssueChange::Upsert(fact) => {
                    bind_issue!(sqlx::query(UPSERT), fact).execute(&mut *tx).await?;
                }
                IssueChange::Deleted { key } => {
                    sqlx::query("UPDATE features SET deleted_at = $1 WHERE key = $2 AND deleted_at IS NULL")
                        .bind(timestamp)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                IssueChange::Touched { .. } => {}
            }
            sqlx::query("UPDATE features SET webhook_at = $1 WHERE key = $2")
                .bind(timestamp)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(DeliveryOutcome::Applied)
        })
    }

    /// A feature's Jira summary and status, for answers that name it.
    pub async fn feature_title(&self, key: &str) -> Result<(Option<String>, Option<String>), LedgerError> {
        let sql = "SELECT summary, status FROM features WHERE key = $1";
        let row: Option<(Option<String>, Option<String>)> =
            on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(key).fetch_optional(p).await?);
        Ok(row.unwrap_or_default())
    }
}

/// The `features` columns a feature card's Jira details are read from ([`JiraRow`]).
pub(crate) const JIRA_COLUMNS: &str = "f.status_category, f.priority, f.reporter, f.labels, f.components, \
                                       f.fix_versions, f.parent_key, f.fetched_at, f.not_found, f.deleted_at";

/// The row of [`JIRA_COLUMNS`], flattened into the row that reads them.
#[derive(sqlx::FromRow)]
pub(crate) struct JiraRow {
    status_category: Option<String>,
    priority: Option<String>,
    reporter: Option<String>,
    labels: String,
    components: String,
    fix_versions: String,
    parent_key: Option<String>,
    fetched_at: Option<i64>,
    not_found: bool,
    deleted_at: Option<i64>,
}

impl From<JiraRow> for JiraDetails {
    fn from(row: JiraRow) -> Self {
        JiraDetails {
            status_category: row.status_category,
            priority: row.priority,
            reporter: row.reporter,
            labels: parse_list(&row.labels),
            components: parse_list(&row.components),
            fix_versions: parse_list(&row.fix_versions),
            parent: row.parent_key,
            fetched_at: row.fetched_at.map(format_rfc3339),
            not_found: row.not_found,
            deleted: row.deleted_at.is_some(),
            deleted_at: row.deleted_at.map(format_rfc3339),
        }
    }
}
