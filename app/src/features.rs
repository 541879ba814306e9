use leptos::prelude::*;

use crate::api::{FeatureSummary, list_features};
use crate::shared::layout::PageHeader;
use crate::shared::status::AsyncList;
use crate::shared::tables::StatusPill;

#[component]
pub fn FeaturesPage() -> impl IntoView {
    view! {
        <section class="page">
            <PageHeader title="Features" lede="Jira issues found in commits, branches and pull requests." />
            <AsyncList fetch=list_features empty="No features yet. They appear once Git repositories are ingested." render=feature_table />
        </section>
    }
}

pub fn feature_table(list: Vec<FeatureSummary>) -> impl IntoView {
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
