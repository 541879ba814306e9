//! One pass over every configured source, used by `landfall ingest` once and by
//! `landfall serve` on an interval in the background.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::config::Settings;
use crate::correlate::FeatureProjects;
use crate::forge::Forges;
use crate::git::{self, GitError, SyncReport};
use crate::ledger::Ledger;

/// Syncs every repository in turn; a failing one is reported and the rest still sync.
pub async fn sync_all(ledger: &Ledger, settings: &Settings) -> Vec<(String, Result<SyncReport, GitError>)> {
    let mut outcomes = Vec::with_capacity(settings.repositories.len());
    for repository in &settings.repositories {
        if let Some(outcome) = sync_one(ledger, settings, &repository.name).await {
            outcomes.push((repository.name.clone(), outcome));
        }
    }
    outcomes
}

/// Syncs one configured repository now (a webhook said it changed); `None` when no
/// repository has that name. Syncs of one repository never overlap: a second waits for
/// the first, as two fetches into one clone would trip over each other's locks.
pub async fn sync_one(ledger: &Ledger, settings: &Settings, name: &str) -> Option<Result<SyncReport, GitError>> {
    let repository = settings.repositories.iter().find(|r| r.name == name)?;
    let lock = {
        static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
        let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(name.to_string()).or_default().clone()
    };
    let _guard = lock.lock().await;
    let projects = FeatureProjects::new(settings.features.projects.iter().cloned());
    Some(git::sync(ledger, repository, &settings.data_dir, &projects).await)
}

/// Runs [`sync_all`] now and then every `sync_interval_seconds`, logging each outcome;
/// requests are served meanwhile, as this runs on its own task.
/// After each pass, the pull requests found in commit messages get their titles and
/// authors from the forges that have a token.
pub fn spawn_background(ledger: Ledger, settings: Settings, forges: Forges) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // A ledger written before where applications read manifests was kept, or before
        // change sets were stored (or whose stored ones went stale), catches up once, off
        // the request path.
        match ledger.index_source_paths().await {
            Ok(0) => {}
            Ok(indexed) => {
                tracing::info!(applications = indexed, "stored where the ledger's applications read manifests")
            }
            Err(error) => tracing::warn!(%error, "cannot store where applications read manifests"),
        }
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
            for described in crate::forge::worker::fill_all(&ledger, &forges, &settings).await {
                let repository = &described.repository;
                match described.outcome {
                    None | Some(Ok(0)) => {}
                    Some(Ok(count)) => {
                        tracing::info!(%repository, described = count, "pull requests described by the forge")
                    }
                    Some(Err(error)) => tracing::warn!(%repository, %error, "cannot describe pull requests"),
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
