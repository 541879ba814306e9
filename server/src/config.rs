//! Settings: defaults, then a TOML file, then `LANDFALL_` environment variables (`__`
//! separates nested keys), then command-line flags, each overriding the one before.
//! Unknown keys and bad values stop start-up with one message that names the key, where
//! it came from, and what is accepted. Secrets never appear in `Debug` or error text.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The configuration file read from the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "landfall.toml";
const ENV_PREFIX: &str = "LANDFALL_";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the web server listens on.
    pub listen: ListenAddr,
    /// Folder for Landfall's own files: the SQLite ledger, clones of remote repositories.
    pub data_dir: PathBuf,
    /// The ledger; SQLite file `landfall.db` in `data_dir` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<DatabaseUrl>,
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or `tracing` filter directives.
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    /// The built front end (`pkg/` with the wasm bundle, CSS, static files).
    pub site_root: PathBuf,
    /// Seconds between background syncs of the sources while `serve` runs.
    pub sync_interval_seconds: u64,
    /// Git repositories to ingest (`[[repository]]` tables).
    #[serde(default, rename = "repository", skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryConfig>,
    #[serde(default)]
    pub features: FeaturesConfig,
    #[serde(default)]
    pub reports: ReportsConfig,
    /// Argo CD instances to watch (`[[argocd]]` tables).
    #[serde(default, rename = "argocd", skip_serializing_if = "Vec::is_empty")]
    pub argocd: Vec<ArgoCdConfig>,
    /// The Jira instance feature details come from (`[jira]`); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira: Option<JiraConfig>,
    /// Kubernetes clusters to read directly (`[[cluster]]`); none by default.
    #[serde(default, rename = "cluster", skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterConfig>,
    /// GitHub and GitLab instances (`[[forge]]`): pull-request details, pipelines, webhooks.
    #[serde(default, rename = "forge", skip_serializing_if = "Vec::is_empty")]
    pub forges: Vec<ForgeConfig>,
    /// Environments and the rules that map applications to them (`[[environment]]`).
    #[serde(default, rename = "environment", skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<EnvironmentConfig>,
    /// Allow the actions that change Argo CD (sync, refresh, terminate, rollback, create,
    /// update, delete, executing rollback plans). Off by default: until then every action
    /// is refused, recorded in the audit log, and nothing is sent to Argo CD.
    #[serde(default)]
    pub actions_enabled: bool,
    /// Where `landfall report` reaches the Landfall server.
    pub server_url: String,
}

/// `[reports]`: the CI report API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// The environment variable holding the bearer token CI jobs send. The report API
    /// answers 401 to everything while the variable is unset.
    pub token_env: String,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig { token_env: crate::reports::TOKEN_VARIABLE.to_string() }
    }
}

/// One `[[repository]]`: application code or a GitOps (manifests) repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// Unique; used in URLs, answers and the clone's folder name.
    pub name: String,
    /// A remote URL (cloned into the data directory) or a local path or `file://` URL
    /// (read in place).
    pub url: String,
    #[serde(default)]
    pub kind: RepositoryKind,
    /// Branches to ingest; the repository's default branch when empty.
    #[serde(default)]
    pub branches: Vec<String>,
    /// Name of the environment variable holding an HTTPS access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Private key file for SSH URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<PathBuf>,
    /// More ways this repository's commit messages name a pull request, beyond GitHub's
    /// and GitLab's: text around a `{number}` placeholder, such as `Merged PR {number}:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_request_patterns: Vec<String>,
    /// The `[[forge]]` (by name) that hosts this repository; found by the URL's host when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<String>,
    /// The repository on its forge: `owner/repo` on GitHub, `group/subgroup/project` (or the
    /// numeric project id) on GitLab; taken from the URL's path when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_project: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepositoryKind {
    /// Application code: commits, pull requests, features.
    #[default]
    Source,
    /// A GitOps repository: who changed which environment's manifests.
    Manifests,
}

impl RepositoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RepositoryKind::Source => "source",
            RepositoryKind::Manifests => "manifests",
        }
    }
}

/// One `[[argocd]]`: an Argo CD API server to watch and act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdConfig {
    /// Unique; names the instance in URLs and answers.
    pub name: String,
    /// The API server's base URL, such as `https://argocd.example.com`.
    pub url: String,
    /// The environment variable holding an API token (an account or project-role token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// A local account to sign in with instead of a token…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// …and the environment variable holding its password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// PEM file of the certificate authorities to trust for this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Only for trying things out.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Seconds without an event or keepalive after which the watch reconnects.
    #[serde(default = "default_silence_seconds")]
    pub silence_seconds: u64,
    /// The longest wait between reconnection attempts after a break.
    #[serde(default = "default_max_backoff_seconds")]
    pub max_backoff_seconds: u64,
}

fn default_silence_seconds() -> u64 {
    45
}

fn default_max_backoff_seconds() -> u64 {
    30
}

/// `[jira]`: where feature details (summary, status, people, versions) come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// The site's base URL: `https://acme.atlassian.net`, or a Data Center URL with its
    /// context path, such as `https://jira.example.com/jira`.
    pub url: String,
    pub flavor: JiraFlavor,
    /// Cloud only: the account the API token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The variable holding the Cloud API token or the Data Center personal access token.
    pub token_env: String,
    /// The variable holding the secret webhooks are verified with; the webhook endpoint
    /// refuses every delivery while it is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_env: Option<String>,
    /// Seconds between refreshes of every feature's details.
    #[serde(default = "default_jira_refresh_seconds")]
    pub refresh_interval_seconds: u64,
    /// Data Center / Server: the custom field holding an issue's epic (*Epic Link*, such as
    /// `customfield_10008`), read when the issue has no `parent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epic_link_field: Option<String>,
}

fn default_jira_refresh_seconds() -> u64 {
    900
}

/// Which Jira REST API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JiraFlavor {
    /// Jira Cloud: REST v3, `/rest/api/3/search/jql`, email and API token.
    Cloud,
    /// Jira Data Center or Server: REST v2, `/rest/api/2/search`, personal access token.
    Datacenter,
}

impl JiraFlavor {
    pub fn as_str(self) -> &'static str {
        match self {
            JiraFlavor::Cloud => "cloud",
            JiraFlavor::Datacenter => "datacenter",
        }
    }
}

/// One `[[cluster]]`: a Kubernetes cluster Argo CD deploys to, read directly for the
/// health and images its resource tree lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Unique; the Argo CD destination cluster name (`spec.destination.name`) or server
    /// URL (`spec.destination.server`) of the applications this cluster serves.
    pub name: String,
    /// A kubeconfig file; `$KUBECONFIG` or `~/.kube/config` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; its current context when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Use the Pod's service account instead of a kubeconfig.
    #[serde(default)]
    pub in_cluster: bool,
    /// Seconds between readings.
    #[serde(default = "default_cluster_interval_seconds")]
    pub interval_seconds: u64,
}

fn default_cluster_interval_seconds() -> u64 {
    60
}

/// One `[[forge]]`: a GitHub (github.com or Enterprise Server) or GitLab (gitlab.com or
/// self-managed) instance. Secrets are named by environment variable, never given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeConfig {
    /// Unique; names the forge in logs, answers and `[[repository]] forge`.
    pub name: String,
    pub kind: ForgeKind,
    /// The API's base URL: `https://api.github.com`, `https://github.example.com/api/v3`,
    /// `https://gitlab.com` or a self-managed GitLab's URL (`/api/v4` is added). The
    /// public service's URL when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable holding an API token; without one, only webhooks are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// The environment variable holding the webhook secret; webhooks are refused without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitlab,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
        }
    }
}

impl ForgeConfig {
    /// The configured URL, or the public service's.
    pub fn url(&self) -> &str {
        match (&self.url, self.kind) {
            (Some(url), _) => url.trim_end_matches('/'),
            (None, ForgeKind::Github) => "https://api.github.com",
            (None, ForgeKind::Gitlab) => "https://gitlab.com",
        }
    }
}

/// One `[[environment]]`: dev, qa, staging, production…
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    pub name: String,
    /// Order of promotion: dev < qa < staging < production.
    #[serde(default)]
    pub rank: i64,
    /// Other names people use for it in questions, such as `prod`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Which applications belong here; every rule given must hold.
    #[serde(default, rename = "match")]
    pub rules: MatchRules,
}

/// Rules that map an Argo CD application to an environment. An application belongs to
/// the first environment (in file order) whose rules all hold; a table without rules
/// matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRules {
    /// Labels the Application must carry with these values.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The destination namespace, as a pattern (`*` and `?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The destination cluster's name or server URL, as a pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The Argo CD project, as a pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The Application's name, as a pattern, such as `*-prod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Argo CD instance's name, as a pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl MatchRules {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
            && self.namespace.is_none()
            && self.cluster.is_none()
            && self.project.is_none()
            && self.name.is_none()
            && self.instance.is_none()
    }
}

/// `[features]`: which issue keys count as features.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// Jira project keys, such as `SHOP`; keys of other projects are ignored.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Leave keys Jira answers "not found" for (typos, keys of another site) out of
    /// feature lists, cards and answers. They stay stored, flagged.
    #[serde(default)]
    pub exclude_not_found: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: ListenAddr(SocketAddr::from(([127, 0, 0, 1], 3000))),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            log_level: LogLevel("info".to_string()),
            log_format: LogFormat::Text,
            site_root: PathBuf::from("target/site"),
            sync_interval_seconds: 300,
            repositories: Vec::new(),
            features: FeaturesConfig::default(),
            reports: ReportsConfig::default(),
            argocd: Vec::new(),
            jira: None,
            clusters: Vec::new(),
            forges: Vec::new(),
            environments: Vec::new(),
            actions_enabled: false,
            server_url: "http://127.0.0.1:3000".to_string(),
        }
    }
}

impl Settings {
    /// The ledger's URL: the configured one, or the embedded SQLite file.
    pub fn database(&self) -> DatabaseUrl {
        self.database_url.clone().unwrap_or_else(|| DatabaseUrl::sqlite_file(&self.data_dir.join("landfall.db")))
    }
}

/// Values given on the command line; `None` leaves the key to the layers below.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_root: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {} does not exist (given with --config)", .0.display())]
    MissingFile(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("data directory {path}: {reason}; set --data-dir, LANDFALL_DATA_DIR or `data_dir` to a folder Landfall can create and write", path = .path.display())]
    DataDir { path: PathBuf, reason: String },
}

/// Reads the settings from every layer. `environment` is passed in (rather than read
/// from the process) so tests can supply their own.
pub fn load(
    config_file: Option<&Path>,
    environment: impl IntoIterator<Item = (String, String)>,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    match config_file {
        Some(path) if !path.is_file() => return Err(ConfigError::MissingFile(path.to_path_buf())),
        Some(path) => figment = figment.merge(Toml::file_exact(path)),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
        }
        None => {}
    }
    let variables: Vec<(String, String)> = environment
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && !is_reserved_variable(name))
        .collect();
    figment = figment.merge(EnvSnapshot { variables, inner: Env::prefixed(ENV_PREFIX).split("__") });
    figment = figment.merge(Serialized::globals(overrides));
    let settings = figment.extract::<Settings>().map_err(|errors| ConfigError::Invalid(describe(errors)))?;
    settings.validate().map_err(ConfigError::Invalid)?;
    Ok(settings)
}

impl Settings {
    fn validate_argocd(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for (index, instance) in self.argocd.iter().enumerate() {
            let at = format!("argocd[{index}]");
            let name = &instance.name;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
                return Err(format!("setting `{at}.name` is `{name}`; accepted: letters, digits, '.', '_' and '-'"));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("setting `{at}.name`: `{name}` is used by another instance; names must be unique"));
            }
            match url::Url::parse(&instance.url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => {
                    return Err(format!(
                        "setting `{at}.url` is `{}`; accepted: the API server's https:// (or http://) URL",
                        instance.url
                    ));
                }
            }
            match (&instance.token_env, &instance.username, &instance.password_env) {
                (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                _ => {
                    return Err(format!(
                        "setting `{at}`: give either `token_env` (the variable holding an API token) or both \
                         `username` and `password_env`"
                    ));
                }
            }
            if instance.silence_seconds < 5 {
                return Err(format!(
                    "setting `{at}.silence_seconds` is {}; at least 5 seconds is accepted (Argo CD sends a keepalive every 15)",
                    instance.silence_seconds
                ));
            }
            if !(1..=3600).contains(&instance.max_backoff_seconds) {
                return Err(format!(
                    "setting `{at}.max_backoff_seconds` is {}; accepted: 1 to 3600 seconds",
                    instance.max_backoff_seconds
                ));
            }
        }
        Ok(())
    }

    fn validate_jira(&self) -> Result<(), String> {
        let Some(jira) = &self.jira else { return Ok(()) };
        match url::Url::parse(&jira.url) {
            // The URL is not echoed: it may carry a password.
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                return Err("setting `jira.url` contains credentials; accepted: the site's base URL without \
                            credentials (the token comes from the variable named by `token_env`)"
                    .to_string());
            }
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none() => {}
            _ => {
                return Err(format!(
                    "setting `jira.url` is `{}`; accepted: the site's https:// (or http://) base URL without \
                     query or fragment, such as https://acme.atlassian.net or https://jira.example.com/jira",
                    jira.url
                ));
            }
        }
        let is_variable = |name: &str| {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !is_variable(&jira.token_env) {
            return Err(format!(
                "setting `jira.token_env` is `{}`; accepted: the name of the environment variable holding the token, \
                 such as JIRA_TOKEN",
                jira.token_env
            ));
        }
        if let Some(name) = jira.webhook_secret_env.as_deref().filter(|name| !is_variable(name)) {
            return Err(format!(
                "setting `jira.webhook_secret_env` is `{name}`; accepted: the name of the environment variable \
                 holding the webhook secret, such as JIRA_WEBHOOK_SECRET"
            ));
        }
        match (jira.flavor, jira.email.as_deref()) {
            (JiraFlavor::Cloud, Some(email)) if email.contains('@') && !email.contains(char::is_whitespace) => {}
            (JiraFlavor::Cloud, _) => {
                return Err("setting `jira.email`: Jira Cloud authenticates with an account's email address and an \
                            API token; accepted: the email address the token in `token_env` belongs to"
                    .to_string());
            }
            (JiraFlavor::Datacenter, Some(_)) => {
                return Err("setting `jira.email`: Data Center authenticates with a personal access token alone; \
                            accepted: no `email` with `flavor = \"datacenter\"`"
                    .to_string());
            }
            (JiraFlavor::Datacenter, None) => {}
        }
        if jira.refresh_interval_seconds < 5 {
            return Err(format!(
                "setting `jira.refresh_interval_seconds` is {}; at least 5 seconds is accepted",
                jira.refresh_interval_seconds
            ));
        }
        if let Some(field) = jira.epic_link_field.as_deref().filter(|field| !crate::jira::wire::is_custom_field(field))
        {
            return Err(format!(
                "setting `jira.epic_link_field` is `{field}`; accepted: a custom field id such as customfield_10008 \
                 (Jira shows it in the field's configuration URL)"
            ));
        }
        Ok(())
    }

    fn validate_forges(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for (index, forge) in self.forges.iter().enumerate() {
            let at = format!("forge[{index}]");
            let name = &forge.name;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
                return Err(format!("setting `{at}.name` is `{name}`; accepted: letters, digits, '.', '_' and '-'"));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("setting `{at}.name`: `{name}` is used by another forge; names must be unique"));
            }
            match url::Url::parse(forge.url()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => {
                    return Err(format!(
                        "setting `{at}.url` is `{}`; accepted: the API's https:// (or http://) URL, such as \
                         https://api.github.com, https://github.example.com/api/v3 or https://gitlab.example.com",
                        forge.url()
                    ));
                }
            }
            for (key, variable) in [("token_env", &forge.token_env), ("webhook_secret_env", &forge.webhook_secret_env)]
            {
                if let Some(variable) = variable
                    && (variable.is_empty() || !variable.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                {
                    // The value is not echoed: a secret pasted here by mistake stays out of logs.
                    return Err(format!(
                        "setting `{at}.{key}` is not the name of an environment variable; accepted: letters, digits \
                         and '_', such as GITHUB_TOKEN; the secret itself goes in that variable"
                    ));
                }
            }
        }
        for (index, repository) in self.repositories.iter().enumerate() {
            let at = format!("repository[{index}]");
            if let Some(forge) = &repository.forge
                && !self.forges.iter().any(|f| &f.name == forge)
            {
                let known: Vec<&str> = self.forges.iter().map(|f| f.name.as_str()).collect();
                let known = if known.is_empty() { "none is configured".to_string() } else { known.join(", ") };
                return Err(format!(
                    "setting `{at}.forge` is `{forge}`, which is not a configured `[[forge]]` name; known: {known}"
                ));
            }
            if let Some(project) = &repository.forge_project
                && (project.trim().is_empty()
                    || project.starts_with('/')
                    || project.ends_with('/')
                    || project.contains(char::is_whitespace))
            {
                return Err(format!(
                    "setting `{at}.forge_project` is `{project}`; accepted: `owner/repo` (GitHub), \
                     `group/subgroup/project` or a numeric project id (GitLab)"
                ));
            }
        }
        Ok(())
    }

    fn validate_clusters(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for (index, cluster) in self.clusters.iter().enumerate() {
            let at = format!("cluster[{index}]");
            let name = &cluster.name;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!(
                    "setting `{at}.name` is `{name}`; accepted: the Argo CD destination cluster name or server URL \
                     of the applications it serves, without spaces"
                ));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("setting `{at}.name`: `{name}` is used by another cluster; names must be unique"));
            }
            if cluster.in_cluster && (cluster.kubeconfig.is_some() || cluster.context.is_some()) {
                return Err(format!(
                    "setting `{at}`: `in_cluster = true` uses the Pod's service account; give it alone, or \
                     `kubeconfig` and `context` without it"
                ));
            }
            if cluster.kubeconfig.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
                return Err(format!("setting `{at}.kubeconfig` is empty; accepted: the path of a kubeconfig file"));
            }
            if cluster.context.as_ref().is_some_and(String::is_empty) {
                return Err(format!("setting `{at}.context` is empty; accepted: a context named in the kubeconfig"));
            }
            if cluster.interval_seconds < 10 {
                return Err(format!(
                    "setting `{at}.interval_seconds` is {}; at least 10 seconds is accepted",
                    cluster.interval_seconds
                ));
            }
        }
        Ok(())
    }

    fn validate_environments(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for (index, environment) in self.environments.iter().enumerate() {
            let at = format!("environment[{index}]");
            let name = &environment.name;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
                return Err(format!("setting `{at}.name` is `{name}`; accepted: letters, digits, '.', '_' and '-'"));
            }
            for alias in std::iter::once(name).chain(&environment.aliases) {
                if !names.insert(alias.to_lowercase()) {
                    return Err(format!(
                        "setting `{at}`: `{alias}` already names another environment; names and aliases must be unique"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks what types alone cannot: unique names, usable names and keys, bounds.
    fn validate(&self) -> Result<(), String> {
        match url::Url::parse(&self.server_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(format!(
                    "setting `server_url` is `{}`; an http:// or https:// URL of the Landfall server is accepted",
                    self.server_url
                ));
            }
        }
        if self.sync_interval_seconds < 10 {
            return Err(format!(
                "setting `sync_interval_seconds` is {}; at least 10 seconds is accepted",
                self.sync_interval_seconds
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, repository) in self.repositories.iter().enumerate() {
            let at = format!("repository[{index}]");
            let name = &repository.name;
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                || name.starts_with('.')
            {
                return Err(format!(
                    "setting `{at}.name` is `{name}`; accepted: letters, digits, '.', '_' and '-', not starting with '.'"
                ));
            }
            if !names.insert(name.as_str()) {
                return Err(format!(
                    "setting `{at}.name`: `{name}` is used by another repository; names must be unique"
                ));
            }
            if repository.url.trim().is_empty() {
                return Err(format!(
                    "setting `{at}.url` is empty; accepted: an https:// or ssh URL, a file:// URL or a local path"
                ));
            }
            if let Some(branch) = repository
                .branches
                .iter()
                .find(|b| b.is_empty() || b.starts_with('-') || b.contains(['\0', ' ', '~', '^', ':', '?', '*', '[']))
            {
                return Err(format!("setting `{at}.branches` has `{branch}`, which is not a branch name"));
            }
            for pattern in &repository.pull_request_patterns {
                if let Some(problem) = crate::correlate::pattern_problem(pattern) {
                    return Err(format!(
                        "setting `{at}.pull_request_patterns` has `{pattern}`, which {problem}; accepted: text around \
                         one `{{number}}`, such as \"Merged PR {{number}}:\""
                    ));
                }
            }
        }
        self.validate_argocd()?;
        self.validate_jira()?;
        self.validate_forges()?;
        self.validate_clusters()?;
        self.validate_environments()?;
        for project in &self.features.projects {
            let mut chars = project.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && project.len() >= 2
                && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(format!(
                    "setting `features.projects` has `{project}`; a Jira project key is accepted: an upper-case letter, then upper-case letters, digits or '_' (such as SHOP or PAY2)"
                ));
            }
        }
        Ok(())
    }
}

/// Variables with the prefix that are not settings: the test suite's database, the
/// config-file path itself, and the CI report token (a secret, read where it is used).
fn is_reserved_variable(name: &str) -> bool {
    name.starts_with("LANDFALL_TEST_") || name == "LANDFALL_CONFIG" || name == crate::reports::TOKEN_VARIABLE
}

/// Checks that the data directory exists (creating it) and is writable.
pub fn prepare_data_dir(path: &Path) -> Result<(), ConfigError> {
    let failed = |reason: std::io::Error| ConfigError::DataDir { path: path.to_path_buf(), reason: reason.to_string() };
    std::fs::create_dir_all(path).map_err(failed)?;
    let probe = path.join(".landfall-write-check");
    std::fs::write(&probe, b"ok").map_err(failed)?;
    std::fs::remove_file(&probe).map_err(failed)
}

/// `LANDFALL_` variables parsed the way figment's `Env` does, from a snapshot instead of
/// the live process environment; `inner` lends its name and key-to-variable mapping.
struct EnvSnapshot {
    variables: Vec<(String, String)>,
    inner: Env,
}

impl figment::Provider for EnvSnapshot {
    fn metadata(&self) -> figment::Metadata {
        self.inner.metadata()
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        use figment::value::{Dict, Map, Value};
        let mut dict = Dict::new();
        for (name, value) in &self.variables {
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
            let parsed: Value = value.parse().unwrap_or_else(|_| Value::from(value.clone()));
            let nested = key.rsplit("__").fold(parsed, |inner, part| {
                let mut table = Dict::new();
                table.insert(part.to_string(), inner);
                Value::from(table)
            });
            if let Value::Dict(_, table) = nested {
                for (k, v) in table {
                    merge_into(&mut dict, k, v);
                }
            }
        }
        Ok(Map::from([(figment::Profile::Default, dict)]))
    }
}

fn merge_into(dict: &mut figment::value::Dict, key: String, value: figment::value::Value) {
    use figment::value::Value;
    match (dict.get_mut(&key), value) {
        (Some(Value::Dict(_, existing)), Value::Dict(_, incoming)) => {
            for (k, v) in incoming {
                merge_into(existing, k, v);
            }
        }
        (_, value) => {
            dict.insert(key, value);
        }
    }
}

/// One line per problem: which key, from which layer, what was wrong, what is accepted.
fn describe(errors: figment::Error) -> String {
    errors.into_iter().map(|error| describe_one(&error)).collect::<Vec<_>>().join("\n")
}

fn describe_one(error: &figment::Error) -> String {
    use figment::error::Kind;
    let key = error.path.join(".");
    let origin = error.metadata.as_ref().map(|meta| {
        let name = meta.name.to_string();
        if let Some(figment::Source::File(file)) = &meta.source {
            format!("in {}", file.display())
        } else if name.contains("environment") {
            format!("from environment variable {ENV_PREFIX}{}", error.path.join("__").to_ascii_uppercase())
        } else if name.contains("Overrides") {
            // figment names a serialized provider after its type: these are the flags.
            format!("from flag --{}", key.replace('_', "-"))
        } else {
            format!("from {name}")
        }
    });
    let origin = origin.map(|o| format!(" {o}")).unwrap_or_default();
    match &error.kind {
        Kind::UnknownField(field, accepted) => {
            // figment's path already ends with the unknown field.
            let full = if key.is_empty() { field.clone() } else { key.clone() };
            format!("unknown setting `{full}`{origin}; accepted settings: {}", accepted.join(", "))
        }
        Kind::InvalidType(actual, expected) => {
            format!("setting `{key}`{origin} has the wrong type: found {actual}, expected {expected}")
        }
        Kind::InvalidValue(actual, expected) => {
            format!("setting `{key}`{origin} has an invalid value {actual}: expected {expected}")
        }
        Kind::UnknownVariant(found, accepted) => {
            format!("setting `{key}`{origin} is `{found}`; accepted values: {}", accepted.join(", "))
        }
        Kind::Message(message) => format!("setting `{key}`{origin}: {message}"),
        other => format!("setting `{key}`{origin}: {other}"),
    }
}

/// A socket address with an error message that shows the accepted form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(ListenAddr).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not an address to listen on; expected IP:PORT such as 127.0.0.1:3000, 0.0.0.0:8080 or [::1]:3000"
            ))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A `tracing` filter, checked when read so a typo stops start-up instead of silencing logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLevel(pub String);

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        tracing_subscriber::EnvFilter::builder()
            .parse(&text)
            .map(|_| LogLevel(text.clone()))
            .map_err(|error| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a log level ({error}); expected error, warn, info, debug, trace, or directives such as `info,landfall_server=debug`"
                ))
            })
    }
}

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// A database URL. Its password (in the user-info part or a `password` query
/// parameter) is replaced by `***` whenever it is shown.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    kind: DatabaseKind,
}

const ACCEPTED_DATABASE_URLS: &str =
    "sqlite://PATH (or sqlite:PATH), postgres://USER:PASSWORD@HOST:PORT/DATABASE or postgresql://…";

impl DatabaseUrl {
    pub fn sqlite_file(path: &Path) -> DatabaseUrl {
        DatabaseUrl { raw: format!("sqlite://{}", path.display()), kind: DatabaseKind::Sqlite }
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The URL with its secrets in; only for handing to the database driver.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    pub fn redacted(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.raw) else {
            return format!("{}:***", self.raw.split(':').next().unwrap_or("database"));
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        if url.query_pairs().any(|(key, _)| key == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" { "***".to_string() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let scheme = text.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase());
        let kind = match scheme.as_deref() {
            Some("sqlite") => DatabaseKind::Sqlite,
            Some("postgres" | "postgresql") => DatabaseKind::Postgres,
            Some(other) if !other.is_empty() && !other.contains(['/', ' ']) => {
                return Err(format!("database scheme `{other}` is not supported; accepted: {ACCEPTED_DATABASE_URLS}"));
            }
            _ => return Err(format!("not a database URL; accepted: {ACCEPTED_DATABASE_URLS}")),
        };
        if kind == DatabaseKind::Postgres {
            let url = url::Url::parse(text)
                .map_err(|error| format!("malformed PostgreSQL URL ({error}); accepted: {ACCEPTED_DATABASE_URLS}"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("the PostgreSQL URL names no host; accepted: {ACCEPTED_DATABASE_URLS}"));
            }
        } else if text.trim_start_matches("sqlite:").trim_start_matches("//").is_empty() {
            return Err(format!("the SQLite URL names no file; accepted: {ACCEPTED_DATABASE_URLS}"));
        }
        Ok(DatabaseUrl { raw: text.to_string(), kind })
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The offending text is never echoed: it may hold a password.
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(env: &[(&str, &str)], overrides: Overrides) -> Result<Settings, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        load(None, env, &overrides)
    }

    #[test]
    fn defaults_apply() {
        let settings = load_with(&[], Overrides::default()).unwrap();
        assert_eq!(settings.listen.0.to_string(), "127.0.0.1:3000");
        assert_eq!(settings.data_dir, PathBuf::from("./data"));
        assert_eq!(settings.database().kind(), DatabaseKind::Sqlite);
        assert!(settings.database().expose().ends_with("data/landfall.db"));
        assert_eq!(settings.log_format, LogFormat::Text);
        assert!(!settings.actions_enabled, "actions stay off until asked for");
    }

    #[test]
    fn actions_are_enabled_by_a_variable() {
        let settings = load_with(&[("LANDFALL_ACTIONS_ENABLED", "true")], Overrides::default()).unwrap();
        assert!(settings.actions_enabled);
    }

    #[test]
    fn flags_override_environment_which_overrides_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("landfall.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:4000\"\nlog_level = \"debug\"\ndata_dir = \"/srv/a\"\n").unwrap();
        let env = [("LANDFALL_LISTEN", "127.0.0.1:5000"), ("LANDFALL_DATA_DIR", "/srv/b")];
        let overrides = Overrides { listen: Some("127.0.0.1:6000".into()), ..Overrides::default() };
        let env_iter = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let settings = load(Some(&file), env_iter, &overrides).unwrap();
        assert_eq!(settings.listen.0.port(), 6000, "flag wins");
        assert_eq!(settings.data_dir, PathBuf::from("/srv/b"), "environment beats file");
        assert_eq!(settings.log_level.0, "debug", "file beats default");
    }

    #[test]
    fn unknown_keys_are_named_with_their_origin() {
        let error = load_with(&[("LANDFALL_LISTN", "x")], Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("unknown setting `listn`"), "{error}");
        assert!(error.contains("LANDFALL_LISTN"), "{error}");
        assert!(error.contains("listen"), "lists accepted keys: {error}");
    }

    #[test]
    fn nested_variables_use_double_underscores() {
        let error = load_with(&[("LANDFALL_REPORTS__TOKEN", "x")], Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("unknown setting `reports.token`"), "{error}");
    }

    #[test]
    fn reserved_variables_are_not_settings() {
        let env = [("LANDFALL_TEST_DATABASE_URL", "postgres://x@y/z"), ("LANDFALL_CONFIG", "a.toml")];
        load_with(&env, Overrides::default()).unwrap();
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        let error = load_with(&[("LANDFALL_LOG_FORMAT", "xml")], Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("log_format") && error.contains("text, json"), "{error}");
        let error = load_with(&[], Overrides { listen: Some("localhost".into()), ..Default::default() })
            .unwrap_err()
            .to_string();
        assert!(error.contains("--listen") && error.contains("IP:PORT"), "{error}");
    }

    #[test]
    fn argocd_instances_and_environments_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("landfall.toml");
        let write_and_load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            load(Some(&file), std::iter::empty(), &Overrides::default())
        };
        let settings = write_and_load(
            "[[argocd]]\nname = \"main\"\nurl = \"https://argocd.example.com\"\ntoken_env = \"ARGOCD_TOKEN\"\n\
             [[argocd]]\nname = \"eu\"\nurl = \"https://argocd.eu.example.com\"\nusername = \"landfall\"\npassword_env = \"EU_PASSWORD\"\n\
             [[environment]]\nname = \"production\"\nrank = 40\naliases = [\"prod\"]\nmatch = { labels = { env = \"prod\" }, cluster = \"gke-*\" }\n",
        )
        .unwrap();
        assert_eq!(settings.argocd.len(), 2);
        assert_eq!(settings.argocd[0].silence_seconds, 45, "default");
        assert_eq!(settings.argocd[0].max_backoff_seconds, 30, "default");
        assert_eq!(settings.environments[0].rules.labels["env"], "prod");
        assert_eq!(settings.environments[0].rules.cluster.as_deref(), Some("gke-*"));
        let cases = [
            ("[[argocd]]\nname = \"a\"\nurl = \"https://x\"\n", "argocd[0]`: give either `token_env`"),
            ("[[argocd]]\nname = \"a\"\nurl = \"https://x\"\ntoken_env = \"T\"\nusername = \"u\"\n", "give either"),
            ("[[argocd]]\nname = \"a\"\nurl = \"argocd.example.com\"\ntoken_env = \"T\"\n", "argocd[0].url"),
            (
                "[[argocd]]\nname = \"a\"\nurl = \"https://x\"\ntoken_env = \"T\"\n[[argocd]]\nname = \"a\"\nurl = \"https://y\"\ntoken_env = \"T\"\n",
                "argocd[1].name",
            ),
            ("[[argocd]]\nname = \"a\"\nurl = \"https://x\"\ntoken = \"secret\"\n", "unknown setting"),
            (
                "[[argocd]]\nname = \"a\"\nurl = \"https://x\"\ntoken_env = \"T\"\nmax_backoff_seconds = 0\n",
                "argocd[0].max_backoff_seconds` is 0; accepted: 1 to 3600",
            ),
            (
                "[[environment]]\nname = \"production\"\naliases = [\"prod\"]\n[[environment]]\nname = \"Prod\"\n",
                "names and aliases must be unique",
            ),
            ("[[environment]]\nname = \"qa\"\nmatch = { labes = { env = \"qa\" } }\n", "labes"),
        ];
        for (text, expected) in cases {
            let error = write_and_load(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn jira_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("landfall.toml");
        let write_and_load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            load(Some(&file), std::iter::empty(), &Overrides::default())
        };
        let settings = write_and_load(
            "[jira]\nurl = \"https://acme.atlassian.net\"\nflavor = \"cloud\"\nemail = \"bot@acme.com\"\n\
             token_env = \"JIRA_TOKEN\"\nwebhook_secret_env = \"JIRA_WEBHOOK_SECRET\"\n",
        )
        .unwrap();
        let jira = settings.jira.unwrap();
        assert_eq!(jira.flavor, JiraFlavor::Cloud);
        assert_eq!(jira.refresh_interval_seconds, 900, "default");
        assert!(write_and_load("").unwrap().jira.is_none(), "off when absent");
        let settings = write_and_load(
            "[jira]\nurl = \"https://jira.example.com/jira\"\nflavor = \"datacenter\"\ntoken_env = \"JIRA_PAT\"\n",
        )
        .unwrap();
        assert_eq!(settings.jira.unwrap().flavor, JiraFlavor::Datacenter);
        let settings = write_and_load(
            "[jira]\nurl = \"https://x\"\nflavor = \"datacenter\"\ntoken_env = \"T\"\nepic_link_field = \"customfield_10008\"\n",
        )
        .unwrap();
        assert_eq!(settings.jira.unwrap().epic_link_field.as_deref(), Some("customfield_10008"));
        let cloud = "[jira]\nflavor = \"cloud\"\nemail = \"bot@acme.com\"\ntoken_env = \"T\"\n";
        let cases = [
            (format!("{cloud}url = \"acme.atlassian.net\"\n"), "jira.url"),
            (format!("{cloud}url = \"https://bot:secret@acme.atlassian.net\"\n"), "contains credentials"),
            ("[jira]\nurl = \"https://x\"\nflavor = \"server\"\ntoken_env = \"T\"\n".into(), "cloud, datacenter"),
            ("[jira]\nurl = \"https://x\"\nflavor = \"cloud\"\ntoken_env = \"T\"\n".into(), "jira.email"),
            (
                "[jira]\nurl = \"https://x\"\nflavor = \"datacenter\"\nemail = \"a@b\"\ntoken_env = \"T\"\n".into(),
                "personal access token alone",
            ),
            ("[jira]\nurl = \"https://x\"\nflavor = \"datacenter\"\ntoken_env = \"my token\"\n".into(), "jira.token_env"),
            (
                "[jira]\nurl = \"https://x\"\nflavor = \"datacenter\"\ntoken_env = \"T\"\nwebhook_secret_env = \"\"\n".into(),
                "jira.webhook_secret_env",
            ),
            (
                "[jira]\nurl = \"https://x\"\nflavor = \"datacenter\"\ntoken_env = \"T\"\nrefresh_interval_seconds = 1\n".into(),
                "at least 5",
            ),
            ("[jira]\nurl = \"https://x\"\nflavor = \"datacenter\"\ntoken = \"secret\"\n".into(), "unknown setting"),
            (
                "[jira]\nurl = \"https://x\"\nflavor = \"datacenter\"\ntoken_env = \"T\"\nepic_link_field = \"Epic Link\"\n".into(),
                "customfield_10008",
            ),
        ];
        for (text, expected) in cases {
            let error = write_and_load(&text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains("secret@"), "{error}");
        }
    }

    #[test]
    fn forges_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("landfall.toml");
        let write_and_load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            load(Some(&file), std::iter::empty(), &Overrides::default())
        };
        let settings = write_and_load(
            "[[forge]]\nname = \"github\"\nkind = \"github\"\ntoken_env = \"GITHUB_TOKEN\"\nwebhook_secret_env = \"GITHUB_WEBHOOK_SECRET\"\n\
             [[forge]]\nname = \"gitlab\"\nkind = \"gitlab\"\nurl = \"https://gitlab.example.com/\"\n\
             [[repository]]\nname = \"shop\"\nurl = \"/srv/git/shop\"\nforge = \"github\"\nforge_project = \"acme/shop\"\n",
        )
        .unwrap();
        assert_eq!(settings.forges.len(), 2);
        assert_eq!(settings.forges[0].url(), "https://api.github.com", "the public service by default");
        assert_eq!(settings.forges[1].url(), "https://gitlab.example.com");
        assert_eq!(settings.repositories[0].forge_project.as_deref(), Some("acme/shop"));
        let cases = [
            ("[[forge]]\nname = \"a\"\nkind = \"bitbucket\"\n", "github, gitlab"),
            (
                "[[forge]]\nname = \"a\"\nkind = \"github\"\n[[forge]]\nname = \"a\"\nkind = \"gitlab\"\n",
                "forge[1].name",
            ),
            ("[[forge]]\nname = \"a\"\nkind = \"github\"\nurl = \"api.github.com\"\n", "forge[0].url"),
            ("[[forge]]\nname = \"a\"\nkind = \"github\"\ntoken_env = \"ghp_secretvalue-1\"\n", "forge[0].token_env"),
            ("[[forge]]\nname = \"a\"\nkind = \"github\"\ntoken = \"ghp_x\"\n", "unknown setting"),
            ("[[repository]]\nname = \"r\"\nurl = \"x\"\nforge = \"nope\"\n", "repository[0].forge"),
            (
                "[[forge]]\nname = \"a\"\nkind = \"github\"\n[[repository]]\nname = \"r\"\nurl = \"x\"\nforge = \"a\"\nforge_project = \"/x\"\n",
                "repository[0].forge_project",
            ),
        ];
        for (text, expected) in cases {
            let error = write_and_load(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains("ghp_"), "secrets are never echoed: {error}");
        }
    }

    #[test]
    fn clusters_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("landfall.toml");
        let write_and_load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            load(Some(&file), std::iter::empty(), &Overrides::default())
        };
        let settings = write_and_load(
            "[[cluster]]\nname = \"gke-eu\"\nkubeconfig = \"/etc/landfall/kubeconfig\"\ncontext = \"eu\"\n\
             [[cluster]]\nname = \"https://kubernetes.default.svc\"\nin_cluster = true\ninterval_seconds = 30\n",
        )
        .unwrap();
        assert_eq!(settings.clusters.len(), 2);
        assert_eq!(settings.clusters[0].interval_seconds, 60, "default");
        assert_eq!(settings.clusters[0].context.as_deref(), Some("eu"));
        assert!(settings.clusters[1].in_cluster);
        assert!(write_and_load("").unwrap().clusters.is_empty(), "off when absent");
        let cases = [
            ("[[cluster]]\nname = \"a\"\n[[cluster]]\nname = \"a\"\n", "cluster[1].name"),
            ("[[cluster]]\nname = \"\"\n", "cluster[0].name"),
            ("[[cluster]]\nname = \"a\"\nin_cluster = true\ncontext = \"x\"\n", "give it alone"),
            ("[[cluster]]\nname = \"a\"\ninterval_seconds = 5\n", "at least 10"),
            ("[[cluster]]\nname = \"a\"\ncontext = \"\"\n", "cluster[0].context"),
            ("[[cluster]]\nname = \"a\"\ntoken = \"x\"\n", "unknown setting"),
        ];
        for (text, expected) in cases {
            let error = write_and_load(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn repositories_and_feature_projects_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("landfall.toml");
        let write_and_load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            load(Some(&file), std::iter::empty(), &Overrides::default())
        };
        let settings = write_and_load(
            "[[repository]]\nname = \"shop-api\"\nurl = \"/srv/git/shop-api\"\n\n\
             [[repository]]\nname = \"gitops\"\nurl = \"https://git.example/gitops.git\"\nkind = \"manifests\"\nbranches = [\"main\"]\ntoken_env = \"GITOPS_TOKEN\"\n\n\
             [features]\nprojects = [\"SHOP\", \"PAY_2\"]\n",
        )
        .unwrap();
        assert_eq!(settings.repositories.len(), 2);
        assert_eq!(settings.repositories[0].kind, RepositoryKind::Source, "source by default");
        assert_eq!(settings.repositories[1].kind, RepositoryKind::Manifests);
        assert_eq!(settings.features.projects, ["SHOP", "PAY_2"]);

        let error =
            write_and_load("[[repository]]\nname = \"a\"\nurl = \"x\"\n[[repository]]\nname = \"a\"\nurl = \"y\"\n")
                .unwrap_err();
        assert!(error.to_string().contains("repository[1].name") && error.to_string().contains("unique"), "{error}");
        let error = write_and_load("[[repository]]\nname = \"a b\"\nurl = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("letters, digits"), "{error}");
        let error = write_and_load("[[repository]]\nname = \"a\"\nurl = \"x\"\nkind = \"docs\"\n").unwrap_err();
        assert!(error.to_string().contains("source, manifests"), "{error}");
        let error = write_and_load("[[repository]]\nname = \"a\"\nurl = \"x\"\ntoken = \"secret\"\n").unwrap_err();
        assert!(error.to_string().contains("unknown setting") && error.to_string().contains("token_env"), "{error}");
        let error = write_and_load("[features]\nprojects = [\"shop\"]\n").unwrap_err();
        assert!(error.to_string().contains("features.projects") && error.to_string().contains("SHOP"), "{error}");
        let error =
            write_and_load("[[repository]]\nname = \"a\"\nurl = \"x\"\npull_request_patterns = [\"{number}\"]\n")
                .unwrap_err();
        assert!(error.to_string().contains("repository[0].pull_request_patterns"), "{error}");
        assert!(error.to_string().contains("Merged PR {number}:"), "{error}");
        let error = write_and_load("sync_interval_seconds = 1\n").unwrap_err();
        assert!(error.to_string().contains("at least 10"), "{error}");
    }

    #[test]
    fn database_urls_are_checked_and_redacted() {
        let url: DatabaseUrl = "postgres://landfall:s3cret@db.internal:5432/landfall?password=also".parse().unwrap();
        assert_eq!(url.kind(), DatabaseKind::Postgres);
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("also"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
        assert!("mysql://a@b/c".parse::<DatabaseUrl>().unwrap_err().contains("`mysql` is not supported"));
        assert!("no scheme here".parse::<DatabaseUrl>().unwrap_err().contains("not a database URL"));
        assert!("postgres://".parse::<DatabaseUrl>().unwrap_err().contains("no host"));
        assert!("sqlite:".parse::<DatabaseUrl>().unwrap_err().contains("no file"));
        assert_eq!("sqlite:data/x.db".parse::<DatabaseUrl>().unwrap().kind(), DatabaseKind::Sqlite);
    }

    #[test]
    fn a_bad_database_url_never_echoes_its_password() {
        let error = load_with(&[("LANDFALL_DATABASE_URL", "mysql://root:hunter2@db/x")], Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("database_url") && !error.contains("hunter2"), "{error}");
    }
}
