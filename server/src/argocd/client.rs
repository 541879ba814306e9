//! A client for the Argo CD REST API, following the wire details of
//! `shared/fixtures/argocd/API.md`: `Content-Type: application/json` on every non-GET
//! request (DELETE included, or Argo CD answers 415), both error shapes, a missing
//! application answered with 403, refresh through `GET …?refresh=`, and the
//! server-sent-event framing of the watch stream with its `:` keepalive.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::RwLock;
use url::Url;

use super::wire::{ApplicationList, ApplicationTree, StreamChunk, UnaryError, WatchEvent};

/// How long a request (other than the watch stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong talking to Argo CD.
#[derive(Debug, thiserror::Error)]
pub enum ArgoError {
    #[error("invalid Argo CD configuration: {0}")]
    Config(String),
    #[error("cannot reach Argo CD: {0}")]
    Unreachable(String),
    #[error("Argo CD answered {status}: {message}")]
    Api { status: u16, code: Option<i64>, message: String },
    #[error("Argo CD sent something Landfall cannot read: {0}")]
    Decode(String),
    #[error("the watch stream broke off: {0}")]
    Broken(String),
    #[error("the watch stream sent neither an event nor a keepalive for {0:?}")]
    Silent(Duration),
    #[error("the watch stream ended with an error ({status}): {message}")]
    Stream { status: u16, message: String },
}

impl ArgoError {
    /// 401 or 403: retrying at once will not help.
    pub fn is_denied(&self) -> bool {
        matches!(self, ArgoError::Api { status: 401 | 403, .. } | ArgoError::Stream { status: 401 | 403, .. })
    }
}

/// How Landfall signs in. Never printed: `Debug` hides the secrets.
#[derive(Clone)]
pub enum Credentials {
    /// A long-lived API key or project-role token.
    Token(String),
    /// A local account, exchanged for a session token at `POST /api/v1/session`.
    Password { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Token(***)"),
            Credentials::Password { username, .. } => write!(f, "Password {{ username: {username:?}, password: *** }}"),
        }
    }
}

/// TLS settings for one Argo CD instance.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// PEM certificates to trust besides the system's.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
}

/// `?refresh=` on `GET /api/v1/applications/{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Normal,
    Hard,
}

/// One Argo CD API server.
pub struct Client {
    base: Url,
    http: reqwest::Client,
    credentials: Credentials,
    session: RwLock<Option<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base.as_str()).field("credentials", &self.credentials).finish()
    }
}

impl Client {
    pub fn new(url: &str, credentials: Credentials, tls: &Tls) -> Result<Client, ArgoError> {
        let mut base = Url::parse(url).map_err(|e| ArgoError::Config(format!("url {url:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ArgoError::Config(format!("url {url:?} must start with https:// or http://")));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(pem) = &tls.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ArgoError::Config(format!("ca_file holds no PEM certificate Landfall can read: {e}")))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| ArgoError::Config(e.to_string()))?;
        let session = match &credentials {
            Credentials::Token(token) => Some(token.clone()),
            Credentials::Password { .. } => None,
        };
        Ok(Client { base, http, credentials, session: RwLock::new(session) })
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.join(path).unwrap_or_else(|_| self.base.clone());
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A session token: the configured one, or one obtained with the password.
    async fn token(&self, renew: bool) -> Result<String, ArgoError> {
        if !renew && let Some(token) = self.session.read().await.clone() {
            return Ok(token);
        }
        let Credentials::Password { username, password } = &self.credentials else {
            return self.session.read().await.clone().ok_or_else(|| ArgoError::Config("no token".into()));
        };
        let response = self
            .http
            .post(self.url("api/v1/session", &[]))
            .header(header::CONTENT_TYPE, "application/json")
            .json(&json!({ "username": username, "password": password }))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| ArgoError::Unreachable(e.without_url().to_string()))?;
        #[derive(serde::Deserialize)]
        struct Session {
            token: String,
        }
        let session: Session = read(response).await?;
        *self.session.write().await = Some(session.token.clone());
        Ok(session.token)
    }

    /// Sends a request with the session token; a password login is renewed once on 401.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ArgoError> {
        let mut renew = false;
        loop {
            let token = self.token(renew).await?;
            let mut request = self.http.request(method.clone(), self.url(path, query)).bearer_auth(&token);
            if method != Method::GET {
                // Exactly this value, also on a body-less DELETE (API.md §0).
                request = request.header(header::CONTENT_TYPE, "application/json");
                request = request.body(body.map_or_else(|| "{}".to_string(), Value::to_string));
            }
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            let response = request.send().await.map_err(|e| ArgoError::Unreachable(e.without_url().to_string()))?;
            let can_renew = matches!(self.credentials, Credentials::Password { .. });
            if response.status() == StatusCode::UNAUTHORIZED && can_renew && !renew {
                renew = true;
                continue;
            }
            return Ok(response);
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, ArgoError> {
        read(self.send(method, path, query, body, Some(REQUEST_TIMEOUT)).await?).await
    }

    /// Every application, with the list's resourceVersion to watch from.
    pub async fn list_applications(&self) -> Result<ApplicationList, ArgoError> {
        self.call(Method::GET, "api/v1/applications", &[], None).await
    }

    /// One application; `refresh` makes Argo CD reconcile it first and answer with the
    /// result (API.md §2.2). A missing application is a 403, as Argo CD hides existence.
    pub async fn application(&self, name: &str, namespace: &str, refresh: Option<Refresh>) -> Result<Value, ArgoError> {
        let mut query = vec![("appNamespace", namespace)];
        match refresh {
            Some(Refresh::Normal) => query.push(("refresh", "normal")),
            Some(Refresh::Hard) => query.push(("refresh", "hard")),
            None => {}
        }
        self.call(Method::GET, &app_path(name, ""), &query, None).await
    }

    pub async fn resource_tree(&self, name: &str, namespace: &str) -> Result<ApplicationTree, ArgoError> {
        self.call(Method::GET, &app_path(name, "/resource-tree"), &[("appNamespace", namespace)], None).await
    }

    /// Starts a sync; `request` is Argo CD's `ApplicationSyncRequest` (revision, prune,
    /// dryRun, strategy, resources, syncOptions, retryStrategy).
    pub async fn sync(&self, name: &str, namespace: &str, request: &Value) -> Result<Value, ArgoError> {
        let mut body = request.clone();
        body["name"] = json!(name);
        body["appNamespace"] = json!(namespace);
        self.call(Method::POST, &app_path(name, "/sync"), &[], Some(&body)).await
    }

    /// Rolls back to a history id (refused by Argo CD while automated sync is on).
    pub async fn rollback(
        &self,
        name: &str,
        namespace: &str,
        id: i64,
        prune: bool,
        dry_run: bool,
    ) -> Result<Value, ArgoError> {
        let body = json!({ "name": name, "appNamespace": namespace, "id": id, "prune": prune, "dryRun": dry_run });
        self.call(Method::POST, &app_path(name, "/rollback"), &[], Some(&body)).await
    }

    /// Terminates the running operation.
    pub async fn terminate(&self, name: &str, namespace: &str) -> Result<(), ArgoError> {
        let _: Value =
            self.call(Method::DELETE, &app_path(name, "/operation"), &[("appNamespace", namespace)], None).await?;
        Ok(())
    }

    pub async fn create(&self, application: &Value, upsert: bool, validate: bool) -> Result<Value, ArgoError> {
        let query = [("upsert", bool_text(upsert)), ("validate", bool_text(validate))];
        self.call(Method::POST, "api/v1/applications", &query, Some(application)).await
    }

    pub async fn update(&self, application: &Value, validate: bool) -> Result<Value, ArgoError> {
        let name = application["metadata"]["name"].as_str().unwrap_or_default();
        self.call(Method::PUT, &app_path(name, ""), &[("validate", bool_text(validate))], Some(application)).await
    }

    /// Deletes an application; `cascade` deletes what it manages too.
    pub async fn delete(&self, name: &str, namespace: &str, cascade: bool) -> Result<(), ArgoError> {
        let query = [("appNamespace", namespace), ("cascade", bool_text(cascade))];
        let _: Value = self.call(Method::DELETE, &app_path(name, ""), &query, None).await?;
        Ok(())
    }

    /// `GET /api/v1/projects`, `/clusters` or `/repositories`: the pickers of the form.
    pub async fn catalogue(&self, what: Catalogue) -> Result<Value, ArgoError> {
        let path = match what {
            Catalogue::Projects => "api/v1/projects",
            Catalogue::Clusters => "api/v1/clusters",
            Catalogue::Repositories => "api/v1/repositories",
        };
        self.call(Method::GET, path, &[], None).await
    }

    /// Opens the application stream from `resource_version` (everything as ADDED first
    /// when `None`).
    pub async fn watch(&self, resource_version: Option<&str>) -> Result<EventStream, ArgoError> {
        let query: Vec<(&str, &str)> = resource_version.map(|rv| ("resourceVersion", rv)).into_iter().collect();
        let token = self.token(false).await?;
        let response = self
            .http
            .get(self.url("api/v1/stream/applications", &query))
            .bearer_auth(token)
            // Exactly this value selects SSE framing with keepalives (API.md §3.1).
            .header(header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| ArgoError::Unreachable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(error_of(response).await);
        }
        Ok(EventStream { response, buffer: Vec::new(), data: String::new() })
    }
}

/// The catalogues the application form picks from.
#[derive(Debug, Clone, Copy)]
pub enum Catalogue {
    Projects,
    Clusters,
    Repositories,
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

fn app_path(name: &str, rest: &str) -> String {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("api/v1/applications/{name}{rest}")
}

async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ArgoError> {
    if !response.status().is_success() {
        return Err(error_of(response).await);
    }
    let bytes = response.bytes().await.map_err(|e| ArgoError::Unreachable(e.without_url().to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| ArgoError::Decode(e.to_string()))
}

/// Reads either error shape, or the plain text of 404/405/415.
async fn error_of(response: reqwest::Response) -> ArgoError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if let Ok(unary) = serde_json::from_str::<UnaryError>(&text)
        && !(unary.message.is_empty() && unary.error.is_empty())
    {
        let message = if unary.message.is_empty() { unary.error } else { unary.message };
        return ArgoError::Api { status, code: Some(unary.code), message };
    }
    // A stream that fails before its first event answers with the error's status and one
    // error chunk, framed as server-sent events when that is what was asked for.
    let chunk: String = text.lines().filter_map(|line| line.strip_prefix("data:")).collect();
    let chunk = if chunk.is_empty() { text.as_str() } else { chunk.as_str() };
    if let Ok(StreamChunk { error: Some(error), .. }) = serde_json::from_str(chunk) {
        return ArgoError::Api { status, code: Some(error.grpc_code), message: error.message };
    }
    let message: String = text.trim().chars().filter(|c| !c.is_control()).take(300).collect();
    ArgoError::Api { status, code: None, message }
}

/// The application stream, read event by event.
pub struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    data: String,
}

impl EventStream {
    /// The next event; `None` when the server closed the stream. Fails when nothing —
    /// not even a keepalive — arrived for `silence`, or on the stream error shape.
    pub async fn next(&mut self, silence: Duration) -> Result<Option<WatchEvent>, ArgoError> {
        loop {
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                if let Some(data) = line.strip_prefix("data:") {
                    self.data.push_str(data.trim());
                } else if line.trim().is_empty() && !self.data.is_empty() {
                    let data = std::mem::take(&mut self.data);
                    let chunk: StreamChunk =
                        serde_json::from_str(&data).map_err(|e| ArgoError::Decode(e.to_string()))?;
                    if let Some(error) = chunk.error {
                        return Err(ArgoError::Stream { status: error.http_code, message: error.message });
                    }
                    if let Some(event) = chunk.result {
                        return Ok(Some(event));
                    }
                }
                // `:` lines are keepalives; they only prove the stream is alive.
            }
            match tokio::time::timeout(silence, self.response.chunk()).await {
                Err(_) => return Err(ArgoError::Silent(silence)),
                Ok(Err(e)) => return Err(ArgoError::Broken(e.without_url().to_string())),
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let token = format!("{:?}", Credentials::Token("s3cret".into()));
        let password = format!("{:?}", Credentials::Password { username: "bot".into(), password: "s3cret".into() });
        assert!(!token.contains("s3cret") && !password.contains("s3cret"), "{token} {password}");
        assert!(password.contains("bot"));
    }

    #[test]
    fn a_bad_url_is_named() {
        let error = Client::new("argocd.example.com", Credentials::Token("t".into()), &Tls::default()).unwrap_err();
        assert!(error.to_string().contains("argocd.example.com"), "{error}");
        let error = Client::new("ftp://argocd", Credentials::Token("t".into()), &Tls::default()).unwrap_err();
        assert!(error.to_string().contains("https://"), "{error}");
    }

    #[test]
    fn application_names_are_escaped_in_paths() {
        assert_eq!(app_path("a/b", "/sync"), "api/v1/applications/a%2Fb/sync");
    }
}
