//! Answers to asked questions: [`crate::ask`] parses, this module looks the answer up in
//! the ledger. `GET /api/v1/ask` and `landfall ask` both call [`answer`], so the two
//! always agree; the terminal gets [`render_text`], the API the JSON.

use jiff::tz::TimeZone;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ask::{self, NotUnderstood, Question, Vocabulary};
use crate::ledger::cards::{FeatureCard, PullRequestCard};
use crate::ledger::presence::{ApplicationPresence, Target};
use crate::ledger::questions::{
    ChangesPage, Comparison, DEPLOYMENT_LIMIT, EnvironmentChanges, ManifestChanges, PlanError, RollbackPlan,
};
use crate::ledger::{Ledger, LedgerError};

/// `GET /api/v1/ask`: the question, what was understood, and the answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AskResponse {
    pub question: String,
    /// The zone time phrases were read in.
    pub time_zone: String,
    /// The structured query the question was read as.
    pub understood: Option<Question>,
    /// Set instead when the question could not be read: what was recognised, and
    /// examples of what can be asked.
    pub not_understood: Option<NotUnderstood>,
    /// The answer in one or two sentences.
    pub summary: String,
    /// The details; `null` when there is nothing to show.
    pub answer: Option<Answer>,
}

/// The details of an answer, by kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Answer {
    /// Questions 1, 5 and 8: the pull request (one per repository with that number).
    PullRequests(Vec<PullRequestCard>),
    /// Questions 2 and 3.
    Presence(FeatureInEnvironment),
    /// Question 4 (a preview; nothing is executed).
    RollbackPlan(RollbackPlan),
    /// Question 6.
    ManifestChanges(ManifestChanges),
    /// Question 7.
    EnvironmentChanges(EnvironmentChanges),
    /// Question 9: the feature card, with its services and resources.
    Feature(Box<FeatureCard>),
    /// What one environment has that another lacks.
    Comparison(Comparison),
    /// Where something runs now.
    Deployments(Vec<ApplicationPresence>),
}

/// A feature in one environment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeatureInEnvironment {
    pub key: String,
    /// What Jira calls it, when known.
    pub summary: Option<String>,
    /// Its Jira status, when known.
    pub status: Option<String>,
    pub environment: String,
    pub first_deployed_at: Option<String>,
    pub present_now: bool,
    pub applications: Vec<ApplicationPresence>,
}

/// The words a question may use: environments (with their usual short names),
/// feature projects (configured, or of a key the question names that the ledger knows)
/// and repositories.
pub async fn vocabulary(
    ledger: &Ledger,
    configured_projects: &[String],
    question: &str,
) -> Result<Vocabulary, LedgerError> {
    let environments = ledger
        .environment_names()
        .await?
        .into_iter()
        .map(|name| {
            let aliases = conventional_aliases(&name);
            (name, aliases)
        })
        .collect();
    let mut projects: Vec<String> = configured_projects.to_vec();
    for word in question.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
        let key = word.to_ascii_uppercase();
        let Some((project, number)) = key.rsplit_once('-') else { continue };
        let looks_like_key = project.starts_with(|c: char| c.is_ascii_uppercase())
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit());
        if looks_like_key && !projects.iter().any(|p| p == project) && ledger.feature_exists(&key).await? {
            projects.push(project.to_string());
        }
    }
    Ok(Vocabulary { environments, projects, repositories: ledger.repository_names().await? })
}

/// Why a feature has no answer: the ledger never saw it, or it is left out.
async fn unknown_feature(ledger: &Ledger, key: &str) -> Result<String, LedgerError> {
    Ok(if ledger.feature_excluded(key).await? {
        format!("{key} is left out: Jira does not know it, and `[features] exclude_not_found` is on.")
    } else {
        format!("{key} is not in the ledger: no ingested commit names it.")
    })
}

/// The short and long names people use for the usual environments.
fn conventional_aliases(name: &str) -> Vec<String> {
    const PAIRS: [(&str, &[&str]); 5] = [
        ("production", &["prod", "prd", "live"]),
        ("staging", &["stage", "stg"]),
        ("development", &["dev"]),
        ("qa", &["test", "testing"]),
        ("preproduction", &["preprod"]),
    ];
    let lower = name.to_ascii_lowercase();
    let mut aliases = Vec::new();
    for (long, shorts) in PAIRS {
        if lower == long {
            aliases.extend(shorts.iter().map(|s| s.to_string()));
        } else if shorts.contains(&lower.as_str()) {
            aliases.push(long.to_string());
        }
    }
    aliases
}

/// The environment the parser named, or an early answer saying it has just gone (the
/// vocabulary was read a moment before).
macro_rules! known_environment {
    ($ledger:expr, $name:expr, $response:ident) => {
        match $ledger.environment($name).await? {
            Some(environment) => environment,
            None => {
                $response.summary = format!("Environment {} is no longer in the ledger.", $name);
                return Ok($response);
            }
        }
    };
}

/// Reads `question` in zone `tz` at `now_ms` and answers it from the ledger.
pub async fn answer(
    ledger: &Ledger,
    vocabulary: &Vocabulary,
    question: &str,
    tz_name: &str,
    tz: &TimeZone,
    now_ms: i64,
) -> Result<AskResponse, LedgerError> {
    let mut response = AskResponse {
        question: question.to_string(),
        time_zone: if tz_name.trim().is_empty() { "UTC".into() } else { tz_name.trim().to_string() },
        understood: None,
        not_understood: None,
        summary: String::new(),
        answer: None,
    };
    let parsed = match ask::parse(question, tz, now_ms, vocabulary) {
        Ok(parsed) => parsed,
        Err(not_understood) => {
            response.summary = not_understood.message.clone();
            response.not_understood = Some(not_understood);
            return Ok(response);
        }
    };
    response.understood = Some(parsed.clone());
    let local = |rfc3339: &str| local_time(rfc3339, tz);
    let (summary, answer) = match parsed {
        Question::FeaturesOfPullRequest { repo, number }
        | Question::PipelinesOfPullRequest { repo, number }
        | Question::ImagesOfPullRequest { repo, number } => {
            let cards = pull_request_cards(ledger, repo.as_deref(), number).await?;
            let question = response.understood.as_ref().expect("set above");
            (pull_request_summary(question, number, &cards), (!cards.is_empty()).then_some(Answer::PullRequests(cards)))
        }
        Question::FeatureDeployedWhen { key, environment } | Question::FeaturePresentNow { key, environment } => {
            let applications = ledger.presence_in(&Target::Feature(key.clone()), &environment).await?;
            let first = applications.iter().map(|p| p.first_deployed_at.clone()).min();
            let present_now = applications.iter().any(|p| p.present_now);
            // Only an answer with no deployment needs to know whether the key exists at all.
            let known =
                !applications.is_empty() || !ledger.target_commits(&Target::Feature(key.clone())).await?.is_empty();
            let (title, status) = ledger.feature_title(&key).await?;
            let named = titled(&key, title.as_deref(), status.as_deref());
            let summary = match (&response.understood, &first) {
                _ if !known => unknown_feature(ledger, &key).await?,
                (_, None) => format!("{key} has never been deployed to {environment}."),
                (Some(Question::FeaturePresentNow { .. }), Some(first)) if present_now => {
                    format!("Yes: {named} is in {environment} now (first deployed there {}).", local(first))
                }
                (Some(Question::FeaturePresentNow { .. }), Some(first)) => format!(
                    "No: {named} is not in {environment} now; it was deployed there {} and has since been rolled back.",
                    local(first)
                ),
                (_, Some(first)) => format!(
                    "{named} was first deployed to {environment} {}{}.",
                    local(first),
                    if present_now { " and is there now" } else { "; it is not there now" }
                ),
            };
            let answer = FeatureInEnvironment {
                key,
                summary: title,
                status,
                environment,
                first_deployed_at: first,
                present_now,
                applications,
            };
            (summary, Some(Answer::Presence(answer)))
        }
        Question::RollbackBefore { environment, target } => {
            let environment = known_environment!(ledger, &environment, response);
            match resolve(ledger, &target).await? {
                Err(message) => (message, None),
                Ok(target) => match ledger.rollback_plan(&environment, &target).await {
                    Ok(plan) => (rollback_summary(&plan), Some(Answer::RollbackPlan(plan))),
                    Err(PlanError::NeverReached) => {
                        (format!("{target} never reached {}: there is nothing to roll back.", environment.name), None)
                    }
                    Err(PlanError::Ledger(error)) => return Err(error),
                },
            }
        }
        Question::ManifestPushers { environment, window } => {
            let environment = known_environment!(ledger, &environment, response);
            let changes = ledger.manifest_commits(&environment, window.since, window.until).await?;
            let people: Vec<String> = changes.people.iter().map(|p| format!("{} ({})", p.name, p.commits)).collect();
            let summary = if people.is_empty() {
                format!("Nobody changed {}'s manifests {}.", environment.name, window.phrase)
            } else {
                format!("{} changed {}'s manifests {}.", people.join(", "), environment.name, window.phrase)
            };
            (summary, Some(Answer::ManifestChanges(changes)))
        }
        Question::FeaturesEntered { environment, window } => {
            let environment = known_environment!(ledger, &environment, response);
            // The largest page: a question is answered once, not paged through.
            let page = ChangesPage { after: None, limit: DEPLOYMENT_LIMIT };
            let changes = ledger.environment_changes(&environment, window.since, window.until, page).await?;
            let summary = features_entered_summary(&environment.name, &window.phrase, &changes);
            (summary, Some(Answer::EnvironmentChanges(changes)))
        }
        Question::ResourcesAffected { key } => match ledger.feature_card(&key).await? {
            None => (unknown_feature(ledger, &key).await?, None),
            Some(card) => {
                let services: Vec<String> = card
                    .resources
                    .iter()
                    .filter(|r| r.kind == "Service")
                    .map(|r| format!("{}/{}", r.namespace, r.name))
                    .collect();
                let named = titled(&key, card.summary.as_deref(), card.status.as_deref());
                let summary = match (services.is_empty(), card.resources.is_empty()) {
                    (false, _) => format!("{named} affected the Kubernetes services {}.", services.join(", ")),
                    (true, false) => {
                        format!("{named} affected {} Kubernetes objects, none of them a Service.", card.resources.len())
                    }
                    (true, true) => {
                        format!("No Kubernetes resources are recorded for the applications running {named}.")
                    }
                };
                (summary, Some(Answer::Feature(Box::new(card))))
            }
        },
        Question::Compare { from, to } => {
            let from = known_environment!(ledger, &from, response);
            let to = known_environment!(ledger, &to, response);
            let comparison = ledger.compare_environments(&from, &to).await?;
            let keys: Vec<&str> = comparison.only_in_from.iter().map(|f| f.key.as_str()).collect();
            let summary = if keys.is_empty() {
                format!("Every feature in {} is also in {}.", from.name, to.name)
            } else {
                format!("In {} but not in {}: {}.", from.name, to.name, keys.join(", "))
            };
            (summary, Some(Answer::Comparison(comparison)))
        }
        Question::WhereDeployed { target } => match resolve(ledger, &target).await? {
            Err(message) => (message, None),
            Ok(target) => {
                let now: Vec<ApplicationPresence> =
                    ledger.presence(&target).await?.into_iter().filter(|p| p.present_now).collect();
                let places: Vec<String> = now
                    .iter()
                    .map(|p| {
                        format!("{} ({})", p.application.name, p.environment.as_deref().unwrap_or("no environment"))
                    })
                    .collect();
                let summary = if places.is_empty() {
                    format!("{target} is not deployed anywhere now.")
                } else {
                    format!("{target} runs now in {}.", places.join(", "))
                };
                (summary, Some(Answer::Deployments(now)))
            }
        },
    };
    response.summary = summary;
    response.answer = answer;
    Ok(response)
}

/// `SHOP-1 “Checkout page” (In Progress)` when Jira has been heard from, else the key.
fn titled(key: &str, summary: Option<&str>, status: Option<&str>) -> String {
    match (summary, status) {
        (Some(summary), Some(status)) => format!("{key} “{summary}” ({status})"),
        (Some(summary), None) => format!("{key} “{summary}”"),
        (None, Some(status)) => format!("{key} ({status})"),
        (None, None) => key.to_string(),
    }
}

/// The pull request in the named repository, or in every repository that has one
/// with that number.
async fn pull_request_cards(
    ledger: &Ledger,
    repo: Option<&str>,
    number: i64,
) -> Result<Vec<PullRequestCard>, LedgerError> {
    let repositories = match repo {
        Some(repo) => vec![repo.to_string()],
        None => ledger.repositories_with_pull_request(number).await?,
    };
    let mut cards = Vec::new();
    for repository in repositories {
        cards.extend(ledger.pull_request_card(&repository, number).await?);
    }
    Ok(cards)
}

fn pull_request_summary(question: &Question, number: i64, cards: &[PullRequestCard]) -> String {
    if cards.is_empty() {
        return format!("Pull request #{number} is not in the ledger.");
    }
    let parts: Vec<String> = cards
        .iter()
        .map(|card| {
            // With a forge configured, the pull request is named by its title and author too.
            let name = match (&card.title, &card.author) {
                (Some(title), Some(author)) => {
                    format!("{}#{} (\u{201c}{title}\u{201d} by {author})", card.repo, card.number)
                }
                (Some(title), None) => format!("{}#{} (\u{201c}{title}\u{201d})", card.repo, card.number),
                _ => format!("{}#{}", card.repo, card.number),
            };
            match question {
                Question::PipelinesOfPullRequest { .. } => {
                    let runs: Vec<String> =
                        card.pipelines.iter().map(|p| format!("{} {} ({})", p.name, p.run_id, p.status)).collect();
                    if runs.is_empty() {
                        format!("no pipeline is recorded for {name}")
                    } else {
                        format!("{name}: {}", runs.join(", "))
                    }
                }
                Question::ImagesOfPullRequest { .. } => {
                    let images: Vec<String> =
                        card.images.iter().map(|i| format!("{}:{}", i.repository, i.tag)).collect();
                    if images.is_empty() {
                        format!("no image built from {name} is recorded")
                    } else {
                        format!("{name} built {}", images.join(", "))
                    }
                }
                _ => {
                    let keys: Vec<&str> = card.features.iter().map(|f| f.key.as_str()).collect();
                    if keys.is_empty() {
                        format!("{name} names no feature")
                    } else {
                        format!("{name} implemented {}", keys.join(", "))
                    }
                }
            }
        })
        .collect();
    let mut summary = parts.join("; ");
    if let Some(first) = summary.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    summary + "."
}

fn rollback_summary(plan: &RollbackPlan) -> String {
    let steps: Vec<String> = plan
        .applications
        .iter()
        .map(|step| match &step.return_to {
            Some(to) if step.action == "rollback" => {
                let leaving: Vec<&str> = step.features_leaving.iter().map(|f| f.key.as_str()).collect();
                format!(
                    "{}: back to history {} ({}), removing {}{}",
                    step.application.name,
                    to.history_id,
                    to.revision,
                    if leaving.is_empty() { "no named feature".to_string() } else { leaving.join(", ") },
                    if step.automated_sync { "; turn automated sync off first" } else { "" }
                )
            }
            _ => format!("{}: {}", step.application.name, step.reason),
        })
        .collect();
    format!("To roll {} back to just before {} (preview): {}.", plan.environment, plan.target, steps.join("; "))
}

/// Turns the parser's target into the ledger's, finding the repository of a pull
/// request or commit when the question named none. `Err` carries what to tell the asker.
async fn resolve(ledger: &Ledger, target: &ask::Target) -> Result<Result<Target, String>, LedgerError> {
    Ok(match target {
        ask::Target::Feature { key } => {
            let target = Target::Feature(key.clone());
            if ledger.target_commits(&target).await?.is_empty() {
                Err(format!("{key} is not in the ledger: no ingested commit names it."))
            } else {
                Ok(target)
            }
        }
        ask::Target::PullRequest { repo, number } => {
            let repositories = match repo {
                Some(repo) => vec![repo.clone()],
                None => ledger.repositories_with_pull_request(*number).await?,
            };
            match repositories.as_slice() {
                [] => Err(format!("Pull request #{number} is not in the ledger.")),
                [repo] => Ok(Target::PullRequest { repo: repo.clone(), number: *number }),
                several => Err(format!(
                    "Several repositories have a pull request #{number}: {}; name one, as in {}#{number}.",
                    several.join(", "),
                    several[0]
                )),
            }
        }
        ask::Target::Commit { sha } => {
            let found = ledger.commits_with_prefix(None, sha).await?;
            match found.as_slice() {
                [] => Err(format!("No commit {sha} is in the ledger.")),
                [(repo, sha)] => Ok(Target::Commit { repo: repo.clone(), sha: sha.clone() }),
                _ => Err(format!("Several commits start with {sha}; give more digits.")),
            }
        }
    })
}

/// An RFC 3339 time as the asker's wall clock, e.g. `2026-11-27 14:03 CET`.
fn local_time(rfc3339: &str, tz: &TimeZone) -> String {
    match crate::timefmt::parse_rfc3339(rfc3339).and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()) {
        Some(at) => format!("on {}", at.to_zoned(tz.clone()).strftime("%Y-%m-%d at %H:%M %Z")),
        None => rfc3339.to_string(),
    }
}

/// The answer as text for a terminal: the summary, then a table of the details.
pub fn render_text(response: &AskResponse) -> String {
    let mut out = String::new();
    if let Some(question) = &response.understood {
        let understood = serde_json::to_string(question).unwrap_or_default();
        out.push_str(&format!("Understood: {understood}\n\n"));
    }
    // The summary quotes stored text (names, subjects): no control character reaches the terminal.
    out.extend(response.summary.chars().map(|c| if c.is_control() { ' ' } else { c }));
    out.push('\n');
    if let Some(not_understood) = &response.not_understood {
        if !not_understood.understood.is_empty() {
            out.push_str(&format!("\nRecognised: {}\n", not_understood.understood.join(", ")));
        }
        out.push_str("\nYou can ask, for example:\n");
        for example in &not_understood.examples {
            out.push_str(&format!("  {example}\n"));
        }
    }
    let table = match &response.answer {
        None => return out,
        Some(Answer::PullRequests(cards)) => table(
            &["pull request", "features", "pipelines", "images"],
            cards
                .iter()
                .map(|c| {
                    vec![
                        format!("{}#{}", c.repo, c.number),
                        c.features.iter().map(|f| f.key.clone()).collect::<Vec<_>>().join(" "),
                        c.pipelines
                            .iter()
                            .map(|p| format!("{} {} {}", p.name, p.run_id, p.status))
                            .collect::<Vec<_>>()
                            .join("; "),
                        c.images.iter().map(|i| format!("{}:{}", i.repository, i.tag)).collect::<Vec<_>>().join(" "),
                    ]
                })
                .collect(),
        ),
        Some(Answer::Presence(p)) => presence_table(&p.applications),
        Some(Answer::Deployments(applications)) => presence_table(applications),
        Some(Answer::RollbackPlan(plan)) => table(
            &["application", "action", "return to", "features leaving", "automated sync"],
            plan.applications
                .iter()
                .map(|s| {
                    vec![
                        s.application.name.clone(),
                        s.action.clone(),
                        s.return_to
                            .as_ref()
                            .map(|d| format!("history {} ({})", d.history_id, d.revision))
                            .unwrap_or_default(),
                        s.features_leaving.iter().map(|f| f.key.clone()).collect::<Vec<_>>().join(" "),
                        if s.automated_sync { "on".into() } else { "off".into() },
                    ]
                })
                .collect(),
        ),
        Some(Answer::ManifestChanges(changes)) => table(
            &["committed", "committer", "commit", "subject", "applications"],
            changes
                .commits
                .iter()
                .map(|c| {
                    vec![
                        c.commit.committer.at.clone(),
                        c.commit.committer.name.clone(),
                        format!("{}@{}", c.commit.repo, &c.commit.sha[..c.commit.sha.len().min(10)]),
                        c.commit.subject.clone(),
                        c.applications.iter().map(|a| a.name.clone()).collect::<Vec<_>>().join(" "),
                    ]
                })
                .collect(),
        ),
        Some(Answer::EnvironmentChanges(changes)) => table(
            &["deployed", "application", "history", "features entered", "features left"],
            changes
                .deployments
                .iter()
                .map(|d| {
                    vec![
                        d.deployed_at.clone(),
                        d.application.name.clone(),
                        d.history_id.to_string(),
                        if d.changes.initial {
                            "(first deployment)".into()
                        } else {
                            d.changes.features_entered.iter().map(|f| f.key.clone()).collect::<Vec<_>>().join(" ")
                        },
                        d.changes.features_left.iter().map(|f| f.key.clone()).collect::<Vec<_>>().join(" "),
                    ]
                })
                .collect(),
        ),
        Some(Answer::Feature(card)) => table(
            &["application", "kind", "namespace", "name", "health"],
            card.resources
                .iter()
                .map(|r| {
                    vec![
                        r.application.clone(),
                        r.kind.clone(),
                        r.namespace.clone(),
                        r.name.clone(),
                        r.health.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        ),
        Some(Answer::Comparison(c)) => table(
            &["feature", "only in"],
            c.only_in_from
                .iter()
                .map(|f| vec![f.key.clone(), c.from.clone()])
                .chain(c.only_in_to.iter().map(|f| vec![f.key.clone(), c.to.clone()]))
                .collect(),
        ),
    };
    out.push('\n');
    out.push_str(&table);
    out
}

fn presence_table(applications: &[ApplicationPresence]) -> String {
    table(
        &["application", "environment", "first deployed", "history", "now"],
        applications
            .iter()
            .map(|p| {
                vec![
                    p.application.name.clone(),
                    p.environment.clone().unwrap_or_default(),
                    p.first_deployed_at.clone(),
                    p.first_history_id.to_string(),
                    if p.present_now { "yes".into() } else { "no".into() },
                ]
            })
            .collect(),
    )
}

/// Left-aligned columns separated by two spaces; control characters from stored text
/// are replaced so a commit subject cannot move the terminal's cursor.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return "(nothing to list)\n".into();
    }
    let clean = |cell: &str| cell.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let rows: Vec<Vec<String>> = rows.into_iter().map(|row| row.iter().map(|c| clean(c)).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// "SHOP-1, SHOP-2 entered staging this morning.", and whether the window held more
/// deployments than the answer read.
fn features_entered_summary(environment: &str, phrase: &str, changes: &EnvironmentChanges) -> String {
    let keys: Vec<&str> = changes.features_entered.iter().map(|f| f.key.as_str()).collect();
    let mut summary = if keys.is_empty() {
        format!("No feature entered {environment} {phrase} ({} deployments).", changes.deployments.len())
    } else {
        format!("{} entered {environment} {phrase}.", keys.join(", "))
    };
    if changes.next.is_some() {
        summary.push_str(&format!(
            " That is from its first {} deployments in the window; \
             GET /api/v1/environments/{environment}/changes pages through the rest.",
            changes.deployments.len()
        ));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::cards::FeatureRef;

    #[test]
    fn usual_environment_names_get_their_short_forms_and_back() {
        assert_eq!(conventional_aliases("Production"), ["prod", "prd", "live"]);
        assert_eq!(conventional_aliases("prod"), ["production"]);
        assert!(conventional_aliases("narnia").is_empty());
    }

    #[test]
    fn summaries_reach_the_terminal_without_control_characters() {
        let response = AskResponse {
            question: "q".into(),
            time_zone: "UTC".into(),
            understood: None,
            not_understood: None,
            summary: "Mallory\u{1b}]0;owned\u{7} changed production".into(),
            answer: None,
        };
        assert_eq!(render_text(&response), "Mallory ]0;owned  changed production\n");
    }

    #[test]
    fn a_window_with_more_deployments_than_were_read_says_so() {
        let feature = |key: &str| FeatureRef { key: key.into(), summary: None, status: None };
        let mut changes = EnvironmentChanges {
            environment: "staging".into(),
            since: String::new(),
            until: String::new(),
            deployments: Vec::new(),
            features_entered: vec![feature("SHOP-1"), feature("SHOP-2")],
            pull_requests_entered: Vec::new(),
            features_left: Vec::new(),
            truncated: false,
            next: None,
        };
        let summary = |changes: &EnvironmentChanges| features_entered_summary("staging", "this morning", changes);
        assert_eq!(summary(&changes), "SHOP-1, SHOP-2 entered staging this morning.");
        changes.next = Some("1800000000000.42".into());
        assert_eq!(
            summary(&changes),
            "SHOP-1, SHOP-2 entered staging this morning. That is from its first 0 deployments in the window; \
             GET /api/v1/environments/staging/changes pages through the rest."
        );
        changes.features_entered.clear();
        changes.next = None;
        assert_eq!(summary(&changes), "No feature entered staging this morning (0 deployments).");
    }

    #[test]
    fn tables_align_and_strip_control_characters() {
        let text = table(&["a", "bb"], vec![vec!["long cell".into(), "x\u{1b}[2J".into()]]);
        assert_eq!(text, "a          bb\nlong cell  x [2J\n");
        assert_eq!(table(&["a"], vec![]), "(nothing to list)\n");
    }
}
