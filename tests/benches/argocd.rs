//! Argo CD at scale (issue 4): the release `landfall serve` watching an emulated Argo CD
//! of 10,000 applications. Prints the time to the first full sync and the server's
//! memory, the memory each idle websocket client costs, and the latency from a change in
//! Argo CD to its arrival in 1,000 connected websocket clients (p50, p99).
//!
//! ```sh
//! cargo build --release -p landfall-server --bin landfall
//! cargo bench -p landfall-tests --bench argocd                       # 10,000 apps, 1,000 clients
//! cargo bench -p landfall-tests --bench argocd -- --applications 1000 --clients 100
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use landfall_emulators::argocd::{ArgoCd, Options};
use landfall_tests::{Server, bench_option};
use serde_json::{Value, json};

const TOKEN: &str = "bench.token.value";

fn application(index: usize) -> Value {
    let name = format!("svc-{index:05}");
    let history: Vec<Value> = (1..=3)
        .map(|id| {
            json!({"id": id, "revision": format!("{index:08x}{id:032x}"),
                   "deployedAt": format!("2026-11-2{id}T10:00:00Z"), "deployStartedAt": format!("2026-11-2{id}T09:59:00Z"),
                   "source": {"repoURL": "https://git.example/acme/gitops.git", "path": format!("apps/{name}")},
                   "initiatedBy": {"automated": true}})
        })
        .collect();
    let env = ["dev", "qa", "staging", "prod"][index % 4];
    json!({
        "metadata": {"name": name, "namespace": "argocd", "labels": {"env": env}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/acme/gitops.git", "path": format!("apps/{name}"), "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
            "syncPolicy": {"automated": {"prune": true}}
        },
        "status": {
            "sync": {"status": "Synced", "revision": format!("{index:08x}{:032x}", 3)},
            "health": {"status": "Healthy"},
            "history": history,
            "summary": {"images": [format!("ghcr.io/acme/{name}:3")]},
            "resources": [{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": name, "name": name,
                           "status": "Synced", "health": {"status": "Healthy"}}]
        }
    })
}

/// The server's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn main() {
    let number = |name: &str, default: usize| {
        bench_option(name).map_or(default, |n| n.parse().unwrap_or_else(|_| panic!("--{name} takes a number")))
    };
    let applications = number("applications", 10_000);
    let clients = number("clients", 1_000);
    let events = number("events", 100);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let argocd = ArgoCd::start(Options { tokens: vec![(TOKEN.into(), "admin".into())], ..Options::default() })
            .await
            .unwrap();
        for index in 0..applications {
            argocd.insert_application(application(index)).unwrap();
        }
        let work = tempfile::tempdir().unwrap();
        let config = work.path().join("landfall.toml");
        std::fs::write(
            &config,
            format!(
                "[[argocd]]\nname = \"main\"\nurl = \"{}\"\ntoken_env = \"ARGOCD_TOKEN\"\n\n\
                 [[environment]]\nname = \"production\"\nrank = 40\nmatch = {{ labels = {{ env = \"prod\" }} }}\n",
                argocd.url()
            ),
        )
        .unwrap();
        let started = Instant::now();
        let server = Server::start_with_env(&["--config", config.to_str().unwrap()], &[("ARGOCD_TOKEN", TOKEN)]);
        let http = reqwest::Client::new();
        loop {
            let ready: Value = http.get(server.url("/readyz")).send().await.unwrap().json().await.unwrap();
            let instance = &ready["checks"]["argocd"][0];
            if instance["connected"] == true && instance["applications"].as_u64() == Some(applications as u64) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1800), "no full sync within 30 minutes: {ready}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let first_sync = started.elapsed();
        let synced_rss = rss_kib(server.pid());
        println!(
            "{applications} applications ({} history entries): first full sync {:.1} s; server RSS {:.1} MiB",
            applications * 3,
            first_sync.as_secs_f64(),
            synced_rss as f64 / 1024.0
        );

        // Connect the clients and let them sit idle.
        let before = rss_kib(server.pid());
        let live = server.url("/api/v1/live").replacen("http://", "ws://", 1);
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let mut readers = Vec::new();
        for _ in 0..clients {
            let (socket, _) = tokio_tungstenite::connect_async(live.as_str()).await.unwrap();
            let (_, mut incoming) = socket.split();
            let (sent, latencies) = (sent.clone(), latencies.clone());
            readers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = incoming.next().await {
                    let received = Instant::now();
                    let tokio_tungstenite::tungstenite::Message::Text(text) = message else { continue };
                    let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
                    if event["type"] != "application" {
                        continue;
                    }
                    let key = format!("{}:{}", event["name"].as_str().unwrap_or(""), event["health_status"]);
                    if let Some(at) = sent.lock().unwrap().get(&key) {
                        latencies.lock().unwrap().push(received - *at);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = rss_kib(server.pid());
        println!(
            "{clients} idle websocket clients: server RSS +{:.1} MiB, {:.1} KiB per client",
            (idle.saturating_sub(before)) as f64 / 1024.0,
            idle.saturating_sub(before) as f64 / clients as f64
        );

        // Changes in Argo CD, one at a time, each to be seen by every client.
        for event in 0..events {
            let name = format!("svc-{:05}", event % applications);
            let health = if (event / applications) % 2 == 0 { "Degraded" } else { "Healthy" };
            sent.lock().unwrap().insert(format!("{name}:\"{health}\""), Instant::now());
            argocd
                .update_application(&name, |app| {
                    app["status"]["health"]["status"] = json!(health);
                })
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while latencies.lock().unwrap().len() < events * clients && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut samples = latencies.lock().unwrap().clone();
        samples.sort();
        println!(
            "event to browser, {events} changes x {clients} clients: {} of {} delivered; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            samples.len(),
            events * clients,
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            percentile(&samples, 1.0)
        );
        for reader in readers {
            reader.abort();
        }
        drop(server);
    });
}
