use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use crate::api::{MAX_QUERY_CHARS, search};
use crate::applications::ApplicationTable;
use crate::features::FeatureTable;
use crate::shared::layout::PageHeader;
use crate::shared::status::{Empty, ErrorNotice, Loading};

/// Finds features by key or summary and applications by name. The question parser
/// ("is SHOP-12 in production?") builds on this box.
#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let current = move || query.read().get("q").unwrap_or_default();
    let results =
        Resource::new(
            current,
            |q| async move { if q.trim().is_empty() { Ok(None) } else { search(q).await.map(Some) } },
        );
    view! {
        <section class="page">
            <PageHeader title="Search" lede="Find a feature, a pull request or an application." />
            <Form action="/search" attr:class="search-form" attr:role="search">
                <label class="visually-hidden" for="q">"Search"</label>
                <input id="q" type="search" name="q" placeholder="SHOP-2356, checkout, payments-api…"
                    maxlength=MAX_QUERY_CHARS.to_string() prop:value=current />
                <button type="submit">"Search"</button>
            </Form>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match results.await {
                        Ok(None) => ().into_any(),
                        Ok(Some(found)) if found.features.is_empty() && found.applications.is_empty() => view! {
                            <Empty>"Nothing matches that search."</Empty>
                        }.into_any(),
                        Ok(Some(found)) => view! {
                            <h2>"Features"</h2>
                            <FeatureTable list=found.features />
                            <h2>"Applications"</h2>
                            <ApplicationTable list=found.applications />
                        }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
