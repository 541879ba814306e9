//! The fault matrix: 100 faults of every kind the emulator can inject — cut streams,
//! restarts, 500s, slow answers, expired resourceVersions, stream errors (including an
//! authentication one) — while applications are synced, created and deleted. Afterwards
//! the ledger holds every history entry Argo CD ever issued, exactly once, and agrees
//! with a full resync into an empty ledger on everything that resync can know.
//!
//! The sequence is random; its seed is printed and can be replayed with
//! `LANDFALL_TEST_FAULT_SEED=<seed>`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use landfall_emulators::argocd::{ArgoCd, Fault, Handle, Options, example_application};
use landfall_server::ledger::Ledger;
use landfall_server::ledger::application_views::{ApplicationDetail, DeploymentView, Lookup};
use landfall_tests::{Server, TestDatabase};
use serde_json::{Value, json};

const TOKEN: &str = "header.payload.signature";
const FAULTS: usize = 100;
const INSTANCE: &str = "main";
/// `revisionHistoryLimit` of the first application: Argo CD forgets its older entries,
/// so only the watch, never a resync, can have kept them.
const SHORT_HISTORY: i64 = 3;
const SHORT_HISTORY_APP: &str = "svc-0";

/// xorshift64: a reproducible sequence from a printed seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low + 1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Cut,
    Restart,
    Fail,
    Slow,
    Expire,
    StreamError,
    Unauthenticated,
}

const KINDS: [Kind; 7] =
    [Kind::Cut, Kind::Restart, Kind::Fail, Kind::Slow, Kind::Expire, Kind::StreamError, Kind::Unauthenticated];

fn application(name: &str, history_limit: i64) -> Value {
    let mut app = example_application(name, "prod");
    app["spec"]["syncPolicy"] = json!({"automated": {"prune": true}});
    app["spec"]["revisionHistoryLimit"] = json!(history_limit);
    app
}

/// Syncs `name` to a new revision whose image carries the revision's number.
fn push(argo: &Handle, name: &str, revision: u64) {
    let sha = format!("{revision:040x}");
    argo.set_images_for_revision(&sha, [format!("registry.example/{name}:{revision}")]);
    argo.push_revision(name, &sha).unwrap();
}

fn seed() -> u64 {
    let seed = std::env::var("LANDFALL_TEST_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    seed | 1
}

fn serve(work: &std::path::Path, argo: &Handle, database: &TestDatabase) -> Server {
    let config = work.join("landfall.toml");
    std::fs::write(
        &config,
        format!(
            "[[argocd]]\nname = \"{INSTANCE}\"\nurl = \"{}\"\ntoken_env = \"ARGOCD_TOKEN\"\nsilence_seconds = 5\n\
             max_backoff_seconds = 1\n\n[[environment]]\nname = \"production\"\nmatch = {{ labels = {{ env = \"prod\" }} }}\n",
            argo.url()
        ),
    )
    .unwrap();
    Server::start_with_env(
        &["--config", config.to_str().unwrap(), "--database-url", database.url.expose()],
        &[("ARGOCD_TOKEN", TOKEN)],
    )
}

/// The highest history id of every application the emulator holds, once no operation runs.
fn settled(argo: &Handle) -> Option<BTreeMap<String, Option<i64>>> {
    let mut last = BTreeMap::new();
    for app in argo.applications() {
        let phase = app.pointer("/status/operationState/phase").and_then(Value::as_str);
        if matches!(phase, Some("Running" | "Terminating")) {
            return None;
        }
        let name = app["metadata"]["name"].as_str()?.to_string();
        let ids = app.pointer("/status/history").and_then(Value::as_array).into_iter().flatten();
        last.insert(name, ids.filter_map(|h| h["id"].as_i64()).max());
    }
    Some(last)
}

async fn detail(ledger: &Ledger, name: &str) -> Option<ApplicationDetail> {
    match ledger.application_detail(INSTANCE, Some("argocd"), name, 10_000).await.unwrap() {
        Lookup::Found(detail) => Some(detail),
        _ => None,
    }
}

/// What a resync can know of a deployment: everything but the images, which Argo CD
/// reports only for what runs now.
fn known(d: &DeploymentView) -> Value {
    json!([
        d.history_id,
        d.revision,
        d.revisions,
        d.started_at,
        d.finished_at,
        d.phase,
        d.initiated_by,
        d.automated,
        d.is_rollback
    ])
}

/// Whether `ledger` holds exactly the applications of `expected`, each with every history
/// id from 0 to its last one exactly once and the sync status and health Argo CD shows.
async fn complete(ledger: &Ledger, argo: &Handle, expected: &BTreeMap<String, Option<i64>>) -> Result<(), String> {
    let live: BTreeSet<String> = ledger.live_applications(INSTANCE).await.unwrap().into_iter().map(|k| k.1).collect();
    let wanted: BTreeSet<String> = expected.keys().cloned().collect();
    if live != wanted {
        return Err(format!("live applications {live:?}, Argo CD has {wanted:?}"));
    }
    for (name, last) in expected {
        let detail = detail(ledger, name).await.ok_or_else(|| format!("{name} is missing"))?;
        let mut ids: Vec<i64> = detail.deployments.iter().map(|d| d.history_id).collect();
        ids.sort_unstable();
        let all: Vec<i64> = last.map_or_else(Vec::new, |last| (0..=last).collect());
        if ids != all || detail.deployments_total != all.len() as i64 {
            return Err(format!(
                "{name}: ids {ids:?} ({} rows), Argo CD issued 0..={last:?}",
                detail.deployments_total
            ));
        }
        let app = argo.application(name).ok_or_else(|| format!("{name} left Argo CD"))?;
        let status = (app.pointer("/status/sync/status"), app.pointer("/status/health/status"));
        let recorded = (detail.application.sync_status.as_deref(), detail.application.health_status.as_deref());
        if (status.0.and_then(Value::as_str), status.1.and_then(Value::as_str)) != recorded {
            return Err(format!("{name}: status {recorded:?}, Argo CD shows {status:?}"));
        }
    }
    Ok(())
}

async fn eventually(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(()) => return,
            Err(problem) if Instant::now() >= deadline => panic!("timed out waiting for {what}: {problem}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn inject(argo: &Handle, kind: Kind, random: &mut Random) {
    let fault = match kind {
        Kind::Cut => Fault::CutStreams,
        Kind::Restart => Fault::Restart,
        Kind::Fail => Fault::FailNext(1 + random.below(4) as u32),
        Kind::Slow => Fault::Delay(random.millis(100, 1500)),
        Kind::Expire => Fault::ExpireResourceVersions,
        Kind::StreamError => Fault::StreamError { grpc_code: 14, message: "transport is closing".into() },
        Kind::Unauthenticated => {
            Fault::StreamError { grpc_code: 16, message: "invalid session: token is expired".into() }
        }
    };
    argo.set_fault(fault);
    if kind == Kind::Expire {
        // Only a watch resuming from an old resourceVersion meets the expiry.
        argo.set_fault(Fault::CutStreams);
    }
}

async fn matrix(backend: &str, database: TestDatabase, resync: TestDatabase) {
    let seed = seed();
    eprintln!("{backend}: fault matrix with LANDFALL_TEST_FAULT_SEED={seed}");
    let mut random = Random(seed);
    let argo = ArgoCd::start(Options {
        tokens: vec![(TOKEN.into(), "admin".into())],
        sync_duration: Duration::from_millis(40),
        delete_duration: Duration::from_millis(40),
        keepalive: Duration::from_secs(1),
        ..Options::default()
    })
    .await
    .unwrap();
    let mut names: Vec<String> = Vec::new();
    for n in 0..6 {
        let name = format!("svc-{n}");
        argo.insert_application(application(&name, if name == SHORT_HISTORY_APP { SHORT_HISTORY } else { 1000 }))
            .unwrap();
        names.push(name);
    }
    let work = tempfile::tempdir().unwrap();
    let _server = serve(work.path(), &argo, &database);
    let ledger = Ledger::open(&database.url).await.unwrap();
    eventually(&format!("{backend}: the first list"), Duration::from_secs(30), async || {
        complete(&ledger, &argo, &settled(&argo).ok_or("syncing")?).await
    })
    .await;

    let mut revision = 0u64;
    let mut created = names.len();
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut order = KINDS;
    let mut short_due = false;
    for round in 0..FAULTS {
        // Every kind in each run of seven, in a random order.
        if round % KINDS.len() == 0 {
            for i in (1..order.len()).rev() {
                order.swap(i, random.below(i as u64 + 1) as usize);
            }
        }
        let kind = order[round % KINDS.len()];
        *counts.entry(kind).or_default() += 1;
        inject(&argo, kind, &mut random);
        for _ in 0..1 + random.below(3) {
            match random.below(10) {
                0 if names.len() > 3 => {
                    let gone = names.remove(random.below(names.len() as u64) as usize);
                    argo.remove_application(&gone).unwrap();
                }
                1 => {
                    let name = format!("svc-{created}");
                    created += 1;
                    argo.insert_application(application(&name, 1000)).unwrap();
                    names.push(name);
                }
                _ => {
                    let name = names[random.below(names.len() as u64) as usize].clone();
                    if name == SHORT_HISTORY_APP {
                        // Argo CD may trim this one's entries during an outage, before
                        // any client could see them: it changes only while healthy.
                        short_due = true;
                    } else {
                        revision += 1;
                        push(&argo, &name, revision);
                    }
                }
            }
        }
        tokio::time::sleep(random.millis(50, 600)).await;
        argo.clear_faults();
        if std::mem::take(&mut short_due) && names.iter().any(|n| n == SHORT_HISTORY_APP) {
            revision += 1;
            push(&argo, SHORT_HISTORY_APP, revision);
            let what = format!("{backend}: {SHORT_HISTORY_APP} to be seen between faults (seed {seed})");
            eventually(&what, Duration::from_secs(30), async || {
                let last = settled(&argo).ok_or("syncing")?.get(SHORT_HISTORY_APP).copied().flatten();
                let seen =
                    detail(&ledger, SHORT_HISTORY_APP).await.and_then(|d| d.deployments.first().map(|d| d.history_id));
                if last.is_some() && seen == last { Ok(()) } else { Err(format!("seen {seen:?} of {last:?}")) }
            })
            .await;
        }
        tokio::time::sleep(random.millis(0, 300)).await;
    }
    eprintln!("{backend}: injected {counts:?}; {revision} revisions pushed, {created} applications created");
    assert!(KINDS.iter().all(|k| counts.get(k).is_some_and(|n| *n >= FAULTS / KINDS.len())), "{counts:?}");

    // Nothing lost, nothing twice: every id Argo CD issued, including those it has trimmed.
    let mut expected = BTreeMap::new();
    eventually(&format!("{backend}: Argo CD to settle"), Duration::from_secs(30), async || {
        expected = settled(&argo).ok_or("an operation still runs")?;
        Ok(())
    })
    .await;
    eventually(&format!("{backend}: the ledger to catch up (seed {seed})"), Duration::from_secs(60), async || {
        complete(&ledger, &argo, &expected).await
    })
    .await;
    if let Some(last) = expected.get(SHORT_HISTORY_APP) {
        // Usually true; it makes the comparison below meaningful for trimmed history.
        eprintln!(
            "{backend}: {SHORT_HISTORY_APP} has {} entries in the ledger, {SHORT_HISTORY} in Argo CD",
            last.map_or(0, |l| l + 1)
        );
    }

    // A full resync into an empty ledger: what it learns, the watched ledger already had.
    let resync_work = tempfile::tempdir().unwrap();
    let _resync_server = serve(resync_work.path(), &argo, &resync);
    let fresh = Ledger::open(&resync.url).await.unwrap();
    eventually(&format!("{backend}: the resync"), Duration::from_secs(60), async || {
        let live = fresh.live_applications(INSTANCE).await.unwrap().len();
        if live != expected.len() {
            return Err(format!("{live} of {} applications", expected.len()));
        }
        for app in argo.applications() {
            let name = app["metadata"]["name"].as_str().unwrap();
            let listed = app.pointer("/status/history").and_then(Value::as_array).map_or(0, Vec::len);
            let got = detail(&fresh, name).await.map_or(0, |d| d.deployments.len());
            if got != listed {
                return Err(format!("{name}: {got} of {listed} entries"));
            }
        }
        Ok(())
    })
    .await;
    for name in expected.keys() {
        let watched = detail(&ledger, name).await.unwrap();
        let resynced = detail(&fresh, name).await.unwrap();
        assert_eq!(watched.application.sync_status, resynced.application.sync_status, "{backend}: {name}");
        assert_eq!(watched.application.health_status, resynced.application.health_status, "{backend}: {name}");
        assert_eq!(watched.application.current, resynced.application.current, "{backend}: {name}");
        let watched_by_id: BTreeMap<i64, &DeploymentView> =
            watched.deployments.iter().map(|d| (d.history_id, d)).collect();
        for deployment in &resynced.deployments {
            let kept = watched_by_id.get(&deployment.history_id).unwrap_or_else(|| {
                panic!("{backend}: {name} #{} is missing from the watched ledger", deployment.history_id)
            });
            assert_eq!(known(kept), known(deployment), "{backend}: {name}");
        }
        // What runs now is known to both.
        if let (Some(latest), Some(resynced_latest)) = (watched.deployments.first(), resynced.deployments.first()) {
            assert_eq!(latest.images, resynced_latest.images, "{backend}: {name} runs");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_survives_the_fault_matrix_on_sqlite() {
    matrix("sqlite", TestDatabase::sqlite(), TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_survives_the_fault_matrix_on_postgres() {
    let (Some(database), Some(resync)) = (TestDatabase::postgres().await, TestDatabase::postgres().await) else {
        assert!(std::env::var_os("CI").is_none(), "LANDFALL_TEST_DATABASE_URL must be set in CI");
        eprintln!("LANDFALL_TEST_DATABASE_URL is not set: the PostgreSQL fault matrix does not run");
        return;
    };
    matrix("postgres", database, resync).await;
}
