//! One application's page: its status and every deployment the ledger holds, newest
//! first, with the features each brought in or took out.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{ApplicationHistory, HistoryEntry, get_application};
use crate::live::{Connection, LiveBadge, use_live};
use crate::shared::status::{ErrorNotice, Loading};
use crate::shared::tables::StatusPill;

/// The page's address: `/applications/{instance}/{name}`, each part percent-encoded.
pub fn application_href(instance: &str, name: &str) -> String {
    let encode = |part: &str| -> String {
        part.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    format!("/applications/{}/{}", encode(instance), encode(name))
}

#[component]
pub fn ApplicationPage() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        let params = params.read();
        (params.get("instance").unwrap_or_default(), params.get("name").unwrap_or_default())
    };
    // Status changes and new deployments of this application reload the page's data.
    let (changes, connection) = use_live(move |message| {
        let (instance, name) = untrack(key);
        message.is_change() && message.is_about(&instance, &name)
    });
    let application =
        Resource::new(move || (key(), changes.get()), |((instance, name), _)| get_application(instance, name));
    view! {
        <section class="page">
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match application.await {
                        Ok(Some(app)) => history_view(app, connection).into_any(),
                        Ok(None) => view! {
                            <Title text="Application not found" />
                            <h1>"Application not found"</h1>
                            <p class="lede">"Landfall has no application of that name in that Argo CD instance. "
                                <a href="/applications">"All applications"</a></p>
                        }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn history_view(app: ApplicationHistory, connection: ReadSignal<Connection>) -> impl IntoView {
    let shown = app.deployments.len() as i64;
    let more = app.deployments_total - shown;
    view! {
        <Title text=app.name.clone() />
        <header class="page-header">
            <h1>{app.name.clone()}<span class="muted">{format!(" · {} · {}", app.namespace, app.instance)}</span></h1>
            <p class="lede">
                {format!("Project {}", app.project)}
                {app.environment.clone().map(|e| format!(" · {e}"))}
                {app.automated_sync.then_some(" · automated sync")}
                {app.deleted_at.clone().map(|at| format!(" · deleted from Argo CD {at}"))}
            </p>
            <p>
                <span data-testid="sync-status"><StatusPill status=app.sync_status.clone() /></span>" "
                <span data-testid="health-status"><StatusPill status=app.health_status.clone() /></span>" "
                <LiveBadge connection />
            </p>
        </header>
        <h2>"Deployments"</h2>
        {if app.deployments.is_empty() {
            view! { <p class="muted">"No deployments recorded yet."</p> }.into_any()
        } else {
            view! {
                <table class="table" aria-label="Deployments">
                    <thead>
                        <tr><th>"History"</th><th>"Deployed"</th><th>"Revision"</th><th>"By"</th><th>"Images"</th><th>"Features in"</th><th>"Features out"</th></tr>
                    </thead>
                    <tbody>{app.deployments.into_iter().map(row).collect_view()}</tbody>
                </table>
            }.into_any()
        }}
        {(more > 0).then(|| view! { <p class="muted">{format!("{more} older deployments are in the ledger; the REST API lists them.")}</p> })}
    }
}

fn row(entry: HistoryEntry) -> impl IntoView {
    let revision: String = entry.revision.chars().take(12).collect();
    let phase = (entry.phase != "Succeeded").then(|| format!(" ({})", entry.phase));
    view! {
        <tr>
            <td>{entry.history_id}{entry.is_rollback.then_some(" · rollback")}</td>
            <td>{entry.deployed_at}</td>
            <td class="mono">{revision}{phase}</td>
            <td>{entry.initiated_by.unwrap_or_default()}</td>
            <td>{entry.images.join(", ")}</td>
            <td>{entry.features_entered.join(", ")}</td>
            <td>{entry.features_left.join(", ")}</td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_encode_each_part() {
        assert_eq!(application_href("main", "shop-api"), "/applications/main/shop-api");
        assert_eq!(application_href("main", "a/b c"), "/applications/main/a%2Fb%20c");
    }
}
