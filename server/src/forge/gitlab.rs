//! GitLab: the REST v4 calls Landfall makes and the webhook payloads it reads
//! (<https://docs.gitlab.com/ee/api/merge_requests.html>,
//! <https://docs.gitlab.com/ee/user/project/integrations/webhook_events.html>), as the
//! examples in `shared/fixtures/gitlab` show them. Only the fields Landfall uses are
//! declared.

use serde::Deserialize;

use super::webhook::{Event, Incoming};
use super::{Api, ForgeError, PullRequestDetails, step_kind};
use crate::ledger::{PipelineRunFact, PipelineStepFact};
use crate::timefmt::parse_rfc3339;

/// The CI system name runs are recorded under: the same as `landfall report` uses in
/// GitLab CI, so a pipeline reported both ways is one run.
pub const CI_SYSTEM: &str = "gitlab-ci";

/// GitLab's times: ISO 8601 in the API (`2016-08-12T15:23:28.000Z`, `…+02:00`) and
/// `2016-08-12 15:23:28 UTC` or `… +0200` in webhooks.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(utc) = text.strip_suffix(" UTC") {
        return parse_rfc3339(&format!("{utc}Z"));
    }
    if let Some((time, offset)) = text.rsplit_once(' ')
        && offset.len() == 5
        && matches!(offset.as_bytes()[0], b'+' | b'-')
    {
        return parse_rfc3339(&format!("{time}{}:{}", &offset[..3], &offset[3..]));
    }
    parse_rfc3339(text)
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub username: String,
}

/// `GET /projects/:id/merge_requests/:iid` and the items of
/// `GET /projects/:id/repository/commits/:sha/merge_requests`.
#[derive(Debug, Deserialize)]
pub struct MergeRequest {
    pub iid: i64,
    pub title: Option<String>,
    pub description: Option<String>,
    pub author: Option<User>,
    pub source_branch: Option<String>,
    pub state: Option<String>,
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub squash_commit_sha: Option<String>,
    /// The head commit; what lands on the target branch in a fast-forward merge.
    pub sha: Option<String>,
}

impl MergeRequest {
    pub fn details(self) -> PullRequestDetails {
        let merged = self.state.as_deref() == Some("merged");
        let merged_at = self.merged_at.as_deref().and_then(parse_time).filter(|_| merged);
        // A merge commit, else the squash commit, else (fast-forward) the head itself.
        let merge_commit_sha = self.merge_commit_sha.or(self.squash_commit_sha).or(self.sha).filter(|_| merged);
        PullRequestDetails {
            number: self.iid,
            title: self.title,
            body: self.description.filter(|d| !d.is_empty()),
            author: self.author.map(|u| u.username),
            head_branch: self.source_branch,
            merged_at,
            merge_commit_sha,
        }
    }
}

impl Api {
    /// A merge request's details; `None` when GitLab does not know it.
    pub async fn gitlab_merge_request(
        &self,
        project: &str,
        iid: i64,
    ) -> Result<Option<PullRequestDetails>, ForgeError> {
        let url = self.url(&["projects", project, "merge_requests", &iid.to_string()], &[]);
        let request: Option<MergeRequest> = self.get(url, &format!("merge request {project}!{iid}")).await?;
        Ok(request.map(MergeRequest::details))
    }

    /// The merge requests GitLab associates with a commit (every page).
    pub async fn gitlab_merge_requests_for_commit(
        &self,
        project: &str,
        sha: &str,
    ) -> Result<Vec<PullRequestDetails>, ForgeError> {
        let url = self.url(
            &["projects", project, "repository", "commits", sha, "merge_requests"],
            &[("per_page", super::api::PER_PAGE)],
        );
        let requests =
            self.get_all(url, &format!("merge requests of {project}@{sha}"), |page: Vec<MergeRequest>| page).await?;
        Ok(requests.into_iter().map(MergeRequest::details).collect())
    }
}

/// The ledger's status for a GitLab pipeline or job status.
pub fn status(status: &str) -> &'static str {
    match status {
        "success" => "success",
        "failed" => "failure",
        "canceled" | "canceling" => "cancelled",
        "skipped" => "skipped",
        "running" => "running",
        _ => "pending",
    }
}

#[derive(Debug, Deserialize)]
struct Project {
    id: Option<i64>,
    path_with_namespace: String,
    web_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MergeRequestHook {
    project: Project,
    object_attributes: MergeRequestAttributes,
}

#[derive(Debug, Deserialize)]
struct MergeRequestAttributes {
    iid: i64,
    title: Option<String>,
    description: Option<String>,
    source_branch: Option<String>,
    state: Option<String>,
    action: Option<String>,
    merge_commit_sha: Option<String>,
    updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PushHook {
    after: Option<String>,
    project: Project,
}

#[derive(Debug, Deserialize)]
struct PipelineHook {
    object_attributes: PipelineAttributes,
    merge_request: Option<PipelineMergeRequest>,
    project: Project,
    #[serde(default)]
    builds: Vec<Build>,
}

#[derive(Debug, Deserialize)]
struct PipelineAttributes {
    id: i64,
    name: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    sha: Option<String>,
    status: String,
    created_at: Option<String>,
    finished_at: Option<String>,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PipelineMergeRequest {
    iid: i64,
}

#[derive(Debug, Deserialize)]
struct Build {
    id: i64,
    stage: Option<String>,
    name: String,
    status: String,
    started_at: Option<String>,
    finished_at: Option<String>,
}

impl Project {
    fn incoming(self) -> Incoming {
        let mut paths = vec![self.path_with_namespace];
        paths.extend(self.id.map(|id| id.to_string()));
        Incoming { paths }
    }
}

/// Reads a webhook delivery (`X-Gitlab-Event` and the verified body) into what Landfall
/// does with it.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, serde_json::Error> {
    Ok(match event {
        "Merge Request Hook" => {
            let hook: MergeRequestHook = serde_json::from_slice(body)?;
            let attributes = hook.object_attributes;
            let action = attributes.action.as_deref().unwrap_or_default();
            if action != "merge" && attributes.state.as_deref() != Some("merged") {
                return Ok(Event::Ignored(format!(
                    "merge request action `{action}` is not used; Landfall records merged merge requests"
                )));
            }
            let details = PullRequestDetails {
                number: attributes.iid,
                title: attributes.title,
                body: attributes.description.filter(|d| !d.is_empty()),
                // The hook names the author only by id; the API gives the name.
                author: None,
                head_branch: attributes.source_branch,
                // The merge is the update the hook reports.
                merged_at: attributes.updated_at.as_deref().and_then(parse_time),
                merge_commit_sha: attributes.merge_commit_sha,
            };
            Event::Merged { incoming: hook.project.incoming(), details, refresh: true }
        }
        "Push Hook" => {
            let hook: PushHook = serde_json::from_slice(body)?;
            let head = hook.after.filter(|sha| sha.bytes().any(|b| b != b'0'));
            Event::Push { incoming: hook.project.incoming(), head }
        }
        "Pipeline Hook" => {
            let hook: PipelineHook = serde_json::from_slice(body)?;
            let attributes = hook.object_attributes;
            let url = attributes
                .url
                .or_else(|| hook.project.web_url.as_ref().map(|web| format!("{web}/-/pipelines/{}", attributes.id)))
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
            let name = attributes.name.filter(|n| !n.is_empty()).unwrap_or_else(|| match &attributes.reference {
                Some(reference) => format!("pipeline for {reference}"),
                None => format!("pipeline {}", attributes.id),
            });
            let mut builds = hook.builds;
            builds.sort_by_key(|b| b.id);
            let steps = builds
                .into_iter()
                .map(|build| PipelineStepFact {
                    kind: step_kind(build.stage.as_deref(), &build.name).into(),
                    status: status(&build.status).into(),
                    started_at: build.started_at.as_deref().and_then(parse_time),
                    finished_at: build.finished_at.as_deref().and_then(parse_time),
                    name: build.name,
                })
                .collect();
            let run = PipelineRunFact {
                ci_system: CI_SYSTEM.into(),
                run_id: attributes.id.to_string(),
                name,
                url,
                status: status(&attributes.status).into(),
                repository: None,
                commit_sha: attributes.sha.filter(|s| s.len() == 40).map(|s| s.to_ascii_lowercase()),
                pull_request_number: hook.merge_request.map(|m| m.iid),
                started_at: attributes.created_at.as_deref().and_then(parse_time),
                finished_at: attributes.finished_at.as_deref().and_then(parse_time),
                steps,
            };
            Event::Pipeline { incoming: hook.project.incoming(), run, github_run_id: None }
        }
        other => Event::Ignored(format!(
            "event `{other}` is not used; Landfall uses Merge Request Hook, Push Hook and Pipeline Hook"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../shared/fixtures/gitlab/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn gitlab_times_in_every_form() {
        let expected = parse_rfc3339("2016-08-12T15:23:28Z");
        assert_eq!(parse_time("2016-08-12 15:23:28 UTC"), expected);
        assert_eq!(parse_time("2016-08-12T15:23:28.000Z"), expected);
        assert_eq!(parse_time("2016-08-12 17:23:28 +0200"), expected);
        assert_eq!(parse_time("2016-08-12T17:23:28.000+02:00"), expected);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn an_opened_merge_request_is_ignored_and_a_merged_one_recorded() {
        let event = parse("Merge Request Hook", &fixture("webhook.merge_request.open.json")).unwrap();
        assert!(matches!(&event, Event::Ignored(why) if why.contains("`open`")), "{event:?}");
        let mut merged: serde_json::Value =
            serde_json::from_slice(&fixture("webhook.merge_request.open.json")).unwrap();
        merged["object_attributes"]["action"] = "merge".into();
        merged["object_attributes"]["state"] = "merged".into();
        merged["object_attributes"]["merge_commit_sha"] = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into();
        let body = serde_json::to_vec(&merged).unwrap();
        let Event::Merged { incoming, details, refresh } = parse("Merge Request Hook", &body).unwrap() else {
            panic!("a merge")
        };
        assert_eq!(incoming.paths, ["gitlabhq/gitlab-test", "1"]);
        assert!(refresh, "the author comes from the API");
        assert_eq!(details.number, 1);
        assert_eq!(details.title.as_deref(), Some("MS-Viewport"));
        assert_eq!(details.head_branch.as_deref(), Some("ms-viewport"));
        assert_eq!(details.body, None, "an empty description is no body");
        assert_eq!(details.merged_at, parse_rfc3339("2013-12-03T17:23:34Z"));
        assert_eq!(details.merge_commit_sha.as_deref(), Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"));
    }

    #[test]
    fn both_pipeline_examples_become_runs_with_their_jobs() {
        for name in ["webhook.pipeline.success.gitlab-docs.json", "webhook.pipeline.success.go-gitlab.json"] {
            let Event::Pipeline { incoming, run, github_run_id } = parse("Pipeline Hook", &fixture(name)).unwrap()
            else {
                panic!("{name}: a pipeline")
            };
            assert_eq!(incoming.paths, ["gitlab-org/gitlab-test", "1"], "{name}");
            assert_eq!(github_run_id, None);
            assert_eq!(
                (run.ci_system.as_str(), run.run_id.as_str(), run.status.as_str()),
                ("gitlab-ci", "31", "success")
            );
            assert_eq!(run.commit_sha.as_deref(), Some("bcbb5ec396a2c0f828686f14fac9b80b780504f2"), "{name}");
            assert_eq!(run.pull_request_number, Some(1), "{name}: the merge request it ran for");
            assert_eq!(run.started_at, parse_time("2016-08-12 15:23:28 UTC"));
            assert_eq!(run.finished_at, parse_time("2016-08-12 15:26:29 UTC"));
            let steps: Vec<(&str, &str)> = run.steps.iter().map(|s| (s.name.as_str(), s.kind.as_str())).collect();
            assert_eq!(
                steps,
                [
                    ("build-image", "build"),
                    ("test-image", "test"),
                    ("test-build", "test"),
                    ("staging", "deploy"),
                    ("production", "deploy")
                ],
                "{name}"
            );
        }
        let Event::Pipeline { run, .. } =
            parse("Pipeline Hook", &fixture("webhook.pipeline.success.gitlab-docs.json")).unwrap()
        else {
            panic!()
        };
        assert_eq!(run.name, "Pipeline for branch: master");
        assert_eq!(run.url.as_deref(), Some("http://example.com/gitlab-org/gitlab-test/-/pipelines/31"));
        let statuses: Vec<&str> = run.steps.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(statuses, ["success", "success", "failure", "pending", "skipped"]);
        let Event::Pipeline { run, .. } =
            parse("Pipeline Hook", &fixture("webhook.pipeline.success.go-gitlab.json")).unwrap()
        else {
            panic!()
        };
        assert_eq!(run.name, "pipeline for master", "no name in this example");
        assert_eq!(run.url.as_deref(), Some("http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31"));
    }

    #[test]
    fn merge_requests_from_the_api_name_their_merge_commit() {
        let request: MergeRequest = serde_json::from_value(serde_json::json!({
            "id": 1, "iid": 12, "title": "SHOP-9 checkout", "description": "Closes SHOP-9",
            "state": "merged", "merged_at": "2024-05-01T12:00:00.000Z",
            "author": { "id": 3, "username": "alice", "name": "Alice" },
            "source_branch": "SHOP-9-checkout", "merge_commit_sha": null,
            "squash_commit_sha": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sha": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        }))
        .unwrap();
        let details = request.details();
        assert_eq!(details.author.as_deref(), Some("alice"));
        assert_eq!(details.merge_commit_sha.as_deref(), Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert_eq!(details.merged_at, parse_rfc3339("2024-05-01T12:00:00Z"));
    }

    #[test]
    fn unused_hooks_are_ignored_with_a_reason() {
        let event = parse("Note Hook", b"{}").unwrap();
        assert!(matches!(&event, Event::Ignored(why) if why.contains("Pipeline Hook")), "{event:?}");
    }
}
