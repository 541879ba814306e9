//! In-process emulators of the services Landfall talks to, for tests.
//!
//! Each emulator is a real HTTP server on `127.0.0.1:0` inside the test process, speaking the
//! vendor's wire format as documented in `../shared/fixtures/<vendor>/API.md`, so connector
//! tests exercise the same parsing, error handling and reconnection code that production runs,
//! without network access. Each module is self-contained: its own state, routes, error enum and
//! test hooks (seeding, faults, simulated controllers).
//!
//! * [`argocd`]: the Argo CD REST API (applications, operations, watch stream, projects,
//!   clusters, repositories, session and version).
//! * [`jira`]: Jira Cloud's and Data Center's issue search, and signed webhooks.
//! * [`github`]: GitHub's REST API for pull requests and workflow-run jobs, and signed
//!   webhook deliveries built from GitHub's own example payloads.
//! * [`gitlab`]: GitLab's REST v4 API for merge requests, and webhook deliveries built from
//!   GitLab's own example payloads.

pub mod argocd;
mod forge;
pub mod github;
pub mod gitlab;
pub mod jira;

pub use forge::{Delivered, Fault as ForgeFault, Seen};
