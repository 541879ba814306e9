//! Where things run, by ancestry: which deployments carried a feature, pull request or
//! commit; what a deployment brought in and took away; what one environment has that
//! another lacks; and the deployment to return to, to be rid of something.
//!
//! Every question reduces to the numbers kept by [`super::ancestry`]: a deployment runs
//! source commits, each placed on its branch as a base number plus a few extras, and a
//! commit is carried when its landing number is at most that base (or it is an extra).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;

use super::cards::{FeatureRef, PullRequestRef};
use super::{Ledger, LedgerError, Pool, is_listed, json_list, listed, on_pool, read_rows};
use crate::timefmt::format_rfc3339;

/// The most commits one change set lists; a larger one is cut and says so.
pub const CHANGE_LIMIT: usize = 5000;

/// What to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Feature(String),
    PullRequest { repo: String, number: i64 },
    Commit { repo: String, sha: String },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Feature(key) => write!(f, "{key}"),
            Target::PullRequest { repo, number } => write!(f, "pull request {repo}#{number}"),
            Target::Commit { repo, sha } => write!(f, "commit {repo}@{}", &sha[..sha.len().min(12)]),
        }
    }
}

/// An Argo CD Application, by its identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, ToSchema)]
pub struct ApplicationRef {
    pub instance: String,
    pub namespace: String,
    pub name: String,
}

/// How a target stands in one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApplicationPresence {
    pub application: ApplicationRef,
    pub environment: Option<String>,
    /// The first deployment that carried it: its time (RFC 3339) and Argo CD history id.
    pub first_deployed_at: String,
    pub first_history_id: i64,
    /// Whether what the application runs now carries it.
    pub present_now: bool,
    /// The ledger's id of that first deployment: history ids repeat when an
    /// application is created again under the same name.
    #[serde(skip)]
    pub(crate) first_deployment_id: i64,
}

/// How a target stands in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EnvironmentPresence {
    pub environment: String,
    pub first_deployed_at: String,
    pub present_now: bool,
    /// Per application of the environment that ever carried it.
    pub deployments: Vec<ApplicationPresence>,
}

/// What a deployment changed, compared with the application's previous one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct ChangeSet {
    /// The application's first recorded deployment: everything it runs entered at once,
    /// so no commits are listed.
    pub initial: bool,
    /// Images the deployment started running (`repository:tag`), with the tag of the
    /// same repository it replaced.
    pub images: Vec<ImageChange>,
    /// The CI runs that built those images.
    pub pipelines: Vec<String>,
    /// The application's Kubernetes objects that run those images.
    pub resources: Vec<String>,
    /// Authors and committers of the commits that entered, as `Name <email>`.
    pub authors: Vec<String>,
    pub committers: Vec<String>,
    pub features_entered: Vec<FeatureRef>,
    pub features_left: Vec<FeatureRef>,
    pub pull_requests_entered: Vec<PullRequestRef>,
    pub pull_requests_left: Vec<PullRequestRef>,
    pub commits_entered: usize,
    pub commits_left: usize,
    /// More than the listing limit changed; the lists are cut.
    pub truncated: bool,
}

/// An image a deployment started running.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct ImageChange {
    pub repository: String,
    pub tag: String,
    /// The tag it replaced, when the previous deployment ran this repository.
    pub previous_tag: Option<String>,
}

/// The images a deployment changed, the CI runs that built them, the objects running them.
pub(super) type ImageChanges = (Vec<ImageChange>, Vec<String>, Vec<String>);

/// What one application's source commits contain, per repository and branch: every
/// commit landed at or before `base`, plus `extras`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(super) struct SourceSet {
    pub(super) branches: BTreeMap<(i64, String), (i64, BTreeSet<String>)>,
}

impl SourceSet {
    fn repositories(&self) -> BTreeSet<i64> {
        self.branches.keys().map(|(repo, _)| *repo).collect()
    }
}

/// Features and pull requests by key, with what is known of them now.
#[derive(Default)]
pub(super) struct Names {
    features: HashMap<String, FeatureRef>,
    /// Keys left out because Jira does not know them (`[features] exclude_not_found`).
    hidden: HashSet<String>,
    pull_requests: HashMap<(String, i64), PullRequestRef>,
}

impl Names {
    /// The features in `keys` order; a key the ledger no longer has still shows, unnamed;
    /// a hidden one does not.
    pub(super) fn features(&self, keys: &[String]) -> Vec<FeatureRef> {
        keys.iter()
            .filter(|key| !self.hidden.contains(*key))
            .map(|key| {
                self.features.get(key).cloned().unwrap_or_else(|| FeatureRef {
                    key: key.clone(),
                    summary: None,
                    status: None,
                })
            })
            .collect()
    }

    pub(super) fn pull_requests(&self, keys: &[(String, i64)]) -> Vec<PullRequestRef> {
        keys.iter()
            .map(|(repo, number)| {
                self.pull_requests.get(&(repo.clone(), *number)).cloned().unwrap_or_else(|| PullRequestRef {
                    repo: repo.clone(),
                    number: *number,
                    title: None,
                })
            })
            .collect()
    }
}

/// Binds a target's parameters, in the order [`target_commits_sql`] numbers them.
macro_rules! bind_target {
    ($query:expr, $target:expr) => {
        match $target {
            Target::Feature(key) => $query.bind(key),
            Target::PullRequest { repo, number } => $query.bind(repo).bind(*number),
            Target::Commit { repo, sha } => $query.bind(repo).bind(sha),
        }
    };
}

impl Ledger {
    /// A query for the `(repository_id, sha)` of the commits a target stands for, with
    /// its parameters as `$1` (and `$2`). The text depends only on the kind of target,
    /// so each connection prepares it once.
    fn target_commits_sql(&self, target: &Target) -> String {
        match target {
            Target::Feature(_) => format!(
                "SELECT c.repository_id, c.sha FROM commits c JOIN commit_features cf ON cf.commit_id = c.id
                 JOIN features f ON f.id = cf.feature_id WHERE f.key = $1{}",
                self.listed_features()
            ),
            // Two index lookups rather than `number = $2 OR sha IN (…)`: joined to the
            // landings, PostgreSQL answered the OR by reading every commit.
            Target::PullRequest { .. } => "SELECT c.repository_id, c.sha FROM commits c
                 JOIN repositories r ON r.id = c.repository_id
                 WHERE r.name = $1 AND c.pull_request_number = $2
                 UNION
                 SELECT c.repository_id, c.sha FROM commits c JOIN repositories r ON r.id = c.repository_id
                 JOIN pull_requests pr ON pr.repository_id = r.id AND pr.merge_commit_sha = c.sha
                 WHERE r.name = $1 AND pr.number = $2"
                .to_string(),
            Target::Commit { .. } => "SELECT c.repository_id, c.sha FROM commits c
                 JOIN repositories r ON r.id = c.repository_id WHERE r.name = $1 AND c.sha = $2"
                .to_string(),
        }
    }

    /// The commits a target stands for: a feature's commits, a pull request's merge or
    /// squash commits, or one commit.
    pub async fn target_commits(&self, target: &Target) -> Result<Vec<(i64, String)>, LedgerError> {
        let sql = self.target_commits_sql(target);
        let rows = on_pool!(self.pool(), |p| bind_target!(sqlx::query_as(&sql), target).fetch_all(p).await?);
        Ok(rows)
    }

    /// Every application whose deployments ever carried the target, with the first such
    /// deployment and whether it runs the target now; ordered by environment rank.
    ///
    /// A commit that landed at L is in every deployment whose base is at least L: per
    /// application, the first is its first record high at or above L, and it runs now
    /// when its current base is. Commits carried as a branch build's extras are looked
    /// up directly (there are few).
    pub async fn presence(&self, target: &Target) -> Result<Vec<ApplicationPresence>, LedgerError> {
        Ok(self.presence_by_application(target, None).await?.into_iter().map(|(_, p)| p).collect())
    }

    /// [`Ledger::presence`] in one environment (by its exact name): the same answer as
    /// keeping that environment's entries, for a fraction of the reads, since the
    /// environment is applied before each application's deployments are looked up.
    pub async fn presence_in(
        &self,
        target: &Target,
        environment: &str,
    ) -> Result<Vec<ApplicationPresence>, LedgerError> {
        Ok(self.presence_by_application(target, Some(environment)).await?.into_iter().map(|(_, p)| p).collect())
    }

    /// [`Ledger::presence`], with each application's ledger id.
    ///
    /// One query: the target's commits, the candidate deployments and their details.
    /// Of a target's commits on one branch only the earliest landed matters (record highs
    /// rise with time, so the first high at or above it is the earliest of all of
    /// theirs, and a current base that carries any of them carries it), so the landed
    /// path yields one row per application and branch however many commits the target has.
    /// Each branch starts from the target: `CROSS JOIN` fixes SQLite's join order (for a
    /// materialised `target` it has no row estimate, and it read every deployment to join
    /// the extras); PostgreSQL, which takes it as an inner join, gets `target`
    /// materialised.
    ///
    /// With an environment, only its applications are looked at. Its name is the
    /// parameter after the target's; the query's text then depends on that too, so it is
    /// still prepared once per connection.
    pub(crate) async fn presence_by_application(
        &self,
        target: &Target,
        environment: Option<&str>,
    ) -> Result<Vec<(i64, ApplicationPresence)>, LedgerError> {
        let parameter = match target {
            Target::Feature(_) => 2,
            Target::PullRequest { .. } | Target::Commit { .. } => 3,
        };
        // The filters an environment adds: to the landed path, which starts from
        // `application_sources`, and to the extras path, which has `applications` at hand.
        let (landed_join, landed_filter, extras_filter) = match environment {
            None => Default::default(),
            Some(_) => {
                let id = format!("(SELECT id FROM environments WHERE name = ${parameter})");
                (
                    " CROSS JOIN applications ea",
                    format!(" AND ea.id = s.application_id AND ea.environment_id = {id}"),
                    format!(" AND a.environment_id = {id}"),
                )
            }
        };
        // Inlined into both branches, `target` made PostgreSQL plan each as a join of six
        // to eight tables: about 2 ms of a 4 ms answer on each of a connection's first
        // five runs, before it settles on a generic plan. Materialised, it is read once.
        let materialized = match self.pool() {
            Pool::Sqlite(_) => "NOT MATERIALIZED",
            Pool::Postgres(_) => "MATERIALIZED",
        };
        let candidates = format!(
            "WITH target (repository_id, sha) AS {materialized} ({}),
             candidates (application_id, now, deployment_id) AS (
                 SELECT g.application_id, g.current_base >= g.position,
                        (SELECT h.deployment_id FROM application_highs h
                         WHERE h.application_id = g.application_id AND h.repository_id = g.repository_id
                           AND h.ref_name = g.ref_name AND h.base_position >= g.position
                         ORDER BY h.base_position LIMIT 1)
                 FROM (SELECT s.application_id, s.repository_id, s.ref_name, s.current_base,
                              MIN(cl.position) AS position
                       FROM target t CROSS JOIN commit_landings cl CROSS JOIN application_sources s{landed_join}
                       WHERE cl.repository_id = t.repository_id AND cl.sha = t.sha
                         AND s.repository_id = cl.repository_id AND s.ref_name = cl.ref_name{landed_filter}
                       GROUP BY s.application_id, s.repository_id, s.ref_name, s.current_base) g
                 UNION ALL
                 SELECT DISTINCT d.application_id, d.id = a.current_deployment_id, d.id
                 FROM target t CROSS JOIN source_point_extras x CROSS JOIN deployment_sources ds
                 CROSS JOIN deployments d CROSS JOIN applications a
                 WHERE x.repository_id = t.repository_id AND x.extra_sha = t.sha
                   AND ds.repository_id = x.repository_id AND ds.sha = x.sha
                   AND d.id = ds.deployment_id AND d.phase = 'Succeeded' AND a.id = d.application_id{extras_filter})",
            self.target_commits_sql(target)
        );
        let joined = "FROM candidates c JOIN deployments d ON d.id = c.deployment_id
             JOIN applications a ON a.id = d.application_id
             LEFT JOIN environments e ON e.id = a.environment_id";
        let columns = "c.application_id, CAST(c.now AS INTEGER), d.application_id, d.history_id,
                       COALESCE(d.finished_at, d.started_at), a.instance, a.namespace, a.name, e.name, e.rank,
                       d.id, d.incarnation";
        type Row = (i64, Option<i32>, i64, i64, i64, String, String, String, Option<String>, Option<i64>, i64, i64);
        let rows: Vec<Row> = read_rows!(self, &candidates, columns, joined, "", |q| match environment {
            Some(environment) => bind_target!(q, target).bind(environment),
            None => bind_target!(q, target),
        });
        // Per application: whether it runs the target now, and the first deployment that
        // carried it (the earliest of its paths).
        let mut now: HashMap<i64, bool> = HashMap::new();
        type Detail = (i64, i64, String, String, String, Option<String>, Option<i64>, i64, i64);
        let mut first: BTreeMap<i64, Detail> = BTreeMap::new();
        for row in rows {
            let (candidate_application, present, application_id, history_id, at, instance, namespace, name) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
            let (env, rank, deployment_id, incarnation) = (row.8, row.9, row.10, row.11);
            *now.entry(candidate_application).or_default() |= present.is_some_and(|present| present != 0);
            let earlier =
                first.get(&application_id).is_none_or(|seen| (at, incarnation, history_id) < (seen.1, seen.8, seen.0));
            if earlier {
                first.insert(
                    application_id,
                    (history_id, at, instance, namespace, name, env, rank, deployment_id, incarnation),
                );
            }
        }
        let mut presence: Vec<(Option<i64>, i64, ApplicationPresence)> = first
            .into_iter()
            .map(
                |(application_id, (history_id, at, instance, namespace, name, environment, rank, deployment_id, _))| {
                    (
                        rank,
                        application_id,
                        ApplicationPresence {
                            application: ApplicationRef { instance, namespace, name },
                            environment,
                            first_deployed_at: format_rfc3339(at),
                            first_history_id: history_id,
                            present_now: now.get(&application_id).copied().unwrap_or(false),
                            first_deployment_id: deployment_id,
                        },
                    )
                },
            )
            .collect();
        presence.sort_by(|(a_rank, _, a), (b_rank, _, b)| {
            (a_rank.is_none(), a_rank, &a.environment, &a.application).cmp(&(
                b_rank.is_none(),
                b_rank,
                &b.environment,
                &b.application,
            ))
        });
        Ok(presence.into_iter().map(|(_, id, p)| (id, p)).collect())
    }

    /// [`Ledger::presence`] grouped by environment (applications outside every
    /// environment are left out).
    pub async fn presence_by_environment(&self, target: &Target) -> Result<Vec<EnvironmentPresence>, LedgerError> {
        Ok(by_environment(self.presence(target).await?))
    }
}

/// Groups per-application presence by environment, keeping the order.
pub(crate) fn by_environment(presence: Vec<ApplicationPresence>) -> Vec<EnvironmentPresence> {
    {
        let mut grouped: Vec<EnvironmentPresence> = Vec::new();
        for presence in presence {
            let Some(environment) = presence.environment.clone() else { continue };
            match grouped.iter_mut().find(|g| g.environment == environment) {
                Some(group) => {
                    group.present_now |= presence.present_now;
                    if presence.first_deployed_at < group.first_deployed_at {
                        group.first_deployed_at = presence.first_deployed_at.clone();
                    }
                    group.deployments.push(presence);
                }
                None => grouped.push(EnvironmentPresence {
                    environment,
                    first_deployed_at: presence.first_deployed_at.clone(),
                    present_now: presence.present_now,
                    deployments: vec![presence],
                }),
            }
        }
        grouped
    }
}

impl Ledger {
    /// What the given deployments' source commits contain.
    async fn source_set(&self, deployments: &[i64]) -> Result<SourceSet, LedgerError> {
        let mut set = SourceSet::default();
        if deployments.is_empty() {
            return Ok(set);
        }
        let listed_ids = is_listed(self.pool(), "ds.deployment_id", 1, "bigint");
        let bases_sql = format!(
            "SELECT ds.repository_id, sp.ref_name, MAX(sp.base_position) FROM deployment_sources ds
             JOIN source_points sp ON sp.repository_id = ds.repository_id AND sp.sha = ds.sha
             WHERE {listed_ids} GROUP BY ds.repository_id, sp.ref_name"
        );
        let extras_sql = format!(
            "SELECT DISTINCT ds.repository_id, x.ref_name, x.extra_sha FROM deployment_sources ds
             JOIN source_point_extras x ON x.repository_id = ds.repository_id AND x.sha = ds.sha
             WHERE {listed_ids}"
        );
        type Rows<T> = Vec<(i64, String, T)>;
        let list = json_list(deployments);
        let (bases, extras): (Rows<i64>, Rows<String>) = on_pool!(self.pool(), |p| {
            (
                sqlx::query_as(&bases_sql).bind(&list).fetch_all(p).await?,
                sqlx::query_as(&extras_sql).bind(&list).fetch_all(p).await?,
            )
        });
        for (repository_id, reference, base) in bases {
            set.branches.entry((repository_id, reference)).or_default().0 = base;
        }
        for (repository_id, reference, sha) in extras {
            set.branches.entry((repository_id, reference)).or_default().1.insert(sha);
        }
        Ok(set)
    }

    /// Each deployment's own source set, for many deployments in two queries.
    pub(super) async fn source_sets_each(&self, deployments: &[i64]) -> Result<HashMap<i64, SourceSet>, LedgerError> {
        let mut sets: HashMap<i64, SourceSet> = deployments.iter().map(|id| (*id, SourceSet::default())).collect();
        if !deployments.is_empty() {
            let listed_ids = is_listed(self.pool(), "ds.deployment_id", 1, "bigint");
            let bases_from = format!(
                "FROM (SELECT ds.deployment_id, ds.repository_id, sp.ref_name, MAX(sp.base_position) AS base
                       FROM deployment_sources ds
                       JOIN source_points sp ON sp.repository_id = ds.repository_id AND sp.sha = ds.sha
                       WHERE {listed_ids} GROUP BY ds.deployment_id, ds.repository_id, sp.ref_name) b"
            );
            let extras_from = format!(
                "FROM (SELECT DISTINCT ds.deployment_id, ds.repository_id, x.ref_name, x.extra_sha
                       FROM deployment_sources ds
                       JOIN source_point_extras x ON x.repository_id = ds.repository_id AND x.sha = ds.sha
                       WHERE {listed_ids}) e"
            );
            type Rows<T> = Vec<(i64, i64, String, T)>;
            let list = json_list(deployments);
            // Independent reads, on two pooled connections at once, each (on SQLite) as
            // one JSON array rather than a hand-off per row.
            let bases = async {
                let columns = "b.deployment_id, b.repository_id, b.ref_name, b.base";
                let rows: Rows<i64> = read_rows!(self, "", columns, &bases_from, "", |q| q.bind(&list));
                Ok::<_, LedgerError>(rows)
            };
            let extras = async {
                let columns = "e.deployment_id, e.repository_id, e.ref_name, e.extra_sha";
                let rows: Rows<String> = read_rows!(self, "", columns, &extras_from, "", |q| q.bind(&list));
                Ok::<_, LedgerError>(rows)
            };
            let (bases, extras) = tokio::try_join!(bases, extras)?;
            for (deployment_id, repository_id, reference, base) in bases {
                let set = sets.entry(deployment_id).or_default();
                set.branches.entry((repository_id, reference)).or_default().0 = base;
            }
            for (deployment_id, repository_id, reference, sha) in extras {
                let set = sets.entry(deployment_id).or_default();
                set.branches.entry((repository_id, reference)).or_default().1.insert(sha);
            }
        }
        Ok(sets)
    }

    /// The commits `to` contains and `from` does not, at most [`CHANGE_LIMIT`] (the
    /// flag says when more were left out).
    pub(super) async fn commits_between(
        &self,
        from: &SourceSet,
        to: &SourceSet,
    ) -> Result<(Vec<(i64, String)>, bool), LedgerError> {
        let mut commits = Vec::new();
        let mut truncated = false;
        for repository_id in to.repositories() {
            // Both sides described on one branch (any branch describes the same commits).
            let shared = to
                .branches
                .keys()
                .filter(|(repo, _)| *repo == repository_id)
                .find(|key| from.branches.contains_key(*key))
                .or_else(|| to.branches.keys().find(|(repo, _)| *repo == repository_id))
                .cloned();
            let Some(key) = shared else { continue };
            let (to_base, to_extras) = &to.branches[&key];
            let empty = (0, BTreeSet::new());
            let (from_base, from_extras) = from.branches.get(&key).unwrap_or(&empty);
            let remaining = CHANGE_LIMIT.saturating_sub(commits.len());
            let range: Vec<(String,)> = if to_base > from_base {
                // Up to thousands of rows: on SQLite one JSON array, not a hand-off each.
                read_rows!(
                    self,
                    "",
                    "sha",
                    "FROM (SELECT position, sha FROM commit_landings WHERE repository_id = $1 AND ref_name = $2
                           AND position > $3 AND position <= $4 ORDER BY position DESC, sha LIMIT $5) r",
                    "position DESC, sha",
                    |q| q.bind(repository_id).bind(&key.1).bind(*from_base).bind(*to_base).bind(remaining as i64 + 1)
                )
            } else {
                Vec::new()
            };
            let extras: Vec<&String> = to_extras.iter().filter(|sha| !from_extras.contains(*sha)).collect();
            let already = self.landed_at_or_before(repository_id, &key.1, *from_base, &extras).await?;
            let mut seen = HashSet::new();
            let landed = range.into_iter().map(|(sha,)| sha);
            for sha in landed.chain(extras.into_iter().filter(|s| !already.contains(*s)).cloned()) {
                if from_extras.contains(&sha) || !seen.insert(sha.clone()) {
                    continue;
                }
                if commits.len() >= CHANGE_LIMIT {
                    truncated = true;
                    break;
                }
                commits.push((repository_id, sha));
            }
        }
        Ok((commits, truncated))
    }

    /// Which of `shas` landed on the branch at or before `base`.
    async fn landed_at_or_before(
        &self,
        repository_id: i64,
        reference: &str,
        base: i64,
        shas: &[&String],
    ) -> Result<HashSet<String>, LedgerError> {
        if shas.is_empty() {
            return Ok(HashSet::new());
        }
        let from = format!(
            "FROM commit_landings WHERE repository_id = $1 AND ref_name = $2 AND position <= $3 AND {}",
            is_listed(self.pool(), "sha", 4, "text")
        );
        let rows: Vec<(String,)> = read_rows!(self, "", "sha", &from, "", |q| q
            .bind(repository_id)
            .bind(reference)
            .bind(base)
            .bind(json_list(shas)));
        Ok(rows.into_iter().map(|(sha,)| sha).collect())
    }

    /// The features and pull requests the commits belong to, with their summaries and titles.
    async fn features_and_pull_requests(
        &self,
        commits: &[(i64, String)],
    ) -> Result<(Vec<FeatureRef>, Vec<PullRequestRef>), LedgerError> {
        let (features, pull_requests) = self.feature_and_pull_request_keys(commits).await?;
        let names = self.names(&features, &pull_requests).await?;
        Ok((names.features(&features), names.pull_requests(&pull_requests)))
    }

    /// The keys of the features and pull requests the commits belong to, sorted.
    pub(super) async fn feature_and_pull_request_keys(
        &self,
        commits: &[(i64, String)],
    ) -> Result<(Vec<String>, Vec<(String, i64)>), LedgerError> {
        if commits.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let target = format!(
            "WITH target AS MATERIALIZED ({})",
            listed(self.pool(), 1, &[("repository_id", "bigint"), ("sha", "text")])
        );
        let feature_sql = format!(
            "{target}
             SELECT DISTINCT f.key FROM target t
             JOIN commits c ON c.repository_id = t.repository_id AND c.sha = t.sha
             JOIN commit_features cf ON cf.commit_id = c.id JOIN features f ON f.id = cf.feature_id"
        );
        let pull_request_sql = format!(
            "{target}
             SELECT DISTINCT r.name, c.pull_request_number FROM target t
             JOIN commits c ON c.repository_id = t.repository_id AND c.sha = t.sha
             JOIN repositories r ON r.id = c.repository_id
             WHERE c.pull_request_number IS NOT NULL"
        );
        let list = json_list(commits);
        let (mut features, mut pull_requests): (Vec<String>, Vec<(String, i64)>) = on_pool!(self.pool(), |p| {
            (
                sqlx::query_scalar(&feature_sql).bind(&list).fetch_all(p).await?,
                sqlx::query_as(&pull_request_sql).bind(&list).fetch_all(p).await?,
            )
        });
        features.sort_unstable();
        pull_requests.sort_unstable();
        Ok((features, pull_requests))
    }

    /// Summaries and statuses of features, titles of pull requests, as known now.
    pub(super) async fn names(
        &self,
        features: &[String],
        pull_requests: &[(String, i64)],
    ) -> Result<Names, LedgerError> {
        // Independent reads, on two pooled connections at once.
        let feature_rows = async {
            if features.is_empty() {
                return Ok(Vec::new());
            }
            let from = format!("FROM features WHERE {}", is_listed(self.pool(), "key", 1, "text"));
            let columns = "key, summary, status, CAST(not_found AS INTEGER)";
            let rows: Vec<(String, Option<String>, Option<String>, i32)> =
                read_rows!(self, "", columns, &from, "", |q| q.bind(json_list(features)));
            Ok::<_, LedgerError>(rows)
        };
        let pull_request_rows = async {
            if pull_requests.is_empty() {
                return Ok(Vec::new());
            }
            let with = format!(
                "WITH wanted AS MATERIALIZED ({})",
                listed(self.pool(), 1, &[("repo", "text"), ("number", "bigint")])
            );
            let from = "FROM wanted w JOIN repositories r ON r.name = w.repo
                        LEFT JOIN pull_requests pr ON pr.repository_id = r.id AND pr.number = w.number";
            let rows: Vec<(String, i64, Option<String>)> =
                read_rows!(self, &with, "w.repo, w.number, pr.title", from, "", |q| q.bind(json_list(pull_requests)));
            Ok(rows)
        };
        let (feature_rows, pull_request_rows) = tokio::try_join!(feature_rows, pull_request_rows)?;
        let mut names = Names::default();
        for (key, summary, status, not_found) in feature_rows {
            if not_found != 0 && self.exclude_not_found {
                names.hidden.insert(key.clone());
            }
            names.features.insert(key.clone(), FeatureRef { key, summary, status });
        }
        for (repo, number, title) in pull_request_rows {
            names.pull_requests.insert((repo.clone(), number), PullRequestRef { repo, number, title });
        }
        Ok(names)
    }

    /// Per pair: the images `to` runs that `from` did not, the CI runs that built them,
    /// and the application's objects that run them; `ids` are all deployments named.
    pub(super) async fn changed_images(
        &self,
        pairs: &[(Option<i64>, i64)],
        ids: &[i64],
    ) -> Result<Vec<ImageChanges>, LedgerError> {
        let mut after: HashMap<i64, Vec<(i64, String, String)>> = HashMap::new();
        let mut application_of: HashMap<i64, i64> = HashMap::new();
        if !ids.is_empty() {
            let rows: Vec<(i64, i64, i64, String, String)> = read_rows!(
                self,
                "",
                "di.deployment_id, d.application_id, i.id, i.repository, i.tag",
                &format!(
                    "FROM deployment_images di JOIN images i ON i.id = di.image_id
                     JOIN deployments d ON d.id = di.deployment_id
                     WHERE di.side = 'after' AND {}",
                    is_listed(self.pool(), "di.deployment_id", 1, "bigint")
                ),
                "i.repository, i.tag",
                |q| q.bind(json_list(ids))
            );
            for (deployment_id, application_id, image_id, repository, tag) in rows {
                application_of.insert(deployment_id, application_id);
                after.entry(deployment_id).or_default().push((image_id, repository, tag));
            }
        }
        let empty = Vec::new();
        let changed: Vec<Vec<(i64, ImageChange)>> = pairs
            .iter()
            .map(|(from, to)| {
                let before = from.and_then(|from| after.get(&from)).unwrap_or(&empty);
                after
                    .get(to)
                    .unwrap_or(&empty)
                    .iter()
                    .filter(|(id, ..)| !before.iter().any(|(b, ..)| b == id))
                    .map(|(id, repository, tag)| {
                        let previous_tag = before.iter().find(|(_, r, _)| r == repository).map(|(_, _, t)| t.clone());
                        (*id, ImageChange { repository: repository.clone(), tag: tag.clone(), previous_tag })
                    })
                    .collect()
            })
            .collect();
        let mut image_ids: Vec<i64> = changed.iter().flatten().map(|(id, _)| *id).collect();
        image_ids.sort_unstable();
        image_ids.dedup();
        let mut runs: HashMap<i64, BTreeSet<String>> = HashMap::new();
        let mut objects: HashMap<(i64, i64), BTreeSet<String>> = HashMap::new();
        if !image_ids.is_empty() {
            let built = is_listed(self.pool(), "b.image_id", 1, "bigint");
            let running = is_listed(self.pool(), "ri.image_id", 1, "bigint");
            type Run = (i64, Option<String>, Option<String>, Option<String>);
            type Object = (i64, i64, String, String, String);
            // Independent reads, on two pooled connections at once.
            let run_rows = async {
                let rows: Vec<Run> = read_rows!(
                    self,
                    "",
                    "b.image_id, b.ci_system, b.run_id, pr.name",
                    &format!(
                        "FROM builds b LEFT JOIN pipeline_runs pr ON pr.ci_system = b.ci_system AND pr.run_id = b.run_id
                         WHERE b.ci_system IS NOT NULL AND {built}"
                    ),
                    "",
                    |q| q.bind(json_list(&image_ids))
                );
                Ok::<_, LedgerError>(rows)
            };
            let object_rows = async {
                let rows: Vec<Object> = read_rows!(
                    self,
                    "",
                    "ri.image_id, r.application_id, r.kind, r.namespace, r.name",
                    &format!("FROM resource_images ri JOIN resources r ON r.id = ri.resource_id WHERE {running}"),
                    "",
                    |q| q.bind(json_list(&image_ids))
                );
                Ok(rows)
            };
            let (run_rows, object_rows) = tokio::try_join!(run_rows, object_rows)?;
            for (image_id, system, run, name) in run_rows {
                let run = format!("{} {}", system.unwrap_or_default(), run.unwrap_or_default());
                runs.entry(image_id).or_default().insert(match name {
                    Some(name) => format!("{run} ({name})"),
                    None => run,
                });
            }
            for (image_id, application_id, kind, namespace, name) in object_rows {
                objects.entry((image_id, application_id)).or_default().insert(format!("{kind} {namespace}/{name}"));
            }
        }
        Ok(pairs
            .iter()
            .zip(changed)
            .map(|((_, to), images)| {
                let application = application_of.get(to).copied().unwrap_or_default();
                let mut pipelines = BTreeSet::new();
                let mut resources = BTreeSet::new();
                for (image_id, _) in &images {
                    pipelines.extend(runs.get(image_id).into_iter().flatten().cloned());
                    resources.extend(objects.get(&(*image_id, application)).into_iter().flatten().cloned());
                }
                (
                    images.into_iter().map(|(_, image)| image).collect(),
                    pipelines.into_iter().collect(),
                    resources.into_iter().collect(),
                )
            })
            .collect())
    }

    /// The application's latest succeeded deployment before time `before` (ms), or at
    /// that time before history id `history_id` of incarnation `incarnation`.
    pub(crate) async fn previous_deployment(
        &self,
        application_id: i64,
        before: i64,
        incarnation: i64,
        history_id: i64,
    ) -> Result<Option<(i64, i64, String, i64)>, LedgerError> {
        let row = on_pool!(self.pool(), |p| {
            sqlx::query_as(
                "SELECT id, history_id, revision, COALESCE(finished_at, started_at) FROM deployments
                 WHERE application_id = $1 AND phase = 'Succeeded' AND COALESCE(finished_at, started_at) <= $2
                   AND (COALESCE(finished_at, started_at), incarnation, history_id) < ($2, $3, $4)
                 ORDER BY COALESCE(finished_at, started_at) DESC, incarnation DESC, history_id DESC LIMIT 1",
            )
            .bind(application_id)
            .bind(before)
            .bind(incarnation)
            .bind(history_id)
            .fetch_optional(p)
            .await?
        });
        Ok(row)
    }

    /// The features present in the applications of environment `from` now and in none
    /// of `to`'s, with the pull requests of the difference.
    pub(crate) async fn features_missing(
        &self,
        from: i64,
        to: i64,
    ) -> Result<(Vec<FeatureRef>, Vec<PullRequestRef>, bool), LedgerError> {
        let current = "SELECT current_deployment_id FROM applications
                       WHERE environment_id = $1 AND current_deployment_id IS NOT NULL AND deleted_at IS NULL";
        let (from_ids, to_ids): (Vec<i64>, Vec<i64>) = on_pool!(self.pool(), |p| {
            (
                sqlx::query_scalar(current).bind(from).fetch_all(p).await?,
                sqlx::query_scalar(current).bind(to).fetch_all(p).await?,
            )
        });
        let from_set = self.source_set(&from_ids).await?;
        let to_set = self.source_set(&to_ids).await?;
        let (commits, truncated) = self.commits_between(&to_set, &from_set).await?;
        let (candidates, pull_requests) = self.features_and_pull_requests(&commits).await?;
        // A feature counts as present in `to` when any of its commits is.
        let mut present: HashSet<String> = HashSet::new();
        if !candidates.is_empty() {
            let sql = format!(
                "SELECT f.key, c.repository_id, c.sha, cl.ref_name, cl.position FROM features f
                 JOIN commit_features cf ON cf.feature_id = f.id JOIN commits c ON c.id = cf.commit_id
                 LEFT JOIN commit_landings cl ON cl.repository_id = c.repository_id AND cl.sha = c.sha
                 WHERE {}",
                is_listed(self.pool(), "f.key", 1, "text")
            );
            let keys: Vec<&str> = candidates.iter().map(|feature| feature.key.as_str()).collect();
            type Row = (String, i64, String, Option<String>, Option<i64>);
            let rows: Vec<Row> =
                on_pool!(self.pool(), |p| sqlx::query_as(&sql).bind(json_list(&keys)).fetch_all(p).await?);
            for (key, repository_id, sha, reference, position) in rows {
                let landed = reference.zip(position).is_some_and(|(reference, position)| {
                    to_set.branches.get(&(repository_id, reference)).is_some_and(|(base, _)| *base >= position)
                });
                let extra = to_set
                    .branches
                    .iter()
                    .any(|((repo, _), (_, extras))| *repo == repository_id && extras.contains(&sha));
                if landed || extra {
                    present.insert(key);
                }
            }
        }
        let missing = candidates.into_iter().filter(|f| !present.contains(&f.key)).collect();
        Ok((missing, pull_requests, truncated))
    }
}
