//! Storing what presence by ancestry needs (see [`crate::ancestry`]): each branch's
//! landing numbers, where each image's source commit stands, which sources each
//! deployment left running, each application's current bases and record highs, and the
//! paths manifests commits touched.

use std::collections::{BTreeMap, BTreeSet};

use crate::ancestry::{Landing, SourcePoint, Visit, source_point};

use super::{BeginWrite, Ledger, LedgerError, on_pool};

/// Rows per multi-row statement (three to five parameters each).
pub(crate) const ROWS: usize = 2000;

/// An application's succeeded deployments with the highest base each reached on each
/// branch, oldest first.
pub(crate) const PRESENCE_ROWS: &str = "SELECT d.id, sp.repository_id, sp.ref_name, MAX(sp.base_position)
     FROM deployments d JOIN deployment_sources ds ON ds.deployment_id = d.id
     JOIN source_points sp ON sp.repository_id = ds.repository_id AND sp.sha = ds.sha
     WHERE d.application_id = $1 AND d.phase = 'Succeeded'
     GROUP BY d.id, d.finished_at, d.started_at, d.incarnation, d.history_id, sp.repository_id, sp.ref_name
     ORDER BY COALESCE(d.finished_at, d.started_at), d.incarnation, d.history_id";

/// What [`PRESENCE_ROWS`] and the current deployment make of an application's presence:
/// its record highs `(repository, branch, base, deployment)` in the order they were set,
/// and its current base on each branch it ever ran (`None`: it does not run it now).
pub(crate) type Presence = (Vec<(i64, String, i64, i64)>, Vec<((i64, String), Option<i64>)>);

pub(crate) fn presence_of(rows: Vec<(i64, i64, String, i64)>, current: Option<i64>) -> Presence {
    let mut highest: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut highs = Vec::new();
    let mut now: BTreeMap<(i64, String), Option<i64>> = BTreeMap::new();
    for (deployment_id, repository_id, reference, base) in rows {
        let key = (repository_id, reference);
        now.entry(key.clone()).or_insert(None);
        if Some(deployment_id) == current {
            now.insert(key.clone(), Some(base));
        }
        if highest.get(&key).is_none_or(|high| base > *high) {
            highest.insert(key.clone(), base);
            highs.push((key.0, key.1, base, deployment_id));
        }
    }
    (highs, now.into_iter().collect())
}

/// Recomputes an application's current bases and record highs inside the write
/// transaction `$tx`, so that they change together with the deployments they come from.
macro_rules! refresh_presence {
    ($tx:ident, $application_id:expr) => {{
        let application_id: i64 = $application_id;
        let rows = sqlx::query_as($crate::ledger::ancestry::PRESENCE_ROWS)
            .bind(application_id)
            .fetch_all(&mut *$tx)
            .await?;
        let current: Option<Option<i64>> =
            sqlx::query_scalar("SELECT current_deployment_id FROM applications WHERE id = $1")
                .bind(application_id)
                .fetch_optional(&mut *$tx)
                .await?;
        let (highs, now) = $crate::ledger::ancestry::presence_of(rows, current.flatten());
        for table in ["application_highs", "application_sources"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE application_id = $1"))
                .bind(application_id)
                .execute(&mut *$tx)
                .await?;
        }
        for chunk in highs.chunks($crate::ledger::ancestry::ROWS) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO application_highs (application_id, repository_id, ref_name, base_position, deployment_id) ",
            );
            insert.push_values(chunk, |mut row, (repository_id, reference, base, deployment_id)| {
                row.push_bind(application_id)
                    .push_bind(*repository_id)
                    .push_bind(reference.clone())
                    .push_bind(*base)
                    .push_bind(*deployment_id);
            });
            insert.build().execute(&mut *$tx).await?;
        }
        for chunk in now.chunks($crate::ledger::ancestry::ROWS) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO application_sources (application_id, repository_id, ref_name, current_base) ",
            );
            insert.push_values(chunk, |mut row, ((repository_id, reference), base)| {
                row.push_bind(application_id).push_bind(*repository_id).push_bind(reference.clone()).push_bind(*base);
            });
            insert.build().execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use refresh_presence;

impl Ledger {
    /// The highest landing number on a branch; 0 before the first sync.
    pub async fn last_landing(&self, repository: &str, reference: &str) -> Result<i64, LedgerError> {
        let sql = "SELECT COALESCE(MAX(cl.position), 0) FROM commit_landings cl
                   JOIN repositories r ON r.id = cl.repository_id WHERE r.name = $1 AND cl.ref_name = $2";
        let last: i64 =
            on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(repository).bind(reference).fetch_one(p).await?);
        Ok(last)
    }

    /// Stores a branch's new landings; `replace` numbers the branch afresh (after a
    /// force-push), which also forgets where sources stood on it.
    pub async fn record_landings(
        &self,
        repository: &str,
        reference: &str,
        replace: bool,
        landings: &[Landing],
    ) -> Result<(), LedgerError> {
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let repository_id: i64 = sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(repository)
                .fetch_one(&mut *tx)
                .await?;
            if replace {
                // Landing numbers change meaning: every diff worked out from them goes
                // (their links with them), and the sources placed on them move.
                sqlx::query("DELETE FROM change_diffs").execute(&mut *tx).await?;
                sqlx::query(
                    "UPDATE deployments SET sources_version = sources_version + 1
                     WHERE id IN (SELECT deployment_id FROM deployment_sources WHERE repository_id = $1)",
                )
                .bind(repository_id)
                .execute(&mut *tx)
                .await?;
                for table in ["commit_landings", "source_point_extras", "source_points"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE repository_id = $1 AND ref_name = $2"))
                        .bind(repository_id)
                        .bind(reference)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for chunk in landings.chunks(ROWS) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO commit_landings (repository_id, ref_name, sha, position, on_chain) ",
                );
                insert.push_values(chunk, |mut row, (sha, position, on_chain)| {
                    row.push_bind(repository_id)
                        .push_bind(reference.to_string())
                        .push_bind(sha.clone())
                        .push_bind(*position)
                        .push_bind(*on_chain);
                });
                insert.push(
                    " ON CONFLICT (repository_id, ref_name, sha) DO UPDATE SET
                         position = excluded.position, on_chain = excluded.on_chain",
                );
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores the files each manifests commit touched.
    pub async fn record_commit_paths(
        &self,
        repository: &str,
        commits: &[(String, Vec<String>)],
    ) -> Result<(), LedgerError> {
        let rows: Vec<(&str, &str)> = commits
            .iter()
            .flat_map(|(sha, paths)| paths.iter().map(move |path| (sha.as_str(), path.as_str())))
            .collect();
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            let repository_id: i64 = sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(repository)
                .fetch_one(&mut *tx)
                .await?;
            for chunk in rows.chunks(ROWS) {
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO commit_paths (repository_id, sha, path) ");
                insert.push_values(chunk, |mut row, (sha, path)| {
                    row.push_bind(repository_id).push_bind(sha.to_string()).push_bind(path.to_string());
                });
                insert.push(" ON CONFLICT DO NOTHING");
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Places the repository's build commits on its branches: those not placed yet (new
    /// builds, renumbered branches, commits that only just arrived) and those that
    /// carried commits of their own, which a merge may since have landed.
    pub async fn refresh_source_points(&self, repository: &str) -> Result<(), LedgerError> {
        let sql = "SELECT DISTINCT r.id, rr.ref_name, b.commit_sha FROM builds b
                   JOIN repositories r ON r.id = b.repository_id
                   JOIN repository_refs rr ON rr.repository_id = r.id
                   WHERE r.name = $1 AND (
                       NOT EXISTS (SELECT 1 FROM source_points sp WHERE sp.repository_id = r.id
                                   AND sp.sha = b.commit_sha AND sp.ref_name = rr.ref_name)
                       OR EXISTS (SELECT 1 FROM source_point_extras x WHERE x.repository_id = r.id
                                  AND x.sha = b.commit_sha AND x.ref_name = rr.ref_name))";
        let stale: Vec<(i64, String, String)> =
            on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(repository).fetch_all(p).await?);
        let mut placed = Vec::new();
        for (repository_id, reference, sha) in stale {
            self.place_source(repository_id, &reference, &sha).await?;
            placed.push((repository_id, sha));
        }
        self.refresh_applications_running(&placed).await
    }

    /// Recomputes presence for every application that ever ran one of these sources.
    async fn refresh_applications_running(&self, sources: &[(i64, String)]) -> Result<(), LedgerError> {
        let mut applications = BTreeSet::new();
        for (repository_id, sha) in sources {
            let ids: Vec<i64> = on_pool!(self.pool(), |p| {
                sqlx::query_scalar(
                    "SELECT DISTINCT d.application_id FROM deployment_sources ds
                     JOIN deployments d ON d.id = ds.deployment_id WHERE ds.repository_id = $1 AND ds.sha = $2",
                )
                .bind(repository_id)
                .bind(sha)
                .fetch_all(p)
                .await?
            });
            applications.extend(ids);
        }
        for application_id in applications {
            self.refresh_application_presence(application_id).await?;
        }
        Ok(())
    }

    /// Recomputes one application's current bases and record highs from its succeeded
    /// deployments (see the `application_presence` migration).
    pub(crate) async fn refresh_application_presence(&self, application_id: i64) -> Result<(), LedgerError> {
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            refresh_presence!(tx, application_id);
            tx.commit().await?;
            Ok::<_, LedgerError>(())
        })
    }

    /// Places one build commit on every branch of its repository.
    pub(crate) async fn place_build_commit(&self, repository_id: i64, sha: &str) -> Result<(), LedgerError> {
        let sql = "SELECT ref_name FROM repository_refs WHERE repository_id = $1";
        let references: Vec<String> =
            on_pool!(self.pool(), |p| sqlx::query_scalar(sql).bind(repository_id).fetch_all(p).await?);
        for reference in references {
            self.place_source(repository_id, &reference, sha).await?;
        }
        self.refresh_applications_running(&[(repository_id, sha.to_string())]).await
    }

    async fn place_source(&self, repository_id: i64, reference: &str, sha: &str) -> Result<(), LedgerError> {
        let point: Option<SourcePoint> = on_pool!(self.pool(), |p| {
            let lookup = |current: String| {
                let p = p.clone();
                let reference = reference.to_string();
                async move {
                    let found: Option<(i64, Option<i64>, Option<bool>)> = sqlx::query_as(
                        "SELECT c.id, cl.position, cl.on_chain FROM commits c
                         LEFT JOIN commit_landings cl ON cl.repository_id = c.repository_id
                              AND cl.ref_name = $3 AND cl.sha = c.sha
                         WHERE c.repository_id = $1 AND c.sha = $2",
                    )
                    .bind(repository_id)
                    .bind(&current)
                    .bind(&reference)
                    .fetch_optional(&p)
                    .await?;
                    let Some((id, position, on_chain)) = found else {
                        return Ok::<_, LedgerError>(Visit { landing: None, parents: None });
                    };
                    let parents: Vec<String> = sqlx::query_scalar(
                        "SELECT parent_sha FROM commit_parents WHERE commit_id = $1 ORDER BY position",
                    )
                    .bind(id)
                    .fetch_all(&p)
                    .await?;
                    Ok(Visit { landing: position.zip(on_chain), parents: Some(parents) })
                }
            };
            source_point(sha, lookup).await?
        });
        let Some(point) = point else { return Ok(()) };
        on_pool!(self.pool(), |p| {
            let mut tx = p.begin_write().await?;
            for table in ["source_point_extras", "source_points"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE repository_id = $1 AND sha = $2 AND ref_name = $3"))
                    .bind(repository_id)
                    .bind(sha)
                    .bind(reference)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "UPDATE deployments SET sources_version = sources_version + 1
                 WHERE id IN (SELECT deployment_id FROM deployment_sources WHERE repository_id = $1 AND sha = $2)",
            )
            .bind(repository_id)
            .bind(sha)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO source_points (repository_id, sha, ref_name, base_position) VALUES ($1, $2, $3, $4)",
            )
            .bind(repository_id)
            .bind(sha)
            .bind(reference)
            .bind(point.base)
            .execute(&mut *tx)
            .await?;
            for chunk in point.extras.chunks(ROWS) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO source_point_extras (repository_id, sha, ref_name, extra_sha) ",
                );
                insert.push_values(chunk, |mut row, extra| {
                    row.push_bind(repository_id)
                        .push_bind(sha.to_string())
                        .push_bind(reference.to_string())
                        .push_bind(extra.clone());
                });
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
