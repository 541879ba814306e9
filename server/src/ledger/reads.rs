//! Reading the ledger for pages and the API.

use landfall_app::api::{
    ApplicationSummary, DeploymentSummary, EnvironmentSummary, FeatureSummary, LedgerCounts, Overview, SearchResults,
};

use super::{Ledger, LedgerError, on_pool};

/// How many deployments the Overview lists.
const OVERVIEW_DEPLOYMENTS: i64 = 10;
/// Upper bound of a list page until lists are paginated.
const LIST_LIMIT: i64 = 500;
/// Upper bound per kind of search result.
const SEARCH_LIMIT: i64 = 50;

type DeploymentRow = (String, Option<String>, i64, String, String, Option<String>, i64, Option<i64>);
type ApplicationRow = (String, String, String, String, Option<String>, Option<String>, Option<String>);

const APPLICATIONS_SQL: &str =
    "SELECT a.instance, a.namespace, a.name, a.project, e.name, a.sync_status, a.health_status
     FROM applications a LEFT JOIN environments e ON e.id = a.environment_id
     WHERE a.deleted_at IS NULL";

fn application(
    (instance, namespace, name, project, environment, sync_status, health_status): ApplicationRow,
) -> ApplicationSummary {
    ApplicationSummary { instance, namespace, name, project, environment, sync_status, health_status }
}

impl Ledger {
    pub async fn counts(&self) -> Result<LedgerCounts, LedgerError> {
        let sql = format!(
            "SELECT
                (SELECT COUNT(*) FROM environments),
                (SELECT COUNT(*) FROM applications WHERE deleted_at IS NULL),
                (SELECT COUNT(*) FROM deployments),
                (SELECT COUNT(*) FROM commits),
                (SELECT COUNT(*) FROM pull_requests),
                (SELECT COUNT(*) FROM features f WHERE TRUE{}),
                (SELECT COUNT(*) FROM pipeline_runs)",
            self.listed_features()
        );
        let row: (i64, i64, i64, i64, i64, i64, i64) =
            on_pool!(self.pool(), |p| sqlx::query_as(&sql).fetch_one(p).await?);
        let (environments, applications, deployments, commits, pull_requests, features, pipeline_runs) = row;
        Ok(LedgerCounts { environments, applications, deployments, commits, pull_requests, features, pipeline_runs })
    }

    pub async fn overview(&self) -> Result<Overview, LedgerError> {
        Ok(Overview {
            counts: self.counts().await?,
            environments: self.environments().await?,
            recent_deployments: self.recent_deployments(OVERVIEW_DEPLOYMENTS).await?,
        })
    }

    /// Environments in promotion order with their application count and latest deployment.
    pub async fn environments(&self) -> Result<Vec<EnvironmentSummary>, LedgerError> {
        let sql = "SELECT e.name, e.rank, COUNT(DISTINCT a.id), MAX(d.finished_at)
                   FROM environments e
                   LEFT JOIN applications a ON a.environment_id = e.id AND a.deleted_at IS NULL
                   LEFT JOIN deployments d ON d.application_id = a.id
                   GROUP BY e.id, e.name, e.rank
                   ORDER BY e.rank, e.name";
        let rows: Vec<(String, i64, i64, Option<i64>)> =
            on_pool!(self.pool(), |p| sqlx::query_as(sql).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|(name, rank, applications, last_deployed_at)| EnvironmentSummary {
                name,
                rank,
                applications,
                last_deployed_at,
            })
            .collect())
    }

    pub async fn applications(&self) -> Result<Vec<ApplicationSummary>, LedgerError> {
        let sql = format!("{APPLICATIONS_SQL} ORDER BY a.name, a.namespace, a.instance LIMIT {LIST_LIMIT}");
        let rows: Vec<ApplicationRow> = on_pool!(self.pool(), |p| sqlx::query_as(&sql).fetch_all(p).await?);
        Ok(rows.into_iter().map(application).collect())
    }

    /// The newest deployments across every application.
    pub async fn recent_deployments(&self, limit: i64) -> Result<Vec<DeploymentSummary>, LedgerError> {
        let sql =
            "SELECT a.name, e.name, d.history_id, d.revision, d.phase, d.initiated_by, d.started_at, d.finished_at
                   FROM deployments d
                   JOIN applications a ON a.id = d.application_id
                   LEFT JOIN environments e ON e.id = a.environment_id
                   ORDER BY COALESCE(d.finished_at, d.started_at) DESC, d.id DESC
                   LIMIT $1";
        let limit = limit.clamp(1, LIST_LIMIT);
        let rows: Vec<DeploymentRow> = on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(limit).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|(application, environment, history_id, revision, phase, initiated_by, started_at, finished_at)| {
                DeploymentSummary {
                    application,
                    environment,
                    history_id,
                    revision,
                    phase,
                    initiated_by,
                    started_at,
                    finished_at,
                }
            })
            .collect())
    }

    pub async fn features(&self) -> Result<Vec<FeatureSummary>, LedgerError> {
        self.find_features(None).await
    }

    /// Features by key or summary and applications by name, case-insensitively.
    pub async fn search(&self, query: &str) -> Result<SearchResults, LedgerError> {
        let pattern = format!("%{}%", escape_like(&query.to_lowercase()));
        let sql =
            format!("{APPLICATIONS_SQL} AND LOWER(a.name) LIKE $1 ESCAPE '\\' ORDER BY a.name LIMIT {SEARCH_LIMIT}");
        let rows: Vec<ApplicationRow> =
            on_pool!(self.pool(), |p| sqlx::query_as(&sql).bind(&pattern).fetch_all(p).await?);
        Ok(SearchResults {
            features: self.find_features(Some(&pattern)).await?,
            applications: rows.into_iter().map(application).collect(),
            answer: None,
        })
    }

    async fn find_features(&self, pattern: Option<&str>) -> Result<Vec<FeatureSummary>, LedgerError> {
        let matching = if pattern.is_some() {
            " AND (LOWER(f.key) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(f.summary, '')) LIKE $1 ESCAPE '\\')"
        } else {
            ""
        };
        let filter = format!("WHERE TRUE{}{matching}", self.listed_features());
        let limit = if pattern.is_some() { SEARCH_LIMIT } else { LIST_LIMIT };
        let sql = format!(
            "SELECT f.key, f.summary, f.status, COUNT(cf.commit_id)
             FROM features f LEFT JOIN commit_features cf ON cf.feature_id = f.id
             {filter}
             GROUP BY f.id, f.key, f.summary, f.status
             ORDER BY f.key
             LIMIT {limit}"
        );
        let rows: Vec<(String, Option<String>, Option<String>, i64)> = on_pool!(self.pool(), |p| {
            let query = sqlx::query_as(&sql);
            let query = match pattern {
                Some(pattern) => query.bind(pattern),
                None => query,
            };
            query.fetch_all(p).await?
        });
        Ok(rows
            .into_iter()
            .map(|(key, summary, status, commits)| FeatureSummary { key, summary, status, commits })
            .collect())
    }
}

/// Makes `%`, `_` and `\` in user text match themselves in a `LIKE … ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::escape_like(r"50%_off\"), r"50\%\_off\\");
    }
}
