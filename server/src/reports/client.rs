//! `landfall report`: the same reports, posted from inside a CI job.

use anyhow::Context;

use super::{BuildReport, CiContext, PipelineReport, StepReport};
use crate::cli::{ReportCommand, RunArgs};
use crate::config::Settings;
use crate::ledger::ImageRef;

/// Builds the report from the flags and the CI environment, posts it, and prints the
/// server's answer.
pub async fn send(settings: &Settings, command: ReportCommand) -> anyhow::Result<()> {
    let ci = CiContext::from_env(|name| std::env::var(name).ok());
    let (path, body, what) = match command {
        ReportCommand::Build(args) => {
            let image = ImageRef::parse(&args.image).map_err(|e| anyhow::anyhow!("--image: {e}"))?;
            let run = Run::from(args.run, &ci);
            let report = BuildReport {
                image_repository: image.repository,
                tag: image.tag,
                digest: args.digest.clone(),
                source_repository: args.repository,
                commit_sha: run.commit.context("--commit is required outside GitHub Actions, GitLab CI and Jenkins")?,
                branch: run.branch,
                pull_request: run.pull_request,
                ci_system: run.ci_system,
                pipeline_run_id: run.run_id,
                pipeline_url: run.run_url,
                built_at: args.built_at.unwrap_or_else(now),
            };
            ("builds", serde_json::to_value(report)?, format!("build {}", args.digest))
        }
        ReportCommand::Pipeline(args) => {
            let run = Run::from(args.run, &ci);
            let steps = args.steps.iter().map(|s| parse_step(s)).collect::<anyhow::Result<Vec<_>>>()?;
            let run_id = run.run_id.context("--run-id is required outside GitHub Actions, GitLab CI and Jenkins")?;
            let report = PipelineReport {
                ci_system: run
                    .ci_system
                    .context("--ci-system is required outside GitHub Actions, GitLab CI and Jenkins")?,
                name: args.name.clone(),
                run_id: run_id.clone(),
                url: run.run_url,
                status: args.status,
                repository: args.repository,
                commit_sha: run.commit,
                pull_request: run.pull_request,
                started_at: args.started_at,
                finished_at: args.finished_at,
                steps,
            };
            ("pipelines", serde_json::to_value(report)?, format!("pipeline {} run {run_id}", args.name))
        }
    };
    let token = std::env::var(&settings.reports.token_env)
        .with_context(|| format!("the report token variable {} is not set", settings.reports.token_env))?;
    let url = format!("{}/api/v1/reports/{path}", settings.server_url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        println!("Recorded {what}.");
        Ok(())
    } else {
        let message = answer.get("error").and_then(|m| m.as_str()).unwrap_or("no message");
        anyhow::bail!("the server refused the report ({status}): {message}")
    }
}

/// Run details: flags first, then the CI environment.
struct Run {
    commit: Option<String>,
    branch: Option<String>,
    pull_request: Option<i64>,
    ci_system: Option<String>,
    run_id: Option<String>,
    run_url: Option<String>,
}

impl Run {
    fn from(args: RunArgs, ci: &CiContext) -> Run {
        Run {
            commit: args.commit.or_else(|| ci.commit_sha.clone()),
            branch: args.branch.or_else(|| ci.branch.clone()),
            pull_request: args.pull_request.or(ci.pull_request),
            ci_system: args.ci_system.or_else(|| ci.ci_system.clone()),
            run_id: args.run_id.or_else(|| ci.run_id.clone()),
            run_url: args.run_url.or_else(|| ci.run_url.clone()),
        }
    }
}

fn parse_step(text: &str) -> anyhow::Result<StepReport> {
    let mut parts = text.rsplitn(3, ':');
    let (Some(status), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        anyhow::bail!("--step `{text}` is not NAME:KIND:STATUS, such as compile:build:success");
    };
    Ok(StepReport { name: name.into(), kind: kind.into(), status: status.into(), ..StepReport::default() })
}

fn now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    crate::timefmt::format_rfc3339(ms)
}
