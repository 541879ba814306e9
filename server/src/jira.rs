//! The Jira connector: feature details (summary, type, status and its category,
//! priority, people, labels, components, fix versions, parent) for every feature key in
//! the ledger, refreshed on a schedule inside `landfall serve` and when a webhook names
//! an issue; keys Jira does not know are flagged, deleted issues marked.
//!
//! Wire formats follow `shared/fixtures/jira` (Atlassian's OpenAPI extract and recorded
//! payloads): see [`wire`] for the shapes, [`client`] for the two REST flavours and
//! [`webhook`] for verification.

pub mod client;
pub mod webhook;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::JiraConfig;
use crate::ledger::{Ledger, LedgerError};
use client::JiraClient;
use webhook::WebhookSecret;

#[derive(Debug, thiserror::Error)]
pub enum JiraError {
    #[error("Jira is not configured correctly: {0}")]
    Config(String),
    #[error("the token in `jira.token_env` is missing or empty: set the variable {0}")]
    MissingToken(String),
    #[error("Jira refused the credentials ({status}); check `jira.email` and the token in `jira.token_env`")]
    Unauthorized { status: u16 },
    #[error("Jira refused the search ({status}): {}", messages.join("; "))]
    Refused { status: u16, messages: Vec<String> },
    #[error("Jira is unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    #[error("Jira's answer from {endpoint} could not be read: {reason}")]
    Malformed { endpoint: String, reason: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What the webhook endpoint needs: the secret, the site (for browse URLs) and a way to
/// ask the refresher for issues a delivery named without their fields; and how the
/// refresher fares, for `/readyz`.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub secret: Option<WebhookSecret>,
    pub base: url::Url,
    pub refresh: Option<mpsc::UnboundedSender<String>>,
    pub status: Arc<JiraStatus>,
    /// `[jira] epic_link_field`, read from deliveries too.
    pub epic_link_field: Option<String>,
}

/// The refresher's last outcome, as `/readyz` shows it under `checks.jira`. Jira being
/// down does not make Landfall unready: it still serves the details it has.
#[derive(Debug, Default)]
pub struct JiraStatus(std::sync::Mutex<JiraSnapshot>);

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JiraSnapshot {
    /// `ok`, `degraded` (some batches failed), `failing` (every batch failed),
    /// `starting` (no refresh yet) or `disabled` (no token).
    pub state: &'static str,
    /// Why the last refresh was not complete, or why Jira is disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the last refresh finished, in milliseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<i64>,
    pub found: usize,
    pub not_found: usize,
    pub failed_batches: usize,
}

impl JiraStatus {
    fn new(state: &'static str, error: Option<String>) -> Self {
        JiraStatus(std::sync::Mutex::new(JiraSnapshot { state, error, ..JiraSnapshot::default() }))
    }

    pub fn snapshot(&self) -> JiraSnapshot {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn record(&self, report: &RefreshReport) {
        let state = match (report.failed_batches, report.found + report.not_found) {
            (0, _) => "ok",
            (_, 0) => "failing",
            _ => "degraded",
        };
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = JiraSnapshot {
            state,
            error: report.last_error.clone(),
            refreshed_at: Some(now_ms()),
            found: report.found,
            not_found: report.not_found,
            failed_batches: report.failed_batches,
        };
    }
}

/// How many keys one refresh found, flagged, or failed on, and the last failure.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    pub found: usize,
    pub not_found: usize,
    pub failed_batches: usize,
    pub last_error: Option<String>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Builds the client from `[jira]` and the token variable it names.
pub fn client(config: &JiraConfig, token: Option<String>) -> Result<JiraClient, JiraError> {
    let token = token.filter(|t| !t.is_empty()).ok_or_else(|| JiraError::MissingToken(config.token_env.clone()))?;
    let base = url::Url::parse(&config.url).map_err(|error| JiraError::Config(format!("`jira.url`: {error}")))?;
    Ok(JiraClient::new(base, config.flavor, config.email.as_deref(), token)?
        .with_epic_link_field(config.epic_link_field.clone()))
}

/// Asks Jira about `keys` a batch at a time and stores what it says; a batch that fails
/// is logged and the others still go through.
pub async fn refresh(ledger: &Ledger, client: &JiraClient, keys: &[String]) -> RefreshReport {
    let mut report = RefreshReport::default();
    for batch in keys.chunks(client::BATCH) {
        let fetched_at = now_ms();
        let outcome = match client.fetch_batch(batch).await {
            Ok(found) => {
                async {
                    ledger.record_jira_issues(&found.issues, fetched_at).await?;
                    ledger.mark_jira_not_found(&found.not_found, fetched_at).await?;
                    Ok::<_, JiraError>((found.issues.len(), found.not_found.len()))
                }
                .await
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok((found, not_found)) => {
                report.found += found;
                report.not_found += not_found;
            }
            Err(error) => {
                report.failed_batches += 1;
                tracing::warn!(%error, keys = batch.len(), "cannot refresh features from Jira");
                report.last_error = Some(error.to_string());
            }
        }
    }
    report
}

/// Starts the background refresher: every feature now and every
/// `refresh_interval_seconds`, and the keys webhooks ask for as they come. Returns what
/// the webhook endpoint needs and the task.
pub fn start(ledger: &Ledger, config: &JiraConfig) -> (Arc<WebhookSettings>, Option<tokio::task::JoinHandle<()>>) {
    let secret =
        config.webhook_secret_env.as_deref().and_then(|name| std::env::var(name).ok()).and_then(WebhookSecret::new);
    if secret.is_none() {
        tracing::info!(
            variable = config.webhook_secret_env.as_deref().unwrap_or("(none: `jira.webhook_secret_env` is unset)"),
            "the Jira webhook is disabled: its secret variable is unset"
        );
    }
    let base = url::Url::parse(&config.url).expect("checked by the configuration");
    let client = match client(config, std::env::var(&config.token_env).ok()) {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "Jira details will not be fetched");
            let status = Arc::new(JiraStatus::new("disabled", Some(error.to_string())));
            let epic_link_field = config.epic_link_field.clone();
            return (Arc::new(WebhookSettings { secret, base, refresh: None, status, epic_link_field }), None);
        }
    };
    let (sender, receiver) = mpsc::unbounded_channel();
    let interval = Duration::from_secs(config.refresh_interval_seconds);
    let status = Arc::new(JiraStatus::new("starting", None));
    let task = tokio::spawn(run(ledger.clone(), client, interval, receiver, status.clone()));
    let epic_link_field = config.epic_link_field.clone();
    (Arc::new(WebhookSettings { secret, base, refresh: Some(sender), status, epic_link_field }), Some(task))
}

async fn run(
    ledger: Ledger,
    client: JiraClient,
    every: Duration,
    mut asked: mpsc::UnboundedReceiver<String>,
    status: Arc<JiraStatus>,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let keys = match ledger.jira_feature_keys().await {
                    Ok(keys) => keys,
                    Err(error) => {
                        tracing::warn!(%error, "cannot list the features to refresh from Jira");
                        continue;
                    }
                };
                let started = std::time::Instant::now();
                let report = refresh(&ledger, &client, &keys).await;
                status.record(&report);
                tracing::info!(
                    keys = keys.len(),
                    found = report.found,
                    not_found = report.not_found,
                    failed_batches = report.failed_batches,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "features refreshed from Jira"
                );
            }
            Some(first) = asked.recv() => {
                // Webhooks come in bursts (a bulk edit): gather what arrives meanwhile.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let mut keys = vec![first];
                while let Ok(key) = asked.try_recv() {
                    keys.push(key);
                }
                keys.sort();
                keys.dedup();
                let report = refresh(&ledger, &client, &keys).await;
                tracing::debug!(keys = keys.len(), found = report.found, "features a webhook named refreshed");
            }
        }
    }
}
