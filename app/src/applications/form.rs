//! The Argo CD Application as an editable form.
//!
//! A typed model of every spec field listed in `shared/fixtures/argocd/API.md` §6 (Go types in
//! argo-cd `pkg/apis/application/v1alpha1/types.go`), a lossless JSON round trip (and YAML with
//! the `yaml` feature), and the checks Argo CD's API server applies on create and update
//! (§6.1), so the create/edit page can say what is wrong before the server does.
//!
//! # Lossless by construction
//!
//! Every object keeps the keys it does not model in a flattened `extra` map, so an
//! Application read from Argo CD keeps, when written back, fields newer than this model,
//! `metadata.uid`/`resourceVersion`/`ownerReferences`, and the top-level `status` and
//! `operation` (which land in [`ApplicationForm::extra`] and are never validated or edited;
//! Argo CD ignores `status` on update, and keeping `resourceVersion` keeps optimistic
//! concurrency working).
//!
//! Every modelled field is an `Option`: `None` means the key was absent, `Some("")` or
//! `Some(vec![])` that it was present and empty, so both survive. The one thing that does not
//! survive is an explicit `null` on a *modelled* key, which reads as absent: Argo CD's Go types
//! are `omitempty`, so its API never sends such nulls and Kubernetes treats them as absent.
//! A `null` under an unmodelled key is kept. `metadata` and `spec` are always written (an input
//! without them gains `{}`), as Argo CD always writes them.
//!
//! Sync options are typed ([`SyncOption`]) but parsed only from the exact spellings Argo CD
//! compares against, so every string renders back byte for byte.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Why a JSON or YAML document could not be read as an Application.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("an Application must be an object with metadata and spec, but this is {0}")]
    NotAnObject(&'static str),
    #[error("this is a {0:?}, not an Application: only kind \"Application\" can be edited here")]
    WrongKind(String),
    #[error("the Application does not have the shape Argo CD expects: {0}")]
    Shape(#[from] serde_json::Error),
    /// Only produced with the `yaml` feature; present without it so matches need no `cfg`.
    #[error("not valid YAML for one Application: {0}")]
    Yaml(String),
}

/// One problem with one field, worded for the person filling in the form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where the problem is, as a JSON-ish path: `spec.sources[1].helm`,
    /// `metadata.labels["app.kubernetes.io/name"]`.
    pub field: String,
    /// What is wrong and what is accepted; Argo CD's own wording where it has one.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Unmodelled keys of one object, kept verbatim.
pub type Extra = Map<String, Value>;

/// An Argo CD `Application` (`argoproj.io/v1alpha1`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationForm {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub metadata: Metadata,
    pub spec: Spec,
    /// Everything else at the top level, notably `status` and `operation`, kept so that
    /// writing back an Application read from Argo CD loses nothing.
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The namespace the Application object lives in (Argo CD's own by default), not where it
    /// deploys to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// `resources-finalizer.argocd.argoproj.io[/foreground|/background]` makes deleting the
    /// Application delete its resources too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Spec {
    /// `""` means `default` to Argo CD, but the CRD requires the key and the UI a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Wins over `source` when non-empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<Source>>,
    /// Wins over both `sources` and `source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_hydrator: Option<SourceHydrator>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_differences: Option<Vec<IgnoreDifferences>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<Vec<Info>>,
    /// Default 10; 0 keeps no history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Which of the three ways of naming manifests Argo CD will use, by its precedence
/// (`sourceHydrator` > non-empty `sources` > `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceMode {
    Hydrator,
    Multiple,
    Single,
    /// None of the three is set.
    Missing,
}

impl Spec {
    pub fn source_mode(&self) -> SourceMode {
        if self.source_hydrator.is_some() {
            SourceMode::Hydrator
        } else if self.sources.as_ref().is_some_and(|s| !s.is_empty()) {
            SourceMode::Multiple
        } else if self.source.is_some() {
            SourceMode::Single
        } else {
            SourceMode::Missing
        }
    }
}

/// Where to deploy: a cluster by API URL (`server`) or by its Argo CD name (`name`), never both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Destination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ApplicationSource`: one repository location and how to render it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Source {
    #[serde(rename = "repoURL", skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// A folder in a Git repository; meaningless for a `chart` from a Helm repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Branch, tag, SHA or semver range; for a Helm-repository chart, the chart version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// Multi-source only: lets another source's value files say `$ref/...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// Multi-source only: a display name, unique within the Application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
    #[serde(flatten)]
    pub tools: Tools,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The four tool blocks. They are separate fields rather than one enum so that an
/// Application with two of them (which Argo CD rejects) can still be read, shown and fixed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Tools {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm: Option<Helm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<Kustomize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<Directory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Plugin>,
}

/// Argo CD's `ApplicationSourceType` names, in the order `ExplicitType` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ToolKind {
    Kustomize,
    Helm,
    Directory,
    Plugin,
}

impl fmt::Display for ToolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kustomize => "Kustomize",
            Self::Helm => "Helm",
            Self::Directory => "Directory",
            Self::Plugin => "Plugin",
        })
    }
}

impl Tools {
    /// Switches the source to one tool: drops the other three blocks (their settings would
    /// make Argo CD reject the source) and starts an empty block for `kind` if it has none.
    pub fn keep_only(&mut self, kind: ToolKind) {
        let Self { helm, kustomize, directory, plugin } = self;
        if kind != ToolKind::Helm {
            *helm = None;
        }
        if kind != ToolKind::Kustomize {
            *kustomize = None;
        }
        if kind != ToolKind::Directory {
            *directory = None;
        }
        if kind != ToolKind::Plugin {
            *plugin = None;
        }
        match kind {
            ToolKind::Helm => {
                helm.get_or_insert_default();
            }
            ToolKind::Kustomize => {
                kustomize.get_or_insert_default();
            }
            ToolKind::Directory => {
                directory.get_or_insert_default();
            }
            ToolKind::Plugin => {
                plugin.get_or_insert_default();
            }
        }
    }

    /// The tool blocks that count, in Argo CD's order. A block whose every field is empty or
    /// false does not count: `NormalizeSource` drops such blocks before validating, which lets
    /// people switch tools by leaving an empty block behind.
    pub fn kinds(&self) -> Vec<ToolKind> {
        fn counts<T: Serialize>(block: &Option<T>) -> bool {
            block.as_ref().is_some_and(|b| serde_json::to_value(b).is_ok_and(|v| !is_zero(&v)))
        }
        let mut kinds = Vec::new();
        if counts(&self.kustomize) {
            kinds.push(ToolKind::Kustomize);
        }
        if counts(&self.helm) {
            kinds.push(ToolKind::Helm);
        }
        if counts(&self.directory) {
            kinds.push(ToolKind::Directory);
        }
        if counts(&self.plugin) {
            kinds.push(ToolKind::Plugin);
        }
        kinds
    }
}

/// Go's zero value, deeply: what `IsZero` on a tool block amounts to.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Helm {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_files: Option<Vec<String>>,
    /// A YAML document as a string; `values_object` wins when both are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<HelmParameter>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_parameters: Option<Vec<HelmFileParameter>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_missing_value_files: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_credentials: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_crds: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_schema_validation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_tests: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_versions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HelmParameter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_string: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HelmFileParameter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Kustomize {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    /// `name=repo:tag` overrides, or a bare `repo:tag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<KustomizeReplica>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_annotations_envsubst: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_common_labels: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_common_annotations: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_without_selector: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_include_templates: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_missing_components: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<Vec<KustomizePatch>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_versions: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KustomizeReplica {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Kubernetes' `intstr.IntOrString`, kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KustomizePatch {
    /// A patch file in the repository; or inline text in `patch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<KustomizeSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, bool>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KustomizeSelector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotation_selector: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Directory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurse: Option<bool>,
    /// Glob, `{a,b}` for several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Glob; wins over `include`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_extension_filter: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonnet: Option<Jsonnet>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Jsonnet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_vars: Option<Vec<JsonnetVar>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlas: Option<Vec<JsonnetVar>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub libs: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JsonnetVar {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `value` is Jsonnet code rather than a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A Config Management Plugin. Without `name`, a sidecar plugin is matched by its discovery
/// rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Plugin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvEntry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<PluginParameter>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A plugin parameter carries a string, an array or a map, as the plugin declares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PluginParameter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub array: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Renders from a "dry" source and commits the result to a branch Argo CD then syncs from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SourceHydrator {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_source: Option<DrySource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_source: Option<SyncSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hydrate_to: Option<HydrateTo>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DrySource {
    #[serde(rename = "repoURL", skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(flatten)]
    pub tools: Tools,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Defaults to the dry source's repository.
    #[serde(rename = "repoURL", skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HydrateTo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_branch: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automated: Option<Automated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_options: Option<Vec<SyncOption>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Applied only together with `CreateNamespace=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl SyncPolicy {
    /// Argo CD's `IsAutomatedSyncEnabled`: `automated` present and `enabled` not `false`.
    pub fn is_automated(&self) -> bool {
        self.automated.as_ref().is_some_and(|a| a.enabled != Some(false))
    }

    fn has_option(&self, option: &SyncOption) -> bool {
        self.sync_options.as_ref().is_some_and(|options| options.contains(option))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Automated {
    /// `None` counts as on: the block's presence is what turns automation on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_heal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_empty: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Retry {
    /// Below 0 is unlimited; 0 means no retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Defaults `5s`, factor 2, `3m`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Backoff {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ManagedNamespaceMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IgnoreDifferences {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Required; `*` matches every kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_pointers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jq_path_expressions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_fields_managers: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A line in the Application's "info" panel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Info {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

// ------------------------------------------------------------------------------------------
// Sync options

/// One entry of `syncPolicy.syncOptions`.
///
/// Argo CD compares these strings exactly (`SyncOptions.HasOption`), so only the exact
/// spellings below are recognised; anything else, including `createnamespace=true`, is kept
/// verbatim as [`SyncOption::Other`] and has no effect in Argo CD. Parsing and rendering are
/// inverse, so a list of options round-trips byte for byte.
///
/// The flags hold `true`/`false` even where Argo CD documents one value (`Validate=false`,
/// `CreateNamespace=true`, ...): the other value spells out the default and is harmless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOption {
    /// `Validate=false` skips kubectl's schema validation ("Skip Schema Validation" in the UI).
    Validate(bool),
    CreateNamespace(bool),
    ApplyOutOfSyncOnly(bool),
    RespectIgnoreDifferences(bool),
    ServerSideApply(bool),
    ClientSideApplyMigration(bool),
    PruneLast(bool),
    PrunePropagationPolicy(PropagationPolicy),
    Prune(DisableOrConfirm),
    Delete(DisableOrConfirm),
    /// Rejected at sync time unless the server allows `Replace` (`syncWithReplaceAllowed`).
    Replace(bool),
    SkipDryRunOnMissingResource(bool),
    FailOnSharedResource(bool),
    /// Mostly used as a resource annotation.
    Force(bool),
    /// Not an option Argo CD knows in this spelling; kept as written.
    Other(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    Foreground,
    Background,
    Orphan,
}

/// The values of `Prune=` and `Delete=`: `false` never prunes/deletes, `confirm` waits for a
/// person to confirm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisableOrConfirm {
    Disable,
    Confirm,
}

/// The options that take `true` or `false`.
const FLAG_OPTIONS: [&str; 11] = [
    "Validate",
    "CreateNamespace",
    "ApplyOutOfSyncOnly",
    "RespectIgnoreDifferences",
    "ServerSideApply",
    "ClientSideApplyMigration",
    "PruneLast",
    "Replace",
    "SkipDryRunOnMissingResource",
    "FailOnSharedResource",
    "Force",
];

/// The options that take something else.
const VALUE_OPTIONS: [&str; 3] = ["PrunePropagationPolicy", "Prune", "Delete"];

impl SyncOption {
    /// Reads one entry exactly as Argo CD would; never fails, see [`SyncOption::Other`].
    pub fn parse(text: &str) -> Self {
        let Some((key, value)) = text.split_once('=') else {
            return Self::Other(text.to_owned());
        };
        let flag = match value {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        let known = match key {
            "Validate" => flag.map(Self::Validate),
            "CreateNamespace" => flag.map(Self::CreateNamespace),
            "ApplyOutOfSyncOnly" => flag.map(Self::ApplyOutOfSyncOnly),
            "RespectIgnoreDifferences" => flag.map(Self::RespectIgnoreDifferences),
            "ServerSideApply" => flag.map(Self::ServerSideApply),
            "ClientSideApplyMigration" => flag.map(Self::ClientSideApplyMigration),
            "PruneLast" => flag.map(Self::PruneLast),
            "Replace" => flag.map(Self::Replace),
            "SkipDryRunOnMissingResource" => flag.map(Self::SkipDryRunOnMissingResource),
            "FailOnSharedResource" => flag.map(Self::FailOnSharedResource),
            "Force" => flag.map(Self::Force),
            "PrunePropagationPolicy" => match value {
                "foreground" => Some(Self::PrunePropagationPolicy(PropagationPolicy::Foreground)),
                "background" => Some(Self::PrunePropagationPolicy(PropagationPolicy::Background)),
                "orphan" => Some(Self::PrunePropagationPolicy(PropagationPolicy::Orphan)),
                _ => None,
            },
            "Prune" | "Delete" => {
                let mode = match value {
                    "false" => Some(DisableOrConfirm::Disable),
                    "confirm" => Some(DisableOrConfirm::Confirm),
                    _ => None,
                };
                mode.map(if key == "Prune" { Self::Prune } else { Self::Delete })
            }
            _ => None,
        };
        known.unwrap_or_else(|| Self::Other(text.to_owned()))
    }

    /// For an entry whose key Argo CD knows, the values it reads, in words; `None` for keys it
    /// does not know.
    pub fn accepted_values(key: &str) -> Option<&'static str> {
        match key {
            "PrunePropagationPolicy" => Some("foreground, background or orphan"),
            "Prune" | "Delete" => Some("false or confirm"),
            _ if FLAG_OPTIONS.contains(&key) => Some("true or false"),
            _ => None,
        }
    }
}

impl fmt::Display for SyncOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, value) = match self {
            Self::Other(text) => return f.write_str(text),
            Self::Validate(b) => ("Validate", bool_str(*b)),
            Self::CreateNamespace(b) => ("CreateNamespace", bool_str(*b)),
            Self::ApplyOutOfSyncOnly(b) => ("ApplyOutOfSyncOnly", bool_str(*b)),
            Self::RespectIgnoreDifferences(b) => ("RespectIgnoreDifferences", bool_str(*b)),
            Self::ServerSideApply(b) => ("ServerSideApply", bool_str(*b)),
            Self::ClientSideApplyMigration(b) => ("ClientSideApplyMigration", bool_str(*b)),
            Self::PruneLast(b) => ("PruneLast", bool_str(*b)),
            Self::Replace(b) => ("Replace", bool_str(*b)),
            Self::SkipDryRunOnMissingResource(b) => ("SkipDryRunOnMissingResource", bool_str(*b)),
            Self::FailOnSharedResource(b) => ("FailOnSharedResource", bool_str(*b)),
            Self::Force(b) => ("Force", bool_str(*b)),
            Self::PrunePropagationPolicy(p) => (
                "PrunePropagationPolicy",
                match p {
                    PropagationPolicy::Foreground => "foreground",
                    PropagationPolicy::Background => "background",
                    PropagationPolicy::Orphan => "orphan",
                },
            ),
            Self::Prune(m) => ("Prune", disable_or_confirm_str(*m)),
            Self::Delete(m) => ("Delete", disable_or_confirm_str(*m)),
        };
        write!(f, "{key}={value}")
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn disable_or_confirm_str(m: DisableOrConfirm) -> &'static str {
    match m {
        DisableOrConfirm::Disable => "false",
        DisableOrConfirm::Confirm => "confirm",
    }
}

impl Serialize for SyncOption {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SyncOption {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self::parse(&text))
    }
}

// ------------------------------------------------------------------------------------------
// Round trip

const API_VERSION: &str = "argoproj.io/v1alpha1";
const KIND: &str = "Application";

impl ApplicationForm {
    /// An empty Application with `apiVersion` and `kind` set, as a create form starts.
    pub fn new() -> Self {
        Self { api_version: Some(API_VERSION.to_owned()), kind: Some(KIND.to_owned()), ..Self::default() }
    }

    /// Reads an Application as Argo CD's API or `kubectl` returns it; every key survives
    /// [`ApplicationForm::to_value`] (see the module docs for the one exception, `null`s).
    pub fn from_value(value: Value) -> Result<Self, FormError> {
        let object = match &value {
            Value::Object(object) => object,
            Value::Null => return Err(FormError::NotAnObject("empty")),
            Value::Bool(_) => return Err(FormError::NotAnObject("a boolean")),
            Value::Number(_) => return Err(FormError::NotAnObject("a number")),
            Value::String(_) => return Err(FormError::NotAnObject("a string")),
            Value::Array(_) => return Err(FormError::NotAnObject("a list")),
        };
        match object.get("kind") {
            None => {}
            Some(Value::String(kind)) if kind == KIND => {}
            Some(Value::String(kind)) => return Err(FormError::WrongKind(kind.clone())),
            Some(other) => return Err(FormError::WrongKind(other.to_string())),
        }
        Ok(serde_json::from_value(value)?)
    }

    /// The Application as JSON, ready to send to Argo CD: modelled fields from the form,
    /// everything else (including `status` and `operation`) as it was read.
    pub fn to_value(&self) -> Value {
        // Serialising plain data with string keys into a `Value` cannot fail.
        serde_json::to_value(self).expect("an ApplicationForm always serialises to JSON")
    }

    /// Reads one YAML document (`kubectl get -o yaml`, a file in Git). Comments and anchors
    /// are not data and are not kept; everything else is, as with [`ApplicationForm::from_value`].
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<Self, FormError> {
        Self::from_value(yaml_serde::from_str(text).map_err(|e| FormError::Yaml(e.to_string()))?)
    }

    /// The Application as YAML. Key order may differ from the document it was read from.
    #[cfg(feature = "yaml")]
    pub fn to_yaml(&self) -> Result<String, FormError> {
        yaml_serde::to_string(&self.to_value()).map_err(|e| FormError::Yaml(e.to_string()))
    }
}

// ------------------------------------------------------------------------------------------
// Validation

const MANAGED_BY_URL: &str = "argocd.argoproj.io/managed-by-url";

impl ApplicationForm {
    /// What Argo CD's API server (and the Kubernetes API server under it) would reject, as far
    /// as the form alone can tell: API.md §6.1 rules 1, 2, 4 (shape), 5, 6, 7, 8 and 9, plus
    /// Kubernetes' syntax for names, label and annotation keys, label values and finalizers,
    /// retry durations, `revisionHistoryLimit` and sync-option values. Whether the project,
    /// cluster and repository exist, and whether the project permits them (rules 3, 4 and 6's
    /// permission parts), needs Argo CD and is left to it.
    ///
    /// Every problem is listed, not only the first, so the form can mark all fields at once.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut v = Checker::default();
        self.check_metadata(&mut v);
        self.check_spec(&mut v);
        v.0
    }

    /// Things Argo CD accepts but that probably do not do what was meant: sync options it does
    /// not know (ignored by Argo CD; newer versions may know them, so they are not errors),
    /// sources ignored because another wins by precedence, `ref` in a single source, `path`
    /// beside a Helm-repository `chart`, `values` shadowed by `valuesObject`, and namespace
    /// metadata without `CreateNamespace=true`.
    pub fn warnings(&self) -> Vec<FieldError> {
        let mut v = Checker::default();
        let spec = &self.spec;
        let mode = spec.source_mode();
        if spec.source.is_some() && matches!(mode, SourceMode::Hydrator | SourceMode::Multiple) {
            v.push("spec.source", "is ignored: spec.sourceHydrator or spec.sources wins over spec.source");
        }
        if spec.sources.is_some() && mode == SourceMode::Hydrator {
            v.push("spec.sources", "is ignored: spec.sourceHydrator wins over spec.sources");
        }
        if mode == SourceMode::Single
            && let Some(source) = &spec.source
            && nonempty(&source.r#ref)
        {
            v.push("spec.source.ref", "has no effect outside multi-source applications (spec.sources)");
        }
        for (field, source) in active_sources(spec) {
            if nonempty(&source.chart) && nonempty(&source.path) {
                v.push(
                    format!("{field}.path"),
                    "has no meaning for a chart pulled from a Helm repository; use path for a chart in Git instead of chart",
                );
            }
            if let Some(helm) = &source.tools.helm
                && helm.values_object.is_some()
                && nonempty(&helm.values)
            {
                v.push(format!("{field}.helm.values"), "is ignored because helm.valuesObject is set, which wins");
            }
        }
        if let Some(policy) = &spec.sync_policy {
            for (i, option) in policy.sync_options.iter().flatten().enumerate() {
                if let SyncOption::Other(text) = option {
                    let key = text.split_once('=').map_or(text.as_str(), |(k, _)| k);
                    if SyncOption::accepted_values(key).is_none() {
                        let hint = FLAG_OPTIONS
                            .iter()
                            .chain(VALUE_OPTIONS.iter())
                            .find(|known| known.eq_ignore_ascii_case(key))
                            .map(|known| format!(" (did you mean {known}?)"))
                            .unwrap_or_default();
                        v.push(
                            format!("spec.syncPolicy.syncOptions[{i}]"),
                            format!("{text:?} is not a sync option Argo CD knows and will be ignored{hint}"),
                        );
                    }
                }
            }
            if policy.managed_namespace_metadata.is_some() && !policy.has_option(&SyncOption::CreateNamespace(true)) {
                v.push(
                    "spec.syncPolicy.managedNamespaceMetadata",
                    "has an effect only together with the sync option CreateNamespace=true",
                );
            }
        }
        v.0
    }

    fn check_metadata(&self, v: &mut Checker) {
        let meta = &self.metadata;
        match meta.name.as_deref() {
            None | Some("") => v.push(
                "metadata.name",
                "resource name may not be empty: give the application a name of lowercase letters, digits, '-' and '.'",
            ),
            Some(name) => v.all("metadata.name", dns1123_subdomain(name)),
        }
        if let Some(namespace) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
            v.all("metadata.namespace", dns1123_label(namespace));
        }
        check_labels(v, "metadata.labels", meta.labels.as_ref());
        check_annotations(v, "metadata.annotations", meta.annotations.as_ref());
        if let Some(url) = meta.annotations.as_ref().and_then(|a| a.get(MANAGED_BY_URL))
            && let Err(message) = check_external_url(url)
        {
            v.push(format!("metadata.annotations[{MANAGED_BY_URL:?}]"), format!("invalid managed-by URL: {message}"));
        }
        for (i, finalizer) in meta.finalizers.iter().flatten().enumerate() {
            v.all(format!("metadata.finalizers[{i}]"), qualified_name(finalizer));
        }
    }

    fn check_spec(&self, v: &mut Checker) {
        let spec = &self.spec;
        let app = self.metadata.name.as_deref().unwrap_or_default();

        if spec.project.as_deref().is_none_or(str::is_empty) {
            v.push(
                "spec.project",
                "is required: name the Argo CD project the application belongs to (\"default\" if unsure)",
            );
        }

        match &spec.destination {
            None => v.push(
                "spec.destination",
                "is required: set a cluster URL (server) or a cluster name (name), and a namespace",
            ),
            Some(dest) => {
                let has_server = nonempty(&dest.server);
                let has_name = nonempty(&dest.name);
                if has_server && has_name {
                    v.push(
                        "spec.destination",
                        "application destination can't have both name and server defined: keep either the cluster URL (server) or the cluster name (name)",
                    );
                } else if !has_server && !has_name {
                    v.push(
                        "spec.destination.server",
                        "Destination server missing from app spec: set a cluster URL (server) or a cluster name (name)",
                    );
                }
                if let Some(namespace) = dest.namespace.as_deref().filter(|n| !n.is_empty()) {
                    v.all("spec.destination.namespace", dns1123_label(namespace));
                }
            }
        }

        match spec.source_mode() {
            SourceMode::Missing => v.push(
                "spec.source",
                "spec.source.repoURL and either spec.source.path or spec.source.chart are required: add a source with a repository URL and a path (Git) or a chart (Helm repository)",
            ),
            SourceMode::Single => {
                if let Some(source) = &spec.source {
                    check_source(v, "spec.source", source, false);
                }
            }
            SourceMode::Multiple => {
                let sources = spec.sources.as_deref().unwrap_or_default();
                let mut seen = Vec::new();
                for (i, source) in sources.iter().enumerate() {
                    let field = format!("spec.sources[{i}]");
                    check_source(v, &field, source, true);
                    if let Some(name) = source.name.as_deref().filter(|n| !n.is_empty()) {
                        if seen.contains(&name) {
                            v.push(
                                format!("{field}.name"),
                                format!("application {app} has duplicate source name: {name}: give each source a different name"),
                            );
                        }
                        seen.push(name);
                    }
                }
            }
            SourceMode::Hydrator => {}
        }
        if let Some(hydrator) = &spec.source_hydrator {
            check_hydrator(v, hydrator);
        }

        if let Some(policy) = &spec.sync_policy {
            check_sync_policy(v, policy);
        }

        for (i, ignore) in spec.ignore_differences.iter().flatten().enumerate() {
            if ignore.kind.as_deref().is_none_or(str::is_empty) {
                v.push(
                    format!("spec.ignoreDifferences[{i}].kind"),
                    "is required: a resource kind such as Deployment, or \"*\" for every kind",
                );
            }
        }
        for (i, info) in spec.info.iter().flatten().enumerate() {
            v.name_value(&format!("spec.info[{i}]"), &info.name, &info.value);
        }
        if let Some(limit) = spec.revision_history_limit
            && limit < 0
        {
            v.push(
                "spec.revisionHistoryLimit",
                format!("is {limit}: it must be 0 (keep no history) or more; Argo CD's default is 10"),
            );
        }
    }
}

/// The sources Argo CD will render, with their field paths.
fn active_sources(spec: &Spec) -> Vec<(String, &Source)> {
    match spec.source_mode() {
        SourceMode::Single => spec.source.iter().map(|s| ("spec.source".to_owned(), s)).collect(),
        SourceMode::Multiple => {
            spec.sources.iter().flatten().enumerate().map(|(i, s)| (format!("spec.sources[{i}]"), s)).collect()
        }
        SourceMode::Hydrator | SourceMode::Missing => Vec::new(),
    }
}

fn check_source(v: &mut Checker, field: &str, source: &Source, multi: bool) {
    let has_path = nonempty(&source.path);
    let has_chart = nonempty(&source.chart);
    let has_ref = nonempty(&source.r#ref);
    if !nonempty(&source.repo_url) {
        let argo = if multi {
            "spec.source.repoURL and either source.path, source.chart, or source.ref are required for source"
        } else {
            "spec.source.repoURL and either spec.source.path or spec.source.chart are required"
        };
        v.push(format!("{field}.repoURL"), format!("{argo}: set the repository URL (Git, Helm or OCI)"));
    }
    if multi && !has_path && !has_chart && !has_ref {
        v.push(
            format!("{field}.path"),
            "spec.source.repoURL and either source.path, source.chart, or source.ref are required for source: set a path (Git), a chart (Helm repository) or a ref (a source other sources take value files from)",
        );
    } else if !multi && !has_path && !has_chart {
        v.push(
            format!("{field}.path"),
            "spec.source.repoURL and either spec.source.path or spec.source.chart are required: set a path (Git) or a chart (Helm repository)",
        );
    }
    if has_chart && !nonempty(&source.target_revision) {
        v.push(
            format!("{field}.targetRevision"),
            "spec.source.targetRevision is required if the manifest source is a helm chart: set the chart version, e.g. 1.2.3 or a semver range",
        );
    }
    check_tools(v, field, &source.tools);
}

fn check_tools(v: &mut Checker, field: &str, tools: &Tools) {
    let kinds = tools.kinds();
    if kinds.len() > 1 {
        let names: Vec<String> = kinds.iter().map(ToString::to_string).collect();
        v.push(
            field.to_owned(),
            format!(
                "multiple application sources defined: {}: keep only one of helm, kustomize, directory and plugin",
                names.join(",")
            ),
        );
    }
    if let Some(kustomize) = &tools.kustomize {
        for (i, replica) in kustomize.replicas.iter().flatten().enumerate() {
            let at = format!("{field}.kustomize.replicas[{i}]");
            if replica.name.as_deref().is_none_or(str::is_empty) {
                v.push(format!("{at}.name"), "is required: the name of the Deployment or StatefulSet to scale");
            }
            match &replica.count {
                None => v.push(format!("{at}.count"), "is required: the number of replicas"),
                Some(IntOrString::String(text)) if text.parse::<i64>().is_err() => v.push(
                    format!("{at}.count"),
                    format!("expected integer value for count. Received: {text}: write a whole number"),
                ),
                Some(_) => {}
            }
        }
    }
    if let Some(jsonnet) = tools.directory.as_ref().and_then(|d| d.jsonnet.as_ref()) {
        for (i, var) in jsonnet.ext_vars.iter().flatten().enumerate() {
            v.name_value(&format!("{field}.directory.jsonnet.extVars[{i}]"), &var.name, &var.value);
        }
        for (i, var) in jsonnet.tlas.iter().flatten().enumerate() {
            v.name_value(&format!("{field}.directory.jsonnet.tlas[{i}]"), &var.name, &var.value);
        }
    }
    if let Some(plugin) = &tools.plugin {
        for (i, env) in plugin.env.iter().flatten().enumerate() {
            v.name_value(&format!("{field}.plugin.env[{i}]"), &env.name, &env.value);
        }
    }
}

fn check_hydrator(v: &mut Checker, hydrator: &SourceHydrator) {
    let at = "spec.sourceHydrator";
    let dry = hydrator.dry_source.clone().unwrap_or_default();
    if !nonempty(&dry.repo_url) {
        v.push(
            format!("{at}.drySource.repoURL"),
            "spec.sourceHydrator.drySource.repoURL is required: the Git repository with the unrendered manifests",
        );
    }
    if dry.target_revision.is_none() {
        v.push(format!("{at}.drySource.targetRevision"), "is required: the branch, tag or commit to render from");
    }
    if dry.path.is_none() {
        v.push(format!("{at}.drySource.path"), "is required: the folder to render (\".\" for the repository root)");
    }
    check_tools(v, &format!("{at}.drySource"), &dry.tools);

    let sync = hydrator.sync_source.clone().unwrap_or_default();
    if !nonempty(&sync.target_branch) {
        v.push(
            format!("{at}.syncSource.targetBranch"),
            "spec.sourceHydrator.syncSource.targetBranch is required: the branch rendered manifests are committed to",
        );
    }
    match sync.path.as_deref() {
        None => v.push(format!("{at}.syncSource.path"), "is required: the folder rendered manifests are written to"),
        Some(path) => {
            let ok = path.chars().count() >= 2 || path.chars().last().is_some_and(|c| c != '.' && c != '/');
            if !ok {
                v.push(
                    format!("{at}.syncSource.path"),
                    "must match ^.{2,}|[^./]$: a folder below the repository root, not \"\", \".\" or \"/\"",
                );
            }
        }
    }
    if let Some(hydrate_to) = &hydrator.hydrate_to
        && !nonempty(&hydrate_to.target_branch)
    {
        // Argo CD's message names `path` but the check is on `targetBranch`.
        v.push(
            format!("{at}.hydrateTo.targetBranch"),
            "when spec.sourceHydrator.hydrateTo is set, spec.sourceHydrator.hydrateTo.path is required: set hydrateTo.targetBranch, the branch to hydrate to",
        );
    }
}

fn check_sync_policy(v: &mut Checker, policy: &SyncPolicy) {
    let at = "spec.syncPolicy";
    for (i, option) in policy.sync_options.iter().flatten().enumerate() {
        if let SyncOption::Other(text) = option {
            let key = text.split_once('=').map_or(text.as_str(), |(key, _)| key);
            if let Some(accepted) = SyncOption::accepted_values(key) {
                v.push(
                    format!("{at}.syncOptions[{i}]"),
                    format!("{text:?} is not a form Argo CD reads, so it would be ignored: write {key}= followed by {accepted}"),
                );
            }
        }
    }
    if let Some(backoff) = policy.retry.as_ref().and_then(|r| r.backoff.as_ref()) {
        for (name, value) in [("duration", &backoff.duration), ("maxDuration", &backoff.max_duration)] {
            if let Some(text) = value
                && let Err(message) = parse_backoff_duration(text)
            {
                v.push(format!("{at}.retry.backoff.{name}"), message);
            }
        }
    }
    if let Some(meta) = &policy.managed_namespace_metadata {
        check_labels(v, &format!("{at}.managedNamespaceMetadata.labels"), meta.labels.as_ref());
        check_annotations(v, &format!("{at}.managedNamespaceMetadata.annotations"), meta.annotations.as_ref());
    }
}

/// Reads a retry backoff duration as Argo CD does (`parseStringToDuration`): a bare integer is
/// seconds, anything else Go's `time.ParseDuration` syntax (`90s`, `3m`, `1h30m`, `1.5h`).
pub fn parse_backoff_duration(text: &str) -> Result<Duration, String> {
    let accepted = "write a number of seconds (30) or a number with a unit: ns, us, ms, s, m or h (5s, 3m, 1h30m)";
    let seconds = if let Ok(seconds) = text.parse::<i64>() {
        seconds as f64
    } else {
        match parse_go_duration(text) {
            Some(seconds) => seconds,
            None => return Err(format!("{text:?} is not a duration: {accepted}")),
        }
    };
    if seconds < 0.0 {
        return Err(format!("{text:?} is negative: a backoff must be 0 or more; {accepted}"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is too long a duration; {accepted}"))
}

/// Go's `time.ParseDuration`, in seconds; `None` where Go returns an error.
fn parse_go_duration(text: &str) -> Option<f64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (whole, after) = rest.split_at(whole_len);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => after.split_at(after.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        let number: f64 = format!("0{whole}.{fraction}0").parse().ok()?;
        total += number * scale;
        rest = after;
    }
    Some(if negative { -total } else { total })
}

fn nonempty(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|s| !s.is_empty())
}

#[derive(Default)]
struct Checker(Vec<FieldError>);

impl Checker {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    fn all(&mut self, field: impl Into<String>, messages: Vec<String>) {
        let field = field.into();
        for message in messages {
            self.push(field.clone(), message);
        }
    }

    /// The CRD requires both keys of these pairs; a nameless entry would also be useless.
    fn name_value(&mut self, at: &str, name: &Option<String>, value: &Option<String>) {
        if !nonempty(name) {
            self.push(format!("{at}.name"), "is required and may not be empty");
        }
        if value.is_none() {
            self.push(format!("{at}.value"), "is required (it may be empty)");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Kubernetes name syntax (k8s.io/apimachinery/pkg/util/validation), with its messages.

const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MESSAGE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
/// Kubernetes' limit on all annotations of one object together.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, without the length limit.
fn is_dns_label_part(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 253 {
        errors.push("must be no more than 253 characters".to_owned());
    }
    if !value.split('.').all(is_dns_label_part) {
        errors.push(DNS1123_SUBDOMAIN_MESSAGE.to_owned());
    }
    errors
}

fn dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !is_dns_label_part(value) {
        errors.push(DNS1123_LABEL_MESSAGE.to_owned());
    }
    errors
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Label and annotation keys, finalizers: `[prefix/]name`, the prefix a DNS subdomain.
fn qualified_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let (prefix, name) = match value.split('/').collect::<Vec<_>>()[..] {
        [name] => (None, name),
        [prefix, name] => (Some(prefix), name),
        _ => {
            return vec!["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_owned()];
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errors.push("prefix part must be non-empty".to_owned());
        } else {
            errors.extend(dns1123_subdomain(prefix).into_iter().map(|e| format!("prefix part {e}")));
        }
    }
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else {
        if name.len() > 63 {
            errors.push("name part must be no more than 63 characters".to_owned());
        }
        if !is_qualified_name_part(name) {
            errors.push(QUALIFIED_NAME_MESSAGE.to_owned());
        }
    }
    errors
}

fn label_value(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errors.push(LABEL_VALUE_MESSAGE.to_owned());
    }
    errors
}

fn check_labels(v: &mut Checker, at: &str, labels: Option<&BTreeMap<String, String>>) {
    for (key, value) in labels.into_iter().flatten() {
        v.all(format!("{at}[{key:?}]"), qualified_name(key).into_iter().map(|e| format!("key: {e}")).collect());
        v.all(format!("{at}[{key:?}]"), label_value(value).into_iter().map(|e| format!("value: {e}")).collect());
    }
}

fn check_annotations(v: &mut Checker, at: &str, annotations: Option<&BTreeMap<String, String>>) {
    let mut total = 0;
    for (key, value) in annotations.into_iter().flatten() {
        v.all(format!("{at}[{key:?}]"), qualified_name(key).into_iter().map(|e| format!("key: {e}")).collect());
        total += key.len() + value.len();
    }
    if total > ANNOTATIONS_MAX_BYTES {
        v.push(at, format!("may not be more than 256 KiB in total (keys and values), but is {total} bytes"));
    }
}

/// Argo CD's `ValidateManagedByURL` in spirit: an absolute http(s) URL with a host.
fn check_external_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("it must be an absolute http:// or https:// URL")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("it must name a host, e.g. https://argocd.example.com");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/argocd/", $name)
        };
    }

    fn read_fixture(path: &str) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    /// A small Application that passes every check; tests break one thing at a time.
    fn valid() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "guestbook", "namespace": "argocd"},
            "spec": {
                "project": "default",
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "guestbook"},
                "source": {
                    "repoURL": "https://github.com/argoproj/argocd-example-apps.git",
                    "path": "guestbook",
                    "targetRevision": "HEAD"
                }
            }
        })
    }

    fn form(value: Value) -> ApplicationForm {
        ApplicationForm::from_value(value).unwrap()
    }

    /// `value` with the JSON at `pointer` replaced (or inserted into its parent object).
    fn with(mut value: Value, pointer: &str, new: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = value.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
        match parent {
            Value::Object(o) => {
                o.insert(key.to_owned(), new);
            }
            Value::Array(a) => {
                let index = key.parse::<usize>().unwrap();
                if index == a.len() { a.push(new) } else { a[index] = new }
            }
            _ => panic!("{pointer} is not in an object or array"),
        }
        value
    }

    fn without(mut value: Value, pointer: &str) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        value.pointer_mut(parent).and_then(Value::as_object_mut).unwrap().remove(key);
        value
    }

    fn errors(value: Value) -> Vec<FieldError> {
        form(value).validate()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    /// Asserts exactly one error, on `field`, whose message contains `needle`.
    fn assert_one_error(value: Value, field: &str, needle: &str) {
        let errors = errors(value);
        assert_eq!(fields(&errors), [field], "{errors:#?}");
        assert!(errors[0].message.contains(needle), "{:?} lacks {needle:?}", errors[0].message);
    }

    fn assert_round_trip(value: &Value) {
        let form = form(value.clone());
        assert_eq!(&form.to_value(), value);
    }

    // -- round trip ------------------------------------------------------------------------

    #[test]
    fn the_real_velero_application_round_trips_to_an_equal_value_and_is_valid() {
        let value: Value = serde_json::from_str(&read_fixture(fixture!("application-velero-test.json"))).unwrap();
        let form = form(value.clone());
        assert_eq!(form.to_value(), value);
        assert!(form.extra.contains_key("status"), "status is kept for writing back");
        assert_eq!(form.spec.destination.as_ref().unwrap().name.as_deref(), Some("gke-alpha-01-europe-west1"));
        assert_eq!(form.spec.source.as_ref().unwrap().tools.kinds(), [ToolKind::Plugin]);
        // A real spec spells out defaults (`Validate=true`), which is why flags take both values.
        assert_eq!(
            form.spec.sync_policy.as_ref().unwrap().sync_options.as_deref(),
            Some(
                &[
                    SyncOption::CreateNamespace(true),
                    SyncOption::ApplyOutOfSyncOnly(true),
                    SyncOption::RespectIgnoreDifferences(false),
                    SyncOption::ServerSideApply(true),
                    SyncOption::Validate(true),
                ][..]
            )
        );
        assert_eq!(form.warnings(), []);
        assert_eq!(form.validate(), []);
    }

    #[test]
    fn status_and_operation_survive_an_edit() {
        let value = with(valid(), "/status", json!({"sync": {"status": "Synced"}, "history": [{"id": 1}]}));
        let value = with(value, "/operation", json!({"sync": {"revision": "abc"}}));
        let mut form = form(value.clone());
        form.spec.project = Some("team".into());
        let written = form.to_value();
        assert_eq!(written["status"], value["status"]);
        assert_eq!(written["operation"], value["operation"]);
        assert_eq!(written["spec"]["project"], "team");
    }

    #[test]
    fn absent_and_empty_stay_different() {
        let value = with(valid(), "/spec/source/targetRevision", json!(""));
        let value = with(value, "/metadata/labels", json!({}));
        let value = with(value, "/spec/sources", json!([]));
        assert_round_trip(&value);
        assert_round_trip(&without(valid(), "/spec/source/targetRevision"));
    }

    #[test]
    fn unmodelled_nulls_survive_and_modelled_nulls_read_as_absent() {
        let value = with(valid(), "/spec/futureField", Value::Null);
        assert_round_trip(&value);
        let form = form(with(valid(), "/spec/revisionHistoryLimit", Value::Null));
        assert_eq!(form.to_value(), valid());
    }

    /// A small deterministic generator, so the "property" test needs no extra crate.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }

        fn value(&mut self, depth: u32) -> Value {
            let kinds = if depth > 2 { 5 } else { 7 };
            match self.next() % kinds {
                0 => Value::Null,
                1 => json!(self.next().is_multiple_of(2)),
                2 => json!(self.next() as i64 - (1 << 30)),
                3 => json!(self.next() as f64 / 7.0),
                4 => json!(format!("s{}\nline two: {}", self.next(), self.next())),
                5 => Value::Array((0..self.next() % 3).map(|_| self.value(depth + 1)).collect()),
                _ => Value::Object((0..self.next() % 3).map(|i| (format!("k{i}"), self.value(depth + 1))).collect()),
            }
        }
    }

    /// Maps whose values the model types as strings (or booleans, for patch options).
    const STRING_MAPS: [&str; 5] = ["labels", "annotations", "commonLabels", "commonAnnotations", "map"];

    /// Adds a random unknown key to every object of `value`, recursively, except inside
    /// free-form values the model keeps whole.
    fn sprinkle(value: &mut Value, rng: &mut Lcg, parent_key: &str) {
        match value {
            Value::Object(object) => {
                if parent_key == "options" {
                    object.insert(format!("x{}", rng.next()), json!(rng.next().is_multiple_of(2)));
                    return;
                }
                if STRING_MAPS.contains(&parent_key) {
                    object.insert(format!("x.example.com/k{}", rng.next()), json!(format!("v{}", rng.next())));
                    return;
                }
                if matches!(parent_key, "valuesObject" | "status" | "operation") {
                    return;
                }
                for (key, child) in object.iter_mut() {
                    sprinkle(child, rng, key);
                }
                let extra = rng.value(0);
                object.insert(format!("xLandfall{}", rng.next()), extra);
            }
            Value::Array(items) => items.iter_mut().for_each(|item| sprinkle(item, rng, parent_key)),
            _ => {}
        }
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn arbitrary_extra_keys_survive_everywhere() {
        let reference = reference();
        for seed in 0..40 {
            let mut rng = Lcg(seed);
            let mut value = reference.clone();
            sprinkle(&mut value, &mut rng, "");
            let form = form(value.clone());
            assert_eq!(form.to_value(), value, "seed {seed}");
            let yaml = form.to_yaml().unwrap();
            assert_eq!(ApplicationForm::from_yaml(&yaml).unwrap(), form, "seed {seed}: form → YAML → form");
        }
    }

    #[test]
    fn extra_keys_survive_in_a_plain_application() {
        for seed in 0..40 {
            let mut rng = Lcg(seed);
            let mut value = with(valid(), "/spec/syncPolicy", json!({"automated": {}, "retry": {"backoff": {}}}));
            sprinkle(&mut value, &mut rng, "");
            assert_round_trip(&value);
        }
    }

    // -- the reference spec, split into valid Applications -------------------------------

    #[cfg(feature = "yaml")]
    fn reference() -> Value {
        yaml_serde::from_str(&read_fixture(fixture!("application-spec-reference.yaml"))).unwrap()
    }

    /// The reference with only `spec.source` left, keeping the named tool block.
    #[cfg(feature = "yaml")]
    fn single_source(tool: &str) -> Value {
        let mut value = without(without(reference(), "/spec/sources"), "/spec/sourceHydrator");
        for other in ["helm", "kustomize", "directory", "plugin"] {
            if other != tool {
                value = without(value, &format!("/spec/source/{other}"));
            }
        }
        // `path` and `chart` are alternatives: a chart from a Helm repository, a path in Git.
        if tool == "helm" { without(value, "/spec/source/path") } else { without(value, "/spec/source/chart") }
    }

    #[cfg(feature = "yaml")]
    fn assert_valid_round_trip(value: &Value) {
        let form = form(value.clone());
        assert_eq!(form.validate(), [], "{value:#}");
        assert_eq!(&form.to_value(), value);
        let yaml = form.to_yaml().unwrap();
        let again = ApplicationForm::from_yaml(&yaml).unwrap();
        assert_eq!(again, form, "form → YAML → form");
        assert_eq!(again.to_value(), *value);
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn the_whole_reference_round_trips_and_only_warns_about_ignored_sources() {
        let value = reference();
        let form = ApplicationForm::from_yaml(&read_fixture(fixture!("application-spec-reference.yaml"))).unwrap();
        assert_eq!(form.to_value(), value);
        assert_eq!(form.spec.source_mode(), SourceMode::Hydrator);
        assert_eq!(form.validate(), [], "the hydrator wins, and it is complete");
        let warnings = form.warnings();
        assert!(fields(&warnings).contains(&"spec.source"), "{warnings:#?}");
        assert!(fields(&warnings).contains(&"spec.sources"), "{warnings:#?}");
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn each_tool_of_the_reference_makes_a_valid_application() {
        for tool in ["helm", "kustomize", "directory", "plugin"] {
            let value = single_source(tool);
            assert_valid_round_trip(&value);
            let kinds = form(value).spec.source.unwrap().tools.kinds();
            assert_eq!(kinds.len(), 1, "{tool}");
        }
        let helm = form(single_source("helm"));
        let helm_block = helm.spec.source.unwrap().tools.helm.unwrap();
        assert_eq!(helm_block.parameters.as_ref().unwrap()[1].force_string, Some(true));
        assert!(helm_block.values_object.unwrap().is_object());
        let kustomize = form(single_source("kustomize")).spec.source.unwrap().tools.kustomize.unwrap();
        assert_eq!(kustomize.replicas.unwrap()[0].count, Some(IntOrString::Int(4)));
        let plugin = form(single_source("plugin")).spec.source.unwrap().tools.plugin.unwrap();
        let parameters = plugin.parameters.unwrap();
        assert_eq!(parameters[1].array.as_deref(), Some(&["item1".to_owned(), "item2".to_owned()][..]));
        assert_eq!(parameters[2].map.as_ref().unwrap()["param-name"], "param-value");
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn the_reference_sync_policy_is_typed() {
        let policy = form(single_source("helm")).spec.sync_policy.unwrap();
        assert!(policy.is_automated());
        let options = policy.sync_options.unwrap();
        assert_eq!(options[0], SyncOption::Validate(false));
        assert_eq!(options[2], SyncOption::PrunePropagationPolicy(PropagationPolicy::Foreground));
        assert!(options.iter().all(|o| !matches!(o, SyncOption::Other(_))), "{options:?}");
        assert_eq!(
            parse_backoff_duration(&policy.retry.unwrap().backoff.unwrap().duration.unwrap()),
            Ok(Duration::from_secs(5))
        );
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn the_reference_as_multi_source_and_as_hydrator_is_valid() {
        let multi = without(without(reference(), "/spec/source"), "/spec/sourceHydrator");
        let multi = with(
            multi,
            "/spec/sources/1",
            json!({
                "repoURL": "https://charts.example.com",
                "chart": "guestbook",
                "targetRevision": "1.2.3",
                "name": "chart",
                "helm": {"valueFiles": ["$my-repo/values.yaml"]}
            }),
        );
        assert_eq!(form(multi.clone()).spec.source_mode(), SourceMode::Multiple);
        assert_valid_round_trip(&multi);

        let hydrator = without(without(reference(), "/spec/source"), "/spec/sources");
        assert_eq!(form(hydrator.clone()).spec.source_mode(), SourceMode::Hydrator);
        assert_valid_round_trip(&hydrator);
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn the_velero_yaml_reads_as_the_velero_json() {
        let json: Value = serde_json::from_str(&read_fixture(fixture!("application-velero-test.json"))).unwrap();
        let form = ApplicationForm::from_yaml(&read_fixture(fixture!("application-velero-test.yaml"))).unwrap();
        assert_eq!(form.to_value(), json);
        assert_eq!(ApplicationForm::from_yaml(&form.to_yaml().unwrap()).unwrap(), form);
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn yaml_that_is_not_one_application_is_refused() {
        assert!(matches!(ApplicationForm::from_yaml("a: [b"), Err(FormError::Yaml(_))));
        assert!(matches!(ApplicationForm::from_yaml(""), Err(FormError::NotAnObject(_))));
        assert!(matches!(ApplicationForm::from_yaml("kind: AppProject\n"), Err(FormError::WrongKind(_))));
    }

    // -- reading ---------------------------------------------------------------------------

    #[test]
    fn non_applications_are_refused_with_a_reason() {
        assert!(matches!(ApplicationForm::from_value(json!([1])), Err(FormError::NotAnObject("a list"))));
        let error = ApplicationForm::from_value(with(valid(), "/kind", json!("AppProject"))).unwrap_err();
        assert!(error.to_string().contains("\"AppProject\""), "{error}");
        let error = ApplicationForm::from_value(with(valid(), "/spec/revisionHistoryLimit", json!("ten"))).unwrap_err();
        assert!(matches!(error, FormError::Shape(_)), "{error}");
    }

    #[test]
    fn a_new_form_names_its_kind() {
        let value = ApplicationForm::new().to_value();
        assert_eq!(value, json!({"apiVersion": API_VERSION, "kind": "Application", "metadata": {}, "spec": {}}));
    }

    // -- validation ------------------------------------------------------------------------

    #[test]
    fn the_base_application_is_valid() {
        assert_eq!(errors(valid()), []);
        assert_eq!(form(valid()).warnings(), []);
    }

    #[test]
    fn rule_1_name_is_required_and_a_dns_subdomain() {
        assert_one_error(without(valid(), "/metadata/name"), "metadata.name", "resource name may not be empty");
        assert_one_error(with(valid(), "/metadata/name", json!("")), "metadata.name", "may not be empty");
        assert_one_error(with(valid(), "/metadata/name", json!("Guest_book")), "metadata.name", "RFC 1123 subdomain");
        assert_one_error(with(valid(), "/metadata/name", json!("guestbook-")), "metadata.name", "RFC 1123 subdomain");
        assert_one_error(with(valid(), "/metadata/name", json!("a".repeat(254))), "metadata.name", "253 characters");
        assert_eq!(errors(with(valid(), "/metadata/name", json!("guestbook.prod-1"))), []);
        assert_one_error(
            with(valid(), "/metadata/namespace", json!("argo.cd")),
            "metadata.namespace",
            "RFC 1123 label",
        );
    }

    #[test]
    fn rule_2_multi_source_names_are_unique() {
        let source = |name: &str| json!({"repoURL": "https://git.example.com/a.git", "path": name, "name": name});
        let two = without(with(valid(), "/spec/sources", json!([source("a"), source("a")])), "/spec/source");
        assert_one_error(two, "spec.sources[1].name", "application guestbook has duplicate source name: a");
        let two = without(with(valid(), "/spec/sources", json!([source("a"), source("b")])), "/spec/source");
        assert_eq!(errors(two), []);
    }

    #[test]
    fn rule_4_destination_is_a_server_or_a_name() {
        let both = with(valid(), "/spec/destination/name", json!("in-cluster"));
        assert_one_error(both, "spec.destination", "application destination can't have both name and server defined");
        let neither = without(valid(), "/spec/destination/server");
        assert_one_error(neither, "spec.destination.server", "Destination server missing from app spec");
        let by_name = with(neither_server(), "/spec/destination/name", json!("in-cluster"));
        assert_eq!(errors(by_name), []);
        assert_one_error(without(valid(), "/spec/destination"), "spec.destination", "is required");
    }

    fn neither_server() -> Value {
        without(valid(), "/spec/destination/server")
    }

    #[test]
    fn rule_5_one_tool_block_per_source() {
        let two = with(valid(), "/spec/source/helm", json!({"releaseName": "x"}));
        let two = with(two, "/spec/source/kustomize", json!({"namePrefix": "p-"}));
        assert_one_error(two.clone(), "spec.source", "multiple application sources defined: Kustomize,Helm");
        // An empty block is dropped by Argo CD's NormalizeSource, so it does not count.
        let one = with(two.clone(), "/spec/source/helm", json!({"passCredentials": false, "valueFiles": []}));
        assert_eq!(errors(one), []);

        let mut switched = form(two);
        let tools = &mut switched.spec.source.as_mut().unwrap().tools;
        tools.keep_only(ToolKind::Helm);
        assert_eq!(tools.kinds(), [ToolKind::Helm]);
        assert!(tools.kustomize.is_none());
        assert_eq!(switched.validate(), []);
        tools_of(&mut switched).keep_only(ToolKind::Plugin);
        assert_eq!(tools_of(&mut switched).plugin, Some(Plugin::default()));
        assert!(tools_of(&mut switched).helm.is_none());
    }

    fn tools_of(form: &mut ApplicationForm) -> &mut Tools {
        &mut form.spec.source.as_mut().unwrap().tools
    }

    #[test]
    fn rule_6_sources_need_a_repository_and_a_path_or_chart() {
        assert_one_error(
            without(valid(), "/spec/source/repoURL"),
            "spec.source.repoURL",
            "spec.source.repoURL and either spec.source.path or spec.source.chart are required",
        );
        assert_one_error(
            without(valid(), "/spec/source/path"),
            "spec.source.path",
            "either spec.source.path or spec.source.chart",
        );
        assert_one_error(without(valid(), "/spec/source"), "spec.source", "are required");
        let chart = with(without(valid(), "/spec/source/path"), "/spec/source/chart", json!("guestbook"));
        assert_eq!(errors(chart.clone()), []);
        assert_one_error(
            without(chart, "/spec/source/targetRevision"),
            "spec.source.targetRevision",
            "spec.source.targetRevision is required if the manifest source is a helm chart",
        );
    }

    #[test]
    fn rule_6_multi_source_entries_may_be_ref_only() {
        let sources = json!([
            {"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.2.3"},
            {"repoURL": "https://git.example.com/values.git", "targetRevision": "main", "ref": "values"}
        ]);
        let multi = without(with(valid(), "/spec/sources", sources), "/spec/source");
        assert_eq!(errors(multi.clone()), []);
        assert_one_error(
            without(multi, "/spec/sources/1/ref"),
            "spec.sources[1].path",
            "either source.path, source.chart, or source.ref are required for source",
        );
    }

    #[test]
    fn rule_6_hydrator_needs_its_repository_and_branches() {
        let hydrator = json!({
            "drySource": {"repoURL": "https://git.example.com/a.git", "targetRevision": "HEAD", "path": "app"},
            "syncSource": {"targetBranch": "env/prod", "path": "app-hydrated"}
        });
        let valid_hydrator = without(with(valid(), "/spec/sourceHydrator", hydrator), "/spec/source");
        assert_eq!(errors(valid_hydrator.clone()), []);
        assert_one_error(
            with(valid_hydrator.clone(), "/spec/sourceHydrator/drySource/repoURL", json!("")),
            "spec.sourceHydrator.drySource.repoURL",
            "spec.sourceHydrator.drySource.repoURL is required",
        );
        assert_one_error(
            without(valid_hydrator.clone(), "/spec/sourceHydrator/syncSource/targetBranch"),
            "spec.sourceHydrator.syncSource.targetBranch",
            "spec.sourceHydrator.syncSource.targetBranch is required",
        );
        assert_one_error(
            with(valid_hydrator.clone(), "/spec/sourceHydrator/hydrateTo", json!({})),
            "spec.sourceHydrator.hydrateTo.targetBranch",
            "when spec.sourceHydrator.hydrateTo is set",
        );
        assert_eq!(errors(with(valid_hydrator, "/spec/sourceHydrator/hydrateTo", json!({"targetBranch": "next"}))), []);
    }

    #[test]
    fn rule_8_fields_the_crd_requires() {
        assert_one_error(without(valid(), "/spec/project"), "spec.project", "is required");
        assert_one_error(
            with(valid(), "/spec/ignoreDifferences", json!([{"group": "apps", "jsonPointers": ["/spec/replicas"]}])),
            "spec.ignoreDifferences[0].kind",
            "is required",
        );
        assert_eq!(errors(with(valid(), "/spec/ignoreDifferences", json!([{"kind": "*"}]))), []);
        assert_one_error(with(valid(), "/spec/info", json!([{"name": "Docs"}])), "spec.info[0].value", "is required");
        assert_eq!(errors(with(valid(), "/spec/info", json!([{"name": "Docs", "value": ""}]))), []);
        assert_one_error(
            with(valid(), "/spec/source/plugin", json!({"env": [{"value": "1"}]})),
            "spec.source.plugin.env[0].name",
            "is required",
        );
        assert_one_error(
            with(valid(), "/spec/source/directory", json!({"jsonnet": {"tlas": [{"name": "a"}]}})),
            "spec.source.directory.jsonnet.tlas[0].value",
            "is required",
        );
        assert_one_error(
            with(valid(), "/spec/source/kustomize", json!({"replicas": [{"name": "web"}]})),
            "spec.source.kustomize.replicas[0].count",
            "is required",
        );
        assert_one_error(
            with(valid(), "/spec/source/kustomize", json!({"replicas": [{"name": "web", "count": "four"}]})),
            "spec.source.kustomize.replicas[0].count",
            "expected integer value for count",
        );
        assert_eq!(
            errors(with(valid(), "/spec/source/kustomize", json!({"replicas": [{"name": "web", "count": "4"}]}))),
            []
        );
    }

    #[test]
    fn rule_8_hydrator_sync_path_is_below_the_root() {
        let hydrator = |path: &str| {
            let h = json!({
                "drySource": {"repoURL": "https://git.example.com/a.git", "targetRevision": "HEAD", "path": "."},
                "syncSource": {"targetBranch": "env/prod", "path": path}
            });
            without(with(valid(), "/spec/sourceHydrator", h), "/spec/source")
        };
        for bad in ["", ".", "/"] {
            assert_one_error(hydrator(bad), "spec.sourceHydrator.syncSource.path", "^.{2,}|[^./]$");
        }
        for good in ["a", "./", "apps/web"] {
            assert_eq!(errors(hydrator(good)), [], "{good:?}");
        }
    }

    #[test]
    fn rule_7_managed_by_url_is_an_http_url() {
        let url = |u: &str| with(valid(), "/metadata/annotations", json!({ (MANAGED_BY_URL): u }));
        assert_one_error(url("ftp://argocd.example.com"), &format!("metadata.annotations[{MANAGED_BY_URL:?}]"), "http");
        assert_one_error(url("https:///path"), &format!("metadata.annotations[{MANAGED_BY_URL:?}]"), "host");
        assert_eq!(errors(url("https://argocd.example.com/applications")), []);
    }

    #[test]
    fn label_and_annotation_keys_and_label_values_follow_kubernetes() {
        let labels = |l: Value| with(valid(), "/metadata/labels", l);
        assert_eq!(errors(labels(json!({"app.kubernetes.io/name": "guestbook", "tier": ""}))), []);
        assert_one_error(labels(json!({"-tier": "web"})), "metadata.labels[\"-tier\"]", "key: name part must consist");
        assert_one_error(labels(json!({"a/b/c": "web"})), "metadata.labels[\"a/b/c\"]", "qualified name");
        assert_one_error(labels(json!({"Example.com/x": "web"})), "metadata.labels[\"Example.com/x\"]", "prefix part");
        assert_one_error(
            labels(json!({"tier": "a".repeat(64)})),
            "metadata.labels[\"tier\"]",
            "value: must be no more than 63",
        );
        assert_one_error(labels(json!({"tier": "web!"})), "metadata.labels[\"tier\"]", "value: a valid label");
        let annotations = |a: Value| with(valid(), "/metadata/annotations", a);
        assert_eq!(errors(annotations(json!({"note": "any text: at all!"}))), []);
        assert_one_error(
            annotations(json!({"/note": "x"})),
            "metadata.annotations[\"/note\"]",
            "prefix part must be non-empty",
        );
        assert_one_error(
            annotations(json!({"big": "x".repeat(ANNOTATIONS_MAX_BYTES)})),
            "metadata.annotations",
            "256 KiB",
        );
        let namespace =
            with(valid(), "/spec/syncPolicy", json!({"managedNamespaceMetadata": {"labels": {"bad key": "x"}}}));
        assert_one_error(namespace, "spec.syncPolicy.managedNamespaceMetadata.labels[\"bad key\"]", "key:");
        assert_one_error(
            with(valid(), "/metadata/finalizers", json!(["resources-finalizer.argocd.argoproj.io/foreground", "bad/"])),
            "metadata.finalizers[1]",
            "name part must be non-empty",
        );
    }

    #[test]
    fn revision_history_limit_is_not_negative() {
        assert_one_error(
            with(valid(), "/spec/revisionHistoryLimit", json!(-1)),
            "spec.revisionHistoryLimit",
            "0 (keep no history) or more",
        );
        assert_eq!(errors(with(valid(), "/spec/revisionHistoryLimit", json!(0))), []);
    }

    #[test]
    fn backoff_durations_use_argo_cd_syntax() {
        for (text, seconds) in [
            ("5s", 5.0),
            ("3m", 180.0),
            ("30", 30.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("0", 0.0),
            ("250ms", 0.25),
            (".5s", 0.5),
            ("+7", 7.0),
        ] {
            assert_eq!(parse_backoff_duration(text), Ok(Duration::from_secs_f64(seconds)), "{text}");
        }
        for text in ["", "5 s", "5x", "s", "1.", "-5s", "-5", "5s3", "1d"] {
            assert!(parse_backoff_duration(text).is_err(), "{text:?} should be refused");
        }
        let retry = |d: &str| {
            with(
                valid(),
                "/spec/syncPolicy",
                json!({"retry": {"limit": -1, "backoff": {"duration": d, "factor": 2, "maxDuration": "3m"}}}),
            )
        };
        assert_one_error(retry("five seconds"), "spec.syncPolicy.retry.backoff.duration", "ns, us, ms, s, m or h");
        assert_eq!(errors(retry("10")), []);
    }

    #[test]
    fn sync_options_round_trip_exactly_and_unknown_values_of_known_keys_are_errors() {
        let all = [
            "Validate=false",
            "CreateNamespace=true",
            "ApplyOutOfSyncOnly=false",
            "RespectIgnoreDifferences=true",
            "ServerSideApply=true",
            "ClientSideApplyMigration=false",
            "PruneLast=true",
            "PrunePropagationPolicy=orphan",
            "Prune=confirm",
            "Delete=false",
            "Replace=true",
            "SkipDryRunOnMissingResource=true",
            "FailOnSharedResource=true",
            "Force=true",
        ];
        for text in all {
            let option = SyncOption::parse(text);
            assert!(!matches!(option, SyncOption::Other(_)), "{text}");
            assert_eq!(option.to_string(), text);
        }
        let value = with(valid(), "/spec/syncPolicy", json!({"syncOptions": all}));
        assert_round_trip(&value);
        assert_eq!(errors(value), []);

        for odd in ["createnamespace=true", "CreateNamespace", "Future=1", " Validate=false"] {
            assert_eq!(SyncOption::parse(odd), SyncOption::Other(odd.to_owned()));
        }
        assert_one_error(
            policy_of(json!(["CreateNamespace"])),
            "spec.syncPolicy.syncOptions[0]",
            "CreateNamespace= followed by true or false",
        );
        let policy = policy_of;
        assert_one_error(
            policy(json!(["PrunePropagationPolicy=sideways"])),
            "spec.syncPolicy.syncOptions[0]",
            "foreground, background or orphan",
        );
        assert_one_error(policy(json!(["CreateNamespace=yes"])), "spec.syncPolicy.syncOptions[0]", "true or false");
        assert_one_error(policy(json!(["Prune=true"])), "spec.syncPolicy.syncOptions[0]", "false or confirm");

        let unknown = form(policy(json!(["createnamespace=true", "Future=1"])));
        assert_eq!(unknown.validate(), [], "Argo CD ignores options it does not know");
        let warnings = unknown.warnings();
        assert_eq!(fields(&warnings), ["spec.syncPolicy.syncOptions[0]", "spec.syncPolicy.syncOptions[1]"]);
        assert!(warnings[0].message.contains("did you mean CreateNamespace?"), "{warnings:?}");
    }

    fn policy_of(options: Value) -> Value {
        with(valid(), "/spec/syncPolicy", json!({"syncOptions": options}))
    }

    #[test]
    fn warnings_point_at_settings_argo_cd_ignores() {
        let with_ref = with(valid(), "/spec/source/ref", json!("values"));
        assert_eq!(fields(&form(with_ref).warnings()), ["spec.source.ref"]);
        let both_values = with(valid(), "/spec/source/helm", json!({"values": "a: 1", "valuesObject": {"a": 2}}));
        assert_eq!(fields(&form(both_values).warnings()), ["spec.source.helm.values"]);
        let namespace = with(valid(), "/spec/syncPolicy", json!({"managedNamespaceMetadata": {"labels": {"a": "b"}}}));
        assert_eq!(fields(&form(namespace.clone()).warnings()), ["spec.syncPolicy.managedNamespaceMetadata"]);
        let created = with(namespace, "/spec/syncPolicy/syncOptions", json!(["CreateNamespace=true"]));
        assert_eq!(form(created).warnings(), []);
    }

    #[test]
    fn automation_follows_argo_cd() {
        let policy = |p: Value| form(with(valid(), "/spec/syncPolicy", p)).spec.sync_policy.unwrap();
        assert!(policy(json!({"automated": {}})).is_automated());
        assert!(!policy(json!({"automated": {"enabled": false}})).is_automated());
        assert!(!policy(json!({})).is_automated());
    }
}
