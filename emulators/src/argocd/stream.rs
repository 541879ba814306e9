//! `GET /api/v1/stream/applications` (API.md §3): list-then-watch, resume by
//! resourceVersion, per-app de-duplication, `fields`, SSE or NDJSON framing, keepalives and
//! the streaming error shape.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::query::{Fields, Query};
use super::routes::{AppFilter, token_from};
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
        write_events(events, watcher, tx, keepalive).await;
    });
    let body = Body::from_stream(ChannelBody(rx));
    ([(header::CONTENT_TYPE, framing.content_type())], body).into_response()
}

async fn write_events(
    mut events: broadcast::Receiver<Signal>,
    mut watcher: Watcher,
    tx: mpsc::Sender<Chunk>,
    keepalive: std::time::Duration,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    loop {
        let chunk = tokio::select! {
            () = tx.closed() => return,
            _ = ticks.tick(), if watcher.framing.sse => Ok(":\n".to_string()),
            signal = events.recv() => match signal {
                Ok(Signal::Event { kind, app }) => match watcher.chunk(kind, &app) {
                    Some(chunk) => Ok(chunk),
                    None => continue,
                },
                Ok(Signal::Cut) => Err(std::io::Error::other("emulated stream cut")),
                Ok(Signal::Error(e)) => {
                    let _ = tx.send(Ok(watcher.framing.frame(&e.stream_body()))).await;
                    return;
                }
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
