//! The forge connector: GitHub (github.com and Enterprise Server) and GitLab (gitlab.com
//! and self-managed). It reads pull- and merge-request details and CI runs through the
//! REST APIs, receives signed webhooks, and turns both into ledger facts: pull requests
//! with their titles, authors and features, and pipeline runs with their jobs.
//!
//! A configured `[[repository]]` belongs to a `[[forge]]` when it names it (`forge =`) or,
//! failing that, when its URL's host is the forge's web host; its path on the forge
//! (`owner/repo`, `group/subgroup/project`) is `forge_project` or the URL's path without
//! `.git`. Webhooks name the repository by that path, which is how they find it.

pub mod api;
pub mod github;
pub mod gitlab;
pub mod webhook;
pub mod worker;

use std::sync::Arc;

use crate::config::{ForgeConfig, ForgeKind, RepositoryConfig, Settings};
use crate::correlate::FeatureProjects;
use crate::ledger::{LedgerError, PipelineStepFact, PullRequestFact};

pub use api::{Api, Retry};

#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{forge}: cannot reach {url}: {reason}")]
    Unreachable { forge: String, url: String, reason: String },
    #[error("{forge}: the token was refused (401) for {what}; check the variable named by `token_env`")]
    Unauthorized { forge: String, what: String },
    #[error("{forge}: {status} for {what}: {message}")]
    Status { forge: String, what: String, status: u16, message: String },
    #[error("{forge}: rate limited for {what}; the forge asks to wait {wait_seconds} s, more than Landfall waits")]
    RateLimited { forge: String, what: String, wait_seconds: u64 },
    #[error("{forge}: the answer to {what} is not what {kind} sends: {reason}")]
    Decode { forge: String, kind: &'static str, what: String, reason: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// One configured forge: its settings and, when a token is set, its API client.
pub struct Forge {
    pub config: ForgeConfig,
    pub api: Api,
    /// Whether a token was found; without one only public data can be read.
    pub has_token: bool,
    /// The webhook secret, read once at start-up; `None` refuses every webhook.
    secret: Option<Secret>,
}

/// A secret that never shows in `Debug` output.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Forge {
    /// Builds the forge from its settings and the process environment (`env`).
    pub fn new(config: &ForgeConfig, env: impl Fn(&str) -> Option<String>, retry: Retry) -> Forge {
        let read = |name: &Option<String>| name.as_deref().and_then(&env).filter(|v| !v.is_empty());
        let token = read(&config.token_env);
        let secret = read(&config.webhook_secret_env).map(|s| Secret(Arc::from(s)));
        Forge {
            has_token: token.is_some(),
            api: Api::new(config, token.as_deref(), retry),
            config: config.clone(),
            secret,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn kind(&self) -> ForgeKind {
        self.config.kind
    }

    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// The host people browse and clone from: `github.com` for `api.github.com`,
    /// otherwise the API's own host (Enterprise Server and GitLab serve both on one).
    pub fn web_host(&self) -> Option<String> {
        web_host(&self.config)
    }
}

pub fn web_host(config: &ForgeConfig) -> Option<String> {
    let url = url::Url::parse(config.url()).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match host.strip_prefix("api.") {
        Some(rest) if config.kind == ForgeKind::Github && rest == "github.com" => rest.to_string(),
        _ => host,
    })
}

/// A repository's host and path as its clone URL gives them: `https://host/a/b.git`,
/// `ssh://git@host/a/b.git` or `git@host:a/b.git`. `None` for local paths.
pub fn host_and_path(url: &str) -> Option<(String, String)> {
    let (host, path) = if url.contains("://") {
        let parsed = url::Url::parse(url).ok()?;
        if parsed.scheme() == "file" {
            return None;
        }
        (parsed.host_str()?.to_string(), parsed.path().to_string())
    } else {
        let (user_host, path) = url.split_once(':')?;
        let host = user_host.rsplit_once('@').map_or(user_host, |(_, host)| host);
        if host.is_empty() || host.contains('/') {
            return None;
        }
        (host.to_string(), path.to_string())
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    (!path.is_empty()).then(|| (host.to_ascii_lowercase(), path.to_string()))
}

/// Which repository is where on which forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The Landfall name (`[[repository]] name`).
    pub repository: String,
    pub forge: String,
    /// `owner/repo` or `group/subgroup/project` (or a numeric GitLab project id).
    pub project: String,
}

/// Places each configured repository on its forge, by the rules in the module's comment.
pub fn place(repositories: &[RepositoryConfig], forges: &[ForgeConfig]) -> Vec<Placement> {
    repositories
        .iter()
        .filter_map(|repository| {
            let from_url = host_and_path(&repository.url);
            let forge = match &repository.forge {
                Some(name) => forges.iter().find(|f| &f.name == name)?,
                None => {
                    let (host, _) = from_url.as_ref()?;
                    forges.iter().find(|f| web_host(f).as_deref() == Some(host.as_str()))?
                }
            };
            let project = repository.forge_project.clone().or_else(|| from_url.map(|(_, path)| path))?;
            Some(Placement { repository: repository.name.clone(), forge: forge.name.clone(), project })
        })
        .collect()
}

/// Every configured forge with the repositories it hosts; cheap to clone.
#[derive(Clone, Default)]
pub struct Forges {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    forges: Vec<Forge>,
    placements: Vec<Placement>,
}

impl Forges {
    /// The configured forges, with tokens and secrets from the process environment and
    /// the default retry policy: what `landfall serve` and `landfall ingest` use.
    pub fn from_env(settings: &Settings) -> Forges {
        Forges::new(settings, |name| std::env::var(name).ok(), Retry::default())
    }

    pub fn new(settings: &Settings, env: impl Fn(&str) -> Option<String>, retry: Retry) -> Forges {
        let forges = settings.forges.iter().map(|config| Forge::new(config, &env, retry)).collect();
        let placements = place(&settings.repositories, &settings.forges);
        Forges { inner: Arc::new(Inner { forges, placements }) }
    }

    pub fn is_empty(&self) -> bool {
        self.inner.forges.is_empty()
    }

    pub fn all(&self) -> &[Forge] {
        &self.inner.forges
    }

    pub fn by_name(&self, name: &str) -> Option<&Forge> {
        self.inner.forges.iter().find(|f| f.name() == name)
    }

    pub fn of_kind(&self, kind: ForgeKind) -> impl Iterator<Item = &Forge> {
        self.inner.forges.iter().filter(move |f| f.kind() == kind)
    }

    pub fn placements(&self) -> &[Placement] {
        &self.inner.placements
    }

    /// Where a Landfall repository lives, if on a forge.
    pub fn placement_of(&self, repository: &str) -> Option<(&Forge, &Placement)> {
        let placement = self.inner.placements.iter().find(|p| p.repository == repository)?;
        Some((self.by_name(&placement.forge)?, placement))
    }

    /// The Landfall repository a webhook of `forge` names by its path (or, on GitLab, its
    /// numeric project id); paths compare without regard to case, as the forges do.
    pub fn repository_for(&self, forge: &str, paths: &[&str]) -> Option<&Placement> {
        self.inner
            .placements
            .iter()
            .filter(|p| p.forge == forge)
            .find(|p| paths.iter().any(|path| !path.is_empty() && p.project.eq_ignore_ascii_case(path)))
    }
}

/// What either forge says of a pull (merge) request, before it is placed in a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PullRequestDetails {
    pub number: i64,
    pub title: Option<String>,
    pub body: Option<String>,
    pub author: Option<String>,
    pub head_branch: Option<String>,
    /// Epoch milliseconds; `None` while not merged.
    pub merged_at: Option<i64>,
    pub merge_commit_sha: Option<String>,
}

impl PullRequestDetails {
    pub fn is_merged(&self) -> bool {
        self.merged_at.is_some()
    }

    /// The ledger's fact, with the feature keys its title, body and branch name.
    pub fn into_fact(self, repository: &str, projects: &FeatureProjects, fetched_at: Option<i64>) -> PullRequestFact {
        let text = [&self.title, &self.body, &self.head_branch]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        PullRequestFact {
            repository: repository.to_string(),
            number: self.number,
            feature_keys: projects.keys_in(&text),
            title: self.title,
            body: self.body,
            author: self.author,
            head_branch: self.head_branch,
            merged_at: self.merged_at,
            merge_commit_sha: self.merge_commit_sha.map(|s| s.to_ascii_lowercase()),
            fetched_at,
        }
    }
}

/// The ledger's step kind for a CI job, from its stage and name: what the job does by
/// the words teams usually use for it; `other` when nothing fits.
pub fn step_kind(stage: Option<&str>, name: &str) -> &'static str {
    const KINDS: [(&str, &[&str]); 6] = [
        ("pre-sync", &["pre-sync", "presync"]),
        ("post-sync", &["post-sync", "postsync", "smoke"]),
        ("scan", &["scan", "trivy", "snyk", "codeql", "security", "sast", "audit", "grype"]),
        ("deploy", &["deploy", "release", "publish", "production", "staging", "rollout"]),
        ("test", &["test", "lint", "check", "spec", "verify", "e2e"]),
        ("build", &["build", "compile", "docker", "image", "package", "bundle"]),
    ];
    for text in stage.into_iter().chain(std::iter::once(name)) {
        let text = text.to_ascii_lowercase();
        if let Some((kind, _)) = KINDS.iter().find(|(_, words)| words.iter().any(|w| text.contains(w))) {
            return kind;
        }
    }
    "other"
}

/// Keeps the steps already stored for a run when a webhook brings none (a run reported
/// by `landfall report` keeps its steps when the forge's webhook for it arrives).
pub fn with_steps(mut steps: Vec<PipelineStepFact>, existing: Vec<PipelineStepFact>) -> Vec<PipelineStepFact> {
    if steps.is_empty() {
        steps = existing;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RepositoryKind;

    fn forge(name: &str, kind: ForgeKind, url: Option<&str>) -> ForgeConfig {
        ForgeConfig { name: name.into(), kind, url: url.map(Into::into), token_env: None, webhook_secret_env: None }
    }

    fn repository(name: &str, url: &str) -> RepositoryConfig {
        RepositoryConfig {
            name: name.into(),
            url: url.into(),
            kind: RepositoryKind::Source,
            branches: vec![],
            token_env: None,
            ssh_key: None,
            pull_request_patterns: vec![],
            forge: None,
            forge_project: None,
        }
    }

    #[test]
    fn clone_urls_give_host_and_path() {
        let cases = [
            ("https://github.com/acme/shop-api.git", Some(("github.com", "acme/shop-api"))),
            ("https://bot:x@GitLab.example.com/group/sub/project", Some(("gitlab.example.com", "group/sub/project"))),
            ("ssh://git@github.example.com:22/acme/shop.git", Some(("github.example.com", "acme/shop"))),
            ("git@gitlab.com:group/project.git", Some(("gitlab.com", "group/project"))),
            ("/srv/git/shop", None),
            ("file:///srv/git/shop", None),
            ("https://github.com/", None),
        ];
        for (url, expected) in cases {
            let found = host_and_path(url);
            assert_eq!(found.as_ref().map(|(h, p)| (h.as_str(), p.as_str())), expected, "{url}");
        }
    }

    #[test]
    fn web_hosts_follow_the_api_url() {
        assert_eq!(web_host(&forge("gh", ForgeKind::Github, None)).as_deref(), Some("github.com"));
        let enterprise = forge("ghe", ForgeKind::Github, Some("https://github.example.com/api/v3"));
        assert_eq!(web_host(&enterprise).as_deref(), Some("github.example.com"));
        assert_eq!(web_host(&forge("gl", ForgeKind::Gitlab, None)).as_deref(), Some("gitlab.com"));
    }

    #[test]
    fn repositories_are_placed_by_name_then_host() {
        let forges = [
            forge("github", ForgeKind::Github, None),
            forge("gitlab", ForgeKind::Gitlab, Some("https://gitlab.example.com")),
        ];
        let mut local = repository("local", "/srv/git/shop");
        local.forge = Some("github".into());
        local.forge_project = Some("acme/local".into());
        let mut unnamed_local = repository("unnamed", "/srv/git/other");
        unnamed_local.forge = Some("github".into());
        let repositories = [
            repository("shop-api", "https://github.com/acme/shop-api.git"),
            repository("billing", "git@gitlab.example.com:finance/billing.git"),
            repository("elsewhere", "https://bitbucket.org/acme/x.git"),
            local,
            unnamed_local,
        ];
        let placed = place(&repositories, &forges);
        let names: Vec<(&str, &str, &str)> =
            placed.iter().map(|p| (p.repository.as_str(), p.forge.as_str(), p.project.as_str())).collect();
        assert_eq!(
            names,
            [
                ("shop-api", "github", "acme/shop-api"),
                ("billing", "gitlab", "finance/billing"),
                ("local", "github", "acme/local")
            ]
        );
    }

    #[test]
    fn steps_get_kinds_from_stage_and_name() {
        assert_eq!(step_kind(Some("build"), "compile"), "build");
        assert_eq!(step_kind(Some("test"), "test-image"), "test");
        assert_eq!(step_kind(Some("deploy"), "production"), "deploy");
        assert_eq!(step_kind(None, "Run Trivy"), "scan");
        assert_eq!(step_kind(None, "Set up job"), "other");
    }
}
