use leptos::prelude::*;

use crate::api::AppError;

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" role="status">"Loading…"</p> }
}

#[component]
pub fn ErrorNotice(error: AppError) -> impl IntoView {
    view! {
        <div class="notice notice-error" role="alert">
            <strong>"Something went wrong. "</strong>
            {error.to_string()}
        </div>
    }
}

/// What a list shows when the ledger has nothing for it yet.
#[component]
pub fn Empty(children: Children) -> impl IntoView {
    view! { <div class="empty">{children()}</div> }
}

/// A list read through a server function once per visit (and again whenever `reload`
/// changes): the loading state, then the list drawn by `render`, the `empty` message
/// when there is nothing, or the error. A reload keeps the old list until the new one is in.
#[component]
pub fn AsyncList<T, Fut, V>(
    fetch: fn() -> Fut,
    empty: &'static str,
    render: fn(Vec<T>) -> V,
    #[prop(optional)] reload: Option<ReadSignal<u64>>,
) -> impl IntoView
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    Fut: Future<Output = Result<Vec<T>, AppError>> + Send + 'static,
    V: IntoView + 'static,
{
    let list = Resource::new(move || reload.map(|r| r.get()), move |_| fetch());
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(items) if items.is_empty() => view! { <Empty>{empty}</Empty> }.into_any(),
                    Ok(items) => render(items).into_any(),
                    Err(error) => view! { <ErrorNotice error /> }.into_any(),
                }
            })}
        </Transition>
    }
}
