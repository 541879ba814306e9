//! One pass over every configured source, used by `landfall ingest` once and by
//! `landfall serve` on an interval in the background.

use std::time::Duration;

use crate::config::Settings;
use crate::correlate::FeatureProjects;
use crate::git::{self, GitError, SyncReport};
use crate::ledger::Ledger;

/// Syncs every repository in turn; a failing one is reported and the rest still sync.
pub async fn sync_all(ledger: &Ledger, settings: &Settings) -> Vec<(String, Result<SyncReport, GitError>)> {
    let projects = FeatureProjects::new(settings.features.projects.iter().cloned());
    let mut outcomes = Vec::with_capacity(settings.repositories.len());
    for repository in &settings.repositories {
        let outcome = git::sync(ledger, repository, &settings.data_dir, &projects).await;
        outcomes.push((repository.name.clone(), outcome));
    }
    outcomes
}

/// Runs [`sync_all`] now and then every `sync_interval_seconds`, logging each outcome;
/// requests are served meanwhile, as this runs on its own task.
pub fn spawn_background(ledger: Ledger, settings: Settings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // A ledger written before change sets were stored (or whose stored ones went
        // stale) catches up once, off the request path.
        match ledger.fill_change_sets().await {
            Ok(0) => {}
            Ok(filled) => tracing::info!(deployments = filled, "stored the change sets the ledger lacked"),
            Err(error) => tracing::warn!(%error, "cannot fill in stored change sets"),
        }
        if settings.repositories.is_empty() {
            return;
        }
        let mut interval = tokio::time::interval(Duration::from_secs(settings.sync_interval_seconds));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            for (name, outcome) in sync_all(&ledger, &settings).await {
                match outcome {
                    Ok(report) => tracing::info!(
                        repository = %name,
                        new_commits = report.new_commits,
                        features = report.features,
                        pull_requests = report.pull_requests,
                        unreachable = report.unreachable,
                        elapsed_ms = report.duration.as_millis() as u64,
                        "repository synced"
                    ),
                    Err(error) => tracing::warn!(repository = %name, %error, "repository sync failed"),
                }
            }
        }
    })
}

/// The line `landfall ingest` prints for one source.
pub fn describe(name: &str, outcome: &Result<SyncReport, GitError>) -> String {
    match outcome {
        Ok(report) => {
            let mut line = format!(
                "{name}: {} new commits, {} features, {} pull requests in {:.2} s",
                report.new_commits,
                report.features,
                report.pull_requests,
                report.duration.as_secs_f64()
            );
            if report.unreachable > 0 {
                line.push_str(&format!(" ({} commits no longer reachable)", report.unreachable));
            }
            line
        }
        Err(error) => format!("{name}: failed: {error}"),
    }
}
