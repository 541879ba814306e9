//! `GET /api/v1/live`: the websocket browsers follow for live updates (see
//! [`crate::live`] for the cursor rules).
//!
//! Messages, all JSON text: first `{"type":"hello","cursor":…}` (or `{"type":"reset",
//! "reason":…,"cursor":…}` when `?cursor=` cannot be resumed), then one message per event,
//! each with its `cursor`. Reconnect with `?cursor=<the last one received>`.

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::live::{Envelope, Hub, Resume, SEND_TIMEOUT};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/live", get(upgrade))
}

#[derive(Debug, Deserialize)]
struct LiveQuery {
    /// The last cursor this browser received.
    cursor: Option<String>,
}

async fn upgrade(socket: WebSocketUpgrade, State(state): State<AppState>, Query(query): Query<LiveQuery>) -> Response {
    let hub = state.live.clone();
    // Browsers send nothing but pings and closes, and each event is small: small buffers
    // keep a thousand idle connections cheap (the defaults are 128 KiB each way).
    socket
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| follow(socket, hub, query.cursor))
}

/// Sends one message; false when the browser is gone or too slow to take it.
async fn send(socket: &mut WebSocket, text: String) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await, Ok(Ok(())))
}

async fn send_event(socket: &mut WebSocket, envelope: &Envelope) -> bool {
    match serde_json::to_string(envelope) {
        Ok(text) => send(socket, text).await,
        Err(_) => true,
    }
}

async fn follow(mut socket: WebSocket, hub: Arc<Hub>, cursor: Option<String>) {
    // Subscribe before reading the ring: an event published in between is in both, and
    // is sent once because only sequences above `last` go out.
    let mut receiver = hub.subscribe();
    let current = hub.current();
    let mut last = hub.sequence(&current).unwrap_or_default();
    let hello = json!({ "type": "hello", "cursor": current }).to_string();
    let opening = match cursor {
        None => vec![],
        Some(cursor) => match hub.resume(&cursor) {
            Resume::Events(events) => {
                last = hub.sequence(&cursor).unwrap_or_default();
                events
            }
            Resume::Reset(reason) => {
                let reset = json!({ "type": "reset", "reason": reason, "cursor": current }).to_string();
                if !send(&mut socket, reset).await {
                    return;
                }
                vec![]
            }
        },
    };
    if !send(&mut socket, hello).await {
        return;
    }
    for envelope in opening {
        if !send_event(&mut socket, &envelope).await {
            return;
        }
        last = envelope.sequence;
    }
    loop {
        tokio::select! {
            received = receiver.recv() => {
                let batch = match received {
                    Ok(envelope) => vec![envelope],
                    // Too slow for the buffer: catch up from the ring, or start afresh.
                    Err(RecvError::Lagged(_)) => match hub.after(last) {
                        Resume::Events(events) => events,
                        Resume::Reset(reason) => {
                            let current = hub.current();
                            last = hub.sequence(&current).unwrap_or_default();
                            let reset = json!({ "type": "reset", "reason": reason, "cursor": current }).to_string();
                            if !send(&mut socket, reset).await {
                                return;
                            }
                            vec![]
                        }
                    },
                    Err(RecvError::Closed) => return,
                };
                for envelope in batch {
                    if envelope.sequence <= last {
                        continue;
                    }
                    if !send_event(&mut socket, &envelope).await {
                        return;
                    }
                    last = envelope.sequence;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
