//! What the GitHub and GitLab emulators share: serving on `127.0.0.1:0`, the request log,
//! the injectable faults, page slicing, and signing and sending webhooks to a Landfall.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use tokio::task::JoinHandle;

/// What can go wrong when starting a forge emulator or delivering a webhook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not bind the emulator's listener on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("could not deliver the webhook to {url}: {reason}")]
    Deliver { url: String, reason: String },
}

/// Misbehaviour to inject, for testing how a client copes with a strained forge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer the next `n` API requests as rate limited (GitHub: 403 with
    /// `x-ratelimit-remaining: 0` and a reset one second ahead; GitLab: 429 with
    /// `Retry-After: 1`).
    RateLimitNext(u32),
    /// GitHub's secondary limit: the next `n` requests get 403 with `retry-after: 1`.
    SecondaryRateLimitNext(u32),
    /// Answer the next `n` API requests with `502 Bad Gateway`, as a proxy in front of an
    /// unavailable forge does.
    FailNext(u32),
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub rate_limit_next: u32,
    pub secondary_next: u32,
    pub fail_next: u32,
}

impl Faults {
    pub fn set(&mut self, fault: Fault) {
        match fault {
            Fault::RateLimitNext(n) => self.rate_limit_next = n,
            Fault::SecondaryRateLimitNext(n) => self.secondary_next = n,
            Fault::FailNext(n) => self.fail_next = n,
        }
    }
}

/// A request as the emulator saw it, for tests to check what a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub query: Option<String>,
    /// Whether it carried a token the emulator accepted.
    pub authenticated: bool,
    /// The status the emulator answered.
    pub status: u16,
}

/// A state behind a mutex that a poisoned lock does not make unusable.
pub(crate) struct Shared<T>(Mutex<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Arc<Self> {
        Arc::new(Shared(Mutex::new(value)))
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running HTTP server; stopped when dropped.
pub(crate) struct Served {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Served {
    pub async fn start(router: Router) -> Result<Served, Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "forge emulator stopped");
            }
        });
        Ok(Served { addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Page `page` (from 1) of `items`, `per_page` each; and whether more follow.
pub(crate) fn slice<T: Clone>(items: &[T], page: usize, per_page: usize) -> (Vec<T>, usize) {
    let per_page = per_page.clamp(1, 100);
    let pages = items.len().div_ceil(per_page).max(1);
    let start = (page.max(1) - 1) * per_page;
    (items.iter().skip(start).take(per_page).cloned().collect(), pages)
}

/// `page` and `per_page` from a query string, with the forge's default page size.
pub(crate) fn paging(query: Option<&str>, default_per_page: usize) -> (usize, usize) {
    let mut page = 1;
    let mut per_page = default_per_page;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "page" => page = value.parse().unwrap_or(1),
            "per_page" => per_page = value.parse().unwrap_or(default_per_page),
            _ => {}
        }
    }
    (page, per_page)
}

/// Posts a webhook body with `headers` to `url` as a forge would.
pub(crate) async fn deliver(url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Result<Delivered, Error> {
    let failed = |error: reqwest::Error| Error::Deliver { url: url.to_string(), reason: error.to_string() };
    let mut request = reqwest::Client::new().post(url).header("content-type", "application/json").body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(failed)?;
    Ok(Delivered { status, body: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)) })
}

/// What Landfall answered a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub status: u16,
    pub body: serde_json::Value,
}

pub(crate) fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
