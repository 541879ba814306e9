use leptos::prelude::*;

use crate::api::{FeatureSummary, list_features};
use crate::shared::layout::PageHeader;
use crate::shared::status::{Empty, ErrorNotice, Loading};
use crate::shared::tables::StatusPill;

#[component]
pub fn FeaturesPage() -> impl IntoView {
    let features = Resource::new(|| (), |_| list_features());
    view! {
        <section class="page">
            <PageHeader title="Features" lede="Jira issues found in commits, branches and pull requests." />
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match features.await {
                        Ok(list) if list.is_empty() => view! {
                            <Empty>"No features yet. They appear once Git repositories are ingested."</Empty>
                        }.into_any(),
                        Ok(list) => view! { <FeatureTable list /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
pub fn FeatureTable(list: Vec<FeatureSummary>) -> impl IntoView {
    view! {
        <table class="table">
            <thead><tr><th>"Key"</th><th>"Summary"</th><th>"Status"</th><th>"Commits"</th></tr></thead>
            <tbody>
                {list.into_iter().map(|f| view! {
                    <tr>
                        <td class="mono strong">{f.key}</td>
                        <td>{f.summary.unwrap_or_default()}</td>
                        <td><StatusPill status=f.status /></td>
                        <td>{f.commits}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}
