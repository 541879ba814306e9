//! The Git connector: reads commits from repositories into the ledger.
//!
//! It drives the `git` command line rather than gitoxide, by measurement
//! (`tests/benches/gix_walk.rs`, 100,000 commits, see BENCHMARKS.md): one
//! `git log --topo-order` process plus parsing takes about 0.94 s; gix 0.89 decodes the
//! same history in about 0.53 s, but only with a walk and ordering of our own, and its
//! own topological walk takes about 2.9 s on a repository without a commit-graph file.
//! Either way the difference is a fraction of a second next to storing the commits. The
//! CLI gives one pass in the right order whatever the repository's state, every
//! transport, credential helper and SSH set-up users already have, and some 90 fewer
//! crates to build. Remote repositories are kept as bare clones in the data directory
//! and fetched incrementally; local paths are read in place.
//!
//! Only commits not yet ingested are walked: `git log NEW_TIPS --not OLD_TIPS`. Commits
//! that a force-push made unreachable are marked, never deleted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::config::RepositoryConfig;
use crate::correlate::{FeatureProjects, pull_request_by_patterns, pull_request_in};
use crate::ledger::{CommitFact, Ledger, LedgerError, PersonTime, RepositoryFact};

/// Commits stored per ledger transaction.
const BATCH: usize = 5000;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path} is not a Git repository")]
    NotARepository { path: String },
    #[error("branch `{branch}` does not exist in the repository; its branches: {existing} (set `branches`)")]
    MissingBranch { branch: String, existing: String },
    #[error("environment variable {variable} (named by token_env) is not set")]
    MissingToken { variable: String },
    #[error("`git {command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What one sync of one repository did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub repository: String,
    pub new_commits: usize,
    pub features: usize,
    pub pull_requests: usize,
    pub unreachable: u64,
    pub duration: Duration,
}

/// A configured repository, resolved to where its objects are read from.
pub struct Repository<'a> {
    config: &'a RepositoryConfig,
    git_dir: PathBuf,
    remote: bool,
}

impl<'a> Repository<'a> {
    /// Local paths are read in place; URLs (`https://`, `ssh://`, `git@host:path`, and
    /// `file://` too) are cloned into `<data_dir>/repositories/<name>.git`.
    pub fn new(config: &'a RepositoryConfig, data_dir: &Path) -> Repository<'a> {
        let url = config.url.as_str();
        let looks_remote = url.contains("://") || (url.contains(':') && url.contains('@'));
        match (!looks_remote).then(|| PathBuf::from(url)) {
            Some(path) => Repository { config, git_dir: path, remote: false },
            None => Repository {
                config,
                git_dir: data_dir.join("repositories").join(format!("{}.git", config.name)),
                remote: true,
            },
        }
    }

    /// The URL as it may be shown: without any user-info part (which could hold a token).
    pub fn display_url(&self) -> String {
        match url::Url::parse(&self.config.url) {
            Ok(mut url) if url.has_authority() => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.to_string()
            }
            _ => self.config.url.clone(),
        }
    }

    /// A `git` command for this repository: never prompts, never reads the user's
    /// global configuration of credentials into the output, carries the token through
    /// the environment (not the command line, which other users can see).
    fn git(&self) -> Result<Command, GitError> {
        let mut command = Command::new("git");
        command
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(variable) = &self.config.token_env {
            let token = std::env::var(variable).map_err(|_| GitError::MissingToken { variable: variable.clone() })?;
            let basic = base64_encode(format!("x-access-token:{token}").as_bytes());
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}"));
        }
        if let Some(key) = &self.config.ssh_key {
            command
                .env("GIT_SSH_COMMAND", format!("ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes", key.display()));
        }
        Ok(command)
    }

    /// `git <args>` run in this repository.
    fn command(&self, args: &[&str]) -> Result<Command, GitError> {
        let mut command = self.git()?;
        command.arg("-C").arg(&self.git_dir).args(args);
        // Never mistake a plain folder inside some other repository for a repository.
        if let Some(parent) = self.git_dir.parent() {
            command.env("GIT_CEILING_DIRECTORIES", parent);
        }
        Ok(command)
    }

    async fn run(&self, args: &[&str], input: Option<String>) -> Result<Vec<u8>, GitError> {
        output(self.command(args)?, args, input).await
    }

    /// Clones (first time) or fetches a remote repository; checks a local one.
    async fn update(&self) -> Result<(), GitError> {
        if !self.remote {
            let inside = self.run(&["rev-parse", "--git-dir"], None).await;
            let exists = self.git_dir.exists();
            return match inside {
                Ok(_) if exists => Ok(()),
                _ => Err(GitError::NotARepository { path: self.git_dir.display().to_string() }),
            };
        }
        if self.git_dir.join("HEAD").is_file() {
            self.run(&["fetch", "--prune", "--force", "--quiet", "origin", "+refs/heads/*:refs/heads/*"], None)
                .await
                .map(drop)
        } else {
            if let Some(parent) = self.git_dir.parent() {
                std::fs::create_dir_all(parent).map_err(GitError::Spawn)?;
            }
            let mut command = self.git()?;
            command.args(["clone", "--bare", "--quiet", &self.config.url]).arg(&self.git_dir);
            output(command, &["clone", "--bare", &self.display_url()], None).await.map(drop)
        }
    }

    /// The branch tips to ingest, as `(refs/heads/NAME, sha)`. An empty repository
    /// (nothing committed yet) has none.
    async fn tips(&self) -> Result<Vec<(String, String)>, GitError> {
        let branches = if self.config.branches.is_empty() {
            match self.run(&["symbolic-ref", "--quiet", "HEAD"], None).await {
                Ok(head) => vec![text(&head).trim().trim_start_matches("refs/heads/").to_string()],
                Err(_) => return Ok(Vec::new()),
            }
        } else {
            self.config.branches.clone()
        };
        let mut tips = Vec::new();
        for branch in branches {
            let reference = format!("refs/heads/{branch}");
            match self.run(&["rev-parse", "--verify", "--quiet", &format!("{reference}^{{commit}}")], None).await {
                Ok(sha) => tips.push((reference, text(&sha).trim().to_string())),
                Err(_) => {
                    let existing = self.run(&["for-each-ref", "--format=%(refname:short)", "refs/heads"], None).await?;
                    let existing: Vec<&str> = std::str::from_utf8(&existing).unwrap_or_default().lines().collect();
                    // A repository with no commits at all has nothing to ingest yet.
                    if existing.is_empty() && self.config.branches.is_empty() {
                        continue;
                    }
                    return Err(GitError::MissingBranch { branch, existing: existing.join(", ") });
                }
            }
        }
        Ok(tips)
    }

    /// Which of `shas` name commits present in the repository.
    async fn existing(&self, shas: &[String]) -> Result<Vec<String>, GitError> {
        if shas.is_empty() {
            return Ok(Vec::new());
        }
        let input: String = shas.iter().map(|sha| format!("{sha}^{{commit}}\n")).collect();
        let out = self.run(&["cat-file", "--batch-check=%(objectname) %(objecttype)"], Some(input)).await?;
        Ok(text(&out).lines().filter_map(|line| line.strip_suffix(" commit")).map(str::to_string).collect())
    }
}

/// One pass over one repository: fetch, walk the new commits, store them, mark what a
/// force-push left unreachable, remember the new tips.
pub async fn sync(
    ledger: &Ledger,
    config: &RepositoryConfig,
    data_dir: &Path,
    projects: &FeatureProjects,
) -> Result<SyncReport, GitError> {
    let started = Instant::now();
    let repository = Repository::new(config, data_dir);
    repository.update().await?;
    let fact =
        RepositoryFact { name: config.name.clone(), url: repository.display_url(), kind: config.kind.as_str().into() };
    ledger.upsert_repository(&fact).await?;

    let new_tips = repository.tips().await?;
    let old_tips: Vec<String> = ledger.repository_tips(&config.name).await?.into_iter().map(|(_, sha)| sha).collect();
    let old_present = repository.existing(&old_tips).await?;
    let mut report = SyncReport { repository: config.name.clone(), ..SyncReport::default() };

    // A walk that excludes nothing lists every commit the tips contain, so it is the
    // whole graph each branch is numbered from (`land`) and no second walk is needed.
    let mut whole_graph: Option<Vec<(String, Vec<String>)>> = old_present.is_empty().then(Vec::new);
    // The first history of an empty ledger is stored without the history tables'
    // secondary indexes, which are built once it is in, whether or not storing it failed.
    let deferred = whole_graph.is_some() && !new_tips.is_empty() && ledger.defer_history_indexes().await?;
    let stored = async {
        if !new_tips.is_empty() {
            let mut revisions: Vec<String> = new_tips.iter().map(|(_, sha)| sha.clone()).collect();
            revisions.push("--not".into());
            revisions.extend(old_present.iter().cloned());
            let mut features = BTreeSet::new();
            let mut pull_requests = BTreeSet::new();
            let mut batches = walk(&repository, &revisions, projects)?;
            while let Some(batch) = batches.recv().await {
                let batch = batch?;
                ledger.record_commits(&batch).await?;
                for commit in &batch {
                    features.extend(commit.feature_keys.iter().cloned());
                    pull_requests.extend(commit.pull_request_number);
                }
                report.new_commits += batch.len();
                if let Some(graph) = &mut whole_graph {
                    graph.extend(batch.into_iter().map(|commit| (commit.sha, commit.parents)));
                }
            }
            report.features = features.len();
            report.pull_requests = pull_requests.len();
        }

        let old_by_ref: Vec<(String, String)> = ledger.repository_tips(&config.name).await?;
        for (reference, new_sha) in &new_tips {
            let old = old_by_ref.iter().find(|(r, _)| r == reference).map(|(_, sha)| sha.as_str());
            let old = old.filter(|sha| old_present.iter().any(|p| p == sha));
            land(ledger, &repository, reference, old, new_sha, whole_graph.as_deref()).await?;
        }
        Ok::<_, GitError>(())
    }
    .await;
    let restored = if deferred { ledger.restore_deferred_indexes().await.map(drop) } else { Ok(()) };
    if let (Err(_), Err(error)) = (&stored, &restored) {
        // Only the first error is returned; this one would be lost. Each start builds
        // what is still deferred.
        tracing::warn!(repository = %config.name, %error, "cannot build the indexes deferred for a first ingest");
    }
    stored?;
    restored?;
    if config.kind == crate::config::RepositoryKind::Manifests && !new_tips.is_empty() {
        let mut revisions: Vec<String> = new_tips.iter().map(|(_, sha)| sha.clone()).collect();
        revisions.push("--not".into());
        revisions.extend(old_present.iter().cloned());
        let paths = changed_paths(&repository, &revisions).await?;
        ledger.record_commit_paths(&config.name, &paths).await?;
    }
    report.unreachable = mark_left_behind(ledger, &repository, &old_tips, &old_present, &new_tips).await?;
    let synced_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    ledger.set_repository_tips(&config.name, &new_tips, synced_at).await?;
    ledger.refresh_source_points(&config.name).await?;
    report.duration = started.elapsed();
    Ok(report)
}

/// Commits reachable from the old tips but not from the new ones were rewritten away.
/// When an old tip is gone from the repository altogether (a force-push followed by
/// garbage collection), compare every stored commit with what is reachable now.
async fn mark_left_behind(
    ledger: &Ledger,
    repository: &Repository<'_>,
    old_tips: &[String],
    old_present: &[String],
    new_tips: &[(String, String)],
) -> Result<u64, GitError> {
    if old_tips.is_empty() {
        return Ok(0);
    }
    let new: Vec<&str> = new_tips.iter().map(|(_, sha)| sha.as_str()).collect();
    let left_behind: Vec<String> = if old_present.len() == old_tips.len() {
        let mut args: Vec<&str> = vec!["rev-list"];
        args.extend(old_present.iter().map(String::as_str));
        if !new.is_empty() {
            args.push("--not");
            args.extend(new.iter().copied());
        }
        text(&repository.run(&args, None).await?).lines().map(str::to_string).collect()
    } else {
        let reachable: BTreeSet<String> = if new.is_empty() {
            BTreeSet::new()
        } else {
            let mut args = vec!["rev-list"];
            args.extend(new.iter().copied());
            text(&repository.run(&args, None).await?).lines().map(str::to_string).collect()
        };
        ledger
            .reachable_commits(&repository.config.name)
            .await?
            .into_iter()
            .filter(|sha| !reachable.contains(sha))
            .collect()
    };
    Ok(ledger.mark_unreachable(&repository.config.name, &left_behind).await?)
}

/// Numbers the branch `reference` for presence by ancestry (see the `commit_landings`
/// migration): extends its chain of tips from `old` to `new`, or, when the branch was
/// force-pushed (or is new), numbers it again from the start. `whole_graph`, when known,
/// holds every commit `new` contains with its parents (and maybe other branches'
/// commits, which are not numbered).
async fn land(
    ledger: &Ledger,
    repository: &Repository<'_>,
    reference: &str,
    old: Option<&str>,
    new: &str,
    whole_graph: Option<&[(String, Vec<String>)]>,
) -> Result<(), GitError> {
    if old == Some(new) {
        return Ok(());
    }
    let fast_forward = match old {
        Some(old) => repository.run(&["merge-base", "--is-ancestor", old, new], None).await.is_ok(),
        None => false,
    };
    let old = old.filter(|_| fast_forward);
    let listed: Vec<(String, Vec<String>)>;
    let graph = match (old, whole_graph) {
        (None, Some(graph)) => graph,
        _ => {
            let mut args = vec!["rev-list", "--reverse", "--topo-order", "--parents", new];
            if let Some(old) = old {
                args.extend(["--not", old]);
            }
            let listing = repository.run(&args, None).await?;
            listed = text(&listing)
                .lines()
                .filter_map(|line| {
                    let mut shas = line.split_whitespace().map(str::to_string);
                    Some((shas.next()?, shas.collect()))
                })
                .collect();
            &listed
        }
    };
    let start = match old {
        Some(_) => ledger.last_landing(&repository.config.name, reference).await? + 1,
        None => 1,
    };
    let landings = crate::ancestry::landings(graph, old, new, start);
    ledger.record_landings(&repository.config.name, reference, old.is_none(), &landings).await?;
    Ok(())
}

/// The files each commit in `revisions` touched, for manifests repositories.
async fn changed_paths(
    repository: &Repository<'_>,
    revisions: &[String],
) -> Result<Vec<(String, Vec<String>)>, GitError> {
    let args = ["log", "-z", "--format=%x1e%H", "--name-only", "--no-renames", "--stdin", "--end-of-options"];
    let input = revisions.iter().map(|r| format!("{r}\n")).collect::<String>();
    let out = repository.run(&args, Some(input)).await?;
    Ok(text(&out)
        .split('\u{1e}')
        .filter_map(|record| {
            let mut parts = record.split('\0');
            let sha = parts.next()?.trim().to_string();
            let paths = parts.map(|p| p.trim_start_matches('\n').to_string()).filter(|p| !p.is_empty()).collect();
            (!sha.is_empty()).then_some((sha, paths))
        })
        .collect())
}

/// Field and record separators of the `git log` format below: a commit message cannot
/// contain NUL, and the message comes last so a stray unit separator inside it is kept.
const FIELD: char = '\u{1f}';
const LOG_FORMAT: &str = "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%ad%x1f%cn%x1f%ce%x1f%cd%x1f%B";

/// Walks `revisions` (tips, then `--not` and the tips already ingested) oldest first:
/// `git log` runs and its commits are parsed on a task of their own, which hands them
/// over [`BATCH`] at a time, so reading the history overlaps storing it and a large
/// history is never held whole. The last item is git's error, if it failed. Dropping
/// the receiver stops the walk (and git with it).
fn walk(
    repository: &Repository<'_>,
    revisions: &[String],
    projects: &FeatureProjects,
) -> Result<tokio::sync::mpsc::Receiver<Result<Vec<CommitFact>, GitError>>, GitError> {
    let args = ["log", "-z", "--reverse", "--topo-order", "--date=raw", LOG_FORMAT, "--stdin", "--end-of-options"];
    let mut command = repository.command(&args)?;
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(GitError::Spawn)?;
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(GitError::Spawn(std::io::Error::other("git's standard streams are not piped")));
    };
    let input = revisions.iter().map(|r| format!("{r}\n")).collect::<String>();
    let (config, projects) = (repository.config.clone(), projects.clone());
    let (batches, received) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let read = async {
            // Written while git reads; a failure shows up as git's own error below.
            let _ = stdin.write_all(input.as_bytes()).await;
            drop(stdin);
            let mut stdout = tokio::io::BufReader::with_capacity(1 << 16, stdout);
            let mut batch = Vec::with_capacity(BATCH);
            let mut record = Vec::new();
            while stdout.read_until(0, &mut record).await.map_err(GitError::Spawn)? > 0 {
                let fields = record.strip_suffix(&[0]).unwrap_or(&record);
                if !fields.is_empty() {
                    batch.push(parse_commit(&config, fields, &projects)?);
                }
                record.clear();
                if batch.len() == BATCH && batches.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                    return Ok(());
                }
            }
            if !batch.is_empty() {
                let _ = batches.send(Ok(batch)).await;
            }
            Ok::<(), GitError>(())
        };
        let mut errors = Vec::new();
        let (read, _) = tokio::join!(read, stderr.read_to_end(&mut errors));
        // Git's output is closed by now, so it has finished or stops at its next write.
        let finished = match (read, child.wait().await) {
            (Err(error), _) => Err(error),
            (Ok(()), Ok(status)) if status.success() => Ok(()),
            (Ok(()), Ok(_)) => Err(GitError::Command { command: "log".into(), message: last_line(&errors) }),
            (Ok(()), Err(error)) => Err(GitError::Spawn(error)),
        };
        if let Err(error) = finished {
            let _ = batches.send(Err(error)).await;
        }
    });
    Ok(received)
}

/// One `git log` record into a commit fact. Messages that are not UTF-8 are kept with
/// the invalid bytes replaced.
fn parse_commit(
    repository: &RepositoryConfig,
    record: &[u8],
    projects: &FeatureProjects,
) -> Result<CommitFact, GitError> {
    let record = String::from_utf8_lossy(record);
    let fields: Vec<&str> = record.splitn(9, FIELD).collect();
    let malformed = || GitError::Command { command: "log".into(), message: "unexpected output format".into() };
    let [
        sha,
        parents,
        author_name,
        author_email,
        author_date,
        committer_name,
        committer_email,
        committer_date,
        message,
    ] = fields[..]
    else {
        return Err(malformed());
    };
    let person = |name: &str, email: &str, date: &str| -> Result<PersonTime, GitError> {
        let (at, offset_minutes) = parse_raw_date(date).ok_or_else(malformed)?;
        Ok(PersonTime { name: name.to_string(), email: email.to_string(), at, offset_minutes })
    };
    let message = message.trim_end_matches('\n').to_string();
    Ok(CommitFact {
        repository: repository.name.clone(),
        sha: sha.trim().to_string(),
        parents: parents.split_whitespace().map(str::to_string).collect(),
        author: person(author_name, author_email, author_date)?,
        committer: person(committer_name, committer_email, committer_date)?,
        pull_request_number: pull_request_in(&message)
            .or_else(|| pull_request_by_patterns(&message, &repository.pull_request_patterns)),
        feature_keys: projects.keys_in(&message),
        message,
    })
}

/// Git's raw date, `1700000000 +0130`, as epoch milliseconds and an offset in minutes.
fn parse_raw_date(date: &str) -> Option<(i64, i64)> {
    let (seconds, offset) = date.trim().split_once(' ')?;
    let seconds: i64 = seconds.parse().ok()?;
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = offset.get(1..5)?;
    let hours: i64 = digits.get(0..2)?.parse().ok()?;
    let minutes: i64 = digits.get(2..4)?.parse().ok()?;
    Some((seconds * 1000, sign * (hours * 60 + minutes)))
}

async fn output(mut command: Command, shown: &[&str], input: Option<String>) -> Result<Vec<u8>, GitError> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().map_err(GitError::Spawn)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // Written while git reads; a failure shows up as git's own error below.
        let _ = stdin.write_all(input.as_bytes()).await;
        drop(stdin);
    }
    let out = child.wait_with_output().await.map_err(GitError::Spawn)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let command = shown.first().copied().unwrap_or_default().to_string();
        Err(GitError::Command { command, message: last_line(&out.stderr) })
    }
}

/// The last line git wrote to its standard error, which names what went wrong.
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr).trim().lines().last().unwrap_or("no message").to_string()
}

fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Standard base64 (RFC 4648) for the HTTP Basic header; too small a need for a crate.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                encoded.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_dates_keep_their_offset() {
        assert_eq!(parse_raw_date("1700000000 +0130"), Some((1_700_000_000_000, 90)));
        assert_eq!(parse_raw_date("1700000000 -0800"), Some((1_700_000_000_000, -480)));
        assert_eq!(parse_raw_date("nonsense"), None);
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn tokens_travel_in_the_environment_not_the_arguments() {
        // A variable name nothing sets.
        let variable = "LANDFALL_GIT_TEST_TOKEN_FOR_UNIT_TEST";
        let config = RepositoryConfig {
            name: "shop".into(),
            url: "https://git.example/shop.git".into(),
            kind: Default::default(),
            branches: vec![],
            token_env: Some(variable.into()),
            ssh_key: Some(PathBuf::from("/keys/deploy")),
            pull_request_patterns: vec![],
            forge: None,
            forge_project: None,
        };
        let repository = Repository::new(&config, Path::new("/data"));
        let error = repository.git().expect_err("the variable is unset");
        assert!(error.to_string().contains(variable), "{error}");

        let with_token = RepositoryConfig { token_env: Some("PATH".into()), ..config };
        let repository = Repository::new(&with_token, Path::new("/data"));
        let command = repository.git().unwrap();
        let command = command.as_std();
        let envs: Vec<(String, String)> =
            command.get_envs().filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string()))).collect();
        let value = |name: &str| envs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(value("GIT_CONFIG_KEY_0").as_deref(), Some("http.extraHeader"));
        let header = value("GIT_CONFIG_VALUE_0").unwrap();
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            header,
            format!("Authorization: Basic {}", base64_encode(format!("x-access-token:{path}").as_bytes()))
        );
        assert_eq!(value("GIT_TERMINAL_PROMPT").as_deref(), Some("0"));
        assert!(value("GIT_SSH_COMMAND").unwrap().contains("-i '/keys/deploy'"));
        assert!(command.get_args().all(|arg| !arg.to_string_lossy().contains(&path)), "no secret in argv");
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        let config = RepositoryConfig {
            name: "shop".into(),
            url: "https://bot:s3cret@git.example/shop.git".into(),
            kind: Default::default(),
            branches: vec![],
            token_env: None,
            ssh_key: None,
            pull_request_patterns: vec![],
            forge: None,
            forge_project: None,
        };
        let repository = Repository::new(&config, Path::new("/data"));
        assert_eq!(repository.display_url(), "https://git.example/shop.git");
        assert!(repository.remote);
        let local = RepositoryConfig { url: "/srv/git/shop".into(), ..config.clone() };
        assert!(!Repository::new(&local, Path::new("/data")).remote);
        let file = RepositoryConfig { url: "file:///srv/git/shop".into(), ..config.clone() };
        assert_eq!(Repository::new(&file, Path::new("/data")).git_dir, PathBuf::from("/data/repositories/shop.git"));
        let ssh = RepositoryConfig { url: "git@git.example:acme/shop.git".into(), ..config };
        assert!(Repository::new(&ssh, Path::new("/data")).remote);
    }
}
