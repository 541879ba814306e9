//! GitHub: the REST calls Landfall makes and the webhook payloads it reads, as
//! documented (<https://docs.github.com/en/rest>, API version 2022-11-28) and as the
//! examples in `shared/fixtures/github` show them. Only the fields Landfall uses are
//! declared; everything else in a payload is ignored.

use serde::Deserialize;

use super::webhook::{Event, Incoming};
use super::{Api, ForgeError, PullRequestDetails, step_kind};
use crate::ledger::{PipelineRunFact, PipelineStepFact};
use crate::timefmt::parse_rfc3339;

/// The CI system name runs are recorded under: the same as `landfall report` uses in
/// GitHub Actions, so a run reported both ways is one run.
pub const CI_SYSTEM: &str = "github-actions";

#[derive(Debug, Deserialize)]
pub struct User {
    pub login: String,
}

#[derive(Debug, Deserialize)]
pub struct Branch {
    #[serde(rename = "ref")]
    pub name: Option<String>,
}

/// `GET /repos/{owner}/{repo}/pulls/{number}`, the items of
/// `GET /repos/{owner}/{repo}/commits/{sha}/pulls`, and `pull_request` in webhooks.
#[derive(Debug, Deserialize)]
pub struct PullRequest {
    pub number: i64,
    pub title: Option<String>,
    pub body: Option<String>,
    pub user: Option<User>,
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub head: Option<Branch>,
}

impl PullRequest {
    /// The merge commit only counts once merged: before, GitHub names a test merge.
    pub fn details(self) -> PullRequestDetails {
        let merged_at = self.merged_at.as_deref().and_then(parse_rfc3339);
        PullRequestDetails {
            number: self.number,
            title: self.title,
            body: self.body.filter(|b| !b.is_empty()),
            author: self.user.map(|u| u.login),
            head_branch: self.head.and_then(|h| h.name),
            merge_commit_sha: self.merge_commit_sha.filter(|_| merged_at.is_some()),
            merged_at,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Jobs {
    pub jobs: Vec<Job>,
}

/// An item of `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs`.
#[derive(Debug, Deserialize)]
pub struct Job {
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    #[serde(default)]
    pub steps: Vec<JobStep>,
}

#[derive(Debug, Deserialize)]
pub struct JobStep {
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// The ledger's status for a GitHub status (`queued`, `in_progress`, `completed`, …)
/// and conclusion (`success`, `failure`, `cancelled`, …).
pub fn status(status: &str, conclusion: Option<&str>) -> &'static str {
    match (status, conclusion) {
        ("completed", Some("success")) => "success",
        ("completed", Some("failure" | "timed_out" | "startup_failure" | "action_required")) => "failure",
        ("completed", Some("cancelled")) => "cancelled",
        ("completed", Some("skipped" | "neutral" | "stale")) => "skipped",
        ("completed", _) => "failure",
        ("in_progress", _) => "running",
        _ => "pending",
    }
}

/// Each job becomes a step of the run, followed by its own steps as `job / step`.
pub fn steps(jobs: Vec<Job>) -> Vec<PipelineStepFact> {
    let time = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339);
    let mut steps = Vec::new();
    for job in jobs {
        let kind = step_kind(None, &job.name);
        steps.push(PipelineStepFact {
            name: job.name.clone(),
            kind: kind.into(),
            status: status(&job.status, job.conclusion.as_deref()).into(),
            started_at: time(&job.started_at),
            finished_at: time(&job.completed_at),
        });
        for step in job.steps {
            steps.push(PipelineStepFact {
                name: format!("{} / {}", job.name, step.name),
                kind: kind.into(),
                status: status(&step.status, step.conclusion.as_deref()).into(),
                started_at: time(&step.started_at),
                finished_at: time(&step.completed_at),
            });
        }
    }
    steps
}

impl Api {
    /// A pull request's details; `None` when GitHub does not know it.
    pub async fn github_pull_request(
        &self,
        project: &str,
        number: i64,
    ) -> Result<Option<PullRequestDetails>, ForgeError> {
        let url = self.url(&repo_path(project, &["pulls", &number.to_string()]), &[]);
        let pull: Option<PullRequest> = self.get(url, &format!("pull request {project}#{number}")).await?;
        Ok(pull.map(PullRequest::details))
    }

    /// The pull requests GitHub associates with a commit (every page).
    pub async fn github_pulls_for_commit(
        &self,
        project: &str,
        sha: &str,
    ) -> Result<Vec<PullRequestDetails>, ForgeError> {
        let url = self.url(&repo_path(project, &["commits", sha, "pulls"]), &[("per_page", super::api::PER_PAGE)]);
        let pulls =
            self.get_all(url, &format!("pull requests of {project}@{sha}"), |page: Vec<PullRequest>| page).await?;
        Ok(pulls.into_iter().map(PullRequest::details).collect())
    }

    /// A workflow run's jobs and their steps (every page).
    pub async fn github_run_jobs(&self, project: &str, run_id: i64) -> Result<Vec<PipelineStepFact>, ForgeError> {
        let url = self.url(
            &repo_path(project, &["actions", "runs", &run_id.to_string(), "jobs"]),
            &[("per_page", super::api::PER_PAGE)],
        );
        let jobs = self.get_all(url, &format!("jobs of run {run_id} of {project}"), |page: Jobs| page.jobs).await?;
        Ok(steps(jobs))
    }
}

/// `repos/{owner}/{repo}/…` as path segments.
fn repo_path<'a>(project: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut segments = vec!["repos"];
    segments.extend(project.split('/'));
    segments.extend_from_slice(rest);
    segments
}

#[derive(Debug, Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Debug, Deserialize)]
struct PullRequestEvent {
    action: String,
    pull_request: PullRequest,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct PushEvent {
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct WorkflowRunEvent {
    workflow_run: WorkflowRun,
    workflow: Option<Workflow>,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct Workflow {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WorkflowRun {
    id: i64,
    name: Option<String>,
    path: Option<String>,
    html_url: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    head_sha: Option<String>,
    run_started_at: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    #[serde(default)]
    pull_requests: Vec<RunPullRequest>,
}

#[derive(Debug, Deserialize)]
struct RunPullRequest {
    number: i64,
    base: Option<RunBase>,
}

#[derive(Debug, Deserialize)]
struct RunBase {
    repo: Option<RunRepo>,
}

#[derive(Debug, Deserialize)]
struct RunRepo {
    url: Option<String>,
}

/// Reads a webhook delivery (`X-GitHub-Event` and the verified body) into what Landfall
/// does with it (<https://docs.github.com/en/webhooks/webhook-events-and-payloads>).
pub fn parse(event: &str, body: &[u8]) -> Result<Event, serde_json::Error> {
    Ok(match event {
        "ping" => Event::Ping,
        "pull_request" => {
            let payload: PullRequestEvent = serde_json::from_slice(body)?;
            let details = payload.pull_request.details();
            if payload.action != "closed" || !details.is_merged() {
                return Ok(Event::Ignored(format!(
                    "pull_request `{}` without a merge is not used; Landfall records merged pull requests",
                    payload.action
                )));
            }
            Event::Merged { incoming: Incoming::path(payload.repository.full_name), details, refresh: false }
        }
        "push" => {
            let payload: PushEvent = serde_json::from_slice(body)?;
            let head = payload.after.filter(|sha| !payload.deleted && sha.bytes().any(|b| b != b'0'));
            Event::Push { incoming: Incoming::path(payload.repository.full_name), head }
        }
        "workflow_run" => {
            let payload: WorkflowRunEvent = serde_json::from_slice(body)?;
            let full_name = payload.repository.full_name;
            let run = payload.workflow_run;
            let name = [run.name, payload.workflow.and_then(|w| w.name), run.path]
                .into_iter()
                .flatten()
                .find(|n| !n.is_empty())
                .unwrap_or_else(|| format!("workflow run {}", run.id));
            // A run lists the pull requests of its head branch; only those of this
            // repository are its own (a fork's base is elsewhere).
            let own = format!("/repos/{full_name}").to_ascii_lowercase();
            let pull_request = run
                .pull_requests
                .iter()
                .find(|pr| {
                    pr.base
                        .as_ref()
                        .and_then(|b| b.repo.as_ref())
                        .and_then(|r| r.url.as_deref())
                        .is_some_and(|url| url.to_ascii_lowercase().ends_with(&own))
                })
                .map(|pr| pr.number);
            let run_status = run.status.as_deref().unwrap_or("queued");
            let fact = PipelineRunFact {
                ci_system: CI_SYSTEM.into(),
                run_id: run.id.to_string(),
                name,
                url: run.html_url.filter(|u| u.starts_with("https://") || u.starts_with("http://")),
                status: status(run_status, run.conclusion.as_deref()).into(),
                repository: None,
                commit_sha: run.head_sha.filter(|s| s.len() == 40).map(|s| s.to_ascii_lowercase()),
                pull_request_number: pull_request,
                started_at: run.run_started_at.or(run.created_at).as_deref().and_then(parse_rfc3339),
                finished_at: run.updated_at.as_deref().and_then(parse_rfc3339).filter(|_| run_status == "completed"),
                steps: Vec::new(),
            };
            Event::Pipeline { incoming: Incoming::path(full_name), run: fact, github_run_id: Some(run.id) }
        }
        other => Event::Ignored(format!(
            "event `{other}` is not used; Landfall uses pull_request, push and workflow_run (and answers ping)"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../shared/fixtures/github/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn edited(name: &str, change: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut value: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
        change(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn the_rest_pull_request_example_gives_its_details() {
        let pull: PullRequest = serde_json::from_slice(&fixture("rest.pulls.get.spec-example.json")).unwrap();
        let details = pull.details();
        assert_eq!(details.number, 1347);
        assert_eq!(details.title.as_deref(), Some("Amazing new feature"));
        assert_eq!(details.author.as_deref(), Some("octocat"));
        assert_eq!(details.head_branch.as_deref(), Some("new-topic"));
        assert_eq!(details.body.as_deref(), Some("Please pull these awesome changes in!"));
        // The example says `merged: false` beside a merge time; the time decides.
        assert_eq!(details.merged_at, parse_rfc3339("2011-01-26T19:01:12Z"));
        assert_eq!(details.merge_commit_sha.as_deref(), Some("e5bd3914e2e596debea16f433f57875b5b90bcd6"));
    }

    #[test]
    fn the_pulls_for_a_commit_example_is_a_list_of_them() {
        let pulls: Vec<PullRequest> =
            serde_json::from_slice(&fixture("rest.commits.list-pulls-for-commit.spec-example.json")).unwrap();
        let details: Vec<PullRequestDetails> = pulls.into_iter().map(PullRequest::details).collect();
        assert_eq!(details.len(), 1);
        assert_eq!((details[0].number, details[0].author.as_deref()), (1347, Some("octocat")));
    }

    #[test]
    fn a_closed_unmerged_pull_request_is_ignored_and_a_merged_one_recorded() {
        let event = parse("pull_request", &fixture("webhook.pull_request.closed.json")).unwrap();
        assert!(matches!(&event, Event::Ignored(why) if why.contains("closed")), "{event:?}");
        let merged = edited("webhook.pull_request.closed.json", |v| {
            v["pull_request"]["merged"] = true.into();
            v["pull_request"]["merged_at"] = "2019-05-15T15:21:18Z".into();
            v["pull_request"]["title"] = "SHOP-7: Update the README".into();
        });
        let Event::Merged { incoming, details, refresh } = parse("pull_request", &merged).unwrap() else {
            panic!("a merged pull request")
        };
        assert_eq!(incoming.paths, ["Codertocat/Hello-World"]);
        assert!(!refresh, "the payload is complete");
        assert_eq!(details.number, 2);
        assert_eq!(details.author.as_deref(), Some("Codertocat"));
        assert_eq!(details.head_branch.as_deref(), Some("changes"));
        assert_eq!(details.merge_commit_sha.as_deref(), Some("c4295bd74fb0f4fda03689c3df3f2803b658fd85"));
        assert_eq!(details.merged_at, parse_rfc3339("2019-05-15T15:21:18Z"));
        let fact = details.into_fact("hello", &crate::correlate::FeatureProjects::new(["SHOP"]), Some(1));
        assert_eq!(fact.feature_keys, ["SHOP-7"]);
    }

    #[test]
    fn pushes_name_their_head_and_deletions_none() {
        let Event::Push { incoming, head } = parse("push", &fixture("webhook.push.new-branch.json")).unwrap() else {
            panic!("a push")
        };
        assert_eq!(incoming.paths, ["Codertocat/Hello-World"]);
        assert_eq!(head.as_deref(), Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246"));
        let Event::Push { head, .. } = parse("push", &fixture("webhook.push.tag-deleted.json")).unwrap() else {
            panic!("a push")
        };
        assert_eq!(head, None);
    }

    #[test]
    fn workflow_runs_become_pipeline_runs() {
        let Event::Pipeline { incoming, run, github_run_id } =
            parse("workflow_run", &fixture("webhook.workflow_run.completed.json")).unwrap()
        else {
            panic!("a pipeline")
        };
        assert_eq!(incoming.paths, ["octo-org/octo-repo"]);
        assert_eq!(github_run_id, Some(289782451));
        assert_eq!(run.ci_system, "github-actions");
        assert_eq!(run.run_id, "289782451");
        assert_eq!(run.name, "test", "the run's empty name falls back to the workflow's");
        assert_eq!(run.status, "success");
        assert_eq!(run.commit_sha.as_deref(), Some("3484a3fb816e0859fd6e1cea078d76385ff50625"));
        assert_eq!(run.url.as_deref(), Some("https://github.com/octo-org/octo-repo/actions/runs/289782451"));
        assert_eq!(run.started_at, parse_rfc3339("2020-10-05T16:33:49Z"));
        assert_eq!(run.finished_at, parse_rfc3339("2020-10-05T16:33:49Z"));
        assert_eq!(run.pull_request_number, None);

        // The example's pull request belongs to another repository than the run's.
        let fixture_name = "webhook.workflow_run.completed.with-pull-requests.json";
        let Event::Pipeline { run, .. } = parse("workflow_run", &fixture(fixture_name)).unwrap() else { panic!() };
        assert_eq!(run.pull_request_number, None, "a pull request of another repository is not this run's");
        let own = edited(fixture_name, |v| {
            v["workflow_run"]["pull_requests"][0]["base"]["repo"]["url"] =
                "https://api.github.com/repos/octo-org/octo-repo".into();
        });
        let Event::Pipeline { run, .. } = parse("workflow_run", &own).unwrap() else { panic!() };
        assert_eq!(run.pull_request_number, Some(2));
    }

    #[test]
    fn unused_events_are_ignored_with_a_reason() {
        let event = parse("deployment_status", &fixture("webhook.deployment_status.created.json")).unwrap();
        assert!(matches!(&event, Event::Ignored(why) if why.contains("workflow_run")), "{event:?}");
        assert!(matches!(parse("ping", b"{}").unwrap(), Event::Ping));
        assert!(parse("push", b"{not json").is_err());
    }

    #[test]
    fn jobs_and_their_steps_become_steps() {
        let jobs: Jobs = serde_json::from_value(serde_json::json!({
            "total_count": 1,
            "jobs": [{
                "id": 21, "name": "build", "status": "completed", "conclusion": "success",
                "started_at": "2019-08-08T15:00:00Z", "completed_at": "2019-08-08T15:01:00Z",
                "steps": [{ "name": "Run tests", "status": "completed", "conclusion": "failure", "number": 1 }]
            }]
        }))
        .unwrap();
        let steps = steps(jobs.jobs);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            (steps[0].name.as_str(), steps[0].kind.as_str(), steps[0].status.as_str()),
            ("build", "build", "success")
        );
        assert_eq!((steps[1].name.as_str(), steps[1].status.as_str()), ("build / Run tests", "failure"));
    }
}
