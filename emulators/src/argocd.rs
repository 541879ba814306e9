//! An Argo CD API server emulator.
//!
//! It reproduces the parts of the Argo CD REST API that a dashboard needs, following
//! `shared/fixtures/argocd/API.md` (which documents where the real server differs from
//! `swagger.json`):
//!
//! * **Transport (§0)**: Go `encoding/json` shapes (int64 as numbers, flattened embedded
//!   structs); the unary error shape `{"error","code","message"}` with the grpc-gateway
//!   gRPC→HTTP status table; `415 Invalid content type` for any POST/PUT/PATCH/DELETE whose
//!   `Content-Type` is not exactly `application/json` (DELETE included); plain-text
//!   `404 Not Found` and `405 Method Not Allowed`; unknown query parameters and body fields
//!   ignored; repeated query keys; `appNamespace` for apps outside the server's namespace.
//! * **Authentication (§1)**: `POST /api/v1/session` with configured users (JWT-shaped token
//!   plus the `argocd.token` cookie), `DELETE /api/v1/session`, `GET /api/v1/session/userinfo`;
//!   bearer or cookie on everything else; `no session information` vs
//!   `invalid session: ...` (a bearer value without three dot-separated parts counts as none);
//!   `GET /api/version` answers only `Version` without login.
//! * **Existence hiding (§1.3)**: a missing app is `403 permission denied` without `project`
//!   and `404 applications.argoproj.io "<name>" not found` with it.
//! * **Applications (§2)**: list (sorted by name, `projects`/legacy `project`, `selector`,
//!   `name`, `repo`, `appNamespace`, `fields`), get (with `?refresh=` annotating, reconciling
//!   and answering with the reconciled object), create (`upsert`, `validate`, the validation
//!   rules of §6.1 that need no Git access, `operation` dropped, `project` normalised), update
//!   (only spec, labels, annotations and finalizers copied), update spec, delete (`cascade`,
//!   `propagationPolicy`, finalizer then `deletionTimestamp` then removal).
//! * **Watch stream (§3)**: SSE framing (`data: <json> \n\n` + `\n`, `:\n` keepalive) when
//!   `Accept` is exactly `text/event-stream`, NDJSON otherwise; list-then-watch with a
//!   synthetic ADDED burst, `resourceVersion` resume filter, single-app watch, per-app
//!   de-duplication, `fields` path filter, the streaming error shape; the resource-tree
//!   stream, which sends the tree again whenever it changes.
//! * **Operations (§4)**: sync (revision(s), prune, dryRun, strategy, resources, syncOptions,
//!   retryStrategy, infos, and the documented refusals), rollback (including
//!   `rollback cannot be initiated when auto-sync is enabled`), terminate. A simulated
//!   controller moves the operation Running → Succeeded/Failed, appends and trims
//!   `status.history`, and updates `status.sync`, `status.health`, `status.summary.images`.
//!   Automated sync reacts to [`Handle::push_revision`].
//! * **Details (§5)**: resource tree, managed resources (exact-match filters, JSON-encoded
//!   states), events, revision metadata (`revision <r> must be resolved` for non-SHAs), sync
//!   windows, projects, clusters, repositories, settings and `can-i`.
//!
//! Test hooks on [`Handle`] seed and inspect state and inject [`Fault`]s (cut streams,
//! restart, 500s, slowness, expired resourceVersions, stream errors).

mod operation;
mod query;
mod routes;
mod server;
mod state;
mod stream;
mod time;
mod wire;

#[cfg(test)]
mod swagger;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use state::Shared;

/// What can go wrong when starting the emulator or seeding it from a test.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not bind the emulator's listener on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("Argo CD emulator must be started inside a Tokio runtime")]
    NoRuntime,
    #[error("invalid seed object: {0}; expected a JSON object with metadata.name")]
    InvalidObject(String),
    #[error("no application named {0:?} in the emulator")]
    NoSuchApplication(String),
}

/// A user that can log in with `POST /api/v1/session`.
#[derive(Clone, Debug)]
pub struct User {
    pub username: String,
    pub password: String,
}

/// How the emulator behaves; [`Options::default`] matches a stock Argo CD where that matters.
#[derive(Clone, Debug)]
pub struct Options {
    /// The namespace Argo CD runs in, used when a request names no `appNamespace`.
    pub namespace: String,
    /// Users that can log in with username and password.
    pub users: Vec<User>,
    /// Long-lived tokens (API keys) accepted as bearer values, with the user they act as.
    /// Like real JWTs they must have three dot-separated parts, or they count as no token.
    pub tokens: Vec<(String, String)>,
    /// How long a sync operation stays Running before it finishes.
    pub sync_duration: Duration,
    /// How long a cascading delete keeps the app with a `deletionTimestamp` before DELETED.
    pub delete_duration: Duration,
    /// Interval of the SSE keepalive comment; Argo CD uses 15 s.
    pub keepalive: Duration,
    /// `Version` reported by `GET /api/version`.
    pub version: String,
    /// `settings.syncWithReplaceAllowed`; when false, `Replace=true` syncs are refused.
    pub sync_with_replace_allowed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: "argocd".into(),
            users: vec![User { username: "admin".into(), password: "password".into() }],
            tokens: Vec::new(),
            sync_duration: Duration::from_millis(200),
            delete_duration: Duration::from_millis(100),
            keepalive: Duration::from_secs(15),
            version: "v3.6.0+37ee009".into(),
            sync_with_replace_allowed: true,
        }
    }
}

/// Misbehaviour to inject, for testing how a client copes with a flaky Argo CD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Abort every open watch stream now (the connection is reset mid-body, no error chunk).
    CutStreams,
    /// Same as [`Handle::restart`]: every connection drops, state and port are kept.
    Restart,
    /// Answer the next `n` requests (any path) with `500` and the unary error shape.
    FailNext(u32),
    /// Delay every request by this long before answering, until [`Handle::clear_faults`].
    Delay(Duration),
    /// Treat every resourceVersion issued so far as expired: a watch resuming from one gets
    /// `too old resource version` in the stream error shape. Not an Argo CD behaviour
    /// documented in API.md (the real Watch only filters); it emulates a compacted backend.
    ExpireResourceVersions,
    /// Send this error in the streaming error shape on every open stream, which ends them.
    StreamError { grpc_code: i32, message: String },
}

/// A minimal Application as a user would create it: `name` in namespace `argocd`, labelled
/// `env: <env>`, one Git source at `apps/<name>`, deployed to the namespace `name`, no
/// automated sync. Tests and the demo adjust what they need.
pub fn example_application(name: &str, env: &str) -> Value {
    serde_json::json!({
        "metadata": {"name": name, "namespace": "argocd", "labels": {"env": env}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/acme/gitops.git", "path": format!("apps/{name}"), "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name}
        }
    })
}

/// Entry point: `ArgoCd::start(Options::default()).await?`.
pub struct ArgoCd;

impl ArgoCd {
    /// Binds `127.0.0.1:0` and serves the emulated API until the [`Handle`] is dropped.
    pub async fn start(options: Options) -> Result<Handle, Error> {
        ArgoCd::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// [`ArgoCd::start`] on a given address, for a demo or a browser test that must know
    /// the port before it starts.
    pub async fn start_at(at: SocketAddr, options: Options) -> Result<Handle, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let shared = Arc::new(Shared::new(options, runtime.clone()));
        let server = server::Server::start(routes::router(shared.clone()), runtime, at).await?;
        tracing::debug!(url = %server.url(), "Argo CD emulator listening");
        Ok(Handle { shared, server })
    }
}

/// A running emulator. Dropping it stops the server and closes every connection.
pub struct Handle {
    shared: Arc<Shared>,
    server: server::Server,
}

impl Handle {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The listening address; kept across [`Handle::restart`].
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Mints a session token for `username` as a successful login would.
    pub fn issue_token(&self, username: &str) -> String {
        self.shared.lock().issue_token(username)
    }

    /// Stores an application as the controller would have written it, bypassing validation.
    /// A numeric `metadata.resourceVersion` is kept (so fixtures round-trip unchanged);
    /// otherwise one is assigned. Emits ADDED (or MODIFIED if it replaces one).
    pub fn insert_application(&self, app: Value) -> Result<Value, Error> {
        self.shared.lock().insert_seed(app)
    }

    /// Every application, sorted by namespace and name.
    pub fn applications(&self) -> Vec<Value> {
        self.shared.lock().apps.values().cloned().collect()
    }

    /// The application called `name` in the default namespace, or in any namespace.
    pub fn application(&self, name: &str) -> Option<Value> {
        let st = self.shared.lock();
        st.key_for(name).and_then(|k| st.apps.get(&k).cloned())
    }

    /// Changes an application in place as a controller would (new resourceVersion, MODIFIED).
    pub fn update_application(&self, name: &str, change: impl FnOnce(&mut Value)) -> Result<Value, Error> {
        let mut st = self.shared.lock();
        let key = st.key_for(name).ok_or_else(|| Error::NoSuchApplication(name.into()))?;
        let mut app = st.apps[&key].clone();
        change(&mut app);
        Ok(st.commit(&key, app))
    }

    /// Removes an application at once (DELETED).
    pub fn remove_application(&self, name: &str) -> Result<(), Error> {
        let mut st = self.shared.lock();
        let key = st.key_for(name).ok_or_else(|| Error::NoSuchApplication(name.into()))?;
        st.remove(&key);
        Ok(())
    }

    /// Adds or replaces an AppProject (by `metadata.name`).
    pub fn insert_project(&self, project: Value) -> Result<(), Error> {
        self.shared.lock().insert_project(project)
    }

    /// Adds a cluster (`server`, `name`, ...); destinations are validated against these.
    pub fn insert_cluster(&self, cluster: Value) {
        self.shared.lock().clusters.push(cluster);
    }

    /// Adds a repository as `GET /api/v1/repositories` lists it.
    pub fn insert_repository(&self, repository: Value) {
        self.shared.lock().repositories.push(repository);
    }

    /// Overrides the `ApplicationTree` served for `app` (otherwise derived from
    /// `status.resources`).
    /// Resource-tree streams of that app send the new tree.
    pub fn set_resource_tree(&self, app: &str, tree: Value) {
        let mut st = self.shared.lock();
        st.trees.insert(app.into(), tree);
        let _ = st.events.send(state::Signal::TreeChanged(app.into()));
    }

    /// Overrides the `ResourceDiff` items served for `app` (otherwise derived from
    /// `status.resources`).
    pub fn set_managed_resources(&self, app: &str, items: Vec<Value>) {
        self.shared.lock().managed.insert(app.into(), items);
    }

    /// Kubernetes events for `app`, as `GET .../events` lists them: those whose
    /// `involvedObject.kind` is `Application` by default, or those of one resource.
    pub fn set_events(&self, app: &str, events: Vec<Value>) {
        self.shared.lock().events_of.insert(app.into(), events);
    }

    /// The `RevisionMetadata` (author, date, message, tags, ...) served for `revision`.
    /// Unset commit SHAs get a synthetic answer; unset non-SHAs are refused.
    pub fn set_revision_metadata(&self, revision: &str, metadata: Value) {
        self.shared.lock().revision_metadata.insert(revision.into(), metadata);
    }

    /// The images a successful sync to `revision` reports in `status.summary.images`.
    pub fn set_images_for_revision<I, S>(&self, revision: &str, images: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared.lock().images.insert(revision.into(), images.into_iter().map(Into::into).collect());
    }

    /// Makes every sync of `app` fail (or succeed again with `false`).
    pub fn fail_syncs(&self, app: &str, fail: bool) {
        let mut st = self.shared.lock();
        if fail {
            st.failing_apps.insert(app.into());
        } else {
            st.failing_apps.remove(app);
        }
    }

    /// Makes every sync to `revision` fail. Revisions starting with `fail` always fail.
    pub fn fail_revision(&self, revision: &str) {
        self.shared.lock().failing_revisions.insert(revision.into());
    }

    /// A new commit on the branch `app` tracks: the app turns OutOfSync at `revision`, and if
    /// automated sync is on the simulated controller syncs it (`initiatedBy.automated`).
    pub fn push_revision(&self, app: &str, revision: &str) -> Result<(), Error> {
        operation::push_revision(&self.shared, app, revision)
    }

    /// The last resourceVersion issued.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Injects a fault; see [`Fault`] for which ones are one-shot and which stay until
    /// [`Handle::clear_faults`].
    pub fn set_fault(&self, fault: Fault) {
        match fault {
            Fault::CutStreams => self.shared.signal(state::Signal::Cut),
            Fault::Restart => self.restart(),
            Fault::FailNext(n) => self.shared.lock().faults.fail_next = n,
            Fault::Delay(d) => self.shared.lock().faults.delay = Some(d),
            Fault::ExpireResourceVersions => {
                let mut st = self.shared.lock();
                st.faults.expired_before = Some(st.rv + 1);
            }
            Fault::StreamError { grpc_code, message } => {
                self.shared.signal(state::Signal::Error(wire::ApiError::new(grpc_code, message)))
            }
        }
    }

    /// Clears the sticky faults (pending 500s, delay, expired resourceVersions).
    pub fn clear_faults(&self) {
        self.shared.lock().faults = state::Faults::default();
    }

    /// Simulates a server restart: every open connection (streams included) is dropped;
    /// the port, the state and the issued tokens are kept.
    pub fn restart(&self) {
        self.shared.signal(state::Signal::Cut);
        self.server.restart();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.signal(state::Signal::Cut);
        self.server.stop();
    }
}
