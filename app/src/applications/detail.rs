//! One application's page: its status and every deployment the ledger holds, newest
//! first, with the features each brought in or took out.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{ApplicationHistory, HistoryEntry, get_application};
use crate::live::{Connection, LiveBadge, use_live};
use crate::shared::status::{ErrorNotice, Loading};
use crate::shared::tables::StatusPill;

/// One path segment or query value, percent-encoded.
fn encode(part: &str) -> String {
    part.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The page's address: `/applications/{instance}/{name}`, each part percent-encoded.
pub fn application_href(instance: &str, name: &str) -> String {
    format!("/applications/{}/{}", encode(instance), encode(name))
}

/// The REST address of an action on an application: `sync`, `refresh` or `rollback`.
fn action_url(instance: &str, namespace: &str, name: &str, action: &str) -> String {
    format!("/api/v1/applications/{}/{}/{action}?namespace={}", encode(instance), encode(name), encode(namespace))
}

/// The page's record of its last action, kept across the data reloads.
#[derive(Clone, Copy)]
struct ActionFeedback {
    /// The last action's answer: whether it went through, and Landfall's words.
    outcome: RwSignal<Option<(bool, String)>>,
    busy: RwSignal<bool>,
}

impl ActionFeedback {
    fn clear(self) {
        self.outcome.set(None);
        self.busy.set(false);
    }
}

/// Sync, refresh and roll back from the page. The buttons call the same REST endpoints
/// as any other client, so the same checks (`actions_enabled`, cross-site refusal) and
/// the same audit apply; the page then follows what Argo CD does through the live feed.
#[derive(Clone)]
struct Actions {
    instance: String,
    namespace: String,
    name: String,
    automated_sync: bool,
    feedback: ActionFeedback,
}

impl Actions {
    fn run(&self, action: &'static str, body: serde_json::Value) {
        let url = action_url(&self.instance, &self.namespace, &self.name, action);
        let ActionFeedback { outcome, busy } = self.feedback;
        busy.set(true);
        outcome.set(None);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            outcome.set(Some(post_action(&url, &body).await));
            busy.set(false);
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (url, body);
    }

    /// Asks first, and says so when automated sync must be turned off for Argo CD to
    /// accept the rollback. The revision goes along, so that an entry Argo CD has
    /// trimmed from its history is returned to by a sync to that revision.
    fn roll_back(&self, history_id: i64, revision: &str) {
        let shown: String = revision.chars().take(12).collect();
        let question = if self.automated_sync {
            format!(
                "Automated sync is on for {}, and Argo CD refuses a rollback while it is. Turn automated sync off \
                 and roll back to history {history_id} ({shown})?",
                self.name
            )
        } else {
            format!("Roll {} back to history {history_id} ({shown})?", self.name)
        };
        if confirmed(&question) {
            let body = serde_json::json!({
                "history_id": history_id,
                "revision": (!revision.is_empty()).then_some(revision),
                "disable_automated_sync": self.automated_sync,
            });
            self.run("rollback", body);
        }
    }
}

#[cfg(feature = "hydrate")]
fn confirmed(question: &str) -> bool {
    window().confirm_with_message(question).unwrap_or(false)
}

#[cfg(not(feature = "hydrate"))]
fn confirmed(_question: &str) -> bool {
    false
}

/// POSTs an action and reads Landfall's answer: its `message`, or its `error`.
#[cfg(feature = "hydrate")]
async fn post_action(url: &str, body: &serde_json::Value) -> (bool, String) {
    let request = match gloo_net::http::Request::post(url).json(body) {
        Ok(request) => request,
        Err(error) => return (false, error.to_string()),
    };
    match request.send().await {
        Ok(response) => {
            let ok = response.ok();
            let status = response.status();
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            let words = answer[if ok { "message" } else { "error" }].as_str().map(str::to_string);
            (ok, words.unwrap_or_else(|| format!("Landfall answered {status}")))
        }
        Err(error) => (false, format!("could not reach Landfall: {error}")),
    }
}

#[component]
fn ActionBar(actions: Actions) -> impl IntoView {
    let ActionFeedback { outcome, busy } = actions.feedback;
    let sync = actions.clone();
    let refresh = actions.clone();
    let hard = actions.clone();
    view! {
        <div class="actions" role="group" aria-label="Actions">
            <button type="button" disabled=move || busy.get() on:click=move |_| sync.run("sync", serde_json::json!({}))>"Sync"</button>
            <button type="button" disabled=move || busy.get() on:click=move |_| refresh.run("refresh", serde_json::json!({}))>"Refresh"</button>
            <button type="button" disabled=move || busy.get() on:click=move |_| hard.run("refresh", serde_json::json!({ "hard": true }))>"Hard refresh"</button>
            <span role="status" data-testid="action-outcome" class=move || match outcome.get() {
                Some((false, _)) => "action-outcome failed",
                _ => "action-outcome",
            }>{move || outcome.get().map(|(_, words)| words)}</span>
        </div>
    }
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
    // An action's answer outlives the reloads that the action itself sets off through
    // the live feed; it is cleared only when the page shows another application.
    let feedback = ActionFeedback { outcome: RwSignal::new(None), busy: RwSignal::new(false) };
    Effect::watch(key, move |_, _, _| feedback.clear(), false);
    view! {
        <section class="page">
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match application.await {
                        Ok(Some(app)) => history_view(app, connection, feedback).into_any(),
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

fn history_view(
    app: ApplicationHistory,
    connection: ReadSignal<Connection>,
    feedback: ActionFeedback,
) -> impl IntoView {
    let shown = app.deployments.len() as i64;
    let more = app.deployments_total - shown;
    let actions = (app.actions_enabled && app.deleted_at.is_none()).then(|| Actions {
        instance: app.instance.clone(),
        namespace: app.namespace.clone(),
        name: app.name.clone(),
        automated_sync: app.automated_sync,
        feedback,
    });
    let bar = actions.clone().map(|actions| view! { <ActionBar actions /> });
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
            {bar}
        </header>
        <h2>"Deployments"</h2>
        {if app.deployments.is_empty() {
            view! { <p class="muted">"No deployments recorded yet."</p> }.into_any()
        } else {
            view! {
                <table class="table" aria-label="Deployments">
                    <thead>
                        <tr><th>"History"</th><th>"Deployed"</th><th>"Revision"</th><th>"By"</th><th>"Images"</th><th>"Features in"</th><th>"Features out"</th>
                            {actions.is_some().then(|| view! { <th><span class="visually-hidden">"Actions"</span></th> })}</tr>
                    </thead>
                    <tbody>{app.deployments.into_iter().map(|entry| row(entry, actions.clone())).collect_view()}</tbody>
                </table>
            }.into_any()
        }}
        {(more > 0).then(|| view! { <p class="muted">{format!("{more} older deployments are in the ledger; the REST API lists them.")}</p> })}
    }
}

fn row(entry: HistoryEntry, actions: Option<Actions>) -> impl IntoView {
    let revision: String = entry.revision.chars().take(12).collect();
    let phase = (entry.phase != "Succeeded").then(|| format!(" ({})", entry.phase));
    let roll_back = actions.map(|actions| {
        let button = entry.can_roll_back.then(|| {
            let (history_id, revision) = (entry.history_id, entry.revision.clone());
            let busy = actions.feedback.busy;
            view! {
                <button type="button" disabled=move || busy.get()
                    on:click=move |_| actions.roll_back(history_id, &revision)>"Roll back here"</button>
            }
        });
        view! { <td>{button}</td> }
    });
    view! {
        <tr>
            <td>{entry.history_id}{entry.is_rollback.then_some(" · rollback")}</td>
            <td>{entry.deployed_at}</td>
            <td class="mono">{revision}{phase}</td>
            <td>{entry.initiated_by.unwrap_or_default()}</td>
            <td>{entry.images.join(", ")}</td>
            <td>{entry.features_entered.join(", ")}</td>
            <td>{entry.features_left.join(", ")}</td>
            {roll_back}
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
