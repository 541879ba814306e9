//! The emulator's in-memory state: applications as JSON values, the global resourceVersion
//! counter, projects, clusters, repositories, sessions, test hooks and the event broadcast.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::wire::ApiError;
use super::{Error, Options, time};

/// Applications are keyed by `(namespace, name)`, which also gives the `namespace/name`
/// order the watch's initial burst uses.
pub(crate) type AppKey = (String, String);

/// What every open watch stream listens to.
#[derive(Clone, Debug)]
pub(crate) enum Signal {
    Event {
        kind: &'static str,
        app: Value,
    },
    /// Abort the stream without an error chunk.
    Cut,
    /// End the stream with this error chunk.
    Error(ApiError),
    /// A test replaced the resource tree of the named app.
    TreeChanged(String),
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub fail_next: u32,
    pub delay: Option<Duration>,
    /// Watches resuming from a resourceVersion below this are refused as too old.
    pub expired_before: Option<u64>,
}

pub(crate) struct Shared {
    pub options: Options,
    pub runtime: tokio::runtime::Handle,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(options: Options, runtime: tokio::runtime::Handle) -> Self {
        let state = State::new(&options);
        Self { options, runtime, state: Mutex::new(state) }
    }

    /// Poisoning only follows a panic in a test hook; the state is still usable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn signal(&self, signal: Signal) {
        let _ = self.lock().events.send(signal);
    }
}

/// What `Shared` guards. Every change goes through [`State::commit`] or [`State::remove`] so
/// that resourceVersions increase and watchers hear about it in order.
pub(crate) struct State {
    pub namespace: String,
    pub apps: BTreeMap<AppKey, Value>,
    pub rv: u64,
    uid_seq: u64,
    pub events: broadcast::Sender<Signal>,
    pub projects: BTreeMap<String, Value>,
    pub clusters: Vec<Value>,
    pub repositories: Vec<Value>,
    passwords: HashMap<String, String>,
    /// Bearer value → username.
    pub tokens: HashMap<String, String>,
    pub images: HashMap<String, Vec<String>>,
    pub trees: HashMap<String, Value>,
    pub managed: HashMap<String, Vec<Value>>,
    /// Kubernetes events per app name, served by `.../events`.
    pub events_of: HashMap<String, Vec<Value>>,
    pub revision_metadata: HashMap<String, Value>,
    /// The commit each app's tracked branch points at, set by `push_revision`.
    pub heads: HashMap<String, String>,
    pub failing_apps: HashSet<String>,
    pub failing_revisions: HashSet<String>,
    /// The running operation's sequence number per app, so a superseded controller task
    /// leaves the app alone.
    pub operations: HashMap<AppKey, u64>,
    pub op_seq: u64,
    pub faults: Faults,
}

impl State {
    fn new(options: &Options) -> Self {
        // Argo CD buffers 1000 events per subscriber (API.md §3.2).
        let (events, _) = broadcast::channel(1000);
        let mut st = Self {
            namespace: options.namespace.clone(),
            apps: BTreeMap::new(),
            rv: 0,
            uid_seq: 0,
            events,
            projects: BTreeMap::new(),
            clusters: vec![json!({
                "server": "https://kubernetes.default.svc",
                "name": "in-cluster",
                "config": {"tlsClientConfig": {"insecure": false}},
                "connectionState": {"status": "Successful", "message": ""},
                "info": {"connectionState": {"status": "Successful", "message": ""}, "applicationsCount": 0},
            })],
            repositories: Vec::new(),
            passwords: options.users.iter().map(|u| (u.username.clone(), u.password.clone())).collect(),
            tokens: options.tokens.iter().cloned().collect(),
            images: HashMap::new(),
            trees: HashMap::new(),
            managed: HashMap::new(),
            events_of: HashMap::new(),
            revision_metadata: HashMap::new(),
            heads: HashMap::new(),
            failing_apps: HashSet::new(),
            failing_revisions: HashSet::new(),
            operations: HashMap::new(),
            op_seq: 0,
            faults: Faults::default(),
        };
        let default_project = json!({
            "metadata": {"name": "default", "namespace": options.namespace},
            "spec": {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            },
            "status": {},
        });
        let _ = st.insert_project(default_project);
        st
    }

    pub fn next_uid(&mut self) -> String {
        self.uid_seq += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uid_seq)
    }

    pub fn key_in(&self, name: &str, namespace: Option<&str>) -> AppKey {
        (namespace.unwrap_or(&self.namespace).to_string(), name.to_string())
    }

    /// The app called `name` in the default namespace, else the first in any namespace.
    pub fn key_for(&self, name: &str) -> Option<AppKey> {
        let default = self.key_in(name, None);
        if self.apps.contains_key(&default) {
            return Some(default);
        }
        self.apps.keys().find(|(_, n)| n == name).cloned()
    }

    /// Per-app lookup with Argo CD's existence hiding (API.md §1.3).
    pub fn lookup(&self, name: &str, namespace: Option<&str>, project: Option<&str>) -> Result<AppKey, ApiError> {
        let key = self.key_in(name, namespace);
        match (self.apps.get(&key), project) {
            (Some(app), Some(p)) if project_of(app) != p => Err(ApiError::app_not_found(name)),
            (Some(_), _) => Ok(key),
            (None, Some(_)) => Err(ApiError::app_not_found(name)),
            (None, None) => Err(ApiError::denied()),
        }
    }

    /// Stores `app` with the next resourceVersion and tells the watchers.
    pub fn commit(&mut self, key: &AppKey, mut app: Value) -> Value {
        self.rv += 1;
        set_path(&mut app, &["metadata", "resourceVersion"], json!(self.rv.to_string()));
        let kind = if self.apps.contains_key(key) { "MODIFIED" } else { "ADDED" };
        self.apps.insert(key.clone(), app.clone());
        let _ = self.events.send(Signal::Event { kind, app: app.clone() });
        app
    }

    pub fn remove(&mut self, key: &AppKey) {
        if let Some(mut app) = self.apps.remove(key) {
            // The informer's delete event carries the last state it saw; a new RV marks it.
            self.rv += 1;
            set_path(&mut app, &["metadata", "resourceVersion"], json!(self.rv.to_string()));
            self.operations.remove(key);
            let _ = self.events.send(Signal::Event { kind: "DELETED", app });
        }
    }

    /// Seeds an app from a test. A numeric resourceVersion is kept as is, so a fixture is
    /// served back unchanged; the counter moves past it.
    pub fn insert_seed(&mut self, app: Value) -> Result<Value, Error> {
        let name = app.pointer("/metadata/name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(Error::InvalidObject("application without metadata.name".into()));
        };
        let namespace = app.pointer("/metadata/namespace").and_then(Value::as_str);
        let key = self.key_in(name, namespace);
        let given_rv = app.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|r| r.parse().ok());
        match given_rv {
            Some(rv) => {
                self.rv = self.rv.max(rv);
                let kind = if self.apps.contains_key(&key) { "MODIFIED" } else { "ADDED" };
                self.apps.insert(key, app.clone());
                let _ = self.events.send(Signal::Event { kind, app: app.clone() });
                Ok(app)
            }
            None => Ok(self.commit(&key, app)),
        }
    }

    pub fn insert_project(&mut self, project: Value) -> Result<(), Error> {
        let name = project.pointer("/metadata/name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let name = name.ok_or_else(|| Error::InvalidObject("project without metadata.name".into()))?.to_string();
        self.projects.insert(name, project);
        Ok(())
    }

    pub fn check_password(&self, username: &str, password: &str) -> bool {
        self.passwords.get(username).is_some_and(|p| p == password)
    }

    /// A JWT-shaped token (`header.claims.signature`, base64url) carrying the claims Argo CD
    /// puts in a login token; the signature is not real, the emulator just remembers it.
    pub fn issue_token(&mut self, username: &str) -> String {
        let iat = time::unix_now();
        let jti = self.next_uid();
        let header = base64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = json!({
            "iss": "argocd", "sub": format!("{username}:login"),
            "iat": iat, "nbf": iat, "exp": iat + 24 * 3600, "jti": jti,
        });
        let claims = base64url(claims.to_string().as_bytes());
        let signature = base64url(format!("emulator-{jti}").as_bytes());
        let token = format!("{header}.{claims}.{signature}");
        self.tokens.insert(token.clone(), username.to_string());
        token
    }

    /// Resolves the caller from a bearer or cookie value (API.md §1.2).
    pub fn authenticate(&self, token: Option<&str>) -> Result<String, ApiError> {
        let Some(token) = token.filter(|t| t.split('.').count() == 3) else {
            return Err(ApiError::unauthenticated("no session information"));
        };
        self.tokens
            .get(token)
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("invalid session: token signature is invalid"))
    }
}

pub(crate) fn project_of(app: &Value) -> &str {
    app.pointer("/spec/project").and_then(Value::as_str).filter(|p| !p.is_empty()).unwrap_or("default")
}

/// Sets a nested key, creating (or replacing non-object) parents.
pub(crate) fn set_path(value: &mut Value, path: &[&str], new: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = value;
    for p in parents {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = cur.as_object_mut().expect("made an object above").entry(*p).or_insert_with(|| json!({}));
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    if let Some(m) = cur.as_object_mut() {
        m.insert((*last).to_string(), new);
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_without_padding() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(b"\xfb\xff"), "-_8");
    }

    #[test]
    fn existence_hiding() {
        let mut st = State::new(&Options::default());
        st.insert_seed(json!({"metadata": {"name": "a", "namespace": "argocd"}, "spec": {"project": "p"}})).unwrap();
        assert_eq!(st.lookup("missing", None, None).unwrap_err().code, 7);
        assert_eq!(st.lookup("missing", None, Some("p")).unwrap_err().code, 5);
        assert_eq!(st.lookup("a", None, Some("other")).unwrap_err().code, 5);
        assert!(st.lookup("a", None, Some("p")).is_ok());
    }

    #[test]
    fn tokens_need_three_parts() {
        let mut st = State::new(&Options::default());
        let t = st.issue_token("admin");
        assert_eq!(st.authenticate(Some(&t)).unwrap(), "admin");
        assert_eq!(st.authenticate(Some("abc")).unwrap_err().message, "no session information");
        assert!(st.authenticate(Some("a.b.c")).unwrap_err().message.starts_with("invalid session"));
    }
}
