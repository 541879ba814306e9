//! The `landfall` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ConfigError, Overrides, Settings};
use crate::ledger::Ledger;
use crate::{serve, telemetry};

/// Landfall: a GitOps dashboard that shows deployments as features (Jira issues) and
/// pull requests instead of git hashes.
///
/// Settings come from, in rising precedence: defaults, a TOML file (`--config FILE`, or
/// `landfall.toml` in the working directory if present), environment variables named
/// `LANDFALL_<KEY>` (`__` separates nested keys), and these flags.
#[derive(Debug, Parser)]
#[command(name = "landfall", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the web dashboard and its API
    ///
    /// Opens (creating if needed) the ledger, applies its migrations and serves the
    /// dashboard, /api, /healthz, /readyz and /metrics until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Create or update the ledger's database schema, then exit
    Migrate,
    /// Sync every configured source once, print what each brought, then exit
    ///
    /// Git repositories (`[[repository]]` in the configuration): remote ones are cloned
    /// into the data directory and fetched, local paths are read in place; only commits
    /// not yet in the ledger are walked. Exits non-zero if any source failed; the others
    /// still sync.
    Ingest,
    /// Tell Landfall, from inside a CI job, what it built or ran
    ///
    /// Posts to the server's report API (`server_url`, with the bearer token from the
    /// variable named by `[reports] token_env`, LANDFALL_REPORT_TOKEN by default). The
    /// commit, branch, pull request, run id and run URL default to what GitHub Actions,
    /// GitLab CI or Jenkins put in the job's environment.
    #[command(subcommand)]
    Report(Box<ReportCommand>),
    /// Ask a question in words, and print the answer
    ///
    /// Any of the nine questions, such as `landfall ask "Is SHOP-2356 deployed in
    /// production now?"` or `landfall ask "Which features entered staging this morning?"`.
    /// Reads the ledger directly; prints what was understood, a one-line answer and a
    /// table, or with --json the same JSON as GET /api/v1/ask.
    Ask(AskArgs),
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question, in quotes
    pub question: String,
    /// Time zone for phrases such as "this morning": an IANA name (Europe/Paris), an
    /// offset (+02:00) or UTC [default: this machine's zone]
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Print the API's JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Report an image build: `landfall report build --image ghcr.io/acme/shop:1.4.2 --digest sha256:… --repository shop-api`
    Build(BuildArgs),
    /// Report a pipeline run: `landfall report pipeline --name build --status success --step compile:build:success`
    Pipeline(PipelineArgs),
}

/// Where the report goes.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Landfall server to report to [default: http://127.0.0.1:3000] [env: LANDFALL_SERVER_URL] [config: server_url]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The image built, REPOSITORY:TAG
    #[arg(long, value_name = "REPOSITORY:TAG")]
    pub image: String,
    /// Its digest, sha256:<64 hex digits>
    #[arg(long)]
    pub digest: String,
    /// The Landfall name of the source repository ([[repository]] name)
    #[arg(long, value_name = "NAME")]
    pub repository: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// When it was built, RFC 3339 [default: now]
    #[arg(long, value_name = "TIME")]
    pub built_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Pipeline name
    #[arg(long)]
    pub name: String,
    /// pending, running, success, failure, cancelled or skipped
    #[arg(long)]
    pub status: String,
    /// The Landfall name of the repository the pipeline ran for
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Start time, RFC 3339
    #[arg(long, value_name = "TIME")]
    pub started_at: Option<String>,
    /// End time, RFC 3339
    #[arg(long, value_name = "TIME")]
    pub finished_at: Option<String>,
    /// A step, NAME:KIND:STATUS (kind: build, test, scan, pre-sync, post-sync, deploy, other); repeatable
    #[arg(long = "step", value_name = "NAME:KIND:STATUS")]
    pub steps: Vec<String>,
}

/// What identifies the CI run; each defaults to the CI system's own variables.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Commit built [default: GITHUB_SHA, CI_COMMIT_SHA or GIT_COMMIT]
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Branch [default: from the CI environment]
    #[arg(long)]
    pub branch: Option<String>,
    /// Pull or merge request number [default: from the CI environment]
    #[arg(long, value_name = "N")]
    pub pull_request: Option<i64>,
    /// CI system [default: github-actions, gitlab-ci or jenkins, as detected]
    #[arg(long, value_name = "NAME")]
    pub ci_system: Option<String>,
    /// Run id [default: GITHUB_RUN_ID, CI_PIPELINE_ID or BUILD_TAG]
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Run URL [default: from the CI environment]
    #[arg(long, value_name = "URL")]
    pub run_url: Option<String>,
}

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// TOML configuration file [default: landfall.toml in the working directory, if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder for Landfall's own files (the SQLite ledger, repository clones) [default: ./data] [env: LANDFALL_DATA_DIR] [config: data_dir]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Ledger database: sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DB or postgresql://… [default: sqlite file landfall.db in the data directory] [env: LANDFALL_DATABASE_URL] [config: database_url]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log level (error, warn, info, debug, trace) or tracing directives such as "info,landfall_server=debug" [default: info] [env: LANDFALL_LOG_LEVEL] [config: log_level]
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format: "text" for people, "json" for log collectors [default: text] [env: LANDFALL_LOG_FORMAT] [config: log_format]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT; port 0 picks a free port (printed at start) [default: 127.0.0.1:3000] [env: LANDFALL_LISTEN] [config: listen]
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// The built front end (wasm bundle, CSS, static files) [default: target/site] [env: LANDFALL_SITE_ROOT] [config: site_root]
    #[arg(long, value_name = "DIR")]
    pub site_root: Option<PathBuf>,
}

impl Cli {
    fn overrides(&self) -> Overrides {
        let serve = match &self.command {
            Command::Serve(args) => Some(args),
            Command::Migrate | Command::Ingest | Command::Report(_) | Command::Ask(_) => None,
        };
        let server_url = match &self.command {
            Command::Report(report) => match report.as_ref() {
                ReportCommand::Build(args) => args.server.server.clone(),
                ReportCommand::Pipeline(args) => args.server.server.clone(),
            },
            _ => None,
        };
        Overrides {
            listen: serve.and_then(|s| s.listen.clone()),
            site_root: serve.and_then(|s| s.site_root.clone()),
            data_dir: self.common.data_dir.clone(),
            database_url: self.common.database_url.clone(),
            log_level: self.common.log_level.clone(),
            log_format: self.common.log_format.clone(),
            server_url,
        }
    }

    fn settings(&self) -> Result<Settings, ConfigError> {
        config::load(self.common.config.as_deref(), std::env::vars(), &self.overrides())
    }
}

/// Runs the command line; start-up problems are printed as one readable message.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("landfall: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&settings.log_level, settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("landfall: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(_) => serve::run(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Ingest => ingest(settings).await,
            Command::Report(report) => crate::reports::client::send(&settings, *report).await,
            Command::Ask(args) => ask(settings, args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("landfall: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn ask(settings: Settings, args: AskArgs) -> anyhow::Result<()> {
    let (tz_name, tz) = match &args.tz {
        Some(name) => {
            (name.clone(), crate::ask::parse_time_zone(name).map_err(|message| anyhow::anyhow!("--tz: {message}"))?)
        }
        None => {
            let zone = jiff::tz::TimeZone::system();
            (zone.iana_name().unwrap_or("UTC").to_string(), zone)
        }
    };
    config::prepare_data_dir(&settings.data_dir)?;
    let ledger = Ledger::open(&settings.database()).await?.excluding_not_found(settings.features.exclude_not_found);
    let vocabulary = crate::answer::vocabulary(&ledger, &settings.features.projects, &args.question).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let response = crate::answer::answer(&ledger, &vocabulary, &args.question, &tz_name, &tz, now).await?;
    ledger.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&response)?);
    } else {
        print!("{}", crate::answer::render_text(&response));
    }
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    config::prepare_data_dir(&settings.data_dir)?;
    let url = settings.database();
    let ledger = Ledger::open(&url).await?;
    let readiness = ledger.readiness().await;
    println!("The ledger at {url} is up to date ({} migrations applied).", readiness.migrations_applied);
    ledger.close().await;
    Ok(())
}

async fn ingest(settings: Settings) -> anyhow::Result<()> {
    config::prepare_data_dir(&settings.data_dir)?;
    let ledger = Ledger::open(&settings.database()).await?;
    if settings.repositories.is_empty() {
        println!("No sources are configured: add [[repository]] tables to the configuration file.");
    }
    if settings.features.projects.is_empty() && !settings.repositories.is_empty() {
        println!("Note: [features] projects is empty, so no issue keys are recognised as features.");
    }
    let outcomes = crate::sync::sync_all(&ledger, &settings).await;
    for (name, outcome) in &outcomes {
        println!("{}", crate::sync::describe(name, outcome));
    }
    describe_pull_requests(&ledger, &settings).await;
    ledger.close().await;
    let failed = outcomes.iter().filter(|(_, outcome)| outcome.is_err()).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} sources failed to sync", outcomes.len());
    }
    Ok(())
}

/// One pass of the forges' pull-request details, as `landfall serve` makes after each
/// sync, printed per repository: what the commit messages only number gets its title,
/// author and branch. A failure is printed and does not fail the ingest.
async fn describe_pull_requests(ledger: &Ledger, settings: &Settings) {
    let forges = crate::forge::Forges::from_env(settings);
    for described in crate::forge::worker::fill_all(ledger, &forges, settings).await {
        let (repository, forge) = (&described.repository, &described.forge);
        match described.outcome {
            Some(Ok(count)) => println!("{repository}: {count} pull requests described by {forge}"),
            Some(Err(error)) => println!("{repository}: pull requests not described: {error}"),
            None => println!("{repository}: pull requests not described: forge `{forge}` has no token"),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
