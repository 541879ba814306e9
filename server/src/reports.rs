//! The CI report connector: what a CI job tells Landfall about the images it built and
//! the pipelines it ran. Wire types, their validation into ledger facts, and the
//! defaults `landfall report` takes from the CI system's own environment variables.

pub mod client;

use serde::{Deserialize, Serialize};

use crate::ledger::{BuildFact, ImageRef, PipelineRunFact, PipelineStepFact};
use crate::timefmt::parse_rfc3339;

/// The variable a CI job puts the report token in, read by `landfall report`.
pub const TOKEN_VARIABLE: &str = "LANDFALL_REPORT_TOKEN";

pub const PIPELINE_STATUSES: [&str; 6] = ["pending", "running", "success", "failure", "cancelled", "skipped"];

/// `POST /api/v1/reports/builds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildReport {
    /// Image repository, such as `ghcr.io/acme/shop-api`.
    pub image_repository: String,
    pub tag: String,
    /// `sha256:` and 64 hexadecimal digits.
    pub digest: String,
    /// The Landfall name of the source repository (`[[repository]] name`).
    pub source_repository: String,
    pub commit_sha: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_url: Option<String>,
    /// RFC 3339, such as `2024-05-01T12:00:00Z`.
    pub built_at: String,
}

/// `POST /api/v1/reports/pipelines`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineReport {
    /// `github-actions`, `gitlab-ci`, `jenkins`, or your own name.
    pub ci_system: String,
    pub name: String,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepReport {
    pub name: String,
    /// build, test, scan, pre-sync, post-sync, deploy or other.
    pub kind: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// A rejected field: which one, and what was wrong with it and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn reject(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

fn non_empty(field: &str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() { Err(reject(field, "is empty; a value is required")) } else { Ok(()) }
}

fn sha(field: &str, value: &str) -> Result<String, FieldError> {
    let valid = matches!(value.len(), 40 | 64) && value.bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(reject(field, format!("is `{value}`; a full commit id (40 or 64 hexadecimal digits) is accepted")))
    }
}

fn time(field: &str, value: &str) -> Result<i64, FieldError> {
    parse_rfc3339(value).ok_or_else(|| {
        reject(field, format!("is `{value}`; an RFC 3339 time such as 2024-05-01T12:00:00Z is accepted"))
    })
}

fn optional_time(field: &str, value: Option<&String>) -> Result<Option<i64>, FieldError> {
    value.map(|v| time(field, v)).transpose()
}

fn pull_request(field: &str, value: Option<i64>) -> Result<Option<i64>, FieldError> {
    match value {
        Some(n) if n <= 0 => Err(reject(field, format!("is {n}; a positive number is accepted"))),
        other => Ok(other),
    }
}

fn web_url(field: &str, value: Option<&String>) -> Result<Option<String>, FieldError> {
    let Some(value) = value else { return Ok(None) };
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Some(value.clone())),
        _ => Err(reject(field, "is not an http:// or https:// URL; only those are accepted (they become links)")),
    }
}

impl BuildReport {
    pub fn into_fact(self) -> Result<BuildFact, FieldError> {
        non_empty("image_repository", &self.image_repository)?;
        non_empty("tag", &self.tag)?;
        if self.image_repository.contains(char::is_whitespace) || self.tag.contains([':', '@', '/', ' ']) {
            return Err(reject(
                "tag",
                format!(
                    "`{}` cannot be an image tag; use image_repository and tag, such as ghcr.io/acme/shop and 1.4.2",
                    self.tag
                ),
            ));
        }
        let hex = self.digest.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(reject(
                "digest",
                format!("is `{}`; `sha256:` and 64 hexadecimal digits are accepted", self.digest),
            ));
        }
        non_empty("source_repository", &self.source_repository)?;
        Ok(BuildFact {
            image: ImageRef { repository: self.image_repository, tag: self.tag },
            digest: self.digest.to_ascii_lowercase(),
            repository: self.source_repository,
            commit_sha: sha("commit_sha", &self.commit_sha)?,
            branch: self.branch.filter(|b| !b.is_empty()),
            pull_request_number: pull_request("pull_request", self.pull_request)?,
            ci_system: self.ci_system.filter(|s| !s.is_empty()),
            run_id: self.pipeline_run_id.filter(|s| !s.is_empty()),
            run_url: web_url("pipeline_url", self.pipeline_url.as_ref())?,
            built_at: time("built_at", &self.built_at)?,
        })
    }
}

impl PipelineReport {
    pub fn into_fact(self) -> Result<PipelineRunFact, FieldError> {
        non_empty("ci_system", &self.ci_system)?;
        non_empty("name", &self.name)?;
        non_empty("run_id", &self.run_id)?;
        one_of("status", &self.status, &PIPELINE_STATUSES)?;
        if self.commit_sha.is_none() && self.pull_request.is_none() {
            return Err(reject(
                "commit_sha",
                "is missing; a pipeline names its trigger commit, its pull request, or both",
            ));
        }
        if self.pull_request.is_some() && self.repository.is_none() {
            return Err(reject("repository", "is missing; a pull request number needs the repository it belongs to"));
        }
        let started_at = optional_time("started_at", self.started_at.as_ref())?;
        let finished_at = optional_time("finished_at", self.finished_at.as_ref())?;
        if let (Some(start), Some(end)) = (started_at, finished_at)
            && end < start
        {
            return Err(reject("finished_at", "is before started_at"));
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        for (index, step) in self.steps.into_iter().enumerate() {
            let at = |field: &str| format!("steps[{index}].{field}");
            non_empty(&at("name"), &step.name)?;
            one_of(&at("kind"), &step.kind, &crate::ledger::STEP_KINDS)?;
            one_of(&at("status"), &step.status, &PIPELINE_STATUSES)?;
            steps.push(PipelineStepFact {
                name: step.name,
                kind: step.kind,
                status: step.status,
                started_at: optional_time(&at("started_at"), step.started_at.as_ref())?,
                finished_at: optional_time(&at("finished_at"), step.finished_at.as_ref())?,
            });
        }
        Ok(PipelineRunFact {
            ci_system: self.ci_system,
            run_id: self.run_id,
            name: self.name,
            url: web_url("url", self.url.as_ref())?,
            status: self.status,
            repository: self.repository,
            commit_sha: self.commit_sha.map(|s| sha("commit_sha", &s)).transpose()?,
            pull_request_number: pull_request("pull_request", self.pull_request)?,
            started_at,
            finished_at,
            steps,
        })
    }
}

fn one_of(field: &str, value: &str, accepted: &[&str]) -> Result<(), FieldError> {
    if accepted.contains(&value) {
        Ok(())
    } else {
        Err(reject(field, format!("is `{value}`; accepted: {}", accepted.join(", "))))
    }
}

/// What a CI job's environment says about the run it is in: GitHub Actions, GitLab CI
/// or Jenkins, by their documented variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiContext {
    pub ci_system: Option<String>,
    pub commit_sha: Option<String>,
    pub branch: Option<String>,
    pub pull_request: Option<i64>,
    pub run_id: Option<String>,
    pub run_url: Option<String>,
}

impl CiContext {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> CiContext {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        if get("GITHUB_ACTIONS").is_some() {
            let run_id = get("GITHUB_RUN_ID");
            let run_url = match (get("GITHUB_SERVER_URL"), get("GITHUB_REPOSITORY"), &run_id) {
                (Some(server), Some(repo), Some(id)) => Some(format!("{server}/{repo}/actions/runs/{id}")),
                _ => None,
            };
            // GITHUB_REF is refs/pull/N/merge for pull_request events.
            let pull_request = get("GITHUB_REF").and_then(|r| {
                r.strip_prefix("refs/pull/").and_then(|r| r.split('/').next()).and_then(|n| n.parse().ok())
            });
            CiContext {
                ci_system: Some("github-actions".into()),
                commit_sha: get("GITHUB_SHA"),
                branch: get("GITHUB_HEAD_REF").or_else(|| get("GITHUB_REF_NAME")),
                pull_request,
                run_id,
                run_url,
            }
        } else if get("GITLAB_CI").is_some() {
            CiContext {
                ci_system: Some("gitlab-ci".into()),
                commit_sha: get("CI_COMMIT_SHA"),
                branch: get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME").or_else(|| get("CI_COMMIT_REF_NAME")),
                pull_request: get("CI_MERGE_REQUEST_IID").and_then(|n| n.parse().ok()),
                run_id: get("CI_PIPELINE_ID"),
                run_url: get("CI_PIPELINE_URL"),
            }
        } else if get("JENKINS_URL").is_some() {
            CiContext {
                ci_system: Some("jenkins".into()),
                commit_sha: get("GIT_COMMIT"),
                branch: get("CHANGE_BRANCH").or_else(|| get("BRANCH_NAME")).or_else(|| get("GIT_BRANCH")),
                pull_request: get("CHANGE_ID").and_then(|n| n.parse().ok()),
                run_id: get("BUILD_TAG").or_else(|| get("BUILD_NUMBER")),
                run_url: get("BUILD_URL"),
            }
        } else {
            CiContext::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build() -> BuildReport {
        BuildReport {
            image_repository: "ghcr.io/acme/shop".into(),
            tag: "1.4.2".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            source_repository: "shop-api".into(),
            commit_sha: "b".repeat(40),
            built_at: "2024-05-01T12:00:00Z".into(),
            ..BuildReport::default()
        }
    }

    #[test]
    fn a_good_build_report_becomes_a_fact() {
        let fact = build().into_fact().unwrap();
        assert_eq!(fact.image.repository, "ghcr.io/acme/shop");
        assert_eq!(fact.built_at, 1_714_564_800_000);
    }

    #[test]
    fn each_bad_build_field_is_named() {
        type Spoil = fn(&mut BuildReport);
        let cases: [(Spoil, &str); 6] = [
            (|b| b.digest = "sha256:abc".into(), "digest"),
            (|b| b.commit_sha = "abc".into(), "commit_sha"),
            (|b| b.built_at = "yesterday".into(), "built_at"),
            (|b| b.pull_request = Some(0), "pull_request"),
            (|b| b.pipeline_url = Some("javascript:alert(1)".into()), "pipeline_url"),
            (|b| b.tag = "shop:1.2".into(), "tag"),
        ];
        for (spoil, field) in cases {
            let mut report = build();
            spoil(&mut report);
            assert_eq!(report.into_fact().unwrap_err().field, field);
        }
    }

    #[test]
    fn pipelines_need_a_trigger_and_known_kinds() {
        let mut report = PipelineReport {
            ci_system: "jenkins".into(),
            name: "build".into(),
            run_id: "7".into(),
            status: "success".into(),
            commit_sha: Some("c".repeat(40)),
            steps: vec![StepReport {
                name: "lint".into(),
                kind: "lint".into(),
                status: "success".into(),
                ..Default::default()
            }],
            ..PipelineReport::default()
        };
        let error = report.clone().into_fact().unwrap_err();
        assert_eq!(error.field, "steps[0].kind");
        assert!(error.message.contains("pre-sync"), "{error}");
        report.steps.clear();
        report.commit_sha = None;
        assert_eq!(report.clone().into_fact().unwrap_err().field, "commit_sha");
        report.pull_request = Some(3);
        assert_eq!(report.clone().into_fact().unwrap_err().field, "repository");
        report.status = "green".into();
        assert!(report.into_fact().unwrap_err().message.contains("success, failure"));
    }

    #[test]
    fn ci_contexts_come_from_each_systems_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let github = CiContext::from_env(env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SHA", "abc"),
            ("GITHUB_REF", "refs/pull/156/merge"),
            ("GITHUB_HEAD_REF", "SHOP-1-cart"),
            ("GITHUB_RUN_ID", "991"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/shop"),
        ]));
        assert_eq!(github.pull_request, Some(156));
        assert_eq!(github.branch.as_deref(), Some("SHOP-1-cart"));
        assert_eq!(github.run_url.as_deref(), Some("https://github.com/acme/shop/actions/runs/991"));
        let gitlab = CiContext::from_env(env(&[
            ("GITLAB_CI", "true"),
            ("CI_COMMIT_SHA", "def"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_PIPELINE_ID", "42"),
            ("CI_PIPELINE_URL", "https://gitlab.example/p/-/pipelines/42"),
            ("CI_MERGE_REQUEST_IID", "12"),
        ]));
        assert_eq!((gitlab.ci_system.as_deref(), gitlab.pull_request), (Some("gitlab-ci"), Some(12)));
        let jenkins = CiContext::from_env(env(&[
            ("JENKINS_URL", "https://ci/"),
            ("GIT_COMMIT", "f00"),
            ("BUILD_TAG", "jenkins-shop-7"),
        ]));
        assert_eq!(jenkins.run_id.as_deref(), Some("jenkins-shop-7"));
        assert_eq!(CiContext::from_env(|_| None), CiContext::default());
    }
}
