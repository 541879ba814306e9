//! The ask parser: a question typed into the search box (or `landfall ask "..."`) becomes
//! a [`Question`] the read side can answer, or a [`NotUnderstood`] saying what is missing.
//!
//! The questions are those of DESIGN.md, "The questions it must answer", in the words
//! people use for them. The parser is pure: it never reads the ledger. The caller passes
//! the [`Vocabulary`] (environments, feature projects, repositories), the asker's time zone
//! and the clock, so "last Friday afternoon" is the asker's Friday and tests are exact.
//!
//! It works in three steps, each small enough to read: split the question into words;
//! read what it mentions (feature keys, pull requests, commits, a time phrase,
//! environments, repositories), consuming the words it uses; then pick the question from
//! keyword rules over what is left.

use jiff::civil::{Date, Weekday};
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp, Zoned};
use serde::Serialize;
use utoipa::ToSchema;

use crate::correlate::FeatureProjects;

/// What the parser may recognise, read by the caller from the configuration and the
/// ledger, so that `prod`, `PROJ-12` and `shop-api` mean something here and "narnia" or
/// `UTF-8` do not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Vocabulary {
    /// Environments as (canonical name, aliases). Matching is case-insensitive, whole words;
    /// e.g. `("production", ["prod"])`, `("qa", [])`, `("staging", ["stage"])`.
    pub environments: Vec<(String, Vec<String>)>,
    /// Jira project keys that count as features, e.g. `["PROJ", "SHOP"]`. Keys follow the
    /// rule of [`FeatureProjects::keys_in`]; in a question `proj-12` also means `PROJ-12`.
    pub projects: Vec<String>,
    /// Repository names known to the ledger (e.g. `shop-api`), so that "PR 432 in
    /// shop-api", `shop-api#432` and `shop-api!12` pick the repository.
    pub repositories: Vec<String>,
}

/// The thing a question is about, where several questions accept more than one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A feature: an issue of a configured Jira project, e.g. `PROJ-12`.
    Feature { key: String },
    /// A pull request (GitHub) or merge request (GitLab); `repo` when the question named one.
    PullRequest { repo: Option<String>, number: i64 },
    /// A commit, by its SHA or a prefix of it (7 to 40 hex digits, lower case).
    Commit { sha: String },
}

/// A stretch of time the question is about: epoch milliseconds (UTC), half-open
/// `[since, until)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Window {
    pub since: i64,
    pub until: i64,
    /// The words understood, as typed (e.g. "last Friday afternoon"), so an answer can
    /// say which window it used.
    pub phrase: String,
}

/// A question the read side can answer. The numbers are those of DESIGN.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Question {
    /// 1. "Which feature was implemented by pull request 432?"
    FeaturesOfPullRequest { repo: Option<String>, number: i64 },
    /// 2. "When was issue PROJ-5612 deployed in our QA environment?"
    FeatureDeployedWhen { key: String, environment: String },
    /// 3. "Is PROJ-2356 deployed in production now?"
    FeaturePresentNow { key: String, environment: String },
    /// 4. "Roll the staging environment back to just before PROJ-2167 shipped."
    RollbackBefore { environment: String, target: Target },
    /// 5. "Which pipelines handled pull request 156?"
    PipelinesOfPullRequest { repo: Option<String>, number: i64 },
    /// 6. "Who pushed to production (by committing into the manifests repository) last
    ///    Friday afternoon?"
    ManifestPushers { environment: String, window: Window },
    /// 7. "Which features entered staging this morning?"
    FeaturesEntered { environment: String, window: Window },
    /// 8. "Which container images were rebuilt as a result of merging pull request 475?"
    ImagesOfPullRequest { repo: Option<String>, number: i64 },
    /// 9. "Which Kubernetes services were affected by PROJ-5923?"
    ResourcesAffected { key: String },
    /// "What is in staging but not in production?": what `from` has that `to` lacks.
    Compare { from: String, to: String },
    /// "Where is PROJ-12 deployed now?", for a feature, a pull request or a commit.
    WhereDeployed { target: Target },
}

/// Why a question could not be answered, in words meant for the asker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, thiserror::Error)]
#[error("{message}")]
pub struct NotUnderstood {
    /// What is missing or wrong, e.g. "Which environment? Known environments: ...".
    pub message: String,
    /// What was recognised, e.g. `["feature PROJ-12", "environment production"]`.
    pub understood: Vec<String>,
    /// Questions that can be answered, to copy from.
    pub examples: Vec<String>,
}

/// Questions the parser answers: the nine of DESIGN.md, a comparison and a "where".
pub const EXAMPLES: [&str; 11] = [
    "Which feature was implemented by pull request 432?",
    "When was issue PROJ-5612 deployed in our QA environment?",
    "Is PROJ-2356 deployed in production now?",
    "Roll the staging environment back to just before PROJ-2167 shipped",
    "Which pipelines handled pull request 156?",
    "Who pushed to production (by committing into the manifests repository) last Friday afternoon?",
    "Which features entered staging this morning?",
    "Which container images were rebuilt as a result of merging pull request 475?",
    "Which Kubernetes services were affected by PROJ-5923?",
    "What is in staging but not in production?",
    "Where is PROJ-12 deployed now?",
];

/// What `tz` accepts, for error messages.
const TIME_ZONES_ACCEPTED: &str =
    "expected UTC, an IANA name such as Europe/Paris, or an offset such as +02:00, -0530 or UTC+2";

/// The asker's time zone: empty or `UTC`; an IANA name from the system's zoneinfo
/// (`Europe/Paris`); or a fixed offset (`+02:00`, `-0530`, `+2`, `UTC+2`, `GMT-05:30`,
/// east of Greenwich positive, unlike the POSIX `Etc/GMT+2`).
pub fn parse_time_zone(tz: &str) -> Result<TimeZone, String> {
    let name = tz.trim();
    if name.is_empty() || name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("z") {
        return Ok(TimeZone::UTC);
    }
    if let Some(offset) = fixed_offset(name) {
        return Ok(TimeZone::fixed(offset));
    }
    TimeZone::get(name).map_err(|_| format!("unknown time zone {name:?}: {TIME_ZONES_ACCEPTED}"))
}

/// `+02:00`, `-0530`, `+2`, optionally after `UTC` or `GMT`; `None` for anything else,
/// including hours past 18 or minutes past 59.
fn fixed_offset(text: &str) -> Option<Offset> {
    let upper = text.to_ascii_uppercase();
    let signed = upper.strip_prefix("UTC").or_else(|| upper.strip_prefix("GMT")).unwrap_or(&upper);
    let (sign, digits) = match signed.as_bytes().first()? {
        b'+' => (1, &signed[1..]),
        b'-' => (-1, &signed[1..]),
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let (hours, minutes) = match digits.split_once(':') {
        Some((hours, minutes)) if minutes.len() == 2 => (hours, minutes),
        Some(_) => return None,
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "00"),
    };
    if !(1..=2).contains(&hours.len()) {
        return None;
    }
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 18 || minutes > 59 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// Reads `question`, asked at `now_ms` (epoch milliseconds) by someone in `tz`.
pub fn parse(question: &str, tz: &TimeZone, now_ms: i64, vocabulary: &Vocabulary) -> Result<Question, NotUnderstood> {
    let tokens = tokenize(question);
    if tokens.is_empty() {
        return Err(not_understood("The question is empty.".to_string(), Vec::new()));
    }
    let Ok(now) = Timestamp::from_millisecond(now_ms) else {
        return Err(not_understood(format!("The current time ({now_ms} ms) is out of range."), Vec::new()));
    };
    let clock = Clock { now: now.to_zoned(tz.clone()) };
    let mentions = Mentions::read(tokens, vocabulary, &clock);
    classify(&mentions, vocabulary, &clock).map_err(|message| not_understood(message, mentions.understood()))
}

fn not_understood(message: String, understood: Vec<String>) -> NotUnderstood {
    NotUnderstood { message, understood, examples: EXAMPLES.iter().map(|e| e.to_string()).collect() }
}

// ---------------------------------------------------------------------------------------
// Words

/// A word of the question.
#[derive(Debug)]
struct Token {
    /// As typed, to quote back.
    text: String,
    /// Lower case, to match.
    lower: String,
}

/// Characters that separate words besides white space. `-`, `_`, `/`, `.`, `#` and `!`
/// stay inside words: they belong to keys, repository names, dates and references.
const SEPARATORS: &[char] =
    &['?', ',', ';', ':', '(', ')', '[', ']', '{', '}', '"', '\'', '`', '<', '>', '“', '”', '‘', '’'];

fn tokenize(question: &str) -> Vec<Token> {
    question
        .split(|c: char| c.is_whitespace() || SEPARATORS.contains(&c))
        .map(|word| word.trim_end_matches(['.', '!']))
        .filter(|word| !word.is_empty())
        .map(|word| Token { text: word.to_string(), lower: word.to_lowercase() })
        .collect()
}

/// Names of a pull or merge request that a number follows: `PR 432`, `MR !12`.
const REQUEST_WORDS: &str = "pr prs mr mrs pull-request pull-requests merge-request merge-requests";
/// Beside a hex word, these make it a commit even without a digit in it.
const COMMIT_WORDS: &str = "commit commits sha revision rev";
/// Beside a pull request: which features it implements.
const FEATURE_WORDS: &str = "\
    feature features issue issues ticket tickets story stories jira epic fix fixes fixed \
    implement implements implemented implementing implementation \
    resolve resolves resolved close closes closed";
/// Beside a pull request: which pipelines handled it.
const PIPELINE_WORDS: &str =
    "pipeline pipelines build builds ci workflow workflows job jobs run runs ran check checks handled";
/// Beside a pull request: which images it rebuilt. Checked before the pipeline words, so
/// "which images were built" is about images.
const IMAGE_WORDS: &str = "image images container containers docker built rebuilt rebuild rebuilds";
/// Beside a feature: which Kubernetes resources it affected.
const RESOURCE_WORDS: &str = "\
    kubernetes k8s service services resource resources workload workloads pod pods \
    affected affect affects touch touches touched impact impacts impacted";
/// Beside a feature and no environment: a presence question missing its environment.
const PRESENCE_WORDS: &str = "is are has have does did deployed live released shipped running present reached";
/// Beside an environment: what entered it.
const ENTRY_WORDS: &str = "\
    entered enter entering reached reach went go gone deployed released shipped \
    landed arrived promoted pushed new changed changes";
/// Two environments and one of these: a comparison.
const COMPARE_WORDS: &str = "compare compared comparing comparison diff difference differences vs versus";
/// Words before an environment marking it as the one lacking things in a comparison.
const LACKING_WORDS: &str = "not missing without absent lacking";
/// Words between a preposition and a place name that are not the place.
const FILLER_WORDS: &str = "the our a an my your their this that";
/// Words after a preposition that are not a place, for the "unknown environment" hint.
const NOT_PLACES: &str = "just before after which what it there here all any them merging repository";

// ---------------------------------------------------------------------------------------
// What the question mentions

/// Everything recognised in the question, and which words that used.
#[derive(Debug, Default)]
struct Mentions {
    tokens: Vec<Token>,
    /// `used[i]`: token `i` was read as part of a reference, a time phrase, an environment
    /// or a repository.
    used: Vec<bool>,
    features: Vec<String>,
    pull_requests: Vec<(Option<String>, i64)>,
    commits: Vec<String>,
    /// Canonical environment names, in order of first mention, with that token's index.
    environments: Vec<(usize, String)>,
    /// Repositories named on their own ("... in shop-api"), canonical.
    repositories: Vec<String>,
    window: Option<Window>,
    /// Words shaped like a feature key but of no configured project, for the messages.
    foreign_keys: Vec<String>,
    /// The first thing recognised but wrong (an unknown repository, a bad date).
    problem: Option<String>,
}

impl Mentions {
    fn read(tokens: Vec<Token>, vocabulary: &Vocabulary, clock: &Clock) -> Mentions {
        let mut mentions = Mentions { used: vec![false; tokens.len()], tokens, ..Mentions::default() };
        mentions.read_features(vocabulary);
        mentions.read_pull_requests(vocabulary);
        mentions.read_window(clock);
        mentions.read_environments(vocabulary);
        mentions.read_repositories(vocabulary);
        mentions.read_commits();
        if let [repository] = mentions.repositories.as_slice() {
            for (repo, _) in &mut mentions.pull_requests {
                repo.get_or_insert_with(|| repository.clone());
            }
        }
        mentions
    }

    fn lower(&self, i: usize) -> Option<&str> {
        self.tokens.get(i).map(|t| t.lower.as_str())
    }

    /// Whether the question has one of `words` (space-separated, lower case).
    fn has(&self, words: &str) -> bool {
        self.tokens.iter().any(|t| one_of(&t.lower, words))
    }

    fn note_problem(&mut self, problem: String) {
        self.problem.get_or_insert(problem);
    }

    fn read_features(&mut self, vocabulary: &Vocabulary) {
        let projects = FeatureProjects::new(vocabulary.projects.iter().map(|p| p.to_uppercase()));
        for (i, token) in self.tokens.iter().enumerate() {
            let keys = projects.keys_in(&token.text.to_uppercase());
            if keys.is_empty() {
                if looks_like_key(&token.text) {
                    self.foreign_keys.push(token.text.clone());
                }
                continue;
            }
            self.used[i] = true;
            for key in keys {
                if !self.features.contains(&key) {
                    self.features.push(key);
                }
            }
        }
    }

    fn read_pull_requests(&mut self, vocabulary: &Vocabulary) {
        let mut i = 0;
        while i < self.tokens.len() {
            match self.pull_request_at(i, vocabulary) {
                Some(Ok(Reference { repo, number, len })) => {
                    self.used[i..i + len].fill(true);
                    if !self.pull_requests.contains(&(repo.clone(), number)) {
                        self.pull_requests.push((repo, number));
                    }
                    i += len;
                }
                Some(Err(problem)) => {
                    self.used[i] = true;
                    self.note_problem(problem);
                    i += 1;
                }
                None => i += 1,
            }
        }
    }

    /// The pull request named from token `i` on, if one is:
    /// `#432`, `!12`, `shop-api#432`, `PR#432`, `pr-432`, `PR 432`, `PR #432`,
    /// `pull request 432`, `merge request no. 12`.
    fn pull_request_at(&self, i: usize, vocabulary: &Vocabulary) -> Option<Result<Reference, String>> {
        if self.used[i] {
            return None;
        }
        let word = self.lower(i)?;
        if let Some(number) = marked_number(word) {
            return Some(Ok(Reference { repo: None, number, len: 1 }));
        }
        if let Some(at) = word.rfind(['#', '!']) {
            let (prefix, number) = (&word[..at], number_in(&word[at + 1..]));
            if let Some(number) = number
                && !prefix.is_empty()
            {
                if one_of(prefix, REQUEST_WORDS) {
                    return Some(Ok(Reference { repo: None, number, len: 1 }));
                }
                if prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)) {
                    return Some(match repository_named(prefix, vocabulary) {
                        Some(repo) => Ok(Reference { repo: Some(repo), number, len: 1 }),
                        None => Err(unknown_repository(prefix, vocabulary)),
                    });
                }
            }
        }
        for glued in ["pr", "mr"] {
            if let Some(rest) = word.strip_prefix(glued)
                && let Some(number) = number_in(rest.strip_prefix('-').unwrap_or(rest))
            {
                return Some(Ok(Reference { repo: None, number, len: 1 }));
            }
        }
        let keyword_len = match (word, self.lower(i + 1)) {
            ("pull" | "merge", Some("request" | "requests")) => 2,
            (word, _) if one_of(word, REQUEST_WORDS) => 1,
            _ => return None,
        };
        let mut next = i + keyword_len;
        if matches!(self.lower(next), Some("number" | "no" | "nr" | "#")) {
            next += 1;
        }
        let number = self.lower(next).and_then(|w| number_in(w).or_else(|| marked_number(w)))?;
        Some(Ok(Reference { repo: None, number, len: next + 1 - i }))
    }

    fn read_window(&mut self, clock: &Clock) {
        for i in 0..self.tokens.len() {
            if self.used[i] {
                continue;
            }
            let words: Vec<&str> = self.tokens[i..].iter().map(|t| t.lower.as_str()).collect();
            match window_at(&words, clock) {
                Ok(Some(((since, until), len))) if !self.used[i..i + len].contains(&true) => {
                    let phrase = self.tokens[i..i + len].iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ");
                    self.used[i..i + len].fill(true);
                    self.window = Some(Window { since, until, phrase });
                    return;
                }
                Ok(_) => {}
                Err(problem) => {
                    self.note_problem(problem);
                    return;
                }
            }
        }
    }

    fn read_environments(&mut self, vocabulary: &Vocabulary) {
        // (start, length, canonical name) of every match of every name, longest first
        // where two start together, so "eu prod" wins over "eu".
        let mut matches: Vec<(usize, usize, &str)> = Vec::new();
        for (canonical, aliases) in &vocabulary.environments {
            for name in std::iter::once(canonical).chain(aliases) {
                let words: Vec<String> = name.split_whitespace().map(str::to_lowercase).collect();
                if words.is_empty() || words.len() > self.tokens.len() {
                    continue;
                }
                for start in 0..=self.tokens.len() - words.len() {
                    if words.iter().enumerate().all(|(k, w)| self.tokens[start + k].lower == *w) {
                        matches.push((start, words.len(), canonical));
                    }
                }
            }
        }
        matches.sort_by_key(|&(start, len, _)| (start, std::cmp::Reverse(len)));
        for (start, len, canonical) in matches {
            if self.used[start..start + len].contains(&true) {
                continue;
            }
            self.used[start..start + len].fill(true);
            if !self.environments.iter().any(|(_, name)| name == canonical) {
                self.environments.push((start, canonical.to_string()));
            }
        }
    }

    fn read_repositories(&mut self, vocabulary: &Vocabulary) {
        for (i, token) in self.tokens.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            if let Some(repo) = repository_named(&token.lower, vocabulary) {
                self.used[i] = true;
                if !self.repositories.contains(&repo) {
                    self.repositories.push(repo);
                }
            }
        }
    }

    /// Hex words of 7 to 40 digits still unread: commits when the question says "commit"
    /// (or "sha", "revision"), or when they mix digits and letters, as abbreviated SHAs
    /// almost always do and English words never do.
    fn read_commits(&mut self) {
        let said_commit = self.has(COMMIT_WORDS);
        for (i, token) in self.tokens.iter().enumerate() {
            let word = token.lower.as_str();
            let hex = (7..=40).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_hexdigit());
            let mixed = word.bytes().any(|b| b.is_ascii_digit()) && word.bytes().any(|b| b.is_ascii_alphabetic());
            if self.used[i] || !hex || !(said_commit || mixed) {
                continue;
            }
            self.used[i] = true;
            if !self.commits.iter().any(|c| c == word) {
                self.commits.push(word.to_string());
            }
        }
    }

    /// The one thing the question is about, if it names one; an error if it names several.
    fn target(&self) -> Result<Option<Target>, String> {
        let mut targets: Vec<Target> = self.features.iter().map(|key| Target::Feature { key: key.clone() }).collect();
        targets.extend(
            self.pull_requests.iter().map(|(repo, number)| Target::PullRequest { repo: repo.clone(), number: *number }),
        );
        targets.extend(self.commits.iter().map(|sha| Target::Commit { sha: sha.clone() }));
        if targets.len() > 1 {
            let named: Vec<String> = targets.iter().map(describe).collect();
            return Err(format!("The question names {}; ask about one at a time.", named.join(", ")));
        }
        if let Some(Target::PullRequest { repo: None, number }) = targets.first()
            && self.repositories.len() > 1
        {
            return Err(format!("Pull request {number} of which repository: {}?", self.repositories.join(" or ")));
        }
        Ok(targets.pop())
    }

    /// The one environment the question names, or what to say when it names none or several.
    fn environment(&self, vocabulary: &Vocabulary) -> Result<String, String> {
        match self.environments.as_slice() {
            [(_, name)] => Ok(name.clone()),
            [] => Err(match self.unknown_place() {
                Some(word) => format!(
                    "\"{word}\" is not an environment I know. Known environments: {}.",
                    environment_list(vocabulary)
                ),
                None => format!("Which environment? Known environments: {}.", environment_list(vocabulary)),
            }),
            several => {
                let names: Vec<&str> = several.iter().map(|(_, name)| name.as_str()).collect();
                Err(format!("The question names several environments ({}); name one.", names.join(", ")))
            }
        }
    }

    /// A word where an environment's name would stand ("in narnia", "our narnia
    /// environment") that names none: the asker meant an environment not configured.
    fn unknown_place(&self) -> Option<&str> {
        let placeish = |i: usize| {
            let word = self.tokens[i].lower.as_str();
            !self.used[i]
                && word.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')
                && !word.chars().all(|c| c.is_ascii_digit())
                && !one_of(word, NOT_PLACES)
                && !one_of(word, FILLER_WORDS)
        };
        let n = self.tokens.len();
        let before_environment =
            (0..n).find(|&i| placeish(i) && matches!(self.lower(i + 1), Some("environment" | "env" | "cluster")));
        let after_preposition =
            (0..n).filter(|&i| matches!(self.lower(i), Some("in" | "to" | "into" | "on" | "at"))).find_map(|i| {
                let place = (i + 1..n).find(|&k| !one_of(&self.tokens[k].lower, FILLER_WORDS))?;
                placeish(place).then_some(place)
            });
        before_environment.or(after_preposition).map(|i| self.tokens[i].text.as_str())
    }

    /// What to say when the question needs a feature, pull request or commit and has none.
    fn missing_target(&self, vocabulary: &Vocabulary) -> String {
        let project = vocabulary.projects.first().map_or("PROJ", String::as_str).to_uppercase();
        let mut message =
            format!("Which feature, pull request or commit? For example {project}-12, PR 432 or commit 3f2a1b9.");
        if let Some(key) = self.foreign_keys.first() {
            message.push_str(&format!(
                " {key} is not an issue of a feature project (those are: {}).",
                if vocabulary.projects.is_empty() {
                    "none configured".to_string()
                } else {
                    vocabulary.projects.join(", ")
                }
            ));
        }
        message
    }

    fn understood(&self) -> Vec<String> {
        let mut understood: Vec<String> = self.features.iter().map(|key| format!("feature {key}")).collect();
        understood.extend(
            self.pull_requests
                .iter()
                .map(|(repo, number)| describe(&Target::PullRequest { repo: repo.clone(), number: *number })),
        );
        understood.extend(self.commits.iter().map(|sha| format!("commit {sha}")));
        understood.extend(self.environments.iter().map(|(_, name)| format!("environment {name}")));
        let attached = |repo: &str| self.pull_requests.iter().any(|(r, _)| r.as_deref() == Some(repo));
        understood
            .extend(self.repositories.iter().filter(|r| !attached(r.as_str())).map(|r| format!("repository {r}")));
        understood.extend(self.window.iter().map(|w| format!("time {}", w.phrase)));
        understood
    }
}

/// A pull request named in the question, and how many words naming it took.
struct Reference {
    repo: Option<String>,
    number: i64,
    len: usize,
}

/// Whether `word` is one of `words` (space-separated).
fn one_of(word: &str, words: &str) -> bool {
    words.split_ascii_whitespace().any(|w| w == word)
}

/// `#432` or `!12`.
fn marked_number(word: &str) -> Option<i64> {
    number_in(word.strip_prefix('#').or_else(|| word.strip_prefix('!'))?)
}

/// A positive decimal number that fits, nothing else around it.
fn number_in(word: &str) -> Option<i64> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok().filter(|n| *n > 0)
}

/// Shaped like a Jira key (`ABC-12`), as typed: upper case project, dash, number.
fn looks_like_key(word: &str) -> bool {
    let Some((project, number)) = word.rsplit_once('-') else { return false };
    project.len() >= 2
        && project.starts_with(|c: char| c.is_ascii_uppercase())
        && project.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && number_in(number).is_some()
}

/// The known repository `name` stands for: the same name, ignoring case, or the same
/// last path segment (`acme/shop-api` and `shop-api`).
fn repository_named(name: &str, vocabulary: &Vocabulary) -> Option<String> {
    let last = |path: &str| path.rsplit('/').next().unwrap_or(path).to_lowercase();
    vocabulary
        .repositories
        .iter()
        .find(|repo| repo.eq_ignore_ascii_case(name) || (!last(name).is_empty() && last(repo) == last(name)))
        .cloned()
}

fn unknown_repository(name: &str, vocabulary: &Vocabulary) -> String {
    if vocabulary.repositories.is_empty() {
        format!("\"{name}\" is not a repository I know; none are known yet.")
    } else {
        format!("\"{name}\" is not a repository I know. Known repositories: {}.", vocabulary.repositories.join(", "))
    }
}

/// "production (or prod), qa, staging (or stage)".
fn environment_list(vocabulary: &Vocabulary) -> String {
    if vocabulary.environments.is_empty() {
        return "none are configured".to_string();
    }
    let names: Vec<String> = vocabulary
        .environments
        .iter()
        .map(|(name, aliases)| match aliases.as_slice() {
            [] => name.clone(),
            aliases => format!("{name} (or {})", aliases.join(", ")),
        })
        .collect();
    names.join(", ")
}

fn describe(target: &Target) -> String {
    match target {
        Target::Feature { key } => format!("feature {key}"),
        Target::PullRequest { repo: Some(repo), number } => format!("pull request {number} in {repo}"),
        Target::PullRequest { repo: None, number } => format!("pull request {number}"),
        Target::Commit { sha } => format!("commit {sha}"),
    }
}

// ---------------------------------------------------------------------------------------
// Which question

/// Picks the question. The order settles overlapping keywords: an action (roll back)
/// first, then "where", "who", a bare reference, then by what the question is about.
fn classify(m: &Mentions, vocabulary: &Vocabulary, clock: &Clock) -> Result<Question, String> {
    if let Some(problem) = &m.problem {
        return Err(problem.clone());
    }
    let target = m.target()?;
    let rollback = m.has("rollback roll-back revert") || (m.has("roll rolling rolled") && m.has("back"));
    if rollback {
        return rollback_question(m, vocabulary, target);
    }
    let which_environment = m.tokens.windows(2).any(|pair| {
        matches!(pair[0].lower.as_str(), "which" | "what")
            && matches!(pair[1].lower.as_str(), "environment" | "environments" | "env" | "envs")
    });
    if m.has("where") || (which_environment && target.is_some()) {
        return target.map(|target| Question::WhereDeployed { target }).ok_or_else(|| m.missing_target(vocabulary));
    }
    if m.has("who") {
        if let Some(target) = target {
            return Err(format!(
                "I can tell who pushed to an environment's manifests in a time window, not who worked on {}. \
                 Ask, for example: \"Who pushed to production last Friday afternoon?\"",
                describe(&target)
            ));
        }
        return Ok(Question::ManifestPushers {
            environment: m.environment(vocabulary)?,
            window: m.window_or_default(clock)?,
        });
    }
    // A bare reference, as typed into a search box: where is it?
    if let Some(target) = &target
        && m.used.iter().all(|used| *used)
        && m.environments.is_empty()
        && m.window.is_none()
    {
        return Ok(Question::WhereDeployed { target: target.clone() });
    }
    match target {
        Some(Target::PullRequest { repo, number }) => pull_request_question(m, repo, number),
        Some(Target::Feature { key }) => feature_question(m, vocabulary, key),
        Some(Target::Commit { sha }) => Err(format!(
            "About commit {sha} I can tell where it is deployed, or roll an environment back to just before it."
        )),
        None => environment_question(m, vocabulary, clock),
    }
}

fn rollback_question(m: &Mentions, vocabulary: &Vocabulary, target: Option<Target>) -> Result<Question, String> {
    let Some(target) = target else {
        return Err(format!("Roll back to just before what? {}", m.missing_target(vocabulary)));
    };
    let environment = m.environment(vocabulary)?;
    if !m.has("before prior") {
        return Err(format!(
            "I can roll an environment back to just before something shipped; say \"before\", as in \
             \"Roll {environment} back to just before {}\".",
            describe(&target)
        ));
    }
    Ok(Question::RollbackBefore { environment, target })
}

fn pull_request_question(m: &Mentions, repo: Option<String>, number: i64) -> Result<Question, String> {
    if m.has(IMAGE_WORDS) {
        Ok(Question::ImagesOfPullRequest { repo, number })
    } else if m.has(PIPELINE_WORDS) {
        Ok(Question::PipelinesOfPullRequest { repo, number })
    } else if m.has(FEATURE_WORDS) {
        Ok(Question::FeaturesOfPullRequest { repo, number })
    } else {
        Err(format!(
            "What would you like to know about {}? I can tell which features it implements, which pipelines \
             handled it, which container images it rebuilt and where it is deployed.",
            describe(&Target::PullRequest { repo, number })
        ))
    }
}

fn feature_question(m: &Mentions, vocabulary: &Vocabulary, key: String) -> Result<Question, String> {
    if m.has(RESOURCE_WORDS) {
        return Ok(Question::ResourcesAffected { key });
    }
    if m.has("when") {
        return Ok(Question::FeatureDeployedWhen { environment: m.environment(vocabulary)?, key });
    }
    if !m.environments.is_empty() || m.has(PRESENCE_WORDS) {
        return Ok(Question::FeaturePresentNow { environment: m.environment(vocabulary)?, key });
    }
    Err(format!(
        "What would you like to know about feature {key}? I can tell where it is deployed, when it reached an \
         environment, whether an environment has it now and which Kubernetes services it affected."
    ))
}

/// Questions about environments themselves: a comparison, or what entered one.
fn environment_question(m: &Mentions, vocabulary: &Vocabulary, clock: &Clock) -> Result<Question, String> {
    let compare = m.has(COMPARE_WORDS);
    if compare || (m.environments.len() == 2 && m.has(LACKING_WORDS)) {
        let [(_, first), (_, second)] = m.environments.as_slice() else {
            return Err(format!(
                "Compare which two environments? Known environments: {}.",
                environment_list(vocabulary)
            ));
        };
        // "in staging but not in production": the lacking one is `to`, whatever the order.
        let lacking = |position: usize| {
            m.tokens[position.saturating_sub(3)..position].iter().any(|t| one_of(&t.lower, LACKING_WORDS))
        };
        let (from, to) = if lacking(m.environments[0].0) && !lacking(m.environments[1].0) {
            (second.clone(), first.clone())
        } else {
            (first.clone(), second.clone())
        };
        return Ok(Question::Compare { from, to });
    }
    if m.has(ENTRY_WORDS) || (m.window.is_some() && !m.environments.is_empty()) {
        return Ok(Question::FeaturesEntered {
            environment: m.environment(vocabulary)?,
            window: m.window_or_default(clock)?,
        });
    }
    if !m.foreign_keys.is_empty() {
        return Err(m.missing_target(vocabulary));
    }
    Err("I could not tell what you are asking. Try one of the example questions.".to_string())
}

impl Mentions {
    /// The window the question names, or the last 7 days.
    fn window_or_default(&self, clock: &Clock) -> Result<Window, String> {
        if let Some(window) = &self.window {
            return Ok(window.clone());
        }
        let since = clock.now.checked_sub(Span::new().days(7)).map_err(out_of_range)?;
        Ok(Window { since: millis(&since), until: millis(&clock.now), phrase: "the last 7 days".to_string() })
    }
}

// ---------------------------------------------------------------------------------------
// Time phrases

/// The asker's "now", in their zone: every calendar step (days, weeks, the start of a
/// day) is taken in that zone, so days across a DST change last 23 or 25 hours.
struct Clock {
    now: Zoned,
}

/// `[since, until)` in epoch milliseconds.
type Range = (i64, i64);

/// Parts of a day, as hours `[start, end)`.
const PARTS: [(&str, i8, i8); 3] = [("morning", 0, 12), ("afternoon", 12, 18), ("evening", 18, 24)];

impl Clock {
    fn today(&self) -> Date {
        self.now.date()
    }

    fn now_ms(&self) -> i64 {
        millis(&self.now)
    }

    /// The first instant of `date` in the zone (midnight, or later if a DST gap skips it).
    fn start_of(&self, date: Date) -> Result<i64, String> {
        date.to_zoned(self.now.time_zone().clone()).map(|z| millis(&z)).map_err(out_of_range)
    }

    fn days(&self, first: Date, count: i64) -> Result<Range, String> {
        let end = first.checked_add(Span::new().days(count)).map_err(out_of_range)?;
        Ok((self.start_of(first)?, self.start_of(end)?))
    }

    /// Hours `[start, end)` of `date`; hour 24 is the start of the next day.
    fn hours(&self, date: Date, start: i8, end: i8) -> Result<Range, String> {
        let at = |hour: i8| -> Result<i64, String> {
            if hour == 24 {
                return self.start_of(date.tomorrow().map_err(out_of_range)?);
            }
            date.at(hour, 0, 0, 0).to_zoned(self.now.time_zone().clone()).map(|z| millis(&z)).map_err(out_of_range)
        };
        Ok((at(start)?, at(end)?))
    }

    /// The last `span` up to now.
    fn last(&self, span: Span) -> Result<Range, String> {
        let since = self.now.checked_sub(span).map_err(out_of_range)?;
        Ok((millis(&since), self.now_ms()))
    }

    /// The Monday starting this ISO week.
    fn this_monday(&self) -> Result<Date, String> {
        let today = self.today();
        today.checked_sub(Span::new().days(today.weekday().to_monday_zero_offset())).map_err(out_of_range)
    }
}

fn millis(zoned: &Zoned) -> i64 {
    zoned.timestamp().as_millisecond()
}

fn out_of_range(_: jiff::Error) -> String {
    "That time is out of the range of dates I can work with.".to_string()
}

fn weekday_named(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

fn part_named(word: Option<&str>) -> Option<(i8, i8)> {
    PARTS.iter().find(|(name, _, _)| Some(*name) == word).map(|&(_, start, end)| (start, end))
}

/// `2026-11-02`: `None` when not date-shaped, an error when shaped but no such day.
fn iso_date(word: &str) -> Option<Result<Date, String>> {
    let b = word.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    let field = |range: std::ops::Range<usize>| -> i16 { word[range].parse().unwrap_or(0) };
    Some(Date::new(field(0..4), field(5..7) as i8, field(8..10) as i8).map_err(|_| format!("{word} is not a date.")))
}

/// A span of `count` units: `hours`, `days`, ... (singular or plural, some abbreviated).
/// Days, weeks and months are calendar units in the asker's zone; hours and minutes exact.
fn span_of(count: i64, unit: &str) -> Option<Result<Span, String>> {
    let span = match unit {
        "minute" | "minutes" | "min" | "mins" => Span::new().try_minutes(count),
        "hour" | "hours" | "hr" | "hrs" | "h" => Span::new().try_hours(count),
        "day" | "days" | "d" => Span::new().try_days(count),
        "week" | "weeks" => Span::new().try_weeks(count),
        "month" | "months" => Span::new().try_months(count),
        _ => return None,
    };
    Some(span.map_err(|_| format!("{count} {unit} is too long a time.")))
}

/// The time phrase starting at `words[0]`, as its range and the number of words it used.
///
/// Calendar periods are whole: a day is [00:00, next 00:00), a morning 00-12, an afternoon
/// 12-18, an evening 18-24, a week an ISO week from Monday, "between A and B" includes B.
/// "since ..." and "the last N hours/days" end now. A weekday ("Friday", "on Friday",
/// "last Friday") is the most recent one strictly before today, as people asking on a
/// Friday say "today" for today; after "since", today counts ("since Monday" on a Monday).
fn window_at(words: &[&str], clock: &Clock) -> Result<Option<(Range, usize)>, String> {
    let word = |k: usize| words.get(k).copied();
    let today = clock.today();
    // A day, or one of its parts when the next word names one: "Friday afternoon".
    let day_or_part = |date: Date, used: usize| -> Result<Option<(Range, usize)>, String> {
        Ok(Some(match part_named(word(used)) {
            Some((start, end)) => (clock.hours(date, start, end)?, used + 1),
            None => (clock.days(date, 1)?, used),
        }))
    };
    let last = |weekday: Weekday| today.nth_weekday(-1, weekday).map_err(out_of_range);
    if let (Some("last" | "past"), Some(weekday)) = (word(0), word(1).and_then(weekday_named)) {
        return day_or_part(last(weekday)?, 2);
    }
    match word(0) {
        Some("today") => Ok(Some((clock.days(today, 1)?, 1))),
        Some("tonight") => Ok(Some((clock.hours(today, 18, 24)?, 1))),
        Some("this") => match word(1) {
            Some("week") => Ok(Some((clock.days(clock.this_monday()?, 7)?, 2))),
            Some("month") => Ok(Some((month(clock, today.first_of_month())?, 2))),
            part => match part_named(part) {
                Some((start, end)) => Ok(Some((clock.hours(today, start, end)?, 2))),
                None => Ok(None),
            },
        },
        Some("yesterday") => day_or_part(today.yesterday().map_err(out_of_range)?, 1),
        Some("last") if word(1) == Some("week") => {
            let monday = clock.this_monday()?.checked_sub(Span::new().days(7)).map_err(out_of_range)?;
            Ok(Some((clock.days(monday, 7)?, 2)))
        }
        Some("last") if word(1) == Some("month") => {
            let first = today.first_of_month().checked_sub(Span::new().months(1)).map_err(out_of_range)?;
            Ok(Some((month(clock, first)?, 2)))
        }
        Some("last" | "past") => relative(&words[1..], clock).map(|found| found.map(|(range, used)| (range, used + 1))),
        Some("the") if matches!(word(1), Some("last" | "past")) => {
            relative(&words[2..], clock).map(|found| found.map(|(range, used)| (range, used + 2)))
        }
        Some("on") => match word(1) {
            Some(next) if weekday_named(next).is_some() || iso_date(next).is_some() => {
                window_at(&words[1..], clock).map(|found| found.map(|(range, used)| (range, used + 1)))
            }
            _ => Ok(None),
        },
        Some("since") => since(&words[1..], clock),
        Some("between" | "from") => between(words, clock),
        Some(w) => {
            if let Some(weekday) = weekday_named(w) {
                return day_or_part(last(weekday)?, 1);
            }
            match iso_date(w) {
                Some(date) => Ok(Some((clock.days(date?, 1)?, 1))),
                None => Ok(None),
            }
        }
        None => Ok(None),
    }
}

fn month(clock: &Clock, first: Date) -> Result<Range, String> {
    let next = first.checked_add(Span::new().months(1)).map_err(out_of_range)?;
    Ok((clock.start_of(first)?, clock.start_of(next)?))
}

/// After "last" or "the last": "24 hours", "3 days", "hour", "week".
fn relative(words: &[&str], clock: &Clock) -> Result<Option<(Range, usize)>, String> {
    let (count, unit, used) = match words {
        [count, unit, ..] if number_in(count).is_some() => (number_in(count).unwrap_or(1), *unit, 2),
        [unit, ..] => (1, *unit, 1),
        [] => return Ok(None),
    };
    match span_of(count, unit) {
        Some(span) => Ok(Some((clock.last(span?)?, used))),
        None => Ok(None),
    }
}

/// After "since": a weekday (today counts: "since Monday" on a Monday is since this
/// morning) or the start of any other time phrase; until now.
fn since(words: &[&str], clock: &Clock) -> Result<Option<(Range, usize)>, String> {
    let start = match words.first().copied().and_then(weekday_named) {
        Some(weekday) => {
            let day = clock.today().tomorrow().and_then(|d| d.nth_weekday(-1, weekday)).map_err(out_of_range)?;
            Some((clock.days(day, 1)?, 1))
        }
        None if words.first() == Some(&"since") => None,
        None => window_at(words, clock)?,
    };
    let Some(((since, _), used)) = start else { return Ok(None) };
    if since > clock.now_ms() {
        return Err(format!("\"since {}\" starts after now.", words[..used].join(" ")));
    }
    Ok(Some(((since, clock.now_ms()), used + 1)))
}

/// "between 2026-11-02 and 2026-11-05", "from 2026-11-02 to 2026-11-05": both days whole.
fn between(words: &[&str], clock: &Clock) -> Result<Option<(Range, usize)>, String> {
    let [_, first, joint, last, ..] = words else { return Ok(None) };
    if !matches!(*joint, "and" | "to" | "until" | "till" | "through") {
        return Ok(None);
    }
    let (Some(first), Some(last)) = (iso_date(first), iso_date(last)) else { return Ok(None) };
    let (first, last) = (first?, last?);
    if last < first {
        return Err(format!("The window from {first} to {last} ends before it starts."));
    }
    let (since, _) = clock.days(first, 1)?;
    let (_, until) = clock.days(last, 1)?;
    Ok(Some(((since, until), 4)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vocabulary() -> Vocabulary {
        Vocabulary {
            environments: vec![
                ("production".to_string(), vec!["prod".to_string()]),
                ("qa".to_string(), vec![]),
                ("staging".to_string(), vec!["stage".to_string()]),
            ],
            projects: vec!["PROJ".to_string(), "SHOP".to_string()],
            repositories: vec!["shop-api".to_string(), "web".to_string(), "manifests".to_string()],
        }
    }

    /// An instant written with its offset, as epoch milliseconds.
    fn ms(instant: &str) -> i64 {
        instant.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn paris() -> TimeZone {
        parse_time_zone("Europe/Paris").unwrap()
    }

    /// Friday 27 November 2026, 15:30 in Paris (UTC+1).
    fn friday() -> i64 {
        ms("2026-11-27T15:30:00+01:00")
    }

    fn ask(question: &str) -> Result<Question, NotUnderstood> {
        parse(question, &paris(), friday(), &vocabulary())
    }

    fn window(question: &str) -> Window {
        match ask(question) {
            Ok(Question::FeaturesEntered { window, .. } | Question::ManifestPushers { window, .. }) => window,
            other => panic!("{question:?}: {other:?}"),
        }
    }

    fn feature(key: &str) -> Target {
        Target::Feature { key: key.to_string() }
    }

    fn pr(repo: Option<&str>, number: i64) -> Target {
        Target::PullRequest { repo: repo.map(str::to_string), number }
    }

    #[test]
    fn the_clock_is_right() {
        let now = Timestamp::from_millisecond(friday()).unwrap().to_zoned(paris());
        assert_eq!(now.weekday(), Weekday::Friday);
    }

    #[test]
    fn question_1_features_of_a_pull_request() {
        let features =
            |repo: Option<&str>, number| Ok(Question::FeaturesOfPullRequest { repo: repo.map(str::to_string), number });
        assert_eq!(ask("Which feature was implemented by pull request 432?"), features(None, 432));
        assert_eq!(ask("What does PR 432 implement?"), features(None, 432));
        assert_eq!(ask("which features are in pull-request #432"), features(None, 432));
        assert_eq!(ask("Which issues did shop-api#432 fix?"), features(Some("shop-api"), 432));
        assert_eq!(ask("features of PR 432 in shop-api"), features(Some("shop-api"), 432));
        assert_eq!(ask("Which tickets does MR !12 implement?"), features(None, 12));
        assert_eq!(ask("jira issues for merge request 12 of acme/web"), features(Some("web"), 12));
    }

    #[test]
    fn question_2_when_a_feature_was_deployed() {
        let when = |key: &str, environment: &str| {
            Ok(Question::FeatureDeployedWhen { key: key.to_string(), environment: environment.to_string() })
        };
        assert_eq!(ask("When was issue PROJ-5612 deployed in our QA environment?"), when("PROJ-5612", "qa"));
        assert_eq!(ask("when did proj-5612 reach qa"), when("PROJ-5612", "qa"));
        assert_eq!(ask("When was SHOP-7 released to prod?"), when("SHOP-7", "production"));
        assert_eq!(ask("PROJ-5612 shipped to Staging when?"), when("PROJ-5612", "staging"));
    }

    #[test]
    fn question_3_is_a_feature_there_now() {
        let present = |key: &str, environment: &str| {
            Ok(Question::FeaturePresentNow { key: key.to_string(), environment: environment.to_string() })
        };
        assert_eq!(ask("Is PROJ-2356 deployed in production now?"), present("PROJ-2356", "production"));
        assert_eq!(ask("is proj-2356 live in prod?"), present("PROJ-2356", "production"));
        assert_eq!(ask("Has PROJ-2356 reached STAGING yet"), present("PROJ-2356", "staging"));
        assert_eq!(ask("PROJ-2356 in qa?"), present("PROJ-2356", "qa"));
    }

    #[test]
    fn question_4_roll_back() {
        let rollback =
            |environment: &str, target| Ok(Question::RollbackBefore { environment: environment.to_string(), target });
        assert_eq!(
            ask("Roll the staging environment back to just before PROJ-2167 shipped"),
            rollback("staging", feature("PROJ-2167"))
        );
        assert_eq!(ask("rollback stage to before proj-2167"), rollback("staging", feature("PROJ-2167")));
        assert_eq!(
            ask("Revert production to just before commit 3F2A1B9"),
            rollback("production", Target::Commit { sha: "3f2a1b9".to_string() })
        );
        assert_eq!(ask("roll back prod to before PR 12 in web"), rollback("production", pr(Some("web"), 12)));
    }

    #[test]
    fn question_5_pipelines_of_a_pull_request() {
        let pipelines = |repo: Option<&str>, number| {
            Ok(Question::PipelinesOfPullRequest { repo: repo.map(str::to_string), number })
        };
        assert_eq!(ask("Which pipelines handled pull request 156?"), pipelines(None, 156));
        assert_eq!(ask("Which builds ran for PR #156?"), pipelines(None, 156));
        assert_eq!(ask("what CI runs handled shop-api!156"), pipelines(Some("shop-api"), 156));
        assert_eq!(ask("pipelines for #156"), pipelines(None, 156));
        assert_eq!(ask("workflows of PR156"), pipelines(None, 156));
    }

    #[test]
    fn question_6_who_pushed_to_an_environment() {
        let question = "Who pushed to production (by committing into the manifests repository) last Friday afternoon?";
        let Ok(Question::ManifestPushers { environment, window }) = ask(question) else {
            panic!("{:?}", ask(question))
        };
        assert_eq!(environment, "production");
        assert_eq!(
            window,
            Window {
                since: ms("2026-11-20T12:00:00+01:00"),
                until: ms("2026-11-20T18:00:00+01:00"),
                phrase: "last Friday afternoon".to_string(),
            }
        );
        let Ok(Question::ManifestPushers { environment, window }) = ask("who committed to prod yesterday afternoon")
        else {
            panic!()
        };
        assert_eq!((environment.as_str(), window.since), ("production", ms("2026-11-26T12:00:00+01:00")));
        let Ok(Question::ManifestPushers { environment, window }) = ask("Who changed staging?") else { panic!() };
        assert_eq!(environment, "staging");
        assert_eq!(
            window,
            Window { since: ms("2026-11-20T15:30:00+01:00"), until: friday(), phrase: "the last 7 days".to_string() }
        );
    }

    #[test]
    fn question_7_features_that_entered_an_environment() {
        let Ok(Question::FeaturesEntered { environment, window }) = ask("Which features entered staging this morning?")
        else {
            panic!()
        };
        assert_eq!(environment, "staging");
        assert_eq!(
            window,
            Window {
                since: ms("2026-11-27T00:00:00+01:00"),
                until: ms("2026-11-27T12:00:00+01:00"),
                phrase: "this morning".to_string(),
            }
        );
        for (question, environment) in [
            ("What went to prod yesterday?", "production"),
            ("which features reached QA since 2026-11-02", "qa"),
            ("features deployed to Stage last week", "staging"),
            ("What's new in staging?", "staging"),
        ] {
            assert!(
                matches!(ask(question), Ok(Question::FeaturesEntered { environment: e, .. }) if e == environment),
                "{question}: {:?}",
                ask(question)
            );
        }
    }

    #[test]
    fn question_8_images_of_a_pull_request() {
        let images =
            |repo: Option<&str>, number| Ok(Question::ImagesOfPullRequest { repo: repo.map(str::to_string), number });
        assert_eq!(
            ask("Which container images were rebuilt as a result of merging pull request 475?"),
            images(None, 475)
        );
        assert_eq!(ask("Which images were built for PR 475?"), images(None, 475));
        assert_eq!(ask("what docker images did merging shop-api#475 rebuild"), images(Some("shop-api"), 475));
    }

    #[test]
    fn question_9_resources_a_feature_affected() {
        let affected = |key: &str| Ok(Question::ResourcesAffected { key: key.to_string() });
        assert_eq!(ask("Which Kubernetes services were affected by PROJ-5923?"), affected("PROJ-5923"));
        assert_eq!(ask("What services does proj-5923 touch?"), affected("PROJ-5923"));
        assert_eq!(ask("workloads impacted by SHOP-1"), affected("SHOP-1"));
    }

    #[test]
    fn comparing_environments() {
        let compare = |from: &str, to: &str| Ok(Question::Compare { from: from.to_string(), to: to.to_string() });
        assert_eq!(ask("What is in staging but not in production?"), compare("staging", "production"));
        assert_eq!(ask("What's in prod but not in staging?"), compare("production", "staging"));
        assert_eq!(ask("what is not in production yet but is in staging"), compare("staging", "production"));
        assert_eq!(ask("compare staging and prod"), compare("staging", "production"));
        assert_eq!(ask("diff stage production"), compare("staging", "production"));
        assert_eq!(ask("qa vs staging"), compare("qa", "staging"));
    }

    #[test]
    fn where_something_is_deployed() {
        let at = |target| Ok(Question::WhereDeployed { target });
        assert_eq!(ask("Where is PROJ-12 deployed now?"), at(feature("PROJ-12")));
        assert_eq!(ask("where is commit 3f2a1b9 deployed"), at(Target::Commit { sha: "3f2a1b9".to_string() }));
        assert_eq!(ask("where is commit deadbeef running"), at(Target::Commit { sha: "deadbeef".to_string() }));
        assert_eq!(ask("where is PR 12 deployed"), at(pr(None, 12)));
        assert_eq!(ask("Which environments have SHOP-3?"), at(feature("SHOP-3")));
        assert_eq!(ask("PROJ-12"), at(feature("PROJ-12")));
        assert_eq!(ask("shop-api#432"), at(pr(Some("shop-api"), 432)));
        assert_eq!(ask("3f2a1b9c"), at(Target::Commit { sha: "3f2a1b9c".to_string() }));
    }

    #[test]
    fn references_in_every_spelling() {
        for (question, number) in [
            ("where is PR 432", 432),
            ("where is PR #432", 432),
            ("where is #432", 432),
            ("where is pull request 432", 432),
            ("where is pull-request 432", 432),
            ("where is PR#432", 432),
            ("where is pr-432", 432),
            ("where is MR !12", 12),
            ("where is !12", 12),
            ("where is merge request 12", 12),
            ("where is merge request no. 12", 12),
        ] {
            assert_eq!(ask(question), Ok(Question::WhereDeployed { target: pr(None, number) }), "{question}");
        }
        for question in ["where is shop-api#432", "where is PR 432 in shop-api", "where is shop-api PR 432"] {
            assert_eq!(ask(question), Ok(Question::WhereDeployed { target: pr(Some("shop-api"), 432) }), "{question}");
        }
        // Hex alone is a commit only with a digit and a letter in it, or beside "commit".
        assert_eq!(ask("where is 1234567").map_err(|e| e.understood), Err(vec![]));
        assert!(ask("where is deadbeef").is_err());
    }

    fn range(question: &str) -> (i64, i64, String) {
        let window = window(question);
        (window.since, window.until, window.phrase)
    }

    #[test]
    fn time_phrases_in_the_askers_zone() {
        let now = friday();
        let cases = [
            ("today", "2026-11-27T00:00:00+01:00", "2026-11-28T00:00:00+01:00"),
            ("this morning", "2026-11-27T00:00:00+01:00", "2026-11-27T12:00:00+01:00"),
            ("this afternoon", "2026-11-27T12:00:00+01:00", "2026-11-27T18:00:00+01:00"),
            ("this evening", "2026-11-27T18:00:00+01:00", "2026-11-28T00:00:00+01:00"),
            ("yesterday", "2026-11-26T00:00:00+01:00", "2026-11-27T00:00:00+01:00"),
            ("yesterday morning", "2026-11-26T00:00:00+01:00", "2026-11-26T12:00:00+01:00"),
            ("yesterday afternoon", "2026-11-26T12:00:00+01:00", "2026-11-26T18:00:00+01:00"),
            ("last Friday", "2026-11-20T00:00:00+01:00", "2026-11-21T00:00:00+01:00"),
            ("last Friday afternoon", "2026-11-20T12:00:00+01:00", "2026-11-20T18:00:00+01:00"),
            ("last friday evening", "2026-11-20T18:00:00+01:00", "2026-11-21T00:00:00+01:00"),
            ("last Monday morning", "2026-11-23T00:00:00+01:00", "2026-11-23T12:00:00+01:00"),
            ("on Monday", "2026-11-23T00:00:00+01:00", "2026-11-24T00:00:00+01:00"),
            ("on Friday", "2026-11-20T00:00:00+01:00", "2026-11-21T00:00:00+01:00"),
            ("Thursday afternoon", "2026-11-26T12:00:00+01:00", "2026-11-26T18:00:00+01:00"),
            ("last week", "2026-11-16T00:00:00+01:00", "2026-11-23T00:00:00+01:00"),
            ("this week", "2026-11-23T00:00:00+01:00", "2026-11-30T00:00:00+01:00"),
            ("this month", "2026-11-01T00:00:00+01:00", "2026-12-01T00:00:00+01:00"),
            ("last month", "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00"),
            ("since Monday", "2026-11-23T00:00:00+01:00", ""),
            ("since Friday", "2026-11-27T00:00:00+01:00", ""),
            ("since yesterday", "2026-11-26T00:00:00+01:00", ""),
            ("since last Friday", "2026-11-20T00:00:00+01:00", ""),
            ("since 2026-11-02", "2026-11-02T00:00:00+01:00", ""),
            ("between 2026-11-02 and 2026-11-05", "2026-11-02T00:00:00+01:00", "2026-11-06T00:00:00+01:00"),
            ("from 2026-11-02 to 2026-11-02", "2026-11-02T00:00:00+01:00", "2026-11-03T00:00:00+01:00"),
            ("on 2026-11-02", "2026-11-02T00:00:00+01:00", "2026-11-03T00:00:00+01:00"),
            ("2026-10-25", "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
            ("the last 24 hours", "2026-11-26T15:30:00+01:00", ""),
            ("last 3 days", "2026-11-24T15:30:00+01:00", ""),
            ("last 2 hours", "2026-11-27T13:30:00+01:00", ""),
            ("the past hour", "2026-11-27T14:30:00+01:00", ""),
            ("the last week", "2026-11-20T15:30:00+01:00", ""),
        ];
        for (phrase, since, until) in cases {
            let until = if until.is_empty() { now } else { ms(until) };
            let question = format!("Which features entered staging {phrase}?");
            assert_eq!(range(&question), (ms(since), until, phrase.to_string()), "{phrase}");
        }
        assert_eq!(range("what went to prod in the last 24 hours").2, "the last 24 hours");
    }

    #[test]
    fn since_monday_on_a_monday_is_since_this_morning() {
        let monday = ms("2026-11-23T09:00:00+01:00");
        let Ok(Question::FeaturesEntered { window, .. }) =
            parse("what entered prod since Monday", &paris(), monday, &vocabulary())
        else {
            panic!()
        };
        assert_eq!((window.since, window.until), (ms("2026-11-23T00:00:00+01:00"), monday));
    }

    #[test]
    fn days_across_the_end_of_daylight_saving_last_25_hours() {
        // New York falls back from EDT (-04:00) to EST (-05:00) at 02:00 on 1 November 2026.
        let new_york = parse_time_zone("America/New_York").unwrap();
        let now = ms("2026-11-02T10:00:00-05:00");
        let window = |phrase: &str| match parse(&format!("what entered qa {phrase}"), &new_york, now, &vocabulary()) {
            Ok(Question::FeaturesEntered { window, .. }) => (window.since, window.until),
            other => panic!("{phrase}: {other:?}"),
        };
        assert_eq!(window("yesterday"), (ms("2026-11-01T00:00:00-04:00"), ms("2026-11-02T00:00:00-05:00")));
        assert_eq!(window("yesterday").1 - window("yesterday").0, 25 * 3_600_000);
        assert_eq!(window("yesterday morning"), (ms("2026-11-01T00:00:00-04:00"), ms("2026-11-01T12:00:00-05:00")));
        assert_eq!(window("last 3 days"), (ms("2026-10-30T10:00:00-04:00"), now));
        assert_eq!(window("the last 72 hours"), (ms("2026-10-30T11:00:00-04:00"), now));
        assert_eq!(window("last week"), (ms("2026-10-26T00:00:00-04:00"), ms("2026-11-02T00:00:00-05:00")));
        assert_eq!(window("last Sunday afternoon"), (ms("2026-11-01T12:00:00-05:00"), ms("2026-11-01T18:00:00-05:00")));
    }

    #[test]
    fn bad_time_phrases_are_reported() {
        let error = ask("what entered prod since 2026-13-45").unwrap_err();
        assert!(error.message.contains("2026-13-45 is not a date"), "{}", error.message);
        let error = ask("what entered prod between 2026-11-05 and 2026-11-02").unwrap_err();
        assert!(error.message.contains("ends before it starts"), "{}", error.message);
        let error = ask("what entered prod since 2027-01-01").unwrap_err();
        assert!(error.message.contains("after now"), "{}", error.message);
        assert!(ask("what entered prod in the last 99999999999 days").is_err());
    }

    #[test]
    fn time_zones() {
        let offset = |tz: &str| parse_time_zone(tz).unwrap().to_offset(Timestamp::UNIX_EPOCH).seconds();
        for (tz, seconds) in [
            ("", 0),
            ("UTC", 0),
            ("utc", 0),
            ("+02:00", 7200),
            ("-0530", -19800),
            ("+2", 7200),
            ("UTC+2", 7200),
            ("GMT-05:30", -19800),
            ("Etc/GMT+2", -7200),
            ("Asia/Kolkata", 19800),
        ] {
            assert_eq!(offset(tz), seconds, "{tz}");
        }
        assert_eq!(parse_time_zone("Europe/Paris").unwrap().iana_name(), Some("Europe/Paris"));
        for bad in ["Mars/Olympus", "+25:00", "UTC+", "+02:7", "paris", "+2:00:00"] {
            let error = parse_time_zone(bad).unwrap_err();
            assert!(error.contains(&format!("{bad:?}")) && error.contains("Europe/Paris"), "{error}");
        }
    }

    #[test]
    fn missing_or_unknown_parts_are_named() {
        let error = ask("Is PROJ-1 deployed?").unwrap_err();
        assert!(error.message.starts_with("Which environment?"), "{}", error.message);
        assert!(error.message.contains("production (or prod), qa, staging (or stage)"), "{}", error.message);
        assert_eq!(error.understood, ["feature PROJ-1"]);
        assert_eq!(error.examples.len(), 11);

        let error = ask("Is PROJ-1 deployed in narnia?").unwrap_err();
        assert!(error.message.starts_with("\"narnia\" is not an environment I know"), "{}", error.message);
        let error = ask("When was PROJ-1 deployed in our Narnia environment?").unwrap_err();
        assert!(error.message.starts_with("\"Narnia\" is not an environment"), "{}", error.message);

        let error = ask("Who pushed last Friday afternoon?").unwrap_err();
        assert!(error.message.starts_with("Which environment?"), "{}", error.message);
        assert_eq!(error.understood, ["time last Friday afternoon"]);

        let error = ask("Is ABC-12 in production?").unwrap_err();
        assert!(
            error.message.contains("ABC-12 is not an issue of a feature project (those are: PROJ, SHOP)"),
            "{}",
            error.message
        );
        assert_eq!(error.understood, ["environment production"]);

        let error = ask("Which pipelines handled billing#12?").unwrap_err();
        assert!(error.message.contains("\"billing\" is not a repository I know"), "{}", error.message);

        let error = ask("Roll staging back to PROJ-1").unwrap_err();
        assert!(error.message.contains("say \"before\""), "{}", error.message);
        assert_eq!(error.understood, ["feature PROJ-1", "environment staging"]);
        assert!(ask("Roll back to before PROJ-1").unwrap_err().message.starts_with("Which environment?"));
        assert!(ask("Roll staging back to before").unwrap_err().message.starts_with("Roll back to just before what?"));
        assert!(
            ask("When did PROJ-1 go from staging to production?").unwrap_err().message.contains("several environments")
        );
        assert!(ask("Is PROJ-1 or PROJ-2 in prod?").unwrap_err().message.contains("feature PROJ-1, feature PROJ-2"));
        assert!(ask("compare staging").unwrap_err().message.starts_with("Compare which two environments?"));
        assert!(ask("tell me about PR 12").unwrap_err().message.contains("about pull request 12?"));
        assert!(ask("Who implemented PROJ-1?").unwrap_err().message.contains("not who worked on feature PROJ-1"));
        let error = ask("which pipelines handled PR 12 in web or shop-api").unwrap_err();
        assert!(error.message.contains("of which repository: web or shop-api?"), "{}", error.message);

        for nonsense in ["", "   ", "?!", "hello there", "what is the meaning of life", "production"] {
            let error = ask(nonsense).unwrap_err();
            assert!(!error.message.is_empty() && error.examples.len() == 11, "{nonsense:?}");
        }
        let error = parse("today", &TimeZone::UTC, i64::MAX, &vocabulary()).unwrap_err();
        assert!(error.message.contains("out of range"));
    }

    #[test]
    fn an_empty_vocabulary_understands_little_but_says_so() {
        let error = parse("Is PROJ-1 in production?", &TimeZone::UTC, 0, &Vocabulary::default()).unwrap_err();
        assert!(error.message.contains("none configured"), "{}", error.message);
        let error = parse("Who pushed to production?", &TimeZone::UTC, 0, &Vocabulary::default()).unwrap_err();
        assert!(error.message.contains("Known environments: none are configured"), "{}", error.message);
    }

    #[test]
    fn the_json_reads_well() {
        let question = ask("roll back staging to before shop-api#12").unwrap();
        assert_eq!(
            serde_json::to_value(&question).unwrap(),
            serde_json::json!({
                "kind": "rollback_before",
                "environment": "staging",
                "target": {"kind": "pull_request", "repo": "shop-api", "number": 12}
            })
        );
    }

    /// Words the random questions are made of, space-separated.
    const WORDS: &str = "which feature when is in to the before roll back who pushed where PR pull request # ! #12 !7 \
        shop-api#3 x#1 PROJ-12 proj-7 commit 3f2a1b9 production prod qa staging stage last this since \
        between and from on Friday afternoon morning yesterday today week month 2026-11-02 2026-02-30 24 \
        hours days 99999999999999999999 not but compare images pipelines services é 日本 - the past in";

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,80}", now in any::<i64>()) {
            let _ = parse(&text, &TimeZone::UTC, now, &vocabulary());
        }

        #[test]
        fn arbitrary_questions_never_panic(
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
            now in -10_000_000_000_000i64..10_000_000_000_000,
        ) {
            let words: Vec<&str> = WORDS.split_ascii_whitespace().collect();
            let question = picks.iter().map(|pick| *pick.get(&words)).collect::<Vec<_>>().join(" ");
            match parse(&question, &paris(), now, &vocabulary()) {
                Ok(Question::FeaturesEntered { window, .. } | Question::ManifestPushers { window, .. }) => {
                    prop_assert!(window.since <= window.until, "{question}: {window:?}");
                }
                Ok(_) => {}
                Err(error) => prop_assert!(!error.message.is_empty()),
            }
        }
    }
}
