//! Question benchmark (issue 3): a synthetic ledger of 10,000 applications, 1,000,000
//! deployments, 200,000 commits and 50,000 features, then p50 and p99 latency of each
//! question's endpoint over HTTP against the release `landfall serve`. Prints figures;
//! asserts nothing.
//!
//! ```text
//! cargo build --release -p landfall-server --bin landfall
//! cargo bench -p landfall-tests --bench questions                    # SQLite (+ PostgreSQL when
//!                                                                    #   LANDFALL_TEST_DATABASE_URL is set)
//! cargo bench -p landfall-tests --bench questions -- --scale 0.1     # a tenth of everything
//! cargo bench -p landfall-tests --bench questions -- --ledger /tmp/q.db   # SQLite only: keep the
//!                                                                    #   ledger there, or ask the one there
//! cargo bench -p landfall-tests --bench questions -- --backend postgres   # one back end only
//! ```
//!
//! The ledger is written with bulk SQL in the shape the connectors leave it: linear
//! histories with their landing numbers, a build every 20 commits placed on its branch,
//! environments that trail each other by a few builds, an occasional rollback.

use std::fmt::Write;
use std::time::{Duration, Instant};

use landfall_server::ledger::Ledger;
use landfall_tests::{Server, TestDatabase};

const ENVIRONMENTS: [&str; 4] = ["dev", "qa", "staging", "production"];
const REQUESTS: usize = 200;
/// Requests sent to each endpoint before it is timed, with other keys and windows than
/// the timed ones. The pool opens its connections lazily and each connection prepares
/// a statement the first time it runs it: after a start, an endpoint's first few dozen
/// requests took up to ten times its steady time, and with one warm-up request they
/// were the p99 of whichever endpoint came first.
const WARMUP: usize = 50;
const DAY: i64 = 86_400_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01

struct Shape {
    repositories: usize,
    commits_per_repository: usize,
    services: usize,
    deployments_per_application: usize,
}

impl Shape {
    fn scaled(scale: f64) -> Shape {
        let n = |full: f64| ((full * scale).round() as usize).max(1);
        Shape {
            repositories: n(100.0),
            commits_per_repository: 2000,
            services: n(2500.0),
            deployments_per_application: 100,
        }
    }
}

enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    async fn connect(backend: &str, database: &TestDatabase) -> Pool {
        match backend {
            "sqlite" => Pool::Sqlite(sqlx::SqlitePool::connect(database.url.expose()).await.unwrap()),
            _ => Pool::Postgres(sqlx::PgPool::connect(database.url.expose()).await.unwrap()),
        }
    }

    async fn close(self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    async fn exec(&self, sql: &str) {
        match self {
            Pool::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Pool::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{e}: {}", &sql[..sql.len().min(300)]));
    }
}

/// Inserts rows in multi-row statements of `chunk` rows inside one transaction.
async fn insert(pool: &Pool, head: &str, rows: impl Iterator<Item = String>, chunk: usize) {
    // PostgreSQL's identity columns take given ids only when told to.
    let head = match pool {
        Pool::Postgres(_) if head.contains("(id,") => format!("{head} OVERRIDING SYSTEM VALUE"),
        _ => head.to_string(),
    };
    let mut sql = String::from("BEGIN;");
    let mut in_statement = 0;
    for row in rows {
        if in_statement == 0 {
            write!(sql, "{head} VALUES {row}").unwrap();
        } else {
            write!(sql, ",{row}").unwrap();
        }
        in_statement += 1;
        if in_statement == chunk {
            sql.push(';');
            in_statement = 0;
            if sql.len() > 8_000_000 {
                sql.push_str("COMMIT;");
                pool.exec(&sql).await;
                sql = String::from("BEGIN;");
            }
        }
    }
    if in_statement > 0 {
        sql.push(';');
    }
    sql.push_str("COMMIT;");
    pool.exec(&sql).await;
}

fn sha(repository: usize, index: usize) -> String {
    format!("{repository:08x}{index:032x}")
}

/// The build (every 20th commit) an application of `environment` runs after its k-th
/// deployment: dev leads, each later environment trails by two builds, and every 17th
/// deployment rolls back one build.
fn build_for(environment: usize, k: usize, builds: usize) -> usize {
    let lag = 2 * environment;
    let mut build = k.saturating_sub(lag);
    if k % 17 == 16 {
        build = build.saturating_sub(1);
    }
    build.min(builds - 1)
}

async fn generate(pool: &Pool, shape: &Shape) {
    let started = Instant::now();
    let c = shape.commits_per_repository;
    let builds = c / 20;
    insert(
        pool,
        "INSERT INTO repositories (id, name, url, kind)",
        (0..shape.repositories)
            .map(|r| format!("({}, 'svc-{r}', 'https://git.example/acme/svc-{r}.git', 'source')", r + 1))
            .chain(std::iter::once(format!(
                "({}, 'gitops', 'https://git.example/acme/gitops.git', 'manifests')",
                shape.repositories + 1
            ))),
        1000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO repository_refs (repository_id, ref_name, sha)",
        (0..shape.repositories).map(|r| format!("({}, 'refs/heads/main', '{}')", r + 1, sha(r, c - 1))),
        1000,
    )
    .await;
    let commit_id = |r: usize, i: usize| r * c + i + 1;
    insert(
        pool,
        "INSERT INTO commits (id, repository_id, sha, author_name, author_email, authored_at, committer_name,
             committer_email, committed_at, message, pull_request_number, reachable)",
        (0..shape.repositories).flat_map(|r| {
            (0..c).map(move |i| {
                let at = T0 + (i as i64) * DAY * 365 / c as i64;
                let key = (r * c + i) / 4 + 1;
                format!(
                    "({}, {}, '{}', 'Dev {a}', 'dev{a}@example.com', {at}, 'Dev {a}', 'dev{a}@example.com', {at}, \
                     'Change {i} (#{pr})\n\n* SHOP-{key}', {pr}, TRUE)",
                    commit_id(r, i),
                    r + 1,
                    sha(r, i),
                    a = i % 37,
                    pr = i / 2 + 1
                )
            })
        }),
        500,
    )
    .await;
    insert(
        pool,
        "INSERT INTO commit_parents (commit_id, position, parent_sha)",
        (0..shape.repositories)
            .flat_map(|r| (1..c).map(move |i| format!("({}, 0, '{}')", commit_id(r, i), sha(r, i - 1)))),
        2000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO commit_landings (repository_id, ref_name, sha, position, on_chain)",
        (0..shape.repositories).flat_map(|r| {
            (0..c).map(move |i| format!("({}, 'refs/heads/main', '{}', {}, TRUE)", r + 1, sha(r, i), i + 1))
        }),
        2000,
    )
    .await;
    let features = shape.repositories * c / 4;
    insert(pool, "INSERT INTO features (id, key)", (1..=features).map(|k| format!("({k}, 'SHOP-{k}')")), 2000).await;
    insert(
        pool,
        "INSERT INTO commit_features (commit_id, feature_id)",
        (0..shape.repositories)
            .flat_map(|r| (0..c).map(move |i| format!("({}, {})", commit_id(r, i), (r * c + i) / 4 + 1))),
        2000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO pull_requests (repository_id, number, merge_commit_sha)",
        (0..shape.repositories)
            .flat_map(|r| (0..c / 2).map(move |n| format!("({}, {}, '{}')", r + 1, n + 1, sha(r, 2 * n + 1)))),
        2000,
    )
    .await;
    // A build, a CI run and an image every 20 commits, placed on main.
    let image_id = |r: usize, b: usize| r * builds + b + 1;
    insert(
        pool,
        "INSERT INTO images (id, repository, tag, digest)",
        (0..shape.repositories).flat_map(|r| {
            (0..builds).map(move |b| {
                format!("({}, 'ghcr.io/acme/svc-{r}', 'b{b}', 'sha256:{:064x}')", image_id(r, b), image_id(r, b))
            })
        }),
        2000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO pipeline_runs (ci_system, run_id, name, status, repository_id, commit_sha, pull_request_number,
             started_at, finished_at)",
        (0..shape.repositories).flat_map(|r| {
            (0..builds).map(move |b| {
                let i = b * 20 + 19;
                format!(
                    "('github-actions', 'run-{r}-{b}', 'build', 'success', {}, '{}', {}, {T0}, {T0})",
                    r + 1,
                    sha(r, i),
                    i / 2 + 1
                )
            })
        }),
        2000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO builds (digest, image_id, repository_id, commit_sha, pull_request_number, ci_system, run_id, built_at)",
        (0..shape.repositories).flat_map(|r| {
            (0..builds).map(move |b| {
                let i = b * 20 + 19;
                format!(
                    "('sha256:{:064x}', {}, {}, '{}', {}, 'github-actions', 'run-{r}-{b}', {T0})",
                    image_id(r, b),
                    image_id(r, b),
                    r + 1,
                    sha(r, i),
                    i / 2 + 1
                )
            })
        }),
        2000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO source_points (repository_id, sha, ref_name, base_position)",
        (0..shape.repositories).flat_map(|r| {
            (0..builds)
                .map(move |b| format!("({}, '{}', 'refs/heads/main', {})", r + 1, sha(r, b * 20 + 19), b * 20 + 20))
        }),
        2000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO environments (id, name, rank)",
        ENVIRONMENTS.iter().enumerate().map(|(e, name)| format!("({}, '{name}', {})", e + 1, (e + 1) * 10)),
        10,
    )
    .await;
    insert(
        pool,
        "INSERT INTO services (id, name)",
        (0..shape.services).map(|s| format!("({}, 'svc-{s}')", s + 1)),
        2000,
    )
    .await;
    let applications = shape.services * ENVIRONMENTS.len();
    let app = |s: usize, e: usize| s * ENVIRONMENTS.len() + e + 1;
    insert(
        pool,
        "INSERT INTO applications (id, instance, namespace, name, project, environment_id, service_id, sources,
             automated_sync, updated_at)",
        (0..shape.services).flat_map(|s| {
            ENVIRONMENTS.iter().enumerate().map(move |(e, env)| {
                format!(
                    "({}, 'main', 'argocd', 'svc-{s}-{env}', 'default', {}, {}, \
                     '[{{\"repoURL\":\"https://git.example/acme/gitops.git\",\"path\":\"envs/{env}/svc-{s}\"}}]', {}, {T0})",
                    app(s, e),
                    e + 1,
                    s + 1,
                    if e < 2 { "TRUE" } else { "FALSE" }
                )
            })
        }),
        1000,
    )
    .await;
    let per_app = shape.deployments_per_application;
    let deployment_id = |a: usize, k: usize| (a - 1) * per_app + k + 1;
    let deployed_at = |a: usize, k: usize| T0 + (k as i64) * 3 * DAY + (a as i64 % 1440) * 60_000;
    let repository_of = |s: usize| s % shape.repositories;
    insert(
        pool,
        "INSERT INTO deployments (id, application_id, history_id, revision, started_at, finished_at, phase,
             initiated_by, automated, is_rollback)",
        (0..shape.services).flat_map(|s| {
            (0..ENVIRONMENTS.len()).flat_map(move |e| {
                let a = app(s, e);
                (0..per_app).map(move |k| {
                    let at = deployed_at(a, k);
                    format!(
                        "({}, {a}, {}, 'rev-{k}', {}, {at}, 'Succeeded', 'automation', TRUE, {})",
                        deployment_id(a, k),
                        k + 1,
                        at - 60_000,
                        if k % 17 == 16 { "TRUE" } else { "FALSE" }
                    )
                })
            })
        }),
        1000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO deployment_images (deployment_id, image_id, side)",
        (0..shape.services).flat_map(|s| {
            (0..ENVIRONMENTS.len()).flat_map(move |e| {
                let a = app(s, e);
                (0..per_app).map(move |k| {
                    format!(
                        "({}, {}, 'after')",
                        deployment_id(a, k),
                        image_id(repository_of(s), build_for(e, k, builds))
                    )
                })
            })
        }),
        2000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO deployment_sources (deployment_id, image_id, repository_id, sha)",
        (0..shape.services).flat_map(|s| {
            (0..ENVIRONMENTS.len()).flat_map(move |e| {
                let a = app(s, e);
                let r = repository_of(s);
                (0..per_app).map(move |k| {
                    let b = build_for(e, k, builds);
                    format!("({}, {}, {}, '{}')", deployment_id(a, k), image_id(r, b), r + 1, sha(r, b * 20 + 19))
                })
            })
        }),
        2000,
    )
    .await;
    pool.exec(&format!("UPDATE applications SET current_deployment_id = (id - 1) * {per_app} + {per_app}")).await;
    // What the ledger derives per application: its current base, and its record highs.
    let base = |e: usize, k: usize| build_for(e, k, builds) * 20 + 20;
    insert(
        pool,
        "INSERT INTO application_sources (application_id, repository_id, ref_name, current_base)",
        (0..shape.services).flat_map(|s| {
            (0..ENVIRONMENTS.len()).map(move |e| {
                format!("({}, {}, 'refs/heads/main', {})", app(s, e), repository_of(s) + 1, base(e, per_app - 1))
            })
        }),
        2000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO application_highs (application_id, repository_id, ref_name, base_position, deployment_id)",
        (0..shape.services).flat_map(|s| {
            (0..ENVIRONMENTS.len()).flat_map(move |e| {
                let a = app(s, e);
                let mut high = 0;
                (0..per_app).filter_map(move |k| {
                    let b = base(e, k);
                    (b > high).then(|| {
                        high = b;
                        format!("({a}, {}, 'refs/heads/main', {b}, {})", repository_of(s) + 1, deployment_id(a, k))
                    })
                })
            })
        }),
        2000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO resources (id, application_id, kind, namespace, name, health_status, updated_at)",
        (1..=applications).flat_map(|a| {
            [("Deployment", 2 * a - 1), ("Service", 2 * a)]
                .map(|(kind, id)| format!("({id}, {a}, '{kind}', 'ns-{a}', 'svc', 'Healthy', {T0})"))
        }),
        2000,
    )
    .await;
    // The GitOps repository: 20 commits a day over the year, each to one application's folder.
    let gitops = shape.repositories + 1;
    let manifest_commits = 365 * 20;
    insert(
        pool,
        "INSERT INTO commits (id, repository_id, sha, author_name, author_email, authored_at, committer_name,
             committer_email, committed_at, message, reachable)",
        (0..manifest_commits).map(|m| {
            let at = T0 + (m as i64) * DAY / 20;
            format!(
                "({}, {gitops}, '{}', 'Ops {o}', 'ops{o}@example.com', {at}, 'Ops {o}', 'ops{o}@example.com', {at}, 'Bump', TRUE)",
                shape.repositories * c + m + 1,
                sha(gitops, m),
                o = m % 7
            )
        }),
        1000,
    )
    .await;
    insert(
        pool,
        "INSERT INTO commit_paths (repository_id, sha, path)",
        (0..manifest_commits).map(|m| {
            let env = ENVIRONMENTS[m % 4];
            format!("({gitops}, '{}', 'envs/{env}/svc-{}/values.yaml')", sha(gitops, m), (m * 7) % shape.services)
        }),
        2000,
    )
    .await;
    // PostgreSQL's autovacuum analyses new tables by itself; SQLite keeps no statistics
    // unless asked, and `landfall serve` never asks (see `main`).
    if let Pool::Postgres(_) = pool {
        pool.exec("ANALYZE").await;
    }
    println!(
        "generated {} repositories, {} commits, {features} features, {applications} applications, {} deployments in {:.0} s",
        shape.repositories + 1,
        shape.repositories * c + manifest_commits,
        applications * per_app,
        started.elapsed().as_secs_f64()
    );
}

/// A small deterministic generator, so every run asks the same questions.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

fn iso(ms: i64) -> String {
    landfall_server::timefmt::format_rfc3339(ms)
}

async fn measure(
    client: &reqwest::Client,
    server: &Server,
    name: &str,
    mut request: impl FnMut(usize) -> reqwest::RequestBuilder,
) {
    let mut times: Vec<Duration> = Vec::with_capacity(REQUESTS);
    let mut sizes: Vec<usize> = Vec::with_capacity(REQUESTS);
    for i in REQUESTS..REQUESTS + WARMUP {
        let response = request(i).send().await.unwrap();
        assert!(response.status().is_success(), "{name}: {}", response.status());
        response.bytes().await.unwrap();
    }
    for i in 0..REQUESTS {
        let started = Instant::now();
        let response = request(i).send().await.unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        times.push(started.elapsed());
        sizes.push(body.len());
        assert!(status.is_success(), "{name}: {status} {}", String::from_utf8_lossy(&body));
    }
    let _ = (client, server);
    times.sort();
    sizes.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let kb = |bytes: usize| bytes as f64 / 1000.0;
    println!(
        "  {name:<58} p50 {:>7.2} ms   p99 {:>7.2} ms   answer p50 {:>7.1} KB, max {:>7.1} KB",
        ms(times[REQUESTS / 2]),
        ms(times[REQUESTS * 99 / 100]),
        kb(sizes[REQUESTS / 2]),
        kb(sizes[REQUESTS - 1])
    );
}

/// How long the server is left alone after it starts: `landfall serve` first checks that
/// every deployment has its stored change set (about 1 s on SQLite and 7 s on PostgreSQL
/// for a million), and timing requests meanwhile measures that pass, not the questions.
const SETTLE: Duration = Duration::from_secs(15);

async fn questions(backend: &str, database: &TestDatabase, shape: &Shape) {
    let server = Server::start(&["--database-url", database.url.expose()]);
    tokio::time::sleep(SETTLE).await;
    let client = reqwest::Client::new();
    let features = shape.repositories * shape.commits_per_repository / 4;
    let prs = shape.commits_per_repository / 2;
    let mut rng = Lcg(42);
    println!("{backend}: {REQUESTS} requests each, sequential, over HTTP on loopback");
    let mut keys: Vec<usize> = (0..REQUESTS).map(|_| rng.below(features) + 1).collect();
    keys.sort_unstable();
    let pick = |rng: &mut Lcg| (rng.below(shape.repositories), rng.below(prs) + 1);
    let mut pr_targets: Vec<(usize, usize)> = (0..REQUESTS).map(|_| pick(&mut rng)).collect();
    // The warm-up's own keys and pull requests, drawn after the timed ones.
    keys.extend((0..WARMUP).map(|_| rng.below(features) + 1));
    pr_targets.extend((0..WARMUP).map(|_| pick(&mut rng)));
    let url = |path: &str| server.url(path);

    measure(&client, &server, "1, 5, 8  GET /pull-requests/{repo}/{number}", |i| {
        let (r, n) = pr_targets[i];
        client.get(url(&format!("/api/v1/pull-requests/svc-{r}/{n}")))
    })
    .await;
    measure(&client, &server, "2, 3, 9  GET /features/{key}", |i| {
        client.get(url(&format!("/api/v1/features/SHOP-{}", keys[i])))
    })
    .await;
    // A rollback is usually asked about something that shipped lately: features of any
    // repository whose commits landed in its last eight builds (about a month here), all
    // running in dev. Until 2026-11-30 this row asked about the last repository's
    // features 49,600-49,999, which despite its label span most of that repository's
    // year; the second row keeps features of any age, whose plans are far larger.
    let c = shape.commits_per_repository;
    let recent = |rng: &mut Lcg| {
        let (r, i) = (rng.below(shape.repositories), c - 1 - rng.below(8 * 20));
        (r * c + i) / 4 + 1
    };
    let recent_keys: Vec<usize> = (0..REQUESTS + WARMUP).map(|_| recent(&mut rng)).collect();
    measure(&client, &server, "4        POST /rollback-plans (dev, a recent feature)", |i| {
        client.post(url("/api/v1/rollback-plans")).json(&serde_json::json!({
            "environment": "dev", "feature": format!("SHOP-{}", recent_keys[i])
        }))
    })
    .await;
    measure(&client, &server, "4        POST /rollback-plans (dev, a feature of any age)", |i| {
        client.post(url("/api/v1/rollback-plans")).json(&serde_json::json!({
            "environment": "dev", "feature": format!("SHOP-{}", keys[i])
        }))
    })
    .await;
    measure(&client, &server, "6        GET /manifests/commits (an afternoon)", |i| {
        let day = T0 + ((i % 300) as i64) * DAY;
        client.get(url(&format!(
            "/api/v1/manifests/commits?env=production&since={}&until={}",
            iso(day + 12 * 3_600_000),
            iso(day + 18 * 3_600_000)
        )))
    })
    .await;
    // The first page, of the default size (20 deployments) and of the largest (500), of
    // the morning or the afternoon of a day with deployments: every application deploys
    // every third day, spread over the day, so about half of the environment's
    // deployments of that day fall in the window. (Until 2026-12-04 the windows started
    // on every day, and two in three held nothing.)
    let deployment_days = shape.deployments_per_application.max(1);
    for (label, limit) in
        [("7        GET /environments/staging/changes (12 hours)", ""), ("7          … in pages of 500", "&limit=500")]
    {
        measure(&client, &server, label, |i| {
            let day = T0 + ((i % deployment_days) as i64) * 3 * DAY + (i % 2) as i64 * 12 * 3_600_000;
            client.get(url(&format!(
                "/api/v1/environments/staging/changes?since={}&until={}{limit}",
                iso(day),
                iso(day + 12 * 3_600_000)
            )))
        })
        .await;
    }
    measure(&client, &server, "         GET /environments/compare (staging, production)", |_| {
        client.get(url("/api/v1/environments/compare?from=staging&to=production"))
    })
    .await;
    measure(&client, &server, "         GET /commits/{repo}/{sha}", |i| {
        let (r, n) = pr_targets[i];
        client.get(url(&format!("/api/v1/commits/svc-{r}/{}", sha(r, n))))
    })
    .await;
    measure(&client, &server, "3        GET /ask?q=Is SHOP-n deployed in production now?", |i| {
        client.get(url(&format!("/api/v1/ask?q=Is%20SHOP-{}%20deployed%20in%20production%20now%3F", keys[i])))
    })
    .await;
}

fn main() {
    let scale: f64 =
        landfall_tests::bench_option("scale").map_or(1.0, |n| n.parse().expect("--scale takes a number such as 0.1"));
    let shape = Shape::scaled(scale);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // A ledger kept from an earlier run is asked again as it is, without generating it.
    let kept = landfall_tests::bench_option("ledger").map(std::path::PathBuf::from);
    runtime.block_on(async {
        if let Some(path) = kept.as_deref().filter(|path| path.exists()) {
            println!("asking the ledger kept at {} (give the --scale it was generated with)", path.display());
            return questions("sqlite", &TestDatabase::sqlite_at(path), &shape).await;
        }
        let mut databases =
            vec![("sqlite", kept.as_deref().map_or_else(TestDatabase::sqlite, TestDatabase::sqlite_at))];
        if kept.is_none()
            && let Some(postgres) = TestDatabase::postgres().await
        {
            databases.push(("postgres", postgres));
        }
        // `--backend sqlite` or `--backend postgres` asks one of them only.
        let only = landfall_tests::bench_option("backend");
        databases.retain(|(backend, _)| only.as_deref().is_none_or(|only| only == *backend));
        for (backend, database) in databases {
            let ledger = Ledger::open(&database.url).await.unwrap();
            ledger.close().await;
            let pool = Pool::connect(backend, &database).await;
            generate(&pool, &shape).await;
            pool.close().await;
            // What the ledger stores as applications and deployments are recorded: where
            // each application reads its manifests, each deployment's change set.
            let started = Instant::now();
            let ledger = Ledger::open(&database.url).await.unwrap();
            let indexed = ledger.index_source_paths().await.unwrap();
            println!("stored where {indexed} applications read manifests in {:.1} s", started.elapsed().as_secs_f64());
            let started = Instant::now();
            let filled = ledger.fill_change_sets().await.unwrap();
            ledger.close().await;
            println!("stored {filled} change sets in {:.0} s", started.elapsed().as_secs_f64());
            // A PostgreSQL ledger in use has had autovacuum's upkeep: without it, autovacuum
            // would work through the million rows just written while the questions are
            // timed, and index-only scans would still visit the tables. A SQLite ledger
            // is left without statistics, as `landfall serve` leaves it: with them (and
            // the bundled SQLite's STAT4) every statement is planned again whenever its
            // bound values change, and every card took 0.7-1 ms longer.
            if backend == "postgres" {
                let started = Instant::now();
                let upkeep = Pool::connect(backend, &database).await;
                upkeep.exec("VACUUM ANALYZE").await;
                upkeep.close().await;
                println!("VACUUM ANALYZE in {:.0} s", started.elapsed().as_secs_f64());
            }
            questions(backend, &database, &shape).await;
        }
    });
}
