//! The answers behind the environment questions: what entered an environment in a
//! window, what one environment has that another lacks, who changed its manifests, and
//! the plan for rolling it back to just before something shipped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use super::cards::{CommitSummary, FeatureRef, PullRequestRef, Signature};
use super::changes::DiffCache;
use super::presence::{ApplicationPresence, ApplicationRef, ChangeSet, Target};
use super::{BeginWrite, Ledger, LedgerError, Pool, is_listed, json_list, listed, on_pool, read_rows};
use crate::timefmt::format_rfc3339;

/// The most deployments one page of an environment's changes lists.
pub const DEPLOYMENT_LIMIT: i64 = 500;

/// Deployments per page of an environment's changes when the caller does not say.
pub const DEFAULT_DEPLOYMENT_PAGE: i64 = 20;

/// Where a page of an environment's changes starts: after this deployment, in the
/// answer's order (time, then ledger id). Written `<milliseconds>.<id>` in `next` and
/// `after`, which callers pass back as they got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangesCursor {
    deployed_at: i64,
    deployment_id: i64,
}

impl std::fmt::Display for ChangesCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.deployed_at, self.deployment_id)
    }
}

impl std::str::FromStr for ChangesCursor {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (at, id) = text.split_once('.').ok_or(())?;
        let number = |digits: &str| {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            digits.parse::<i64>().map_err(drop)
        };
        Ok(ChangesCursor { deployed_at: number(at)?, deployment_id: number(id)? })
    }
}

/// Which deployments of a window one answer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangesPage {
    /// Start after this deployment; `None`: at the window's start.
    pub after: Option<ChangesCursor>,
    /// At most this many deployments (1 to [`DEPLOYMENT_LIMIT`]).
    pub limit: i64,
}

impl Default for ChangesPage {
    fn default() -> Self {
        ChangesPage { after: None, limit: DEFAULT_DEPLOYMENT_PAGE }
    }
}

/// An environment, as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentId {
    pub id: i64,
    pub name: String,
}

/// One deployment and what it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeploymentChange {
    pub application: ApplicationRef,
    pub history_id: i64,
    pub revision: String,
    /// RFC 3339: when the sync finished (or started, when it has no finish time).
    pub deployed_at: String,
    pub initiated_by: Option<String>,
    pub automated: bool,
    pub is_rollback: bool,
    pub changes: ChangeSet,
}

/// `GET /api/v1/environments/{env}/changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EnvironmentChanges {
    pub environment: String,
    pub since: String,
    pub until: String,
    /// Oldest first; one page of the window's deployments.
    pub deployments: Vec<DeploymentChange>,
    /// Features that some deployment of this page brought into an application.
    pub features_entered: Vec<FeatureRef>,
    pub pull_requests_entered: Vec<PullRequestRef>,
    /// Features that some deployment of this page took out (a rollback).
    pub features_left: Vec<FeatureRef>,
    /// Some deployment changed more commits than a change set lists; its lists are cut.
    pub truncated: bool,
    /// The window has more deployments: pass this as `after` for the next page.
    pub next: Option<String>,
}

/// `GET /api/v1/environments/compare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Comparison {
    pub from: String,
    pub to: String,
    /// Features running in `from` now and nowhere in `to`.
    pub only_in_from: Vec<FeatureRef>,
    /// Features running in `to` now and nowhere in `from`.
    pub only_in_to: Vec<FeatureRef>,
    pub pull_requests_only_in_from: Vec<PullRequestRef>,
    pub pull_requests_only_in_to: Vec<PullRequestRef>,
    pub truncated: bool,
}

/// A deployment to name in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeploymentRef {
    pub history_id: i64,
    pub revision: String,
    pub deployed_at: String,
}

/// What rolling one application back would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RollbackStep {
    pub application: ApplicationRef,
    /// `rollback` (return to `return_to`), `none` (it no longer runs the target) or
    /// `impossible` (the target came with its first recorded deployment).
    pub action: String,
    pub reason: String,
    /// The first deployment that carried the target.
    pub first_carrying: DeploymentRef,
    /// The last deployment before it: the one to return to (when `action` is `rollback`).
    pub return_to: Option<DeploymentRef>,
    /// Argo CD refuses to roll back an application with automated sync; it must be
    /// turned off first.
    pub automated_sync: bool,
    pub features_leaving: Vec<FeatureRef>,
    pub pull_requests_leaving: Vec<PullRequestRef>,
    pub truncated: bool,
}

/// `POST /api/v1/rollback-plans`: a preview, nothing is executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RollbackPlan {
    pub environment: String,
    pub target: String,
    pub applications: Vec<RollbackStep>,
}

/// One commit to a manifests repository that touched an environment's applications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ManifestCommit {
    #[serde(flatten)]
    pub commit: CommitSummary,
    pub applications: Vec<ApplicationRef>,
    pub paths: Vec<String>,
}

/// Someone who changed the manifests, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ManifestAuthor {
    pub name: String,
    pub email: String,
    pub commits: usize,
}

/// `GET /api/v1/manifests/commits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ManifestChanges {
    pub environment: String,
    pub since: String,
    pub until: String,
    /// Committers, most commits first.
    pub people: Vec<ManifestAuthor>,
    /// Newest first.
    pub commits: Vec<ManifestCommit>,
}

/// What a rollback plan needs to know of one application.
struct RollbackFacts {
    automated_sync: bool,
    current: Option<i64>,
    /// The first deployment that carried the target: its revision and time.
    first_revision: String,
    first_at: i64,
    /// The deployment before it: (id, history id, revision, time).
    previous: Option<(i64, i64, String, i64)>,
}

/// Why a rollback plan has nothing to show.
#[derive(Debug)]
pub enum PlanError {
    NeverReached,
    Ledger(LedgerError),
}

impl From<LedgerError> for PlanError {
    fn from(error: LedgerError) -> Self {
        PlanError::Ledger(error)
    }
}

impl From<sqlx::Error> for PlanError {
    fn from(error: sqlx::Error) -> Self {
        PlanError::Ledger(error.into())
    }
}

/// A subquery for the id of the deployment before deployment `d` (an alias) of the same
/// application: the latest succeeded one by (time, incarnation, history id). The row
/// comparison says exactly that; the plain `<=` on the time lets the
/// `deployments_app_time` index seek to it instead of reading the application's history.
fn previous_deployment(d: &str) -> String {
    format!(
        "(SELECT p.id FROM deployments p
          WHERE p.application_id = {d}.application_id AND p.phase = 'Succeeded'
            AND COALESCE(p.finished_at, p.started_at) <= COALESCE({d}.finished_at, {d}.started_at)
            AND (COALESCE(p.finished_at, p.started_at), p.incarnation, p.history_id)
                < (COALESCE({d}.finished_at, {d}.started_at), {d}.incarnation, {d}.history_id)
          ORDER BY COALESCE(p.finished_at, p.started_at) DESC, p.incarnation DESC, p.history_id DESC LIMIT 1)"
    )
}

/// A Git URL reduced to host and path, so that `https://host/acme/deploy.git`,
/// `git@host:acme/deploy` and `ssh://git@host/acme/deploy/` compare equal.
pub fn normalise_git_url(url: &str) -> String {
    let mut rest = url.trim().to_ascii_lowercase();
    if let Some((_, after)) = rest.split_once("://") {
        rest = after.to_string();
    } else if let Some((user_host, path)) = rest.split_once(':')
        && !user_host.contains('/')
    {
        rest = format!("{user_host}/{path}");
    }
    if let Some((user, after)) = rest.split_once('@')
        && !user.contains('/')
    {
        rest = after.to_string();
    }
    let rest = rest.trim_end_matches('/');
    rest.strip_suffix(".git").unwrap_or(rest).to_string()
}

/// Where an application's sources read manifests, as stored for the manifests question:
/// each source's repository URL normalised (see [`normalise_git_url`]) and its path with
/// the slashes around it trimmed, the repository's root being `""`. A source without a
/// path (a Helm chart) reads the whole repository.
pub(crate) fn source_paths(sources: &serde_json::Value) -> BTreeSet<(String, String)> {
    let Some(sources) = sources.as_array() else { return BTreeSet::new() };
    sources
        .iter()
        .filter_map(|source| {
            let url = source.get("repoURL").and_then(|v| v.as_str())?;
            let path = source.get("path").and_then(|v| v.as_str()).unwrap_or_default().trim_matches('/');
            let path = if path == "." { "" } else { path };
            Some((normalise_git_url(url), path.to_string()))
        })
        .collect()
}

/// Replaces, inside the write transaction `$tx`, the stored [`source_paths`] of
/// application `$id` with those of `$sources` (a JSON source list).
macro_rules! write_source_paths {
    ($tx:ident, $id:expr, $sources:expr) => {{
        let id: i64 = $id;
        sqlx::query("DELETE FROM application_source_paths WHERE application_id = $1")
            .bind(id)
            .execute(&mut *$tx)
            .await?;
        for (repo_url, path) in $crate::ledger::questions::source_paths($sources) {
            sqlx::query("INSERT INTO application_source_paths (application_id, repo_url, path) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(repo_url)
                .bind(path)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use write_source_paths;

/// The source paths a changed file lies under: the repository's root and each of the
/// file's leading folders, then the file itself (see [`under`]).
fn enclosing_paths(path: &str) -> impl Iterator<Item = &str> {
    std::iter::once("")
        .chain(path.match_indices('/').map(|(at, _)| &path[..at]).filter(|prefix| !prefix.is_empty()))
        .chain(std::iter::once(path))
}

/// Whether a changed file lies under an application's source path.
fn under(path: &str, source_path: &str) -> bool {
    let source_path = source_path.trim_matches('/');
    source_path.is_empty()
        || source_path == "."
        || path == source_path
        || path.strip_prefix(source_path).is_some_and(|rest| rest.starts_with('/'))
}

impl Ledger {
    /// An environment by name, ignoring case.
    pub async fn environment(&self, name: &str) -> Result<Option<EnvironmentId>, LedgerError> {
        let sql = "SELECT id, name FROM environments WHERE LOWER(name) = LOWER($1)";
        let row: Option<(i64, String)> =
            on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(name).fetch_optional(p).await?);
        Ok(row.map(|(id, name)| EnvironmentId { id, name }))
    }

    /// Whether the ledger knows the issue key, hidden or not.
    pub async fn feature_exists(&self, key: &str) -> Result<bool, LedgerError> {
        let sql = "SELECT COUNT(*) FROM features WHERE key = $1";
        let count: i64 = on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(key).fetch_one(p).await?);
        Ok(count > 0)
    }

    /// Whether the key is in the ledger but left out because Jira does not know it.
    pub async fn feature_excluded(&self, key: &str) -> Result<bool, LedgerError> {
        if !self.exclude_not_found {
            return Ok(false);
        }
        let sql = "SELECT COUNT(*) FROM features f WHERE f.key = $1 AND f.not_found";
        let count: i64 = on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(key).fetch_one(p).await?);
        Ok(count > 0)
    }

    /// The repositories that have a pull request with this number.
    pub async fn repositories_with_pull_request(&self, number: i64) -> Result<Vec<String>, LedgerError> {
        let sql = "SELECT r.name FROM repositories r WHERE
                       EXISTS (SELECT 1 FROM pull_requests pr WHERE pr.repository_id = r.id AND pr.number = $1)
                    OR EXISTS (SELECT 1 FROM commits c WHERE c.repository_id = r.id AND c.pull_request_number = $1)
                   ORDER BY r.name";
        let names = on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(number).fetch_all(p).await?);
        Ok(names)
    }

    /// Up to two `(repository, sha)` whose sha starts with `prefix`, in one repository or
    /// in all: enough to tell one from several.
    pub async fn commits_with_prefix(
        &self,
        repository: Option<&str>,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        let sql = "SELECT r.name, c.sha FROM commits c JOIN repositories r ON r.id = c.repository_id
                   WHERE c.sha >= $1 AND c.sha < $3 AND substr(c.sha, 1, length($1)) = $1
                     AND ($2 IS NULL OR r.name = $2)
                   ORDER BY r.name, c.sha LIMIT 2";
        let (low, high) = super::cards::prefix_range(&prefix.replace(['%', '_'], ""));
        let rows = on_pool!(self.pool(), |p| {
            sqlx::query_as(sql).bind(&low).bind(repository).bind(&high).fetch_all(p).await?
        });
        Ok(rows)
    }

    /// Names of every environment, by rank, for messages that list what is accepted.
    pub async fn environment_names(&self) -> Result<Vec<String>, LedgerError> {
        let sql = "SELECT name FROM environments ORDER BY rank, name";
        let names = on_pool!(self.pool(), |p| sqlx::query_scalar(sql).fetch_all(p).await?);
        Ok(names)
    }

    /// The deployments to an environment in `[since, until)` (ms) and what each changed.
    pub async fn environment_changes(
        &self,
        environment: &EnvironmentId,
        since: i64,
        until: i64,
        page: ChangesPage,
    ) -> Result<EnvironmentChanges, LedgerError> {
        // Booleans as integers: SQLite reads the rows as one JSON array (`read_rows!`).
        type Row = (i64, i64, String, String, String, i64, String, i64, Option<String>, i32, i32, Option<i64>);
        // A page starts after a deployment: later, or at the same time with a greater id.
        // The window starts no earlier than that deployment, so "at the same time" need
        // not be spelt out: spelt out, PostgreSQL took the condition for a second range
        // and, for windows near the end of the history, estimated 89 rows where 5,000 lay,
        // sorted them all rather than walking the index, and took 10-30 ms instead of 1.
        // Without a cursor, "after (since, 0)" holds for every deployment in the window.
        let (after_at, after_id) = page.after.map_or((since, 0), |c| (c.deployed_at, c.deployment_id));
        let from = match self.pool() {
            // PostgreSQL's planner chooses between walking the environment's applications
            // and walking every deployment by time, with its statistics.
            Pool::Postgres(_) => "deployments d, applications a",
            // SQLite has none (`landfall serve` never gathers them), so the choice is made
            // here. Walking by time stops once the page is full and costs nothing for an
            // empty window, but reads other environments' deployments on the way; seeking
            // each application costs one seek per application, empty or not. The walk wins
            // unless the environment holds few of the applications.
            Pool::Sqlite(_) if self.holds_many_applications(environment.id).await? => {
                "deployments d INDEXED BY deployments_succeeded_time CROSS JOIN applications a"
            }
            Pool::Sqlite(_) => "applications a CROSS JOIN deployments d INDEXED BY deployments_app_time",
        };
        let picked = format!(
            "WITH picked AS (
                          SELECT d.id, d.application_id, a.instance, a.namespace, a.name, d.history_id, d.revision,
                                 COALESCE(d.finished_at, d.started_at) AS deployed_at, d.initiated_by,
                                 CAST(d.automated AS INTEGER) AS automated, CAST(d.is_rollback AS INTEGER) AS is_rollback,
                                 {} AS previous_id
                          FROM {from}
                          WHERE a.id = d.application_id AND a.environment_id = $1 AND d.phase = 'Succeeded'
                            AND COALESCE(d.finished_at, d.started_at) >= $2 AND COALESCE(d.finished_at, d.started_at) < $3
                            AND (COALESCE(d.finished_at, d.started_at) > $4 OR d.id > $5)
                          ORDER BY COALESCE(d.finished_at, d.started_at), d.id LIMIT $6)",
            previous_deployment("d"),
        );
        let limit = page.limit.clamp(1, DEPLOYMENT_LIMIT);
        let rows: Vec<Row> = read_rows!(
            self,
            &picked,
            "id, application_id, instance, namespace, name, history_id, revision, deployed_at, initiated_by, automated, \
             is_rollback, previous_id",
            "FROM picked",
            "deployed_at, id",
            |q| q
                .bind(environment.id)
                .bind(since.max(after_at))
                .bind(until)
                .bind(after_at)
                .bind(after_id)
                .bind(limit + 1)
        );
        let next = if rows.len() as i64 > limit {
            rows.get(limit as usize - 1).map(|row| ChangesCursor { deployed_at: row.7, deployment_id: row.0 })
        } else {
            None
        };
        let rows: Vec<Row> = rows.into_iter().take(limit as usize).collect();
        let pairs: Vec<(Option<i64>, i64)> = rows.iter().map(|row| (row.11, row.0)).collect();
        let change_sets = self.change_sets(&pairs, &mut DiffCache::default()).await?;
        let mut truncated = false;
        let mut deployments = Vec::with_capacity(rows.len());
        let mut entered: BTreeMap<String, FeatureRef> = BTreeMap::new();
        let mut left: BTreeMap<String, FeatureRef> = BTreeMap::new();
        let mut pull_requests: BTreeMap<(String, i64), PullRequestRef> = BTreeMap::new();
        for (row, changes) in rows.into_iter().zip(change_sets) {
            let (_, _, instance, namespace, name, history_id, revision, at, initiated_by, automated, is_rollback, _) =
                row;
            truncated |= changes.truncated;
            entered.extend(changes.features_entered.iter().map(|f| (f.key.clone(), f.clone())));
            left.extend(changes.features_left.iter().map(|f| (f.key.clone(), f.clone())));
            pull_requests.extend(changes.pull_requests_entered.iter().map(|p| ((p.repo.clone(), p.number), p.clone())));
            deployments.push(DeploymentChange {
                application: ApplicationRef { instance, namespace, name },
                history_id,
                revision,
                deployed_at: format_rfc3339(at),
                initiated_by,
                automated: automated != 0,
                is_rollback: is_rollback != 0,
                changes,
            });
        }
        Ok(EnvironmentChanges {
            environment: environment.name.clone(),
            since: format_rfc3339(since),
            until: format_rfc3339(until),
            deployments,
            features_entered: entered.into_values().collect(),
            pull_requests_entered: pull_requests.into_values().collect(),
            features_left: left.into_values().collect(),
            truncated,
            next: next.map(|cursor| cursor.to_string()),
        })
    }

    /// Whether an environment holds at least an eighth of the ledger's applications: then
    /// walking all deployments by time meets its own soon enough. Counted at most once a
    /// minute per environment: the answer only chooses how to read, not what is read.
    async fn holds_many_applications(&self, environment: i64) -> Result<bool, LedgerError> {
        const RECOUNT_AFTER: Duration = Duration::from_secs(60);
        let known = self.application_shares.lock().expect("not poisoned").get(&environment).copied();
        if let Some((_, many)) = known.filter(|(at, _)| at.elapsed() < RECOUNT_AFTER) {
            return Ok(many);
        }
        let sql = "SELECT (SELECT COUNT(*) FROM applications WHERE environment_id = $1) * 8
                          >= (SELECT COUNT(*) FROM applications)";
        let many = on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(environment).fetch_one(p).await?);
        self.application_shares.lock().expect("not poisoned").insert(environment, (Instant::now(), many));
        Ok(many)
    }

    /// The features each environment runs now and the other does not.
    pub async fn compare_environments(
        &self,
        from: &EnvironmentId,
        to: &EnvironmentId,
    ) -> Result<Comparison, LedgerError> {
        let (only_in_from, pull_requests_only_in_from, cut_from) = self.features_missing(from.id, to.id).await?;
        let (only_in_to, pull_requests_only_in_to, cut_to) = self.features_missing(to.id, from.id).await?;
        Ok(Comparison {
            from: from.name.clone(),
            to: to.name.clone(),
            only_in_from,
            only_in_to,
            pull_requests_only_in_from,
            pull_requests_only_in_to,
            truncated: cut_from || cut_to,
        })
    }

    /// For each application of the environment that runs the target now: the
    /// deployment to return to (the last one before the first that carried it) and
    /// what would leave with it.
    pub async fn rollback_plan(&self, environment: &EnvironmentId, target: &Target) -> Result<RollbackPlan, PlanError> {
        let in_environment = self.presence_in(target, &environment.name).await?;
        if in_environment.is_empty() {
            return Err(PlanError::NeverReached);
        }
        let facts = self.rollback_facts(&in_environment).await?;
        let mut applications = Vec::new();
        let mut leaving: Vec<(usize, (i64, i64))> = Vec::new();
        for presence in in_environment {
            let app = &presence.application;
            let Some(facts) = facts.get(app) else { continue };
            let first_carrying = DeploymentRef {
                history_id: presence.first_history_id,
                revision: facts.first_revision.clone(),
                deployed_at: format_rfc3339(facts.first_at),
            };
            let previous = &facts.previous;
            let mut step = RollbackStep {
                application: app.clone(),
                action: String::new(),
                reason: String::new(),
                first_carrying,
                return_to: previous.as_ref().map(|(_, history_id, revision, at)| DeploymentRef {
                    history_id: *history_id,
                    revision: revision.clone(),
                    deployed_at: format_rfc3339(*at),
                }),
                automated_sync: facts.automated_sync,
                features_leaving: Vec::new(),
                pull_requests_leaving: Vec::new(),
                truncated: false,
            };
            match (previous, presence.present_now, facts.current) {
                (_, false, _) | (_, _, None) => {
                    step.action = "none".into();
                    step.reason = format!("{} does not run {target} now", app.name);
                    step.return_to = None;
                }
                (None, true, _) => {
                    step.action = "impossible".into();
                    step.reason = format!(
                        "{target} came with {}'s first recorded deployment (history {}); there is nothing before it",
                        app.name, presence.first_history_id
                    );
                }
                (Some((previous_id, history_id, ..)), true, Some(current)) => {
                    step.action = "rollback".into();
                    step.reason = if facts.automated_sync {
                        format!(
                            "return to history {history_id}; automated sync is on, and Argo CD refuses a rollback \
                             until it is turned off"
                        )
                    } else {
                        format!("return to history {history_id}")
                    };
                    // What `current` has and `previous` lacks is what leaves.
                    leaving.push((applications.len(), (*previous_id, current)));
                }
            }
            applications.push(step);
        }
        let pairs: Vec<(i64, i64)> = leaving.iter().map(|(_, pair)| *pair).collect();
        for ((index, _), (features, pull_requests, truncated)) in leaving.into_iter().zip(self.leaving(&pairs).await?) {
            let step = &mut applications[index];
            step.features_leaving = features;
            step.pull_requests_leaving = pull_requests;
            step.truncated = truncated;
        }
        Ok(RollbackPlan { environment: environment.name.clone(), target: target.to_string(), applications })
    }

    /// For each application that carried a target: its automated-sync flag, current
    /// deployment, the first deployment that carried the target and the one before it,
    /// in one query per 300 applications.
    async fn rollback_facts(
        &self,
        presence: &[ApplicationPresence],
    ) -> Result<BTreeMap<ApplicationRef, RollbackFacts>, LedgerError> {
        let mut facts = BTreeMap::new();
        if !presence.is_empty() {
            let with = format!(
                "WITH wanted AS MATERIALIZED ({}),
                 found AS (
                     SELECT w.instance, w.namespace, w.name, CAST(a.automated_sync AS INTEGER) AS automated_sync,
                            a.current_deployment_id, f.revision, COALESCE(f.finished_at, f.started_at) AS first_at,
                            {} AS previous_id
                     FROM wanted w
                     JOIN applications a ON a.instance = w.instance AND a.namespace = w.namespace AND a.name = w.name
                     JOIN deployments f ON f.id = w.deployment_id AND f.application_id = a.id)",
                listed(
                    self.pool(),
                    1,
                    &[("instance", "text"), ("namespace", "text"), ("name", "text"), ("deployment_id", "bigint")]
                ),
                previous_deployment("f")
            );
            type Row = (
                String,
                String,
                String,
                i32,
                Option<i64>,
                String,
                i64,
                Option<i64>,
                Option<i64>,
                Option<String>,
                Option<i64>,
            );
            let wanted: Vec<(&str, &str, &str, i64)> = presence
                .iter()
                .map(|p| {
                    let app = &p.application;
                    (app.instance.as_str(), app.namespace.as_str(), app.name.as_str(), p.first_deployment_id)
                })
                .collect();
            let rows: Vec<Row> = read_rows!(
                self,
                &with,
                "x.instance, x.namespace, x.name, x.automated_sync, x.current_deployment_id, x.revision, x.first_at,
                 x.previous_id, p.history_id, p.revision, COALESCE(p.finished_at, p.started_at)",
                "FROM found x LEFT JOIN deployments p ON p.id = x.previous_id",
                "",
                |q| q.bind(json_list(&wanted))
            );
            for row in rows {
                let (instance, namespace, name, automated_sync, current, first_revision, first_at) =
                    (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
                let previous = match (row.7, row.8, row.9, row.10) {
                    (Some(id), Some(history_id), Some(revision), Some(at)) => Some((id, history_id, revision, at)),
                    _ => None,
                };
                facts.insert(
                    ApplicationRef { instance, namespace, name },
                    RollbackFacts { automated_sync: automated_sync != 0, current, first_revision, first_at, previous },
                );
            }
        }
        Ok(facts)
    }

    /// The environment's applications that read a manifests repository (its URL
    /// normalised) at one of these paths, by path, each path's applications by name.
    async fn applications_reading(
        &self,
        environment: &EnvironmentId,
        repo_url: &str,
        paths: &BTreeSet<&str>,
    ) -> Result<BTreeMap<String, Vec<ApplicationRef>>, LedgerError> {
        let paths: Vec<&str> = paths.iter().copied().collect();
        let mut watched: BTreeMap<String, Vec<ApplicationRef>> = BTreeMap::new();
        if !paths.is_empty() {
            let sql = format!(
                "SELECT s.path, a.instance, a.namespace, a.name FROM application_source_paths s
                 JOIN applications a ON a.id = s.application_id
                 WHERE s.repo_url = $1 AND {} AND a.environment_id = $2 AND a.deleted_at IS NULL
                 ORDER BY s.path, a.name, a.namespace, a.instance",
                is_listed(self.pool(), "s.path", 3, "text")
            );
            let rows: Vec<(String, String, String, String)> = on_pool!(self.pool(), |p| sqlx::query_as(&sql)
                .bind(repo_url)
                .bind(environment.id)
                .bind(json_list(&paths))
                .fetch_all(p)
                .await?);
            for (path, instance, namespace, name) in rows {
                watched.entry(path).or_default().push(ApplicationRef { instance, namespace, name });
            }
        }
        Ok(watched)
    }

    /// Writes where each application reads its manifests for the applications recorded
    /// before that was kept (see [`source_paths`]); returns how many. Run at start-up;
    /// [`Ledger::upsert_application`] keeps it for every application it records.
    pub async fn index_source_paths(&self) -> Result<usize, LedgerError> {
        let mut indexed = 0;
        loop {
            let batch: Vec<(i64, String)> = on_pool!(self.pool(), |p| {
                sqlx::query_as(
                    "SELECT id, sources FROM applications WHERE NOT source_paths_indexed ORDER BY id LIMIT 1000",
                )
                .fetch_all(p)
                .await?
            });
            if batch.is_empty() {
                return Ok(indexed);
            }
            on_pool!(self.pool(), |p| {
                let mut tx = p.begin_write().await?;
                for (id, sources) in &batch {
                    // An application recorded since the batch was read has its paths already.
                    let claimed = sqlx::query(
                        "UPDATE applications SET source_paths_indexed = TRUE WHERE id = $1 AND NOT source_paths_indexed",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    if claimed.rows_affected() == 0 {
                        continue;
                    }
                    let sources: serde_json::Value = serde_json::from_str(sources).unwrap_or_default();
                    write_source_paths!(tx, *id, &sources);
                }
                tx.commit().await?;
            });
            indexed += batch.len();
        }
    }

    /// Commits to manifests repositories in `[since, until)` (committer time, ms) that
    /// touched the source paths of the environment's applications.
    pub async fn manifest_commits(
        &self,
        environment: &EnvironmentId,
        since: i64,
        until: i64,
    ) -> Result<ManifestChanges, LedgerError> {
        let repositories: Vec<(i64, String)> = on_pool!(self.pool(), |p| {
            sqlx::query_as("SELECT id, url FROM repositories WHERE kind = 'manifests' ORDER BY id").fetch_all(p).await?
        });
        type Row = (String, String, String, String, i64, i64, String, String, i64, i64, String, bool, String);
        let mut by_sha: BTreeMap<(i64, String), ManifestCommit> = BTreeMap::new();
        for (repository_id, url) in repositories {
            let rows: Vec<Row> = on_pool!(self.pool(), |p| {
                sqlx::query_as(
                    "SELECT r.name, c.sha, c.author_name, c.author_email, c.authored_at, c.author_offset_minutes,
                            c.committer_name, c.committer_email, c.committed_at, c.committer_offset_minutes,
                            c.message, c.reachable, cp.path
                     FROM commits c JOIN repositories r ON r.id = c.repository_id
                     JOIN commit_paths cp ON cp.repository_id = c.repository_id AND cp.sha = c.sha
                     WHERE c.repository_id = $1 AND c.committed_at >= $2 AND c.committed_at < $3
                     ORDER BY c.committed_at DESC, c.sha",
                )
                .bind(repository_id)
                .bind(since)
                .bind(until)
                .fetch_all(p)
                .await?
            });
            if rows.is_empty() {
                continue;
            }
            let candidates: BTreeSet<&str> = rows.iter().flat_map(|row| enclosing_paths(&row.12)).collect();
            let watched = self.applications_reading(environment, &normalise_git_url(&url), &candidates).await?;
            for row in rows {
                let (repo, sha, an, ae, at, ao, cn, ce, ct, co, message, reachable, path) = row;
                let touched: Vec<ApplicationRef> = watched
                    .iter()
                    .filter(|(source_path, _)| under(&path, source_path))
                    .flat_map(|(_, apps)| apps.iter().cloned())
                    .collect();
                if touched.is_empty() {
                    continue;
                }
                let entry = by_sha.entry((ct, sha.clone())).or_insert_with(|| ManifestCommit {
                    commit: CommitSummary {
                        repo,
                        sha,
                        subject: message.lines().next().unwrap_or_default().to_string(),
                        author: Signature { name: an, email: ae, at: format_rfc3339(at), offset_minutes: ao },
                        committer: Signature { name: cn, email: ce, at: format_rfc3339(ct), offset_minutes: co },
                        reachable,
                    },
                    applications: Vec::new(),
                    paths: Vec::new(),
                });
                entry.paths.push(path);
                for app in touched {
                    if !entry.applications.contains(&app) {
                        entry.applications.push(app);
                    }
                }
            }
        }
        let commits: Vec<ManifestCommit> = by_sha.into_values().rev().collect();
        let mut people: BTreeMap<(String, String), usize> = BTreeMap::new();
        for commit in &commits {
            *people
                .entry((commit.commit.committer.name.clone(), commit.commit.committer.email.clone()))
                .or_default() += 1;
        }
        let mut people: Vec<ManifestAuthor> =
            people.into_iter().map(|((name, email), commits)| ManifestAuthor { name, email, commits }).collect();
        people.sort_by(|a, b| b.commits.cmp(&a.commits).then_with(|| a.name.cmp(&b.name)));
        Ok(ManifestChanges {
            environment: environment.name.clone(),
            since: format_rfc3339(since),
            until: format_rfc3339(until),
            people,
            commits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_compare_by_host_and_path() {
        let same = [
            "https://git.example/Acme/deploy.git",
            "git@git.example:acme/deploy",
            "ssh://git@git.example/acme/deploy/",
            "https://git.example/acme/deploy",
        ];
        for url in same {
            assert_eq!(normalise_git_url(url), "git.example/acme/deploy", "{url}");
        }
        assert_eq!(normalise_git_url("/srv/git/deploy"), "/srv/git/deploy");
        assert_eq!(normalise_git_url("file:///srv/git/deploy.git"), "/srv/git/deploy");
    }

    #[test]
    fn a_changed_file_is_looked_up_under_each_folder_that_holds_it() {
        let enclosing: Vec<&str> = enclosing_paths("envs/prod/shop/values.yaml").collect();
        assert_eq!(enclosing, ["", "envs", "envs/prod", "envs/prod/shop", "envs/prod/shop/values.yaml"]);
        assert_eq!(enclosing_paths("README").collect::<Vec<_>>(), ["", "README"]);
        for path in ["envs/prod/shop/values.yaml", "envs/production/values.yaml", "README"] {
            for source_path in ["", ".", "envs", "envs/prod", "envs/prod/", "/envs/prod", "envs/pro", "README"] {
                let stored = &source_paths(&serde_json::json!([{ "repoURL": "r", "path": source_path }]))
                    .into_iter()
                    .next()
                    .unwrap()
                    .1;
                let looked_up = enclosing_paths(path).any(|candidate| candidate == stored);
                assert_eq!(looked_up, under(path, source_path), "{path} under {source_path:?}");
            }
        }
    }

    #[test]
    fn sources_are_stored_by_normalised_url_and_trimmed_path() {
        let sources = serde_json::json!([
            { "repoURL": "git@git.example:Acme/deploy.git", "path": "/envs/prod/" },
            { "repoURL": "https://git.example/acme/deploy", "path": "envs/prod" },
            { "repoURL": "https://charts.example/shop", "chart": "shop" },
            { "repoURL": "https://git.example/acme/deploy", "path": "." },
            { "path": "no-repository" },
        ]);
        let stored: Vec<(String, String)> = source_paths(&sources).into_iter().collect();
        let expected =
            [("charts.example/shop", ""), ("git.example/acme/deploy", ""), ("git.example/acme/deploy", "envs/prod")];
        assert_eq!(stored, expected.map(|(url, path)| (url.to_string(), path.to_string())));
        assert!(source_paths(&serde_json::json!({ "not": "a list" })).is_empty());
    }

    #[test]
    fn paths_lie_under_a_source_path_by_whole_segments() {
        assert!(under("envs/prod/shop/values.yaml", "envs/prod"));
        assert!(under("envs/prod/shop/values.yaml", "envs/prod/"));
        assert!(!under("envs/production/values.yaml", "envs/prod"));
        assert!(under("anything", ""));
        assert!(under("anything", "."));
    }
}
