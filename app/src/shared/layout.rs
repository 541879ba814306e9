use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

/// The shell's sections, in the order the navigation shows them.
pub const SECTIONS: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/features", "Features"),
    ("/timeline", "Timeline"),
    ("/environments", "Environments"),
    ("/applications", "Applications"),
    ("/search", "Search"),
];

/// Navigation on the left, the page on the right; links are router links, so moving
/// between sections never reloads the page once it is hydrated.
#[component]
pub fn AppShell(children: Children) -> impl IntoView {
    view! {
        <div class="shell">
            <header class="shell-header">
                <a class="brand" href="/" aria-label="Landfall home">
                    <span class="brand-mark" aria-hidden="true"></span>
                    <span class="brand-name">"Landfall"</span>
                </a>
                <nav class="shell-nav" aria-label="Main">
                    {SECTIONS
                        .into_iter()
                        .map(|(href, label)| {
                            view! {
                                <A href=href exact=true>
                                    {label}
                                </A>
                            }
                        })
                        .collect_view()}
                </nav>
            </header>
            <main class="shell-main">{children()}</main>
        </div>
    }
}

/// Shown for any path outside the shell's routes; answers 404 when rendered on the server.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found" />
        <section class="page">
            <h1>"Page not found"</h1>
            <p class="lede">"Nothing lives at this address. Pick a section from the navigation above."</p>
        </section>
    }
}

/// A page's heading with a one-line explanation under it.
#[component]
pub fn PageHeader(title: &'static str, lede: &'static str) -> impl IntoView {
    view! {
        <Title text=title />
        <header class="page-header">
            <h1>{title}</h1>
            <p class="lede">{lede}</p>
        </header>
    }
}
