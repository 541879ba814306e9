//! gix (gitoxide) against the `git` CLI for reading a whole history (issue 3: "Choose gix
//! or the git CLI by measurement"). Generates a bare repository of about 100,000 commits,
//! then times, three times each (best and median):
//!
//! - the Git connector's exact `git log -z --reverse --topo-order --date=raw --format=… --stdin`
//!   with stdout captured in memory, and the split of its records into owned fields;
//! - gix: open the repository, walk everything reachable from `refs/heads/main`, decode each
//!   commit and extract the same fields (breadth-first via `rev_walk`, a hand-written walk
//!   that reads each commit once, and `gix::traverse::commit::topo` in topo-order);
//! - `git log --format=%H%n%B main`, the issue's reference figure.
//!
//! Prints figures; asserts nothing. Not built unless the `gix-bench` feature is on:
//!
//! ```text
//! cargo bench -p landfall-tests --bench gix_walk --features gix-bench
//! cargo bench -p landfall-tests --bench gix_walk --features gix-bench -- --commits 20000
//! cargo bench -p landfall-tests --bench gix_walk --features gix-bench -- --gc   # after `git gc`
//! cargo bench -p landfall-tests --bench gix_walk --features gix-bench,gix/max-performance-safe
//! ```
//!
//! With `default-features = false` and only `sha1`, gix has no pack delta-base cache; the
//! last line measures gix with its caches (and the `parallel` feature) enabled.
//!
//! Measured on 2 busy cores (git 2.47.3, 100,000 commits, medians): the connector's CLI path
//! takes about 0.94 s. gix takes 0.53 s walking in any order plus an in-memory parents-first
//! sort. gix's own topo-order walk takes 2.9 s with no commit-graph file (2.5 s of it is the
//! ordering), 0.97 s with an object cache, and 0.6 s once `git gc` has written a
//! commit-graph. `max-performance-safe` changes nothing here.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gix::prelude::FindExt;
use gix::traverse::commit::topo;
use landfall_tests::git::generate_history;

const RUNS: usize = 3;
const FIELD: char = '\u{1f}';
/// The connector's format (`server/src/git.rs`, `LOG_FORMAT`).
const LOG_FORMAT: &str = "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%ad%x1f%cn%x1f%ce%x1f%cd%x1f%B";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Person {
    name: String,
    email: String,
    seconds: i64,
    offset_minutes: i64,
}

/// The fields the connector keeps of a commit, all owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Commit {
    sha: String,
    parents: Vec<String>,
    author: Person,
    committer: Person,
    message: String,
}

// ---- git CLI ---------------------------------------------------------------------------

/// The connector's command: revisions on stdin, output captured whole.
fn git_log_connector(path: &Path) -> Vec<u8> {
    let args = ["log", "-z", "--reverse", "--topo-order", "--date=raw", LOG_FORMAT, "--stdin", "--end-of-options"];
    let mut child = Command::new("git")
        .arg("-C")
        .arg(path)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("GIT_CEILING_DIRECTORIES", path.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run git");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"main\n").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "git log: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// `parse_commit` of the connector, without the correlation (keys, pull requests).
fn parse_log(out: &[u8]) -> Vec<Commit> {
    out.split(|&b| b == 0)
        .filter(|record| !record.is_empty())
        .map(|record| {
            let record = String::from_utf8_lossy(record);
            let fields: Vec<&str> = record.splitn(9, FIELD).collect();
            let [sha, parents, an, ae, ad, cn, ce, cd, message] = fields[..] else {
                panic!("unexpected output format");
            };
            let person = |name: &str, email: &str, date: &str| {
                let (seconds, offset_minutes) = parse_raw_date(date).expect("raw date");
                Person { name: name.to_string(), email: email.to_string(), seconds, offset_minutes }
            };
            Commit {
                sha: sha.trim().to_string(),
                parents: parents.split_whitespace().map(str::to_string).collect(),
                author: person(an, ae, ad),
                committer: person(cn, ce, cd),
                message: message.trim_end_matches('\n').to_string(),
            }
        })
        .collect()
}

/// `1700000000 +0130` as seconds and an offset in minutes.
fn parse_raw_date(date: &str) -> Option<(i64, i64)> {
    let (seconds, offset) = date.trim().split_once(' ')?;
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i64 = offset.get(1..3)?.parse().ok()?;
    let minutes: i64 = offset.get(3..5)?.parse().ok()?;
    Some((seconds.parse().ok()?, sign * (hours * 60 + minutes)))
}

/// The issue's reference figure.
fn git_log_reference(path: &Path) -> usize {
    let output = Command::new("git").arg("-C").arg(path).args(["log", "--format=%H%n%B", "main"]).output().unwrap();
    assert!(output.status.success());
    output.stdout.len()
}

// ---- gix -------------------------------------------------------------------------------

/// Object cache for the variants that read each commit more than once.
const OBJECT_CACHE: usize = 64 << 20;

/// Opens the repository, with an object cache of `cache` bytes if given.
fn open(path: &Path, cache: Option<usize>) -> (gix::Repository, gix::ObjectId) {
    let mut repo = gix::open(path).expect("open with gix");
    if cache.is_some() {
        repo.object_cache_size(cache);
    }
    let tip = repo.find_reference("refs/heads/main").expect("main").peel_to_id().expect("peel").detach();
    (repo, tip)
}

fn extract(id: &gix::oid, commit: &gix::objs::CommitRef<'_>) -> Commit {
    let person = |signature: gix::actor::SignatureRef<'_>| {
        let signature = signature.trim();
        let time = signature.time().expect("signature time");
        Person {
            name: signature.name.to_string(),
            email: signature.email.to_string(),
            seconds: time.seconds,
            offset_minutes: i64::from(time.offset) / 60,
        }
    };
    Commit {
        sha: id.to_string(),
        parents: commit.parents.iter().map(ToString::to_string).collect(),
        author: person(commit.author().expect("author")),
        committer: person(commit.committer().expect("committer")),
        message: String::from_utf8_lossy(commit.message).trim_end_matches('\n').to_string(),
    }
}

/// gix's own walk (`rev_walk`, breadth-first, the default), then a lookup of each commit
/// it yields: the walk has already decoded it once for its parents.
fn gix_rev_walk(path: &Path, cache: Option<usize>) -> Vec<Commit> {
    let (repo, tip) = open(path, cache);
    let mut buf = Vec::new();
    let mut commits = Vec::new();
    for info in repo.rev_walk([tip]).all().expect("walk") {
        let id = info.expect("walk step").id;
        let commit = repo.objects.find_commit(&id, &mut buf).expect("commit");
        commits.push(extract(&id, &commit));
    }
    commits
}

/// A depth-first walk written here: each commit is read and decoded exactly once, its
/// parents taken from that decode. The floor for "any order".
fn gix_single_read(path: &Path) -> Vec<Commit> {
    let (repo, tip) = open(path, None);
    let mut seen = gix::hashtable::HashSet::default();
    seen.insert(tip);
    let mut stack = vec![tip];
    let mut buf = Vec::new();
    let mut commits = Vec::new();
    while let Some(id) = stack.pop() {
        let commit = repo.objects.find_commit(&id, &mut buf).expect("commit");
        for parent in commit.parents() {
            if seen.insert(parent) {
                stack.push(parent);
            }
        }
        commits.push(extract(&id, &commit));
    }
    commits
}

fn topo_walk(repo: &gix::Repository, tip: gix::ObjectId) -> impl Iterator<Item = gix::ObjectId> + '_ {
    // The commit-graph file (generation numbers), when `git gc` has written one, as
    // `rev_walk` uses it too.
    let graph = repo.commit_graph_if_enabled().expect("commit-graph");
    topo::Builder::from_iters(&repo.objects, [tip], None::<Vec<gix::ObjectId>>)
        .with_commit_graph(graph)
        .sorting(topo::Sorting::TopoOrder)
        .build()
        .expect("topo walk")
        .map(|info| info.expect("topo step").id)
}

/// `gix::traverse::commit::topo` in `--topo-order`, reversed (oldest first) like the
/// connector's `--reverse`, then a lookup of each commit.
fn gix_topo(path: &Path, cache: Option<usize>) -> Vec<Commit> {
    let (repo, tip) = open(path, cache);
    let mut buf = Vec::new();
    let ids: Vec<gix::ObjectId> = topo_walk(&repo, tip).collect();
    ids.iter()
        .rev()
        .map(|id| {
            let commit = repo.objects.find_commit(id, &mut buf).expect("commit");
            extract(id, &commit)
        })
        .collect()
}

/// The topo-order walk alone: ids only.
fn gix_topo_ids(path: &Path) -> usize {
    let (repo, tip) = open(path, None);
    topo_walk(&repo, tip).count()
}

/// Orders commits parents-first (each parent before all its children), as
/// `--topo-order --reverse` does, in memory: an iterative post-order depth-first search.
/// A valid topological order, though not git's exact sequence.
fn parents_first(commits: Vec<Commit>) -> Vec<Commit> {
    let index: std::collections::HashMap<&str, usize> =
        commits.iter().enumerate().map(|(i, c)| (c.sha.as_str(), i)).collect();
    let parents: Vec<Vec<usize>> =
        commits.iter().map(|c| c.parents.iter().filter_map(|p| index.get(p.as_str()).copied()).collect()).collect();
    drop(index);
    let mut done = vec![false; commits.len()];
    let mut order = Vec::with_capacity(commits.len());
    for root in 0..commits.len() {
        let mut stack = vec![(root, 0)];
        while let Some((node, next)) = stack.pop() {
            if next == 0 && done[node] {
                continue;
            }
            match parents[node].get(next) {
                Some(&parent) => {
                    stack.push((node, next + 1));
                    if !done[parent] {
                        stack.push((parent, 0));
                    }
                }
                None if !done[node] => {
                    done[node] = true;
                    order.push(node);
                }
                None => {}
            }
        }
    }
    let mut slots: Vec<Option<Commit>> = commits.into_iter().map(Some).collect();
    order.into_iter().map(|i| slots[i].take().unwrap()).collect()
}

/// Whether every parent comes before its children.
fn is_parents_first(commits: &[Commit]) -> bool {
    let mut seen = std::collections::HashSet::new();
    let known: std::collections::HashSet<&str> = commits.iter().map(|c| c.sha.as_str()).collect();
    commits.iter().all(|c| {
        let ok = c.parents.iter().all(|p| !known.contains(p.as_str()) || seen.contains(p.as_str()));
        seen.insert(c.sha.as_str());
        ok
    })
}

// ---- measuring -------------------------------------------------------------------------

struct Figures(Vec<Duration>);

impl Figures {
    fn best(&self) -> f64 {
        millis(*self.0.iter().min().unwrap())
    }

    fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort();
        millis(sorted[sorted.len() / 2])
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Runs `f` [`RUNS`] times; returns the durations and the last result.
fn measure<T>(mut f: impl FnMut() -> T) -> (Figures, T) {
    let mut durations = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let value = f();
        durations.push(started.elapsed());
        last = Some(value);
    }
    (Figures(durations), last.unwrap())
}

fn row(label: &str, figures: &Figures, note: &str) {
    println!("{label:<52} {:>9.0} {:>9.0}  {note}", figures.best(), figures.median());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let commits = landfall_tests::bench_option("commits").map_or(100_000, |n| n.parse().expect("--commits N"));
    let gc = args.iter().any(|a| a == "--gc");

    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("big.git");
    let started = Instant::now();
    generate_history(&repo, commits);
    println!("generated {commits} commits in {:.1} s", started.elapsed().as_secs_f64());
    if gc {
        let started = Instant::now();
        let status = Command::new("git").arg("-C").arg(&repo).args(["gc", "--quiet"]).status().unwrap();
        assert!(status.success());
        println!("git gc (repack with deltas, commit-graph) in {:.1} s", started.elapsed().as_secs_f64());
    }
    let version = Command::new("git").arg("--version").output().unwrap().stdout;
    println!("{}; gix 0.89; {RUNS} runs each, milliseconds", String::from_utf8_lossy(&version).trim());

    // a. The connector's command, then the split; and both in one go.
    let (cli_process, out) = measure(|| git_log_connector(&repo));
    let (cli_parse, from_cli) = measure(|| parse_log(&out));
    let (cli_total, _) = measure(|| parse_log(&git_log_connector(&repo)));
    // b. gix.
    let (gix_rev, from_rev_walk) = measure(|| gix_rev_walk(&repo, None));
    let (gix_rev_cached, _) = measure(|| gix_rev_walk(&repo, Some(OBJECT_CACHE)));
    let (gix_single, from_single) = measure(|| gix_single_read(&repo));
    let (gix_sorted, from_sorted) = measure(|| parents_first(gix_single_read(&repo)));
    let (gix_topo_total, from_topo) = measure(|| gix_topo(&repo, None));
    let (gix_topo_cached, _) = measure(|| gix_topo(&repo, Some(OBJECT_CACHE)));
    let (gix_topo_only, topo_count) = measure(|| gix_topo_ids(&repo));
    // c. The issue's reference.
    let (reference, reference_bytes) = measure(|| git_log_reference(&repo));

    println!();
    println!("{:<52} {:>9} {:>9}", "", "best", "median");
    row("a. git log -z --topo-order … (process, stdout)", &cli_process, &format!("{} bytes", out.len()));
    row("   split records into owned fields", &cli_parse, &format!("{} commits", from_cli.len()));
    row("   CLI total (process + split)", &cli_total, "");
    row("b. gix rev_walk (breadth-first) + find + extract", &gix_rev, &format!("{} commits", from_rev_walk.len()));
    row("   … with a 64 MiB object cache", &gix_rev_cached, "");
    row("   gix own walk, one read per commit + extract", &gix_single, &format!("{} commits", from_single.len()));
    row("   … then sorted parents-first in memory", &gix_sorted, &format!("{} commits", from_sorted.len()));
    row("   gix topo-order walk + find + extract", &gix_topo_total, &format!("{} commits", from_topo.len()));
    row("   … with a 64 MiB object cache", &gix_topo_cached, "");
    row("   gix topo-order walk alone (ids)", &gix_topo_only, &format!("{topo_count} ids"));
    row("c. git log --format=%H%n%B main", &reference, &format!("{reference_bytes} bytes"));

    // The same data? (Reported, not asserted.)
    let sorted = |commits: &[Commit]| {
        let mut commits = commits.to_vec();
        commits.sort_by(|a, b| a.sha.cmp(&b.sha));
        commits
    };
    let cli_sorted = sorted(&from_cli);
    println!();
    println!(
        "same fields as the CLI: rev_walk {}, own walk {}, topo {}; gix topo order identical to git's \
         --topo-order --reverse: {}; in-memory order parents-first: {}",
        sorted(&from_rev_walk) == cli_sorted,
        sorted(&from_single) == cli_sorted,
        sorted(&from_topo) == cli_sorted,
        from_topo == from_cli,
        is_parents_first(&from_sorted),
    );

    let cli = cli_total.median();
    let gix_fast = gix_sorted.median();
    let gix_topo_best = gix_topo_total.median().min(gix_topo_cached.median());
    println!(
        "conclusion: the CLI reads {} commits parents-first in {cli:.0} ms; gix in {gix_fast:.0} ms ({:.2}x) with \
         its own single-read walk and an in-memory sort, and in {gix_topo_best:.0} ms ({:.2}x) with gix's \
         topo-order walk (which needs a commit-graph file or an object cache to be fast).",
        from_cli.len(),
        gix_fast / cli,
        gix_topo_best / cli,
    );
}
