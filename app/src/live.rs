//! Live updates in the browser. A page that shows Argo CD state calls [`use_live`]: while
//! it is on screen, the browser follows the server's `/api/v1/live` websocket, and each
//! burst of events that concerns the page (events within 300 ms count as one) bumps a
//! version the page keys its data on, so the data reloads through the same server
//! function that first drew it. After a break the socket reconnects from the last
//! cursor it received (the server replays what was missed) or, when the server says
//! `reset`, the page simply reloads its data.

use leptos::prelude::*;
use serde::Deserialize;

/// The parts of a live message the pages look at (see the server's `live` module).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LiveMessage {
    /// `hello`, `reset`, `application` or `deployment`.
    #[serde(rename = "type")]
    pub kind: String,
    pub cursor: Option<String>,
    pub instance: Option<String>,
    pub name: Option<String>,
}

impl LiveMessage {
    /// Whether the message is about the application `name` of `instance`.
    pub fn is_about(&self, instance: &str, name: &str) -> bool {
        self.instance.as_deref() == Some(instance) && self.name.as_deref() == Some(name)
    }

    /// Whether the message reports a change (as opposed to a greeting or a reset).
    pub fn is_change(&self) -> bool {
        matches!(self.kind.as_str(), "application" | "deployment")
    }
}

/// Where the page's connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting,
}

/// Follows the live events while the calling component lives. Returns a version that
/// goes up on every change `relevant` accepts (and on every reset), and the connection's
/// state. On the server it only returns the initial values.
pub fn use_live(
    relevant: impl Fn(&LiveMessage) -> bool + Send + Sync + 'static,
) -> (ReadSignal<u64>, ReadSignal<Connection>) {
    let (version, set_version) = signal(0u64);
    let (connection, set_connection) = signal(Connection::Connecting);
    #[cfg(feature = "hydrate")]
    {
        // Leaving the page drops the follower, and with it the socket, which closes.
        let (stop, stopped) = futures_channel::oneshot::channel::<()>();
        let stop = std::sync::Mutex::new(Some(stop));
        on_cleanup(move || {
            if let Some(stop) = stop.lock().ok().and_then(|mut stop| stop.take()) {
                let _ = stop.send(());
            }
        });
        leptos::task::spawn_local(async move {
            let follow = std::pin::pin!(browser::follow(relevant, set_version, set_connection));
            futures_util::future::select(follow, stopped).await;
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (relevant, set_version, set_connection);
    (version, connection)
}

/// A small badge saying whether the page updates itself.
#[component]
pub fn LiveBadge(connection: ReadSignal<Connection>) -> impl IntoView {
    let text = move || match connection.get() {
        Connection::Connecting => "Connecting…",
        Connection::Live => "Live",
        Connection::Reconnecting => "Reconnecting…",
    };
    let class = move || if connection.get() == Connection::Live { "live live-on" } else { "live" };
    view! { <span class=class data-testid="live-status" role="status">{text}</span> }
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    use futures_util::StreamExt;
    use gloo_net::websocket::Message;
    use gloo_net::websocket::futures::WebSocket;
    use leptos::prelude::*;

    use super::{Connection, LiveMessage};

    const FIRST_RETRY: Duration = Duration::from_millis(500);
    /// Events this close together cause one reload: a busy Argo CD must not make every
    /// open list page fetch itself again for each event.
    const COALESCE: Duration = Duration::from_millis(300);

    /// Bumps the page's version once for a burst of events.
    struct Reload {
        version: WriteSignal<u64>,
        pending: Rc<Cell<bool>>,
    }

    impl Reload {
        fn request(&self) {
            if self.pending.replace(true) {
                return;
            }
            let (version, pending) = (self.version, self.pending.clone());
            set_timeout(
                move || {
                    pending.set(false);
                    // The page may have gone meanwhile.
                    let _ = version.try_update(|v| *v += 1);
                },
                COALESCE,
            );
        }
    }
    const LAST_RETRY: Duration = Duration::from_secs(10);

    fn live_url(cursor: Option<&str>) -> Option<String> {
        let location = window().location();
        let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
        let mut url = format!("{scheme}://{}/api/v1/live", location.host().ok()?);
        if let Some(cursor) = cursor {
            // Cursors are `digits:digits`: nothing to escape.
            url.push_str("?cursor=");
            url.push_str(cursor);
        }
        Some(url)
    }

    async fn sleep(duration: Duration) {
        let (done, wait) = futures_channel::oneshot::channel::<()>();
        set_timeout(
            move || {
                let _ = done.send(());
            },
            duration,
        );
        let _ = wait.await;
    }

    pub(super) async fn follow(
        relevant: impl Fn(&LiveMessage) -> bool,
        version: WriteSignal<u64>,
        connection: WriteSignal<Connection>,
    ) {
        let reload = Reload { version, pending: Rc::new(Cell::new(false)) };
        let mut cursor: Option<String> = None;
        let mut retry = FIRST_RETRY;
        loop {
            if let Some(mut socket) = live_url(cursor.as_deref()).and_then(|url| WebSocket::open(&url).ok()) {
                while let Some(received) = socket.next().await {
                    let text = match received {
                        Ok(Message::Text(text)) => text,
                        Ok(Message::Bytes(_)) => continue,
                        Err(_) => break,
                    };
                    let Ok(message) = serde_json::from_str::<LiveMessage>(&text) else { continue };
                    if let Some(latest) = &message.cursor {
                        cursor = Some(latest.clone());
                    }
                    match message.kind.as_str() {
                        "hello" => {
                            connection.set(Connection::Live);
                            retry = FIRST_RETRY;
                        }
                        "reset" => reload.request(),
                        _ if relevant(&message) => reload.request(),
                        _ => {}
                    }
                }
            }
            connection.set(Connection::Reconnecting);
            sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_application() {
        let text = r#"{"cursor":"1:2","type":"deployment","instance":"main","namespace":"argocd","name":"shop-api","history_id":3,"revision":"abc","phase":"Succeeded"}"#;
        let message: LiveMessage = serde_json::from_str(text).unwrap();
        assert!(message.is_change() && message.is_about("main", "shop-api"));
        assert!(!message.is_about("main", "shop-web") && !message.is_about("other", "shop-api"));
        let hello: LiveMessage = serde_json::from_str(r#"{"type":"hello","cursor":"1:0"}"#).unwrap();
        assert!(!hello.is_change() && !hello.is_about("main", "shop-api"));
    }
}
