//! The parts of Argo CD's JSON that Landfall reads, as Argo CD's Go `encoding/json`
//! writes them (`shared/fixtures/argocd/API.md` §0): field names from the Go `json:`
//! tags, int64 as numbers, `omitempty` keys absent, RFC 3339 times. Everything is
//! optional here, because `kind`, `apiVersion` and many blocks are often missing, and
//! unknown fields are ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `v1alpha1.Application`, reduced to what the ledger records.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Application {
    pub metadata: ObjectMeta,
    pub spec: ApplicationSpec,
    pub status: ApplicationStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    /// Kubernetes' id of this object: a new one when an application is deleted and
    /// created again under the same name.
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub resource_version: String,
    pub deletion_timestamp: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSpec {
    pub project: String,
    pub source: Option<Value>,
    pub sources: Vec<Value>,
    pub destination: Destination,
    pub sync_policy: Option<SyncPolicy>,
}

impl ApplicationSpec {
    /// The sources in effect: `sources` when non-empty, else `source` (API.md §6).
    pub fn effective_sources(&self) -> Vec<Value> {
        if self.sources.is_empty() { self.source.iter().cloned().collect() } else { self.sources.clone() }
    }

    /// Automated sync is on when `automated` is present and `enabled` is not false
    /// (API.md §6, `IsAutomatedSyncEnabled`).
    pub fn automated_sync(&self) -> bool {
        self.sync_policy
            .as_ref()
            .and_then(|policy| policy.automated.as_ref())
            .is_some_and(|automated| automated.enabled != Some(false))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Destination {
    pub server: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncPolicy {
    pub automated: Option<Automated>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Automated {
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationStatus {
    pub sync: SyncStatus,
    pub health: Health,
    pub history: Vec<HistoryEntry>,
    pub operation_state: Option<OperationState>,
    pub summary: Summary,
    pub resources: Vec<ResourceStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncStatus {
    pub status: Option<String>,
    pub revision: Option<String>,
    pub revisions: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Health {
    pub status: Option<String>,
    pub message: Option<String>,
}

/// One `status.history` entry: a successful sync.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HistoryEntry {
    pub id: i64,
    pub revision: String,
    pub revisions: Vec<String>,
    pub deployed_at: Option<String>,
    pub deploy_started_at: Option<String>,
    pub initiated_by: Option<InitiatedBy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InitiatedBy {
    pub username: Option<String>,
    pub automated: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OperationState {
    pub operation: Operation,
    pub phase: String,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub sync_result: Option<SyncResult>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Operation {
    pub sync: Option<SyncOperation>,
    pub initiated_by: Option<InitiatedBy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncOperation {
    pub revision: Option<String>,
    pub revisions: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncResult {
    pub revision: Option<String>,
    pub revisions: Vec<String>,
    pub resources: Vec<ResourceResult>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceResult {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Summary {
    pub images: Vec<String>,
}

/// A `status.resources` entry: an object the application manages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceStatus {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: Option<Health>,
}

/// `GET /api/v1/applications`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationList {
    pub metadata: ListMeta,
    /// Kept as JSON so an application Landfall cannot read does not hide the others.
    pub items: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListMeta {
    pub resource_version: Option<String>,
}

/// One event of the application stream: `{"result":{"type":…,"application":…}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamChunk {
    pub result: Option<WatchEvent>,
    /// The streaming error shape (API.md §0.1).
    pub error: Option<StreamError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub application: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StreamError {
    pub grpc_code: i64,
    pub http_code: u16,
    pub message: String,
    pub http_status: String,
}

/// The unary error shape: `{"error","code","message"}` (API.md §0.1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UnaryError {
    pub error: String,
    pub code: i64,
    pub message: String,
}

/// `GET …/resource-tree`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationTree {
    pub nodes: Vec<ResourceNode>,
}

/// A node of the tree, with `group,version,kind,namespace,name,uid` flattened (API.md §0).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceNode {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub images: Vec<String>,
    pub health: Option<Health>,
    pub parent_refs: Vec<ResourceRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_velero_application_reads() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/argocd/application-velero-test.json"
        ))
        .unwrap();
        let app: Application = serde_json::from_str(&text).unwrap();
        assert_eq!(app.metadata.name, "velero-test");
        assert_eq!(app.metadata.namespace, "argo-cd");
        let ids: Vec<i64> = app.status.history.iter().map(|h| h.id).collect();
        assert_eq!(ids, (14..=23).collect::<Vec<_>>());
        assert_eq!(app.status.summary.images, ["nginx:latest"]);
        assert_eq!(app.status.operation_state.as_ref().map(|o| o.phase.as_str()), Some("Succeeded"));
        assert!(!app.spec.automated_sync());
        assert_eq!(app.spec.effective_sources().len(), 1);
        assert_eq!(app.spec.destination.name.as_deref(), Some("gke-alpha-01-europe-west1"));
    }

    #[test]
    fn automated_sync_follows_enabled() {
        let spec = |policy: Value| -> ApplicationSpec { serde_json::from_value(policy).unwrap() };
        assert!(spec(serde_json::json!({"syncPolicy": {"automated": {}}})).automated_sync());
        assert!(!spec(serde_json::json!({"syncPolicy": {"automated": {"enabled": false}}})).automated_sync());
        assert!(!spec(serde_json::json!({"syncPolicy": {}})).automated_sync());
    }
}
