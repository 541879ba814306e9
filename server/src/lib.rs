//! Landfall's server: configuration, the ledger, the HTTP surface and the command line.
//! `main.rs` only calls [`cli::main`], so tests and other binaries reuse all of it.

pub mod ancestry;
pub mod answer;
pub mod argocd;
pub mod ask;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod correlate;
pub mod forge;
pub mod git;
pub mod http;
pub mod jira;
pub mod ledger;
pub mod live;
pub mod reports;
pub mod serve;
pub mod signature;
pub mod sync;
pub mod telemetry;
pub mod timefmt;
