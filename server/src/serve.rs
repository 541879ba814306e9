//! `landfall serve`: the web server and, from later issues on, its background syncs.

use std::sync::Arc;

use anyhow::Context;
use leptos::config::LeptosOptions;
use tokio::net::TcpListener;

use crate::config::{self, Settings};
use crate::http::{self, AppState};
use crate::ledger::Ledger;
use crate::telemetry::HttpMetrics;

/// The first line `serve` prints on stdout, followed by the URL it serves; scripts and
/// the integration tests read the port from it when listening on port 0.
pub const LISTENING_BANNER: &str = "Landfall is listening on";

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    config::prepare_data_dir(&settings.data_dir)?;
    let url = settings.database();
    let ledger = Ledger::open(&url).await?.excluding_not_found(settings.features.exclude_not_found);
    tracing::info!(database = %url, backend = ledger.backend(), "ledger ready");
    if ledger.has_sqlite_statistics().await? {
        tracing::warn!(
            "the SQLite ledger holds planner statistics (ANALYZE was run on it), which make every answer slower; \
             stop landfall and drop them: DROP TABLE IF EXISTS sqlite_stat1; DROP TABLE IF EXISTS sqlite_stat4;"
        );
    }

    let listener = TcpListener::bind(settings.listen.0)
        .await
        .with_context(|| format!("cannot listen on {} (setting `listen`)", settings.listen.0))?;
    let address = listener.local_addr()?;
    let leptos = LeptosOptions::builder()
        .output_name("landfall")
        .site_root(settings.site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .site_addr(address)
        .build();
    if !settings.site_root.join("pkg").is_dir() {
        tracing::warn!(
            site_root = %settings.site_root.display(),
            "the front end is not built: pages render but will not become interactive; build it with `cargo leptos build --release`"
        );
    }
    let forges = crate::forge::Forges::from_env(&settings);
    for forge in forges.all() {
        for (key, variable, present) in [
            ("token_env", &forge.config.token_env, forge.has_token),
            ("webhook_secret_env", &forge.config.webhook_secret_env, forge.secret().is_some()),
        ] {
            if let Some(variable) = variable.as_ref().filter(|_| !present) {
                tracing::warn!(forge = %forge.name(), setting = key, %variable, "the variable is unset or empty");
            }
        }
    }
    let background = crate::sync::spawn_background(ledger.clone(), settings.clone(), forges.clone());
    let (forge_queue, forge_worker) =
        crate::forge::worker::spawn(ledger.clone(), Arc::new(settings.clone()), forges.clone());
    let argocd = crate::argocd::watch::WatchStatus::default();
    let live = Arc::new(crate::live::Hub::default());
    let (instances, watches) = crate::argocd::start(&ledger, &settings, &argocd, &live).await?;
    let clusters = crate::cluster::ClusterStatuses::default();
    let readers = crate::cluster::start(&ledger, &settings.clusters, &clusters);
    let (jira, jira_refresher) = match &settings.jira {
        Some(config) => {
            let (webhook, task) = crate::jira::start(&ledger, config);
            (Some(webhook), task)
        }
        None => (None, None),
    };
    let report_token: Option<Arc<str>> =
        std::env::var(&settings.reports.token_env).ok().filter(|token| !token.is_empty()).map(Arc::from);
    if report_token.is_none() {
        tracing::info!(variable = %settings.reports.token_env, "the CI report API is disabled: its token variable is unset");
    }
    let state = AppState {
        ledger: ledger.clone(),
        metrics: Arc::new(HttpMetrics::default()),
        leptos,
        report_token,
        projects: settings.features.projects.clone().into(),
        argocd,
        instances,
        clusters,
        live,
        jira,
        actions_enabled: settings.actions_enabled,
        forges,
        forge_queue: Some(forge_queue),
    };
    let app = http::router(state);

    println!("{LISTENING_BANNER} http://{address}");
    tracing::info!(%address, "serving");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("the web server failed")?;
    tracing::info!("shutting down");
    background.abort();
    forge_worker.abort();
    watches.iter().chain(&readers).chain(&jira_refresher).for_each(|task| task.abort());
    ledger.close().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM; axum then finishes the requests in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
