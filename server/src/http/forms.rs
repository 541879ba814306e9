//! The application form's back end: an Application read as the typed form model
//! ([`landfall_app::applications::form`]), checked the way Argo CD would check it (plus
//! what only Argo CD's catalogue can tell: does the project, cluster, repository exist),
//! shown as YAML, and the pickers' catalogue. Saving goes through the create and update
//! actions, which run the same checks first.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use landfall_app::applications::form::{ApplicationForm, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::actions::client;
use super::api::ErrorBody;
use super::error::ApiError;
use crate::argocd::client::{ArgoError, Catalogue as CatalogueKind, Client};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/applications/{instance}/{name}/form", get(read_form))
        .route("/api/v1/applications/{instance}/form/check", post(check))
        .route("/api/v1/argocd/{instance}/catalogue", get(catalogue))
}

/// A problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FormProblem {
    /// A path such as `spec.sources[1].helm`.
    pub field: String,
    pub message: String,
}

impl From<FieldError> for FormProblem {
    fn from(error: FieldError) -> Self {
        FormProblem { field: error.field, message: error.message }
    }
}

/// An Application as a form: the object, the same as YAML, and what is wrong with it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FormView {
    /// The Application, every field kept (including those the form does not show).
    #[schema(value_type = Object)]
    pub application: Value,
    pub yaml: String,
    /// True when there are no `errors`.
    pub valid: bool,
    /// What Argo CD would reject.
    pub errors: Vec<FormProblem>,
    /// What Argo CD accepts but probably does not do what was meant.
    pub warnings: Vec<FormProblem>,
}

/// The pickers' choices, without any secret Argo CD holds.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Catalogue {
    pub projects: Vec<ProjectChoice>,
    pub clusters: Vec<ClusterChoice>,
    pub repositories: Vec<RepositoryChoice>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectChoice {
    pub name: String,
    pub description: Option<String>,
    /// Repositories the project allows (`*` is any).
    pub source_repos: Vec<String>,
    /// `(server or name, namespace)` pairs the project allows.
    pub destinations: Vec<DestinationChoice>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DestinationChoice {
    pub server: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterChoice {
    pub name: String,
    pub server: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepositoryChoice {
    pub repo: String,
    /// `git` or `helm`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
}

fn upstream(error: ArgoError) -> ApiError {
    ApiError::Upstream { status: axum::http::StatusCode::BAD_GATEWAY, message: format!("Argo CD: {error}") }
}

/// The form's view of an Application, with the checks that need nothing but the form.
pub fn view(form: &ApplicationForm) -> FormView {
    let errors: Vec<FormProblem> = form.validate().into_iter().map(FormProblem::from).collect();
    let warnings = form.warnings().into_iter().map(FormProblem::from).collect();
    FormView {
        application: form.to_value(),
        yaml: form.to_yaml().unwrap_or_default(),
        valid: errors.is_empty(),
        errors,
        warnings,
    }
}

/// Reads Argo CD's catalogue; a part Landfall's account may not read is left empty.
async fn read_catalogue(client: &Client) -> Result<Catalogue, ApiError> {
    let items = |value: &Value| value["items"].as_array().cloned().unwrap_or_default();
    let text = |value: &Value, pointer: &str| value.pointer(pointer).and_then(Value::as_str).map(String::from);
    let mut catalogue = Catalogue::default();
    match client.catalogue(CatalogueKind::Projects).await {
        Ok(list) => {
            for project in items(&list) {
                let strings = |pointer: &str| -> Vec<String> {
                    project.pointer(pointer).and_then(Value::as_array).map_or_else(Vec::new, |values| {
                        values.iter().filter_map(Value::as_str).map(String::from).collect()
                    })
                };
                let destinations =
                    project.pointer("/spec/destinations").and_then(Value::as_array).map_or_else(Vec::new, |values| {
                        values
                            .iter()
                            .map(|d| DestinationChoice {
                                server: text(d, "/server"),
                                name: text(d, "/name"),
                                namespace: text(d, "/namespace"),
                            })
                            .collect()
                    });
                catalogue.projects.push(ProjectChoice {
                    name: text(&project, "/metadata/name").unwrap_or_default(),
                    description: text(&project, "/spec/description"),
                    source_repos: strings("/spec/sourceRepos"),
                    destinations,
                });
            }
        }
        Err(error) if error.is_denied() => {}
        Err(error) => return Err(upstream(error)),
    }
    match client.catalogue(CatalogueKind::Clusters).await {
        Ok(list) => {
            catalogue.clusters = items(&list)
                .iter()
                .map(|c| ClusterChoice {
                    name: text(c, "/name").unwrap_or_default(),
                    server: text(c, "/server").unwrap_or_default(),
                })
                .collect();
        }
        Err(error) if error.is_denied() => {}
        Err(error) => return Err(upstream(error)),
    }
    match client.catalogue(CatalogueKind::Repositories).await {
        Ok(list) => {
            catalogue.repositories = items(&list)
                .iter()
                .map(|r| RepositoryChoice {
                    repo: text(r, "/repo").unwrap_or_default(),
                    kind: text(r, "/type"),
                    name: text(r, "/name"),
                })
                .collect();
        }
        Err(error) if error.is_denied() => {}
        Err(error) => return Err(upstream(error)),
    }
    Ok(catalogue)
}

/// What only the catalogue can tell: the project exists, the destination cluster is
/// registered (errors, as Argo CD rejects both), the repository is known (a warning:
/// public repositories need no registration).
pub fn catalogue_problems(application: &Value, catalogue: &Catalogue) -> (Vec<FormProblem>, Vec<FormProblem>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let text = |pointer: &str| application.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());
    let project = text("/spec/project").unwrap_or("default");
    if !catalogue.projects.is_empty() && !catalogue.projects.iter().any(|p| p.name == project) {
        let names: Vec<&str> = catalogue.projects.iter().map(|p| p.name.as_str()).collect();
        errors.push(FormProblem {
            field: "spec.project".into(),
            message: format!(
                "app is not allowed in project \"{project}\", or the project does not exist; projects: {}",
                names.join(", ")
            ),
        });
    }
    if !catalogue.clusters.is_empty() {
        if let Some(server) = text("/spec/destination/server")
            && !catalogue.clusters.iter().any(|c| c.server == server)
        {
            errors.push(FormProblem {
                field: "spec.destination.server".into(),
                message: format!("`{server}` is not a cluster registered in Argo CD"),
            });
        }
        if let Some(name) = text("/spec/destination/name")
            && !catalogue.clusters.iter().any(|c| c.name == name)
        {
            errors.push(FormProblem {
                field: "spec.destination.name".into(),
                message: format!("there are no clusters with this name: {name}"),
            });
        }
    }
    let sources: Vec<(String, &Value)> = match application.pointer("/spec/sources").and_then(Value::as_array) {
        Some(sources) if !sources.is_empty() => {
            sources.iter().enumerate().map(|(i, s)| (format!("spec.sources[{i}]"), s)).collect()
        }
        _ => application.pointer("/spec/source").map(|s| ("spec.source".to_string(), s)).into_iter().collect(),
    };
    for (field, source) in sources {
        let Some(repo) = source.get("repoURL").and_then(Value::as_str).filter(|r| !r.is_empty()) else { continue };
        let same = |known: &str| known.trim_end_matches(".git") == repo.trim_end_matches(".git");
        if !catalogue.repositories.iter().any(|r| same(&r.repo)) {
            warnings.push(FormProblem {
                field: format!("{field}.repoURL"),
                message: format!("`{repo}` is not registered in Argo CD; that is fine for a public repository"),
            });
        }
    }
    (errors, warnings)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct NamespaceQuery {
    /// The Application's namespace; default: Argo CD's own.
    namespace: Option<String>,
}

/// An Application read live from Argo CD, as the form model and YAML, with its problems.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{instance}/{name}/form",
    params(
        ("instance" = String, Path, description = "Argo CD instance, as configured"),
        ("name" = String, Path, description = "Application name"),
        NamespaceQuery,
    ),
    responses(
        (status = 200, description = "The Application as a form", body = FormView),
        (status = 404, description = "Unknown instance or application", body = ErrorBody),
        (status = 502, description = "Argo CD failed or could not be reached", body = ErrorBody),
    )
)]
async fn read_form(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Result<Json<FormView>, ApiError> {
    let Path((instance, name)) = path.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let Query(query) = query.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let client = client(&state, &instance)?;
    let namespace = match query.namespace.filter(|n| !n.trim().is_empty()) {
        Some(namespace) => namespace,
        None => match state.ledger.application_namespaces(&instance, &name).await?.as_slice() {
            [one] => one.clone(),
            _ => crate::argocd::DEFAULT_NAMESPACE.to_string(),
        },
    };
    let live = match client.application(&name, &namespace, None).await {
        Ok(live) => live,
        Err(ArgoError::Api { status: 403 | 404, .. }) => {
            return Err(ApiError::NotFound(format!(
                "Argo CD instance `{instance}` shows no application `{namespace}/{name}` to Landfall"
            )));
        }
        Err(error) => return Err(upstream(error)),
    };
    let form = ApplicationForm::from_value(live).map_err(|e| ApiError::Upstream {
        status: axum::http::StatusCode::BAD_GATEWAY,
        message: format!("Argo CD sent an Application the form cannot read: {e}"),
    })?;
    Ok(Json(view(&form)))
}

/// A form to check: the Application as JSON, or as YAML.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[schema(value_type = Option<Object>)]
    pub application: Option<Value>,
    pub yaml: Option<String>,
}

/// Checks an Application before saving it (a dry run): the form's rules, then the
/// project, cluster and repositories against Argo CD's catalogue. Nothing is saved.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{instance}/form/check",
    params(("instance" = String, Path, description = "Argo CD instance, as configured")),
    request_body = CheckRequest,
    responses(
        (status = 200, description = "The Application as a form, with every problem found", body = FormView),
        (status = 400, description = "Neither or both of `application` and `yaml`, or unreadable YAML", body = ErrorBody),
        (status = 404, description = "Unknown instance", body = ErrorBody),
        (status = 502, description = "Argo CD failed or could not be reached", body = ErrorBody),
    )
)]
async fn check(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    bytes: Bytes,
) -> Result<Json<FormView>, ApiError> {
    let Path(instance) = path.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let request: CheckRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!("the body must be {{\"application\": {{…}}}} or {{\"yaml\": \"…\"}}: {e}"))
    })?;
    let form = match (request.application, request.yaml) {
        (Some(application), None) => ApplicationForm::from_value(application),
        (None, Some(yaml)) => ApplicationForm::from_yaml(&yaml),
        _ => return Err(ApiError::BadRequest("give exactly one of `application` (JSON) and `yaml`".into())),
    }
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let client = client(&state, &instance)?;
    let catalogue = read_catalogue(&client).await?;
    let mut view = view(&form);
    let (errors, warnings) = catalogue_problems(&view.application, &catalogue);
    view.errors.extend(errors);
    view.warnings.extend(warnings);
    view.valid = view.errors.is_empty();
    Ok(Json(view))
}

/// Projects, clusters and repositories of an Argo CD instance, for the form's pickers.
#[utoipa::path(
    get,
    path = "/api/v1/argocd/{instance}/catalogue",
    params(("instance" = String, Path, description = "Argo CD instance, as configured")),
    responses(
        (status = 200, description = "What the form can pick from; parts Landfall may not read are empty", body = Catalogue),
        (status = 404, description = "Unknown instance", body = ErrorBody),
        (status = 502, description = "Argo CD failed or could not be reached", body = ErrorBody),
    )
)]
async fn catalogue(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Catalogue>, ApiError> {
    let Path(instance) = path.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let client = client(&state, &instance)?;
    Ok(Json(read_catalogue(&client).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_catalogue_names_unknown_projects_and_clusters() {
        let catalogue = Catalogue {
            projects: vec![ProjectChoice {
                name: "default".into(),
                description: None,
                source_repos: vec!["*".into()],
                destinations: vec![],
            }],
            clusters: vec![ClusterChoice {
                name: "in-cluster".into(),
                server: "https://kubernetes.default.svc".into(),
            }],
            repositories: vec![RepositoryChoice {
                repo: "https://git.example/acme/gitops.git".into(),
                kind: Some("git".into()),
                name: None,
            }],
        };
        let good = json!({"spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc"},
                                   "source": {"repoURL": "https://git.example/acme/gitops"}}});
        assert_eq!(catalogue_problems(&good, &catalogue), (vec![], vec![]));
        let bad = json!({"spec": {"project": "shop", "destination": {"name": "gke-eu"},
                                  "sources": [{"repoURL": "https://elsewhere.example/x.git"}]}});
        let (errors, warnings) = catalogue_problems(&bad, &catalogue);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.project", "spec.destination.name"]);
        assert!(errors[0].message.contains("default"), "{errors:?}");
        assert_eq!(warnings[0].field, "spec.sources[0].repoURL");
    }
}
