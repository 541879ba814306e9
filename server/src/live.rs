//! Live updates for browsers: application status changes and new deployments, pushed
//! over one websocket (`GET /api/v1/live`) as the Argo CD watches record them.
//!
//! Every event gets a cursor, `EPOCH:N`: `N` counts up from 1 for this server process,
//! whose start time is `EPOCH`. The hub keeps the last [`RING`] events, so a browser that
//! reconnects with its last cursor receives exactly what it missed, with no gap and no
//! duplicate. A cursor from another process, or older than the ring, gets a `reset`
//! message: reload from the REST API, then follow the new cursor.
//!
//! One watch per Argo CD instance feeds the hub however many browsers listen, and each
//! browser has its own task and buffer: one that reads slowly falls behind (and catches
//! up from the ring, or is reset), it never holds the others up.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for reconnecting browsers.
pub const RING: usize = 10_000;
/// Events buffered per browser before it counts as lagging.
const BUFFER: usize = 1024;
/// A browser that takes longer than this to accept one message is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// An application's sync status, health or running operation changed, or it was deleted.
    Application {
        instance: String,
        namespace: String,
        name: String,
        sync_status: Option<String>,
        health_status: Option<String>,
        /// The phase of the operation Argo CD is running or ran last (`Running`, `Succeeded`, …).
        operation_phase: Option<String>,
        deleted: bool,
    },
    /// A deployment was recorded.
    Deployment { instance: String, namespace: String, name: String, history_id: i64, revision: String, phase: String },
}

/// An event as sent: its cursor and the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    pub cursor: String,
    #[serde(skip)]
    pub sequence: u64,
    #[serde(flatten)]
    pub event: LiveEvent,
}

/// Why a cursor cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The events after the cursor, oldest first.
    Events(Vec<Arc<Envelope>>),
    /// The cursor is from another server process or older than the ring.
    Reset(String),
}

struct Ring {
    next: u64,
    events: VecDeque<Arc<Envelope>>,
}

/// The hub the watches publish to and the browsers' connections read from.
pub struct Hub {
    epoch: i64,
    ring: Mutex<Ring>,
    sender: broadcast::Sender<Arc<Envelope>>,
}

impl Default for Hub {
    fn default() -> Self {
        let epoch =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Hub::with_epoch(epoch)
    }
}

impl Hub {
    pub fn with_epoch(epoch: i64) -> Hub {
        let (sender, _) = broadcast::channel(BUFFER);
        Hub { epoch, ring: Mutex::new(Ring { next: 1, events: VecDeque::with_capacity(RING) }), sender }
    }

    fn cursor(&self, sequence: u64) -> String {
        format!("{}:{sequence}", self.epoch)
    }

    /// The cursor of the latest event (`EPOCH:0` before the first).
    pub fn current(&self) -> String {
        let next = self.ring.lock().map_or(1, |ring| ring.next);
        self.cursor(next - 1)
    }

    /// Records an event and sends it to every connected browser.
    pub fn publish(&self, event: LiveEvent) {
        let Ok(mut ring) = self.ring.lock() else { return };
        let sequence = ring.next;
        ring.next += 1;
        let envelope = Arc::new(Envelope { cursor: self.cursor(sequence), sequence, event });
        if ring.events.len() == RING {
            ring.events.pop_front();
        }
        ring.events.push_back(envelope.clone());
        // Sent under the lock, so receivers see events in cursor order.
        let _ = self.sender.send(envelope);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.sender.subscribe()
    }

    /// The sequence number of a cursor of this process, or why it is not one.
    pub fn sequence(&self, cursor: &str) -> Result<u64, String> {
        let parsed =
            cursor.split_once(':').and_then(|(epoch, n)| Some((epoch.parse::<i64>().ok()?, n.parse::<u64>().ok()?)));
        let Some((epoch, sequence)) = parsed else {
            return Err(format!("`{cursor}` is not a cursor; cursors look like {}", self.current()));
        };
        if epoch != self.epoch {
            return Err("the server restarted since that cursor".into());
        }
        Ok(sequence)
    }

    /// The events after `cursor` (`EPOCH:N`).
    pub fn resume(&self, cursor: &str) -> Resume {
        match self.sequence(cursor) {
            Ok(after) => self.after(after),
            Err(reason) => Resume::Reset(reason),
        }
    }

    /// The events after sequence number `after`, or a reset if some are gone.
    pub fn after(&self, after: u64) -> Resume {
        let Ok(ring) = self.ring.lock() else { return Resume::Reset("the hub is unavailable".into()) };
        if after >= ring.next {
            return Resume::Reset("that cursor is from the future".into());
        }
        let oldest = ring.events.front().map_or(ring.next, |e| e.sequence);
        if after + 1 < oldest {
            return Resume::Reset(format!("more than {RING} events happened since that cursor"));
        }
        Resume::Events(ring.events.iter().filter(|e| e.sequence > after).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> LiveEvent {
        LiveEvent::Deployment {
            instance: "main".into(),
            namespace: "argocd".into(),
            name: "shop".into(),
            history_id: n,
            revision: format!("r{n}"),
            phase: "Succeeded".into(),
        }
    }

    fn history(resume: Resume) -> Vec<i64> {
        match resume {
            Resume::Events(events) => events
                .iter()
                .map(|e| match e.event {
                    LiveEvent::Deployment { history_id, .. } => history_id,
                    _ => -1,
                })
                .collect(),
            Resume::Reset(reason) => panic!("reset: {reason}"),
        }
    }

    #[test]
    fn a_cursor_resumes_exactly_after_itself() {
        let hub = Hub::with_epoch(7);
        assert_eq!(hub.current(), "7:0");
        let start = hub.current();
        for n in 1..=5 {
            hub.publish(event(n));
        }
        assert_eq!(history(hub.resume(&start)), [1, 2, 3, 4, 5]);
        assert_eq!(history(hub.resume("7:3")), [4, 5]);
        assert_eq!(history(hub.resume("7:5")), Vec::<i64>::new());
        assert_eq!(hub.current(), "7:5");
    }

    #[test]
    fn foreign_old_and_malformed_cursors_reset() {
        let hub = Hub::with_epoch(7);
        hub.publish(event(1));
        assert!(matches!(hub.resume("8:0"), Resume::Reset(reason) if reason.contains("restarted")));
        assert!(matches!(hub.resume("7:9"), Resume::Reset(_)));
        assert!(matches!(hub.resume("yesterday"), Resume::Reset(reason) if reason.contains("7:1")));
        for n in 2..=(RING as i64 + 10) {
            hub.publish(event(n));
        }
        assert!(matches!(hub.resume("7:3"), Resume::Reset(reason) if reason.contains("10000")));
        let newest = history(hub.resume(&format!("7:{}", RING as i64 + 8)));
        assert_eq!(newest, [RING as i64 + 9, RING as i64 + 10]);
    }

    #[tokio::test]
    async fn subscribers_see_events_in_cursor_order() {
        let hub = Hub::with_epoch(1);
        let mut receiver = hub.subscribe();
        hub.publish(event(1));
        hub.publish(event(2));
        assert_eq!(receiver.recv().await.unwrap().cursor, "1:1");
        assert_eq!(receiver.recv().await.unwrap().cursor, "1:2");
    }
}
