/// One application's page with its deployment history.
pub mod detail;
/// The typed Application model behind the create/edit form, with Argo CD's validation.
pub mod form;

use leptos::prelude::*;

use crate::api::{ApplicationSummary, list_applications};
use crate::live::{LiveBadge, use_live};
use crate::shared::layout::PageHeader;
use crate::shared::status::AsyncList;
use crate::shared::tables::StatusPill;

#[component]
pub fn ApplicationsPage() -> impl IntoView {
    // Any application's change can move the list: reload it.
    let (changes, connection) = use_live(|message| message.is_change());
    view! {
        <section class="page">
            <PageHeader title="Applications" lede="Every Argo CD application Landfall knows, across instances." />
            <p><LiveBadge connection /></p>
            <AsyncList fetch=list_applications empty="No applications yet. Connect an Argo CD instance to see them here." render=application_table reload=changes />
        </section>
    }
}

pub fn application_table(list: Vec<ApplicationSummary>) -> impl IntoView {
    view! {
        <table class="table">
            <thead>
                <tr><th>"Application"</th><th>"Project"</th><th>"Environment"</th><th>"Instance"</th><th>"Sync"</th><th>"Health"</th></tr>
            </thead>
            <tbody>
                {list.into_iter().map(|app| view! {
                    <tr>
                        <td class="strong"><a href=detail::application_href(&app.instance, &app.name)>{app.name.clone()}</a><span class="muted">{format!(" · {}", app.namespace)}</span></td>
                        <td>{app.project}</td>
                        <td>{app.environment.unwrap_or_default()}</td>
                        <td>{app.instance}</td>
                        <td><StatusPill status=app.sync_status /></td>
                        <td><StatusPill status=app.health_status /></td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}
