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

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::presence::{ChangeSet, SourceSet, id_list, values_list};
use super::{BeginWrite, Ledger, LedgerError, on_pool};

/// Applications per batch when filling in missing change sets.
const FILL_APPLICATIONS: usize = 100;

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
        let images = self.changed_images(pairs, &ids).await?;
        let mut wanted: Vec<Pair> = pairs.iter().filter_map(|(from, to)| from.map(|from| (from, *to))).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let diffs = self.diffs(&wanted, cache).await?;
        let mut features: Vec<String> =
            diffs.values().flat_map(|d| d.features_entered.iter().chain(&d.features_left)).cloned().collect();
        features.sort_unstable();
        features.dedup();
        let mut pull_requests: Vec<(String, i64)> =
            diffs.values().flat_map(|d| d.pull_requests_entered.iter().chain(&d.pull_requests_left)).cloned().collect();
        pull_requests.sort_unstable();
        pull_requests.dedup();
        let names = self.names(&features, &pull_requests).await?;
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

    /// Works out and stores the change set of a deployment just recorded, so that
    /// reading it later is a lookup.
    pub(crate) async fn remember_change(&self, previous: i64, deployment: i64) -> Result<(), LedgerError> {
        self.diffs(&[(previous, deployment)], &mut DiffCache::default()).await.map(drop)
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
                     FROM deployments WHERE phase = 'Succeeded' AND application_id IN ({})) d
                 WHERE d.previous_id IS NOT NULL AND NOT EXISTS (
                     SELECT 1 FROM deployment_changes dc JOIN deployments p ON p.id = dc.previous_id
                     WHERE dc.deployment_id = d.id AND dc.previous_id = d.previous_id
                       AND dc.deployment_version = d.sources_version AND dc.previous_version = p.sources_version)",
                id_list(1, batch.len())
            );
            let missing: Vec<Pair> = on_pool!(self.pool(), |p| {
                let mut query = sqlx::query_as(&sql);
                for id in batch {
                    query = query.bind(*id);
                }
                query.fetch_all(p).await?
            });
            for chunk in missing.chunks(2000) {
                self.work_out(chunk, &mut cache).await?;
                filled += chunk.len();
            }
        }
        Ok(filled)
    }

    /// The diffs of these pairs: stored ones read, the others worked out and stored.
    async fn diffs(&self, pairs: &[Pair], cache: &mut DiffCache) -> Result<HashMap<Pair, Diff>, LedgerError> {
        let mut diffs = self.stored_diffs(pairs).await?;
        let missing: Vec<Pair> = pairs.iter().filter(|pair| !diffs.contains_key(pair)).copied().collect();
        if !missing.is_empty() {
            diffs.extend(self.work_out(&missing, cache).await?);
        }
        Ok(diffs)
    }

    /// The stored diffs of these pairs whose links still hold.
    async fn stored_diffs(&self, pairs: &[Pair]) -> Result<HashMap<Pair, Diff>, LedgerError> {
        let mut diffs = HashMap::new();
        for chunk in pairs.chunks(400) {
            let sql = format!(
                "WITH wanted (previous_id, deployment_id) AS (VALUES {})
                 SELECT dc.previous_id, dc.deployment_id, cd.body FROM wanted w
                 JOIN deployment_changes dc ON dc.deployment_id = w.deployment_id AND dc.previous_id = w.previous_id
                 JOIN deployments d ON d.id = dc.deployment_id AND d.sources_version = dc.deployment_version
                 JOIN deployments p ON p.id = dc.previous_id AND p.sources_version = dc.previous_version
                 JOIN change_diffs cd ON cd.id = dc.diff_id",
                values_list(1, chunk.len())
            );
            let rows: Vec<(i64, i64, String)> = on_pool!(self.pool(), |p| {
                let mut query = sqlx::query_as(&sql);
                for (previous, deployment) in chunk {
                    query = query.bind(*previous).bind(*deployment);
                }
                query.fetch_all(p).await?
            });
            // A body this version cannot read is worked out again.
            diffs.extend(rows.into_iter().filter_map(|(previous, deployment, body)| {
                serde_json::from_str(&body).ok().map(|diff| ((previous, deployment), diff))
            }));
        }
        Ok(diffs)
    }

    /// Works out the diffs of these pairs from their source sets (reusing any diff of
    /// the same two sets), stores them and links them to the pairs.
    async fn work_out(&self, pairs: &[Pair], cache: &mut DiffCache) -> Result<HashMap<Pair, Diff>, LedgerError> {
        let mut ids: Vec<i64> = pairs.iter().flat_map(|(from, to)| [*from, *to]).collect();
        ids.sort_unstable();
        ids.dedup();
        // Versions first: a change to the sources after this read makes the link stale
        // rather than wrong.
        let mut versions: HashMap<i64, i64> = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!("SELECT id, sources_version FROM deployments WHERE id IN ({})", id_list(1, chunk.len()));
            let rows: Vec<(i64, i64)> = on_pool!(self.pool(), |p| {
                let mut query = sqlx::query_as(&sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(p).await?
            });
            versions.extend(rows);
        }
        let sets = self.source_sets_each(&ids).await?;
        let empty = SourceSet::default();
        let digests: Vec<String> = pairs
            .iter()
            .map(|(from, to)| sources_digest(sets.get(from).unwrap_or(&empty), sets.get(to).unwrap_or(&empty)))
            .collect();
        let mut unknown: Vec<&String> = digests.iter().filter(|d| !cache.by_sources.contains_key(*d)).collect();
        unknown.sort_unstable();
        unknown.dedup();
        for chunk in unknown.chunks(500) {
            let sql =
                format!("SELECT id, sources, body FROM change_diffs WHERE sources IN ({})", id_list(1, chunk.len()));
            let rows: Vec<(i64, String, String)> = on_pool!(self.pool(), |p| {
                let mut query = sqlx::query_as(&sql);
                for digest in chunk {
                    query = query.bind(digest.as_str());
                }
                query.fetch_all(p).await?
            });
            for (id, digest, body) in rows {
                if let Ok(diff) = serde_json::from_str(&body) {
                    cache.by_sources.insert(digest, (id, diff));
                }
            }
        }
        let mut links = Vec::with_capacity(pairs.len());
        let mut diffs = HashMap::with_capacity(pairs.len());
        for ((from, to), digest) in pairs.iter().zip(digests) {
            if !cache.by_sources.contains_key(&digest) {
                let diff = self.diff(sets.get(from).unwrap_or(&empty), sets.get(to).unwrap_or(&empty)).await?;
                let body = serde_json::to_string(&diff).map_err(|e| LedgerError::Invalid(e.to_string()))?;
                let sql = "INSERT INTO change_diffs (sources, body) VALUES ($1, $2)
                           ON CONFLICT (sources) DO UPDATE SET body = excluded.body RETURNING id";
                let id: i64 = on_pool!(self.pool(), |p| {
                    sqlx::query_scalar(sql).bind(&digest).bind(&body).fetch_one(p).await?
                });
                cache.by_sources.insert(digest.clone(), (id, diff));
            }
            let (diff_id, diff) = &cache.by_sources[&digest];
            let version = |id: &i64| versions.get(id).copied().unwrap_or_default();
            links.push((*to, *from, *diff_id, version(to), version(from)));
            diffs.insert((*from, *to), diff.clone());
        }
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
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
            Ok::<_, LedgerError>(())
        })?;
        Ok(diffs)
    }

    /// The commits `after` has and `before` lacks, and the reverse, by feature, pull
    /// request and person.
    async fn diff(&self, before: &SourceSet, after: &SourceSet) -> Result<Diff, LedgerError> {
        let (entered, cut_in) = self.commits_between(before, after).await?;
        let (left, cut_out) = self.commits_between(after, before).await?;
        let (features_entered, pull_requests_entered) = self.feature_and_pull_request_keys(&entered).await?;
        let (features_left, pull_requests_left) = self.feature_and_pull_request_keys(&left).await?;
        let (authors, committers) = self.people(&entered).await?;
        Ok(Diff {
            authors,
            committers,
            features_entered,
            features_left,
            pull_requests_entered,
            pull_requests_left,
            commits_entered: entered.len(),
            commits_left: left.len(),
            truncated: cut_in || cut_out,
        })
    }
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
