use leptos::prelude::*;

use crate::api::list_deployments;
use crate::overview::short_revision;
use crate::shared::layout::PageHeader;
use crate::shared::status::{Empty, ErrorNotice, Loading};
use crate::shared::tables::{StatusPill, Time};

#[component]
pub fn TimelinePage() -> impl IntoView {
    let deployments = Resource::new(|| (), |_| list_deployments());
    view! {
        <section class="page">
            <PageHeader title="Timeline" lede="Deployments across every environment, newest first." />
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match deployments.await {
                        Ok(list) if list.is_empty() => view! {
                            <Empty>"No deployments recorded yet."</Empty>
                        }.into_any(),
                        Ok(list) => view! {
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
                        }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
