//! `GET /api/v1/stream/applications` (API.md §3): list-then-watch, resume by
//! resourceVersion, per-app de-duplication, `fields`, SSE or NDJSON framing, keepalives and
//! the streaming error shape; and the per-app resource-tree stream (§3.3).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::query::{Fields, Query};
use super::routes::{AppFilter, app_key, token_from, tree_of};
use super::state::{Shared, Signal};
use super::wire::ApiError;

type Chunk = Result<String, std::io::Error>;

/// The response body: whatever the writer task sends, until it stops or sends an error
/// (which makes hyper reset the connection, the way a cut stream looks to a client).
struct ChannelBody(mpsc::Receiver<Chunk>);

impl futures_core::Stream for ChannelBody {
    type Item = Chunk;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}

#[derive(Clone, Copy)]
struct Framing {
    sse: bool,
}

impl Framing {
    /// `data: <json> \n\n` plus the gateway's `\n` delimiter, or one NDJSON line.
    fn frame(self, value: &Value) -> String {
        if self.sse { format!("data: {value} \n\n\n") } else { format!("{value}\n") }
    }

    fn content_type(self) -> &'static str {
        if self.sse { "text/event-stream" } else { "application/json" }
    }

    /// An error before any event: the status is the error's, the body one error chunk.
    fn early_error(self, error: &ApiError) -> Response {
        let body = self.frame(&error.stream_body());
        (error.status(), [(header::CONTENT_TYPE, self.content_type())], body).into_response()
    }
}

struct Watcher {
    filter: AppFilter,
    min_rv: Option<u64>,
    fields: Option<Fields>,
    framing: Framing,
    last: HashMap<String, String>,
}

impl Watcher {
    fn chunk(&mut self, kind: &str, app: &Value) -> Option<String> {
        if !self.filter.matches(app) {
            return None;
        }
        if let Some(min) = self.min_rv {
            let rv = app.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|r| r.parse().ok());
            if rv.unwrap_or(0) < min {
                return None;
            }
        }
        let chunk = json!({"result": {"type": kind, "application": app}});
        let chunk = self.fields.as_ref().map_or(chunk.clone(), |f| f.apply(&chunk));
        let payload = chunk.to_string();
        let name = app.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        if self.last.get(&name) == Some(&payload) {
            return None;
        }
        self.last.insert(name, payload);
        Some(self.framing.frame(&chunk))
    }
}

pub(crate) async fn watch(State(shared): State<Arc<Shared>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let framing = Framing { sse: accept == Some("text/event-stream") };
    let query = Query::parse(raw.as_deref());
    let (events, initial, mut watcher) = {
        let st = shared.lock();
        if let Err(e) = st.authenticate(token_from(&headers).as_deref()) {
            return framing.early_error(&e);
        }
        let filter = match AppFilter::from_query(&query, false) {
            Ok(f) => f,
            Err(e) => return framing.early_error(&e),
        };
        // A non-numeric resourceVersion counts as 0 (API.md §3.2).
        let min_rv = query.get("resourceVersion").map(|r| r.parse::<u64>().unwrap_or(0));
        if let (Some(rv), Some(expired)) = (min_rv, st.faults.expired_before)
            && rv < expired
        {
            let e = ApiError::unknown(format!("too old resource version: {rv} ({})", st.rv));
            return framing.early_error(&e);
        }
        // Subscribing under the lock: nothing committed after the snapshot is missed.
        let events = st.events.subscribe();
        let initial: Vec<Value> = match (min_rv, filter.name()) {
            (None, _) => st.apps.values().cloned().collect(),
            (Some(_), Some(name)) => st
                .apps
                .values()
                .filter(|a| a.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
                .cloned()
                .collect(),
            (Some(_), None) => Vec::new(),
        };
        let watcher = Watcher { filter, min_rv, fields: Fields::for_stream(&query), framing, last: HashMap::new() };
        (events, initial, watcher)
    };
    let (tx, rx) = mpsc::channel(64);
    let keepalive = shared.options.keepalive;
    shared.runtime.spawn(async move {
        for app in &initial {
            if let Some(chunk) = watcher.chunk("ADDED", app)
                && tx.send(Ok(chunk)).await.is_err()
            {
                return;
            }
        }
        let on_signal = move |signal: &Signal| match signal {
            Signal::Event { kind, app } => watcher.chunk(kind, app),
            _ => None,
        };
        pump(events, framing, tx, keepalive, on_signal).await;
    });
    let body = Body::from_stream(ChannelBody(rx));
    ([(header::CONTENT_TYPE, framing.content_type())], body).into_response()
}

/// `GET /api/v1/stream/applications/{name}/resource-tree` (API.md §3.3): the tree now, then
/// again whenever it changes, as `{"result":<ApplicationTree>}` chunks.
pub(crate) async fn watch_tree(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let framing = Framing { sse: accept == Some("text/event-stream") };
    let query = Query::parse(raw.as_deref());
    let (events, key, first) = {
        let st = shared.lock();
        if let Err(e) = st.authenticate(token_from(&headers).as_deref()) {
            return framing.early_error(&e);
        }
        let key = match app_key(&st, &name, &query) {
            Ok(key) => key,
            Err(e) => return framing.early_error(&e),
        };
        let first = tree_of(&st, &key);
        (st.events.subscribe(), key, first)
    };
    let (tx, rx) = mpsc::channel(64);
    let keepalive = shared.options.keepalive;
    let source = shared.clone();
    shared.runtime.spawn(async move {
        if tx.send(Ok(framing.frame(&json!({"result": first})))).await.is_err() {
            return;
        }
        let mut last = first;
        let on_signal = move |signal: &Signal| {
            let concerns_us = match signal {
                Signal::Event { app, .. } => {
                    let at = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or("");
                    at("/metadata/namespace") == key.0 && at("/metadata/name") == key.1
                }
                Signal::TreeChanged(app) => *app == key.1,
                _ => false,
            };
            if !concerns_us {
                return None;
            }
            let st = source.lock();
            let tree = st.apps.contains_key(&key).then(|| tree_of(&st, &key)).filter(|t| *t != last)?;
            last = tree.clone();
            Some(framing.frame(&json!({"result": tree})))
        };
        pump(events, framing, tx, keepalive, on_signal).await;
    });
    let body = Body::from_stream(ChannelBody(rx));
    ([(header::CONTENT_TYPE, framing.content_type())], body).into_response()
}

/// Forwards signals to the response until the client goes, the stream is cut or an error
/// chunk ends it; `on_signal` turns a signal into a chunk (or nothing); keepalives in SSE.
async fn pump(
    mut events: broadcast::Receiver<Signal>,
    framing: Framing,
    tx: mpsc::Sender<Chunk>,
    keepalive: std::time::Duration,
    mut on_signal: impl FnMut(&Signal) -> Option<String> + Send,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    loop {
        let chunk = tokio::select! {
            () = tx.closed() => return,
            _ = ticks.tick(), if framing.sse => Ok(":\n".to_string()),
            signal = events.recv() => match signal {
                Ok(Signal::Cut) => Err(std::io::Error::other("emulated stream cut")),
                Ok(Signal::Error(e)) => {
                    let _ = tx.send(Ok(framing.frame(&e.stream_body()))).await;
                    return;
                }
                Ok(signal) => match on_signal(&signal) {
                    Some(chunk) => Ok(chunk),
                    None => continue,
                },
                // Argo CD drops events for readers that fall behind (API.md §3.2).
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let stop = chunk.is_err();
        if tx.send(chunk).await.is_err() || stop {
            return;
        }
    }
}
