//! Writing facts. Every write is an upsert keyed by the fact's natural key, so ingesting
//! the same thing twice (or again after a crash) leaves the same rows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ancestry::refresh_presence;
use super::questions::write_source_paths;
use super::{BeginWrite, Ledger, LedgerError, is_sqlite, on_pool, rows_from_json};

/// The CI step kinds the ledger accepts (DESIGN.md: PipelineRun steps).
pub const STEP_KINDS: [&str; 7] = ["build", "test", "scan", "pre-sync", "post-sync", "deploy", "other"];
pub const REPOSITORY_KINDS: [&str; 2] = ["source", "manifests"];

/// Rows per multi-row statement: 12 parameters a commit stays well inside SQLite's
/// 32,766 and PostgreSQL's 65,535 bound parameters.
const COMMIT_ROWS: usize = 400;
/// Rows per multi-row statement of two or three parameters.
const LINK_ROWS: usize = 2000;

/// Runs the multi-row upsert `$insert` (a `QueryBuilder` up to its `ON CONFLICT` clause
/// included) in `$tx` and evaluates to the rows it wrote, as `Vec<$row>`; the back end
/// is known from `$tx`'s type. PostgreSQL returns them with `RETURNING $columns`
/// (qualified by the table's name, which both statements share). SQLite's driver would
/// hand each returned row from its worker thread to the runtime on its own, about
/// 200,000 hand-offs in a first ingest of 100,000 commits, so on SQLite the same rows
/// are read back by `$select`, given `$wanted` (the rows' natural keys, one JSON array
/// bound as `$1`), as one JSON array: `SELECT json_group_array(json_array($columns))
/// FROM json_each($1) …`. `$wanted` is evaluated only on SQLite.
macro_rules! upsert_returning {
    ($tx:expr, $insert:expr, $columns:literal, $select:literal, $wanted:expr, $row:ty) => {{
        let mut insert = $insert;
        if is_sqlite(&$tx) {
            insert.build().execute(&mut *$tx).await?;
            let wanted = serde_json::to_string(&$wanted).expect("keys serialise to JSON");
            let sql = concat!("SELECT json_group_array(json_array(", $columns, ")) ", $select);
            let array: String = sqlx::query_scalar(sql).bind(wanted).fetch_one(&mut *$tx).await?;
            rows_from_json::<$row>(&array)?
        } else {
            insert.push(concat!(" RETURNING ", $columns));
            insert.build_query_as::<$row>().fetch_all(&mut *$tx).await?
        }
    }};
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentFact {
    pub name: String,
    pub rank: i64,
    /// The rules that map applications here, as configured.
    pub match_rules: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplicationFact {
    pub instance: String,
    pub namespace: String,
    pub name: String,
    pub project: String,
    pub environment: Option<String>,
    pub service: Option<String>,
    pub sources: serde_json::Value,
    pub dest_server: Option<String>,
    pub dest_name: Option<String>,
    pub dest_namespace: Option<String>,
    pub sync_status: Option<String>,
    pub health_status: Option<String>,
    pub automated_sync: bool,
    pub observed_at: i64,
    /// Argo CD's `metadata.uid`: a new one means the application was deleted and
    /// created again under the same name, a new incarnation with its own history ids.
    #[serde(default)]
    pub uid: Option<String>,
}

/// A container image as Argo CD's `status.summary.images` lists it: `repository:tag`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    /// Splits `registry:5000/team/app:1.2` at the tag's colon (the last one after the
    /// last slash); an untagged reference means `latest`, as the container runtimes read it.
    pub fn parse(reference: &str) -> Result<ImageRef, LedgerError> {
        let reference = reference.split('@').next().unwrap_or_default().trim();
        if reference.is_empty() || reference.contains(char::is_whitespace) {
            return Err(LedgerError::Invalid(format!(
                "`{reference}` is not an image reference; expected REPOSITORY[:TAG] such as ghcr.io/acme/shop:1.4.2"
            )));
        }
        let slash = reference.rfind('/').map_or(0, |i| i + 1);
        Ok(match reference[slash..].rfind(':') {
            Some(colon) => ImageRef {
                repository: reference[..slash + colon].to_string(),
                tag: reference[slash + colon + 1..].to_string(),
            },
            None => ImageRef { repository: reference.to_string(), tag: "latest".to_string() },
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentFact {
    pub instance: String,
    pub namespace: String,
    pub application: String,
    /// Argo CD's `status.history[].id`.
    pub history_id: i64,
    pub revision: String,
    pub revisions: Vec<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub phase: String,
    pub message: Option<String>,
    pub initiated_by: Option<String>,
    pub automated: bool,
    pub is_rollback: bool,
    pub images_before: Vec<ImageRef>,
    pub images_after: Vec<ImageRef>,
}

/// A Kubernetes object an application manages, with the images it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceFact {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: Option<String>,
    pub images: Vec<ImageRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryFact {
    pub name: String,
    pub url: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonTime {
    pub name: String,
    pub email: String,
    pub at: i64,
    pub offset_minutes: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitFact {
    pub repository: String,
    pub sha: String,
    pub parents: Vec<String>,
    pub author: PersonTime,
    pub committer: PersonTime,
    pub message: String,
    pub pull_request_number: Option<i64>,
    pub feature_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestFact {
    pub repository: String,
    pub number: i64,
    pub title: Option<String>,
    pub body: Option<String>,
    pub author: Option<String>,
    pub head_branch: Option<String>,
    pub merged_at: Option<i64>,
    pub merge_commit_sha: Option<String>,
    pub feature_keys: Vec<String>,
    /// When a forge's API or webhook said this (epoch ms); `None` for what Git history says.
    #[serde(default)]
    pub fetched_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureFact {
    pub key: String,
    pub summary: Option<String>,
    pub issue_type: Option<String>,
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub url: Option<String>,
    pub fetched_at: Option<i64>,
}

/// What CI built: an image digest from a commit of a known repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildFact {
    pub image: ImageRef,
    pub digest: String,
    pub repository: String,
    pub commit_sha: String,
    pub branch: Option<String>,
    pub pull_request_number: Option<i64>,
    pub ci_system: Option<String>,
    pub run_id: Option<String>,
    pub run_url: Option<String>,
    pub built_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRunFact {
    pub ci_system: String,
    pub run_id: String,
    pub name: String,
    pub url: Option<String>,
    pub status: String,
    pub repository: Option<String>,
    pub commit_sha: Option<String>,
    pub pull_request_number: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub steps: Vec<PipelineStepFact>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineStepFact {
    pub name: String,
    pub kind: String,
    pub status: String,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// Points an application at the deployment whose images it runs now: its latest
/// succeeded one (a failed sync changes nothing that runs).
const CURRENT_DEPLOYMENT: &str = "UPDATE applications SET current_deployment_id = (
        SELECT d.id FROM deployments d WHERE d.application_id = $1 AND d.phase = 'Succeeded'
        ORDER BY COALESCE(d.finished_at, d.started_at) DESC, d.incarnation DESC, d.history_id DESC LIMIT 1)
    WHERE id = $1";

/// Whether an application seen again is a new incarnation of the one recorded under its
/// name: Argo CD gave it another uid, or (where a uid is unknown) it had been deleted.
fn reincarnated(recorded_uid: Option<&str>, seen_uid: Option<&str>, deleted_at: Option<i64>) -> bool {
    match (recorded_uid, seen_uid) {
        (Some(recorded), Some(seen)) => recorded != seen,
        _ => deleted_at.is_some(),
    }
}

fn required(field: &str, value: &str) -> Result<(), LedgerError> {
    if value.trim().is_empty() {
        Err(LedgerError::Invalid(format!("`{field}` is empty; a value is required")))
    } else {
        Ok(())
    }
}

fn one_of(field: &str, value: &str, accepted: &[&str]) -> Result<(), LedgerError> {
    if accepted.contains(&value) {
        Ok(())
    } else {
        Err(LedgerError::Invalid(format!("`{field}` is `{value}`; accepted: {}", accepted.join(", "))))
    }
}

fn not_found(what: &str, key: String) -> LedgerError {
    LedgerError::Invalid(format!("{what} `{key}` is not in the ledger; record it first"))
}

/// Inside a transaction `$tx`: the id of the repository named `$name`, or an early
/// return saying it is not in the ledger.
macro_rules! repository_id {
    ($tx:ident, $name:expr) => {{
        let name: &String = $name;
        let id: i64 = sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *$tx)
            .await?
            .ok_or_else(|| not_found("repository", name.clone()))?;
        id
    }};
}

/// Inside a transaction `$tx`: the id of image `$image` (an [`ImageRef`]), recorded if new.
macro_rules! image_id {
    ($tx:ident, $image:expr) => {{
        let image: &ImageRef = $image;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO images (repository, tag) VALUES ($1, $2)
             ON CONFLICT (repository, tag) DO UPDATE SET tag = excluded.tag RETURNING id",
        )
        .bind(&image.repository)
        .bind(&image.tag)
        .fetch_one(&mut *$tx)
        .await?;
        id
    }};
}

/// Inside a transaction `$tx`: makes sure each feature key exists and links it to row
/// `$id` with `$insert_link` (`INSERT INTO <link table> (<row column>, feature_id)`).
macro_rules! link_features {
    ($tx:ident, $insert_link:literal, $id:expr, $keys:expr) => {
        for key in $keys {
            let feature_id: i64 = sqlx::query_scalar(
                "INSERT INTO features (key) VALUES ($1) ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING id",
            )
            .bind(key)
            .fetch_one(&mut *$tx)
            .await?;
            sqlx::query(concat!($insert_link, " VALUES ($1, $2) ON CONFLICT DO NOTHING"))
                .bind($id)
                .bind(feature_id)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

impl Ledger {
    pub async fn upsert_environment(&self, fact: &EnvironmentFact) -> Result<i64, LedgerError> {
        required("name", &fact.name)?;
        let rules = fact.match_rules.to_string();
        let sql = "INSERT INTO environments (name, rank, match_rules) VALUES ($1, $2, $3)
                   ON CONFLICT (name) DO UPDATE SET rank = excluded.rank, match_rules = excluded.match_rules
                   RETURNING id";
        let id = on_pool!(self.pool(), |p| {
            sqlx::query_scalar(sql).bind(&fact.name).bind(fact.rank).bind(&rules).fetch_one(p).await?
        });
        Ok(id)
    }

    /// Records an application's current state; a change of sync status or health is
    /// also kept, with its time, in the application's status history.
    pub async fn upsert_application(&self, fact: &ApplicationFact) -> Result<i64, LedgerError> {
        for (field, value) in [("instance", &fact.instance), ("namespace", &fact.namespace), ("name", &fact.name)] {
            required(field, value)?;
        }
        let sources = fact.sources.to_string();
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let environment_id: Option<i64> = match &fact.environment {
                Some(name) => Some(
                    sqlx::query_scalar("SELECT id FROM environments WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| not_found("environment", name.clone()))?,
                ),
                None => None,
            };
            let service_id: Option<i64> = match &fact.service {
                Some(name) => Some(
                    sqlx::query_scalar(
                        "INSERT INTO services (name) VALUES ($1)
                         ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
                    )
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?,
                ),
                None => None,
            };
            type Previous = (Option<String>, Option<String>, Option<String>, i64, Option<i64>, String, bool);
            let previous: Option<Previous> = sqlx::query_as(
                "SELECT sync_status, health_status, uid, incarnation, deleted_at, sources, source_paths_indexed
                 FROM applications WHERE instance = $1 AND namespace = $2 AND name = $3",
            )
            .bind(&fact.instance)
            .bind(&fact.namespace)
            .bind(&fact.name)
            .fetch_optional(&mut *tx)
            .await?;
            let incarnation = match &previous {
                None => 0,
                Some((_, _, uid, incarnation, deleted_at, ..)) => {
                    incarnation + i64::from(reincarnated(uid.as_deref(), fact.uid.as_deref(), *deleted_at))
                }
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO applications (instance, namespace, name, project, environment_id, service_id, sources,
                     dest_server, dest_name, dest_namespace, sync_status, health_status, automated_sync, updated_at,
                     uid, incarnation, source_paths_indexed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, TRUE)
                 ON CONFLICT (instance, namespace, name) DO UPDATE SET
                     project = excluded.project, environment_id = excluded.environment_id,
                     service_id = excluded.service_id, sources = excluded.sources,
                     dest_server = excluded.dest_server, dest_name = excluded.dest_name,
                     dest_namespace = excluded.dest_namespace, sync_status = excluded.sync_status,
                     health_status = excluded.health_status, automated_sync = excluded.automated_sync,
                     updated_at = excluded.updated_at, deleted_at = NULL,
                     uid = COALESCE(excluded.uid, applications.uid), incarnation = excluded.incarnation,
                     source_paths_indexed = TRUE
                 RETURNING id",
            )
            .bind(&fact.instance)
            .bind(&fact.namespace)
            .bind(&fact.name)
            .bind(&fact.project)
            .bind(environment_id)
            .bind(service_id)
            .bind(&sources)
            .bind(&fact.dest_server)
            .bind(&fact.dest_name)
            .bind(&fact.dest_namespace)
            .bind(&fact.sync_status)
            .bind(&fact.health_status)
            .bind(fact.automated_sync)
            .bind(fact.observed_at)
            .bind(&fact.uid)
            .bind(incarnation)
            .fetch_one(&mut *tx)
            .await?;
            let paths_stale = previous.as_ref().is_none_or(|(.., stored, indexed)| !indexed || *stored != sources);
            if paths_stale {
                write_source_paths!(tx, id, &fact.sources);
            }
            let changed =
                previous.is_none_or(|(sync, health, ..)| sync != fact.sync_status || health != fact.health_status);
            if changed {
                sqlx::query(
                    "INSERT INTO application_status_changes (application_id, at, sync_status, health_status)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(fact.observed_at)
                .bind(&fact.sync_status)
                .bind(&fact.health_status)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Records one deployment of a known application with the images it ran before and
    /// after, all or nothing.
    pub async fn record_deployment(&self, fact: &DeploymentFact) -> Result<i64, LedgerError> {
        required("revision", &fact.revision)?;
        required("phase", &fact.phase)?;
        let revisions = serde_json::to_string(&fact.revisions).unwrap_or_else(|_| "[]".into());
        let (id, application_id, incarnation) = on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            // History ids count within the application's current incarnation.
            let (application_id, incarnation): (i64, i64) = sqlx::query_as(
                "SELECT id, incarnation FROM applications WHERE instance = $1 AND namespace = $2 AND name = $3",
            )
            .bind(&fact.instance)
            .bind(&fact.namespace)
            .bind(&fact.application)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                not_found("application", format!("{}/{}/{}", fact.instance, fact.namespace, fact.application))
            })?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO deployments (application_id, history_id, revision, revisions, started_at, finished_at,
                     phase, message, initiated_by, automated, is_rollback, incarnation)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (application_id, incarnation, history_id) DO UPDATE SET
                     revision = excluded.revision, revisions = excluded.revisions,
                     started_at = excluded.started_at, finished_at = excluded.finished_at,
                     phase = excluded.phase, message = excluded.message,
                     initiated_by = excluded.initiated_by, automated = excluded.automated,
                     is_rollback = excluded.is_rollback, sources_version = deployments.sources_version + 1
                 RETURNING id",
            )
            .bind(application_id)
            .bind(fact.history_id)
            .bind(&fact.revision)
            .bind(&revisions)
            .bind(fact.started_at)
            .bind(fact.finished_at)
            .bind(&fact.phase)
            .bind(&fact.message)
            .bind(&fact.initiated_by)
            .bind(fact.automated)
            .bind(fact.is_rollback)
            .bind(incarnation)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM deployment_images WHERE deployment_id = $1").bind(id).execute(&mut *tx).await?;
            let sides =
                fact.images_before.iter().map(|i| ("before", i)).chain(fact.images_after.iter().map(|i| ("after", i)));
            for (side, image) in sides {
                let image_id = image_id!(tx, image);
                sqlx::query(
                    "INSERT INTO deployment_images (deployment_id, image_id, side) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(image_id)
                .bind(side)
                .execute(&mut *tx)
                .await?;
            }
            // The source commits the deployment left running: each image's latest
            // reported build (the one whose digest the image has now).
            sqlx::query("DELETE FROM deployment_sources WHERE deployment_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO deployment_sources (deployment_id, image_id, repository_id, sha)
                 SELECT di.deployment_id, i.id, b.repository_id, b.commit_sha
                 FROM deployment_images di JOIN images i ON i.id = di.image_id JOIN builds b ON b.image_id = i.id
                 WHERE di.deployment_id = $1 AND di.side = 'after'
                   AND b.id = (SELECT b2.id FROM builds b2 WHERE b2.image_id = i.id AND b2.repository_id IS NOT NULL
                               ORDER BY COALESCE(b2.digest = (SELECT i2.digest FROM images i2 WHERE i2.id = b2.image_id), FALSE) DESC,
                                        b2.built_at DESC LIMIT 1)",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(CURRENT_DEPLOYMENT).bind(application_id).execute(&mut *tx).await?;
            // Presence changes with the deployment: never one visible without the other.
            refresh_presence!(tx, application_id);
            tx.commit().await?;
            Ok::<_, LedgerError>((id, application_id, incarnation))
        })?;
        if fact.phase == "Succeeded" {
            let at = fact.finished_at.unwrap_or(fact.started_at);
            if let Some((previous, ..)) =
                self.previous_deployment(application_id, at, incarnation, fact.history_id).await?
            {
                self.remember_change(previous, id).await?;
            }
        }
        Ok(id)
    }

    /// Replaces what an application manages with `resources`, as observed at `observed_at`.
    pub async fn replace_resources(
        &self,
        instance: &str,
        namespace: &str,
        application: &str,
        observed_at: i64,
        resources: &[ResourceFact],
    ) -> Result<(), LedgerError> {
        for resource in resources {
            required("kind", &resource.kind)?;
            required("name", &resource.name)?;
        }
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let application_id: i64 =
                sqlx::query_scalar("SELECT id FROM applications WHERE instance = $1 AND namespace = $2 AND name = $3")
                    .bind(instance)
                    .bind(namespace)
                    .bind(application)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| not_found("application", format!("{instance}/{namespace}/{application}")))?;
            sqlx::query("DELETE FROM resources WHERE application_id = $1")
                .bind(application_id)
                .execute(&mut *tx)
                .await?;
            for resource in resources {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO resources (application_id, api_group, kind, namespace, name, health_status, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(application_id)
                .bind(&resource.group)
                .bind(&resource.kind)
                .bind(&resource.namespace)
                .bind(&resource.name)
                .bind(&resource.health)
                .bind(observed_at)
                .fetch_one(&mut *tx)
                .await?;
                for image in &resource.images {
                    let image_id = image_id!(tx, image);
                    sqlx::query(
                        "INSERT INTO resource_images (resource_id, image_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(image_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Adds what a direct reading of the application's cluster saw to the resources Argo
    /// CD's tree recorded. The tree stays authoritative for *which* objects an application
    /// manages, so a live object without a recorded counterpart (same group, kind,
    /// namespace and name) is ignored. Argo CD's own health and images are kept (its health
    /// checks know more than replica counts, and its images are the running pods'); the
    /// cluster fills only what the tree left empty, and refreshes what it filled itself
    /// until [`Ledger::replace_resources`] writes a new tree. Returns the resources changed.
    pub async fn enrich_resources(
        &self,
        instance: &str,
        namespace: &str,
        application: &str,
        observed_at: i64,
        live: &[ResourceFact],
    ) -> Result<usize, LedgerError> {
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let application_id: i64 =
                sqlx::query_scalar("SELECT id FROM applications WHERE instance = $1 AND namespace = $2 AND name = $3")
                    .bind(instance)
                    .bind(namespace)
                    .bind(application)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| not_found("application", format!("{instance}/{namespace}/{application}")))?;
            let mut changed = 0;
            for object in live {
                let recorded: Option<(i64, Option<String>, bool, bool)> = sqlx::query_as(
                    "SELECT id, health_status, health_from_cluster, images_from_cluster FROM resources
                     WHERE application_id = $1 AND api_group = $2 AND kind = $3 AND namespace = $4 AND name = $5",
                )
                .bind(application_id)
                .bind(&object.group)
                .bind(&object.kind)
                .bind(&object.namespace)
                .bind(&object.name)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((id, health, health_from_cluster, images_from_cluster)) = recorded else { continue };
                let mut touched = false;
                if object.health.is_some() && (health.is_none() || health_from_cluster) && health != object.health {
                    sqlx::query(
                        "UPDATE resources SET health_status = $2, health_from_cluster = TRUE, updated_at = $3 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(&object.health)
                    .bind(observed_at)
                    .execute(&mut *tx)
                    .await?;
                    touched = true;
                }
                let images: Vec<(String, String)> = sqlx::query_as(
                    "SELECT i.repository, i.tag FROM resource_images ri JOIN images i ON i.id = ri.image_id
                     WHERE ri.resource_id = $1",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                let mut seen: Vec<(String, String)> =
                    object.images.iter().map(|i| (i.repository.clone(), i.tag.clone())).collect();
                seen.sort();
                seen.dedup();
                let mut images = images;
                images.sort();
                if !seen.is_empty() && (images.is_empty() || images_from_cluster) && images != seen {
                    sqlx::query("DELETE FROM resource_images WHERE resource_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    for image in &object.images {
                        let image_id = image_id!(tx, image);
                        sqlx::query(
                            "INSERT INTO resource_images (resource_id, image_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        )
                        .bind(id)
                        .bind(image_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query("UPDATE resources SET images_from_cluster = TRUE, updated_at = $2 WHERE id = $1")
                        .bind(id)
                        .bind(observed_at)
                        .execute(&mut *tx)
                        .await?;
                    touched = true;
                }
                changed += usize::from(touched);
            }
            tx.commit().await?;
            Ok(changed)
        })
    }

    pub async fn upsert_repository(&self, fact: &RepositoryFact) -> Result<i64, LedgerError> {
        required("name", &fact.name)?;
        required("url", &fact.url)?;
        one_of("kind", &fact.kind, &REPOSITORY_KINDS)?;
        let sql = "INSERT INTO repositories (name, url, kind) VALUES ($1, $2, $3)
                   ON CONFLICT (name) DO UPDATE SET url = excluded.url, kind = excluded.kind RETURNING id";
        let id = on_pool!(self.pool(), |p| {
            sqlx::query_scalar(sql).bind(&fact.name).bind(&fact.url).bind(&fact.kind).fetch_one(p).await?
        });
        Ok(id)
    }

    /// Records a commit with its parents and the features its message names.
    pub async fn record_commit(&self, fact: &CommitFact) -> Result<i64, LedgerError> {
        let ids = self.record_commits(std::slice::from_ref(fact)).await?;
        Ok(ids[0])
    }

    /// Records a batch of commits in one transaction: all of them or none, with the
    /// pull requests their messages name (as an [`Ledger::upsert_pull_request`] of the
    /// number, the commit as merge commit and its features would).
    pub async fn record_commits(&self, facts: &[CommitFact]) -> Result<Vec<i64>, LedgerError> {
        for fact in facts {
            let valid_length = fact.sha.len() == 40 || fact.sha.len() == 64;
            if !valid_length || !fact.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(LedgerError::Invalid(format!(
                    "`sha` is `{}`; a full hexadecimal object id (40 or 64 characters) is required",
                    fact.sha
                )));
            }
        }
        // One row per commit: a second copy in the same batch would make PostgreSQL's
        // multi-row upsert touch a row twice.
        let mut seen = std::collections::HashSet::new();
        let mut unique: Vec<&CommitFact> =
            facts.iter().rev().filter(|f| seen.insert((f.repository.as_str(), f.sha.to_ascii_lowercase()))).collect();
        unique.reverse();
        let mut repository_names: Vec<&str> = unique.iter().map(|f| f.repository.as_str()).collect();
        repository_names.sort_unstable();
        repository_names.dedup();
        let mut keys: Vec<&str> = unique.iter().flat_map(|f| f.feature_keys.iter().map(String::as_str)).collect();
        keys.sort_unstable();
        keys.dedup();

        // Multi-row statements: a statement per row made a first ingest of a large
        // history dozens of times slower than reading it from Git.
        let mut repositories: HashMap<&str, i64> = HashMap::new();
        let mut commit_ids: HashMap<(i64, String), i64> = HashMap::new();
        let mut feature_ids: HashMap<String, i64> = HashMap::new();
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            for &name in &repository_names {
                let owned = name.to_string();
                let id = repository_id!(tx, &owned);
                repositories.insert(name, id);
            }
            for chunk in unique.chunks(COMMIT_ROWS) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO commits (repository_id, sha, author_name, author_email, authored_at, author_offset_minutes,
                         committer_name, committer_email, committed_at, committer_offset_minutes, message,
                         pull_request_number, reachable) ",
                );
                insert.push_values(chunk, |mut row, fact| {
                    row.push_bind(repositories[fact.repository.as_str()])
                        .push_bind(fact.sha.to_ascii_lowercase())
                        .push_bind(fact.author.name.clone())
                        .push_bind(fact.author.email.clone())
                        .push_bind(fact.author.at)
                        .push_bind(fact.author.offset_minutes)
                        .push_bind(fact.committer.name.clone())
                        .push_bind(fact.committer.email.clone())
                        .push_bind(fact.committer.at)
                        .push_bind(fact.committer.offset_minutes)
                        .push_bind(fact.message.clone())
                        .push_bind(fact.pull_request_number)
                        .push("TRUE");
                });
                insert.push(
                    " ON CONFLICT (repository_id, sha) DO UPDATE SET
                         pull_request_number = COALESCE(excluded.pull_request_number, commits.pull_request_number),
                         reachable = TRUE",
                );
                let rows = upsert_returning!(
                    tx,
                    insert,
                    "commits.id, commits.repository_id, commits.sha",
                    "FROM json_each($1) AS w
                     JOIN commits ON commits.repository_id = w.value ->> 0 AND commits.sha = w.value ->> 1",
                    chunk
                        .iter()
                        .map(|fact| (repositories[fact.repository.as_str()], fact.sha.to_ascii_lowercase()))
                        .collect::<Vec<_>>(),
                    (i64, i64, String)
                );
                for (id, repository_id, sha) in rows {
                    commit_ids.insert((repository_id, sha), id);
                }
            }
            let id_of = |fact: &CommitFact| {
                commit_ids[&(repositories[fact.repository.as_str()], fact.sha.to_ascii_lowercase())]
            };

            for chunk in unique.chunks(LINK_ROWS) {
                let mut delete = sqlx::QueryBuilder::new("DELETE FROM commit_parents WHERE commit_id IN (");
                let mut ids = delete.separated(", ");
                for fact in chunk {
                    ids.push_bind(id_of(fact));
                }
                delete.push(")");
                delete.build().execute(&mut *tx).await?;
            }
            let parents: Vec<(i64, i64, String)> = unique
                .iter()
                .flat_map(|fact| {
                    let id = id_of(fact);
                    fact.parents
                        .iter()
                        .enumerate()
                        .map(move |(position, sha)| (id, position as i64, sha.to_ascii_lowercase()))
                })
                .collect();
            for chunk in parents.chunks(LINK_ROWS) {
                let mut insert =
                    sqlx::QueryBuilder::new("INSERT INTO commit_parents (commit_id, position, parent_sha) ");
                insert.push_values(chunk, |mut row, (id, position, sha)| {
                    row.push_bind(*id).push_bind(*position).push_bind(sha.clone());
                });
                insert.build().execute(&mut *tx).await?;
            }

            for chunk in keys.chunks(LINK_ROWS) {
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO features (key) ");
                insert.push_values(chunk, |mut row, key| {
                    row.push_bind(key.to_string());
                });
                // SQLite reads the ids back, so it need not rewrite a feature it has.
                insert.push(if is_sqlite(&tx) {
                    " ON CONFLICT (key) DO NOTHING"
                } else {
                    " ON CONFLICT (key) DO UPDATE SET key = excluded.key"
                });
                let rows = upsert_returning!(
                    tx,
                    insert,
                    "features.id, features.key",
                    "FROM json_each($1) AS w JOIN features ON features.key = w.value",
                    chunk,
                    (i64, String)
                );
                feature_ids.extend(rows.into_iter().map(|(id, key)| (key, id)));
            }
            let feature_ids = &feature_ids;
            let mut links: Vec<(i64, i64)> = unique
                .iter()
                .flat_map(|fact| {
                    let id = id_of(fact);
                    fact.feature_keys.iter().map(move |key| (id, feature_ids[key]))
                })
                .collect();
            links.sort_unstable();
            links.dedup();
            for chunk in links.chunks(LINK_ROWS) {
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO commit_features (commit_id, feature_id) ");
                insert.push_values(chunk, |mut row, (commit_id, feature_id)| {
                    row.push_bind(*commit_id).push_bind(*feature_id);
                });
                insert.push(" ON CONFLICT DO NOTHING");
                insert.build().execute(&mut *tx).await?;
            }

            // The pull requests the commits name (a merge or squash commit each), with
            // the commit as merge commit and its features; the last commit naming a
            // number wins, as one upsert per commit in order would.
            let mut named: HashMap<(i64, i64), &CommitFact> = HashMap::new();
            for fact in &unique {
                if let Some(number) = fact.pull_request_number.filter(|n| *n > 0) {
                    named.insert((repositories[fact.repository.as_str()], number), fact);
                }
            }
            let named: Vec<((i64, i64), &CommitFact)> = named.into_iter().collect();
            let mut pull_request_ids: HashMap<(i64, i64), i64> = HashMap::new();
            for chunk in named.chunks(COMMIT_ROWS) {
                let mut insert =
                    sqlx::QueryBuilder::new("INSERT INTO pull_requests (repository_id, number, merge_commit_sha) ");
                insert.push_values(chunk, |mut row, ((repository_id, number), fact)| {
                    row.push_bind(*repository_id).push_bind(*number).push_bind(fact.sha.to_ascii_lowercase());
                });
                insert.push(
                    " ON CONFLICT (repository_id, number) DO UPDATE SET merge_commit_sha = excluded.merge_commit_sha",
                );
                let rows = upsert_returning!(
                    tx,
                    insert,
                    "pull_requests.id, pull_requests.repository_id, pull_requests.number",
                    "FROM json_each($1) AS w
                     JOIN pull_requests
                       ON pull_requests.repository_id = w.value ->> 0 AND pull_requests.number = w.value ->> 1",
                    chunk.iter().map(|(key, _)| *key).collect::<Vec<(i64, i64)>>(),
                    (i64, i64, i64)
                );
                pull_request_ids
                    .extend(rows.into_iter().map(|(id, repository_id, number)| ((repository_id, number), id)));
            }
            let mut pull_request_links: Vec<(i64, i64)> = named
                .iter()
                .flat_map(|(key, fact)| {
                    let id = pull_request_ids[key];
                    fact.feature_keys.iter().map(move |feature| (id, feature_ids[feature]))
                })
                .collect();
            pull_request_links.sort_unstable();
            pull_request_links.dedup();
            for chunk in pull_request_links.chunks(LINK_ROWS) {
                let mut insert =
                    sqlx::QueryBuilder::new("INSERT INTO pull_request_features (pull_request_id, feature_id) ");
                insert.push_values(chunk, |mut row, (pull_request_id, feature_id)| {
                    row.push_bind(*pull_request_id).push_bind(*feature_id);
                });
                insert.push(" ON CONFLICT DO NOTHING");
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(facts.iter().map(id_of).collect())
        })
    }

    /// Records a pull request; details left out (`None`) keep what is already known, so
    /// what Git history says never erases what the forge said.
    pub async fn upsert_pull_request(&self, fact: &PullRequestFact) -> Result<i64, LedgerError> {
        if fact.number <= 0 {
            return Err(LedgerError::Invalid(format!("`number` is {}; a positive number is required", fact.number)));
        }
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let repository_id = repository_id!(tx, &fact.repository);
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO pull_requests (repository_id, number, title, body, author, head_branch, merged_at,
                     merge_commit_sha, fetched_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (repository_id, number) DO UPDATE SET
                     title = COALESCE(excluded.title, pull_requests.title),
                     body = COALESCE(excluded.body, pull_requests.body),
                     author = COALESCE(excluded.author, pull_requests.author),
                     head_branch = COALESCE(excluded.head_branch, pull_requests.head_branch),
                     merged_at = COALESCE(excluded.merged_at, pull_requests.merged_at),
                     merge_commit_sha = COALESCE(excluded.merge_commit_sha, pull_requests.merge_commit_sha),
                     fetched_at = COALESCE(excluded.fetched_at, pull_requests.fetched_at)
                 RETURNING id",
            )
            .bind(repository_id)
            .bind(fact.number)
            .bind(&fact.title)
            .bind(&fact.body)
            .bind(&fact.author)
            .bind(&fact.head_branch)
            .bind(fact.merged_at)
            .bind(&fact.merge_commit_sha)
            .bind(fact.fetched_at)
            .fetch_one(&mut *tx)
            .await?;
            link_features!(
                tx,
                "INSERT INTO pull_request_features (pull_request_id, feature_id)",
                id,
                &fact.feature_keys
            );
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Stores what the issue tracker says of a feature.
    pub async fn upsert_feature(&self, fact: &FeatureFact) -> Result<i64, LedgerError> {
        required("key", &fact.key)?;
        let sql = "INSERT INTO features (key, summary, issue_type, status, assignee, url, fetched_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (key) DO UPDATE SET summary = excluded.summary, issue_type = excluded.issue_type,
                       status = excluded.status, assignee = excluded.assignee, url = excluded.url,
                       fetched_at = excluded.fetched_at
                   RETURNING id";
        let id = on_pool!(self.pool(), |p| {
            sqlx::query_scalar(sql)
                .bind(&fact.key)
                .bind(&fact.summary)
                .bind(&fact.issue_type)
                .bind(&fact.status)
                .bind(&fact.assignee)
                .bind(&fact.url)
                .bind(fact.fetched_at)
                .fetch_one(p)
                .await?
        });
        Ok(id)
    }

    /// Records a build: the image (with its digest) and where it came from, keyed by
    /// digest, in one transaction.
    pub async fn record_build(&self, fact: &BuildFact) -> Result<i64, LedgerError> {
        required("digest", &fact.digest)?;
        required("commit_sha", &fact.commit_sha)?;
        let (id, repository_id) = on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let repository_id = repository_id!(tx, &fact.repository);
            let image_id: i64 = sqlx::query_scalar(
                "INSERT INTO images (repository, tag, digest) VALUES ($1, $2, $3)
                 ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest RETURNING id",
            )
            .bind(&fact.image.repository)
            .bind(&fact.image.tag)
            .bind(&fact.digest)
            .fetch_one(&mut *tx)
            .await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO builds (digest, image_id, repository_id, commit_sha, branch, pull_request_number,
                     ci_system, run_id, run_url, built_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (digest) DO UPDATE SET
                     image_id = excluded.image_id, repository_id = excluded.repository_id,
                     commit_sha = excluded.commit_sha, branch = excluded.branch,
                     pull_request_number = excluded.pull_request_number, ci_system = excluded.ci_system,
                     run_id = excluded.run_id, run_url = excluded.run_url, built_at = excluded.built_at
                 RETURNING id",
            )
            .bind(&fact.digest)
            .bind(image_id)
            .bind(repository_id)
            .bind(fact.commit_sha.to_ascii_lowercase())
            .bind(&fact.branch)
            .bind(fact.pull_request_number)
            .bind(&fact.ci_system)
            .bind(&fact.run_id)
            .bind(&fact.run_url)
            .bind(fact.built_at)
            .fetch_one(&mut *tx)
            .await?;
            // Deployments that already run this image now know where it came from.
            sqlx::query(
                "INSERT INTO deployment_sources (deployment_id, image_id, repository_id, sha)
                 SELECT deployment_id, image_id, $2, $3 FROM deployment_images WHERE image_id = $1 AND side = 'after'
                 ON CONFLICT (deployment_id, image_id) DO UPDATE SET
                     repository_id = excluded.repository_id, sha = excluded.sha",
            )
            .bind(image_id)
            .bind(repository_id)
            .bind(fact.commit_sha.to_ascii_lowercase())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE deployments SET sources_version = sources_version + 1
                 WHERE id IN (SELECT deployment_id FROM deployment_images WHERE image_id = $1 AND side = 'after')",
            )
            .bind(image_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, LedgerError>((id, repository_id))
        })?;
        self.place_build_commit(repository_id, &fact.commit_sha.to_ascii_lowercase()).await?;
        Ok(id)
    }

    /// Names of the repositories in the ledger, for messages that list what is accepted.
    pub async fn repository_names(&self) -> Result<Vec<String>, LedgerError> {
        let sql = "SELECT name FROM repositories ORDER BY name";
        let names = on_pool!(self.pool(), |p| sqlx::query_scalar(sql).fetch_all(p).await?);
        Ok(names)
    }

    /// Records a CI run with its steps; the steps given replace the stored ones.
    pub async fn record_pipeline_run(&self, fact: &PipelineRunFact) -> Result<i64, LedgerError> {
        required("ci_system", &fact.ci_system)?;
        required("run_id", &fact.run_id)?;
        required("name", &fact.name)?;
        for (index, step) in fact.steps.iter().enumerate() {
            one_of(&format!("steps[{index}].kind"), &step.kind, &STEP_KINDS)?;
        }
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let repository_id: Option<i64> = match &fact.repository {
                Some(name) => Some(repository_id!(tx, name)),
                None => None,
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO pipeline_runs (ci_system, run_id, name, url, status, repository_id, commit_sha,
                     pull_request_number, started_at, finished_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (ci_system, run_id) DO UPDATE SET
                     name = excluded.name, url = excluded.url, status = excluded.status,
                     repository_id = excluded.repository_id, commit_sha = excluded.commit_sha,
                     pull_request_number = excluded.pull_request_number,
                     started_at = excluded.started_at, finished_at = excluded.finished_at
                 RETURNING id",
            )
            .bind(&fact.ci_system)
            .bind(&fact.run_id)
            .bind(&fact.name)
            .bind(&fact.url)
            .bind(&fact.status)
            .bind(repository_id)
            .bind(&fact.commit_sha)
            .bind(fact.pull_request_number)
            .bind(fact.started_at)
            .bind(fact.finished_at)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM pipeline_steps WHERE pipeline_run_id = $1").bind(id).execute(&mut *tx).await?;
            for (position, step) in fact.steps.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO pipeline_steps (pipeline_run_id, position, name, kind, status, started_at, finished_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(position as i64)
                .bind(&step.name)
                .bind(&step.kind)
                .bind(&step.status)
                .bind(step.started_at)
                .bind(step.finished_at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ImageRef;

    #[test]
    fn image_references_split_at_the_tag() {
        let image = ImageRef::parse("registry.local:5000/team/shop:1.4.2").unwrap();
        assert_eq!((image.repository.as_str(), image.tag.as_str()), ("registry.local:5000/team/shop", "1.4.2"));
        let image = ImageRef::parse("registry.local:5000/team/shop").unwrap();
        assert_eq!((image.repository.as_str(), image.tag.as_str()), ("registry.local:5000/team/shop", "latest"));
        let image = ImageRef::parse("nginx:1.27@sha256:abc").unwrap();
        assert_eq!((image.repository.as_str(), image.tag.as_str()), ("nginx", "1.27"));
        assert!(ImageRef::parse(" ").is_err());
        assert!(ImageRef::parse("a b:1").unwrap_err().to_string().contains("REPOSITORY[:TAG]"));
    }
}
