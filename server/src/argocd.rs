//! The Argo CD connector: a client for the REST API ([`client`]), the JSON it reads
//! ([`wire`]), and the watch that keeps the ledger current ([`watch`]): every
//! application, its sync status and health over time, every history entry and failed
//! sync as a deployment (kept for ever, beyond Argo CD's `revisionHistoryLimit`), and the
//! Kubernetes objects it runs.
//!
//! This module maps Argo CD's view onto the ledger's: which environment and service an
//! application belongs to, and what each history entry deployed.

pub mod client;
pub mod watch;
pub mod wire;

use crate::config::{EnvironmentConfig, MatchRules};
use crate::ledger::{ApplicationFact, DeploymentFact, ImageRef};
use crate::timefmt::parse_rfc3339;

use wire::{Application, HistoryEntry, OperationState};

/// Stores the configured environments, then starts one watch per `[[argocd]]`
/// instance. A secret that is missing, or a CA file that cannot be read, stops start-up
/// with a message naming the setting.
pub async fn start(
    ledger: &crate::ledger::Ledger,
    settings: &crate::config::Settings,
    status: &watch::WatchStatus,
    live: &std::sync::Arc<crate::live::Hub>,
) -> anyhow::Result<(Instances, Vec<tokio::task::JoinHandle<()>>)> {
    use anyhow::Context;
    for environment in &settings.environments {
        let rules = serde_json::json!({ "aliases": environment.aliases, "match": environment.rules });
        let fact = crate::ledger::EnvironmentFact {
            name: environment.name.clone(),
            rank: environment.rank,
            match_rules: rules,
        };
        ledger.upsert_environment(&fact).await?;
    }
    let environments: std::sync::Arc<[EnvironmentConfig]> = settings.environments.clone().into();
    let mut tasks = Vec::new();
    let mut clients = std::collections::BTreeMap::new();
    for (index, instance) in settings.argocd.iter().enumerate() {
        let secret = |variable: &str| {
            std::env::var(variable).ok().filter(|v| !v.is_empty()).with_context(|| {
                format!("setting `argocd[{index}]` names the environment variable {variable}, which is unset or empty")
            })
        };
        let credentials = match (&instance.token_env, &instance.username, &instance.password_env) {
            (Some(token_env), _, _) => client::Credentials::Token(secret(token_env)?),
            (None, Some(username), Some(password_env)) => {
                client::Credentials::Password { username: username.clone(), password: secret(password_env)? }
            }
            _ => anyhow::bail!("setting `argocd[{index}]` needs `token_env`, or `username` and `password_env`"),
        };
        let ca_pem = match &instance.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read `argocd[{index}].ca_file` {}", path.display()))?,
            ),
            None => None,
        };
        let tls = client::Tls { ca_pem, insecure_skip_verify: instance.insecure_skip_verify };
        let client = client::Client::new(&instance.url, credentials, &tls)
            .with_context(|| format!("setting `argocd[{index}]`"))?;
        let client = std::sync::Arc::new(client);
        clients.insert(instance.name.clone(), client.clone());
        let watcher = watch::Watcher::new(
            &instance.name,
            client,
            ledger.clone(),
            environments.clone(),
            watch::Timing {
                silence: std::time::Duration::from_secs(instance.silence_seconds),
                max_backoff: std::time::Duration::from_secs(instance.max_backoff_seconds),
            },
            status.clone(),
            live.clone(),
        );
        tasks.push(tokio::spawn(watcher.run()));
    }
    Ok((Instances(std::sync::Arc::new(clients)), tasks))
}

/// The configured Argo CD instances' clients, by name; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Instances(std::sync::Arc<std::collections::BTreeMap<String, std::sync::Arc<client::Client>>>);

impl Instances {
    pub fn get(&self, name: &str) -> Option<std::sync::Arc<client::Client>> {
        self.0.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// Argo CD's own namespace when an application does not say (`argocd`).
pub const DEFAULT_NAMESPACE: &str = "argocd";

/// The label that names an application's service outright.
pub const SERVICE_LABEL: &str = "landfall.io/service";

/// `*` matches any run of characters, `?` one character; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point for the last `*`.
    let (mut p, mut t, mut star, mut resume) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            p += 1;
            resume = t;
        } else if let Some(s) = star {
            p = s + 1;
            resume += 1;
            t = resume;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

fn rules_hold(rules: &MatchRules, instance: &str, app: &Application) -> bool {
    if rules.is_empty() {
        return false;
    }
    let holds = |pattern: &Option<String>, value: &str| pattern.as_deref().is_none_or(|p| glob_match(p, value));
    let destination = &app.spec.destination;
    let cluster_holds = rules.cluster.as_deref().is_none_or(|pattern| {
        [&destination.name, &destination.server].into_iter().flatten().any(|value| glob_match(pattern, value))
    });
    rules.labels.iter().all(|(key, value)| app.metadata.labels.get(key) == Some(value))
        && holds(&rules.namespace, destination.namespace.as_deref().unwrap_or_default())
        && cluster_holds
        && holds(&rules.project, &app.spec.project)
        && holds(&rules.name, &app.metadata.name)
        && holds(&rules.instance, instance)
}

/// The first configured environment whose rules all hold for the application.
pub fn environment_of<'a>(
    environments: &'a [EnvironmentConfig],
    instance: &str,
    app: &Application,
) -> Option<&'a EnvironmentConfig> {
    environments.iter().find(|environment| rules_hold(&environment.rules, instance, app))
}

/// The logical service an application deploys: the `landfall.io/service` label, else
/// the application's name without its environment (`shop-api-prod` → `shop-api`, for an
/// environment named or aliased `prod`), else the name itself.
pub fn service_of(app: &Application, environment: Option<&EnvironmentConfig>) -> String {
    if let Some(service) = app.metadata.labels.get(SERVICE_LABEL).filter(|s| !s.is_empty()) {
        return service.clone();
    }
    let name = &app.metadata.name;
    if let Some(environment) = environment {
        for word in std::iter::once(&environment.name).chain(&environment.aliases) {
            let word = word.to_lowercase();
            for stripped in [name.strip_suffix(&format!("-{word}")), name.strip_prefix(&format!("{word}-"))] {
                if let Some(stripped) = stripped.filter(|s| !s.is_empty()) {
                    return stripped.to_string();
                }
            }
        }
    }
    name.clone()
}

/// The application's namespace, or Argo CD's own when the object does not say.
pub fn namespace_of(app: &Application) -> &str {
    if app.metadata.namespace.is_empty() { DEFAULT_NAMESPACE } else { &app.metadata.namespace }
}

/// What the ledger keeps of an application now.
pub fn application_fact(
    instance: &str,
    app: &Application,
    environments: &[EnvironmentConfig],
    observed_at: i64,
) -> ApplicationFact {
    let environment = environment_of(environments, instance, app);
    let destination = &app.spec.destination;
    ApplicationFact {
        instance: instance.to_string(),
        namespace: namespace_of(app).to_string(),
        name: app.metadata.name.clone(),
        project: if app.spec.project.is_empty() { "default".into() } else { app.spec.project.clone() },
        environment: environment.map(|e| e.name.clone()),
        service: Some(service_of(app, environment)),
        sources: serde_json::Value::Array(app.spec.effective_sources()),
        dest_server: destination.server.clone(),
        dest_name: destination.name.clone(),
        dest_namespace: destination.namespace.clone(),
        sync_status: app.status.sync.status.clone(),
        health_status: app.status.health.status.clone(),
        automated_sync: app.spec.automated_sync(),
        observed_at,
        uid: Some(app.metadata.uid.clone()).filter(|uid| !uid.is_empty()),
    }
}

/// Images as `status.summary.images` lists them; ones Landfall cannot read are skipped.
pub fn images_of(app: &Application) -> Vec<ImageRef> {
    app.status.summary.images.iter().filter_map(|image| ImageRef::parse(image).ok()).collect()
}

fn time(value: &Option<String>) -> Option<i64> {
    value.as_deref().and_then(parse_rfc3339)
}

fn initiated_by(by: &Option<wire::InitiatedBy>) -> (Option<String>, bool) {
    match by {
        Some(by) if by.automated => (Some("automated".into()), true),
        Some(by) => (by.username.clone(), false),
        None => (None, false),
    }
}

/// A history entry as a deployment. A rollback is an entry that returns to the revision
/// of an entry before the previous one.
pub fn history_deployment(
    instance: &str,
    app: &Application,
    entry: &HistoryEntry,
    images: Vec<ImageRef>,
) -> Option<DeploymentFact> {
    let finished = time(&entry.deployed_at)?;
    let history = &app.status.history;
    let position = history.iter().position(|h| h.id == entry.id).unwrap_or_default();
    let is_rollback = position >= 1
        && history[position - 1].revision != entry.revision
        && history[..position - 1].iter().any(|h| h.revision == entry.revision && !entry.revision.is_empty());
    let (initiated_by, automated) = initiated_by(&entry.initiated_by);
    Some(DeploymentFact {
        instance: instance.to_string(),
        namespace: namespace_of(app).to_string(),
        application: app.metadata.name.clone(),
        history_id: entry.id,
        revision: entry.revision.clone(),
        revisions: entry.revisions.clone(),
        started_at: time(&entry.deploy_started_at).unwrap_or(finished),
        finished_at: Some(finished),
        phase: "Succeeded".into(),
        message: None,
        initiated_by,
        automated,
        is_rollback,
        images_before: Vec::new(),
        images_after: images,
    })
}

/// A finished sync that failed or errored leaves no history entry in Argo CD; Landfall
/// keeps it as a deployment with a negative id made from its start time (seconds), so
/// that timelines and failure rates see it.
pub fn failed_operation(instance: &str, app: &Application, operation: &OperationState) -> Option<DeploymentFact> {
    if !matches!(operation.phase.as_str(), "Failed" | "Error") {
        return None;
    }
    let started = time(&operation.started_at)?;
    let finished = time(&operation.finished_at)?;
    let sync = operation.operation.sync.clone().unwrap_or_default();
    let result = operation.sync_result.clone().unwrap_or_default();
    let (initiated_by, automated) = initiated_by(&operation.operation.initiated_by);
    Some(DeploymentFact {
        instance: instance.to_string(),
        namespace: namespace_of(app).to_string(),
        application: app.metadata.name.clone(),
        history_id: -(started / 1000),
        revision: result.revision.or(sync.revision).unwrap_or_default(),
        revisions: if result.revisions.is_empty() { sync.revisions } else { result.revisions },
        started_at: started,
        finished_at: Some(finished),
        phase: operation.phase.clone(),
        message: operation.message.clone(),
        initiated_by,
        automated,
        is_rollback: false,
        images_before: Vec::new(),
        images_after: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(json: serde_json::Value) -> Application {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn globs_match_like_shells() {
        assert!(glob_match("*-prod", "shop-api-prod"));
        assert!(!glob_match("*-prod", "shop-api-production"));
        assert!(glob_match("prod-?", "prod-1"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn the_first_environment_whose_rules_all_hold_wins() {
        let environments: Vec<EnvironmentConfig> = toml_environments(
            r#"
            [[environment]]
            name = "production"
            aliases = ["prod"]
            match = { labels = { env = "prod" }, cluster = "gke-*" }
            [[environment]]
            name = "staging"
            match = { namespace = "*-staging" }
            [[environment]]
            name = "nowhere"
            "#,
        );
        let prod = app(serde_json::json!({
            "metadata": {"name": "shop-api-prod", "labels": {"env": "prod"}},
            "spec": {"destination": {"name": "gke-eu", "namespace": "shop"}}
        }));
        let found = environment_of(&environments, "main", &prod).map(|e| e.name.as_str());
        assert_eq!(found, Some("production"));
        assert_eq!(service_of(&prod, environment_of(&environments, "main", &prod)), "shop-api");
        let wrong_cluster = app(serde_json::json!({
            "metadata": {"name": "x", "labels": {"env": "prod"}},
            "spec": {"destination": {"server": "https://eks.example", "namespace": "shop"}}
        }));
        assert_eq!(environment_of(&environments, "main", &wrong_cluster), None, "every rule must hold");
        let staging = app(serde_json::json!({
            "metadata": {"name": "shop-api", "labels": {"landfall.io/service": "shop"}},
            "spec": {"destination": {"namespace": "shop-staging"}}
        }));
        assert_eq!(environment_of(&environments, "main", &staging).map(|e| e.name.as_str()), Some("staging"));
        assert_eq!(service_of(&staging, None), "shop", "the label wins");
    }

    fn toml_environments(text: &str) -> Vec<EnvironmentConfig> {
        #[derive(serde::Deserialize)]
        struct File {
            environment: Vec<EnvironmentConfig>,
        }
        use figment::providers::Format;
        let file: File = figment::Figment::from(figment::providers::Toml::string(text)).extract().unwrap();
        file.environment
    }

    #[test]
    fn history_entries_become_deployments_and_rollbacks_are_recognised() {
        let app = app(serde_json::json!({
            "metadata": {"name": "shop", "namespace": "apps"},
            "status": {"history": [
                {"id": 1, "revision": "a", "deployedAt": "2024-03-04T10:00:00Z", "deployStartedAt": "2024-03-04T09:59:00Z",
                 "initiatedBy": {"username": "ann"}},
                {"id": 2, "revision": "b", "deployedAt": "2024-03-04T11:00:00Z", "initiatedBy": {"automated": true}},
                {"id": 3, "revision": "a", "deployedAt": "2024-03-04T12:00:00Z"}
            ]}
        }));
        let facts: Vec<DeploymentFact> =
            app.status.history.iter().filter_map(|h| history_deployment("main", &app, h, Vec::new())).collect();
        assert_eq!(facts.len(), 3);
        assert_eq!(facts[0].namespace, "apps");
        assert_eq!(facts[0].started_at + 60_000, facts[0].finished_at.unwrap());
        assert_eq!((facts[0].initiated_by.as_deref(), facts[0].automated), (Some("ann"), false));
        assert_eq!((facts[1].initiated_by.as_deref(), facts[1].automated), (Some("automated"), true));
        assert_eq!(facts.iter().map(|f| f.is_rollback).collect::<Vec<_>>(), [false, false, true]);
    }

    #[test]
    fn only_failed_operations_become_extra_deployments() {
        let app = app(serde_json::json!({"metadata": {"name": "shop"}}));
        let failed: OperationState = serde_json::from_value(serde_json::json!({
            "phase": "Failed", "message": "one or more objects failed to apply",
            "startedAt": "2024-03-04T10:00:00Z", "finishedAt": "2024-03-04T10:01:00Z",
            "operation": {"sync": {"revision": "abc"}, "initiatedBy": {"username": "ann"}}
        }))
        .unwrap();
        let fact = failed_operation("main", &app, &failed).unwrap();
        assert!(fact.history_id < 0);
        assert_eq!((fact.phase.as_str(), fact.revision.as_str(), fact.namespace.as_str()), ("Failed", "abc", "argocd"));
        let succeeded = OperationState { phase: "Succeeded".into(), ..failed.clone() };
        assert!(failed_operation("main", &app, &succeeded).is_none());
        let running = OperationState { phase: "Running".into(), finished_at: None, ..failed };
        assert!(failed_operation("main", &app, &running).is_none());
    }
}
