//! Change sets, stored: what each deployment brought in and took away, worked out once
//! (when the deployment is recorded, or on first demand) and read afterwards, so that
//! "what entered production this afternoon?" costs a few queries however busy the
//! afternoon was.
//!
//! Two tables hold them (see the `change_diffs` migration). A *diff* between two source
//! sets depends only on the commits and their landing numbers, so it is keyed by a
//! digest of both sets and shared by every application that moved between the same
//! builds. A *link* says which diff a deployment made relative to an earlier one, and
//! holds while neither deployment's `sources_version` has moved since.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cards::{FeatureRef, PullRequestRef};
use super::presence::{ChangeSet, Names, SourceSet};
use super::{BeginWrite, Ledger, LedgerError, is_listed, json_list, listed, on_pool, read_rows};

/// Applications per batch when filling in missing change sets.
const FILL_APPLICATIONS: usize = 100;

/// New diffs whose commits are read together.
const DIFFS_AT_ONCE: usize = 64;

/// What the commits of a change set say, by key; names are read when answering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Diff {
    authors: Vec<String>,
    committers: Vec<String>,
    features_entered: Vec<String>,
    features_left: Vec<String>,
    pull_requests_entered: Vec<(String, i64)>,
    pull_requests_left: Vec<(String, i64)>,
    commits_entered: usize,
    commits_left: usize,
    truncated: bool,
}

/// Diffs already read or worked out, by digest: applications that move between the same
/// builds share them.
#[derive(Default)]
pub(crate) struct DiffCache {
    by_sources: HashMap<String, (i64, Diff)>,
}

/// `(earlier deployment, deployment)`.
type Pair = (i64, i64);

/// Whether diffs worked out are for storing ([`Ledger::store`]) or only for the answer
/// at hand (a rollback plan's, see [`Ledger::leaving`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Store,
    Discard,
}

/// Diffs worked out and not yet stored, with what storing them needs.
#[derive(Default)]
struct Unstored {
    /// `sources_version` of each deployment, as read before working out.
    versions: HashMap<i64, i64>,
    /// `(digest, diff, its JSON)` of each diff no one had worked out.
    fresh: Vec<(String, Diff, String)>,
    /// Each pair and the digest of its diff.
    links: Vec<(Pair, String)>,
}

/// A digest of two source sets, in a canonical order.
fn sources_digest(from: &SourceSet, to: &SourceSet) -> String {
    let mut hasher = Sha256::new();
    for (side, set) in [("from", from), ("to", to)] {
        hasher.update(side.as_bytes());
        for ((repository_id, reference), (base, extras)) in &set.branches {
            hasher.update(format!("\n{repository_id} {reference} {base}").as_bytes());
            for sha in extras {
                hasher.update(b" ");
                hasher.update(sha.as_bytes());
            }
        }
        hasher.update(b"\n");
    }
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Ledger {
    /// What each deployment changed relative to an earlier one of its application
    /// (`None`: it is the first), for many `(earlier, deployment)` pairs: stored diffs
    /// are read, missing ones worked out and stored.
    pub(crate) async fn change_sets(
        &self,
        pairs: &[(Option<i64>, i64)],
        cache: &mut DiffCache,
    ) -> Result<Vec<ChangeSet>, LedgerError> {
        let mut ids: Vec<i64> = pairs.iter().flat_map(|(from, to)| from.iter().copied().chain([*to])).collect();
        ids.sort_unstable();
        ids.dedup();
        let wanted = pairs.iter().filter_map(|(from, to)| from.map(|from| (from, *to))).collect();
        // Independent reads, on two pooled connections at once: a page's wait is the
        // longer of the two, not their sum.
        let (images, (diffs, names, unstored)) =
            tokio::try_join!(self.changed_images(pairs, &ids), self.named_diffs(wanted, cache, true, Keep::Store))?;
        // Stored after the names are read: on SQLite a write makes every pooled connection
        // drop its page cache, so reads after it cost ten times as much.
        self.store(unstored, cache).await?;
        Ok(pairs
            .iter()
            .zip(images)
            .map(|((from, to), (images, pipelines, resources))| match from.and_then(|from| diffs.get(&(from, *to))) {
                None => ChangeSet { initial: true, images, pipelines, resources, ..ChangeSet::default() },
                Some(diff) => ChangeSet {
                    initial: false,
                    images,
                    pipelines,
                    resources,
                    authors: diff.authors.clone(),
                    committers: diff.committers.clone(),
                    features_entered: names.features(&diff.features_entered),
                    features_left: names.features(&diff.features_left),
                    pull_requests_entered: names.pull_requests(&diff.pull_requests_entered),
                    pull_requests_left: names.pull_requests(&diff.pull_requests_left),
                    commits_entered: diff.commits_entered,
                    commits_left: diff.commits_left,
                    truncated: diff.truncated,
                },
            })
            .collect())
    }

    /// What each `(earlier, later)` pair of one application's deployments would take
    /// away if the application went back from `later` to `earlier`: the features and
    /// pull requests `later` has and `earlier` lacks, and whether the lists are cut.
    /// [`Ledger::change_sets`] without the images, which a rollback plan does not show.
    /// Diffs worked out here are not stored: a plan pairs deployments that are seldom
    /// neighbours, so no change set reads them, and the plan itself is stored whole.
    pub(crate) async fn leaving(
        &self,
        pairs: &[(i64, i64)],
    ) -> Result<Vec<(Vec<FeatureRef>, Vec<PullRequestRef>, bool)>, LedgerError> {
        let (diffs, names, _) =
            self.named_diffs(pairs.to_vec(), &mut DiffCache::default(), false, Keep::Discard).await?;
        Ok(pairs
            .iter()
            .map(|pair| match diffs.get(pair) {
                Some(diff) => (
                    names.features(&diff.features_entered),
                    names.pull_requests(&diff.pull_requests_entered),
                    diff.truncated,
                ),
                None => (Vec::new(), Vec::new(), false),
            })
            .collect())
    }

    /// The diffs of these pairs and the names of the features and pull requests that enter
    /// with them, and with `with_left` also of those that leave; and the diffs that were
    /// worked out rather than read, for [`Ledger::store`] when `keep` says so.
    async fn named_diffs(
        &self,
        mut pairs: Vec<Pair>,
        cache: &mut DiffCache,
        with_left: bool,
        keep: Keep,
    ) -> Result<(HashMap<Pair, Diff>, Names, Unstored), LedgerError> {
        pairs.sort_unstable();
        pairs.dedup();
        let (diffs, unstored) = self.diffs(&pairs, cache, keep).await?;
        let mut features: Vec<String> = Vec::new();
        let mut pull_requests: Vec<(String, i64)> = Vec::new();
        for diff in diffs.values() {
            features.extend_from_slice(&diff.features_entered);
            pull_requests.extend_from_slice(&diff.pull_requests_entered);
            if with_left {
                features.extend_from_slice(&diff.features_left);
                pull_requests.extend_from_slice(&diff.pull_requests_left);
            }
        }
        features.sort_unstable();
        features.dedup();
        pull_requests.sort_unstable();
        pull_requests.dedup();
        let names = self.names(&features, &pull_requests).await?;
        Ok((diffs, names, unstored))
    }

    /// Works out and stores the change set of a deployment just recorded, so that
    /// reading it later is a lookup.
    pub(crate) async fn remember_change(&self, previous: i64, deployment: i64) -> Result<(), LedgerError> {
        let mut cache = DiffCache::default();
        let (_, unstored) = self.diffs(&[(previous, deployment)], &mut cache, Keep::Store).await?;
        self.store(unstored, &mut cache).await
    }

    /// Stores the change set of every succeeded deployment that has none (or a stale
    /// one), a batch of applications at a time; returns how many were worked out. Run
    /// at start-up, so a ledger written before change sets were stored catches up.
    pub async fn fill_change_sets(&self) -> Result<usize, LedgerError> {
        let applications: Vec<i64> =
            on_pool!(self.pool(), |p| sqlx::query_scalar("SELECT id FROM applications ORDER BY id")
                .fetch_all(p)
                .await?);
        let mut cache = DiffCache::default();
        let mut filled = 0;
        for batch in applications.chunks(FILL_APPLICATIONS) {
            let sql = format!(
                "SELECT d.previous_id, d.id FROM (
                     SELECT id, sources_version,
                            LAG(id) OVER (PARTITION BY application_id
                                          ORDER BY COALESCE(finished_at, started_at), incarnation, history_id) AS previous_id
                     FROM deployments WHERE phase = 'Succeeded' AND {}) d
                 WHERE d.previous_id IS NOT NULL AND NOT EXISTS (
                     SELECT 1 FROM deployment_changes dc JOIN deployments p ON p.id = dc.previous_id
                     WHERE dc.deployment_id = d.id AND dc.previous_id = d.previous_id
                       AND dc.deployment_version = d.sources_version AND dc.previous_version = p.sources_version)",
                is_listed(self.pool(), "application_id", 1, "bigint")
            );
            let missing: Vec<Pair> =
                on_pool!(self.pool(), |p| sqlx::query_as(&sql).bind(json_list(batch)).fetch_all(p).await?);
            for chunk in missing.chunks(2000) {
                let (_, unstored) = self.work_out(chunk, &mut cache, Keep::Store).await?;
                self.store(unstored, &mut cache).await?;
                filled += chunk.len();
            }
        }
        Ok(filled)
    }

    /// The diffs of these pairs: stored ones read, the others worked out, to be stored
    /// with [`Ledger::store`] when `keep` says so.
    async fn diffs(
        &self,
        pairs: &[Pair],
        cache: &mut DiffCache,
        keep: Keep,
    ) -> Result<(HashMap<Pair, Diff>, Unstored), LedgerError> {
        let mut diffs = self.stored_diffs(pairs).await?;
        let missing: Vec<Pair> = pairs.iter().filter(|pair| !diffs.contains_key(pair)).copied().collect();
        if missing.is_empty() {
            return Ok((diffs, Unstored::default()));
        }
        let (worked_out, unstored) = self.work_out(&missing, cache, keep).await?;
        diffs.extend(worked_out);
        Ok((diffs, unstored))
    }

    /// The stored diffs of these pairs whose links still hold.
    async fn stored_diffs(&self, pairs: &[Pair]) -> Result<HashMap<Pair, Diff>, LedgerError> {
        let mut diffs = HashMap::new();
        if !pairs.is_empty() {
            let wanted = format!(
                "WITH wanted AS MATERIALIZED ({})",
                listed(self.pool(), 1, &[("previous_id", "bigint"), ("deployment_id", "bigint")])
            );
            let rows: Vec<(i64, i64, String)> = read_rows!(
                self,
                &wanted,
                "dc.previous_id, dc.deployment_id, cd.body",
                "FROM wanted w
                 JOIN deployment_changes dc ON dc.deployment_id = w.deployment_id AND dc.previous_id = w.previous_id
                 JOIN deployments d ON d.id = dc.deployment_id AND d.sources_version = dc.deployment_version
                 JOIN deployments p ON p.id = dc.previous_id AND p.sources_version = dc.previous_version
                 JOIN change_diffs cd ON cd.id = dc.diff_id",
                "",
                |q| q.bind(json_list(pairs))
            );
            // A body this version cannot read is worked out again.
            diffs.extend(rows.into_iter().filter_map(|(previous, deployment, body)| {
                serde_json::from_str(&body).ok().map(|diff| ((previous, deployment), diff))
            }));
        }
        Ok(diffs)
    }

    /// Works out the diffs of these pairs from their source sets (reusing any diff of
    /// the same two sets); what [`Ledger::store`] then stores and links to the pairs.
    /// With [`Keep::Discard`] the links' versions are not read, and the result must not
    /// be stored.
    async fn work_out(
        &self,
        pairs: &[Pair],
        cache: &mut DiffCache,
        keep: Keep,
    ) -> Result<(HashMap<Pair, Diff>, Unstored), LedgerError> {
        let mut ids: Vec<i64> = pairs.iter().flat_map(|(from, to)| [*from, *to]).collect();
        ids.sort_unstable();
        ids.dedup();
        // Versions first: a change to the sources after this read makes the link stale
        // rather than wrong.
        let versions: HashMap<i64, i64> = match keep {
            Keep::Discard => HashMap::new(),
            Keep::Store => {
                let from = format!("FROM deployments WHERE {}", is_listed(self.pool(), "id", 1, "bigint"));
                let rows: Vec<(i64, i64)> =
                    read_rows!(self, "", "id, sources_version", &from, "", |q| q.bind(json_list(&ids)));
                rows.into_iter().collect()
            }
        };
        let sets = self.source_sets_each(&ids).await?;
        let empty = SourceSet::default();
        let digests: Vec<String> = pairs
            .iter()
            .map(|(from, to)| sources_digest(sets.get(from).unwrap_or(&empty), sets.get(to).unwrap_or(&empty)))
            .collect();
        let mut unknown: Vec<&String> = digests.iter().filter(|d| !cache.by_sources.contains_key(*d)).collect();
        unknown.sort_unstable();
        unknown.dedup();
        if !unknown.is_empty() {
            let sql = format!(
                "SELECT id, sources, body FROM change_diffs WHERE {}",
                is_listed(self.pool(), "sources", 1, "text")
            );
            let rows: Vec<(i64, String, String)> =
                on_pool!(self.pool(), |p| sqlx::query_as(&sql).bind(json_list(&unknown)).fetch_all(p).await?);
            for (id, digest, body) in rows {
                if let Ok(diff) = serde_json::from_str(&body) {
                    cache.by_sources.insert(digest, (id, diff));
                }
            }
        }
        // The diffs no one has worked out yet, once per digest.
        let mut fresh: Vec<(&String, &SourceSet, &SourceSet)> = Vec::new();
        let mut seen = HashSet::new();
        for ((from, to), digest) in pairs.iter().zip(&digests) {
            if !cache.by_sources.contains_key(digest) && seen.insert(digest) {
                fresh.push((digest, sets.get(from).unwrap_or(&empty), sets.get(to).unwrap_or(&empty)));
            }
        }
        let sides: Vec<(&SourceSet, &SourceSet)> = fresh.iter().map(|(_, from, to)| (*from, *to)).collect();
        let mut worked_out = Vec::with_capacity(sides.len());
        // A group at a time: each diff holds up to CHANGE_LIMIT commits each way.
        for group in sides.chunks(DIFFS_AT_ONCE) {
            worked_out.extend(self.diffs_between(group).await?);
        }
        let fresh: Vec<(String, Diff, String)> = fresh
            .into_iter()
            .zip(worked_out)
            .map(|((digest, ..), diff)| {
                let body = serde_json::to_string(&diff).map_err(|e| LedgerError::Invalid(e.to_string()))?;
                Ok((digest.clone(), diff, body))
            })
            .collect::<Result<_, LedgerError>>()?;
        let worked_out: HashMap<&String, &Diff> = fresh.iter().map(|(digest, diff, _)| (digest, diff)).collect();
        // Every digest is either known or has just been worked out.
        let diffs = pairs
            .iter()
            .zip(&digests)
            .map(|(pair, digest)| {
                let diff = cache.by_sources.get(digest).map(|(_, diff)| diff).unwrap_or_else(|| worked_out[digest]);
                (*pair, diff.clone())
            })
            .collect();
        let links = pairs.iter().zip(digests).map(|(pair, digest)| (*pair, digest)).collect();
        Ok((diffs, Unstored { versions, fresh, links }))
    }

    /// Stores worked-out diffs and links them to their pairs, in one transaction.
    async fn store(&self, unstored: Unstored, cache: &mut DiffCache) -> Result<(), LedgerError> {
        let Unstored { versions, fresh, links } = unstored;
        if links.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let mut ids = Vec::with_capacity(fresh.len());
            let mut new_ids = HashMap::with_capacity(fresh.len());
            for (digest, _, body) in &fresh {
                let sql = "INSERT INTO change_diffs (sources, body) VALUES ($1, $2)
                           ON CONFLICT (sources) DO UPDATE SET body = excluded.body RETURNING id";
                let id: i64 = sqlx::query_scalar(sql).bind(digest).bind(body).fetch_one(&mut *tx).await?;
                ids.push(id);
                new_ids.insert(digest, id);
            }
            let version = |id: &i64| versions.get(id).copied().unwrap_or_default();
            let diff_id = |digest: &String| {
                cache.by_sources.get(digest).map(|(id, _)| *id).or_else(|| new_ids.get(digest).copied())
            };
            let links: Vec<(i64, i64, i64, i64, i64)> = links
                .iter()
                .filter_map(|((from, to), digest)| Some((*to, *from, diff_id(digest)?, version(to), version(from))))
                .collect();
            for chunk in links.chunks(2000) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO deployment_changes
                         (deployment_id, previous_id, diff_id, deployment_version, previous_version) ",
                );
                insert.push_values(chunk, |mut row, (to, from, diff_id, to_version, from_version)| {
                    row.push_bind(*to)
                        .push_bind(*from)
                        .push_bind(*diff_id)
                        .push_bind(*to_version)
                        .push_bind(*from_version);
                });
                insert.push(
                    " ON CONFLICT (deployment_id, previous_id) DO UPDATE SET diff_id = excluded.diff_id,
                         deployment_version = excluded.deployment_version, previous_version = excluded.previous_version",
                );
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            ids
        });
        for ((digest, diff, _), id) in fresh.into_iter().zip(ids) {
            cache.by_sources.insert(digest, (id, diff));
        }
        Ok(())
    }

    /// For each `(before, after)`: the commits `after` has and `before` lacks, and the
    /// reverse, by feature, pull request and person. What the commits say is read once
    /// for all of them.
    async fn diffs_between(&self, sides: &[(&SourceSet, &SourceSet)]) -> Result<Vec<Diff>, LedgerError> {
        let mut ranges = Vec::with_capacity(sides.len());
        for (before, after) in sides {
            let entered = self.commits_between(before, after).await?;
            let left = self.commits_between(after, before).await?;
            ranges.push((entered, left));
        }
        let mut commits: Vec<(i64, String)> =
            ranges.iter().flat_map(|((entered, _), (left, _))| entered.iter().chain(left)).cloned().collect();
        commits.sort_unstable();
        commits.dedup();
        let said = self.commit_facts(&commits).await?;
        let keys = |commits: &[(i64, String)]| {
            let mut features = BTreeSet::new();
            let mut pull_requests = BTreeSet::new();
            for facts in commits.iter().filter_map(|commit| said.get(commit)) {
                features.extend(facts.features.iter().cloned());
                pull_requests.extend(facts.pull_request.clone());
            }
            (features.into_iter().collect(), pull_requests.into_iter().collect())
        };
        Ok(ranges
            .into_iter()
            .map(|((entered, cut_in), (left, cut_out))| {
                let (features_entered, pull_requests_entered) = keys(&entered);
                let (features_left, pull_requests_left) = keys(&left);
                let people = |person: fn(&CommitFacts) -> &String| {
                    let people: BTreeSet<&String> =
                        entered.iter().filter_map(|commit| said.get(commit)).map(person).collect();
                    people.into_iter().cloned().collect()
                };
                Diff {
                    authors: people(|facts| &facts.author),
                    committers: people(|facts| &facts.committer),
                    features_entered,
                    features_left,
                    pull_requests_entered,
                    pull_requests_left,
                    commits_entered: entered.len(),
                    commits_left: left.len(),
                    truncated: cut_in || cut_out,
                }
            })
            .collect())
    }

    /// What each commit the ledger knows says: its features, its pull request, its
    /// author and committer as `Name <email>`.
    async fn commit_facts(
        &self,
        commits: &[(i64, String)],
    ) -> Result<HashMap<(i64, String), CommitFacts>, LedgerError> {
        let mut said: HashMap<(i64, String), CommitFacts> = HashMap::with_capacity(commits.len());
        if !commits.is_empty() {
            let with = format!(
                "WITH target AS MATERIALIZED ({})",
                listed(self.pool(), 1, &[("repository_id", "bigint"), ("sha", "text")])
            );
            type Row = (i64, String, String, Option<i64>, String, String, String, String, Option<String>);
            // A row per commit and feature: on SQLite one JSON array, not a hand-off each.
            let rows: Vec<Row> = read_rows!(
                self,
                &with,
                "c.repository_id, c.sha, r.name, c.pull_request_number, c.author_name, c.author_email,
                 c.committer_name, c.committer_email, f.key",
                "FROM target t JOIN commits c ON c.repository_id = t.repository_id AND c.sha = t.sha
                 JOIN repositories r ON r.id = c.repository_id
                 LEFT JOIN commit_features cf ON cf.commit_id = c.id LEFT JOIN features f ON f.id = cf.feature_id",
                "",
                |q| q.bind(json_list(commits))
            );
            for (repository_id, sha, repo, number, an, ae, cn, ce, key) in rows {
                let facts = said.entry((repository_id, sha)).or_insert_with(|| CommitFacts {
                    features: Vec::new(),
                    pull_request: number.map(|number| (repo, number)),
                    author: format!("{an} <{ae}>"),
                    committer: format!("{cn} <{ce}>"),
                });
                facts.features.extend(key);
            }
        }
        Ok(said)
    }
}

/// What one commit says, for working out diffs.
struct CommitFacts {
    features: Vec<String>,
    pull_request: Option<(String, i64)>,
    author: String,
    committer: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(branches: &[(i64, &str, i64, &[&str])]) -> SourceSet {
        SourceSet {
            branches: branches
                .iter()
                .map(|(repo, reference, base, extras)| {
                    ((*repo, reference.to_string()), (*base, extras.iter().map(|s| s.to_string()).collect()))
                })
                .collect(),
        }
    }

    #[test]
    fn the_digest_tells_the_sides_and_their_contents_apart() {
        let a = set(&[(1, "refs/heads/main", 10, &[])]);
        let b = set(&[(1, "refs/heads/main", 12, &["abc"])]);
        let digest = sources_digest(&a, &b);
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, sources_digest(&a.clone(), &b.clone()));
        assert_ne!(digest, sources_digest(&b, &a), "direction matters");
        assert_ne!(digest, sources_digest(&a, &set(&[(1, "refs/heads/main", 12, &[])])), "extras matter");
        assert_ne!(digest, sources_digest(&a, &set(&[(2, "refs/heads/main", 12, &["abc"])])), "repository matters");
        // Moving a number from one field to the next must not collide.
        assert_ne!(
            sources_digest(&set(&[(1, "r", 12, &[])]), &SourceSet::default()),
            sources_digest(&set(&[(11, "r", 2, &[])]), &SourceSet::default())
        );
    }
}
