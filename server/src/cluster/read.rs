//! Reading one namespace of a cluster: the workloads and Services it holds, as the
//! ledger's [`ResourceFact`]s. Health follows what Argo CD's built-in checks conclude
//! from the same status fields (gitops-engine `pkg/health`), so that a value filled from
//! here reads like one Argo CD would have given; images are the pod templates' containers
//! and init containers, which is what the object asks to run.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PodSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

use super::ClusterError;
use crate::ledger::{ImageRef, ResourceFact};

/// The kinds read, and so the only recorded resources a cluster can add to.
pub const KINDS: [&str; 6] = ["Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "Service"];

pub const HEALTHY: &str = "Healthy";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const SUSPENDED: &str = "Suspended";

/// Lists every kind of [`KINDS`] in `namespace`; one list call each.
pub async fn read_namespace(client: &kube::Client, namespace: &str) -> Result<Vec<ResourceFact>, ClusterError> {
    let mut facts = Vec::new();
    facts.extend(list::<Deployment>(client, namespace).await?.iter().map(deployment));
    facts.extend(list::<StatefulSet>(client, namespace).await?.iter().map(stateful_set));
    facts.extend(list::<DaemonSet>(client, namespace).await?.iter().map(daemon_set));
    facts.extend(list::<CronJob>(client, namespace).await?.iter().map(cron_job));
    facts.extend(list::<Job>(client, namespace).await?.iter().map(job));
    facts.extend(list::<Service>(client, namespace).await?.iter().map(service));
    Ok(facts)
}

async fn list<K>(client: &kube::Client, namespace: &str) -> Result<Vec<K>, ClusterError>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) => Err(ClusterError::Refused {
            kind: K::kind(&()).into_owned(),
            namespace: namespace.to_string(),
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        }),
        Err(error) => Err(ClusterError::Unreachable {
            kind: K::kind(&()).into_owned(),
            namespace: namespace.to_string(),
            reason: error.to_string(),
        }),
    }
}

fn fact<K: k8s_openapi::Resource>(metadata: &ObjectMeta, health: &str, pod: Option<&PodSpec>) -> ResourceFact {
    ResourceFact {
        group: K::GROUP.to_string(),
        kind: K::KIND.to_string(),
        namespace: metadata.namespace.clone().unwrap_or_default(),
        name: metadata.name.clone().unwrap_or_default(),
        health: Some(health.to_string()),
        images: pod.map(images_of).unwrap_or_default(),
    }
}

/// The images of a pod template's init containers and containers, each once, in order;
/// references Landfall cannot read are skipped.
pub fn images_of(pod: &PodSpec) -> Vec<ImageRef> {
    let mut images: Vec<ImageRef> = Vec::new();
    let containers = pod.init_containers.iter().flatten().chain(&pod.containers);
    for image in containers.filter_map(|c| c.image.as_deref()).filter_map(|i| ImageRef::parse(i).ok()) {
        if !images.contains(&image) {
            images.push(image);
        }
    }
    images
}

/// The controller has not yet acted on the latest spec.
fn stale(metadata: &ObjectMeta, observed_generation: Option<i64>) -> bool {
    matches!((metadata.generation, observed_generation), (Some(generation), Some(observed)) if observed < generation)
}

pub fn deployment(object: &Deployment) -> ResourceFact {
    let spec = object.spec.clone().unwrap_or_default();
    let status = object.status.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let deadline_exceeded = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    let health = if spec.paused == Some(true) {
        SUSPENDED
    } else if stale(&object.metadata, status.observed_generation) {
        PROGRESSING
    } else if deadline_exceeded {
        DEGRADED
    } else if updated < desired || status.replicas.unwrap_or(0) > updated || available < updated {
        PROGRESSING
    } else {
        HEALTHY
    };
    fact::<Deployment>(&object.metadata, health, spec.template.spec.as_ref())
}

pub fn stateful_set(object: &StatefulSet) -> ResourceFact {
    let spec = object.spec.clone().unwrap_or_default();
    let status = object.status.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let rolling = spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()) != Some("OnDelete");
    let revision_behind = rolling
        && status.update_revision.is_some()
        && status.current_revision.is_some()
        && status.update_revision != status.current_revision;
    let health = if stale(&object.metadata, status.observed_generation)
        || status.ready_replicas.unwrap_or(0) < desired
        || revision_behind
    {
        PROGRESSING
    } else {
        HEALTHY
    };
    fact::<StatefulSet>(&object.metadata, health, spec.template.spec.as_ref())
}

pub fn daemon_set(object: &DaemonSet) -> ResourceFact {
    let spec = object.spec.clone().unwrap_or_default();
    let status = object.status.clone().unwrap_or_default();
    let desired = status.desired_number_scheduled;
    let health = if stale(&object.metadata, status.observed_generation)
        || status.updated_number_scheduled.unwrap_or(0) < desired
        || status.number_available.unwrap_or(0) < desired
    {
        PROGRESSING
    } else {
        HEALTHY
    };
    fact::<DaemonSet>(&object.metadata, health, spec.template.spec.as_ref())
}

pub fn cron_job(object: &CronJob) -> ResourceFact {
    let spec = object.spec.clone().unwrap_or_default();
    let health = if spec.suspend == Some(true) { SUSPENDED } else { HEALTHY };
    let pod = spec.job_template.spec.as_ref().and_then(|job| job.template.spec.as_ref());
    fact::<CronJob>(&object.metadata, health, pod)
}

pub fn job(object: &Job) -> ResourceFact {
    let spec = object.spec.clone().unwrap_or_default();
    let conditions = object.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let holds = |kind: &str| conditions.iter().any(|c| c.type_ == kind && c.status == "True");
    let health = if holds("Failed") {
        DEGRADED
    } else if holds("Complete") {
        HEALTHY
    } else if spec.suspend == Some(true) {
        SUSPENDED
    } else {
        PROGRESSING
    };
    fact::<Job>(&object.metadata, health, spec.template.spec.as_ref())
}

/// A Service is healthy once it can take traffic: at once, except a LoadBalancer, which
/// waits for its address.
pub fn service(object: &Service) -> ResourceFact {
    let load_balancer = object.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    let addressed = object
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|ingress| !ingress.is_empty());
    let health = if load_balancer && !addressed { PROGRESSING } else { HEALTHY };
    fact::<Service>(&object.metadata, health, None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A list as the API server serves it, from `fixtures/kubernetes/` (objects written
    /// after the Kubernetes API reference, status fields as controllers set them).
    pub(crate) fn fixture(name: &str) -> serde_json::Value {
        let path = format!("{}/fixtures/kubernetes/{name}.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn items<K: DeserializeOwned>(name: &str) -> Vec<K> {
        serde_json::from_value(fixture(name)["items"].clone()).unwrap()
    }

    fn image(reference: &str) -> ImageRef {
        ImageRef::parse(reference).unwrap()
    }

    #[test]
    fn deployments_give_health_from_replicas_and_images_from_the_template() {
        let facts: Vec<ResourceFact> = items::<Deployment>("deployments").iter().map(deployment).collect();
        assert_eq!(
            facts[0],
            ResourceFact {
                group: "apps".into(),
                kind: "Deployment".into(),
                namespace: "shop".into(),
                name: "shop-api".into(),
                health: Some(HEALTHY.into()),
                images: vec![
                    image("ghcr.io/acme/shop-migrations:1.4.2"),
                    image("ghcr.io/acme/shop-api:1.4.2"),
                    image("envoyproxy/envoy:v1.31.2"),
                ],
            }
        );
        assert_eq!(facts[1].health.as_deref(), Some(DEGRADED), "its rollout passed the progress deadline");

        let mut rolling = items::<Deployment>("deployments").remove(1);
        let status = rolling.status.as_mut().unwrap();
        status.conditions = None;
        assert_eq!(deployment(&rolling).health.as_deref(), Some(PROGRESSING), "one of two replicas updated");
        rolling.metadata.generation = Some(13);
        assert_eq!(deployment(&rolling).health.as_deref(), Some(PROGRESSING), "spec not yet observed");
        rolling.spec.as_mut().unwrap().paused = Some(true);
        assert_eq!(deployment(&rolling).health.as_deref(), Some(SUSPENDED));
    }

    #[test]
    fn other_workloads_and_services_are_mapped() {
        let set = stateful_set(&items::<StatefulSet>("statefulsets")[0]);
        assert_eq!((set.group.as_str(), set.kind.as_str()), ("apps", "StatefulSet"));
        assert_eq!(set.health.as_deref(), Some(PROGRESSING), "2 of 3 ready, revision rolling");
        assert_eq!(set.images, [image("docker.io/library/redis:7.4")]);

        let daemons = daemon_set(&items::<DaemonSet>("daemonsets")[0]);
        assert_eq!(daemons.health.as_deref(), Some(HEALTHY));
        assert_eq!(daemons.images, [image("timberio/vector:0.42.0-distroless-libc")]);

        let cron = cron_job(&items::<CronJob>("cronjobs")[0]);
        assert_eq!((cron.group.as_str(), cron.health.as_deref()), ("batch", Some(SUSPENDED)));
        assert_eq!(cron.images, [image("ghcr.io/acme/shop-api:1.4.2")]);

        let seed = job(&items::<Job>("jobs")[0]);
        assert_eq!((seed.kind.as_str(), seed.health.as_deref()), ("Job", Some(DEGRADED)));

        let services: Vec<ResourceFact> = items::<Service>("services").iter().map(service).collect();
        assert_eq!((services[0].group.as_str(), services[0].kind.as_str()), ("", "Service"));
        assert_eq!(services[0].health.as_deref(), Some(HEALTHY));
        assert!(services[0].images.is_empty());
        assert_eq!(services[1].health.as_deref(), Some(PROGRESSING), "a LoadBalancer without an address yet");
    }

    #[test]
    fn images_are_listed_once_and_unreadable_ones_skipped() {
        let pod: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [{"name": "a", "image": "ghcr.io/acme/tool:1"}],
            "containers": [
                {"name": "b", "image": "ghcr.io/acme/tool:1"},
                {"name": "c", "image": "not an image"},
                {"name": "d"},
                {"name": "e", "image": "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
            ]
        }))
        .unwrap();
        assert_eq!(images_of(&pod), [image("ghcr.io/acme/tool:1"), image("nginx:latest")]);
    }
}
