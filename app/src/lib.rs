//! Landfall's user interface.
//!
//! Built twice: with `ssr` into the server, which renders every page to HTML, and with
//! `hydrate` into the wasm bundle that makes those pages interactive in the browser.
//! Server-only code sits behind `#[cfg(feature = "ssr")]`; the server reaches the ledger
//! through the [`api::Backend`] trait object it puts in context, so this crate never
//! depends on the server crate.

pub mod api;
pub mod applications;
mod environments;
mod features;
pub mod format;
pub mod live;
mod overview;
mod search;
mod shared;
mod timeline;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    ParamSegment, StaticSegment,
    components::{Route, Router, Routes},
};

use crate::applications::ApplicationsPage;
use crate::environments::EnvironmentsPage;
use crate::features::FeaturesPage;
use crate::overview::OverviewPage;
use crate::search::SearchPage;
use crate::shared::layout::{AppShell, NotFound};
use crate::timeline::TimelinePage;

/// The HTML document around the app, rendered once per request on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="landfall" href="/pkg/landfall.css" />
        <Title formatter=|page: String| {
            if page.is_empty() { "Landfall".to_string() } else { format!("{page} · Landfall") }
        } />
        <Router>
            <AppShell>
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=OverviewPage />
                    <Route path=StaticSegment("features") view=FeaturesPage />
                    <Route path=StaticSegment("timeline") view=TimelinePage />
                    <Route path=StaticSegment("environments") view=EnvironmentsPage />
                    <Route path=StaticSegment("applications") view=ApplicationsPage />
                    <Route
                        path=(StaticSegment("applications"), ParamSegment("instance"), ParamSegment("name"))
                        view=applications::detail::ApplicationPage
                    />
                    <Route path=StaticSegment("search") view=SearchPage />
                </Routes>
            </AppShell>
        </Router>
    }
}

/// Entry point of the wasm bundle: attaches to the server-rendered DOM.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // Lets end-to-end tests (and curious users) tell a hydrated page from plain HTML.
    if let Some(root) = document().document_element() {
        let _ = root.set_attribute("data-hydrated", "true");
    }
}
