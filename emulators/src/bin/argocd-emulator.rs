//! The Argo CD emulator as a process, on an address given in advance: the browser tests
//! start it beside `landfall serve`, and it lets anyone try Landfall without an Argo CD.
//!
//! `argocd-emulator --listen 127.0.0.1:8081 --token a.b.c` serves two applications,
//! `shop-api` (labelled `env: prod`) and `shop-web` (`env: staging`), each synced once, and
//! accepts the token as a bearer value (user `admin`). It runs until it is killed.

use std::net::SocketAddr;
use std::time::Duration;

use landfall_emulators::argocd::{ArgoCd, Options, example_application};
use serde_json::json;

const USAGE: &str = "usage: argocd-emulator --listen HOST:PORT --token HEADER.PAYLOAD.SIGNATURE";

fn arguments() -> Result<(SocketAddr, String), String> {
    let mut listen = None;
    let mut token = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => {
                listen = Some(value.parse().map_err(|_| format!("--listen: `{value}` is not HOST:PORT\n{USAGE}"))?)
            }
            "--token" if value.split('.').count() == 3 => token = Some(value),
            "--token" => return Err(format!("--token: a JWT-shaped value with three dot-separated parts\n{USAGE}")),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok((listen.ok_or(USAGE)?, token.ok_or(USAGE)?))
}

fn application(name: &str, env: &str) -> serde_json::Value {
    let mut app = example_application(name, env);
    app["spec"]["syncPolicy"] = json!({"syncOptions": ["CreateNamespace=true"]});
    app
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (listen, token) = match arguments() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let options = Options {
        tokens: vec![(token, "admin".into())],
        sync_duration: Duration::from_millis(300),
        keepalive: Duration::from_secs(5),
        ..Options::default()
    };
    let argo = match ArgoCd::start_at(listen, options).await {
        Ok(argo) => argo,
        Err(error) => {
            eprintln!("cannot start the Argo CD emulator on {listen}: {error}");
            std::process::exit(1);
        }
    };
    for (n, (name, env)) in [("shop-api", "prod"), ("shop-web", "staging")].into_iter().enumerate() {
        let sha = format!("{:040x}", n + 1);
        let started = argo.insert_application(application(name, env)).and_then(|_| {
            argo.set_images_for_revision(&sha, [format!("registry.example/{name}:1.0.{n}")]);
            argo.push_revision(name, &sha)
        });
        if let Err(error) = started {
            eprintln!("cannot add the application {name}: {error}");
            std::process::exit(1);
        }
    }
    println!("Argo CD emulator listening on {}", argo.url());
    std::future::pending::<()>().await;
}
