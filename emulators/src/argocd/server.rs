//! The accept loop. Connections are served by hand (hyper) rather than by `axum::serve`
//! because a simulated restart must drop every open connection, idle keep-alive ones
//! included; `axum::serve` detaches its connection tasks where nothing can abort them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::Error;

pub(crate) struct Server {
    listener: Arc<TcpListener>,
    addr: SocketAddr,
    router: Router,
    runtime: tokio::runtime::Handle,
    /// The accept loop; it owns the connection tasks, so aborting it closes them all.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Server {
    pub async fn start(router: Router, runtime: tokio::runtime::Handle, at: SocketAddr) -> Result<Self, Error> {
        let listener = TcpListener::bind(at).await.map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let server = Self { listener: Arc::new(listener), addr, router, runtime, task: Mutex::new(None) };
        server.spawn();
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn spawn(&self) {
        let (listener, router) = (self.listener.clone(), self.router.clone());
        let task = self.runtime.spawn(accept_loop(listener, router));
        if let Some(old) = self.task.lock().unwrap_or_else(|e| e.into_inner()).replace(task) {
            old.abort();
        }
    }

    /// Drops every connection and serves again on the same listener, so the port is kept
    /// and connection attempts made meanwhile wait in the backlog.
    pub fn restart(&self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: Arc<TcpListener>, router: Router) {
    // Dropping the JoinSet (when this task is aborted) aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service);
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "emulator connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "emulator accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
