//! The cards the REST API answers with: a pull request, a commit, a feature, each with
//! what the ledger links to it and where it runs, decided by ancestry.

use serde::Serialize;
use utoipa::ToSchema;

use super::jira::{JIRA_COLUMNS, JiraRow};
use super::presence::{ApplicationPresence, EnvironmentPresence, Target, by_environment};
use super::{Ledger, LedgerError, on_pool, read_rows};
use crate::timefmt::format_rfc3339;

/// Someone and when, as Git records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Signature {
    pub name: String,
    pub email: String,
    /// RFC 3339, UTC.
    pub at: String,
    /// The signer's UTC offset, in minutes.
    pub offset_minutes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CommitSummary {
    pub repo: String,
    pub sha: String,
    pub subject: String,
    pub author: Signature,
    pub committer: Signature,
    /// False once a force-push left the commit unreachable from the ingested branches.
    pub reachable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FeatureRef {
    pub key: String,
    pub summary: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PullRequestRef {
    pub repo: String,
    pub number: i64,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PipelineSummary {
    pub ci_system: String,
    pub run_id: String,
    pub name: String,
    pub url: Option<String>,
    pub status: String,
    pub commit_sha: Option<String>,
    pub pull_request: Option<i64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImageBuild {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub commit_sha: String,
    pub branch: Option<String>,
    pub pull_request: Option<i64>,
    pub built_at: String,
    pub ci_system: Option<String>,
    pub run_id: Option<String>,
    pub run_url: Option<String>,
}

/// `GET /api/v1/pull-requests/{repo}/{number}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PullRequestCard {
    pub repo: String,
    pub number: i64,
    pub title: Option<String>,
    pub author: Option<String>,
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub features: Vec<FeatureRef>,
    /// The commits that name this pull request (its merge or squash commit).
    pub commits: Vec<CommitSummary>,
    /// Runs triggered by the pull request or by one of its commits.
    pub pipelines: Vec<PipelineSummary>,
    /// Images built from the pull request's branch or from its merge commit.
    pub images: Vec<ImageBuild>,
    /// Per environment: when its merge first ran there, and whether it runs now.
    pub environments: Vec<EnvironmentPresence>,
}

/// `GET /api/v1/commits/{repo}/{sha}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CommitCard {
    #[serde(flatten)]
    pub commit: CommitSummary,
    pub message: String,
    pub parents: Vec<String>,
    pub pull_request: Option<PullRequestRef>,
    pub features: Vec<FeatureRef>,
    pub pipelines: Vec<PipelineSummary>,
    pub images: Vec<ImageBuild>,
    /// The applications that run the commit now.
    pub deployed_now: Vec<ApplicationPresence>,
}

/// A Kubernetes object an application manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ResourceRef {
    pub application: String,
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: Option<String>,
}

/// `GET /api/v1/features/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FeatureCard {
    pub key: String,
    pub summary: Option<String>,
    pub status: Option<String>,
    pub issue_type: Option<String>,
    pub assignee: Option<String>,
    pub url: Option<String>,
    /// What else Jira says of it (status category, priority, people, versions, parent)
    /// and whether Jira knows it at all.
    #[serde(flatten)]
    pub jira: super::jira::JiraDetails,
    pub commits: Vec<CommitSummary>,
    pub pull_requests: Vec<PullRequestRef>,
    /// Everyone who committed a change for the feature.
    pub committers: Vec<String>,
    pub images: Vec<ImageBuild>,
    pub pipelines: Vec<PipelineSummary>,
    /// Per environment: first deployed at, present now, and the applications.
    pub environments: Vec<EnvironmentPresence>,
    /// The services whose applications deployed it.
    pub services: Vec<String>,
    /// The Kubernetes objects of the applications that deployed it.
    pub resources: Vec<ResourceRef>,
}

/// What a lookup by a partial commit id found.
pub enum ShaMatch {
    None,
    One(Box<CommitCard>),
    Ambiguous,
}

type CommitRow = (String, String, String, String, i64, i64, String, String, i64, i64, String, bool, Option<i64>);
type PipelineRow =
    (String, String, String, Option<String>, String, Option<String>, Option<i64>, Option<i64>, Option<i64>);
type BuildRow =
    (String, String, String, String, Option<String>, Option<i64>, i64, Option<String>, Option<String>, Option<String>);

const COMMIT_COLUMNS: &str = "r.name, c.sha, c.author_name, c.author_email, c.authored_at, c.author_offset_minutes,
     c.committer_name, c.committer_email, c.committed_at, c.committer_offset_minutes, c.message, c.reachable,
     c.pull_request_number";
const PIPELINE_COLUMNS: &str = "p.ci_system, p.run_id, p.name, p.url, p.status, p.commit_sha, p.pull_request_number,
     p.started_at, p.finished_at";
const BUILD_COLUMNS: &str = "i.repository, i.tag, b.digest, b.commit_sha, b.branch, b.pull_request_number, b.built_at,
     b.ci_system, b.run_id, b.run_url";

fn commit(row: CommitRow) -> (CommitSummary, String, Option<i64>) {
    let (repo, sha, an, ae, at, ao, cn, ce, ct, co, message, reachable, pull_request) = row;
    let subject = message.lines().next().unwrap_or_default().to_string();
    let summary = CommitSummary {
        repo,
        sha,
        subject,
        author: Signature { name: an, email: ae, at: format_rfc3339(at), offset_minutes: ao },
        committer: Signature { name: cn, email: ce, at: format_rfc3339(ct), offset_minutes: co },
        reachable,
    };
    (summary, message, pull_request)
}

fn pipeline(row: PipelineRow) -> PipelineSummary {
    let (ci_system, run_id, name, url, status, commit_sha, pull_request, started_at, finished_at) = row;
    PipelineSummary {
        ci_system,
        run_id,
        name,
        url,
        status,
        commit_sha,
        pull_request,
        started_at: started_at.map(format_rfc3339),
        finished_at: finished_at.map(format_rfc3339),
    }
}

fn build(row: BuildRow) -> ImageBuild {
    let (repository, tag, digest, commit_sha, branch, pull_request, built_at, ci_system, run_id, run_url) = row;
    ImageBuild {
        repository,
        tag,
        digest,
        commit_sha,
        branch,
        pull_request,
        built_at: format_rfc3339(built_at),
        ci_system,
        run_id,
        run_url,
    }
}

/// The range of commit ids that start with a lowercase hexadecimal prefix: from the
/// prefix itself to the prefix followed by `g`, which sorts after every hexadecimal digit
/// (bytewise and in the usual collations alike). A range, unlike `LIKE 'prefix%'`, is
/// answered from the `sha` indexes on both back ends, and SQLite need not prepare the
/// statement again for each new pattern.
pub(crate) fn prefix_range(prefix: &str) -> (String, String) {
    let low = prefix.to_ascii_lowercase();
    let high = format!("{low}g");
    (low, high)
}

fn feature((key, summary, status): (String, Option<String>, Option<String>)) -> FeatureRef {
    FeatureRef { key, summary, status }
}

impl Ledger {
    /// A pull request by repository and number; `None` when neither the forge nor any
    /// commit has named it.
    pub async fn pull_request_card(&self, repo: &str, number: i64) -> Result<Option<PullRequestCard>, LedgerError> {
        type Header = (Option<String>, Option<String>, Option<i64>, Option<String>);
        let header: Option<Header> = on_pool!(self.pool(), |p| {
            sqlx::query_as(
                "SELECT pr.title, pr.author, pr.merged_at, pr.merge_commit_sha FROM pull_requests pr
                 JOIN repositories r ON r.id = pr.repository_id WHERE r.name = $1 AND pr.number = $2",
            )
            .bind(repo)
            .bind(number)
            .fetch_optional(p)
            .await?
        });
        let commit_sql = format!(
            "SELECT {COMMIT_COLUMNS} FROM commits c JOIN repositories r ON r.id = c.repository_id
             WHERE r.name = $1 AND c.pull_request_number = $2 ORDER BY c.committed_at, c.sha"
        );
        let commit_rows: Vec<CommitRow> =
            on_pool!(self.pool(), |p| sqlx::query_as(&commit_sql).bind(repo).bind(number).fetch_all(p).await?);
        if header.is_none() && commit_rows.is_empty() {
            return Ok(None);
        }
        let pr_commits = "SELECT c.sha FROM commits c JOIN repositories r ON r.id = c.repository_id
                          WHERE r.name = $1 AND c.pull_request_number = $2";
        let feature_sql = format!(
            "SELECT f.key, f.summary, f.status FROM features f WHERE f.id IN (
                 SELECT prf.feature_id FROM pull_request_features prf
                 JOIN pull_requests pr ON pr.id = prf.pull_request_id JOIN repositories r ON r.id = pr.repository_id
                 WHERE r.name = $1 AND pr.number = $2
                 UNION
                 SELECT cf.feature_id FROM commit_features cf JOIN commits c ON c.id = cf.commit_id
                 JOIN repositories r ON r.id = c.repository_id WHERE r.name = $1 AND c.pull_request_number = $2)
                 {} ORDER BY f.key",
            self.listed_features()
        );
        let pipeline_sql = format!(
            "SELECT {PIPELINE_COLUMNS} FROM pipeline_runs p WHERE p.id IN (
                 SELECT p2.id FROM pipeline_runs p2 JOIN repositories r ON r.id = p2.repository_id
                 WHERE r.name = $1 AND p2.pull_request_number = $2
                 UNION SELECT p3.id FROM pipeline_runs p3 WHERE p3.commit_sha IN ({pr_commits}))
             ORDER BY p.started_at, p.ci_system, p.run_id"
        );
        let build_sql = format!(
            "SELECT {BUILD_COLUMNS} FROM builds b JOIN images i ON i.id = b.image_id WHERE b.id IN (
                 SELECT b2.id FROM builds b2 JOIN repositories r ON r.id = b2.repository_id
                 WHERE r.name = $1 AND b2.pull_request_number = $2
                 UNION SELECT b3.id FROM builds b3 WHERE b3.commit_sha IN ({pr_commits}))
             ORDER BY b.built_at, b.digest"
        );
        let (features, pipelines, images) = on_pool!(self.pool(), |p| {
            let features: Vec<(String, Option<String>, Option<String>)> =
                sqlx::query_as(&feature_sql).bind(repo).bind(number).fetch_all(p).await?;
            let pipelines: Vec<PipelineRow> =
                sqlx::query_as(&pipeline_sql).bind(repo).bind(number).fetch_all(p).await?;
            let images: Vec<BuildRow> = sqlx::query_as(&build_sql).bind(repo).bind(number).fetch_all(p).await?;
            (features, pipelines, images)
        });
        let (title, author, merged_at, merge_commit_sha) = header.unwrap_or_default();
        Ok(Some(PullRequestCard {
            repo: repo.to_string(),
            number,
            title,
            author,
            merged_at: merged_at.map(format_rfc3339),
            merge_commit_sha,
            features: features.into_iter().map(feature).collect(),
            commits: commit_rows.into_iter().map(|row| commit(row).0).collect(),
            pipelines: pipelines.into_iter().map(pipeline).collect(),
            images: images.into_iter().map(build).collect(),
            environments: self.presence_by_environment(&Target::PullRequest { repo: repo.to_string(), number }).await?,
        }))
    }

    /// A commit by full id or unique prefix.
    pub async fn commit_card(&self, repo: &str, sha_prefix: &str) -> Result<ShaMatch, LedgerError> {
        let sql = format!(
            "SELECT {COMMIT_COLUMNS} FROM commits c JOIN repositories r ON r.id = c.repository_id
             WHERE r.name = $1 AND c.sha >= $2 AND c.sha < $3 AND substr(c.sha, 1, length($2)) = $2
             ORDER BY c.sha LIMIT 2"
        );
        let (low, high) = prefix_range(sha_prefix);
        let mut rows: Vec<CommitRow> =
            on_pool!(self.pool(), |p| sqlx::query_as(&sql).bind(repo).bind(&low).bind(&high).fetch_all(p).await?);
        let row = match rows.len() {
            0 => return Ok(ShaMatch::None),
            1 => rows.remove(0),
            _ => return Ok(ShaMatch::Ambiguous),
        };
        let (summary, message, pull_request_number) = commit(row);
        let sha = summary.sha.clone();
        let (parents, pull_request, features, pipelines, images) = on_pool!(self.pool(), |p| {
            let parents: Vec<String> = sqlx::query_scalar(
                "SELECT cp.parent_sha FROM commit_parents cp JOIN commits c ON c.id = cp.commit_id
                 JOIN repositories r ON r.id = c.repository_id WHERE r.name = $1 AND c.sha = $2 ORDER BY cp.position",
            )
            .bind(repo)
            .bind(&sha)
            .fetch_all(p)
            .await?;
            let title: Option<Option<String>> = match pull_request_number {
                Some(number) => {
                    sqlx::query_scalar(
                        "SELECT pr.title FROM pull_requests pr JOIN repositories r ON r.id = pr.repository_id
                     WHERE r.name = $1 AND pr.number = $2",
                    )
                    .bind(repo)
                    .bind(number)
                    .fetch_optional(p)
                    .await?
                }
                None => None,
            };
            let features: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(&format!(
                "SELECT f.key, f.summary, f.status FROM features f JOIN commit_features cf ON cf.feature_id = f.id
                 JOIN commits c ON c.id = cf.commit_id JOIN repositories r ON r.id = c.repository_id
                 WHERE r.name = $1 AND c.sha = $2{} ORDER BY f.key",
                self.listed_features()
            ))
            .bind(repo)
            .bind(&sha)
            .fetch_all(p)
            .await?;
            let pipelines: Vec<PipelineRow> = sqlx::query_as(&format!(
                "SELECT {PIPELINE_COLUMNS} FROM pipeline_runs p WHERE p.commit_sha = $1 ORDER BY p.started_at, p.run_id"
            ))
            .bind(&sha)
            .fetch_all(p)
            .await?;
            let images: Vec<BuildRow> = sqlx::query_as(&format!(
                "SELECT {BUILD_COLUMNS} FROM builds b JOIN images i ON i.id = b.image_id
                 WHERE b.commit_sha = $1 ORDER BY b.built_at, b.digest"
            ))
            .bind(&sha)
            .fetch_all(p)
            .await?;
            let pull_request = pull_request_number.map(|number| PullRequestRef {
                repo: repo.to_string(),
                number,
                title: title.flatten(),
            });
            (parents, pull_request, features, pipelines, images)
        });
        Ok(ShaMatch::One(Box::new(CommitCard {
            commit: summary,
            message,
            parents,
            pull_request,
            features: features.into_iter().map(feature).collect(),
            pipelines: pipelines.into_iter().map(pipeline).collect(),
            images: images.into_iter().map(build).collect(),
            deployed_now: self
                .presence(&Target::Commit { repo: repo.to_string(), sha: sha.clone() })
                .await?
                .into_iter()
                .filter(|p| p.present_now)
                .collect(),
        })))
    }

    /// A feature by issue key; `None` when the ledger has never seen the key.
    pub async fn feature_card(&self, key: &str) -> Result<Option<FeatureCard>, LedgerError> {
        // The card's own columns and its Jira details, in one read.
        #[derive(sqlx::FromRow)]
        struct Header {
            summary: Option<String>,
            status: Option<String>,
            issue_type: Option<String>,
            assignee: Option<String>,
            url: Option<String>,
            #[sqlx(flatten)]
            jira: JiraRow,
        }
        let header: Option<Header> = on_pool!(self.pool(), |p| {
            sqlx::query_as(&format!(
                "SELECT f.summary, f.status, f.issue_type, f.assignee, f.url, {JIRA_COLUMNS}
                 FROM features f WHERE f.key = $1{}",
                self.listed_features()
            ))
            .bind(key)
            .fetch_optional(p)
            .await?
        });
        let Some(Header { summary, status, issue_type, assignee, url, jira }) = header else { return Ok(None) };
        let feature_commits = "SELECT c.sha FROM commits c JOIN commit_features cf ON cf.commit_id = c.id
                               JOIN features f ON f.id = cf.feature_id WHERE f.key = $1";
        let commit_sql = format!(
            "SELECT {COMMIT_COLUMNS} FROM commits c JOIN repositories r ON r.id = c.repository_id
             JOIN commit_features cf ON cf.commit_id = c.id JOIN features f ON f.id = cf.feature_id
             WHERE f.key = $1 ORDER BY c.committed_at, r.name, c.sha"
        );
        let pull_request_sql = "SELECT r.name, pr.number, pr.title FROM pull_requests pr
             JOIN repositories r ON r.id = pr.repository_id
             WHERE pr.id IN (SELECT prf.pull_request_id FROM pull_request_features prf
                             JOIN features f ON f.id = prf.feature_id WHERE f.key = $1
                             UNION
                             SELECT pr2.id FROM commits c JOIN commit_features cf ON cf.commit_id = c.id
                             JOIN features f ON f.id = cf.feature_id
                             JOIN pull_requests pr2 ON pr2.repository_id = c.repository_id
                                  AND pr2.number = c.pull_request_number
                             WHERE f.key = $1)
             ORDER BY r.name, pr.number";
        let pipeline_sql = format!(
            "SELECT {PIPELINE_COLUMNS} FROM pipeline_runs p WHERE p.commit_sha IN ({feature_commits})
             ORDER BY p.started_at, p.ci_system, p.run_id"
        );
        let build_sql = format!(
            "SELECT {BUILD_COLUMNS} FROM builds b JOIN images i ON i.id = b.image_id
             WHERE b.commit_sha IN ({feature_commits}) ORDER BY b.built_at, b.digest"
        );
        let (commits, pull_requests, pipelines, images) = on_pool!(self.pool(), |p| {
            let commits: Vec<CommitRow> = sqlx::query_as(&commit_sql).bind(key).fetch_all(p).await?;
            let pull_requests: Vec<(String, i64, Option<String>)> =
                sqlx::query_as(pull_request_sql).bind(key).fetch_all(p).await?;
            let pipelines: Vec<PipelineRow> = sqlx::query_as(&pipeline_sql).bind(key).fetch_all(p).await?;
            let images: Vec<BuildRow> = sqlx::query_as(&build_sql).bind(key).fetch_all(p).await?;
            (commits, pull_requests, pipelines, images)
        });
        let commits: Vec<CommitSummary> = commits.into_iter().map(|row| commit(row).0).collect();
        let presence = self.presence_by_application(&Target::Feature(key.to_string()), None).await?;
        let ids: Vec<i64> = presence.iter().map(|(id, _)| *id).collect();
        let (services, resources) = self.affected(&ids).await?;
        let mut committers: Vec<String> =
            commits.iter().map(|c| format!("{} <{}>", c.committer.name, c.committer.email)).collect();
        committers.sort();
        committers.dedup();
        Ok(Some(FeatureCard {
            key: key.to_string(),
            summary,
            status,
            issue_type,
            assignee,
            url,
            jira: jira.into(),
            commits,
            pull_requests: pull_requests
                .into_iter()
                .map(|(repo, number, title)| PullRequestRef { repo, number, title })
                .collect(),
            committers,
            images: images.into_iter().map(build).collect(),
            pipelines: pipelines.into_iter().map(pipeline).collect(),
            environments: by_environment(presence.into_iter().map(|(_, p)| p).collect()),
            services,
            resources,
        }))
    }

    /// The services and Kubernetes objects of the given applications, in one read per
    /// 500 applications: a row per object, or one without an object for an application
    /// that has none (its service still counts).
    async fn affected(&self, applications: &[i64]) -> Result<(Vec<String>, Vec<ResourceRef>), LedgerError> {
        let mut services = Vec::new();
        let mut resources = Vec::new();
        for chunk in applications.chunks(500) {
            let ids = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            type Row = (
                Option<String>,
                String,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            );
            let rows: Vec<Row> = read_rows!(
                self,
                "",
                "s.name, a.name, r.api_group, r.kind, r.namespace, r.name, r.health_status",
                &format!(
                    "FROM applications a LEFT JOIN services s ON s.id = a.service_id
                     LEFT JOIN resources r ON r.application_id = a.id WHERE a.id IN ({ids})"
                ),
                "a.name, r.kind, r.namespace, r.name",
                |q| chunk.iter().fold(q, |q, id| q.bind(*id))
            );
            for (service, application, group, kind, namespace, name, health) in rows {
                services.extend(service);
                if let (Some(group), Some(kind), Some(namespace), Some(name)) = (group, kind, namespace, name) {
                    resources.push(ResourceRef { application, group, kind, namespace, name, health });
                }
            }
        }
        services.sort();
        services.dedup();
        Ok((services, resources))
    }
}
