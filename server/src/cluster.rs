//! The Kubernetes connector: optional direct reading of the clusters Argo CD deploys to
//! (`[[cluster]]`), for the live detail its resource tree lacks. Argo CD records which
//! objects an application manages only when it deploys or is first seen, and a tree
//! fetched while Pods are missing carries no images; reading the Deployments,
//! StatefulSets, DaemonSets, CronJobs, Jobs and Services themselves fills in health and
//! images for those recorded objects ([`crate::ledger::Ledger::enrich_resources`]). It
//! never adds or removes objects: which ones an application manages is Argo CD's word.
//!
//! Only `get`/`list` are ever sent, through `kube` over rustls; configuration comes from
//! a kubeconfig file (and context) or the Pod's service account.

pub mod read;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;

use crate::config::ClusterConfig;
use crate::ledger::{Ledger, LedgerError, ResourceFact};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load the kubeconfig{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Kubeconfig { path: Option<std::path::PathBuf>, reason: String },
    #[error("cannot use the in-cluster configuration (is Landfall running in a Pod with a service account?): {0}")]
    InCluster(String),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
    /// The API server answered with a `Status`: most often 401 (bad credentials) or 403
    /// (the account lacks `list` on the kind in that namespace).
    #[error(
        "the API server refused to list {kind} in namespace {namespace}: {code} {reason}: {message}{}",
        if *code == 403 { "; grant get and list on it to Landfall's account" } else { "" }
    )]
    Refused { kind: String, namespace: String, code: u16, reason: String, message: String },
    #[error("cannot list {kind} in namespace {namespace}: {reason}")]
    Unreachable { kind: String, namespace: String, reason: String },
    #[error("the ledger refused an update: {0}")]
    Ledger(#[from] LedgerError),
}

/// A client for one configured cluster, from its kubeconfig (the given file, else
/// `$KUBECONFIG` or `~/.kube/config`) and context, or from the Pod's service account.
pub async fn connect(config: &ClusterConfig) -> Result<kube::Client, ClusterError> {
    let options = KubeConfigOptions { context: config.context.clone(), ..KubeConfigOptions::default() };
    let kubeconfig_error = |error: kube::config::KubeconfigError| ClusterError::Kubeconfig {
        path: config.kubeconfig.clone(),
        reason: error.to_string(),
    };
    let settings = if config.in_cluster {
        kube::Config::incluster().map_err(|error| ClusterError::InCluster(error.to_string()))?
    } else if let Some(path) = &config.kubeconfig {
        let file = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
        kube::Config::from_custom_kubeconfig(file, &options).await.map_err(kubeconfig_error)?
    } else {
        kube::Config::from_kubeconfig(&options).await.map_err(kubeconfig_error)?
    };
    kube::Client::try_from(settings).map_err(|error| ClusterError::Client(error.to_string()))
}

/// How one cluster's reading stands, for `/readyz`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ClusterStatus {
    pub name: String,
    /// The last round read every namespace it needed.
    pub reachable: bool,
    /// The first failure of the last round, until a round succeeds.
    pub error: Option<String>,
    /// Applications deployed there with objects a reading can add to.
    pub applications: usize,
    /// Recorded resources the last round changed.
    pub enriched: usize,
    /// When the last round ended (RFC 3339, UTC).
    pub read_at: Option<String>,
}

/// Every cluster's status, shared between the readers and the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct ClusterStatuses(Arc<Mutex<BTreeMap<String, ClusterStatus>>>);

impl ClusterStatuses {
    pub fn snapshot(&self) -> Vec<ClusterStatus> {
        self.0.lock().map(|map| map.values().cloned().collect()).unwrap_or_default()
    }

    fn set(&self, status: ClusterStatus) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(status.name.clone(), status);
        }
    }
}

/// Starts one reader per `[[cluster]]`. A cluster that cannot be configured or reached
/// is logged and shown in its status, and tried again next round; it never stops the
/// server.
pub fn start(
    ledger: &Ledger,
    clusters: &[ClusterConfig],
    statuses: &ClusterStatuses,
) -> Vec<tokio::task::JoinHandle<()>> {
    clusters
        .iter()
        .map(|config| {
            statuses.set(ClusterStatus { name: config.name.clone(), ..ClusterStatus::default() });
            tokio::spawn(run(config.clone(), ledger.clone(), statuses.clone()))
        })
        .collect()
}

async fn run(config: ClusterConfig, ledger: Ledger, statuses: ClusterStatuses) {
    let mut client = None;
    let mut ticks = tokio::time::interval(Duration::from_secs(config.interval_seconds));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if client.is_none() {
            match connect(&config).await {
                Ok(connected) => client = Some(connected),
                Err(error) => {
                    tracing::warn!(cluster = %config.name, %error, "cannot configure the cluster's client");
                    let status = ClusterStatus {
                        name: config.name.clone(),
                        error: Some(error.to_string()),
                        ..ClusterStatus::default()
                    };
                    statuses.set(ClusterStatus { read_at: Some(crate::timefmt::format_rfc3339(now())), ..status });
                    continue;
                }
            }
        }
        let Some(client) = &client else { continue };
        let status = match refresh(&config.name, client, &ledger, now()).await {
            Ok(round) => {
                tracing::debug!(cluster = %config.name, applications = round.applications, enriched = round.enriched, "cluster read");
                ClusterStatus { reachable: round.error.is_none(), ..round }
            }
            Err(error) => {
                ClusterStatus { name: config.name.clone(), error: Some(error.to_string()), ..ClusterStatus::default() }
            }
        };
        if let Some(error) = &status.error {
            tracing::warn!(cluster = %config.name, %error, "cannot read the cluster");
        }
        statuses.set(ClusterStatus { read_at: Some(crate::timefmt::format_rfc3339(now())), ..status });
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// One round for one cluster: reads each namespace holding recorded objects of the
/// applications deployed there, once, and adds what it saw to each application. A
/// namespace that cannot be read is skipped and its error reported; the others still
/// count. Only a ledger failure ends the round early.
pub async fn refresh(
    cluster: &str,
    client: &kube::Client,
    ledger: &Ledger,
    observed_at: i64,
) -> Result<ClusterStatus, ClusterError> {
    let applications = ledger.applications_on_cluster(cluster, &read::KINDS).await?;
    let mut namespaces: BTreeMap<&str, Vec<ResourceFact>> = BTreeMap::new();
    let mut first_error = None;
    for namespace in applications.iter().flat_map(|a| &a.namespaces) {
        if namespaces.contains_key(namespace.as_str()) {
            continue;
        }
        match read::read_namespace(client, namespace).await {
            Ok(facts) => {
                namespaces.insert(namespace, facts);
            }
            Err(error) => {
                first_error.get_or_insert_with(|| error.to_string());
                namespaces.insert(namespace, Vec::new());
            }
        }
    }
    let mut enriched = 0;
    for application in &applications {
        let live: Vec<ResourceFact> = application
            .namespaces
            .iter()
            .flat_map(|n| namespaces.get(n.as_str()).into_iter().flatten())
            .cloned()
            .collect();
        enriched += ledger
            .enrich_resources(&application.instance, &application.namespace, &application.name, observed_at, &live)
            .await?;
    }
    Ok(ClusterStatus {
        name: cluster.to_string(),
        reachable: first_error.is_none(),
        error: first_error,
        applications: applications.len(),
        enriched,
        read_at: None,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{Request, Response, StatusCode};
    use kube::client::Body;

    use super::*;
    use crate::ledger::{ApplicationFact, ImageRef, application_views::ResourceView};

    /// A mocked API server: a `kube::Client` over a `tower-test` service, answering each
    /// request from `answer(path)`; the task returns the paths asked for, once the client
    /// is dropped.
    fn api_server(
        answer: impl Fn(&str) -> (StatusCode, serde_json::Value) + Send + 'static,
    ) -> (kube::Client, tokio::task::JoinHandle<Vec<String>>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut paths = Vec::new();
            while let Some((request, respond)) = handle.next_request().await {
                assert_eq!(request.method(), "GET", "only reads are sent");
                let path = request.uri().path().to_string();
                let (status, body) = answer(&path);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap();
                respond.send_response(response);
                paths.push(path);
            }
            paths
        });
        (kube::Client::new(service, "default"), server)
    }

    /// The fixture lists for namespace `shop`, empty lists elsewhere, and 403 Forbidden
    /// for Deployments in `payments`.
    fn shop_cluster(path: &str) -> (StatusCode, serde_json::Value) {
        if path == "/apis/apps/v1/namespaces/payments/deployments" {
            return (StatusCode::FORBIDDEN, read::tests::fixture("forbidden"));
        }
        let plural = path.rsplit('/').next().unwrap();
        if path.contains("/namespaces/shop/") {
            return (StatusCode::OK, read::tests::fixture(plural));
        }
        (StatusCode::OK, serde_json::json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []}))
    }

    #[tokio::test]
    async fn a_namespace_is_read_with_one_list_per_kind() {
        let (client, server) = api_server(shop_cluster);
        let facts = read::read_namespace(&client, "shop").await.unwrap();
        drop(client);
        assert_eq!(
            server.await.unwrap(),
            [
                "/apis/apps/v1/namespaces/shop/deployments",
                "/apis/apps/v1/namespaces/shop/statefulsets",
                "/apis/apps/v1/namespaces/shop/daemonsets",
                "/apis/batch/v1/namespaces/shop/cronjobs",
                "/apis/batch/v1/namespaces/shop/jobs",
                "/api/v1/namespaces/shop/services",
            ]
        );
        let summary: Vec<(&str, &str, Option<&str>, usize)> =
            facts.iter().map(|f| (f.kind.as_str(), f.name.as_str(), f.health.as_deref(), f.images.len())).collect();
        assert_eq!(
            summary,
            [
                ("Deployment", "shop-api", Some("Healthy"), 3),
                ("Deployment", "shop-worker", Some("Degraded"), 1),
                ("StatefulSet", "shop-cache", Some("Progressing"), 1),
                ("DaemonSet", "shop-log-shipper", Some("Healthy"), 1),
                ("CronJob", "shop-reindex", Some("Suspended"), 1),
                ("Job", "shop-seed-7", Some("Degraded"), 1),
                ("Service", "shop-api", Some("Healthy"), 0),
                ("Service", "shop-public", Some("Progressing"), 0),
            ]
        );
        assert!(facts.iter().all(|f| f.namespace == "shop"));
    }

    #[tokio::test]
    async fn a_refusal_names_the_kind_the_namespace_and_the_fix() {
        let (client, _server) = api_server(shop_cluster);
        let error = read::read_namespace(&client, "payments").await.unwrap_err();
        assert!(matches!(&error, ClusterError::Refused { code: 403, .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("list Deployment in namespace payments: 403 Forbidden"), "{text}");
        assert!(text.contains("cannot list resource \"deployments\""), "the API server's own words: {text}");
        assert!(text.contains("grant get and list"), "{text}");
    }

    async fn ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::DatabaseUrl::sqlite_file(&dir.path().join("l.db"));
        (dir, Ledger::open(&url).await.unwrap())
    }

    fn recorded(kind: &str, group: &str, name: &str, health: Option<&str>, images: &[&str]) -> ResourceFact {
        ResourceFact {
            group: group.into(),
            kind: kind.into(),
            namespace: "shop".into(),
            name: name.into(),
            health: health.map(Into::into),
            images: images.iter().map(|i| ImageRef::parse(i).unwrap()).collect(),
        }
    }

    async fn resources(ledger: &Ledger, name: &str) -> Vec<ResourceView> {
        match ledger.application_detail("main", Some("argocd"), name, 10).await.unwrap() {
            crate::ledger::application_views::Lookup::Found(detail) => detail.resources,
            _ => panic!("{name} not found"),
        }
    }

    #[tokio::test]
    async fn a_round_fills_only_what_the_tree_left_out_of_recorded_objects() {
        let (_dir, ledger) = ledger().await;
        for (name, destination) in [("shop-prod", "gke-eu"), ("payments-prod", "gke-eu"), ("shop-us", "gke-us")] {
            let fact = ApplicationFact {
                instance: "main".into(),
                namespace: "argocd".into(),
                name: name.into(),
                project: "default".into(),
                sources: serde_json::json!([]),
                dest_name: Some(destination.into()),
                observed_at: 1,
                ..ApplicationFact::default()
            };
            ledger.upsert_application(&fact).await.unwrap();
        }
        let tree = [
            // Argo CD's own health is kept; the images it lacked are filled.
            recorded("Deployment", "apps", "shop-api", Some("Healthy"), &[]),
            // No health in the tree: the cluster's is used; its images are kept.
            recorded("Deployment", "apps", "shop-worker", None, &["ghcr.io/acme/shop-worker:1.4.2"]),
            recorded("Service", "", "shop-public", None, &[]),
            // Not in the cluster: left as it is.
            recorded("Deployment", "apps", "shop-gone", None, &[]),
        ];
        ledger.replace_resources("main", "argocd", "shop-prod", 1, &tree).await.unwrap();
        let mut payments = recorded("Deployment", "apps", "payments-api", None, &[]);
        payments.namespace = "payments".into();
        ledger.replace_resources("main", "argocd", "payments-prod", 1, &[payments]).await.unwrap();
        ledger
            .replace_resources("main", "argocd", "shop-us", 1, &[recorded("Deployment", "apps", "shop-api", None, &[])])
            .await
            .unwrap();

        let (client, server) = api_server(shop_cluster);
        let round = refresh("gke-eu", &client, &ledger, 2).await.unwrap();
        drop(client);
        let paths = server.await.unwrap();
        assert!(
            paths.iter().all(|p| p.contains("/namespaces/shop/") || p.contains("/namespaces/payments/")),
            "{paths:?}"
        );
        assert_eq!(round.applications, 2);
        assert_eq!(round.enriched, 3, "shop-api's images, shop-worker's health, shop-public's health");
        assert!(!round.reachable);
        assert!(round.error.as_deref().is_some_and(|e| e.contains("403 Forbidden")), "{round:?}");

        let views = resources(&ledger, "shop-prod").await;
        let by_name = |name: &str| views.iter().find(|v| v.name == name).unwrap().clone();
        assert_eq!(by_name("shop-api").health.as_deref(), Some("Healthy"));
        assert_eq!(
            by_name("shop-api").images,
            ["envoyproxy/envoy:v1.31.2", "ghcr.io/acme/shop-api:1.4.2", "ghcr.io/acme/shop-migrations:1.4.2"]
        );
        assert_eq!(by_name("shop-worker").health.as_deref(), Some("Degraded"));
        assert_eq!(by_name("shop-worker").images, ["ghcr.io/acme/shop-worker:1.4.2"], "Argo CD's images are kept");
        assert_eq!(by_name("shop-public").health.as_deref(), Some("Progressing"));
        assert_eq!(by_name("shop-gone").health, None);
        assert_eq!(views.len(), 4, "objects only in the cluster are not added");
        assert_eq!(resources(&ledger, "shop-us").await[0].health, None, "another cluster's application");

        // What the cluster filled, it refreshes; a new tree from Argo CD starts over.
        let (client, _server) = api_server(|path| {
            if path.ends_with("/deployments") && path.contains("/namespaces/shop/") {
                let mut list = read::tests::fixture("deployments");
                list["items"][1]["status"]["conditions"] = serde_json::json!([]);
                list["items"][1]["status"]["updatedReplicas"] = serde_json::json!(2);
                list["items"][1]["status"]["replicas"] = serde_json::json!(2);
                return (StatusCode::OK, list);
            }
            shop_cluster(path)
        });
        let round = refresh("gke-eu", &client, &ledger, 3).await.unwrap();
        assert_eq!(round.enriched, 1);
        assert_eq!(
            resources(&ledger, "shop-prod").await.iter().find(|v| v.name == "shop-worker").unwrap().health.as_deref(),
            Some("Healthy")
        );
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_is_an_error_not_a_panic() {
        let config = ClusterConfig {
            name: "gke-eu".into(),
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            context: None,
            in_cluster: false,
            interval_seconds: 60,
        };
        let Err(error) = connect(&config).await else { panic!("connected without a kubeconfig") };
        let error = error.to_string();
        assert!(error.contains("cannot load the kubeconfig /nonexistent/kubeconfig"), "{error}");
    }
}
