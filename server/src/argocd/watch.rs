//! Keeps the ledger current with one Argo CD instance: list every application, then
//! watch the application stream from the list's resourceVersion. On any break — the
//! network, a server restart, a stream error, no keepalive for `silence_seconds` — it
//! waits with jittered exponential backoff, lists again and reconciles, so changes and
//! deletions during the gap are not lost (API.md §3.2 recommends exactly this).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::client::{ArgoError, Client};
use super::wire::{Application, ApplicationTree, WatchEvent};
use super::{application_fact, failed_operation, history_deployment, images_of, namespace_of};
use crate::config::EnvironmentConfig;
use crate::ledger::{DeploymentFact, ImageRef, Ledger, LedgerError, ResourceFact};
use crate::live::{Hub, LiveEvent};

/// The first wait after a failure; it doubles up to [`Timing::max_backoff`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The least wait after Argo CD refused the credentials (capped by `max_backoff`):
/// retrying sooner cannot help.
const DENIED_BACKOFF: Duration = Duration::from_secs(10);
/// A connection that lasted this long was healthy: the next failure starts the backoff afresh.
const HEALTHY: Duration = Duration::from_secs(60);

/// Kubernetes kinds recorded as the objects an application runs.
const RESOURCE_KINDS: [&str; 9] =
    ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Service", "Ingress", "Rollout", "ReplicaSet"];

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Argo(#[from] ArgoError),
    #[error("the ledger refused an update: {0}")]
    Ledger(#[from] LedgerError),
    #[error("the application stream ended")]
    Ended,
}

/// How one instance's watch stands, for `/readyz` and the dashboard.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct InstanceStatus {
    pub name: String,
    /// Listing and watching now.
    pub connected: bool,
    /// The last failure, until the next successful list.
    pub error: Option<String>,
    /// Applications in the last list.
    pub applications: usize,
    /// Times the watch started again after a break.
    pub reconnects: u64,
    /// Events applied since start.
    pub events: u64,
}

/// Every instance's status, shared between the watches and the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct WatchStatus(Arc<Mutex<BTreeMap<String, InstanceStatus>>>);

impl WatchStatus {
    pub fn snapshot(&self) -> Vec<InstanceStatus> {
        self.0.lock().map(|map| map.values().cloned().collect()).unwrap_or_default()
    }

    fn update(&self, instance: &str, change: impl FnOnce(&mut InstanceStatus)) {
        if let Ok(mut map) = self.0.lock() {
            let status = map
                .entry(instance.to_string())
                .or_insert_with(|| InstanceStatus { name: instance.to_string(), ..InstanceStatus::default() });
            change(status);
        }
    }
}

/// How patient one instance's watch is.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// No event and no keepalive for this long counts as a break.
    pub silence: Duration,
    /// The ceiling of the reconnection backoff.
    pub max_backoff: Duration,
}

/// Exponential backoff with jitter: each wait is between half and all of the current step.
struct Backoff {
    step: Duration,
    max: Duration,
    seed: u64,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        Backoff { step: FIRST_BACKOFF.min(max), max, seed: seed | 1 }
    }

    fn next(&mut self) -> Duration {
        // xorshift64: enough to keep many Landfall replicas from reconnecting in step.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let fraction = 0.5 + (self.seed % 1000) as f64 / 2000.0;
        let wait = self.step.mul_f64(fraction);
        self.step = (self.step * 2).min(self.max);
        wait
    }

    fn reset(&mut self) {
        self.step = FIRST_BACKOFF.min(self.max);
    }
}

/// The watch of one Argo CD instance.
pub struct Watcher {
    instance: String,
    client: Arc<Client>,
    ledger: Ledger,
    environments: Arc<[EnvironmentConfig]>,
    timing: Timing,
    status: WatchStatus,
    /// The resourceVersion last recorded per application, so a relist's unchanged
    /// applications cost nothing.
    seen: HashMap<(String, String), String>,
    live: Arc<Hub>,
    /// What browsers were last told per application: sync, health, operation phase.
    told: HashMap<(String, String), Told>,
}

type Told = (Option<String>, Option<String>, Option<String>);

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Watcher {
    pub fn new(
        instance: &str,
        client: Arc<Client>,
        ledger: Ledger,
        environments: Arc<[EnvironmentConfig]>,
        timing: Timing,
        status: WatchStatus,
        live: Arc<Hub>,
    ) -> Watcher {
        status.update(instance, |_| {});
        Watcher {
            instance: instance.to_string(),
            client,
            ledger,
            environments,
            timing,
            status,
            seen: HashMap::new(),
            live,
            told: HashMap::new(),
        }
    }

    async fn record_deployment(&self, fact: &DeploymentFact) -> Result<(), WatchError> {
        self.ledger.record_deployment(fact).await?;
        self.live.publish(LiveEvent::Deployment {
            instance: self.instance.clone(),
            namespace: fact.namespace.clone(),
            name: fact.application.clone(),
            history_id: fact.history_id,
            revision: fact.revision.clone(),
            phase: fact.phase.clone(),
        });
        Ok(())
    }

    /// Tells browsers about a change of sync status, health or operation phase.
    fn tell(&mut self, key: &(String, String), now: Told, deleted: bool) {
        if !deleted && self.told.get(key) == Some(&now) {
            return;
        }
        let (sync_status, health_status, operation_phase) = now.clone();
        if deleted {
            self.told.remove(key);
        } else {
            self.told.insert(key.clone(), now);
        }
        self.live.publish(LiveEvent::Application {
            instance: self.instance.clone(),
            namespace: key.0.clone(),
            name: key.1.clone(),
            sync_status,
            health_status,
            operation_phase,
            deleted,
        });
    }

    /// Lists and watches for ever, reconnecting after every break.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(self.timing.max_backoff);
        loop {
            let started = Instant::now();
            let outcome = self.session().await;
            if started.elapsed() >= HEALTHY {
                backoff.reset();
            }
            let mut wait = backoff.next();
            let error = match outcome {
                Ok(()) | Err(WatchError::Ended) => "the application stream ended".to_string(),
                Err(error) => {
                    if matches!(&error, WatchError::Argo(e) if e.is_denied()) {
                        wait = wait.max(DENIED_BACKOFF.min(self.timing.max_backoff));
                    }
                    error.to_string()
                }
            };
            tracing::warn!(instance = %self.instance, %error, retry_in_ms = wait.as_millis() as u64, "Argo CD watch interrupted");
            self.status.update(&self.instance, |s| {
                s.connected = false;
                s.error = Some(error);
                s.reconnects += 1;
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// One watch and one list, until the stream breaks. The stream is opened first, from
    /// resourceVersion 0 (no initial burst, nothing filtered; API.md §3.2), and read into a
    /// queue while the list is reconciled, so a change made between the list and the
    /// subscription cannot be missed and a slow reconcile cannot make Argo CD drop events.
    pub async fn session(&mut self) -> Result<(), WatchError> {
        let mut stream = self.client.watch(Some("0")).await?;
        let (queue, mut events) = tokio::sync::mpsc::unbounded_channel();
        let silence = self.timing.silence;
        let reader = AbortOnDrop(tokio::spawn(async move {
            loop {
                let next = stream.next(silence).await;
                let last = !matches!(next, Ok(Some(_)));
                if queue.send(next).is_err() || last {
                    break;
                }
            }
        }));
        let list = self.client.list_applications().await?;
        self.reconcile(&list.items).await?;
        let count = list.items.len();
        self.status.update(&self.instance, |s| {
            s.connected = true;
            s.error = None;
            s.applications = count;
        });
        tracing::info!(instance = %self.instance, applications = count, "Argo CD listed; watching");
        while let Some(next) = events.recv().await {
            match next? {
                None => break,
                Some(event) => {
                    self.apply(&event).await?;
                    self.status.update(&self.instance, |s| s.events += 1);
                }
            }
        }
        drop(reader);
        Err(WatchError::Ended)
    }

    /// Records every listed application and marks the ones no longer listed deleted.
    pub async fn reconcile(&mut self, items: &[Value]) -> Result<(), WatchError> {
        let mut listed = BTreeSet::new();
        for item in items {
            if let Some(key) = self.record(item).await? {
                listed.insert(key);
            }
        }
        for key in self.ledger.live_applications(&self.instance).await? {
            if !listed.contains(&key) {
                self.forget(&key.0, &key.1).await?;
            }
        }
        Ok(())
    }

    async fn apply(&mut self, event: &WatchEvent) -> Result<(), WatchError> {
        match event.kind.as_str() {
            "DELETED" => {
                if let Ok(app) = serde_json::from_value::<Application>(event.application.clone()) {
                    self.forget(namespace_of(&app), &app.metadata.name).await?;
                }
            }
            _ => {
                self.record(&event.application).await?;
            }
        }
        Ok(())
    }

    async fn forget(&mut self, namespace: &str, name: &str) -> Result<(), WatchError> {
        self.seen.remove(&(namespace.to_string(), name.to_string()));
        if self.ledger.mark_application_deleted(&self.instance, namespace, name, now_ms()).await? {
            tracing::info!(instance = %self.instance, namespace, name, "application deleted");
            self.tell(&(namespace.to_string(), name.to_string()), (None, None, None), true);
        }
        Ok(())
    }

    /// Records one application: its state, every history entry not yet in the ledger,
    /// a failed last sync, and (when something was deployed) the objects it runs.
    async fn record(&mut self, value: &Value) -> Result<Option<(String, String)>, WatchError> {
        let app: Application = match serde_json::from_value(value.clone()) {
            Ok(app) => app,
            Err(error) => {
                tracing::warn!(instance = %self.instance, %error, "skipping an application Landfall cannot read");
                return Ok(None);
            }
        };
        if app.metadata.name.is_empty() {
            return Ok(None);
        }
        let key = (namespace_of(&app).to_string(), app.metadata.name.clone());
        let first_sight = !self.seen.contains_key(&key);
        if self.seen.get(&key).is_some_and(|seen| not_newer(&app.metadata.resource_version, seen)) {
            return Ok(Some(key));
        }
        let now = now_ms();
        let fact = application_fact(&self.instance, &app, &self.environments, now);
        self.ledger.upsert_application(&fact).await?;
        let recorded = self.ledger.recorded_deployments(&self.instance, &key.0, &key.1).await?;
        let operating =
            app.status.operation_state.as_ref().is_some_and(|o| matches!(o.phase.as_str(), "Running" | "Terminating"));
        let latest = app.status.history.iter().map(|h| h.id).max();
        let mut deployed = false;
        for entry in &app.status.history {
            // Argo CD lists only what runs now: the images belong to the latest entry, once
            // no operation is rolling something else out.
            let current = Some(entry.id) == latest && !operating;
            let images = if current { images_of(&app) } else { Vec::new() };
            let stale = match recorded.get(&entry.id) {
                None => true,
                Some(stored) => current && !images.is_empty() && !same_images(stored, &images),
            };
            if stale && let Some(fact) = history_deployment(&self.instance, &app, entry, images) {
                self.record_deployment(&fact).await?;
                deployed = true;
            }
        }
        if let Some(operation) = &app.status.operation_state
            && let Some(fact) = failed_operation(&self.instance, &app, operation)
            && !recorded.contains_key(&fact.history_id)
        {
            self.record_deployment(&fact).await?;
        }
        if deployed || first_sight {
            let resources = match self.client.resource_tree(&key.1, &key.0).await {
                Ok(tree) => resources_of(&tree),
                Err(error) => {
                    tracing::debug!(instance = %self.instance, name = %key.1, %error, "no resource tree; using status.resources");
                    app.status
                        .resources
                        .iter()
                        .filter(|r| RESOURCE_KINDS.contains(&r.kind.as_str()))
                        .map(|r| ResourceFact {
                            group: r.group.clone(),
                            kind: r.kind.clone(),
                            namespace: r.namespace.clone(),
                            name: r.name.clone(),
                            health: r.health.as_ref().and_then(|h| h.status.clone()),
                            images: Vec::new(),
                        })
                        .collect()
                }
            };
            self.ledger.replace_resources(&self.instance, &key.0, &key.1, now, &resources).await?;
        }
        let phase = app.status.operation_state.as_ref().map(|o| o.phase.clone()).filter(|p| !p.is_empty());
        self.tell(&key, (app.status.sync.status.clone(), app.status.health.status.clone(), phase), false);
        self.seen.insert(key.clone(), app.metadata.resource_version.clone());
        Ok(Some(key))
    }
}

/// Whether an application at resourceVersion `rv` is what was already recorded at `seen`,
/// or older: an event queued while the list was read can be older than the list.
/// Argo CD compares resourceVersions as numbers (API.md §3.2); others only by equality.
fn not_newer(rv: &str, seen: &str) -> bool {
    if rv.is_empty() || seen.is_empty() {
        return false;
    }
    match (rv.parse::<u64>(), seen.parse::<u64>()) {
        (Ok(rv), Ok(seen)) => rv <= seen,
        _ => rv == seen,
    }
}

/// Stops the stream reader when the session ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn same_images(a: &[ImageRef], b: &[ImageRef]) -> bool {
    let sorted = |images: &[ImageRef]| {
        let mut v: Vec<(String, String)> = images.iter().map(|i| (i.repository.clone(), i.tag.clone())).collect();
        v.sort();
        v.dedup();
        v
    };
    sorted(a) == sorted(b)
}

/// The objects worth recording from a resource tree, each with the images of the pods
/// beneath it (a Deployment's images are on its ReplicaSets' Pods).
pub fn resources_of(tree: &ApplicationTree) -> Vec<ResourceFact> {
    type Key = (String, String, String, String);
    let key = |group: &str, kind: &str, namespace: &str, name: &str| -> Key {
        (group.to_string(), kind.to_string(), namespace.to_string(), name.to_string())
    };
    let parents: HashMap<Key, Vec<Key>> = tree
        .nodes
        .iter()
        .map(|node| {
            let parents =
                node.parent_refs.iter().map(|p| key(&p.group, &p.kind, &p.namespace, &p.name)).collect::<Vec<_>>();
            (key(&node.group, &node.kind, &node.namespace, &node.name), parents)
        })
        .collect();
    let mut images: HashMap<Key, BTreeSet<String>> = HashMap::new();
    for node in tree.nodes.iter().filter(|n| !n.images.is_empty()) {
        // Up the ownership chain, guarding against cycles.
        let mut pending = vec![key(&node.group, &node.kind, &node.namespace, &node.name)];
        let mut visited = BTreeSet::new();
        while let Some(current) = pending.pop() {
            if !visited.insert(current.clone()) {
                continue;
            }
            images.entry(current.clone()).or_default().extend(node.images.iter().cloned());
            pending.extend(parents.get(&current).into_iter().flatten().cloned());
        }
    }
    let mut facts: Vec<ResourceFact> = tree
        .nodes
        .iter()
        .filter(|node| RESOURCE_KINDS.contains(&node.kind.as_str()))
        // A ReplicaSet owned by a Deployment is the Deployment's business.
        .filter(|node| node.kind != "ReplicaSet" || node.parent_refs.is_empty())
        .map(|node| {
            let k = key(&node.group, &node.kind, &node.namespace, &node.name);
            ResourceFact {
                group: node.group.clone(),
                kind: node.kind.clone(),
                namespace: node.namespace.clone(),
                name: node.name.clone(),
                health: node.health.as_ref().and_then(|h| h.status.clone()),
                images: images.get(&k).into_iter().flatten().filter_map(|image| ImageRef::parse(image).ok()).collect(),
            }
        })
        .collect();
    facts.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    facts.dedup_by(|a, b| (&a.group, &a.kind, &a.namespace, &a.name) == (&b.group, &b.kind, &b.namespace, &b.name));
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_its_ceiling_and_resets() {
        let max = Duration::from_secs(30);
        let mut backoff = Backoff::new(max);
        let first = backoff.next();
        assert!(first >= FIRST_BACKOFF / 2 && first <= FIRST_BACKOFF, "{first:?}");
        let waits: Vec<Duration> = (0..12).map(|_| backoff.next()).collect();
        assert!(waits.iter().all(|w| *w <= max), "{waits:?}");
        assert!(waits[11] >= max / 2, "{waits:?}");
        backoff.reset();
        assert!(backoff.next() <= FIRST_BACKOFF);
    }

    #[test]
    fn queued_events_older_than_the_list_are_skipped() {
        assert!(not_newer("41", "42") && not_newer("42", "42"));
        assert!(!not_newer("43", "42"));
        assert!(!not_newer("", "42") && !not_newer("42", ""));
        assert!(not_newer("abc", "abc") && !not_newer("abd", "abc"));
    }

    #[test]
    fn a_low_ceiling_caps_even_the_first_wait() {
        let max = Duration::from_millis(300);
        let mut backoff = Backoff::new(max);
        let waits: Vec<Duration> = (0..5).map(|_| backoff.next()).collect();
        assert!(waits.iter().all(|w| *w <= max && *w >= max / 2), "{waits:?}");
    }

    #[test]
    fn pod_images_are_credited_to_their_deployment() {
        let tree: ApplicationTree = serde_json::from_value(serde_json::json!({"nodes": [
            {"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "api", "health": {"status": "Healthy"}},
            {"group": "apps", "kind": "ReplicaSet", "namespace": "shop", "name": "api-1",
             "parentRefs": [{"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "api"}]},
            {"kind": "Pod", "namespace": "shop", "name": "api-1-x", "images": ["ghcr.io/acme/api:1.2"],
             "parentRefs": [{"group": "apps", "kind": "ReplicaSet", "namespace": "shop", "name": "api-1"}]},
            {"kind": "Service", "namespace": "shop", "name": "api"}
        ]}))
        .unwrap();
        let facts = resources_of(&tree);
        let kinds: Vec<&str> = facts.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["Deployment", "Service"]);
        assert_eq!(facts[0].images, [ImageRef { repository: "ghcr.io/acme/api".into(), tag: "1.2".into() }]);
        assert_eq!(facts[0].health.as_deref(), Some("Healthy"));
        assert!(facts[1].images.is_empty());
    }
}
