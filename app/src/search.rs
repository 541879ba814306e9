use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{MAX_QUERY_CHARS, QuestionAnswer, search};
use crate::applications::application_table;
use crate::features::feature_table;
use crate::format::encode_query_value;
use crate::shared::layout::PageHeader;
use crate::shared::status::{Empty, ErrorNotice, Loading};

/// Answers questions ("Is SHOP-12 in production now?") and finds features by key or
/// summary and applications by name.
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
            <PageHeader title="Search"
                lede="Ask a question, such as “Is SHOP-2356 in production now?”, or find a feature by key or summary, or an application by name." />
            <form action="/search" method="get" class="search-form" role="search" on:submit=on_submit>
                <label class="visually-hidden" for="q">"Search"</label>
                <input id="q" type="search" name="q" placeholder="Which features entered staging this morning? SHOP-2356, checkout…"
                    maxlength=MAX_QUERY_CHARS.to_string() prop:value=current node_ref=input />
                <button type="submit">"Search"</button>
            </form>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match results.await {
                        Ok(None) => ().into_any(),
                        Ok(Some(found))
                            if found.features.is_empty() && found.applications.is_empty() && found.answer.is_none() =>
                        {
                            view! { <Empty>"Nothing matches that search."</Empty> }.into_any()
                        }
                        Ok(Some(found)) => view! {
                            {found.answer.map(answer)}
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

/// The query read as a question: the answer, or what is missing with questions to try.
fn answer(answer: QuestionAnswer) -> impl IntoView {
    let QuestionAnswer { understood, summary, recognised, examples } = answer;
    view! {
        <section class="answer" data-testid="answer" aria-live="polite">
            <p class="answer-summary">{summary}</p>
            {(!understood).then(|| view! {
                {(!recognised.is_empty()).then(|| view! {
                    <p class="answer-recognised">"Recognised: " {recognised.join(", ")}</p>
                })}
                <p>"You can ask, for example:"</p>
                <ul class="answer-examples">
                    {examples.into_iter().map(|example| {
                        let href = format!("/search?q={}", encode_query_value(&example));
                        view! { <li><a href=href>{example}</a></li> }
                    }).collect_view()}
                </ul>
            })}
        </section>
    }
}
