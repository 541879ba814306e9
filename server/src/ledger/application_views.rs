//! Applications as the REST API shows them: a filtered, paginated list, and one
//! application with its status, sources, destination, environment, its full deployment
//! history from the ledger (newest first, each with what it changed), its Kubernetes
//! objects and its status timeline.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::changes::DiffCache;
use super::presence::ChangeSet;
use super::questions::DeploymentRef;
use super::{Ledger, LedgerError, is_listed, json_list, on_pool};
use crate::timefmt::format_rfc3339;

/// The most applications one page lists.
pub const PAGE_LIMIT: i64 = 500;
/// The most deployments one application answer lists.
pub const DEPLOYMENTS_LIMIT: i64 = 1000;
/// The most status changes one application answer lists.
const TIMELINE_LIMIT: i64 = 200;

/// Which applications to list; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct ApplicationFilter {
    pub environment: Option<String>,
    pub instance: Option<String>,
    pub project: Option<String>,
    /// `Synced`, `OutOfSync` or `Unknown`.
    pub sync: Option<String>,
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing` or `Unknown`.
    pub health: Option<String>,
    /// Part of the name, project or service, any case.
    pub text: Option<String>,
    pub include_deleted: bool,
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Destination {
    pub server: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

/// An Argo CD Application as the ledger knows it now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApplicationView {
    pub instance: String,
    pub namespace: String,
    pub name: String,
    pub project: String,
    pub environment: Option<String>,
    pub service: Option<String>,
    pub sync_status: Option<String>,
    pub health_status: Option<String>,
    pub automated_sync: bool,
    /// The Application's sources as Argo CD gives them (`repoURL`, `path`, `chart`,
    /// `targetRevision`, tool options).
    #[schema(value_type = Vec<Object>)]
    pub sources: serde_json::Value,
    pub destination: Destination,
    /// The deployment it runs now.
    pub current: Option<DeploymentRef>,
    /// RFC 3339: when Landfall last saw it change.
    pub updated_at: String,
    /// RFC 3339: when it left Argo CD; its history stays in the ledger.
    pub deleted_at: Option<String>,
    /// Its current life in Argo CD: 0, then one more each time it was deleted and created
    /// again under the same name.
    pub incarnation: i64,
}

/// `GET /api/v1/applications`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApplicationPage {
    /// Applications matching the filters, on every page.
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
    pub applications: Vec<ApplicationView>,
}

/// One deployment of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeploymentView {
    /// Argo CD's history id; negative for a failed sync, which Argo CD keeps no entry for.
    pub history_id: i64,
    /// 0 for the application's first life in Argo CD, one more each time it was deleted
    /// and created again under the same name (Argo CD then counts history ids from 0).
    pub incarnation: i64,
    pub revision: String,
    pub revisions: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `Succeeded`, `Failed` or `Error`.
    pub phase: String,
    pub message: Option<String>,
    pub initiated_by: Option<String>,
    pub automated: bool,
    pub is_rollback: bool,
    /// The images it left running, `repository:tag`.
    pub images: Vec<String>,
    /// What it changed compared with the deployment before it; none for a failed sync.
    pub changes: Option<ChangeSet>,
}

/// A Kubernetes object the application manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ResourceView {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: Option<String>,
    pub images: Vec<String>,
}

/// A change of sync status or health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusChange {
    pub at: String,
    pub sync_status: Option<String>,
    pub health_status: Option<String>,
}

/// `GET /api/v1/applications/{instance}/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApplicationDetail {
    #[serde(flatten)]
    pub application: ApplicationView,
    /// Every deployment the ledger holds, newest first (at most `DEPLOYMENTS_LIMIT`).
    pub deployments: Vec<DeploymentView>,
    pub deployments_total: i64,
    pub resources: Vec<ResourceView>,
    /// Newest first, the last 200.
    pub status_changes: Vec<StatusChange>,
}

/// How an application lookup without a namespace can end.
#[derive(Debug)]
pub enum Lookup<T> {
    Found(T),
    Missing,
    /// Several applications of that name in the instance: these namespaces.
    Ambiguous(Vec<String>),
}

const VIEW_COLUMNS: &str = "a.id, a.instance, a.namespace, a.name, a.project, e.name AS environment,
    s.name AS service, a.sync_status, a.health_status, a.automated_sync, a.sources, a.dest_server, a.dest_name,
    a.dest_namespace, a.updated_at, a.deleted_at, a.incarnation, d.history_id AS current_history_id,
    d.revision AS current_revision, COALESCE(d.finished_at, d.started_at) AS current_at";
const VIEW_FROM: &str = "FROM applications a LEFT JOIN environments e ON e.id = a.environment_id
    LEFT JOIN services s ON s.id = a.service_id LEFT JOIN deployments d ON d.id = a.current_deployment_id";

#[derive(sqlx::FromRow)]
struct ViewRow {
    id: i64,
    instance: String,
    namespace: String,
    name: String,
    project: String,
    environment: Option<String>,
    service: Option<String>,
    sync_status: Option<String>,
    health_status: Option<String>,
    automated_sync: bool,
    sources: String,
    dest_server: Option<String>,
    dest_name: Option<String>,
    dest_namespace: Option<String>,
    updated_at: i64,
    deleted_at: Option<i64>,
    incarnation: i64,
    current_history_id: Option<i64>,
    current_revision: Option<String>,
    current_at: Option<i64>,
}

fn view(row: ViewRow) -> (i64, ApplicationView) {
    let current = match (row.current_history_id, row.current_revision, row.current_at) {
        (Some(history_id), Some(revision), Some(at)) => {
            Some(DeploymentRef { history_id, revision, deployed_at: format_rfc3339(at) })
        }
        _ => None,
    };
    let application = ApplicationView {
        instance: row.instance,
        namespace: row.namespace,
        name: row.name,
        project: row.project,
        environment: row.environment,
        service: row.service,
        sync_status: row.sync_status,
        health_status: row.health_status,
        automated_sync: row.automated_sync,
        sources: serde_json::from_str(&row.sources).unwrap_or(serde_json::Value::Array(Vec::new())),
        destination: Destination { server: row.dest_server, name: row.dest_name, namespace: row.dest_namespace },
        current,
        updated_at: format_rfc3339(row.updated_at),
        deleted_at: row.deleted_at.map(format_rfc3339),
        incarnation: row.incarnation,
    };
    (row.id, application)
}

/// `LIKE` pattern for a substring, with the pattern characters escaped.
fn contains_pattern(text: &str) -> String {
    let escaped: String = text
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

impl Ledger {
    /// Applications matching the filter, by name, a page at a time.
    pub async fn list_applications(&self, filter: &ApplicationFilter) -> Result<ApplicationPage, LedgerError> {
        let condition = "($1 IS NULL OR LOWER(e.name) = LOWER($1)) AND ($2 IS NULL OR a.instance = $2)
            AND ($3 IS NULL OR a.project = $3) AND ($4 IS NULL OR a.sync_status = $4)
            AND ($5 IS NULL OR a.health_status = $5)
            AND ($6 IS NULL OR LOWER(a.name) LIKE $6 ESCAPE '\\' OR LOWER(a.project) LIKE $6 ESCAPE '\\'
                 OR LOWER(COALESCE(s.name, '')) LIKE $6 ESCAPE '\\')
            AND ($7 OR a.deleted_at IS NULL)";
        let count_sql = format!("SELECT COUNT(*) {VIEW_FROM} WHERE {condition}");
        let page_sql = format!(
            "SELECT {VIEW_COLUMNS} {VIEW_FROM} WHERE {condition}
             ORDER BY a.name, a.instance, a.namespace LIMIT $8 OFFSET $9"
        );
        let text = filter.text.as_deref().filter(|t| !t.trim().is_empty()).map(|t| contains_pattern(t.trim()));
        let limit = filter.limit.clamp(1, PAGE_LIMIT);
        let offset = filter.offset.max(0);
        let (total, rows): (i64, Vec<ViewRow>) = on_pool!(self.pool(), |p| {
            macro_rules! bind_filter {
                ($query:expr) => {
                    $query
                        .bind(&filter.environment)
                        .bind(&filter.instance)
                        .bind(&filter.project)
                        .bind(&filter.sync)
                        .bind(&filter.health)
                        .bind(&text)
                        .bind(filter.include_deleted)
                };
            }
            let total = bind_filter!(sqlx::query_scalar(&count_sql)).fetch_one(p).await?;
            let rows = bind_filter!(sqlx::query_as(&page_sql)).bind(limit).bind(offset).fetch_all(p).await?;
            (total, rows)
        });
        Ok(ApplicationPage { total, offset, limit, applications: rows.into_iter().map(|row| view(row).1).collect() })
    }

    /// One application with its history, objects and timeline; without a namespace,
    /// the one application of that name in the instance.
    pub async fn application_detail(
        &self,
        instance: &str,
        namespace: Option<&str>,
        name: &str,
        deployments_limit: i64,
    ) -> Result<Lookup<ApplicationDetail>, LedgerError> {
        let sql = format!(
            "SELECT {VIEW_COLUMNS} {VIEW_FROM} WHERE a.instance = $1 AND a.name = $2 AND ($3 IS NULL OR a.namespace = $3)
             ORDER BY a.namespace"
        );
        let rows: Vec<ViewRow> = on_pool!(self.pool(), |p| sqlx::query_as(&sql)
            .bind(instance)
            .bind(name)
            .bind(namespace)
            .fetch_all(p)
            .await?);
        let (id, application) = match rows.len() {
            0 => return Ok(Lookup::Missing),
            1 => view(rows.into_iter().next().expect("one row")),
            _ => return Ok(Lookup::Ambiguous(rows.into_iter().map(|row| row.namespace).collect())),
        };
        let deployments_total: i64 = on_pool!(self.pool(), |p| {
            sqlx::query_scalar("SELECT COUNT(*) FROM deployments WHERE application_id = $1")
                .bind(id)
                .fetch_one(p)
                .await?
        });
        let deployments = self.deployment_views(id, deployments_limit.clamp(1, DEPLOYMENTS_LIMIT)).await?;
        let resources = self.resource_views(id).await?;
        type Change = (i64, Option<String>, Option<String>);
        let changes: Vec<Change> = on_pool!(self.pool(), |p| {
            sqlx::query_as(
                "SELECT at, sync_status, health_status FROM application_status_changes WHERE application_id = $1
                 ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(id)
            .bind(TIMELINE_LIMIT)
            .fetch_all(p)
            .await?
        });
        let status_changes = changes
            .into_iter()
            .map(|(at, sync_status, health_status)| StatusChange { at: format_rfc3339(at), sync_status, health_status })
            .collect();
        Ok(Lookup::Found(ApplicationDetail { application, deployments, deployments_total, resources, status_changes }))
    }

    async fn deployment_views(&self, application_id: i64, limit: i64) -> Result<Vec<DeploymentView>, LedgerError> {
        type Row = (
            i64,
            i64,
            String,
            String,
            i64,
            Option<i64>,
            String,
            Option<String>,
            Option<String>,
            bool,
            bool,
            Option<i64>,
            i64,
        );
        let sql = "SELECT d.id, d.history_id, d.revision, d.revisions, d.started_at, d.finished_at, d.phase, d.message,
                          d.initiated_by, d.automated, d.is_rollback,
                          (SELECT p.id FROM deployments p
                           WHERE p.application_id = d.application_id AND p.phase = 'Succeeded'
                             AND COALESCE(p.finished_at, p.started_at) <= COALESCE(d.finished_at, d.started_at)
                             AND (COALESCE(p.finished_at, p.started_at), p.incarnation, p.history_id)
                                 < (COALESCE(d.finished_at, d.started_at), d.incarnation, d.history_id)
                           ORDER BY COALESCE(p.finished_at, p.started_at) DESC, p.incarnation DESC, p.history_id DESC LIMIT 1),
                          d.incarnation
                   FROM deployments d WHERE d.application_id = $1
                   ORDER BY COALESCE(d.finished_at, d.started_at) DESC, d.incarnation DESC, d.history_id DESC LIMIT $2";
        let rows: Vec<Row> =
            on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(application_id).bind(limit).fetch_all(p).await?);
        let ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
        let mut images: HashMap<i64, Vec<String>> = HashMap::new();
        if !ids.is_empty() {
            let sql = format!(
                "SELECT di.deployment_id, i.repository, i.tag FROM deployment_images di JOIN images i ON i.id = di.image_id
                 WHERE di.side = 'after' AND {} ORDER BY i.repository, i.tag",
                is_listed(self.pool(), "di.deployment_id", 1, "bigint")
            );
            let found: Vec<(i64, String, String)> =
                on_pool!(self.pool(), |p| sqlx::query_as(&sql).bind(json_list(&ids)).fetch_all(p).await?);
            for (deployment_id, repository, tag) in found {
                images.entry(deployment_id).or_default().push(format!("{repository}:{tag}"));
            }
        }
        let succeeded: Vec<usize> = (0..rows.len()).filter(|i| rows[*i].6 == "Succeeded").collect();
        let pairs: Vec<(Option<i64>, i64)> = succeeded.iter().map(|i| (rows[*i].11, rows[*i].0)).collect();
        let mut change_sets: HashMap<usize, ChangeSet> =
            succeeded.into_iter().zip(self.change_sets(&pairs, &mut DiffCache::default()).await?).collect();
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(index, row)| DeploymentView {
                history_id: row.1,
                incarnation: row.12,
                revision: row.2,
                revisions: serde_json::from_str(&row.3).unwrap_or_default(),
                started_at: format_rfc3339(row.4),
                finished_at: row.5.map(format_rfc3339),
                phase: row.6,
                message: row.7,
                initiated_by: row.8,
                automated: row.9,
                is_rollback: row.10,
                images: images.remove(&row.0).unwrap_or_default(),
                changes: change_sets.remove(&index),
            })
            .collect())
    }

    async fn resource_views(&self, application_id: i64) -> Result<Vec<ResourceView>, LedgerError> {
        type Row = (i64, String, String, String, String, Option<String>, Option<String>, Option<String>);
        let sql = "SELECT r.id, r.api_group, r.kind, r.namespace, r.name, r.health_status, i.repository, i.tag
                   FROM resources r LEFT JOIN resource_images ri ON ri.resource_id = r.id
                   LEFT JOIN images i ON i.id = ri.image_id
                   WHERE r.application_id = $1 ORDER BY r.kind, r.namespace, r.name, r.id, i.repository, i.tag";
        let rows: Vec<Row> = on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(application_id).fetch_all(p).await?);
        let mut views: Vec<(i64, ResourceView)> = Vec::new();
        for (id, group, kind, namespace, name, health, repository, tag) in rows {
            if views.last().is_none_or(|(last, _)| *last != id) {
                views.push((id, ResourceView { group, kind, namespace, name, health, images: Vec::new() }));
            }
            if let (Some(repository), Some(tag), Some((_, view))) = (repository, tag, views.last_mut()) {
                view.images.push(format!("{repository}:{tag}"));
            }
        }
        Ok(views.into_iter().map(|(_, view)| view).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_filters_escape_like_wildcards() {
        assert_eq!(contains_pattern("Shop"), "%shop%");
        assert_eq!(contains_pattern("50%_off"), "%50\\%\\_off%");
    }
}
