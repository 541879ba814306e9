//! The queue behind the webhook endpoints: a handler only verifies, de-duplicates and
//! queues (in the ledger, with the delivery), and answers at once; this task does the
//! work (API calls, Git fetches, ledger writes) in the background. Work still queued
//! when the process stops is done after the next start. Fetches asked for by several
//! deliveries that arrived together are done once.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{Forge, ForgeError, Forges, PullRequestDetails};
use crate::config::{ForgeKind, Settings};
use crate::correlate::FeatureProjects;
use crate::ledger::{Ledger, LedgerError, PipelineRunFact, RepositoryFact};

/// Deliveries waiting at most; beyond that the endpoints answer 503 and the forge retries.
pub const QUEUE_CAPACITY: i64 = 1024;
/// Pieces of work taken from the queue at a time.
const TAKE: i64 = 100;
/// Pull requests described per repository and pass, so one pass stays short.
const FILL_BATCH: i64 = 50;
/// Times a piece of work is taken without being finished before it is given up: work
/// that crashes the process must not be retried at every start for ever.
pub const MAX_ATTEMPTS: i64 = 3;
/// How long the worker waits before reading the queue again after the ledger failed.
const LEDGER_RETRY: Duration = Duration::from_secs(5);

/// One delivery's work, for a repository already placed on its forge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Work {
    pub forge: String,
    pub repository: String,
    pub project: String,
    pub job: Job,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Job {
    /// Record a merged pull request (asking the API for what the payload lacks when
    /// `refresh`), then fetch the repository.
    Merged { details: PullRequestDetails, refresh: bool },
    /// Fetch the repository; ask the forge which pull requests `head` belongs to.
    Push { head: Option<String> },
    /// Record a CI run, with its jobs from GitHub's API when `github_run_id` is set.
    Pipeline { run: PipelineRunFact, github_run_id: Option<i64> },
}

/// Starts the worker. It first does what an earlier process left queued, then waits to
/// be woken through the returned [`Notify`] each time a handler queues more.
pub fn spawn(ledger: Ledger, settings: Arc<Settings>, forges: Forges) -> (Arc<Notify>, tokio::task::JoinHandle<()>) {
    let wake = Arc::new(Notify::new());
    let woken = wake.clone();
    let task = tokio::spawn(async move {
        let projects = FeatureProjects::new(settings.features.projects.iter().cloned());
        loop {
            let queued = match ledger.take_forge_work(TAKE, MAX_ATTEMPTS).await {
                Ok(taken) => {
                    for (id, work) in &taken.abandoned {
                        let work: Option<Work> = serde_json::from_str(work).ok();
                        let (forge, repository) =
                            work.map(|w| (w.forge, w.repository)).unwrap_or_else(|| ("?".into(), "?".into()));
                        tracing::error!(
                            id,
                            %forge,
                            %repository,
                            attempts = MAX_ATTEMPTS,
                            "webhook work was taken {MAX_ATTEMPTS} times and never finished; giving it up"
                        );
                    }
                    taken.work
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the webhook queue");
                    tokio::time::sleep(LEDGER_RETRY).await;
                    continue;
                }
            };
            if queued.is_empty() {
                woken.notified().await;
                continue;
            }
            let ids: Vec<i64> = queued.iter().map(|(id, _)| *id).collect();
            // Facts first, then one fetch per repository, then the forge's details.
            let mut fetches: Vec<(String, Vec<String>)> = Vec::new();
            for (id, text) in queued {
                let work: Work = match serde_json::from_str(&text) {
                    Ok(work) => work,
                    Err(error) => {
                        tracing::warn!(id, %error, "queued webhook work cannot be read; dropping it");
                        continue;
                    }
                };
                let fetch = matches!(work.job, Job::Merged { .. } | Job::Push { .. });
                let head = match &work.job {
                    Job::Push { head } => head.clone(),
                    _ => None,
                };
                if let Err(error) = process(&ledger, &settings, &forges, &projects, &work).await {
                    tracing::warn!(forge = %work.forge, repository = %work.repository, %error, "webhook work failed");
                }
                if fetch {
                    match fetches.iter_mut().find(|(name, _)| *name == work.repository) {
                        Some((_, heads)) => heads.extend(head),
                        None => fetches.push((work.repository.clone(), head.into_iter().collect())),
                    }
                }
            }
            for (repository, heads) in fetches {
                fetch(&ledger, &settings, &forges, &projects, &repository, &heads).await;
            }
            // Done only now: work cut short by a stop is done again, and every step of
            // it is an upsert.
            if let Err(error) = ledger.finish_forge_work(&ids).await {
                tracing::warn!(%error, "cannot remove handled webhook work from the queue");
                tokio::time::sleep(LEDGER_RETRY).await;
            }
        }
    });
    (wake, task)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Makes sure the ledger has the repository row facts hang on, as a sync would write it,
/// so a webhook's facts are kept even before (or without) a successful fetch.
async fn ensure_repository(ledger: &Ledger, settings: &Settings, name: &str) -> Result<(), LedgerError> {
    if ledger.repository_names().await?.iter().any(|n| n == name) {
        return Ok(());
    }
    let Some(config) = settings.repositories.iter().find(|r| r.name == name) else {
        return Err(LedgerError::Invalid(format!("repository `{name}` is not configured")));
    };
    let url = crate::git::Repository::new(config, &settings.data_dir).display_url();
    ledger.upsert_repository(&RepositoryFact { name: name.into(), url, kind: config.kind.as_str().into() }).await?;
    Ok(())
}

async fn process(
    ledger: &Ledger,
    settings: &Settings,
    forges: &Forges,
    projects: &FeatureProjects,
    work: &Work,
) -> Result<(), ForgeError> {
    ensure_repository(ledger, settings, &work.repository).await?;
    let forge = forges.by_name(&work.forge);
    match &work.job {
        Job::Merged { details, refresh } => {
            let mut details = details.clone();
            if *refresh && let Some(forge) = forge.filter(|f| f.has_token) {
                match describe(forge, &work.project, details.number).await {
                    Ok(Some(fresh)) => details = merge(details, fresh),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the merge request's details; keeping the webhook's")
                    }
                }
            }
            let fact = details.into_fact(&work.repository, projects, Some(now()));
            ledger.upsert_pull_request(&fact).await?;
            tracing::info!(repository = %work.repository, number = fact.number, "merged pull request recorded from a webhook");
        }
        Job::Push { .. } => {}
        Job::Pipeline { run, github_run_id } => {
            let mut run = run.clone();
            run.repository = Some(work.repository.clone());
            let jobs = match (forge.filter(|f| f.has_token), github_run_id) {
                (Some(forge), Some(id)) => match forge.api.github_run_jobs(&work.project, *id).await {
                    Ok(steps) => steps,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the run's jobs; recording the run without them");
                        Vec::new()
                    }
                },
                _ => Vec::new(),
            };
            let existing = ledger.pipeline_steps(&run.ci_system, &run.run_id).await?;
            run.steps = super::with_steps(if run.steps.is_empty() { jobs } else { run.steps }, existing);
            ledger.record_pipeline_run(&run).await?;
            tracing::info!(repository = %work.repository, run = %run.run_id, status = %run.status, "pipeline run recorded from a webhook");
        }
    }
    Ok(())
}

/// What the API says wins over the payload, field by field, where it says anything.
fn merge(hook: PullRequestDetails, api: PullRequestDetails) -> PullRequestDetails {
    PullRequestDetails {
        number: hook.number,
        title: api.title.or(hook.title),
        body: api.body.or(hook.body),
        author: api.author.or(hook.author),
        head_branch: api.head_branch.or(hook.head_branch),
        merged_at: api.merged_at.or(hook.merged_at),
        merge_commit_sha: api.merge_commit_sha.or(hook.merge_commit_sha),
    }
}

/// One pull (merge) request from the forge's API.
async fn describe(forge: &Forge, project: &str, number: i64) -> Result<Option<PullRequestDetails>, ForgeError> {
    match forge.kind() {
        ForgeKind::Github => forge.api.github_pull_request(project, number).await,
        ForgeKind::Gitlab => forge.api.gitlab_merge_request(project, number).await,
    }
}

/// The merged pull (merge) requests the forge associates with a commit.
pub async fn pulls_for_commit(forge: &Forge, project: &str, sha: &str) -> Result<Vec<PullRequestDetails>, ForgeError> {
    let all = match forge.kind() {
        ForgeKind::Github => forge.api.github_pulls_for_commit(project, sha).await?,
        ForgeKind::Gitlab => forge.api.gitlab_merge_requests_for_commit(project, sha).await?,
    };
    Ok(all.into_iter().filter(PullRequestDetails::is_merged).collect())
}

/// Fetches a repository, records the merged pull requests of the pushed tips, and
/// describes the pull requests the new commits named.
async fn fetch(
    ledger: &Ledger,
    settings: &Settings,
    forges: &Forges,
    projects: &FeatureProjects,
    repository: &str,
    heads: &[String],
) {
    match crate::sync::sync_one(ledger, settings, repository).await {
        Some(Ok(report)) => {
            tracing::info!(repository, new_commits = report.new_commits, "repository fetched after a webhook")
        }
        Some(Err(error)) => tracing::warn!(repository, %error, "repository fetch after a webhook failed"),
        None => {}
    }
    let Some((forge, placement)) = forges.placement_of(repository) else { return };
    if !forge.has_token {
        return;
    }
    for head in heads {
        match pulls_for_commit(forge, &placement.project, head).await {
            Ok(pulls) => {
                for details in pulls {
                    let fact = details.into_fact(repository, projects, Some(now()));
                    if let Err(error) = ledger.upsert_pull_request(&fact).await {
                        tracing::warn!(repository, %error, "cannot record a pull request of a pushed commit");
                    }
                }
            }
            Err(error) => tracing::warn!(repository, %error, "cannot ask which pull requests hold a pushed commit"),
        }
    }
    if let Err(error) = fill(ledger, forge, &placement.project, repository, projects).await {
        tracing::warn!(repository, %error, "cannot describe the repository's pull requests");
    }
}

/// Asks the forge for the details of pull requests the ledger knows only by number
/// (from commit messages); returns how many were described. A number the forge does not
/// know is marked as looked up, so it is not asked for again.
pub async fn fill(
    ledger: &Ledger,
    forge: &Forge,
    project: &str,
    repository: &str,
    projects: &FeatureProjects,
) -> Result<usize, ForgeError> {
    let numbers = ledger.pull_requests_without_details(repository, FILL_BATCH).await?;
    let mut described = 0;
    for number in numbers {
        match describe(forge, project, number).await? {
            Some(details) => {
                ledger.upsert_pull_request(&details.into_fact(repository, projects, Some(now()))).await?;
                described += 1;
            }
            None => ledger.mark_pull_request_fetched(repository, number, now()).await?,
        }
    }
    Ok(described)
}

/// What one pass of [`fill_all`] did for a repository on a forge.
pub struct Described {
    pub repository: String,
    pub forge: String,
    /// How many pull requests the forge described; `None` when the forge has no token.
    pub outcome: Option<Result<usize, ForgeError>>,
}

/// [`fill`] for every repository placed on a forge, in order; repositories on a forge
/// without a token are listed with no outcome.
pub async fn fill_all(ledger: &Ledger, forges: &Forges, settings: &Settings) -> Vec<Described> {
    let projects = FeatureProjects::new(settings.features.projects.iter().cloned());
    let mut done = Vec::new();
    for placement in forges.placements() {
        let Some(forge) = forges.by_name(&placement.forge) else { continue };
        let outcome = match forge.has_token {
            true => Some(fill(ledger, forge, &placement.project, &placement.repository, &projects).await),
            false => None,
        };
        done.push(Described { repository: placement.repository.clone(), forge: forge.name().to_string(), outcome });
    }
    done
}
