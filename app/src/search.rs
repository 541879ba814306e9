use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{MAX_QUERY_CHARS, search};
use crate::applications::application_table;
use crate::features::feature_table;
use crate::format::encode_query_value;
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
    // Without wasm the form is a plain GET form; once hydrated, submitting navigates in place.
    let navigate = use_navigate();
    let input = NodeRef::<leptos::html::Input>::new();
    let on_submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let text = input.get().map(|element| element.value()).unwrap_or_default();
        navigate(&format!("/search?q={}", encode_query_value(text.trim())), Default::default());
    };
    view! {
        <section class="page">
            <PageHeader title="Search" lede="Find a feature by key or summary, or an application by name." />
            <form action="/search" method="get" class="search-form" role="search" on:submit=on_submit>
                <label class="visually-hidden" for="q">"Search"</label>
                <input id="q" type="search" name="q" placeholder="SHOP-2356, checkout, payments-api…"
                    maxlength=MAX_QUERY_CHARS.to_string() prop:value=current node_ref=input />
                <button type="submit">"Search"</button>
            </form>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match results.await {
                        Ok(None) => ().into_any(),
                        Ok(Some(found)) if found.features.is_empty() && found.applications.is_empty() => view! {
                            <Empty>"Nothing matches that search."</Empty>
                        }.into_any(),
                        Ok(Some(found)) => view! {
                            <h2>"Features"</h2>
                            {feature_table(found.features)}
                            <h2>"Applications"</h2>
                            {application_table(found.applications)}
                        }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
