use leptos::prelude::*;

use crate::api::{EnvironmentSummary, list_environments};
use crate::shared::layout::PageHeader;
use crate::shared::status::AsyncList;
use crate::shared::tables::Time;

#[component]
pub fn EnvironmentsPage() -> impl IntoView {
    view! {
        <section class="page">
            <PageHeader title="Environments" lede="From development to production, in promotion order." />
            <AsyncList
                fetch=list_environments
                empty="No environments yet. They appear once Argo CD applications are mapped to them."
                render=environment_table
            />
        </section>
    }
}

fn environment_table(list: Vec<EnvironmentSummary>) -> impl IntoView {
    view! {
        <table class="table">
            <thead><tr><th>"Environment"</th><th>"Rank"</th><th>"Applications"</th><th>"Last deployment"</th></tr></thead>
            <tbody>
                {list.into_iter().map(|env| view! {
                    <tr>
                        <td class="strong">{env.name}</td>
                        <td>{env.rank}</td>
                        <td>{env.applications}</td>
                        <td><Time epoch_ms=env.last_deployed_at /></td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}
