//! What the browser and the server exchange: view models, the app's error type, the
//! server functions, and (server side only) the [`Backend`] they call.

use serde::{Deserialize, Serialize};

use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};

/// An error a page can show. Carries a message meant for people, never internals: the
/// server logs the detail and sends this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("the ledger is unavailable right now; try again in a moment")]
    LedgerUnavailable,
    #[error("{0}")]
    BadRequest(String),
    #[error("could not reach the Landfall server: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::MissingArg(message) => AppError::BadRequest(message),
            other => AppError::Transport(other.to_string()),
        }
    }
}

/// Everything the Overview page shows, read in one round trip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub counts: LedgerCounts,
    pub environments: Vec<EnvironmentSummary>,
    pub recent_deployments: Vec<DeploymentSummary>,
}

impl Overview {
    /// Nothing has reached the ledger yet: the page shows how to connect the sources.
    pub fn is_empty(&self) -> bool {
        self.counts == LedgerCounts::default()
    }
}

/// How many of each kind of fact the ledger holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCounts {
    pub environments: i64,
    pub applications: i64,
    pub deployments: i64,
    pub commits: i64,
    pub pull_requests: i64,
    pub features: i64,
    pub pipeline_runs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentSummary {
    pub name: String,
    pub rank: i64,
    pub applications: i64,
    /// Milliseconds since the Unix epoch of the newest finished deployment.
    pub last_deployed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationSummary {
    pub instance: String,
    pub namespace: String,
    pub name: String,
    pub project: String,
    pub environment: Option<String>,
    pub sync_status: Option<String>,
    pub health_status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentSummary {
    pub application: String,
    pub environment: Option<String>,
    pub history_id: i64,
    pub revision: String,
    pub phase: String,
    pub initiated_by: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSummary {
    pub key: String,
    pub summary: Option<String>,
    pub status: Option<String>,
    pub commits: i64,
}

/// What the search page found for a query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    pub features: Vec<FeatureSummary>,
    pub applications: Vec<ApplicationSummary>,
    /// The query read as a question (`GET /api/v1/ask`), when it reads like one.
    pub answer: Option<QuestionAnswer>,
}

/// A search query answered as a question.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionAnswer {
    /// Whether the question was understood; `summary` answers it.
    pub understood: bool,
    /// The answer in a sentence, or what is missing.
    pub summary: String,
    /// When not understood: what was recognised, and questions that can be asked.
    pub recognised: Vec<String>,
    pub examples: Vec<String>,
}

/// One application and its deployment history, for its page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationHistory {
    pub instance: String,
    pub namespace: String,
    pub name: String,
    pub project: String,
    pub environment: Option<String>,
    pub sync_status: Option<String>,
    pub health_status: Option<String>,
    pub automated_sync: bool,
    /// RFC 3339, when it was deleted from Argo CD.
    pub deleted_at: Option<String>,
    /// All the ledger holds, counting what is not listed.
    pub deployments_total: i64,
    /// Newest first.
    pub deployments: Vec<HistoryEntry>,
    /// `actions_enabled` is on: the page offers sync, refresh and rollback.
    pub actions_enabled: bool,
}

/// One deployment on an application's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub history_id: i64,
    pub revision: String,
    /// RFC 3339.
    pub deployed_at: String,
    pub phase: String,
    pub initiated_by: Option<String>,
    pub is_rollback: bool,
    pub images: Vec<String>,
    pub features_entered: Vec<String>,
    pub features_left: Vec<String>,
    /// Argo CD can roll the application back to this entry: a succeeded one of its
    /// current life in Argo CD, other than the newest.
    pub can_roll_back: bool,
}

/// How one configured source (an Argo CD instance, a cluster, Jira) is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// `Argo CD`, `Cluster` or `Jira`.
    pub kind: String,
    pub name: String,
    /// Working as it should.
    pub ok: bool,
    /// A short state: `Connected`, `Connecting`, `Failing`, …
    pub state: String,
    /// The last error, as the source reported it.
    pub error: Option<String>,
}

/// The longest search query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// The server's side of the server functions; the server crate implements it over the
/// ledger and puts an `Arc<dyn Backend>` in context.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn overview(&self) -> Result<Overview, AppError>;
    async fn environments(&self) -> Result<Vec<EnvironmentSummary>, AppError>;
    async fn applications(&self) -> Result<Vec<ApplicationSummary>, AppError>;
    async fn deployments(&self, limit: i64) -> Result<Vec<DeploymentSummary>, AppError>;
    async fn features(&self) -> Result<Vec<FeatureSummary>, AppError>;
    async fn search(&self, query: &str) -> Result<SearchResults, AppError>;
    async fn application(&self, instance: &str, name: &str) -> Result<Option<ApplicationHistory>, AppError>;
    /// The configured sources and how they are doing; empty when none is configured.
    async fn connections(&self) -> Vec<SourceStatus>;
}

#[cfg(feature = "ssr")]
fn backend() -> Result<std::sync::Arc<dyn Backend>, AppError> {
    use_context::<std::sync::Arc<dyn Backend>>().ok_or(AppError::LedgerUnavailable)
}

#[server(prefix = "/api/fn", endpoint = "overview")]
pub async fn get_overview() -> Result<Overview, AppError> {
    backend()?.overview().await
}

#[server(prefix = "/api/fn", endpoint = "environments")]
pub async fn list_environments() -> Result<Vec<EnvironmentSummary>, AppError> {
    backend()?.environments().await
}

#[server(prefix = "/api/fn", endpoint = "applications")]
pub async fn list_applications() -> Result<Vec<ApplicationSummary>, AppError> {
    backend()?.applications().await
}

#[server(prefix = "/api/fn", endpoint = "timeline")]
pub async fn list_deployments() -> Result<Vec<DeploymentSummary>, AppError> {
    backend()?.deployments(200).await
}

#[server(prefix = "/api/fn", endpoint = "features")]
pub async fn list_features() -> Result<Vec<FeatureSummary>, AppError> {
    backend()?.features().await
}

#[server(prefix = "/api/fn", endpoint = "search")]
pub async fn search(query: String) -> Result<SearchResults, AppError> {
    let query = validate_query(&query)?;
    backend()?.search(&query).await
}

#[server(prefix = "/api/fn", endpoint = "application")]
pub async fn get_application(instance: String, name: String) -> Result<Option<ApplicationHistory>, AppError> {
    backend()?.application(&instance, &name).await
}

#[server(prefix = "/api/fn", endpoint = "connections")]
pub async fn list_connections() -> Result<Vec<SourceStatus>, AppError> {
    Ok(backend()?.connections().await)
}

/// Trims a search query and checks it against what the search accepts.
pub fn validate_query(query: &str) -> Result<String, AppError> {
    let query = query.trim();
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::BadRequest(format!(
            "the search query is {} characters long; at most {MAX_QUERY_CHARS} are accepted",
            query.chars().count()
        )));
    }
    Ok(query.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_trimmed_and_bounded() {
        assert_eq!(validate_query("  SHOP-12 ").unwrap(), "SHOP-12");
        let long = "x".repeat(MAX_QUERY_CHARS + 1);
        let err = validate_query(&long).unwrap_err();
        assert!(err.to_string().contains("at most 200"), "{err}");
    }

    #[test]
    fn an_empty_ledger_is_recognised() {
        let mut overview = Overview::default();
        assert!(overview.is_empty());
        overview.counts.commits = 1;
        assert!(!overview.is_empty());
    }
}
