//! The landing page: what the ledger holds, recent deployments, and, while nothing is
//! connected, how to connect Argo CD, Git repositories and Jira.

mod setup_guide;

use leptos::prelude::*;

use crate::api::{Overview, SourceStatus, get_overview, list_connections};
use crate::shared::layout::PageHeader;
use crate::shared::status::{ErrorNotice, Loading};
use crate::shared::tables::{StatusPill, Time};
use setup_guide::SetupGuide;

#[component]
pub fn OverviewPage() -> impl IntoView {
    let overview = Resource::new(|| (), |_| get_overview());
    view! {
        <section class="page">
            <PageHeader
                title="Overview"
                lede="What shipped where, as features and pull requests rather than git hashes."
            />
            <Connections />
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match overview.await {
                        Ok(overview) if overview.is_empty() => view! { <SetupGuide /> }.into_any(),
                        Ok(overview) => view! { <OverviewBody overview /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Each configured source with its state, so that a refused token or an unreachable
/// Argo CD is seen here and not only in `/readyz`. Nothing while none is configured.
#[component]
fn Connections() -> impl IntoView {
    let connections = Resource::new(|| (), |_| list_connections());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match connections.await {
                    Ok(list) if list.is_empty() => ().into_any(),
                    Ok(list) => connection_list(list).into_any(),
                    Err(error) => view! { <ErrorNotice error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn connection_list(list: Vec<SourceStatus>) -> impl IntoView {
    let failing = list.iter().filter(|source| !source.ok).count();
    view! {
        <section class="connections" aria-label="Connections">
            {(failing > 0).then(|| view! {
                <div class="notice notice-error" role="alert">
                    {format!("{failing} of {} connections {} not working: Landfall shows what it recorded before.",
                        list.len(), if failing == 1 { "is" } else { "are" })}
                </div>
            })}
            <ul class="connection-list">
                {list.into_iter().map(|source| {
                    let tone = if source.ok { "pill pill-good" } else { "pill pill-bad" };
                    view! {
                        <li class="connection" data-testid="connection">
                            <span class="strong">{format!("{} {}", source.kind, source.name)}</span>" "
                            <span class=tone>{source.state}</span>
                            {source.error.map(|error| view! { <span class="muted">{format!(" {error}")}</span> })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}

#[component]
fn OverviewBody(overview: Overview) -> impl IntoView {
    let counts = overview.counts;
    let tiles = [
        ("Environments", counts.environments),
        ("Applications", counts.applications),
        ("Deployments", counts.deployments),
        ("Features", counts.features),
        ("Pull requests", counts.pull_requests),
        ("Commits", counts.commits),
        ("Pipeline runs", counts.pipeline_runs),
    ];
    view! {
        <ul class="tiles" aria-label="Ledger contents">
            {tiles
                .into_iter()
                .map(|(label, value)| {
                    view! {
                        <li class="tile">
                            <span class="tile-value">{value}</span>
                            <span class="tile-label">{label}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
        <div class="columns">
            <section class="card">
                <h2>"Environments"</h2>
                <ul class="env-list">
                    {overview
                        .environments
                        .into_iter()
                        .map(|env| {
                            view! {
                                <li>
                                    <span class="env-name">{env.name}</span>
                                    <span class="muted">{format!("{} apps", env.applications)}</span>
                                    <Time epoch_ms=env.last_deployed_at />
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </section>
            <section class="card card-wide">
                <h2>"Recent deployments"</h2>
                <table class="table">
                    <thead>
                        <tr>
                            <th>"Application"</th>
                            <th>"Environment"</th>
                            <th>"Revision"</th>
                            <th>"Phase"</th>
                            <th>"Finished"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {overview
                            .recent_deployments
                            .into_iter()
                            .map(|d| {
                                view! {
                                    <tr>
                                        <td>{d.application}</td>
                                        <td>{d.environment.unwrap_or_default()}</td>
                                        <td class="mono">{short_revision(&d.revision)}</td>
                                        <td><StatusPill status=Some(d.phase) /></td>
                                        <td><Time epoch_ms=d.finished_at /></td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </section>
        </div>
    }
}

/// Git revisions are shown by their first 8 characters, like Argo CD does; anything
/// else (a tag, a chart version) is shown whole.
pub fn short_revision(revision: &str) -> String {
    let is_sha = revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit());
    if is_sha { revision[..8].to_string() } else { revision.to_string() }
}

#[cfg(test)]
mod tests {
    use super::short_revision;

    #[test]
    fn shortens_only_full_shas() {
        assert_eq!(short_revision("0123456789abcdef0123456789abcdef01234567"), "01234567");
        assert_eq!(short_revision("v1.2.3"), "v1.2.3");
        assert_eq!(short_revision("1.0.0-chart"), "1.0.0-chart");
    }
}
