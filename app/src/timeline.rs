use leptos::prelude::*;

use crate::api::{DeploymentSummary, list_deployments};
use crate::overview::short_revision;
use crate::shared::layout::PageHeader;
use crate::shared::status::AsyncList;
use crate::shared::tables::{StatusPill, Time};

#[component]
pub fn TimelinePage() -> impl IntoView {
    view! {
        <section class="page">
            <PageHeader title="Timeline" lede="Deployments across every environment, newest first." />
            <AsyncList fetch=list_deployments empty="No deployments recorded yet." render=deployment_list />
        </section>
    }
}

fn deployment_list(list: Vec<DeploymentSummary>) -> impl IntoView {
    view! {
        <ol class="timeline">
            {list.into_iter().map(|d| view! {
                <li class="timeline-item">
                    <Time epoch_ms=d.finished_at.or(Some(d.started_at)) />
                    <span class="strong">{d.application}</span>
                    <span class="muted">{d.environment.unwrap_or_default()}</span>
                    <span class="mono">{short_revision(&d.revision)}</span>
                    <StatusPill status=Some(d.phase) />
                    <span class="muted">{d.initiated_by.map(|who| format!("by {who}")).unwrap_or_default()}</span>
                </li>
            }).collect_view()}
        </ol>
    }
}
