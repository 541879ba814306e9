use leptos::prelude::*;

use crate::api::list_environments;
use crate::shared::layout::PageHeader;
use crate::shared::status::{Empty, ErrorNotice, Loading};
use crate::shared::tables::Time;

#[component]
pub fn EnvironmentsPage() -> impl IntoView {
    let environments = Resource::new(|| (), |_| list_environments());
    view! {
        <section class="page">
            <PageHeader title="Environments" lede="From development to production, in promotion order." />
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match environments.await {
                        Ok(list) if list.is_empty() => view! {
                            <Empty>"No environments yet. They appear once Argo CD applications are mapped to them."</Empty>
                        }.into_any(),
                        Ok(list) => view! {
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
                        }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
